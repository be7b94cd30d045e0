"""A cheap length pre-filter: documents with too few non-white-space characters, removed before the costly
stages. ``corpusslim plan`` proposes it with a bound below which the quality rules would remove a document
anyway (50 whitespace-separated words need at least 50 non-white-space characters; Chinese needs
``chinese.min_chars``), so it changes what is removed early, not what is kept."""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from corpusslim.stages.base import Stage, StageConfig


class PrefilterConfig(StageConfig):
    kind: Literal["prefilter"] = "prefilter"
    min_chars: int = Field(50, ge=0, description="minimum non-white-space characters")


class PrefilterStage(Stage):
    kind = "prefilter"
    Config = PrefilterConfig
    reasons = {"too_short": "fewer non-white-space characters than prefilter.min_chars"}
    columns = ("n_chars",)

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        return batch.with_columns(n_chars=pl.col("text").str.replace_all(r"\s", "").str.len_chars().cast(pl.Int64))

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        return batch.select(pl.when(pl.col("n_chars") < self.config.min_chars).then(pl.lit("too_short"))
                            .otherwise(pl.lit(None, dtype=pl.String))).to_series()

    def thresholds(self, annotated: pl.DataFrame) -> list[dict]:
        return [{"label": "n_chars", "values": annotated["n_chars"].cast(pl.Float64).to_list(),
                 "threshold": float(self.config.min_chars), "op": "min"}]
