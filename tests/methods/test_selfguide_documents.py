"""Issue 36: the user's documents as stage-1 context -- reading (txt/md/pdf/docx), chunking,
clear errors, and stage-1 prompts grounded in a sampled passage recorded per row."""

from __future__ import annotations

import pytest
from sgtest.selfguide import TASK, script

from selfguide import cli
from selfguide.backends.fake import FakeGenerator
from selfguide.errors import DatasetError
from selfguide.methods.selfguide import documents as D
from selfguide.methods.selfguide import pipeline as P
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.runs import store


def make_pdf(path, text: str) -> None:
    """A one-page PDF whose page shows ``text`` (a valid xref table, no extra packages)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
             b"/Resources << /Font << /F1 5 0 R >> >> >>"),
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1,
                                                                             xref)
    path.write_bytes(bytes(out))


def test_chunk_keeps_paragraphs_and_cuts_long_ones():
    text = "First para one.\n\nSecond para two.\n\n" + " ".join(["word."] * 250)
    parts = D.chunk(text, words=100)
    assert parts[0].startswith("First para one.\nSecond para two.")
    assert all(len(p.split()) <= 100 for p in parts) and len(parts) >= 3
    assert sum(len(p.split()) for p in parts) == 6 + 250


def test_reads_txt_md_pdf_docx(tmp_path):
    docx = pytest.importorskip("docx")
    pytest.importorskip("pypdf")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Refunds take five days.\n\nShipping is free over 50 EUR.")
    (folder / "b.md").write_text("# Returns\n\nReturn within 30 days.")
    make_pdf(folder / "c.pdf", "Warranty lasts two years")
    d = docx.Document()
    d.add_paragraph("Support answers within one day.")
    d.save(str(folder / "d.docx"))
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    docs = D.read_documents([folder])
    text = " ".join(p["text"] for p in docs.passages)
    for needle in ("Refunds take five days", "Return within 30 days",
                   "Warranty lasts two years", "Support answers within one day"):
        assert needle in text
    assert {p["file"] for p in docs.passages} == {"a.txt", "b.md", "c.pdf", "d.docx"}
    assert docs.settings()["passages"] == len(docs.passages)
    assert D.read_documents([folder]).sha256 == docs.sha256


def test_bad_documents_name_the_file_and_reason(tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(DatasetError, match=r"broken\.pdf cannot be read as PDF"):
        D.read_documents([tmp_path / "broken.pdf"])
    (tmp_path / "x.docx").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"x\.docx cannot be read as DOCX"):
        D.read_documents([tmp_path / "x.docx"])
    (tmp_path / "bin.txt").write_bytes(b"\x00abc")
    with pytest.raises(DatasetError, match=r"bin\.txt looks binary"):
        D.read_documents([tmp_path / "bin.txt"])
    (tmp_path / "e").mkdir()
    with pytest.raises(DatasetError, match="No .txt, .md"):
        D.read_documents([tmp_path / "e"])
    (tmp_path / "z.csv").write_text("a")
    with pytest.raises(DatasetError, match=r"z\.csv: unsupported type"):
        D.read_documents([tmp_path / "broken.pdf", tmp_path / "z.csv"])


def test_stage_one_prompts_show_a_passage_recorded_per_row(tmp_path):
    (tmp_path / "kb.md").write_text("Our cinema shows silent films on Mondays.\n\n"
                                    "Tickets for the late show cost less.")
    docs = D.read_documents([tmp_path / "kb.md"])
    cfg = SynthesisConfig(rounds=2, prompts_per_round=4, n_samples=2, annotate_batch=8,
                          probe_inputs=4)
    run_dir = tmp_path / "run"
    P.prepare_run(run_dir, TASK, cfg, FilterConfig(), documents=docs)
    gen = FakeGenerator(script=script)
    P.synthesize(run_dir, TASK, cfg, gen, stream=None)
    stage1 = [p for c in gen.calls for p in c.prompts if p.endswith("Input:")
              and "Background text:" in p]
    assert len(stage1) == 8 and all("silent films" in p for p in stage1)
    rows = store.read_jsonl(run_dir / "inputs.jsonl")
    assert all(r["passage"] == docs.passages[0]["text"] and r["passage_id"] for r in rows)
    assert store.read_json(run_dir / "config.json")["documents"]["sha256"] == docs.sha256
    import pandas as pd

    assert set(pd.read_parquet(run_dir / "candidates.parquet")["passage"]) == {
        docs.passages[0]["text"]}


def test_cli_documents_option(workspace, tmp_path, monkeypatch, capsys):
    import json

    from selfguide import backends

    monkeypatch.setattr(backends, "get_generator",
                        lambda name, **kw: FakeGenerator(script=script))
    task_file = tmp_path / "sent.json"
    d = TASK.to_dict()
    d["examples"] = d.pop("demos")
    task_file.write_text(json.dumps(d))
    (tmp_path / "kb.txt").write_text("Films about the sea.")
    assert cli.main(["synthesize", str(task_file), "--run", "d1", "--rounds", "2",
                     "--prompts-per-round", "4", "--n-samples", "2",
                     "--documents", str(tmp_path / "kb.txt")]) == 0, capsys.readouterr().err
    assert (workspace / "runs" / "d1" / "passages.jsonl").is_file()
    capsys.readouterr()
    assert cli.main(["synthesize", str(task_file), "--run", "d2",
                     "--documents", str(tmp_path / "missing")]) == 2
    assert "missing not found" in capsys.readouterr().err


def test_with_passage_puts_the_passage_right_before_the_open_input():
    from selfguide.methods.selfguide.prompts import input_generation_prompt, with_passage

    p = input_generation_prompt(TASK, [], "positive", form="by_label")
    assert with_passage(p, TASK, "") == p
    g = with_passage(p, TASK, "  Silent films on Mondays. ")
    body, rest = g.split("\n\nBackground text:\n", 1)
    assert body == p[:p.rindex("Input:")].rstrip()  # instruction and every demo first
    assert rest == ('"""\nSilent films on Mondays.\n"""\n'
                    "The next input is about the background text.\nInput:")


def test_passage_start_takes_the_first_field_from_the_passage():
    import random

    from selfguide.methods.selfguide.prompts import passage_start
    from selfguide.task.structure import infer_template

    demos = [("Premise: The museum opens at nine and closes at five on weekdays. <sep> "
              "Hypothesis: The museum opens early."),
             ("Premise: Anna sold her bike to buy a train pass for the winter months. <sep> "
              "Hypothesis: Anna walks."),
             ("Premise: The river floods every spring after the snow melts in the hills. <sep> "
              "Hypothesis: It never floods.")]
    template = infer_template(demos)
    assert template.markers == ("Premise:", "<sep>", "Hypothesis:")
    assert template.field(demos[1], 0) == ("Anna sold her bike to buy a train pass for "
                                               "the winter months.")
    passage = ("Short one. The old mill by the lake was built in 1820 and ground flour for "
               "the village. It closed in 1950.\nA second paragraph here.")
    starts = {passage_start(template, demos, passage, random.Random(s)) for s in range(20)}
    for start in starts:  # whole sentences of one paragraph, then the open next field
        assert start.startswith("Premise: ") and start.endswith(" <sep> Hypothesis:")
        field = start[len("Premise: "):-len(" <sep> Hypothesis:")]
        assert field in passage and field[-1] in ".!?"
    assert any("old mill" in s for s in starts)
    # a form without an opening field (or no demos' form): the prompt shows the passage
    assert passage_start(infer_template([d.input for d in TASK.demos]), [d.input for d in
                         TASK.demos], passage, random.Random(0)) == ""
    assert passage_start(template, demos, "", random.Random(0)) == ""


def test_passage_start_prefers_a_sentence_that_fits_and_caps_one_that_does_not():
    import random

    from selfguide.methods.selfguide.prompts import passage_start
    from selfguide.task.structure import infer_template

    demos = ["claim: Cats are good.\n perspective: They purr.",
             "claim: Rain is wet.\n perspective: It falls."]
    template = infer_template(demos)  # first fields of 3 words: at most 6 taken
    long = " ".join(["word"] * 30) + "."
    got = {passage_start(template, demos, f"{long} Tea is hot.", random.Random(s))
           for s in range(10)}
    assert got == {"claim: Tea is hot.\n perspective:"}
    cut = passage_start(template, demos, long, random.Random(0))
    assert cut == "claim: " + " ".join(["word"] * 6) + "\n perspective:"


def test_passage_for_uses_every_passage_before_repeating_one():
    passages = [{"id": f"p{i}", "text": str(i)} for i in range(7)]
    picked = [D.passage_for(passages, 3, rnd, p, 4)["id"] for rnd in range(2) for p in range(4)]
    assert len(set(picked[:7])) == 7 and picked[7] == picked[0]
    assert picked == [D.passage_for(passages, 3, rnd, p, 4)["id"]  # a resume: the same
                      for rnd in range(2) for p in range(4)]
    assert D.passage_for([], 3, 0, 0, 4) is None


def test_stage_one_writes_the_first_field_from_the_passage(tmp_path):
    from sgtest.tasks import NLI

    from selfguide.task.spec import TaskSpec

    task = TaskSpec.from_dict(NLI)
    (tmp_path / "kb.md").write_text("The lamp is red.\n\nBoats leave at dawn.")
    docs = D.read_documents([tmp_path / "kb.md"])
    cfg = SynthesisConfig(rounds=1, prompts_per_round=4, n_samples=2, annotate_batch=8,
                          probe_inputs=4)
    run_dir = tmp_path / "run"
    P.prepare_run(run_dir, task, cfg, FilterConfig(), documents=docs)
    gen = FakeGenerator(script=lambda prompt, s, i: " The sea is calm.")
    P.synthesize(run_dir, task, cfg, gen, stream=None)
    rows = store.read_jsonl(run_dir / "inputs.jsonl")
    assert len(rows) == 4
    premises = {r["input"].split(" \n ")[0] for r in rows}
    assert premises == {"Premise: The lamp is red.", "Premise: Boats leave at dawn."}
    for r in rows:  # the premise is a sentence of the passage; the model wrote the rest
        assert r["input"].endswith(" \n Hypothesis: The sea is calm.")
        assert r["input"].split(" \n ")[0][len("Premise: "):] in r["passage"]
    stage1 = [p for c in gen.calls for p in c.prompts if "Hypothesis:" in p[-12:]]
    assert stage1 and not any("Background text:" in p for p in stage1)
