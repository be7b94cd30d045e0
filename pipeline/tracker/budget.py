"""Per source: the yield curve, cost model and next batch's value; and the allocator of a budget among sources.

Each source's curve is fitted on its own batches (``ledger_sources.parquet``, corpusslim.tracker.ledger) with the
statistics of :mod:`corpusslim.tracker.curve`; its cost model is :func:`corpusslim.tracker.ledger.cost_basis` over its
batches. Values price a batch's new unique tokens on the pool of every source
(:func:`corpusslim.tracker.decision._price`), at pool scale like the costs. With ``language``, U is the kept tokens of
that language and the pool is that language's.

**Allocation rule** (:func:`allocate`): in steps of one batch (the source's mean raw tokens per batch), each step
goes to the source whose next batch has the highest expected value per dollar (unique tokens per dollar when the
value model gives no dollar value at the current pool), among those whose next batch fits in what is left of the
budget and is worth its full cost; the pool grows by each step's expected tokens. It stops when no source
qualifies. The assumption: every curve keeps its fitted shape beyond the raw tokens seen, and each source's
increments do not depend on how much of the others is processed (overlap between sources is in each curve only as
far as the observed interleaving put it there). Predicted unique tokens carry a band: each bootstrap curve's
increments times AR(1) resampled batch residuals; the band widens the further a source goes past its data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from corpusslim.config import RunConfig
from corpusslim.tracker.curve import (
    CurveFit,
    ar1_resample,
    as_dict,
    fit_yield_curve,
    future_increments,
    next_batch_band,
    predict,
)
from corpusslim.tracker.decision import HORIZON, _price, si
from corpusslim.tracker.ledger import CostBasis, cost_basis
from corpusslim.tracker.value import format_usd

RULE = ("one batch at a time to the source whose next batch has the highest expected {score}, among those whose "
        "next batch fits the budget{worth}; curves assumed to keep their fitted shape beyond the data seen; "
        "tokens and dollars at pool scale")


@dataclass
class SourceView:
    """One source: its observed series, its fit (or why none) and its cost model."""

    source: str
    batches: int
    R: float
    U: float
    shards_per_batch: float
    fit: CurveFit
    basis: CostBasis
    kept_share: float          # the language's share of kept tokens (1 without language)

    @property
    def usable(self) -> bool:
        return self.fit.curves is not None or self.fit.model == "constant"

    def why_not(self) -> str:
        if self.fit.model == "none":
            return f"too few batches to fit ({self.fit.reason})" if "at least 3" in (self.fit.reason or "") \
                else f"no curve: {self.fit.reason}"
        return (self.fit.reason or "").split(";")[0] if self.fit.model == "constant" else ""

    def cost(self, du: float, scale: float) -> float:
        """Full cost of one more batch adding ``du`` unique tokens (of the language), pool scale."""
        return float(self.basis.batch(self.fit.raw_per_batch, du / self.kept_share)) * scale


def source_views(ledger: pl.DataFrame, config: RunConfig, language: str | None = None) -> list[SourceView]:
    """One view per source of a per-source ledger (sorted by name)."""
    views = []
    if ledger.is_empty():
        return views
    for (source,), rows in sorted(ledger.sort("source", "batch").partition_by("source", as_dict=True).items()):
        unique = rows[f"lang_{language}"] if language and f"lang_{language}" in rows.columns else \
            (pl.Series([0] * rows.height) if language else rows["new_unique_tokens"])
        R, U, C = rows["raw_tokens"].cum_sum(), unique.cast(pl.Float64).cum_sum(), rows["cost_usd"].cum_sum()
        total_kept = float(rows["new_unique_tokens"].sum())
        share = float(unique.sum()) / total_kept if language and total_kept > 0 else 1.0
        views.append(SourceView(source, rows.height, float(R[-1]), float(U[-1]),
                                float(rows["shards"].mean()), fit_yield_curve(R, U, C, seed=0),
                                cost_basis(rows, config.cost), share if share > 0 else 1.0))
    return views


def pool_of(views: list[SourceView]) -> float:
    return sum(v.U for v in views)


def _next(view: SourceView, config: RunConfig, pool: float) -> dict:
    """The source's next batch: new unique tokens with band, full cost, value, value per dollar (pool scale)."""
    scale = 1.0 / config.value.sample_fraction
    du, lo, hi = next_batch_band(view.fit, view.R)
    cost = view.cost(du, scale)
    v = _price(config.value, pool, du)
    per_usd = v.usd / cost if v.status == "priced" and v.usd is not None and cost > 0 else None
    return {"raw_tokens": view.fit.raw_per_batch * scale, "new_unique": du * scale, "new_unique_low": lo * scale,
            "new_unique_high": hi * scale, "cost_usd": cost, "value_status": v.status, "value_usd": v.usd,
            "value_reason": v.reason, "value_per_usd": per_usd,
            "unique_per_usd": du * scale / cost if cost > 0 else None}


