"""The adapter's home: save, read, check and load a run's finetuned weights, and merge them.

What it does: writes ``train/adapter`` as safetensors with ``selfguide_adapter.json``
(base fingerprint, model reference, chat flag, kind ``lora``/``full``), replacing the
folder atomically (:func:`save_adapter`); reads and checks that manifest and the weight
headers, refusing pickle adapters (:func:`read_adapter_manifest`); refuses adapters outside
the workspace (:func:`adapter_dir_of`) or trained on another base (:func:`check_fingerprint`);
loads base + adapter (:func:`load_tuned`), offers the base with the adapter disabled
(:class:`AdapterOff`) and writes base + adapter merged into one bf16 model (:func:`merge`).

What it does not do: train (:mod:`selfguide.training.trainer`) or evaluate
(:mod:`selfguide.evaluation.predict`). Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfguide.errors import AdapterMismatch, ModelError, SelfGuideError
from selfguide.runs import store
from selfguide.runs.rundir import ADAPTER_MANIFEST, RunDir
from selfguide.settings.fields import SamplingConfig


def save_adapter(model: Any, tokenizer: Any, adapter_dir: Path, manifest: dict, *,
                 full: bool = False, state_dict: dict | None = None) -> None:
    """Write the adapter (or full model) as safetensors + manifest, replacing atomically
    (``state_dict``: weights gathered elsewhere, e.g. from FSDP shards)."""
    run = RunDir(Path(adapter_dir).parent.parent)  # <run>/train/adapter
    run.recover_adapter()
    tmp = run.adapter_staging_dir
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    extra = {"state_dict": state_dict} if state_dict is not None else {}
    model.save_pretrained(str(tmp), safe_serialization=True, **extra)
    if full:
        tokenizer.save_pretrained(str(tmp))
    if not list(tmp.glob("*.safetensors")):
        raise SelfGuideError(f"Saving to {tmp} produced no safetensors file.")
    run.write_adapter_manifest(tmp, {**manifest, "kind": "full" if full else "lora"})
    run.install_adapter(tmp)


def read_adapter_manifest(adapter_dir: str | Path) -> dict:
    """The ``selfguide_adapter.json`` of an adapter dir (``ModelError`` if missing)."""
    adapter_dir = Path(adapter_dir)
    run = RunDir(adapter_dir.parent.parent)  # <run>/train/adapter
    run.recover_adapter()
    man = run.read_adapter_manifest()
    if not man:
        raise ModelError(f"{adapter_dir} has no {ADAPTER_MANIFEST}.",
                         hint="Train it with 'selfguide train --run NAME'.")
    if not list(adapter_dir.glob("*.safetensors")):
        raise ModelError(f"{adapter_dir} has no safetensors weights; pickle files are refused.")
    if man.get("kind") != "full" and not (adapter_dir / "adapter_model.safetensors").is_file():
        # PEFT falls back to adapter_model.bin (torch.load) when this file is missing, even
        # if other *.safetensors files are present (reliability: tests/reliability).
        raise ModelError(f"{adapter_dir} has no adapter_model.safetensors; pickle adapters "
                         "are refused.", hint="Retrain the adapter with 'selfguide train'.")
    if man.get("kind") != "full":
        run.read_adapter_config()  # a damaged adapter_config.json: RunFileError, not PEFT's
    from selfguide.models.ref import check_safetensors_file

    for w in sorted(adapter_dir.glob("*.safetensors")):
        check_safetensors_file(w, "adapter")
    return man


def adapter_dir_of(run_dir: Path) -> Path:
    """The run's adapter directory, refused if it resolves outside the workspace."""
    run_dir = Path(run_dir)
    d = RunDir(run_dir).adapter_dir
    ws = store.workspace_dir()
    if not d.resolve().is_relative_to(ws):
        raise ModelError(f"Adapter {d} resolves outside the workspace {ws}; refusing it.")
    RunDir(run_dir).recover_adapter()  # a crash mid-swap left .adapter.old
    if not d.is_dir():
        raise ModelError(f"Run {run_dir.name!r} has no trained adapter.",
                         hint=f"Run 'selfguide train --run {run_dir.name}' first.")
    return d


