"""Chinese word segmentation stage: ``seg`` (jieba words joined by single spaces) and ``n_words`` for Chinese
documents; other documents pass through with nulls. It never rejects."""
from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from corpusslim.runtime.resources import segmenter
from corpusslim.stages.base import ConfigFile, Languages, Stage, StageConfig


class SegmentConfig(StageConfig):
    kind: Literal["segment"] = "segment"
    # HMM off: F1 0.836 against 0.818 with HMM on the SIGHAN 2005 PKU test set (jieba 0.42.1; bench/cws_pku.py).
    hmm: bool = Field(False, description="jieba's HMM for words not in its dictionary")
    user_dict: ConfigFile | None = Field(None, description="jieba user dictionary, relative to the config file")
    languages: Languages = Field(default_factory=lambda: ["zh"], min_length=1,
                                 description="documents of these languages (lid's `lang`) are segmented")


class SegmentStage(Stage):
    kind = "segment"
    Config = SegmentConfig
    reasons: dict[str, str] = {}
    columns = ("seg", "n_words")
    requires = ("lid",)
    after = ("lines",)  # words of the cleaned text

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        chosen = batch["lang"].is_in(cfg.languages)
        seg: list[str | None] = [None] * batch.height
        n_words: list[int | None] = [None] * batch.height
        texts = batch["text"].filter(chosen).to_list()
        for i, words in zip(chosen.arg_true().to_list(), segmenter(cfg.hmm, cfg.user_dict).segment(texts)):
            seg[i], n_words[i] = words, words.count(" ") + 1 if words else 0
        return batch.with_columns(seg=pl.Series(seg, dtype=pl.String), n_words=pl.Series(n_words, dtype=pl.Int32))

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        return pl.Series("reject_reason", [None] * batch.height, dtype=pl.String)
