"""Dedup at scale (issue 19): linking on the workers, and driver bookkeeping per shard.

    python bench/linking_scale.py --pairs 1000000,10000000      # linking on synthetic pairs
    python bench/linking_scale.py --shards 6,100,1000            # the sample job split into more shards
    python bench/linking_scale.py --records 100,1000,10000       # recording one unit (after --shards 6)
    python bench/linking_scale.py --pairs 1000000 --shards 6,100 --work-dir /tmp/corpusslim-scale
    python bench/linking_scale.py --project 10000000000          # on paper, from the largest --pairs row

1. Linking (``--pairs``): ``python -m corpusslim.dedup.simulate`` in a fresh process per size (2 spawned workers,
   one thread each): synthetic duplicate pairs (chains, stars, cliques, random trees, chains of 10^5 documents,
   over 1,000 shards) written by the workers and linked in rounds. Reported per size: the driver's peak RSS
   (VmHWM: the driver process, with the Dask scheduler in it), the workers' peak RSS (the largest task), rounds,
   partitions, the linking's CPU seconds (``cpu_s``: the worker processes' CPU over the linking, every thread;
   ``task_thread_cpu_s``: what the tasks report, their own threads only) and wall time (generation excluded);
   sizes up to ``--check-up-to`` are compared with the single-process reference (``corpusslim.dedup.linking``).
   Per round (``per_round``): nodes moved, rows and bytes sent between the round's steps (round 0: the edges),
   rows and bytes of its states. Each row names the commit measured and the load average at its end.
2. Bookkeeping (``--shards``): sample_data's 4,845 documents (in file order) re-split into N Parquet shards of
   about equal rows, then ``configs/sample.yaml`` run in this process: wall seconds and driver CPU seconds
   (``time.process_time`` of this process: runner, manifest and scheduler; the workers are other processes), of
   the whole run, of the job (until the report starts) and of the report (ledger, curve, plots). The per-shard
   overhead is the growth from the smallest split: (job(N) - job(6)) / (N - 6). Every split holds the same
   documents, so the workers' document work stays the same and only the per-shard work grows: at 10,000 shards
   (more than the documents) 4,845 shards hold one document and 5,155 are empty Parquet files (read, processed
   and written like any other). Each row names the commit measured and the load average at its end.
3. Recording a unit (``--records``, after ``--shards 6``, whose first shard entry it copies): milliseconds per
   unit recorded into a manifest already holding N units, appended to the journal (now) or rewriting and fsyncing
   the whole manifest (before; ``Manifest.save``).

4. Projection (``--project DOCS``): linking DOCS documents on paper, scaled linearly in pairs from the largest
   ``linking`` row (its partitions hold as many pairs as the projection's: ``PAIRS_PER_LINK_TASK``), with the
   assumptions it states; written under ``projection``.

Rows go to ``bench/results/dedup_scale.json`` (``linking``: one row per size; ``shards``: one per shard count;
``records``: one per manifest size), merged with the rows already there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from corpusslim.config import load_config
from corpusslim.dedup.schedule import PAIRS_PER_LINK_TASK
from corpusslim.runtime.manifest import Manifest, read_manifest
from corpusslim.runtime.runner import Progress, run

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "dedup_scale.json"


def linking_row(pairs: int, work: Path, check: bool) -> dict:
    cmd = [sys.executable, "-m", "corpusslim.dedup.simulate", "--pairs", str(pairs), "--shards", "1000",
           "--workers", "2", "--work", str(work / f"sim-{pairs}"), *(["--check"] if check else [])]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    s = json.loads(done.stdout.splitlines()[-1])
    return {"pairs": s["pairs"], "driver_peak_mb": s["driver_peak_mb"], "task_peak_mb": s["task_peak_mb"],
            "rounds": s["rounds"], "cpu_s": round(s["worker_cpu_s"], 2), "task_thread_cpu_s": round(s["cpu_s"], 2),
            "partitions": s["partitions"],
            "members": s["members"], "linking_wall_s": round(s["wall_s"], 1),
            "driver_cpu_s": round(s["driver_cpu_s"], 1), "process_wall_s": round(time.perf_counter() - start, 1),
            "matches_reference": s.get("matches_reference"), "per_round": s["per_round"], "commit": commit(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def commit() -> str:
    """The commit measured, with ``+ changes`` when pipeline/ or filters/ differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" + changes" if git("status", "--porcelain", "pipeline", "filters")
                                                  else "")


