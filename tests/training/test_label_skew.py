"""Before training (issue 39): a dataset whose top label far exceeds what the demos show is
not trained by default; the message says why and how to override."""

from __future__ import annotations

import pytest

from selfguide.errors import DatasetError
from selfguide.training.trainer import check_dataset


def rows(counts: dict[str, int]) -> list[dict]:
    out = []
    for label, n in counts.items():
        out += [{"id": f"{label}{i}", "prompt": f"p {label} {i}", "completion": label,
                 "label": label} for i in range(n)]
    return out


def test_a_one_label_heavy_dataset_is_refused_when_the_demos_spread():
    with pytest.raises(DatasetError) as err:
        check_dataset(rows({"A": 48, "B": 5}), task_type="classification",
                      demo_labels=["A", "B", "Neither"], max_label_share=0.9)
    assert "48 of the 53 training rows (91%)" in str(err.value)
    assert "collapse" in str(err.value) and "--force" in err.value.hint
    assert "force" in err.value.ui_hint and "--" not in err.value.ui_hint


def test_own_labels_of_one_label_are_refused_when_the_demos_spread():
    with pytest.raises(DatasetError):
        check_dataset(rows({"support": 77}), task_type="classification", own_labels=True,
                      demo_labels=["support", "undermine", "support"], max_label_share=0.9)


@pytest.mark.parametrize("counts,demos,limit", [
    ({"A": 40, "B": 10}, ["A", "B", "C"], 0.9),  # 80% < 90%
    ({"yes": 19, "no": 1}, ["yes", "yes", "yes"], 0.9),  # the demos are one label too
    ({"A": 48, "B": 2}, ["A", "B"], 1.0),  # the check is off
])
def test_what_is_not_refused(counts, demos, limit):
    stats = check_dataset(rows(counts), task_type="classification", demo_labels=demos,
                          max_label_share=limit)
    assert stats["label_counts"] == counts


def test_force_trains_anyway_and_own_single_label_without_spread_still_warns():
    assert check_dataset(rows({"A": 50, "B": 1}), task_type="classification",
                         demo_labels=["A", "B"], max_label_share=0.9, force=True)["rows"] == 51
    stats = check_dataset(rows({"no": 30}), task_type="classification", own_labels=True,
                          demo_labels=["no", "no", "no"], max_label_share=0.9)
    assert stats["own_single_label"] is True


def test_a_runs_saved_task_gives_the_demo_labels(workspace):
    """The check reads the demos from the run's task.json (saved as ``demos``): demos of
    two labels and 103 rows of one label and 5 of the other are refused (task1529's case was
    103 of one label, refused as identical completions first)."""
    from selfguide.runs import store
    from selfguide.runs.rundir import RunDir
    from selfguide.task.spec import Demo, TaskSpec
    from selfguide.training.trainer import check_run_dataset

    run = RunDir(store.resolve_run_dir("nli", create=True))
    run.write_task(TaskSpec(name="nli", instruction="Entails or neutral?", task_type=
                            "classification", labels=("entails", "neutral"),
                            demos=(Demo("p1", "entails"), Demo("p2", "entails"),
                                   Demo("p3", "neutral"))))
    with pytest.raises(DatasetError, match="collapse"):
        check_run_dataset(run.path, rows({"neutral": 103, "entails": 5}), max_label_share=0.9)
    with pytest.raises(DatasetError, match="identical"):
        check_run_dataset(run.path, rows({"neutral": 103}), max_label_share=0.9)
