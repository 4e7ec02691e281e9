"""The SELF-GUIDE pipeline (Zhao et al. 2024): a task's own model writes its training set.

Stage 1 (:func:`generate_inputs`): ``rounds`` x ``prompts_per_round`` prompts (plus whole
rounds, up to ``max_rounds``, while fewer than ``min_inputs`` pass the input filters), each with the
instruction, the demos' inputs (high quality) and 1-10 inputs generated in earlier rounds
(lower quality); classification prompts draw a target label uniformly and ask for an input
with that answer. Every finished round is appended to ``inputs.jsonl``.

Stage 2 (:func:`annotate`): every input that passes the input filters gets
:func:`selfguide.prompts.task_prompt` and ``n_samples`` sampled answers (the backend shares
one prefill); classification also scores each label (for the ``calibrated`` strategy).
Each finished batch is appended to ``annotations.jsonl``.

Then the two files are joined into the candidates table (``candidates.parquet``: votes,
share, winner, mapped label), the filters are applied and the dataset is written
(:func:`finish`). A killed run rerun with the same command continues after the last
finished round/batch: row ids are ``r<round>-p<prompt>``, each round/batch is seeded by its
position, so nothing is duplicated or lost.

This module orchestrates and writes run files; prompt text, parsing, voting, filters and
the dataset format live in their own modules. It never loads a model unless
:func:`run_synthesis` is called without a generator.
"""

from __future__ import annotations

import dataclasses
import io
import random
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfguide import __version__, labelling, store
from selfguide.config import TRANSPORT_FIELDS, ModelConfig, SamplingConfig, to_dict
from selfguide.configs.synthesis import FilterConfig, SynthesisConfig
from selfguide.consistency import vote_samples
from selfguide.errors import ConfigError, CorruptFile, DatasetError
from selfguide.events import EventLog, Progress
from selfguide.filters import (
    apply,
    in_length,
    length_window,
    near_duplicate_scores,
    no_noise,
    text_key,
)
from selfguide.parsing import map_label, parse_input
from selfguide.prompts import input_generation_prompt, sample_generated, task_prompt
from selfguide.task import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from selfguide.backends import Generator

INPUTS = "inputs.jsonl"
ANNOTATIONS = "annotations.jsonl"
CANDIDATES = "candidates.parquet"
LABELLING = "labelling.json"
STOPS = labelling.STOPS
ItemCallback = Callable[[dict], None]


def row_id(round_: int, prompt: int) -> str:
    return f"r{round_:03d}-p{prompt:03d}"


def _seed(*parts: Any) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------- run files

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
    return {"method": cfg.get("method"), "model": model, "synthesis": cfg.get("synthesis")}


