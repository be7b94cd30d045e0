"""Data sources: what each unit of work holds per source, and the overlap between sources (docs/ARCHITECTURE.md).

A document's source is the ``source_column`` of the input, or the name of the ``sources:`` entry whose files it came
from (written as the column ``source``; each source's units arrive in its own order and the sources interleave
round-robin by position, :func:`corpusslim.runtime.inputs.shards_of`). The worker counts, per unit and source: raw
documents and tokens (the ``input`` step's ``sources``), kept documents and tokens with the kept tokens per detected
language (``sources`` of the result; in a run without sources, all under :data:`ALL`), and, after dedup, the removed
duplicates per (their source, the source of the kept document they duplicate) (``overlap``). The root's source is
read from the ``source`` column of its unit's intermediate (``_work/pre/``) on the worker, so no document crosses
the driver; a root in an earlier run (``--against``) counts as :data:`EARLIER`.
"""
from __future__ import annotations

import polars as pl

from corpusslim.runtime import storage
from corpusslim.runtime.inputs import ROW
from corpusslim.runtime.keys import row_expr, shard_expr

NONE = "(none)"          # a document whose source column is null
ALL = "(all)"            # every document, in a run without sources (its kept tokens per language)
EARLIER = "(earlier run)"  # the kept document is in a run this one was deduped against
UNKNOWN_LANG = "und"      # no detected language (no lid stage, or rejected before it)


def _source(column: str | None) -> pl.Expr:
    source = pl.lit(ALL) if column is None else pl.col(column).cast(pl.String).fill_null(NONE)
    return source.alias("_source")


def raw_by_source(df: pl.DataFrame, column: str | None) -> dict[str, dict[str, int]]:
    """Raw documents and tokens (``n_tokens``) per source of a unit's rows as read; {} without sources."""
    if column is None or df.is_empty():
        return {}
    rows = df.group_by(_source(column)).agg(docs=pl.len(), tokens=pl.col("n_tokens").sum()).rows()
    return {s: {"docs": int(d), "tokens": int(t)} for s, d, t in sorted(rows)}


def kept_by_source(kept: pl.DataFrame, column: str | None) -> dict[str, dict]:
    """Kept documents and tokens per source (:data:`ALL` without sources), with the kept tokens per detected
    language (``lang``)."""
    if kept.is_empty():
        return {}
    lang = pl.col("lang").cast(pl.String).fill_null(UNKNOWN_LANG) if "lang" in kept.columns \
        else pl.lit(UNKNOWN_LANG)
    rows = kept.group_by(_source(column), lang.alias("_lang")).agg(docs=pl.len(), tokens=pl.col("n_tokens").sum())
    out: dict[str, dict] = {}
    for s, lg, d, t in sorted(rows.rows()):
        slot = out.setdefault(s, {"docs": 0, "tokens": 0, "lang": {}})
        slot["docs"] += int(d)
        slot["tokens"] += int(t)
        slot["lang"][lg] = int(t)
    return out


def _root_sources(roots: pl.DataFrame, column: str, pre_paths: dict[int, str]) -> pl.DataFrame:
    """(root, to) for the root keys: each root's source read from its unit's intermediate (two columns only)."""
    parts = []
    for number, keys in roots.with_columns(_shard=shard_expr("root")).partition_by("_shard", as_dict=True).items():
        path = pre_paths.get(int(number[0]))
        if path is None or not storage.exists(path):
            parts.append(keys.select("root", to=pl.lit(EARLIER)))
            continue
        pre = storage.read_parquet(path, columns=[ROW, column]).select(ROW, to=_source(column).alias("to"))
        found = keys.with_columns(row_expr("root").alias(ROW)).join(pre, on=ROW, how="left")
        parts.append(found.select("root", pl.col("to").fill_null(EARLIER)))
    return pl.concat(parts) if parts else pl.DataFrame(schema={"root": pl.UInt64, "to": pl.String})


def overlap_counts(removed: pl.DataFrame, links: pl.DataFrame, column: str | None,
                   pre_paths: dict[int, str]) -> list[dict]:
    """Duplicates removed from one unit, per (their source, the kept document's source): ``from``, ``to``,
    ``docs``, ``tokens``. ``removed``: the dedup stage's rejected rows; ``links``: the unit's members (doc, root)."""
    if column is None or removed.is_empty():
        return []
    dups = removed.select(ROW, "n_tokens", _source(column)).join(
        links.select(row_expr("doc").alias(ROW), "root"), on=ROW, how="inner")
    named = dups.join(_root_sources(dups.select("root").unique(), column, pre_paths), on="root", how="left")
    rows = named.group_by("_source", "to").agg(docs=pl.len(), tokens=pl.col("n_tokens").sum()).sort("_source", "to")
    return [{"from": f, "to": t, "docs": int(d), "tokens": int(n)} for f, t, d, n in rows.rows()]


def overlap_matrix(results: list[dict]) -> list[dict]:
    """The run's overlap rows summed over its done units, largest first."""
    total: dict[tuple[str, str], list[int]] = {}
    for r in results:
        for row in r.get("overlap", []) if r.get("status") == "done" else []:
            slot = total.setdefault((row["from"], row["to"]), [0, 0])
            slot[0] += row["docs"]
            slot[1] += row["tokens"]
    rows = [{"from": f, "to": t, "docs": d, "tokens": n} for (f, t), (d, n) in total.items()]
    return sorted(rows, key=lambda r: (-r["docs"], r["from"], r["to"]))


def unit_parts(result: dict) -> list[dict]:
    """A done unit's parts per source, for the per-source ledger: raw docs, raw tokens, kept docs and tokens,
    kept tokens per language, and the unit's read bytes, CPU and model-loading CPU apportioned by raw tokens."""
    raw = result["stages"][0].get("sources", {})
    kept = result.get("sources", {})
    total = sum(v["tokens"] for v in raw.values()) or 1
    cpu = result["write_cpu_seconds"] + sum(s["cpu_seconds"] for s in result["stages"])
    startup = result.get("startup_cpu_seconds", 0.0)
    parts = []
    for source, counts in raw.items():
        share = counts["tokens"] / total
        k = kept.get(source, {"docs": 0, "tokens": 0, "lang": {}})
        parts.append({"source": source, "index": result["index"], "raw_docs": counts["docs"],
                      "raw_tokens": counts["tokens"], "new_unique_docs": k["docs"], "new_unique_tokens": k["tokens"],
                      "lang": k["lang"], "read_bytes": result["bytes_in"] * share,
                      "raw_bytes": result["text_bytes"] * share, "cpu_seconds": (cpu - startup) * share,
                      "startup_total": startup * share})
    return parts
