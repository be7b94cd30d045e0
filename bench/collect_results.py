"""Gather the stored benchmark results into one summary: bench/RESULTS.json and bench/RESULTS.md.

    python bench/collect_results.py
    python bench/collect_results.py --results-dir bench/results --out-dir bench

Reads every ``*.json`` (and ``*.md``) under ``--results-dir`` (default ``bench/results``); nothing is rerun. Each
known results file (datatrove, stages, dedup, faults, marginal_curve, quality_rules, and cluster once
``bench/cluster_overhead.py`` has written it) has a small extraction function that picks its headline numbers,
tolerant of missing keys ("n/a"); any other file (or a Markdown-only result) is listed with its date, commit and
command where they can be found.
A file that cannot be parsed is listed as such instead of stopping the script.

Writes ``RESULTS.json`` ({"generated", "machine", "results": {name: {headline numbers, "date", "commit",
"source", "command"}}}) and ``RESULTS.md`` (machine, then one section per benchmark: a compact table, a link to
the full table and the command that regenerates it) into ``--out-dir`` (default ``bench``), and prints the
Markdown. The machine section describes the machine this script runs on; the figures are those recorded in the
results files (each file's own header says where and when it was measured).
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PACKAGES = ["polars", "pyarrow", "dask", "distributed", "numpy", "fasttext", "jieba", "datasketch", "bpe-openai"]
# results name -> the bench script that writes it (others are found by name or by their docstring)
SCRIPTS = {"datatrove": "datatrove_compare.py", "startup": "startup.py", "stages": "stage_throughput.py",
           "stages-20k": "stage_throughput.py", "stages-shared-8k": "stage_throughput.py",
           "dedup": "dedup_bench.py",
           "faults": "faults.py", "marginal_curve": "marginal_curve.py", "quality_rules": "quality_rules.py",
           "dryrun_vs_run": "dryrun_vs_run.py"}
NA = "n/a"


# ==============================================================================================================
# Helpers: safe access and formatting
# ==============================================================================================================

def get(obj, *path, default=None):
    """obj[path[0]][path[1]]..., or ``default`` when any step is missing or of the wrong type."""
    for key in path:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return default
    return obj


def num(v):
    """v as a number, or None (bools and strings are not numbers here)."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v, spec: str = "") -> str:
    """One table cell. spec: int, ratio (1.05), x (4.51×), pct (fraction -> 99.36 %), pct1, f1/f2/f3/f4, g."""
    if v is None:
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v or NA
    if num(v) is None:
        return NA
    if spec == "int":
        return f"{round(v):,}"
    if spec == "x":
        return f"{v:.2f}×"
    if spec == "ratio":
        return f"{v:.2f}"
    if spec == "pct":
        return f"{v * 100:.2f} %"
    if spec == "pct1":
        return f"{v * 100:.1f} %"
    if spec == "spct":  # signed percentage of a relative error
        return f"{v * 100:+.2f} %"
    if spec in ("f1", "f2", "f3", "f4"):
        return f"{v:,.{spec[1]}f}"
    if spec == "g":
        return f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else f"{v:,.4g}"


def cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(headers, rows, align=None) -> list[str]:
    """A Markdown table; ``align`` is a string of l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def band(lo, hi, spec="g") -> str:
    return f"{fmt(lo, spec)} – {fmt(hi, spec)}" if num(lo) is not None and num(hi) is not None else NA


def short_commit(c):
    return c[:12] if isinstance(c, str) and re.fullmatch(r"[0-9a-f]{13,40}", c) else c


# ==============================================================================================================
# One extraction (raw numbers, JSON-able) and one rendering (Markdown lines) per results file
# ==============================================================================================================

DT_CONFIGS = {"default": "as shipped", "words": "our word definitions", "equal": "our words + our rules"}


def extract_datatrove(d: dict) -> dict:
    corpora = {}
    for corpus, c in (get(d, "corpora", default={}) or {}).items():
        corpora[corpus] = {"sizes": get(c, "sizes"), "multi_line_share": get(c, "meta", "multi_line_share"),
                           "configs": {}}
        for name, v in (get(c, "variants", default={}) or {}).items():
            corpora[corpus]["configs"][name] = {k: get(v, k) for k in (
                "fixed_cpu_s", "marginal_ms_per_doc", "marginal_ratio", "agreement", "agreement_min",
                "runs_per_size")}
    return {"corpora": corpora, "versions": {"datatrove": get(d, "versions", "datatrove", "datatrove")}}


def render_datatrove(h: dict) -> list[str]:
    rows = []
    for corpus, c in h["corpora"].items():
        for name, v in c["configs"].items():
            fixed, marg = v["fixed_cpu_s"] or {}, v["marginal_ms_per_doc"] or {}
            rows.append([corpus, DT_CONFIGS.get(name, name),
                         f"{fmt(get(fixed, 'ours'), 'f2')} / {fmt(get(fixed, 'datatrove'), 'f2')}",
                         f"{fmt(get(marg, 'ours'), 'f3')} / {fmt(get(marg, 'datatrove'), 'f3')}",
                         fmt(v["marginal_ratio"], "x"), fmt(v["agreement"], "f4"),
                         ", ".join(fmt(n, "int") for n in c["sizes"] or []), fmt(v["runs_per_size"], "int")])
    out = [f"datatrove {fmt(h['versions']['datatrove'])} against ours, same job, 2 workers, in three datatrove "
           "configurations; fixed CPU and marginal CPU per document fitted per side over the sizes (CPU of the "
           "whole process tree); every ratio holds only for its corpus and configuration.", ""]
    return out + table(["corpus", "datatrove configuration", "fixed CPU s ours / dt", "marginal ms/doc ours / dt",
                        "marginal dt ÷ ours", "kept-set Jaccard", "documents", "runs per size"], rows,
                 align="llrrrrlr")


def extract_startup(d: dict) -> dict:
    r = get(d, "results", default={}) or {}
    return {"cluster": get(r, "cluster"), "cluster_check": get(r, "cluster + check"),
            "run": get(r, "run", "process_tree_cpu_seconds"), "run_docs": get(r, "run", "docs"),
            "run_no_figures": get(r, "run", "no_figures_process_tree_cpu_seconds"), "loads": get(r, "load")}


def render_startup(h: dict) -> list[str]:
    rows = [["Dask LocalCluster, 2 workers (start, one task, close)", fmt(h["cluster"], "f2")],
            ["the same + worker check (imports)", fmt(h["cluster_check"], "f2")],
            [f"whole run of the sample config on {fmt(h['run_docs'], 'int')} documents", fmt(h["run"], "f2")],
            ["the same with --no-figures (report without its figures)", fmt(h["run_no_figures"], "f2")]]
    rows += [[f"load {k}", fmt(v, "f2")] for k, v in (h["loads"] or {}).items()]
    return table(["start-up item (process-tree CPU)", "CPU s"], rows, align="lr")


def extract_stages(d: dict) -> dict:
    stages = [{"stage": get(s, "stage"), "docs": get(s, "stage_docs"), "stage_docs_per_s": get(s, "stage_docs_per_s"),
               "bare": get(s, "bare"), "bare_docs_per_s": get(s, "bare_docs_per_s"), "ratio": get(s, "ratio"),
               "ratio_vs_all_kernels": get(s, "ratio_vs_all_kernels"), "all_kernels": get(s, "all_kernels")}
              for s in get(d, "stages", default=[]) or []]
    e2e = get(d, "e2e", default={}) or {}
    return {"runs": get(d, "runs"), "stages": stages,
            "e2e": {"runs": len(get(e2e, "runs", default=[]) or []) or None, "docs": get(e2e, "docs_in"),
                    "docs_per_s": get(e2e, "median", "docs_per_s"),
                    "cpu_ms_per_doc": cpu * 1e3 if (cpu := num(get(e2e, "median", "cpu_s_per_doc"))) else None,
                    "ratio_cpu_vs_bare": get(e2e, "ratio_cpu_vs_bare"),
                    "ratio_cpu_without_startup_vs_bare": get(e2e, "ratio_cpu_without_startup_vs_bare"),
                    "ratio_tree_vs_bare": get(e2e, "ratio_tree_vs_bare")}}


def render_stages(h: dict) -> list[str]:
    def mark(r):
        return fmt(r, "ratio") + (" ✗" if num(r) is not None and r > 1.25 else "")
    rows = [[s["stage"], fmt(s["docs"], "int"), fmt(s["stage_docs_per_s"], "int"), fmt(s["bare_docs_per_s"], "int"),
             mark(s["ratio"]),
             fmt(s["ratio_vs_all_kernels"], "ratio") if s["ratio_vs_all_kernels"] is not None else "–"]
            for s in h["stages"]]
    e = h["e2e"]
    out = [f"One core, CPU seconds, medians of {fmt(h['runs'], 'int')} alternated runs; ratio = pipeline stage ÷ the "
           "bare library calls it wraps on the same texts (target ≤ 1.25, ✗ above). The last column divides by "
           "every kernel the stage runs (e.g. lid: fastText + script check + langdetect).", ""]
    out += table(["stage", "docs", "stage docs/s", "bare docs/s", "pipeline ÷ bare", "÷ all its kernels"], rows)
    out += ["", f"End to end (`corpusslim run`, medians of {fmt(e['runs'], 'int')} runs, {fmt(e['docs'], 'int')} "
            "documents); ratios = CPU per document ÷ the sum of the bare rows' CPU per document:", ""]
    out += table(["docs/s", "stage CPU ms/doc", "pipeline ÷ bare sum", "without model loading ÷ bare sum",
                  "process tree ÷ bare sum"],
                 [[fmt(e["docs_per_s"], "int"), fmt(e["cpu_ms_per_doc"], "f3"), fmt(e["ratio_cpu_vs_bare"], "ratio"),
                   fmt(e["ratio_cpu_without_startup_vs_bare"], "ratio"), fmt(e["ratio_tree_vs_bare"], "ratio")]],
                 align="rrrrr")
    return out


def extract_stages_subdir(d: dict) -> dict:
    """stage_throughput.py run on another corpus (``--out-dir bench/results/<name>``): the same headline numbers
    as ``stages``, plus the data it ran on."""
    spec = get(d, "data_spec", default={}) or {}
    sources = get(spec, "source", default=[]) or []
    data = get(d, "data")
    if isinstance(sources, list) and len(sources) > 1 and num(get(spec, "docs")) is not None:
        folders = sorted({os.path.dirname(s) for s in sources})
        data = (f"{get(spec, 'docs'):,} docs from {len(sources)} files in {', '.join(folders)} (zh share "
                f"{get(spec, 'zh_share')}, chars {get(spec, 'chars')}, batches of {get(spec, 'batch_docs')})")
    return {"data": data, "data_note": get(d, "note"), **extract_stages(d)}


def render_stages_subdir(h: dict) -> list[str]:
    out = [f"Data: {fmt(h['data'])}.", ""]
    if h.get("data_note"):
        out += [f"Note: {h['data_note']}", ""]
    return out + render_stages(h)


def extract_dedup(d: dict) -> dict:
    acc = get(d, "accuracy", default={}) or {}
    default = get(acc, "default")
    cfg = get(acc, "configs", default, default={}) or {}
    accuracy = {"config": default, "threshold": get(acc, "threshold"), "docs": get(acc, "truth", "docs_reaching_dedup"),
                "true_pairs": get(cfg, "true_pairs"), "found": get(cfg, "found"), "recall": get(cfg, "recall"),
                "reported_pairs": get(cfg, "reported_pairs"), "false_positives": get(cfg, "false_positives"),
                "precision": get(cfg, "precision"), "meets_targets": get(acc, "default_meets_targets"),
                "code": get(acc, "code")}
    bbc_cfg = get(d, "bbc", "configs", default) or next(iter((get(d, "bbc", "configs") or {}).values()), {})
    bbc = {"documents": get(d, "bbc", "documents"), "code": get(d, "bbc", "code"),
           "pairs": {k: {"pairs": get(bbc_cfg, "pairs", k, "pairs"), "found": get(bbc_cfg, "pairs", k, "found")}
                     for k in ("all", "all, J >= 0.8", "exact", "near")},
           "brute_force_recall": get(bbc_cfg, "all_pairs_eval", "recall"),
           "brute_force_precision": get(bbc_cfg, "all_pairs_eval", "precision")}
    speed = {"documents": get(d, "speed", "documents"), "datasketch": get(d, "speed", "datasketch"),
             "equal_to_datasketch": get(d, "speed", "equal_to_datasketch"), "code": get(d, "speed", "code"),
             "rows": [{"method": get(r, "method"), "docs_per_s": get(r, "docs_per_s"), "vs_update": get(r, "vs_update")}
                      for r in get(d, "speed", "rows", default=[]) or []]}
    memory = {"stages": get(d, "memory", "stages"), "workers": get(d, "memory", "workers"),
              "code": get(d, "memory", "code"),
              "rows": [{k: get(r, k) for k in ("docs", "shards", "runs", "wall_seconds_median", "docs_per_s",
                                               "driver_peak_rss_mb", "worker_peak_rss_mb")}
                       for r in get(d, "memory", "rows", default=[]) or []]}
    return {"accuracy": accuracy, "bbc": bbc, "speed": speed, "memory": memory}


def render_dedup(h: dict) -> list[str]:
    a, b, s, m = h["accuracy"], h["bbc"], h["speed"], h["memory"]
    out = [f"**Accuracy against brute force** · code {fmt(a['code'])} · config `{fmt(a['config'])}`; "
           f"true pair = exact shingle Jaccard ≥ {fmt(a['threshold'])}; "
           f"{fmt(a['docs'], 'int')} documents reach dedup:",
           ""]
    out += table(["true pairs", "found", "recall", "reported pairs", "false positives", "precision", "targets met"],
                 [[fmt(a["true_pairs"], "int"), fmt(a["found"], "int"), fmt(a["recall"], "pct"),
                   fmt(a["reported_pairs"], "int"), fmt(a["false_positives"], "int"), fmt(a["precision"], "pct"),
                   fmt(a["meets_targets"])]], align="rrrrrrr")
    rows = []
    for k, p in b["pairs"].items():
        share = p["found"] / p["pairs"] if num(p["found"]) is not None and num(p["pairs"]) else None
        rows.append([k, fmt(p["pairs"], "int"), fmt(p["found"], "int"), fmt(share, "pct")])
    out += ["", f"**BBC duplicate pairs** · code {fmt(b['code'])} · {fmt(b['documents'], 'int')} en_bbc_news "
            f"documents, default config; against brute force on the same run: recall "
            f"{fmt(b['brute_force_recall'], 'pct')}, precision {fmt(b['brute_force_precision'], 'pct')}:", ""]
    out += table(["pairs", "listed", "found", "share"], rows)
    rows = [["datasketch" if "datasketch" in (r["method"] or "") else "ours", r["method"] or NA,
             fmt(r["docs_per_s"], "int"), fmt(r["vs_update"], "x")] for r in s["rows"]]
    eq = s["equal_to_datasketch"]
    eq_txt = ", ".join(f"{k} {fmt(v)}" for k, v in eq.items()) if isinstance(eq, dict) else fmt(eq)
    out += ["", f"**Speed** · code {fmt(s['code'])} · {fmt(s['documents'], 'int')} documents, one process, CPU "
            f"seconds; datasketch {fmt(s['datasketch'])}; signatures equal to datasketch's: {eq_txt}:", ""]
    out += table(["side", "method", "docs/s per core", "vs datasketch update"], rows, align="llrr")
    if m["rows"]:
        rows = [[fmt(r["docs"], "int"), fmt(r["shards"], "int"), fmt(r["runs"], "int"),
                 fmt(r["wall_seconds_median"], "f1"), fmt(r["docs_per_s"], "int"), fmt(r["driver_peak_rss_mb"], "f1"),
                 fmt(r["worker_peak_rss_mb"], "f1")] for r in m["rows"]]
        out += ["", f"**Memory scaling** · code {fmt(m['code'])} · stages {fmt(m['stages'])}, "
                f"{fmt(m['workers'], 'int')} workers; peaks = stats.json ru_maxrss, MiB:", ""]
        out += table(["docs", "shards", "runs", "wall s (median)", "docs/s", "driver peak MB", "worker peak MB"], rows,
                     align="rrrrrrr")
    else:
        out += ["", "**Memory scaling**: n/a (no memory section in the results)."]
    return out


def extract_faults(d: dict) -> dict:
    cases = get(d, "cases", default=[]) or []
    sections: dict[str, list[int]] = {}
    for c in cases:
        run_ok = sections.setdefault(str(get(c, "section", default="?")), [0, 0])
        run_ok[0] += 1
        run_ok[1] += get(c, "ok") is True
    identical = [get(c, "identical") for c in cases if get(c, "identical") is not None]
    return {"cases": len(cases), "passed": sum(get(c, "ok") is True for c in cases),
            "failures": len(get(d, "failures", default=[]) or []),
            "documents_lost": sum(num(get(c, "lost")) or 0 for c in cases),
            "documents_duplicated": sum(num(get(c, "duplicated")) or 0 for c in cases),
            "output_identical": sum(x is True for x in identical), "output_compared": len(identical),
            "reference_docs": get(d, "reference", "docs_in"), "wall_seconds": get(d, "environment", "wall_seconds"),
            "by_section": {k: {"cases": v[0], "passed": v[1]} for k, v in sections.items()},
            "kill_phases": get(d, "kill_phases")}


def render_faults(h: dict) -> list[str]:
    out = [f"Each case runs `python -m corpusslim.cli run` "
           f"({fmt(h['reference_docs'], 'int')} documents of sample_data, "
           f"2 workers) under one fault, then reruns it; whole bench {fmt(h['wall_seconds'], 'int')} s.", ""]
    out += table(["cases run", "passed", "documents lost", "documents duplicated",
                  "output byte-identical to reference"],
                 [[fmt(h["cases"], "int"), fmt(h["passed"], "int"), fmt(h["documents_lost"], "int"),
                   fmt(h["documents_duplicated"], "int"),
                   f"{fmt(h['output_identical'], 'int')} of {fmt(h['output_compared'], 'int')} compared"]],
                 align="rrrrr")
    out += [""] + table(["section", "cases", "passed"],
                        [[k, fmt(v["cases"], "int"), fmt(v["passed"], "int")] for k, v in h["by_section"].items()])
    return out


def extract_marginal_curve(d: dict) -> dict:
    corpora = {}
    for c in get(d, "corpora", default=[]) or []:
        curve = get(c, "report", "curve", default={}) or {}
        model = get(curve, "model")
        end = get(c, "extrapolation", "end", default={}) or {}
        batches = get(c, "batches", default=[]) or []
        corpora[str(get(c, "name", default="?"))] = {
            "model": model, "holdout_error": get(curve, "holdout_error", model) if model else None,
            "gamma": get(curve, "gamma"), "marginal_yield": get(curve, "marginal_yield"),
            "marginal_yield_band": get(curve, "marginal_yield_band"),
            "stop_batches_more": get(c, "report", "stop", "batches_more"),
            "observed_yield_last3": get(c, "prefixes", -1, "observed_yield_last3"),
            "copies_kept": sum(num(get(b, "copies_kept")) or 0 for b in batches) if batches else None,
            "copies": sum(num(get(b, "copies")) or 0 for b in batches) if batches else None,
            "extrapolation": {
                "model": get(c, "extrapolation", "model"), "gamma": get(c, "extrapolation", "gamma"),
                "train_batches": get(c, "extrapolation", "train_batches"),
                "predicted_batches": get(c, "extrapolation", "predicted_batches"),
                "err_forecast": get(end, "err_forecast"), "err_at_actual_R": get(end, "err_at_actual_R"),
                "mean_abs_err_forecast": get(end, "mean_abs_err_forecast"),
                "second_half_err_forecast": get(end, "second_half_err_forecast"),
                "band_coverage": get(end, "band_coverage")}}
    return {"batches": get(d, "meta", "batches"), "docs_per_batch": get(d, "meta", "docs_per_batch"),
            "corpora": corpora}


def render_marginal_curve(h: dict) -> list[str]:
    names = list(h["corpora"])
    if not names:
        return ["n/a (no corpora in the results)."]
    cs = [h["corpora"][n] for n in names]
    e = [c["extrapolation"] for c in cs]

    def row(label, values):
        return [label] + list(values)
    rows = [
        row("model chosen on all batches (hold-out error)",
            (f"{fmt(c['model'])} ({fmt(c['holdout_error'], 'pct1')})" for c in cs)),
        row("γ (power-law exponent)", (fmt(c["gamma"], "f4") for c in cs)),
        row("dU/dR at the last batch (90 % band)",
            (f"{fmt(c['marginal_yield'], 'f3')} "
             f"({band(get(c, 'marginal_yield_band', 0), get(c, 'marginal_yield_band', 1), 'f3')})"
             for c in cs)),
        row("observed yield, last 3 batches", (fmt(c["observed_yield_last3"], "f3") for c in cs)),
        row("more batches worth processing (point fit)", (fmt(c["stop_batches_more"], "int") for c in cs)),
        row("planted copies missed by dedup", (f"{fmt(c['copies_kept'], 'int')} of {fmt(c['copies'], 'int')}"
                                               for c in cs)),
        row("extrapolation: model fitted on the first half (γ)",
            (f"{fmt(x['model'])} ({fmt(x['gamma'], 'f4')})" for x in e)),
        row("cumulative U error at the last batch: forecast / at actual R",
            (f"{fmt(x['err_forecast'], 'spct')} / {fmt(x['err_at_actual_R'], 'spct')}" for x in e)),
        row("mean |error| of the forecast over the second half", (fmt(x["mean_abs_err_forecast"], "pct") for x in e)),
        row("second half's unique tokens, forecast error", (fmt(x["second_half_err_forecast"], "spct") for x in e)),
        row("batches inside the 90 % band", (fmt(x["band_coverage"], "pct1") for x in e)),
    ]
    out = [f"{fmt(h['batches'], 'int')} batches × {fmt(h['docs_per_batch'], 'int')} documents per corpus; U = unique "
           "(kept) tokens, R = raw tokens; the extrapolation fits the first half and predicts the second.", ""]
    return out + table(["figure"] + names, rows, align="l" + "r" * len(names))


def extract_quality_rules(d: dict) -> dict:
    rules = sorted((r for r in get(d, "rules", default=[]) or [] if num(get(r, "removed_docs"))),
                   key=lambda r: -r["removed_docs"])
    return {"reached_docs": get(d, "reached", "total_docs"), "reached_tokens": get(d, "reached", "total_tokens"),
            "reached_docs_by_family": get(d, "reached", "docs"),
            "removed_docs": get(d, "removed", "docs"), "removed_tokens": get(d, "removed", "tokens"),
            "removed_by_one_rule_alone": get(d, "removed", "alone_docs"),
            "removed_failing_several_rules": get(d, "removed", "by_more_than_one_rule"),
            "consistency_mismatches": get(d, "consistency_mismatches"), "config": get(d, "config"),
            "top_rules": [{"rule": get(r, "rule"), "family": get(r, "family"), "removed_docs": get(r, "removed_docs")}
                          for r in rules[:3]]}


def render_quality_rules(h: dict) -> list[str]:
    fam = h["reached_docs_by_family"]
    fam_txt = ", ".join(f"{k} {fmt(v, 'int')}" for k, v in fam.items()) if isinstance(fam, dict) else NA
    share = (h["removed_docs"] / h["reached_docs"]
             if num(h["removed_docs"]) is not None and num(h["reached_docs"]) else None)
    top = ", ".join(f"{r['rule']} {fmt(r['removed_docs'], 'int')}" for r in h["top_rules"]) or NA
    out = [f"Config `{fmt(h['config'])}` on sample_data; tokens are o200k_base.", ""]
    out += table(["figure", "value"], [
        ["documents reaching quality", f"{fmt(h['reached_docs'], 'int')} ({fam_txt})"],
        ["tokens reaching quality", fmt(h["reached_tokens"], "int")],
        ["documents removed", f"{fmt(h['removed_docs'], 'int')} ({fmt(share, 'pct1')})"],
        ["tokens removed", fmt(h["removed_tokens"], "int")],
        ["removed by one rule alone / failing several rules",
         f"{fmt(h['removed_by_one_rule_alone'], 'int')} / {fmt(h['removed_failing_several_rules'], 'int')}"],
        ["top rules (documents removed)", top],
        ["consistency mismatches", fmt(h["consistency_mismatches"], "int")],
    ])
    return out


def extract_cluster(d: dict) -> dict:
    return {k: get(d, k) for k in ("docs", "runs", "workers", "local_median_s", "external_median_s",
                                   "external_over_local", "scheduler_bytes_per_doc", "text_bytes_per_doc",
                                   "identical_outputs")}


def render_cluster(h: dict) -> list[str]:
    out = [f"`corpusslim run configs/sample.yaml` ({fmt(h['docs'], 'int')} documents, {fmt(h['workers'], 'int')} "
           f"workers, medians of {fmt(h['runs'], 'int')} alternated runs): embedded LocalCluster against "
           "`--scheduler` on an external cluster of the same size.", ""]
    out += table(["LocalCluster wall s", "external wall s", "external ÷ local", "outputs identical"],
                 [[fmt(h["local_median_s"], "f1"), fmt(h["external_median_s"], "f1"),
                   fmt(h["external_over_local"], "ratio"), fmt(h["identical_outputs"])]], align="rrrr")
    sched, text = h["scheduler_bytes_per_doc"], h["text_bytes_per_doc"]
    if isinstance(sched, dict):
        out += [""] + table(["input", "text bytes / doc", "scheduler bytes (in + out) / doc"],
                            [[k, fmt(get(text, k), "int"), fmt(v, "int")] for k, v in sched.items()])
    return out


KNOWN = {
    "datatrove": ("CorpusSlim against datatrove", extract_datatrove, render_datatrove),
    "startup": ("Start-up CPU", extract_startup, render_startup),
    "stages": ("Stage throughput against the bare libraries", extract_stages, render_stages),
    "dedup": ("Dedup: accuracy, speed, memory", extract_dedup, render_dedup),
    "faults": ("Fault injection", extract_faults, render_faults),
    "marginal_curve": ("Marginal-yield curve", extract_marginal_curve, render_marginal_curve),
    "quality_rules": ("Quality rules", extract_quality_rules, render_quality_rules),
    "cluster": ("External Dask cluster against LocalCluster", extract_cluster, render_cluster),
    "stages-20k": ("Stage throughput on a 20k-document corpus (model loading amortised)", extract_stages_subdir,
                   render_stages_subdir),
    "stages-shared-8k": ("Stage throughput on 8.2k real documents of ../shared/data/corpus", extract_stages_subdir,
                         render_stages_subdir),
}
# results written into a subdirectory of --results-dir (name -> path without extension, relative to it)
SUBDIRS = {"stages-20k": "stages-20k/stages", "stages-shared-8k": "stages-shared-8k/stages"}
# known, but not always produced: listed under "Other results files" when absent
OPTIONAL = {"cluster", "stages-20k", "stages-shared-8k"}


# ==============================================================================================================
# Date, commit and command of a result
# ==============================================================================================================

def find_date(d) -> str | None:
    for where in (d, get(d, "meta"), get(d, "environment")):
        for key in ("date", "when", "generated"):
            if isinstance(get(where, key), str):
                return get(where, key)
    return None


def find_commit(name: str, d):
    """The code commit recorded in the JSON: a string, or per section for dedup."""
    if name == "dedup":
        codes = {s: get(d, s, "code") for s in ("accuracy", "bbc", "speed", "memory") if get(d, s, "code")}
        return codes or None
    for where in (d, get(d, "meta"), get(d, "environment")):
        for key in ("commit", "ours_code", "code", "git"):
            if isinstance(get(where, key), str):
                return short_commit(get(where, key))
    return None


def script_for(name: str, bench: Path) -> Path | None:
    if name in SCRIPTS and (bench / SCRIPTS[name]).exists():
        return bench / SCRIPTS[name]
    scripts = sorted(p for p in bench.glob("*.py") if p.name != Path(__file__).name)
    for p in scripts:
        if p.stem == name or p.stem.startswith(name + "_"):
            return p
    for p in scripts:
        try:
            if f"results/{name}.json" in p.read_text(encoding="utf-8"):
                return p
        except OSError:
            pass
    return None


def docstring_usage(script: Path) -> tuple[str | None, list[str]]:
    """(first ``python bench/...`` usage line of the script's docstring, setup lines before it)."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, ValueError):
        return None, []
    setup = []
    for line in doc.splitlines()[1:]:
        line = line.split("  #")[0].strip()
        if not line:
            if setup:
                break
            continue
        if line.startswith("python bench/"):
            return re.sub(r"\s*\[[^\]]*\]", "", line).strip(), setup  # optional [--flags] of a synopsis left out
        if line.startswith(("python", "pip")):
            setup.append(line)
        else:
            break
    return None, setup


def find_command(name: str, d, md_text: str | None, bench: Path) -> dict:
    """{"command", "setup", "note"}: from the JSON, the .md header, else the bench script's docstring."""
    out: dict = {"command": None}
    for where in (d, get(d, "meta"), get(d, "environment")):
        c = get(where, "command")
        if isinstance(c, str) and c.strip().startswith("python bench/"):
            out["command"] = c.strip()
            break
    if not out["command"] and md_text:
        m = re.search(r"Command: `([^`]+)`", md_text) or re.search(r"^# .*\(`(python bench/[^`]+)`\)", md_text, re.M)
        if m and m.group(1).strip().startswith("python bench/") and "..." not in m.group(1):
            out["command"] = m.group(1).strip()
    script = script_for(name, bench)
    if script:
        usage, setup = docstring_usage(script)
        out["command"] = out["command"] or usage
        if setup:
            out["setup"] = setup
    argv = get(d, "meta", "argv")
    if isinstance(argv, str) and not argv.startswith("python"):
        out["note"] = "this file: " + argv.lstrip(".: ")
    return out


# ==============================================================================================================
# Machine
# ==============================================================================================================

def machine() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram = round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        pass
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = None
    return {"cpu_model": cpu or platform.processor() or None, "logical_cores": os.cpu_count(), "ram_gib": ram,
            "os": platform.platform(), "python": platform.python_version(), "packages": versions}


def render_machine(m: dict) -> list[str]:
    rows = [["CPU", fmt(m["cpu_model"])], ["logical cores (os.cpu_count)", fmt(m["logical_cores"], "int")],
            ["RAM", f"{fmt(m['ram_gib'], 'f1')} GiB" if m["ram_gib"] else NA], ["OS", fmt(m["os"])],
            ["Python", fmt(m["python"])]]
    rows += [[p, fmt(v)] for p, v in m["packages"].items()]
    return table(["item", "value"], rows, align="ll")


# ==============================================================================================================
# Main
# ==============================================================================================================

def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p.resolve())


