"""Dedup's linker: the driver side of its phases between map and apply (``corpusslim.runtime.phases``).

*reduce* (one task per key column and key range: candidate pairs), *verify* (per partition of document keys,
``linking.Partitions``: the candidate pairs of its later documents, the payloads of their documents gathered from
the partitions owning them, each shard's files read once and sent in files (``shuffle``), the verified pairs written to
a file), *link* (``schedule.LinkRounds``: the pairs routed to partitions of document
keys, each document pointed at its earliest verified duplicate, then pointer-jumping rounds until no pointer
moves, then the roots named and one links file written per shard; ``corpusslim.dedup.rounds``). The driver
schedules and records: every reduce task, every round and every partition's links files are units in the
manifest, so a kill mid-linking resumes from the last recorded round, and a torn state file sends it back to
the last round whose files are intact.
"""
from __future__ import annotations

import time

from corpusslim.dedup import rounds as tasks_
from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.linking import Partitions
from corpusslim.dedup.schedule import PAIRS_PER_LINK_TASK, SECTION, LinkRounds, scattered, step
from corpusslim.dedup.tasks import (
    candidates_of,
    duplicate_ids,
    gather_partition,
    reduce_candidates,
    split_pairs,
    verify_partition,
)
from corpusslim.runtime import storage
from corpusslim.runtime.manifest import Manifest
from corpusslim.runtime.phases import Links, PhaseContext
from corpusslim.runtime.shard_io import is_intact

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
        """Reduce and verify (their pairs stay in files and on the workers), then round 0 of the linking."""
        start = time.thread_time()
        reduced = self._reduce(fp)
        exact = [r["pairs"] for t, r in reduced.items() if t.startswith("exact-")]
        bands = [r["pairs"] for t, r in reduced.items() if t.startswith("band_")]
        total = sum(r["rows"] for r in [*exact, *bands])  # at least the pairs each partition will hold
        parts = self.config.partitions if self.config.partitions != "auto" else -(-total // PAIRS_PER_LINK_TASK)
        partitions = Partitions.balanced({n: r["rows"] for n, r in self.ctx.index().items()}, max(1, parts))
        verified, verify = self._verify(exact, bands, partitions)
        pairs = [(r, True) for r in exact] + [(r["pairs"], False) for r in verified]
        counts = {"candidate_pairs": sum(r["candidates"] for r in verified),
                  "exact_pairs": sum(r["exact"] for r in verified),
                  "verified_pairs": sum(r["pairs"]["rows"] for r in verified)}
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
        shared = scattered(client, records)
        futures = step(client, reduce_candidates, [
            (t, shared, c, p, partitions, storage.join(self.ctx.work, "candidates", f"{t}.parquet"))
            for t, (c, p) in tasks.items() if t not in done])
        for result in self.ctx.each("reduce", futures):
            done[result["task"]] = {"pairs": result["pairs"], "cpu_seconds": result["cpu_seconds"],
                                    "peak_rss_mb": result["peak_rss_mb"], "fp": fp}
            manifest.record("reduce", result["task"], done[result["task"]])
        return done

    def _verify(self, exact: list[dict], bands: list[dict], partitions: Partitions) -> tuple[list[dict], dict]:
        """Per partition of the later documents: the candidate pairs (band pairs that are not exact pairs), the
        payloads of their documents gathered from the partitions owning them (each shard's files read once, sent
        in files: ``corpusslim.dedup.shuffle``), the verified pairs written to a file. The
        results (file records, counts) and the phase's CPU seconds and peak memory."""
        cfg, client, parts, n = self.config, self.ctx.client, range(len(partitions)), len(partitions)
        work = storage.join(self.ctx.work, "verify")
        pairs, asked, payloads = (storage.join(work, s) for s in ("pairs", "asked", "payloads"))
        if cfg.verify == "none":
            asked = payloads = None
        layout, files = scattered(self.ctx.client, partitions), [*exact, *bands]
        spent = list(self.ctx.each("verify pairs", step(client, split_pairs, [(s, r, layout, pairs)
                                                                              for s, r in enumerate(files)])))
        candidates = list(self.ctx.each("verify candidates", step(client, candidates_of, [
            (p, pairs, len(files), len(exact), layout, storage.join(work, "candidates", f"{p:05d}.parquet"), asked)
            for p in parts])))
        if asked is not None:
            has_seg = "segment" in self.ctx.before
            owned: dict[int, dict] = {q: {} for q in parts}
            for number, source in self.ctx.sources().items():
                owned[partitions.of_shard(number)][number] = {**source, "has_seg": has_seg}
            spent += self.ctx.each("verify gather", step(client, gather_partition, [
                (q, owned[q], cfg, asked, n, payloads) for q in parts]))
        results = list(self.ctx.each("verify", step(client, verify_partition, [
            (c, cfg, payloads, n, storage.join(self.ctx.work, "verified", f"{c['part']:05d}.parquet"))
            for c in candidates])))
        storage.rmtree(work)
        both = [*spent, *candidates, *results]
        return results, {"cpu_seconds": sum(r["cpu_seconds"] for r in both),
                         "peak_rss_mb": max((r["peak_rss_mb"] for r in both), default=0.0)}
