"""Typed results that travel from the worker tasks to the driver, the manifest, stats and the ledger.

They are plain dicts on the wire and in ``_manifest.json`` (JSON), typed here so every reader and writer agrees on
the keys.
"""
from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Count(TypedDict):
    docs: int
    tokens: int


class LineCount(TypedDict):
    lines: int
    tokens: int


class StageStats(TypedDict):
    """One stage on one shard: documents and o200k_base tokens in and out, removals by reason, CPU seconds."""

    stage: str
    docs_in: int
    tokens_in: int
    docs_out: int
    tokens_out: int
    removed: dict[str, Count]
    cpu_seconds: float
    lines_removed: NotRequired[dict[str, LineCount]]  # line-editing stages only


class FileRecord(TypedDict):
    """A file a task wrote, as ``read_checked`` verifies it."""

    path: str
    rows: int
    bytes: int
    sha256: str


# Rows of a shard: read ("in"; a keyword, hence the functional form) and per output directory (``removed_lines``
# only where a stage removed lines).
ShardRows = TypedDict("ShardRows", {"in": int, "kept": int, "rejected": int, "removed_lines": NotRequired[int]})


class _Task(TypedDict):
    shard: str
    path: str
    index: int
    peak_rss_mb: float


class BadInput(_Task):
    """A shard that cannot be read or breaks the data contract; the driver applies ``on_bad_shard``."""

    status: Literal["bad_input", "quarantined"]
    error: str


class FileSize(TypedDict):
    rows: int
    bytes: int


class ShardResult(_Task):
    """A shard's final outputs written (``process_shard``, ``apply_shard``)."""

    status: Literal["done", "stale"]
    rows: ShardRows
    files: dict[str, FileSize]  # per output directory written
    format: str  # output format (corpusslim.runtime.outputs.EXTENSIONS)
    bytes_in: int
    text_bytes: int
    stages: list[StageStats]
    write_cpu_seconds: float
    startup_cpu_seconds: float
    fp: NotRequired[str]  # with a global stage: the index state the outputs were decided on


class MapResult(_Task):
    """A shard mapped for a global stage (``map_shard``): its intermediate, index and ids written."""

    status: Literal["done"]
    shard_number: int
    rows_in: int
    docs_indexed: int
    bytes_in: int
    text_bytes: int
    stages: list[StageStats]
    map_cpu_seconds: float
    pre: FileRecord
    index: FileRecord
    ids: FileRecord
    startup_cpu_seconds: float
