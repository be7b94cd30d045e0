"""The ledger and the decision on synthetic shard results (no cluster): quarantined shards are not batches,
every shard quarantined is a clear error, --against continues the ledger, a pinned cost gives identical headlines,
and the JSON keeps "unbounded", "n/a" and "outside the law" apart."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from corpusslim.config import CostConfig, RunConfig
from corpusslim.errors import ShardInputError
from corpusslim.tracker.decision import json_safe, summarise
from corpusslim.tracker.ledger import build_ledger, cost_basis

RAW = 1_000_000          # raw tokens per shard
BYTES = 4_000_000        # bytes read per shard


def shard(index: int, new_unique: int, cpu: float = 2.0, status: str = "done") -> dict:
    """One shard's result as pipeline/worker.py reports it."""
    if status != "done":
        return {"status": status, "index": index, "shard": f"s{index:03d}", "path": f"/in/s{index:03d}.parquet",
                "error": "not Parquet"}
    return {"status": "done", "index": index, "shard": f"s{index:03d}", "path": f"/in/s{index:03d}.parquet",
            "rows": {"in": 1000, "kept": new_unique // 1000, "rejected": 1000 - new_unique // 1000},
            "text_bytes": BYTES, "bytes_in": BYTES, "write_cpu_seconds": 0.1, "startup_cpu_seconds": 0.5,
            "stages": [{"stage": "input", "docs_in": 1000, "tokens_in": RAW, "docs_out": 1000, "tokens_out": RAW,
                        "cpu_seconds": 0.1, "removed": {}},
                       {"stage": "dedup", "docs_in": 1000, "tokens_in": RAW, "docs_out": new_unique // 1000,
                        "tokens_out": new_unique, "cpu_seconds": cpu, "removed": {}}]}


def series(n: int, seed: int = 0, cpu_noise: float = 0.0) -> list[dict]:
    """n shards whose fresh share falls as a power law (gamma 0.7), CPU time optionally noisy (a busy machine)."""
    rng = np.random.default_rng(seed)
    cum = RAW * np.arange(1, n + 1) ** 0.7
    new = np.diff(cum, prepend=0.0) * (1 + 0.05 * rng.standard_normal(n))
    return [shard(i, int(u), cpu=2.0 * (1 + cpu_noise * rng.random())) for i, u in enumerate(new)]


def stats_of(results: list[dict]) -> dict:
    return {"totals": {}, "batches": [], "quarantined": [r for r in results if r["status"] != "done"]}


CONFIG = RunConfig(input="/in", output="/out", stages=[{"kind": "lid"}],
                   value={"law": "chinchilla", "plan": "fixed",
                          "sample_fraction": 1e-4, "params": 1e9, "tokens": 1e11},
                   cost={"cpu_seconds_per_raw_token": 2e-6})


def test_a_quarantined_shard_is_not_a_batch_and_never_triggers_stop():
    results = series(12)
    healthy = summarise(build_ledger(results, 1, CONFIG.cost), stats_of(results), CONFIG)
    results[5] = shard(5, 0, status="quarantined")
    ledger = build_ledger(results, 1, CONFIG.cost)
    assert ledger.height == 11 and list(ledger["batch"]) == list(range(11))
    assert ledger["new_unique_tokens"].min() > 0                       # no 0-document batch
    summary = summarise(ledger, stats_of(results), CONFIG)
    assert [b["batch"] for b in summary["batches"]] == list(range(11))
    assert healthy["stop"]["batches_more"] > 0
    assert summary["stop"]["high"] > 0 and "Stop now" not in summary["headline"]
    # With two shards per batch the quarantined one is counted in its batch, which is still valued.
    paired = build_ledger(results, 2, CONFIG.cost)
    assert paired.height == 6 and paired["quarantined_shards"].to_list() == [0, 0, 1, 0, 0, 0]


def test_every_shard_quarantined_is_a_clear_error_naming_them():
    results = [shard(i, 0, status="quarantined") for i in range(3)]
    with pytest.raises(ShardInputError, match=r"every input shard was quarantined.*s000.*s001.*s002"):
        build_ledger(results, 1, CONFIG.cost)


def test_against_continues_the_ledger_and_gives_the_single_runs_headline():
    results = series(14)
    single = build_ledger(results, 1, CONFIG.cost)
    first = build_ledger(results[:8], 1, CONFIG.cost)
    second = [dict(r, index=r["index"] - 8) for r in results[8:]]       # the new run numbers its shards from 0
    continued = build_ledger(second, 1, CONFIG.cost, prior=first)
    for column in ("batch", "raw_tokens", "new_unique_tokens", "cum_raw_tokens", "cum_unique_tokens"):
        assert continued[column].to_list() == single[column].to_list(), column
    a = summarise(single, stats_of(results), CONFIG)
    b = summarise(continued, stats_of(results), CONFIG)
    assert a["headline"] == b["headline"] and a["stop"] == b["stop"]


def test_pinned_cost_gives_identical_headlines_under_different_load():
    busy = series(12, cpu_noise=0.0)
    idle = series(12, cpu_noise=3.0)                                   # same data, CPU up to 4x slower
    ledgers = [build_ledger(r, 1, CONFIG.cost) for r in (busy, idle)]
    assert ledgers[0]["cpu_usd"].to_list() != ledgers[1]["cpu_usd"].to_list()
    heads = [summarise(ledger, stats_of(busy), CONFIG)["headline"] for ledger in ledgers]
    assert heads[0] == heads[1]
    assert "more batches" in heads[0] or "Stop now" in heads[0] or "keep going" in heads[0]


def test_fitted_cost_basis_ignores_one_slow_batch():
    results = series(9)
    results[4] = shard(4, results[4]["stages"][-1]["tokens_out"], cpu=200.0)   # one batch 100x slower
    basis = cost_basis(build_ledger(results, 1, CostConfig()), CostConfig())
    per_token = (2.0 + 0.2) / 3600 * CostConfig().usd_per_cpu_hour / RAW     # the other batches' rate
    assert basis.source == "fitted" and basis.cpu_usd_per_raw_token == pytest.approx(per_token, rel=0.01)


def test_cost_components_add_up():
    ledger = build_ledger(series(4), 1, CONFIG.cost)
    total = ledger["cpu_usd"] + ledger["acquisition_usd"] + ledger["storage_usd"]
    assert np.allclose(ledger["cost_usd"].to_numpy(), total.to_numpy())
    assert ledger["acquisition_usd"][0] == pytest.approx(BYTES / 1e9 * CONFIG.cost.usd_per_raw_gb)


@pytest.mark.parametrize("n,words", [(1, "a yield curve needs at least 3 batches"),
                                     (2, "a yield curve needs at least 3 batches")])
def test_short_runs_say_what_cannot_be_concluded(n, words):
    results = series(n)
    summary = summarise(build_ledger(results, 1, CONFIG.cost), stats_of(results), CONFIG)
    assert words in summary["headline"] and "reason" in summary["stop"]
    assert summary["batches"][0]["value_status"] == "n/a"            # the first batch has no pool before it


def test_all_rejected_run_says_nothing_is_added():
    results = [shard(i, 0) for i in range(4)]
    summary = summarise(build_ledger(results, 1, CONFIG.cost), stats_of(results), CONFIG)
    assert "kept a document" in summary["headline"]


def test_json_keeps_unbounded_na_and_outside_the_law_apart():
    results = series(8)
    outside = CONFIG.model_copy(update={"value": CONFIG.value.model_copy(update={"params": 1e3, "tokens": 1e4,
                                                                                 "sample_fraction": 1.0})})
    summaries = [summarise(build_ledger(results, 1, c.cost), stats_of(results), c) for c in (CONFIG, outside)]
    statuses = {b["value_status"] for s in summaries for b in s["batches"]}
    assert {"n/a", "outside_law"} <= statuses
    for s in summaries:
        text = json.dumps(json_safe(s), allow_nan=False)
        back = json.loads(text)
        for b in back["batches"]:
            assert b["value_status"] in ("priced", "unbounded", "n/a", "outside_law")
            assert (b["value_usd"] is None) == (b["value_status"] != "priced")
    assert json_safe({"x": math.inf}) == {"x": "Infinity"}


def test_zero_batches_say_nothing_can_be_concluded():
    summary = summarise(build_ledger([], 1, CONFIG.cost), stats_of([]), CONFIG)
    assert summary["headline"].startswith("No batch finished") and summary["batches"] == []
    json.dumps(json_safe(summary), allow_nan=False)


def test_measured_cost_under_different_load_gives_overlapping_stop_ranges():
    fitted = CONFIG.model_copy(update={"cost": CostConfig()})
    stops = [summarise(build_ledger(series(12, cpu_noise=noise), 1, fitted.cost), stats_of([]), fitted)["stop"]
             for noise in (0.0, 0.3)]                                    # CPU up to 30 % slower per batch
    assert stops[0]["low"] <= stops[1]["high"] and stops[1]["low"] <= stops[0]["high"]


def test_against_a_ledger_without_cost_components_recomputes_them():
    results = series(10)
    old = build_ledger(results[:6], 1, CONFIG.cost).drop("cpu_usd", "acquisition_usd", "storage_usd", "kept_bytes")
    continued = build_ledger([dict(r, index=r["index"] - 6) for r in results[6:]], 1, CONFIG.cost, prior=old)
    single = build_ledger(results, 1, CONFIG.cost)
    assert continued["cum_cost_usd"].to_list() == pytest.approx(single["cum_cost_usd"].to_list())
