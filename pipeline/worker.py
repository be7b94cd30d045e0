"""Tasks a worker runs for one shard. Only small results travel back to the driver: row counts, per-stage
document and token counts, CPU seconds, and the records (path, rows, checksum) of the files the task wrote.

* ``process_shard``: a run without a global stage: read, check, count tokens, run the stages, write kept/rejected.
* ``map_shard``: the stages before the global one, then its map step; writes the shard's intermediate and index.
* ``apply_shard``: the global stage's decision and the stages after it; writes kept/rejected.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Sequence

import polars as pl

from corpusslim import storage
from corpusslim.errors import ShardInputError
from corpusslim.resources import STARTUP, count_tokens
from corpusslim.shard_io import (
    INPUT_STAGE,
    ROW,
    Shard,
    input_rejects,
    read_checked,
    read_shard,
    write_atomic,
    write_checked,
)
from corpusslim.stages import build_stage
from corpusslim.stages.base import Stage, StageConfig

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


def input_step(df: pl.DataFrame, max_doc_chars: int, cpu_before: float) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Token counts, and rejection of documents no stage can process. ``cpu_before``: CPU spent reading."""
    start = time.process_time()
    df = df.with_columns(n_tokens=pl.Series(count_tokens(df["text"].to_list()), dtype=pl.Int64))
    flagged = df.with_columns(input_rejects(df, max_doc_chars).alias("reject_reason"))
    kept = flagged.filter(pl.col("reject_reason").is_null()).drop("reject_reason")
    rejected = (flagged.filter(pl.col("reject_reason").is_not_null())
                .with_columns(reject_stage=pl.lit(INPUT_STAGE, dtype=pl.String)))
    return kept, rejected, _stage_stats(INPUT_STAGE, df, kept, rejected, cpu_before + time.process_time() - start)


def apply_stages(kept: pl.DataFrame, stages: Sequence[Stage]) -> tuple[pl.DataFrame, list[pl.DataFrame], list[dict]]:
    """Run local stages in order on the surviving documents; returns survivors, rejected parts, per-stage stats."""
    rejected, stats = [], []
    for stage in stages:
        start = time.process_time()
        before = kept
        kept, removed = stage.process(before)
        stats.append(_stage_stats(stage.name, before, kept, removed, time.process_time() - start))
        rejected.append(removed)
    return kept, rejected, stats


