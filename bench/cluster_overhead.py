"""The external-cluster path against the embedded LocalCluster, and what passes through the scheduler.

    python bench/cluster_overhead.py [--runs 3] [--workers 2]

1. Wall time of ``corpusslim run configs/sample.yaml`` (every stage, sample_data) with its LocalCluster (started
   by the run, counted) against ``--scheduler`` on a cluster of the same size started with the ``dask`` command
   line (``dask scheduler`` + ``dask worker --nworkers 1 --nthreads 1`` each; started once, not counted; the
   workers are restarted before every run so each loads its models in the run, as local workers do). Runs
   alternate A B A B; medians.
2. Bytes the scheduler read and wrote during each external run (a preload, ``bench/scheduler_bytes.py``, counts its
   TCP messages), per input document, on sample_data and on the same documents made 4x longer (each text
   repeated 4 times): constant in document size when no text travels through the scheduler.

Writes ``bench/results/cluster.json`` and ``bench/results/cluster.md`` (the table, also printed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import yaml
from distributed import Client

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def start_cluster(root: Path, workers: int) -> tuple[list[subprocess.Popen], str]:
    root.mkdir(parents=True)
    scheduler_file = root / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                               "127.0.0.1:0", "--scheduler-file", str(scheduler_file), "--preload",
                               str(REPO / "bench" / "scheduler_bytes.py")],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not scheduler_file.exists():
        time.sleep(0.2)
    for i in range(workers):
        home = root / f"worker-{i}"
        home.mkdir()
        procs.append(subprocess.Popen([*dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                                       "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                       "--local-directory", str(home)], cwd=home, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
        client.wait_for_workers(workers, timeout=180)
        return procs, client.scheduler.address


def counts(address: str) -> dict:
    with Client(address, timeout=60) as client:
        return client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.byte_counts))


def restart(address: str, workers: int) -> None:
    with Client(address, timeout=60) as client:
        client.restart()
        client.wait_for_workers(workers, timeout=180)


def run_job(config: Path, out: Path, scheduler: str | None) -> float:
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(config), "--output", str(out)]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - start


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for d in ("kept", "rejected") for p in sorted((out / d).glob("*"))}


def long_input(target: Path, times: int) -> int:
    """sample_data with every text repeated ``times`` times (separated by blank lines); returns documents."""
    target.mkdir(parents=True)
    docs = 0
    for shard in sorted((REPO / "sample_data").glob("*.parquet")):
        df = pl.read_parquet(shard)
        df = df.with_columns(pl.concat_str([pl.col("text")] * times, separator="\n\n").alias("text"))
        df.write_parquet(target / shard.name)
        docs += df.height
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="corpusslim-cluster-"))
    config = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
    config.update(input=str(REPO / "sample_data"), workers=args.workers)
    sample_cfg = work / "sample.yaml"
    sample_cfg.write_text(yaml.safe_dump(config))
    docs = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in (REPO / "sample_data").glob("*.parquet"))
    long_docs = long_input(work / "long", 4)
    long_cfg = work / "long.yaml"
    long_cfg.write_text(yaml.safe_dump({**config, "input": str(work / "long")}))
    load = os.getloadavg()
    procs, address = start_cluster(work / "cluster", args.workers)
    local, external, bytes_per_doc = [], [], {"sample": [], "4x longer": []}
    try:
        for i in range(args.runs):
            local.append(run_job(sample_cfg, work / f"local-{i}", None))
            restart(address, args.workers)
            before = counts(address)
            external.append(run_job(sample_cfg, work / f"external-{i}", address))
            after = counts(address)
            bytes_per_doc["sample"].append(
                (after["read"] + after["written"] - before["read"] - before["written"]) / docs)
            assert outputs(work / f"local-{i}") == outputs(work / f"external-{i}"), "outputs differ"
            restart(address, args.workers)
            before = counts(address)
            run_job(long_cfg, work / f"long-{i}", address)
            after = counts(address)
            bytes_per_doc["4x longer"].append(
                (after["read"] + after["written"] - before["read"] - before["written"]) / long_docs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    text_bytes = {"sample": sum(pl.read_parquet(p)["text"].str.len_bytes().sum()
                                for p in (REPO / "sample_data").glob("*.parquet")) / docs}
    text_bytes["4x longer"] = sum(pl.read_parquet(p)["text"].str.len_bytes().sum()
                                  for p in (work / "long").glob("*.parquet")) / long_docs
    result = {
        "date": datetime.now().isoformat(timespec="seconds"), "machine": f"{os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}", "load_average_at_start": load,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=REPO).stdout.strip(),
        "docs": docs, "runs": args.runs, "workers": args.workers,
        "local_wall_s": local, "external_wall_s": external,
        "local_median_s": statistics.median(local), "external_median_s": statistics.median(external),
        "external_over_local": statistics.median(external) / statistics.median(local),
        "scheduler_bytes_per_doc": {k: statistics.median(v) for k, v in bytes_per_doc.items()},
        "text_bytes_per_doc": text_bytes, "identical_outputs": True,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=1))
    md = "\n".join([
        "# External Dask cluster vs LocalCluster (`python bench/cluster_overhead.py`)", "",
        f"{result['date']} · {result['machine']} · commit {result['commit']} · load average at start "
        f"{load[0]:.1f} · {docs:,} documents (sample_data, every stage) · {args.workers} workers · medians of "
        f"{args.runs} alternating runs · outputs byte-identical", "",
        "| path | wall s (runs) | median | ratio |", "|---|---|---|---|",
        f"| LocalCluster (started by the run) | {', '.join(f'{x:.1f}' for x in local)} | "
        f"{result['local_median_s']:.1f} | 1.00 |",
        f"| `--scheduler` (dask scheduler + {args.workers} dask workers) | {', '.join(f'{x:.1f}' for x in external)} | "
        f"{result['external_median_s']:.1f} | {result['external_over_local']:.2f} |", "",
        "| input | text bytes / doc | scheduler bytes (in + out) / doc |", "|---|---|---|",
        *[f"| {k} | {text_bytes[k]:,.0f} | {result['scheduler_bytes_per_doc'][k]:,.0f} |" for k in text_bytes], "",
    ])
    (RESULTS / "cluster.md").write_text(md)
    print(md)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