def load_tuned(run_dir: Path, *, precision: str = "auto",
               manifest: dict | None = None) -> tuple[Any, Any]:
    """Load the base (``LoadedModel``) and the tuned model (PeftModel, or the full model).

    ``precision`` 'auto' = an unquantized base in bf16 where it is native, else fp32.
    Raises ``AdapterMismatch`` if the adapter was trained on a different base.
    """
    from selfguide.models import hardware, libs
    from selfguide.models import loading as models
    from selfguide.settings.fields import replace

    adir = adapter_dir_of(run_dir)
    man = manifest or read_adapter_manifest(adir)
    mcfg = RunDir(run_dir).model_config()
    if precision == "auto":
        precision = hardware.dense_precision(models.pick_device(mcfg.device))
    mcfg = replace(mcfg, precision=precision)
    if man.get("kind") == "full":
        from selfguide.settings.fields import ModelConfig

        tuned = models.load_model(ModelConfig(model=str(adir), precision=precision,
                                              device=mcfg.device, chat=mcfg.chat))
        check_fingerprint(man, fingerprint_of(mcfg))
        return tuned, tuned.model
    lm = models.load_model(mcfg)
    check_fingerprint(man, lm.info.fingerprint)
    libs.import_bitsandbytes()  # before peft imports it, without the hub-kernel fetch
    from peft import PeftModel

    model = PeftModel.from_pretrained(lm.model, str(adir), is_trainable=False,
                                      use_safetensors=True)
    model.eval()
    return lm, model


def fingerprint_of(mcfg: Any) -> str | None:
    """The base fingerprint of ``mcfg.model`` without loading it (None for a hub id)."""
    from selfguide.models import convert as model_convert
    from selfguide.models import loading as models
    from selfguide.models import ref as model_ref
    src = model_ref.resolve_model(mcfg.model)
    path = src.path if src.path is not None else (
        model_convert.embedded_checkpoint() if src.kind == "embedded" else None)
    return models.base_fingerprint(path) if path is not None else None


def check_fingerprint(manifest: dict, fingerprint: str | None) -> None:
    want = manifest.get("base_fingerprint")
    if want and fingerprint and want != fingerprint:
        raise AdapterMismatch(
            f"The adapter was trained on a different base model (fingerprint {want[:12]}, "
            f"loaded {fingerprint[:12]}, model {manifest.get('model')!r}).",
            hint="Evaluate with the base model the adapter was trained on, or retrain.")


class AdapterOff:
    """A generator view of a PeftModel with the adapter disabled (the true base model)."""

    def __init__(self, gen: Any, peft_model: Any):
        self.gen, self.peft_model, self.name = gen, peft_model, "base"

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig, n: int = 1,
                 **kw: Any) -> list[list[str]]:
        with self.peft_model.disable_adapter():
            return self.gen.generate(prompts, sampling, n, **kw)

    def score_options(self, prompts: Sequence[str], options: Sequence[str],
                      **kw: Any) -> list[list[float]]:
        with self.peft_model.disable_adapter():
            return self.gen.score_options(prompts, options, **kw)


def merge(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write base + adapter merged into one bf16 model (safetensors + tokenizer).

    ``out_dir`` must be a new or empty directory (:func:`selfguide.runs.outpaths.check_output_dir`,
    checked before the model is loaded); the model is built in a hidden sibling and moved
    into place, so a failure leaves nothing at ``out_dir``.
    """
    from selfguide.runs import outpaths
    run_dir = Path(run_dir)
    out_dir = outpaths.check_output_dir(out_dir)
    man = read_adapter_manifest(RunDir(run_dir).adapter_dir)
    lm, model = load_tuned(run_dir, precision="bf16", manifest=man)
    if man.get("kind") != "full":
        model = model.merge_and_unload()
    tmp = outpaths.staging_dir(out_dir)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        lm.tokenizer.save_pretrained(str(tmp))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise store._storage_error(exc, out_dir) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outpaths.publish_dir(tmp, out_dir)
