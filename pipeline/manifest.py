"""``_manifest.json``: the config hash and each shard's state; what makes a rerun resume.

A shard is ``done`` only after both of its output files were renamed into place; the driver records it after the
worker reports. Killing the job at any moment leaves shards either done (skipped on rerun) or not (redone).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid

from pipeline.errors import OutputConflictError
from pipeline.shard_io import parquet_rows

MANIFEST = "_manifest.json"
OUTPUT_DIRS = ("kept", "rejected")


def write_json_atomic(path: str, payload: dict) -> None:
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Manifest:
    def __init__(self, output: str, config_hash: str):
        self.output = output
        self.path = os.path.join(output, MANIFEST)
        self.config_hash = config_hash
        self.shards: dict[str, dict] = {}

    @classmethod
    def open(cls, output: str, config_hash: str, force: bool = False) -> "Manifest":
        """Load the run's manifest, or start one; refuse a directory holding another config's run."""
        manifest = cls(output, config_hash)
        if os.path.exists(manifest.path):
            with open(manifest.path, encoding="utf-8") as f:
                stored = json.load(f)
            if stored.get("config_hash") != config_hash:
                if not force:
                    raise OutputConflictError(
                        f"{output}: holds a run of another config (hash {stored.get('config_hash')}, this one "
                        f"{config_hash}); use another output directory or --force to replace it")
                for name in (*OUTPUT_DIRS, MANIFEST):
                    target = os.path.join(output, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
            else:
                manifest.shards = stored.get("shards", {})
        os.makedirs(output, exist_ok=True)
        return manifest

    def is_done(self, stem: str) -> bool:
        """Done and both output files present with the row counts the manifest recorded."""
        entry = self.shards.get(stem)
        if not entry or entry.get("status") != "done":
            return False
        return all(parquet_rows(os.path.join(self.output, d, f"{stem}.parquet")) == entry["rows"][d]
                   for d in OUTPUT_DIRS)

    def record(self, stem: str, result: dict) -> None:
        self.shards[stem] = result
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, {"config_hash": self.config_hash, "shards": self.shards})
