"""The value model (issue 13, parts 1-2) against an independent implementation of the published formulas.

The oracle below re-derives everything from the papers with plain ``math``: the loss of Hoffmann et al. 2022 /
Besiroglu et al. 2024 (one epoch at most) and of Muennighoff et al. 2023 (datablations README, "Parametric Fit"),
and the least compute C*(L; U) as min over N of 6*N*D(N), D(N) solving L(N, D, U) = L by bisection -- the dual of
the production code, which finds the compute whose best loss is L.  Run this file as a script for the closing
note's table of oracle checks.
"""
from __future__ import annotations

import json
import math
import random

import pytest

from corpusslim.config import ValueConfig
from corpusslim.tracker.value import format_usd, price_batch, sample_caveat, target_pool, usd_per_flop

# ---------------------------------------------------------------- the oracle

# (E, A, B, alpha, beta, R*_D, R*_N): Hoffmann et al. 2022 Eq. 10; Besiroglu et al. 2024 Table 1 (approach 3
# refit); Muennighoff et al. 2023, datablations README (log-space a, b, e).
CONSTANTS = {
    "chinchilla": (1.69, 406.4, 410.7, 0.34, 0.28, None, None),
    "besiroglu": (1.8172, 482.01, 2085.43, 0.3478, 0.3658, None, None),
    "muennighoff": (math.exp(0.6254804), math.exp(6.255414), math.exp(7.3049974), 0.3526596, 0.3526596,
                    15.387756, 5.309743),
}


def oracle_loss(law: str, n: float, d: float, u: float) -> float:
    e, a, b, alpha, beta, rd, rn = CONSTANTS[law]
    if rd is None:  # no repetition term: at most one epoch over the pool
        return e + a / n ** alpha + b / min(d, u) ** beta
    u_d = min(u, d)
    g = ((alpha * a) / (beta * b)) ** (1 / (alpha + beta))
    u_n = min(n, (u_d * g) ** (beta / alpha) * g)  # datablations D_to_N
    n_eff = u_n + u_n * rn * (1 - math.exp(-(n / u_n - 1) / rn))
    d_eff = u_d + u_d * rd * (1 - math.exp(-(d / u_d - 1) / rd))
    return e + a / n_eff ** alpha + b / d_eff ** beta


