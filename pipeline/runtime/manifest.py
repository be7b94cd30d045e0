"""The run's manifest: the config hash and the state of every unit of work; what makes a rerun resume.

Sections: ``shards`` (final outputs, by shard stem), and for a run with a global stage ``map`` (per shard: the
intermediate and index files with their checksums) and the global stage's own units (dedup: ``reduce``, ``link``,
``clusters``). A unit is recorded only after its files were renamed into place, so killing the job at any moment
leaves each unit either recorded (skipped on rerun, after its files are checked) or not (redone).

Stored as a snapshot, ``_manifest.json``, plus a journal of the units recorded since: recording a unit appends one
line to ``_manifest.journal`` and fsyncs it (on object stores, where nothing appends, it writes one small object
under ``_manifest.journal/``), so it costs the same at the 100,000th shard as at the 10th; a unit counts once its
line is durable. A line torn by a crash is ignored. The journal is folded into the snapshot when the manifest is
opened, when it has grown as long as the snapshot (so the rewrites cost O(1) per unit, amortised), and by
:meth:`Manifest.save` at the end of a run. Replaying the journal over a snapshot that already holds it changes
nothing (every entry sets or clears a value), so a crash between the two steps of a compaction loses nothing.
"""
from __future__ import annotations

import json
import os

from corpusslim.errors import OutputConflictError, OutputError
from corpusslim.runtime import outputs, storage
from corpusslim.runtime.shard_io import is_intact

MANIFEST = "_manifest.json"
JOURNAL = "_manifest.journal"
COMPACT_AT_LEAST = 1000  # journal entries before a compaction is considered
RUN_DIRS = (*outputs.DIRS, "index", "_work")


def _journal_lines(output: str) -> list[str]:
    """The journal's entries, oldest first (local: lines of one file; object stores: one object each)."""
    path = storage.join(output, JOURNAL)
    if storage.is_url(output):
        return [storage.read_text(storage.join(path, name)) for name in storage.listdir(path)]
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace").split("\n")


def _replay(sections: dict, lines: list[str]) -> None:
    """Apply journal entries to ``sections``; a line that does not parse (torn by a crash) is skipped."""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "forget" in entry:
            sections.pop(entry["forget"], None)
        else:
            sections.setdefault(entry["section"], {})[entry["key"]] = entry["value"]


def read_manifest(output: str) -> dict | None:
    """The manifest of a run directory (snapshot plus journal), or None when there is none."""
    path = storage.join(output, MANIFEST)
    if not storage.exists(path):
        return None
    stored = json.loads(storage.read_text(path))
    _replay(stored.setdefault("sections", {}), _journal_lines(output))
    return stored


class Manifest:
    def __init__(self, output: str, config_hash: str, meta: dict | None = None):
        self.output = output
        self.path = storage.join(output, MANIFEST)
        self.journal = storage.join(output, JOURNAL)
        self.config_hash = config_hash
        self.meta = meta or {}
        self.sections: dict[str, dict] = {}
        self._units = 0  # units in the snapshot
        self._journaled = 0  # entries appended since the snapshot

    @classmethod
    def open(cls, output: str, config_hash: str, meta: dict | None = None, force: bool = False) -> Manifest:
        """Load the run's manifest (its journal folded in), or start one; refuse a directory holding another
        config's run."""
        manifest = cls(output, config_hash, meta)
        stored = read_manifest(output)
        if stored is not None:
            if stored.get("config_hash") != config_hash or stored.get("meta", {}) != manifest.meta:
                if not force:
                    raise OutputConflictError(
                        f"{output}: holds a run of another config (hash {stored.get('config_hash')}, this one "
                        f"{config_hash}); use another output directory or --force to replace it")
                for name in RUN_DIRS:
                    storage.rmtree(storage.join(output, name))
                for name in (MANIFEST, "stats.json"):
                    storage.remove(storage.join(output, name))
                manifest._clear_journal()
            else:
                manifest.sections = stored.get("sections", {})
        storage.makedirs(output)
        manifest.save()
        return manifest

    def get(self, section: str, key: str) -> dict | None:
        return self.sections.get(section, {}).get(key)

    def section(self, section: str) -> dict:
        return self.sections.setdefault(section, {})

    def record(self, section: str, key: str, value: dict) -> None:
        """Record a finished unit; it counts once this returns (its journal entry is durable)."""
        self.section(section)[key] = value
        self._append({"section": section, "key": key, "value": value})

    def forget(self, section: str) -> None:
        self.sections.pop(section, None)
        self._append({"forget": section})

    def drop_shards(self, present: set[str], dependent: bool) -> list[str]:
        """Forget the shards of an earlier invocation that are no longer in the input, and delete their files,
        so the output holds exactly the current input's documents. ``dependent``: every shard's outputs depend on
        the others (a global stage), so the remaining shards are marked to be redone. Returns the stems gone."""
        gone = sorted((set(self.section("shards")) | set(self.section("map"))) - present)
        for stem in gone:
            for directory in outputs.DIRS:
                for fmt in outputs.EXTENSIONS:
                    storage.remove(outputs.path(self.output, directory, stem, fmt))
            for parts in (("index",), ("index", "ids"), ("_work", "pre")):
                storage.remove(storage.join(self.output, *parts, f"{stem}.parquet"))
            for section in ("shards", "map"):
                self.section(section).pop(stem, None)
        if gone and dependent:
            for entry in self.section("shards").values():
                if entry.get("status") == "done":
                    entry["status"] = "stale"
        if gone:
            self.save()
        return gone

    def is_done(self, stem: str) -> bool:
        """Final outputs of the shard done, each file it wrote present and whole (``outputs.intact``)."""
        entry = self.get("shards", stem)
        if not entry or entry.get("status") != "done":
            return False
        return "files" in entry and outputs.intact(self.output, stem, entry["format"], entry["files"])

    def intact(self, section: str, key: str, *files: str) -> bool:
        """The unit is recorded and each named file record of it is unchanged on disk."""
        entry = self.get(section, key)
        return bool(entry) and entry.get("status", "done") == "done" and all(is_intact(entry[f]) for f in files)

    def save(self) -> None:
        """Write the whole state as the snapshot, then drop the journal it now holds (a compaction)."""
        storage.write_json(self.path, {"config_hash": self.config_hash, "meta": self.meta, "sections": self.sections},
                           indent=None)
        self._clear_journal()
        self._units = sum(len(s) for s in self.sections.values())

    def _clear_journal(self) -> None:
        (storage.rmtree if storage.is_url(self.output) else storage.remove)(self.journal)
        self._journaled = 0

    def _append(self, entry: dict) -> None:
        """Make one journal entry durable; compact once the journal is as long as the snapshot."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        if storage.is_url(self.output):
            storage.write_text(storage.join(self.journal, f"{self._journaled:012d}.json"), line)
        else:
            _append_line(self.journal, line)
        self._journaled += 1
        if self._journaled >= max(COMPACT_AT_LEAST, self._units):
            self.save()


def _append_line(path: str, line: str) -> None:
    """Append one line to a local file and fsync it (and its directory when the file is new)."""
    new = not os.path.exists(path)
    try:
        with open(path, "ab") as f:
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        if new:
            fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
