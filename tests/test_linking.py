"""Linking over partitions equals the single-process rule; the rounds resume after a kill; the manifest's journal
keeps a unit once recorded, ignores a torn line, and compacts to the same state."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from distributed import Client

from corpusslim.dedup import shuffle
from corpusslim.dedup.linking import (
    ANSWER_SCHEMA,
    PAIR_SCHEMA,
    Partitions,
    answer,
    cluster,
    earliest_roots,
    edges_to_partitions,
    jump,
    members,
    seed,
    targets,
)
from corpusslim.dedup.schedule import LinkRounds
from corpusslim.dedup.simulate import synthetic_pairs
from corpusslim.runtime import storage
from corpusslim.runtime.manifest import JOURNAL, MANIFEST, Manifest, read_manifest
from corpusslim.runtime.shard_io import read_checked, write_checked
from tests.conftest import output_bytes, write_config

NO_IDS = pl.DataFrame(schema={"root": pl.UInt64, "id": pl.String})


def _link_in_partitions(pairs: pl.DataFrame, partitions: Partitions) -> tuple[pl.DataFrame, int]:
    """The rounds the workers run, composed in one process: (doc, root, reason) and the number of rounds."""
    parts = range(len(partitions))
    routed = [edges_to_partitions(pairs.filter(pl.col("exact") == flag).select("a", "b"), flag, partitions)
              for flag in (True, False)]
    states = {p: seed(pl.concat([r[p] for r in routed])) for p in parts}
    rounds = 0
    while any(s["active"].any() for s in states.values()):
        asked = {p: partitions.split(targets(states[p]), "target") for p in parts}
        answers = {p: pl.concat([answer(states[q], asked[p][q]) for q in parts]) for p in parts}
        states = {p: jump(states[p], answers.get(p, pl.DataFrame(schema=ANSWER_SCHEMA)))[0] for p in parts}
        rounds += 1
    linked = pl.concat([members(states[p], NO_IDS) for p in parts]).select("doc", "root", "reason").sort("doc")
    return linked, rounds


def _reference(pairs: pl.DataFrame) -> pl.DataFrame:
    return cluster(pairs.filter(~pl.col("exact")).select("a", "b"), pairs.filter("exact").select("a", "b"))


def _key(shard: int, row: int) -> int:
    return shard << 32 | row


def _pairs(rows: list[tuple[int, int, bool]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={**PAIR_SCHEMA, "exact": pl.Boolean}, orient="row")


# Graphs with known answers, documents in many shards (the key's high half) so links cross partitions.
A, B, C, D, E = (_key(s, r) for s, r in ((0, 5), (3, 1), (7, 0), (9, 9), (12, 2)))
KNOWN = {
    "chain across shards": (_pairs([(B, A, False), (C, B, False), (D, C, True), (E, D, False)]),
                            {A: (A, None), B: (A, "near_dup"), C: (A, "near_dup"), D: (A, "near_dup"),
                             E: (A, "near_dup")}),
    "star of exact copies": (_pairs([(B, A, True), (C, A, True), (D, A, False)]),
                             {A: (A, None), B: (A, "exact_dup"), C: (A, "exact_dup"), D: (A, "near_dup")}),
    "cycle of equal-Jaccard pairs": (_pairs([(B, A, False), (C, B, False), (C, A, False)]),
                                     {A: (A, None), B: (A, "near_dup"), C: (A, "near_dup")}),
    "a later document never changes an earlier one": (_pairs([(C, A, False), (C, B, False), (D, C, True)]),
                                                      {A: (A, None), B: (B, None), C: (A, "near_dup"),
                                                       D: (A, "near_dup")}),
    "exact chain reaching the root": (_pairs([(B, A, True), (C, B, False), (D, A, True)]),
                                      {A: (A, None), B: (A, "exact_dup"), C: (A, "near_dup"), D: (A, "exact_dup")}),
}


@pytest.mark.parametrize("parts", [1, 2, 5])
@pytest.mark.parametrize("graph", list(KNOWN))
def test_known_graphs(graph, parts):
    pairs, expected = KNOWN[graph]
    partitions = Partitions.balanced({s: 1 for s in range(13)}, parts)
    linked, _ = _link_in_partitions(pairs, partitions)
    assert {d: (r, why) for d, r, why in linked.iter_rows()} == expected
    assert linked.equals(_reference(pairs))


@pytest.mark.parametrize("seed_", [0, 1, 2])
def test_random_graphs_equal_the_reference_in_log_rounds(seed_):
    """Chains, stars (half exact), cliques, random trees and long chains over 60 shards, in 1 to 7 partitions:
    the same links as the single-process rule, in about log2(longest chain) rounds."""
    long_chain = 300
    pairs = synthetic_pairs(6000, shards=60, seed=seed_, long_chain=long_chain)
    reference = _reference(pairs)
    for parts in (1, 3, 7):
        linked, rounds = _link_in_partitions(pairs, Partitions.balanced({s: 1 + s % 4 for s in range(60)}, parts))
        assert linked.equals(reference)
        assert rounds <= math.ceil(math.log2(long_chain)) + 1
    nodes, roots = earliest_roots(pairs["a"].to_numpy(), pairs["b"].to_numpy())
    assert reference["root"].to_list() == roots.tolist() and reference["doc"].to_list() == nodes.tolist()


def test_partitions_are_contiguous_shard_ranges_of_balanced_rows():
    partitions = Partitions.balanced({0: 10, 1: 10, 2: 10, 5: 10}, 2)
    assert partitions.starts == (0, 2)
    keys = pl.Series([_key(s, 7) for s in (0, 1, 2, 5)], dtype=pl.UInt64).to_numpy()
    assert partitions.of(keys).tolist() == [0, 0, 1, 1]
    assert len(Partitions.balanced({0: 1, 1: 1}, 5)) == 2  # never more partitions than shards


# -- the exchange between steps, and what the driver holds ------------------------------------------------------
@pytest.mark.parametrize("store", ["local", "object store"])
def test_a_receiver_reads_exactly_the_rows_each_sender_wrote_for_it(tmp_path, store):
    rows = pl.DataFrame({"a": pl.Series(range(10), dtype=pl.UInt64), "id": [f"d{i}" for i in range(10)]})
    step = str(tmp_path / "step") if store == "local" else f"memory://shuffle-{time.monotonic_ns()}/step"
    sent = shuffle.send({0: rows.head(3), 1: rows.clear(), 2: rows.tail(7)}, step, 0)
    assert sent == {"rows": 10, "bytes": storage.size(shuffle.path_of(step, 0))}
    assert shuffle.send({0: rows.clear(), 1: rows.slice(2, 2), 2: rows.clear()}, step, 1)["rows"] == 2
    assert [p.rows() for p in shuffle.received(step, 2, 0)] == [rows.head(3).rows(), []]
    assert shuffle.received_all(step, 2, 1, dict(rows.schema)).equals(rows.slice(2, 2))
    assert shuffle.received_all(step, 2, 2, dict(rows.schema)).equals(rows.tail(7))


class _Counting:
    """A Dask client that counts the tasks submitted through it."""

    def __init__(self, client: Client):
        self.client, self.submitted = client, 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return self.client.submit(*args, **kwargs)

    def map(self, func, *columns, **kwargs):
        self.submitted += len(columns[0])
        return self.client.map(func, *columns, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.slow
def test_each_step_is_one_task_per_partition(tmp_path):
    """The seed is a task per pair file and per partition, each round three tasks per partition (ask, answer,
    jump), the naming three: the driver never holds a future per pair of partitions (their square grew its
    memory), and the links equal the reference."""
    pairs, parts = synthetic_pairs(20_000, shards=60, seed=0, long_chain=300), 8
    files = [(write_checked(pairs.filter(pl.col("exact") == flag).select("a", "b"), str(tmp_path / f"{flag}.pq")),
              flag) for flag in (True, False)]
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        counting = _Counting(client)
        rounds = LinkRounds(counting, Manifest.open(str(tmp_path / "run"), "t"), str(tmp_path / "link"), "t",
                            lambda phase, futures: client.gather(futures))
        entry = rounds.seed(files, Partitions.balanced(dict.fromkeys(range(60), 1), parts), {})
        assert counting.submitted == len(files) + parts
        entry = rounds.settle(entry)
        assert counting.submitted == len(files) + parts + 3 * parts * entry["round"] and entry["round"] >= 8
        links, _ = rounds.name(entry, {})
        assert counting.submitted == len(files) + 4 * parts + 3 * parts * entry["round"]
    linked = pl.concat([read_checked(r).select("doc", "root", "reason") for r in links.values()]).sort("doc")
    assert linked.equals(_reference(pairs))


# -- the journal ------------------------------------------------------------------------------------------------
def test_a_recorded_unit_is_in_the_journal_not_a_rewritten_snapshot(tmp_path):
    manifest = Manifest.open(str(tmp_path), "h", meta={"m": 1})
    snapshot = (tmp_path / MANIFEST).read_bytes()
    for i in range(50):
        manifest.record("shards", f"s{i}", {"status": "done", "rows": {"kept": i}})
    assert (tmp_path / MANIFEST).read_bytes() == snapshot  # constant cost per unit: one appended line
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 50
    assert read_manifest(str(tmp_path))["sections"] == manifest.sections


def test_torn_last_line_is_ignored_and_reopening_compacts(tmp_path):
    manifest = Manifest.open(str(tmp_path), "h")
    manifest.record("map", "a", {"status": "done"})
    manifest.record("map", "b", {"status": "done"})
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(b'{"section":"map","key":"c","value":{"sta')  # killed mid-write: never durable
    assert set(read_manifest(str(tmp_path))["sections"]["map"]) == {"a", "b"}
    reopened = Manifest.open(str(tmp_path), "h")
    assert set(reopened.section("map")) == {"a", "b"}
    assert not (tmp_path / JOURNAL).exists() and json.loads((tmp_path / MANIFEST).read_text())["sections"] == {
        "map": {"a": {"status": "done"}, "b": {"status": "done"}}}


def test_compaction_gives_the_journal_state_even_when_replayed_twice(tmp_path):
    manifest = Manifest.open(str(tmp_path), "h")
    for i in range(30):
        manifest.record("reduce", f"t{i % 7}", {"n": i})
    manifest.forget("reduce")
    manifest.record("reduce", "t1", {"n": -1})
    manifest.record("link", "round-0001", {"moved": 3})
    journal = (tmp_path / JOURNAL).read_bytes()
    replayed = read_manifest(str(tmp_path))
    manifest.save()
    assert read_manifest(str(tmp_path)) == replayed
    (tmp_path / JOURNAL).write_bytes(journal)  # a crash after the snapshot was written, before the journal went
    assert read_manifest(str(tmp_path)) == replayed
    assert replayed["sections"] == {"reduce": {"t1": {"n": -1}}, "link": {"round-0001": {"moved": 3}}}


def test_on_an_object_store_each_unit_is_one_small_object(tmp_path):
    out = f"memory://journal-{time.monotonic_ns()}/run"
    manifest = Manifest.open(out, "h")
    for i in range(3):
        manifest.record("map", f"s{i}", {"status": "done"})
    assert storage.listdir(storage.join(out, JOURNAL)) == [f"{i:012d}.json" for i in range(3)]
    assert set(read_manifest(out)["sections"]["map"]) == {"s0", "s1", "s2"}
    assert set(Manifest.open(out, "h").section("map")) == {"s0", "s1", "s2"}
    assert storage.listdir(storage.join(out, JOURNAL)) == []


# -- the rounds on a cluster, killed ----------------------------------------------------------------------------
def _simulate(work, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "corpusslim.dedup.simulate", "--pairs", "300000", "--shards", "40",
           "--partitions", "3", "--workers", "1", "--work", str(work), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _rounds_recorded(work) -> list[str]:
    try:
        return sorted((read_manifest(str(work)) or {"sections": {}})["sections"].get("link", {}))
    except (OSError, ValueError):
        return []


def _links(work) -> pl.DataFrame:
    sections = read_manifest(str(work))["sections"]["link"]
    files = [r for k, v in sections.items() if k.startswith("links-") for r in v["files"].values()]
    return pl.concat([read_checked(r) for r in files]).sort("doc")


@pytest.mark.slow
def test_kill_during_a_round_then_rerun_gives_the_same_links(tmp_path):
    """SIGKILL the linking after its third round is recorded, tear the last recorded state file, rerun: the
    rerun resumes from an intact round and writes the links of an uninterrupted run (equal to the reference)."""
    whole = _simulate(tmp_path / "whole", "--check")
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    summary = json.loads(out.splitlines()[-1])
    assert summary["matches_reference"] and summary["rounds"] >= 10
    proc = _simulate(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while len(_rounds_recorded(tmp_path / "killed")) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    recorded = _rounds_recorded(tmp_path / "killed")
    assert 4 <= len(recorded) and not any(k.startswith("links-") for k in recorded), "kill was not inside a round"
    last = read_manifest(str(tmp_path / "killed"))["sections"]["link"][recorded[-1]]
    state = next(iter(last["states"].values()))["path"]
    with open(state, "r+b") as f:
        f.truncate(os.path.getsize(state) // 2)
    rerun = _simulate(tmp_path / "killed")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-2000:]
    assert json.loads(out.splitlines()[-1])["resumed_from"] == last["round"] - 1  # the last intact round
    assert _links(tmp_path / "killed").equals(_links(tmp_path / "whole"))


@pytest.mark.slow
def test_run_killed_while_linking_resumes_with_the_same_output(reference, tmp_path):
    """SIGKILL a whole run once its first linking round is recorded; the rerun resumes from that round (no
    reduce or verify again) and writes the uninterrupted run's bytes."""
    root, _ = reference
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(write_config(root)), "--output", str(out),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _rounds_recorded(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "round-0000" in _rounds_recorded(out) and output_bytes(out) != output_bytes(root / "out")
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "verify [" not in rerun.stderr and output_bytes(out) == output_bytes(root / "out")