def bisect(f, lo: float, hi: float, iters: int = 64) -> float:
    """x in [lo, hi] with f changing sign from + to - (f non-increasing)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return hi


def ternary_min(f, lo: float, hi: float, iters: int = 90, scan: int = 120) -> float:
    """Minimum value of a unimodal f on [lo, hi], after a coarse scan picks the bracket."""
    xs = [lo + (hi - lo) * i / scan for i in range(scan + 1)]
    i = min(range(len(xs)), key=lambda k: f(xs[k]))
    lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, scan)]
    for _ in range(iters):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        lo, hi = (lo, m2) if f(m1) < f(m2) else (m1, hi)
    return f((lo + hi) / 2)


def tokens_for_loss(law: str, n: float, target: float, u: float) -> float:
    """D reaching ``target`` with N = n, or inf (longer training no longer helps: chinchilla D <= U, muennighoff
    D up to 1e40)."""
    d_max = u if CONSTANTS[law][5] is None else 1e40
    if oracle_loss(law, n, d_max, u) > target:
        return math.inf
    return math.exp(bisect(lambda x: oracle_loss(law, n, math.exp(x), u) - target, 0.0, math.log(d_max)))


def oracle_least_compute(law: str, target: float, u: float, n: float | None = None) -> float:
    """C*(L; U) = min over N of 6*N*D(N) (only D when ``n`` is given), by a scan and ternary search over ln N."""
    if n is not None:
        return 6 * n * tokens_for_loss(law, n, target, u)

    def log_compute(x: float) -> float:
        d = tokens_for_loss(law, math.exp(x), target, u)
        return x + math.log(6 * d) if math.isfinite(d) else 1e9

    return math.exp(ternary_min(log_compute, math.log(1e5), math.log(1e18)))


def oracle_best_loss(law: str, c: float, u: float) -> float:
    """The lowest loss at compute c = 6*N*D with pool u: min over ln N along the iso-FLOP line."""
    return ternary_min(lambda x: oracle_loss(law, math.exp(x), c / (6 * math.exp(x)), u), 0.0, math.log(c / 6))


def oracle_value(law: str, plan: str, u0: float, du: float, n: float = 7e9, d: float = 1.4e12,
                 c: float = 6 * 7e9 * 1.4e12) -> float:
    """Equivalent compute (FLOPs) of ``du`` unique tokens added to ``u0`` under the plan."""
    if plan == "compute-optimal":
        return oracle_least_compute(law, oracle_best_loss(law, c, u0 + du), u0) - c
    fixed_n = n if plan == "fixed-params" else None
    before, after = oracle_loss(law, n, d, u0), oracle_loss(law, n, d, u0 + du)
    return oracle_least_compute(law, after, u0, fixed_n) - oracle_least_compute(law, before, u0, fixed_n)


# 10+ priced points per plan: every law, pools from 5% to 86% of the 1.4T-token budget, batches of 5-20 % of the
# pool.  With N fixed, chinchilla and besiroglu (no repetition term) can only train longer up to one epoch: there every
# batch is unbounded, so fixed-params gets ten muennighoff pools as well.
POOLS = ((7e10, 0.2), (1e11, 0.1), (2e11, 0.05), (4e11, 0.1))
MORE_POOLS = ((1.5e11, 0.2), (3e11, 0.1), (6e11, 0.05), (8e11, 0.1), (1e12, 0.05), (1.2e12, 0.1))
POINTS = [(plan, law, u, frac) for plan in ("fixed", "fixed-params", "compute-optimal")
          for law in ("muennighoff", "chinchilla", "besiroglu")
          for u, frac in POOLS + (MORE_POOLS if (plan, law) == ("fixed-params", "muennighoff") else ())]
PLANS = ("fixed", "fixed-params", "compute-optimal")


def got_value(law: str, plan: str, u0: float, du: float):
    value = ValueConfig(law=law, plan=plan, params=7e9, tokens=1.4e12)
    return price_batch(value, u0, du)


@pytest.mark.parametrize("plan,law,u0,frac", POINTS)
def test_value_matches_the_oracle(plan, law, u0, frac):
    got = got_value(law, plan, u0, u0 * frac)
    expected = oracle_value(law, plan, u0, u0 * frac)
    if math.isinf(expected):  # see POINTS
        assert got.status == "unbounded"
        return
    assert got.status == "priced" and expected > 0
    assert got.flops == pytest.approx(expected, rel=1e-7)
    assert got.usd == pytest.approx(expected * 2.0 / (3600 * 0.4 * 989e12), rel=1e-7)


def test_enough_oracle_points():
    priced = [p for p in POINTS if p[0] != "fixed-params" or p[1] == "muennighoff"]
    assert all(sum(p[0] == plan for p in priced) >= 10 for plan in PLANS)


def test_compute_optimal_figures_of_the_issue():
    """Issue 13: under a compute budget with re-optimised allocation (C = 6 * 7e9 * 1.4e12, muennighoff,
    $2/GPU-hour at 40 % MFU of 989 TFLOP/s), 1B unique tokens are worth $2,340 / $90 / $12.8 / $0 at
    U = 5e10 / 2e11 / 3.5e11 / 7e11."""
    got = [got_value("muennighoff", "compute-optimal", u, 1e9).usd for u in (5e10, 2e11, 3.5e11, 7e11)]
    assert got[:3] == pytest.approx([2340, 90, 12.8], rel=0.01)
    assert got[3] == 0.0  # U is past D_opt(C) = 438B: the optimal plan already has all the data it wants


def test_fixed_params_substitutes_only_longer_training():
    # a model size fixed by inference cost cannot grow instead: the same batch is worth more
    for u in (5e10, 2e11, 7e11):
        assert got_value("muennighoff", "fixed-params", u, 1e9).usd > got_value("muennighoff", "fixed", u, 1e9).usd


# ---------------------------------------------------------------- the floor

def oracle_floor(law: str, u: float) -> float:
    e, a, b, alpha, beta, rd, rn = CONSTANTS[law]
    if rd is None:
        return e + b / u ** beta
    g = ((alpha * a) / (beta * b)) ** (1 / (alpha + beta))
    return e + a / ((u * g) ** (beta / alpha) * g * (1 + rn)) ** alpha + b / (u * (1 + rd)) ** beta


@pytest.mark.parametrize("law", ["muennighoff", "chinchilla"])
def test_unbounded_exactly_below_the_floor(law):
    """A fixed plan of 2e11 tokens on a small pool: find the batch whose loss after lands on the old pool's floor,
    then price batches just smaller (loss above the floor) and just larger."""
    u0, n, d = (5e9, 1e9, 2e11) if law == "muennighoff" else (2e10, 1e10, 2e11)
    floor = oracle_floor(law, u0)
    du = math.exp(bisect(lambda x: oracle_loss(law, n, d, u0 + math.exp(x)) - floor, math.log(1.0), math.log(d)))
    value = ValueConfig(law=law, plan="fixed", params=n, tokens=d)
    above, below = price_batch(value, u0, du * (1 - 1e-4)), price_batch(value, u0, du * (1 + 1e-4))
    assert above.status == "priced" and above.usd > 0 and above.loss_after > above.loss_floor
    assert below.status == "unbounded" and below.usd is None and below.flops is None
    assert below.loss_after < below.loss_floor == pytest.approx(floor, rel=1e-12)
    assert "lowest loss any amount of compute reaches" in below.reason


def oracle_floor_fixed_n(law: str, u: float, n: float) -> float:
    """Lowest loss over D alone: D -> infinity (muennighoff) or D = U (one epoch)."""
    return oracle_loss(law, n, 1e40 if CONSTANTS[law][5] is not None else u, u)


def random_case(rng: random.Random, plan: str):
    """A random law, model size, budget, pool and batch: (status, L_after, oracle floor), None when outside the law
    or within 1e-9 of the floor."""
    law = rng.choice(sorted(CONSTANTS))
    n, d = 10 ** rng.uniform(8.5, 10), 10 ** rng.uniform(10.5, 12.3)
    u0 = 10 ** rng.uniform(9, 12)
    du = u0 * 10 ** rng.uniform(-2, 0.5)
    got = price_batch(ValueConfig(law=law, plan=plan, params=n, tokens=d), u0, du)
    after = oracle_best_loss(law, 6 * n * d, u0 + du) if plan == "compute-optimal" else oracle_loss(law, n, d, u0 + du)
    floor = oracle_floor_fixed_n(law, u0, n) if plan == "fixed-params" else oracle_floor(law, u0)
    return None if got.status == "outside_law" or abs(after - floor) < 1e-9 else (got.status, after, floor)


@pytest.mark.parametrize("plan", PLANS)
def test_unbounded_decision_on_random_points(plan):
    """Issue 13 found the old test wrong both ways on random points; here "unbounded" must be exactly L_after below
    the oracle's floor, over random laws, model sizes, budgets, pools and batches."""
    rng = random.Random(13)
    cases = [c for c in (random_case(rng, plan) for _ in range(40)) if c]
    assert all((status == "unbounded") == (after < floor) for status, after, floor in cases)
    assert {status for status, _, _ in cases} == {"priced", "unbounded"}


