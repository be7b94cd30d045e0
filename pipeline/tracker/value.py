"""What a batch of unique tokens is worth under a training plan, in training compute and dollars (issue 13).

A plan (``value.plan``) says how the pool U of unique tokens is used:

* ``fixed``: N parameters trained on D tokens, as given;
* ``fixed-params``: the same, but N is fixed (by inference cost, say): only longer training can stand in for data;
* ``compute-optimal``: a budget of C FLOPs, split between N and D anew for every pool size (Muennighoff et al.
  2023's ``optimal_allocation``, solved exactly by :func:`corpusslim.tracker.scaling.best_allocation`).

With L_before and L_after the plan's losses with the pool before and after a batch, the batch is worth the training
compute it saves: C*(L_after; U) - C*(L_before; U), C* being the least compute (N and D free, or only D under
``fixed-params``) that reaches a loss with the old pool U (:func:`corpusslim.tracker.scaling.least_compute`); under
``compute-optimal`` C*(L_before; U) is the budget C itself.  When L_after is below the lowest loss any compute
reaches with U (:func:`corpusslim.tracker.scaling.loss_floor`), no compute replaces the batch: its value is unbounded.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from corpusslim.config import ValueConfig
from corpusslim.tracker.scaling import (
    BILLION,
    EXTRAPOLATION,
    best_allocation,
    closed_form_optimum,
    effective_tokens,
    get_law,
    least_compute,
    loss,
    loss_floor,
    usd_per_flop,
)

__all__ = ["BatchValue", "ValueStatus", "price_batch", "target_pool", "sample_caveat", "usd_per_flop",
           "value_report", "format_value_report", "format_usd"]

ValueStatus = Literal["priced", "unbounded", "outside_law", "n/a"]


@dataclass(frozen=True)
class BatchValue:
    """The value of one batch.  ``usd`` (training compute saved x $/FLOP x ``value.training_runs``) and ``flops``
    are None unless ``status`` is "priced"; ``reason`` says in words why a batch is not priced ("" when it is)."""

    status: ValueStatus
    usd: float | None
    flops: float | None
    loss_before: float | None  # the plan's loss with the pool before the batch (pool scale)
    loss_after: float | None  # ... with the batch added
    loss_floor: float | None  # lowest loss any compute reaches with the pool before the batch, under the plan
    reason: str

    def as_dict(self) -> dict:
        """JSON-safe: every number finite or None, the status spelled out."""
        return asdict(self)


@dataclass(frozen=True)
class PlanPoint:
    """The plan's model size, training tokens and predicted loss with a given pool."""

    params: float
    tokens: float
    loss: float


def plan_compute(value: ValueConfig) -> float:
    """The plan's training compute in FLOPs: ``value.compute``, or 6 * params * tokens."""
    return value.compute if value.compute is not None else 6.0 * value.params * value.tokens


def _fixed_params(value: ValueConfig) -> float | None:
    return value.params if value.plan == "fixed-params" else None


def plan_point(value: ValueConfig, unique: float) -> PlanPoint:
    """What the plan trains with a pool of ``unique`` tokens (pool scale), and the loss it reaches."""
    if value.plan == "compute-optimal":
        best, n, d = best_allocation(value.law, plan_compute(value), unique)
        return PlanPoint(n, d, best)
    return PlanPoint(value.params, value.tokens, loss(value.law, value.params, value.tokens, unique))


def plan_floor(value: ValueConfig, unique: float) -> float:
    """The lowest loss any compute reaches with ``unique`` tokens under the plan (N fixed under fixed-params)."""
    return loss_floor(value.law, unique, _fixed_params(value))


def _si(x: float) -> str:
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}"


def outside_law(value: ValueConfig, points: tuple[PlanPoint, ...], unique: float) -> str:
    """Why the scenario is outside what the law describes, in words; "" when it is inside.

    Outside: a predicted loss above ln(vocab_size) (worse than a uniform guess), or the plan's parameters,
    training tokens or unique tokens trained on (min(U, D)) more than :data:`EXTRAPOLATION` times beyond the
    range the law was fitted on (:class:`corpusslim.tracker.scaling.FittedRange`).
    """
    law = get_law(value.law)
    fitted = law.fitted
    uniform = math.log(value.vocab_size)
    worst = max(p.loss for p in points)
    if worst > uniform:
        return (f"the predicted loss {worst:.2f} nats/token is worse than a uniform guess over the "
                f"{value.vocab_size:,}-token vocabulary (ln {value.vocab_size:,} = {uniform:.2f})")
    for p in points:
        for what, x, (lo, hi) in (("model size", p.params, fitted.params), ("training tokens", p.tokens, fitted.tokens),
                                  ("unique tokens trained on", min(unique, p.tokens), fitted.unique)):
            if x < lo / EXTRAPOLATION or (hi is not None and x > hi * EXTRAPOLATION):
                span = f"{_si(lo)}-{_si(hi)}" if hi is not None else f"at least {_si(lo)}"
                return (f"{what} {_si(x)} is more than {EXTRAPOLATION:g}x outside the {span} the {law.name} law "
                        f"was fitted on ({fitted.source})")
    return ""


