"""The input: find its files, cut big files into units of work, read a unit and check the data contract.

Formats, by extension (case-insensitive) or ``input_format``: Parquet, JSON Lines (``.jsonl``, ``.json``,
``.ndjson``), gzip- or zstd-compressed JSON Lines (``.jsonl.gz``, ``.jsonl.zst``…), the formats of Dolma,
RedPajama and most released corpora. A directory is searched at any depth; the arrival order of the data is the
sorted path relative to the input root, and outputs mirror those relative paths (``kept/<dump>/000_00000…``).

A *unit* (:class:`Shard`) is what one task processes: a whole file, or, for a Parquet file larger than the
configured chunk, a run of consecutive row groups (``<name>.part-00003``), so worker memory is set by the chunk
size rather than by the file and the parts of one file run on every worker.

Reading renames the configured text and id columns to ``text`` and ``id`` (the writer renames them back), derives
an id ``<name>:<row>`` where a document has none, and raises :class:`ShardInputError` naming the file (and line)
for a unit that cannot be used at all. Documents that cannot be processed one by one (null, empty or too long
text) are not errors: they are rejected by the ``input`` step with a reason, so nothing is lost.
"""
from __future__ import annotations

import glob as globlib
import io
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from corpusslim.errors import ConfigError, ShardInputError
from corpusslim.runtime import storage

if TYPE_CHECKING:
    from corpusslim.config import RunConfig

INPUT_STAGE = "input"
INPUT_REASONS = {
    "null_text": "text is null",
    "empty_text": "text is empty or only white space",
    "too_long": "text longer than limits.max_doc_chars",
}
ROW = "_row"  # internal row number within the input file; never written
SOURCE = "source"  # the column ``sources:`` writes into every document
# Extension -> (format, compression); longest first, matched case-insensitively.
EXTENSIONS = {".jsonl.gz": ("jsonl", "gzip"), ".json.gz": ("jsonl", "gzip"), ".ndjson.gz": ("jsonl", "gzip"),
              ".jsonl.zst": ("jsonl", "zstd"), ".json.zst": ("jsonl", "zstd"), ".ndjson.zst": ("jsonl", "zstd"),
              ".parquet": ("parquet", None), ".jsonl": ("jsonl", None), ".json": ("jsonl", None),
              ".ndjson": ("jsonl", None)}
FORMATS = ("auto", "parquet", "jsonl", "jsonl.gz", "jsonl.zst")


@dataclass(frozen=True)
class Columns:
    """The user's names of the text and id columns."""

    text: str = "text"
    id: str = "id"
    source: str | None = None  # the column naming each document's source (``sources:`` sets ``source``)


@dataclass(frozen=True)
class Shard:
    """One unit of work in arrival order: a whole input file, or rows ``[start, end)`` of a Parquet file."""

    path: str
    stem: str  # output name: the file's path relative to the input root without its extension (+ ".part-NNNNN")
    index: int
    format: str = "parquet"
    compression: str | None = None
    columns: Columns = Columns()
    name: str = ""  # the file's output name without the part suffix (derived ids use it); default: stem
    rows: tuple[int, int] | None = None  # the row range of a part; None: the whole file
    offset: int = 0  # the row of the original file a split part's first row was (``split_jsonl``)
    source: str | None = None  # the configured source of every document of the unit (``sources:``)
    renames: str | None = None  # rows whose repeated id gets a suffix (``corpusslim.runtime.ids``): ROW, id

    @property
    def file_name(self) -> str:
        return self.name or self.stem


def _format_of(path: str, forced: str) -> tuple[str, str | None, str] | None:
    """(format, compression, name without extension) of a file, or None when it is not an input file. An
    explicit ``input_format`` reads files of any extension as that format."""
    lower = path.lower()
    ext = next((e for e in EXTENSIONS if lower.endswith(e)), None)
    if forced == "auto":
        return None if ext is None else (*EXTENSIONS[ext], path[: -len(ext)])
    fmt, _, suffix = forced.partition(".")
    return fmt, {"gz": "gzip", "zst": "zstd"}.get(suffix), path[: -len(ext)] if ext else posixpath.splitext(path)[0]


def _root_and_paths(spec: str) -> tuple[str, list[str]]:
    """The input root (outputs mirror paths relative to it) and every file the spec names."""
    if storage.isdir(spec):
        return spec, storage.walk_files(spec)
    if globlib.has_magic(spec):
        head = spec[: min(spec.find(c) for c in "*?[" if c in spec)]
        return storage.dirname(head + "x"), storage.glob(spec)
    return storage.dirname(spec), [spec] if storage.isfile(spec) else []