def summarise_sources(ledger: pl.DataFrame, config: RunConfig, language: str | None = None) -> dict:
    """summary.json ``sources``: per source its batches, R, U, curve (or why none), cost per raw token and the
    next batch (with value per dollar)."""
    views = source_views(ledger, config, language)
    pool, out = pool_of(views), {}
    for v in views:
        b = v.basis
        out[v.source] = {"batches": v.batches, "raw_tokens": v.R, "unique_tokens": v.U,
                         "curve": as_dict(v.fit) if v.usable else {"reason": v.why_not()},
                         "cost_per_raw_token": b.cpu_usd_per_raw_token + b.acquisition_usd_per_raw_token,
                         "next_batch": _next(v, config, pool) if v.fit.curves is not None else None}
    return out


def prediction_band(increments: np.ndarray, residuals: np.ndarray, level: float, seed: int) -> tuple[float, float]:
    """Band of the sum of a source's allocated batches: each resampled curve's increments times a series of
    residuals from the curve's AR(1) sieve (batch-to-batch noise, runs of neighbouring batches kept)."""
    if len(increments) < 2 or increments.shape[1] == 0:
        total = float(increments[0].sum()) if len(increments) else 0.0
        return total, total
    noise = ar1_resample(residuals, len(increments) - 1, np.random.default_rng(seed), increments.shape[1]) \
        if len(residuals) > 2 else np.random.default_rng(seed).choice(residuals, size=increments[1:].shape)
    sums = np.maximum(increments[1:] * noise, 0.0).sum(axis=1)
    lo, hi = np.percentile(sums, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _score_mode(views: list[SourceView], config: RunConfig, pool: float) -> bool:
    """True when the value model prices the best next batch at the current pool (rank by value per dollar)."""
    best = max((future_increments(v.fit, v.R, 1)[0, 0] for v in views if v.fit.curves is not None), default=0.0)
    return best > 0 and _price(config.value, pool, best).status in ("priced", "unbounded")


def _step(view: SourceView, inc: float, config: RunConfig, pool: float, by_value: bool, left_usd: float | None,
          left_raw: float | None) -> tuple[float | None, str, float, float | None]:
    """(score or None, why not, cost, value) of the source's next batch."""
    scale = 1.0 / config.value.sample_fraction
    cost, raw = view.cost(inc, scale), view.fit.raw_per_batch * scale
    if left_usd is not None and cost > left_usd:
        return None, f"its next batch costs {format_usd(cost)}, more than the {format_usd(left_usd)} left", cost, None
    if left_raw is not None and raw > left_raw:
        return None, f"its next batch has {si(raw)} raw tokens, more than the {si(left_raw)} left", cost, None
    if inc <= 0:
        return None, "its next batch is expected to add no unique tokens", cost, None
    v = _price(config.value, pool, inc)
    value = math.inf if v.status == "unbounded" else v.usd
    if not by_value:
        return inc * scale / cost if cost > 0 else math.inf, "", cost, value
    if v.status not in ("priced", "unbounded"):
        return None, f"its next batch has no dollar value ({v.reason})", cost, None
    if value < cost:
        return None, f"its next batch is worth {format_usd(value)}, less than its {format_usd(cost)} cost", cost, value
    return (value / cost if cost > 0 else math.inf), "", cost, value


def allocate(views: list[SourceView], config: RunConfig, usd: float | None = None, raw_tokens: float | None = None,
             pool: float | None = None) -> dict:
    """Spend ``usd`` (pool-scale dollars) and/or ``raw_tokens`` one batch at a time (module docstring)."""
    scale = 1.0 / config.value.sample_fraction
    pool = pool_of(views) if pool is None else pool
    by_value = _score_mode(views, config, pool)
    fitted = [v for v in views if v.fit.curves is not None]
    inc = {v.source: future_increments(v.fit, v.R, HORIZON) for v in fitted}
    taken = {v.source: 0 for v in fitted}
    spent = {v.source: [0.0, 0.0] for v in fitted}       # cost, value
    why = {v.source: v.why_not() for v in views if v.fit.curves is None}
    left_usd, left_raw = usd, raw_tokens
    while True:
        best = None
        for v in fitted:
            if v.source in why:
                continue
            k = taken[v.source]
            if k >= HORIZON:
                why[v.source] = f"reached the {HORIZON}-batch horizon"
                continue
            score, reason, cost, value = _step(v, float(inc[v.source][0, k]), config, pool, by_value, left_usd,
                                               left_raw)
            if score is None:
                why[v.source] = reason
            elif best is None or score > best[0]:
                best = (score, v, cost, value)
        if best is None:
            break
        _, v, cost, value = best
        du = float(inc[v.source][0, taken[v.source]])
        taken[v.source] += 1
        spent[v.source][0] += cost
        spent[v.source][1] += value or 0.0
        pool += du
        left_usd = None if left_usd is None else left_usd - cost
        left_raw = None if left_raw is None else left_raw - v.fit.raw_per_batch * scale
    rows = []
    for v in fitted:
        k = taken[v.source]
        if k == 0:
            continue
        lo, hi = prediction_band(inc[v.source][:, :k], v.fit.curves.residuals, v.fit.level, seed=0)
        rows.append({"source": v.source, "batches": k, "shards": round(k * v.shards_per_batch, 1),
                     "raw_tokens": k * v.fit.raw_per_batch * scale,
                     "unique_tokens": float(inc[v.source][0, :k].sum()) * scale, "unique_tokens_low": lo * scale,
                     "unique_tokens_high": hi * scale, "cost_usd": spent[v.source][0],
                     "value_usd": spent[v.source][1] if by_value else None})
    score = "value per dollar" if by_value else "unique tokens per dollar"
    return {"allocation": sorted(rows, key=lambda r: -r["cost_usd"]), "unallocated_usd": left_usd,
            "unallocated_raw_tokens": left_raw,
            "stopped": [{"source": s, "reason": r} for s, r in sorted(why.items())],
            "rule": RULE.format(score=score, worth=" and is worth its full cost" if by_value else ""),
            "message": _message(rows, usd, raw_tokens)}


def _message(rows: list[dict], usd: float | None, raw_tokens: float | None) -> str:
    limit = " and ".join(x for x in (usd is not None and format_usd(usd), raw_tokens is not None and
                                     f"{si(raw_tokens)} raw tokens") if x)
    if not rows:
        return f"nothing allocated within {limit}: no source's next batch fits it and is worth its cost"
    parts = ", ".join(f"{r['batches']} batch(es) of {r['source']}" for r in rows)
    return f"within {limit}: {parts}"


def load_views(run_dir: str, config: RunConfig, language: str | None = None) -> list[SourceView]:
    """The source views of a finished run directory."""
    from corpusslim.runtime import storage
    from corpusslim.tracker.ledger import SOURCES_LEDGER_FILE

    path = storage.join(run_dir, SOURCES_LEDGER_FILE)
    return source_views(storage.read_parquet(path) if storage.exists(path) else pl.DataFrame(), config, language)


def overlap_sentence(rows: list[dict]) -> str:
    """The largest share of one source's removed duplicates that are copies of another source's documents."""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["from"]] = totals.get(r["from"], 0) + r["docs"]
    cross = [r for r in rows if r["from"] != r["to"]]
    if not rows:
        return "No duplicates were removed, so no source overlaps another."
    if not cross:
        return "Every removed duplicate copies a document of its own source: the sources do not overlap."
    top = max(cross, key=lambda r: (r["docs"] / totals[r["from"]], r["docs"]))
    return (f"{100 * top['docs'] / totals[top['from']]:.0f} % of {top['from']}'s removed duplicates "
            f"({top['docs']:,} of {totals[top['from']]:,} documents) are copies of {top['to']}.")


