"""Sources and budget (issue 14): does the allocator's prediction hold when its choice is processed?

    python bench/sources_budget.py          # ~3 runs of the pipeline on 2 cores, a few minutes

Corpus: four sources built from ``sample_data/`` documents (by their ``source`` column), 12 Parquet files each:
``news`` (en_bbc_news + en_abc_news, 10 % planted exact copies of its own earlier documents), ``web`` (en_webtext:
low quality, 30 % copies), ``wiki`` (zh_wiki, 5 % copies) and ``reviews`` (zh_hotel_reviews, 40 % copies, half of
them of ``wiki`` documents: cross-source overlap). Files 0-5 of every source are the *observed* run (24 batches,
one file per batch, sources as globs interleaved round-robin); files 6-11 are what can be processed next.

1. Run the observed files; allocate three budgets (``corpusslim budget``: 2, 5 and 10 times the mean cost of a
   batch, pool scale).
2. Process what the allocator chose for the middle budget (the first k files of each source's remaining files, a
   run ``--against`` the observed one) and compare realised with predicted unique tokens per source (error, and
   whether the realised value is inside the 90 % band) and the value of the realised tokens.
3. The naive allocation on the same budget: about equal raw tokens per source (batches = round(T / the source's
   mean raw tokens per batch), the largest T whose cost at the sources' mean batch costs fits), processed the
   same way. A source's allocation is capped by nothing: beyond its 6 remaining files the rest is not processed.

Writes ``bench/results/sources_budget.json``.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import polars as pl
import yaml

from corpusslim import api
from corpusslim.tracker.budget import prediction_band, source_views
from corpusslim.tracker.curve import future_increments, predict
from corpusslim.tracker.value import price_batch

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"news": (["en_bbc_news", "en_abc_news"], 0.10, None), "web": (["en_webtext"], 0.30, None),
           "wiki": (["zh_wiki"], 0.05, None), "reviews": (["zh_hotel_reviews"], 0.40, "wiki")}
FILES, OBSERVED = 12, 6
VALUE = {"sample_fraction": 1e-5, "law": "muennighoff", "plan": "compute-optimal", "compute": 5.88e21,
         "training_runs": 10}
STAGES = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "segment", "hmm": False}, {"kind": "dedup"},
          {"kind": "quality"}]


def build(root: Path, seed: int = 0) -> None:
    """Write every source's 12 files: fresh documents in order, plus planted exact copies of documents that arrived
    earlier (files in round-robin order: file k of every source before any file k + 1)."""
    rng = random.Random(seed)
    docs = pl.concat([pl.read_parquet(p) for p in sorted((REPO / "sample_data").glob("*.parquet"))])
    texts = {name: docs.filter(pl.col("source").is_in(origins)).unique("text", maintain_order=True)["text"].to_list()
             for name, (origins, _, _) in SOURCES.items()}
    seen: dict[str, list[str]] = {name: [] for name in SOURCES}
    for k in range(FILES):
        for name, (_, rate, other) in SOURCES.items():
            per = len(texts[name]) // FILES
            fresh = texts[name][k * per:(k + 1) * per]
            copies = []
            for _ in range(round(rate * per / (1 - rate))):
                source = other if other and rng.random() < 0.5 and seen[other] else name
                copies.append(rng.choice(seen[source] or fresh))
            seen[name] += fresh
            part = "observed" if k < OBSERVED else "next"
            (root / part / name).mkdir(parents=True, exist_ok=True)
            pl.DataFrame({"text": fresh + copies}).write_parquet(root / part / name / f"{k:03d}.parquet")


def equal_raw(raw: dict[str, float], cost: dict[str, float], budget: float) -> dict[str, int]:
    """The naive allocation: about equal raw tokens T of every source (batches = round(T / raw per batch)), the
    largest T whose predicted cost fits the budget."""
    best = dict.fromkeys(raw, 0)
    for step in range(1, 1000):
        t = step * min(raw.values()) / 4
        k = {s: round(t / raw[s]) for s in raw}
        if sum(k[s] * cost[s] for s in raw) > budget:
            break
        best = k
    return best


def config(root: Path, out: Path, inputs: dict[str, str]) -> Path:
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump({"output": str(out), "workers": 2, "batch_shards": 1, "stages": STAGES,
                                    "value": VALUE, "sources": [{"name": n, "input": i} for n, i in inputs.items()]}))
    return path


def process(root: Path, name: str, batches: dict[str, int], against: Path) -> pl.DataFrame:
    """Run the first ``batches[s]`` remaining files of every source against the observed run; its source ledger."""
    chosen = root / name
    for source, k in batches.items():
        (chosen / source).mkdir(parents=True, exist_ok=True)
        for f in sorted((root / "next" / source).glob("*.parquet"))[:k]:
            (chosen / source / f.name).write_bytes(f.read_bytes())
    out = root / f"run_{name}"
    api.run(str(config(root, out, {s: str(chosen / s) for s, k in batches.items() if k})), against=str(against))
    return pl.read_parquet(out / "ledger_sources.parquet")


def realised(ledger: pl.DataFrame, alloc: dict, views: dict, value, pool: float, scale: float) -> dict:
    """Realised raw and unique tokens per source against the allocation's prediction (and the curve's prediction
    at the raw tokens actually processed: the files are not all of the mean batch size); totals, measured cost
    and the value of the realised and of the predicted unique tokens (priced on the observed pool)."""
    rows = {r["source"]: r for r in alloc["allocation"]}
    got = ledger.group_by("source").agg(pl.col("new_unique_tokens", "raw_tokens", "cost_usd").sum())
    out = {}
    for source, unique, raw, cost in got.rows():
        r, view = rows.get(source), views[source]
        out[source] = {"raw_tokens": raw * scale, "unique_tokens": unique * scale, "cost_usd_measured": cost * scale}
        if r:
            at_raw = float(predict(view.fit, [view.R + raw])[0] - predict(view.fit, [view.R])[0]) * scale
            out[source] |= {"predicted": r["unique_tokens"], "band": [r["unique_tokens_low"], r["unique_tokens_high"]],
                            "predicted_at_realised_raw": at_raw, "cost_usd_predicted": r["cost_usd"],
                            "error_pct": 100 * (r["unique_tokens"] - unique * scale) / (unique * scale),
                            "error_at_realised_raw_pct": 100 * (at_raw - unique * scale) / (unique * scale),
                            "inside_band": r["unique_tokens_low"] <= unique * scale <= r["unique_tokens_high"]}
    total = float(got["new_unique_tokens"].sum())
    predicted = sum(r["unique_tokens"] for r in rows.values()) / scale
    return {"per_source": out, "unique_tokens": total * scale, "cost_usd_measured": float(got["cost_usd"].sum()) *
            scale, "value_usd": price_batch(value, pool, total).usd,
            "predicted_unique_tokens": predicted * scale if rows else None,
            "predicted_value_usd": price_batch(value, pool, predicted).usd if rows else None}


def band_widths(views: dict, scale: float, ahead=(1, 3, 6, 12, 24)) -> dict:
    """Per source, the 90 % band of the predicted unique tokens of the next k batches, as a percentage of the
    point prediction: where the prediction gets wide."""
    out = {}
    for source, view in views.items():
        if view.fit.curves is None:
            continue
        inc = future_increments(view.fit, view.R, max(ahead))
        out[source] = {}
        for k in ahead:
            lo, hi = prediction_band(inc[:, :k], view.fit.curves.residuals, view.fit.level, seed=0)
            out[source][k] = {"unique_tokens": float(inc[0, :k].sum()) * scale, "low": lo * scale, "high": hi * scale,
                              "width_pct": 100 * (hi - lo) / float(inc[0, :k].sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="/tmp/corpusslim-bench/sources_budget")
    args = parser.parse_args()
    root = Path(args.work_dir)
    started = time.perf_counter()
    build(root)
    observed = root / "run_observed"
    api.run(str(config(root, observed, {s: str(root / "observed" / s) for s in SOURCES})))
    run = api.load_run(str(observed))
    src = pl.read_parquet(observed / "ledger_sources.parquet")
    scale = 1 / run.config.value.sample_fraction
    batch_cost = float(src["cost_usd"].mean()) * scale
    budgets = {f"{m}x": m * batch_cost for m in (2, 5, 10)}
    allocations = {k: api.budget(str(observed), usd=usd) for k, usd in budgets.items()}
    middle = allocations["5x"]
    chosen = {s: 0 for s in SOURCES} | {r["source"]: r["batches"] for r in middle["allocation"]}
    pool = float(src["new_unique_tokens"].sum())
    cost = {s: float(src.filter(pl.col("source") == s)["cost_usd"].mean()) * scale for s in SOURCES}
    raw = {s: float(src.filter(pl.col("source") == s)["raw_tokens"].mean()) * scale for s in SOURCES}
    naive_k = equal_raw(raw, cost, budgets["5x"])
    views = {v.source: v for v in source_views(src, run.config)}
    results = {"allocator": realised(process(root, "allocator", chosen, observed), middle, views, run.config.value,
                                     pool, scale),
               "naive_equal_raw_tokens": realised(process(root, "naive", naive_k, observed), {"allocation": []},
                                                  views, run.config.value, pool, scale)}
    out = {"corpus": {s: {"origins": o, "planted_copy_rate": r, "cross_source_copies_of": x}
                      for s, (o, r, x) in SOURCES.items()},
           "observed_batches": src.height, "mean_batch_cost_usd": batch_cost,
           "budgets_usd": budgets, "allocations": allocations, "middle_budget": "5x",
           "naive_batches_per_source": naive_k, "realised": results,
           "band_width_by_batches_ahead": band_widths(views, scale),
           "overlap": json.loads((observed / "report" / "summary.json").read_text())["overlap"],
           "wall_seconds": round(time.perf_counter() - started, 1)}
    target = REPO / "bench" / "results" / "sources_budget.json"
    target.write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps({k: out[k] for k in ("budgets_usd", "naive_batches_per_source", "realised")}, indent=1,
                     default=float))


if __name__ == "__main__":
    main()
