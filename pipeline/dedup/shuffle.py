"""Files between the steps of dedup's partitioned tasks (an all-to-all exchange, the *shuffle*): a sending task
writes its rows for every receiving partition into one file of fixed name, one row group per receiver in order,
the receivers listed in the footer; a receiving task reads its row groups from every sender's file of the step.

The driver waits for the senders (one small record each), then submits the receivers with the step's directory:
it holds one future and one record per task, never one per (sender, receiver) pair, so its memory does not grow
with the square of the partitions. A step's files are written again whenever the step runs (the receivers are
submitted only once every sender of this run has written), so a file left by a killed run is never read.
"""
from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq

from corpusslim.runtime import storage

RECEIVERS = b"corpusslim.receivers"  # footer key: the receiving partition of each row group, as a JSON list


def path_of(directory: str, sender: int) -> str:
    return storage.join(directory, f"{sender:05d}.parquet")


def send(pieces: dict[int, pl.DataFrame], directory: str, sender: int) -> dict:
    """Write ``pieces`` (rows by receiving partition, one schema) as ``sender``'s file of the step in
    ``directory``; returns the rows and bytes written."""
    tables = {r: p.to_arrow() for r, p in sorted(pieces.items()) if p.height}
    schema = next(iter(pieces.values())).to_arrow().schema
    schema = schema.with_metadata({RECEIVERS: json.dumps(sorted(tables)).encode()})

    def write(f) -> None:
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for table in tables.values():
                writer.write_table(table, row_group_size=table.num_rows)

    path = path_of(directory, sender)
    storage.publish(path, write)
    return {"rows": sum(t.num_rows for t in tables.values()), "bytes": storage.size(path)}


def received(directory: str, senders: int, receiver: int) -> list[pl.DataFrame]:
    """The rows each of the step's ``senders`` wrote for ``receiver``, by sender (an empty frame when none)."""
    pieces = []
    for sender in range(senders):
        file = storage.parquet_file(path_of(directory, sender))
        receivers = json.loads(file.schema_arrow.metadata[RECEIVERS])
        groups = [i for i, r in enumerate(receivers) if r == receiver]
        table = file.read_row_groups(groups) if groups else file.schema_arrow.empty_table()
        pieces.append(pl.from_arrow(table.replace_schema_metadata(None)))
    return pieces


def received_all(directory: str, senders: int, receiver: int, schema: dict) -> pl.DataFrame:
    """The rows every sender wrote for ``receiver``, in one frame of ``schema``."""
    pieces = received(directory, senders, receiver)
    return pl.concat(pieces).cast(schema) if pieces else pl.DataFrame(schema=schema)

