"""A shard's outputs: ``kept/``, ``rejected/`` and ``removed_lines/`` (where lines were removed), in the configured
format (Parquet, or gzip-compressed JSON Lines as Dolma-style tools read), under the unit's relative name, with the
user's text and id column names and the chosen annotation columns."""
from __future__ import annotations

import gzip
from dataclasses import dataclass

import polars as pl

from corpusslim.runtime import storage
from corpusslim.runtime.inputs import Columns, user_names

DIRS = ("kept", "rejected", "removed_lines")
EXTENSIONS = {"parquet": ".parquet", "jsonl.gz": ".jsonl.gz"}
REJECT_COLUMNS = ("reject_stage", "reject_reason")


@dataclass(frozen=True)
class OutputSpec:
    """Where and how a run writes its outputs (from the config)."""

    run_dir: str
    format: str = "parquet"
    columns: Columns = Columns()
    drop: tuple[str, ...] = ()  # annotation columns not to write


def path(run_dir: str, directory: str, stem: str, fmt: str) -> str:
    return storage.join(run_dir, directory, stem + EXTENSIONS[fmt])


def write(spec: OutputSpec, stem: str, frames: dict[str, pl.DataFrame]) -> dict[str, dict]:
    """Publish a unit's outputs (kept and rejected always, removed_lines when it has rows); returns per directory
    the rows and bytes written."""
    written = {}
    for directory, df in frames.items():
        if directory == "removed_lines" and df.is_empty():
            continue
        out = user_names(df.drop(spec.drop, strict=False), spec.columns)
        target = path(spec.run_dir, directory, stem, spec.format)
        if spec.format == "parquet":
            storage.write_parquet(out, target)
        else:
            storage.write_jsonl_gz(out, target)
        written[directory] = {"rows": out.height, "bytes": storage.size(target)}
    return written


def intact(run_dir: str, stem: str, fmt: str, files: dict[str, dict]) -> bool:
    """Each output file a unit wrote is there, whole: the row count in the Parquet footer, or the byte size of a
    JSON Lines file (published atomically, so a torn or replaced file differs in size)."""
    for directory, record in files.items():
        target = path(run_dir, directory, stem, fmt)
        try:
            if fmt == "parquet":
                if storage.parquet_file(target).metadata.num_rows != record["rows"]:
                    return False
            elif storage.size(target) != record["bytes"]:
                return False
        except (OSError, ValueError):
            return False
    return True


def files(run_dir: str, directory: str) -> list[str]:
    """Every output file of one output directory (``kept``, ``rejected``, ``removed_lines``), at any depth, in
    sorted order."""
    root = storage.join(run_dir, directory)
    suffixes = tuple(EXTENSIONS.values())
    return sorted(p for p in storage.walk_files(root) if p.endswith(suffixes))


def read(path: str, columns: Columns = Columns()) -> pl.DataFrame:
    """One output file (Parquet or gzip-compressed JSON Lines) with the text and id columns under their internal
    names ``text`` and ``id``."""
    if path.endswith(EXTENSIONS["parquet"]):
        df = storage.read_parquet(path)
    else:
        with storage.open_read(path) as f:
            df = pl.read_ndjson(gzip.decompress(f.read()))
    return df.rename({v: k for k, v in (("text", columns.text), ("id", columns.id)) if k != v and v in df.columns})
