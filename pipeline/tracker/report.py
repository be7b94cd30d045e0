"""The marginal-benefit report of a run: ``report/index.html`` (self-contained: tables and PNG plots embedded),
``report/summary.json`` and ``report/summary.md``, from the ledger, ``stats.json`` and the run's config.

The figures come from :func:`corpusslim.tracker.decision.summarise`; this module only lays them out: the same sections
(a sentence and a table each) render as HTML and as Markdown.
"""
from __future__ import annotations

import base64
import html
import io
import json

from corpusslim.config import RunConfig
from corpusslim.filters.minhash import jaccard, shingles
from corpusslim.runtime import outputs, storage
from corpusslim.runtime.inputs import Columns
from corpusslim.text import printable
from corpusslim.tracker.budget import sources_summary
from corpusslim.tracker.decision import json_safe, si, summarise
from corpusslim.tracker.stats import quarantine_message
from corpusslim.tracker.value import format_usd

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 300
DUP_REASONS = ("exact_dup", "near_dup")


# ------------------------------------------------------------------------------------------------- formatting
def worth(status: str | None, usd: float | None) -> str:
    """A batch value for a table cell, keeping "unbounded", "outside the law" and "n/a" apart."""
    return {"priced": format_usd(usd or 0.0), "unbounded": "unbounded", "outside_law": "outside the law"}.get(
        status or "", "n/a")


def _usd(x: float | None) -> str:
    return "n/a" if x is None else format_usd(x)


def _band(x: float, lo: float, hi: float, fmt=si) -> str:
    return f"{fmt(x)} ({fmt(lo)}–{fmt(hi)})"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# ---------------------------------------------------------------------------------------------------- sections
