"""The marginal-utility ledger: one row per batch in arrival order (DESIGN.md section 4).

``cpu_seconds`` is a batch's own processing CPU; ``startup_cpu_seconds`` its equal share of the CPU the workers
spent loading models; ``cost_usd`` prices both.

Built from the per-shard results the stages report (counts and CPU seconds); no stage knows about it. With a
dedup stage, kept documents are unique by first arrival (invariant 5), so a batch's *new unique tokens* are the
tokens of its kept documents: a later copy of a document is rejected and counts for nothing.
"""
from __future__ import annotations

import polars as pl


def build_ledger(shard_results: list[dict], batch_shards: int, usd_per_cpu_hour: float,
                 usd_per_gb_read: float) -> pl.DataFrame:
    """The ledger of the done shards, batches in arrival order, with cumulative R (raw tokens), U (unique kept
    tokens) and C (cost in dollars)."""
    rows: dict[int, dict] = {}
    for r in sorted(shard_results, key=lambda r: r["index"]):
        batch = r["index"] // batch_shards
        row = rows.setdefault(batch, {"batch": batch, "shards": 0, "quarantined_shards": 0, "raw_docs": 0,
                                      "raw_bytes": 0, "raw_tokens": 0, "cpu_seconds": 0.0, "read_bytes": 0})
        if r["status"] != "done":
            row["quarantined_shards"] += 1
            continue
        row["shards"] += 1
        row["raw_docs"] += r["rows"]["in"]
        row["raw_bytes"] += r["text_bytes"]
        row["read_bytes"] += r["bytes_in"]
        row["raw_tokens"] += r["stages"][0]["tokens_in"]
        row["cpu_seconds"] += r["write_cpu_seconds"]
        for stage in r["stages"]:
            name = stage["stage"]
            row[f"docs_after_{name}"] = row.get(f"docs_after_{name}", 0) + stage["docs_out"]
            row[f"tokens_after_{name}"] = row.get(f"tokens_after_{name}", 0) + stage["tokens_out"]
            row[f"cpu_s_{name}"] = row.get(f"cpu_s_{name}", 0.0) + stage["cpu_seconds"]
            row["cpu_seconds"] += stage["cpu_seconds"]
        row["cpu_seconds"] -= r.get("startup_cpu_seconds", 0.0)
        row["startup_total"] = row.get("startup_total", 0.0) + r.get("startup_cpu_seconds", 0.0)
        row["new_unique_tokens"] = row.get("new_unique_tokens", 0) + r["stages"][-1]["tokens_out"]
        row["new_unique_docs"] = row.get("new_unique_docs", 0) + r["rows"]["kept"]
    if not rows:
        return pl.DataFrame(schema={"batch": pl.Int64})
    ledger = pl.DataFrame(list(rows.values()), infer_schema_length=None).fill_null(0)
    # Model loading is a fixed cost of the run (once per worker process), shared equally by the batches rather than
    # charged to whichever batch a worker started with.
    ledger = ledger.with_columns(startup_cpu_seconds=pl.col("startup_total").sum() / ledger.height).drop("startup_total")
    ledger = ledger.with_columns(cost_usd=(pl.col("cpu_seconds") + pl.col("startup_cpu_seconds")) / 3600
                                 * usd_per_cpu_hour + pl.col("read_bytes") / 1e9 * usd_per_gb_read)
    return ledger.with_columns(
        tokens_per_usd=pl.when(pl.col("cost_usd") > 0).then(pl.col("new_unique_tokens") / pl.col("cost_usd")),
        cum_raw_tokens=pl.col("raw_tokens").cum_sum(),
        cum_unique_tokens=pl.col("new_unique_tokens").cum_sum(),
        cum_cost_usd=pl.col("cost_usd").cum_sum(),
    ).sort("batch")
