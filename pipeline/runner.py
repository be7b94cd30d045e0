"""The batch job: one Dask task per shard, results recorded in the manifest as they arrive, stats at the end."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from distributed import as_completed

from pipeline.cluster import dask_client
from pipeline.config import RunConfig
from pipeline.errors import ShardInputError
from pipeline.manifest import Manifest, write_json_atomic
from pipeline.shard_io import discover_shards, remove_temporaries
from pipeline.stats import build_stats
from pipeline.worker import process_shard

Progress = Callable[[dict], None]


def run(config: RunConfig, scheduler: str | None = None, force: bool = False,
        on_shard: Progress | None = None, on_start: Callable[[int, int, str | None], None] | None = None) -> dict:
    """Run (or resume) the job of ``config``; returns the stats also written to ``stats.json``.

    Shards already done in the output's manifest are skipped. A bad input shard is quarantined (recorded,
    reported, the rest completes) or, with ``on_bad_shard: fail``, stops the job with its error.
    """
    started = time.perf_counter()
    shards = discover_shards(config.input)
    manifest = Manifest.open(config.output, config.config_hash(), force=force)
    remove_temporaries(config.output)
    todo = [s for s in shards if not manifest.is_done(s.stem)]
    if not todo and on_start:
        on_start(len(shards), len(shards), None)
    if todo:
        with dask_client(config.workers, scheduler) as client:
            if on_start:
                on_start(len(shards), len(shards) - len(todo), client.dashboard_link)
            futures = [client.submit(process_shard, s, config.stages, config.limits.max_doc_chars, config.output,
                                     key=f"shard-{s.index}-{config.config_hash()}", pure=False) for s in todo]
            for future in as_completed(futures):
                result = future.result()
                if result["status"] == "bad_input":
                    result["status"] = "quarantined"
                    manifest.record(result["shard"], result)
                    if config.on_bad_shard == "fail":
                        client.cancel(futures)
                        raise ShardInputError(result["error"])
                else:
                    manifest.record(result["shard"], result)
                if on_shard:
                    on_shard(result)
    results = [manifest.shards[s.stem] for s in shards]
    stats = build_stats(manifest.config_hash, results, config.batch_shards, time.perf_counter() - started)
    write_json_atomic(os.path.join(config.output, "stats.json"), stats)
    return stats
