"""The batch job: Dask tasks per shard (and per band), every finished unit recorded in the manifest as it arrives.

Without a global stage, one task per shard runs every stage. With one (dedup), the phases are: *map* per shard
(the stages before it, then its keys), *reduce* per band, *verify* per shard, *link* in rounds over partitions
of document keys (the global stage's linker), *apply* per shard (its decision and the stages after it). Each
phase resumes: units recorded in the manifest, whose files are intact, are not redone.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from distributed import Client, as_completed

from corpusslim.config import RunConfig
from corpusslim.errors import ConfigError, OutputError, ShardInputError
from corpusslim.registry import STAGES
from corpusslim.runtime import outputs, storage
from corpusslim.runtime.cluster import check_workers, dask_client
from corpusslim.runtime.ids import repeated_ids, unit_ids
from corpusslim.runtime.inputs import Columns, Shard, needs_split, shards_of, split_jsonl, split_units
from corpusslim.runtime.manifest import Manifest, read_manifest
from corpusslim.runtime.measure import peak_rss_mb
from corpusslim.runtime.outputs import OutputSpec
from corpusslim.runtime.phases import Links
from corpusslim.runtime.shard_io import is_intact, read_checked, remove_temporaries
from corpusslim.runtime.worker import apply_shard, map_shard, process_shard
from corpusslim.stages.base import GlobalStage, StageConfig
from corpusslim.tracker.ledger import (
    SOURCES_LEDGER_FILE,
    BatchRule,
    batch_numbers,
    build_ledger,
    build_source_ledger,
    load_ledger,
)
from corpusslim.tracker.report import write_report
from corpusslim.tracker.sources import overlap_matrix
from corpusslim.tracker.stats import build_stats

CONFIG_FILE = "config.json"  # the validated config of the run, for ``corpusslim report``
SPLITS = "inputs"  # manifest section: JSON Lines files split into Parquet parts, by file
SUBMIT_AT_ONCE = 1000  # tasks per submission


class Progress:
    """What the runner reports while it works; the CLI prints it, tests may ignore it."""

    def start(self, total: int, done: int, dashboard: str | None) -> None: ...

    def phase(self, name: str, tasks: int) -> None: ...

    def task(self, result: dict) -> None: ...

    def workers(self, threads: dict[str, int]) -> None:
        """The workers the job runs on, with the threads of each."""


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

    def global_stage(self) -> GlobalStage | None:
        return None if self.global_ is None else STAGES[self.global_.kind](self.global_)


@dataclass
class Prior:
    """Earlier runs a ``--against`` run dedups against: their index files and where their documents are."""

    runs: list[str] = field(default_factory=list)
    shards: int = 0
    index: dict[int, dict] = field(default_factory=dict)
    text_sources: dict[int, dict] = field(default_factory=dict)


def load_prior(against: str, global_stage: GlobalStage) -> Prior:
    """The chain of finished runs ending at ``against`` (each run records the runs it was deduped against)."""
    stored = read_manifest(against)
    if stored is None:
        raise ConfigError(f"--against {against}: no finished run there (no _manifest.json)")
    meta, sections = stored.get("meta", {}), stored.get("sections", {})
    kind, signature = global_stage.kind, global_stage.signature()
    if meta.get(kind) != signature:
        raise ConfigError(f"--against {against}: its {kind} settings {meta.get(kind)} differ from this run's "
                          f"{signature}; their indexes would not be comparable")
    unfinished = [k for k, v in sections.get("shards", {}).items() if v.get("status") != "done"]
    if unfinished or not sections.get("map"):
        raise ConfigError(f"--against {against}: the run is not finished (shards not done: {unfinished[:5]})")
    prior = Prior(runs=[*meta.get("against", []), against])
    prior.shards = meta.get("shard_offset", 0) + len(sections["map"])
    for run_dir in prior.runs:
        settings = json.loads(storage.read_text(storage.join(run_dir, CONFIG_FILE)))
        if not settings.get("keep_index", True):
            raise ConfigError(f"--against {against}: {run_dir} did not keep its index (keep_index: false)")
        columns = Columns(settings.get("text_column", "text"), settings.get("id_column", "id"))
        sections = read_manifest(run_dir)["sections"]
        for stem, entry in sections["map"].items():
            number, fmt = entry["shard_number"], sections["shards"][stem].get("format", "parquet")
            prior.index[number] = entry["index"]
            prior.text_sources[number] = {"index": entry["index"], "columns": columns, "outputs": [
                outputs.path(run_dir, d, stem, fmt) for d in ("kept", "rejected")]}
    return prior


class Job:
    """One invocation of ``run``: the config, the manifest and the Dask client, and the phases. It is the
    :class:`corpusslim.runtime.phases.PhaseContext` a global stage's linker works through."""

    def __init__(self, config: RunConfig, client: Client, manifest: Manifest, shards: list[Shard], prior: Prior,
                 progress: Progress):
        self.config, self.client, self.manifest = config, client, manifest
        self.shards, self.prior, self.progress = shards, prior, progress
        self.plan = Plan.of(list(config.stages))
        self.before = [c.kind for c in self.plan.before]
        self.work = storage.join(config.output, "_work")
        self.outputs = OutputSpec(config.output, config.output_format, Columns(config.text_column, config.id_column),
                                  config.dropped_annotations())
        self.bad: set[str] = set()  # shards quarantined in this invocation: not retried within it

    def each(self, phase: str, futures: list) -> Iterable[dict]:
        """The tasks' results as they finish (fetched in the background, not one round trip each)."""
        self.progress.phase(phase, len(futures))
        try:
            for future, result in as_completed(futures, with_results=True, raise_errors=False):
                if future.status != "finished":
                    try:
                        future.result()  # raises the task's error
                    except (OSError, OutputError) as exc:  # disk full, read-only or vanished output: nothing recorded
                        raise OutputError(f"{phase} task {future.key} failed, its output is not recorded: "
                                          f"{exc}") from None
                yield result
                self.progress.task(result)
        finally:
            self.client.cancel(futures)

    def map(self, fn, *per_unit: list, **same) -> list:
        """One task per unit, ``fn(*per_unit values, **same)``, submitted ``SUBMIT_AT_ONCE`` tasks a message
        (``Client.map``: a message per task cost the scheduler about as much as the task's own bookkeeping; one
        message for 10,000 apply tasks is 13 MB, past Dask's large-graph warning)."""
        return self.client.map(fn, *per_unit, pure=False, batch_size=SUBMIT_AT_ONCE, **same) if per_unit[0] else []

    def _shard_results(self, phase: str, futures: list, section: str) -> None:
        """Record per-shard results; a bad input shard is quarantined or, by policy, stops the job."""
        for result in self.each(phase, futures):
            if result["status"] == "bad_input":
                result["status"] = "quarantined"
                self.bad.add(result["shard"])
                self.manifest.record("shards", result["shard"], result)
                if self.config.on_bad_shard == "fail":
                    raise ShardInputError(result["error"])
            else:
                self.manifest.record(section, result["shard"], result)

    def split_inputs(self, files: list[Shard]) -> None:
        """Stream JSON Lines files over the chunk size into Parquet parts (one task per file; recorded)."""
        limits = self.config.limits
        futures = self.map(split_jsonl, files, chunk_rows=limits.chunk_rows, chunk_mb=limits.chunk_mb,
                           directory=storage.join(self.work, "input"))
        self._shard_results("split", futures, SPLITS)

    def check_ids(self) -> None:
        """``on_duplicate_id`` fail or suffix: find the ids on more than one row before any output is written
        (``corpusslim.runtime.ids``); stop naming them, or give the units the renames of their later occurrences."""
        directory = storage.join(self.work, "ids")
        units = list(self.each("ids", self.map(unit_ids, self.shards, directory=directory)))
        found = self.client.submit(repeated_ids, units, directory, pure=False).result()
        self.manifest.record("ids", "all", {k: found[k] for k in ("count", "examples", "renamed_rows")})
        if found["count"] and self.config.on_duplicate_id == "fail":
            raise ShardInputError(f"{found['count']:,} ids appear on more than one input row (e.g. "
                                  f"{', '.join(map(repr, found['examples']))}); on_duplicate_id: fail stops the "
                                  "run before writing anything (suffix renames the later ones)")
        renames = found["renames"]
        self.shards = [replace(s, renames=renames[s.stem]["path"]) if s.stem in renames else s
                       for s in self.shards]

    def run_local(self) -> None:
        todo = [s for s in self.shards if s.stem not in self.bad and not self.manifest.is_done(s.stem)]
        futures = self.map(process_shard, todo, stage_configs=self.plan.before,
                           max_doc_chars=self.config.limits.max_doc_chars, output=self.outputs,
                           key=[f"shard-{s.index}-{self.manifest.config_hash}" for s in todo])
        self._shard_results("shards", futures, "shards")

    # -- global stage: map, link, apply ----------------------------------------------------------------------------
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
        futures = self.map(map_shard, todo, [self._number(s) for s in todo], before=self.plan.before,
                           global_config=self.plan.global_, max_doc_chars=self.config.limits.max_doc_chars,
                           work=self.work, index_dir=storage.join(self.config.output, "index"))
        self._shard_results("map", futures, "map")

    def index(self) -> dict[int, dict]:
        index = dict(self.prior.index)
        for s in self._mapped():
            entry = self.manifest.get("map", s.stem)
            index[entry["shard_number"]] = entry["index"]
        return index

    def sources(self) -> dict[int, dict]:
        sources = dict(self.prior.text_sources)
        for s in self._mapped():
            entry = self.manifest.get("map", s.stem)
            sources[entry["shard_number"]] = {"pre": entry["pre"], "index": entry["index"]}
        return sources

    def id_files(self) -> list[dict]:
        return [self.manifest.get("map", s.stem)["ids"] for s in self._mapped()]

    def _fingerprint(self) -> str:
        shas = sorted((n, r["sha256"]) for n, r in self.index().items())
        return hashlib.sha256(json.dumps(shas).encode()).hexdigest()[:16]

    def _pending(self, fp: str) -> list[Shard]:
        return [s for s in self._mapped()
                if not (self.manifest.is_done(s.stem) and self.manifest.get("shards", s.stem).get("fp") == fp)]

    def run_global(self) -> None:
        """Map every shard, link, apply the shards whose outputs are not done for the current index state."""
        linker = STAGES[self.plan.global_.kind].Linker(self.plan.global_, self)
        self._map(need_pre=set())
        while True:
            fp = self._fingerprint()
            pending = self._pending(fp)
            if not pending:
                return
            # Apply reads the intermediates of pending shards; a linker that reads text reads every shard's.
            everyone = linker.reads_text and not linker.intact(fp)
            self._map(need_pre={s.stem for s in (self._mapped() if everyone else pending)})
            if self._fingerprint() == fp:
                break
            # An input changed under a finished run (its index was rebuilt differently): every shard is redone.
        self._apply(pending, linker.link(fp), fp)

    def _apply(self, pending: list[Shard], linked: Links, fp: str) -> None:
        indexed = sum(self.manifest.get("map", s.stem)["docs_indexed"] for s in self._mapped()) or 1
        # where each kept document's source is looked up for the overlap between sources (corpusslim.tracker.sources)
        pre = {n: e["pre"]["path"] for n, e in self.sources().items() if "pre" in e} \
            if self.shards[0].columns.source else {}
        pre_paths = self.client.scatter([pre], hash=False)[0] if pre else None
        entries = [self.manifest.get("map", s.stem) for s in pending]
        records = [linked.files.get(e["shard_number"]) for e in entries]
        futures = self.map(apply_shard_with_links, pending, entries, records, empty=linked.empty,
                           global_config=self.plan.global_, after=self.plan.after, output=self.outputs,
                           pre_paths=pre_paths)
        for result in self.each("apply", futures):
            share = linked.cpu_seconds * self.manifest.get("map", result["shard"])["docs_indexed"] / indexed
            stage = next(st for st in result["stages"] if st["stage"] == self.plan.global_.kind)
            stage["cpu_seconds"] = round(stage["cpu_seconds"] + share, 6)
            self.manifest.record("shards", result["shard"], {**result, "fp": fp})

    def clean_up(self) -> None:
        """Delete intermediates once every shard is done; the index stays for later ``--against`` runs unless
        ``keep_index`` is off."""
        if all(self.manifest.is_done(s.stem) for s in self.shards):
            storage.rmtree(self.work)
            if not self.config.keep_index:
                storage.rmtree(storage.join(self.config.output, "index"))


