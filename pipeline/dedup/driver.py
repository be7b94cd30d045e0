"""Dedup's linker: the driver side of its phases between map and apply (``corpusslim.phases``).

*reduce* (one task per key column and key range: candidate pairs), *verify* (one gather task per shard with
paired documents, reading its files once, then one verify task per shard of the later documents, fed worker to
worker), *cluster* (each document linked to its earliest verified duplicate, ``corpusslim.dedup.linking``).
Every reduce task and the clusters are recorded in the manifest, so a kill mid-linking resumes.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

import polars as pl

from corpusslim import storage
from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.linking import PAIR_SCHEMA, cluster, name_roots
from corpusslim.dedup.tasks import duplicate_ids, gather_docs, ids_of, part_of, reduce_candidates, verify_shard
from corpusslim.keys import DOC, shard_expr, shard_of
from corpusslim.manifest import Manifest
from corpusslim.phases import Links, PhaseContext
from corpusslim.shard_io import read_checked, write_checked

EMPTY_DESTS = pl.DataFrame(schema={DOC: pl.UInt64, "dest": pl.Int64})  # a gathered shard no verify task needs
NO_REPEATED_IDS = {"count": 0, "examples": []}


class DedupLinker:
    def __init__(self, config: DedupConfig, context: PhaseContext):
        self.config, self.ctx = config, context
        self.reads_text = config.verify == "exact"  # exact Jaccard reads every paired document's text

    def intact(self, fp: str) -> bool:
        entry = self.ctx.manifest.get("clusters", "all")
        return bool(entry) and entry.get("fp") == fp and self.ctx.manifest.intact("clusters", "all", "members")

    @staticmethod
    def summary(manifest: Manifest) -> dict:
        return {"duplicate_ids": (manifest.get("clusters", "all") or {}).get("duplicate_ids", NO_REPEATED_IDS)}

    def link(self, fp: str) -> Links:
        manifest = self.ctx.manifest
        if self.intact(fp):
            entry = manifest.get("clusters", "all")
            return Links(read_checked(entry["members"]), entry["cpu_seconds"])
        reduced = self._reduce(fp)
        exact = self._pairs(r for t, r in reduced.items() if t.startswith("exact-"))
        candidates = self._pairs(r for t, r in reduced.items() if t.startswith("band_")).join(
            exact, on=["a", "b"], how="anti")
        near, ids, verify = self._verify(candidates, exact)
        repeated = self.ctx.client.submit(duplicate_ids, self.ctx.id_files(), pure=False).result()
        start = time.process_time()
        members = name_roots(cluster(near, exact), ids)
        cpu = sum(r["cpu_seconds"] for r in reduced.values()) + verify["cpu_seconds"] + time.process_time() - start
        record = {"members": write_checked(members, storage.join(self.ctx.work, "clusters.parquet")),
                  "candidate_pairs": candidates.height, "verified_pairs": near.height, "exact_pairs": exact.height,
                  "duplicate_ids": repeated, "cpu_seconds": round(cpu, 6), "peak_rss_mb": verify["peak_rss_mb"],
                  "fp": fp}
        manifest.record("clusters", "all", record)
        return Links(members, record["cpu_seconds"])

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
        frames = [read_checked(r["pairs"]) for r in records]
        return pl.concat(frames).unique() if frames else pl.DataFrame(schema=PAIR_SCHEMA)

    def _verify(self, candidates: pl.DataFrame, exact: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
        """Verified near pairs, the ids of every document in a pair, and the phase's CPU seconds and peak memory.
        One gather task per shard with paired documents reads its files once; each verify task receives, worker
        to worker, only the payloads of its own pairs."""
        cfg, client = self.config, self.ctx.client
        has_seg = "segment" in self.ctx.before
        sources = {n: {**s, "has_seg": has_seg} for n, s in self.ctx.sources().items()}
        nodes = pl.concat([candidates["a"], candidates["b"], exact["a"], exact["b"]]).unique().to_frame(DOC)
        dests = pl.concat([candidates.select(pl.col(side).alias(DOC), dest=shard_expr("a")) for side in ("a", "b")])
        dests_by = dests.unique().with_columns(shard=shard_expr(DOC)).partition_by("shard", as_dict=True,
                                                                                    include_key=False)
        by_shard = nodes.with_columns(shard=shard_expr(DOC)).partition_by("shard", as_dict=True, include_key=False)
        gathered = {s: client.submit(gather_docs, docs[DOC].to_numpy(), dests_by.get((s,), EMPTY_DESTS),
                                     sources[s], cfg, pure=False) for (s,), docs in by_shard.items()}
        futures = []
        if cfg.verify != "none":
            for (t,), pairs in candidates.with_columns(shard=shard_expr("a")).partition_by(
                    "shard", as_dict=True, include_key=False).items():
                needed = sorted({t, *shard_of(pairs["b"].to_numpy()).tolist()})
                parts = [client.submit(part_of, gathered[s], t, pure=False) for s in needed]
                futures.append(client.submit(verify_shard, pairs, cfg, *parts, pure=False))
        kept_ids = [client.submit(ids_of, g, pure=False) for g in gathered.values()]
        del gathered  # gathered payloads are released on the workers as their verify tasks finish
        results = list(self.ctx.each("verify", futures))
        id_parts = client.gather(kept_ids)
        verified = pl.concat([r["pairs"] for r in results]) if results else candidates if cfg.verify == "none" \
            else pl.DataFrame(schema=PAIR_SCHEMA)
        ids = pl.concat([p["ids"] for p in id_parts]) if id_parts else pl.DataFrame(schema={DOC: pl.UInt64,
                                                                                            "id": pl.String})
        both = [*results, *id_parts]
        return verified, ids, {"cpu_seconds": sum(r["cpu_seconds"] for r in both),
                               "peak_rss_mb": max((r["peak_rss_mb"] for r in both), default=0.0)}
