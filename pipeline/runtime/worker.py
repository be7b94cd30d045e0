"""Tasks a worker runs for one shard. Only small results travel back to the driver: row counts, per-stage
document and token counts, CPU seconds, and the records (path, rows, checksum) of the files the task wrote.

* ``process_shard``: a run without a global stage: read, check, count tokens, run the stages, write the outputs.
* ``map_shard``: the stages before the global one, then its map step; writes the shard's intermediate and index.
* ``apply_shard``: the global stage's decision and the stages after it; writes the outputs.

The outputs of a shard: ``kept/`` and ``rejected/``, and ``removed_lines/`` where a stage removed lines
(``corpusslim.runtime.lines``).
"""
from __future__ import annotations

import time  # task CPU: time.thread_time(), as the worker's other threads run other tasks (docs/ARCHITECTURE.md)
from collections.abc import Sequence

import polars as pl

from corpusslim.errors import ShardInputError
from corpusslim.registry import build_stage
from corpusslim.runtime import lines, outputs, storage
from corpusslim.runtime.inputs import INPUT_STAGE, ROW, Shard, input_rejects, read_shard, unit_bytes
from corpusslim.runtime.measure import peak_rss_mb
from corpusslim.runtime.outputs import REJECT_COLUMNS, OutputSpec
from corpusslim.runtime.resources import STARTUP, count_tokens
from corpusslim.runtime.results import BadInput, FileRecord, MapResult, ShardResult, ShardRows, StageStats
from corpusslim.runtime.shard_io import read_checked, write_checked
from corpusslim.stages.base import Stage, StageConfig
from corpusslim.tracker.sources import kept_by_source, overlap_counts, raw_by_source


def _stage_stats(name: str, before: pl.DataFrame, kept: pl.DataFrame, rejected: pl.DataFrame,
                 cpu: float) -> StageStats:
    removed = (rejected.group_by("reject_reason").agg(docs=pl.len(), tokens=pl.col("n_tokens").sum())
               .sort("reject_reason").rows(named=True))
    return {
        "stage": name,
        "docs_in": before.height, "tokens_in": int(before["n_tokens"].sum()),
        "docs_out": kept.height, "tokens_out": int(kept["n_tokens"].sum()),
        "removed": {r["reject_reason"]: {"docs": r["docs"], "tokens": int(r["tokens"])} for r in removed},
        "cpu_seconds": round(cpu, 6),
    }


def input_step(df: pl.DataFrame, max_doc_chars: int, cpu_before: float
               ) -> tuple[pl.DataFrame, pl.DataFrame, StageStats]:
    """Token counts, and rejection of documents no stage can process. ``cpu_before``: CPU spent reading."""
    start = time.thread_time()
    df = df.with_columns(n_tokens=pl.Series(count_tokens(df["text"].to_list()), dtype=pl.Int64))
    flagged = df.with_columns(input_rejects(df, max_doc_chars).alias("reject_reason"))
    kept = flagged.filter(pl.col("reject_reason").is_null()).drop("reject_reason")
    rejected = (flagged.filter(pl.col("reject_reason").is_not_null())
                .with_columns(reject_stage=pl.lit(INPUT_STAGE, dtype=pl.String)))
    return kept, rejected, _stage_stats(INPUT_STAGE, df, kept, rejected, cpu_before + time.thread_time() - start)


def apply_stages(kept: pl.DataFrame, stages: Sequence[Stage]
                 ) -> tuple[pl.DataFrame, list[pl.DataFrame], list[StageStats]]:
    """Run local stages in order on the surviving documents; returns survivors, rejected parts, per-stage stats."""
    rejected, stats = [], []
    for stage in stages:
        start = time.thread_time()
        before = kept
        kept, removed = stage.process(before)
        removed_lines = None
        if stage.edits_lines:
            kept, removed, removed_lines = lines.collect(stage.name, kept, removed)
        stat = _stage_stats(stage.name, before, kept, removed, time.thread_time() - start)
        if removed_lines is not None:
            stat["lines_removed"] = removed_lines
        stats.append(stat)
        rejected.append(removed)
    return kept, rejected, stats


