"""Line-cleaning stage: C4's line rules for space-delimited text, navigation/boilerplate line rules for Chinese
(``corpusslim.filters.lines``).

It never rejects a document: it removes lines. ``annotate`` returns the batch with ``text`` replaced by the kept
lines (in order, joined by "\\n") and a ``removed_lines`` column (line index in the text as this stage received it,
the line, the reason); the worker moves that column to ``removed_lines/<shard>.parquet``. It runs after ``lid``
(the rule set depends on the language) and before ``segment``, ``dedup`` and ``quality``, so that words, duplicates
and page rules all see the cleaned text.
"""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import ConfigDict

from corpusslim.filters.lines import LINE_REASONS, LinesConfig, clean_lines
from corpusslim.filters.quality import is_chinese
from corpusslim.runtime.lines import COLUMN, LINE_DTYPE
from corpusslim.stages.base import Stage


class LinesStageConfig(LinesConfig):
    """The line rule sets of ``corpusslim.filters.lines.LinesConfig`` (``c4`` and ``chinese``, each with
    ``enabled`` and its switches)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)
    kind: Literal["lines"] = "lines"


class LinesStage(Stage):
    kind = "lines"
    Config = LinesStageConfig
    reasons = LINE_REASONS  # reasons of removed lines; no document is rejected
    columns = ()  # ``removed_lines`` is moved out of the batch by the worker
    requires = ("lid",)
    edits_lines = True

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        texts, removed = [], []
        for text, lang in zip(batch["text"].to_list(), batch["lang"].to_list()):
            kept, lines = clean_lines(text, is_chinese(lang), self.config)
            texts.append(kept)
            removed.append([{"line": i, "text": line, "reason": reason} for i, line, reason in lines])
        return batch.with_columns(pl.Series("text", texts, dtype=pl.String),
                                  pl.Series(COLUMN, removed, dtype=LINE_DTYPE))

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        return pl.Series("reject_reason", [None] * batch.height, dtype=pl.String)
