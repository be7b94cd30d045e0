"""``_manifest.json``: the config hash and the state of every unit of work; what makes a rerun resume.

Sections: ``shards`` (final outputs, by shard stem), and for a run with a global stage ``map`` (per shard: the
intermediate and index files with their checksums), ``reduce`` (per reduce task), ``edges`` and ``clusters``.
A unit is recorded only after its files were renamed into place, so killing the job at any moment leaves each
unit either recorded (skipped on rerun, after its files are checked) or not (redone).
"""
from __future__ import annotations

import json

from corpusslim import storage
from corpusslim.errors import OutputConflictError
from corpusslim.shard_io import is_intact, parquet_rows

MANIFEST = "_manifest.json"
OUTPUT_DIRS = ("kept", "rejected", "removed_lines")  # a shard's outputs (removed_lines/ where lines went)
RUN_DIRS = (*OUTPUT_DIRS, "index", "_work")


def read_manifest(output: str) -> dict | None:
    path = storage.join(output, MANIFEST)
    if not storage.exists(path):
        return None
    return json.loads(storage.read_text(path))


class Manifest:
    def __init__(self, output: str, config_hash: str, meta: dict | None = None):
        self.output = output
        self.path = storage.join(output, MANIFEST)
        self.config_hash = config_hash
        self.meta = meta or {}
        self.sections: dict[str, dict] = {}

    @classmethod
    def open(cls, output: str, config_hash: str, meta: dict | None = None, force: bool = False) -> Manifest:
        """Load the run's manifest, or start one; refuse a directory holding another config's run."""
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
            else:
                manifest.sections = stored.get("sections", {})
        storage.makedirs(output)
        return manifest

    def get(self, section: str, key: str) -> dict | None:
        return self.sections.get(section, {}).get(key)

    def section(self, section: str) -> dict:
        return self.sections.setdefault(section, {})

    def record(self, section: str, key: str, value: dict) -> None:
        self.section(section)[key] = value
        self.save()

    def forget(self, section: str) -> None:
        self.sections.pop(section, None)
        self.save()

    def drop_shards(self, present: set[str], dependent: bool) -> list[str]:
        """Forget the shards of an earlier invocation that are no longer in the input, and delete their files,
        so the output holds exactly the current input's documents. ``dependent``: every shard's outputs depend on
        the others (a global stage), so the remaining shards are marked to be redone. Returns the stems gone."""
        gone = sorted((set(self.section("shards")) | set(self.section("map"))) - present)
        for stem in gone:
            for parts in (*((d,) for d in OUTPUT_DIRS), ("index",), ("index", "ids"), ("_work", "pre")):
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
        """Final outputs of the shard done, each file it wrote present with the row count recorded."""
        entry = self.get("shards", stem)
        if not entry or entry.get("status") != "done":
            return False
        return all(parquet_rows(storage.join(self.output, d, f"{stem}.parquet")) == entry["rows"][d]
                   for d in OUTPUT_DIRS if d in entry["rows"])

    def intact(self, section: str, key: str, *files: str) -> bool:
        """The unit is recorded and each named file record of it is unchanged on disk."""
        entry = self.get(section, key)
        return bool(entry) and entry.get("status", "done") == "done" and all(is_intact(entry[f]) for f in files)

    def save(self) -> None:
        storage.write_json(self.path, {"config_hash": self.config_hash, "meta": self.meta, "sections": self.sections})
