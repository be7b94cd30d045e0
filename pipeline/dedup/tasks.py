"""Dedup's tasks on the workers between map and apply: reduce and verify.

* ``reduce_candidates`` (one Dask task per LSH band, and one for the exact hash; optionally split in key ranges):
  group one key column of every index file; each document sharing a key with an earlier one gives a candidate
  pair (doc, earliest doc with that key).
* ``split_pairs`` (per reduce file) and ``candidates_of`` (per partition of document keys, ``linking.Partitions``):
  the candidate pairs of each partition's later documents, exact pairs taken out; ``requests_of`` and
  ``gather_partition`` (per partition, each shard's files read once): the payloads each partition's pairs compare,
  sent worker to worker; ``verify_partition``: the pairs whose exact shingle Jaccard (or signature estimate)
  reaches the threshold, written to a file for the linking rounds (``corpusslim.dedup.rounds``). No pair passes
  through the driver.
"""
from __future__ import annotations

import time  # task CPU: time.thread_time(), as the worker's other threads run other tasks (docs/ARCHITECTURE.md)

import numpy as np
import polars as pl
import pyarrow as pa

from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.linking import PAIR_SCHEMA, Partitions, cluster, name_roots
from corpusslim.filters.minhash import set_jaccard, shingle_sets, shingles
from corpusslim.runtime import outputs, storage
from corpusslim.runtime.inputs import ROW
from corpusslim.runtime.keys import DOC, doc_keys, row_of, shard_expr, shard_of
from corpusslim.runtime.measure import peak_rss_mb
from corpusslim.runtime.shard_io import read_checked, write_checked


def reduce_candidates(task: str, index_records: list[dict], column: str, partition: int, partitions: int,
                      out_path: str) -> dict:
    """Candidate pairs (a, b) for one key column: b is the earliest document with a's key, a != b.
    Returns the record of the pairs file and the task's CPU seconds."""
    start = time.thread_time()
    frames = []
    for record in index_records:
        keys = read_checked(record, [DOC, column]).drop_nulls(column)
        if partitions > 1:
            keys = keys.filter(pl.col(column) % partitions == partition)
        frames.append(keys)
    keys = pl.concat(frames) if frames else pl.DataFrame(schema={DOC: pl.UInt64, column: pl.UInt64})
    pairs = write_checked(candidate_pairs(keys, column), out_path)
    return {"task": task, "pairs": pairs, "cpu_seconds": time.thread_time() - start, "peak_rss_mb": peak_rss_mb()}


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


def _only(df: pl.DataFrame, column: str, keys: np.ndarray) -> pl.DataFrame:
    """The rows of ``df`` whose ``column`` is one of ``keys``, copied out: a filtered string column would keep
    the whole file's buffer alive."""
    df = df.join(pl.DataFrame({column: keys}, schema={column: df.schema[column]}), on=column, how="semi")
    return pl.DataFrame({c: df[c].to_list() for c in df.columns}, schema=df.schema)


def with_payload(docs: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """DOC, id and what verification compares (``payload``): the shingle set (exact), the signature (signature),
    nothing (none). ``docs`` holds DOC, id and text, seg (exact) or sig (signature)."""
    if config.verify == "exact":
        segs = docs["seg"].to_list() if "seg" in docs.columns else [None] * docs.height
        sets = shingle_sets([shingles(t, s, config.ngram, config.ngram_zh) for t, s in zip(docs["text"], segs)])
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in sets], dtype=np.int64)])
        values = np.concatenate(sets) if sets else np.array([], dtype=np.uint64)
        return docs.select(DOC, "id").with_columns(
            payload=pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values)))
    if config.verify == "signature":
        return docs.select(DOC, "id", payload="sig")
    return docs.select(DOC, "id")


def _source_docs(keys: np.ndarray, source: dict, config: DedupConfig) -> pl.DataFrame:
    """DOC, id and the columns :func:`with_payload` needs, of the given documents of one shard, read once: from
    this run's intermediate (``pre``), or from an earlier run's index and final outputs."""
    if config.verify != "exact":
        return _only(read_checked(source["index"], [DOC, "id", *(["sig"] if config.verify == "signature" else [])]),
                     DOC, keys)
    if "pre" in source:
        number = int(shard_of(keys[:1])[0])
        df = _only(read_checked(source["pre"], [ROW, "id", "text", *(["seg"] if source["has_seg"] else [])]),
                   ROW, row_of(keys))
        return df.select(doc_keys(number, df[ROW]), pl.exclude(ROW))
    ids = _only(read_checked(source["index"], [DOC, "id"]), DOC, keys)
    written = pl.concat([outputs.read(p, source["columns"]) for p in source["outputs"]], how="diagonal_relaxed")
    return ids.join(_only(written, "id", ids["id"].to_numpy()), on="id").select(
        DOC, "id", "text", *(["seg"] if "seg" in written.columns else []))


