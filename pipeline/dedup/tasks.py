"""Dedup's tasks on the workers between map and apply: reduce and verify.

* ``reduce_candidates`` (one Dask task per LSH band, and one for the exact hash; optionally split in key ranges):
  group one key column of every index file; each document sharing a key with an earlier one gives a candidate
  pair (doc, earliest doc with that key).
* ``split_pairs`` (per reduce file) and ``candidates_of`` (per partition of document keys, ``linking.Partitions``):
  the candidate pairs of each partition's later documents, exact pairs taken out, and their documents asked of
  the partitions owning them; ``gather_partition`` (per partition, each shard's files read once): the payloads
  each partition's pairs compare; ``verify_partition``: the pairs whose exact shingle Jaccard (or signature estimate)
  reaches the threshold, written to a file for the linking rounds (``corpusslim.dedup.rounds``). No pair passes
  through the driver: a step's tasks send the next step's their rows in files (``corpusslim.dedup.shuffle``).
"""
from __future__ import annotations

import time  # task CPU: time.thread_time(), as the worker's other threads run other tasks (docs/ARCHITECTURE.md)

import numpy as np
import polars as pl
import pyarrow as pa

from corpusslim.dedup import shuffle
from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.linking import PAIR_SCHEMA, Partitions, cluster, name_roots
from corpusslim.dedup.rounds import timed
from corpusslim.filters.minhash import set_jaccard, shingle_sets
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
        sets = shingle_sets(docs["text"].to_list(), segs, config.ngram, config.ngram_zh)
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


def split_pairs(sender: int, pairs: dict, partitions: Partitions, out: str) -> dict:
    """One reduce task's pair file sent to the partitions of its later documents."""
    start = time.thread_time()
    return timed(start, sent=shuffle.send(partitions.split(read_checked(pairs), "a"), out, sender))


def candidates_of(part: int, pairs: str, senders: int, exact_senders: int, partitions: Partitions, out_path: str,
                  asked: str | None) -> dict:
    """One partition's candidate pairs (from the step ``pairs``: its band pairs that are not exact pairs, the
    first ``exact_senders`` senders holding the exact ones), each once, written to ``out_path``; how many exact
    pairs it has; with ``asked`` (a directory), their documents sent to the partitions owning them."""
    start = time.thread_time()
    pieces = shuffle.received(pairs, senders, part)
    exact = pl.concat(pieces[:exact_senders]).unique() if exact_senders else pl.DataFrame(schema=PAIR_SCHEMA)
    bands = pl.concat(pieces[exact_senders:]).unique() if senders > exact_senders else \
        pl.DataFrame(schema=PAIR_SCHEMA)
    candidates = bands.join(exact, on=["a", "b"], how="anti").sort("a", "b")
    if asked is not None:
        docs = pl.concat([candidates.select(pl.col(side).alias(DOC)) for side in ("a", "b")]).unique()
        shuffle.send(partitions.split(docs, DOC), asked, part)
    return timed(start, part=part, pairs=write_checked(candidates, out_path), exact=exact.height)


def gather_partition(part: int, sources: dict[int, dict], config: DedupConfig, asked: str, senders: int,
                     out: str) -> dict:
    """One partition's side of the exchange before verification: the payloads of the documents every partition
    asked of it, sent back to each, each shard's files (``sources``) read once. Work and bytes are linear in the
    pairs."""
    start = time.thread_time()
    pieces = shuffle.received(asked, senders, part)
    found = [with_payload(_source_docs(docs[DOC].sort().to_numpy(), sources[number], config), config)
             .select(DOC, "payload")
             for (number,), docs in pl.concat(pieces).unique().with_columns(shard=shard_expr(DOC)).partition_by(
                 "shard", as_dict=True, include_key=False).items()]
    payloads = pl.concat(found) if found else pl.DataFrame(schema={DOC: pl.UInt64})  # nothing asked of it
    sent = {p: payloads.join(a, on=DOC, how="semi") for p, a in enumerate(pieces)}
    return timed(start, sent=shuffle.send(sent, out, part))


def verify_partition(candidates: dict, config: DedupConfig, payloads: str | None, senders: int,
                     out_path: str) -> dict:
    """A partition's candidate pairs (``candidates``: what :func:`candidates_of` returned) whose similarity
    reaches the threshold (all of them with ``verify: none``), written to ``out_path``; ``payloads``: the step
    holding their documents' payloads, sent by the partitions owning them."""
    start = time.thread_time()
    pairs = read_checked(candidates["pairs"])
    if payloads is None or pairs.is_empty():
        verified = pairs
    else:
        sent = [p for p in shuffle.received(payloads, senders, candidates["part"]) if p.height]
        verified = similar_pairs(pairs, config, pl.concat(sent))
    return timed(start, task=storage.basename(out_path), pairs=write_checked(verified, out_path),
                 candidates=pairs.height, exact=candidates["exact"])


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