def assemble(kept: pl.DataFrame, rejected: Sequence[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Final kept, rejected and removed-lines frames: kept and rejected with the same columns in one order
    (kept's, then the reject columns), rows in input order, the internal columns dropped."""
    template = kept.clear().with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in REJECT_COLUMNS)
    rejected_df = pl.concat([template, *rejected], how="diagonal_relaxed").sort(ROW)
    removed_lines = lines.explode([pl.concat([kept, rejected_df], how="diagonal_relaxed").sort(ROW)])
    columns = [c for c in kept.columns if c not in (ROW, lines.REMOVED)]
    return kept.select(columns), rejected_df.select(*columns, *REJECT_COLUMNS), removed_lines


def _write_outputs(shard: Shard, kept: pl.DataFrame, rejected: pl.DataFrame, removed_lines: pl.DataFrame,
                   spec: OutputSpec) -> dict:
    """Write the unit's outputs; the result fields that describe them (rows, files, format, write CPU)."""
    start = time.thread_time()
    files = outputs.write(spec, shard.stem, {"kept": kept, "rejected": rejected, "removed_lines": removed_lines})
    rows: ShardRows = {"in": kept.height + rejected.height, "kept": kept.height, "rejected": rejected.height}
    if "removed_lines" in files:
        rows["removed_lines"] = removed_lines.height
    return {"rows": rows, "files": files, "format": spec.format, "sources": kept_by_source(kept, shard.columns.source),
            "write_cpu_seconds": round(time.thread_time() - start, 6)}


def _task(shard: Shard) -> dict:
    return {"shard": shard.stem, "path": shard.path, "index": shard.index, "peak_rss_mb": peak_rss_mb()}


def _bad_input(shard: Shard, error: ShardInputError) -> BadInput:
    """The result of a shard that cannot be read or breaks the data contract: the driver applies its policy."""
    return {**_task(shard), "status": "bad_input", "error": str(error)}


def _read_and_run(shard: Shard, configs: Sequence[StageConfig], max_doc_chars: int
                  ) -> tuple[pl.DataFrame, list[pl.DataFrame], list[StageStats], int]:
    """Read and check a shard (``ShardInputError`` when it cannot be used), then run the input step and
    ``configs`` on it: kept, rejected parts, per-stage stats, text bytes."""
    start = time.thread_time()
    df = read_shard(shard)
    survivors, input_rejected, input_stat = input_step(df, max_doc_chars, time.thread_time() - start)
    if shard.columns.source:  # raw documents and tokens per source (corpusslim.tracker.sources)
        input_stat["sources"] = raw_by_source(pl.concat([survivors, input_rejected], how="diagonal_relaxed"),
                                              shard.columns.source)
    kept, rejected, stats = apply_stages(survivors, [build_stage(c) for c in configs])
    return kept, [input_rejected, *rejected], [input_stat, *stats], int(df["text"].str.len_bytes().sum() or 0)


def process_shard(shard: Shard, stage_configs: Sequence[StageConfig], max_doc_chars: int,
                  output: OutputSpec) -> ShardResult | BadInput:
    """Process one shard end to end and write its outputs; returns the shard's stats.

    An input shard that cannot be read or breaks the data contract comes back as ``status: bad_input`` with the
    error, so the driver applies the configured policy; any other exception is a bug and fails the task.
    """
    startup = STARTUP["cpu_seconds"]
    try:
        kept, rejected, stats, text_bytes = _read_and_run(shard, stage_configs, max_doc_chars)
    except ShardInputError as exc:
        return _bad_input(shard, exc)
    written = _write_outputs(shard, *assemble(kept, rejected), output)
    return {**_task(shard), "status": "done", **written, "bytes_in": unit_bytes(shard), "text_bytes": text_bytes,
            "stages": stats, "startup_cpu_seconds": STARTUP["cpu_seconds"] - startup}


def map_shard(shard: Shard, shard_number: int, before: Sequence[StageConfig], global_config: StageConfig,
              max_doc_chars: int, work: str, index_dir: str) -> MapResult | BadInput:
    """Stages before the global one, then its map step. Writes ``work/pre/<stem>`` (every row so far, rejected
    ones with their reason), ``index_dir/<stem>`` (the global stage's keys) and ``index_dir/ids/<stem>`` (every
    row's id, for the duplicate-id check), all checked when read; the index outlives the run's intermediates."""
    startup = STARTUP["cpu_seconds"]
    try:
        kept, rejected, stats, text_bytes = _read_and_run(shard, before, max_doc_chars)
    except ShardInputError as exc:
        return _bad_input(shard, exc)
    start = time.thread_time()
    index = build_stage(global_config).index(kept, shard_number)
    map_cpu = time.thread_time() - start
    pre = pl.concat([kept, *rejected], how="diagonal_relaxed").sort(ROW)

    def checked(frame: pl.DataFrame, *parts: str) -> FileRecord:
        return write_checked(frame, storage.join(*parts, f"{shard.stem}.parquet"))

    return {**_task(shard), "status": "done", "shard_number": shard_number, "rows_in": pre.height,
            "docs_indexed": index.height, "bytes_in": unit_bytes(shard), "text_bytes": text_bytes,
            "stages": stats, "map_cpu_seconds": round(map_cpu, 6), "pre": checked(pre, work, "pre"),
            "index": checked(index, index_dir), "ids": checked(pre.select("id"), index_dir, "ids"),
            "startup_cpu_seconds": STARTUP["cpu_seconds"] - startup}


def apply_shard(shard: Shard, map_entry: MapResult, links: pl.DataFrame, global_config: StageConfig,
                after: Sequence[StageConfig], output: OutputSpec, pre_paths: dict[int, str] | None = None
                ) -> ShardResult:
    """The global stage's decision for this shard's documents (``links``: its linker's rows for them), then the
    stages after it; writes the shard's outputs. ``pre_paths`` (intermediate per shard number): where the overlap
    between sources looks up the source of each kept document (corpusslim.tracker.sources)."""
    startup = STARTUP["cpu_seconds"]
    pre = read_checked(map_entry["pre"])
    survivors = pre.filter(pl.col("reject_reason").is_null()).drop(REJECT_COLUMNS, strict=False)
    earlier = pre.filter(pl.col("reject_reason").is_not_null())
    stages = [build_stage(global_config).bind(links), *[build_stage(c) for c in after]]
    kept, rejected, stats = apply_stages(survivors, stages)
    stats[0]["cpu_seconds"] = round(stats[0]["cpu_seconds"] + map_entry["map_cpu_seconds"], 6)
    written = _write_outputs(shard, *assemble(kept, [earlier, *rejected]), output)
    if shard.columns.source:
        written["overlap"] = overlap_counts(rejected[0], links, shard.columns.source, pre_paths or {})
    return {**_task(shard), "status": "done", **written, "bytes_in": map_entry["bytes_in"],
            "text_bytes": map_entry["text_bytes"], "stages": [*map_entry["stages"], *stats],
            "startup_cpu_seconds": map_entry["startup_cpu_seconds"] + STARTUP["cpu_seconds"] - startup}
