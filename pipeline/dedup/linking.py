"""Linking verified duplicate pairs into the decision: each document links to its earliest verified duplicate;
the chain of links ends at the kept document (first arrival wins), so no later arrival changes an earlier
decision. In memory proportional to the number of duplicate pairs, not of documents.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from corpusslim.keys import DOC, row_expr
from corpusslim.shard_io import ROW

PAIR_SCHEMA = {"a": pl.UInt64, "b": pl.UInt64}


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


def cluster(near: pl.DataFrame, exact: pl.DataFrame) -> pl.DataFrame:
    """Every document linked to an earlier duplicate, and those earlier documents: doc, root (the kept document
    its links lead to) and, for non-roots, the reason: ``exact_dup`` when its text equals the root's (its exact
    links lead to the same document), else ``near_dup``."""
    edges = pl.concat([near, exact]).unique()
    nodes, roots = earliest_roots(edges["a"].to_numpy(), edges["b"].to_numpy())
    ex_nodes, ex_roots = earliest_roots(exact["a"].to_numpy(), exact["b"].to_numpy())
    members = pl.DataFrame({"doc": nodes, "root": roots}, schema={"doc": pl.UInt64, "root": pl.UInt64})
    exact_root = pl.DataFrame({"doc": ex_nodes, "exact_root": ex_roots},
                              schema={"doc": pl.UInt64, "exact_root": pl.UInt64})
    return (members.join(exact_root, on="doc", how="left")
            .with_columns(reason=pl.when(pl.col("doc") == pl.col("root")).then(None)
                          .when(pl.col("exact_root") == pl.col("root")).then(pl.lit("exact_dup"))
                          .otherwise(pl.lit("near_dup")))
            .select("doc", "root", "reason").sort("doc"))


def name_roots(members: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
    """Cluster members (doc, root, reason) with the id of their root (``root_id``), from ``ids`` (DOC, id)."""
    return members.join(ids.rename({DOC: "root", "id": "root_id"}), on="root", how="left")


def rows_to_reject(members: pl.DataFrame) -> pl.DataFrame:
    """One shard's cluster members (doc, root, reason, root_id) as the rows the dedup stage joins: ``_row``,
    ``dup_of`` (root id, null for the root itself), ``dup_cluster`` (root id), ``dup_reason``."""
    return members.select(row_expr("doc").alias(ROW),
                          dup_of=pl.when(pl.col("reason").is_not_null()).then(pl.col("root_id")),
                          dup_cluster=pl.col("root_id"), dup_reason=pl.col("reason"))
