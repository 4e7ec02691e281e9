"""Before/after evaluation: the base model vs base + adapter on held-out examples.

What it does: picks the held-out examples (the task's NIv2 ``Instances`` or a user
JSONL/CSV/NIv2 file, optionally a seeded sample of ``limit``), builds THE prompt
(``prompts.task_prompt``) for each, predicts greedily with the base model (the adapter
disabled, so "before" really is the base) and with the adapter, scores both
(``selfguide.evaluation.metrics``) and writes ``eval/predictions.jsonl`` and ``eval/metrics.json``.
Adapters outside the workspace or trained on another base are refused by
:mod:`selfguide.models.adapters`, which loads them.

What it does not do: train, load adapters (``selfguide.models.adapters``), or decide the metric
(the task's ``metric`` field does).
Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfguide.errors import DatasetError
from selfguide.evaluation import compare, unlabeled
from selfguide.evaluation import metrics as M
from selfguide.runs.events import EventLog, Progress, delta_progress
from selfguide.runs.rundir import RunDir
from selfguide.settings.evaluation import EvalConfig
from selfguide.settings.fields import SamplingConfig, to_dict

# --------------------------------------------------------------------------- examples


def load_test_file(path: str | Path) -> list[dict]:
    """Held-out rows from a JSONL/CSV (columns ``input`` and ``output``/``outputs``) or a task
    file with test instances (NIv2 JSON). Returns ``[{"id", "input", "outputs"}]``."""
    from selfguide.task.formats import read_example_rows

    return read_example_rows(path, what="Test file")


def select_examples(rows: Sequence[dict], limit: int, seed: int) -> list[dict]:
    """All rows, or a seeded random sample of ``limit`` kept in the original order."""
    if not limit or limit >= len(rows):
        return list(rows)
    idx = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in idx]


def examples_for(run_dir: Path, task: Any, test_file: str | Path | None) -> list[dict]:
    if test_file:
        rows = load_test_file(test_file)
    else:
        rows = [{"id": ex.id or f"test-{i}", "input": ex.input, "outputs": list(ex.outputs)}
                for i, ex in enumerate(task.test)]
    if not rows and test_file:
        raise DatasetError(f"Test file {test_file} has no examples.",
                           hint="Add rows with 'input' and 'output' (JSONL/CSV), or NIv2 "
                                "'Instances'.")
    if not rows:
        raise DatasetError(f"No held-out examples for run {run_dir.name!r}.",
                           hint="Pass --test FILE (JSONL/CSV with input and output columns).")
    return rows


# --------------------------------------------------------------------------- scoring (pure)

def score_predictions(task: Any, examples: Sequence[dict], before: Sequence[str] | None,
                      after: Sequence[str], cfg: EvalConfig) -> tuple[list[dict], dict]:
    """Per-example rows and the metrics summary (pure: no model, no files)."""
    clean = (lambda s: M.first_line(s)) if cfg.first_line else (lambda s: s.strip())
    a = [clean(x) for x in after]
    b = [clean(x) for x in before] if before is not None else None
    refs = [ex["outputs"] for ex in examples]
    labels = tuple(task.labels) if task.is_classification else ()
    summ = M.summarize(task.metric, refs, b, a, labels=labels, bootstrap=cfg.bootstrap,
                       seed=cfg.seed)
    rows = []
    for i, ex in enumerate(examples):
        row = {"id": ex["id"], "input": ex["input"], "reference": ex["outputs"][0],
               "references": ex["outputs"], "after": a[i], "raw_after": after[i],
               "score_after": summ["scores_after"][i]}
        if b is not None:
            row.update(before=b[i], raw_before=before[i], score_before=summ["scores_before"][i],
                       changed=M.normalize(a[i]) != M.normalize(b[i]))
        rows.append(row)
    summary = {k: v for k, v in summ.items() if not k.startswith("scores_")}
    # predictions that loop on a phrase (the decode loop's guard should leave none)
    summary["degenerate"] = {"after": sum(M.repetitive(x) for x in after),
                             "before": sum(M.repetitive(x) for x in before)
                             if before is not None else None}
    return rows, summary


# --------------------------------------------------------------------------- models

def tuned_generator(run_dir: Path, *, precision: str = "auto", batch_size: int | None = None
                    ) -> tuple[Any, Any, Any, dict]:
    """The run's tuned model (base + adapter) as a generator: (generator, the base
    ``LoadedModel``, the tuned model, the adapter manifest)."""
    from selfguide import backends
    from selfguide.models import adapters
    from selfguide.models import loading as models

    man = adapters.read_adapter_manifest(adapters.adapter_dir_of(run_dir))
    lm, tuned = adapters.load_tuned(run_dir, precision=precision, manifest=man)
    gen = backends.get_generator("hf", loaded=models.LoadedModel(tuned, lm.tokenizer, None),
                                 batch_size=batch_size)
    return gen, lm, tuned, man


def build_generators(run_dir: Path, cfg: EvalConfig) -> tuple[Any, Any, bool, dict]:
    """(before generator, after generator, chat flag, adapter manifest) for a run."""
    from selfguide import backends
    from selfguide.models import adapters
    from selfguide.models import loading as models
    after, lm, tuned, man = tuned_generator(run_dir, precision=cfg.precision,
                                            batch_size=cfg.batch_size)
    if man.get("kind") == "full":
        from selfguide.settings.fields import replace

        base = models.load_model(replace(RunDir(run_dir).model_config(),
                                         precision=lm.info.precision))
        before = backends.get_generator("hf", loaded=models.LoadedModel(
            base.model, base.tokenizer, None), batch_size=cfg.batch_size)
    else:
        before = adapters.AdapterOff(after, tuned)
    return before, after, bool(man.get("chat", True)), man


# --------------------------------------------------------------------------- evaluate

def plan(run: RunDir, task: Any, test_file: str | Path | None = None,
         unlabeled_file: str | Path | None = None) -> tuple[str, list[dict], str]:
    """(mode, examples, where they come from) of an evaluation: ``"labelled"`` on a test
    file or the task's held-out rows, else ``"unlabeled"`` (issue 39: the user's inputs
    without labels, or the run's held-out synthetic inputs never trained on)."""
    if not unlabeled_file and (test_file or task.test):
        return ("labelled", examples_for(run.path, task, test_file),
                str(test_file) if test_file else "the task's held-out rows")
    rows, source = unlabeled.inputs_for(run, task, unlabeled_file)
    return "unlabeled", rows, source


