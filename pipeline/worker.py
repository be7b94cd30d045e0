"""The task a worker runs for one shard: read, check, count tokens, run the local stages, write kept/rejected.

Only small results travel back to the driver: row counts, per-stage document and token counts, CPU seconds.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence

import polars as pl

from pipeline.errors import ShardInputError
from pipeline.resources import count_tokens
from pipeline.shard_io import INPUT_STAGE, ROW, Shard, input_rejects, read_shard, write_atomic
from pipeline.stages import build_stage
from pipeline.stages.base import StageConfig

REJECT_COLUMNS = ("reject_stage", "reject_reason")


def _stage_stats(name: str, before: pl.DataFrame, kept: pl.DataFrame, rejected: pl.DataFrame,
                 cpu: float) -> dict:
    removed = (rejected.group_by("reject_reason").agg(docs=pl.len(), tokens=pl.col("n_tokens").sum())
               .sort("reject_reason").rows(named=True))
    return {
        "stage": name,
        "docs_in": before.height, "tokens_in": int(before["n_tokens"].sum()),
        "docs_out": kept.height, "tokens_out": int(kept["n_tokens"].sum()),
        "removed": {r["reject_reason"]: {"docs": r["docs"], "tokens": int(r["tokens"])} for r in removed},
        "cpu_seconds": round(cpu, 6),
    }


def run_stages(df: pl.DataFrame, stage_configs: Sequence[StageConfig], max_doc_chars: int,
               cpu_before: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    """Input checks and token counts, then each local stage in order. Returns kept, rejected, per-stage stats.

    ``cpu_before`` is CPU time already spent on this shard (reading it), charged to the input step.
    """
    start = time.process_time()
    df = df.with_columns(n_tokens=pl.Series(count_tokens(df["text"].to_list()), dtype=pl.Int64))
    flagged = df.with_columns(input_rejects(df, max_doc_chars).alias("reject_reason"))
    kept = flagged.filter(pl.col("reject_reason").is_null()).drop("reject_reason")
    rejected = [flagged.filter(pl.col("reject_reason").is_not_null())
                .with_columns(reject_stage=pl.lit(INPUT_STAGE, dtype=pl.String))]
    stats = [_stage_stats(INPUT_STAGE, df, kept, rejected[0], cpu_before + time.process_time() - start)]
    for config in stage_configs:
        stage = build_stage(config)
        start = time.process_time()
        before = kept
        kept, removed = stage.process(before)
        stats.append(_stage_stats(stage.name, before, kept, removed, time.process_time() - start))
        rejected.append(removed)
    columns = [c for c in kept.columns if c != ROW]
    rejected_df = (pl.concat([kept.clear().with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in
                                                        REJECT_COLUMNS), *rejected], how="diagonal_relaxed")
                   .sort(ROW).select(*columns, *REJECT_COLUMNS))
    return kept.select(columns), rejected_df, stats


def process_shard(shard: Shard, stage_configs: Sequence[StageConfig], max_doc_chars: int, output: str) -> dict:
    """Process one shard end to end and write its two output files; returns the shard's stats.

    An input shard that cannot be read or breaks the data contract comes back as ``status: bad_input`` with the
    error, so the driver applies the configured policy; any other exception is a bug and fails the task.
    """
    start = time.process_time()
    try:
        df = read_shard(shard)
    except ShardInputError as exc:
        return {"status": "bad_input", "shard": shard.stem, "path": shard.path, "index": shard.index,
                "error": str(exc)}
    text_bytes = int(df["text"].str.len_bytes().sum() or 0)
    kept, rejected, stats = run_stages(df, stage_configs, max_doc_chars, time.process_time() - start)
    start = time.process_time()
    write_atomic(kept, os.path.join(output, "kept", f"{shard.stem}.parquet"))
    write_atomic(rejected, os.path.join(output, "rejected", f"{shard.stem}.parquet"))
    return {
        "status": "done", "shard": shard.stem, "path": shard.path, "index": shard.index,
        "rows": {"in": df.height, "kept": kept.height, "rejected": rejected.height},
        "bytes_in": os.path.getsize(shard.path), "text_bytes": text_bytes,
        "stages": stats, "write_cpu_seconds": round(time.process_time() - start, 6),
    }
