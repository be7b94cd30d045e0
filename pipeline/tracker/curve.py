"""The yield curve U(R): cumulative unique kept tokens against cumulative raw tokens (docs/ARCHITECTURE.md).

Pure numpy: no Dask, no I/O. Input is the ledger's cumulative series per batch in arrival order: raw tokens ``R``,
unique kept tokens ``U`` and cost in dollars ``C``.

Models, each ``U = a * Rs * g(R / Rs)`` with an amplitude ``a`` and one shape parameter (``Rs`` = the last R):

* ``power_law``        g = x**gamma                 (Heaps-like; gamma in (0, 1] typical)
* ``exponential``      g = 1 - exp(-x / r0)         (saturating: a finite pool sampled at random)
* ``michaelis_menten`` g = x / (x + r0)             (saturating, with a slower, 1/R approach)

Definitions (chosen here; the report quotes them):

* **Fit on increments.** The data are each batch's *fresh share* ``s_i = dU_i / dR_i`` (new unique tokens per raw
  token); the model's share is ``a * (g(x_i) - g(x_{i-1})) / dx_i``. Least squares on the shares, profiled: for a
  fixed shape parameter the amplitude is linear (closed form), and the shape parameter is found on a grid that is
  then zoomed in five times. Batches without raw tokens carry no share and are left out. Fitting the increments
  (not ln cumulative U) keeps each batch's noise in that batch instead of smearing it over all later points.
* **Model choice** – hold out the last ``h = round(0.25 n)`` batches (halves up; none when fewer than 3 would be
  left to train on), fit every model on the rest and forecast the held-out shares; the lowest mean absolute error
  wins (ties: earlier in ``MODELS``). Without a holdout the lowest in-sample squared error wins. The choice is
  made again inside every bootstrap resample, so the band carries the uncertainty of the choice.
* **Band** – a residual bootstrap that holds under correlated batches. Each resample is generated from one of
  the three fits, picked with its Akaike weight, so the band carries the doubt about the form; that fit's
  multiplicative residuals ``s_i / e_i`` (centred, inflated by ``sqrt(n / (n - 2))`` for the two fitted parameters)
  are resampled by an AR(1) sieve: a lag-1 autoregression of the residuals (bias-corrected) driven by resampled
  innovations, laid back on the expected shares in batch order. The model is then chosen again and refitted on the
  resample. In the setting of ``bench/curve_coverage.py`` (20 batches, AR(1) rho = 0.6) a moving-block bootstrap
  (blocks of ceil(n^(1/3)) batches, stretched for the residuals' autocorrelation) covered dU/dR in 65-68 % of 40-60
  seeds during development; this sieve with model weights covers 85-95 % in every case of that bench. The band
  is the ``(1 - level)/2`` and ``(1 + level)/2`` percentiles of the resamples (seeded: deterministic).
* **Many batches** – past ``MAX_POINTS`` batches the fit and the bootstrap run on groups of ``k = ceil(n /
  MAX_POINTS)`` consecutive batches (the last group ends at the last batch, the first may be shorter): the
  cumulative series is kept only at the groups' ends, so a group's share is its own dU/dR and the curve passes
  through the same cumulative points. Their cost then stops growing with the batches (two parameters need no
  more than a few hundred increments), and the holdout is the last quarter of the groups. The prediction band
  of the next batch keeps every batch's own residual (a batch's spread, not a group's).
* **Marginal yield** – dU/dR of the fitted curve at the last batch's R; dU/dC = dU/dR x dR/dC, with dR/dC = all raw
  tokens / all cost (every batch counts: one noisy batch moves it little).
* **Forecast** – each future batch brings the mean raw tokens of all batches. Its expected new unique tokens are
  the curve's increment; the *prediction* band of the next batch adds a resampled residual to each resampled
  curve (the spread of one batch's realised yield); the cumulative band comes from each resample's own cumulative
  path, anchored on the last observed U.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MODELS = ("power_law", "exponential", "michaelis_menten")
_GAMMA_GRID = np.linspace(0.01, 1.6, 160)   # power-law exponent grid (step 0.01)
_R0_LOW, _R0_HIGH = 1e-3, 1e4               # r0 grid: this fraction of the smallest x to this multiple of x = 1
_PER_DECADE = 24
_ZOOM_ROUNDS, _ZOOM_POINTS = 5, 11          # each round narrows the step five-fold: 1/3125 of the grid step
_PARAMS = 2                                 # fitted parameters per model (amplitude and shape)
MAX_POINTS = 200                            # batches fitted one by one; beyond, consecutive batches are grouped


@dataclass
class CurveFit:
    """A fitted yield curve. ``reason`` is set when no curve could be fitted (``model`` is ``"none"``, numbers NaN)
    or when no batch after the first added unique tokens (``model`` is ``"constant"``, marginal yield 0)."""

    model: str
    params: dict[str, float]
    gamma: float | None
    holdout_error: dict[str, float]
    marginal_yield: float
    marginal_yield_band: tuple[float, float]
    marginal_per_usd: float
    marginal_per_usd_band: tuple[float, float]
    reason: str | None = None
    selection: str = "holdout"               # "holdout", "in-sample" or "none"
    n_batches: int = 0
    holdout: int = 0                         # held-out fitting points (groups of ``group`` batches)
    group: int = 1                           # batches per fitting point
    raw_per_usd: float = math.nan            # dR/dC over all batches
    raw_per_batch: float = math.nan          # mean raw tokens per batch
    cost_per_batch: float = math.nan         # mean cost per batch
    level: float = 0.90
    bootstrap: int = 0
    model_share: dict[str, float] = field(default_factory=dict)  # how often each model won inside the resamples
    fits: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    curves: Curves | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Curves:
    """The point fit (row 0) and the bootstrap fits (rows 1..B) in a form that evaluates in one go."""

    model: np.ndarray        # index into MODELS, per row
    amplitude: np.ndarray
    theta: np.ndarray        # gamma (power law) or ln r0
    scale: float             # Rs: raw tokens at the last batch
    residuals: np.ndarray    # centred, inflated multiplicative residuals (for prediction bands)

    def cumulative(self, R) -> np.ndarray:
        """U(R) for every row: shape (rows, len(R))."""
        x = np.asarray(R, dtype=float)[None, :] / self.scale
        return self.amplitude[:, None] * self.scale * _by_model(_shape, self.model, self.theta, x)

    def slope(self, R: float) -> np.ndarray:
        """dU/dR at R for every row."""
        x = np.full((len(self.model), 1), R / self.scale)
        return self.amplitude * _by_model(_slope, self.model, self.theta, x)[:, 0]


# ------------------------------------------------------------------------------------------------- shapes
def _shape(model: str, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g(x; theta), broadcasting theta (..., 1) against x (..., n)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if model == "power_law":
            return np.where(x > 0, np.power(np.where(x > 0, x, 1.0), theta), 0.0)
        r0 = np.exp(theta)
        if model == "exponential":
            return -np.expm1(-x / r0)
        return x / (x + r0)


def _slope(model: str, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dg/dx."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if model == "power_law":
            return theta * np.power(x, theta - 1.0)
        r0 = np.exp(theta)
        if model == "exponential":
            return np.exp(-x / r0) / r0
        return r0 / (x + r0) ** 2


def _by_model(fn, model: np.ndarray, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``fn`` per row, each row with its own model and shape parameter."""
    out = np.empty(np.broadcast_shapes(theta[:, None].shape, x.shape))
    for i, name in enumerate(MODELS):
        rows = model == i
        if rows.any():
            out[rows] = fn(name, theta[rows][:, None], x[rows] if x.shape[0] == len(model) else x)
    return out


