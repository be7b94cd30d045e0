"""The ``corpusslim`` command line."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from corpusslim.errors import CorpusSlimError

INTERRUPTED = 130  # 128 + SIGINT, the shell's status for a command ended by Ctrl-C


class ConsoleProgress:
    """Progress on stderr: a bar per phase on a terminal, one line per finished task otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.bar = None
        self.name, self.total, self.done = "", 0, 0

    def start(self, total: int, done: int, dashboard: str | None) -> None:
        click.echo(f"{total} shards, {done} already done" + (f"; Dask dashboard: {dashboard}" if dashboard else ""),
                   err=True)

    def workers(self, threads: dict[str, int]) -> None:
        counts = sorted(set(threads.values()))
        each = f"{counts[0]} thread{'s' if counts[0] != 1 else ''} each" if len(counts) == 1 else \
            f"{min(counts)}–{max(counts)} threads each"
        click.echo(f"{len(threads)} worker{'s' if len(threads) != 1 else ''}, {each}", err=True)

    def phase(self, name: str, tasks: int) -> None:
        self.close()
        self.name, self.total, self.done = name, tasks, 0
        if tasks and sys.stderr.isatty():
            self.bar = click.progressbar(length=tasks, label=name, file=sys.stderr, show_pos=True)
            self.bar.__enter__()

    def task(self, result: dict) -> None:
        self.done += 1
        if result.get("status") == "quarantined" or result.get("status") == "bad_input":
            click.echo(f"\nQUARANTINED {result['error']}", err=True)
        if self.bar is not None:
            self.bar.update(1)
            return
        rows = result.get("rows")
        what = result.get("shard") or result.get("task") or ""
        detail = f": {rows['in']} docs, {rows['kept']} kept" if rows else ""
        click.echo(f"{self.name} [{self.done}/{self.total}] {what}{detail}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class Main(click.Group):
    """The command group; Ctrl-C ends any command with one line and status 130, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            resumable = ctx.invoked_subcommand == "run"
            click.echo("\ninterrupted" + ("; rerun the same command to resume" if resumable else ""), err=True)
            ctx.exit(INTERRUPTED)


@contextmanager
def user_errors(**flags: object):
    """A user's mistake (a CorpusSlimError, an unwritable path) as one ``Error:`` line and status 1; an error about
    a config key that a flag in ``flags`` set (``input: ...``) names the flag (``--input: ...``)."""
    try:
        yield
    except CorpusSlimError as exc:
        message = str(exc)
        for key, value in flags.items():
            if value is not None and message.startswith(f"{key}: "):
                message = f"--{key}{message[len(key):]}"
        raise click.ClickException(message) from None
    except OSError as exc:  # e.g. the output directory cannot be created
        raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="corpusslim", message="%(prog)s %(version)s")
def main() -> None:
    """CorpusSlim: clean pretraining data on Dask and price each batch by the unique tokens it adds."""


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--input", "input_", help="Input file, directory or glob (overrides the config's input).")
@click.option("--output", help="Run directory (overrides the config's output).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Local Dask worker processes (default: config, else CPU count); at most 4 per core and one per "
                   "1.5 GB of RAM unless --force.")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--scheduler-file", type=click.Path(dir_okay=False),
              help="Scheduler file of an existing Dask cluster (dask-jobqueue, dask-mpi, dask scheduler "
                   "--scheduler-file).")
@click.option("--force", is_flag=True,
              help="Replace an output directory that holds a run of another config; allow more local workers than "
                   "the machine's bound.")
@click.option("--against", "against", type=click.Path(file_okay=False),
              help="A finished run directory: dedup the new shards against everything it (and its own --against) saw.")
@click.option("--no-figures", is_flag=True,
              help="Write the report without its figures (saves about 0.8 s of CPU); `corpusslim report` draws them.")
def run_cmd(config: str, input_: str | None, output: str | None, workers: int | None, scheduler: str | None,
            scheduler_file: str | None, force: bool, against: str | None, no_figures: bool) -> None:
    """Run the batch job of CONFIG (resumes an interrupted run of the same config)."""
    from corpusslim import api
    from corpusslim.runtime.cluster import local_workers_problem, scheduler_address

    if scheduler and scheduler_file:
        raise click.UsageError("give --scheduler or --scheduler-file, not both")
    if scheduler_file:
        try:
            scheduler = scheduler_address(scheduler_file)
        except ValueError as exc:
            raise click.BadParameter(f"{scheduler_file}: {exc}", param_hint="'--scheduler-file'") from None
    problem = workers and not scheduler and not force and local_workers_problem(workers)
    if problem:
        raise click.BadParameter(problem, param_hint="'--workers'")
    progress = ConsoleProgress()
    try:
        with user_errors(input=input_, output=output):
            result = api.run(config, input=input_, output=output, workers=workers, scheduler=scheduler,
                             against=against, force=force, figures=not no_figures, progress=progress)
    finally:
        progress.close()
    click.echo(result.summary())
    click.echo(f"output: {result.output} (report: {result.report})")
    click.echo(result.headline)


@main.command("report")
@click.argument("run_dir")
def report_cmd(run_dir: str) -> None:
    """Rebuild the marginal-benefit report of RUN_DIR (report/index.html, summary.json, summary.md)."""
    from corpusslim import api
    from corpusslim.runtime import storage

    with user_errors():
        summary = api.rebuild_report(run_dir)
    click.echo(storage.join(storage.absolute(run_dir), "report", "index.html"))
    click.echo(summary["recommendation"])


def _stage_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    from corpusslim.registry import STAGES
    from corpusslim.runtime.inputs import INPUT_REASONS

    if name == "input":
        raise click.BadParameter(f"'input' is the step before every stage (reasons {', '.join(INPUT_REASONS)}), not "
                                 f"a stage of its own; stages: {', '.join(STAGES)}")
    if name not in STAGES:
        raise click.BadParameter(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return name


@main.command("stage")
@click.argument("name", callback=_stage_name)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Accepted for compatibility: a dry run is the only mode.")
@click.option("--sample", "sample", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Documents in the sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--input", "input_", help="Input file, directory or glob (overrides the config's input).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Cluster size for the projected wall time (default: config, else CPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stage_cmd(name: str, config: str, dry_run: bool, sample: int, seed: int, input_: str | None,
              workers: int | None, as_json: bool) -> None:
    """Dry run of stage NAME on a sample, writing nothing: what it would remove, why, and what the full run would
    cost."""
    import json

    from corpusslim import api
    from corpusslim.preview.dryrun import format_dry_run

    with user_errors(input=input_):
        report = api.dry_run(name, config, sample=sample, seed=seed, input=input_, workers=workers)
    click.echo(json.dumps(report, ensure_ascii=False) if as_json else format_dry_run(report))


@main.command("plan")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--sample", "sample", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Documents in the sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--write", "write", type=click.Path(dir_okay=False),
              help="Write the reordered config to this file (paths relative to it, a new output directory).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan_cmd(config: str, sample: int, seed: int, write: str | None, as_json: bool) -> None:
    """Propose the stage order (and a cheap pre-filter) that minimises CPU per kept token, checked on a sample."""
    import json
    import os

    from corpusslim import api
    from corpusslim.preview.plan import format_plan, write_planned_config

    if write and not os.path.isdir(os.path.dirname(os.path.abspath(write))):
        raise click.BadParameter(f"{write}: no directory {os.path.dirname(os.path.abspath(write))}",
                                 param_hint="'--write'")
    with user_errors():
        result = api.plan_order(config, sample=sample, seed=seed)
    click.echo(json.dumps(result) if as_json else format_plan(result))
    if write:
        with user_errors():
            output = write_planned_config(config, result, write)
        click.echo(f"wrote {write} (output: {output})", err=True)


@main.command("stages")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stages_cmd(as_json: bool) -> None:
    """List the stages, their reason codes and their config keys with defaults."""
    import json

    from corpusslim.registry import describe_stages
    from corpusslim.runtime.inputs import INPUT_REASONS

    stages = describe_stages()
    if as_json:
        click.echo(json.dumps({"input_reasons": INPUT_REASONS, "stages": stages}, default=str))
        return
    click.echo("input (always first): " + ", ".join(f"{k} ({v})" for k, v in INPUT_REASONS.items()))
    for s in stages:
        extra = (" · global (all shards)" if s["global"] else "") + \
            (f" · needs {', '.join(s['requires'])} earlier" if s["requires"] else "") + \
            (f" · after {', '.join(s['after'])} when configured" if s["after"] else "")
        click.echo(f"\n{s['kind']}{extra} · adds {', '.join(s['columns'])}")
        for code, meaning in s["reasons"].items():
            click.echo(f"  reason {code}: {meaning}")
        for c in s["config"]:
            value = "(required)" if c["required"] else f"= {c['default']!r}"
            click.echo(f"  {c['key']} {value}" + (f"  # {c['description']}" if c["description"] else ""))


@main.command("value")
@click.option("--law", type=click.Choice(["chinchilla", "besiroglu", "muennighoff"]), default="muennighoff",
              show_default=True, help="Parametric scaling law.")
@click.option("--plan", type=click.Choice(["fixed", "fixed-params", "compute-optimal"]),
              help="Training plan; default: compute-optimal with --compute, else fixed.")
@click.option("--params", type=float, help="Model size N (parameters), e.g. 7e9 (fixed, fixed-params).")
@click.option("--tokens", type=float, help="Training token budget D, e.g. 1.4e12 (fixed, fixed-params).")
@click.option("--compute", type=float, help="Training compute C in FLOPs, e.g. 5.88e22 (compute-optimal).")
@click.option("--unique", type=float, help="Unique tokens U in the pool; default: the tokens the plan wants.")
@click.option("--add", type=float, default=1e9, show_default=True, help="Unique tokens the batch adds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def value_cmd(law: str, plan: str | None, params: float | None, tokens: float | None, compute: float | None,
              unique: float | None, add: float, as_json: bool) -> None:
    """What-if without a run: loss, compute-optimal split, and what ADD more unique tokens are worth to the plan."""
    import json

    from corpusslim.tracker.value import format_value_report, value_config_from_flags, value_report

    try:
        value = value_config_from_flags(law, plan, params=params, tokens=tokens, compute=compute, unique=unique,
                                        add=add)
    except ValueError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    report = value_report(value, unique, add)
    click.echo(json.dumps(report) if as_json else format_value_report(report))



@main.command("budget")
@click.argument("run_dir")
@click.option("--usd", type=float, help="Budget in dollars (pool scale, like the report's costs).")
@click.option("--raw-tokens", type=float, help="Or a limit in raw tokens (pool scale).")
@click.option("--language", help="Allocate for the unique tokens of this detected language (e.g. zh).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def budget_cmd(run_dir: str, usd: float | None, raw_tokens: float | None, language: str | None,
               as_json: bool) -> None:
    """How many batches of each source of RUN_DIR to process next for a budget (README: the allocation rule)."""
    import json

    from corpusslim import api
    from corpusslim.tracker.budget import format_allocation
    from corpusslim.tracker.decision import json_safe

    with user_errors():
        result = api.budget(run_dir, usd=usd, raw_tokens=raw_tokens, language=language)
    click.echo(json.dumps(json_safe(result)) if as_json else format_allocation(result))


if __name__ == "__main__":
    main()
