"""The yield curve U(R): cumulative unique kept tokens against cumulative raw tokens (DESIGN.md section 4).

Pure numpy: no Dask, no I/O, no scipy. Input is the ledger's cumulative series per batch in arrival order:
raw tokens ``R``, unique kept tokens ``U`` and processing cost in dollars ``C``.

Models (all three are fitted; one is chosen):

* ``power_law``        U = K * R**gamma                  (Heaps-like; gamma in (0, 1] typical)
* ``exponential``      U = U_inf * (1 - exp(-R / R0))    (saturating: a finite pool sampled at random)
* ``michaelis_menten`` U = U_inf * R / (R + R0)          (saturating, with a slower, 1/R approach)

Every model is fitted by least squares on ``ln U`` (so each batch weighs by its *relative* error, the same
measure the model choice uses). The power law is ordinary least squares on (ln R, ln U). The saturating forms
are profiled: for a fixed R0, ``ln U_inf`` has the closed form mean(ln U - ln g(R; R0)); the profile error is
scanned over a log grid of R0 (from 1e-3 x the smallest to 1e6 x the largest R) and refined by golden-section
search in ln R0. Batches with R <= 0 or U <= 0 carry no information in log space and are left out of fits
(every model has U(0) = 0).

Definitions (chosen here; the report quotes them):

* **Model choice** – hold out the last ``h = max(1, round(0.25 n))`` batches (halves round up), fit every
  model on the first ``n - h``, and forecast the held-out cumulative U the way :func:`extrapolate` would:
  anchored on the last training batch, ``U_a + f(R_i) - f(R_a)``. The error is the mean absolute relative
  error of those forecasts; the lowest wins (ties go to the simpler/earlier model in ``MODELS``). The chosen
  model is then refitted on all batches. ``holdout=0`` chooses by in-sample RMS error of ln U instead.
* **Marginal yield** – dU/dR of the chosen model at the last batch's R (analytic derivative).
* **dR/dC** – raw tokens per dollar over the last ``w = max(1, round(0.25 n))`` batches
  (sum of their raw tokens / sum of their cost): processing cost is close to proportional to raw tokens, so the
  recent average is the current exchange rate, and a window smooths one noisy batch. dU/dC = dU/dR * dR/dC.
* **Band** – residual bootstrap over batches on the *increments*. The chosen curve gives each batch an expected
  increment dU_i = f(R_i) - f(R_{i-1}); its multiplicative residual is e_i = (observed increment) / dU_i. A
  resample draws, for every batch, the residual of a random batch (with replacement), rebuilds the cumulative
  U in the original order and R, and refits the chosen model; dR/dC is resampled jointly by drawing w batches
  of the rate window with replacement. Resampling raw increments and re-cumulating them would shuffle early,
  duplicate-poor batches after late, duplicate-rich ones and so erase the very curvature being measured; a
  residual bootstrap keeps the order and the shape and moves only the batch-to-batch noise. The band is the
  ``(1 - level)/2`` and ``(1 + level)/2`` percentiles (default 5th/95th of 200 resamples), with a seeded
  generator, so it is deterministic. It is a band on the *expected* yield (curve uncertainty), not a prediction
  interval for one batch's realised yield. The model itself is not re-chosen in resamples.
* **Extrapolation** – each future batch brings the mean raw tokens and mean cost of the same last ``w``
  batches (overridable). Predicted cumulative U is anchored on the last observed U:
  ``U_n + f(R_n + j dR) - f(R_n)``; new unique tokens per batch are the curve's increments; tokens per dollar is
  new unique tokens / batch cost (the ledger's ``tokens_per_usd``). The band applies the bootstrap curves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MODELS = ("power_law", "exponential", "michaelis_menten")
_GRID_LOW = 1e-3       # R0 grid starts at this fraction of the smallest positive R
_GRID_HIGH = 1e6       # ... and ends at this multiple of the largest R (the form is then linear to ~1e-6)
_GRID_POINTS_PER_DECADE = 24


@dataclass
class CurveFit:
    """A fitted yield curve. ``reason`` is set when no curve could be fitted (then ``model`` is ``"none"`` and
    the numbers are NaN), or when U is constant (``model`` is ``"constant"``, marginal yield 0)."""

    model: str
    params: dict[str, float]
    gamma: float | None
    holdout_error: dict[str, float]
    marginal_yield: float
    marginal_yield_band: tuple[float, float]
    marginal_per_usd: float
    marginal_per_usd_band: tuple[float, float]
    reason: str | None = None
    selection: str = "holdout"               # "holdout" or "in-sample"
    n_batches: int = 0
    holdout: int = 0                         # batches held out for the model choice
    window: int = 0                          # recent batches for dR/dC and the extrapolation's batch size
    raw_per_usd: float = math.nan            # dR/dC
    raw_per_batch: float = math.nan          # mean raw tokens per batch over the window
    cost_per_batch: float = math.nan         # mean cost per batch over the window
    level: float = 0.90
    bootstrap: int = 0                       # resamples that gave a fit
    fits: dict[str, dict[str, float]] = field(default_factory=dict)  # every model's parameters on all batches
    notes: list[str] = field(default_factory=list)
    boot_params: list[dict[str, float]] = field(default_factory=list, repr=False, compare=False)


# --------------------------------------------------------------------------------------------------- models
def _curve(model: str, params: dict[str, float], R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if model == "power_law":
            out = params["K"] * np.where(R > 0, np.power(np.where(R > 0, R, 1.0), params["gamma"]), 0.0)
        elif model == "exponential":
            out = params["U_inf"] * -np.expm1(-np.maximum(R, 0.0) / params["R0"])
        elif model == "michaelis_menten":
            Rp = np.maximum(R, 0.0)
            out = params["U_inf"] * Rp / (Rp + params["R0"])
        elif model == "constant":
            out = np.where(R > 0, params["U"], 0.0)
        else:
            out = np.full(R.shape, np.nan)
    return out


def _derivative(model: str, params: dict[str, float], R: float) -> float:
    if model == "power_law":
        return params["K"] * params["gamma"] * R ** (params["gamma"] - 1.0) if R > 0 else math.nan
    if model == "exponential":
        return params["U_inf"] / params["R0"] * math.exp(-R / params["R0"])
    if model == "michaelis_menten":
        return params["U_inf"] * params["R0"] / (R + params["R0"]) ** 2
    if model == "constant":
        return 0.0
    return math.nan


def _log_g(model: str, R: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ln of the saturating shape g(R; R0 = e^s), for a vector of s (rows) and R (columns)."""
    R0 = np.exp(s)[:, None]
    if model == "exponential":
        return np.log(-np.expm1(-R[None, :] / R0))
    return np.log(R)[None, :] - np.log(R[None, :] + R0)


