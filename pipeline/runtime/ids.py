"""Ids that repeat across the input (``on_duplicate_id``): found before any output is written, in one pass.

Each unit's ids are written by a task of their own (``unit_ids``); one task (``repeated_ids``) finds the ids
on more than one row from 64-bit hashes (8 bytes a document), confirms them on the actual ids of those rows only,
and numbers each id's occurrences in arrival order (unit, then row). With ``suffix``, the later occurrences get
``#2``, ``#3``, ... (written per unit, applied when the unit is read, so ``dup_of`` and every output name one
document); with ``fail``, the run stops naming how many ids repeat and a few of them.
"""
from __future__ import annotations

import polars as pl

from corpusslim.errors import ShardInputError
from corpusslim.runtime import storage
from corpusslim.runtime.inputs import ROW, Shard, read_shard
from corpusslim.runtime.shard_io import read_checked, write_checked

EXAMPLES = 5


def unit_ids(shard: Shard, directory: str) -> dict:
    """Write a unit's row numbers and ids; their file record (None for a unit that cannot be read: the phase
    that reads it next applies ``on_bad_shard``)."""
    try:
        ids = read_shard(shard).select(ROW, "id")
    except ShardInputError:
        return {"index": shard.index, "stem": shard.stem, "ids": None}
    return {"index": shard.index, "stem": shard.stem,
            "ids": write_checked(ids, storage.join(directory, f"{shard.stem}.parquet"))}


def repeated_ids(units: list[dict], directory: str) -> dict:
    """How many ids are on more than one row, a few examples, and per unit stem the file of its rows to rename
    (later occurrences, with their suffixed ids)."""
    units = [u for u in units if u["ids"] is not None]
    if not units:
        return {"count": 0, "examples": [], "renamed_rows": 0, "renames": {}}
    hashes = pl.concat([read_checked(u["ids"]).select(ROW, h=pl.col("id").hash(seed=0))
                        .with_columns(unit=pl.lit(u["index"], dtype=pl.Int64)) for u in units])
    repeated = hashes.group_by("h").len().filter(pl.col("len") > 1).select("h")
    suspects = hashes.join(repeated, on="h", how="semi")
    by_unit = {u["index"]: u for u in units}
    rows = [read_checked(by_unit[k]["ids"]).join(part.select(ROW), on=ROW, how="semi")
            .with_columns(unit=pl.lit(k, dtype=pl.Int64))
            for (k,), part in suspects.partition_by("unit", as_dict=True).items()]
    if not rows:
        return {"count": 0, "examples": [], "renamed_rows": 0, "renames": {}}
    occurrences = (pl.concat(rows).sort("unit", ROW)
                   .with_columns(k=pl.col("id").cum_count().over("id")).filter(pl.len().over("id") > 1))
    later = occurrences.filter(pl.col("k") > 1).with_columns(pl.format("{}#{}", "id", "k").alias("id"))
    renames = {by_unit[k]["stem"]: write_checked(part.select(ROW, "id"),
                                                 storage.join(directory, "renames", f"{by_unit[k]['stem']}.parquet"))
               for (k,), part in later.partition_by("unit", as_dict=True).items()}
    names = occurrences["id"].unique().sort()
    return {"count": names.len(), "examples": names.head(EXAMPLES).to_list(), "renamed_rows": later.height,
            "renames": renames}
