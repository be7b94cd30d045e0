"""Per-stage dry runs: one stage on a sample, nothing written; what it would remove, why, and what the full run
would cost.

The sample is spread over every shard (``corpusslim.preview.sampling``). The stages configured before NAME run first
(language ID before segmentation, segmentation before the Chinese quality rules; a global stage before NAME is
skipped: a sample sees too few duplicates to matter), then NAME. Removal rates carry a 95% Wilson interval from
the sample size, and are projected onto the input's totals read from the Parquet footers.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import polars as pl

from corpusslim.config import RunConfig
from corpusslim.errors import ConfigError
from corpusslim.preview.sampling import InputTotals, draw_sample
from corpusslim.registry import STAGES, build_stage
from corpusslim.runtime.inputs import shards_of
from corpusslim.runtime.lines import line_stats
from corpusslim.runtime.resources import STARTUP
from corpusslim.runtime.worker import input_step
from corpusslim.stages.base import Stage, StageConfig
from corpusslim.text import printable

Z95 = 1.959963984540054
EXAMPLES = 3
EXAMPLE_CHARS = 200
WARM_UP_DOCS = 16

DEDUP_CAVEAT = (
    "A sample sees only the duplicate pairs whose two documents were both drawn: with a fraction q of the input "
    "sampled, a pair is seen with probability q^2. The full-run estimate scales the sample's pairs by 1/q^2 "
    "(an upper bound on documents removed when clusters hold more than two copies), with a Poisson interval "
    "instead of the binomial one; "
    "treat it as an order of magnitude, not a count.")


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_interval(k: int) -> tuple[float, float]:
    """Approximate 95% interval of a Poisson mean from one count (rule of three at zero)."""
    if k == 0:
        return 0.0, 3.0
    half = Z95 * math.sqrt(k)
    return max(0.0, k - half), k + half


def target_config(config: RunConfig, name: str) -> tuple[list[StageConfig], StageConfig]:
    """The local stages that run before NAME, and NAME's config (the configured one, else its defaults)."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    kinds = [s.kind for s in config.stages]
    if name in kinds:
        i = kinds.index(name)
        return [s for s in config.stages[:i] if not STAGES[s.kind].is_global], config.stages[i]
    required = set(STAGES[name].requires)
    return [s for s in config.stages if s.kind in required], STAGES[name].Config()


