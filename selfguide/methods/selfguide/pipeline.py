"""The SELF-GUIDE pipeline (Zhao et al. 2024): a task's own model writes its training set.

What it does: owns a SELF-GUIDE run from start to dataset: :func:`prepare_run` writes
``task.json``/``config.json`` (refusing to mix settings into an existing run),
:func:`synthesize` runs (or resumes) stage 1 and stage 2
(:mod:`selfguide.methods.selfguide.stages`), joins the candidates table, applies the filters
and writes the dataset (:mod:`selfguide.methods.selfguide.table`); :func:`refilter`
re-applies filters to a finished run without generating; :func:`run_synthesis` is what
``selfguide synthesize``/``run`` call.

What it does not do: prompt text, parsing, voting, filters and the dataset format live in
their own modules. It never loads a model unless :func:`run_synthesis` is called without a
generator.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selfguide import __version__
from selfguide.errors import ConfigError, CorruptFile, DatasetError
from selfguide.methods.selfguide import sources, strategies
from selfguide.methods.selfguide.choice import LabelChoice
from selfguide.methods.selfguide.config import FilterConfig, SynthesisConfig
from selfguide.methods.selfguide.documents import PASSAGES_FILE, Documents, save_passages
from selfguide.methods.selfguide.filters import apply
from selfguide.methods.selfguide.sources import MIXES, GivenInputs
from selfguide.methods.context import ItemCallback, StageContext
from selfguide.methods.selfguide.stages import annotate, generate_inputs, topup_round
from selfguide.methods.selfguide.table import build_table, finish, load_candidates
from selfguide.runs import rounds, store
from selfguide.runs.events import EventLog
from selfguide.runs.rundir import as_run
from selfguide.settings.fields import TRANSPORT_FIELDS, ModelConfig, to_dict
from selfguide.task.spec import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    from selfguide.backends import Generator

# The files generated data lives in (a change of settings must not mix into them).
GENERATED = ("inputs_file", "annotations_file", "labelling_file")


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"selfguide": __version__, "python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _generation_key(cfg: dict) -> dict:
    """The parts of config.json that, when changed, invalidate generated rows."""
    model = cfg.get("model")
    if isinstance(model, dict):  # how generation reaches the model does not change rows
        model = {k: v for k, v in model.items() if k not in TRANSPORT_FIELDS}
    key = {"method": cfg.get("method"), "model": model, "synthesis": cfg.get("synthesis")}
    for source in ("inputs", "documents"):  # the user's files: their content, not their path
        if cfg.get(source):
            key[source] = {k: v for k, v in cfg[source].items() if k not in ("file", "files")}
    return key


def prepare_run(run_dir: str | os.PathLike, task: TaskSpec, synth: SynthesisConfig,
                filters: FilterConfig, model: ModelConfig | None = None, *,
                overwrite: bool = False, given: GivenInputs | None = None,
                mix: str = "fill", documents: Documents | None = None) -> dict:
    """Write task.json and config.json; refuse to mix settings into an existing run.

    Rerunning with the same task and synthesis settings resumes. Different settings raise
    ``ConfigError`` unless ``overwrite`` (which deletes the generated files). ``given``:
    the user's own inputs (copied into the run; their content hash and ``mix`` are
    settings); ``documents``: the passages' settings (:mod:`.documents`).
    """
    if mix not in MIXES:
        raise ConfigError(f"Unknown mix {mix!r}.", hint=f"Choose one of {', '.join(MIXES)}.")
    if mix == "only" and given is None:
        raise ConfigError("Mix 'only' needs your inputs (--inputs FILE).")
    run = as_run(run_dir).mkdir()
    store.clean_stale_temps(run.path)
    cfg = {"method": "selfguide", "model": to_dict(model or ModelConfig()),
           "synthesis": to_dict(synth), "filters": to_dict(filters), "seed": synth.seed,
           "versions": versions()}
    if given is not None:
        cfg["inputs"] = given.settings(mix)
    if documents is not None:
        cfg["documents"] = documents.settings()
    old_cfg = None if overwrite or not run.config_file.exists() else run.read_config()
    old_task = run.read_task() if old_cfg is not None else None
    new_task = task.to_dict()
    if old_cfg is not None:
        same = (store.config_hash(_generation_key(old_cfg)) ==
                store.config_hash(_generation_key(cfg)) and old_task is not None
                and old_task.to_dict() == new_task)
        if not same and any(getattr(run, f).exists() for f in GENERATED):
            raise ConfigError(
                f"Run {run.name!r} already holds data generated with a different task, "
                f"model or synthesis settings.",
                hint="Use a new --run name, rerun with the original settings to resume, or "
                     "pass --overwrite to discard the generated data.")
    if overwrite:
        rounds.reset(run)
        for path in (run.inputs_file, run.annotations_file, run.candidates_file,
                     run.labelling_file, run.overrides_file, run.records_file("train"),
                     run.records_file("val"), run.report_file, sources.given_file(run),
                     run.path / PASSAGES_FILE):
            path.unlink(missing_ok=True)
    run.write_task(task)
    run.write_config(cfg)
    if given is not None:
        sources.save_given(run, given)
    if documents is not None:
        save_passages(run, list(documents.passages))
    run.update_manifest(method="selfguide", task=task.name)
    return cfg


def load_run(run_dir: str | os.PathLike
             ) -> tuple[TaskSpec, SynthesisConfig, FilterConfig, dict]:
    """(task, synthesis config, filter config, raw config.json) of an existing run."""
    from selfguide.settings.fields import from_dict

    run = as_run(run_dir)
    if not run.config_file.is_file() or not run.task_file.is_file():
        raise CorruptFile(f"{run.path} has no config.json/task.json; it is not a SELF-GUIDE run.",
                          hint="Create it with 'selfguide synthesize TASK --run NAME'.")
    cfg, task = run.read_config(), run.read_task(required=True)
    return (task, from_dict(SynthesisConfig, legacy_synthesis(cfg.get("synthesis"))),
            from_dict(FilterConfig, cfg.get("filters")), cfg)


def legacy_synthesis(data: dict | None) -> dict:
    """Synthesis settings of runs made before ``label_protocol`` (``output_chat``)."""
    data = dict(data or {})
    if "output_chat" in data:
        data.setdefault("label_protocol", "chat" if data.pop("output_chat") else "plain")
    return data


def refilter(run_dir: str | os.PathLike, filters: FilterConfig | None = None) -> dict:
    """Re-apply filters (new settings or the run's own) and rewrite the dataset."""
    run = as_run(run_dir)
    task, _, old, cfg = load_run(run)
    filters = filters or old
    df = load_candidates(run)
    if not len(df):
        raise DatasetError(f"Run {run.name!r} has no candidates to filter.",
                           hint="Run 'selfguide synthesize' first (or let it finish).")
    df = df[[c for c in df.columns if not c.startswith("f_")
             and c not in ("label", "drop_reason", "kept")]]
    _, report = finish(run, df, task, filters, require_kept=True)
    cfg["filters"] = to_dict(filters)
    run.write_config(cfg)
    run.set_stage("filter", "done", kept=report["kept"],
                    config_hash=store.config_hash(cfg["filters"]))
    return report


# --------------------------------------------------------------------------- the whole thing

def synthesize(run_dir: str | os.PathLike, task: TaskSpec, cfg: SynthesisConfig,
               generator: Generator, *, filters: FilterConfig | None = None,
               chat: bool | None = None, events: EventLog | None = None,
               cancel: Callable[[], bool] | None = None, on_item: ItemCallback | None = None,
               stream: Any = ...) -> dict:
    """Run (or resume) stage 1, stage 2, the filters and the dataset; return the report.

    ``filters`` and ``chat`` default to the run's config.json (written by
    :func:`prepare_run`), else the defaults.
    """
    run_dir = as_run(run_dir)
    refuse_later_round(run_dir)
    stored = run_dir.read_config()
    if filters is None:
        from selfguide.settings.fields import from_dict

        filters = from_dict(FilterConfig, stored.get("filters")) if stored else FilterConfig()
    if chat is None:
        chat = bool((stored.get("model") or {}).get("chat", True))
    ctx = StageContext(generator, chat=chat, events=events or EventLog(None), cancel=cancel,
                       on_item=on_item, stream=stream)
    events = ctx.events
    run_dir.set_stage("synthesize", "running",
                    config_hash=store.config_hash(to_dict(cfg)))
    given, mix = _given(run_dir, stored)
    inputs = given
    if mix != "only":
        inputs = given + generate_inputs(run_dir, task, cfg, filters, ctx, given=given)
    elif given:
        events.emit("log", message=f"{len(given)} inputs of your own replace stage 1 "
                                   "(mix only): nothing is generated")
    df, report = _label_and_filter(run_dir, task, cfg, filters, inputs, ctx)
    rnd, topups = 1 + max((r["round"] for r in inputs), default=-1), []
    while task.is_classification and cfg.min_per_label and len(topups) < cfg.topup_rounds \
            and mix != "only":
        strategy = (LabelChoice.from_dict(report.get("labelling")) or LabelChoice()).strategy
        if strategy and not strategies.balances(strategy):
            break  # the model's own answers: asking for a label does not change them
        rare = short_labels(df, task, cfg.min_per_label)
        if not rare:
            break
        events.emit("log", message=f"top-up round {len(topups) + 1}: fewer than "
                                   f"{cfg.min_per_label} examples of " + ", ".join(
                                       f"{k} ({v})" for k, v in rare.items())
                                   + "; asking only for those labels")
        inputs = inputs + topup_round(run_dir, task, cfg, filters, rnd, list(rare), ctx)
        df, report = _label_and_filter(run_dir, task, cfg, filters, inputs, ctx)
        topups.append({"round": rnd, "asked_for": rare, "after": label_counts(df, task)})
        rnd += 1
    if topups:
        report["topup"] = topups
        run_dir.write_report(report)
    run_dir.set_stage("synthesize", "done", candidates=len(df), kept=report["kept"],
                    config_hash=store.config_hash(to_dict(cfg)))
    events.emit("funnel", funnel=report["funnel"], labels=report["labels"],
                diagnostics=report["diagnostics"])
    return report


def refuse_later_round(run: Any) -> None:
    """A run past round 1 (``selfguide relabel``: the tuned model answered its inputs
    again) holds no base-model answers to resume: synthesizing into it would mix them in
    (stage 2 on new inputs, top-up rounds). ``ConfigError`` unless ``--overwrite``."""
    st = rounds.state(run)
    if st["state"] == "labelling":
        raise ConfigError(f"Run {run.name!r} is half way through round {st['current']} (the "
                          "tuned model answering its inputs again).",
                          hint=f"Finish it with 'selfguide relabel --run {run.name}', or "
                               "synthesize again with --overwrite.")
    if st["current"] > 1:
        raise ConfigError(f"Run {run.name!r} holds round {st['current']} (its inputs answered "
                          "again by the tuned model); synthesizing into it would mix the "
                          "base model's answers in.",
                          hint=f"Re-filter it with 'selfguide filter --run {run.name}', or "
                               "synthesize again with --overwrite (round 1 from scratch).")


def _given(run_dir: Any, stored: dict) -> tuple[list[dict], str]:
    """The run's own inputs (``inputs.jsonl`` rows of origin ``given``) and its mix."""
    settings = (stored or {}).get("inputs") or {}
    if not settings:
        return [], "fill"
    rows = sources.given_rows(run_dir.read_log(run_dir.inputs_file)
                              if run_dir.inputs_file.is_file() else [])
    if len(rows) != settings.get("rows"):
        raise CorruptFile(f"{run_dir.inputs_file} holds {len(rows)} of your "
                          f"{settings.get('rows')} inputs.",
                          hint="Rerun 'selfguide synthesize' with --inputs; it adds them "
                               "again.")
    return rows, settings.get("mix", "fill")


def _label_and_filter(run_dir: Any, task: TaskSpec, cfg: SynthesisConfig,
                      filters: FilterConfig, inputs: list[dict], ctx: StageContext
                      ) -> tuple[Any, dict]:
    """Stage 2 on every input that passes the input filters (those not yet annotated),
    then the filters and the dataset: (table, report)."""
    first = apply(build_table(inputs, {}, task), filters, task, stage="input")
    keep = first[first["kept"]]
    ids_inputs = list(zip(keep["id"].tolist(), keep["input"].tolist()))
    ann = annotate(run_dir, task, cfg, ids_inputs, ctx)
    return finish(run_dir, build_table(inputs, ann, task), task, filters)


def label_counts(df: Any, task: TaskSpec) -> dict[str, int]:
    """Rows per label past every filter but balancing."""
    if not len(df):
        return dict.fromkeys(task.labels, 0)
    counts = df[df["kept"] | (df["drop_reason"] == "balance")]["label"].value_counts()
    return {lab: int(counts.get(lab, 0)) for lab in task.labels}


def short_labels(df: Any, task: TaskSpec, floor: int) -> dict[str, int]:
    """Labels with fewer than ``floor`` rows past every filter but balancing: label -> rows."""
    return {lab: n for lab, n in label_counts(df, task).items() if n < floor}


def run_synthesis(run_dir: str | os.PathLike, task: TaskSpec, synth: SynthesisConfig,
                  filters: FilterConfig, model: ModelConfig | None = None, *,
                  generator: Generator | None = None, overwrite: bool = False,
                  events: EventLog | None = None, cancel: Callable[[], bool] | None = None,
                  on_item: ItemCallback | None = None, stream: Any = ...,
                  given: GivenInputs | None = None, mix: str = "fill",
                  documents: Documents | None = None) -> dict:
    """prepare_run + (load the model) + synthesize: what ``selfguide synthesize``/``run`` do."""
    model = model or ModelConfig()
    prepare_run(run_dir, task, synth, filters, model, overwrite=overwrite, given=given,
                mix=mix, documents=documents)
    if generator is None:
        from selfguide import backends

        generator = backends.get_generator(model.backend, config=model)
    from selfguide.backends.openai_client import record_server

    record_server(run_dir, generator)  # backend=openai: the server and its model name
    return synthesize(run_dir, task, synth, generator, filters=filters, chat=model.chat,
                      events=events, cancel=cancel, on_item=on_item, stream=stream)