def evaluate(run_dir: str | Path, cfg: EvalConfig, *, test_file: str | Path | None = None,
             unlabeled_file: str | Path | None = None,
             generators: tuple[Any, Any, bool] | None = None,
             events: EventLog | None = None, stream: Any = None) -> dict:
    """Predict before/after on held-out examples (or, without any, on inputs without
    labels), score or summarise, and write ``eval/``.

    ``generators`` = (before, after, chat) overrides model loading (tests pass fakes).
    """
    run = RunDir(Path(run_dir))
    events = events or EventLog(None)
    task = run.read_task(required=True)
    mode, examples, source = plan(run, task, test_file, unlabeled_file)
    examples = select_examples(examples, cfg.limit, cfg.seed)
    man: dict = {}
    inputs = {"adapter": run.adapter_fingerprint()}  # what this evaluation read (staleness)
    if generators is None:
        before_gen, after_gen, chat, man = build_generators(run.path, cfg)
    else:
        before_gen, after_gen, chat = generators
    t0 = time.monotonic()
    before, after = _predict_both(run, task, examples, cfg, (before_gen, after_gen, chat),
                                  events, stream)
    t2 = time.monotonic()
    if mode == "labelled":
        rows, summary = score_predictions(task, examples, before, after, cfg)
    else:
        rows, summary = summarize_unlabeled(task, examples, before, after, cfg)
    summary.update(_verdicts(run, task, summary))
    summary.update(mode=mode, source=source, task=task.name, task_type=task.task_type,
                   test_file=str(test_file or ""), config=to_dict(cfg),
                   seconds=round(t2 - t0, 2), adapter=man.get("train_config"),
                   inputs=inputs, chat=chat, created=time.time())
    run.write_evaluation(rows, summary)
    events.emit("eval_end", metric=summary["metric"], before=summary.get("before"),
                after=summary["after"], n=summary["n"], mode=mode)
    return summary


