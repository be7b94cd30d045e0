"""Stage registry: every stage class, by its config ``kind``."""
from __future__ import annotations

from pipeline.stages.base import Stage, StageConfig
from pipeline.stages.lid import LidStage
from pipeline.stages.dedup import DedupStage
from pipeline.stages.quality import QualityStage
from pipeline.stages.segment import SegmentStage

STAGES: dict[str, type[Stage]] = {cls.kind: cls for cls in (LidStage, SegmentStage, DedupStage, QualityStage)}


def build_stage(config: StageConfig, **bound) -> Stage:
    """The stage object for a config; ``bound``: run-time inputs of a global stage's apply step."""
    return STAGES[config.kind](config, **bound)


def all_reasons() -> dict[str, str]:
    """Every reject reason code of every stage, with its meaning (input checks included)."""
    from pipeline.shard_io import INPUT_REASONS

    codes = dict(INPUT_REASONS)
    for cls in STAGES.values():
        codes.update(cls.reasons)
    return codes
