"""The Python API: configs from files, mappings or models with overrides; the run, its counts and the run directory
read back agree with the CLI; the value what-if; the README's example runs as written."""
from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest
from click.testing import CliRunner

import corpusslim
from corpusslim.cli import main
from corpusslim.errors import ConfigError
from tests.conftest import FULL_STAGES, REPO, SAMPLE, output_bytes, write_config


def test_mapping_paths_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = corpusslim.resolve_config({"input": "data", "output": "out", "stages": FULL_STAGES})
    assert config.input == str(tmp_path / "data") and config.output == str(tmp_path / "out")


def test_overrides_replace_keys_and_are_named_when_wrong(tmp_path):
    path = write_config(tmp_path)
    base = corpusslim.resolve_config(path)
    moved = corpusslim.resolve_config(base, output=str(tmp_path / "elsewhere"), workers=1)
    assert moved.output == str(tmp_path / "elsewhere") and moved.workers == 1
    assert moved.config_hash() == base.config_hash()  # where a run goes does not change what it computes
    with pytest.raises(ConfigError, match=r"^workers=0: workers: ") as bad:
        corpusslim.resolve_config(path, workers=0)
    assert "config.yaml" not in str(bad.value)
    with pytest.raises(ConfigError, match="unknown override stages"):
        corpusslim.resolve_config(path, stages=[])


def test_bounds_of_api_arguments(tmp_path):
    path = write_config(tmp_path, input=str(SAMPLE))
    with pytest.raises(ConfigError, match=r"^sample=0: must be at least 1"):
        corpusslim.dry_run("lid", path, sample=0)
    with pytest.raises(ConfigError, match="scheduler or scheduler_file, not both"):
        corpusslim.run(path, scheduler="tcp://127.0.0.1:1", scheduler_file=str(tmp_path / "s.json"))
    with pytest.raises(ConfigError, match=r"^scheduler_file='.*s\.json': cannot read it"):
        corpusslim.run(path, scheduler_file=str(tmp_path / "s.json"))
    with pytest.raises(ConfigError, match=r"^workers=10000: 10000 worker processes"):
        corpusslim.run(path, workers=10_000)


def test_what_if_from_a_config_and_settings():
    sample = corpusslim.what_if(REPO / "configs/sample.yaml", unique=1e11)
    assert (sample["law"], sample["plan"]) == ("muennighoff", "compute-optimal")
    fixed = dict(plan="fixed", params=1e9, tokens=2e10)
    small, large = corpusslim.what_if(unique=1e9, **fixed), corpusslim.what_if(unique=1e10, **fixed)
    assert large["loss"] < small["loss"]  # a larger unique pool means fewer repeated epochs
    assert corpusslim.what_if(unique=1e9, added=9e9, **fixed)["loss_after"] == pytest.approx(large["loss"])
    with pytest.raises(ConfigError, match="value: law: "):
        corpusslim.what_if(law="kaplan")
    with pytest.raises(ConfigError, match=r"^unique=0: "):
        corpusslim.what_if(unique=0, **fixed)


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"not a finished run \(config.json missing\)"):
        corpusslim.load_run(str(tmp_path))


@pytest.mark.slow
def test_api_run_counts_equal_the_cli_and_load_run_reads_it_back(sample_input, tmp_path):
    config = write_config(tmp_path)
    cli = CliRunner().invoke(main, ["run", str(config), "--output", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    result = corpusslim.run(config, output=str(tmp_path / "api"))
    stats = json.loads((tmp_path / "cli/stats.json").read_text())
    totals = stats["totals"]
    assert (result.docs_in, result.docs_kept, result.docs_rejected, result.tokens_in, result.tokens_kept) == (
        totals["docs_in"], totals["docs_kept"], totals["docs_rejected"], totals["tokens_in"], totals["tokens_kept"])
    assert (result.shards_done, result.shards_total, result.quarantined) == (6, 6, [])
    kept = f"documents in {result.docs_in:,}, kept {result.docs_kept:,}"
    assert kept in cli.output and kept in result.summary()
    assert output_bytes(tmp_path / "api") == output_bytes(tmp_path / "cli")
    run = corpusslim.load_run(str(tmp_path / "api"))
    assert isinstance(run.ledger, pl.DataFrame) and run.ledger.height == 6  # one batch per shard
    assert run.ledger["new_unique_tokens"].sum() == result.tokens_kept
    assert run.stats["totals"] == result.stats["totals"] and run.summary["recommendation"] == result.headline
    assert run.config.output == result.output
    kept, rejected = run.documents("kept"), run.documents("rejected")
    assert (kept.height, rejected.height) == (result.docs_kept, result.docs_rejected)
    assert rejected["reject_reason"].null_count() == 0


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python API section, run as written (in a copy of the repository's configs and sample data)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs").is_dir()
