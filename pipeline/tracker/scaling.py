"""Scaling laws that turn parameters, training tokens and unique tokens into loss and compute (issues 5 and 13).

Pure math: no Dask, no I/O, no dependency beyond the standard library and numpy.  The training plans and dollar
prices built on it are in :mod:`corpusslim.tracker.value`.

The parametric form of every preset is Hoffmann et al.'s

    L(N, D) = E + A / N'^alpha + B / D'^beta

with N parameters and D training tokens drawn from a pool of U unique tokens.

* ``muennighoff`` replaces D and N by Muennighoff et al.'s effective data D' and effective parameters N'
  (repeated tokens, and parameters beyond what the unique data can feed, are worth less): exactly the
  datablations ``scaling_law(N, D, U)``.
* ``chinchilla`` and ``besiroglu`` were fitted on runs that never repeated data and have no repetition term.  A
  plan under them trains on at most U tokens (one epoch): D' = min(D, U), N' = N.

References
----------
* Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556, Eq. 10.
* Besiroglu, Erdil, Barnett, You 2024, "Chinchilla Scaling: A replication attempt", arXiv:2404.10102.
* Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", NeurIPS 2023, arXiv:2305.16264,
  and its reference code, github.com/huggingface/datablations (README, section "Parametric Fit").
* NVIDIA H100 Tensor Core GPU datasheet: H100 SXM BF16 Tensor Core 1,979 TFLOP/s *with sparsity*,
  i.e. 989 TFLOP/s dense.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from corpusslim.errors import CorpusSlimError

#: Tokens in "per billion unique tokens".
BILLION = 1e9

#: How far beyond its fitted range a law is still trusted.  Hoffmann et al. 2022 themselves applied their fit
#: 4.4x beyond its largest model (Chinchilla, 70B parameters, from runs up to 16B) and 2.8x beyond its longest
#: run (1.4T tokens, from runs up to 500B); we allow one order of magnitude either side.
EXTRAPOLATION = 10.0


class UnknownLawError(CorpusSlimError, ValueError):
    """A scaling-law name that is not one of :data:`LAWS`."""


@dataclass(frozen=True)
class FittedRange:
    """The runs a law was fitted on: parameters, training tokens and unique tokens (low, high), and where that
    is stated.  ``None`` as a bound means the source states none that matters for the law."""

    params: tuple[float, float]
    tokens: tuple[float, float]
    unique: tuple[float, float | None]
    source: str


@dataclass(frozen=True)
class ScalingLaw:
    """A parametric fit L = E + A/N'^alpha + B/D'^beta.

    ``rd_star`` (R*_D) and ``rn_star`` (R*_N) are Muennighoff et al.'s decay constants for repeated data and
    excess parameters; ``None`` means the law has no repetition term (at most one epoch over the pool).
    """

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    fitted: FittedRange
    rd_star: float | None = None
    rn_star: float | None = None

    @property
    def repeats(self) -> bool:
        """Whether the law models repeated data (and so training on more tokens than the pool holds)."""
        return self.rd_star is not None

    @cached_property
    def frontier(self) -> float:
        """G of :func:`frontier_coefficient`, computed once (the searches below use it millions of times)."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))


# Hoffmann et al. 2022, abstract: "over 400 language models ranging from 70 million to over 16 billion parameters
# on 5 to 500 billion tokens"; every run saw each token at most once (section 3), so U >= D on all of them.
CHINCHILLA_RUNS = FittedRange(params=(7e7, 1.6e10), tokens=(5e9, 5e11), unique=(5e9, None),
                              source="Hoffmann et al. 2022: 70M-16B parameters, 5B-500B tokens, no repeated data")

