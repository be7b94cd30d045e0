"""Document keys: one unsigned 64-bit number per document, ``shard number << 32 | row``, so that ordering keys
orders documents by arrival (shard order, then row). Global stages and the runner pass documents by key."""
from __future__ import annotations

import numpy as np
import polars as pl

DOC = "_doc"  # the document-key column


def doc_keys(shard_number: int, rows: pl.Series) -> pl.Series:
    """The keys of the given rows of one shard."""
    return pl.Series(DOC, (np.uint64(shard_number) << np.uint64(32)) | rows.cast(pl.UInt64).to_numpy())


def shard_of(keys: np.ndarray) -> np.ndarray:
    return (keys >> np.uint64(32)).astype(np.int64)


def row_of(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def shard_expr(column: str) -> pl.Expr:
    """The shard number a key column encodes, as a polars expression (``shard_of`` for frames)."""
    return (pl.col(column) // (1 << 32)).cast(pl.Int64)


def row_expr(column: str) -> pl.Expr:
    """The row number a key column encodes, as a polars expression (``row_of`` for frames)."""
    return (pl.col(column) % (1 << 32)).cast(pl.UInt32)