def discover_shards(spec: str, input_format: str = "auto", columns: Columns = Columns(),
                    chunk_rows: int | None = None, chunk_mb: float | None = None) -> list[Shard]:
    """The units of work of the input (a file, a directory searched at any depth, or a glob; local or a URL), in
    arrival order: sorted relative path, then part. Parquet files over ``chunk_rows`` rows or ``chunk_mb`` MB of
    text are cut into parts at row-group boundaries (from the footer alone)."""
    root, paths = _root_and_paths(spec)
    found = []
    for path in paths:
        kind = _format_of(path, input_format)
        if kind is not None and not storage.basename(path).startswith("."):
            name = kind[2][len(root):].lstrip("/") if storage.is_url(root) else posixpath.relpath(kind[2], root)
            found.append((name, path, kind))
    if not found:
        raise ConfigError(f"input: no input files (Parquet or JSON Lines) match {spec!r}")
    found.sort()
    names: dict[str, str] = {}
    for name, path, _ in found:
        if name in names:
            raise ConfigError(f"input: {names[name]} and {path} would write the same output ({name!r}); "
                              "keep one format of each file")
        names[name] = path
    units: list[Shard] = []
    for name, path, (fmt, compression, _) in found:
        ranges = _parquet_parts(path, columns.text, chunk_rows, chunk_mb) if fmt == "parquet" else [None]
        for k, rows in enumerate(ranges):
            stem = name if rows is None or len(ranges) == 1 else f"{name}.part-{k:05d}"
            units.append(Shard(path=path, stem=stem, index=len(units), format=fmt, compression=compression,
                               columns=columns, name=name, rows=None if len(ranges) == 1 else rows))
    return units


def shards_of(config: RunConfig) -> list[Shard]:
    """The units of work of a run's input, as its config describes it. With ``sources:``, each source's units
    (outputs under ``<source>/``) arrive in its own order and the sources interleave round-robin by position: the
    k-th unit of every source (in the listed order) before any source's (k+1)-th."""
    if config.sources is None:
        return discover_shards(config.input, config.input_format,
                               Columns(config.text_column, config.id_column, config.source_column),
                               config.limits.chunk_rows, config.limits.chunk_mb)
    columns = Columns(config.text_column, config.id_column, SOURCE)
    per_source = [[replace(u, stem=f"{spec.name}/{u.stem}", name=f"{spec.name}/{u.file_name}", source=spec.name)
                   for u in discover_shards(spec.input, config.input_format, columns, config.limits.chunk_rows,
                                            config.limits.chunk_mb)] for spec in config.sources]
    order = sorted((k, i) for i, units in enumerate(per_source) for k in range(len(units)))
    return [replace(per_source[i][k], index=n) for n, (k, i) in enumerate(order)]


def _parquet_parts(path: str, text: str, chunk_rows: int | None, chunk_mb: float | None) -> list:
    """Row ranges of consecutive row groups, each within the chunk limits (a larger row group alone); [None]
    for a file within the limits or one whose footer cannot be read (reading it will say why)."""
    if chunk_rows is None and chunk_mb is None:
        return [None]
    try:
        meta = storage.parquet_file(path).metadata
    except (OSError, pa.ArrowException):
        return [None]
    names = [meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns)]
    text_columns = [i for i, n in enumerate(names) if n == text]
    limit_rows, limit_bytes = chunk_rows or float("inf"), (chunk_mb or float("inf")) * 1e6
    parts, start, rows, size = [], 0, 0, 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        group_bytes = sum(group.column(i).total_uncompressed_size for i in text_columns)
        if rows and (rows + group.num_rows > limit_rows or size + group_bytes > limit_bytes):
            parts.append((start, start + rows))
            start, rows, size = start + rows, 0, 0
        rows, size = rows + group.num_rows, size + group_bytes
    parts.append((start, start + rows))
    return [None] if len(parts) == 1 else parts


def needs_split(shard: Shard, chunk_mb: float | None) -> bool:
    """A JSON Lines file that may hold more than a chunk of text (compressed files by up to 8 times their size):
    it is split into Parquet parts before processing, so no task holds it whole."""
    if shard.format != "jsonl" or shard.offset or chunk_mb is None:
        return False
    return storage.size(shard.path) * (8 if shard.compression else 1) > chunk_mb * 1e6


def split_jsonl(shard: Shard, chunk_rows: int | None, chunk_mb: float | None, directory: str) -> dict:
    """Stream a JSON Lines file into Parquet parts of at most a chunk each under ``directory/<name>/`` (one pass,
    memory: one block); their file records with the row each starts at, or the ``bad_input`` result of a file
    that cannot be read."""
    from corpusslim.runtime.shard_io import write_checked

    parts, offset = [], 0
    limit_rows, limit_bytes = chunk_rows or float("inf"), (chunk_mb or float("inf")) * 1e6
    try:
        for k, table in enumerate(jsonl_blocks(shard, limit_rows, limit_bytes)):
            target = storage.join(directory, shard.stem, f"{k:05d}.parquet")
            parts.append({**write_checked(pl.from_arrow(table), target), "offset": offset})
            offset += table.num_rows
    except ShardInputError as exc:
        return {"shard": shard.stem, "path": shard.path, "index": shard.index, "status": "bad_input",
                "error": str(exc)}
    return {"shard": shard.stem, "path": shard.path, "status": "done", "parts": parts}


