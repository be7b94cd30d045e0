"""The Python API: every ``corpusslim`` command as a function, for notebooks and scripts (the CLI is a thin layer
over it). Re-exported from the package:

>>> import corpusslim
>>> result = corpusslim.run("configs/sample.yaml", output="runs/api", workers=2)   # corpusslim run
>>> result.docs_kept, result.headline
>>> run = corpusslim.load_run("runs/api")        # its config, stats, ledger (polars) and report summary
>>> corpusslim.dry_run("quality", "configs/sample.yaml", sample=500)                # corpusslim stage
>>> corpusslim.plan_order("configs/sample.yaml")                                    # corpusslim plan
>>> corpusslim.what_if(plan="compute-optimal", compute=5.88e21, unique=1e11)        # corpusslim value
>>> corpusslim.rebuild_report("runs/api")                                           # corpusslim report

(``corpusslim.tracker.value``, ``corpusslim.preview.plan`` and ``corpusslim.tracker.report`` are the modules behind the
last three.) Every function raises a :class:`corpusslim.errors.CorpusSlimError` subclass with a one-line message on bad
input.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from corpusslim.config import PATH_KEYS, RunConfig, ValueConfig, load_config, parse_config, resolve_path
from corpusslim.errors import ConfigError
from corpusslim.runtime import storage

ConfigLike = str | os.PathLike | RunConfig | dict
# Overrides of ``run``/``dry_run``/``plan`` that replace a key of the config.
CONFIG_OVERRIDES = ("input", "output", "workers")


def resolve_config(config: ConfigLike, **overrides) -> RunConfig:
    """A validated :class:`RunConfig` from a YAML path, a mapping or a RunConfig, with ``input``, ``output`` or
    ``workers`` replaced by the overrides that are not None. Relative paths: in a file, relative to the file; in a
    mapping or an override, relative to the current directory. An override that breaks the config is named as such
    (``workers=0: ...``), not blamed on the file."""
    unknown = set(overrides) - set(CONFIG_OVERRIDES)
    if unknown:
        raise ConfigError(f"unknown override {', '.join(sorted(unknown))}; overrides: {', '.join(CONFIG_OVERRIDES)}")
    if isinstance(config, RunConfig):
        base = config
    elif isinstance(config, dict):
        data = {k: resolve_path(v, Path.cwd()) if k in PATH_KEYS and isinstance(v, str) else v
                for k, v in config.items()}
        base = parse_config(data, "config", str(Path.cwd()))
    else:
        base = load_config(config)
    given = {k: resolve_path(str(v), Path.cwd()) if k in PATH_KEYS else v
             for k, v in overrides.items() if v is not None}
    if not given:
        return base
    source = ", ".join(f"{k}={overrides[k]!r}" for k in given)
    return parse_config({**base.model_dump(mode="json"), **given}, source)


@dataclass(frozen=True)
class RunResult:
    """What ``run`` returns: the headline numbers, where everything is, and the full stats (``stats.json``)."""

    output: str
    docs_in: int
    docs_kept: int
    docs_rejected: int
    tokens_in: int
    tokens_kept: int
    shards_done: int
    shards_total: int
    quarantined: list[dict]
    headline: str  # the report's one-sentence answer: is the next batch worth its cost?
    stats: dict = field(repr=False)

    @property
    def report(self) -> str:
        return storage.join(self.output, "report", "index.html")

    def summary(self) -> str:
        """The table the CLI prints: per stage and reason, documents, tokens and CPU seconds."""
        from corpusslim.tracker.stats import format_summary

        return format_summary(self.stats)


def run(config: ConfigLike, *, input: str | None = None, output: str | None = None, workers: int | None = None,
        scheduler: str | None = None, scheduler_file: str | None = None, against: str | None = None,
        force: bool = False, figures: bool = True, progress=None) -> RunResult:
    """Run (or resume) the batch job of ``config``, like ``corpusslim run``.

    ``scheduler``: address of an existing Dask scheduler; ``scheduler_file``: the JSON file dask-jobqueue,
    dask-mpi or ``dask scheduler --scheduler-file`` write (give one of the two). Without either, a local cluster
    of ``workers`` processes, refused beyond the machine's bound (``corpusslim.runtime.cluster.local_workers_problem``)
    unless ``force``; ``force`` also replaces an output directory holding a run of another config. ``against``: a
    finished run to dedup against. ``figures=False``: the report without its figures (``rebuild_report`` draws
    them). ``progress``: a :class:`corpusslim.runtime.runner.Progress` receiving the events.
    """
    from corpusslim.runtime.cluster import local_workers_problem, scheduler_address
    from corpusslim.runtime.runner import run as run_job

    cfg = resolve_config(config, input=input, output=output, workers=workers)
    if scheduler and scheduler_file:
        raise ConfigError("give scheduler or scheduler_file, not both")
    if scheduler_file:
        try:
            scheduler = scheduler_address(scheduler_file)
        except ValueError as exc:
            raise ConfigError(f"scheduler_file={scheduler_file!r}: {exc}") from None
    if not scheduler and cfg.workers and not force:
        problem = local_workers_problem(cfg.workers)
        if problem:
            source = f"workers={workers!r}" if workers is not None else f"{_source(config)}: workers: {cfg.workers}"
            raise ConfigError(f"{source}: {problem}")
    stats = run_job(cfg, scheduler=scheduler, force=force, progress=progress, against=against, figures=figures)
    totals = stats["totals"]
    return RunResult(output=cfg.output, docs_in=totals["docs_in"], docs_kept=totals["docs_kept"],
                     docs_rejected=totals["docs_rejected"], tokens_in=totals["tokens_in"],
                     tokens_kept=totals["tokens_kept"], shards_done=stats["shards"]["done"],
                     shards_total=stats["shards"]["total"], quarantined=stats["quarantined"],
                     headline=stats["recommendation"], stats=stats)


def _source(config: ConfigLike) -> str:
    return str(config) if isinstance(config, str | os.PathLike) else "config"


def dry_run(stage: str, config: ConfigLike, *, sample: int = 1000, seed: int = 0, input: str | None = None,
            workers: int | None = None) -> dict:
    """Stage ``stage`` on a sample of ``sample`` documents, like ``corpusslim stage``: what it would remove and why,
    and the projected cost of the full run on ``workers`` (default: the config's, else the CPU count). Writes
    nothing."""
    from corpusslim.preview.dryrun import dry_run as run_dry

    _positive(sample=sample, workers=workers)
    return run_dry(resolve_config(config, input=input), stage, sample, seed, workers)


def plan_order(config: ConfigLike, *, sample: int = 1000, seed: int = 0) -> dict:
    """The stage order (and length pre-filter) that minimises CPU per kept token, checked on a sample, like
    ``corpusslim plan``; ``corpusslim.preview.plan.write_planned_config`` saves it as a config file."""
    from corpusslim.preview.plan import plan as run_plan

    _positive(sample=sample)
    return run_plan(resolve_config(config), sample, seed)


def _positive(**values: int | None) -> None:
    for name, x in values.items():
        if x is not None and x < 1:
            raise ConfigError(f"{name}={x}: must be at least 1")


def what_if(config: ConfigLike | ValueConfig | None = None, *, unique: float | None = None, added: float = 1e9,
          **settings) -> dict:
    """What ``added`` more unique tokens are worth to a training plan, like ``corpusslim value``
    (``corpusslim.tracker.value.value_report``): loss, compute-optimal split and the value of the batch.

    The plan: the ``value:`` section of ``config`` (a run config, or a ValueConfig), with ``settings`` (any key of
    ``value:``: law, plan, params, tokens, compute, ...) on top. ``unique``: the pool's unique tokens (default: the
    pool the plan wants).
    """
    from corpusslim.tracker.value import value_report

    if isinstance(config, ValueConfig):
        base = config.model_dump()
    else:
        base = resolve_config(config).value.model_dump() if config is not None else {}
    try:
        plan_config = ValueConfig(**{**base, **settings})
    except ValidationError as exc:
        raise ConfigError("value: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                for e in exc.errors())) from None
    _positive_float(unique=unique, added=added)
    return value_report(plan_config, unique, added)


def _positive_float(**values: float | None) -> None:
    for name, x in values.items():
        if x is not None and not x > 0:
            raise ConfigError(f"{name}={x}: must be a positive number of tokens")


@dataclass(frozen=True)
class Run:
    """A run directory read back: its config, stats (``stats.json``), ledger (``ledger.parquet``, one row per
    batch) and report summary (``report/summary.json``; None before the report was built)."""

    path: str
    config: RunConfig
    stats: dict = field(repr=False)
    ledger: pl.DataFrame = field(repr=False)
    summary: dict | None = field(repr=False)

    def documents(self, directory: str = "kept") -> pl.DataFrame:
        """Every document of ``kept``, ``rejected`` or ``removed_lines`` (either output format), in arrival order,
        with the input's own column names."""
        from corpusslim.runtime import outputs

        frames = [outputs.read(path) for path in outputs.files(self.path, directory)]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def load_run(run_dir: str) -> Run:
    """Read a finished run directory (``ConfigError`` naming the missing file when it is not one)."""
    from corpusslim.runtime.runner import CONFIG_FILE

    run_dir = storage.absolute(run_dir)
    try:
        config = parse_config(json.loads(storage.read_text(storage.join(run_dir, CONFIG_FILE))), run_dir)
        stats = json.loads(storage.read_text(storage.join(run_dir, "stats.json")))
        ledger = storage.read_parquet(storage.join(run_dir, "ledger.parquet"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{run_dir}: not a finished run ({Path(exc.filename or '?').name} missing)") from None
    summary_path = storage.join(run_dir, "report", "summary.json")
    summary = json.loads(storage.read_text(summary_path)) if storage.exists(summary_path) else None
    return Run(run_dir, config, stats, ledger, summary)


def rebuild_report(run_dir: str) -> dict:
    """Rebuild the report of a run directory (``report/index.html``, ``summary.json``, ``summary.md``), like
    ``corpusslim report``; returns the summary."""
    from corpusslim.tracker.report import write_report

    run = load_run(run_dir)
    return write_report(run.path, run.config)


def budget(run_dir: str, *, usd: float | None = None, raw_tokens: float | None = None,
           language: str | None = None) -> dict:
    """How much of each source of a finished run to process next for ``usd`` (pool-scale dollars) and/or
    ``raw_tokens``, like ``corpusslim budget``; with ``language`` (e.g. "zh"), for that language's unique tokens.
    The allocation rule is :func:`corpusslim.tracker.budget.allocate`."""
    from corpusslim.tracker.budget import allocate, load_views

    if usd is None and raw_tokens is None:
        raise ConfigError("give a budget: usd (dollars) or raw_tokens")
    for name, x in (("usd", usd), ("raw_tokens", raw_tokens)):
        if x is not None and not x > 0:
            raise ConfigError(f"{name}={x}: must be a positive number")
    run = load_run(run_dir)
    views = load_views(run.path, run.config, language)
    if not views:
        raise ConfigError(f"{run.path}: the run has no sources (set sources: or source_column: in its config)")
    if language and not any(v.U > 0 for v in views):
        seen = sorted(c.removeprefix("lang_") for c in run.ledger.columns if c.startswith("lang_"))
        raise ConfigError(f"language {language!r}: no kept tokens of it in any source (kept: {', '.join(seen)})")
    return {**allocate(views, run.config, usd=usd, raw_tokens=raw_tokens), "language": language}
