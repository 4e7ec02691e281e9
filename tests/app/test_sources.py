"""Issue 36 on the Synthesize page: "use my inputs / mix / generate only" with an upload or a
path, the column picker and preview, the count each source gives, documents, and the job
argv that carries the options (parsed by the real CLI parser)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sgtest.pages import button

from studio.app import state

TEXTS = [f"Ticket {i}: the app crashes when I open screen {i}" for i in range(12)]


def _page(app, runs):
    runs.task("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    return at


def _captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def _argv_opts(argv):
    from selfguide.cli import build_parser

    return build_parser().parse_args(argv)


def test_upload_use_my_inputs_only(app, runs, workspace, job_recorder):
    at = _page(app, runs)
    at.radio(key=state.widget_key("synth", "source")).set_value("only").run()
    assert any("Upload a file" in i.value for i in at.info)
    assert button(at, "Start").disabled  # no file yet
    csv = pd.DataFrame({"id": range(12), "ticket": TEXTS + []}).to_csv(index=False).encode()
    at.file_uploader(key=state.widget_key("synth", "inputs_upload")).set_value(
        ("tickets.csv", csv, "text/csv")).run()
    assert not at.exception and not at.error
    picker = at.selectbox(key=state.widget_key("synth", "inputs_column"))
    assert list(picker.options) == ["id", "ticket"]
    assert picker.value == "ticket"  # the longest texts, not the id column
    picker.set_value("ticket").run()
    assert "Your file gives **12** inputs" in _captions(at)
    assert "nothing is generated" in _captions(at)
    assert TEXTS[0] in at.dataframe[0].value.to_string()  # the preview shows the column
    button(at, "Start").click().run()
    assert not at.exception and len(job_recorder.calls) == 1
    argv = job_recorder.calls[0][2]
    args = _argv_opts(argv)
    assert args.mix == "only" and args.column == "ticket"
    saved = workspace / "runs" / "r1" / "uploads"
    assert args.inputs.startswith(str(saved))
    assert Path(args.inputs).read_bytes() == csv


def test_path_mix_counts_and_documents(app, runs, tmp_path, job_recorder):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS[:5]) + "\n")
    (tmp_path / "kb.md").write_text("The app stores files in the cloud.\n\nScreens load slowly.")
    at = _page(app, runs)
    at.radio(key=state.widget_key("synth", "source")).set_value("fill").run()
    at.text_input(key=state.widget_key("synth", "inputs_path")).set_value(
        str(tmp_path / "in.txt")).run()
    assert not at.error
    caps = _captions(at)
    assert "Your file gives **5** inputs" in caps and "generated rounds add about" in caps
    at.text_input(key=state.widget_key("synth", "documents")).set_value(
        str(tmp_path / "kb.md")).run()
    assert "1 passage from 1 document(s)" in _captions(at)
    button(at, "Start").click().run()
    args = _argv_opts(job_recorder.calls[0][2])
    assert (args.inputs, args.mix, args.column) == (str(tmp_path / "in.txt"), "fill", "text")
    assert args.documents == [str(tmp_path / "kb.md")]


def test_generate_only_keeps_the_argv_and_bad_files_block_start(app, runs, tmp_path,
                                                                 job_recorder):
    at = _page(app, runs)
    button(at, "Start").click().run()
    argv = job_recorder.calls[0][2]
    assert "--inputs" not in argv and "--mix" not in argv and "--documents" not in argv
    at = _page(app, runs)
    at.radio(key=state.widget_key("synth", "source")).set_value("only").run()
    at.file_uploader(key=state.widget_key("synth", "inputs_upload")).set_value(
        ("bad.txt", b"\x00\x01binary", "text/plain")).run()
    assert any("Inputs file bad.txt: looks binary" in e.value for e in at.error)
    assert button(at, "Start").disabled
    assert not (runs.dir("r1") / "uploads").exists()  # a refused upload writes nothing
    at.text_input(key=state.widget_key("synth", "inputs_path")).set_value(
        str(tmp_path / "missing.csv"))
    at.file_uploader(key=state.widget_key("synth", "inputs_upload")).set_value(None).run()
    assert any("not found" in e.value for e in at.error)


def test_filter_page_shows_origin_and_filter_given(app, workspace, tmp_path):
    """A run from the user's inputs: the Filter page's table has the origin column, the
    Funnel tab counts each origin, and 'filter given' re-judges the given rows."""
    from sgtest.selfguide import TASK, reviews, script

    from selfguide.backends.fake import FakeGenerator
    from selfguide.methods.selfguide import pipeline as P
    from selfguide.methods.selfguide import sources
    from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
    from selfguide.runs import store

    (tmp_path / "in.txt").write_text("\n".join(reviews(20)) + "\nSure, here is one: dull\n")
    cfg = SynthesisConfig(rounds=1, prompts_per_round=4, n_samples=3, probe_inputs=4)
    run_dir = store.resolve_run_dir("g1", create=True)
    P.prepare_run(run_dir, TASK, cfg, FilterConfig(),
                  given=sources.read_given(tmp_path / "in.txt"), mix="only")
    P.synthesize(run_dir, TASK, cfg, FakeGenerator(script=script), stream=None)
    at = app(run="g1")
    at.switch_page("studio/pages/filter.py").run()
    assert not at.exception
    frames = [d.value for d in at.dataframe]
    assert any("origin" in f.columns and set(f["origin"]) == {"given"} for f in frames)
    by_origin = next(f for f in frames if list(f.columns)[:2] == ["origin", "candidates"])
    assert by_origin.set_index("origin").loc["given", "candidates"] == 21
    noisy = next(f for f in frames if "drop_reason" in f.columns and "origin" in f.columns)
    assert "noise" not in set(noisy["drop_reason"])
    at.checkbox(key=state.widget_key("filter.g1", "filter_given")).set_value(True).run()
    assert not at.exception
    frames = [d.value for d in at.dataframe]
    reasons = set().union(*(set(f["drop_reason"]) for f in frames if "drop_reason" in f))
    assert "noise" in reasons


def test_uploaded_documents_are_checked_then_saved(app, runs, job_recorder):
    at = _page(app, runs)
    up = at.file_uploader(key=state.widget_key("synth", "documents_upload"))
    up.set_value([("broken.pdf", b"%PDF-1.4 not really", "application/pdf")]).run()
    assert any("broken.pdf cannot be read as PDF" in e.value for e in at.error)
    assert button(at, "Start").disabled and not (runs.dir("r1") / "uploads").exists()
    at.file_uploader(key=state.widget_key("synth", "documents_upload")).set_value(
        [("kb.md", b"Refunds take five days.", "text/markdown"),
         ("faq.txt", b"Shipping is free.", "text/plain")]).run()
    assert not at.error and "2 passages from 2 document(s)" in _captions(at)
    button(at, "Start").click().run()
    args = _argv_opts(job_recorder.calls[0][2])
    folder = Path(args.documents[0])
    assert folder.parent == runs.dir("r1") / "uploads"
    assert sorted(p.name for p in folder.iterdir()) == ["faq.txt", "kb.md"]


def test_a_run_made_from_my_inputs_opens_with_them(app, runs, tmp_path, job_recorder):
    """Start on a run synthesized from the user's inputs resumes it with the same options."""
    from selfguide.runs import store

    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": TEXTS, "b": [t.upper() + " !!" for t in TEXTS]}).to_csv(path,
                                                                               index=False)
    d = runs.task("r1")
    cfg = store.read_json(d / "config.json")
    cfg["inputs"] = {"file": str(path), "column": "a", "mix": "only", "sha256": "x",
                     "rows": 12}
    store.atomic_write_json(d / "config.json", cfg)
    at = app(run="r1")
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert at.radio(key=state.widget_key("synth", "source")).value == "only"
    assert at.selectbox(key=state.widget_key("synth", "inputs_column")).value == "a"
    button(at, "Start").click().run()
    args = _argv_opts(job_recorder.calls[0][2])
    assert (args.inputs, args.column, args.mix) == (str(path), "a", "only")


