"""Dry-run projections against a real run, per stage, and the plan's projected vs measured CPU per kept token.

    python bench/dryrun_vs_run.py [--config configs/sample.yaml] [--sample 1500] [--seed 0]

Runs the config once for real (into a temporary directory), then ``stage NAME --dry-run`` for every stage and
``plan``; prints Markdown tables.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from corpusslim.config import load_config
from corpusslim.preview.dryrun import dry_run
from corpusslim.preview.plan import plan
from corpusslim.runtime.runner import run

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs/sample.yaml"))
    ap.add_argument("--sample", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        config = load_config(args.config, {"output": out})
        start = time.perf_counter()
        stats = run(config)
        print(f"real run: {stats['totals']['docs_in']:,} documents, {time.perf_counter() - start:.1f} s wall\n")
    print("| stage | reason | real removed | dry run projected (95% interval) | inside | real stage CPU s | "
          "projected stage CPU s | dry run wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for stage in stats["stages"][1:]:
        report = dry_run(config, stage["stage"], args.sample, args.seed)
        projected = {r["reason"]: r for r in report["removed"]}
        cpu = report["cpu"]["stage_per_doc"] * report["projection"]["docs_reaching_stage"]  # without model loading
        reasons = sorted(set(stage["removed"]) | set(projected)) or ["(none)"]
        for i, reason in enumerate(reasons):
            real = stage["removed"].get(reason, {}).get("docs", 0)
            p = projected.get(reason, {"projected_docs": 0, "projected_docs_low": 0,
                                       "projected_docs_high": report["unseen_reasons"]["projected_docs_high"]})
            inside = "yes" if p["projected_docs_low"] <= real <= p["projected_docs_high"] else "no"
            tail = (f"{stage['cpu_seconds']:.2f} | {cpu:.2f} | {report['dry_run_wall_seconds']:.1f}" if i == 0
                    else " | | ")
            print(f"| {stage['stage'] if i == 0 else ''} | {reason} | {real:,} | {p['projected_docs']:,} "
                  f"({p['projected_docs_low']:,}–{p['projected_docs_high']:,}) | {inside} | {tail} |")
    result = plan(config, args.sample, args.seed)
    print("\n| order | stages | projected CPU µs / kept token | measured CPU µs / kept token | kept docs |")
    print("|---|---|---|---|---|")
    for name in ("current", "proposed"):
        s = result[name]
        print(f"| {name} | {' → '.join(s['order'])} | {s['projected_cpu_per_kept_token'] * 1e6:.3f} | "
              f"{s['measured_cpu_per_kept_token'] * 1e6:.3f} | {s['kept_docs']:,} |")
    print(f"\nkept sets identical: {result['kept_same']}; notes: {' / '.join(result['notes'])}")


if __name__ == "__main__":
    main()
