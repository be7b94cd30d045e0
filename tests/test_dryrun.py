"""Dry runs, the stage list and the stage-order plan: nothing written, the sample spread and reproducible, the
projection consistent with a real run, JSON for scripts, and reordering that keeps the same documents."""
from __future__ import annotations

import json
import os
from typing import Literal

import pytest
from click.testing import CliRunner
from pydantic import Field

from corpusslim.cli import main
from corpusslim.config import load_config
from corpusslim.preview.dryrun import dry_run, wilson
from corpusslim.preview.plan import plan, run_chain
from corpusslim.preview.sampling import allocate, draw_sample
from corpusslim.registry import STAGES, all_reasons
from corpusslim.runtime.inputs import discover_shards
from corpusslim.stages.base import Stage, StageConfig
from corpusslim.stages.lid import LidConfig
from corpusslim.stages.prefilter import PrefilterConfig
from corpusslim.stages.quality import QualityStageConfig
from corpusslim.stages.segment import SegmentConfig
from tests.conftest import SAMPLE, write_config

REPORT_KEYS = {"stage", "config", "sample", "removed", "lines_removed", "unseen_reasons", "kept", "thresholds", "cpu",
               "projection",
               "dry_run_wall_seconds", "notes"}


def _tree(path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, files in os.walk(path) for f in files)


def test_sample_spread_and_reproducible():
    shards = discover_shards(str(SAMPLE))
    a, totals = draw_sample(shards, 600, seed=1)
    b, _ = draw_sample(shards, 600, seed=1)
    c, _ = draw_sample(shards, 600, seed=2)
    assert a["id"].to_list() == b["id"].to_list() and a["id"].to_list() != c["id"].to_list()
    assert a.height == 600 and totals.docs == 4845
    per_shard = dict(a.group_by("_shard").len().iter_rows())
    assert set(per_shard) == {s.stem for s in shards} and min(per_shard.values()) >= 95
    assert a["id"].n_unique() == 600


def test_allocate_proportional():
    assert allocate(8, {"a": 100, "b": 300}) == {"a": 2, "b": 6}
    assert sum(allocate(7, {"a": 5, "b": 5, "c": 5}).values()) == 7
    assert allocate(50, {"a": 3, "b": 4}) == {"a": 3, "b": 4}


def test_wilson_interval():
    low, high = wilson(20, 100)
    assert low < 0.2 < high and 0.12 < low and high < 0.3


@pytest.mark.parametrize("stage", ["lid", "quality"])
def test_dry_run_writes_nothing_and_projects_the_real_run(reference, tmp_path, stage):
    root, stats = reference
    cfg = load_config(write_config(root), {"output": str(tmp_path / "never")})
    before = _tree(root)
    report = dry_run(cfg, stage, sample=1500, seed=0)
    assert not (tmp_path / "never").exists() and _tree(root) == before
    assert set(report) == REPORT_KEYS
    assert report["sample"]["shards"] == 6 and report["projection"]["docs"] == 4845
    actual = next(s for s in stats["stages"] if s["stage"] == stage)["removed"]
    projected = {r["reason"]: r for r in report["removed"]}
    for reason, real in actual.items():
        if real["docs"] >= 20:
            r = projected[reason]
            assert r["projected_docs_low"] <= real["docs"] <= r["projected_docs_high"], (reason, r, real)
        elif reason not in projected:  # not seen in the sample: the stated bound must hold
            assert reason in report["unseen_reasons"]["codes"]
            assert real["docs"] <= report["unseen_reasons"]["projected_docs_high"], (reason, real)
    assert report["cpu"]["stage_per_doc"] > 0 and report["projection"]["usd"] > 0
    assert report["thresholds"] and all(t["histogram"] for t in report["thresholds"])


def test_dedup_dry_run_estimates_instead_of_zero(reference):
    root, stats = reference
    report = dry_run(load_config(write_config(root)), "dedup", sample=2000, seed=0)
    assert any("q^2" in note for note in report["notes"])
    projected = sum(r["projected_docs"] for r in report["removed"])
    actual = sum(r["docs"] for r in next(s for s in stats["stages"] if s["stage"] == "dedup")["removed"].values())
    assert projected > 0 and 0.3 * actual <= projected <= 3 * actual


