"""Linking at scale without text: synthetic verified-duplicate pairs fed straight to the linking rounds.

:func:`synthetic_pairs` draws duplicate components over document keys spread across many shards (so chains cross
partitions): chains (each document a duplicate of the one before), stars (every later document a duplicate of the
first; half of the stars exact duplicates), cliques (every pair a duplicate: documents of equal Jaccard to each
other), random trees (each document a duplicate of two random earlier ones) and long chains. :func:`simulate`
writes the pair files on the workers (one task per chunk: the driver sees file records only) and runs
:class:`corpusslim.dedup.schedule.LinkRounds` on them, every round recorded in a manifest under ``work``, so a
killed simulation resumes like a run; it reports, per round, the nodes moved, the rows and bytes sent between the
round's steps and its states' rows and bytes.

    python -m corpusslim.dedup.simulate --pairs 1000000 --work /tmp/sim --check
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import polars as pl
from distributed import Client, as_completed

from corpusslim.dedup.linking import PAIR_SCHEMA, Partitions, cluster
from corpusslim.dedup.schedule import PAIRS_PER_LINK_TASK, LinkRounds
from corpusslim.runtime import storage
from corpusslim.runtime.manifest import Manifest
from corpusslim.runtime.measure import peak_rss_mb
from corpusslim.runtime.shard_io import read_checked, write_checked

ROWS_PER_CHUNK = 1 << 22  # a chunk's documents have rows chunk << 22 | i: chunks never share a document
PAIRS_PER_CHUNK = 1_000_000
# kind, component sizes [low, high), pairs per component on average (a tree's document links twice)
KINDS = (("chain", 2, 12, 5.5), ("star", 2, 40, 19.5), ("clique", 3, 7, 8.5), ("tree", 3, 30, 30.0))


def _pairs_in(sizes: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(later, earlier) positions of the pairs of components of ``sizes`` laid out one after another."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    if kind == "clique":
        pairs = np.array([(o + i, o + j) for o, s in zip(offsets, sizes) for i in range(1, s) for j in range(i)])
        return pairs[:, 0], pairs[:, 1]
    links = 2 if kind == "tree" else 1
    later = np.concatenate([o + np.repeat(np.arange(1, s), links) for o, s in zip(offsets, sizes)])
    first = np.repeat(offsets, links * (sizes - 1))
    if kind == "chain":
        return later, later - 1
    if kind == "star":
        return later, first
    return later, first + (rng.random(len(later)) * (later - first)).astype(np.int64)


def synthetic_pairs(n_pairs: int, shards: int, seed: int, long_chain: int = 100_000, chunk: int = 0) -> pl.DataFrame:
    """About ``n_pairs`` distinct duplicate pairs (a, b, exact), b earlier than a, over documents spread across
    ``shards`` shards: a fifth in each of chains, stars, cliques and random trees, the rest in chains of
    ``long_chain`` documents. ``chunk`` keeps the documents of different calls apart."""
    rng = np.random.default_rng([seed, chunk])
    sizes, later, earlier, exact = [], [], [], []
    base = 0
    for kind, low, high, per in KINDS:
        s = rng.integers(low, high, max(1, int(n_pairs / 5 / per)))
        a, b = _pairs_in(s, kind, rng)
        flags = np.repeat(rng.random(len(s)) < 0.5, s - 1) if kind == "star" else np.zeros(len(a), bool)
        sizes, later, earlier, exact = [*sizes, s], [*later, a + base], [*earlier, b + base], [*exact, flags]
        base += int(s.sum())
    rest = n_pairs - sum(len(x) for x in later)
    s = np.full(max(1, rest // max(1, long_chain - 1)), min(long_chain, max(2, rest + 1)))
    a, b = _pairs_in(s, "chain", rng)
    sizes, later, earlier = [*sizes, s], [*later, a + base], [*earlier, b + base]
    exact = [*exact, np.zeros(len(a), bool)]
    keys = _component_keys(np.concatenate(sizes), shards, chunk, rng)
    return pl.DataFrame({"a": keys[np.concatenate(later)], "b": keys[np.concatenate(earlier)],
                         "exact": np.concatenate(exact)}).cast({**PAIR_SCHEMA, "exact": pl.Boolean}).unique(
        ["a", "b"], keep="first").sort("a", "b")


def _component_keys(sizes: np.ndarray, shards: int, chunk: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct document keys (random shard << 32 | row) for components of ``sizes`` laid out one after another,
    ascending within each component, so its first position is its earliest document."""
    nodes = int(sizes.sum())
    rows = np.uint64(chunk * ROWS_PER_CHUNK) + rng.permutation(nodes).astype(np.uint64)
    keys = (rng.integers(0, shards, nodes).astype(np.uint64) << np.uint64(32)) | rows
    component = np.repeat(np.arange(len(sizes)), sizes)
    return keys[np.lexsort((keys, component))]


