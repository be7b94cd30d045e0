"""The per-source ledger and the budget allocator on synthetic unit results (no cluster): the fresher source gets
the budget first and the realised unique tokens of what it allocates fall inside the predicted band; a budget
below one batch's cost allocates nothing and says so; a source with one batch is "too few batches to fit"; batches
by tokens or documents close at the first unit boundary at or past the size."""
from __future__ import annotations

import json

import numpy as np
import pytest

from corpusslim.config import parse_config
from corpusslim.tracker.budget import allocate, overlap_sentence, source_views, summarise_sources
from corpusslim.tracker.ledger import BatchRule, batch_numbers, build_source_ledger

RAW = 1_000_000          # raw tokens per unit
FRESH = {"fresh": 0.95, "stale": 0.40}   # planted fresh shares: 5 % and 60 % of each batch duplicate earlier data


def unit(index: int, source: str, kept: int, raw: int = RAW, docs: int = 100) -> dict:
    """One unit's result as pipeline/worker.py reports it with a source column."""
    return {"status": "done", "index": index, "shard": f"{source}/{index}", "rows": {"in": docs, "kept": 1,
            "rejected": docs - 1}, "bytes_in": 4 * raw, "text_bytes": 4 * raw, "write_cpu_seconds": 0.1,
            "startup_cpu_seconds": 0.0,
            "stages": [{"stage": "input", "docs_in": docs, "tokens_in": raw, "docs_out": 1, "tokens_out": kept,
                        "cpu_seconds": 1.0, "removed": {}, "sources": {source: {"docs": docs, "tokens": raw}}}],
            "sources": {source: {"docs": 1, "tokens": kept, "lang": {"en": kept}}}}


def kept_tokens(share: float, rng: np.random.Generator, n: int) -> np.ndarray:
    return (RAW * share * rng.uniform(0.9, 1.1, n)).astype(int)


