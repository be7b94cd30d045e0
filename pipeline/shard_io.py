"""Shard I/O: find input shards, read and check one, write outputs atomically.

Reading checks the data contract (DESIGN.md section 1) and raises :class:`ShardInputError` naming the file for a
shard that cannot be used at all. Documents that cannot be processed one by one (null, empty or too long text)
are not errors: they are rejected by the ``input`` step with a reason, so nothing is lost.
"""
from __future__ import annotations

import glob as globlib
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from corpusslim import storage
from corpusslim.errors import ConfigError, ShardInputError, TornFileError

INPUT_STAGE = "input"
INPUT_REASONS = {
    "null_text": "text is null",
    "empty_text": "text is empty or only white space",
    "too_long": "text longer than limits.max_doc_chars",
}
ROW = "_row"  # internal row number within the shard; never written


@dataclass(frozen=True)
class Shard:
    """One input shard in arrival order."""

    path: str
    stem: str
    index: int


def discover_shards(spec: str) -> list[Shard]:
    """Input shards for a file, a directory (its ``*.parquet``) or a glob, local or a URL, in sorted path order."""
    if storage.isdir(spec):
        paths = storage.glob(storage.join(spec, "*.parquet"))
    elif globlib.has_magic(spec):
        paths = storage.glob(spec)
    else:
        paths = [spec] if storage.isfile(spec) else []
    if not paths:
        raise ConfigError(f"input: no Parquet shards match {spec!r}")
    paths.sort()
    stems: dict[str, str] = {}
    for p in paths:
        stem = storage.basename(p).removesuffix(".parquet")
        if stem in stems:
            raise ConfigError(f"input: two shards share the name {stem!r} ({stems[stem]} and {p}); "
                              "output files are named after shards")
        stems[stem] = p
    return [Shard(path=p, stem=storage.basename(p).removesuffix(".parquet"), index=i) for i, p in enumerate(paths)]


def _check_utf8(column: pa.ChunkedArray, name: str, path: str) -> None:
    """Raise naming the first row of a string column whose bytes are not valid UTF-8 (Parquet readers do not
    check; lone surrogates and truncated sequences would reach the stages)."""
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        for row, value in enumerate(column.cast(pa.large_binary()).to_pylist()):
            try:
                value is None or value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ShardInputError(f"{path}: row {row}: {name!r} is not valid UTF-8 ({exc.reason} at byte "
                                      f"{exc.start})") from None
        raise


def _checked_columns(table: pa.Table, path: str) -> pa.Table:
    """``text`` as a UTF-8 string column (binary accepted when it is valid UTF-8), every string column checked."""
    if "text" not in table.column_names:
        raise ShardInputError(f"{path}: no 'text' column (columns: {', '.join(table.column_names) or 'none'})")
    text = table.column("text")
    if pa.types.is_dictionary(text.type):  # dictionary-encoded (e.g. from a pandas categorical): decode it
        text = text.cast(text.type.value_type)
        table = table.set_column(table.column_names.index("text"), "text", text)
    if pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type):
        text = text.cast(pa.large_string(), safe=False)
        table = table.set_column(table.column_names.index("text"), "text", text)
    elif not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise ShardInputError(f"{path}: 'text' must be a string column, found {text.type}")
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            _check_utf8(column, name, path)
        else:  # nested columns (lists, structs of strings) are carried through: they must be valid too
            try:
                column.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise ShardInputError(f"{path}: column {name!r} is not valid: {exc}") from None
    return table


def read_shard(shard: Shard, rows: Sequence[int] | None = None) -> pl.DataFrame:
    """Read one input shard (or only the given ``rows``, reading just the row groups that hold them) with a
    string ``id`` (derived ``<stem>:<row>`` where absent), ``text`` and the internal row number."""
    try:
        if rows is None:
            table = storage.parquet_file(shard.path).read()
            numbers = pa.array(range(table.num_rows), pa.uint32())
        else:
            table, numbers = _read_rows(shard.path, sorted(rows))
    except (OSError, pa.ArrowException) as exc:
        raise ShardInputError(f"{shard.path}: not a readable Parquet file ({exc})") from None
    df = pl.from_arrow(_checked_columns(table, shard.path)).with_columns(pl.Series(ROW, numbers, dtype=pl.UInt32))
    derived = pl.format("{}:{}", pl.lit(shard.stem), pl.col(ROW))
    if "id" in df.columns:
        df = df.with_columns(id=pl.coalesce(pl.col("id").cast(pl.String), derived))
    else:
        df = df.with_columns(id=derived)
    return df.select(ROW, "id", "text", pl.exclude(ROW, "id", "text"))


def _read_rows(path: str, rows: list[int]) -> tuple[pa.Table, pa.Array]:
    """The given rows (sorted) of a Parquet file, reading only the row groups that contain them."""
    f = storage.parquet_file(path)
    pieces, numbers, start = [], [], 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        local = [r - start for r in rows if start <= r < start + n]
        if local:
            pieces.append(f.read_row_group(g).take(local))
            numbers += [start + r for r in local]
        start += n
    table = pa.concat_tables(pieces) if pieces else f.schema_arrow.empty_table()
    return table, pa.array(numbers, pa.uint32())


def input_rejects(df: pl.DataFrame, max_doc_chars: int) -> pl.Series:
    """Reason per row for documents that no stage can process (null, blank, too long), null otherwise."""
    return df.select(
        pl.when(pl.col("text").is_null()).then(pl.lit("null_text"))
        .when(pl.col("text").str.strip_chars().str.len_bytes() == 0).then(pl.lit("empty_text"))
        .when(pl.col("text").str.len_chars() > max_doc_chars).then(pl.lit("too_long"))
        .otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()


def write_checked(df: pl.DataFrame, path: str) -> dict:
    """Write an intermediate file atomically; returns what :func:`read_checked` verifies (rows, bytes, sha256)."""
    storage.write_parquet(df, path)
    return {"path": path, "rows": df.height, "bytes": storage.size(path), "sha256": storage.sha256(path)}


def is_intact(record: dict | None) -> bool:
    """True when the file a :func:`write_checked` record describes is there with the same size and checksum."""
    if not record:
        return False
    try:
        return storage.size(record["path"]) == record["bytes"] and storage.sha256(record["path"]) == record["sha256"]
    except OSError:
        return False


def read_checked(record: dict, columns: list[str] | None = None) -> pl.DataFrame:
    """Read an intermediate file, refusing one whose size, checksum or row count differs from its record."""
    if not is_intact(record):
        raise TornFileError(f"{record['path']}: missing, truncated or changed since it was written")
    df = storage.read_parquet(record["path"], columns=columns)
    if df.height != record["rows"]:
        raise TornFileError(f"{record['path']}: {df.height} rows, expected {record['rows']}")
    return df


def parquet_rows(path: str) -> int | None:
    """Row count from the Parquet footer, or None when the file is missing or unreadable."""
    try:
        return storage.parquet_file(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def remove_temporaries(directory: str) -> None:
    """Delete the temporary files (``*.tmp``) a killed run left anywhere in its output directory; they never
    count as output."""
    for path in storage.walk_files(directory):
        if path.endswith(storage.TMP_SUFFIX):
            storage.remove(path)