def price_batch(value: ValueConfig, unique_before: float, unique_added: float) -> BatchValue:
    """The value of a batch adding ``unique_added`` unique tokens to ``unique_before`` ones (the RUN's tokens,
    scaled to the pool by dividing by ``value.sample_fraction``).

    "n/a" when there is no pool before the batch (the first batch) or the batch adds no unique tokens;
    "outside_law" when :func:`outside_law` says so; "unbounded" when no compute reaches the plan's loss after the
    batch with the pool before it; else "priced" (see the module docstring).
    """
    if not unique_before > 0:
        return BatchValue("n/a", None, None, None, None, None,
                          "no unique tokens before this batch (the first batch): no plan to improve on")
    if not unique_added > 0:
        return BatchValue("n/a", None, None, None, None, None, "the batch adds no unique tokens")
    u0 = unique_before / value.sample_fraction
    u1 = (unique_before + unique_added) / value.sample_fraction
    before, after = plan_point(value, u0), plan_point(value, u1)
    losses = {"loss_before": before.loss, "loss_after": after.loss, "loss_floor": plan_floor(value, u0)}
    why = outside_law(value, (before, after), u0)
    if why:
        return BatchValue("outside_law", None, None, **losses, reason=why)
    if after.loss >= before.loss:  # the plan cannot use more data (a fixed D already covered by the pool)
        return BatchValue("priced", 0.0, 0.0, **losses, reason="")
    fixed_n = _fixed_params(value)
    c_after = least_compute(value.law, after.loss, u0, fixed_n)
    if math.isinf(c_after):
        return BatchValue("unbounded", None, None, **losses, reason=(
            f"with the batch the plan reaches a loss of {after.loss:.4f}, below {losses['loss_floor']:.4f}, the "
            f"lowest loss any amount of compute reaches with the {_si(u0)} unique tokens before it"))
    c_before = plan_compute(value) if value.plan == "compute-optimal" \
        else least_compute(value.law, before.loss, u0, fixed_n)
    flops = max(c_after - c_before, 0.0)
    return BatchValue("priced", flops * usd_per_flop(value) * value.training_runs, flops, **losses, reason="")


def sample_caveat(value: ValueConfig) -> str:
    """What pool-scale values of a sampled run rest on, in one sentence ("" when the run is the whole pool).

    Dedup of a sample sees a duplicate pair only when both its documents were drawn: with probability q^2 for a
    sample fraction q (the dry run's correction, pipeline/dryrun.py), so the sample's unique-token yield is an upper
    bound on the pool's and so is every value built on it.
    """
    q = value.sample_fraction
    if q >= 1:
        return ""
    return (f"This run is a {q:.3g} sample of the raw pool, and values are for the whole pool ({1 / q:.3g}x the "
            f"run's tokens). Dedup of a sample sees only the duplicate pairs whose two documents were both drawn "
            f"(a fraction q^2 = {q * q:.3g} of them), so the unique-token yield, and every value built on it, is an "
            f"upper bound.")


def target_pool(value: ValueConfig) -> dict:
    """The unique tokens the plan wants (pool scale): D_opt(C) under compute-optimal (the closed-form optimum with
    unlimited data), the token budget D otherwise; and D/k for ``value.epochs`` = k accepted epochs (Muennighoff
    et al. 2023: up to about 4 epochs of repeated data cost little loss)."""
    d = closed_form_optimum(value.law, plan_compute(value))[1] if value.plan == "compute-optimal" else value.tokens
    return {"unique_tokens": d, "epochs": value.epochs, "unique_tokens_at_epochs": d / value.epochs}


# --------------------------------------------------------------------------------------------------
# CLI-facing: corpusslim value
# --------------------------------------------------------------------------------------------------

