"""Linking verified duplicate pairs into the decision: each document links to its earliest verified duplicate;
the chain of links ends at the kept document (first arrival wins), so no later arrival changes an earlier
decision.

Two forms of the same rule: in one process (:func:`earliest_roots`, :func:`cluster`: dry runs, and the reference
the tests check against), and over partitions of document keys (:class:`Partitions`, :func:`seed`,
:func:`targets`, :func:`answer`, :func:`jump`, :func:`members`): the pieces of the pointer-jumping rounds the
workers run (``corpusslim.dedup.rounds``), each touching one partition's rows only.

A node's *state* row: ``doc``, ``parent`` (its earliest duplicate, then its parent's parent, ...), ``exact``
(the same over exact-duplicate links only) and ``active`` (a pointer moved in the last round). A round replaces
both pointers of every active node by its target's pointers; a node none of whose pointers moved points at
roots (a root points at itself), which never move again, so it drops out. Rounds stop when no pointer moves:
about log2 of the longest chain of links.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from corpusslim.runtime.inputs import ROW
from corpusslim.runtime.keys import DOC, row_expr, shard_of

PAIR_SCHEMA = {"a": pl.UInt64, "b": pl.UInt64}
EDGE_SCHEMA = {"a": pl.UInt64, "b": pl.UInt64, "exact": pl.Boolean}
STATE_SCHEMA = {"doc": pl.UInt64, "parent": pl.UInt64, "exact": pl.UInt64, "active": pl.Boolean}
TARGET_SCHEMA = {"target": pl.UInt64}
ANSWER_SCHEMA = {"target": pl.UInt64, "t_parent": pl.UInt64, "t_exact": pl.UInt64}
MEMBER_SCHEMA = {"doc": pl.UInt64, "root": pl.UInt64, "reason": pl.String, "root_id": pl.String}


def earliest_roots(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For edges a[i] -> b[i] with b[i] < a[i] (a document and an earlier duplicate of it): (nodes, root of each
    node). Each document links to its earliest duplicate; following the links ends at a document with no earlier
    duplicate, its root. A root never links on, so a later document can never change an earlier one's root:
    decisions depend on earlier arrivals only (what makes ``--against`` equal one run over everything). Vectorised
    pointer jumping, linear in edges per round, memory proportional to the edges."""
    if len(a) == 0:
        empty = np.array([], dtype=np.uint64)
        return empty, empty
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inverse[: len(a)], inverse[len(a):]
    parent = np.arange(len(nodes))
    np.minimum.at(parent, ia, ib)  # nodes are sorted, so the smallest index is the earliest document
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return nodes, nodes[parent]
        parent = grand


def with_reason(linked: pl.DataFrame) -> pl.DataFrame:
    """doc, root, reason from doc, root and exact_root (the root over exact links only; null when the document
    has none): no reason for a root, ``exact_dup`` when the document's text equals its root's (its exact links
    lead to the same document), else ``near_dup``."""
    return linked.select("doc", "root", reason=pl.when(pl.col("doc") == pl.col("root")).then(None)
                         .when(pl.col("exact_root") == pl.col("root")).then(pl.lit("exact_dup"))
                         .otherwise(pl.lit("near_dup")))


def cluster(near: pl.DataFrame, exact: pl.DataFrame) -> pl.DataFrame:
    """Every document linked to an earlier duplicate, and those earlier documents: doc, root (the kept document
    its links lead to) and, for non-roots, the reason (:func:`with_reason`). In one process."""
    edges = pl.concat([near, exact]).unique()
    nodes, roots = earliest_roots(edges["a"].to_numpy(), edges["b"].to_numpy())
    ex_nodes, ex_roots = earliest_roots(exact["a"].to_numpy(), exact["b"].to_numpy())
    members = pl.DataFrame({"doc": nodes, "root": roots}, schema={"doc": pl.UInt64, "root": pl.UInt64})
    exact_root = pl.DataFrame({"doc": ex_nodes, "exact_root": ex_roots},
                              schema={"doc": pl.UInt64, "exact_root": pl.UInt64})
    return with_reason(members.join(exact_root, on="doc", how="left")).sort("doc")