def results(batches: dict[str, int], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    kept = {s: kept_tokens(FRESH[s], rng, n) for s, n in batches.items()}
    order = sorted((k, s) for s, n in batches.items() for k in range(n))      # round-robin by position
    return [unit(i, s, int(kept[s][k])) for i, (k, s) in enumerate(order)]


@pytest.fixture(scope="module")
def config():
    # A 1e-3 sample: the pool (about 1e10 tokens) is inside the law's range and batches are worth their cost.
    return parse_config({"input": "x", "output": "y", "stages": [{"kind": "lid"}],
                         "value": {"sample_fraction": 1e-3, "training_runs": 10},
                         "cost": {"cpu_seconds_per_raw_token": 1e-6}})


def test_fresher_source_first_and_realised_tokens_inside_band(config):
    ledger = build_source_ledger(results({"fresh": 10, "stale": 10}), 1, config.cost)
    views = source_views(ledger, config)
    first = allocate(views, config, raw_tokens=1.0 * RAW / config.value.sample_fraction)
    assert [r["source"] for r in first["allocation"]] == ["fresh"]
    alloc = allocate(views, config, usd=1e6)
    rows = {r["source"]: r for r in alloc["allocation"]}
    fresh = rows["fresh"]
    assert fresh["batches"] >= rows.get("stale", {"batches": 0})["batches"]
    realised = kept_tokens(FRESH["fresh"], np.random.default_rng(7), fresh["batches"]).sum() \
        / config.value.sample_fraction
    assert fresh["unique_tokens_low"] <= realised <= fresh["unique_tokens_high"]
    assert alloc["unallocated_usd"] == pytest.approx(1e6 - sum(r["cost_usd"] for r in alloc["allocation"]))


def test_budget_below_one_batch_allocates_nothing(config):
    views = source_views(build_source_ledger(results({"fresh": 6, "stale": 6}), 1, config.cost), config)
    cheapest = min(summarise_sources(build_source_ledger(results({"fresh": 6, "stale": 6}), 1, config.cost),
                                     config)[s]["next_batch"]["cost_usd"] for s in FRESH)
    alloc = allocate(views, config, usd=cheapest / 2)
    assert alloc["allocation"] == []
    assert alloc["unallocated_usd"] == cheapest / 2
    assert alloc["message"].startswith("nothing allocated")
    assert all("more than the" in s["reason"] for s in alloc["stopped"])


def test_source_with_one_batch_is_too_few_to_fit(config):
    ledger = build_source_ledger(results({"fresh": 6, "stale": 1}), 1, config.cost)
    summary = summarise_sources(ledger, config)
    assert summary["stale"]["curve"]["reason"].startswith("too few batches to fit")
    assert summary["stale"]["next_batch"] is None
    stopped = {s["source"]: s["reason"] for s in allocate(source_views(ledger, config), config, usd=1e6)["stopped"]}
    assert stopped["stale"].startswith("too few batches to fit")


def test_language_view_counts_only_that_language(config):
    ledger = build_source_ledger(results({"fresh": 6, "stale": 6}), 1, config.cost)
    assert all(v.U == 0 for v in source_views(ledger, config, language="zh"))
    assert [v.U for v in source_views(ledger, config, language="en")] == [v.U for v in source_views(ledger, config)]


@pytest.mark.parametrize("rule, expected", [
    (BatchRule(shards=2), [0, 0, 1, 1, 2]),
    (BatchRule(tokens=2.5 * RAW), [0, 0, 0, 1, 1]),       # closes at the first boundary at or past 2.5 units
    (BatchRule(docs=200), [0, 0, 1, 1, 2]),
])
def test_batches_by_size_close_at_first_boundary_past_it(rule, expected):
    units = [unit(i, "a", RAW // 2) for i in range(5)]
    assert [batch_numbers(units, rule)[i] for i in range(5)] == expected


def test_source_ledger_batches_by_tokens_per_source(config):
    ledger = build_source_ledger(results({"fresh": 4, "stale": 4}), BatchRule(tokens=2 * RAW), config.cost)
    assert ledger.group_by("source").len().sort("source")["len"].to_list() == [2, 2]
    assert set(ledger["raw_tokens"].to_list()) == {2 * RAW}


def test_overlap_sentence_names_the_largest_cross_share():
    rows = [{"from": "old", "to": "new", "docs": 62, "tokens": 1}, {"from": "old", "to": "old", "docs": 38,
            "tokens": 1}, {"from": "new", "to": "new", "docs": 5, "tokens": 1}]
    assert overlap_sentence(rows).startswith("62 % of old's removed duplicates (62 of 100 documents) are copies of new")
    assert "do not overlap" in overlap_sentence([rows[2]])


@pytest.fixture
def run_dir(tmp_path, config):
    """A finished run directory as the runner leaves it (config, stats, both ledgers), without running a job."""
    from corpusslim.tracker.ledger import build_ledger

    units = results({"fresh": 6, "stale": 6})
    (tmp_path / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    (tmp_path / "stats.json").write_text("{}")
    build_ledger(units, 1, config.cost).write_parquet(tmp_path / "ledger.parquet")
    build_source_ledger(units, 1, config.cost).write_parquet(tmp_path / "ledger_sources.parquet")
    return tmp_path


def test_budget_command_prints_the_documented_json(run_dir):
    from click.testing import CliRunner

    from corpusslim.cli import main

    out = CliRunner().invoke(main, ["budget", str(run_dir), "--usd", "1e6", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert {"allocation", "unallocated_usd", "rule"} <= set(result)
    assert set(result["allocation"][0]) >= {"source", "batches", "raw_tokens", "unique_tokens", "unique_tokens_low",
                                            "unique_tokens_high", "cost_usd", "value_usd"}
    assert result["allocation"][0]["source"] == "fresh"


@pytest.mark.parametrize("args, message", [
    ([], "give a budget"),
    (["--usd", "-5"], "usd=-5.0: must be a positive number"),
    (["--usd", "10", "--language", "zh"], "language 'zh': no kept tokens of it in any source (kept: en)"),
])
def test_budget_command_bad_input_is_one_line(run_dir, args, message):
    from click.testing import CliRunner

    from corpusslim.cli import main

    out = CliRunner().invoke(main, ["budget", str(run_dir), *args])
    assert out.exit_code != 0
    assert message in out.output and "Traceback" not in out.output


def test_budget_of_a_run_without_sources_says_so(run_dir):
    from corpusslim.api import budget
    from corpusslim.errors import ConfigError

    (run_dir / "ledger_sources.parquet").unlink()
    with pytest.raises(ConfigError, match="the run has no sources"):
        budget(str(run_dir), usd=10)