def sections(summary: dict) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, sentences, table header, table rows) of every section, in reading order."""
    out = [_next_section(summary), _batches_section(summary), _future_section(summary), _curve_section(summary),
           _cost_section(summary), _sources_section(summary), _overlap_section(summary),
           _languages_section(summary),
           _allocation_section(summary), _assumptions_section(summary)]
    return [s for s in out if s is not None]


def _next_section(summary: dict):
    nxt = summary["next_batch"]
    if nxt is None:
        return None
    c = nxt["cost_components"]
    value = worth(nxt["value_status"], nxt["value_usd"])
    lo, hi = _usd(nxt["value_usd_low"]), _usd(nxt["value_usd_high"])
    if nxt["value_status"] == "priced" and lo != hi:
        value += f" (90 % band {lo}–{hi})"
    elif nxt["value_reason"]:
        value += f": {nxt['value_reason']}"
    rows = [["raw tokens", si(nxt["raw_tokens"])],
            ["new unique tokens (90 % prediction band)", _band(nxt["new_unique"], nxt["new_unique_low"],
                                                               nxt["new_unique_high"])],
            ["value of its new unique tokens", value],
            ["full cost", f"{format_usd(nxt['cost_usd'])} = CPU {format_usd(c['cpu_usd'])} + acquisition "
                          f"{format_usd(c['acquisition_usd'])} + storage {format_usd(c['storage_usd'])}"]]
    return "The next batch", _stop_sentence(summary), ["", ""], rows


def _stop_sentence(summary: dict) -> str:
    stop = summary["stop"]
    if "reason" in stop:
        return f"No stop point: {stop['reason']}."
    more = f"{stop['low']}–{stop['high']}" if stop["low"] < stop["high"] else f"{stop['low']}"
    return (f"Stop rule: each of the {summary['curve']['bootstrap']} bootstrap curves and the point fit forecast the "
            f"next {stop['horizon']} batches; a batch is worth processing while its expected value exceeds its "
            f"full cost. Batches still worth processing: {more} (90 % range); point fit: {stop['batches_more']} "
            f"({'confirmed' if stop['checked'] else 'outside that range'} with exact prices).")


def _batches_section(summary: dict):
    rows = [[str(b["batch"]), si(b["raw_tokens"]), si(b["new_unique_tokens"]),
             _pct(b["new_unique_tokens"] / b["raw_tokens"]) if b["raw_tokens"] else "n/a",
             worth(b["value_status"], b["value_usd"]), format_usd(b["pool_cost_usd"]), format_usd(b["cpu_usd"]),
             format_usd(b["acquisition_usd"]), format_usd(b["storage_usd"]), str(b.get("quarantined_shards", 0))]
            for b in summary["batches"]]
    scale = summary["cost_basis"]["pool_scale"] if summary["cost_basis"] else 1.0
    text = ("One row per batch in arrival order. Value and full cost are what the decision compares"
            + (f" (pool scale: x{scale:.3g})" if scale != 1 else "")
            + "; the last three columns are the measured cost of this run by component."
            + " Quarantined shards are counted, never valued.")
    return ("Batches", text, ["batch", "raw tokens", "new unique tokens", "fresh share", "value", "full cost",
                              "CPU (measured)", "acquisition", "storage", "quarantined shards"], rows)


def _future_section(summary: dict):
    rows = [[str(f["batch"]), _band(f["new_unique"], f["new_unique_low"], f["new_unique_high"]),
             _band(f["unique_tokens"], f["unique_tokens_low"], f["unique_tokens_high"]),
             worth(f["value_status"], f["value_usd"]), format_usd(f["pool_cost_usd"])]
            for f in summary["extrapolation"]]
    if not rows:
        return None
    return ("Next batches (forecast)", "Expected new unique tokens and cumulative unique tokens with 90 % bands "
            "from the bootstrap curves; values priced exactly on the point forecast.",
            ["batch", "new unique tokens", "cumulative unique tokens", "value", "full cost"], rows)


def _curve_section(summary: dict):
    curve = summary["curve"]
    if curve["reason"] and curve["model"] == "none":
        return "Yield curve", f"No curve fitted: {curve['reason']}.", [], []
    params = ", ".join(f"{k} = {v:.4g}" for k, v in curve["params"].items() if v is not None)
    lo, hi = curve["marginal_yield_band"]
    held = f"{curve['holdout']} held-out batches" if curve["group"] == 1 else \
        f"the last {curve['holdout']} of its points (it was fitted on groups of {curve['group']} consecutive batches)"
    text = (f"Chosen model: {curve['model'].replace('_', ' ')} ({params}), chosen by "
            f"{curve['selection']} error over {held}. Marginal yield at the last batch "
            f"dU/dR = {curve['marginal_yield']:.3g} new unique tokens per raw token"
            + (f" (90 % band {lo:.3g}–{hi:.3g})" if lo is not None else "")
            + (f", i.e. {si(curve['marginal_per_usd'])} per $ of full cost." if curve["marginal_per_usd"] else "."))
    rows = [[m.replace("_", " "), ", ".join(f"{k} = {v:.4g}" for k, v in p.items() if v is not None),
             f"{curve['holdout_error'].get(m):.3g}" if curve["holdout_error"].get(m) is not None else "–",
             _pct(curve["model_share"].get(m, 0.0)) if curve["model_share"] else "–"]
            for m, p in curve["fits"].items()]
    return ("Yield curve", text, ["model", "parameters (raw-token units)", "held-out error (share)",
                                  "chosen in resamples"], rows)


def _cost_section(summary: dict):
    basis = summary["cost_basis"]
    if basis is None:
        return None
    tp = summary["target_pool"]
    have = summary["batches"][-1]["cum_unique_tokens"] * basis["pool_scale"] if summary["batches"] else 0
    how = "cost.cpu_seconds_per_raw_token" if basis["source"] == "pinned" else \
        "median over the batches of measured CPU cost per raw token"
    text = (f"The decision prices cleaning CPU at ${basis['cpu_usd_per_raw_token'] * 1e9:.3g} per billion raw "
            f"tokens ({basis['source']}: {how}), "
            f"acquisition at ${basis['acquisition_usd_per_raw_token'] * 1e9:.3g} per billion raw tokens and storage at "
            f"${basis['storage_usd_per_unique_token'] * 1e9:.3g} per billion kept tokens, so machine load does not "
            f"move it. The plan wants {si(tp['unique_tokens'])} unique tokens ({si(tp['unique_tokens_at_epochs'])} at "
            f"{tp['epochs']:g} epochs); the corpus has {si(have)} (pool scale).")
    if basis["pool_scale"] != 1:
        text += (" This run is a sample of the pool: dedup sees only a fraction of the pool's duplicate pairs "
                 "(pairs scale as the square of the sampling fraction), so the yield is an upper bound.")
    return "Cost basis and target", text, [], []


def _fit_label(curve: dict) -> str:
    """The fitted model's name, or why there is none."""
    if curve.get("model") not in (None, "none"):
        return curve["model"].replace("_", " ")
    return curve.get("reason") or "none"


def _next_band(nxt: dict | None) -> str:
    """The next batch's new unique tokens with their 90 % band, or n/a."""
    return "n/a" if nxt is None else _band(nxt["new_unique"], nxt["new_unique_low"], nxt["new_unique_high"])


def _sources_section(summary: dict):
    sources = summary.get("sources")
    if not sources:
        return None
    rows = []
    for name, s in sources.items():
        nxt = s["next_batch"]
        rows.append([name, str(s["batches"]), si(s["raw_tokens"]), si(s["unique_tokens"]), _fit_label(s["curve"]),
                     f"${s['cost_per_raw_token'] * 1e9:.3g}", _next_band(nxt),
                     "n/a" if nxt is None else worth(nxt["value_status"], nxt["value_usd"]),
                     "n/a" if nxt is None or nxt["value_per_usd"] is None else f"{nxt['value_per_usd']:.3g}"])
    text = ("Each source's batches (its units in arrival order) with its own yield curve and cost model; the next "
            "batch of each is valued on the pool of all sources (pool scale).")
    return "Sources", text, ["source", "batches", "raw tokens", "unique tokens", "curve", "$ per 1B raw tokens",
                             "next batch: new unique (90 % band)", "next batch value", "value per $"], rows


