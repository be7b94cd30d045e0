"""Quality stage: Gopher, C4 and FineWeb rules for space-delimited text, Chinese rules for Chinese (``corpusslim.filters.quality``).

``annotate`` stores every statistic in one struct column ``quality`` (so thresholds can be re-tuned and a dry run
can show distributions without recomputing) and the first failing rule in ``quality_reason``.
"""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import ConfigDict

from corpusslim.filters.quality import (
    STAT_NAMES,
    QualityConfig,
    active_rules,
    document_stats,
    first_failure,
    is_chinese,
    reason_codes,
)
from corpusslim.stages.base import Stage

QUALITY_STRUCT = pl.Struct({name: pl.Float64 for name in STAT_NAMES})


class QualityStageConfig(QualityConfig):
    """The rule sets of ``corpusslim.filters.quality.QualityConfig`` (each with ``enabled`` and its thresholds)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)
    kind: Literal["quality"] = "quality"


class QualityStage(Stage):
    kind = "quality"
    Config = QualityStageConfig
    reasons = reason_codes()
    columns = ("quality", "quality_reason")
    requires = ("lid",)
    after = ("segment",)  # the Chinese rules count words of ``seg``

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        segs = batch["seg"].to_list() if "seg" in batch.columns else [None] * batch.height
        stats = [document_stats(t, lang, seg, cfg=cfg)
                 for t, lang, seg in zip(batch["text"].to_list(), batch["lang"].to_list(), segs)]
        reasons = [first_failure(s, lang, cfg) for s, lang in zip(stats, batch["lang"].to_list())]
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
