"""Ids on more than one input row (``on_duplicate_id``): found before any output, the run stopped or the later
occurrences renamed in arrival order, so every output id names one document."""
from __future__ import annotations

import polars as pl
import pytest

from corpusslim.config import load_config
from corpusslim.errors import ShardInputError
from corpusslim.runtime.ids import repeated_ids, unit_ids
from corpusslim.runtime.inputs import discover_shards, read_shard
from corpusslim.runtime.runner import run
from tests.conftest import SAMPLE, read_dir, write_config


def _inputs(directory, shared: int = 30) -> pl.DataFrame:
    """Two shards whose first ``shared`` documents carry the same ids (different texts); returns both."""
    directory.mkdir()
    a = pl.read_parquet(SAMPLE / "shard-000.parquet").head(120)
    b = pl.read_parquet(SAMPLE / "shard-001.parquet").head(120)
    b = b.with_columns(id=pl.when(pl.int_range(pl.len()) < shared).then(a["id"].head(120)).otherwise(pl.col("id")))
    a.write_parquet(directory / "a.parquet")
    b.write_parquet(directory / "b.parquet")
    return pl.concat([a, b])


def test_later_occurrences_are_numbered_in_arrival_order(tmp_path):
    _inputs(tmp_path / "in", shared=3)
    # the first shard repeats one id within itself too: row 5 carries row 4's id
    a = pl.read_parquet(tmp_path / "in" / "a.parquet")
    a.with_columns(id=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(a["id"][4])).otherwise("id")).write_parquet(
        tmp_path / "in" / "a.parquet")
    shards = discover_shards(str(tmp_path / "in"))
    found = repeated_ids([unit_ids(s, str(tmp_path / "ids")) for s in shards], str(tmp_path / "ids"))
    assert found["count"] == 4 and found["renamed_rows"] == 4
    renamed = {stem: pl.read_parquet(r["path"]) for stem, r in found["renames"].items()}
    assert renamed["a"]["id"].to_list() == [f"{a['id'][4]}#2"]
    assert sorted(renamed["b"]["id"].to_list()) == sorted(f"{i}#2" for i in a["id"].head(3))
    from dataclasses import replace
    b = read_shard(replace(shards[1], renames=found["renames"]["b"]["path"]))
    first = read_shard(replace(shards[0], renames=found["renames"]["a"]["path"]))
    assert pl.concat([first["id"], b["id"]]).is_unique().all()


def test_no_repeated_ids_renames_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    pl.read_parquet(SAMPLE / "shard-000.parquet").head(50).write_parquet(tmp_path / "in" / "a.parquet")
    [shard] = discover_shards(str(tmp_path / "in"))
    found = repeated_ids([unit_ids(shard, str(tmp_path / "ids"))], str(tmp_path / "ids"))
    assert found == {"count": 0, "examples": [], "renamed_rows": 0, "renames": {}}


@pytest.mark.slow
def test_fail_stops_before_any_output_and_suffix_gives_unique_ids(tmp_path):
    docs = _inputs(tmp_path / "in")
    stages = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "dedup"}]
    with pytest.raises(ShardInputError, match=r"30 ids appear on more than one input row .* on_duplicate_id: fail"):
        run(load_config(write_config(tmp_path, input="in", stages=stages, on_duplicate_id="fail"),
                        {"output": str(tmp_path / "failed")}))
    assert not (tmp_path / "failed" / "kept").exists()
    stats = run(load_config(write_config(tmp_path, input="in", stages=stages, on_duplicate_id="suffix"),
                            {"output": str(tmp_path / "out")}))
    out = pl.concat([read_dir(tmp_path / "out" / "kept"), read_dir(tmp_path / "out" / "rejected")],
                    how="diagonal_relaxed")
    assert out.height == docs.height and out["id"].is_unique().all()
    assert out.filter(pl.col("id").str.ends_with("#2")).height == 30
    assert stats["duplicate_ids"]["count"] == 30 and stats["duplicate_ids"]["policy"] == "suffix"
