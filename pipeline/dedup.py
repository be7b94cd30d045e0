"""The global phases of dedup between map and apply: reduce, verify, cluster.

* ``reduce_candidates`` (one Dask task per LSH band, and one for the exact hash; optionally split in key ranges):
  group one key column of every index file; each document sharing a key with an earlier one gives a candidate
  pair (doc, earliest doc with that key).
* ``verify_pairs`` (one task per shard of the later documents): keep the pairs whose estimated (signature) or
  exact shingle Jaccard reaches the threshold.
* ``cluster`` (driver, in memory proportional to the number of duplicate pairs, not of documents): each
  document links to its earliest verified duplicate; the chain of links ends at the kept document (first arrival
  wins), so no later arrival changes an earlier decision.
* ``resolve_duplicates`` (inside each apply task): the ids of the roots for one shard's duplicate rows.
"""
from __future__ import annotations

import os
import time

import numpy as np
import polars as pl

from filters.minhash import jaccard, shingles
from pipeline.shard_io import ROW, read_checked, write_checked
from pipeline.worker import peak_rss_mb
from pipeline.stages.dedup import DOC, DedupConfig, DedupStage, row_of, shard_of

PAIR_SCHEMA = {"a": pl.UInt64, "b": pl.UInt64}


def reduce_candidates(task: str, index_records: list[dict], column: str, partition: int, partitions: int,
                      out_path: str) -> dict:
    """Candidate pairs (a, b) for one key column: b is the earliest document with a's key, a != b.
    Returns the record of the pairs file and the task's CPU seconds."""
    start = time.process_time()
    frames = []
    for record in index_records:
        keys = read_checked(record, [DOC, column]).drop_nulls(column)
        if partitions > 1:
            keys = keys.filter(pl.col(column) % partitions == partition)
        frames.append(keys)
    keys = pl.concat(frames) if frames else pl.DataFrame(schema={DOC: pl.UInt64, column: pl.UInt64})
    return {"task": task, "pairs": write_checked(candidate_pairs(keys, column), out_path), "cpu_seconds": time.process_time() - start,
            "peak_rss_mb": peak_rss_mb()}


def duplicate_ids(id_records: list[dict], examples: int = 10) -> dict:
    """Ids that appear on more than one input row across the shards (from each shard's file of ids): how many, and
    a few of them. Ids name documents in ``dup_of``, so a repeated id is reported. Memory: 8 bytes per row (a
    64-bit hash of each id, consistent within this one task), plus the few ids shown."""
    def hashed(record: dict) -> pl.DataFrame:
        return read_checked(record).select(pl.col("id"), h=pl.col("id").hash(seed=0))

    if not id_records:
        return {"count": 0, "examples": []}
    hashes = pl.concat([hashed(r).select("h") for r in id_records])
    repeated = hashes.group_by("h").len().filter(pl.col("len") > 1)["h"]
    shown: set[str] = set()
    for record in id_records:
        if len(shown) >= min(examples, repeated.len()):
            break
        shown |= set(_only(hashed(record), "h", repeated.to_numpy())["id"])
    return {"count": repeated.len(), "examples": sorted(shown)[:examples]}


def candidate_pairs(keys: pl.DataFrame, column: str) -> pl.DataFrame:
    """Pairs (a, b): every document a sharing ``column``'s key with an earlier document b, the earliest."""
    return (keys.drop_nulls(column).with_columns(b=pl.col(DOC).min().over(column)).filter(pl.col(DOC) != pl.col("b"))
            .select(a=pl.col(DOC), b=pl.col("b")).unique().sort("a", "b"))