# ---------------------------------------------------------------- the guard, statuses, scale

def test_guard_outside_the_law():
    # the old sample scenario: 1M parameters on 20M tokens predicts a loss worse than a uniform guess
    toy = price_batch(ValueConfig(params=1e6, tokens=2e7), 1e6, 1e5)
    assert toy.status == "outside_law" and toy.usd is None and "uniform guess" in toy.reason
    assert toy.loss_before > math.log(200_019)
    # a 2T-parameter model is more than 10x beyond Chinchilla's largest fitted run (16B)
    big = price_batch(ValueConfig(law="chinchilla", params=2e12, tokens=1e12), 1e11, 1e10)
    assert big.status == "outside_law" and "model size" in big.reason and "Hoffmann" in big.reason
    # a pool of 5M unique tokens is far below the 100M of Muennighoff et al.'s smallest runs
    tiny = price_batch(ValueConfig(params=1e9, tokens=2e10), 5e6, 1e6)
    assert tiny.status == "outside_law" and "unique tokens" in tiny.reason
    # Chinchilla itself (70B on 1.4T, 4.4x and 2.8x beyond its fit) is inside
    assert price_batch(ValueConfig(law="chinchilla", params=70e9, tokens=1.4e12), 1e12, 1e10).status == "priced"


def test_statuses_stay_apart_in_json():
    cases = {
        "n/a": price_batch(ValueConfig(), 0.0, 1e9),
        "priced": got_value("muennighoff", "fixed", 1e11, 1e10),
        "unbounded": price_batch(ValueConfig(params=1e9, tokens=2e11), 5e8, 5e8),
        "outside_law": price_batch(ValueConfig(params=1e6, tokens=2e7), 1e6, 1e5),
    }
    text = json.dumps({k: v.as_dict() for k, v in cases.items()}, allow_nan=False)
    back = json.loads(text)
    assert {k: v["status"] for k, v in back.items()} == {k: k for k in cases}
    assert [k for k, v in back.items() if v["usd"] is None] == ["n/a", "unbounded", "outside_law"]
    assert all(v["reason"] for k, v in back.items() if k != "priced") and back["priced"]["reason"] == ""
    assert price_batch(ValueConfig(), 1e9, 0.0).status == "n/a"


