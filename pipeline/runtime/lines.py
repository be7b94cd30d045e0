"""Lines removed by stages: the only way a stage may change a document's text (invariant: original = kept lines
+ removed lines, per document).

A stage that removes lines (``Stage.edits_lines``) returns from ``annotate`` the cleaned ``text`` and a column
``removed_lines`` (``LINE_DTYPE``: the 0-based index of each removed line in the text as the stage received it,
its text and the reason). After each such stage, :func:`collect` moves that column into the document's record of
removed lines (``REMOVED``, with the stage's name), recounts the document's tokens and counts the lines and
tokens removed per reason. The record travels with the row (through dedup's intermediates too) until the
shard's outputs are written: then :func:`explode` turns it into ``removed_lines/<shard>.parquet``.
"""
from __future__ import annotations

import polars as pl

from corpusslim.runtime.resources import count_tokens

COLUMN = "removed_lines"  # what a line-editing stage's annotate adds
LINE_DTYPE = pl.List(pl.Struct({"line": pl.UInt32, "text": pl.String, "reason": pl.String}))
REMOVED = "_removed_lines"  # every line-editing stage's removals so far, in stage order; never in kept/rejected
RECORD_DTYPE = pl.List(pl.Struct({"line": pl.UInt32, "text": pl.String, "reason": pl.String, "stage": pl.String}))
OUTPUT_SCHEMA = {"id": pl.String, "stage": pl.String, "line": pl.UInt32, "reason": pl.String, "text": pl.String}


def _recount(df: pl.DataFrame) -> pl.DataFrame:
    """``n_tokens`` of the documents whose lines were removed, counted again on their cleaned text."""
    edited = (df[COLUMN].list.len() > 0).arg_true()
    if edited.is_empty():
        return df
    counts = pl.Series(count_tokens(df["text"].gather(edited).to_list()), dtype=df["n_tokens"].dtype)
    return df.with_columns(df["n_tokens"].scatter(edited, counts))


def _record(df: pl.DataFrame, stage: str) -> pl.DataFrame:
    """Move the stage's ``removed_lines`` into the row's record of removed lines."""
    added = pl.col(COLUMN).list.eval(pl.element().struct.with_fields(stage=pl.lit(stage)))
    record = pl.col(REMOVED) if REMOVED in df.columns else pl.lit([], dtype=RECORD_DTYPE)
    return df.with_columns(record.list.concat(added.cast(RECORD_DTYPE)).alias(REMOVED)).drop(COLUMN)


def line_stats(frames: list[pl.DataFrame]) -> dict[str, dict[str, int]]:
    """Lines and o200k_base tokens removed, per reason, from the stage's ``removed_lines`` columns."""
    lines = pl.concat([f.select(pl.col(COLUMN).explode()).unnest(COLUMN) for f in frames]).drop_nulls("reason")
    if lines.is_empty():
        return {}
    lines = lines.with_columns(tokens=pl.Series(count_tokens(lines["text"].to_list()), dtype=pl.Int64))
    grouped = lines.group_by("reason").agg(lines=pl.len(), tokens=pl.col("tokens").sum()).sort("reason")
    return {r["reason"]: {"lines": r["lines"], "tokens": int(r["tokens"])} for r in grouped.rows(named=True)}


def collect(stage: str, kept: pl.DataFrame, rejected: pl.DataFrame
            ) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, dict[str, int]]]:
    """After a line-editing stage: token counts of the cleaned texts, the removals moved into each row's record,
    and the lines and tokens removed per reason."""
    kept, rejected = _recount(kept), _recount(rejected)
    stats = line_stats([kept, rejected])
    return _record(kept, stage), _record(rejected, stage), stats


def explode(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per removed line of the documents in ``frames``: id, stage, line, reason, text (in row order)."""
    parts = [f.select("id", REMOVED).explode(REMOVED).drop_nulls(REMOVED).unnest(REMOVED)
             for f in frames if REMOVED in f.columns]
    if not parts:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    return pl.concat(parts).select(*OUTPUT_SCHEMA)


def restore(text: str, removed: list[dict]) -> str:
    """The original text of a document from its kept text and its removed lines (rows of
    ``removed_lines/<shard>.parquet`` of that document, in file order): each stage's removals are put back,
    the last stage's first. An empty text with removed lines means no line was kept (a stage that removes every
    non-blank line removes the blank ones too, so "" never stands for kept blank lines)."""
    lines = text.split("\n") if text or not removed else []
    stages = list(dict.fromkeys(r["stage"] for r in removed))
    for stage in reversed(stages):
        for r in sorted((r for r in removed if r["stage"] == stage), key=lambda r: r["line"]):
            lines.insert(r["line"], r["text"])
    return "\n".join(lines)
