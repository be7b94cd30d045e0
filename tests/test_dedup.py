"""Global dedup on a small corpus built from sample_data: exact and near duplicates across shards (English and
Chinese), first arrival wins, incremental runs with --against equal one run over everything."""
from __future__ import annotations

import polars as pl
import pytest

from corpusslim.config import load_config
from corpusslim.dedup.config import DedupConfig
from corpusslim.dedup.stage import DedupStage
from corpusslim.errors import ConfigError
from corpusslim.filters.minhash import DEFAULT_N, DEFAULT_N_ZH, jaccard, shingles
from corpusslim.filters.segment import Segmenter
from corpusslim.runtime.manifest import Manifest
from corpusslim.runtime.runner import load_prior, run
from tests.conftest import SAMPLE, read_dir, write_config

STAGES = [{"kind": "lid"}, {"kind": "segment"}, {"kind": "dedup"}]


def _texts(source: str, n: int, min_chars: int) -> list[str]:
    df = pl.read_parquet(SAMPLE / "*.parquet").filter(pl.col("source") == source)
    return df.filter(pl.col("text").str.len_chars() >= min_chars).sort("id")["text"].head(n).to_list()


def _edit_words(text: str, every: int, sep: str = " ") -> str:
    words = text.split(sep)
    return sep.join(w + "x" if i % every == every // 2 else w for i, w in enumerate(words))


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    en = _texts("en_abc_news", 6, 1500)
    zh = _texts("zh_wiki", 3, 700)
    base_en = en[0]
    near_en = _edit_words(base_en, 80)  # one word in 80 changed
    zh_words = Segmenter().words(zh[0])
    near_zh = "".join(w + "的" if i % 100 == 50 else w for i, w in enumerate(zh_words))
    return {"A": base_en, "A_exact": "  " + base_en.upper().replace(" ", "   "), "A_near": near_en,
            "Z": zh[0], "Z_near": near_zh, "U1": en[1], "U2": en[2], "U3": en[3], "U4": en[4], "U5": zh[1]}


def _write(directory, shards: dict[str, list[str]], corpus) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, names in shards.items():
        pl.DataFrame({"id": names, "text": [corpus[n] for n in names]}).write_parquet(directory / f"{stem}.parquet")


SHARDS = {"s0": ["A", "Z", "U1", "U2"], "s1": ["A_exact", "A_near", "U3"], "s2": ["Z_near", "U4", "U5"]}


def _shingle_set(text: str, chinese: bool = False) -> set[str]:
    seg = Segmenter().segment([text])[0] if chinese else None
    return set(shingles(text, seg, DEFAULT_N, DEFAULT_N_ZH))


def test_planted_similarities(corpus):
    j_en = jaccard(_shingle_set(corpus["A"]), _shingle_set(corpus["A_near"]))
    j_zh = jaccard(_shingle_set(corpus["Z"], True), _shingle_set(corpus["Z_near"], True))
    assert 0.85 <= j_en <= 0.95 and 0.85 <= j_zh <= 0.95, (j_en, j_zh)
    assert jaccard(_shingle_set(corpus["U1"]), _shingle_set(corpus["U2"])) < 0.1


def _decisions(out) -> dict[str, tuple]:
    kept, rejected = read_dir(out / "kept"), read_dir(out / "rejected")
    decisions = {i: ("kept", None, c) for i, c in zip(kept["id"], kept["dup_cluster"])}
    decisions.update({i: (r, d, c) for i, r, d, c in
                      zip(rejected["id"], rejected["reject_reason"], rejected["dup_of"], rejected["dup_cluster"])})
    return decisions


@pytest.mark.slow
def test_exact_and_near_duplicates_across_shards(tmp_path, corpus):
    _write(tmp_path / "input", SHARDS, corpus)
    run(load_config(write_config(tmp_path, stages=STAGES)))
    d = _decisions(tmp_path / "out")
    assert d["A"] == ("kept", None, "A") and d["Z"] == ("kept", None, "Z")
    assert d["A_exact"] == ("exact_dup", "A", "A")
    assert d["A_near"] == ("near_dup", "A", "A")
    assert d["Z_near"] == ("near_dup", "Z", "Z"), "Chinese near duplicate not found through seg"
    for unrelated in ("U1", "U2", "U3", "U4", "U5"):
        assert d[unrelated] == ("kept", None, None)


@pytest.mark.slow
def test_first_arrival_wins(tmp_path, corpus):
    """The same documents with the near copy arriving first: the near copy is kept, the original rejected."""
    _write(tmp_path / "input", {"s0": ["A_near", "U1"], "s1": ["A", "U2"], "s2": ["A_exact"]}, corpus)
    run(load_config(write_config(tmp_path, stages=STAGES)))
    d = _decisions(tmp_path / "out")
    assert d["A_near"] == ("kept", None, "A_near")
    assert d["A"] == ("near_dup", "A_near", "A_near")
    assert d["A_exact"] == ("near_dup", "A_near", "A_near")  # exact copy of A, but A is not the kept one


@pytest.mark.slow
def test_against_equals_one_run_over_everything(tmp_path, corpus):
    _write(tmp_path / "all", SHARDS, corpus)
    _write(tmp_path / "first", {k: SHARDS[k] for k in ("s0", "s1")}, corpus)
    _write(tmp_path / "second", {"s2": SHARDS["s2"]}, corpus)
    config = write_config(tmp_path, stages=STAGES)
    run(load_config(config, {"input": str(tmp_path / "all"), "output": str(tmp_path / "out-all")}))
    run(load_config(config, {"input": str(tmp_path / "first"), "output": str(tmp_path / "out-1")}))
    run(load_config(config, {"input": str(tmp_path / "second"), "output": str(tmp_path / "out-2")}),
        against=str(tmp_path / "out-1"))
    # Same kept set and same rejections; only dup_cluster of a kept document differs, because an earlier run's
    # output is not rewritten when a later run finds copies of its documents.
    together = {k: v[:2] for k, v in _decisions(tmp_path / "out-all").items()}
    incremental = {k: v[:2] for k, v in {**_decisions(tmp_path / "out-1"), **_decisions(tmp_path / "out-2")}.items()}
    assert incremental == together
    assert incremental["Z_near"] == ("near_dup", "Z")


def test_against_needs_same_dedup_settings_and_a_finished_run(tmp_path):
    first = DedupStage(DedupConfig())
    out = str(tmp_path / "out-1")
    Manifest.open(out, "hash", meta={"against": [], "shard_offset": 0, "dedup": first.signature()}).save()
    with pytest.raises(ConfigError, match="not finished"):
        load_prior(out, first)
    other = DedupStage(DedupConfig(num_perm=128, bands=16, rows=8))
    with pytest.raises(ConfigError, match="dedup settings .* differ"):
        load_prior(out, other)


@pytest.mark.parametrize("dedup, message", [
    ({"kind": "dedup", "bands": 20, "rows": 8}, "bands x rows = 160 exceeds num_perm = 112"),
    ({"kind": "dedup", "threshold": 1.5}, "stages[2].threshold"),
    ({"kind": "dedup", "verify": "maybe"}, "stages[2].verify"),
    ({"kind": "dedup", "partitions": 0}, "stages[2].partitions"),
])
def test_dedup_config_errors(tmp_path, dedup, message):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, stages=[{"kind": "lid"}, {"kind": "segment"}, dedup]))
    assert message in str(err.value)


