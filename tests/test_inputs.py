"""The input: every format reads the same documents, trees keep their relative paths, big Parquet files are cut
into parts, user column names come back in the outputs, and a malformed line is named."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusslim.config import load_config
from corpusslim.errors import ConfigError, ShardInputError
from corpusslim.runtime.inputs import Columns, discover_shards, needs_split, read_shard, split_jsonl, split_units
from corpusslim.runtime.runner import run
from tests.conftest import SAMPLE, read_dir, write_config

DOCS = pl.read_parquet(SAMPLE / "shard-000.parquet").head(60)


def _write_jsonl(df: pl.DataFrame, path: Path, compression: str | None = None) -> None:
    data = df.write_ndjson().encode()
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("name, compression", [("d.jsonl", None), ("d.JSONL.GZ", "gzip"), ("d.jsonl.zst", "zstd"),
                                               ("d.json.gz", "gzip")])
def test_every_format_reads_the_same_documents(tmp_path, name, compression):
    docs = DOCS.with_columns(meta=pl.struct(source=pl.col("source"), n=pl.col("text").str.len_chars()))
    docs.write_parquet(tmp_path / "ref.parquet")
    _write_jsonl(docs, tmp_path / "in" / name, compression)
    [shard] = discover_shards(str(tmp_path / "in"))
    assert shard.stem == "d" and shard.compression == compression
    got, want = read_shard(shard), read_shard(discover_shards(str(tmp_path / "ref.parquet"))[0])
    assert got.to_dicts() == want.to_dicts()  # nested metadata included


def test_a_malformed_line_is_named(tmp_path):
    lines = [json.dumps({"text": "fine"}), '{"text": "broken', json.dumps({"text": "fine"})]
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(ShardInputError, match=r"bad\.jsonl\.gz: line 2: not valid JSON"):
        read_shard(discover_shards(str(tmp_path / "bad.jsonl.gz"))[0])
    (tmp_path / "list.jsonl").write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(ShardInputError, match=r"list\.jsonl: line 2: a JSON object was expected"):
        read_shard(discover_shards(str(tmp_path / "list.jsonl"))[0])


def test_trees_keep_relative_paths_in_sorted_order(tmp_path):
    for dump in ("CC-2024", "CC-2023"):
        (tmp_path / "data" / dump).mkdir(parents=True)
        DOCS.head(3).write_parquet(tmp_path / "data" / dump / "000_00000.parquet")
    DOCS.head(2).write_parquet(tmp_path / "data" / "CC-2023" / "001.PARQUET")
    (tmp_path / "data" / "README.md").write_text("not input")
    stems = [s.stem for s in discover_shards(str(tmp_path / "data"))]
    assert stems == ["CC-2023/000_00000", "CC-2023/001", "CC-2024/000_00000"]
    assert [s.stem for s in discover_shards(str(tmp_path / "data/**/000_*.parquet"))] == [
        "CC-2023/000_00000", "CC-2024/000_00000"]
    _write_jsonl(DOCS.head(2), tmp_path / "data" / "CC-2023" / "001.jsonl")
    with pytest.raises(ConfigError, match="would write the same output"):
        discover_shards(str(tmp_path / "data"))


def test_big_parquet_files_are_cut_at_row_groups(tmp_path):
    whole = pl.read_parquet(SAMPLE / "shard-000.parquet")
    pq.write_table(whole.to_arrow(), tmp_path / "big.parquet", row_group_size=100)
    parts = discover_shards(str(tmp_path / "big.parquet"), chunk_rows=250)
    assert [p.rows for p in parts][:2] == [(0, 200), (200, 400)] and parts[-1].rows[1] == whole.height
    assert [p.stem for p in parts[:2]] == ["big.part-00000", "big.part-00001"]
    read = pl.concat([read_shard(p) for p in parts])
    assert read.equals(read_shard(discover_shards(str(tmp_path / "big.parquet"))[0]))
    nothing_to_cut = discover_shards(str(tmp_path / "big.parquet"), chunk_rows=10**6, chunk_mb=1e3)
    assert [(p.stem, p.rows) for p in nothing_to_cut] == [("big", None)]


def test_named_columns_and_derived_ids(tmp_path):
    df = DOCS.head(5).rename({"text": "content", "id": "doc_id"}).with_columns(
        doc_id=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("doc_id")))
    df.write_parquet(tmp_path / "c.parquet")
    [shard] = discover_shards(str(tmp_path / "c.parquet"), columns=Columns(text="content", id="doc_id"))
    read = read_shard(shard)
    assert read["text"].to_list() == df["content"].to_list() and read["id"][1] == "c:1"
    with pytest.raises(ShardInputError, match="no 'text' column .* set text_column"):
        read_shard(discover_shards(str(tmp_path / "c.parquet"))[0])


@pytest.mark.slow
def test_jsonl_gz_with_named_columns_gives_the_parquet_run_in_dolma_form(tmp_path):
    stages = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "segment"}, {"kind": "dedup"}]
    (tmp_path / "pq").mkdir()
    for shard in sorted(SAMPLE.glob("shard-00[01].parquet")):
        df = pl.read_parquet(shard)
        df.write_parquet(tmp_path / "pq" / shard.name)
        renamed = df.rename({"text": "content", "id": "doc_id"})
        _write_jsonl(renamed, tmp_path / "js" / f"{shard.stem}.jsonl.gz", "gzip")
    run(load_config(write_config(tmp_path, stages=stages),
                    {"input": str(tmp_path / "pq"), "output": str(tmp_path / "a")}))
    cfg = load_config(write_config(tmp_path, stages=stages, text_column="content", id_column="doc_id",
                                   output_format="jsonl.gz"),
                      {"input": str(tmp_path / "js"), "output": str(tmp_path / "b")})
    run(cfg)
    for directory in ("kept", "rejected"):
        want = read_dir(tmp_path / "a" / directory).sort("id")
        got = pl.concat([pl.read_ndjson(gzip.decompress(p.read_bytes()))
                         for p in sorted((tmp_path / "b" / directory).glob("*.jsonl.gz"))], how="diagonal_relaxed")
        got = got.rename({"content": "text", "doc_id": "id"}).sort("id")
        assert got["id"].to_list() == want["id"].to_list()
        assert got["text"].to_list() == want["text"].to_list()
        if directory == "rejected":
            assert got["reject_reason"].to_list() == want["reject_reason"].to_list()


@pytest.mark.slow
def test_one_big_file_equals_the_same_documents_in_many_shards(tmp_path):
    """Cut into parts that run as separate tasks, one file gives the kept and rejected documents of the same
    documents split into six shards (same arrival order)."""
    (tmp_path / "big").mkdir()
    whole = pl.concat([pl.read_parquet(p) for p in sorted(SAMPLE.glob("*.parquet"))], how="diagonal_relaxed")
    pq.write_table(whole.to_arrow(), tmp_path / "big" / "all.parquet", row_group_size=400)
    small = load_config(write_config(tmp_path), {"input": str(SAMPLE), "output": str(tmp_path / "small")})
    big = load_config(write_config(tmp_path, limits={"chunk_rows": 1000}),
                      {"input": str(tmp_path / "big"), "output": str(tmp_path / "bigout")})
    run(small)
    stats = run(big)
    assert stats["shards"]["done"] == len(list((tmp_path / "bigout" / "kept").glob("all.part-*.parquet"))) > 4
    for directory in ("kept", "rejected"):
        a, b = read_dir(tmp_path / "small" / directory), read_dir(tmp_path / "bigout" / directory)
        assert b.sort("id").equals(a.select(b.columns).sort("id"))


def test_big_json_lines_files_are_split_into_parquet_parts(tmp_path):
    docs = pl.read_parquet(SAMPLE / "shard-001.parquet").drop("id")  # ids derived from the file and row
    _write_jsonl(docs, tmp_path / "in" / "web.jsonl.gz", "gzip")
    [file] = discover_shards(str(tmp_path / "in"))
    assert needs_split(file, chunk_mb=0.01) and not needs_split(file, chunk_mb=1e3)
    result = split_jsonl(file, 300, None, str(tmp_path / "work"))
    assert [p["offset"] for p in result["parts"]] == list(range(0, docs.height, 300))
    parts = split_units(file, result["parts"])
    assert [p.stem for p in parts[:2]] == ["web.part-00000", "web.part-00001"]
    assert pl.concat([read_shard(p) for p in parts]).equals(read_shard(file))


@pytest.mark.slow
def test_split_json_lines_run_equals_the_parquet_run(tmp_path):
    stages = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "segment"}, {"kind": "dedup"}]
    (tmp_path / "pq").mkdir()
    docs = pl.concat([pl.read_parquet(p) for p in sorted(SAMPLE.glob("shard-00[12].parquet"))])
    docs.write_parquet(tmp_path / "pq" / "web.parquet")
    _write_jsonl(docs, tmp_path / "js" / "web.jsonl.zst", "zstd")
    run(load_config(write_config(tmp_path, stages=stages, limits={"chunk_rows": None, "chunk_mb": None}),
                    {"input": str(tmp_path / "pq"), "output": str(tmp_path / "a")}))
    split = load_config(write_config(tmp_path, stages=stages, limits={"chunk_rows": 500, "chunk_mb": 0.05}),
                        {"input": str(tmp_path / "js"), "output": str(tmp_path / "b")})
    stats = run(split)
    assert stats["shards"]["done"] == len(list((tmp_path / "b" / "kept").glob("web.part-*.parquet"))) >= 3
    assert not (tmp_path / "b" / "_work").exists()
    for directory in ("kept", "rejected"):
        a, b = read_dir(tmp_path / "a" / directory), read_dir(tmp_path / "b" / directory)
        assert b.sort("id").equals(a.select(b.columns).sort("id"))
    assert run(split)["shards"]["done"] == stats["shards"]["done"]  # a rerun finds every part done


@pytest.mark.slow
def test_a_kill_inside_a_split_file_resumes_by_part_with_identical_output(tmp_path):
    """Kill the job once some parts of one big JSON Lines file are done; the rerun redoes only what is missing and
    writes what an uninterrupted run writes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from corpusslim.runtime.manifest import read_manifest
    from tests.conftest import output_bytes

    docs = pl.concat([pl.read_parquet(p) for p in sorted(SAMPLE.glob("*.parquet"))], how="diagonal_relaxed")
    _write_jsonl(docs, tmp_path / "in" / "all.jsonl.gz", "gzip")
    stages = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "dedup"}]
    config = write_config(tmp_path, input="in", stages=stages, workers=1,
                          limits={"chunk_rows": 400, "chunk_mb": 0.01})
    run(load_config(config, {"output": str(tmp_path / "whole")}))

    def done(out) -> int:
        try:
            shards = (read_manifest(str(out)) or {"sections": {}})["sections"].get("shards", {})
        except (OSError, ValueError):
            return 0
        return sum(1 for u in shards.values() if u.get("status") == "done")

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(config), "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    parts = len(list((tmp_path / "whole" / "kept").glob("all.part-*.parquet")))
    assert 2 <= done(out) < parts, "the kill point was not inside the file's parts"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert output_bytes(out) == output_bytes(tmp_path / "whole")