def _languages_section(summary: dict):
    langs = summary.get("languages")
    if not langs:
        return None
    rows = []
    for lang, v in langs.items():
        rows.append([lang, si(v["unique_tokens"]), _fit_label(v["curve"]), _next_band(v["next_batch"]),
                     ", ".join(f"{s} {si(t)}" for s, t in v["by_source"].items())])
    return ("Languages", "Kept tokens per detected language, each with its own yield curve over the batches "
            "(corpusslim budget --language allocates for one of them).",
            ["language", "unique tokens", "curve", "next batch: new tokens of it (90 % band, pool scale)",
             "by source"], rows)


def _overlap_section(summary: dict):
    rows = summary.get("overlap")
    if rows is None:
        return None
    table = [[r["from"], r["to"], f"{r['docs']:,}", si(r["tokens"])] for r in rows]
    return "Overlap between sources", summary["overlap_sentence"] + (
        " Rows: duplicates removed from one source (from) as copies of a document kept from another (to)."), \
        ["from (removed)", "to (kept)", "documents", "tokens"], table


def _allocation_section(summary: dict):
    alloc = summary.get("allocation")
    if not alloc:
        return None
    rows = [[r["source"], str(r["batches"]), si(r["raw_tokens"]),
             _band(r["unique_tokens"], r["unique_tokens_low"], r["unique_tokens_high"]), _usd(r["cost_usd"]),
             _usd(r["value_usd"])] for r in alloc["allocation"]]
    rows += [[s["source"], "stops", "", s["reason"], "", ""] for s in alloc["stopped"]]
    text = (f"Allocation of value.budget_usd = {_usd(alloc['budget_usd'])}: {alloc['message']}; "
            f"{_usd(alloc['unallocated_usd'])} left. Rule: {alloc['rule']}.")
    return "Budget allocation", text, ["source", "batches", "raw tokens", "unique tokens (90 % band)", "cost",
                                       "value"], rows


def _assumptions_section(summary: dict):
    rows = [[f"value.{k}", str(v)] for k, v in summary["value_assumptions"].items()]
    rows += [[f"cost.{k}", str(v)] for k, v in summary["cost_assumptions"].items()]
    return "Assumptions", "The config the figures rest on (units in the key names; tokens are o200k tokens).", \
        ["setting", "value"], rows