# Hoffmann et al. 2022 (Chinchilla), Eq. 10, the rounded constants printed in the paper.
CHINCHILLA = ScalingLaw("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, fitted=CHINCHILLA_RUNS)

# Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt" (arXiv:2404.10102), their refit of
# Hoffmann et al.'s approach 3 on the data reconstructed from the Chinchilla paper's Figure 4: the same runs.
BESIROGLU = ScalingLaw("besiroglu", E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658, fitted=FittedRange(
    CHINCHILLA_RUNS.params, CHINCHILLA_RUNS.tokens, CHINCHILLA_RUNS.unique,
    source="Besiroglu et al. 2024 refit Hoffmann et al. 2022's runs: 70M-16B parameters, 5B-500B tokens"))

# Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (arXiv:2305.16264), data-constrained
# fit as published in the datablations README ("Parametric Fit"): the fit is in log space,
# a = ln A = 6.255414, b = ln B = 7.3049974, e = ln E = 0.6254804, alpha = beta = 0.3526596,
# R*_D = 15.387756, R*_N = 5.309743.
# Fitted range: "up to 900 billion training tokens and 9 billion parameter models" (abstract); the smallest runs
# named in the datablations README train 146M parameters (146m14b400m) and use 100M unique tokens (1b12b8100m).
MUENNIGHOFF = ScalingLaw(
    "muennighoff",
    E=math.exp(0.6254804),
    A=math.exp(6.255414),
    B=math.exp(7.3049974),
    alpha=0.3526596,
    beta=0.3526596,
    fitted=FittedRange(params=(1.46e8, 9e9), tokens=(1e8, 9e11), unique=(1e8, 9e11),
                       source="Muennighoff et al. 2023: 146M-9B parameters, up to 900B tokens, 100M+ unique tokens"),
    rd_star=15.387756,
    rn_star=5.309743,
)

LAWS: dict[str, ScalingLaw] = {law.name: law for law in (CHINCHILLA, BESIROGLU, MUENNIGHOFF)}


def get_law(law: ScalingLaw | str) -> ScalingLaw:
    """The law itself, or the preset of that name; an unknown name raises :class:`UnknownLawError`."""
    if isinstance(law, ScalingLaw):
        return law
    try:
        return LAWS[law]
    except (KeyError, TypeError):
        raise UnknownLawError(
            f"unknown scaling law {law!r}; known laws: {', '.join(sorted(LAWS))}") from None


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# The compute-optimal frontier of the plain law
# --------------------------------------------------------------------------------------------------

def frontier_coefficient(law: ScalingLaw | str) -> float:
    """G = (alpha*A / (beta*B))^(1/(alpha+beta)).

    Minimising E + A/N^alpha + B/D^beta subject to C = 6*N*D (Lagrange: alpha*A/N^alpha = beta*B/D^beta)
    gives N_opt(C) = G*(C/6)^(beta/(alpha+beta)) and D_opt(C) = G^-1*(C/6)^(alpha/(alpha+beta))
    (Hoffmann et al. 2022, Eq. 4 and appendix D.2).
    """
    return get_law(law).frontier


def closed_form_optimum(law: ScalingLaw | str, compute: float) -> tuple[float, float]:
    """(N_opt, D_opt) at ``compute`` FLOPs with unlimited unique data (:func:`frontier_coefficient`)."""
    law = get_law(law)
    n = frontier_coefficient(law) * (_positive("compute", compute) / 6.0) ** (law.beta / (law.alpha + law.beta))
    return n, compute / (6.0 * n)


def params_for_tokens(law: ScalingLaw | str, tokens: float) -> float:
    """The compute-optimal parameter count for ``tokens`` training tokens: N = G*(G*D)^(beta/alpha).

    This is the frontier above solved for N given D (datablations' ``D_to_N``); Muennighoff et al. use it
    as U_N, the parameters that the unique data U_D can feed.
    """
    return _fed_params(get_law(law), tokens)


def _fed_params(law: ScalingLaw, tokens):
    g = law.frontier
    return g * (g * tokens) ** (law.beta / law.alpha)


# --------------------------------------------------------------------------------------------------
# Effective data and parameters, loss
# --------------------------------------------------------------------------------------------------

def _decayed(base, excess, r_star: float, exp):
    """base + base*R*(1 - exp(-excess/R*)): Muennighoff et al.'s value of ``excess`` repeats of ``base``."""
    return base + base * r_star * (1.0 - exp(-excess / r_star))


def _effective_arrays(law: ScalingLaw, n, d, u, minimum=np.minimum, exp=np.exp):
    """(D', N') for arrays (or floats) of params ``n``, training tokens ``d`` and unique pool ``u``. Floats may
    pass ``min`` and ``math.exp``: numpy's functions cost about 1 µs a call on a scalar (the searches below call
    this millions of times per report); the results agree to the last bit or two."""
    u_d = minimum(u, d)
    if not law.repeats:
        return u_d, n
    u_n = minimum(n, _fed_params(law, u_d))
    return _decayed(u_d, d / u_d - 1.0, law.rd_star, exp), _decayed(u_n, n / u_n - 1.0, law.rn_star, exp)


def _loss_arrays(law: ScalingLaw, n, d, u, minimum=np.minimum, exp=np.exp):
    d_eff, n_eff = _effective_arrays(law, n, d, u, minimum, exp)
    return law.E + law.A / n_eff ** law.alpha + law.B / d_eff ** law.beta


def _checked(law: ScalingLaw | str, params: float, tokens: float, unique: float | None):
    law = get_law(law)
    n, d = _positive("params", params), _positive("tokens", tokens)
    return law, n, d, d if unique is None else _positive("unique", unique)


def effective_tokens(law: ScalingLaw | str, tokens: float, unique: float | None) -> float:
    """The effective data D' of ``tokens`` training tokens drawn from ``unique`` ones.

    * muennighoff: D' = U_D + U_D*R*_D*(1 - exp(-R_D/R*_D)), U_D = min(unique, tokens), R_D = tokens/U_D - 1
      (the repeated epochs); D' <= tokens, and D' -> U_D*(1 + R*_D) as the repeats grow without bound.
    * chinchilla, besiroglu (no repetition term): D' = min(tokens, unique), one epoch over the pool.

    ``unique`` None means every training token is unique (D' = tokens).
    """
    law, _, d, u = _checked(law, 1.0, tokens, unique)
    return float(_effective_arrays(law, 1.0, d, u)[0])


def effective_params(law: ScalingLaw | str, params: float, unique: float | None) -> float:
    """Muennighoff et al.'s effective parameters N' (laws with ``rn_star`` only; others return ``params``).

    N' = U_N + U_N*R*_N*(1 - exp(-R_N/R*_N)),  U_N = min(params, params_for_tokens(U_D)),
    R_N = params/U_N - 1,

    as in the datablations ``scaling_law``: U_N is the compute-optimal parameter count for the unique
    tokens U_D, and parameters beyond it decay in value like repeated epochs do.  ``unique`` here is U_D
    (callers pass min(unique, tokens)); ``None`` returns ``params``.
    """
    law = get_law(law)
    params = _positive("params", params)
    if not law.repeats or unique is None:
        return params
    u = _positive("unique", unique)
    return float(_effective_arrays(law, params, u, u)[1])


def loss(law: ScalingLaw | str, params: float, tokens: float, unique: float | None = None) -> float:
    """Predicted loss of a model of ``params`` parameters trained on ``tokens`` tokens from ``unique`` unique.

    L = E + A/N'^alpha + B/D'^beta with D' = :func:`effective_tokens` and N' = :func:`effective_params`
    evaluated at U_D = min(unique, tokens); ``unique`` None means every training token is unique.

    muennighoff is exactly the datablations ``scaling_law(N, D, U)``, including its excess-parameter term:
    ``loss("muennighoff", 6.34e9, 242e9, 25e9)`` = 2.2256440889984477 (datablations README).
    """
    law, n, d, u = _checked(law, params, tokens, unique)
    return float(_loss_arrays(law, n, d, u))


def loss_floor(law: ScalingLaw | str, unique: float, params: float | None = None) -> float:
    """The lowest loss any amount of compute reaches with a pool of ``unique`` tokens (an infimum).

    Over D (and N too when ``params`` is None):

    * muennighoff: E + A/N'^alpha + B/(U*(1 + R*_D))^beta, with N' -> U_N*(1 + R*_N) for free N (U_N the
      parameters U can feed, :func:`params_for_tokens`) or N' = :func:`effective_params` (N, U) for fixed N;
    * chinchilla, besiroglu: E + B/U^beta for free N, E + A/N^alpha + B/U^beta for fixed N (one epoch).
    """
    law = get_law(law)
    u = _positive("unique", unique)
    if law.repeats:
        data = law.B / (u * (1.0 + law.rd_star)) ** law.beta
        n_eff = params_for_tokens(law, u) * (1.0 + law.rn_star) if params is None \
            else effective_params(law, params, u)
    else:
        data = law.B / u ** law.beta
        n_eff = math.inf if params is None else _positive("params", params)
    return law.E + law.A / n_eff ** law.alpha + data


# --------------------------------------------------------------------------------------------------
# Numerical search: golden-section minimum, bracketed root
# --------------------------------------------------------------------------------------------------

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _golden_min(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-10) -> float:
    """The x in [lo, hi] minimising a unimodal ``f`` to within ``tol``."""
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = f(a), f(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2.0


def _falling_root(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-12) -> float:
    """The least x with f(x) <= 0 for a non-increasing ``f``, given f(lo) > 0 >= f(hi), to within ``tol``:
    Illinois regula falsi, with a bisection step whenever a step fails to halve the bracket."""
    f_lo, f_hi = f(lo), f(hi)
    side = 0
    while hi - lo > tol:
        width = hi - lo
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_lo != f_hi else (lo + hi) / 2.0
        if not lo < x < hi:
            x = (lo + hi) / 2.0
        fx = f(x)
        if fx > 0:
            lo, f_lo = x, fx
            f_hi, side = (f_hi / 2.0 if side == 1 else f_hi), 1
        else:
            hi, f_hi = x, fx
            f_lo, side = (f_lo / 2.0 if side == -1 else f_lo), -1
        if hi - lo > width / 2.0:  # slow progress: one bisection step
            mid = (lo + hi) / 2.0
            fm = f(mid)
            lo, f_lo, hi, f_hi = (mid, fm, hi, f_hi) if fm > 0 else (lo, f_lo, mid, fm)
    return hi


# --------------------------------------------------------------------------------------------------
# Best loss for a compute budget, least compute for a loss
# --------------------------------------------------------------------------------------------------

#: Grid step in ln N of the iso-FLOP scan before golden-section refinement.
_SCAN_STEP = 0.05


def best_allocation(law: ScalingLaw | str, compute: float, unique: float | None = None) -> tuple[float, float, float]:
    """(loss, N, D): the lowest loss at ``compute`` = 6*N*D FLOPs with a pool of ``unique`` tokens, N and D free.

    A scan of ln N over every split with N >= 1 and D >= 1 (step 0.05), refined by golden-section search to
    1e-10 in ln N.  Along the iso-FLOP line the loss falls with N, then rises (for chinchilla/besiroglu splits
    with D > U waste compute: D' stays at U).  ``unique`` None: unlimited unique data, the closed form.
    """
    law = get_law(law)
    c6 = _positive("compute", compute) / 6.0
    if unique is None:
        n, d = closed_form_optimum(law, compute)
        return loss(law, n, d), n, d
    u = _positive("unique", unique)
    top = math.log(c6)
    xs = np.linspace(0.0, top, max(int(top / _SCAN_STEP), 2) + 1)
    ns = np.exp(xs)
    i = int(np.argmin(_loss_arrays(law, ns, c6 / ns, u)))

    def along(x: float) -> float:
        n = math.exp(x)
        return _loss_arrays(law, n, c6 / n, u, min, math.exp)

    x = _golden_min(along, float(xs[max(i - 1, 0)]), float(xs[min(i + 1, len(xs) - 1)]))
    n = math.exp(x)
    return along(x), n, c6 / n


def least_compute(law: ScalingLaw | str, target: float, unique: float, params: float | None = None) -> float:
    """C*(L; U): the least training compute 6*N*D that reaches loss ``target`` with a pool of ``unique`` tokens.

    N and D are free, or only D when ``params`` is given (a model size fixed by inference cost, say).  Solved
    numerically to 1e-12 in ln C: a bracketed root of best-loss(C) - target, best-loss being
    :func:`best_allocation` (or :func:`loss` at D = C/(6N) for fixed N), which never rises with C.
    ``math.inf`` when no compute reaches ``target`` (it is at or below :func:`loss_floor`).
    """
    law = get_law(law)
    u = _positive("unique", unique)
    floor_n = None if params is None else _positive("params", params)
    if not target >= loss_floor(law, u, floor_n):
        return math.inf

    def excess(log_c: float) -> float:
        c = math.exp(log_c)
        best = best_allocation(law, c, u)[0] if floor_n is None else loss(law, floor_n, c / (6.0 * floor_n), u)
        return best - target

    lo = math.log(6.0 * (floor_n or 1.0))  # one parameter (or the fixed N) on one token
    if excess(lo) <= 0:
        return math.exp(lo)
    hi = lo + 8.0
    while excess(hi) > 0:
        hi += 8.0
        if hi > math.log(1e100):  # only approached, never reached: the floor is an infimum
            return math.inf
    return math.exp(_falling_root(excess, lo, hi))


# --------------------------------------------------------------------------------------------------
# Dollars per FLOP
# --------------------------------------------------------------------------------------------------

def usd_per_flop(price) -> float:
    """Dollars per useful training FLOP: usd_per_gpu_hour / (3600 * mfu * peak_flops).

    ``price`` is the run config's ``value`` (or anything with those three attributes).  With its defaults
    ($2/GPU-hour, 40 % MFU, the H100 SXM's 989 TFLOP/s dense BF16 peak), 2 / (3600 * 0.4 * 989e12) = 1.404e-18.
    """
    usd = float(price.usd_per_gpu_hour)
    if not usd >= 0 or math.isinf(usd):
        raise ValueError(f"usd_per_gpu_hour must be a non-negative finite number, got {usd!r}")
    mfu = float(price.mfu)
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu!r}")
    return usd / (3600.0 * mfu * _positive("peak_flops", price.peak_flops))