def name_roots(members: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
    """Cluster members (doc, root, reason) with the id of their root (``root_id``), from ``ids`` (DOC, id)."""
    return members.join(ids.rename({DOC: "root", "id": "root_id"}), on="root", how="left")


def rows_to_reject(members: pl.DataFrame) -> pl.DataFrame:
    """One shard's cluster members (doc, root, reason, root_id) as the rows the dedup stage joins: ``_row``,
    ``dup_of`` (root id, null for the root itself), ``dup_cluster`` (root id), ``dup_reason``."""
    return members.select(row_expr("doc").alias(ROW),
                          dup_of=pl.when(pl.col("reason").is_not_null()).then(pl.col("root_id")),
                          dup_cluster=pl.col("root_id"), dup_reason=pl.col("reason"))


@dataclass(frozen=True)
class Partitions:
    """Document keys split by shard number into contiguous ranges: partition i holds the shards from
    ``starts[i]`` up to the next start. A partition's documents are those of its shards, so the last round can
    write one links file per shard, and a shard's index is read by one partition only."""

    starts: tuple[int, ...]

    @classmethod
    def balanced(cls, rows_by_shard: dict[int, int], parts: int) -> Partitions:
        """At most ``parts`` ranges of about equal indexed rows (whole shards each)."""
        numbers = sorted(rows_by_shard)
        if not numbers:
            return cls((0,))
        cumulative = np.cumsum([rows_by_shard[n] for n in numbers])
        total = max(int(cumulative[-1]), 1)
        cuts = np.searchsorted(cumulative, [total * i / parts for i in range(1, parts)], side="left") + 1
        firsts = sorted({0, *[int(c) for c in cuts if c < len(numbers)]})
        return cls(tuple(numbers[i] for i in firsts))

    def __len__(self) -> int:
        return len(self.starts)

    def of(self, keys: np.ndarray) -> np.ndarray:
        """The partition of each document key."""
        return np.maximum(np.searchsorted(np.array(self.starts, dtype=np.int64), shard_of(keys), side="right") - 1, 0)

    def of_shard(self, number: int) -> int:
        """The partition holding a shard's documents."""
        return int(self.of(np.array([number << 32], dtype=np.uint64))[0])

    def split(self, df: pl.DataFrame, key: str) -> dict[int, pl.DataFrame]:
        """``df`` by the partition of its ``key`` column: every partition present, empty where nothing goes."""
        parts = df.with_columns(_part=pl.Series(self.of(df[key].to_numpy()), dtype=pl.Int64)).partition_by(
            "_part", as_dict=True, include_key=False)
        return {p: parts.get((p,), df.clear()) for p in range(len(self))}


def edges_to_partitions(pairs: pl.DataFrame, exact: bool, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """Pairs (a, b) as edges (a, b, exact) in the partition of ``a``, plus a self edge (b, b) in the partition of
    ``b``, so every document in a pair has a node where its key belongs."""
    edges = pl.concat([pairs.with_columns(exact=pl.lit(exact)),
                       pairs.select(a="b", b="b").unique().with_columns(exact=pl.lit(False))])
    return partitions.split(edges.cast(EDGE_SCHEMA), "a")


def seed(edges: pl.DataFrame) -> pl.DataFrame:
    """The state of one partition's nodes from their edges (:func:`edges_to_partitions`): each document's parent
    is its earliest duplicate (the smallest key, keys being in arrival order), its exact pointer the earliest
    exact duplicate; itself when it has none."""
    return (edges.group_by("a").agg(parent=pl.col("b").min(), exact=pl.col("b").filter("exact").min())
            .select(doc="a", parent="parent", exact=pl.coalesce("exact", "a"))
            .with_columns(active=(pl.col("parent") != pl.col("doc")) | (pl.col("exact") != pl.col("doc")))
            .cast(STATE_SCHEMA).sort("doc"))


def targets(state: pl.DataFrame) -> pl.DataFrame:
    """The documents whose pointers the active nodes of a partition need this round."""
    active = state.filter("active")
    return pl.concat([active.select(target="parent"), active.select(target="exact")]).unique().cast(TARGET_SCHEMA)


def answer(state: pl.DataFrame, asked: pl.DataFrame) -> pl.DataFrame:
    """The pointers of the asked documents of this partition: target, t_parent, t_exact."""
    return asked.join(state.select(target="doc", t_parent="parent", t_exact="exact"), on="target").cast(ANSWER_SCHEMA)


def jump(state: pl.DataFrame, answers: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One round for a partition: every active node's pointers replaced by its targets' pointers; the new state
    and how many nodes moved (those stay active)."""
    active = state.filter("active")
    moved = (active.join(answers.select(parent="target", new_parent="t_parent"), on="parent", how="left")
             .join(answers.select(exact="target", new_exact="t_exact"), on="exact", how="left")
             .select("doc", parent="new_parent", exact="new_exact",
                     active=(pl.col("new_parent") != pl.col("parent")) | (pl.col("new_exact") != pl.col("exact"))))
    if moved.null_count().sum_horizontal().item():
        raise ValueError("a pointer's target has no node: the partitions' states are inconsistent")
    new = pl.concat([state.filter(~pl.col("active")), moved]).cast(STATE_SCHEMA).sort("doc")
    return new, int(moved["active"].sum())


def members(state: pl.DataFrame, root_ids: pl.DataFrame) -> pl.DataFrame:
    """A settled partition's links: doc, root, reason (:func:`with_reason`), root_id (``root_ids``: root, id)."""
    linked = with_reason(state.select("doc", root="parent", exact_root="exact"))
    return linked.join(root_ids.rename({"id": "root_id"}), on="root", how="left").cast(MEMBER_SCHEMA).sort("doc")