def link(md: Path, out_dir: Path) -> str:
    return f"[{rel(md)}]({os.path.relpath(md.resolve(), out_dir.resolve())})"


def collect(results_dir: Path, out_dir: Path) -> tuple[dict, str, list[str]]:
    generated = _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")
    mach = machine()
    names = sorted({p.stem for p in results_dir.glob("*.json")} | {p.stem for p in results_dir.glob("*.md")})
    names += [n for n, sub in SUBDIRS.items() if (results_dir / f"{sub}.json").exists() and n not in names]
    # known ones always (a missing one is reported), except optional ones not produced
    order = [n for n in KNOWN if n in names or n not in OPTIONAL] + [n for n in names if n not in KNOWN]
    results: dict = {}
    problems: list[str] = []
    md = ["# CorpusSlim benchmark results", "",
          f"Generated {generated} by `python bench/collect_results.py` from `{rel(results_dir)}/*.json`: the headline "
          "numbers of each benchmark; the full tables are in the linked files, each with its own date, machine "
          "load and code commit.", "", "## Machine", "",
          "The machine this summary was generated on (the results were measured on the machine their files "
          "describe):", ""]
    md += render_machine(mach)
    others = []
    for name in order:
        stem = SUBDIRS.get(name, name)
        jpath, mpath = results_dir / f"{stem}.json", results_dir / f"{stem}.md"
        md_text = mpath.read_text(encoding="utf-8") if mpath.exists() else None
        entry: dict = {}
        d = None
        if jpath.exists():
            try:
                d = json.loads(jpath.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                entry["status"] = f"could not parse {jpath.name}: {exc}"
                problems.append(f"{rel(jpath)}: {exc}")
        elif name in KNOWN:
            entry["status"] = "missing"
            problems.append(f"{rel(jpath)}: missing")
        else:
            entry["status"] = "no JSON (Markdown only)"
        if d is not None and not isinstance(d, dict):
            entry["status"] = f"unexpected JSON ({type(d).__name__}, not an object)"
            problems.append(f"{rel(jpath)}: {entry['status']}")
            d = None
        lines: list[str] = []
        if d is not None and name in KNOWN:
            try:
                headline = KNOWN[name][1](d)
                lines = KNOWN[name][2](headline)
                entry.update(headline)
            except Exception as exc:  # a changed format must not stop the summary
                entry["status"] = f"could not extract headline numbers: {type(exc).__name__}: {exc}"
                problems.append(f"{rel(jpath)}: {entry['status']}")
                lines = []
        elif d is not None:
            entry["status"] = "unknown format (not summarised)"
            entry["keys"] = list(d)
        entry["date"] = find_date(d) if d is not None else None
        entry["commit"] = find_commit(name, d) if d is not None else None
        entry["source"] = rel(mpath) if mpath.exists() else (rel(jpath) if jpath.exists() else None)
        cmd = find_command(name, d, md_text, BENCH)
        entry.update(cmd)
        results[name] = entry
        if name not in KNOWN:
            others.append((name, entry, jpath, mpath))
            continue
        md += ["", f"## {KNOWN[name][0]} (`{name}`)", ""]
        commit = entry["commit"]
        commit_txt = "per part below" if isinstance(commit, dict) else fmt(commit)
        md += [f"Recorded {fmt(entry['date'])} · code {commit_txt}" + (f" · **{entry['status']}**"
                                                                           if "status" in entry else ""), ""]
        md += lines + ([""] if lines else [])
        full = mpath if mpath.exists() else jpath if jpath.exists() else None
        md += [f"Full tables: {link(full, out_dir) if full else NA}  "]
        md += command_lines(entry)
    for name in sorted(OPTIONAL - set(names)):
        entry = {"status": "not produced (no results file)", "date": None, "commit": None, "source": None,
                 **find_command(name, None, None, BENCH)}
        results[name] = entry
        others.append((name, entry, results_dir / f"{name}.json", results_dir / f"{name}.md"))
    if others:
        md += ["", "## Other results files", ""]
        rows = []
        for name, e, jpath, mpath in others:
            files = ", ".join(link(p, out_dir) for p in (jpath, mpath) if p.exists()) or NA
            commit = e["commit"]
            commit_txt = (", ".join(f"{k} {v}" for k, v in commit.items()) if isinstance(commit, dict)
                          else fmt(commit))
            rows.append([name, e.get("status", ""), files, fmt(e["date"]), commit_txt,
                         f"`{e['command']}`" if e.get("command") else NA])
        md += table(["name", "status", "files", "recorded", "code", "regenerate"], rows, align="llllll")
    if problems:
        md += ["", "## Not summarised", ""] + [f"- {p}" for p in problems]
    choices = BENCH / "choices.md"  # the speed choices and their numbers, written by hand from the results
    if choices.exists():
        md += ["", *choices.read_text(encoding="utf-8").rstrip().splitlines()]
    data = {"generated": generated, "machine": mach, "results": results}
    return data, "\n".join(md) + "\n", problems


def command_lines(entry: dict) -> list[str]:
    cmd = entry.get("command")
    out = [f"Regenerate: `{cmd}`" if cmd else "Regenerate: n/a"]
    if entry.get("setup"):
        out[0] += " (setup: " + "; ".join(f"`{s}`" for s in entry["setup"]) + ")"
    if entry.get("note"):
        out[0] += f" ({entry['note']})"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results", help="default: bench/results")
    ap.add_argument("--out-dir", type=Path, default=BENCH, help="where RESULTS.json / RESULTS.md go (default: bench)")
    args = ap.parse_args(argv)
    if not args.results_dir.is_dir():
        print(f"Error: {args.results_dir} is not a directory", file=sys.stderr)
        return 1
    data, md, problems = collect(args.results_dir, args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "RESULTS.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out_dir / "RESULTS.md").write_text(md, encoding="utf-8")
    print(md)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
