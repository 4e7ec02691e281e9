"""The run directory: one object that owns the layout of ``<workspace>/runs/<name>/``.

What it does: names every file of a run once (``RunDir.task_file``, ``.adapter_dir``, ...)
and is the only reader and writer of them (``tests/test_run_files_owner.py``): every file is
checked against its typed schema (:mod:`selfguide.runs.schema`: a damaged file is one
``RunFileError`` naming run, file, field and fix; a missing one is "not yet"; whole-file
JSONL is read strictly with its row count checked), whole files are written atomically via
:mod:`selfguide.runs.store`, append-only logs appended under a lock and read leniently at
the tail. :meth:`RunDir.check_inputs` checks all a stage reads before it writes. Every
module that touches a run goes through it, so the layout below is the one place to look.

What it does not do: decide what a stage writes (the methods, training and evaluation do),
validate run names or resolve the workspace (``store.resolve_run_dir``; :meth:`RunDir.named`
wraps it), or run jobs (``selfguide.jobs``).

Layout::

    manifest.json          stages: {name: {status, config_hash, updated, ...}}, method, task
    task.json              the TaskSpec (SELF-GUIDE; Self-Instruct runs have none)
    config.json            {"method", "model", "synthesis", "filters", "seed", "versions"}
    overrides.json         manual decisions {candidate_id: true|false} (keep / drop), or
                           {candidate_id: {keep?, output?, label?, by, at, original}} for a
                           row repaired by hand (the raw candidates are never changed)
    inputs.jsonl           SELF-GUIDE stage 1 candidates, appended per finished batch
    intake.json            {"file", "column", "documents"}: the user's own inputs (Task page)
    annotations.jsonl      SELF-GUIDE stage 2 samples/votes per candidate id
    labelling.json         SELF-GUIDE: the evidence behind the labelling protocol/strategy
    selfinstruct.jsonl     Self-Instruct: one committed line per round
    seed_tasks.jsonl       Self-Instruct: the seed pool used
    candidates.parquet     the joined candidates table (rewritten atomically)
    dataset/               train.jsonl, val.jsonl (optional), report.json
    jobs/<stage>/          status.json, events.jsonl, log.txt of the latest job per stage
    train/                 adapter/, checkpoints/, train_config.json, metrics.json, events
    eval/                  predictions.jsonl, metrics.json
    export/                exports (selfguide export's default destination; model-gguf/ from the studio)
    rounds/<k>/            the files round k made, kept when round k+1 re-answered the inputs
                           with round k's tuned model (:mod:`selfguide.runs.rounds`)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide.errors import DatasetError, RunFileError, SelfGuideError, TaskError
from selfguide.runs import schema, store, swap

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.settings.fields import ModelConfig
    from selfguide.task.spec import TaskSpec

SPLITS = ("train", "val")
ADAPTER_MANIFEST = "selfguide_adapter.json"  # written by training beside the weights
REPAIR_FIELDS = ("output", "label")  # what a manual repair may correct in a candidate row


class _At:
    """One path of the run's layout: ``run.<name>`` is ``run.path / rel``."""

    def __init__(self, rel: str) -> None:
        self.rel = rel

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Path:
        return self if run is None else run.path / self.rel  # type: ignore[return-value]

    def __set__(self, run: RunDir, value: object) -> None:  # read-only, as a property is
        raise AttributeError(f"a run's layout is fixed: {self.rel}")


