"""The stage contract, checked for every registered stage (a new stage gets these checks by registering):
its config round-trips through the YAML validation, its reasons are declared, ``annotate`` keeps rows (and text,
but for whole removed lines), ``decide`` gives one declared reason or null per row, and the listing and the dry
run know it."""
from __future__ import annotations

import polars as pl
import pytest

from corpusslim.config import load_config, parse_config
from corpusslim.preview.dryrun import dry_run
from corpusslim.preview.sampling import draw_sample
from corpusslim.registry import STAGES, build_stage, describe_stages
from corpusslim.runtime import lines
from corpusslim.runtime.inputs import discover_shards
from corpusslim.runtime.worker import input_step
from tests.conftest import SAMPLE, write_config

# Settings for stages whose config has required keys (none of today's stages has one).
EXAMPLE_SETTINGS: dict[str, dict] = {}


def _settings(kind: str) -> dict:
    return {"kind": kind, **EXAMPLE_SETTINGS.get(kind, {})}


def _prerequisites(kind: str) -> list[str]:
    """The registered kinds ``kind`` needs or must follow, transitively, in registry order."""
    needed, todo = set(), [kind]
    while todo:
        cls = STAGES[todo.pop()]
        for k in (*cls.requires, *cls.after):
            if k not in needed:
                needed.add(k)
                todo.append(k)
    return [k for k in STAGES if k in needed]


def _stage_list(kind: str) -> list[dict]:
    return [_settings(k) for k in (*_prerequisites(kind), kind)]


@pytest.fixture(scope="module")
def sample_docs() -> pl.DataFrame:
    docs, _ = draw_sample(discover_shards(str(SAMPLE)), 80, seed=5)
    kept, _, _ = input_step(docs, 1_000_000, 0.0)
    return kept


def _batch_for(kind: str, docs: pl.DataFrame) -> pl.DataFrame:
    """``docs`` after the stages ``kind`` needs (their kept rows)."""
    config = parse_config({"input": "in", "output": "out", "stages": _stage_list(kind)})
    for stage_config in config.stages[:-1]:
        stage = build_stage(stage_config)
        docs, _ = (stage.in_memory(docs) if stage.is_global else stage).process(docs)
    return docs


@pytest.mark.parametrize("kind", list(STAGES))
def test_config_round_trips_through_validation(kind):
    config = parse_config({"input": "in", "output": "out", "stages": _stage_list(kind)})
    stage_config = config.stages[-1]
    assert stage_config.kind == kind
    dumped = stage_config.model_dump(mode="json")
    again = parse_config({"input": "in", "output": "out", "stages": [*_stage_list(kind)[:-1], dumped]})
    assert again.stages[-1] == stage_config


@pytest.mark.parametrize("kind", list(STAGES))
def test_reasons_and_columns_are_declared(kind):
    cls = STAGES[kind]
    # A stage that only annotates (segment) declares no reasons; every declared code has a meaning.
    assert all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in cls.reasons.items())
    others = {code for other, c in STAGES.items() if other != kind for code in c.reasons}
    assert not set(cls.reasons) & others, "reason codes must name one stage"
    listed = next(s for s in describe_stages() if s["kind"] == kind)
    fields = STAGES[kind].Config.model_fields
    for key in listed["config"]:
        top = key["key"].split(".")[0]
        assert top in fields and key["required"] == (fields[top].is_required() and "." not in key["key"])


@pytest.mark.parametrize("kind", list(STAGES))
def test_annotate_keeps_rows_and_decide_gives_declared_reasons(kind, sample_docs):
    batch = _batch_for(kind, sample_docs)
    assert batch.height > 10
    stage = build_stage(parse_config({"input": "in", "output": "out", "stages": _stage_list(kind)}).stages[-1])
    applied = stage.in_memory(batch) if stage.is_global else stage
    annotated = applied.annotate(batch)
    assert annotated["id"].to_list() == batch["id"].to_list()
    assert set(stage.columns) <= set(annotated.columns)
    if stage.edits_lines:
        removed = annotated[lines.COLUMN].to_list()
        for original, text, gone in zip(batch["text"], annotated["text"], removed):
            assert text != "" or not gone, "a stage never removes every line of a document"
            assert lines.restore(text, [{**g, "stage": kind} for g in gone]) == original
    else:
        assert annotated["text"].to_list() == batch["text"].to_list()
    reasons = applied.decide(annotated)
    assert reasons.len() == batch.height and reasons.dtype == pl.String
    assert set(reasons.drop_nulls()) <= set(stage.reasons)


@pytest.mark.parametrize("kind", list(STAGES))
def test_dry_run_knows_the_stage(kind, tmp_path):
    config = load_config(write_config(tmp_path, input=str(SAMPLE), stages=_stage_list(kind)))
    report = dry_run(config, kind, sample=60, seed=1)
    assert report["stage"] == kind
    assert {r["reason"] for r in report["removed"]} <= set(STAGES[kind].reasons)
    line_reasons = set(report["lines_removed"])
    assert line_reasons <= set(STAGES[kind].reasons) and not line_reasons & set(report["unseen_reasons"]["codes"])
    assert bool(line_reasons) == STAGES[kind].edits_lines  # the sample's web pages lose some lines