def write_chunk(n_pairs: int, shards: int, seed: int, chunk: int, directory: str) -> list[tuple[dict, bool]]:
    """One chunk of synthetic pairs written as an exact and a near pair file: [(record, exact)]."""
    pairs = synthetic_pairs(n_pairs, shards, seed, chunk=chunk)
    return [(write_checked(pairs.filter(pl.col("exact") == flag).select("a", "b"),
                           storage.join(directory, f"{chunk:05d}-{'exact' if flag else 'near'}.parquet")), flag)
            for flag in (True, False)]


def _each(phase: str, futures: list):
    for future in as_completed(futures):
        yield future.result()


def simulate(client: Client, n_pairs: int, shards: int, partitions: int, work: str, seed: int = 0) -> dict:
    """Generate (unless a recorded round can be resumed) and link ``n_pairs`` synthetic pairs on ``client``'s
    workers; returns the pair files, the links files by shard and the linking's rounds, CPU and peaks."""
    manifest = Manifest.open(work, "simulate", meta={"pairs": n_pairs, "shards": shards, "seed": seed})
    rounds = LinkRounds(client, manifest, storage.join(work, "link"), "sim", _each)
    chunks = -(-n_pairs // PAIRS_PER_CHUNK)
    pairs, entry = manifest.get("pairs", "all"), rounds.latest()
    if entry is None or pairs is None:
        futures = [client.submit(write_chunk, min(PAIRS_PER_CHUNK, n_pairs - c * PAIRS_PER_CHUNK), shards, seed, c,
                                 storage.join(work, "pairs"), pure=False) for c in range(chunks)]
        pairs = {"files": [p for f in client.gather(futures) for p in f]}
        manifest.record("pairs", "all", pairs)
    start, cpu, resumed = time.perf_counter(), _workers_cpu(client), entry and entry["round"]
    if entry is None:
        entry = rounds.seed([tuple(p) for p in pairs["files"]], Partitions.balanced(dict.fromkeys(range(shards), 1),
                                                                                   partitions), {})
    entry = rounds.settle(entry)
    files, named = rounds.name(entry, {})
    manifest.save()
    return {"pairs": sum(r["rows"] for r, _ in pairs["files"]), "pair_files": pairs["files"], "files": files,
            "rounds": entry["round"], "resumed_from": resumed, "partitions": len(entry["starts"]),
            "members": named["members"], "per_round": [_round_sizes(manifest.get("link", f"round-{r:04d}"))
                                                       for r in range(entry["round"] + 1)],
            "cpu_s": entry["cpu_seconds"] + named["cpu_seconds"], "worker_cpu_s": _workers_cpu(client) - cpu,
            "task_peak_mb": max(entry["task_peak_mb"], named["task_peak_mb"]), "wall_s": time.perf_counter() - start}


def _round_sizes(entry: dict) -> dict:
    """What a recorded round moved, sent between its steps (round 0: the edges) and wrote (its states)."""
    return {"round": entry["round"], "moved": entry["moved"], "sent_rows": entry["sent"]["rows"],
            "sent_mb": round(entry["sent"]["bytes"] / 2**20, 2),
            "state_rows": sum(r["rows"] for r in entry["states"].values()),
            "state_mb": round(sum(r["bytes"] for r in entry["states"].values()) / 2**20, 2)}


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _workers_cpu(client: Client) -> float:
    """CPU seconds of the worker processes so far (every thread: polars works in its own pool)."""
    return sum(client.run(_process_cpu).values())


def matches_reference(pair_files: list, files: dict[int, dict]) -> bool:
    """The links files equal the single-process reference (``linking.cluster``) on the same pairs."""
    exact = pl.concat([read_checked(r) for r, flag in pair_files if flag])
    near = pl.concat([read_checked(r) for r, flag in pair_files if not flag])
    linked = pl.concat([read_checked(r).select("doc", "root", "reason") for r in files.values()]).sort("doc")
    return linked.equals(cluster(near, exact))


def main() -> None:
    from corpusslim.runtime.cluster import dask_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=0, help=f"default: 1 per {PAIRS_PER_LINK_TASK:,} pairs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", required=True)
    parser.add_argument("--check", action="store_true", help="compare with the single-process reference")
    args = parser.parse_args()
    parts = args.partitions or max(1, -(-args.pairs // PAIRS_PER_LINK_TASK))
    with dask_client(args.workers, None) as client:
        result = simulate(client, args.pairs, args.shards, parts, args.work)
    summary = {**{k: v for k, v in result.items() if k not in ("files", "pair_files")},
               "driver_peak_mb": peak_rss_mb(), "driver_cpu_s": _process_cpu()}
    if args.check:
        summary["matches_reference"] = matches_reference(result["pair_files"], result["files"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
