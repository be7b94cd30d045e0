"""The scaling-law module reproduces published figures and behaves sanely (issues 5 and 13)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from corpusslim.config import ValueConfig
from corpusslim.tracker import scaling
from corpusslim.tracker.scaling import (
    LAWS,
    UnknownLawError,
    best_allocation,
    closed_form_optimum,
    effective_params,
    effective_tokens,
    least_compute,
    loss,
    loss_floor,
    usd_per_flop,
)


def sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits - 1}e}")


# ---------------------------------------------------------------- published figures

def test_chinchilla_loss_of_chinchilla():
    # Hoffmann et al. 2022, Eq. 10 with its rounded constants, the 70B / 1.4T Chinchilla model.
    assert round(loss("chinchilla", 70e9, 1.4e12), 4) == 1.9366


def test_chinchilla_compute_optimal_params():
    n, d = closed_form_optimum("chinchilla", 5.76e23)
    assert sig(n, 4) == 32.19e9
    assert 6 * n * d == pytest.approx(5.76e23, rel=1e-12)
    # the closed form sits at the minimum of the loss along the iso-FLOP line
    for k in (0.9, 1.1):
        assert loss("chinchilla", n * k, d / k) > loss("chinchilla", n, d)


def test_muennighoff_datablations_scaling_law():
    # datablations README, "Parametric Fit", models of Figure 1 (right)
    assert loss("muennighoff", 6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-12)
    assert loss("muennighoff", 8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, rel=1e-12)


def reference_grid(law: str, compute: float, unique: float) -> tuple[float, float]:
    """Muennighoff et al.'s reference search (datablations README, "Parametric Fit", ``optimal_allocation``): from
    the unconstrained optimum (N0, D0), the points (N0/k, D0*k) and (N0*k, D0/k) for k = linspace(1.0001, 3, 500),
    training on U = min(unique, D) unique tokens; the lowest loss wins."""
    n0, d0 = closed_form_optimum(law, compute)
    points = [(n0 / k, d0 * k) for k in np.linspace(1.0001, 3, 500)] + \
        [(n0 * k, d0 / k) for k in np.linspace(1.0001, 3, 500)]
    return min(points, key=lambda p: loss(law, p[0], p[1], min(unique, p[1])))


def test_muennighoff_datablations_optimal_allocation():
    params, tokens = reference_grid("muennighoff", 1e22, 25e9)
    assert sig(tokens, 6) == sig(237336955477.55, 6)
    assert sig(params, 6) == sig(7022364735.88, 6)
    # the exact optimum is within the reference grid's resolution of it, and no worse
    best, p2, t2 = best_allocation("muennighoff", 1e22, 25e9)
    assert p2 == pytest.approx(params, rel=5e-3) and t2 == pytest.approx(tokens, rel=5e-3)
    assert best <= loss("muennighoff", params, tokens, 25e9)
    assert 6 * p2 * t2 == pytest.approx(1e22, rel=1e-9)


def test_muennighoff_constants_are_the_log_space_fit():
    law = LAWS["muennighoff"]
    assert math.log(law.A) == pytest.approx(6.255414)
    assert math.log(law.B) == pytest.approx(7.3049974)
    assert math.log(law.E) == pytest.approx(0.6254804)
    assert law.alpha == law.beta == 0.3526596
    assert (law.rd_star, law.rn_star) == (15.387756, 5.309743)


def test_besiroglu_optimum_is_about_twenty_tokens_per_parameter():
    # Besiroglu et al. 2024 note that their refit, unlike Eq. 10's rounded constants, is consistent with
    # Chinchilla's ~20 tokens per parameter.
    for compute in (1e21, 5.76e23, 1e25):
        n, d = closed_form_optimum("besiroglu", compute)
        assert 15 < d / n < 25


def test_scarce_unique_data_moves_the_optimum_to_more_epochs_and_fewer_params():
    n0, d0 = closed_form_optimum("muennighoff", 1e22)
    _, n1, d1 = best_allocation("muennighoff", 1e22, 25e9)
    assert n1 < n0 and d1 > d0
    # unique data at least the unconstrained optimum changes nothing
    # (the argmin to ~1e-7: the loss is flat at the optimum, within rounding over that span)
    best, n2, d2 = best_allocation("muennighoff", 1e22, d0 * 2)
    assert n2 == pytest.approx(n0, rel=1e-6) and d2 == pytest.approx(d0, rel=1e-6)
    assert best == pytest.approx(loss("muennighoff", n0, d0), rel=1e-14)


# ---------------------------------------------------------------- monotonicity

@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("unique", [None, 30e9, 300e9])
def test_loss_falls_with_params_and_tokens(name, unique):
    ns = [1e8, 1e9, 7e9, 7e10, 1e12]
    # chinchilla and besiroglu train on at most one epoch: beyond U more tokens change nothing
    ds = [d for d in (1e10, 1e11, 1e12, 1e13) if LAWS[name].repeats or unique is None or d <= unique]
    for d in ds:
        losses = [loss(name, n, d, unique) for n in ns]
        assert all(a > b for a, b in zip(losses, losses[1:]))
    for n in ns:
        losses = [loss(name, n, d, unique) for d in ds]
        assert all(a > b for a, b in zip(losses, losses[1:]))
    assert all(loss(name, n, d, unique) > LAWS[name].E for n in ns for d in ds)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_loss_falls_with_unique_tokens_at_fixed_budget(name):
    losses = [loss(name, 7e9, 1e12, u) for u in (1e9, 1e10, 1e11, 5e11, 1e12)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert loss(name, 7e9, 1e12, 1e12) == loss(name, 7e9, 1e12, 5e12) == loss(name, 7e9, 1e12)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_effective_tokens(name):
    u = 1e9
    # no repetition: D' = D
    assert effective_tokens(name, 1e12, 1e12) == 1e12
    assert effective_tokens(name, 1e12, 5e12) == 1e12
    assert effective_tokens(name, 1e12, None) == 1e12
    if not LAWS[name].repeats:  # one epoch at most: D' = min(D, U)
        assert [effective_tokens(name, d, u) for d in (5e8, 2e9, 1e12)] == [5e8, u, u]
        return
    prev = 0.0
    for d in (1e9, 2e9, 1e10, 1e11, 1e12):
        eff = effective_tokens(name, d, u)
        assert prev < eff <= d
        prev = eff
    assert effective_tokens(name, 2e9, 1e9) < 2e9
    # endless repetition: D' -> U * (1 + R*_D), R*_D = 15.387756 (datablations README)
    assert effective_tokens(name, 1e9 * 1e6, u) == pytest.approx(u * (1 + 15.387756), rel=1e-9)


def test_effective_params():
    law = LAWS["muennighoff"]
    u_n = scaling.params_for_tokens(law, 25e9)
    assert effective_params(law, u_n / 2, 25e9) == u_n / 2
    assert u_n < effective_params(law, 3 * u_n, 25e9) < 3 * u_n
    assert effective_params(law, 1e6 * u_n, 25e9) == pytest.approx(u_n * (1 + law.rn_star), rel=1e-9)
    # the Chinchilla-form laws have no excess-parameter term
    assert effective_params("chinchilla", 1e12, 1e9) == 1e12
    # params_for_tokens is the inverse of the frontier: (N, D) of the closed-form optimum
    n, d = closed_form_optimum(law, 1e22)
    assert scaling.params_for_tokens(law, d) == pytest.approx(n, rel=1e-12)


# ---------------------------------------------------------------- best loss for a budget, least compute

@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("unique", [5e9, 5e10, 1e12])
def test_best_allocation_is_a_minimum_on_the_iso_flop_line(name, unique):
    compute = 5.88e22
    best, n, d = best_allocation(name, compute, unique)
    assert 6 * n * d == pytest.approx(compute, rel=1e-12)
    assert best == pytest.approx(loss(name, n, d, unique), rel=1e-15)
    for k in (0.5, 0.9, 0.999, 1.001, 1.1, 2.0):
        assert loss(name, n * k, d / k, unique) >= best - 1e-12
    # never worse than the reference grid search
    assert best <= loss(name, *reference_grid(name, compute, unique), unique) + 1e-15


def test_chinchilla_form_laws_never_repeat_in_the_optimum():
    # with no repetition term a token beyond the pool buys nothing, so the optimum trains exactly one epoch
    _, n, d = best_allocation("chinchilla", 1e24, 1e11)
    assert d == pytest.approx(1e11, rel=1e-6)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_least_compute_inverts_the_best_loss(name):
    for compute in (1e20, 5.88e22, 1e24):
        best = best_allocation(name, compute, 2e11)[0]
        assert least_compute(name, best, 2e11) == pytest.approx(compute, rel=1e-9)
        n = 7e9
        fixed = loss(name, n, compute / (6 * n), 2e11)
        assert least_compute(name, fixed, 2e11, params=n) == pytest.approx(min(compute, 6 * n * 2e11)
                                                                           if not LAWS[name].repeats else compute,
                                                                           rel=1e-9)


@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("params", [None, 7e9])
def test_least_compute_is_unbounded_below_the_floor(name, params):
    floor = loss_floor(name, 1e11, params)
    assert math.isinf(least_compute(name, floor * (1 - 1e-9), 1e11, params))
    assert math.isfinite(least_compute(name, floor * (1 + 1e-6), 1e11, params))


# ---------------------------------------------------------------- dollars and errors

def test_usd_per_flop_defaults():
    assert usd_per_flop(ValueConfig()) == pytest.approx(2.0 / (3600 * 0.4 * 989e12))
    assert usd_per_flop(ValueConfig(usd_per_gpu_hour=4.0)) == pytest.approx(2 * usd_per_flop(ValueConfig()))
    with pytest.raises(ValueError, match="mfu"):
        usd_per_flop(SimpleNamespace(usd_per_gpu_hour=2.0, mfu=0.0, peak_flops=989e12))


def test_unknown_law_is_a_clear_error():
    with pytest.raises(UnknownLawError, match="unknown scaling law 'kaplan'.*besiroglu, chinchilla, muennighoff"):
        loss("kaplan", 1e9, 1e10)
    with pytest.raises(ValueError):
        scaling.get_law("Chinchilla")


def test_bad_numbers_are_rejected():
    with pytest.raises(ValueError, match="params"):
        loss("chinchilla", 0, 1e10)
    with pytest.raises(ValueError, match="tokens"):
        loss("chinchilla", 1e9, -1)
    with pytest.raises(ValueError, match="unique"):
        effective_tokens("chinchilla", 1e10, 0)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_the_scalar_loss_of_the_searches_equals_the_array_loss(name):
    """The searches evaluate the loss on floats with ``min`` and ``math.exp`` (numpy costs ~1 µs a call on a scalar);
    it is the same function as the array form, to rounding: over and under the pool, over and under U_N."""
    law = LAWS[name]
    n, d = np.meshgrid(np.geomspace(1e7, 1e12, 40), np.geomspace(1e8, 1e14, 40))
    u = 5e10
    arrays = scaling._loss_arrays(law, n.ravel(), d.ravel(), u)
    floats = [scaling._loss_arrays(law, float(a), float(b), u, min, math.exp) for a, b in zip(n.ravel(), d.ravel())]
    assert np.allclose(floats, arrays, rtol=1e-14, atol=0)
    assert law.frontier == scaling.frontier_coefficient(name)