def _fit_power(R: np.ndarray, U: np.ndarray) -> dict[str, float] | None:
    x, y = np.log(R), np.log(U)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if len(R) < 2 or sxx <= 1e-24 * max(1.0, float(x @ x)):
        return None
    gamma = float(xc @ (y - y.mean())) / sxx
    return {"K": float(math.exp(y.mean() - gamma * x.mean())), "gamma": gamma}


def _fit_saturating(model: str, R: np.ndarray, U: np.ndarray) -> tuple[dict[str, float], bool] | None:
    """Profile least squares on ln U; returns (params, hit_grid_boundary)."""
    x = np.log(R)
    if len(R) < 2 or float(np.ptp(x)) <= 1e-12:
        return None
    y = np.log(U)
    lo, hi = math.log(R.min() * _GRID_LOW), math.log(R.max() * _GRID_HIGH)
    points = int((hi - lo) / math.log(10) * _GRID_POINTS_PER_DECADE) + 1
    grid = np.linspace(lo, hi, points)

    def profile(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = y[None, :] - _log_g(model, R, s)
        a = d.mean(axis=1)
        return ((d - a[:, None]) ** 2).sum(axis=1), a

    sse, _ = profile(grid)
    i = int(np.argmin(sse))
    a_s, b_s = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
    # golden-section search for the minimum of the profile error in ln R0
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b_s - phi * (b_s - a_s), a_s + phi * (b_s - a_s)
    fc, fd = profile(np.array([c]))[0][0], profile(np.array([d]))[0][0]
    for _ in range(200):
        if b_s - a_s <= 1e-12 * max(1.0, abs(a_s)):
            break
        if fc < fd:
            b_s, d, fd = d, c, fc
            c = b_s - phi * (b_s - a_s)
            fc = profile(np.array([c]))[0][0]
        else:
            a_s, c, fc = c, d, fd
            d = a_s + phi * (b_s - a_s)
            fd = profile(np.array([d]))[0][0]
    candidates = np.array([grid[i], 0.5 * (a_s + b_s)])
    sse_c, a_c = profile(candidates)
    j = int(np.argmin(sse_c))
    s_best, ln_uinf = float(candidates[j]), float(a_c[j])
    at_bound = i == 0 or i == points - 1
    return {"U_inf": float(math.exp(ln_uinf)), "R0": float(math.exp(s_best))}, at_bound


def _fit(model: str, R: np.ndarray, U: np.ndarray) -> tuple[dict[str, float] | None, bool]:
    """Fit one model on the usable points (R > 0 and U > 0) of a series."""
    keep = (R > 0) & (U > 0)
    R, U = R[keep], U[keep]
    if len(R) < 2:
        return None, False
    if model == "power_law":
        return _fit_power(R, U), False
    res = _fit_saturating(model, R, U)
    return (None, False) if res is None else res


# ---------------------------------------------------------------------------------------------------- API
def _no_fit(reason: str, n: int, **extra) -> CurveFit:
    nan = math.nan
    return CurveFit(model="none", params={}, gamma=None, holdout_error={}, marginal_yield=nan,
                    marginal_yield_band=(nan, nan), marginal_per_usd=nan, marginal_per_usd_band=(nan, nan),
                    reason=reason, n_batches=n, **extra)


def _default_window(n: int) -> int:
    return max(1, int(0.25 * n + 0.5))  # round half up (round() would give 2 for n = 10)


def fit_yield_curve(R, U, C, holdout: int | None = None, bootstrap: int = 200, seed: int = 0, *,
                    window: int | None = None, level: float = 0.90) -> CurveFit:
    """Fit U(R) on the cumulative per-batch series, choose the model on the held-out last batches and report
    the marginal yield at the last batch with a bootstrap band. Degenerate inputs give a ``reason``, not an
    exception (only arrays of unequal length raise ``ValueError``)."""
    R, U, C = (np.asarray(v, dtype=float).ravel() for v in (R, U, C))
    if not (len(R) == len(U) == len(C)):
        raise ValueError(f"R, U and C must have one value per batch (got {len(R)}, {len(U)}, {len(C)})")
    n = len(R)
    if n < 3:
        return _no_fit(f"need at least 3 batches to fit a yield curve, got {n}", n)
    if not (np.isfinite(R).all() and np.isfinite(U).all() and np.isfinite(C).all()):
        return _no_fit("R, U or C contains NaN or infinite values", n)
    if (R < 0).any() or (U < 0).any() or (C < 0).any():
        return _no_fit("R, U or C contains negative values", n)
    for name, v in (("R", R), ("U", U), ("C", C)):
        if (np.diff(v) < 0).any():
            return _no_fit(f"{name} decreases between batches: the series must be cumulative", n)
    if R[-1] <= 0:
        return _no_fit("no raw tokens in any batch (R is all zero)", n)

    w = min(n, window if window is not None and window >= 1 else _default_window(n))
    dR, dU, dC = np.diff(R, prepend=0.0), np.diff(U, prepend=0.0), np.diff(C, prepend=0.0)
    raw_w, cost_w = float(dR[-w:].sum()), float(dC[-w:].sum())
    rate = raw_w / cost_w if cost_w > 0 else math.nan
    common = dict(n_batches=n, window=w, raw_per_usd=rate, raw_per_batch=raw_w / w, cost_per_batch=cost_w / w,
                  level=level)
    notes: list[str] = []
    if not cost_w > 0:
        notes.append(f"no cost recorded in the last {w} batches: dR/dC and dU/dC are undefined")

    active = R > 0
    if float(np.ptp(R[active])) == 0.0:
        return _no_fit("R takes a single positive value: no batch after the first brought raw tokens", n,
                       notes=notes, **{k: v for k, v in common.items() if k != "n_batches"})
    if float(np.ptp(U[active])) == 0.0:
        value = float(U[active][0])
        why = ("no unique tokens kept in any batch" if value == 0 else
               "U is constant: no batch after the first added unique tokens")
        per_usd = 0.0 if math.isfinite(rate) else math.nan
        return CurveFit(model="constant", params={"U": value}, gamma=0.0 if value > 0 else None,
                        holdout_error={}, marginal_yield=0.0, marginal_yield_band=(0.0, 0.0),
                        marginal_per_usd=per_usd, marginal_per_usd_band=(per_usd, per_usd),
                        reason=f"{why}; the marginal yield is 0", selection="none", notes=notes, **common)
    usable = int(((R > 0) & (U > 0)).sum())
    if usable < 3:
        return _no_fit(f"need at least 3 batches with raw and unique tokens (R > 0 and U > 0), got {usable}",
                       n, notes=notes, **{k: v for k, v in common.items() if k != "n_batches"})

    # ---- model choice on the held-out last batches
    h = _default_window(n) if holdout is None else max(0, int(holdout))
    if h > n - 2:
        notes.append(f"holdout {h} leaves fewer than 2 training batches; using {n - 2}")
        h = n - 2
    errors: dict[str, float] = {}
    selection = "holdout"
    if h > 0:
        a = n - h - 1  # last training batch
        for model in MODELS:
            p, _ = _fit(model, R[: a + 1], U[: a + 1])
            if p is None:
                continue
            pred = U[a] + _curve(model, p, R[a + 1:]) - _curve(model, p, R[a])
            obs = U[a + 1:]
            ok = obs > 0
            errors[model] = float(np.mean(np.abs(pred[ok] - obs[ok]) / obs[ok])) if ok.any() else math.nan
        if not errors or not all(math.isfinite(e) for e in errors.values()):
            notes.append("the training batches could not fit every model; choosing by in-sample error")
            errors, selection = {}, "in-sample"
    else:
        selection = "in-sample"

    fits: dict[str, dict[str, float]] = {}
    in_sample: dict[str, float] = {}
    keep = (R > 0) & (U > 0)
    for model in MODELS:
        p, at_bound = _fit(model, R, U)
        if p is None:
            continue
        fits[model] = p
        resid = np.log(_curve(model, p, R[keep])) - np.log(U[keep])
        in_sample[model] = float(np.sqrt(np.mean(resid ** 2)))
        if at_bound:
            notes.append(f"{model}: R0 at the edge of its grid (the form degenerates to "
                         f"{'linear' if p['R0'] > R.max() else 'constant'} over the data)")
    if not fits:
        return _no_fit("no model could be fitted (R takes a single positive value)", n, notes=notes,
                       **{k: v for k, v in common.items() if k != "n_batches"})
    scores = {m: e for m, e in errors.items() if m in fits} if selection == "holdout" else in_sample
    if not scores:
        scores, selection = in_sample, "in-sample"
    best = min(scores.values())
    model = next(m for m in MODELS if m in scores and scores[m] <= best + 1e-12 + 1e-9 * abs(best))
    params = fits[model]
    gamma = fits["power_law"]["gamma"] if "power_law" in fits else None
    if gamma is not None and not 0 < gamma <= 1:
        notes.append(f"power-law gamma {gamma:.3f} is outside (0, 1]")

    marginal = _derivative(model, params, float(R[-1]))
    per_usd = marginal * rate

    # ---- residual bootstrap over batches on the increments
    boot_params: list[dict[str, float]] = []
    my_band: tuple[float, float] = (marginal, marginal)
    usd_band: tuple[float, float] = (per_usd, per_usd)
    if bootstrap > 0:
        f = _curve(model, params, R)
        expected = np.diff(f, prepend=0.0)
        pool_mask = (dR > 0) & (expected > 1e-12 * max(float(f[-1]), 1e-300))
        pool = dU[pool_mask] / expected[pool_mask]
        if len(pool) == 0:
            notes.append("no batch has a positive expected increment: no bootstrap band")
        else:
            rng = np.random.default_rng(seed)
            win_dR, win_dC = dR[-w:], dC[-w:]
            my, usd = [], []
            for _ in range(bootstrap):
                eps = rng.choice(pool, size=n, replace=True)
                idx = rng.integers(0, w, size=w)
                U_star = np.cumsum(np.where(dR > 0, expected * eps, 0.0))
                p_star, _ = _fit(model, R, U_star)
                if p_star is None:
                    continue
                cost_star = float(win_dC[idx].sum())
                rate_star = float(win_dR[idx].sum()) / cost_star if cost_star > 0 else math.nan
                d_star = _derivative(model, p_star, float(R[-1]))
                boot_params.append(p_star)
                my.append(d_star)
                usd.append(d_star * rate_star)
            if my:
                q = [50 * (1 - level), 50 * (1 + level)]
                lo, hi = np.percentile(my, q)
                my_band = (float(lo), float(hi))
                usd_arr = np.asarray(usd)
                if np.isfinite(usd_arr).all():
                    lo, hi = np.percentile(usd_arr, q)
                    usd_band = (float(lo), float(hi))
                else:
                    usd_band = (math.nan, math.nan)
            if len(boot_params) < bootstrap:
                notes.append(f"{bootstrap - len(boot_params)} of {bootstrap} bootstrap resamples gave no fit")

    return CurveFit(model=model, params=params, gamma=gamma, holdout_error=errors, marginal_yield=marginal,
                    marginal_yield_band=my_band, marginal_per_usd=per_usd, marginal_per_usd_band=usd_band,
                    reason=None, selection=selection, holdout=h if selection == "holdout" else 0,
                    bootstrap=len(boot_params), fits=fits, notes=notes, boot_params=boot_params, **common)


def predict(fit: CurveFit, R) -> np.ndarray:
    """The fitted curve U(R) (not anchored on observed values); NaN when no curve was fitted."""
    return _curve(fit.model, fit.params, R)


def heaps_gamma(raw_tokens: float, unique_tokens: float, n_batches: int) -> float:
    """The power-law gamma implied by end points alone: with n equal batches and the first batch entirely unique
    (K = r**(1 - gamma) for a batch of r raw tokens), U/R = n**(gamma - 1), so gamma = 1 + ln(U/R) / ln n."""
    return 1.0 + math.log(unique_tokens / raw_tokens) / math.log(n_batches)


def extrapolate(fit: CurveFit, R, U, C, k: int = 5, *, raw_per_batch: float | None = None,
                cost_per_batch: float | None = None) -> list[dict]:
    """The next ``k`` batches after the observed series (the one ``fit`` was made on). Each future batch brings
    ``raw_per_batch`` raw tokens at ``cost_per_batch`` dollars (default: the means over the fit's recent window).
    Cumulative U is anchored on the last observed U; bands are the fit's bootstrap percentiles. Returns an
    empty list when no curve was fitted."""
    R, U, C = (np.asarray(v, dtype=float).ravel() for v in (R, U, C))
    if fit.model == "none" or len(R) == 0 or k <= 0:
        return []
    dr = fit.raw_per_batch if raw_per_batch is None else float(raw_per_batch)
    dc = fit.cost_per_batch if cost_per_batch is None else float(cost_per_batch)
    n = len(R)
    steps = np.arange(1, k + 1, dtype=float)
    R_future = R[-1] + steps * dr
    grid = np.concatenate([[R[-1]], R_future])
    curves = [_curve(fit.model, fit.params, grid)]
    curves += [_curve(fit.model, p, grid) for p in fit.boot_params]
    cum = np.array([U[-1] + c[1:] - c[0] for c in curves])      # anchored cumulative U, one row per curve
    new = np.array([np.diff(c) for c in curves])
    q = [50 * (1 - fit.level), 50 * (1 + fit.level)]
    if len(curves) > 1:
        cum_lo, cum_hi = np.percentile(cum[1:], q, axis=0)
        new_lo, new_hi = np.percentile(new[1:], q, axis=0)
    else:
        cum_lo = cum_hi = cum[0]
        new_lo = new_hi = new[0]

    def per_usd(x: float) -> float | None:
        return float(x / dc) if dc > 0 else None

    rows = []
    for j in range(k):
        rows.append({
            "batch": n + j,                               # 0-based index, continuing the ledger's batches
            "raw_tokens": float(R_future[j]),
            "unique_tokens": float(cum[0, j]),
            "unique_tokens_low": float(cum_lo[j]),
            "unique_tokens_high": float(cum_hi[j]),
            "new_unique": float(new[0, j]),
            "new_unique_low": float(new_lo[j]),
            "new_unique_high": float(new_hi[j]),
            "cost_usd": float(C[-1] + (j + 1) * dc),
            "tokens_per_usd": per_usd(new[0, j]),
            "tokens_per_usd_low": per_usd(new_lo[j]),
            "tokens_per_usd_high": per_usd(new_hi[j]),
        })
    return rows


def _json_float(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def as_dict(fit: CurveFit) -> dict:
    """A JSON-serialisable summary (NaN and infinities become None; bootstrap samples are left out)."""
    return {
        "model": fit.model,
        "params": {k: _json_float(v) for k, v in fit.params.items()},
        "gamma": _json_float(fit.gamma),
        "holdout_error": {k: _json_float(v) for k, v in fit.holdout_error.items()},
        "selection": fit.selection,
        "marginal_yield": _json_float(fit.marginal_yield),
        "marginal_yield_band": [_json_float(v) for v in fit.marginal_yield_band],
        "marginal_per_usd": _json_float(fit.marginal_per_usd),
        "marginal_per_usd_band": [_json_float(v) for v in fit.marginal_per_usd_band],
        "reason": fit.reason,
        "n_batches": fit.n_batches,
        "holdout": fit.holdout,
        "window": fit.window,
        "raw_per_usd": _json_float(fit.raw_per_usd),
        "raw_per_batch": _json_float(fit.raw_per_batch),
        "cost_per_batch": _json_float(fit.cost_per_batch),
        "level": fit.level,
        "bootstrap": fit.bootstrap,
        "fits": {m: {k: _json_float(v) for k, v in p.items()} for m, p in fit.fits.items()},
        "notes": list(fit.notes),
    }
