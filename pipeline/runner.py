"""The batch job: Dask tasks per shard (and per band), every finished unit recorded in the manifest as it arrives.

Without a global stage, one task per shard runs every stage. With one (dedup), the phases are: *map* per shard
(the stages before it, then its keys), *reduce* per band, *verify* per shard, *cluster* on the driver (memory
proportional to duplicate pairs), *apply* per shard (its decision and the stages after it). Each phase resumes:
units recorded in the manifest, whose files are intact, are not redone.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
from distributed import Client, as_completed

from corpusslim import storage
from corpusslim.cluster import check_workers, dask_client
from corpusslim.config import RunConfig
from corpusslim.dedup import (
    PAIR_SCHEMA,
    cluster,
    duplicate_ids,
    gather_docs,
    ids_of,
    name_roots,
    part_of,
    reduce_candidates,
    verify_shard,
)
from corpusslim.errors import ConfigError, OutputError, ShardInputError
from corpusslim.ledger import build_ledger
from corpusslim.manifest import Manifest, read_manifest, write_json_atomic
from corpusslim.report import write_report
from corpusslim.shard_io import Shard, discover_shards, read_checked, remove_temporaries, write_atomic, write_checked
from corpusslim.stages import STAGES
from corpusslim.stages.base import StageConfig
from corpusslim.stages.dedup import DOC, shard_expr, shard_of
from corpusslim.stats import build_stats
from corpusslim.worker import apply_shard, map_shard, peak_rss_mb, process_shard

CONFIG_FILE = "config.json"  # the validated config of the run, for ``corpusslim report``
EMPTY_DESTS = pl.DataFrame(schema={DOC: pl.UInt64, "dest": pl.Int64})  # a gathered shard no verify task needs


class Progress:
    """What the runner reports while it works; the CLI prints it, tests may ignore it."""

    def start(self, total: int, done: int, dashboard: str | None) -> None: ...

    def phase(self, name: str, tasks: int) -> None: ...

    def task(self, result: dict) -> None: ...


@dataclass
class Plan:
    """The configured stages split around the global one (if any)."""

    before: list[StageConfig]
    global_: StageConfig | None = None
    after: list[StageConfig] = field(default_factory=list)

    @classmethod
    def of(cls, stages: list[StageConfig]) -> Plan:
        for i, stage in enumerate(stages):
            if STAGES[stage.kind].is_global:
                return cls(stages[:i], stage, stages[i + 1:])
        return cls(list(stages))


@dataclass
class Prior:
    """Earlier runs a ``--against`` run dedups against: their index files and where their documents are."""

    runs: list[str] = field(default_factory=list)
    shards: int = 0
    index: dict[int, dict] = field(default_factory=dict)
    text_sources: dict[int, dict] = field(default_factory=dict)


def _dedup_signature(config: StageConfig) -> dict:
    """The settings two runs must share for one's index to be searched by the other."""
    keys = ("exact", "near", "num_perm", "bands", "rows", "ngram", "ngram_zh", "seed", "scheme")
    return {k: getattr(config, k) for k in keys}


def load_prior(against: str, global_config: StageConfig) -> Prior:
    """The chain of finished runs ending at ``against`` (each run records the runs it was deduped against)."""
    stored = read_manifest(against)
    if stored is None:
        raise ConfigError(f"--against {against}: no finished run there (no _manifest.json)")
    meta, sections = stored.get("meta", {}), stored.get("sections", {})
    if meta.get("dedup") != _dedup_signature(global_config):
        raise ConfigError(f"--against {against}: its dedup settings {meta.get('dedup')} differ from this run's "
                          f"{_dedup_signature(global_config)}; signatures would not be comparable")
    unfinished = [k for k, v in sections.get("shards", {}).items() if v.get("status") != "done"]
    if unfinished or not sections.get("map"):
        raise ConfigError(f"--against {against}: the run is not finished (shards not done: {unfinished[:5]})")
    prior = Prior(runs=[*meta.get("against", []), against])
    prior.shards = meta.get("shard_offset", 0) + len(sections["map"])
    for run_dir in prior.runs:
        for stem, entry in read_manifest(run_dir)["sections"]["map"].items():
            number = entry["shard_number"]
            prior.index[number] = entry["index"]
            prior.text_sources[number] = {"index": entry["index"], "outputs": [
                storage.join(run_dir, d, f"{stem}.parquet") for d in ("kept", "rejected")]}
    return prior


