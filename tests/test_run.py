"""The batch job on a local Dask cluster: conservation, determinism, resume after SIGKILL, bad shards, conflicts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from click.testing import CliRunner

from corpusslim.cli import main
from corpusslim.config import load_config
from corpusslim.errors import OutputConflictError
from corpusslim.registry import all_reasons
from corpusslim.runtime.manifest import read_manifest
from corpusslim.runtime.runner import run
from tests.conftest import output_bytes, read_dir, run_cli_quarantining, write_config


def test_conservation(reference):
    root, stats = reference
    inputs = {p.stem: pl.read_parquet(p) for p in sorted((root / "input").glob("*.parquet"))}
    all_ids = []
    for stem, df in inputs.items():
        kept = pl.read_parquet(root / "out/kept" / f"{stem}.parquet")
        rejected = pl.read_parquet(root / "out/rejected" / f"{stem}.parquet")
        assert df.height == kept.height + rejected.height, stem
        assert sorted(df["id"]) == sorted(kept["id"].to_list() + rejected["id"].to_list()), stem
        texts = dict(zip(df["id"], df["text"]))
        assert all(texts[i] == t for i, t in zip(kept["id"], kept["text"])), "kept text was modified"
        all_ids += kept["id"].to_list() + rejected["id"].to_list()
    assert len(all_ids) == len(set(all_ids)) == sum(df.height for df in inputs.values())
    assert stats["totals"]["docs_in"] == len(all_ids)
    assert stats["totals"]["docs_kept"] + stats["totals"]["docs_rejected"] == len(all_ids)


def test_every_rejection_has_a_documented_reason(reference):
    root, stats = reference
    rejected = read_dir(root / "out/rejected")
    assert rejected.height > 0
    assert rejected["reject_stage"].null_count() == 0 and rejected["reject_reason"].null_count() == 0
    assert set(rejected["reject_reason"]) <= set(all_reasons())
    assert set(rejected["reject_stage"]) == {"lid", "dedup", "quality"}
    for stage in stats["stages"]:
        mine = rejected.filter(pl.col("reject_stage") == stage["stage"]).group_by("reject_reason").len()
        assert {r: v["docs"] for r, v in stage["removed"].items()} == dict(mine.iter_rows()), stage["stage"]


def test_output_columns_and_annotations(reference):
    root, _ = reference
    kept, rejected = read_dir(root / "out/kept"), read_dir(root / "out/rejected")
    for column in ("id", "text", "source", "n_tokens", "lang", "lang_score", "lid_method", "seg", "n_words",
                   "dup_of", "dup_cluster", "quality", "quality_reason"):
        assert column in kept.columns and column in rejected.columns
    assert set(kept["lang"]) == {"en", "zh"}
    assert kept["n_tokens"].min() > 0
    # Other-language sentences of the sample are removed; segmentation only on Chinese.
    assert kept.filter(pl.col("source").str.starts_with("lid_")).height == 0
    assert kept.filter(pl.col("lang") == "zh")["seg"].null_count() == 0
    assert kept.filter(pl.col("lang") == "en")["seg"].null_count() == kept.filter(pl.col("lang") == "en").height
    # The BBC set's natural duplicates are removed, each pointing at a document that was there before it.
    dups = rejected.filter(pl.col("reject_stage") == "dedup")
    assert dups.filter(pl.col("source") == "en_bbc_news").height >= 100
    all_ids = set(kept["id"]) | set(rejected["id"])
    assert set(dups["dup_of"]) <= all_ids and (dups["dup_of"] == dups["dup_cluster"]).all()
    # Chinese documents are judged by Chinese rules, never by the word-based English ones.
    zh_quality = rejected.filter((pl.col("reject_stage") == "quality") & (pl.col("lang") == "zh"))
    assert zh_quality.height > 0 and zh_quality["reject_reason"].str.starts_with("zh_").all()


def test_stats_file(reference):
    root, stats = reference
    on_disk = json.loads((root / "out/stats.json").read_text())
    assert on_disk["totals"]["docs_in"] == stats["totals"]["docs_in"] == 4845
    assert [b["batch"] for b in on_disk["batches"]] == list(range(6))
    for stage in on_disk["stages"]:
        removed = sum(r["docs"] for r in stage["removed"].values())
        assert stage["docs_in"] == stage["docs_out"] + removed
        assert stage["cpu_seconds"] > 0


def test_ledger(reference):
    root, stats = reference
    ledger = pl.read_parquet(root / "out/ledger.parquet")
    assert ledger["batch"].to_list() == list(range(6))
    assert ledger["raw_docs"].sum() == stats["totals"]["docs_in"]
    assert ledger["raw_tokens"].sum() == stats["totals"]["tokens_in"]
    assert ledger["new_unique_tokens"].sum() == stats["totals"]["tokens_kept"]
    kept = [pl.read_parquet(root / "out/kept" / f"shard-{b:03d}.parquet")["n_tokens"].sum() for b in range(6)]
    assert ledger["new_unique_tokens"].to_list() == kept
    assert (ledger["cum_unique_tokens"].diff().drop_nulls() >= 0).all()
    assert ledger["cum_raw_tokens"][-1] == stats["totals"]["tokens_in"]
    cpu = ledger["cpu_seconds"] + ledger["startup_cpu_seconds"]
    assert (ledger["cpu_usd"] - cpu / 3600 * 0.0425).abs().max() < 1e-12 and ledger["cost_usd"].min() > 0
    assert cpu.sum() == pytest.approx(stats["totals"]["cpu_seconds"], rel=1e-3)
    assert ledger["startup_cpu_seconds"].n_unique() == 1 and ledger["startup_cpu_seconds"][0] > 0
    for stage in ("lid", "segment", "dedup", "quality"):
        docs_out = next(s["docs_out"] for s in stats["stages"] if s["stage"] == stage)
        assert ledger[f"docs_after_{stage}"].sum() == docs_out


def test_one_worker_same_bytes_as_two(reference, tmp_path):
    root, _ = reference
    run(load_config(write_config(root), {"workers": 1, "output": str(tmp_path / "one")}))
    assert output_bytes(tmp_path / "one") == output_bytes(root / "out")


def _recorded(out, section: str) -> int:
    try:
        units = (read_manifest(str(out)) or {"sections": {}})["sections"].get(section, {})
    except (OSError, ValueError):
        return 0
    return sum(1 for u in units.values() if u.get("status", "done") == "done")


@pytest.mark.parametrize("section", ["map", "reduce", "shards"])
def test_sigkill_then_rerun_gives_same_output(reference, tmp_path, section):
    """Kill the driver and its workers once the phase has recorded its first unit, then rerun the same command."""
    root, _ = reference
    config = write_config(root)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(config), "--output", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while _recorded(out, section) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _recorded(out, section) > 0 and _recorded(out, "shards") < 6, "kill point was not inside the phase"
    assert output_bytes(out) != output_bytes(root / "out")
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert output_bytes(out) == output_bytes(root / "out")
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["torn output", "torn index", "torn index of a finished run"])
def test_torn_file_is_redone(reference, tmp_path, damage):
    """A truncated output file, or a truncated index file (band keys and signatures, detected by its checksum),
    is rebuilt on rerun, never used; the result equals the uninterrupted run."""
    root, _ = reference
    out = tmp_path / "torn"
    cfg = load_config(write_config(root), {"output": str(out), "workers": 1})
    run(cfg)
    victim = out / ("kept/shard-003.parquet" if damage == "torn output" else "index/shard-001.parquet")
    intact = victim.read_bytes()
    victim.write_bytes(intact[:-200])
    if damage == "torn index":
        (out / "kept" / "shard-004.parquet").unlink()  # a shard to redo, so the index is read again
    stats = run(cfg)
    assert output_bytes(out) == output_bytes(root / "out")
    assert stats["shards"]["done"] == 6
    if damage != "torn output":  # the index is rebuilt as it was (later --against runs read it)
        assert victim.read_bytes() == intact


def _add_bad_shards(input_dir):
    (input_dir / "shard-002a.parquet").write_bytes(b"this is not parquet at all")
    pl.DataFrame({"id": ["a", "b"], "body": ["x", "y"]}).write_parquet(input_dir / "shard-002b.parquet")
    good = pl.read_parquet(input_dir / "shard-001.parquet")
    good.write_parquet(input_dir / "shard-002c.parquet")
    data = (input_dir / "shard-002c.parquet").read_bytes()
    (input_dir / "shard-002c.parquet").write_bytes(data[: len(data) // 2])  # truncated


def test_bad_shards_quarantined_rest_completes(sample_input, tmp_path):
    _add_bad_shards(sample_input)
    result, stats, bad = run_cli_quarantining(tmp_path)
    assert set(bad) == {"shard-002a", "shard-002b", "shard-002c"}
    assert "shard-002a.parquet: not a readable Parquet file" in bad["shard-002a"]
    assert "no 'text' column (columns: id, body)" in bad["shard-002b"]
    assert "shard-002c.parquet" in bad["shard-002c"]
    assert stats["shards"]["done"] == 6 and stats["totals"]["docs_in"] == 4845
    assert "QUARANTINED" in result.output and "shard-002b.parquet" in result.output


def test_bad_shard_fail_policy(sample_input, tmp_path):
    _add_bad_shards(sample_input)
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path, on_bad_shard="fail"))])
    assert result.exit_code != 0
    assert "shard-002" in result.output


@pytest.mark.slow
def test_bad_documents_rejected_not_lost(tmp_path):
    (tmp_path / "input").mkdir()
    texts = ["The council approved the new budget on Monday after a long debate about schools and roads.",
             None, "", "   \n ", "x" * 5000]
    pl.DataFrame({"text": texts}).write_parquet(tmp_path / "input/part.parquet")
    run(load_config(write_config(tmp_path, limits={"max_doc_chars": 4000}, stages=[{"kind": "lid"}])))
    kept = pl.read_parquet(tmp_path / "out/kept/part.parquet")
    rejected = pl.read_parquet(tmp_path / "out/rejected/part.parquet")
    assert kept["id"].to_list() == ["part:0"]
    assert dict(zip(rejected["id"], rejected["reject_reason"])) == {
        "part:1": "null_text", "part:2": "empty_text", "part:3": "empty_text", "part:4": "too_long"}
    assert set(rejected["reject_stage"]) == {"input"}


def test_other_config_in_same_output_refused(reference, tmp_path):
    root, _ = reference
    out = tmp_path / "shared-out"
    run(load_config(write_config(root), {"output": str(out), "workers": 1}))
    other = load_config(write_config(root, stages=[{"kind": "lid", "languages": ["en"]}]),
                        {"output": str(out), "workers": 1})
    with pytest.raises(OutputConflictError, match="holds a run of another config"):
        run(other)
    stats = run(other, force=True)
    assert set(read_dir(out / "kept")["lang"]) == {"en"} and stats["shards"]["done"] == 6
    assert json.loads((out / "_manifest.json").read_text())["config_hash"] == other.config_hash()


def test_cli_help_and_exit_status(tmp_path):
    runner = CliRunner()
    for args in (["--help"], ["run", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage" in result.output
    result = runner.invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert result.exit_code != 0 and "cannot read config" in result.output


def test_temporaries_of_a_killed_run_are_removed(tmp_path):
    from corpusslim.runtime.shard_io import remove_temporaries

    for rel in ("_manifest.json.ab12.tmp", "kept/.shard-000.parquet.cd34.tmp", "_work/pre/.x.parquet.ef.tmp",
                "kept/shard-000.parquet"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    remove_temporaries(str(tmp_path))
    left = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert left == ["kept/shard-000.parquet"]


def test_shard_inserted_before_rerun(reference, tmp_path):
    """A shard that arrives between two invocations and sorts among the others renumbers the later shards: their
    dedup keys are rebuilt and the result equals one run over all shards."""
    import shutil

    root, _ = reference
    (tmp_path / "input").mkdir()
    for shard in sorted((root / "input").glob("*.parquet")):
        if shard.name != "shard-002.parquet":
            shutil.copy(shard, tmp_path / "input" / shard.name)
    cfg = load_config(write_config(tmp_path))
    run(cfg)
    shutil.copy(root / "input" / "shard-002.parquet", tmp_path / "input" / "shard-002.parquet")
    stats = run(cfg)
    assert stats["shards"]["done"] == 6
    assert output_bytes(tmp_path / "out") == output_bytes(root / "out")


def test_shard_removed_before_rerun(reference, tmp_path):
    """A shard deleted from the input between two invocations leaves nothing behind: its outputs are deleted
    (reported), and the rest equals one run over the remaining shards."""
    import shutil

    root, _ = reference
    for name in ("a", "b"):
        shutil.copytree(root / "input", tmp_path / name / "input")
    first = load_config(write_config(tmp_path / "a"))
    run(first)
    (tmp_path / "a" / "input" / "shard-002.parquet").unlink()
    (tmp_path / "b" / "input" / "shard-002.parquet").unlink()
    stats = run(first)
    assert stats["removed_shards"] == ["shard-002"]
    assert not list((tmp_path / "a" / "out").rglob("shard-002.parquet"))
    run(load_config(write_config(tmp_path / "b")))
    assert output_bytes(tmp_path / "a" / "out") == output_bytes(tmp_path / "b" / "out")
