"""The scaling-law module reproduces published figures and behaves sanely (issue 5)."""
from __future__ import annotations

import math

import pytest

from corpusslim import scaling
from corpusslim.errors import CorpusSlimError
from corpusslim.scaling import (
    LAWS,
    TrainingPrice,
    UnknownLawError,
    batch_value,
    dloss_per_billion_unique,
    effective_params,
    effective_tokens,
    format_value_report,
    loss,
    marginal_loss_per_flop,
    optimal_allocation,
    stopping_batch,
    usd_per_flop,
    value_report,
)


def sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits - 1}e}")


# ---------------------------------------------------------------- published figures

def test_chinchilla_loss_of_chinchilla():
    # Hoffmann et al. 2022, Eq. 10 with its rounded constants, the 70B / 1.4T Chinchilla model.
    assert round(loss("chinchilla", 70e9, 1.4e12), 4) == 1.9366


def test_chinchilla_compute_optimal_params():
    n, d = optimal_allocation("chinchilla", 5.76e23)
    assert sig(n, 4) == 32.19e9
    assert 6 * n * d == pytest.approx(5.76e23, rel=1e-12)
    # the closed form sits at the minimum of the loss along the iso-FLOP line
    for k in (0.9, 1.1):
        assert loss("chinchilla", n * k, d / k) > loss("chinchilla", n, d)


def test_muennighoff_datablations_scaling_law():
    # datablations README, "Parametric Fit", models of Figure 1 (right)
    assert loss("muennighoff", 6.34e9, 242e9, 25e9) == pytest.approx(2.2256440889984477, rel=1e-12)
    assert loss("muennighoff", 8.67e9, 178e9, 25e9) == pytest.approx(2.2269634075087867, rel=1e-12)


def test_muennighoff_datablations_optimal_allocation():
    params, tokens = optimal_allocation("muennighoff", 1e22, 25e9)
    assert sig(tokens, 6) == sig(237336955477.55, 6)
    assert sig(params, 6) == sig(7022364735.88, 6)
    # the exact optimum is within the reference grid's resolution of it, and no worse
    p2, t2 = optimal_allocation("muennighoff", 1e22, 25e9, method="exact")
    assert p2 == pytest.approx(params, rel=5e-3) and t2 == pytest.approx(tokens, rel=5e-3)
    assert loss("muennighoff", p2, t2, 25e9) <= loss("muennighoff", params, tokens, 25e9)
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
        n, d = optimal_allocation("besiroglu", compute)
        assert 15 < d / n < 25


def test_scarce_unique_data_moves_the_optimum_to_more_epochs_and_fewer_params():
    n0, d0 = optimal_allocation("muennighoff", 1e22)
    n1, d1 = optimal_allocation("muennighoff", 1e22, 25e9)
    assert n1 < n0 and d1 > d0
    # unique data at least the unconstrained optimum changes nothing
    assert optimal_allocation("muennighoff", 1e22, d0 * 2) == (n0, d0)


# ---------------------------------------------------------------- monotonicity

@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("unique", [None, 30e9, 300e9])
def test_loss_falls_with_params_and_tokens(name, unique):
    ns = [1e8, 1e9, 7e9, 7e10, 1e12]
    ds = [1e10, 1e11, 1e12, 1e13]
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
    r_star = 15.387756
    u = 1e9
    prev = 0.0
    for d in (1e9, 2e9, 1e10, 1e11, 1e12):
        eff = effective_tokens(name, d, u)
        assert prev < eff <= d
        prev = eff
    assert effective_tokens(name, 2e9, 1e9) < 2e9
    # no repetition: D' = D
    assert effective_tokens(name, 1e12, 1e12) == 1e12
    assert effective_tokens(name, 1e12, 5e12) == 1e12
    assert effective_tokens(name, 1e12, None) == 1e12
    # endless repetition: D' -> U * (1 + R*_D)
    assert effective_tokens(name, 1e9 * 1e6, u) == pytest.approx(u * (1 + r_star), rel=1e-9)


def test_effective_params():
    law = LAWS["muennighoff"]
    u_n = scaling.params_for_tokens(law, 25e9)
    assert effective_params(law, u_n / 2, 25e9) == u_n / 2
    assert u_n < effective_params(law, 3 * u_n, 25e9) < 3 * u_n
    assert effective_params(law, 1e6 * u_n, 25e9) == pytest.approx(u_n * (1 + law.rn_star), rel=1e-9)
    # the Chinchilla-form laws have no excess-parameter term
    assert effective_params("chinchilla", 1e12, 1e9) == 1e12
    # params_for_tokens is the inverse of the frontier: (N, D) of the closed-form optimum
    n, d = optimal_allocation(law, 1e22)
    assert scaling.params_for_tokens(law, d) == pytest.approx(n, rel=1e-12)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_marginal_loss_per_flop_matches_finite_differences(name):
    n, d, u = 7e9, 1.4e12, 2e11
    lam = marginal_loss_per_flop(name, n, d, u)
    h = 1e-4
    by_tokens = (loss(name, n, d * (1 - h), u) - loss(name, n, d * (1 + h), u)) / (6 * n * 2 * h * d)
    by_params = (loss(name, n * (1 - h), d, u) - loss(name, n * (1 + h), d, u)) / (6 * d * 2 * h * n)
    assert lam == pytest.approx(max(by_tokens, by_params), rel=1e-5)


# ---------------------------------------------------------------- value

def test_usd_per_flop_defaults():
    assert usd_per_flop(TrainingPrice()) == pytest.approx(2.0 / (3600 * 0.4 * 989e12))
    assert usd_per_flop(TrainingPrice(usd_per_gpu_hour=4.0)) == pytest.approx(2 * usd_per_flop(TrainingPrice()))
    with pytest.raises(ValueError, match="mfu"):
        usd_per_flop(TrainingPrice(mfu=0))


