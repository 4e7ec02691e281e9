"""Self-Instruct (Wang et al. 2022): bootstrap new instructions and their instances from a
seed task pool.

The folder: ``config`` (SelfInstructConfig, SelfInstructFilterConfig, the filter fields
frozen after generation), ``prompts`` (seed pool, prompts, parsers), ``filters``,
``table`` (candidates, records, report) and ``pipeline`` (the rounds, refilter). This
module registers the method; nothing heavy is imported.
"""

from __future__ import annotations

from selfguide.methods import Method, lazy, register
from selfguide.methods.selfinstruct import config


def _refilter(run_dir, filters=None) -> dict:
    from selfguide.methods.selfinstruct.pipeline import refilter

    return refilter(run_dir, filters if filters is not None else _load_settings(run_dir)[1])


def _load_candidates(run_dir):
    from selfguide.methods import candidates
    from selfguide.methods.selfinstruct.pipeline import generation_hash, load_rounds
    from selfguide.methods.selfinstruct.table import candidates_table
    from selfguide.runs.rundir import as_run

    run = as_run(run_dir)
    df = candidates.read(run)
    if df is not None:
        return df
    rounds = load_rounds(run, generation_hash(run.read_config()))
    return candidates_table(rounds, _load_settings(run)[1], run.read_overrides())


def _load_settings(run_dir) -> tuple[config.SelfInstructConfig, config.SelfInstructFilterConfig]:
    from selfguide.errors import ConfigError
    from selfguide.runs.rundir import as_run
    from selfguide.settings.fields import from_dict

    cfg = as_run(run_dir).read_config()
    if cfg.get("method") != "selfinstruct":
        raise ConfigError(f"{as_run(run_dir).name} is not a Self-Instruct run.",
                          hint="Run 'selfguide self-instruct --run NAME' first.")
    return (from_dict(config.SelfInstructConfig, cfg.get("synthesis") or {}, strict=False),
            from_dict(config.SelfInstructFilterConfig, cfg.get("filters") or {},
                      strict=False))


def _filter_order() -> tuple[str, ...]:
    from selfguide.methods.selfinstruct.table import FILTER_COLUMNS

    return FILTER_COLUMNS


METHOD = register(Method(
    name="selfinstruct", title="Self-Instruct", stage="self-instruct", command="self_instruct",
    synthesis_config=config.SelfInstructConfig, filter_config=config.SelfInstructFilterConfig,
    run=lazy("selfguide.methods.selfinstruct.pipeline", "run_self_instruct"),
    format_report=lazy("selfguide.methods.selfinstruct.table", "format_report"),
    refilter=_refilter, load_candidates=_load_candidates, load_settings=_load_settings,
    frozen_filters=config.POOL_FILTER_FIELDS, filter_order=_filter_order(),
    presets={},
    summary="Self-Instruct (Wang et al. 2022): new instructions and instances",
    subtitle="Step 3 of 6 · Self-Instruct: the model writes new instructions from a pool of "
             "seed tasks (those too close to the pool are rejected), then an input and output "
             "for each; they become training examples.",
    citation="Self-Instruct (Wang et al., 2022)", tag="self-instruct", order=10,
    needs_task=False, job_stages={"self-instruct": "generating instructions"},
    studio="studio.views.methods.selfinstruct"))