def prepare_run(run_dir: str | Path, task: TaskSpec, synth: SynthesisConfig,
                filters: FilterConfig, model: ModelConfig | None = None, *,
                overwrite: bool = False) -> dict:
    """Write task.json and config.json; refuse to mix settings into an existing run.

    Rerunning with the same task and synthesis settings resumes. Different settings raise
    ``ConfigError`` unless ``overwrite`` (which deletes the generated files).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    store.clean_stale_temps(run_dir)
    cfg = {"method": "selfguide", "model": to_dict(model or ModelConfig()),
           "synthesis": to_dict(synth), "filters": to_dict(filters), "seed": synth.seed,
           "versions": versions()}
    old_cfg = store.read_json(run_dir / "config.json")
    old_task = store.read_json(run_dir / "task.json")
    new_task = task.to_dict()
    if old_cfg is not None and not overwrite:
        same = (store.config_hash(_generation_key(old_cfg)) ==
                store.config_hash(_generation_key(cfg)) and old_task == new_task)
        if not same and any((run_dir / f).exists() for f in (INPUTS, ANNOTATIONS, LABELLING)):
            raise ConfigError(
                f"Run {run_dir.name!r} already holds data generated with a different task, "
                f"model or synthesis settings.",
                hint="Use a new --run name, rerun with the original settings to resume, or "
                     "pass --overwrite to discard the generated data.")
    if overwrite:
        for name in (INPUTS, ANNOTATIONS, CANDIDATES, LABELLING, "overrides.json"):
            (run_dir / name).unlink(missing_ok=True)
        for name in ("train.jsonl", "val.jsonl", "report.json"):
            (run_dir / "dataset" / name).unlink(missing_ok=True)
    store.atomic_write_json(run_dir / "task.json", new_task)
    store.atomic_write_json(run_dir / "config.json", cfg)
    store.update_manifest(run_dir, method="selfguide", task=task.name)
    return cfg


def load_run(run_dir: str | Path) -> tuple[TaskSpec, SynthesisConfig, FilterConfig, dict]:
    """(task, synthesis config, filter config, raw config.json) of an existing run."""
    from selfguide.config import from_dict

    run_dir = Path(run_dir)
    cfg = store.read_json(run_dir / "config.json")
    tdict = store.read_json(run_dir / "task.json")
    if cfg is None or tdict is None:
        raise CorruptFile(f"{run_dir} has no config.json/task.json; it is not a SELF-GUIDE run.",
                          hint="Create it with 'selfguide synthesize TASK --run NAME'.")
    return (TaskSpec.from_dict(tdict), from_dict(SynthesisConfig,
                                                 legacy_synthesis(cfg.get("synthesis"))),
            from_dict(FilterConfig, cfg.get("filters")), cfg)


def legacy_synthesis(data: dict | None) -> dict:
    """Synthesis settings of runs made before ``label_protocol`` (``output_chat``)."""
    data = dict(data or {})
    if "output_chat" in data:
        data.setdefault("label_protocol", "chat" if data.pop("output_chat") else "plain")
    return data


def read_overrides(run_dir: str | Path) -> dict[str, bool]:
    """Manual keep/drop decisions ``{candidate_id: keep}`` from ``overrides.json``.

    The one reader for every method and the studio: only JSON booleans count (a string
    such as ``"false"`` is ignored, never read as keep); a file that is not an object is
    treated as no decisions.
    """
    data = store.read_json(Path(run_dir) / "overrides.json", default={}) or {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, bool)}


def _unique(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        if r.get("id") not in seen:
            seen.add(r.get("id"))
            out.append(r)
    return out


# --------------------------------------------------------------------------- token budgets

def _budget(generator: Generator, texts: list[str], configured: int, *, floor: int,
            cap: int) -> int:
    if configured:
        return configured
    longest = max((generator.count_tokens(t) for t in texts), default=16)
    return int(min(cap, max(floor, 2 * longest + 8)))


def _stream(stream: Any) -> Any:
    """``...`` means "stderr at call time" (so test capture and redirection work)."""
    return sys.stderr if stream is ... else stream


class _Tokens:
    """Turns a backend's cumulative per-call progress into Progress updates."""

    def __init__(self, progress: Progress):
        self.progress, self.last_done, self.last_tok = progress, 0, 0

    def __call__(self, done: int, total: int, tokens: int) -> None:
        self.progress.update(done - self.last_done, tokens=tokens - self.last_tok)
        self.last_done, self.last_tok = done, tokens


# --------------------------------------------------------------------------- stage 1

