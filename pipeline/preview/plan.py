"""The stage-order optimizer (``corpusslim plan``): measure every stage's CPU per document and pass rate on a sample,
propose the order (within the real dependencies) and a cheap length pre-filter that minimise expected CPU per kept
token, and check the proposal by running it on the same sample.

For independent filters, running them in ascending order of cost ÷ (1 − pass rate) minimises the expected cost
per document (the classic rule for ordering independent tests; e.g. Hellerstein & Stonebraker 1993, "Predicate
migration"). Dependencies: a stage's ``requires`` and ``after`` (LID before segmentation, segmentation before the
Chinese rules and before dedup's shingles); dedup's exact pass runs before its MinHash pass inside the stage.
Reordering local filters never changes which documents are kept. Moving a filter across dedup can: dedup keeps
the earliest copy among the documents that reach it, so the plan says so when it proposes such a move.
"""
from __future__ import annotations

import math
import os
import time

import polars as pl
import yaml

from corpusslim.config import RunConfig
from corpusslim.preview.dryrun import WARM_UP_DOCS
from corpusslim.preview.sampling import draw_sample
from corpusslim.registry import STAGES, build_stage
from corpusslim.runtime.inputs import shards_of
from corpusslim.runtime.worker import input_step
from corpusslim.stages.base import Stage, StageConfig
from corpusslim.stages.prefilter import PrefilterConfig


