"""The sample job at 1, 2 and 4 threads per Dask worker: same output, and what threads cost.

    python bench/threads.py [--threads 1 2 4] [--workers 2] [--runs 3] [--cluster local|external]

Layouts alternate run by run (1 2 4 1 2 4 ...), so load from other processes falls on all of them alike. Every
run starts fresh worker processes (a new LocalCluster, or ``dask worker`` processes restarted), so each run loads
its models again: the lazy loads are where threads race. Per run: a digest of the kept/ and rejected/ files (SHA-256
over names and bytes), wall time (cluster start included), the CPU the tasks report (``stats.json`` totals), the
CPU the worker processes really used (psutil, since they started: imports and model loads included) and their peak
memory. ``--cluster external`` runs ``dask scheduler`` + ``--workers`` ``dask worker --nworkers 1 --nthreads T`` on
loopback instead of a LocalCluster. Every layout of ``--workers`` × ``--threads`` runs; the first layout's first run
is the reference digest unless ``--reference`` gives one.

Writes ``bench/results/threads.json`` and ``bench/results/threads.md`` (``--tag`` names other files, e.g. for the
race check on an external cluster: ``--threads 2 --runs 10 --cluster external --tag threads-external``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

from distributed import Client, LocalCluster

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def digest(out: Path) -> str:
    """SHA-256 (16 hex digits) of every kept/ and rejected/ file's name and bytes."""
    h = hashlib.sha256()
    for d in ("kept", "rejected"):
        for p in sorted((out / d).glob("*.parquet")):
            h.update(f"{d}/{p.name}".encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _worker_usage() -> tuple[float, float]:
    """(CPU seconds, peak resident MB) of this worker process since it started."""
    import psutil

    from corpusslim.runtime.measure import peak_rss_mb

    times = psutil.Process().cpu_times()
    return times.user + times.system, peak_rss_mb()


@contextmanager
def local_cluster(workers: int, threads: int):
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster:
        yield cluster.scheduler_address


@contextmanager
def external_cluster(root: Path, workers: int, threads: int):
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback; yields a function that restarts
    the workers and returns the scheduler address."""
    root.mkdir(parents=True)
    scheduler_file = root / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                               "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        while not scheduler_file.exists():
            time.sleep(0.2)
        for i in range(workers):
            home = root / f"worker-{i}"
            home.mkdir()
            procs.append(subprocess.Popen(
                [*dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1", "--nthreads",
                 str(threads), "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(home)],
                cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(workers, timeout=180)

            @contextmanager
            def fresh():
                client.restart()
                client.wait_for_workers(workers, timeout=180)
                yield client.scheduler.address

            yield fresh
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def one_run(config: Path, out: Path, address: str) -> dict:
    """Run the job on the cluster at ``address``; its digest, task CPU and the workers' process CPU."""
    from corpusslim.config import load_config
    from corpusslim.runtime.runner import run

    stats = run(load_config(config, overrides={"output": str(out)}), scheduler=address)
    with Client(address, timeout=60) as client:
        usage = client.run(_worker_usage).values()
        nthreads = sorted(client.nthreads().values())
    return {"digest": digest(out), "task_cpu_s": stats["totals"]["cpu_seconds"],
            "worker_cpu_s": round(sum(cpu for cpu, _ in usage), 2),
            "worker_peak_mb": round(sum(mb for _, mb in usage)), "nthreads": nthreads}


def measure(config: Path, work: Path, layouts: list[tuple[int, int]], runs: int, kind: str) -> dict[tuple, list]:
    """Results by (workers, threads per worker), the layouts alternating run by run."""
    results = {layout: [] for layout in layouts}
    with ExitStack() as stack:
        fresh = {(w, t): stack.enter_context(external_cluster(work / f"cluster-{w}x{t}", w, t)) if kind == "external"
                 else partial(local_cluster, w, t) for w, t in layouts}
        for i in range(runs):
            for w, t in layouts:
                out = work / f"out-{w}x{t}-{i}"
                start = time.perf_counter()
                with fresh[w, t]() as address:
                    result = one_run(config, out, address)
                result["wall_s"] = round(time.perf_counter() - start, 2)
                shutil.rmtree(out)
                print(f"{w} workers x {t} threads, run {i}: {result}", flush=True)
                results[w, t].append(result)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cluster", choices=("local", "external"), default="local")
    ap.add_argument("--reference", help="digest every run must give (default: the first layout's first run)")
    ap.add_argument("--tag", default="threads", help="name of the result files")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="corpusslim-threads-"))
    config = work / "sample.yaml"
    text = (REPO / "configs" / "sample.yaml").read_text().replace("input: ../sample_data",
                                                                   f"input: {REPO / 'sample_data'}")
    config.write_text(text)
    load = os.getloadavg()
    started = datetime.now().isoformat(timespec="seconds")
    layouts = [(w, t) for w in args.workers for t in args.threads]
    by_layout = measure(config, work, layouts, args.runs, args.cluster)
    reference = args.reference or by_layout[layouts[0]][0]["digest"]
    rows = []
    for (w, t), results in by_layout.items():
        rows.append({"workers": w, "threads": t, "runs": len(results),
                     "differ": sum(r["digest"] != reference for r in results),
                     "digests": sorted({r["digest"] for r in results}),
                     **{f"{k}_median": statistics.median(r[k] for r in results)
                        for k in ("wall_s", "task_cpu_s", "worker_cpu_s", "worker_peak_mb")}, "results": results})
    result = {"date": started,
              "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
              "load_average_at_start": load, "cluster": args.cluster,
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=REPO).stdout.strip(), "reference_digest": reference, "layouts": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(result, indent=1))
    md = "\n".join([
        f"# Threads per worker (`python bench/threads.py {' '.join(sys.argv[1:])}`)", "",
        f"{started} · {result['machine']} · commit {result['commit']} · load average at start {load[0]:.1f} · "
        f"sample job (every stage) · {args.cluster} cluster · fresh worker processes per run · reference digest "
        f"{reference}", "",
        "| workers × threads | runs | output differs from reference | wall s | task CPU s | worker process CPU s "
        "| workers' peak memory MB (sum) |", "|---|---|---|---|---|---|---|",
        *[f"| {r['workers']} × {r['threads']} | {r['runs']} | {r['differ']} | {r['wall_s_median']:.1f} "
          f"| {r['task_cpu_s_median']:.2f} | {r['worker_cpu_s_median']:.1f} | {r['worker_peak_mb_median']:,.0f} |"
          for r in rows],
        "", "Medians over the runs. Task CPU: the CPU seconds the tasks report (stats.json); worker process CPU: all "
        "the workers' CPU since they started (imports, model loads and Dask included).", "",
    ])
    (RESULTS / f"{args.tag}.md").write_text(md)
    print(md)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
