"""Shared helpers: tests copy sample_data/ into a temporary directory and run real jobs on a local Dask cluster."""
from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


FULL_STAGES = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "segment"}, {"kind": "dedup"}, {"kind": "quality"}]


def write_config(directory: Path, **overrides) -> Path:
    """A config file in ``directory`` running every stage on ``directory/input`` into ``directory/out``."""
    config = {"input": "input", "output": "out", "workers": 2, "stages": FULL_STAGES}
    config.update(overrides)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def output_bytes(out: Path) -> dict[str, bytes]:
    """Every kept/ and rejected/ file of a run, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for d in ("kept", "rejected") for p in sorted((out / d).glob("*"))}


def run_cli_quarantining(directory: Path):
    """``corpusslim run`` on ``write_config(directory)``, expected to finish: (CLI result, stats.json, the
    quarantine errors by shard)."""
    import json

    from click.testing import CliRunner

    from corpusslim.cli import main

    result = CliRunner().invoke(main, ["run", str(write_config(directory))])
    assert result.exit_code == 0, result.output
    stats = json.loads((directory / "out/stats.json").read_text())
    return result, stats, {q["shard"]: q["error"] for q in stats["quarantined"]}


def read_dir(directory: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(directory.glob("*.parquet"))], how="diagonal_relaxed")


# Fixtures that run a whole job (or hand one its input): a test that asks for one is a run-level test.
RUN_FIXTURES = {"reference", "sample_input"}


def pytest_collection_modifyitems(items):
    """Mark run-level tests ``slow`` (``python -m pytest -m "not slow"`` is the fast tier): every test that uses a
    run fixture, besides those marked by hand."""
    for item in items:
        if RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def sample_input(tmp_path: Path) -> Path:
    """A private copy of sample_data's shards under tmp_path/input."""
    target = tmp_path / "input"
    target.mkdir()
    for shard in sorted(SAMPLE.glob("*.parquet")):
        shutil.copy(shard, target / shard.name)
    return target


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """One uninterrupted 2-worker run of every stage over a copy of sample_data, shared by the tests that compare
    against it: (root with input/, out/ and config.yaml, stats)."""
    from corpusslim.config import load_config
    from corpusslim.runtime.runner import run

    root = tmp_path_factory.mktemp("reference")
    (root / "input").mkdir()
    for shard in SAMPLE.glob("*.parquet"):
        shutil.copy(shard, root / "input" / shard.name)
    stats = run(load_config(write_config(root)))
    return root, stats