class RunDir(os.PathLike):
    """A run's folder. ``RunDir(path)`` wraps an existing path; :meth:`named` resolves a
    run name inside the workspace. It is ``os.PathLike``, so ``open(run)``, ``Path(run)``
    and ``run / "file"`` work where a plain path did."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path.path if isinstance(path, RunDir) else path)

    @classmethod
    def named(cls, name: str, workspace: str | os.PathLike | None = None, *,
              create: bool = False, must_exist: bool = False) -> RunDir:
        """The run ``name`` in the workspace (``InvalidRunName`` / ``RunNotFound``)."""
        return cls(store.resolve_run_dir(name, workspace, create=create,
                                         must_exist=must_exist))

    # ----------------------------------------------------------------- path protocol
    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunDir):
            return self.path == other.path
        return isinstance(other, (str, os.PathLike)) and self.path == Path(other)

    def __hash__(self) -> int:
        return hash(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.path.is_dir()

    def mkdir(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # ----------------------------------------------------------------- the layout
    manifest_file = _At("manifest.json")
    task_file = _At("task.json")
    config_file = _At("config.json")
    overrides_file = _At("overrides.json")
    inputs_file = _At("inputs.jsonl")
    intake_file = _At("intake.json")  # the user's inputs/documents, from the Task page
    annotations_file = _At("annotations.jsonl")
    labelling_file = _At("labelling.json")
    rounds_file = _At("selfinstruct.jsonl")  # Self-Instruct's per-round log
    seed_tasks_file = _At("seed_tasks.jsonl")
    candidates_file = _At("candidates.parquet")
    dataset_dir = _At("dataset")
    report_file = _At("dataset/report.json")
    train_dir = _At("train")
    adapter_dir = _At("train/adapter")
    adapter_manifest_file = _At("train/adapter/" + ADAPTER_MANIFEST)
    checkpoints_dir = _At("train/checkpoints")
    tensorboard_dir = _At("train/tb")  # TensorBoard event files (tensorboard --logdir this)
    train_config_file = _At("train/train_config.json")
    train_metrics_file = _At("train/metrics.json")  # steps, train loss, tokens/s, wall time
    eval_dir = _At("eval")
    predictions_file = _At("eval/predictions.jsonl")
    metrics_file = _At("eval/metrics.json")
    export_dir = _At("export")  # exports' default place (selfguide export, export-model)
    gguf_dir = _At("export/model-gguf")  # the studio's GGUF export (export-model --out)
    rounds_dir = _At("rounds")  # earlier rounds' files (selfguide.runs.rounds)
    jobs_dir = _At("jobs")

    def records_file(self, split: str = "train") -> Path:
        if split not in SPLITS:
            raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return self.dataset_dir / f"{split}.jsonl"

    def job_dir(self, stage: str) -> Path:
        return self.jobs_dir / stage

    # ----------------------------------------------------------------- task / config
    def read_task(self, *, required: bool = False) -> TaskSpec | None:
        """The run's ``TaskSpec``; ``None`` when there is none (or ``TaskError`` if
        ``required``)."""
        from selfguide.task.spec import TaskSpec

        data = schema.load(self.path, schema.TASK)
        if data:
            try:
                return TaskSpec.from_dict(data)
            except TaskError as exc:
                raise schema.error(self.path, schema.TASK, f"is not a valid task "
                                   f"({exc.message})") from exc
        if required:
            raise TaskError(f"Run {self.name!r} has no task.",
                            hint="Create the run with 'selfguide synthesize TASK --run NAME' "
                                 "or save a task on the studio's Task page.")
        return None

    def read_task_dict(self) -> dict | None:
        """``task.json`` as saved (an object; ``None`` when missing), for an editor that
        validates it itself."""
        return schema.load(self.path, schema.TASK)

    def write_task(self, task: TaskSpec) -> None:
        store.atomic_write_json(self.task_file, task.to_dict())

    def read_config(self) -> dict:
        """``config.json`` as a dict (``{}`` when missing; ``RunFileError`` when it is not
        an object or a field has the wrong type)."""
        return schema.load(self.path, schema.CONFIG) or {}

    def model_config(self) -> ModelConfig:
        """The ``ModelConfig`` recorded in ``config.json`` (defaults if the file or its
        ``model`` is absent; ``RunFileError`` if the recorded one is not valid)."""
        from selfguide.settings.fields import ModelConfig, from_dict

        try:
            return from_dict(ModelConfig, self.read_config().get("model") or {}, strict=False)
        except (SelfGuideError, TypeError, ValueError) as exc:
            if isinstance(exc, RunFileError):
                raise
            msg = getattr(exc, "message", None) or str(exc)
            raise schema.error(self.path, schema.CONFIG,
                               f"field 'model' is not a valid model setting ({msg})") from exc

    def write_config(self, config: dict) -> None:
        store.atomic_write_json(self.config_file, config)

    def read_config_raw(self) -> Any:
        """``config.json`` exactly as parsed (``None`` when missing), for a writer that
        replaces it whatever it holds (``CorruptFile`` only when it is not JSON)."""
        return store.read_json(self.config_file, default=None)

    def update_config(self, **fields: Any) -> dict:
        """Merge ``fields`` into ``config.json`` (which must be an object) and write it."""
        cfg = {**self.read_config(), **fields}
        self.write_config(cfg)
        return cfg

    def read_intake(self) -> dict:
        """``intake.json``: the inputs file, column and documents the Task page took in for
        this run (``{}`` when none)."""
        return schema.load(self.path, schema.INTAKE) or {}

    def write_intake(self, intake: dict) -> None:
        """Record (``{}``: forget) the user's inputs and documents for this run."""
        store.atomic_write_json(self.intake_file, {
            k: str(v) for k, v in intake.items() if k in schema.INTAKE.fields and v})

    @property
    def method(self) -> str | None:
        """The synthesis method that made (or will make) this run; ``None`` when its files
        name none (``selfguide.methods.for_run`` then takes the default method)."""
        cfg = self.read_config()
        name = cfg.get("method") or self.read_manifest().get("method")
        return str(name) if name else None

    def saved_filters(self) -> dict:
        """The filter settings the run was synthesized or last filtered with."""
        f = self.read_config().get("filters")
        return dict(f) if isinstance(f, dict) else {}

    def check_inputs(self, stage: str) -> None:
        """Read and check every run file ``stage`` reads (``schema.STAGE_READS``) before it
        writes anything: a damaged one is a ``RunFileError`` naming it, and nothing of the
        run has changed yet."""
        reads = schema.STAGE_READS.get(stage, ())
        for spec in reads:
            if spec is schema.TASK:
                self.read_task()
            elif spec is schema.CONFIG:
                self.model_config()
            elif spec in (schema.TRAIN_RECORDS, schema.VAL_RECORDS):
                if self.has_dataset():
                    self.read_records("train" if spec is schema.TRAIN_RECORDS else "val")
            else:
                schema.load(self.path, spec)

    # ----------------------------------------------------------------- manifest
    def read_manifest(self) -> dict:
        return store.read_manifest(self.path)

    def update_manifest(self, **fields: Any) -> dict:
        return store.update_manifest(self.path, **fields)

    def set_stage(self, stage: str, status: str, **info: Any) -> dict:
        return store.set_stage(self.path, stage, status, **info)

    def stage_status(self, stage: str) -> str | None:
        return (self.read_manifest().get("stages", {}).get(stage) or {}).get("status")

    # ----------------------------------------------------------------- overrides
    def _override_entries(self) -> dict[str, dict]:
        """``overrides.json`` as ``{id: {"keep"?, "output"?, "label"?, "by", "at",
        "original"}}``: an old ``{id: true|false}`` entry reads as ``{"keep": ...}``; a
        value that is neither a JSON boolean nor an object is ignored."""
        data = schema.load(self.path, schema.OVERRIDES) or {}
        out: dict[str, dict] = {}
        for k, v in data.items():
            if isinstance(v, bool):
                out[str(k)] = {"keep": v}
            elif isinstance(v, dict):
                e = {f: v[f] for f in REPAIR_FIELDS if isinstance(v.get(f), str)}
                if e:
                    e.update(by=str(v.get("by") or ""), at=str(v.get("at") or ""),
                             original=v["original"] if isinstance(v.get("original"), dict)
                             else {})
                if isinstance(v.get("keep"), bool):
                    e["keep"] = v["keep"]
                if e:
                    out[str(k)] = e
        return out

    def _write_override_entries(self, entries: dict[str, dict]) -> None:
        """Decision-only entries stay in the old ``{id: bool}`` form."""
        store.atomic_write_json(self.overrides_file, {
            k: e["keep"] if set(e) == {"keep"} else e for k, e in entries.items() if e})

    def read_overrides(self) -> dict[str, bool]:
        """Manual keep/drop decisions ``{candidate_id: keep}``.

        The one reader for every method and the studio: only JSON booleans count (a string
        such as ``"false"`` is ignored, never read as keep); a file that is not an object is
        an error (``RunFileError``). Entries that also repair a row (:meth:`read_repairs`)
        count with their ``keep``.
        """
        return {k: e["keep"] for k, e in self._override_entries().items() if "keep" in e}

    def write_overrides(self, overrides: dict[str, bool | None]) -> dict[str, bool]:
        """Save ``{id: keep}``; ``None`` removes a decision (back to the filters). Rows'
        repairs (:meth:`write_repair`) are kept; only their decision follows ``overrides``."""
        clean = {str(k): bool(v) for k, v in overrides.items() if v is not None}
        entries = {k: {f: v for f, v in e.items() if f != "keep"}
                   for k, e in self._override_entries().items() if set(e) - {"keep"}}
        for k, keep in clean.items():
            entries.setdefault(k, {})["keep"] = keep
        self._write_override_entries(entries)
        return clean

    def read_repairs(self) -> dict[str, dict]:
        """Rows corrected by hand: ``{id: {"output"?, "label"?, "by", "at", "original"}}``
        (``original``: the values the row had when it was repaired). The raw candidates are
        never changed; the methods apply these when they build the dataset."""
        return {k: {f: v for f, v in e.items() if f != "keep"}
                for k, e in self._override_entries().items() if set(e) - {"keep"}}

    def write_repair(self, candidate_id: str, *, original: dict, by: str = "",
                     output: str | None = None, label: str | None = None) -> dict | None:
        """Save (or with neither ``output`` nor ``label``, remove) the repair of one row;
        its keep/drop decision is unchanged. Returns the stored repair."""
        import datetime

        entries = self._override_entries()
        prev = entries.get(str(candidate_id), {})
        e = {k: v for k, v in prev.items() if k == "keep"}
        fixed = {f: v for f, v in (("output", output), ("label", label)) if v is not None}
        if fixed:
            e.update(fixed, by=by, at=datetime.datetime.now(datetime.timezone.utc)
                     .isoformat(timespec="seconds"),
                     original={f: prev.get("original", {}).get(f, original.get(f))
                               for f in fixed})
        entries[str(candidate_id)] = e
        self._write_override_entries(entries)
        return self.read_repairs().get(str(candidate_id))

    # ----------------------------------------------------------------- dataset
    def has_dataset(self) -> bool:
        return self.records_file("train").is_file()

    def read_records(self, split: str = "train") -> list[dict]:
        """The records of ``dataset/<split>.jsonl``; ``DatasetError`` if the train split is
        missing (a missing ``val`` split is empty)."""
        path = self.records_file(split)
        if not path.is_file():
            if split == "val":
                return []
            raise DatasetError(f"No dataset at {path}.",
                               hint="Run 'selfguide synthesize TASK --run NAME' (or "
                                    "'selfguide filter --run NAME') first.")
        report = self.read_report() or {}
        expected = report.get(split)
        spec = schema.TRAIN_RECORDS if split == "train" else schema.VAL_RECORDS
        return schema.load_whole_jsonl(self.path, spec, expected=expected)

    def records_bytes(self, split: str = "train") -> bytes:
        """``dataset/<split>.jsonl`` as it is on disk, once :meth:`read_records` found it
        whole (a download offers the file, never a damaged one)."""
        self.read_records(split)
        return self.records_file(split).read_bytes() if self.records_file(split).is_file() \
            else b""

    def write_records(self, split: str, text: str) -> None:
        """Write ``dataset/<split>.jsonl`` whole (``text``: the JSONL lines)."""
        store.atomic_write_text(self.records_file(split), text)

    def dataset_fingerprint(self) -> str:
        """Hash of ``dataset/train.jsonl`` and ``val.jsonl`` bytes (missing = empty): what a
        training recorded it read, so a later re-filter marks it stale."""
        import hashlib

        h = hashlib.sha256()
        for split in SPLITS:
            p, name = self.records_file(split), f"{split}.jsonl"
            h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"") + b"\0")
        return h.hexdigest()[:16]

    def read_report(self) -> dict | None:
        return schema.load(self.path, schema.REPORT)

    def write_report(self, report: dict) -> None:
        store.atomic_write_json(self.report_file, report)

    # ----------------------------------------------------------------- adapter / eval
    def has_adapter(self) -> bool:
        self.recover_adapter()
        return (self.adapter_dir / ADAPTER_MANIFEST).is_file()

    @property
    def adapter_staging_dir(self) -> Path:
        """Where training writes a new adapter before :meth:`install_adapter` swaps it in."""
        return self.train_dir / ".adapter.tmp"

    @property
    def adapter_old_dir(self) -> Path:
        return self.train_dir / ".adapter.old"

    def install_adapter(self, staged: str | os.PathLike) -> None:
        """Make the complete folder ``staged`` the run's ``adapter/`` with no moment in
        which there is none (:func:`selfguide.runs.swap.replace_dir`)."""
        swap.replace_dir(Path(staged), self.adapter_dir, self.adapter_old_dir)

    def recover_adapter(self) -> bool:
        """After a crash mid-swap: put ``.adapter.old`` back when there is no ``adapter/``
        (else drop it); True if an adapter was restored."""
        return swap.recover(self.adapter_dir, self.adapter_old_dir)

    def adapter_fingerprint(self) -> str | None:
        """A short hash of the adapter's manifest (new with every training); ``None``
        without an adapter. An evaluation records it to be marked stale after a retrain."""
        import hashlib

        try:
            return hashlib.sha256(self.adapter_manifest_file.read_bytes()).hexdigest()[:16]
        except OSError:
            return None

    def read_adapter_config(self) -> dict | None:
        """PEFT's ``adapter_config.json`` in the run's adapter, checked before PEFT reads it."""
        return schema.load(self.path, schema.ADAPTER_CONFIG)

    def read_train_metrics(self) -> dict | None:
        return schema.load(self.path, schema.TRAIN_METRICS)

    def write_train_metrics(self, metrics: dict) -> None:
        store.atomic_write_json(self.train_metrics_file, metrics)

    def read_train_config(self) -> dict | None:
        """``train/train_config.json``: the settings (and dataset fingerprint) of the
        training that wrote the checkpoints."""
        return schema.load(self.path, schema.TRAIN_CONFIG)

    def write_train_config(self, settings: dict) -> None:
        store.atomic_write_json(self.train_config_file, settings)

    def read_metrics(self) -> dict | None:
        return schema.load(self.path, schema.EVAL_METRICS)

    @property
    def unlabeled_file(self) -> Path:
        """The user's inputs without labels, saved on the Compare page (one JSON row each)."""
        return self.path / "unlabeled_inputs.jsonl"

    def read_unlabeled_inputs(self) -> list[dict]:
        """The rows of :attr:`unlabeled_file` (``[]`` when there is none)."""
        return store.read_jsonl(self.unlabeled_file) if self.unlabeled_file.is_file() else []

    def write_unlabeled_inputs(self, rows: list[dict]) -> None:
        """Replace :attr:`unlabeled_file` whole; no rows removes it."""
        import json

        if not rows:
            self.unlabeled_file.unlink(missing_ok=True)
            return
        store.atomic_write_text(self.unlabeled_file, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def read_predictions(self) -> list[dict]:
        """``eval/predictions.jsonl`` read strictly (its rows must be as many as
        ``eval/metrics.json`` counted); ``[]`` before any evaluation."""
        if not self.predictions_file.is_file():
            return []
        expected = (self.read_metrics() or {}).get("n")
        return schema.load_whole_jsonl(self.path, schema.PREDICTIONS, expected=expected)

    def write_evaluation(self, rows: list[dict], summary: dict) -> None:
        """``eval/predictions.jsonl`` then ``eval/metrics.json``, each whole."""
        import json

        store.atomic_write_text(self.predictions_file, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        store.atomic_write_json(self.metrics_file, summary)

    def read_adapter_manifest(self) -> dict | None:
        """``selfguide_adapter.json`` of the run's adapter; ``None`` when there is none."""
        return schema.load(self.path, schema.ADAPTER)

    def write_adapter_manifest(self, adapter_dir: str | os.PathLike, manifest: dict) -> None:
        store.atomic_write_json(Path(adapter_dir) / ADAPTER_MANIFEST, manifest)

    def read_gguf_export(self) -> dict | None:
        """The studio's GGUF export summary (``export/model-gguf/export.json``)."""
        return schema.load(self.path, schema.GGUF_EXPORT)

    # ----------------------------------------------------------------- method files
    def read_labelling(self) -> dict | None:
        """``labelling.json`` (SELF-GUIDE's labelling evidence); ``None`` before stage 2."""
        return schema.load(self.path, schema.LABELLING)

    def write_labelling(self, data: dict) -> None:
        store.atomic_write_json(self.labelling_file, data)

    def read_log(self, path: str | os.PathLike) -> list[dict]:
        """An append-only log of the run (``inputs.jsonl``, ``annotations.jsonl``,
        ``selfinstruct.jsonl``), read leniently at the tail (a torn last line is unwritten)."""
        return store.read_jsonl(self._own(path))

    def append_log(self, path: str | os.PathLike, records: list[dict]) -> int:
        """Append ``records`` durably to one of the run's logs (locked, fsynced)."""
        return store.append_jsonl(self._own(path), records)

    def write_file(self, path: str | os.PathLike, data: bytes | str) -> None:
        """Write one of the run's other files whole (``candidates.parquet``,
        ``seed_tasks.jsonl``), atomically."""
        store.atomic_write_bytes(self._own(path), data.encode("utf-8")
                                 if isinstance(data, str) else data)

    def _own(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        if not p.resolve().is_relative_to(self.path.resolve()):
            raise ValueError(f"{p} is not a file of run {self.name!r}")
        return p

    # ----------------------------------------------------------------- jobs
    def read_job_status(self, stage: str) -> dict:
        """``jobs/<stage>/status.json`` (``{}`` when missing or not an object: a status is
        a heartbeat rewritten many times a second, and the job's state is judged from it)."""
        raw = store.read_json(self.job_dir(stage) / "status.json", default=None)
        return raw if isinstance(raw, dict) else {}

    def write_job_status(self, stage: str, data: dict, *, durable: bool = True) -> None:
        import json

        text = json.dumps(dict(data), indent=2, ensure_ascii=False, default=str) + "\n"
        store.atomic_write_bytes(self.job_dir(stage) / "status.json", text.encode("utf-8"),
                                 fsync=durable)


def as_run(run: str | os.PathLike | RunDir) -> RunDir:
    """A ``RunDir`` for a path or ``RunDir`` (run *names* go through :meth:`RunDir.named`)."""
    return run if isinstance(run, RunDir) else RunDir(run)
