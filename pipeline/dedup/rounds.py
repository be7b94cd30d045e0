"""The linking tasks the workers run (``corpusslim.dedup.linking`` holds the logic): pairs are routed to the
partition of their later document, seeded into node states, then pointer-jumping rounds run as partitioned joins
(each round: every partition asks the partitions owning its pointers' targets, they answer, it jumps), and the
last step names the roots by id and writes one links file per shard. A task holds one partition's rows, or one
pair file's; what one step sends the next travels in files (``corpusslim.dedup.shuffle``: one per sending task);
each round's states are files recorded by the driver, so a kill mid-linking resumes from the last recorded round.
"""
from __future__ import annotations

import time

import polars as pl

from corpusslim.dedup import shuffle
from corpusslim.dedup.linking import (
    ANSWER_SCHEMA,
    EDGE_SCHEMA,
    MEMBER_SCHEMA,
    TARGET_SCHEMA,
    Partitions,
    answer,
    edges_to_partitions,
    jump,
    members,
    seed,
    targets,
)
from corpusslim.runtime import storage
from corpusslim.runtime.keys import DOC, shard_expr
from corpusslim.runtime.measure import peak_rss_mb
from corpusslim.runtime.shard_io import read_checked, write_checked

ROOT_IDS = {"root": pl.UInt64, "id": pl.String}


def timed(start: float, **result) -> dict:
    """A task's result with its CPU seconds (this thread's, since ``start``) and the process's peak memory."""
    return {**result, "cpu_seconds": time.thread_time() - start, "peak_rss_mb": peak_rss_mb()}


def route_pairs(sender: int, pairs: dict | pl.DataFrame, exact: bool, partitions: Partitions, out: str) -> dict:
    """One pair file (a record, or a frame in the simulation) sent as edges to the partitions of its pairs."""
    start = time.thread_time()
    frame = read_checked(pairs) if isinstance(pairs, dict) else pairs
    return timed(start, sent=shuffle.send(edges_to_partitions(frame, exact, partitions), out, sender))


def seed_partition(part: int, edges: str, senders: int, out_path: str) -> dict:
    """A partition's first state (every document pointing at its earliest duplicate), from the edges sent to it
    (``edges``: the step's directory), written to ``out_path``."""
    start = time.thread_time()
    state = seed(shuffle.received_all(edges, senders, part, EDGE_SCHEMA))
    return timed(start, part=part, state=write_checked(state, out_path), moved=int(state["active"].sum()))


def ask(part: int, state: dict, partitions: Partitions, out: str) -> dict:
    """The targets a partition's active nodes need, sent to the partitions owning them."""
    start = time.thread_time()
    return timed(start, sent=shuffle.send(partitions.split(targets(read_checked(state)), "target"), out, part))


def answer_partition(part: int, state: dict, asked: str, senders: int, out: str) -> dict:
    """The pointers of this partition's documents every partition asked for, sent back to each."""
    start = time.thread_time()
    own = read_checked(state)
    pieces = shuffle.received(asked, senders, part)
    return timed(start, sent=shuffle.send({p: answer(own, a) for p, a in enumerate(pieces)}, out, part))


def jump_partition(part: int, state: dict, answers: str, senders: int, out_path: str) -> dict:
    """One round on a partition: the new state written to ``out_path``, and how many nodes moved."""
    start = time.thread_time()
    new, moved = jump(read_checked(state), shuffle.received_all(answers, senders, part, ANSWER_SCHEMA))
    return timed(start, part=part, state=write_checked(new, out_path), moved=moved)


def ask_roots(part: int, state: dict, partitions: Partitions, out: str) -> dict:
    """The roots a settled partition's documents lead to, sent to the partitions owning them."""
    start = time.thread_time()
    roots = read_checked(state, ["parent"]).select(target="parent").unique().cast(TARGET_SCHEMA)
    return timed(start, sent=shuffle.send(partitions.split(roots, "target"), out, part))


def root_ids(part: int, index_records: list[dict], asked: str, senders: int, out: str) -> dict:
    """Ids of the roots every partition asked for, from this partition's index files (read one at a time), sent
    back to each."""
    start = time.thread_time()
    pieces = shuffle.received(asked, senders, part)
    wanted = pl.concat(pieces).unique()
    found = [read_checked(r, [DOC, "id"]).join(wanted, left_on=DOC, right_on="target", how="semi")
             for r in index_records]
    ids = pl.concat(found).select(root=DOC, id="id") if found else pl.DataFrame(schema=ROOT_IDS)
    sent = {p: ids.join(a, left_on="root", right_on="target", how="semi") for p, a in enumerate(pieces)}
    return timed(start, sent=shuffle.send(sent, out, part))


def write_links(part: int, state: dict, ids: str, senders: int, links_dir: str) -> dict:
    """A settled partition's links (doc, root, reason, root_id), one file per shard in ``links_dir``."""
    start = time.thread_time()
    linked = members(read_checked(state), shuffle.received_all(ids, senders, part, ROOT_IDS))
    files = {int(s): write_checked(piece, storage.join(links_dir, f"{int(s)}.parquet"))
             for (s,), piece in linked.with_columns(shard=shard_expr("doc")).partition_by(
                 "shard", as_dict=True, include_key=False).items()}
    return timed(start, part=part, files=files, members=linked.height)


EMPTY_LINKS = pl.DataFrame(schema=MEMBER_SCHEMA)
