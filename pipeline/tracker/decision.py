"""The decision: what the next batch is worth, what it costs in full, and how many more batches to process.

Inputs are the ledger, the fitted yield curve (with its bootstrap curves) and the value model
(:func:`corpusslim.tracker.value.price_batch`). Costs use the ledger's cost basis (pinned or fitted over all batches,
never one batch's measured CPU), so the answer does not move with machine load. Values and costs are compared at pool
scale (a run that is a sample of ``value.sample_fraction`` of the pool stands for batches 1 / fraction times larger).

Forward stop rule: every curve (the point fit and each bootstrap resample) forecasts the next ``HORIZON`` batches;
a batch is worth its new unique tokens times the value per unique token at its pool size, and costs the cost basis
of its raw and kept tokens. The stop count of a curve is the number of batches processed before the first whose
value is below its cost; the printed range is the 5-95 % range over the resamples, the "most likely" count the point
fit's. The value per unique token is priced exactly (:func:`price_batch`) on a log grid of pool sizes and
interpolated; the point forecast's stop is then found again with exact prices, and the headline names it as "most
likely" only when it lies inside the range.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from corpusslim.config import RunConfig, ValueConfig
from corpusslim.tracker.curve import (
    CurveFit,
    as_dict,
    extrapolate,
    fit_yield_curve,
    future_increments,
    next_batch_band,
    predict,
)
from corpusslim.tracker.ledger import CostBasis, cost_basis
from corpusslim.tracker.value import BatchValue, format_usd, price_batch, target_pool

HORIZON = 200          # future batches searched for the stop point
GRID_POINTS = 24       # pool sizes priced exactly for the value per unique token
EXACT_STEPS = 10       # batches the exact check of the point forecast's stop may move


@dataclass(frozen=True)
class StopRange:
    """How many more batches are worth processing: the point fit's count and the band over the resamples.
    ``beyond`` is True when the band reaches the horizon (the stop may lie further out than was searched)."""

    batches_more: int
    low: int
    high: int
    horizon: int
    beyond: bool


def batches_worth(increments: np.ndarray, unique_last: float, value_per_token: Callable[[np.ndarray], np.ndarray],
                  cost_fixed: float, cost_per_unique: float) -> np.ndarray:
    """Per curve (row): how many future batches are worth processing, as a continuous count. A batch of dU new
    unique tokens on top of U is worth dU x value_per_token(U + dU / 2) (the batch's midpoint) and costs
    cost_fixed + cost_per_unique x dU. With batch k (0-based) the first whose margin (value - cost) is negative,
    the count is where the margin, linear between batch centres k - 1/2 and k + 1/2, crosses zero: in [k - 1/2,
    k + 1/2], so it rounds to k. 0 when the next batch is already below; the horizon when no batch is."""
    before = unique_last + np.cumsum(increments, axis=1) - increments
    margin = increments * value_per_token(before + increments / 2) - (cost_fixed + cost_per_unique * increments)
    below = margin < 0
    k = below.argmax(axis=1)
    rows = np.arange(len(margin))
    prev = margin[rows, np.maximum(k - 1, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(k > 0, prev / (prev - margin[rows, k]), 0.5)
    frac = np.where(np.isfinite(frac), frac, 1.0)
    count = np.where(k > 0, k - 0.5 + frac, 0.0)
    return np.where(below.any(axis=1), count, float(increments.shape[1]))


def stop_range(counts: np.ndarray, horizon: int, level: float = 0.90) -> StopRange:
    """The point count (row 0, rounded) and the (1 - level)/2 .. (1 + level)/2 percentiles of the resampled counts
    (rows 1..), rounded down and up."""
    rest = counts[1:] if len(counts) > 1 else counts
    low, high = np.percentile(rest, [50 * (1 - level), 50 * (1 + level)])
    return StopRange(int(round(counts[0])), int(math.floor(low)), min(int(math.ceil(high)), horizon), horizon,
                     bool(high >= horizon))


def value_per_token_curve(price: Callable[[float, float], tuple[str, float | None]], unique_low: float,
                          unique_high: float, batch_unique: Callable[[float], float],
                          ) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """Dollars per new unique token as a function of the pool size U, from exact prices of a batch of
    ``batch_unique(U)`` tokens (the forecast batch size there) at ``GRID_POINTS`` log-spaced pool sizes (linear in
    ln U between them, constant beyond). ``price(U, dU)`` returns (status, usd). Returns the function and the worst
    status met: "priced", "unbounded" (those pool sizes count as infinitely valuable) or "outside_law" (callers
    must not price)."""
    grid = np.geomspace(max(unique_low, 1.0), max(unique_high, unique_low * (1 + 1e-9), 1.0), GRID_POINTS)
    per_token, statuses = [], set()
    for u in grid:
        du = max(batch_unique(float(u)), 1.0)
        status, usd = price(float(u), du)
        statuses.add(status)
        per_token.append(math.inf if status == "unbounded" else (usd or 0.0) / du)
    worst = "outside_law" if "outside_law" in statuses else "unbounded" if "unbounded" in statuses else "priced"
    log_grid = np.log(grid)
    values = np.minimum(np.asarray(per_token), 1e300)   # unbounded: larger than any cost

    def value(u: np.ndarray) -> np.ndarray:
        return np.interp(np.log(np.maximum(u, 1.0)), log_grid, values)

    return value, worst


# ------------------------------------------------------------------------------------------------ summary
def si(x: float | None, unit: str = "") -> str:
    """A count with an SI suffix and three significant digits: 1.23M, 45.6B (n/a for None)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _price(value: ValueConfig, before: float, added: float) -> BatchValue:
    """price_batch, except that a batch that added nothing to an existing pool is priced at $0."""
    if added <= 0 < before:
        return BatchValue("priced", 0.0, 0.0, None, None, None, "no new unique tokens")
    return price_batch(value, before, added)


def _observed(ledger: pl.DataFrame, config: RunConfig, basis: CostBasis) -> list[dict]:
    """Ledger rows with each batch's value (status, dollars, reason) and decision cost (run and pool scale)."""
    scale = 1.0 / config.value.sample_fraction
    rows = []
    for row in ledger.to_dicts():
        v = _price(config.value, row["cum_unique_tokens"] - row["new_unique_tokens"], row["new_unique_tokens"])
        cost = float(basis.batch(row["raw_tokens"], row["new_unique_tokens"]))
        rows.append({**row, "value_status": v.status, "value_usd": v.usd, "value_reason": v.reason,
                     "decision_cost_usd": cost, "pool_cost_usd": cost * scale})
    return rows


def _next_batch(fit: CurveFit, config: RunConfig, basis: CostBasis, R: float, U: float) -> dict:
    """The next batch: expected new unique tokens with a prediction band, its value (band from the token band)
    and its full cost by component, values and costs at pool scale."""
    scale, dr = 1.0 / config.value.sample_fraction, fit.raw_per_batch
    du, du_lo, du_hi = next_batch_band(fit, R)
    v, v_lo, v_hi = (_price(config.value, U, max(x, 0.0)) for x in (du, du_lo, du_hi))
    components = {"cpu_usd": basis.cpu_usd_per_raw_token * dr * scale,
                  "acquisition_usd": basis.acquisition_usd_per_raw_token * dr * scale,
                  "storage_usd": basis.storage_usd_per_unique_token * du * scale}
    return {"raw_tokens": dr, "new_unique": du, "new_unique_low": du_lo, "new_unique_high": du_hi,
            "value_status": v.status, "value_usd": v.usd, "value_reason": v.reason,
            "value_usd_low": v_lo.usd, "value_usd_high": v_hi.usd, "cost_usd": sum(components.values()),
            "cost_components": components}


def _forward(fit: CurveFit, config: RunConfig, basis: CostBasis, R: float, U: float, nxt: dict) -> dict:
    """The forward stop rule: counts per curve, their range, and the exact check of the batches it names."""
    if nxt["value_status"] == "outside_law":
        return {"reason": f"outside the {config.value.law} law: {nxt['value_reason']}"}
    scale, dr = 1.0 / config.value.sample_fraction, fit.raw_per_batch
    inc = future_increments(fit, R, HORIZON)
    mid = U + np.cumsum(inc[0]) - inc[0] / 2                 # the point forecast's batch midpoints
    per_token, worst = value_per_token_curve(lambda u, du: _status_usd(config.value, u, du), U,
                                             U + float(inc.sum(axis=1).max()),
                                             lambda u: float(np.interp(u, mid, inc[0])))
    if worst == "outside_law":
        return {"reason": f"the forecast pool leaves the range of the {config.value.law} law within "
                          f"{HORIZON} batches"}
    fixed = (basis.cpu_usd_per_raw_token + basis.acquisition_usd_per_raw_token) * dr * scale
    counts = batches_worth(inc, U, per_token, fixed, basis.storage_usd_per_unique_token * scale)
    band = stop_range(counts, HORIZON, fit.level)
    exact = _exact_stop(band.batches_more, inc[0], U, config, basis, dr)
    return {"batches_more": band.batches_more if exact is None else exact, "low": band.low, "high": band.high,
            "horizon": HORIZON, "beyond_horizon": band.beyond,
            "checked": exact is not None and band.low <= exact <= band.high}


def _status_usd(value: ValueConfig, u: float, du: float) -> tuple[str, float | None]:
    b = _price(value, u, du)
    return b.status, b.usd


def _exact_stop(k: int, inc: np.ndarray, U: float, config: RunConfig, basis: CostBasis, dr: float) -> int | None:
    """The point forecast's stop count with exact prices, searched from the interpolated count ``k``: the first
    batch whose value is below its full cost, or the horizon when the last one is not; None when that is more than
    ``EXACT_STEPS`` batches from ``k``."""
    scale = 1.0 / config.value.sample_fraction
    before = U + np.cumsum(inc) - inc

    def below(j: int) -> bool:
        v = _price(config.value, float(before[j]), float(inc[j]))
        worth = math.inf if v.status == "unbounded" else (v.usd or 0.0)
        return worth < float(basis.batch(dr, inc[j])) * scale

    j = min(k, len(inc) - 1)
    for _ in range(EXACT_STEPS):
        if not below(j):
            if j + 1 >= len(inc):
                return len(inc)
            j += 1
        elif j > 0 and below(j - 1):
            j -= 1
        else:
            return j
    return None


def _future_rows(fit: CurveFit, R: list[float], U: list[float], C: list[float], config: RunConfig,
                 basis: CostBasis) -> list[dict]:
    """The extrapolated next batches, each priced exactly on the point forecast, with its full cost."""
    scale = 1.0 / config.value.sample_fraction
    rows = extrapolate(fit, R, U, C, k=config.value.extrapolate_batches)
    for r in rows:
        before = r["unique_tokens"] - r["new_unique"]
        v, lo, hi = (_price(config.value, before, r[k]) for k in ("new_unique", "new_unique_low", "new_unique_high"))
        r.update(value_status=v.status, value_usd=v.usd, value_reason=v.reason, value_usd_low=lo.usd,
                 value_usd_high=hi.usd, pool_cost_usd=float(basis.batch(fit.raw_per_batch, r["new_unique"])) * scale)
    return rows


def _worth(status: str | None, usd: float | None, reason: str = "") -> str:
    """A value in words, keeping "unbounded", "outside the law" and "n/a" apart."""
    if status == "priced":
        return format_usd(usd or 0.0)
    if status == "unbounded":
        return "unbounded"
    if status == "outside_law":
        return "outside the law"
    return f"n/a ({reason})" if reason else "n/a"


def _stop_words(stop: dict) -> str:
    if "reason" in stop:
        return f"no stop point ({stop['reason']})"
    k, lo, hi = stop["batches_more"], stop["low"], stop["high"]
    if stop["beyond_horizon"] and lo >= stop["horizon"] and stop["checked"]:
        return f"keep going: every one of the next {stop['horizon']} batches is expected to be worth its cost"
    if hi == 0:
        return "stop now: it is expected to be worth less than it costs"
    likely = f", most likely {k}" if stop["checked"] and lo <= k <= hi else ""
    more = f"{lo}–{hi}" if lo < hi else f"{lo}"
    tail = f" (or more: the range reaches the {stop['horizon']}-batch horizon)" if stop["beyond_horizon"] else ""
    return f"stop after {more} more batches{likely}{tail}"


def headline(n: int, total_unique: float, fit: CurveFit, nxt: dict | None, stop: dict, last: dict | None,
             config: RunConfig) -> str:
    """The one-sentence answer. Zero-batch, all-rejected and too-short runs say what can and cannot be concluded."""
    if n == 0:
        return "No batch finished: nothing can be said yet about what more raw data is worth."
    if total_unique == 0:
        return (f"None of the {n} batch(es) kept a document: more of the same raw data adds nothing unless the "
                f"filters change; no value or stop point can be given.")
    if nxt is None:
        worth = _worth(last["value_status"], last["value_usd"], last["value_reason"])
        return (f"Only {n} batch(es) finished (the last worth {worth}): a yield curve needs at least 3 batches, so "
                f"neither the next batch's value nor a stop point can be forecast yet.")
    if fit.model == "constant":
        return (f"Stop now: no batch after the first added new unique tokens, so the next is expected to add none "
                f"while costing {format_usd(nxt['cost_usd'])} in full.")
    pool = f" (pool scale: this run is a {config.value.sample_fraction:.3g} sample)" \
        if config.value.sample_fraction < 1 else ""
    brings = (f"The next batch is expected to bring {si(nxt['new_unique'])} new unique tokens (90 % band "
              f"{si(nxt['new_unique_low'])}–{si(nxt['new_unique_high'])})")
    cost = format_usd(nxt["cost_usd"])
    if nxt["value_status"] == "outside_law":
        return f"{brings} for {cost} in full{pool}; no dollar value or stop point: {nxt['value_reason']}."
    if nxt["value_status"] == "priced":
        lo, hi = format_usd(nxt["value_usd_low"] or 0.0), format_usd(nxt["value_usd_high"] or 0.0)
        worth = f"worth {format_usd(nxt['value_usd'])}" + (f" ({lo}–{hi})" if lo != hi else "")
    else:
        worth = f"worth {_worth(nxt['value_status'], nxt['value_usd'], nxt['value_reason'])}"
    return f"{brings}, {worth} against {cost} in full{pool}: {_stop_words(stop)}."


def summarise(ledger: pl.DataFrame, stats: dict, config: RunConfig) -> dict:
    """Every figure of the report, JSON-serialisable after :func:`json_safe`."""
    n = ledger.height
    basis = cost_basis(ledger, config.cost) if n else None
    batches = _observed(ledger, config, basis) if n else []
    R = [float(b["cum_raw_tokens"]) for b in batches]
    U = [float(b["cum_unique_tokens"]) for b in batches]
    C = list(np.cumsum([b["decision_cost_usd"] for b in batches]))
    fit = fit_yield_curve(R, U, C, seed=0)
    for b, fitted in zip(batches, predict(fit, R) if fit.curves is not None else [None] * n):
        b["fitted_unique"] = None if fitted is None else float(fitted)
    nxt = stop = None
    future: list[dict] = []
    if n and (fit.curves is not None or fit.model == "constant"):
        nxt = _next_batch(fit, config, basis, R[-1], U[-1])
        if fit.model != "constant":
            stop = _forward(fit, config, basis, R[-1], U[-1], nxt)
            future = _future_rows(fit, R, U, C, config, basis)
    stop = stop or {"reason": fit.reason or "no batch finished"}
    text = headline(n, U[-1] if U else 0.0, fit, nxt, stop, batches[-1] if batches else None, config)
    return {
        "headline": text, "recommendation": text, "stop": stop, "next_batch": nxt,
        "totals": stats["totals"], "value_assumptions": config.value.model_dump(),
        "cost_assumptions": config.cost.model_dump(),
        "cost_basis": None if basis is None else {**asdict(basis), "pool_scale": 1 / config.value.sample_fraction},
        "target_pool": {k: float(v) for k, v in target_pool(config.value).items()}, "batches": batches,
        "curve": as_dict(fit), "extrapolation": future,
        "removals": _removals(stats, n),
        "quarantined": stats["quarantined"],
    }


def _removals(stats: dict, n: int) -> list[dict]:
    """Removals per ledger batch. stats.json numbers this run's batches of done shards from 0; in the ledger they
    are its last rows (after an earlier run's, with --against)."""
    first = n - len(stats["batches"])
    return [{"batch": first + i, "stage": s["stage"], "reason": reason, **counts}
            for i, b in enumerate(stats["batches"]) for s in b["stages"] for reason, counts in s["removed"].items()]


def json_safe(value):
    """Strict JSON: NaN becomes null; an infinity is spelled "Infinity" (a value is never silently null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None if math.isnan(value) else ("Infinity" if value > 0
                                                                                  else "-Infinity")
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
