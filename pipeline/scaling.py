"""Scaling laws that turn unique tokens into loss, compute and dollars (DESIGN.md section 4, issue 5).

Pure math: no Dask, no I/O, no dependency beyond the standard library and numpy.

The parametric form of every preset is Hoffmann et al.'s

    L(N, D) = E + A / N'^alpha + B / D'^beta

with N parameters and D training tokens.  When the unique pool U is smaller than D, D is replaced by
Muennighoff et al.'s effective data D' (repeated tokens are worth less than fresh ones); the
``muennighoff`` preset also replaces N by its effective parameters N' (parameters beyond the
compute-optimal size for U are worth less).  Without repetition D' = D and N' = N (except for the
excess-parameter term of ``muennighoff``, see :func:`effective_params`).

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corpusslim.errors import CorpusSlimError

#: Tokens in "per billion unique tokens".
BILLION = 1e9


class UnknownLawError(CorpusSlimError, ValueError):
    """A scaling-law name that is not one of :data:`LAWS`."""


@dataclass(frozen=True)
class ScalingLaw:
    """A parametric fit L = E + A/N'^alpha + B/D'^beta.

    ``rd_star`` (R*_D) and ``rn_star`` (R*_N) are Muennighoff et al.'s decay constants for repeated
    data and excess parameters; ``None`` means the fit has none of its own (see :func:`effective_tokens`
    for what is used instead).
    """

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    rd_star: float | None = None
    rn_star: float | None = None


# Hoffmann et al. 2022 (Chinchilla), Eq. 10, the rounded constants printed in the paper.
CHINCHILLA = ScalingLaw("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

# Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt" (arXiv:2404.10102), their refit of
# Hoffmann et al.'s approach 3 on the data reconstructed from the Chinchilla paper's Figure 4.
BESIROGLU = ScalingLaw("besiroglu", E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)

# Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (arXiv:2305.16264), data-constrained
# fit as published in the datablations README ("Parametric Fit"): the fit is in log space,
# a = ln A = 6.255414, b = ln B = 7.3049974, e = ln E = 0.6254804, alpha = beta = 0.3526596,
# R*_D = 15.387756, R*_N = 5.309743.
MUENNIGHOFF = ScalingLaw(
    "muennighoff",
    E=math.exp(0.6254804),
    A=math.exp(6.255414),
    B=math.exp(7.3049974),
    alpha=0.3526596,
    beta=0.3526596,
    rd_star=15.387756,
    rn_star=5.309743,
)

#: R*_D used for laws that have no repeated-data constant of their own (Muennighoff et al. 2023).
DEFAULT_RD_STAR = MUENNIGHOFF.rd_star

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
    law = get_law(law)
    return (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / (law.alpha + law.beta))


def params_for_tokens(law: ScalingLaw | str, tokens: float) -> float:
    """The compute-optimal parameter count for ``tokens`` training tokens: N = G*(G*D)^(beta/alpha).

    This is the frontier above solved for N given D (datablations' ``D_to_N``); Muennighoff et al. use it
    as U_N, the parameters that the unique data U_D can feed.
    """
    law = get_law(law)
    g = frontier_coefficient(law)
    return g * (g * tokens) ** (law.beta / law.alpha)


# --------------------------------------------------------------------------------------------------
# Effective data and parameters, loss
# --------------------------------------------------------------------------------------------------

def _rd_star(law: ScalingLaw) -> float:
    return law.rd_star if law.rd_star is not None else DEFAULT_RD_STAR


def effective_tokens(law: ScalingLaw | str, tokens: float, unique: float | None) -> float:
    """Muennighoff et al.'s effective data D' for ``tokens`` training tokens drawn from ``unique`` ones.

    D' = U_D + U_D*R*_D*(1 - exp(-R_D/R*_D)),  U_D = min(unique, tokens),  R_D = tokens/U_D - 1
    (the number of *repeated* epochs).  So D' = tokens without repetition (unique >= tokens or
    unique is None), D' <= tokens always, and D' -> U_D*(1 + R*_D) as the repeats grow without bound.

    R*_D is the law's own ``rd_star``; laws without one (chinchilla, besiroglu) use Muennighoff et al.'s
    R*_D = 15.387756 -- the simplest honest choice, since neither paper models repeated data.
    """
    law = get_law(law)
    tokens = _positive("tokens", tokens)
    if unique is None:
        return tokens
    u = min(_positive("unique", unique), tokens)
    r_star = _rd_star(law)
    repeats = tokens / u - 1.0
    return u + u * r_star * (1.0 - math.exp(-repeats / r_star))


def effective_params(law: ScalingLaw | str, params: float, unique: float | None) -> float:
    """Muennighoff et al.'s effective parameters N' (laws with ``rn_star`` only; others return ``params``).

    N' = U_N + U_N*R*_N*(1 - exp(-R_N/R*_N)),  U_N = min(params, params_for_tokens(U_D)),
    R_N = params/U_N - 1,

    as in the datablations ``scaling_law``: U_N is the compute-optimal parameter count for the unique
    tokens U_D, and parameters beyond it decay in value like repeated epochs do.  ``unique`` here is U_D
    (callers pass min(unique, tokens)); ``None`` means the data has no unique pool to speak of and
    returns ``params``.
    """
    law = get_law(law)
    params = _positive("params", params)
    if law.rn_star is None or unique is None:
        return params
    u_n = min(params, params_for_tokens(law, _positive("unique", unique)))
    excess = params / u_n - 1.0
    return u_n + u_n * law.rn_star * (1.0 - math.exp(-excess / law.rn_star))


def _effective(law: ScalingLaw | str, params: float, tokens: float, unique: float | None):
    """Checked inputs and the effective quantities at U_D = min(unique, tokens): (law, N, D, U_D, D', N')."""
    law = get_law(law)
    n = _positive("params", params)
    d = _positive("tokens", tokens)
    u_d = d if unique is None else min(_positive("unique", unique), d)
    return law, n, d, u_d, effective_tokens(law, d, u_d), effective_params(law, n, u_d)


def loss(law: ScalingLaw | str, params: float, tokens: float, unique: float | None = None) -> float:
    """Predicted loss of a model of ``params`` parameters trained on ``tokens`` tokens from ``unique`` unique.

    L = E + A/N'^alpha + B/D'^beta with D' = :func:`effective_tokens` and N' = :func:`effective_params`
    evaluated at U_D = min(unique, tokens).

    * ``unique`` None means every training token is unique (U_D = tokens).
    * chinchilla / besiroglu: N' = N (no excess-parameter term); with ``unique < tokens`` the data term
      uses D' with Muennighoff's R*_D (see :func:`effective_tokens`).
    * muennighoff: exactly the datablations ``scaling_law(N, D, U)``, including its excess-parameter
      term, which applies even without repetition when N exceeds the compute-optimal size for U_D.
      ``loss("muennighoff", 6.34e9, 242e9, 25e9)`` = 2.2256440889984477 (datablations README).
    """
    law, _, _, _, d_eff, n_eff = _effective(law, params, tokens, unique)
    return law.E + law.A / n_eff ** law.alpha + law.B / d_eff ** law.beta


# --------------------------------------------------------------------------------------------------
# Compute-optimal allocation
# --------------------------------------------------------------------------------------------------

def _closed_form_optimum(law: ScalingLaw, compute: float) -> tuple[float, float]:
    n = frontier_coefficient(law) * (compute / 6.0) ** (law.beta / (law.alpha + law.beta))
    return n, compute / (6.0 * n)


def optimal_allocation(law: ScalingLaw | str, compute: float, unique: float | None = None,
                       method: str = "grid") -> tuple[float, float]:
    """(params, tokens) minimising :func:`loss` at ``compute`` FLOPs, with C = 6*N*D.

    Without a unique-data limit (``unique`` None, or at least the unconstrained optimal token count) it is
    the closed form N_opt = G*(C/6)^(beta/(alpha+beta)), D_opt = C/(6*N_opt)
    (:func:`frontier_coefficient`); with the repetition penalty the loss only grows, so that point stays
    optimal.  Chinchilla at C = 5.76e23 gives N_opt = 32.19e9.

    With scarce unique data the optimum moves towards fewer parameters and more epochs; ``method`` says
    how it is found along the iso-FLOP line N*D = C/6, trying U_D = min(unique, D) at each point:

    * ``"grid"`` (default): Muennighoff et al.'s reference search (datablations README, "Parametric
      Fit"): from the unconstrained optimum (N0, D0), the 1000 points (N0/k, D0*k) and (N0*k, D0/k) for
      the 500 values k = linspace(1.0001, 3, 500), keeping the lowest loss.  It reproduces the published
      figure: muennighoff at C = 1e22 with 25e9 unique tokens gives 7022364735.88 parameters and
      237336955477.55 tokens.  Its resolution is about 0.4 % in k and it cannot move more than 3x away
      from (N0, D0).
    * ``"exact"``: a log-spaced scan over a factor 1000 either side of (N0, D0), refined by golden-section
      search to about 1e-9 in log N.
    """
    law = get_law(law)
    compute = _positive("compute", compute)
    n0, d0 = _closed_form_optimum(law, compute)
    if unique is None or unique >= d0:
        if unique is not None:
            _positive("unique", unique)
        return n0, d0
    unique = _positive("unique", unique)

    def at(n: float, d: float) -> float:
        return loss(law, n, d, min(unique, d))

    if method == "grid":
        best = (math.inf, n0, d0)
        for k in np.linspace(1.0001, 3.0, 500):
            k = float(k)
            for n, d in ((n0 / k, d0 * k), (n0 * k, d0 / k)):
                value = at(n, d)
                if value < best[0]:
                    best = (value, n, d)
        return best[1], best[2]
    if method == "exact":
        def along(x: float) -> float:  # x = ln(N/N0); D = D0/e^x keeps 6*N*D = C
            return at(n0 * math.exp(x), d0 * math.exp(-x))

        xs = np.linspace(-math.log(1000.0), math.log(1000.0), 4001)
        values = [along(float(x)) for x in xs]
        i = int(np.argmin(values))
        lo, hi = float(xs[max(i - 1, 0)]), float(xs[min(i + 1, len(xs) - 1)])
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fa, fb = along(a), along(b)
        while hi - lo > 1e-9:
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - ratio * (hi - lo)
                fa = along(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + ratio * (hi - lo)
                fb = along(b)
        x = (lo + hi) / 2.0
        return n0 * math.exp(x), d0 * math.exp(-x)
    raise ValueError(f"unknown optimal_allocation method {method!r}; use 'grid' or 'exact'")


# --------------------------------------------------------------------------------------------------
# Marginal value of unique tokens
# --------------------------------------------------------------------------------------------------

def training_tokens(tokens: float, unique: float | None) -> float:
    """The tokens actually trained on: the budget ``tokens``, or one epoch over the pool if that is larger.

    D = max(tokens, unique).  Below the budget, more unique tokens replace repeats at a fixed D; above
    it, every unique token is seen once, so the budget grows with the pool.
    """
    return tokens if unique is None else max(tokens, unique)


def dloss_per_billion_unique(law: ScalingLaw | str, params: float, tokens: float,
                             unique: float | None = None) -> float:
    """Loss reduction (positive = better) from 1e9 more unique tokens, at ``params`` fixed.

    loss(N, D0, U) - loss(N, D1, U + 1e9) with D0 = max(tokens, U), D1 = max(tokens, U + 1e9)
    (:func:`training_tokens`); ``unique`` None means U = tokens (no repetition, so the extra billion is
    trained on once and D grows by 1e9).  A finite difference over exactly one billion tokens, not a
    derivative.
    """
    law = get_law(law)
    params = _positive("params", params)
    tokens = _positive("tokens", tokens)
    u0 = tokens if unique is None else _positive("unique", unique)
    u1 = u0 + BILLION
    return (loss(law, params, training_tokens(tokens, u0), u0)
            - loss(law, params, training_tokens(tokens, u1), u1))


def marginal_loss_per_flop(law: ScalingLaw | str, params: float, tokens: float,
                           unique: float | None = None) -> float:
    """The loss a marginal training FLOP buys with the data in hand: the shadow price of loss in FLOPs.

    With the unique pool fixed, extra compute can go into training longer on it (dC = 6*N*dD, more
    repeats) or into a larger model (dC = 6*D*dN); the price is the better of the two,

        lambda = max(-dL/dD / (6*N), -dL/dN / (6*D))   [loss per FLOP],

    from the analytic derivatives of :func:`loss` at (params, tokens, U_D = min(unique, tokens)):
    dD'/dD = exp(-R_D/R*_D) when repeating (1 otherwise) and dN'/dN = exp(-R_N/R*_N) beyond U_N (1
    otherwise).  Always positive.
    """
    law, n, d, u_d, d_eff, n_eff = _effective(law, params, tokens, unique)
    r_star = _rd_star(law)
    dd_eff = math.exp(-(d / u_d - 1.0) / r_star) if d > u_d else 1.0
    dn_eff = 1.0
    if law.rn_star is not None:
        u_n = params_for_tokens(law, u_d)
        if n > u_n:
            dn_eff = math.exp(-(n / u_n - 1.0) / law.rn_star)
    gain_per_token = law.beta * law.B * d_eff ** (-law.beta - 1.0) * dd_eff
    gain_per_param = law.alpha * law.A * n_eff ** (-law.alpha - 1.0) * dn_eff
    return max(gain_per_token / (6.0 * n), gain_per_param / (6.0 * d))


# --------------------------------------------------------------------------------------------------
# Dollars
# --------------------------------------------------------------------------------------------------

@dataclass
class TrainingPrice:
    """What training compute costs.

    Defaults: $2.00 per GPU-hour (an on-demand H100 at a low-cost cloud, an assumption to override);
    40 % model FLOP utilisation (typical of large dense pretraining runs); 989e12 FLOP/s, the H100 SXM's
    dense BF16 Tensor Core peak (NVIDIA H100 datasheet: 1,979 TFLOP/s with sparsity, half without).
    """

    usd_per_gpu_hour: float = 2.0
    mfu: float = 0.4
    peak_flops: float = 989e12


def usd_per_flop(price: TrainingPrice) -> float:
    """Dollars per useful training FLOP: usd_per_gpu_hour / (3600 * mfu * peak_flops).

    With the defaults, 2 / (3600 * 0.4 * 989e12) = 1.404e-18 $/FLOP.
    """
    usd = float(price.usd_per_gpu_hour)
    if not usd >= 0 or math.isinf(usd):
        raise ValueError(f"usd_per_gpu_hour must be a non-negative finite number, got {usd!r}")
    mfu = float(price.mfu)
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu!r}")
    return usd / (3600.0 * mfu * _positive("peak_flops", price.peak_flops))


def batch_value(law: ScalingLaw | str, params: float, tokens: float, unique_before: float,
                new_unique: float, price: TrainingPrice | None = None) -> dict:
    """What a batch of ``new_unique`` unique tokens is worth to a model of ``params`` parameters.

    The plan trains on D = max(tokens, U) tokens (:func:`training_tokens`): while the pool U is below the
    budget ``tokens``, new unique tokens replace repeats at fixed compute; beyond it they are trained on
    once, which costs extra compute.

    * ``loss_before`` = loss(N, D0, U0), ``loss_after`` = loss(N, D1, U0 + new_unique),
      ``loss_gain`` = loss_before - loss_after (>= 0).
    * ``equivalent_flops``: the extra training compute that would buy the same gain without the batch,
      to first order: loss_gain / :func:`marginal_loss_per_flop` at (N, D0, U0), i.e. spending it on
      the better of longer training on the existing pool or a larger model.  Linear in the gain and so a
      lower bound for large gains (compute has diminishing returns).
    * ``extra_training_flops`` = 6*N*(D1 - D0), the compute the plan must add to use the batch (zero
      below the budget).
    * ``value_usd`` = max(0, equivalent_flops - extra_training_flops) * :func:`usd_per_flop`; never
      negative because a batch can always be left out.  Below the budget it is the whole equivalent
      compute; once the pool covers the budget, using a batch costs about what it buys, so its value
      drops to about zero -- the pool is then large enough for that training budget.
    """
    law = get_law(law)
    params = _positive("params", params)
    tokens = _positive("tokens", tokens)
    u0 = _positive("unique_before", unique_before)
    new_unique = float(new_unique)
    if not new_unique >= 0 or math.isinf(new_unique):
        raise ValueError(f"new_unique must be a non-negative finite number, got {new_unique!r}")
    price = TrainingPrice() if price is None else price
    u1 = u0 + new_unique
    d0, d1 = training_tokens(tokens, u0), training_tokens(tokens, u1)
    before = loss(law, params, d0, u0)
    after = loss(law, params, d1, u1)
    gain = max(before - after, 0.0)
    shadow = marginal_loss_per_flop(law, params, d0, u0)
    equivalent = gain / shadow if shadow > 0 else (math.inf if gain > 0 else 0.0)
    # Past the whole training run's compute the first-order substitute means nothing (deep in repetition more
    # compute buys almost no loss): compute cannot replace the batch, whose value is then unbounded.
    if equivalent > 6.0 * params * d0:
        equivalent = math.inf
    extra = 6.0 * params * (d1 - d0)
    return {
        "loss_before": before,
        "loss_after": after,
        "loss_gain": gain,
        "equivalent_flops": equivalent,
        "extra_training_flops": extra,
        "value_usd": max(equivalent - extra, 0.0) * usd_per_flop(price) if equivalent > extra else 0.0,
    }


def stopping_batch(values_usd: Sequence[float], costs_usd: Sequence[float]) -> int | None:
    """Index of the first batch whose value is below its processing cost, or None if none is."""
    if len(values_usd) != len(costs_usd):
        raise ValueError(f"{len(values_usd)} values but {len(costs_usd)} costs; give one of each per batch")
    for i, (value, cost) in enumerate(zip(values_usd, costs_usd)):
        if value < cost:
            return i
    return None


# --------------------------------------------------------------------------------------------------
# CLI-facing
# --------------------------------------------------------------------------------------------------

def value_report(law_name: str, params: float, tokens: float, unique: float | None = None) -> dict:
    """The what-if answers of ``corpusslim value``: exactly the keys ``loss``, ``effective_tokens``,
    ``optimal_params``, ``optimal_tokens``, ``dloss_per_billion_unique``.

    * ``loss`` = :func:`loss` (params, tokens, unique);
    * ``effective_tokens`` = D' (= tokens without ``unique`` or with unique >= tokens);
    * ``optimal_params`` / ``optimal_tokens``: :func:`optimal_allocation` at the implied compute
      C = 6*params*tokens with the same ``unique`` limit as ``loss`` (for every law, so the optimum is
      the minimum of the very loss reported; only muennighoff also trades off excess parameters), found
      with the reference grid search;
    * ``dloss_per_billion_unique`` = :func:`dloss_per_billion_unique`.
    """
    law = get_law(law_name)
    params = _positive("params", params)
    tokens = _positive("tokens", tokens)
    if unique is not None:
        unique = _positive("unique", unique)
    n_opt, d_opt = optimal_allocation(law, 6.0 * params * tokens, unique)
    return {
        "loss": loss(law, params, tokens, unique),
        "effective_tokens": effective_tokens(law, tokens, unique),
        "optimal_params": n_opt,
        "optimal_tokens": d_opt,
        "dloss_per_billion_unique": dloss_per_billion_unique(law, params, tokens, unique),
    }


def _si(x: float) -> str:
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.4g}{suffix}"
    return f"{x:.4g}"


def format_value_report(d: dict, law_name: str | None = None) -> str:
    """The human-readable form of :func:`value_report`'s dictionary."""
    lines = [f"scaling law:                       {law_name}"] if law_name else []
    lines += [
        f"predicted loss:                    {d['loss']:.4f}",
        f"effective data D':                 {_si(d['effective_tokens'])} tokens",
        f"compute-optimal split:             {_si(d['optimal_params'])} parameters, "
        f"{_si(d['optimal_tokens'])} tokens",
        f"loss change per +1B unique tokens: {0.0 - d['dloss_per_billion_unique']:+.3g}",
    ]
    return "\n".join(lines)
