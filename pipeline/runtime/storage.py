"""Where the job's files live: local paths, or fsspec URLs (``s3://``, ``gs://``, ``file://``, ``memory://``…)
when the filesystem's package is installed (``pip install 'corpusslim[s3]'`` for S3).

Every read and write of the job goes through these functions, so the driver and the workers need no shared disk:
each opens the URL itself. Every file the job writes is published here (``write_parquet``, ``write_json``,
``write_text``), atomically on both:

* local paths: write ``.<name>.<uuid>.tmp`` in the target directory, fsync, rename over the target;
* object stores, where rename is a copy: write the temporary key, copy it to the final key (a single PUT/COPY:
  readers see the old object or the whole new one, never part of it), delete the temporary key.

Either way a file counts as output only once the manifest records it with its size and checksum or row count
(``corpusslim.runtime.manifest``): the manifest is the marker. A crashed attempt leaves at most a ``*.tmp`` key (removed
by the next run) or an unrecorded file (redone and overwritten).
"""
from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import uuid
from collections.abc import Callable
from typing import IO

import fsspec
import polars as pl
import pyarrow.parquet as pq

from corpusslim.errors import OutputError

TMP_SUFFIX = ".tmp"


def is_url(path: str) -> bool:
    return "://" in path


def _fs(path: str):
    """(filesystem, path within it) of a URL. Listings are not cached across calls: other processes (the
    workers) write the files this one lists."""
    fs, p = fsspec.core.url_to_fs(path)
    fs.invalidate_cache()
    return fs, p


def _url(fs, path: str) -> str:
    return fs.unstrip_protocol(path)


def absolute(path: str) -> str:
    return path if is_url(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_url(base) else os.path.join(base, *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _either(path: str, local: Callable, method: str):
    """``local(path)`` for a local path, else the fsspec filesystem's ``method`` on the URL's path."""
    if not is_url(path):
        return local(path)
    fs, p = _fs(path)
    return getattr(fs, method)(p)


def exists(path: str) -> bool:
    return _either(path, os.path.exists, "exists")


def isdir(path: str) -> bool:
    return _either(path, os.path.isdir, "isdir")


def isfile(path: str) -> bool:
    return _either(path, os.path.isfile, "isfile")


def size(path: str) -> int:
    """Bytes of a file (``OSError``, e.g. ``FileNotFoundError``, when it is not there)."""
    return _either(path, os.path.getsize, "size")


def glob(pattern: str) -> list[str]:
    """Files matching a glob pattern (``**`` recursive), as paths of the same kind as the pattern."""
    if not is_url(pattern):
        return [p for p in globlib.glob(pattern, recursive=True) if os.path.isfile(p)]
    fs, p = _fs(pattern)
    return [_url(fs, m) for m in fs.glob(p) if fs.isfile(m)]


def listdir(directory: str) -> list[str]:
    """Names of the files directly in a directory; [] when it does not exist."""
    if not is_url(directory):
        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    fs, p = _fs(directory)
    if not fs.isdir(p):
        return []
    return sorted(basename(e["name"]) for e in fs.ls(p, detail=True) if e["type"] == "file")


def walk_files(directory: str) -> list[str]:
    """Every file under a directory, at any depth."""
    if not is_url(directory):
        return [os.path.join(root, n) for root, _dirs, names in os.walk(directory) for n in names]
    fs, p = _fs(directory)
    return [_url(fs, f) for f in fs.find(p)] if fs.exists(p) else []


def makedirs(directory: str) -> None:
    if not is_url(directory):
        os.makedirs(directory, exist_ok=True)
    # object stores have no directories: a key's prefix exists once a key is written under it


def _delete(path: str, local: Callable, recursive: bool) -> None:
    if not is_url(path):
        if os.path.lexists(path):
            local(path)
        return
    fs, p = _fs(path)
    if fs.exists(p):
        fs.rm(p, recursive=recursive)


def remove(path: str) -> None:
    """Delete a file if it is there."""
    _delete(path, os.unlink, recursive=False)


def rmtree(directory: str) -> None:
    """Delete a directory and everything under it, if it is there."""
    _delete(directory, shutil.rmtree, recursive=True)


def open_read(path: str) -> IO[bytes]:
    if not is_url(path):
        return open(path, "rb")
    fs, p = _fs(path)
    return fs.open(p, "rb")


def read_text(path: str) -> str:
    with open_read(path) as f:
        return f.read().decode("utf-8")


def read_parquet(path: str, columns: list[str] | None = None) -> pl.DataFrame:
    if not is_url(path):
        return pl.read_parquet(path, columns=columns)
    with open_read(path) as f:
        return pl.read_parquet(f, columns=columns)


def parquet_file(path: str) -> pq.ParquetFile:
    """A ``pyarrow.parquet.ParquetFile`` (the footer read, row groups read on demand)."""
    if not is_url(path):
        return pq.ParquetFile(path)
    fs, p = _fs(path)
    return pq.ParquetFile(fs.open(p, "rb"))


def sha256(path: str) -> str:
    with open_read(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def temporary_name(path: str) -> str:
    return join(dirname(path), f".{basename(path)}.{uuid.uuid4().hex}{TMP_SUFFIX}")


def publish(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically (see the module docstring): ``write`` fills a binary file object. Raises
    ``OSError`` (the caller names the file) when the target cannot be written; no temporary is left behind."""
    tmp = temporary_name(path)
    if not is_url(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    fs, p = _fs(path)
    t = _fs(tmp)[1]
    try:
        with fs.open(t, "wb") as f:
            write(f)
        fs.copy(t, p)
    finally:
        if fs.exists(t):
            fs.rm(t)


def _published(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """``publish``, with a failure raised as an ``OutputError`` naming the file."""
    try:
        publish(path, write)
    except (OSError, pl.exceptions.ComputeError) as exc:  # polars reports a failed write as a ComputeError
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None


def write_text(path: str, text: str) -> None:
    """Publish a UTF-8 text file atomically."""
    data = text.encode("utf-8")
    _published(path, lambda f: f.write(data))


def write_json(path: str, payload: dict, indent: int | None = 1) -> None:
    """Publish a JSON file atomically (keys sorted, non-ASCII kept); ``indent`` None writes it on one line, about
    ten times faster (Python's C encoder serves only unindented JSON)."""
    separators = (",", ":") if indent is None else None
    write_text(path, json.dumps(payload, indent=indent, separators=separators, sort_keys=True, ensure_ascii=False))


def write_jsonl_gz(df: pl.DataFrame, path: str) -> None:
    """Publish a DataFrame atomically as gzip-compressed JSON Lines (nested columns as nested JSON; no timestamp
    in the gzip header, so the same rows give the same bytes)."""
    data = gzip.compress(df.write_ndjson().encode("utf-8"), mtime=0)
    _published(path, lambda f: f.write(data))


def write_parquet(df: pl.DataFrame, path: str, compression: str = "zstd") -> None:
    """Publish a DataFrame atomically as a Parquet file (zstd unless told otherwise)."""
    def write(f: IO[bytes]) -> None:
        buffer = io.BytesIO() if is_url(path) else f  # polars writes to a seekable buffer, then one upload
        df.write_parquet(buffer, compression=compression, statistics=False)
        if buffer is not f:
            f.write(buffer.getbuffer())
    _published(path, write)