def generate_inputs(run_dir: str | Path, task: TaskSpec, cfg: SynthesisConfig,
                    filters: FilterConfig, generator: Generator, *, chat: bool = True,
                    events: EventLog | None = None, cancel: Callable[[], bool] | None = None,
                    on_item: ItemCallback | None = None, stream: Any = ...) -> list[dict]:
    """Stage 1: generate every missing round; returns all input rows (old and new)."""
    path = Path(run_dir) / INPUTS
    rows = _unique(store.read_jsonl(path))
    by_id = {r["id"]: r for r in rows}
    demos = [d.input for d in task.demos]
    lo, hi = length_window(demos, filters.length_k, filters.min_words, filters.max_words)
    seen = {text_key(d) for d in demos}
    pool: list[tuple[str, str]] = []

    def add_to_pool(text: str, target: str) -> None:
        k = text_key(text)
        if text and k not in seen and no_noise([text], filters.noise_terms)[0] \
                and in_length([text], lo, hi)[0]:
            pool.append((text, target))
        seen.add(k)

    sampling = SamplingConfig(
        temperature=cfg.input_temperature, top_p=cfg.input_top_p, stop=STOPS,
        max_new_tokens=_budget(generator, demos, cfg.input_max_new_tokens, floor=32, cap=256))
    events = events or EventLog(None)
    progress = Progress("inputs", cfg.total_prompts, events=events, unit="prompts",
                        done=sum(1 for r in rows if r["round"] < cfg.rounds),
                        stream=_stream(stream))
    events.emit("stage", stage="inputs", state="start", total=cfg.total_prompts,
                done=progress.done)
    def passing() -> int:  # inputs of the rounds so far that pass the input filters
        done_rows = [r for r in by_id.values() if r["round"] < rnd
                     and r["prompt_id"] < cfg.prompts_per_round]
        return int(apply(build_table(done_rows, {}, task), filters, task,
                         stage="input")["kept"].sum()) if done_rows else 0

    rnd = 0
    try:
        while rnd < cfg.round_limit:
            if rnd >= cfg.rounds:
                have = passing()
                if have >= cfg.min_inputs:
                    break
                progress.total += cfg.prompts_per_round
                events.emit("log", message=f"round {rnd + 1}: {have} inputs pass the filters, "
                                           f"fewer than min_inputs={cfg.min_inputs}; adding "
                                           f"a round (at most {cfg.round_limit})")
            rng = random.Random(_seed(cfg.seed, "inputs", rnd))
            plan = []
            for p in range(cfg.prompts_per_round):
                target = rng.choice(task.labels) if task.is_classification else ""
                shown = sample_generated(pool, rng, cfg.min_generated_examples,
                                         cfg.max_generated_examples)
                plan.append((p, target, shown))
            missing = {x[0] for x in plan if row_id(rnd, x[0]) not in by_id}
            if missing:
                # The whole round is decoded again (same prompts, same batch, same seed) so
                # a row lost to a torn line comes back with exactly its uninterrupted text;
                # only the missing rows are appended.
                prompts = [input_generation_prompt(task, shown, target or None)
                           for _, target, shown in plan]
                s = dataclasses.replace(sampling, seed=_seed(cfg.seed, "inputs-decode", rnd))
                outs = generator.generate(prompts, s, 1, chat=chat and cfg.input_chat,
                                          cancel=cancel, progress=_Tokens(progress))
                new = []
                for (p, target, shown), comps in zip(plan, outs):
                    if p not in missing:
                        continue
                    raw = comps[0] if comps else ""
                    new.append({"id": row_id(rnd, p), "method": "selfguide", "round": rnd,
                                "prompt_id": p, "target_label": target, "raw": raw,
                                "input": parse_input(raw), "n_shown": len(shown)})
                store.append_jsonl(path, new)  # the round is the unit of resumption
                for r in new:
                    by_id[r["id"]] = r
                    events.emit("item", stage="inputs", id=r["id"], round=rnd,
                                input=r["input"], target_label=r["target_label"])
                    if on_item is not None:
                        on_item(r)
            for p in range(cfg.prompts_per_round):
                r = by_id[row_id(rnd, p)]
                add_to_pool(r["input"], r.get("target_label", ""))
            rnd += 1
    finally:
        progress.close()
    events.emit("stage", stage="inputs", state="done", total=rnd * cfg.prompts_per_round,
                rounds=rnd)
    # only the rounds this config ran (a run resumed with fewer rounds ignores the rest)
    return sorted((r for r in by_id.values() if r["round"] < rnd
                   and r["prompt_id"] < cfg.prompts_per_round),
                  key=lambda r: (r["round"], r["prompt_id"]))


# --------------------------------------------------------------------------- stage 2