def apply_shard_with_links(shard: Shard, entry: dict, record: dict | None, empty, global_config: StageConfig,
                           after: list[StageConfig], output: OutputSpec, pre_paths) -> dict:
    """``apply_shard`` with the shard's links file read here, on the worker (links never pass the driver), in the
    same task (a task of its own per shard cost the scheduler as much again)."""
    links = read_checked(record) if record else empty
    return apply_shard(shard, entry, links, global_config, after, output, pre_paths)


def units_of(files: list[Shard], manifest: Manifest, chunk_mb: float | None) -> tuple[list[Shard], list[Shard]]:
    """The units of work in arrival order, numbered: files split by an earlier invocation replaced by their parts
    (unless a part must be redone and its file is gone); and the JSON Lines files that must be split first."""
    units, pending = [], []
    for file in files:
        entry = manifest.get(SPLITS, file.stem)
        parts = split_units(file, entry["parts"]) if entry and entry.get("status") == "done" else []
        if parts and all(manifest.is_done(u.stem) or is_intact(p) for u, p in zip(parts, entry["parts"])):
            units += parts
            continue
        if needs_split(file, chunk_mb):
            pending.append(file)
        units.append(file)
    return [replace(u, index=i) for i, u in enumerate(units)], pending


def run(config: RunConfig, scheduler: str | None = None, force: bool = False, progress: Progress | None = None,
        against: str | None = None, figures: bool = True) -> dict:
    """Run (or resume) the job of ``config``; returns the stats also written to ``stats.json``.

    Units already done in the output's manifest are skipped. A bad input shard is quarantined (recorded,
    reported, the rest completes) or, with ``on_bad_shard: fail``, stops the job with its error.
    ``against``: a finished run directory whose documents all count as earlier arrivals for dedup. ``figures``:
    whether the report draws its figures.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    plan = Plan.of(list(config.stages))
    if against and plan.global_ is None:
        raise ConfigError("--against needs a dedup stage in the config")
    files = shards_of(config)
    prior = load_prior(storage.absolute(against), plan.global_stage()) if against else Prior()
    manifest = _open_manifest(config, plan, prior, force)
    shards, to_split = units_of(files, manifest, config.limits.chunk_mb)
    removed = manifest.drop_shards({s.stem for s in shards}, dependent=plan.global_ is not None)
    done = sum(manifest.is_done(s.stem) for s in shards)
    # A finished run keeps its dedup index for later --against runs: a torn index file is rebuilt too.
    index_torn = plan.global_ is not None and config.keep_index and not all(
        manifest.intact("map", s.stem, "index", "ids") for s in shards)
    if done == len(shards) and not index_torn and not to_split:
        progress.start(len(shards), done, None)
    else:
        shards = _execute(config, scheduler, manifest, files, shards, to_split, prior, progress, done)
    stats = _record_results(config, manifest, shards, plan, against, removed, time.perf_counter() - started)
    progress.phase("report", 1)
    stats["recommendation"] = write_report(config.output, config, figures)["recommendation"]
    return stats


def _open_manifest(config: RunConfig, plan: Plan, prior: Prior, force: bool) -> Manifest:
    """The run's manifest (refusing another config's run unless ``force``), with the config written beside it and
    the temporaries of a killed invocation removed."""
    meta = {"against": prior.runs, "shard_offset": prior.shards}
    if (global_stage := plan.global_stage()) is not None:
        meta[global_stage.kind] = global_stage.signature()
    manifest = Manifest.open(config.output, config.config_hash(), meta=meta, force=force)
    storage.write_json(storage.join(config.output, CONFIG_FILE), config.model_dump(mode="json"))
    remove_temporaries(config.output)
    return manifest


def _execute(config: RunConfig, scheduler: str | None, manifest: Manifest, files: list[Shard], shards: list[Shard],
             to_split: list[Shard], prior: Prior, progress: Progress, done: int) -> list[Shard]:
    """The Dask part: split what must be split, then every phase; returns the units (after splitting)."""
    with dask_client(config.workers, scheduler) as client:
        progress.start(len(shards), done, client.dashboard_link)
        progress.workers(check_workers(client, [shards[0].path, storage.join(config.output, CONFIG_FILE)]))
        job = Job(config, client, manifest, shards, prior, progress)
        if to_split:
            job.split_inputs(to_split)
            job.shards = shards = units_of(files, manifest, config.limits.chunk_mb)[0]
        if config.on_duplicate_id != "report":
            job.check_ids()
        if job.plan.global_ is None:
            job.run_local()
        else:
            job.run_global()
        job.clean_up()
    remove_temporaries(config.output)  # a worker killed mid-write leaves its temporary; its task ran again
    manifest.save()  # the journal folded into _manifest.json
    return shards


def _record_results(config: RunConfig, manifest: Manifest, shards: list[Shard], plan: Plan, against: str | None,
                    removed: list[str], wall_seconds: float) -> dict:
    """stats.json, ledger.parquet and ledger_sources.parquet from the units' results; returns the stats."""
    results = [manifest.get("shards", s.stem) or {"status": "missing", "shard": s.stem, "path": s.path,
                                                   "error": "not processed"} for s in shards]
    worker_peaks = [u["peak_rss_mb"] for section in manifest.sections.values() for u in section.values()
                    if isinstance(u, dict) and "peak_rss_mb" in u]
    memory = {"driver_peak_rss": peak_rss_mb(), "worker_peak_rss": max(worker_peaks, default=0.0)}
    rule = BatchRule.of(config)
    stats = build_stats(manifest.config_hash, results, batch_numbers(results, rule), wall_seconds, memory)
    stats["overlap"] = overlap_matrix(results)
    stats["removed_shards"] = removed
    if (global_stage := plan.global_stage()) is not None:
        stats.update(global_stage.Linker.summary(manifest))
    if (ids := manifest.get("ids", "all")) is not None:  # found before any output (on_duplicate_id)
        stats["duplicate_ids"] = {**ids, "policy": config.on_duplicate_id}
        if config.keep_index:
            stats["totals"]["index_bytes"] = sum(e[f]["bytes"] for e in manifest.section("map").values()
                                                 if e.get("status") == "done" for f in ("index", "ids"))
    storage.write_json(storage.join(config.output, "stats.json"), stats)
    # --against continues the earlier run's ledger: batch numbers and cumulative R, U, C carry on.
    ledger = build_ledger(results, rule, config.cost,
                          prior=load_ledger(storage.absolute(against)) if against else None)
    storage.write_parquet(ledger, storage.join(config.output, "ledger.parquet"))
    storage.write_parquet(build_source_ledger(results, rule, config.cost),
                          storage.join(config.output, SOURCES_LEDGER_FILE))
    return stats