@pytest.mark.parametrize("name", sorted(LAWS))
def test_batch_value_positive_and_diminishing(name):
    price = TrainingPrice()
    values = []
    for u in (1e10, 5e10, 1e11, 2e11, 4e11, 8e11, 1.2e12):
        v = batch_value(name, 7e9, 1.4e12, u, 1e10, price)
        assert set(v) >= {"loss_before", "loss_after", "loss_gain", "equivalent_flops", "value_usd"}
        assert v["loss_gain"] == pytest.approx(v["loss_before"] - v["loss_after"])
        assert v["loss_gain"] > 0 and v["equivalent_flops"] > 0 and v["value_usd"] > 0
        assert v["value_usd"] == pytest.approx(v["equivalent_flops"] * usd_per_flop(price))
        values.append(v["value_usd"])
    assert all(a > b for a, b in zip(values, values[1:]))
    # a bigger batch is worth more than a smaller one at the same point
    assert batch_value(name, 7e9, 1.4e12, 1e11, 2e10)["value_usd"] > values[2]
    # once the unique pool covers the training budget, using more data costs about what it buys
    v = batch_value(name, 7e9, 1.4e12, 1.4e12, 1e10, price)
    assert v["extra_training_flops"] == pytest.approx(6 * 7e9 * 1e10)
    assert v["value_usd"] == 0.0
    # nothing new, no value
    assert batch_value(name, 7e9, 1.4e12, 1e11, 0.0)["value_usd"] == 0.0


def test_batch_value_scales_with_price():
    cheap = batch_value("muennighoff", 7e9, 1.4e12, 1e11, 1e10, TrainingPrice(usd_per_gpu_hour=1.0))
    dear = batch_value("muennighoff", 7e9, 1.4e12, 1e11, 1e10, TrainingPrice(usd_per_gpu_hour=3.0))
    assert dear["value_usd"] == pytest.approx(3 * cheap["value_usd"])
    assert dear["equivalent_flops"] == cheap["equivalent_flops"]


@pytest.mark.parametrize("name", sorted(LAWS))
def test_dloss_per_billion_unique(name):
    below = [dloss_per_billion_unique(name, 7e9, 1.4e12, u) for u in (1e10, 1e11, 1e12)]
    assert all(x > 0 for x in below)
    assert all(a > b for a, b in zip(below, below[1:]))
    # without a unique count every token is fresh: the extra billion is trained on once more
    fresh = dloss_per_billion_unique(name, 7e9, 1.4e12)
    assert fresh == pytest.approx(loss(name, 7e9, 1.4e12) - loss(name, 7e9, 1.4e12 + 1e9))
    assert fresh > 0


def test_stopping_batch():
    assert stopping_batch([10.0, 8.0, 5.0, 3.0, 1.0], [2.0, 2.0, 2.0, 4.0, 4.0]) == 3
    assert stopping_batch([10.0, 8.0], [2.0, 2.0]) is None
    assert stopping_batch([1.0, 8.0], [2.0, 2.0]) == 0
    assert stopping_batch([], []) is None
    assert stopping_batch([2.0], [2.0]) is None  # equal is not below
    with pytest.raises(ValueError, match="one of each"):
        stopping_batch([1.0, 2.0], [1.0])


def test_stopping_batch_on_modelled_values():
    values = [batch_value("muennighoff", 7e9, 1.4e12, u, 5e10)["value_usd"]
              for u in (5e10 * (i + 1) for i in range(30))]
    costs = [500.0] * len(values)
    i = stopping_batch(values, costs)
    assert i is not None and 0 < i < len(values)
    assert values[i] < 500.0 <= values[i - 1]


# ---------------------------------------------------------------- CLI-facing and errors

@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("unique", [None, 2e11])
def test_value_report(name, unique):
    d = value_report(name, 7e9, 1.4e12, unique)
    assert set(d) == {"loss", "effective_tokens", "optimal_params", "optimal_tokens",
                      "dloss_per_billion_unique"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in d.values())
    assert d["loss"] == loss(name, 7e9, 1.4e12, unique)
    assert d["effective_tokens"] == effective_tokens(name, 1.4e12, unique)
    assert 6 * d["optimal_params"] * d["optimal_tokens"] == pytest.approx(6 * 7e9 * 1.4e12, rel=1e-9)
    assert loss(name, d["optimal_params"], d["optimal_tokens"], unique) <= d["loss"]
    text = format_value_report(d, law_name=name)
    assert name in text and "loss" in text


def test_unknown_law_is_a_clear_error():
    with pytest.raises(UnknownLawError, match="unknown scaling law 'kaplan'.*besiroglu, chinchilla, muennighoff"):
        loss("kaplan", 1e9, 1e10)
    with pytest.raises(CorpusSlimError):
        value_report("gpt", 1e9, 1e10)
    with pytest.raises(ValueError):
        scaling.get_law("Chinchilla")


def test_bad_numbers_are_rejected():
    with pytest.raises(ValueError, match="params"):
        loss("chinchilla", 0, 1e10)
    with pytest.raises(ValueError, match="tokens"):
        loss("chinchilla", 1e9, -1)
    with pytest.raises(ValueError, match="unique"):
        effective_tokens("chinchilla", 1e10, 0)
    with pytest.raises(ValueError, match="method"):
        optimal_allocation("muennighoff", 1e22, 25e9, method="newton")


def test_batch_value_unbounded_deep_in_repetition():
    """200 epochs over the unique pool: compute cannot replace new unique data, so its value is unbounded."""
    v = batch_value("muennighoff", 1e7, 2e8, 1e6, 1e5)
    assert math.isinf(v["value_usd"]) and v["loss_gain"] > 0