def annotate(run_dir: str | Path, task: TaskSpec, cfg: SynthesisConfig, ids_inputs:
             list[tuple[str, str]], generator: Generator, *, chat: bool = True,
             events: EventLog | None = None, cancel: Callable[[], bool] | None = None,
             stream: Any = ...) -> dict[str, dict]:
    """Stage 2: sample answers (and label scores) for every (id, input) not yet annotated.

    First the labelling protocol is settled (:func:`label_protocol`: from the demos and a
    probe of the inputs, stored in ``labelling.json``); every input is then labelled in it.
    """
    path = Path(run_dir) / ANNOTATIONS
    events = events or EventLog(None)

    def pending() -> list[tuple[str, str]]:
        done = {r["id"] for r in store.read_jsonl(path)}
        return [(i, x) for i, x in ids_inputs if i not in done]

    progress = Progress("annotate", len(ids_inputs), events=events, unit="inputs",
                        done=len(ids_inputs) - len(pending()), stream=_stream(stream))
    events.emit("stage", stage="annotate", state="start", total=len(ids_inputs),
                done=progress.done)
    try:
        protocol = label_protocol(run_dir, task, cfg, ids_inputs, generator, chat=chat,
                                  events=events, cancel=cancel)["protocol"]
    except BaseException:
        progress.close()
        raise
    todo = pending()
    progress.update(len(ids_inputs) - len(todo) - progress.done)  # the reused probe
    done = {r["id"]: r for r in _unique(store.read_jsonl(path))}
    sampling = labelling.sampling_for(task, generator, temperature=cfg.output_temperature,
                                      max_new_tokens=cfg.output_max_new_tokens)

    def save(recs: list[dict]) -> None:
        store.append_jsonl(path, recs)  # the batch is the unit of resumption
        done.update({r["id"]: r for r in recs})

    try:
        labelling.label_batches(task, todo, generator, protocol, sampling, cfg.n_samples,
                                batch=cfg.annotate_batch, score=cfg.score_labels,
                                seed=lambda first: _seed(cfg.seed, "annotate", first),
                                on_batch=save, cancel=cancel, progress=_Tokens(progress))
    finally:
        progress.close()
    events.emit("stage", stage="annotate", state="done", total=len(ids_inputs))
    return done


def label_protocol(run_dir: str | Path, task: TaskSpec, cfg: SynthesisConfig,
                   ids_inputs: list[tuple[str, str]], generator: Generator, *,
                   chat: bool = True, events: EventLog | None = None,
                   cancel: Callable[[], bool] | None = None) -> dict:
    """The protocol stage 2 labels in, with its evidence (``labelling.json``; computed once).

    Leave-one-out on the demos in every candidate protocol, plus (classification) a probe of
    the first ``probe_inputs`` inputs labelled in each; the chosen protocol's probe records
    become the first annotations. A model without chat use labels as plain text.
    """
    run_dir = Path(run_dir)
    stored = store.read_json(run_dir / LABELLING)
    if stored and stored.get("protocol"):
        return stored
    events = events or EventLog(None)
    wanted = cfg.label_protocol
    protocols = ("plain",) if not chat else (
        labelling.PROTOCOLS if wanted == "auto" else (wanted,))
    probe = ids_inputs[:cfg.probe_inputs] if task.is_classification else []
    events.emit("log", message=f"labelling evidence: {len(task.demos)} demos left out one "
                               f"at a time, {len(probe)} probe inputs, protocols "
                               f"{', '.join(protocols)}")
    sampling = labelling.sampling_for(task, generator, temperature=cfg.output_temperature,
                                      max_new_tokens=cfg.output_max_new_tokens,
                                      seed=_seed(cfg.seed, "probe"))
    evidence, probe_recs = labelling.gather_evidence(
        task, generator, [x for _, x in probe], protocols, sampling, cfg.n_samples,
        cancel=cancel)
    pick = labelling.choose_protocol(evidence)
    if wanted != "auto" or not chat:
        pick.update(protocol=protocols[0], chosen_by="user" if chat else "model")
    else:
        pick["chosen_by"] = "auto"
    recs = probe_recs.get(pick["protocol"]) or []
    if recs:
        store.append_jsonl(run_dir / ANNOTATIONS,
                           [{"id": i, **r} for (i, _), r in zip(probe, recs)])
    out = {**pick, "requested": wanted, "evidence": evidence}
    store.atomic_write_json(run_dir / LABELLING, out)
    events.emit("log", message=pick["reason"])
    if not pick.get("beats_chance", True):
        events.emit("warning", message="No way of self-labelling beat chance on the demos: "
                                       "the labels will carry the answer format, not the "
                                       "task. A bigger model would help.")
    return out


