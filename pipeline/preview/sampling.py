"""Samples of the input for dry runs and plans: documents spread over every shard, reproducible with a seed,
and the input's totals from Parquet footers (no Parquet shard is read in full; JSON Lines files are counted)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import polars as pl

from corpusslim.errors import ShardInputError
from corpusslim.runtime.inputs import ROW, Shard, read_shard, unit_bytes, unit_rows


@dataclass
class InputTotals:
    shards: int
    docs: int
    file_bytes: int
    unreadable: dict[str, str] = field(default_factory=dict)


def input_totals(shards: list[Shard]) -> tuple[InputTotals, dict[str, int]]:
    """Totals of the input and rows per unit: from the Parquet footers alone (JSON Lines files are counted)."""
    rows: dict[str, int] = {}
    totals = InputTotals(shards=len(shards), docs=0, file_bytes=0)
    for shard in shards:
        try:
            rows[shard.stem] = unit_rows(shard)
            totals.file_bytes += unit_bytes(shard)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal, in a dry run
            totals.unreadable[shard.path] = str(exc)
            continue
        totals.docs += rows[shard.stem]
    return totals, rows


def allocate(n: int, rows: dict[str, int]) -> dict[str, int]:
    """Split a sample of ``n`` over shards in proportion to their rows (largest remainder), capped by the rows."""
    total = sum(rows.values())
    if total == 0:
        return {stem: 0 for stem in rows}
    n = min(n, total)
    exact = {stem: n * r / total for stem, r in rows.items()}
    counts = {stem: int(x) for stem, x in exact.items()}
    for stem in sorted(exact, key=lambda s: counts[s] - exact[s])[: n - sum(counts.values())]:
        counts[stem] += 1
    return counts


def draw_sample(shards: list[Shard], n: int, seed: int) -> tuple[pl.DataFrame, InputTotals]:
    """About ``n`` documents drawn from every shard in proportion to its size, in arrival order (shard, then
    row), with ``_row`` renumbered over the sample and ``_shard`` naming where each came from."""
    totals, rows = input_totals(shards)
    counts = allocate(n, rows)
    rng = random.Random(seed)
    frames = []
    for shard in shards:
        k = counts.get(shard.stem, 0)
        if not k:
            continue
        chosen = sorted(rng.sample(range(rows[shard.stem]), k))
        try:
            frames.append(read_shard(shard, chosen).with_columns(_shard=pl.lit(shard.stem)))
        except ShardInputError as exc:
            totals.unreadable[shard.path] = str(exc)
    if not frames:
        raise ShardInputError("no readable input shard to sample: " + "; ".join(totals.unreadable.values()))
    sample = pl.concat(frames, how="diagonal_relaxed")
    return sample.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(ROW)), totals
