"""Reliability and security, fast cases (bench/faults.py runs the slow ones): a full disk, a killed worker, hostile
and malformed input. In every fault case the output equals the uninterrupted run's and nothing is lost."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import polars as pl
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from corpusslim.cli import main
from corpusslim.runtime.cluster import dask_client
from corpusslim.runtime.manifest import read_manifest
from tests.conftest import output_bytes, read_dir, run_cli_quarantining, write_config


def _limit_file_size(limit: int):
    def apply() -> None:
        os.setsid()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_is_a_clear_error_and_rerun_completes(reference, tmp_path):
    root, _ = reference
    out = tmp_path / "full"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(write_config(root)), "--output", str(out)]
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(150_000))
    assert failed.returncode != 0
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: ") and "its output is not recorded: cannot write" in message, message
    assert "File too large" in message and str(out) in message
    manifest = read_manifest(str(out)) or {"sections": {}}
    for stem, entry in manifest["sections"].get("shards", {}).items():  # nothing marked done is incomplete
        for d in ("kept", "rejected"):
            assert pq.ParquetFile(out / d / f"{stem}.parquet").metadata.num_rows == entry["rows"][d]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert output_bytes(out) == output_bytes(root / "out")


def _workers_of(pid: int) -> list[psutil.Process]:
    """The driver's Dask worker processes: those its multiprocessing forkserver forked (the server is the driver's
    child, corpusslim.runtime.cluster)."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.ppid() != pid and "forkserver" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:  # ended meanwhile
            continue
    return found


def test_worker_killed_mid_run(reference, tmp_path):
    root, _ = reference
    out = tmp_path / "worker-killed"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(write_config(root)), "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.monotonic() + 240, None
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        workers = _workers_of(proc.pid)
        if workers and (out / "_manifest.json").exists() and list((out / "_work" / "pre").glob("*.parquet")):
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)  # the nanny restarts it; its task runs again
        time.sleep(0.01)
    _, err = proc.communicate(timeout=300)
    assert killed is not None, "no worker was killed"
    assert proc.returncode == 0, err[-2000:]
    assert output_bytes(out) == output_bytes(root / "out")
    assert not list(out.rglob("*.tmp")), "a killed worker's temporary file was left behind"


def _write(path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_malformed_and_hostile_input(sample_input, tmp_path):
    bad = pa.Array.from_buffers(pa.string(), 2, pa.array([b"fine", b"bad \xed\xa0\x80 surrogate"]).buffers())
    _write(sample_input / "shard-001a.parquet", pa.table({"text": pa.array([1, 2, 3])}))          # wrong type
    _write(sample_input / "shard-001b.parquet", pa.table({"text": bad}))                           # invalid UTF-8
    _write(sample_input / "shard-001c.parquet", pa.table({"text": pa.array([], pa.string())}))     # zero rows
    nested = pa.ListArray.from_arrays(pa.array([0, 1, 2], pa.int32()), bad)
    _write(sample_input / "shard-001f.parquet", pa.table({"text": ["a", "b"], "tags": nested}))  # bad nested
    hostile = ["\u202eevil\u202c right-to-left override and zero\u200bwidth joiners in an English sentence here.",
               "Control \x00\x07\x1b[2J characters and a <script>alert(1)</script> tag in the middle of text.",
               "שלום עולם זהו טקסט בעברית מימין לשמאל עם מספרים 123 וסימנים."]
    _write(sample_input / "shard-001d.parquet", pa.table({"id": pa.array([7, 8, 9]), "text": hostile,
                                                         "extra": pa.array([1.5, None, 2.5])}))  # other schema
    _write(sample_input / "shard-001g.parquet",  # dictionary-encoded text (a pandas categorical): decoded
           pa.table({"text": pa.array(["A categorical text column is decoded.", "Second row."]).dictionary_encode()}))
    taken = pl.read_parquet(sample_input / "shard-000.parquet")["id"][0]
    pl.DataFrame({"id": [taken], "text": ["A repeated id from another shard."]}) \
        .write_parquet(sample_input / "shard-001e.parquet")
    result, stats, errors = run_cli_quarantining(tmp_path)
    assert set(errors) == {"shard-001a", "shard-001b", "shard-001f"}
    assert "column 'tags' is not valid" in errors["shard-001f"]
    assert "'text' must be a string column, found int64" in errors["shard-001a"]
    assert "row 1: 'text' is not valid UTF-8" in errors["shard-001b"]
    assert stats["duplicate_ids"] == {"count": 1, "examples": [taken]}
    assert "1 ids appear on more than one input row" in result.output
    kept, rejected = read_dir(tmp_path / "out/kept"), read_dir(tmp_path / "out/rejected")
    assert stats["totals"]["docs_in"] == 4845 + 3 + 1 + 2 == kept.height + rejected.height
    mine = pl.concat([kept, rejected], how="diagonal_relaxed").filter(pl.col("id").is_in(["7", "8", "9"]))
    assert sorted(mine["text"].to_list()) == sorted(hostile)  # text kept byte for byte, whatever it holds
    assert pq.ParquetFile(tmp_path / "out/kept/shard-001c.parquet").metadata.num_rows == 0


@pytest.mark.slow
def test_empty_glob_and_dashboard_on_loopback(tmp_path):
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path, input="nothing/*.parquet"))])
    assert result.exit_code != 0 and "no input files (Parquet or JSON Lines) match" in result.output
    with dask_client(workers=1) as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert client.dashboard_link is None or "127.0.0.1" in client.dashboard_link


def test_nothing_read_is_executed_or_unpickled():
    """Input and config are data: no eval/exec, no pickle, no unsafe YAML or numpy pickles anywhere in the code
    that reads them (static scan of pipeline/ and filters/)."""
    import re
    from pathlib import Path

    # builtin eval/exec (not a method of that name, such as polars' ``list.eval``)
    forbidden = re.compile(r"(?<![.\w])(eval|exec)\(|pickle\.loads?\(|yaml\.(unsafe_)?load\(|allow_pickle=True|"
                           r"yaml\.Loader\b|marshal\.loads?\(")
    root = Path(__file__).resolve().parents[1]
    hits = [f"{p.relative_to(root)}:{i}: {line.strip()}"
            for d in ("pipeline", "filters") for p in (root / d).rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if forbidden.search(line)]
    assert hits == []