def split_units(shard: Shard, parts: list[dict]) -> list[Shard]:
    """The units of a split JSON Lines file: one per Parquet part (the file's own name when there is one)."""
    return [Shard(path=p["path"], stem=shard.stem if len(parts) == 1 else f"{shard.stem}.part-{k:05d}",
                  index=shard.index, format="parquet", columns=shard.columns, name=shard.file_name,
                  offset=p["offset"], source=shard.source) for k, p in enumerate(parts)]


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


def _text_column(table: pa.Table, path: str, name: str) -> pa.Table:
    """The text column as a UTF-8 string column (binary accepted when it is valid UTF-8; dictionary decoded)."""
    if name not in table.column_names:
        raise ShardInputError(f"{path}: no {name!r} column (columns: {', '.join(table.column_names) or 'none'}); "
                              "set text_column to the column that holds the text")
    i = table.column_names.index(name)
    text = table.column(i)
    if pa.types.is_dictionary(text.type):  # dictionary-encoded (e.g. from a pandas categorical): decode it
        text = text.cast(text.type.value_type)
    if pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type):
        text = text.cast(pa.large_string(), safe=False)
    elif pa.types.is_null(text.type):
        text = text.cast(pa.large_string())
    elif not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise ShardInputError(f"{path}: {name!r} must be a string column, found {text.type}")
    return table.set_column(i, name, text)


def _checked(table: pa.Table, path: str, columns: Columns) -> pa.Table:
    """The text column checked and converted, every string column valid UTF-8, nested columns valid."""
    table = _text_column(table, path, columns.text)
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            _check_utf8(column, name, path)
        else:  # nested columns (lists, structs of strings) are carried through: they must be valid too
            try:
                column.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise ShardInputError(f"{path}: column {name!r} is not valid: {exc}") from None
    return table


def _jsonl_lines(shard: Shard) -> io.TextIOBase:
    raw = storage.open_read(shard.path)
    stream = pa.CompressedInputStream(raw, shard.compression) if shard.compression else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="\n")


def _records_table(records: list[dict], shard: Shard) -> pa.Table:
    try:
        return pa.Table.from_pylist(records) if records else pa.table({shard.columns.text: pa.array([], pa.string())})
    except (pa.ArrowException, TypeError) as exc:
        raise ShardInputError(f"{shard.path}: records of mixed types cannot form one table ({exc})") from None


def jsonl_blocks(shard: Shard, max_rows: float = float("inf"), max_bytes: float = float("inf")):
    """The records of a JSON Lines file as tables of at most ``max_rows`` records or ``max_bytes`` of lines,
    decompressed as it streams (memory: one block); nested fields kept. A malformed line, or one that is not an
    object, raises naming the file and line number."""
    records, size, yielded = [], 0, False
    try:
        with _jsonl_lines(shard) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ShardInputError(f"{shard.path}: line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise ShardInputError(f"{shard.path}: line {number}: a JSON object was expected, found "
                                          f"{type(record).__name__}")
                records.append(record)
                size += len(line)
                if len(records) >= max_rows or size >= max_bytes:
                    yield _records_table(records, shard)
                    records, size, yielded = [], 0, True
    except UnicodeDecodeError as exc:
        raise ShardInputError(f"{shard.path}: not valid UTF-8 ({exc.reason})") from None
    except (OSError, pa.ArrowException, EOFError) as exc:
        raise ShardInputError(f"{shard.path}: cannot be read as {shard.format}"
                              f"{'.' + shard.compression if shard.compression else ''} ({exc})") from None
    if records or not yielded:
        yield _records_table(records, shard)


def _read_jsonl(shard: Shard) -> pa.Table:
    """Every record of a JSON Lines file in one table (files over the chunk size are split first:
    :func:`split_jsonl`)."""
    return pa.concat_tables(jsonl_blocks(shard), promote_options="permissive")


def _read_parquet(shard: Shard, rows: Sequence[int] | None) -> tuple[pa.Table, list[int]]:
    f = storage.parquet_file(shard.path)
    if rows is not None:
        return _read_rows(f, list(rows))
    if shard.rows is None:
        table = f.read()
        return table, list(range(shard.offset, shard.offset + table.num_rows))
    start, end = shard.rows
    pieces, first = [], 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        if first + n > start and first < end:
            pieces.append(f.read_row_group(g))
        first += n
    return pa.concat_tables(pieces), list(range(start, end))