def _process(stage: Stage, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    if stage.is_global:
        stage = stage.in_memory(batch)
    return stage.process(batch)


def run_chain(docs: pl.DataFrame, configs: list[StageConfig], max_doc_chars: int) -> tuple[pl.DataFrame, list[dict]]:
    """Run stages in order on an in-memory sample (a global stage in memory); per stage: docs in/out, CPU."""
    stages = [build_stage(c) for c in configs]
    warm, _, _ = input_step(docs.head(WARM_UP_DOCS), max_doc_chars, 0.0)
    for stage in stages:  # load models outside the timing
        warm, _ = _process(stage, warm)
    kept, _, input_stat = input_step(docs, max_doc_chars, 0.0)
    measured = [{"kind": "input", "docs_in": docs.height, "docs_out": kept.height,
                 "cpu_seconds": input_stat["cpu_seconds"]}]
    for stage in stages:
        start = time.process_time()
        before = kept.height
        kept, _ = _process(stage, kept)
        measured.append({"kind": stage.kind, "docs_in": before, "docs_out": kept.height,
                         "cpu_seconds": time.process_time() - start})
    for m in measured:
        m["cpu_per_doc"] = m["cpu_seconds"] / m["docs_in"] if m["docs_in"] else 0.0
        m["pass_rate"] = m["docs_out"] / m["docs_in"] if m["docs_in"] else 1.0
    return kept, measured


def rank(cpu_per_doc: float, pass_rate: float) -> float:
    """Cost ÷ (1 − pass rate): lower runs earlier; a stage that removes nothing ranks last."""
    return cpu_per_doc / (1 - pass_rate) if pass_rate < 1 else math.inf


def prefilter_bound(configs: list[StageConfig]) -> int | None:
    """The largest pre-filter length that removes only documents the configured quality rules remove anyway."""
    quality = next((c for c in configs if c.kind == "quality"), None)
    if quality is None:
        return None
    bounds = [quality.gopher_quality.min_words] if quality.gopher_quality.enabled else []
    bounds += [quality.chinese.min_chars] if quality.chinese.enabled else []
    if len(bounds) < 2 or not all(bounds):  # a family without a length rule could keep a short document
        return None
    return min(bounds)


def _dependencies(kinds: list[str]) -> dict[str, set[str]]:
    return {k: {d for d in (*STAGES[k].requires, *STAGES[k].after) if d in kinds} for k in kinds}


def propose_order(measured: dict[str, dict]) -> list[str]:
    """Greedy topological order: among the stages whose dependencies have run, the lowest rank next."""
    deps, order = _dependencies(list(measured)), []
    while len(order) < len(measured):
        ready = [k for k in measured if k not in order and deps[k] <= set(order)]
        order.append(min(ready, key=lambda k: (rank(measured[k]["cpu_per_doc"], measured[k]["pass_rate"]),
                                               list(measured).index(k))))
    return order


def expected_cpu_per_doc(order: list[str], measured: dict[str, dict]) -> float:
    """Σ cost × (fraction of documents still there), assuming independent pass rates."""
    total, reach = 0.0, 1.0
    for kind in order:
        total += reach * measured[kind]["cpu_per_doc"]
        reach *= measured[kind]["pass_rate"]
    return total


def _crosses_global(old: list[str], new: list[str]) -> list[str]:
    """Local stages that changed sides of the global stage."""
    glob = next((k for k in old if STAGES[k].is_global), None)
    if glob is None:
        return []
    side = {k: (old.index(k) < old.index(glob), new.index(k) < new.index(glob)) for k in old if k != glob}
    return [k for k, (was, now) in side.items() if was != now]


def plan(config: RunConfig, sample: int = 1000, seed: int = 0) -> dict:
    """Measure the configured order on a sample, propose a better one, measure that too."""
    docs, totals = draw_sample(shards_of(config), sample, seed)
    configs = list(config.stages)
    kept, current = run_chain(docs, configs, config.limits.max_doc_chars)
    by_kind = {m["kind"]: m for m in current[1:]}
    bound = prefilter_bound(configs)
    if bound is not None and "prefilter" not in by_kind:
        _, pre = run_chain(docs, [PrefilterConfig(min_chars=bound)], config.limits.max_doc_chars)
        by_kind = {"prefilter": pre[1], **by_kind}
    order = propose_order(by_kind)
    proposed_configs = [next((c for c in configs if c.kind == k), None) or PrefilterConfig(min_chars=bound)
                        for k in order]
    kept_new, proposed = run_chain(docs, proposed_configs, config.limits.max_doc_chars)
    crossing = _crosses_global([c.kind for c in configs], [k for k in order if k != "prefilter"])
    notes = []
    if "prefilter" in order and "prefilter" not in [c.kind for c in configs]:
        notes.append(f"adds a length pre-filter (min_chars {bound}): below it the quality rules remove a document "
                     "anyway (Gopher's minimum words, the Chinese minimum characters), so it only removes them earlier")
    if crossing:
        notes.append(f"moves {', '.join(crossing)} across dedup: dedup keeps the earliest copy among the documents "
                     "that reach it, so which copy of a duplicate survives can change")

    def summary(order_kinds: list[str], measured: list[dict], kept_docs: pl.DataFrame) -> dict:
        tokens = int(kept_docs["n_tokens"].sum())
        cpu = sum(m["cpu_seconds"] for m in measured)
        # Projected from the per-stage rates measured in the configured order (before the proposal ran).
        projected = current[0]["cpu_seconds"] + expected_cpu_per_doc(order_kinds, by_kind) * current[0]["docs_out"]
        return {"order": order_kinds, "stages": measured, "kept_docs": kept_docs.height, "kept_tokens": tokens,
                "projected_cpu_seconds": projected, "measured_cpu_seconds": cpu,
                "projected_cpu_per_kept_token": projected / tokens if tokens else None,
                "measured_cpu_per_kept_token": cpu / tokens if tokens else None}

    same = set(kept["id"]) == set(kept_new["id"])
    return {
        "sample": {"docs": docs.height, "seed": seed, "shards": docs["_shard"].n_unique()},
        "input_docs": totals.docs,
        "current": summary([c.kind for c in configs], current, kept),
        "proposed": summary(order, proposed, kept_new),
        "ranks": {k: rank(m["cpu_per_doc"], m["pass_rate"]) for k, m in by_kind.items()},
        "kept_same": same, "kept_difference": len(set(kept["id"]) ^ set(kept_new["id"])),
        "notes": notes,
    }


def planned_output(output: str, target: str) -> str:
    """The reordered config's run directory: beside the source's, named after the new file (another config may not
    reuse the source's output)."""
    name = os.path.splitext(os.path.basename(target))[0]
    parent = output.rstrip("/").rsplit("/", 1)[0] if "://" in output else os.path.dirname(output)
    planned = f"{parent}/{name}" if "://" in output else os.path.join(parent, name)
    return planned if planned.rstrip("/") != output.rstrip("/") else f"{output.rstrip('/')}-planned"


def _relative(path: str, directory: str) -> str:
    """``path`` relative to ``directory`` when they share a tree below the root (else absolute; URLs untouched)."""
    if "://" in path or os.path.commonpath([path, directory]) == os.path.sep:
        return path
    return os.path.relpath(path, directory)


def write_planned_config(config_path: str, result: dict, target: str) -> str:
    """Save the source config file with its stages in the proposed order (each stage's YAML kept as written) as
    ``target``: paths relative to ``target``'s directory, and a new ``output:`` (returned)."""
    from corpusslim.config import load_config

    config = load_config(config_path)
    with open(config_path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    directory = os.path.dirname(os.path.abspath(target))
    output = planned_output(config.output, os.path.abspath(target))
    data.update(output=_relative(output, directory))
    if config.input is not None:
        data["input"] = _relative(config.input, directory)
    if config.sources is not None:
        data["sources"] = [{"name": s.name, "input": _relative(s.input, directory)} for s in config.sources]
    validated = {c.kind: c for c in config.stages}
    by_kind = {}
    for stage in data["stages"]:  # files a stage names (model_path, user_dict, ...), as validation resolved them
        resolved = {k: getattr(validated[stage["kind"]], k) for k, v in stage.items() if isinstance(v, str)}
        by_kind[stage["kind"]] = {**stage, **{k: _relative(p, directory) for k, p in resolved.items()
                                              if os.path.isabs(p) and os.path.isfile(p)}}
    order = result["proposed"]["order"]
    if "prefilter" in order and "prefilter" not in by_kind:
        by_kind["prefilter"] = {"kind": "prefilter", "min_chars": prefilter_bound(list(config.stages))}
    data["stages"] = [by_kind[k] for k in order]
    text = "# Stage order proposed by `corpusslim plan`.\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    return output


def format_plan(p: dict) -> str:
    def row(name: str, s: dict) -> str:
        per = s["measured_cpu_per_kept_token"]
        proj = s["projected_cpu_per_kept_token"]
        return (f"{name:<9} {' → '.join(s['order']):<48} CPU/kept token projected "
                f"{(proj or 0) * 1e6:8.3f} µs, measured {(per or 0) * 1e6:8.3f} µs · kept {s['kept_docs']:,} docs, "
                f"{s['kept_tokens']:,} tokens")

    lines = [f"PLAN on a sample of {p['sample']['docs']:,} documents from {p['sample']['shards']} shards "
             f"(seed {p['sample']['seed']}); nothing was written.", "",
             "stage       CPU ms/doc   pass rate   rank (cost ÷ removal)"]
    for m in p["current"]["stages"][1:]:
        r = p["ranks"].get(m["kind"], math.inf)
        lines.append(f"  {m['kind']:<10} {m['cpu_per_doc'] * 1e3:9.3f}   {m['pass_rate']:9.3f}   {r * 1e3:10.3f}")
    if "prefilter" in p["ranks"] and "prefilter" not in p["current"]["order"]:
        lines.append(f"  {'prefilter':<10} (measured alone)            rank {p['ranks']['prefilter'] * 1e3:.4f}")
    lines += ["", row("current", p["current"]), row("proposed", p["proposed"]),
              f"kept sets {'identical' if p['kept_same'] else 'differ by ' + str(p['kept_difference']) + ' documents'}"]
    lines += [f"NOTE: {n}" for n in p["notes"]]
    return "\n".join(lines)