def _predict_both(run: RunDir, task: Any, examples: list[dict], cfg: EvalConfig,
                  gens: tuple[Any, Any, bool], events: EventLog,
                  stream: Any) -> tuple[list[str] | None, list[str]]:
    """(base answers or None, tuned answers), greedy or label-constrained."""
    from selfguide.task.prompts import task_prompt

    before_gen, after_gen, chat = gens
    prompts = [task_prompt(task, ex["input"]) for ex in examples]
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=cfg.max_new_tokens,
                              seed=cfg.seed, stop_loops=True)
    constrained = cfg.constrained and task.is_classification and bool(task.labels)
    if cfg.constrained and not constrained:
        events.emit("warning", message="constrained decoding needs a classification task with "
                                       "labels; generating free text instead")

    def predict(stage: str, gen: Any) -> list[str]:
        if constrained:
            return _pick_labels(stage, gen, prompts, list(task.labels), chat, events,
                                prefix=_trained_prefix(run) if gen is after_gen else "")
        return _predict(stage, gen, prompts, sampling, chat, events, stream)

    before = predict("eval-base", before_gen) if cfg.before else None
    return before, predict("eval-tuned", after_gen)


def summarize_unlabeled(task: Any, examples: Sequence[dict], before: Sequence[str] | None,
                        after: Sequence[str], cfg: EvalConfig) -> tuple[list[dict], dict]:
    """Per-input rows and the label-free summary (pure: no model, no files)."""
    clean = (lambda s: M.first_line(s)) if cfg.first_line else (lambda s: s.strip())
    a = [clean(x) for x in after]
    b = [clean(x) for x in before] if before is not None else None
    labels = tuple(task.labels) if task.is_classification else ()
    return (unlabeled.rows(examples, b, a, before, after, labels),
            unlabeled.summarize(task, b, a))


def _verdicts(run: RunDir, task: Any, summary: dict) -> dict:
    """The collapse verdict and the warnings of an evaluation (labelled or not)."""
    train_labels = _train_labels(run) if task.is_classification else None
    verdict = summary.get("collapse")
    if verdict is None and summary.get("mode") != "unlabeled" and task.is_classification:
        verdict = unlabeled.collapse_verdict(summary.get("predicted_labels_after") or {},
                                             summary.get("predicted_labels_before"),
                                             unlabeled.demo_label_counts(task))
    warning = compare.one_answer_warning(summary, train_labels)
    if warning and verdict is None:  # the base did not spread, no demos to say otherwise
        counts = {k: v for k, v in (summary.get("predicted_labels_after") or {}).items()
                  if k != M.OTHER}
        top = max(counts, key=counts.get)
        verdict = {"collapsed": True, "label": top, "count": counts[top],
                   "n": summary.get("n"), "share": counts[top] / max(1, summary.get("n") or 0),
                   "base_count": (summary.get("predicted_labels_before") or {}).get(top),
                   "spread_by": [], "demo_labels": {}, "message": warning}
    warnings = [warning] if warning else []
    if verdict and not warning:
        warnings.append(verdict["message"])
    return {"collapse": verdict, "warnings": warnings, "train_labels": train_labels}


def _train_labels(run: RunDir) -> dict[str, int] | None:
    """Label -> rows of the run's training data (None without a dataset)."""
    if not run.has_dataset():
        return None
    labels = (str(r.get("label") or r.get("output") or "").strip() for r in run.read_records())
    return dict(Counter(lab for lab in labels if lab))


def _trained_prefix(run: RunDir) -> str:
    """What training wrote before each label (``train_data.completion_prefix``)."""
    return str((run.read_train_metrics() or {}).get("completion_prefix") or "")


def _pick_labels(stage: str, gen: Any, prompts: list[str], labels: list[str], chat: bool,
                 events: EventLog, *, prefix: str = "") -> list[str]:
    """The label with the highest log-probability after each prompt (rank classification),
    each label scored as the model was trained to write it (``prefix`` + label)."""
    events.emit("log", message=f"{stage}: scoring {len(labels)} labels on {len(prompts)} "
                               "examples")
    scores = gen.score_options(prompts, [prefix + lab for lab in labels], chat=chat)
    return [labels[max(range(len(labels)), key=row.__getitem__)] for row in scores]


def _predict(stage: str, gen: Any, prompts: list[str], sampling: SamplingConfig, chat: bool,
             events: EventLog, stream: Any) -> list[str]:
    import sys

    prog = Progress(stage, len(prompts), events=events, unit="examples",
                    stream=stream if stream is not None else sys.stderr)
    outs = gen.generate(prompts, sampling, 1, chat=chat, progress=delta_progress(prog))
    prog.close()
    return [o[0] if o else "" for o in outs]
