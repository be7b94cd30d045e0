"""The report's figures, drawn from the summary (:func:`corpusslim.tracker.decision.summarise`); each function takes
``matplotlib.pyplot`` and the summary and returns (figure, caption), or None when there is nothing to draw."""
from __future__ import annotations

import polars as pl

BAR_WIDTH = 0.8  # as matplotlib's ``bar``
STATUS_MARKERS = {"unbounded": ("^", "value unbounded"), "outside_law": ("x", "outside the law"),
                  "n/a": ("o", "value n/a (no pool before it)")}


def _label(ax, xlabel: str, ylabel: str, title: str, **legend) -> None:
    """Axis labels (with units), title and legend of a plot."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(**legend)


def _bars(ax, x, heights, bottom=None, **style) -> list[float]:
    """Bars of ``heights`` at ``x`` (on ``bottom``) drawn as one collection: unlike ``ax.bar``, one artist however
    many batches (``ax.bar`` makes a patch per bar: 10 s for the sample job's removals in 1,000 shards). Zero-height
    bars are left out. Returns the bars' tops."""
    from matplotlib.collections import PolyCollection

    bottom = bottom or [0.0] * len(heights)
    half = BAR_WIDTH / 2
    ax.add_collection(PolyCollection([[(p - half, b), (p - half, b + h), (p + half, b + h), (p + half, b)]
                                      for p, h, b in zip(x, heights, bottom) if h], **style))
    ax.autoscale_view()
    return [b + h for h, b in zip(heights, bottom)]


def value_cost_plot(plt, summary: dict):
    """Value vs full cost per batch: observed and forecast values with their 90 % band, the cost, the stop range."""
    batches, future, stop = summary["batches"], summary["extrapolation"], summary["stop"]
    if not batches:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    priced = [b for b in batches if b["value_status"] == "priced"]
    ax.plot([b["batch"] for b in priced], [b["value_usd"] for b in priced], "o-", color="C0", label="value (observed)")
    ax.plot([b["batch"] for b in batches], [b["pool_cost_usd"] for b in batches], "s-", color="C3", ms=3,
            label="full cost")
    if future:
        fb = [f["batch"] for f in future]
        ax.plot(fb, [f["value_usd"] if f["value_status"] == "priced" else float("nan") for f in future], "o--",
                color="C0", mfc="white", label="value (forecast)")
        lo = [f.get("value_usd_low") or float("nan") for f in future]
        hi = [f.get("value_usd_high") or float("nan") for f in future]
        ax.fill_between(fb, lo, hi, color="C0", alpha=0.2, label="90 % band of the value")
        ax.plot(fb, [f["pool_cost_usd"] for f in future], "s--", color="C3", ms=3, mfc="white")
    values = [b["pool_cost_usd"] for b in batches] + [b["value_usd"] for b in priced]
    top = max(values + [1e-12])
    for status, (marker, label) in STATUS_MARKERS.items():
        hits = [b["batch"] for b in batches + future if b["value_status"] == status]
        if hits:
            ax.plot(hits, [top * 1.5] * len(hits), marker, color="k", ls="none", label=label)
    last = batches[-1]["batch"]
    if "reason" not in stop and not stop["beyond_horizon"]:
        more = f"{stop['low']}–{stop['high']}" if stop["low"] < stop["high"] else f"{stop['low']}"
        ax.axvspan(last + stop["low"] + 0.5, last + stop["high"] + 1.5, color="C2", alpha=0.15,
                   label=f"stop range: after {more} more batches")
        ax.axvline(last + stop["batches_more"] + 1, color="C2", ls=":", label="first batch not worth it (point fit)")
    # symlog: a batch worth $0 (a pool past what the plan can use) stays on the chart
    ax.set_yscale("symlog", linthresh=min([v for v in values if v > 0] or [1.0]) / 2)
    ax.set_ylim(bottom=0)
    # beside the axes: loc="best" tests every data point (over a second at 1,000 batches)
    _label(ax, "batch (arrival order)", "US dollars per batch (pool scale)",
           "Value of each batch's new unique tokens vs its full cost", fontsize=7, bbox_to_anchor=(1.01, 1),
           loc="upper left")
    return fig, "Value vs full cost per batch (log scale above the smallest cost), forecast with its 90 % band, " \
        "and the stop range"


def yield_plot(plt, summary: dict):
    """Cumulative unique tokens against cumulative raw tokens: observed, fitted, forecast with the cumulative band."""
    batches, future = summary["batches"], summary["extrapolation"]
    if not batches:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([b["cum_raw_tokens"] for b in batches], [b["cum_unique_tokens"] for b in batches], "o", label="observed")
    if batches[0].get("fitted_unique") is not None:
        ax.plot([b["cum_raw_tokens"] for b in batches], [b["fitted_unique"] for b in batches], "-",
                label=f"fit: {summary['curve']['model'].replace('_', ' ')}")
    if future:
        r0, u0 = batches[-1]["cum_raw_tokens"], batches[-1]["cum_unique_tokens"]   # the forecast starts here
        fx = [r0] + [f["raw_tokens"] for f in future]
        ax.plot(fx, [u0] + [f["unique_tokens"] for f in future], "--", label="forecast")
        ax.fill_between(fx, [u0] + [f["unique_tokens_low"] for f in future],
                        [u0] + [f["unique_tokens_high"] for f in future], alpha=0.25,
                        label="90 % band (bootstrap cumulative paths)")
    _label(ax, "cumulative raw tokens R (o200k tokens)", "cumulative unique kept tokens U", "Yield curve U(R)",
           fontsize=8)
    return fig, "Yield curve: unique kept tokens against raw tokens, with the forecast's 90 % band"


def share_plot(plt, summary: dict):
    """Each batch's fresh share (new unique / raw tokens), with the next batch's prediction band."""
    batches, nxt = summary["batches"], summary["next_batch"]
    if not batches:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    _bars(ax, [b["batch"] for b in batches],
          [100 * b["new_unique_tokens"] / b["raw_tokens"] if b["raw_tokens"] else 0 for b in batches],
          label="observed", color="C0")
    if nxt is not None and nxt["raw_tokens"]:
        x = batches[-1]["batch"] + 1
        mid, lo, hi = (100 * nxt[k] / nxt["raw_tokens"] for k in ("new_unique", "new_unique_low", "new_unique_high"))
        ax.errorbar([x], [mid], yerr=[[mid - lo], [hi - mid]], fmt="o", color="C1", capsize=4,
                    label="next batch (90 % prediction band)")
    _label(ax, "batch (arrival order)", "new unique tokens per raw token (%)", "Fresh share per batch", fontsize=8)
    return fig, "Fresh share: the percentage of each batch's raw tokens that are new unique kept tokens"


def removals_plot(plt, summary: dict):
    """Documents removed per batch, stacked by stage and reason."""
    if not summary["removals"]:
        return None
    table = pl.DataFrame(summary["removals"]).with_columns(what=pl.col("stage") + ": " + pl.col("reason")).pivot(
        on="what", index="batch", values="docs", aggregate_function="sum").fill_null(0).sort("batch")
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    bottom = [0] * table.height
    colours = plt.get_cmap("tab20").colors
    for i, column in enumerate(table.columns[1:]):
        bottom = _bars(ax, table["batch"], table[column], bottom, label=column, color=colours[i % len(colours)])
    ax.set_ylim(0, max(bottom) * 1.08 or 1)
    _label(ax, "batch (arrival order)", "documents removed", "Removed documents per batch, by stage and reason",
           fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig, "Removals per batch by stage and reason"


def sources_plot(plt, summary: dict):
    """Each source's cumulative unique tokens against its raw tokens, on one plot."""
    rows = summary.get("source_batches")
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for (source,), part in pl.DataFrame(rows, infer_schema_length=None).partition_by("source", as_dict=True).items():
        (line,) = ax.plot(part["cum_raw_tokens"], part["cum_unique_tokens"], "o", ms=3, label=source)
        if part["fitted_unique"].is_not_null().all():
            ax.plot(part["cum_raw_tokens"], part["fitted_unique"], "-", lw=1, color=line.get_color())
    _label(ax, "raw tokens of the source (o200k tokens)", "unique kept tokens of the source",
           "Yield curve per source", fontsize=7)
    return fig, "Yield curve per source: each source's unique kept tokens against its own raw tokens (points) and its "\
        "fitted curve (line)"


def overlap_plot(plt, summary: dict):
    """Heat map of removed duplicates: rows the source they were removed from, columns the kept document's."""
    rows = summary.get("overlap")
    if not rows:
        return None
    names = sorted({r["from"] for r in rows} | {r["to"] for r in rows})
    grid = [[0] * len(names) for _ in names]
    for r in rows:
        grid[names.index(r["from"])][names.index(r["to"])] += r["docs"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(names), 1.0 + 0.6 * len(names)))
    image = ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i, line in enumerate(grid):
        for j, n in enumerate(line):
            if n:
                ax.text(j, i, f"{n:,}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("source of the kept document")
    ax.set_ylabel("source of the removed duplicate")
    fig.colorbar(image, ax=ax, label="documents")
    return fig, "Overlap between sources: duplicates removed from each source (rows) by the source they copy"