def split_pairs(pairs: dict, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """One reduce task's pair file by the partition of its later document."""
    return partitions.split(read_checked(pairs), "a")


def candidates_of(exact_pieces: int, *pieces: pl.DataFrame) -> dict:
    """One partition's candidate pairs: its band pairs that are not exact pairs (the first ``exact_pieces``
    pieces), each once; and how many exact pairs it has."""
    exact = pl.concat(pieces[:exact_pieces]).unique() if exact_pieces else pl.DataFrame(schema=PAIR_SCHEMA)
    bands = pl.concat(pieces[exact_pieces:]).unique() if len(pieces) > exact_pieces else \
        pl.DataFrame(schema=PAIR_SCHEMA)
    return {"pairs": bands.join(exact, on=["a", "b"], how="anti").sort("a", "b"), "exact": exact.height}


def requests_of(candidates: dict, part: int, partitions: Partitions) -> dict[int, pl.DataFrame]:
    """The documents of a partition's candidate pairs (DOC, dest: this partition), by the partition owning them."""
    pairs = candidates["pairs"]
    docs = pl.concat([pairs.select(pl.col(side).alias(DOC)) for side in ("a", "b")]).unique()
    return partitions.split(docs.with_columns(dest=pl.lit(part, dtype=pl.Int64)), DOC)


def gather_partition(sources: dict[int, dict], config: DedupConfig, *requests: pl.DataFrame) -> dict:
    """One partition's side of the shuffle before verification: for each asking partition (``requests[p]``:
    DOC, dest), the payloads of the asked documents, each shard's files (``sources``) read once. Work and bytes
    are linear in the pairs."""
    start = time.thread_time()
    asked = pl.concat(requests).unique() if requests else pl.DataFrame(schema={DOC: pl.UInt64, "dest": pl.Int64})
    found = []
    for (number,), dests in asked.with_columns(shard=shard_expr(DOC)).partition_by(
            "shard", as_dict=True, include_key=False).items():
        docs = with_payload(_source_docs(dests[DOC].unique().sort().to_numpy(), sources[number], config), config)
        found.append(dests.join(docs.select(DOC, "payload"), on=DOC))
    by_dest = pl.concat(found).partition_by("dest", as_dict=True, include_key=False) if found else {}
    parts = {p: by_dest.get((p,)) for p in range(len(requests))}  # None: nothing asked from here
    return {"parts": parts, "cpu_seconds": time.thread_time() - start, "peak_rss_mb": peak_rss_mb()}


def verify_partition(candidates: dict, config: DedupConfig, out_path: str, *parts: pl.DataFrame | None) -> dict:
    """A partition's candidate pairs whose similarity reaches the threshold (all of them with ``verify: none``),
    written to ``out_path``; ``parts``: the payloads of their documents, gathered from their partitions."""
    start = time.thread_time()
    pairs = candidates["pairs"]
    if config.verify == "none" or pairs.is_empty():
        verified = pairs
    else:
        verified = similar_pairs(pairs, config, pl.concat([p for p in parts if p is not None]))
    return {"task": storage.basename(out_path), "pairs": write_checked(verified, out_path),
            "candidates": pairs.height, "exact": candidates["exact"], "cpu_seconds": time.thread_time() - start,
            "peak_rss_mb": peak_rss_mb()}


def similar_pairs(pairs: pl.DataFrame, config: DedupConfig, payload: pl.DataFrame) -> pl.DataFrame:
    """The pairs whose similarity reaches ``config.threshold``: exact Jaccard of shingle sets, or the fraction of
    equal signature positions, from ``payload`` (DOC, payload; see :func:`with_payload`)."""
    if pairs.is_empty():
        return pairs
    joined = pairs.join(payload.rename({DOC: "a", "payload": "pa"}), on="a").join(
        payload.rename({DOC: "b", "payload": "pb"}), on="b")
    if config.verify == "signature":
        similar = (joined["pa"].to_numpy() == joined["pb"].to_numpy()).mean(axis=1)
    else:
        similar = np.array([set_jaccard(x, y) for x, y in zip(joined["pa"].to_numpy(), joined["pb"].to_numpy())])
    return joined.filter(pl.Series(similar >= config.threshold, dtype=pl.Boolean)).select("a", "b").sort("a", "b")


def links_in_memory(batch: pl.DataFrame, index: pl.DataFrame, config: DedupConfig) -> pl.DataFrame:
    """Every phase at once on one in-memory batch (dry runs and plans): the links of its documents, from the
    batch and its map-step ``index`` (shard number 0)."""
    exact = candidate_pairs(index, "exact") if config.exact else pl.DataFrame(schema=PAIR_SCHEMA)
    bands = [candidate_pairs(index, c) for c in index.columns if c.startswith("band_")]
    near = pl.concat(bands).unique().join(exact, on=["a", "b"], how="anti") if bands else \
        pl.DataFrame(schema=PAIR_SCHEMA)
    if config.verify != "none" and not near.is_empty():
        docs = batch.select(pl.col(ROW).cast(pl.UInt64).alias(DOC), "id", "text",
                            *(["seg"] if "seg" in batch.columns else [])).join(index.select(DOC, "sig"), on=DOC)
        near = similar_pairs(near, config, with_payload(docs, config))
    return name_roots(cluster(near, exact), index.select(DOC, "id"))
