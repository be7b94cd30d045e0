"""Dedup's linker: the driver side of its phases between map and apply (``corpusslim.phases``).

*reduce* (one task per key column and key range: candidate pairs), *verify* (one gather task per shard with
paired documents, reading its files once, then one verify task per shard of the later documents, fed worker to
worker, writing its verified pairs), *link* (``schedule.LinkRounds``: the pairs routed to partitions of document
keys, each document pointed at its earliest verified duplicate, then pointer-jumping rounds until no pointer
moves, then the roots named and one links file written per shard; ``corpusslim.dedup.rounds``). The driver
schedules and records: every reduce task, every round and every partition's links files are units in the
manifest, so a kill mid-linking resumes from the last recorded round, and a torn state file sends it back to
the last round whose files are intact.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

import polars as pl

from corpusslim import storage
from corpusslim.dedup import rounds as tasks_
from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.linking import PAIR_SCHEMA, Partitions
from corpusslim.dedup.schedule import PAIRS_PER_LINK_TASK, SECTION, LinkRounds
from corpusslim.dedup.tasks import duplicate_ids, gather_docs, part_of, reduce_candidates, verify_shard
from corpusslim.keys import DOC, shard_expr, shard_of
from corpusslim.manifest import Manifest
from corpusslim.phases import Links, PhaseContext
from corpusslim.shard_io import is_intact, read_checked

EMPTY_DESTS = pl.DataFrame(schema={DOC: pl.UInt64, "dest": pl.Int64})  # a gathered shard no verify task needs
NO_REPEATED_IDS = {"count": 0, "examples": []}
class DedupLinker:
    def __init__(self, config: DedupConfig, context: PhaseContext):
        self.config, self.ctx = config, context
        self.reads_text = config.verify == "exact"  # exact Jaccard reads every paired document's text

    def _recorded(self, fp: str) -> tuple[dict, dict[int, dict]] | None:
        """The recorded linking of ``fp`` and its links files by shard number, if every file is intact."""
        entry = self.ctx.manifest.get("clusters", "all")
        if not entry or entry.get("fp") != fp:
            return None
        files: dict[int, dict] = {}
        for part in range(entry["partitions"]):
            links = self.ctx.manifest.get(SECTION, f"links-{part:05d}")
            if not links or links.get("fp") != fp or not all(is_intact(r) for r in links["files"].values()):
                return None
            files.update({int(s): r for s, r in links["files"].items()})
        return entry, files

    def intact(self, fp: str) -> bool:
        return self._recorded(fp) is not None

    @staticmethod
    def summary(manifest: Manifest) -> dict:
        return {"duplicate_ids": (manifest.get("clusters", "all") or {}).get("duplicate_ids", NO_REPEATED_IDS)}

    def link(self, fp: str) -> Links:
        ctx = self.ctx
        recorded = self._recorded(fp)
        if recorded:
            return Links(recorded[1], tasks_.EMPTY_LINKS, recorded[0]["cpu_seconds"])
        rounds = LinkRounds(ctx.client, ctx.manifest, storage.join(ctx.work, "link"), fp, ctx.each)
        entry = rounds.latest() or self._seed(rounds, fp)
        entry = rounds.settle(entry)
        index = ctx.index()
        files, named = rounds.name(entry, index)
        repeated = ctx.client.submit(duplicate_ids, ctx.id_files(), pure=False).result()
        cpu = entry["cpu_seconds"] + named["cpu_seconds"]
        record = {**entry["counts"], "members": named["members"], "rounds": entry["round"],
                  "partitions": len(entry["starts"]), "duplicate_ids": repeated, "cpu_seconds": round(cpu, 6),
                  "peak_rss_mb": max(entry["task_peak_mb"], named["task_peak_mb"]), "fp": fp}
        ctx.manifest.record("clusters", "all", record)
        return Links(files, tasks_.EMPTY_LINKS, record["cpu_seconds"])

    def _seed(self, rounds: LinkRounds, fp: str) -> dict:
        """Reduce and verify (their pairs stay in files), then round 0 of the linking."""
        start = time.thread_time()
        reduced = self._reduce(fp)
        exact_records = [r["pairs"] for t, r in reduced.items() if t.startswith("exact-")]
        band_records = [r["pairs"] for t, r in reduced.items() if t.startswith("band_")]
        exact = self._pairs(exact_records)
        candidates = self._pairs(band_records).join(exact, on=["a", "b"], how="anti")
        verified, verify = self._verify(candidates, band_records)
        index = self.ctx.index()
        pairs = [(r, True) for r in exact_records] + [(r, False) for r in verified]
        total = sum(r["rows"] for r, _ in pairs)
        parts = self.config.partitions if self.config.partitions != "auto" else -(-total // PAIRS_PER_LINK_TASK)
        partitions = Partitions.balanced({n: r["rows"] for n, r in index.items()}, max(1, parts))
        counts = {"candidate_pairs": candidates.height, "exact_pairs": exact.height,
                  "verified_pairs": sum(r["rows"] for r in verified)}
        cpu = sum(r["cpu_seconds"] for r in reduced.values()) + verify["cpu_seconds"] + time.thread_time() - start
        return rounds.seed(pairs, partitions, {"counts": counts, "cpu_seconds": cpu,
                                               "task_peak_mb": verify["peak_rss_mb"]})

    def _reduce(self, fp: str) -> dict[str, dict]:
        cfg, manifest, client = self.config, self.ctx.manifest, self.ctx.client
        columns = (["exact"] if cfg.exact else []) + ([f"band_{b:03d}" for b in range(cfg.bands)] if cfg.near else [])
        index = self.ctx.index()
        records = [index[n] for n in sorted(index)]
        partitions = cfg.reduce_partitions(sum(r["rows"] for r in records))
        tasks = {f"{c}-{p}": (c, p) for c in columns for p in range(partitions)}
        done = {t: e for t in tasks if (e := manifest.get("reduce", t)) and e.get("fp") == fp
                and manifest.intact("reduce", t, "pairs")}
        futures = [client.submit(reduce_candidates, t, records, c, p, partitions,
                                 storage.join(self.ctx.work, "candidates", f"{t}.parquet"), pure=False)
                   for t, (c, p) in tasks.items() if t not in done]
        for result in self.ctx.each("reduce", futures):
            done[result["task"]] = {"pairs": result["pairs"], "cpu_seconds": result["cpu_seconds"],
                                    "peak_rss_mb": result["peak_rss_mb"], "fp": fp}
            manifest.record("reduce", result["task"], done[result["task"]])
        return done

    @staticmethod
    def _pairs(records: Iterable[dict]) -> pl.DataFrame:
        frames = [read_checked(r) for r in records]
        return pl.concat(frames).unique() if frames else pl.DataFrame(schema=PAIR_SCHEMA)

    def _verify(self, candidates: pl.DataFrame, band_records: list[dict]) -> tuple[list[dict], dict]:
        """Files of verified near pairs (the candidate files themselves when nothing is verified), and the phase's
        CPU seconds and peak memory. One gather task per shard with paired documents reads its files once; each
        verify task receives, worker to worker, only the payloads of its own pairs."""
        cfg, client = self.config, self.ctx.client
        if cfg.verify == "none":
            return band_records, {"cpu_seconds": 0.0, "peak_rss_mb": 0.0}
        has_seg = "segment" in self.ctx.before
        sources = {n: {**s, "has_seg": has_seg} for n, s in self.ctx.sources().items()}
        dests = pl.concat([candidates.select(pl.col(side).alias(DOC), dest=shard_expr("a")) for side in ("a", "b")])
        dests_by = dests.unique().with_columns(shard=shard_expr(DOC)).partition_by("shard", as_dict=True,
                                                                                    include_key=False)
        gathered = {s: client.submit(gather_docs, d[DOC].unique().sort().to_numpy(), d, sources[s], cfg, pure=False)
                    for (s,), d in dests_by.items()}
        futures = []
        for (t,), pairs in candidates.with_columns(shard=shard_expr("a")).partition_by(
                "shard", as_dict=True, include_key=False).items():
            needed = sorted({t, *shard_of(pairs["b"].to_numpy()).tolist()})
            parts = [client.submit(part_of, gathered[s], t, pure=False) for s in needed]
            out = storage.join(self.ctx.work, "verified", f"{t}.parquet")
            futures.append(client.submit(verify_shard, pairs, cfg, out, *parts, pure=False))
        costs = [client.submit(tasks_.cost_of, g, pure=False) for g in gathered.values()]
        del gathered  # gathered payloads are released on the workers as their verify tasks finish
        results = list(self.ctx.each("verify", futures))
        both = [*results, *client.gather(costs)]
        return [r["pairs"] for r in results], {"cpu_seconds": sum(r["cpu_seconds"] for r in both),
                                               "peak_rss_mb": max((r["peak_rss_mb"] for r in both), default=0.0)}
