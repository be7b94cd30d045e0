"""The marginal-benefit report of a run: ``report/index.html`` (self-contained: tables and PNG plots embedded),
``report/summary.json`` and ``report/summary.md``, from the ledger, ``stats.json`` and the run's config.

It answers: how much is the next batch worth, and where should I stop? Observed batches are priced with the
scaling law of the ``value`` config; future batches with the fitted yield curve's extrapolation.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math

import polars as pl

from corpusslim import storage
from corpusslim.config import RunConfig
from corpusslim.curve import as_dict, extrapolate, fit_yield_curve
from corpusslim.manifest import write_json_atomic, write_text_atomic
from corpusslim.scaling import LAWS, TrainingPrice, batch_value, stopping_batch
from corpusslim.text import printable

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 300


def _price(config: RunConfig) -> TrainingPrice:
    v = config.value
    return TrainingPrice(usd_per_gpu_hour=v.usd_per_gpu_hour, mfu=v.mfu, peak_flops=v.peak_flops)


def batch_values(config: RunConfig, cum_unique: list[float], new_unique: list[float]) -> list[float | None]:
    """Dollar value of each batch's new unique tokens for the configured model and training budget: the value of
    adding them to the unique tokens before it. The first batch of a corpus has no "before" (no loss to improve
    on), so its value is None."""
    law, v, price = LAWS[config.value.law], config.value, _price(config)
    before = [u - n for u, n in zip(cum_unique, new_unique)]
    return [None if b <= 0 else batch_value(law, v.params, v.tokens, b, n, price)["value_usd"] if n > 0 else 0.0
            for b, n in zip(before, new_unique)]


def first_below_cost(values: list[float | None], costs: list[float]) -> int | None:
    """Index of the first batch whose value is known and below its cost."""
    known = [(i, v, c) for i, (v, c) in enumerate(zip(values, costs)) if v is not None]
    hit = stopping_batch([v for _, v, _ in known], [c for _, _, c in known]) if known else None
    return None if hit is None else known[hit][0]


def summarise(ledger: pl.DataFrame, stats: dict, config: RunConfig) -> dict:
    """Every figure of the report, JSON-serialisable."""
    R, U, C = (ledger[c].cast(pl.Float64).to_list() for c in ("cum_raw_tokens", "cum_unique_tokens", "cum_cost_usd"))
    fit = fit_yield_curve(R, U, C, seed=0)
    future = extrapolate(fit, R, U, C, k=config.value.extrapolate_batches) if fit.reason is None else []
    observed_values = batch_values(config, U, ledger["new_unique_tokens"].cast(pl.Float64).to_list())
    future_values = batch_values(config, [f["unique_tokens"] for f in future], [f["new_unique"] for f in future]) \
        if future else []
    costs = ledger["cost_usd"].to_list()
    future_costs = [f["cost_usd"] - prev for f, prev in zip(future, [C[-1], *[f["cost_usd"] for f in future]])]
    for f, value, cost in zip(future, future_values, future_costs):
        f.update(value_usd=value, batch_cost_usd=cost)
    stop_observed = first_below_cost(observed_values, costs)
    stop_future = first_below_cost(future_values, future_costs) if future else None
    return {
        "totals": stats["totals"],
        "value_assumptions": config.value.model_dump(),
        "cost_assumptions": config.cost.model_dump(),
        "batches": [{**row, "value_usd": value} for row, value in zip(ledger.to_dicts(), observed_values)],
        "curve": as_dict(fit),
        "extrapolation": future,
        "stopping": {"observed_batch": stop_observed, "future_batch": stop_future},
        "recommendation": recommend(ledger, observed_values, costs, stop_observed, future, stop_future, config),
        "removals": [{"batch": b["batch"], "stage": s["stage"], "reason": reason, **counts}
                     for b in stats["batches"] for s in b["stages"] for reason, counts in s["removed"].items()],
        "quarantined": stats["quarantined"],
    }


def _usd(value: float | None) -> str:
    return "n/a (first batch)" if value is None else "unbounded" if math.isinf(value) else f"${value:.3g}"


def recommend(ledger: pl.DataFrame, values: list[float], costs: list[float], stop_observed: int | None,
              future: list[dict], stop_future: int | None, config: RunConfig) -> str:
    """The one-sentence answer, with the assumptions it rests on."""
    v = config.value
    basis = (f"(value of unique tokens for a {v.params:.3g}-parameter model trained on {v.tokens:.3g} tokens, "
             f"{v.law} scaling law, ${v.usd_per_gpu_hour}/GPU-hour at {v.mfu:.0%} MFU; cleaning at "
             f"${config.cost.usd_per_cpu_hour}/CPU-hour)")
    if ledger.is_empty():
        return "No batch finished: nothing to recommend."
    if stop_observed is not None:
        return (f"Stop at batch {stop_observed}: its new unique tokens were worth {_usd(values[stop_observed])} against "
                f"{_usd(costs[stop_observed])} of cleaning, and the batches after it are worth no more {basis}.")
    last = len(values) - 1
    if not future:
        return (f"Keep going: the last batch (#{last}) was worth {_usd(values[last])} for {_usd(costs[last])} of cleaning; "
                f"too few batches to fit a yield curve {basis}.")
    if stop_future is not None:
        return (f"Keep going for about {stop_future} more batch(es): the last batch (#{last}) was worth "
                f"{_usd(values[last])} for {_usd(costs[last])} of cleaning, and the fitted yield curve puts the value of "
                f"batch #{last + stop_future + 1} below its cost {basis}.")
    return (f"Keep going: the last batch (#{last}) was worth {_usd(values[last])} for {_usd(costs[last])} of cleaning, "
            f"and the next {len(future)} batches stay above their cost on the fitted yield curve {basis}.")


def json_safe(value):
    """The summary with non-finite floats as null (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# -- rendering ---------------------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(summary: dict) -> dict[str, str]:
    """The report's figures as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from corpusslim.curve import CurveFit, predict

    batches, future = summary["batches"], summary["extrapolation"]
    R = [b["cum_raw_tokens"] for b in batches]
    U = [b["cum_unique_tokens"] for b in batches]
    C = [b["cum_cost_usd"] for b in batches]
    out = {}
    for key, xs, fx, label in (("yield_vs_raw", R, [f["raw_tokens"] for f in future], "cumulative raw tokens R"),
                               ("yield_vs_cost", C, [f["cost_usd"] for f in future], "cumulative cleaning cost C ($)")):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.plot(xs, U, "o", label="observed U")
        curve = summary["curve"]
        if curve.get("reason") is None and key == "yield_vs_raw":
            fit = CurveFit(**{k: curve[k] for k in CurveFit.__dataclass_fields__ if k in curve})
            grid = [R[0] + (max(R + fx) - R[0]) * i / 100 for i in range(101)]
            ax.plot(grid, predict(fit, grid), "-", label=f"fit: {curve['model']}")
        if future:
            ax.plot(fx, [f["unique_tokens"] for f in future], "s--", label="extrapolated")
            low = [f["unique_tokens"] - f["new_unique"] + f["new_unique_low"] for f in future]
            high = [f["unique_tokens"] - f["new_unique"] + f["new_unique_high"] for f in future]
            ax.fill_between(fx, low, high, alpha=0.25, label="90% band (bootstrap)")
        ax.set_xlabel(label)
        ax.set_ylabel("cumulative unique kept tokens U")
        ax.legend(fontsize=8)
        out[key] = _png(fig)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar([b["batch"] for b in batches], [b["tokens_per_usd"] or 0 for b in batches])
    ax.set_xlabel("batch")
    ax.set_ylabel("new unique tokens per $")
    out["tokens_per_usd"] = _png(fig)
    plt.close(fig)
    removals = pl.DataFrame(summary["removals"]) if summary["removals"] else None
    if removals is not None:
        table = removals.with_columns(what=pl.col("stage") + ":" + pl.col("reason")).pivot(
            on="what", index="batch", values="docs", aggregate_function="sum").fill_null(0).sort("batch")
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        bottom = [0] * table.height
        colours = plt.get_cmap("tab20").colors
        for i, column in enumerate(table.columns[1:]):
            ax.bar(table["batch"], table[column], bottom=bottom, label=column, color=colours[i % len(colours)])
            bottom = [a + b for a, b in zip(bottom, table[column])]
        ax.set_xlabel("batch")
        ax.set_ylabel("documents removed")
        ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
        out["removals"] = _png(fig)
        plt.close(fig)
    return out


def examples(run_dir: str) -> dict[str, list[dict]]:
    """A few removed documents per reason (text truncated), read lazily from rejected/."""
    found: dict[str, list[dict]] = {}
    rejected = storage.join(run_dir, "rejected")
    for name in storage.listdir(rejected):
        df = storage.read_parquet(storage.join(rejected, name), columns=["id", "text", "reject_stage", "reject_reason"])
        for row in df.iter_rows(named=True):
            bucket = found.setdefault(f"{row['reject_stage']}/{row['reject_reason']}", [])
            if len(bucket) < EXAMPLES_PER_REASON:
                bucket.append({"id": printable(row["id"]), "text": printable(row["text"] or "", EXAMPLE_CHARS)})
    return found


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


LEDGER_COLUMNS = ["batch", "raw_docs", "raw_tokens", "new_unique_docs", "new_unique_tokens", "cpu_seconds", "cost_usd",
                  "tokens_per_usd", "value_usd", "cum_raw_tokens", "cum_unique_tokens", "cum_cost_usd"]
FUTURE_COLUMNS = ["batch", "raw_tokens", "unique_tokens", "new_unique", "new_unique_low", "new_unique_high",
                  "batch_cost_usd", "value_usd", "tokens_per_usd"]


def render_html(summary: dict, figures: dict[str, str], samples: dict[str, list[dict]]) -> str:
    esc = html.escape
    curve = summary["curve"]
    fit_text = (f"<p>Fitted model: <b>{esc(curve['model'])}</b>, parameters {esc(json.dumps(curve['params']))}; "
                f"power-law exponent γ = {_fmt(curve.get('gamma'))}; marginal yield at the last batch dU/dR = "
                f"{_fmt(curve.get('marginal_yield'))} (90% band {esc(str(curve.get('marginal_yield_band')))}), "
                f"dU/dC = {_fmt(curve.get('marginal_per_usd'))} unique tokens per $.</p>"
                if curve.get("reason") is None else f"<p>No curve fitted: {esc(curve['reason'])}.</p>")
    imgs = "".join(f'<figure><img alt="{esc(k)}" src="data:image/png;base64,{v}"><figcaption>{esc(k)}</figcaption>'
                   f"</figure>" for k, v in figures.items())
    example_html = "".join(
        f"<h3>{esc(reason)}</h3><ul>" + "".join(f"<li><code>{esc(e['id'])}</code>: {esc(e['text'])}</li>" for e in items)
        + "</ul>" for reason, items in sorted(samples.items()))
    quarantined = "".join(f"<li>{esc(q['path'])}: {esc(q['error'])}</li>" for q in summary["quarantined"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CorpusSlim marginal-benefit report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;
font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#f3f3f3}}
.answer{{font-size:1.15em;background:#eef6ee;padding:.8em;border-left:4px solid #4a4}}figure{{display:inline-block;
margin:.5em}}li{{font-size:12px;white-space:pre-wrap}}</style></head><body>
<h1>What is the next batch of data worth?</h1>
<p class="answer">{esc(summary['recommendation'])}</p>
<h2>Ledger (one row per batch, in arrival order)</h2>{_table(summary['batches'], LEDGER_COLUMNS)}
<h2>Yield curve</h2>{fit_text}
<h2>Next batches (extrapolated)</h2>{_table(summary['extrapolation'], FUTURE_COLUMNS) if summary['extrapolation'] else '<p>None.</p>'}
<h2>Plots</h2>{imgs}
<h2>Assumptions</h2><p>Value: {esc(json.dumps(summary['value_assumptions']))}<br>Cost: {esc(json.dumps(summary['cost_assumptions']))}</p>
{f'<h2>Quarantined shards</h2><ul>{quarantined}</ul>' if quarantined else ''}
<h2>Examples of removed documents</h2>{example_html}
</body></html>
"""


def render_markdown(summary: dict) -> str:
    lines = ["# CorpusSlim marginal-benefit report", "", summary["recommendation"], "", "## Ledger", "",
             "| " + " | ".join(LEDGER_COLUMNS) + " |", "|" + "---|" * len(LEDGER_COLUMNS)]
    lines += ["| " + " | ".join(_fmt(b.get(c)) for c in LEDGER_COLUMNS) + " |" for b in summary["batches"]]
    curve = summary["curve"]
    lines += ["", "## Yield curve", "", json.dumps(curve, default=str) if curve.get("reason") is None
              else f"No curve fitted: {curve['reason']}"]
    if summary["extrapolation"]:
        lines += ["", "## Next batches (extrapolated)", "", "| " + " | ".join(FUTURE_COLUMNS) + " |",
                  "|" + "---|" * len(FUTURE_COLUMNS)]
        lines += ["| " + " | ".join(_fmt(f.get(c)) for c in FUTURE_COLUMNS) + " |" for f in summary["extrapolation"]]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str, config: RunConfig) -> dict:
    """Build the report of a finished (or partly finished) run directory; returns the summary."""
    ledger = storage.read_parquet(storage.join(run_dir, "ledger.parquet"))
    stats = json.loads(storage.read_text(storage.join(run_dir, "stats.json")))
    summary = summarise(ledger, stats, config)
    out = storage.join(run_dir, "report")
    storage.makedirs(out)
    page = render_html(summary, plots(summary), examples(run_dir))
    for name, text in (("index.html", page), ("summary.md", render_markdown(summary))):
        write_text_atomic(storage.join(out, name), text)
    write_json_atomic(storage.join(out, "summary.json"), json_safe(summary))
    return summary