# --------------------------------------------------------------------------- join + filter

def build_table(inputs: list[dict], annotations: dict[str, dict], task: TaskSpec
                ) -> pd.DataFrame:
    """Join stage-1 rows and stage-2 samples into the candidates table (votes computed)."""
    import json

    import pandas as pd

    labels = list(task.labels) if task.is_classification else []
    rows = []
    for r in sorted(inputs, key=lambda r: (r["round"], r["prompt_id"])):
        a = annotations.get(r["id"])
        row = {"id": r["id"], "method": r.get("method", "selfguide"), "round": r["round"],
               "prompt_id": r["prompt_id"], "target_label": r.get("target_label", ""),
               "raw": r.get("raw", ""), "input": r.get("input", ""),
               "samples": None, "votes": "{}", "vote_share": 0.0, "output": "",
               "label_vote": "", "label_scores": None}
        if a is not None:
            v = vote_samples(a["samples"], labels,
                             source=None if labels else r.get("input", ""))
            row.update(samples=list(a["samples"]), votes=json.dumps(v.votes, ensure_ascii=False),
                       vote_share=v.share, output=v.output,
                       label_vote=(map_label(v.output, labels) or "") if labels else "",
                       label_scores=a.get("label_scores"))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["id", "method", "round", "prompt_id", "target_label",
                                     "raw", "input", "samples", "votes", "vote_share", "output",
                                     "label_vote", "label_scores"])
    demos = [d.input for d in task.demos]
    df["nd_score"], df["nd_nearest"] = near_duplicate_scores(df["input"].tolist(), demos,
                                                             df["id"].tolist())
    return df