def projection(rows: list[dict], docs: float, pairs_per_doc: float,
               workers: tuple[int, ...] = (10, 100, 1000)) -> dict:
    """Linking ``docs`` documents, scaled from the largest measured ``linking`` row: tasks and CPU grow linearly
    with the pairs (every partition holds about ``PAIRS_PER_LINK_TASK`` pairs, as in that row, so a task's memory
    stays its), the rounds stay its, the driver grows by its growth per partition from the smallest row; bytes
    sent and written per round grow linearly from the largest row that has them (``per_round``)."""
    row, smallest = rows[-1], rows[0]
    sized = next(r for r in reversed(rows) if "per_round" in r)
    per_part = max(0.0, (row["driver_peak_mb"] - smallest["driver_peak_mb"]) / max(1, row["partitions"] - 1))
    pairs = docs * pairs_per_doc
    scale, parts, gb = pairs / row["pairs"], -(-int(pairs) // PAIRS_PER_LINK_TASK), pairs / sized["pairs"] / 1024
    sent = [r["sent_mb"] * gb for r in sized["per_round"][1:]]
    cpu_hours = row["cpu_s"] * scale / 3600
    return {
        "docs": docs, "pairs_per_doc": pairs_per_doc, "pairs": pairs, "from_pairs": row["pairs"],
        "from_commit": row.get("commit"), "bytes_from_pairs": sized["pairs"], "bytes_from_commit": sized.get("commit"),
        "partitions": parts, "rounds": row["rounds"],
        "edges_gb": round(sized["per_round"][0]["sent_mb"] * gb, 1),
        "sent_gb_per_round": {"max": round(max(sent), 1), "mean": round(sum(sent) / len(sent), 1)},
        "sent_tb_all_rounds": round(sum(sent) / 1024, 2),
        "state_gb_per_round": round(sized["per_round"][-1]["state_mb"] * gb, 1),
        "tasks_per_step": parts, "files_per_step": parts, "footers_read_per_step": parts * parts,
        "task_peak_mb": row["task_peak_mb"],
        "driver_peak_mb": round(row["driver_peak_mb"] + (parts - row["partitions"]) * per_part),
        "cpu_hours": round(cpu_hours, 1),
        "wall_hours_on_workers": {str(n): round(cpu_hours / n, 2) for n in workers},
        "assumptions": [
            f"{pairs_per_doc} verified duplicate pairs per document (the 1M-document real-text bench has 0.11: "
            "64,623 verified + 46,749 exact pairs, bench/results/dedup.json)",
            "components like the simulation's (chains up to 1e5 documents: each doubling of the longest chain "
            "adds one round), so the rounds stay the measured row's",
            "bytes as Parquet on disk (zstd), linear in pairs; each round rewrites every state",
            "one core per worker, CPU seconds as measured (worker processes, every thread), I/O not limiting",
            "driver memory: the largest row's, plus its growth per partition over the smallest row's, linearly "
            "(the growth follows the tasks submitted, a few per partition and round, not the pairs: "
            "linking_partitions); whether it levels off is not measured",
        ],
    }


def split_sample(shards: int, directory: Path) -> None:
    """sample_data's documents in arrival order as ``shards`` Parquet files of about equal rows."""
    docs = pl.concat([pl.read_parquet(p) for p in sorted((REPO / "sample_data").glob("*.parquet"))],
                     how="diagonal_relaxed")
    directory.mkdir(parents=True, exist_ok=True)
    bounds = [round(i * docs.height / shards) for i in range(shards + 1)]
    width = len(str(shards))
    for i in range(shards):
        docs.slice(bounds[i], bounds[i + 1] - bounds[i]).write_parquet(directory / f"shard-{i:0{width}d}.parquet")


def shards_row(shards: int, work: Path) -> dict:
    base = work / f"shards-{shards}"
    shutil.rmtree(base, ignore_errors=True)  # a fresh run: a finished one would only rebuild its report
    split_sample(shards, base / "input")
    config = load_config(REPO / "configs" / "sample.yaml", {"input": str(base / "input"), "output": str(base / "out"),
                                                           "workers": 2})
    clock = Clock()
    stats = run(config, progress=clock)
    job_wall, job_cpu = clock.marks["report"][0] - clock.began[0], clock.marks["report"][1] - clock.began[1]
    wall, cpu = time.perf_counter() - clock.began[0], time.process_time() - clock.began[1]
    return {"shards": shards, "docs": stats["totals"]["docs_in"], "wall_s": round(wall, 1),
            "driver_cpu_s": round(cpu, 2), "job_wall_s": round(job_wall, 1), "job_driver_cpu_s": round(job_cpu, 2),
            "report_wall_s": round(wall - job_wall, 1), "report_driver_cpu_s": round(cpu - job_cpu, 2),
            "commit": commit(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


class Clock(Progress):
    """Wall and CPU clocks at the start and at each phase (``report`` is the last: the job is done)."""

    def __init__(self):
        self.began, self.marks = (time.perf_counter(), time.process_time()), {}

    def phase(self, name: str, tasks: int) -> None:
        self.marks[name] = (time.perf_counter(), time.process_time())


def record_row(units: int, work: Path, entry: dict, timed: int = 20) -> dict:
    """Milliseconds to record one more unit into a manifest holding ``units`` units like ``entry``: appended to
    the journal (now), and the whole manifest rewritten and fsynced (before issue 19, what ``save`` still does)."""
    manifest = Manifest.open(str(work / f"manifest-{units}"), "bench", force=True)
    manifest.section("shards").update({f"s{i:06d}": entry for i in range(units)})
    manifest.save()
    timings = {}
    for name, step in (("append_ms", lambda k: manifest.record("shards", k, entry)),
                       ("rewrite_ms", lambda k: (manifest.section("shards").__setitem__(k, entry), manifest.save()))):
        start = time.perf_counter()
        for i in range(timed):
            step(f"t{name}{i}")
        timings[name] = round(1000 * (time.perf_counter() - start) / timed, 2)
    return {"units": units, "manifest_mb": round(os.path.getsize(manifest.path) / 2**20, 2), **timings}


def merge(rows: list[dict], key: str, section: str) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept = {r[key]: r for r in results.get(section, [])}
    kept.update({r[key]: r for r in rows})
    results[section] = [kept[k] for k in sorted(kept)]
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="", help="comma-separated synthetic pair counts")
    parser.add_argument("--shards", default="", help="comma-separated shard counts for the sample job")
    parser.add_argument("--records", default="", help="comma-separated manifest sizes (units) for the record cost")
    parser.add_argument("--check-up-to", type=int, default=10_000_000, help="largest size checked against the "
                                                                           "single-process reference")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/corpusslim-scale"))
    parser.add_argument("--project", type=float, default=0, help="documents to project the largest row to")
    parser.add_argument("--pairs-per-doc", type=float, default=0.5, help="the projection's duplicate rate")
    args = parser.parse_args()
    for n in [int(x) for x in args.pairs.split(",") if x]:
        row = linking_row(n, args.work_dir, n <= args.check_up_to)
        print(json.dumps(row), flush=True)
        merge([row], "pairs", "linking")
    for n in [int(x) for x in args.records.split(",") if x]:
        entry = next(iter(read_manifest(str(args.work_dir / "shards-6" / "out"))["sections"]["shards"].values()))
        row = record_row(n, args.work_dir, entry)
        print(json.dumps(row), flush=True)
        merge([row], "units", "records")
    for n in [int(x) for x in args.shards.split(",") if x]:
        row = shards_row(n, args.work_dir)
        print(json.dumps(row), flush=True)
        merge([row], "shards", "shards")
    if args.project:
        results = json.loads(RESULTS.read_text())
        results["projection"] = projection(results["linking"], args.project, args.pairs_per_doc)
        print(json.dumps(results["projection"], indent=1), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
