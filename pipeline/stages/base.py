"""The one way to define a stage.

A local stage subclasses :class:`Stage`: it names itself (``kind``), declares its config model (``Config``), its
reason codes and the annotation columns it adds, and implements ``annotate`` (scores into columns) and ``decide``
(thresholds into a reason per row, null = keep). ``process`` is shared: score, decide, split. Registering the
class in ``corpusslim.registry.STAGES`` is all it takes for the YAML config, ``corpusslim stages``, dry runs, plans,
stats and the ledger to know it.

A global stage (one that must see every shard, like dedup) subclasses :class:`GlobalStage` and gives the runner
its phases: ``index`` per shard (map), a ``Linker`` on the driver that turns every shard's index into links
(see ``corpusslim.runtime.phases``), and ``bind`` per shard (apply). The runner knows these phases, not the stage.
"""
from __future__ import annotations

import os
from typing import Annotated, ClassVar

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from corpusslim.filters.langid import normalise


def _existing_file(value: str, info: ValidationInfo) -> str:
    """Resolve a path against the config file's directory (validation context ``base``); it must exist."""
    base = (info.context or {}).get("base", ".")
    path = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    return path


# A file named in a stage's config, relative to the config file.
ConfigFile = Annotated[str, AfterValidator(_existing_file)]


def _language_codes(value: list[str]) -> list[str]:
    return sorted({normalise(code) for code in value})


# Language codes as either library writes them (zh-cn, __label__zh), normalised to one code each (zh).
Languages = Annotated[list[str], AfterValidator(_language_codes)]


class StageConfig(BaseModel):
    """Base of every stage's config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage:
    kind: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    reasons: ClassVar[dict[str, str]]
    columns: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]] = ()  # stage kinds that must run earlier (their columns are read)
    after: ClassVar[tuple[str, ...]] = ()  # stage kinds that, when configured, must run earlier
    is_global: ClassVar[bool] = False  # a GlobalStage
    edits_lines: ClassVar[bool] = False  # annotate removes whole lines (``corpusslim.runtime.lines``)

    def __init__(self, config: StageConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.kind

    def annotate(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Return ``batch`` with this stage's annotation columns added; rows untouched, and text untouched unless
        the stage ``edits_lines`` (then only whole lines removed, listed in ``removed_lines``)."""
        raise NotImplementedError

    def decide(self, batch: pl.DataFrame) -> pl.Series:
        """A reason code per row of an annotated batch, null where the row is kept."""
        raise NotImplementedError

    def thresholds(self, annotated: pl.DataFrame) -> list[dict]:
        """Each thresholded score of an annotated batch: label, values, threshold and op ("min": a value below the
        threshold fails; "max": above fails). For dry runs; a stage without thresholds returns []."""
        return []

    def process(self, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split a batch into kept rows and rejected rows (with ``reject_stage`` and ``reject_reason``)."""
        return self.split(self.annotate(batch))

    def split(self, annotated: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Kept and rejected rows of an annotated batch, by ``decide``."""
        flagged = annotated.with_columns(self.decide(annotated).alias("reject_reason"))
        kept = flagged.filter(pl.col("reject_reason").is_null()).drop("reject_reason")
        rejected = flagged.filter(pl.col("reject_reason").is_not_null()).with_columns(
            reject_stage=pl.lit(self.kind, dtype=pl.String)
        )
        return kept, rejected


class GlobalStage(Stage):
    """A stage over all shards: *map* (``index``, per shard, on the workers) writes compact keys; the stage's
    ``Linker`` (driven by the runner) runs its phases over every shard's keys and returns links, rows keyed by
    document (``corpusslim.runtime.keys.DOC``); *apply* is ``bind(links).process`` per shard, with that shard's
    links."""

    is_global = True
    Linker: ClassVar[type]  # implements corpusslim.runtime.phases.Linker

    def index(self, batch: pl.DataFrame, shard_number: int) -> pl.DataFrame:
        """The map step: one row of keys per document of ``batch`` (a shard's survivors so far)."""
        raise NotImplementedError

    def bind(self, links: pl.DataFrame) -> Stage:
        """The apply-step stage of one shard, given the links of its documents."""
        raise NotImplementedError

    def in_memory(self, batch: pl.DataFrame) -> Stage:
        """Every phase at once on one in-memory batch (dry runs and plans): the bound apply-step stage."""
        raise NotImplementedError

    def signature(self) -> dict:
        """The settings another run must share for its index to be searched by this one (``--against``)."""
        raise NotImplementedError