# ------------------------------------------------------------------------------------------------------- plots
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(summary: dict) -> dict[str, tuple[str, str]]:
    """The report's figures: name -> (caption, base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from corpusslim.tracker.plots import (
        overlap_plot,
        removals_plot,
        share_plot,
        sources_plot,
        value_cost_plot,
        yield_plot,
    )

    out = {}
    for name, make in (("value_vs_cost", value_cost_plot), ("yield", yield_plot), ("fresh_share", share_plot),
                       ("removals", removals_plot), ("sources", sources_plot), ("overlap", overlap_plot)):
        made = make(plt, summary)
        if made is not None:
            fig, caption = made
            out[name] = (caption, _png(fig))
            plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------- examples
def examples(run_dir: str, columns: Columns, reasons: set[str]) -> dict[str, list[dict]]:
    """The first few removed documents per reason (text truncated); a duplicate comes with the kept document it
    duplicates and the shingle Jaccard of the two (read from kept/ for those few ids only). Files are read in
    order until each of ``reasons`` ("stage/reason", every one the run removed by) has its examples."""
    found: dict[str, list[dict]] = {}
    for path in outputs.files(run_dir, "rejected"):
        if all(len(found.get(r, ())) == EXAMPLES_PER_REASON for r in reasons):
            break
        for row in outputs.read(path, columns).iter_rows(named=True):
            bucket = found.setdefault(f"{row['reject_stage']}/{row['reject_reason']}", [])
            if len(bucket) < EXAMPLES_PER_REASON:
                bucket.append(row)
    originals = _originals(run_dir, columns, {r["dup_of"] for rows in found.values() for r in rows
                                              if r.get("dup_of")})
    return {reason: [_example(r, originals.get(r.get("dup_of"))) for r in rows] for reason, rows in found.items()}


def _originals(run_dir: str, columns: Columns, ids: set) -> dict:
    """The kept documents of these ids, files read until all are found (an original arrived before its
    duplicate, so the first examples' originals are mostly in the first files)."""
    out = {}
    for path in outputs.files(run_dir, "kept"):
        if len(out) == len(ids):
            break
        df = outputs.read(path, columns)
        for row in df.filter(df["id"].is_in(list(ids))).iter_rows(named=True):
            out[row["id"]] = row
    return out


def _example(row: dict, original: dict | None) -> dict:
    ex = {"id": printable(row["id"]), "text": printable(row["text"] or "", EXAMPLE_CHARS)}
    if row.get("dup_of") is not None:
        ex["dup_of"] = printable(row["dup_of"])
        if original is None:
            ex["original"] = "(the kept document is in an earlier run)"
        else:
            ex["original"] = printable(original["text"] or "", EXAMPLE_CHARS)
            ex["jaccard"] = jaccard(set(shingles(row["text"] or "", row.get("seg"))),
                                    set(shingles(original["text"] or "", original.get("seg"))))
    return ex


# --------------------------------------------------------------------------------------------------- rendering
def _html_table(header: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in header) if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>" if rows else ""


def _html_examples(samples: dict[str, list[dict]]) -> str:
    esc = html.escape
    parts = []
    for reason, items in sorted(samples.items()):
        lis = []
        for e in items:
            li = f"<li><code>{esc(e['id'])}</code>: {esc(e['text'])}"
            if "dup_of" in e:
                j = f", shingle Jaccard {e['jaccard']:.2f}" if "jaccard" in e else ""
                li += f"<br>↳ duplicates kept <code>{esc(e['dup_of'])}</code>{j}: {esc(e['original'])}"
            lis.append(li + "</li>")
        parts.append(f"<h3>{esc(reason)}</h3><ul>{''.join(lis)}</ul>")
    return "".join(parts)


NO_FIGURES = "Not drawn: the run was started with --no-figures. corpusslim report RUN_DIR draws them."


def render_html(summary: dict, figures: dict[str, tuple[str, str]] | None, samples: dict[str, list[dict]]) -> str:
    """The report page; ``figures`` None when they were not drawn (``--no-figures``)."""
    esc = html.escape
    body = "".join(f"<h2>{esc(t)}</h2><p>{esc(text)}</p>{_html_table(h, rows)}" for t, text, h, rows
                   in sections(summary))
    imgs = "".join(f'<figure><img alt="{esc(cap)}" src="data:image/png;base64,{png}"><figcaption>{esc(cap)}'
                   f"</figcaption></figure>" for cap, png in figures.values()) if figures is not None \
        else f"<p>{esc(NO_FIGURES)}</p>"
    quarantined = "".join(f"<li>{esc(quarantine_message(q))}</li>" for q in summary["quarantined"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CorpusSlim marginal-benefit report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;
font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#f3f3f3}}
.answer{{font-size:1.15em;background:#eef6ee;padding:.8em;border-left:4px solid #4a4}}figure{{display:inline-block;
margin:.5em}}li{{font-size:12px;white-space:pre-wrap}}</style></head><body>
<h1>What is the next batch of data worth?</h1>
<p class="answer">{esc(summary['headline'])}</p>
{body}
<h2>Plots</h2>{imgs}
{f'<h2>Quarantined shards (not batches, not valued)</h2><ul>{quarantined}</ul>' if quarantined else ''}
<h2>Examples of removed documents</h2>{_html_examples(samples)}
</body></html>
"""


def render_markdown(summary: dict) -> str:
    lines = ["# CorpusSlim marginal-benefit report", "", summary["headline"]]
    for title, text, header, rows in sections(summary):
        lines += ["", f"## {title}", "", text]
        if rows:
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [f"- quarantined: {quarantine_message(q)}" for q in summary["quarantined"]]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str, config: RunConfig, figures: bool = True) -> dict:
    """Build the report of a finished (or partly finished) run directory; returns the summary. ``figures=False``
    leaves the figures out, and matplotlib unloaded: about 0.8 s of CPU (bench/startup.py)."""
    ledger = storage.read_parquet(storage.join(run_dir, "ledger.parquet"))
    stats = json.loads(storage.read_text(storage.join(run_dir, "stats.json")))
    summary = summarise(ledger, stats, config)
    summary.update(sources_summary(run_dir, config, ledger, stats.get("overlap", [])))
    out = storage.join(run_dir, "report")
    storage.makedirs(out)
    reasons = {f"{r['stage']}/{r['reason']}" for r in summary["removals"]}
    samples = examples(run_dir, Columns(config.text_column, config.id_column), reasons)
    page = render_html(summary, plots(summary) if figures else None, samples)
    for name, text in (("index.html", page), ("summary.md", render_markdown(summary))):
        storage.write_text(storage.join(out, name), text)
    storage.write_json(storage.join(out, "summary.json"), json_safe(summary))
    return summary