# --------------------------------------------------------------------------- Task page
def _task_page(app, runs):
    runs.task("r1")
    at = app(run="r1")
    at.switch_page("studio/pages/task.py").run()
    assert not at.exception, at.exception
    return at


def test_task_page_takes_my_inputs_and_synthesize_starts_from_them(app, runs, workspace,
                                                                   tmp_path, job_recorder):
    at = _task_page(app, runs)
    form = "intake.r1"
    csv = pd.DataFrame({"id": range(12), "ticket": TEXTS}).to_csv(index=False).encode()
    at.file_uploader(key=state.widget_key(form, "inputs_upload")).set_value(
        ("tickets.csv", csv, "text/csv")).run()
    assert not at.exception and not at.error
    picker = at.selectbox(key=state.widget_key(form, "inputs_column"))
    assert list(picker.options) == ["id", "ticket"] and picker.value == "ticket"
    assert "Your file gives **12** inputs." in _captions(at)
    assert any(TEXTS[0] in d.value.to_string() for d in at.dataframe)  # the preview
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.txt").write_text("The app opens screens. " * 40)
    at.text_input(key=state.widget_key(form, "documents")).set_value(str(docs)).run()
    button(at, "Use these for this run").click().run()
    assert not at.exception
    from selfguide.runs.rundir import RunDir

    intake = RunDir.named("r1").read_intake()
    assert intake["column"] == "ticket" and intake["documents"] == str(docs)
    assert Path(intake["file"]).read_bytes() == csv  # the upload, saved in the run
    assert Path(intake["file"]).is_relative_to(workspace / "runs" / "r1" / "uploads")
    assert any("Recorded for run 'r1'" in s.value for s in at.success)

    # The Synthesize page offers them: mix by default, the file, column and documents set.
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    assert at.radio(key=state.widget_key("synth", "source")).value == "fill"
    assert at.selectbox(key=state.widget_key("synth", "inputs_column")).value == "ticket"
    assert "Your file gives **12** inputs" in _captions(at)
    button(at, "Start").click().run()
    args = _argv_opts(job_recorder.calls[0][2])
    assert (args.inputs, args.column, args.mix) == (intake["file"], "ticket", "fill")
    assert [str(p) for p in args.documents] == [str(docs)]