def test_bands_from_threshold(tmp_path):
    cfg = load_config(write_config(tmp_path, stages=[{"kind": "lid"}, {"kind": "dedup", "threshold": 0.5,
                                                                       "choose_bands_from_threshold": True}]))
    dedup = cfg.stages[1]
    assert dedup.bands * dedup.rows <= 112

    def candidate(s: float, bands: int, rows: int) -> float:  # LSH collision probability at Jaccard s
        return 1 - (1 - s ** rows) ** bands

    # The chosen S-curve is centred on 0.5: pairs well below it are rarely candidates, pairs well above nearly
    # always, where FineWeb's 14 x 8 (centred near 0.72) would miss almost half of the pairs at 0.7.
    assert candidate(0.3, dedup.bands, dedup.rows) < 0.2 and candidate(0.7, dedup.bands, dedup.rows) > 0.9
    assert candidate(0.7, 14, 8) < 0.6


@pytest.mark.slow
def test_partitioned_reduce_finds_the_same_duplicates(tmp_path, corpus):
    _write(tmp_path / "input", SHARDS, corpus)
    run(load_config(write_config(tmp_path, stages=STAGES)))
    split = [*STAGES[:2], {"kind": "dedup", "partitions": 3}]
    run(load_config(write_config(tmp_path, stages=split, output="out3")))
    assert _decisions(tmp_path / "out3") == _decisions(tmp_path / "out")


def test_reduce_partitions_grow_with_the_corpus(tmp_path):
    from corpusslim.dedup.config import DOCS_PER_REDUCE_TASK, DedupConfig

    auto = DedupConfig()
    assert [auto.reduce_partitions(n) for n in (0, 10, DOCS_PER_REDUCE_TASK, DOCS_PER_REDUCE_TASK + 1)] == [1, 1, 1, 2]
    assert DedupConfig(partitions=3).reduce_partitions(10) == 3


def test_a_later_document_never_changes_an_earlier_decision():
    """C is a near duplicate of both A and B, which are not duplicates of each other: C goes, A and B stay
    (union-find over all edges would also remove B, an earlier document, because of a later one)."""
    from corpusslim.dedup.linking import PAIR_SCHEMA, cluster

    a, b, c, d = 1, 2, 3, 4
    near = pl.DataFrame({"a": [c, c], "b": [a, b]}, schema=PAIR_SCHEMA)
    exact = pl.DataFrame({"a": [d], "b": [c]}, schema=PAIR_SCHEMA)  # D has C's text; C links on to A
    members = {doc: (root, reason) for doc, root, reason in cluster(near, exact).iter_rows()}
    assert members == {a: (a, None), b: (b, None), c: (a, "near_dup"), d: (a, "near_dup")}
