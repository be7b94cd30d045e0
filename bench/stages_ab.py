"""Stage-by-stage CPU of one job before and after a change: two commits run alternately on the same input.

    python bench/stages_ab.py                                   # configs/sample.yaml, 49dfd0f against HEAD, 3 runs
    python bench/stages_ab.py --config CONFIG --before REV --after REV --runs 5 [--no-figures] [--name NAME]

Each commit runs from a ``git archive`` snapshot (``bench/datatrove_compare.py``'s ``snapshot``), with this Python,
2 workers, alternately (before, after, before, ...). Per run: the process tree's CPU seconds (start-up, report
and everything included) and each stage's CPU seconds from ``stats.json``; reported as medians, with the digest of
kept/ and rejected/ (``bench/threads.py``), which must be equal when a change only makes things faster.
Results: ``bench/results/NAME.json`` and ``NAME.md`` (default NAME: stages_ab). ``--no-figures`` runs both sides
without drawing the report's figures, to see the per-document work alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.datatrove_compare import become_subreaper, fresh_dir, measured, snapshot  # noqa: E402
from bench.threads import digest  # noqa: E402


def run(src: Path, config: Path, out: Path, log: Path, workers: int, figures: bool = True) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(config), "--workers", str(workers), "--output", str(out)]
    cmd += [] if figures else ["--no-figures"]
    res = measured(cmd, log, env, retries=1, reset=fresh_dir(out, create=False))
    stats = json.loads((out / "stats.json").read_text())
    return {"cpu_s": round(res["cpu_seconds"], 3), "wall_s": round(res["wall_seconds"], 2),
            "stages": {s["stage"]: s["cpu_seconds"] for s in stats["stages"]}, "digest": digest(out)}


def median(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "sample.yaml"))
    ap.add_argument("--before", default="49dfd0f")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default="/tmp/corpusslim-bench/stages_ab")
    ap.add_argument("--out-dir", default=str(REPO / "bench" / "results"))
    ap.add_argument("--name", default="stages_ab", help="results file name, without extension")
    ap.add_argument("--no-figures", dest="figures", action="store_false", help="run both sides with --no-figures")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    become_subreaper()
    sides = {name: snapshot(work, rev) for name, rev in (("before", args.before), ("after", args.after))}
    runs = {name: [] for name in sides}
    for i in range(args.runs):
        for name, (src, _) in sides.items():
            runs[name].append(run(src, Path(args.config), work / f"out-{name}", work / f"{name}-{i}.log", args.workers,
                                  args.figures))
            print(f"run {i + 1} {name}: {runs[name][-1]['cpu_s']} CPU s", file=sys.stderr, flush=True)
    stages = list(dict.fromkeys(s for r in runs["before"] + runs["after"] for s in r["stages"]))
    table = {s: {name: median([r["stages"].get(s, 0.0) for r in runs[name]]) for name in sides} for s in stages}
    table["whole run (process tree)"] = {name: median([r["cpu_s"] for r in runs[name]]) for name in sides}
    digests = {r["digest"] for v in runs.values() for r in v}
    res = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "config": args.config,
           "commits": {name: commit for name, (_, commit) in sides.items()}, "runs": runs, "median_cpu_s": table,
           "load_at_end": os.getloadavg(), "identical_outputs": len(digests) == 1, "figures": args.figures}
    out = Path(args.out_dir)
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = [f"# Stage CPU before and after ({res['date']})", "",
          f"Command: `python bench/stages_ab.py --config {args.config} --before {args.before} --after {args.after} "
          f"--runs {args.runs}{'' if args.figures else ' --no-figures'} --name {args.name}`; "
          f"before {res['commits']['before'][:7]}, after {res['commits']['after'][:7]}; "
          f"CPU seconds, medians of {args.runs} alternated runs; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in res['load_at_end'])}; outputs identical: "
          f"{'yes' if res['identical_outputs'] else 'NO'}.", "",
          "| stage | before CPU s | after CPU s | after ÷ before |", "|---|---:|---:|---:|"]
    md += [f"| {s} | {v['before']} | {v['after']} | {v['after'] / v['before']:.2f} |" if v["before"] else
           f"| {s} | {v['before']} | {v['after']} | n/a |" for s, v in table.items()]
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
