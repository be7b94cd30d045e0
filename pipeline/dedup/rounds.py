"""The linking tasks the workers run (``corpusslim.dedup.linking`` holds the logic): pairs are routed to the
partition of their later document, seeded into node states, then pointer-jumping rounds run as partitioned joins
(each round: every partition asks the partitions owning its pointers' targets, they answer, it jumps), and the
last step names the roots by id and writes one links file per shard. A task holds one partition's rows, or one
pair file's; pieces travel worker to worker; each round's states are files recorded by the driver, so a kill
mid-linking resumes from the last recorded round.
"""
from __future__ import annotations

import time

import polars as pl

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


def _timed(start: float, **result) -> dict:
    return {**result, "cpu_seconds": time.thread_time() - start, "peak_rss_mb": peak_rss_mb()}


def route_pairs(pairs: dict | pl.DataFrame, exact: bool, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """One pair file (a record, or a frame in the simulation) as edges by partition."""
    frame = read_checked(pairs) if isinstance(pairs, dict) else pairs
    return edges_to_partitions(frame, exact, partitions)


def cost_of(result: dict) -> dict:
    """What the driver keeps of a task result that holds data for other tasks: its CPU seconds and peak memory."""
    return {k: result[k] for k in ("cpu_seconds", "peak_rss_mb")}


def pick(pieces: dict, key: int) -> pl.DataFrame:
    """The piece of a routed result one task of the next step needs."""
    return pieces[key]


def seed_partition(part: int, out_path: str, *pieces: pl.DataFrame) -> dict:
    """A partition's first state (every document pointing at its earliest duplicate), written to ``out_path``."""
    start = time.thread_time()
    state = seed(pl.concat(pieces) if pieces else pl.DataFrame(schema=EDGE_SCHEMA))
    return _timed(start, part=part, state=write_checked(state, out_path), moved=int(state["active"].sum()))


def ask(state: dict, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """The targets a partition's active nodes need, by the partition owning them."""
    return partitions.split(targets(read_checked(state)), "target")


def answer_partition(state: dict, *asked: pl.DataFrame) -> dict:
    """Answers for every asking partition (``asked[p]``: partition p's targets here), by asking partition."""
    start = time.thread_time()
    own = read_checked(state)
    return _timed(start, parts={p: answer(own, a) for p, a in enumerate(asked)})


def part_for(result: dict, key: int) -> pl.DataFrame:
    """The piece of a task's result (its ``parts``) one task of the next step needs."""
    return result["parts"][key]


def jump_partition(part: int, state: dict, out_path: str, *answers: pl.DataFrame) -> dict:
    """One round on a partition: the new state written to ``out_path``, and how many nodes moved."""
    start = time.thread_time()
    new, moved = jump(read_checked(state), pl.concat(answers) if answers else pl.DataFrame(schema=ANSWER_SCHEMA))
    return _timed(start, part=part, state=write_checked(new, out_path), moved=moved)


def ask_roots(state: dict, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """The roots a settled partition's documents lead to, by the partition owning them."""
    roots = read_checked(state, ["parent"]).select(target="parent").unique().cast(TARGET_SCHEMA)
    return partitions.split(roots, "target")


def root_ids(index_records: list[dict], *asked: pl.DataFrame) -> dict:
    """Ids of the asked roots, from this partition's index files (read one at a time), by asking partition."""
    start = time.thread_time()
    wanted = pl.concat(asked).unique() if asked else pl.DataFrame(schema=TARGET_SCHEMA)
    found = [read_checked(r, [DOC, "id"]).join(wanted, left_on=DOC, right_on="target", how="semi")
             for r in index_records]
    ids = pl.concat(found).select(root=DOC, id="id") if found else pl.DataFrame(schema={"root": pl.UInt64,
                                                                                         "id": pl.String})
    return _timed(start, parts={p: ids.join(a, left_on="root", right_on="target", how="semi")
                                for p, a in enumerate(asked)})


def write_links(part: int, state: dict, links_dir: str, *ids: pl.DataFrame) -> dict:
    """A settled partition's links (doc, root, reason, root_id), one file per shard in ``links_dir``."""
    start = time.thread_time()
    linked = members(read_checked(state), pl.concat(ids) if ids else pl.DataFrame(schema={"root": pl.UInt64,
                                                                                           "id": pl.String}))
    files = {int(s): write_checked(part, storage.join(links_dir, f"{int(s)}.parquet"))
             for (s,), part in linked.with_columns(shard=shard_expr("doc")).partition_by(
                 "shard", as_dict=True, include_key=False).items()}
    return _timed(start, part=part, files=files, members=linked.height)


EMPTY_LINKS = pl.DataFrame(schema=MEMBER_SCHEMA)