def _run(stage: Stage, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(annotated, kept, rejected) of a stage on a batch; a global stage runs all its phases in memory."""
    if stage.is_global:
        stage = stage.in_memory(batch)
    annotated = stage.annotate(batch)
    return annotated, *stage.split(annotated)


def _histogram(values: list[float], threshold: float, op: str, bins: int = 12, width: int = 30) -> list[str]:
    """A compact text histogram over the 1st–99th percentile (and the threshold), outliers in the end bins, with
    the bin holding the threshold marked."""
    if not values:
        return ["(no values)"]
    ordered = sorted(values)
    lo = min(ordered[int(0.01 * (len(ordered) - 1))], threshold)
    hi = max(ordered[int(0.99 * (len(ordered) - 1))], threshold)
    step = (hi - lo) / bins if hi > lo else 1.0
    counts = [0] * bins
    for v in values:
        counts[max(0, min(int((v - lo) / step), bins - 1))] += 1
    mark = max(0, min(int((threshold - lo) / step), bins - 1))
    top = max(counts) or 1
    failing = "below" if op == "min" else "above"
    lines = []
    for i, c in enumerate(counts):
        edge = ("<" if i == 0 and ordered[0] < lo else " ") + f"{lo + i * step:>10.4g} "
        bar = "█" * math.ceil(width * c / top) if c else ""
        lines.append(f"{edge}│{bar:<{width}} {c:>6}" + (f"  ◀ threshold {threshold:g} (fails {failing})"
                                                           if i == mark else ""))
    return lines


@dataclass(frozen=True)
class Observed:
    """What a dry run measured on its sample."""

    docs: pl.DataFrame  # the sample, with token counts
    totals: InputTotals  # the whole input, from the Parquet footers
    reached: pl.DataFrame  # sample documents that reached the stage
    annotated: pl.DataFrame
    survivors: pl.DataFrame
    removed: pl.DataFrame
    stage_cpu: float  # CPU seconds of the stage on ``reached``
    chain_cpu: float  # CPU seconds of the input step, the stages before and the stage
    startup_cpu: float  # CPU seconds of model loading (once per worker process in a full run)

    @property
    def reach(self) -> float:
        return self.reached.height / self.docs.height if self.docs.height else 0.0

    @property
    def population(self) -> float:
        """Documents of the whole input expected to reach the stage."""
        return self.totals.docs * self.reach


def dry_run(config: RunConfig, name: str, sample: int = 1000, seed: int = 0, workers: int | None = None) -> dict:
    """Run stage NAME on a sample of the input; returns the report (see ``format_dry_run``). Writes nothing."""
    started = time.perf_counter()
    before_configs, target_cfg = target_config(config, name)
    docs, totals = draw_sample(shards_of(config), sample, seed)
    target = build_stage(target_cfg)
    observed = _observe(config, [build_stage(c) for c in before_configs], target, docs, totals)
    workers = workers or config.workers or os.cpu_count() or 1
    reasons = _removals(observed, target.is_global)
    removed_lines = line_stats([observed.annotated]) if target.edits_lines else {}
    report = {
        "stage": name,
        "config": target.config.model_dump(mode="json"),
        "sample": _sample_section(observed, sample, seed),
        "removed": reasons,
        "lines_removed": removed_lines,
        "kept": {"docs": observed.survivors.height,
                 "tokens": int(observed.survivors["n_tokens"].sum()) if observed.reached.height else 0},
        "thresholds": [{**{k: v for k, v in t.items() if k != "values"}, "n": len(t["values"]),
                        "histogram": _histogram(t["values"], t["threshold"], t["op"])}
                       for t in target.thresholds(observed.annotated)],
        "cpu": _cpu_section(observed),
        "projection": _projection(observed, reasons, workers, config.cost.usd_per_cpu_hour),
        "unseen_reasons": _unseen(observed, target, set(removed_lines)),
        "dry_run_wall_seconds": round(time.perf_counter() - started, 3),
        "notes": [DEDUP_CAVEAT] if target.is_global else [],
    }
    return report


def _observe(config: RunConfig, stages: list[Stage], target: Stage, docs: pl.DataFrame,
             totals: InputTotals) -> Observed:
    """Run the input step, the stages before NAME and NAME on the sample, timing each; models load first, outside
    the timing (a full run pays that once per worker)."""
    limit = config.limits.max_doc_chars
    startup = STARTUP["cpu_seconds"]
    warm, _, _ = input_step(docs.head(WARM_UP_DOCS), limit, 0.0)
    for stage in stages:
        warm, _ = stage.process(warm)
    _run(target, warm)
    startup = STARTUP["cpu_seconds"] - startup
    kept, rejected_input, input_stat = input_step(docs, limit, 0.0)
    docs = docs.with_columns(n_tokens=pl.concat([kept, rejected_input], how="diagonal_relaxed")
                             .sort("_row")["n_tokens"])
    chain_cpu = input_stat["cpu_seconds"]
    for stage in stages:
        start = time.process_time()
        kept, _ = stage.process(kept)
        chain_cpu += time.process_time() - start
    start = time.process_time()
    annotated, survivors, removed = _run(target, kept)
    stage_cpu = time.process_time() - start
    return Observed(docs, totals, kept, annotated, survivors, removed, stage_cpu, chain_cpu + stage_cpu, startup)


def _removals(o: Observed, is_global: bool) -> list[dict]:
    """Per reason: the sample's count with its 95% interval, projected onto the whole input, and examples."""
    n_in = o.reached.height
    q = n_in / o.population if o.population else 1.0
    reasons = []
    for (reason,), group in sorted(o.removed.group_by("reject_reason")):
        k = group.height
        low, high = wilson(k, n_in)
        if is_global:  # pairs seen with probability q^2 (DEDUP_CAVEAT)
            projected = [min(o.population, x / (q * q)) for x in (k, *poisson_interval(k))]
        else:
            projected = [o.population * x for x in (k / n_in, low, high)]
        reasons.append({
            "reason": reason, "docs": k, "tokens": int(group["n_tokens"].sum()), "pct": 100 * k / n_in,
            "pct_low": 100 * low, "pct_high": 100 * high,
            **dict(zip(("projected_docs", "projected_docs_low", "projected_docs_high"), map(round, projected))),
            "examples": [{"id": printable(i), "text": printable(t or "", EXAMPLE_CHARS)}
                         for i, t in group.select("id", "text").head(EXAMPLES).iter_rows()],
        })
    return reasons


def _sample_section(o: Observed, requested: int, seed: int) -> dict:
    docs = o.docs
    return {"requested": requested, "docs": docs.height, "seed": seed, "shards": docs["_shard"].n_unique(),
            "per_shard": dict(docs.group_by("_shard").len().sort("_shard").iter_rows()),
            "reached_stage": o.reached.height, "text_mb": round(_text_mb(docs), 4)}


def _text_mb(df: pl.DataFrame) -> float:
    return df["text"].str.len_bytes().fill_null(0).sum() / 1e6


def _cpu_section(o: Observed) -> dict:
    n_in, n_sample, text_mb = o.reached.height, o.docs.height, _text_mb(o.docs)
    return {"stage_seconds": round(o.stage_cpu, 4),
            "stage_per_doc": o.stage_cpu / n_in if n_in else 0.0,
            "stage_per_mb": o.stage_cpu / _text_mb(o.reached) if n_in else 0.0,
            "chain_seconds": round(o.chain_cpu, 4), "chain_per_doc": o.chain_cpu / n_sample if n_sample else 0.0,
            "chain_per_mb": o.chain_cpu / text_mb if text_mb else 0.0}


def _projection(o: Observed, reasons: list[dict], workers: int, usd_per_cpu_hour: float) -> dict:
    """The full run's size and the cost of the chain up to NAME, from the sample's rates."""
    docs, totals = o.docs, o.totals
    per_doc = o.chain_cpu / docs.height if docs.height else 0.0
    cpu_hours = (per_doc * totals.docs + o.startup_cpu * workers) / 3600  # models load once per worker process
    return {
        "docs": totals.docs, "file_bytes": totals.file_bytes, "shards": totals.shards,
        "text_bytes": round(totals.docs * (docs["text"].str.len_bytes().fill_null(0).mean() or 0.0)),
        "tokens": round(totals.docs * (docs["n_tokens"].mean() or 0.0)),
        "tokens_reaching_stage": round(o.population * (o.reached["n_tokens"].mean() or 0.0)),
        "docs_reaching_stage": round(o.population),
        "docs_removed": sum(r["projected_docs"] for r in reasons),
        "cpu_hours": cpu_hours, "workers": workers, "wall_hours": cpu_hours / workers,
        "usd": cpu_hours * usd_per_cpu_hour,
        "startup_cpu_seconds_per_worker": round(o.startup_cpu, 3),
        "sample_fraction": o.reached.height / o.population if o.population else 1.0,
        "unreadable_shards": totals.unreadable,
    }


def _unseen(o: Observed, target: Stage, line_reasons: set[str]) -> dict:
    """Reasons the sample never saw (documents or lines), with the upper end of their rate (zero events)."""
    high = wilson(0, o.reached.height)[1]
    seen = set(o.removed["reject_reason"]) | line_reasons
    return {"codes": sorted(set(target.reasons) - seen), "pct_high": 100 * high,
            "projected_docs_high": round(o.population * high)}


def format_dry_run(r: dict) -> str:
    """The dry run for a terminal."""
    s, p, cpu = r["sample"], r["projection"], r["cpu"]
    lines = [f"DRY RUN of stage '{r['stage']}': nothing was written.",
             f"sample: {s['docs']:,} documents from {s['shards']} shards (seed {s['seed']}), "
             f"{s['reached_stage']:,} reached the stage, {s['text_mb']:.2f} MB of text", "",
             "would remove (95% interval from the sample size):"]
    for x in r["removed"]:
        lines.append(f"  {x['reason']:<24} {x['docs']:>6,} docs "
                     f"({x['pct']:.1f}%, {x['pct_low']:.1f}–{x['pct_high']:.1f}%) "
                     f"{x['tokens']:>9,} tokens  → full run ≈ {x['projected_docs']:,} docs "
                     f"({x['projected_docs_low']:,}–{x['projected_docs_high']:,})")
    if not r["removed"]:
        lines.append("  nothing")
    for reason, x in r["lines_removed"].items():
        lines.append(f"  {reason:<24} {x['lines']:>6,} lines {x['tokens']:>9,} tokens (lines removed, documents kept)")
    unseen = r["unseen_reasons"]
    if unseen["codes"]:
        lines.append(f"  not seen in the sample (each below {unseen['pct_high']:.2f}% at 95%, ≤ "
                     f"{unseen['projected_docs_high']:,} docs in the full run): {', '.join(unseen['codes'])}")
    lines.append(f"  kept: {r['kept']['docs']:,} docs, {r['kept']['tokens']:,} tokens")
    for t in r["thresholds"]:
        lines += ["", f"{t['label']}: {t['n']:,} documents", *("  " + h for h in t["histogram"])]
    if r["removed"]:
        lines += ["", "examples:"]
        for x in r["removed"]:
            lines.append(f"  [{x['reason']}]")
            lines += [f"    {e['id']}: {e['text']!s}".replace("\n", "⏎ ") for e in x["examples"]]
    lines += ["", f"CPU: stage {cpu['stage_per_doc'] * 1e3:.3f} ms/doc, {cpu['stage_per_mb']:.3f} s/MB; with the "
                  f"stages before it and token counting {cpu['chain_per_doc'] * 1e3:.3f} ms/doc",
              "", "projected full run (input totals from Parquet footers):",
              f"  {p['docs']:,} documents in {p['shards']} shards, {p['file_bytes'] / 1e6:,.1f} MB on disk, "
              f"≈{p['text_bytes'] / 1e6:,.1f} MB of text, ≈{p['tokens']:,} tokens ({p['tokens_reaching_stage']:,} "
              f"reaching the stage)",
              f"  ≈{p['docs_removed']:,} documents removed by this stage",
              f"  {p['cpu_hours']:.4g} CPU-hours (with {p['startup_cpu_seconds_per_worker']:.1f} s of model "
              f"loading per worker) → {p['wall_hours']:.4g} h wall on {p['workers']} workers → ${p['usd']:.4g}"]
    for path, error in p["unreadable_shards"].items():
        lines.append(f"  UNREADABLE {path}: {error}")
    lines += [f"NOTE: {n}" for n in r["notes"]]
    lines.append(f"(dry run took {r['dry_run_wall_seconds']:.1f} s)")
    return "\n".join(lines)
