"""One run summary (issue 32): ``selfguide runs`` and the studio's Runs table read the
same :func:`selfguide.runs.summary.summarize`."""

from __future__ import annotations

from sgtest.training import make_run

from selfguide.runs.summary import summarize


def test_the_cli_and_the_runs_table_show_one_summary(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    monkeypatch.setenv("SELFGUIDE_WORKSPACE", str(ws))
    run = make_run(ws, tmp_path / "model", name="r1", n=6)
    s = summarize(run)
    assert (s.name, s.task, s.model, s.kept, s.train_rows) == ("r1", "sent",
                                                               str(tmp_path / "model"), None, 6)
    from selfguide.commands.runs import summarize as cli_row
    from studio.views.runs import summary as table_row

    cli, row = cli_row(run), table_row("r1")
    assert (cli["name"], cli["task"], cli["kept"]) == ("r1", "sent", None)
    assert (row["run"], row["task"], row["model"], row["kept"]) == (
        "r1", "sent", str(tmp_path / "model"), 6)