def _design(model: str, theta: np.ndarray, geom: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Model shares per unit amplitude, (g(x_i) - g(x_{i-1})) / dx_i, for theta of shape (..., 1)."""
    x, x_prev, dx = geom
    return (_shape(model, theta, x) - _shape(model, theta, x_prev)) / dx


def _grid(model: str, x_min: float) -> np.ndarray:
    if model == "power_law":
        return _GAMMA_GRID
    lo, hi = math.log(x_min * _R0_LOW), math.log(_R0_HIGH)
    return np.linspace(lo, hi, int((hi - lo) / math.log(10) * _PER_DECADE) + 1)


# ---------------------------------------------------------------------------------------------------- fitting
def _profile(S: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares amplitude and squared error of shares S (rows, n) on designs D (rows, k, n)."""
    num = np.einsum("bn,bkn->bk", S, D)
    den = np.einsum("bkn,bkn->bk", D, D)
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where((num > 0) & (den > 0), num / den, 0.0)
    sse = (S * S).sum(axis=1)[:, None] - amp * num
    return amp, np.where(np.isfinite(sse), sse, np.inf)


def _fit_model(model: str, S: np.ndarray, geom, x_min: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amplitude, shape parameter and squared error of ``model`` for every row of shares S: a grid, then zoom."""
    grid = _grid(model, x_min)
    D = _design(model, grid[:, None], geom)
    amp, sse = _profile(S, np.broadcast_to(D, (len(S), *D.shape)))
    best = np.argmin(sse, axis=1)
    theta, step = grid[best], float(grid[1] - grid[0])
    offsets = np.linspace(-1.0, 1.0, _ZOOM_POINTS)
    for _ in range(_ZOOM_ROUNDS):
        cand = theta[:, None] + step * offsets[None, :]
        if model == "power_law":
            cand = np.clip(cand, 1e-6, None)
        amp, sse = _profile(S, _design(model, cand[:, :, None], geom))
        k = np.argmin(sse, axis=1)
        rows = np.arange(len(S))
        theta, step = cand[rows, k], step * 2.0 / (_ZOOM_POINTS - 1)
    return amp[rows, k], theta, sse[rows, k]


def _shares(R: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Each increment's fresh share dU/dR, increments without raw tokens left out."""
    dR, dU = np.diff(R, prepend=0.0), np.diff(U, prepend=0.0)
    return (dU / np.where(dR > 0, dR, 1.0))[dR > 0]


def _geometry(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = R / R_last, the previous x and dx of the batches that brought raw tokens."""
    x = R / R[-1]
    x_prev = np.r_[0.0, x[:-1]]
    keep = x > x_prev
    return x[keep], x_prev[keep], (x - x_prev)[keep]


def _choose(S: np.ndarray, geom, h: int, x_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the chosen model's index and every model's score (held-out or in-sample error)."""
    scores = np.empty((len(S), len(MODELS)))
    n = S.shape[1]
    for j, model in enumerate(MODELS):
        if h == 0:
            scores[:, j] = _fit_model(model, S, geom, x_min)[2]
            continue
        train = tuple(g[: n - h] for g in geom)
        amp, theta, _ = _fit_model(model, S[:, : n - h], train, x_min)
        pred = amp[:, None] * _design(model, theta[:, None], tuple(g[n - h:] for g in geom))
        scores[:, j] = np.abs(pred - S[:, n - h:]).mean(axis=1)
    scores = np.where(np.isfinite(scores), scores, np.inf)
    return np.argmin(scores, axis=1), scores


def _fit_rows(S: np.ndarray, geom, h: int, x_min: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Model choice and fit for every row of shares: (model index, amplitude, theta, scores)."""
    chosen, scores = _choose(S, geom, h, x_min)
    amp, theta = np.empty(len(S)), np.empty(len(S))
    for j, model in enumerate(MODELS):
        rows = chosen == j
        if rows.any():
            amp[rows], theta[rows], _ = _fit_model(model, S[rows], geom, x_min)
    return chosen, amp, theta, scores


# -------------------------------------------------------------------------------------------------- bootstrap
def ar1_coefficient(e: np.ndarray) -> float:
    """Lag-1 autocorrelation of a residual series with the small-sample bias correction of the least-squares AR(1)
    estimate, rho + (1 + 3 rho) / n (Kendall 1954, Biometrika 41:403), clipped to [0, 0.95]."""
    n, d = len(e), e - e.mean()
    denom = float(d @ d)
    rho = float(d[1:] @ d[:-1]) / denom if denom > 0 and n > 2 else 0.0
    return min(max(rho + (1 + 3 * rho) / n, 0.0), 0.95)


def ar1_resample(residuals: np.ndarray, draws: int, rng: np.random.Generator, length: int | None = None
                 ) -> np.ndarray:
    """``draws`` sieve-bootstrap series of multiplicative residuals (draws, ``length``, default n): an AR(1) fitted
    to ``residuals - 1`` is driven by resampled innovations (Bühlmann 1997, Bernoulli 3:123), so runs of similar
    neighbouring batches are reproduced; with no correlation it is the ordinary residual bootstrap."""
    e = residuals - 1.0
    rho = ar1_coefficient(e)
    u = e[1:] - rho * e[:-1]
    u = u - u.mean()
    n = len(e) if length is None else length
    out = np.empty((draws, n))
    out[:, 0] = rng.choice(e, size=draws)
    shocks = rng.choice(u, size=(draws, n))
    for i in range(1, n):
        out[:, i] = rho * out[:, i - 1] + shocks[:, i]
    return 1.0 + out


def _residuals(S: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Multiplicative residuals S / expected, centred on 1 and inflated by sqrt(n / (n - 2)) for the two fitted
    parameters."""
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(expected > 0, S / expected, 1.0)
    n = len(eps)
    return 1.0 + (eps - eps.mean()) * math.sqrt(n / max(n - _PARAMS, 1))


def model_weights(sse: np.ndarray, n: int) -> np.ndarray:
    """Akaike weights of the models from their squared errors (equal parameter counts, so AIC differences are
    n ln(SSE / SSE_min)); Buckland, Burnham & Augustine 1997, Biometrics 53:603."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.exp(-0.5 * n * np.log(sse / sse.min()))
    w = np.where(np.isfinite(w), w, 0.0)
    return w / w.sum()


def bootstrap_rows(S: np.ndarray, each: dict, draws: int, seed: int, geom, h: int, x_min: float):
    """Refit, choosing the model again, on ``draws`` resampled series: (model index, amplitude, theta) per draw.
    Each draw is generated from one model's fit, picked with its Akaike weight (so the band carries the doubt
    about the form), with that fit's residuals resampled by :func:`ar1_resample`."""
    if draws <= 0:
        return np.empty(0, int), np.empty(0), np.empty(0)
    rng = np.random.default_rng(seed)
    floor = 1e-15 * float(S @ S) + 1e-300  # exact data: rounding error, not a fit that is infinitely better
    weights = model_weights(np.maximum([each[m][2] for m in MODELS], floor), len(S))
    source = np.sort(rng.choice(len(MODELS), size=draws, p=weights))
    rows = []
    for j, model in enumerate(MODELS):
        k = int((source == j).sum())
        if k:
            expected = _expected(model, each[model], geom)
            rows.append(expected[None, :] * ar1_resample(_residuals(S, expected), k, rng))
    chosen, amp, theta, _ = _fit_rows(np.vstack(rows), geom, h, x_min)
    return chosen, amp, theta


def _expected(model: str, fit: tuple[float, float, float], geom) -> np.ndarray:
    return fit[0] * _design(model, np.array([[fit[1]]]), geom)[0]


# ---------------------------------------------------------------------------------------------------------- API
def _no_fit(reason: str, n: int, **extra) -> CurveFit:
    nan = math.nan
    return CurveFit(model="none", params={}, gamma=None, holdout_error={}, marginal_yield=nan,
                    marginal_yield_band=(nan, nan), marginal_per_usd=nan, marginal_per_usd_band=(nan, nan),
                    reason=reason, n_batches=n, **extra)


def _default_holdout(n: int) -> int:
    h = max(1, int(0.25 * n + 0.5))  # round half up
    return h if n - h >= 3 else 0


def _check(R: np.ndarray, U: np.ndarray, C: np.ndarray) -> str | None:
    """Why the series cannot be fitted, or None."""
    n = len(R)
    if n < 3:
        return f"need at least 3 batches to fit a yield curve, got {n}"
    if not (np.isfinite(R).all() and np.isfinite(U).all() and np.isfinite(C).all()):
        return "R, U or C contains NaN or infinite values"
    if (R < 0).any() or (U < 0).any() or (C < 0).any():
        return "R, U or C contains negative values"
    for name, v in (("R", R), ("U", U), ("C", C)):
        if (np.diff(v) < 0).any():
            return f"{name} decreases between batches: the series must be cumulative"
    if R[-1] <= 0:
        return "no raw tokens in any batch (R is all zero)"
    usable = int((np.diff(R, prepend=0.0) > 0).sum())
    if usable < 3:
        return f"need at least 3 batches that brought raw tokens, got {usable}"
    return None


def _params(model: str, amp: float, theta: float, scale: float) -> dict[str, float]:
    """Parameters in raw-token units: K and gamma, or U_inf and R0."""
    if model == "power_law":
        return {"K": amp * scale ** (1.0 - theta), "gamma": theta}
    return {"U_inf": amp * scale, "R0": math.exp(theta) * scale}


def _band(values: np.ndarray, level: float) -> tuple[float, float]:
    if len(values) == 0 or not np.isfinite(values).all():
        return (math.nan, math.nan)
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))


def fit_yield_curve(R, U, C, holdout: int | None = None, bootstrap: int = 200, seed: int = 0, *,
                    level: float = 0.90) -> CurveFit:
    """Fit U(R) on the per-batch increments of cumulative series, choose the model on held-out batches, and give
    the marginal yield at the last batch with a bootstrap band. Degenerate inputs give a ``reason``, not an
    exception (only arrays of unequal length raise ``ValueError``)."""
    R, U, C = (np.asarray(v, dtype=float).ravel() for v in (R, U, C))
    if not (len(R) == len(U) == len(C)):
        raise ValueError(f"R, U and C must have one value per batch (got {len(R)}, {len(U)}, {len(C)})")
    n = len(R)
    why = _check(R, U, C)
    if why:
        return _no_fit(why, n)
    rate = R[-1] / C[-1] if C[-1] > 0 else math.nan
    common = dict(n_batches=n, raw_per_usd=rate, raw_per_batch=R[-1] / n, cost_per_batch=C[-1] / n, level=level)
    notes = [] if C[-1] > 0 else ["no cost recorded: dR/dC and dU/dC are undefined"]
    S = _shares(R, U)
    if not (S[1:] > 0).any():
        return _constant(float(U[-1]), rate, notes, common)
    group = -(-n // MAX_POINTS)
    ends = np.arange(n - 1, -1, -group)[::-1]       # each group's last batch
    Sg, geom = _shares(R[ends], U[ends]), _geometry(R[ends])
    x_min = float(R[ends][R[ends] > 0].min() / R[-1])
    h = _default_holdout(len(Sg)) if holdout is None else min(max(0, int(holdout)), max(len(Sg) - 3, 0))
    each = {m: tuple(float(v[0]) for v in _fit_model(m, Sg[None, :], geom, x_min)) for m in MODELS}
    chosen, scores = _choose(Sg[None, :], geom, h, x_min)
    model = MODELS[int(chosen[0])]
    amp, theta, _ = each[model]
    boot = bootstrap_rows(Sg, each, bootstrap, seed, geom, h, x_min)
    curves = Curves(model=np.r_[chosen, boot[0]], amplitude=np.r_[amp, boot[1]], theta=np.r_[theta, boot[2]],
                    scale=float(R[-1]), residuals=_residuals(S, _expected(model, each[model], _geometry(R))))
    slopes = curves.slope(float(R[-1]))
    fits = {m: _params(m, *each[m][:2], float(R[-1])) for m in MODELS}
    if model == "power_law" and not 0 < theta <= 1:
        notes.append(f"power-law gamma {theta:.3f} is outside (0, 1]")
    return CurveFit(model=model, params=fits[model], gamma=fits["power_law"]["gamma"],
                    holdout_error=dict(zip(MODELS, map(float, scores[0]))) if h else {},
                    marginal_yield=float(slopes[0]), marginal_yield_band=_band(slopes[1:], level),
                    marginal_per_usd=float(slopes[0] * rate), marginal_per_usd_band=_band(slopes[1:] * rate, level),
                    selection="holdout" if h else "in-sample", holdout=h, group=group, bootstrap=len(slopes) - 1,
                    model_share={m: float((boot[0] == i).mean()) for i, m in enumerate(MODELS)} if bootstrap else {},
                    fits=fits, notes=notes, curves=curves, **common)


def _constant(value: float, rate: float, notes: list[str], common: dict) -> CurveFit:
    why = "no unique tokens kept in any batch" if value == 0 else "no batch after the first added unique tokens"
    per_usd = 0.0 if math.isfinite(rate) else math.nan
    return CurveFit(model="constant", params={"U": value}, gamma=None, holdout_error={}, marginal_yield=0.0,
                    marginal_yield_band=(0.0, 0.0), marginal_per_usd=per_usd, marginal_per_usd_band=(per_usd, per_usd),
                    reason=f"{why}; the marginal yield is 0", selection="none", notes=notes, **common)


def predict(fit: CurveFit, R) -> np.ndarray:
    """The fitted curve U(R) (not anchored on observed values); NaN when no curve was fitted."""
    R = np.asarray(R, dtype=float)
    if fit.model == "constant":
        return np.where(R > 0, fit.params["U"], 0.0)
    if fit.curves is None:
        return np.full(R.shape, np.nan)
    return fit.curves.cumulative(R.ravel())[0].reshape(R.shape)


def model_curve(model: str, params: dict[str, float], R) -> np.ndarray:
    """U(R) of one model with parameters in raw-token units (``K``/``gamma`` or ``U_inf``/``R0``, as in
    ``CurveFit.params`` and ``CurveFit.fits``)."""
    R = np.asarray(R, dtype=float)
    if model == "power_law":
        return params["K"] * _shape(model, np.array(params["gamma"]), R)
    return params["U_inf"] * _shape(model, np.array(math.log(params["R0"])), R)


def heaps_gamma(raw_tokens: float, unique_tokens: float, n_batches: int) -> float:
    """The power-law gamma implied by end points alone: with n equal batches and the first batch entirely unique
    (K = r**(1 - gamma) for a batch of r raw tokens), U/R = n**(gamma - 1), so gamma = 1 + ln(U/R) / ln n."""
    return 1.0 + math.log(unique_tokens / raw_tokens) / math.log(n_batches)


def future_increments(fit: CurveFit, R_last: float, k: int, raw_per_batch: float | None = None) -> np.ndarray:
    """Expected new unique tokens of the next ``k`` batches for every curve (row 0: the point fit; then one row per
    bootstrap resample), shape (rows, k). A constant fit gives zeros; no fit gives an empty array."""
    dr = fit.raw_per_batch if raw_per_batch is None else float(raw_per_batch)
    if fit.model == "constant":
        return np.zeros((1, k))
    if fit.curves is None or k <= 0:
        return np.empty((0, max(k, 0)))
    grid = R_last + dr * np.arange(k + 1, dtype=float)
    return np.diff(fit.curves.cumulative(grid), axis=1)


def next_batch_band(fit: CurveFit, R_last: float, seed: int = 0) -> tuple[float, float, float]:
    """The next batch's expected new unique tokens and a prediction band for its realised value: each resampled
    curve's increment times a resampled residual (curve uncertainty and batch-to-batch noise)."""
    inc = future_increments(fit, R_last, 1)[:, 0]
    if len(inc) < 2 or fit.curves is None:
        return (float(inc[0]), float(inc[0]), float(inc[0])) if len(inc) else (math.nan,) * 3
    noise = np.random.default_rng(seed).choice(fit.curves.residuals, size=len(inc) - 1)
    lo, hi = _band(np.maximum(inc[1:] * noise, 0.0), fit.level)     # a batch adds no fewer than 0 tokens
    return float(inc[0]), lo, hi


def extrapolate(fit: CurveFit, R, U, C, k: int = 5, *, raw_per_batch: float | None = None,
                cost_per_batch: float | None = None) -> list[dict]:
    """The next ``k`` batches after the observed series. Each brings ``raw_per_batch`` raw tokens at
    ``cost_per_batch`` dollars (default: the means over all batches). Cumulative U is anchored on the last observed
    U; its band comes from each resample's cumulative path. Empty when no curve was fitted."""
    R, U, C = (np.asarray(v, dtype=float).ravel() for v in (R, U, C))
    inc = future_increments(fit, float(R[-1]) if len(R) else 0.0, k, raw_per_batch) if len(R) else np.empty((0, 0))
    if inc.size == 0:
        return []
    dr = fit.raw_per_batch if raw_per_batch is None else float(raw_per_batch)
    dc = fit.cost_per_batch if cost_per_batch is None else float(cost_per_batch)
    cum = U[-1] + np.cumsum(inc, axis=1)
    boot = len(inc) > 1
    band = (lambda a: np.percentile(a[1:], [50 * (1 - fit.level), 50 * (1 + fit.level)], axis=0)) if boot else \
        (lambda a: (a[0], a[0]))
    (cum_lo, cum_hi), (new_lo, new_hi) = band(cum), band(inc)

    def per_usd(x: float) -> float | None:
        return float(x / dc) if dc > 0 else None

    return [{"batch": len(R) + j, "raw_tokens": float(R[-1] + (j + 1) * dr), "unique_tokens": float(cum[0, j]),
             "unique_tokens_low": float(cum_lo[j]), "unique_tokens_high": float(cum_hi[j]),
             "new_unique": float(inc[0, j]), "new_unique_low": float(new_lo[j]), "new_unique_high": float(new_hi[j]),
             "cost_usd": float(C[-1] + (j + 1) * dc), "tokens_per_usd": per_usd(inc[0, j]),
             "tokens_per_usd_low": per_usd(new_lo[j]), "tokens_per_usd_high": per_usd(new_hi[j])} for j in range(k)]


def _json_float(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def as_dict(fit: CurveFit) -> dict:
    """A JSON-serialisable summary (NaN becomes None; bootstrap curves are left out)."""
    return {
        "model": fit.model, "params": {k: _json_float(v) for k, v in fit.params.items()},
        "gamma": _json_float(fit.gamma), "holdout_error": {k: _json_float(v) for k, v in fit.holdout_error.items()},
        "selection": fit.selection, "marginal_yield": _json_float(fit.marginal_yield),
        "marginal_yield_band": [_json_float(v) for v in fit.marginal_yield_band],
        "marginal_per_usd": _json_float(fit.marginal_per_usd),
        "marginal_per_usd_band": [_json_float(v) for v in fit.marginal_per_usd_band],
        "reason": fit.reason, "n_batches": fit.n_batches, "holdout": fit.holdout, "group": fit.group,
        "raw_per_usd": _json_float(fit.raw_per_usd), "raw_per_batch": _json_float(fit.raw_per_batch),
        "cost_per_batch": _json_float(fit.cost_per_batch), "level": fit.level, "bootstrap": fit.bootstrap,
        "model_share": dict(fit.model_share),
        "fits": {m: {k: _json_float(v) for k, v in p.items()} for m, p in fit.fits.items()},
        "notes": list(fit.notes),
    }
