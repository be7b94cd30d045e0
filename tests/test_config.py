"""Config errors stop the job with one message naming the key path; YAML is loaded safely."""
from __future__ import annotations

import pytest

from corpusslim.config import load_config
from corpusslim.errors import ConfigError
from corpusslim.runtime.runner import run
from tests.conftest import REPO, write_config


def test_sample_config_is_valid():
    cfg = load_config(REPO / "configs/sample.yaml")
    assert cfg.stages[0].kind == "lid"
    assert cfg.input == str(REPO / "sample_data")


@pytest.mark.parametrize("overrides, key, words", [
    ({"shards_per_batch": 2}, "shards_per_batch", "unknown key"),
    ({"workers": "two"}, "workers", "integer"),
    ({"stages": [{"kind": "lid", "min_score": 1.5}]}, "stages[0].min_score", "less than or equal to 1"),
    ({"stages": [{"kind": "lid", "min_scor": 0.5}]}, "stages[0].min_scor", "unknown key"),
    ({"stages": [{"kind": "nope"}]}, "stages[0]", "does not match any of the expected tags"),
    ({"on_bad_shard": "ignore"}, "on_bad_shard", "'quarantine' or 'fail'"),
    ({"cost": {"usd_per_cpu_hour": -1}}, "cost.usd_per_cpu_hour", "greater than or equal to 0"),
])
def test_config_error_names_key(tmp_path, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, **overrides))
    message = str(err.value)
    assert f"{key}:" in message and words in message, message


def test_missing_input_names_key(tmp_path):
    cfg = load_config(write_config(tmp_path, input="nowhere/*.parquet"))
    with pytest.raises(ConfigError, match=r"input: no input files \(Parquet or JSON Lines\) match .*nowhere"):
        run(cfg)


def test_yaml_object_construction_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("input: !!python/object/apply:os.system ['echo pwned']\noutput: out\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_relative_paths_follow_the_config_file(tmp_path):
    cfg = load_config(write_config(tmp_path))
    assert cfg.input == str(tmp_path / "input") and cfg.output == str(tmp_path / "out")


def test_cli_overrides_and_hash_ignores_workers(tmp_path):
    base = load_config(write_config(tmp_path))
    other = load_config(write_config(tmp_path), {"workers": 1, "output": str(tmp_path / "elsewhere")})
    assert other.workers == 1 and other.output == str(tmp_path / "elsewhere")
    assert other.config_hash() == base.config_hash()
    changed = load_config(write_config(tmp_path, stages=[{"kind": "lid", "min_score": 0.5}]))
    assert changed.config_hash() != base.config_hash()