def _read_rows(f, rows: list[int]) -> tuple[pa.Table, list[int]]:
    """The given rows (sorted) of a Parquet file, reading only the row groups that contain them."""
    pieces, numbers, start = [], [], 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        local = [r - start for r in rows if start <= r < start + n]
        if local:
            pieces.append(f.read_row_group(g).take(local))
            numbers += [start + r for r in local]
        start += n
    return (pa.concat_tables(pieces) if pieces else f.schema_arrow.empty_table()), numbers


def read_shard(shard: Shard, rows: Sequence[int] | None = None) -> pl.DataFrame:
    """Read one unit (or only the given ``rows`` of it, counted from its first row) as ``_row`` (the row in the
    file), ``id`` (the id column, or ``<name>:<row>`` where absent or null), ``text`` and every other column,
    carried through untouched."""
    first = shard.rows[0] if shard.rows else 0
    wanted = None if rows is None else sorted(first + r for r in rows)
    try:
        if shard.format == "parquet":
            table, numbers = _read_parquet(shard, wanted)
        else:
            table = _read_jsonl(shard)
            numbers = list(range(table.num_rows)) if wanted is None else wanted
            table = table if wanted is None else table.take(wanted)
    except (OSError, pa.ArrowException) as exc:
        kind = "Parquet" if shard.format == "parquet" else "JSON Lines"
        raise ShardInputError(f"{shard.path}: not a readable {kind} file ({exc})") from None
    df = pl.from_arrow(_checked(table, shard.path, shard.columns)).with_columns(
        pl.Series(ROW, numbers, dtype=pl.UInt32))
    if shard.source is not None:
        if SOURCE in df.columns:
            raise ShardInputError(f"{shard.path}: has a column {SOURCE!r}, which sources: would overwrite; "
                                  f"use source_column: {SOURCE} instead")
        df = df.with_columns(pl.lit(shard.source, dtype=pl.String).alias(SOURCE))
    elif shard.columns.source is not None and shard.columns.source not in df.columns:
        raise ShardInputError(f"{shard.path}: no {shard.columns.source!r} column (source_column)")
    df = _internal_names(df, shard)
    if shard.renames is not None:
        renamed = storage.read_parquet(shard.renames).rename({"id": "_renamed"})
        df = df.join(renamed, on=ROW, how="left", maintain_order="left").with_columns(
            id=pl.coalesce("_renamed", "id")).drop("_renamed")
    return df.select(ROW, "id", "text", pl.exclude(ROW, "id", "text"))


def unit_rows(shard: Shard) -> int:
    """Documents in a unit: from the Parquet footer, or by counting the lines of a JSON Lines file."""
    if shard.rows is not None:
        return shard.rows[1] - shard.rows[0]
    if shard.format == "parquet":
        return storage.parquet_file(shard.path).metadata.num_rows
    with _jsonl_lines(shard) as lines:
        return sum(1 for line in lines if line.strip())


def unit_bytes(shard: Shard) -> int:
    """Bytes of the input file a unit stands for: the file, or a part's share of it by rows."""
    size = storage.size(shard.path)
    if shard.rows is None:
        return size
    return round(size * (shard.rows[1] - shard.rows[0]) / storage.parquet_file(shard.path).metadata.num_rows)


def _internal_names(df: pl.DataFrame, shard: Shard) -> pl.DataFrame:
    """``text`` and ``id`` under their internal names; a derived id where the document has none."""
    text, id_ = shard.columns.text, shard.columns.id
    for internal, user in (("text", text), ("id", id_)):
        if internal != user and internal in df.columns:
            raise ShardInputError(f"{shard.path}: has a column {internal!r} besides the configured "
                                  f"{internal}_column {user!r}; rename one of them")
    df = df.rename({text: "text", **({id_: "id"} if id_ in df.columns else {})})
    derived = pl.format("{}:{}", pl.lit(shard.file_name), pl.col(ROW))
    if "id" in df.columns:
        return df.with_columns(id=pl.coalesce(pl.col("id").cast(pl.String), derived))
    return df.with_columns(id=derived)


def user_names(df: pl.DataFrame, columns: Columns) -> pl.DataFrame:
    """A frame with the user's names for the text and id columns again (outputs keep the input's names)."""
    return df.rename({k: v for k, v in (("text", columns.text), ("id", columns.id)) if k != v and k in df.columns})


def input_rejects(df: pl.DataFrame, max_doc_chars: int) -> pl.Series:
    """Reason per row for documents that no stage can process (null, blank, too long), null otherwise."""
    return df.select(
        pl.when(pl.col("text").is_null()).then(pl.lit("null_text"))
        .when(pl.col("text").str.strip_chars().str.len_bytes() == 0).then(pl.lit("empty_text"))
        .when(pl.col("text").str.len_chars() > max_doc_chars).then(pl.lit("too_long"))
        .otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()