def test_sample_fraction_prices_at_pool_scale():
    pool = price_batch(ValueConfig(params=7e9, tokens=1.4e12), 1e11, 1e10)
    sample = price_batch(ValueConfig(params=7e9, tokens=1.4e12, sample_fraction=1e-5), 1e6, 1e5)
    assert sample.status == pool.status == "priced"
    assert sample.usd == pytest.approx(pool.usd, rel=1e-12)


def test_sample_caveat_only_for_samples():
    assert sample_caveat(ValueConfig()) == ""
    text = sample_caveat(ValueConfig(sample_fraction=1e-5))
    assert "upper bound" in text and "1e-05 sample" in text and "1e-10" in text


def test_training_runs_and_price_multiply():
    one = price_batch(ValueConfig(params=7e9, tokens=1.4e12), 1e11, 1e10)
    many = price_batch(ValueConfig(params=7e9, tokens=1.4e12, training_runs=3, usd_per_gpu_hour=4.0), 1e11, 1e10)
    assert many.flops == one.flops and many.usd == pytest.approx(6 * one.usd, rel=1e-12)
    assert usd_per_flop(ValueConfig()) == pytest.approx(1.404e-18, rel=1e-3)


def test_target_pool():
    law = "muennighoff"
    c = 6 * 7e9 * 1.4e12
    pool = target_pool(ValueConfig(law=law, plan="compute-optimal", params=7e9, tokens=1.4e12))
    # D_opt: where the loss with unlimited unique data is lowest along the iso-FLOP line
    for k in (0.98, 1.02):
        d = pool["unique_tokens"] * k
        assert oracle_loss(law, c / (6 * d), d, 1e30) > oracle_loss(
            law, c / (6 * pool["unique_tokens"]), pool["unique_tokens"], 1e30)
    assert pool["epochs"] == 4 and pool["unique_tokens_at_epochs"] == pytest.approx(pool["unique_tokens"] / 4)
    assert target_pool(ValueConfig(params=7e9, tokens=1.4e12, epochs=2))["unique_tokens_at_epochs"] == 7e11


def test_format_usd():
    assert [format_usd(x) for x in (2337.26, 90.24, 12.84, 0.0011349, 0.0, 1.5e6)] == \
        ["$2,340", "$90.2", "$12.8", "$0.00113", "$0", "$1,500,000"]


def main(points: int) -> None:
    """The closing note's table of oracle checks, and the unbounded decision on ``points`` random points per plan."""
    print("| plan | law | U before | batch | expected FLOPs (oracle) | got FLOPs | rel. diff | got $ |")
    print("|---|---|---|---|---|---|---|---|")
    for plan, law, u0, frac in POINTS:
        e, g = oracle_value(law, plan, u0, u0 * frac), got_value(law, plan, u0, u0 * frac)
        if g.status != "priced":
            print(f"| {plan} | {law} | {u0:.3g} | {u0 * frac:.3g} | {e:.6g} | {g.status} | - | - |")
            continue
        print(f"| {plan} | {law} | {u0:.3g} | {u0 * frac:.3g} | {e:.6e} | {g.flops:.6e} | "
              f"{abs(g.flops - e) / e:.1e} | {format_usd(g.usd)} |")
    rng = random.Random(0)
    for plan in PLANS:
        cases = [c for c in (random_case(rng, plan) for _ in range(points)) if c]
        wrong_priced = sum(s != "unbounded" and a < f for s, a, f in cases)
        wrong_unbounded = sum(s == "unbounded" and a >= f for s, a, f in cases)
        unbounded = sum(s == "unbounded" for s, _, _ in cases)
        print(f"{plan}: {len(cases)} random points inside the law, {unbounded} unbounded; below the floor but priced: "
              f"{wrong_priced}; above it but unbounded: {wrong_unbounded}")


if __name__ == "__main__":  # python tests/test_value.py [random points per plan]
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