class Job:
    """One invocation of ``run``: the config, the manifest and the Dask client, and the phases."""

    def __init__(self, config: RunConfig, client: Client, manifest: Manifest, shards: list[Shard], prior: Prior,
                 progress: Progress):
        self.config, self.client, self.manifest = config, client, manifest
        self.shards, self.prior, self.progress = shards, prior, progress
        self.plan = Plan.of(list(config.stages))
        self.work = storage.join(config.output, "_work")
        self.bad: set[str] = set()  # shards quarantined in this invocation: not retried within it

    def _each(self, phase: str, futures: list) -> Iterable[dict]:
        self.progress.phase(phase, len(futures))
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except (OSError, OutputError) as exc:  # disk full, read-only or vanished output: nothing recorded
                    raise OutputError(f"{phase} task {future.key} failed, its output is not recorded: {exc}") from None
                yield result
                self.progress.task(result)
        finally:
            self.client.cancel(futures)

    def _shard_results(self, phase: str, futures: list, section: str) -> None:
        """Record per-shard results; a bad input shard is quarantined or, by policy, stops the job."""
        for result in self._each(phase, futures):
            if result["status"] == "bad_input":
                result["status"] = "quarantined"
                self.bad.add(result["shard"])
                self.manifest.record("shards", result["shard"], result)
                if self.config.on_bad_shard == "fail":
                    raise ShardInputError(result["error"])
            else:
                self.manifest.record(section, result["shard"], result)

    def run_local(self) -> None:
        todo = [s for s in self.shards if not self.manifest.is_done(s.stem)]
        futures = [self.client.submit(process_shard, s, self.plan.before, self.config.limits.max_doc_chars,
                                      self.config.output, key=f"shard-{s.index}-{self.manifest.config_hash}",
                                      pure=False) for s in todo]
        self._shard_results("shards", futures, "shards")

    # -- global stage -------------------------------------------------------------------------------------------
    def _number(self, shard: Shard) -> int:
        return self.prior.shards + shard.index

    def _mapped(self) -> list[Shard]:
        return [s for s in self.shards if (self.manifest.get("map", s.stem) or {}).get("status") == "done"]

    def _map(self, need_pre: set[str]) -> None:
        """Map the shards whose index (or, for those in ``need_pre``, intermediate) is missing or torn."""
        todo = [s for s in self.shards if s.stem not in self.bad and (
                not self.manifest.intact("map", s.stem, "index", "ids")
                or self.manifest.get("map", s.stem)["shard_number"] != self._number(s)  # a shard was inserted
                or (s.stem in need_pre and not self.manifest.intact("map", s.stem, "pre")))]
        futures = [self.client.submit(map_shard, s, self._number(s), self.plan.before, self.plan.global_,
                                      self.config.limits.max_doc_chars, self.work,
                                      storage.join(self.config.output, "index"), pure=False) for s in todo]
        self._shard_results("map", futures, "map")

    def _index(self) -> dict[int, dict]:
        index = dict(self.prior.index)
        for s in self._mapped():
            entry = self.manifest.get("map", s.stem)
            index[entry["shard_number"]] = entry["index"]
        return index

    def _fingerprint(self) -> str:
        shas = sorted((n, r["sha256"]) for n, r in self._index().items())
        return hashlib.sha256(json.dumps(shas).encode()).hexdigest()[:16]

    def _pending(self, fp: str) -> list[Shard]:
        return [s for s in self._mapped()
                if not (self.manifest.is_done(s.stem) and self.manifest.get("shards", s.stem).get("fp") == fp)]

    def run_global(self) -> None:
        self._map(need_pre=set())
        fp = self._fingerprint()
        self._map(need_pre={s.stem for s in self._pending(fp)})
        if self._fingerprint() != fp:  # an input changed under a finished run: redo every shard
            fp = self._fingerprint()
            self._map(need_pre={s.stem for s in self._mapped()})
        pending = self._pending(fp)
        if not pending:
            return
        if self.plan.global_.verify == "exact" and not self._clusters_intact(fp):  # exact Jaccard reads every text
            self._map(need_pre={s.stem for s in self._mapped()})
        members = self._clusters(fp)
        self._apply(pending, members, fp)

    def _reduce(self, fp: str) -> dict[str, dict]:
        cfg = self.plan.global_
        columns = (["exact"] if cfg.exact else []) + ([f"band_{b:03d}" for b in range(cfg.bands)] if cfg.near else [])
        records = [self._index()[n] for n in sorted(self._index())]
        partitions = cfg.reduce_partitions(sum(r["rows"] for r in records))
        tasks = {f"{c}-{p}": (c, p) for c in columns for p in range(partitions)}
        done = {t: e for t in tasks if (e := self.manifest.get("reduce", t)) and e.get("fp") == fp
                and self.manifest.intact("reduce", t, "pairs")}
        futures = [self.client.submit(reduce_candidates, t, records, c, p, partitions,
                                      storage.join(self.work, "candidates", f"{t}.parquet"), pure=False)
                   for t, (c, p) in tasks.items() if t not in done]
        for result in self._each("reduce", futures):
            done[result["task"]] = {"pairs": result["pairs"], "cpu_seconds": result["cpu_seconds"],
                                    "peak_rss_mb": result["peak_rss_mb"], "fp": fp}
            self.manifest.record("reduce", result["task"], done[result["task"]])
        return done

    def _clusters_intact(self, fp: str) -> bool:
        entry = self.manifest.get("clusters", "all")
        return bool(entry) and entry.get("fp") == fp and self.manifest.intact("clusters", "all", "members")

    def _clusters(self, fp: str) -> pl.DataFrame:
        if self._clusters_intact(fp):
            return read_checked(self.manifest.get("clusters", "all")["members"])
        reduced = self._reduce(fp)
        exact = self._pairs(r for t, r in reduced.items() if t.startswith("exact-"))
        candidates = self._pairs(r for t, r in reduced.items() if t.startswith("band_")).join(exact, on=["a", "b"],
                                                                                             how="anti")
        near, ids, verify = self._verify(candidates, exact)
        ids_files = [self.manifest.get("map", s.stem)["ids"] for s in self._mapped()]
        repeated = self.client.submit(duplicate_ids, ids_files, pure=False).result()
        start = time.process_time()
        members = name_roots(cluster(near, exact), ids)
        cpu = sum(r["cpu_seconds"] for r in reduced.values()) + verify["cpu_seconds"] + time.process_time() - start
        record = {"members": write_checked(members, storage.join(self.work, "clusters.parquet")),
                  "candidate_pairs": candidates.height, "verified_pairs": near.height, "exact_pairs": exact.height,
                  "duplicate_ids": repeated,
                  "cpu_seconds": round(cpu, 6), "peak_rss_mb": verify["peak_rss_mb"], "fp": fp}
        self.manifest.record("clusters", "all", record)
        return members

    @staticmethod
    def _pairs(records: Iterable[dict]) -> pl.DataFrame:
        frames = [read_checked(r["pairs"]) for r in records]
        return pl.concat(frames).unique() if frames else pl.DataFrame(schema=PAIR_SCHEMA)

    def _sources(self) -> dict[int, dict]:
        """Where each shard number's documents are read from for verification: this run's intermediates, or an
        earlier run's index and outputs."""
        sources = dict(self.prior.text_sources)
        has_seg = any(c.kind == "segment" for c in self.plan.before)
        for s in self._mapped():
            entry = self.manifest.get("map", s.stem)
            sources[entry["shard_number"]] = {"pre": entry["pre"], "index": entry["index"], "has_seg": has_seg}
        return sources

    def _verify(self, candidates: pl.DataFrame, exact: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
        """Verified near pairs, the ids of every document in a pair, and the phase's CPU seconds and peak memory.
        One gather task per shard with paired documents reads its files once; each verify task receives, worker
        to worker, only the payloads of its own pairs."""
        cfg, sources = self.plan.global_, self._sources()
        nodes = pl.concat([candidates["a"], candidates["b"], exact["a"], exact["b"]]).unique().to_frame(DOC)
        dests = pl.concat([candidates.select(pl.col(side).alias(DOC), dest=shard_expr("a")) for side in ("a", "b")])
        dests_by = dests.unique().with_columns(shard=shard_expr(DOC)).partition_by("shard", as_dict=True,
                                                                                    include_key=False)
        by_shard = nodes.with_columns(shard=shard_expr(DOC)).partition_by("shard", as_dict=True, include_key=False)
        gathered = {s: self.client.submit(gather_docs, docs[DOC].to_numpy(), dests_by.get((s,), EMPTY_DESTS),
                                          sources[s], cfg, pure=False) for (s,), docs in by_shard.items()}
        futures = []
        if cfg.verify != "none":
            for (t,), pairs in candidates.with_columns(shard=shard_expr("a")).partition_by(
                    "shard", as_dict=True, include_key=False).items():
                needed = sorted({t, *shard_of(pairs["b"].to_numpy()).tolist()})
                parts = [self.client.submit(part_of, gathered[s], t, pure=False) for s in needed]
                futures.append(self.client.submit(verify_shard, pairs, cfg, *parts, pure=False))
        kept_ids = [self.client.submit(ids_of, g, pure=False) for g in gathered.values()]
        del gathered  # gathered payloads are released on the workers as their verify tasks finish
        results = list(self._each("verify", futures))
        id_parts = self.client.gather(kept_ids)
        verified = pl.concat([r["pairs"] for r in results]) if results else candidates if cfg.verify == "none" \
            else pl.DataFrame(schema=PAIR_SCHEMA)
        ids = pl.concat([p["ids"] for p in id_parts]) if id_parts else pl.DataFrame(schema={DOC: pl.UInt64,
                                                                                            "id": pl.String})
        both = [*results, *id_parts]
        return verified, ids, {"cpu_seconds": sum(r["cpu_seconds"] for r in both),
                               "peak_rss_mb": max((r["peak_rss_mb"] for r in both), default=0.0)}

    def _apply(self, pending: list[Shard], members: pl.DataFrame, fp: str) -> None:
        members = members.with_columns(shard=shard_expr("doc"))
        by_shard = members.partition_by("shard", as_dict=True, include_key=False)
        global_cpu = self.manifest.get("clusters", "all")["cpu_seconds"]
        indexed = sum(self.manifest.get("map", s.stem)["docs_indexed"] for s in self._mapped()) or 1
        futures = []
        for s in pending:
            entry = self.manifest.get("map", s.stem)
            rows = by_shard.get((entry["shard_number"],), members.clear().drop("shard"))
            futures.append(self.client.submit(apply_shard, s, entry, rows, self.plan.global_, self.plan.after,
                                              self.config.output, pure=False))
        for result in self._each("apply", futures):
            share = global_cpu * self.manifest.get("map", result["shard"])["docs_indexed"] / indexed
            dedup = next(st for st in result["stages"] if st["stage"] == self.plan.global_.kind)
            dedup["cpu_seconds"] = round(dedup["cpu_seconds"] + share, 6)
            self.manifest.record("shards", result["shard"], {**result, "fp": fp})

    def clean_up(self) -> None:
        """Delete intermediates once every shard is done; the index stays for later ``--against`` runs."""
        if all(self.manifest.is_done(s.stem) for s in self.shards):
            storage.rmtree(self.work)


def run(config: RunConfig, scheduler: str | None = None, force: bool = False, progress: Progress | None = None,
        against: str | None = None) -> dict:
    """Run (or resume) the job of ``config``; returns the stats also written to ``stats.json``.

    Units already done in the output's manifest are skipped. A bad input shard is quarantined (recorded,
    reported, the rest completes) or, with ``on_bad_shard: fail``, stops the job with its error.
    ``against``: a finished run directory whose documents all count as earlier arrivals for dedup.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    plan = Plan.of(list(config.stages))
    shards = discover_shards(config.input)
    if against and plan.global_ is None:
        raise ConfigError("--against needs a dedup stage in the config")
    prior = load_prior(storage.absolute(against), plan.global_) if against else Prior()
    meta = {"against": prior.runs, "shard_offset": prior.shards}
    if plan.global_ is not None:
        meta["dedup"] = _dedup_signature(plan.global_)
    manifest = Manifest.open(config.output, config.config_hash(), meta=meta, force=force)
    write_json_atomic(storage.join(config.output, CONFIG_FILE), config.model_dump(mode="json"))
    remove_temporaries(config.output)
    removed = manifest.drop_shards({s.stem for s in shards}, dependent=plan.global_ is not None)
    done = sum(manifest.is_done(s.stem) for s in shards)
    # A finished run keeps its dedup index for later --against runs: a torn index file is rebuilt too.
    index_torn = plan.global_ is not None and not all(manifest.intact("map", s.stem, "index", "ids") for s in shards)
    if done == len(shards) and not index_torn:
        progress.start(len(shards), done, None)
    else:
        with dask_client(config.workers, scheduler) as client:
            progress.start(len(shards), done, client.dashboard_link)
            check_workers(client, [shards[0].path, storage.join(config.output, CONFIG_FILE)])
            job = Job(config, client, manifest, shards, prior, progress)
            if plan.global_ is None:
                job.run_local()
            else:
                job.run_global()
                job.clean_up()
        remove_temporaries(config.output)  # a worker killed mid-write leaves its temporary; its task ran again
    results = [manifest.get("shards", s.stem) or {"status": "missing", "shard": s.stem, "path": s.path,
                                                   "error": "not processed"} for s in shards]
    worker_peaks = [u["peak_rss_mb"] for section in manifest.sections.values() for u in section.values()
                    if isinstance(u, dict) and "peak_rss_mb" in u]
    memory = {"driver_peak_rss": peak_rss_mb(), "worker_peak_rss": max(worker_peaks, default=0.0)}
    stats = build_stats(manifest.config_hash, results, config.batch_shards, time.perf_counter() - started, memory)
    stats["removed_shards"] = removed
    stats["duplicate_ids"] = (manifest.get("clusters", "all") or {}).get("duplicate_ids", {"count": 0, "examples": []})
    write_json_atomic(storage.join(config.output, "stats.json"), stats)
    ledger = build_ledger(results, config.batch_shards, config.cost.usd_per_cpu_hour, config.cost.usd_per_gb_read)
    write_atomic(ledger, storage.join(config.output, "ledger.parquet"))
    progress.phase("report", 1)
    stats["recommendation"] = write_report(config.output, config)["recommendation"]
    return stats