def write_candidates(run_dir: str | Path, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    store.atomic_write_bytes(Path(run_dir) / CANDIDATES, buf.getvalue())


def load_candidates(run_dir: str | Path) -> pd.DataFrame:
    """The candidates table; rebuilt from the JSONL files when the Parquet is missing."""
    import pandas as pd

    run_dir = Path(run_dir)
    path = run_dir / CANDIDATES
    if path.is_file():
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise CorruptFile(f"{path} cannot be read ({exc}).",
                              hint="Delete it; 'selfguide filter' rebuilds it.") from exc
        for col in ("samples", "label_scores"):
            if col in df:
                df[col] = [None if v is None else list(v) for v in df[col]]
        return df
    task = TaskSpec.from_dict(store.read_json(run_dir / "task.json"))
    ann = {r["id"]: r for r in _unique(store.read_jsonl(run_dir / ANNOTATIONS))}
    return build_table(_unique(store.read_jsonl(run_dir / INPUTS)), ann, task)


def finish(run_dir: str | Path, df: pd.DataFrame, task: TaskSpec, filters: FilterConfig,
           *, require_kept: bool = False) -> tuple[pd.DataFrame, dict]:
    """Apply the filters, write candidates.parquet and the dataset; return (table, report).

    ``require_kept``: raise ``DatasetError`` (and write nothing) when no row is kept.
    """
    from selfguide.dataset import write_dataset

    eff, choice = labelling.resolve_filters(df, task, filters,
                                            store.read_json(Path(run_dir) / LABELLING))
    df = apply(df, eff, task, overrides=read_overrides(run_dir))
    if require_kept and not int(df["kept"].sum()):
        reasons = df["drop_reason"].value_counts().head(3).to_dict()
        raise DatasetError(f"No candidate of run {Path(run_dir).name!r} passes the filters "
                           f"({len(df)} candidates; dropped: "
                           + ", ".join(f"{k} {v}" for k, v in reasons.items()) + ").",
                           hint="Loosen the filter options; the dataset was left unchanged.")
    write_candidates(run_dir, df)
    report = write_dataset(run_dir, df, task, eff, labelling=choice)
    return df, report


def refilter(run_dir: str | Path, filters: FilterConfig | None = None) -> dict:
    """Re-apply filters (new settings or the run's own) and rewrite the dataset."""
    run_dir = Path(run_dir)
    task, _, old, cfg = load_run(run_dir)
    filters = filters or old
    df = load_candidates(run_dir)
    if not len(df):
        raise DatasetError(f"Run {run_dir.name!r} has no candidates to filter.",
                           hint="Run 'selfguide synthesize' first (or let it finish).")
    df = df[[c for c in df.columns if not c.startswith("f_")
             and c not in ("label", "drop_reason", "kept")]]
    _, report = finish(run_dir, df, task, filters, require_kept=True)
    cfg["filters"] = to_dict(filters)
    store.atomic_write_json(run_dir / "config.json", cfg)
    store.set_stage(run_dir, "filter", "done", kept=report["kept"],
                    config_hash=store.config_hash(cfg["filters"]))
    return report


# --------------------------------------------------------------------------- the whole thing

def synthesize(run_dir: str | Path, task: TaskSpec, cfg: SynthesisConfig,
               generator: Generator, *, filters: FilterConfig | None = None,
               chat: bool | None = None, events: EventLog | None = None,
               cancel: Callable[[], bool] | None = None, on_item: ItemCallback | None = None,
               stream: Any = ...) -> dict:
    """Run (or resume) stage 1, stage 2, the filters and the dataset; return the report.

    ``filters`` and ``chat`` default to the run's config.json (written by
    :func:`prepare_run`), else the defaults.
    """
    run_dir = Path(run_dir)
    stored = store.read_json(run_dir / "config.json", default={}) or {}
    if filters is None:
        from selfguide.config import from_dict

        filters = from_dict(FilterConfig, stored.get("filters")) if stored else FilterConfig()
    if chat is None:
        chat = bool((stored.get("model") or {}).get("chat", True))
    events = events or EventLog(None)
    store.set_stage(run_dir, "synthesize", "running",
                    config_hash=store.config_hash(to_dict(cfg)))
    inputs = generate_inputs(run_dir, task, cfg, filters, generator, chat=chat, events=events,
                             cancel=cancel, on_item=on_item, stream=stream)
    table = build_table(inputs, {}, task)
    first = apply(table, filters, task, stage="input")
    keep = first[first["kept"]]
    ids_inputs = list(zip(keep["id"].tolist(), keep["input"].tolist()))
    ann = annotate(run_dir, task, cfg, ids_inputs, generator, chat=chat, events=events,
                   cancel=cancel, stream=stream)
    df = build_table(inputs, ann, task)
    df, report = finish(run_dir, df, task, filters)
    store.set_stage(run_dir, "synthesize", "done", candidates=len(df), kept=report["kept"],
                    config_hash=store.config_hash(to_dict(cfg)))
    events.emit("funnel", funnel=report["funnel"], labels=report["labels"],
                diagnostics=report["diagnostics"])
    return report


def run_synthesis(run_dir: str | Path, task: TaskSpec, synth: SynthesisConfig,
                  filters: FilterConfig, model: ModelConfig | None = None, *,
                  generator: Generator | None = None, overwrite: bool = False,
                  events: EventLog | None = None, cancel: Callable[[], bool] | None = None,
                  on_item: ItemCallback | None = None, stream: Any = ...) -> dict:
    """prepare_run + (load the model) + synthesize: what ``selfguide synthesize``/``run`` do."""
    model = model or ModelConfig()
    prepare_run(run_dir, task, synth, filters, model, overwrite=overwrite)
    if generator is None:
        from selfguide import models

        generator = models.load_generator(model)
    from selfguide.backends.openai_client import record_server

    record_server(run_dir, generator)
    return synthesize(run_dir, task, synth, generator, filters=filters, chat=model.chat,
                      events=events, cancel=cancel, on_item=on_item, stream=stream)
