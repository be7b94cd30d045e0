"""Stage registry: every stage class, by its config ``kind``."""
from __future__ import annotations

from pydantic import BaseModel

from corpusslim.dedup.stage import DedupStage
from corpusslim.stages.base import Stage, StageConfig
from corpusslim.stages.lid import LidStage
from corpusslim.stages.lines import LinesStage
from corpusslim.stages.prefilter import PrefilterStage
from corpusslim.stages.quality import QualityStage
from corpusslim.stages.segment import SegmentStage

STAGES: dict[str, type[Stage]] = {cls.kind: cls for cls in (PrefilterStage, LidStage, LinesStage, SegmentStage,
                                                            DedupStage, QualityStage)}


def build_stage(config: StageConfig) -> Stage:
    """The stage object for a config."""
    return STAGES[config.kind](config)


def all_reasons() -> dict[str, str]:
    """Every reject reason code of every stage, with its meaning (input checks included)."""
    from corpusslim.runtime.inputs import INPUT_REASONS

    codes = dict(INPUT_REASONS)
    for cls in STAGES.values():
        codes.update(cls.reasons)
    return codes


def config_keys(model: type[BaseModel], prefix: str = "") -> list[dict]:
    """Every setting of a config model, nested sections flattened: key path, whether it is required, its default
    (None when required) and description."""
    keys = []
    for name, field in model.model_fields.items():
        if name == "kind":
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += config_keys(annotation, f"{prefix}{name}.")
        else:
            required = field.is_required()
            keys.append({"key": f"{prefix}{name}", "required": required,
                         "default": None if required else field.get_default(call_default_factory=True),
                         "description": field.description or ""})
    return keys


def describe_stages() -> list[dict]:
    """Every stage: kind, order constraints, reason codes and config keys with defaults (``corpusslim stages``).
    ``requires``: kinds that must run earlier; ``after``: kinds that, when configured, must run earlier."""
    return [{"kind": kind, "global": cls.is_global, "requires": list(cls.requires), "after": list(cls.after),
             "columns": list(cls.columns), "reasons": dict(cls.reasons), "config": config_keys(cls.Config)}
            for kind, cls in STAGES.items()]
