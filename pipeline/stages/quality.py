"""Quality stage: Gopher, C4 and FineWeb page rules for space-delimited text, Chinese rules for Chinese
(``corpusslim.filters.quality``).

``annotate`` stores every statistic in one struct column ``quality`` (so thresholds can be re-tuned and a dry run
can show distributions without recomputing) and the first failing rule in ``quality_reason``. These are page rules:
they judge the text as the ``lines`` stage (C4's line rules, Chinese navigation lines) left it, so that stage, when
configured, runs first.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import ConfigDict, Field

from corpusslim.filters.quality import (
    STAT_NAMES,
    QualityConfig,
    active_rules,
    bad_words_pattern,
    document_stats,
    first_failures,
    is_chinese,
    reason_codes,
)
from corpusslim.stages.base import ConfigFile, Stage

QUALITY_STRUCT = pl.Struct({name: pl.Float64 for name in STAT_NAMES})


class QualityStageConfig(QualityConfig):
    """The rule sets of ``corpusslim.filters.quality.QualityConfig`` (each with ``enabled`` and its thresholds)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)
    kind: Literal["quality"] = "quality"
    bad_words_file: ConfigFile | None = Field(
        None, description="C4's bad-word list (one word or phrase per line, UTF-8), relative to the config file; "
                          "a page with any of them fails c4_bad_words")


@functools.cache
def _bad_words(path: str | None):
    """The compiled bad-word test of a list file, read once per process."""
    return bad_words_pattern(Path(path).read_text(encoding="utf-8").splitlines()) if path else None


class QualityStage(Stage):
    kind = "quality"
    Config = QualityStageConfig
    reasons = reason_codes()
    columns = ("quality", "quality_reason")
    requires = ("lid",)
    after = ("segment", "lines")  # the Chinese rules count words of ``seg``; page rules judge the cleaned text

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        segs = batch["seg"].to_list() if "seg" in batch.columns else [None] * batch.height
        bad_words = _bad_words(cfg.bad_words_file)
        stats = [document_stats(t, lang, seg, cfg=cfg, bad_words=bad_words)
                 for t, lang, seg in zip(batch["text"].to_list(), batch["lang"].to_list(), segs)]
        reasons = first_failures(stats, batch["lang"].to_list(), cfg)
        return batch.with_columns(quality=pl.Series(stats, dtype=QUALITY_STRUCT),
                                  quality_reason=pl.Series(reasons, dtype=pl.String))

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        return batch["quality_reason"]

    def thresholds(self, annotated: pl.DataFrame) -> list[dict]:
        out = []
        zh = annotated["lang"].map_elements(is_chinese, return_dtype=pl.Boolean)
        for family, mask in (("zh", zh), ("other", ~zh)):
            docs = annotated.filter(mask)
            if docs.is_empty():
                continue
            for code, stat, op, threshold in active_rules("zh" if family == "zh" else None, self.config):
                if op in ("min", "max"):
                    values = docs["quality"].struct.field(stat).drop_nans().drop_nulls().to_list()
                    out.append({"label": f"{code} ({stat})", "values": values, "threshold": threshold, "op": op})
        return out