def value_config_from_flags(law: str, plan: str | None, **flags: float | None) -> ValueConfig:
    """The ``value`` config for ``corpusslim value``'s flags; a ValueError naming the flag when they do not fit.

    ``flags``: params, tokens, compute, unique, add.  No ``plan`` means compute-optimal with --compute, else fixed.
    """
    for name, x in flags.items():
        if x is not None and not (x > 0 and math.isfinite(x)):
            raise ValueError(f"--{name} must be a positive number, got {x:g}")
    if plan is None and all(flags.get(k) is None for k in ("params", "tokens", "compute")):
        raise ValueError("give --compute C (the compute-optimal plan) or --params N --tokens D (a fixed plan)")
    plan = plan or ("compute-optimal" if flags.get("compute") is not None else "fixed")
    needed = ("compute",) if plan == "compute-optimal" else ("params", "tokens")
    unused = ("params", "tokens") if plan == "compute-optimal" else ("compute",)
    for name in needed:
        if flags.get(name) is None:
            raise ValueError(f"--plan {plan} needs --{name}")
    for name in unused:
        if flags.get(name) is not None:
            raise ValueError(f"--{name} does not apply to --plan {plan} (it takes --{' and --'.join(needed)})")
    if plan != "compute-optimal" and not math.isfinite(6.0 * flags["params"] * flags["tokens"]):
        raise ValueError("--params x --tokens is too large: 6*N*D must be a finite number of FLOPs")
    return ValueConfig(law=law, plan=plan, **{k: flags[k] for k in needed})


def value_report(value: ValueConfig, unique: float | None = None, added: float = BILLION) -> dict:
    """The answers of ``corpusslim value`` for a pool of ``unique`` tokens (default: the plan's target pool).

    ``loss``, ``effective_tokens`` (D'), ``optimal_params``/``optimal_tokens`` (the best split of the plan's
    compute with this pool), ``dloss_per_billion_unique`` (loss with 1e9 more unique tokens minus loss now:
    negative when data helps), and for ``added`` more unique tokens: ``loss_after``, ``loss_floor``,
    ``unbounded``, ``value_status``, ``reason``, ``equivalent_flops`` and ``equivalent_usd`` (None unless
    priced), plus ``target_unique_tokens``.
    """
    target = target_pool(value)["unique_tokens"]
    u = target if unique is None else unique
    point = plan_point(value, u)
    _, n_opt, d_opt = best_allocation(value.law, plan_compute(value), u)
    batch = price_batch(value, u, added)
    return {
        "law": value.law,
        "plan": value.plan,
        "unique_tokens": u,
        "loss": point.loss,
        "effective_tokens": effective_tokens(value.law, point.tokens, u),
        "optimal_params": n_opt,
        "optimal_tokens": d_opt,
        "dloss_per_billion_unique": plan_point(value, u + BILLION).loss - point.loss,
        "added_unique_tokens": added,
        "loss_after": batch.loss_after,
        "loss_floor": batch.loss_floor,
        "value_status": batch.status,
        "unbounded": batch.status == "unbounded",
        "equivalent_flops": batch.flops,
        "equivalent_usd": batch.usd,
        "reason": batch.reason,
        "target_unique_tokens": target,
    }


def format_usd(usd: float) -> str:
    """Dollars to three significant digits with thousands separators: $2,340, $90.0, $12.8, $0.00113, $0."""
    if usd == 0:
        return "$0"
    digits = max(0, 2 - math.floor(math.log10(abs(usd))))
    return f"${float(f'{usd:.3g}'):,.{digits}f}"


def format_value_report(d: dict) -> str:
    """The human-readable form of :func:`value_report`: the same numbers, names and signs."""
    added = f"+{_si(d['added_unique_tokens'])} unique tokens"
    if d["value_status"] == "priced":
        worth = f"{format_usd(d['equivalent_usd'])} ({d['equivalent_flops']:.3g} FLOPs of training saved)"
    else:
        worth = {"unbounded": "unbounded", "outside_law": "outside the law", "n/a": "n/a"}[d["value_status"]] \
            + f": {d['reason']}"
    rows = [
        ("scaling law, plan", f"{d['law']}, {d['plan']}"),
        ("unique tokens in the pool", _si(d["unique_tokens"])),
        ("predicted loss", f"{d['loss']:.4f} nats/token"),
        ("effective data D'", f"{_si(d['effective_tokens'])} tokens"),
        ("compute-optimal split", f"{_si(d['optimal_params'])} parameters, {_si(d['optimal_tokens'])} tokens"),
        ("loss change per +1B unique tokens", f"{d['dloss_per_billion_unique']:+.3g}"),
        (f"loss after {added}", "n/a" if d["loss_after"] is None else f"{d['loss_after']:.4f}"),
        ("lowest loss with this pool", "n/a" if d["loss_floor"] is None else f"{d['loss_floor']:.4f}"),
        (f"value of {added}", worth),
        ("target unique tokens", _si(d["target_unique_tokens"])),
    ]
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label + ':':<{width}}{text}" for label, text in rows)
