"""Shards of any size: the same documents as 1, 4 or 16 files, and one big file at several chunk sizes, run with
the sample config's stages on 2 local workers.

    python bench/big_shards.py [--docs 200000] [--chunks 5000,20000,80000] [--runs 1]
                               [--out bench/results/big_shards.json]

For each layout: worker peak RSS (the largest of any task, from the run's manifest), driver peak RSS, wall time,
and worker utilisation (the tasks' CPU seconds over wall time × workers: 1.0 when both workers are busy all the
time). ``chunk_rows: null`` on the one-file layout is the behaviour before issue 21 (one task holds the file).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2


def corpus(docs: int) -> pl.DataFrame:
    """``docs`` documents: sample_data's, repeated with fresh ids, in arrival order."""
    base = pl.concat([pl.read_parquet(p) for p in sorted((REPO / "sample_data").glob("*.parquet"))],
                     how="diagonal_relaxed")
    copies = -(-docs // base.height)
    return pl.concat([base.with_columns(id=pl.col("id") + f"#{k}") for k in range(copies)]).head(docs)


def layout(df: pl.DataFrame, directory: Path, files: int) -> None:
    directory.mkdir(parents=True)
    size = -(-df.height // files)
    for k in range(files):
        pq.write_table(df.slice(k * size, size).to_arrow(), directory / f"part-{k:03d}.parquet",
                       row_group_size=10_000)


def run(input_dir: Path, out: Path, limits: dict) -> dict:
    config = yaml.safe_load((REPO / "configs/sample.yaml").read_text())
    config.update(input=str(input_dir), output=str(out), workers=WORKERS, limits={**config.get("limits", {}),
                                                                                   **limits})
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "corpusslim.cli", "run", str(path)], capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    stats = json.loads((out / "stats.json").read_text())
    manifest = json.loads((out / "_manifest.json").read_text())["sections"]
    units = [u for section in manifest.values() for u in section.values() if isinstance(u, dict)]
    task_cpu = sum(s["cpu_seconds"] for u in manifest.get("shards", {}).values() for s in u.get("stages", []))
    return {"units": stats["shards"]["done"], "docs": stats["totals"]["docs_in"],
            "worker_peak_mb": max((u.get("peak_rss_mb", 0) for u in units), default=0),
            "driver_peak_mb": stats["memory_mb"].get("driver_peak_rss"), "wall_s": round(wall, 1),
            "utilisation": round(task_cpu / (wall * WORKERS), 2), "batches": len(stats.get("batches", []))}


def median_run(input_dir: Path, work: Path, limits: dict, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        out = work / f"out-{time.monotonic_ns()}"
        rows.append(run(input_dir, out, limits))
        shutil.rmtree(out, ignore_errors=True)
    keys = ("worker_peak_mb", "driver_peak_mb", "wall_s", "utilisation")
    return {**rows[0], **{k: statistics.median(x[k] for x in rows) for k in keys}, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--chunks", default="5000,20000,80000")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench/results/big_shards.json"))
    args = parser.parse_args()
    df = corpus(args.docs)
    results = {"docs": args.docs, "text_mb": round(df["text"].str.len_bytes().sum() / 1e6, 1), "workers": WORKERS,
               "config": "configs/sample.yaml stages", "layouts": [], "chunk_sweep": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for files in (1, 4, 16):
            layout(df, work / f"in-{files}", files)
            row = median_run(work / f"in-{files}", work, {}, args.runs)
            results["layouts"].append({"shards": files, **row})
            print(json.dumps(results["layouts"][-1]), flush=True)
        for chunk in [None, *map(int, args.chunks.split(","))]:
            limits = {"chunk_rows": chunk, "chunk_mb": None}
            row = median_run(work / "in-1", work, limits, args.runs)
            results["chunk_sweep"].append({"chunk_rows": chunk, **row})
            print(json.dumps(results["chunk_sweep"][-1]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
