"""The marginal-utility ledger: one row per batch in arrival order (docs/ARCHITECTURE.md).

A batch is ``batch_shards`` consecutive units of work, or (``batch_tokens`` / ``batch_docs``) the consecutive units
up to the first unit boundary at or past that many raw tokens or documents (:class:`BatchRule`). Built from the
per-shard results the stages report (counts, bytes and CPU seconds); no stage knows about it. With a dedup stage,
kept documents are unique by first arrival (invariant 5), so a batch's *new unique tokens* are the tokens of its
kept documents.

Cost per batch, by component (``cost`` config): cleaning CPU as measured (``cpu_usd``: the batch's own CPU plus an
equal share of the CPU the workers spent loading models), acquisition/egress of the input bytes read
(``acquisition_usd``) and storage of the kept data for ``storage_months`` (``storage_usd``; kept bytes are estimated
as the bytes read times the kept share of raw tokens). ``cost_usd`` is their sum. Measured CPU varies with machine
load, so decisions use :func:`cost_basis` instead: a pinned rate or one fitted over all batches.

A quarantined shard is not a batch: it is counted in ``quarantined_shards`` of its batch (a batch of quarantined
shards only is left out), never valued. A run continuing an earlier one (``--against``) continues its ledger:
batch numbers and cumulative R, U and C carry on from the earlier run's last row.

With sources (pipeline/sources.py), ``ledger_sources.parquet`` holds the same rows per source (``source``; batches
numbered per source, each source's units in its own arrival order, by the same rule). Both ledgers have the kept
tokens per detected language (``lang_<code>``; ``und`` without a lid stage). A unit's read bytes and CPU are shared
among its sources by raw tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from corpusslim.config import CostConfig, RunConfig
from corpusslim.errors import ShardInputError
from corpusslim.runtime import storage
from corpusslim.tracker.sources import unit_parts

GB = 1e9
LEDGER_FILE = "ledger.parquet"
SOURCES_LEDGER_FILE = "ledger_sources.parquet"


@dataclass(frozen=True)
class BatchRule:
    """How consecutive units form a batch: ``shards`` units, or up to the first unit boundary at or past
    ``tokens`` raw tokens or ``docs`` raw documents."""

    shards: int = 1
    tokens: float | None = None
    docs: int | None = None

    @classmethod
    def of(cls, config: RunConfig) -> BatchRule:
        return cls(config.batch_shards, config.batch_tokens, config.batch_docs)

    def assign(self, sizes: Sequence[tuple[int, int] | None]) -> list[int]:
        """The batch of each unit, given (raw tokens, raw documents) per unit in arrival order (None for a unit
        with no counts, e.g. quarantined: it joins the open batch)."""
        if self.tokens is None and self.docs is None:
            return [i // self.shards for i in range(len(sizes))]
        limit, which = (self.tokens, 0) if self.tokens is not None else (self.docs, 1)
        out, batch, filled = [], 0, 0.0
        for size in sizes:
            out.append(batch)
            filled += size[which] if size else 0
            if filled >= limit:
                batch, filled = batch + 1, 0.0
        return out


def _rule(rule: BatchRule | int) -> BatchRule:
    return rule if isinstance(rule, BatchRule) else BatchRule(shards=rule)


def batch_numbers(results: list[dict], rule: BatchRule | int) -> dict[int, int]:
    """The batch (position in this run) of every unit, by its ``index``, under ``rule``."""
    ordered = sorted(results, key=lambda r: r["index"])
    sizes = [(r["stages"][0]["tokens_in"], r["rows"]["in"]) if r["status"] == "done" else None for r in ordered]
    return {r["index"]: b for r, b in zip(ordered, _rule(rule).assign(sizes))}


def _batch_rows(results: list[dict], batch_of: dict[int, int]) -> dict[int, dict]:
    """Per-batch sums of the done shards' counts, keyed by the batch's position in this run; quarantined shards
    are counted in their batch when it has a done shard."""
    rows: dict[int, dict] = {}
    for r in (r for r in results if r["status"] == "done"):
        row = rows.setdefault(batch_of[r["index"]], {
            "shards": 0, "raw_docs": 0, "raw_bytes": 0, "raw_tokens": 0, "read_bytes": 0, "cpu_seconds": 0.0,
            "startup_total": 0.0, "new_unique_tokens": 0, "new_unique_docs": 0, "quarantined_shards": 0})
        row["shards"] += 1
        row["raw_docs"] += r["rows"]["in"]
        row["raw_bytes"] += r["text_bytes"]
        row["read_bytes"] += r["bytes_in"]
        row["raw_tokens"] += r["stages"][0]["tokens_in"]
        row["new_unique_tokens"] += r["stages"][-1]["tokens_out"]
        row["new_unique_docs"] += r["rows"]["kept"]
        for part in r.get("sources", {}).values():
            for lang, tokens in part["lang"].items():
                row[f"lang_{lang}"] = row.get(f"lang_{lang}", 0) + tokens
        startup = r.get("startup_cpu_seconds", 0.0)
        row["cpu_seconds"] += r["write_cpu_seconds"] + sum(s["cpu_seconds"] for s in r["stages"]) - startup
        row["startup_total"] += startup
        for stage in r["stages"]:
            for key, value in ((f"docs_after_{stage['stage']}", stage["docs_out"]),
                               (f"tokens_after_{stage['stage']}", stage["tokens_out"]),
                               (f"cpu_s_{stage['stage']}", stage["cpu_seconds"])):
                row[key] = row.get(key, 0) + value
    for r in results:
        if r["status"] != "done" and batch_of[r["index"]] in rows:
            rows[batch_of[r["index"]]]["quarantined_shards"] += 1
    return rows


def _check_quarantine(shard_results: list[dict]) -> None:
    done = [r for r in shard_results if r["status"] == "done"]
    if shard_results and not done:
        names = ", ".join(f"{r['shard']} ({r.get('error', r['status'])})" for r in shard_results[:10])
        more = f" and {len(shard_results) - 10} more" if len(shard_results) > 10 else ""
        raise ShardInputError(f"every input shard was quarantined, nothing to report: {names}{more}")


def build_ledger(shard_results: list[dict], batch_shards: BatchRule | int, cost: CostConfig,
                 prior: pl.DataFrame | None = None) -> pl.DataFrame:
    """The ledger of the done shards, batches in arrival order (``batch_shards``: a :class:`BatchRule` or a count
    of units), with cost components and cumulative R (raw tokens), U (unique kept tokens) and C (measured cost in
    dollars), continuing ``prior`` (an earlier run's ledger) when given. Raises :class:`ShardInputError` naming
    them when every shard was quarantined."""
    _check_quarantine(shard_results)
    rows = _batch_rows(sorted(shard_results, key=lambda r: r["index"]), batch_numbers(shard_results, batch_shards))
    first = 0 if prior is None or prior.is_empty() else int(prior["batch"].max()) + 1
    if first and "storage_usd" not in prior.columns:   # a ledger written before costs had components
        prior = _with_costs(prior, cost).with_columns(cum_cost_usd=pl.col("cost_usd").cum_sum())
    if not rows:
        return prior if prior is not None else pl.DataFrame(schema={"batch": pl.Int64})
    new = pl.DataFrame([{"batch": first + i, **row} for i, (_, row) in enumerate(sorted(rows.items()))],
                       infer_schema_length=None).fill_null(0)
    # Model loading is a fixed cost of the run (once per worker process), shared equally by its batches.
    new = new.with_columns(startup_cpu_seconds=pl.col("startup_total").sum() / new.height).drop("startup_total")
    new = _with_costs(new, cost)
    base = {"cum_raw_tokens": 0, "cum_unique_tokens": 0, "cum_cost_usd": 0.0}
    if first:
        base = {k: prior[k][-1] for k in base}
    new = new.with_columns(
        cum_raw_tokens=pl.col("raw_tokens").cum_sum() + base["cum_raw_tokens"],
        cum_unique_tokens=pl.col("new_unique_tokens").cum_sum() + base["cum_unique_tokens"],
        cum_cost_usd=pl.col("cost_usd").cum_sum() + base["cum_cost_usd"])
    if first:
        new = pl.concat([prior, new], how="diagonal_relaxed").fill_null(0)
    return new.sort("batch")


def build_source_ledger(shard_results: list[dict], rule: BatchRule | int, cost: CostConfig) -> pl.DataFrame:
    """Per source, the ledger of its parts of the done units (:func:`corpusslim.tracker.sources.unit_parts`): batches
    numbered from 0 within the source by ``rule``, ``lang_<code>`` the kept tokens per language, costs and
    cumulative R, U, C per source. Empty (no rows) for a run without sources."""
    parts: dict[str, list[dict]] = {}
    for r in sorted((r for r in shard_results if r["status"] == "done"), key=lambda r: r["index"]):
        for part in unit_parts(r):
            parts.setdefault(part["source"], []).append(part)
    frames = []
    for source, units in sorted(parts.items()):
        rows: dict[int, dict] = {}
        for unit, b in zip(units, _rule(rule).assign([(u["raw_tokens"], u["raw_docs"]) for u in units])):
            row = rows.setdefault(b, {"source": source, "batch": b, "shards": 0})
            row["shards"] += 1
            for key, value in unit.items():
                if key not in ("source", "index", "lang"):
                    row[key] = row.get(key, 0) + value
            for lang, tokens in unit["lang"].items():
                row[f"lang_{lang}"] = row.get(f"lang_{lang}", 0) + tokens
        new = pl.DataFrame(list(rows.values()), infer_schema_length=None)
        new = new.with_columns(startup_cpu_seconds=pl.col("startup_total").sum() / new.height).drop("startup_total")
        frames.append(_with_costs(new, cost).with_columns(
            cum_raw_tokens=pl.col("raw_tokens").cum_sum(), cum_unique_tokens=pl.col("new_unique_tokens").cum_sum(),
            cum_cost_usd=pl.col("cost_usd").cum_sum()))
    if not frames:
        return pl.DataFrame(schema={"source": pl.String, "batch": pl.Int64})
    return pl.concat(frames, how="diagonal_relaxed").fill_null(0)


def _with_costs(ledger: pl.DataFrame, cost: CostConfig) -> pl.DataFrame:
    kept_share = pl.when(pl.col("raw_tokens") > 0).then(pl.col("new_unique_tokens") / pl.col("raw_tokens")) \
        .otherwise(0.0)
    ledger = ledger.with_columns(
        kept_bytes=pl.col("read_bytes") * kept_share,
        cpu_usd=(pl.col("cpu_seconds") + pl.col("startup_cpu_seconds")) / 3600 * cost.usd_per_cpu_hour,
        acquisition_usd=pl.col("read_bytes") / GB * cost.usd_per_raw_gb,
    ).with_columns(storage_usd=pl.col("kept_bytes") / GB * cost.usd_per_gb_month * cost.storage_months)
    ledger = ledger.with_columns(cost_usd=pl.col("cpu_usd") + pl.col("acquisition_usd") + pl.col("storage_usd"))
    return ledger.with_columns(
        tokens_per_usd=pl.when(pl.col("cost_usd") > 0).then(pl.col("new_unique_tokens") / pl.col("cost_usd")))


def load_ledger(run_dir: str) -> pl.DataFrame | None:
    """An earlier run's ledger (for ``--against``), or None when it has none."""
    path = storage.join(run_dir, LEDGER_FILE)
    return storage.read_parquet(path) if storage.exists(path) else None


@dataclass(frozen=True)
class CostBasis:
    """The per-batch cost a decision uses: linear in raw tokens (CPU and acquisition) and in kept tokens
    (storage), so that it does not move with machine load. ``source`` says where the CPU rate comes from."""

    cpu_usd_per_raw_token: float
    acquisition_usd_per_raw_token: float
    storage_usd_per_unique_token: float
    source: str                     # "pinned" or "fitted"

    def batch(self, raw_tokens, unique_tokens):
        """Full cost of batches of ``raw_tokens`` raw and ``unique_tokens`` new unique tokens."""
        return ((self.cpu_usd_per_raw_token + self.acquisition_usd_per_raw_token) * np.asarray(raw_tokens)
                + self.storage_usd_per_unique_token * np.asarray(unique_tokens))


def _median_ratio(num: pl.Series, den: pl.Series) -> float:
    """Median of num / den over the rows with den > 0 (a robust regression through the origin: one batch slowed
    by a busy machine moves it by at most one rank)."""
    ok = den.to_numpy() > 0
    return float(np.median(num.to_numpy()[ok] / den.to_numpy()[ok])) if ok.any() else 0.0


def cost_basis(ledger: pl.DataFrame, cost: CostConfig) -> CostBasis:
    """The decision's cost model over all batches of the ledger: CPU per raw token pinned by
    ``cost.cpu_seconds_per_raw_token`` or fitted (median of ratios); acquisition per raw token from the run's bytes
    per raw token; storage per kept token from the estimated kept bytes."""
    raw, unique = ledger["raw_tokens"].cast(pl.Float64), ledger["new_unique_tokens"].cast(pl.Float64)
    if cost.cpu_seconds_per_raw_token is not None:
        cpu, source = cost.cpu_seconds_per_raw_token * cost.usd_per_cpu_hour / 3600, "pinned"
    else:
        cpu, source = _median_ratio(ledger["cpu_usd"], raw), "fitted"
    total_raw, total_unique = float(raw.sum()), float(unique.sum())
    acquisition = float(ledger["acquisition_usd"].sum()) / total_raw if total_raw > 0 else 0.0
    storage_rate = float(ledger["storage_usd"].sum()) / total_unique if total_unique > 0 else 0.0
    return CostBasis(cpu, acquisition, storage_rate, source)