def test_task_page_intake_errors_write_nothing_and_forget(app, runs, tmp_path):
    from selfguide.runs.rundir import RunDir

    at = _task_page(app, runs)
    form = "intake.r1"
    at.text_input(key=state.widget_key(form, "inputs_path")).set_value(
        str(tmp_path / "missing.csv")).run()
    assert not at.exception
    assert any("not found" in e.value for e in at.error)
    assert RunDir.named("r1").read_intake() == {}
    good = tmp_path / "t.txt"
    good.write_text("\n".join(TEXTS))
    at.text_input(key=state.widget_key(form, "inputs_path")).set_value(str(good)).run()
    button(at, "Use these for this run").click().run()
    assert RunDir.named("r1").read_intake() == {"file": str(good), "column": "text"}
    button(at, "Forget them").click().run()
    assert not at.exception and RunDir.named("r1").read_intake() == {}


def test_task_page_intake_needs_a_saved_task(app):
    at = app()
    at.switch_page("studio/pages/task.py").run()
    assert not at.exception
    assert any("Save the task to a run first" in i.value for i in at.info)


def test_task_page_intake_of_a_synthesized_run_says_when_it_applies(app, runs):
    from selfguide.runs.rundir import RunDir

    runs.task("r1")
    RunDir.named("r1").set_stage("synthesize", "done")
    at = app(run="r1")
    at.switch_page("studio/pages/task.py").run()
    assert not at.exception
    assert "This run has been synthesized from generated inputs" in _captions(at)