def languages(ledger: pl.DataFrame, by_source: pl.DataFrame, config: RunConfig) -> dict[str, dict]:
    """Per detected language, over the all-sources batches: kept tokens, its own yield curve (U = the language's
    kept tokens against all raw tokens) or why none, the next batch's new tokens of it with the band (pool scale),
    and, with sources, its kept tokens per source."""
    scale, out = 1.0 / config.value.sample_fraction, {}
    for column in sorted(c for c in ledger.columns if c.startswith("lang_")):
        U = ledger[column].cast(pl.Float64).cum_sum()
        if not U[-1]:
            continue
        fit = fit_yield_curve(ledger["cum_raw_tokens"], U, ledger["cum_cost_usd"], seed=0)
        du = next_batch_band(fit, float(ledger["cum_raw_tokens"][-1])) if fit.curves is not None else None
        sources = {} if column not in by_source.columns else {
            s: float(t) for s, t in by_source.group_by("source").agg(pl.col(column).sum()).sort("source").rows() if t}
        out[column.removeprefix("lang_")] = {
            "unique_tokens": float(U[-1]), "curve": as_dict(fit), "by_source": sources,
            "next_batch": None if du is None else dict(zip(("new_unique", "new_unique_low", "new_unique_high"),
                                                           (x * scale for x in du)))}
    return out