def test_cli_json_and_escaping(reference, tmp_path):
    root, _ = reference
    result = CliRunner().invoke(main, ["stage", "lid", str(write_config(root)), "--dry-run", "--sample", "300",
                                       "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == REPORT_KEYS and report["stage"] == "lid"
    for r in report["removed"]:
        assert {"reason", "docs", "tokens", "pct", "pct_low", "pct_high", "projected_docs", "examples"} <= set(r)
        assert all("\x1b" not in e["text"] for e in r["examples"])
    text = CliRunner().invoke(main, ["stage", "lid", str(write_config(root)), "--dry-run", "--sample", "300"])
    assert text.exit_code == 0 and "nothing was written" in text.output and "◀ threshold 0.65" in text.output
    bad = CliRunner().invoke(main, ["stage", "nope", str(write_config(root)), "--dry-run"])
    assert bad.exit_code != 0 and "unknown stage 'nope'" in bad.output


def test_stages_listing():
    result = CliRunner().invoke(main, ["stages", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.output)
    codes = set(listed["input_reasons"]) | {c for s in listed["stages"] for c in s["reasons"]}
    assert codes == set(all_reasons())
    lid = next(s for s in listed["stages"] if s["kind"] == "lid")
    assert any(c["key"] == "min_score" and c["default"] == 0.65 and not c["required"] for c in lid["config"])
    quality = next(s for s in listed["stages"] if s["kind"] == "quality")
    assert any(c["key"] == "gopher_quality.min_words" and c["default"] == 50 for c in quality["config"])
    dedup = next(s for s in listed["stages"] if s["kind"] == "dedup")
    assert dedup["requires"] == ["lid"] and dedup["after"] == ["segment", "lines"]


class _WordListConfig(StageConfig):
    kind: Literal["wordlist"] = "wordlist"
    words: list[str] = Field(description="words that reject a document")


class _WordListStage(Stage):
    kind, Config, reasons, columns, requires = "wordlist", _WordListConfig, {"listed_word": "has a word"}, (), ("lid",)


def test_stages_text_names_required_keys_and_order(monkeypatch):
    monkeypatch.setitem(STAGES, "wordlist", _WordListStage)
    text = CliRunner().invoke(main, ["stages"]).output
    block = text[text.index("\nwordlist"):]
    assert "needs lid earlier" in block and "words (required)  # words that reject a document" in block
    assert "PydanticUndefined" not in text
    assert "dedup · global (all shards) · needs lid earlier · after segment, lines when configured" in text


def test_reordering_local_filters_keeps_the_same_documents():
    docs, _ = draw_sample(discover_shards(str(SAMPLE)), 800, seed=3)
    lid, seg, quality, pre = LidConfig(), SegmentConfig(), QualityStageConfig(), PrefilterConfig(min_chars=50)
    kept_sets = []
    for order in ([lid, seg, quality], [pre, lid, seg, quality], [lid, pre, seg, quality], [lid, seg, quality, pre]):
        kept, _ = run_chain(docs, order, 1_000_000)
        kept_sets.append(set(kept["id"]))
    assert kept_sets[0] and all(k == kept_sets[0] for k in kept_sets)


def test_plan_proposes_cheaper_order_and_writes_config(tmp_path):
    stages = [{"kind": "lid"}, {"kind": "segment"}, {"kind": "quality"}]
    config = write_config(tmp_path, input=str(SAMPLE), stages=stages)
    result = plan(load_config(config), sample=800, seed=0)
    assert result["proposed"]["order"][0] == "prefilter" and result["kept_same"]
    assert result["proposed"]["projected_cpu_seconds"] < result["current"]["projected_cpu_seconds"]
    out = tmp_path / "planned.yaml"
    cli = CliRunner().invoke(main, ["plan", str(config), "--sample", "300", "--write", str(out)])
    assert cli.exit_code == 0, cli.output
    assert [s.kind for s in load_config(out).stages] == ["prefilter", "lid", "segment", "quality"]
