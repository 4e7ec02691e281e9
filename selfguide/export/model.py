"""``export-model``: a run's tuned model as a folder people run elsewhere.

What it does: :func:`export_model` merges the run's adapter into its base (fp32, so the
merge itself loses nothing), then writes either ``<run>-<quant>.gguf`` + an Ollama
``Modelfile`` (:mod:`selfguide.export.gguf`, :mod:`selfguide.export.ollama`) or a bf16
safetensors checkpoint, and in both cases a model card ``README.md``
(:mod:`selfguide.export.cards`). Everything is written into a temporary sibling folder and renamed
into place, so the destination is complete or untouched; an existing non-empty destination
is refused unless ``force``, and a symlink or a file there is always refused
(:mod:`selfguide.runs.outpaths`). With
``verify`` the GGUF is loaded back with transformers and compared with the merged model on
the run's first training prompts (``export.json`` records the figures).

What it does not do: train, evaluate, or quantize to K-quants.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from selfguide.errors import OutputPathError, SelfGuideError
from selfguide.runs import store

FORMATS = ("gguf", "safetensors")


def check_destination(out: str | Path, *, force: bool = False) -> Path:
    """The absolute destination folder, by :mod:`selfguide.runs.outpaths`' rules (missing or
    empty; never a link, a file or a device); with ``force`` a non-empty real folder is
    accepted too, to be replaced whole (a re-export)."""
    from selfguide.runs import outpaths
    dest = Path(os.path.abspath(Path(out).expanduser()))
    if force and not dest.is_symlink() and dest.is_dir() and not dest.parent.is_symlink():
        return dest
    try:
        return outpaths.check_output_dir(dest)
    except OutputPathError as exc:
        if "not empty" in str(exc):
            raise OutputPathError(str(exc), hint="Choose a new folder, or pass --force to "
                                                 "replace it.") from None
        raise


def _swap_into_place(tmp: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def merged_model(run_dir: Path, precision: str = "fp32") -> tuple[Any, Any, dict]:
    """(merged model, tokenizer, adapter manifest) of a run."""
    from selfguide.models.adapters import adapter_dir_of, load_tuned, read_adapter_manifest

    man = read_adapter_manifest(adapter_dir_of(run_dir))
    lm, model = load_tuned(run_dir, precision=precision, manifest=man)
    if man.get("kind") != "full":
        model = model.merge_and_unload()
    model.eval()
    return model, lm.tokenizer, man


def source_gguf(run_dir: Path) -> Path | None:
    """The GGUF file the run's base model was converted from (embedded or a .gguf)."""
    from selfguide.models import ref as model_ref
    from selfguide.runs.rundir import RunDir

    try:
        src = model_ref.resolve_model(RunDir(run_dir).model_config().model)
    except SelfGuideError:
        return None
    return src.path if src.kind in (model_ref.EMBEDDED, "gguf") else None


def demo_texts(run_dir: Path, tokenizer: Any, chat: bool, n: int = 3) -> list[str]:
    """The first ``n`` training prompts, rendered as the model sees them (the task's demos
    when the run has no dataset; Self-Instruct runs have no task.json)."""
    from selfguide.backends.rendering import render_prompt
    from selfguide.errors import DatasetError
    from selfguide.runs.dataset import load_records

    try:
        prompts = [r["prompt"] for r in load_records(run_dir)[:n]]
    except DatasetError:
        from selfguide.runs.rundir import RunDir
        from selfguide.task.prompts import task_prompt

        task = RunDir(run_dir).read_task(required=True)
        prompts = [task_prompt(task, d.input) for d in list(task.demos)[:n]]
    return [render_prompt(tokenizer, p, chat) for p in prompts]


def export_model(run_dir: str | Path, out: str | Path, *, fmt: str = "gguf",
                 quant: str = "f16", force: bool = False, verify: bool = True) -> dict:
    """Write the run's merged model to ``out`` (see module docstring); return a summary."""
    from selfguide.export import cards
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise SelfGuideError(f"Unknown model format {fmt!r}; use one of {', '.join(FORMATS)}.")
    dest = check_destination(out, force=force)
    t0 = time.monotonic()
    model, tokenizer, man = merged_model(run_dir, "fp32" if fmt == "gguf" else "bf16")
    facts = cards.run_facts(run_dir)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    summary: dict = {"run": run_dir.name, "format": fmt, "path": str(dest)}
    try:
        if fmt == "gguf":
            summary.update(_write_gguf_folder(tmp, run_dir, model, tokenizer, man, facts,
                                              quant=quant, verify=verify))
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            files = sorted(p.name for p in tmp.iterdir())
            cards.write_card(tmp, cards.model_card(facts, files=files))
        summary["seconds"] = round(time.monotonic() - t0, 2)
        store.atomic_write_json(tmp / "export.json", summary)
        _swap_into_place(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _write_gguf_folder(tmp: Path, run_dir: Path, model: Any, tokenizer: Any, man: dict,
                       facts: dict, *, quant: str, verify: bool) -> dict:
    from selfguide.export import cards, ollama
    from selfguide.export import gguf as gguf_export
    from selfguide.models import loading as models
    name = f"{run_dir.name}-{quant}.gguf"
    lic = facts["base"].get("license")
    info = gguf_export.write_gguf(model, tokenizer, tmp / name, quant=quant,
                                  name=f"{run_dir.name} (selfguide)", license=lic,
                                  source_gguf=source_gguf(run_dir))
    chat = bool(man.get("chat", True))
    text, template = ollama.modelfile(name, tokenizer, chat=chat, run=run_dir.name,
                                      context_length=models.context_length(model, tokenizer),
                                      license=lic)
    prompts = demo_texts(run_dir, tokenizer, chat)
    raw = demo_texts(run_dir, tokenizer, chat=False)
    # Ollama must send the prompt the model trained on (a leading BOS aside: the GGUF's
    # add_bos_token decides it, and the template leaves it to the runtime)
    bos = tokenizer.bos_token or "\x00"
    for want, plain in zip(prompts, raw):
        sent = ollama.runtime_text(template, tokenizer, prompt=plain)
        if not sent.removeprefix(bos).startswith(want.removeprefix(bos)):
            raise SelfGuideError("The Ollama template does not reproduce the training prompt.",
                                 hint="Report this with the model's chat template.")
    (tmp / "Modelfile").write_text(text, encoding="utf-8")
    out = {"file": name, "quant": quant, "gguf": info, "modelfile": "Modelfile"}
    if verify:
        out["verify"] = gguf_export.verify_gguf(tmp / name, model, tokenizer, prompts)
    files = sorted(p.name for p in tmp.iterdir()) + ["export.json"]
    cards.write_card(tmp, cards.model_card(facts, files=sorted(files),
                                           gguf={"file": name, "quant": quant,
                                                 "modelfile": "Modelfile"}))
    return out