def _with_fit(by_source: pl.DataFrame, views: list[SourceView]) -> list[dict]:
    """Each source's batches (cumulative R and U) with its fitted curve's U at that R (None without a curve)."""
    fits = {v.source: v.fit for v in views}
    rows = by_source.select("source", "batch", "cum_raw_tokens", "cum_unique_tokens").to_dicts()
    for source, fit in fits.items():
        mine = [r for r in rows if r["source"] == source]
        fitted = predict(fit, [r["cum_raw_tokens"] for r in mine]) if fit.curves is not None else [None] * len(mine)
        for r, u in zip(mine, fitted):
            r["fitted_unique"] = None if u is None else float(u)
    return rows


def sources_summary(run_dir: str, config: RunConfig, ledger: pl.DataFrame, overlap: list[dict]) -> dict:
    """The report's per-source and per-language part: ``languages`` always; with sources also ``sources``,
    ``overlap`` (with its sentence) and the allocation of ``value.budget_usd`` when set."""
    from corpusslim.runtime import storage
    from corpusslim.tracker.ledger import SOURCES_LEDGER_FILE

    path = storage.join(run_dir, SOURCES_LEDGER_FILE)
    by_source = storage.read_parquet(path) if storage.exists(path) else pl.DataFrame()
    out = {"languages": languages(ledger, by_source, config) if not ledger.is_empty() else {}}
    if by_source.is_empty():
        return out
    views = source_views(by_source, config)
    budget = config.value.budget_usd
    return out | {
        "sources": summarise_sources(by_source, config), "overlap": overlap,
        "overlap_sentence": overlap_sentence(overlap),
        "source_batches": _with_fit(by_source, views),
        "allocation": allocate(views, config, usd=budget) | {"budget_usd": budget} if budget else None}


def format_allocation(result: dict) -> str:
    """The allocation as text: one line per source allocated, then the sources that stop and why."""
    lines = [result["message"] + (f" (unique tokens of language {result['language']})" if result.get("language")
                                  else "")]
    for r in result["allocation"]:
        value = "" if r["value_usd"] is None else f", value {format_usd(r['value_usd'])}"
        lines.append(f"  {r['source']}: {r['batches']} batch(es) (~{r['shards']:g} shards), {si(r['raw_tokens'])} "
                     f"raw tokens -> {si(r['unique_tokens'])} unique tokens (90 % band "
                     f"{si(r['unique_tokens_low'])}–{si(r['unique_tokens_high'])}), cost {format_usd(r['cost_usd'])}"
                     f"{value}")
    lines += [f"  {s['source']} stops: {s['reason']}" for s in result["stopped"]]
    if result["unallocated_usd"] is not None:
        lines.append(f"unallocated: {format_usd(result['unallocated_usd'])}")
    lines.append(f"rule: {result['rule']}")
    return "\n".join(lines)
