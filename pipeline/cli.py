"""The ``corpusslim`` command line."""
from __future__ import annotations

import sys

import click

from pipeline.errors import CorpusSlimError


class ConsoleProgress:
    """Progress on stderr: a bar per phase on a terminal, one line per finished task otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.bar = None
        self.name, self.total, self.done = "", 0, 0

    def start(self, total: int, done: int, dashboard: str | None) -> None:
        click.echo(f"{total} shards, {done} already done" + (f"; Dask dashboard: {dashboard}" if dashboard else ""),
                   err=True)

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """CorpusSlim: clean pretraining data on Dask and price each batch by the unique tokens it adds."""


@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--input", "input_", help="Parquet file, directory or glob (overrides the config's input).")
@click.option("--output", help="Run directory (overrides the config's output).")
@click.option("--workers", type=int, help="Local Dask worker processes (default: config, else CPU count).")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--force", is_flag=True, help="Replace an output directory that holds a run of another config.")
@click.option("--against", "against", type=click.Path(file_okay=False),
              help="A finished run directory: dedup the new shards against everything it (and its own --against) saw.")
def run_cmd(config: str, input_: str | None, output: str | None, workers: int | None, scheduler: str | None,
            force: bool, against: str | None) -> None:
    """Run the batch job of CONFIG (resumes an interrupted run of the same config)."""
    from pipeline.config import load_config
    from pipeline.runner import run
    from pipeline.stats import format_summary

    progress = ConsoleProgress()
    try:
        cfg = load_config(config, {"input": input_, "output": output, "workers": workers})
        stats = run(cfg, scheduler=scheduler, force=force, progress=progress, against=against)
    except CorpusSlimError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        progress.close()
    click.echo(format_summary(stats))
    click.echo(f"output: {cfg.output}")


if __name__ == "__main__":
    main()