def assemble(kept: pl.DataFrame, rejected: Sequence[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Final kept and rejected frames: the same columns in one order (kept's, then the reject columns), rows in
    input order, the internal row number dropped."""
    columns = [c for c in kept.columns if c != ROW]
    template = kept.clear().with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in REJECT_COLUMNS)
    rejected_df = pl.concat([template, *rejected], how="diagonal_relaxed").sort(ROW).select(*columns, *REJECT_COLUMNS)
    return kept.select(columns), rejected_df


def _write_outputs(kept: pl.DataFrame, rejected: pl.DataFrame, output: str, stem: str) -> float:
    start = time.process_time()
    write_atomic(kept, storage.join(output, "kept", f"{stem}.parquet"))
    write_atomic(rejected, storage.join(output, "rejected", f"{stem}.parquet"))
    return round(time.process_time() - start, 6)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM on Linux (ru_maxrss also counts the peak of
    the process this one was started from), ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _result(shard: Shard, **fields) -> dict:
    return {"shard": shard.stem, "path": shard.path, "index": shard.index, **fields, "peak_rss_mb": peak_rss_mb()}


def _read_and_run(shard: Shard, configs: Sequence[StageConfig], max_doc_chars: int):
    """Read and check a shard, then run the input step and ``configs`` on it: (kept, rejected parts, per-stage
    stats, text bytes), or the ``bad_input`` result the driver applies its policy to."""
    start = time.process_time()
    try:
        df = read_shard(shard)
    except ShardInputError as exc:
        return _result(shard, status="bad_input", error=str(exc))
    survivors, input_rejected, input_stat = input_step(df, max_doc_chars, time.process_time() - start)
    kept, rejected, stats = apply_stages(survivors, [build_stage(c) for c in configs])
    return kept, [input_rejected, *rejected], [input_stat, *stats], int(df["text"].str.len_bytes().sum() or 0)


def process_shard(shard: Shard, stage_configs: Sequence[StageConfig], max_doc_chars: int, output: str) -> dict:
    """Process one shard end to end and write its two output files; returns the shard's stats.

    An input shard that cannot be read or breaks the data contract comes back as ``status: bad_input`` with the
    error, so the driver applies the configured policy; any other exception is a bug and fails the task.
    """
    startup = STARTUP["cpu_seconds"]
    read = _read_and_run(shard, stage_configs, max_doc_chars)
    if isinstance(read, dict):
        return read
    kept, rejected, stats, text_bytes = read
    kept, rejected = assemble(kept, rejected)
    write_cpu = _write_outputs(kept, rejected, output, shard.stem)
    return _result(shard, status="done", rows={"in": kept.height + rejected.height, "kept": kept.height,
                                               "rejected": rejected.height},
                   bytes_in=storage.size(shard.path), text_bytes=text_bytes, stages=stats,
                   write_cpu_seconds=write_cpu, startup_cpu_seconds=STARTUP["cpu_seconds"] - startup)


def map_shard(shard: Shard, shard_number: int, before: Sequence[StageConfig], global_config: StageConfig,
              max_doc_chars: int, work: str, index_dir: str) -> dict:
    """Stages before the global one, then its map step. Writes ``work/pre/<stem>`` (every row so far, rejected
    ones with their reason), ``index_dir/<stem>`` (the global stage's keys) and ``index_dir/ids/<stem>`` (every
    row's id, for the duplicate-id check), all checked when read; the index outlives the run's intermediates."""
    startup = STARTUP["cpu_seconds"]
    read = _read_and_run(shard, before, max_doc_chars)
    if isinstance(read, dict):
        return read
    kept, rejected, stats, text_bytes = read
    start = time.process_time()
    index = build_stage(global_config).index(kept, shard_number)
    map_cpu = time.process_time() - start
    pre = pl.concat([kept, *rejected], how="diagonal_relaxed").sort(ROW)
    pre_record = write_checked(pre, storage.join(work, "pre", f"{shard.stem}.parquet"))
    index_record = write_checked(index, storage.join(index_dir, f"{shard.stem}.parquet"))
    ids_record = write_checked(pre.select("id"), storage.join(index_dir, "ids", f"{shard.stem}.parquet"))
    return _result(shard, status="done", shard_number=shard_number, rows_in=pre.height, docs_indexed=index.height,
                   bytes_in=storage.size(shard.path), text_bytes=text_bytes, stages=stats,
                   map_cpu_seconds=round(map_cpu, 6), pre=pre_record, index=index_record, ids=ids_record,
                   startup_cpu_seconds=STARTUP["cpu_seconds"] - startup)


def apply_shard(shard: Shard, map_entry: dict, duplicates: pl.DataFrame, global_config: StageConfig,
                after: Sequence[StageConfig], output: str) -> dict:
    """The global stage's decision for this shard's rows (``duplicates``: doc, root, reason, root_id), then the
    stages after it; writes the shard's kept and rejected files."""
    from corpusslim.dedup import rows_to_reject

    startup = STARTUP["cpu_seconds"]
    pre = read_checked(map_entry["pre"])
    survivors = pre.filter(pl.col("reject_reason").is_null()).drop(REJECT_COLUMNS, strict=False)
    earlier = pre.filter(pl.col("reject_reason").is_not_null())
    stages = [build_stage(global_config, duplicates=rows_to_reject(duplicates)), *[build_stage(c) for c in after]]
    kept, rejected, stats = apply_stages(survivors, stages)
    stats[0]["cpu_seconds"] = round(stats[0]["cpu_seconds"] + map_entry["map_cpu_seconds"], 6)
    kept, rejected = assemble(kept, [earlier, *rejected])
    write_cpu = _write_outputs(kept, rejected, output, shard.stem)
    return _result(shard, status="done", rows={"in": pre.height, "kept": kept.height, "rejected": rejected.height},
                   bytes_in=map_entry["bytes_in"], text_bytes=map_entry["text_bytes"],
                   stages=[*map_entry["stages"], *stats], write_cpu_seconds=write_cpu,
                   startup_cpu_seconds=map_entry["startup_cpu_seconds"] + STARTUP["cpu_seconds"] - startup)
