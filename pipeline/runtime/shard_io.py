"""Checked intermediate files: written atomically with a record (rows, bytes, sha256) that reading verifies, so a
torn or changed file is rebuilt, never used; and the clean-up of temporaries a killed run left."""
from __future__ import annotations

import polars as pl

from corpusslim.errors import TornFileError
from corpusslim.runtime import storage

# Intermediates are read once or twice, then deleted (the dedup index is kept for --against runs): lz4 takes half
# zstd's CPU to write and to read, for files 10-70 % larger (bench/choices.md).
COMPRESSION = "lz4"


def write_checked(df: pl.DataFrame, path: str) -> dict:
    """Write an intermediate file atomically; returns what :func:`read_checked` verifies (rows, bytes, sha256)."""
    storage.write_parquet(df, path, COMPRESSION)
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


def remove_temporaries(directory: str) -> None:
    """Delete the temporary files (``*.tmp``) a killed run left anywhere in its output directory; they never
    count as output."""
    for path in storage.walk_files(directory):
        if path.endswith(storage.TMP_SUFFIX):
            storage.remove(path)
