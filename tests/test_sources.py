"""Sources: the config keys, the round-robin arrival order of ``sources:``, the per-unit overlap counts on planted
duplicates, and (slow) one run with sources as globs and one with a source column: the same per-source ledger,
and an overlap matrix equal to the planted cross-source duplicates."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from corpusslim.config import parse_config
from corpusslim.errors import ConfigError
from corpusslim.runtime.inputs import ROW, read_shard, shards_of
from corpusslim.runtime.keys import doc_keys
from corpusslim.tracker.sources import overlap_counts, raw_by_source

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
BASE = {"output": "out", "stages": [{"kind": "lid"}]}


@pytest.mark.parametrize("extra, message", [
    ({"input": "x", "sources": [{"name": "a", "input": "a"}]}, "exactly one of input and sources"),
    ({"sources": [{"name": "a", "input": "a"}], "source_column": "src"}, "exclude each other"),
    ({"sources": [{"name": "a", "input": "a"}, {"name": "a", "input": "b"}]}, "names must be unique"),
    ({"input": "x", "batch_shards": 2, "batch_tokens": 1e6}, "batch_shards and batch_tokens"),
    ({"input": "x", "batch_tokens": 1e6, "batch_docs": 10}, "batch_tokens and batch_docs"),
])
def test_config_rejects_conflicting_source_and_batch_keys(extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **extra})


def _files(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True)
    for name in names:
        pl.DataFrame({"text": [f"{root.name} {name}"]}).write_parquet(root / name)


def test_sources_interleave_round_robin_and_carry_their_name(tmp_path):
    _files(tmp_path / "a", ["0.parquet", "1.parquet", "2.parquet"])
    _files(tmp_path / "b", ["0.parquet"])
    config = parse_config({**BASE, "sources": [{"name": "web", "input": str(tmp_path / "a")},
                                               {"name": "news", "input": str(tmp_path / "b")}]})
    units = shards_of(config)
    assert [(u.source, u.stem, u.index) for u in units] == [
        ("web", "web/0", 0), ("news", "news/0", 1), ("web", "web/1", 2), ("web", "web/2", 3)]
    assert read_shard(units[1])["source"].to_list() == ["news"]


def test_sources_refuse_an_input_column_named_source(tmp_path):
    (tmp_path / "a").mkdir()
    pl.DataFrame({"text": ["x"], "source": ["y"]}).write_parquet(tmp_path / "a" / "0.parquet")
    config = parse_config({**BASE, "sources": [{"name": "web", "input": str(tmp_path / "a")}]})
    with pytest.raises(Exception, match="source_column: source"):
        read_shard(shards_of(config)[0])


def test_overlap_counts_match_planted_roots(tmp_path):
    # Unit 1 (source b) removed three duplicates: two copy documents of unit 0 (source a), one copies unit 1 itself.
    pre0 = pl.DataFrame({ROW: pl.Series([0, 1, 2], dtype=pl.UInt32), "source": ["a", "a", "a"]})
    pre1 = pl.DataFrame({ROW: pl.Series([0, 1, 2, 3], dtype=pl.UInt32), "source": ["b"] * 4})
    pre0.write_parquet(tmp_path / "0.parquet")
    pre1.write_parquet(tmp_path / "1.parquet")
    removed = pl.DataFrame({ROW: pl.Series([1, 2, 3], dtype=pl.UInt32), "n_tokens": [10, 20, 5],
                            "source": ["b", "b", "b"]})
    links = pl.DataFrame({"doc": doc_keys(1, pl.Series([1, 2, 3])),
                          "root": doc_keys(0, pl.Series([0, 2, 0])).to_list()[:2] + doc_keys(1, pl.Series([0]))
                          .to_list()})
    paths = {0: str(tmp_path / "0.parquet"), 1: str(tmp_path / "1.parquet")}
    assert overlap_counts(removed, links, "source", paths) == [
        {"from": "b", "to": "a", "docs": 2, "tokens": 30}, {"from": "b", "to": "b", "docs": 1, "tokens": 5}]
    assert overlap_counts(removed, links, "source", {})[0]["to"] == "(earlier run)"   # the root is in no pre file


def test_raw_counts_per_source_name_null_sources():
    df = pl.DataFrame({"src": ["a", None, "a"], "n_tokens": [1, 2, 3]})
    assert raw_by_source(df, "src") == {"(none)": {"docs": 1, "tokens": 2}, "a": {"docs": 2, "tokens": 4}}
    assert raw_by_source(df, None) == {}


# ------------------------------------------------------------------------------------------------- slow: runs
COPIES = {("b", 1): [("a", 0, 0), ("a", 0, 1), ("a", 0, 2), ("a", 0, 3)],   # b/1 copies four docs of a/0
          ("a", 1): [("a", 0, 4), ("a", 0, 5)],                               # a/1 copies two of a/0
          ("a", 2): [("b", 0, 0), ("b", 0, 1), ("b", 1, 2)]}                  # a/2 copies three of b


def _corpus(root: Path) -> tuple[dict, dict]:
    """Two sources of three files of 12 distinct English news documents, plus the planted copies; written once
    per source directory (globs) and once as one directory with a source column. The expected overlap rows."""
    docs = pl.concat([pl.read_parquet(p) for p in sorted(SAMPLE.glob("*.parquet"))]).filter(
        pl.col("source") == "en_abc_news").unique("text", keep="first", maintain_order=True)["text"].to_list()
    files = {(s, k): docs[(2 * k + (s == "b")) * 12:(2 * k + (s == "b") + 1) * 12] for s in "ab" for k in range(3)}
    expected: dict[tuple[str, str], int] = {}
    for (s, k), copies in COPIES.items():
        files[(s, k)] = files[(s, k)] + [files[(cs, ck)][i] for cs, ck, i in copies]
        for cs, _, _ in copies:
            expected[(s, cs)] = expected.get((s, cs), 0) + 1
    for (s, k), texts in files.items():
        (root / "globs" / s).mkdir(parents=True, exist_ok=True)
        (root / "column").mkdir(exist_ok=True)
        pl.DataFrame({"text": texts}).write_parquet(root / "globs" / s / f"{k:03d}.parquet")
        pl.DataFrame({"text": texts, "source": [s] * len(texts)}).write_parquet(
            root / "column" / f"{k:03d}-{s}.parquet")
    return files, expected


@pytest.mark.slow
def test_globs_and_column_give_the_same_ledger_and_planted_overlap(tmp_path):
    from corpusslim.api import run

    _, expected = _corpus(tmp_path)
    stages = [{"kind": "lid", "languages": ["en"]}, {"kind": "dedup"}]
    common = {"stages": stages, "workers": 1, "keep_index": False}
    globs = {**common, "output": str(tmp_path / "out_globs"),
             "sources": [{"name": s, "input": str(tmp_path / "globs" / s)} for s in "ab"]}
    column = {**common, "output": str(tmp_path / "out_column"), "input": str(tmp_path / "column"),
              "source_column": "source"}
    ledgers, overlaps = [], []
    for config in (globs, column):
        run(config)
        out = Path(config["output"])
        ledgers.append(pl.read_parquet(out / "ledger_sources.parquet").select(
            "source", "batch", "raw_tokens", "raw_docs", "new_unique_tokens", "new_unique_docs"))
        summary = json.loads((out / "report" / "summary.json").read_text())
        overlaps.append({(r["from"], r["to"]): r["docs"] for r in summary["overlap"]})
        assert set(pl.read_parquet(out / "kept" / "**" / "*.parquet")["source"]) == {"a", "b"}
    assert ledgers[0].equals(ledgers[1])
    assert overlaps[0] == overlaps[1] == expected