def _rows_by_shard(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Document keys grouped by the shard number they encode."""
    keys = np.sort(np.asarray(keys, dtype=np.uint64))
    shards, starts = np.unique(shard_of(keys), return_index=True)
    return {int(s): part for s, part in zip(shards, np.split(keys, starts[1:]))}


def _only(df: pl.DataFrame, column: str, keys: np.ndarray) -> pl.DataFrame:
    """The rows of ``df`` whose ``column`` is one of ``keys``."""
    return df.join(pl.DataFrame({column: keys}, schema={column: df.schema[column]}), on=column, how="semi")


def _index_rows(keys: np.ndarray, index: dict[int, dict], column: str) -> pl.DataFrame:
    """``DOC`` and ``column`` of the given documents, read from their shards' index files."""
    return pl.concat([_only(read_checked(index[s], [DOC, column]), DOC, k) for s, k in _rows_by_shard(keys).items()])


def _texts(keys: np.ndarray, text_sources: dict[int, dict]) -> pl.DataFrame:
    """text and seg of documents by key, from each shard's intermediate (this run) or outputs (earlier runs)."""
    frames = []
    for s, k in _rows_by_shard(keys).items():
        source = text_sources[s]
        if "pre" in source:
            df = read_checked(source["pre"], [ROW, "text", "seg"] if source.get("has_seg") else [ROW, "text"])
            df = _only(df, ROW, row_of(k)).select(
                pl.lit(s, dtype=pl.UInt64).mul(1 << 32).add(pl.col(ROW).cast(pl.UInt64)).alias(DOC), pl.exclude(ROW))
        else:  # an earlier run: look its documents up by id in its final outputs
            ids = _only(read_checked(source["index"], [DOC, "id"]), DOC, k)
            outputs = [pl.read_parquet(p) for p in source["outputs"] if os.path.exists(p)]
            df = ids.join(pl.concat(outputs, how="diagonal_relaxed"), on="id").select(
                DOC, "text", *(["seg"] if "seg" in outputs[0].columns else []))
        # Copy the few rows out: a filtered string column would keep the whole shard's text buffer alive.
        frames.append(pl.DataFrame({c: df[c].to_list() for c in df.columns}, schema=df.schema))
    df = pl.concat(frames, how="diagonal_relaxed")
    return df if "seg" in df.columns else df.with_columns(seg=pl.lit(None, dtype=pl.String))


def verify_pairs(pairs: pl.DataFrame, config: DedupConfig, index: dict[int, dict],
                 text_sources: dict[int, dict]) -> dict:
    """The candidate pairs whose Jaccard similarity reaches ``config.threshold`` (signature estimate or exact),
    and the task's CPU seconds."""
    start = time.process_time()
    if config.verify == "none" or pairs.is_empty():
        return {"pairs": pairs, "cpu_seconds": time.process_time() - start}
    keys = np.unique(np.concatenate([pairs["a"].to_numpy(), pairs["b"].to_numpy()]))
    if config.verify == "signature":
        verified = similar_pairs(pairs, config, signatures=_index_rows(keys, index, "sig"))
    else:
        verified = similar_pairs(pairs, config, texts=_texts(keys, text_sources))
    return {"pairs": verified, "cpu_seconds": time.process_time() - start}


def similar_pairs(pairs: pl.DataFrame, config: DedupConfig, signatures: pl.DataFrame | None = None,
                  texts: pl.DataFrame | None = None) -> pl.DataFrame:
    """The pairs whose estimated Jaccard (from ``signatures``: DOC, sig) or exact shingle Jaccard (from ``texts``:
    DOC, text, seg) reaches ``config.threshold``."""
    if signatures is not None:
        joined = pairs.join(signatures.rename({DOC: "a", "sig": "sa"}), on="a").join(
            signatures.rename({DOC: "b", "sig": "sb"}), on="b")
        similar = (joined["sa"].to_numpy() == joined["sb"].to_numpy()).mean(axis=1)
    else:
        sets = {k: set(shingles(t, s, config.ngram, config.ngram_zh)) for k, t, s in
                texts.select(DOC, "text", "seg").iter_rows()}
        joined = pairs
        similar = np.array([jaccard(sets[a], sets[b]) for a, b in pairs.iter_rows()])
    return joined.filter(pl.Series(similar >= config.threshold, dtype=pl.Boolean)).select("a", "b").sort("a", "b")


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


def resolve_duplicates(members: pl.DataFrame, index: dict[int, dict]) -> pl.DataFrame:
    """One shard's cluster members (doc, root, reason) as the rows the dedup stage joins:
    ``_row``, ``dup_of`` (root id, null for the root itself), ``dup_cluster`` (root id), ``dup_reason``."""
    ids = _index_rows(members["root"].unique().to_numpy(), index, "id") if not members.is_empty() else None
    return rows_to_reject(members, ids)


def rows_to_reject(members: pl.DataFrame, ids: pl.DataFrame | None) -> pl.DataFrame:
    """Cluster members (doc, root, reason) with the roots' ids (DOC, id) as the dedup stage's rows."""
    if members.is_empty():
        return pl.DataFrame(schema={ROW: pl.UInt32, "dup_of": pl.String, "dup_cluster": pl.String,
                                    "dup_reason": pl.String})
    return (members.join(ids.rename({DOC: "root", "id": "dup_cluster"}), on="root", how="left")
            .select((pl.col("doc") % (1 << 32)).cast(pl.UInt32).alias(ROW),
                    dup_of=pl.when(pl.col("reason").is_not_null()).then(pl.col("dup_cluster")),
                    dup_cluster=pl.col("dup_cluster"), dup_reason=pl.col("reason")))


def duplicates_in_memory(batch: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """All phases at once on one in-memory batch (a dry-run sample): the dedup stage's rows to join."""
    index = DedupStage(config).index(batch, 0)
    exact = candidate_pairs(index, "exact") if config.exact else pl.DataFrame(schema=PAIR_SCHEMA)
    bands = [candidate_pairs(index, c) for c in index.columns if c.startswith("band_")]
    near = pl.concat(bands).unique().join(exact, on=["a", "b"], how="anti") if bands else \
        pl.DataFrame(schema=PAIR_SCHEMA)
    if config.verify == "signature":
        near = similar_pairs(near, config, signatures=index.select(DOC, "sig"))
    elif config.verify == "exact":
        texts = batch.select(pl.col(ROW).cast(pl.UInt64).alias(DOC), "text",
                             pl.col("seg") if "seg" in batch.columns else pl.lit(None, dtype=pl.String).alias("seg"))
        near = similar_pairs(near, config, texts=texts)
    return rows_to_reject(cluster(near, exact), index.select(DOC, "id"))
