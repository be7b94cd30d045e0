"""Per quality rule: what it removes, what it alone removes, and what it would fail in total.

    python bench/quality_rules.py                         # runs configs/sample.yaml into a fresh temporary dir
    python bench/quality_rules.py --run-dir runs/sample   # an existing finished run of --config

Reads ``kept/`` and ``rejected/`` of a finished run. Only documents that reached the quality stage count: every
kept document and every rejected one with ``reject_stage == "quality"``. The ``quality`` struct column holds every
statistic of each document, so nothing is recomputed: ``corpusslim.filters.quality.all_failures`` on the stored statistics
with the run's quality config (the ``quality`` stage of ``--config``) gives every rule a document fails.

Per rule (reason code, in rule order), documents and o200k tokens (``n_tokens``):

* **removed**: the rule is the document's ``reject_reason`` (the first failing rule);
* **alone**: of those, the documents no other rule would have removed (``all_failures`` is just this rule);
* **fails in total**: every document the rule fails, first or not (``all_failures``).

A consistency check counts documents whose stored ``reject_reason`` differs from the first of ``all_failures`` (a
kept document must fail nothing); it must be 0.

Results: ``bench/results/quality_rules.json`` and ``quality_rules.md`` (``--out-dir``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpusslim.config import load_config  # noqa: E402
from corpusslim.filters.quality import RULES, all_failures, is_chinese  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "sample.yaml"
DEFAULT_OUT = REPO / "bench" / "results"
COLUMNS = ["id", "lang", "n_tokens", "quality", "reject_stage", "reject_reason"]


def run_pipeline(config: Path, output: str) -> None:
    exe = shutil.which("corpusslim") or "corpusslim"
    cmd = [exe, "run", str(config), "--output", output]
    print("running:", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def read_outputs(run_dir: str) -> pl.DataFrame:
    """Documents that reached the quality stage, with their stored statistics and reject reason."""
    frames = []
    for sub in ("kept", "rejected"):
        for path in sorted(glob.glob(os.path.join(run_dir, sub, "*.parquet"))):
            df = pl.read_parquet(path)
            if sub == "kept":
                df = df.with_columns(reject_stage=pl.lit(None, dtype=pl.String),
                                     reject_reason=pl.lit(None, dtype=pl.String))
            frames.append(df.select(COLUMNS))
    if not frames:
        raise SystemExit(f"{run_dir}: no kept/ or rejected/ Parquet files")
    df = pl.concat(frames, how="vertical_relaxed")
    return df.filter(pl.col("reject_stage").is_null() | (pl.col("reject_stage") == "quality"))


def analyse(df: pl.DataFrame, cfg) -> dict:
    codes = list(dict.fromkeys(r.code for r in RULES))
    family = {r.code: ("zh" if r.ruleset == "chinese" else "non-zh") for r in RULES}
    ruleset = {r.code: r.ruleset for r in RULES}
    removed, alone, total = Counter(), Counter(), Counter()
    removed_t, alone_t, total_t = Counter(), Counter(), Counter()
    reached, reached_t = Counter(), Counter()
    mismatches, n_multi = [], 0
    for doc_id, lang, tokens, stats, reason in zip(df["id"].to_list(), df["lang"].to_list(),
                                                   df["n_tokens"].to_list(), df["quality"].to_list(),
                                                   df["reject_reason"].to_list()):
        fam = "zh" if is_chinese(lang) else "non-zh"
        reached[fam] += 1
        reached_t[fam] += tokens
        fails = all_failures(stats, lang, cfg)
        if (fails[0] if fails else None) != reason:
            mismatches.append({"id": doc_id, "reject_reason": reason, "all_failures": fails})
        for code in fails:
            total[code] += 1
            total_t[code] += tokens
        if reason is not None:
            removed[reason] += 1
            removed_t[reason] += tokens
            if len(fails) == 1:
                alone[reason] += 1
                alone_t[reason] += tokens
            else:
                n_multi += 1
    enabled = {r.code: getattr(cfg, r.ruleset).enabled for r in RULES}
    rules = [{"rule": c, "ruleset": ruleset[c], "family": family[c], "enabled": enabled[c],
              "removed_docs": removed[c], "removed_tokens": removed_t[c],
              "alone_docs": alone[c], "alone_tokens": alone_t[c],
              "fails_docs": total[c], "fails_tokens": total_t[c],
              "fails_pct_of_family": round(100 * total[c] / reached[family[c]], 2) if reached[family[c]] else None}
             for c in codes]
    return {
        "reached": {"docs": dict(reached), "tokens": dict(reached_t),
                    "total_docs": sum(reached.values()), "total_tokens": sum(reached_t.values())},
        "removed": {"docs": sum(removed.values()), "tokens": sum(removed_t.values()),
                    "alone_docs": sum(alone.values()), "alone_tokens": sum(alone_t.values()),
                    "by_more_than_one_rule": n_multi},
        "rules": rules,
        "consistency_mismatches": len(mismatches),
        "mismatch_examples": mismatches[:10],
    }


def markdown(res: dict) -> str:
    r, rem = res["reached"], res["removed"]
    L = [f"# Quality rules on {res['data']} ({res['date']})", "",
         f"Run: `{res['command']}`; config `{res['config']}`. Documents reaching the quality stage: "
         f"{r['total_docs']:,} ({r['docs'].get('non-zh', 0):,} non-zh, {r['docs'].get('zh', 0):,} zh), "
         f"{r['total_tokens']:,} tokens. Removed by quality: {rem['docs']:,} documents, {rem['tokens']:,} tokens; "
         f"{rem['alone_docs']:,} documents ({rem['alone_tokens']:,} tokens) by one rule alone, "
         f"{rem['by_more_than_one_rule']:,} failing more than one rule.", "",
         "*removed* = first failing rule (reject_reason); *alone* = of those, no other rule would have removed "
         "them; *fails in total* = every document the rule fails (all_failures), % of the documents of its "
         "language family reaching the stage. Tokens: o200k_base.", "",
         "| rule | family | removed docs | removed tokens | alone docs | alone tokens | fails in total (docs) "
         "| fails in total (tokens) | fails % of family |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for x in res["rules"]:
        name = x["rule"] if x["enabled"] else f"{x['rule']} (disabled)"
        pct = "" if x["fails_pct_of_family"] is None else f"{x['fails_pct_of_family']:.1f}%"
        L.append(f"| {name} | {x['family']} | {x['removed_docs']:,} | {x['removed_tokens']:,} | {x['alone_docs']:,} "
                 f"| {x['alone_tokens']:,} | {x['fails_docs']:,} | {x['fails_tokens']:,} | {pct} |")
    L.append(f"| **total** | | **{rem['docs']:,}** | **{rem['tokens']:,}** | **{rem['alone_docs']:,}** | "
             f"**{rem['alone_tokens']:,}** | | | |")
    L += ["", f"Consistency (stored reject_reason = first of all_failures, kept documents fail nothing): "
              f"{res['consistency_mismatches']} mismatches."]
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the run's config (its quality stage)")
    ap.add_argument("--run-dir", help="a finished run of --config (default: run it into a fresh temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    run_cfg = load_config(args.config)
    quality = [s for s in run_cfg.stages if s.kind == "quality"]
    if not quality:
        raise SystemExit(f"{args.config}: no quality stage")
    cfg = quality[0]

    tmp = None
    if args.run_dir:
        run_dir = args.run_dir
        command = f"corpusslim run {os.path.relpath(args.config, REPO)} (existing run {run_dir})"
        manifest = json.loads(Path(run_dir, "_manifest.json").read_text())
        if manifest.get("config_hash") != run_cfg.config_hash():
            raise SystemExit(f"{run_dir} was run with another config (hash {manifest.get('config_hash')}, "
                             f"{args.config} has {run_cfg.config_hash()})")
    else:
        tmp = tempfile.mkdtemp(prefix="corpusslim-quality-")
        run_dir = os.path.join(tmp, "run")
        run_pipeline(args.config, run_dir)
        command = f"corpusslim run {os.path.relpath(args.config, REPO)} --output {run_dir}"
    try:
        res = analyse(read_outputs(run_dir), cfg)
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    res.update({"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
                "config": os.path.relpath(args.config, REPO),
                "data": os.path.relpath(run_cfg.input, REPO) if not run_cfg.input.startswith("..") else run_cfg.input})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "quality_rules.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = markdown(res)
    (args.out_dir / "quality_rules.md").write_text(md)
    print(md)
    if res["consistency_mismatches"]:
        print(f"WARNING: {res['consistency_mismatches']} documents whose reject_reason is not the first of "
              f"all_failures; examples: {res['mismatch_examples'][:3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
