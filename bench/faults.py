"""Fault-injection bench (issue 8, the slow cases; tests/test_faults.py and tests/test_run.py run the fast ones).

    python bench/faults.py                     # everything (about 25 minutes on the shared 2-core machine)
    python bench/faults.py --kill-points 30    # more driver kill points
    python bench/faults.py --quick             # a few cases per section (a few minutes)
    python bench/faults.py --only kill,torn    # sections: kill, worker, disk, torn, input, insert

Every case runs the real command, ``python -m corpusslim.cli run CONFIG --output DIR --workers 2``, as a separate
process in its own session, over a copy of ``sample_data/`` (6 shards) with the stages of ``configs/sample.yaml``
(lid, segment, dedup, quality). Generated data and run directories: ``--work-dir`` (/tmp/corpusslim-bench/faults).

1. Reference: one uninterrupted run: kept/ + rejected/ bytes, the id multiset per shard, and the time at which
   every unit of every phase was recorded (used to place the random kill points).
2. ``kill``: the driver and its workers (the whole process group) SIGKILLed at ``--kill-points`` points spread over
   every phase, detected by polling ``_manifest.json`` and the files of the run (stats.json, report/): after k map
   units, after k reduce units, between reduce and clusters (verify, duplicate ids, cluster), right after the
   clusters are recorded, after k apply units, after stats.json / while report/ is written, and at random delays
   (between the reference run's first map files and its end).
   Some points kill the rerun as well (when it records its first new unit) before the final rerun. Then the same
   command is rerun to completion. Pass: exit 0, kept/ + rejected/ byte-identical to the reference, every input
   id exactly once per shard across kept + rejected, no ``*.tmp`` left, every shard done in the manifest.
3. ``worker``: one (or every) Dask worker process (the processes the driver's multiprocessing forkserver forked)
   SIGKILLed mid-phase; the nanny restarts it and its task reruns. Pass: exit 0 and identical.
4. ``disk``: RLIMIT_FSIZE (a write past the limit fails with EFBIG, SIGXFSZ ignored) on the whole process tree
   from the start (preexec_fn), on the workers only from the moment the clusters are recorded (apply writes fail),
   or on the driver only (its manifest, stats and report writes fail). Expected: exit status non-zero, a one-line
   error (``Error: … cannot write …: File too large``, no traceback), no shard marked done in the manifest whose
   kept/rejected files do not hold the recorded rows; then a rerun without the limit gives identical output.
5. ``torn``: after a run killed in reduce or apply (or after a finished run), intermediate files are truncated
   (``_work/candidates/*.parquet``, ``index/*.parquet``, ``_work/pre/*.parquet``, ``_work/clusters.parquet``,
   a final output); the rerun must detect them (checksums) and rebuild: exit 0, identical output.
6. ``input``: the bad inputs of issue 8, as extra shards sorted after the six good ones (so the good shards' output
   must still equal the reference): what happened to each (quarantined with its message, rejected with a reason,
   processed), documents lost and duplicated among the readable ones, text kept byte for byte; separate runs for
   a nested column with invalid UTF-8, ``on_bad_shard: fail``, a 20 MB document actually processed (limit
   raised), an empty glob, and an output directory holding another config's run (refused, then ``--force``).
7. ``insert``: a shard whose name sorts among already-mapped shards added between a kill and the rerun; compared
   with a fresh run over the new input.

Writes ``bench/results/faults.json`` (every case with its details) and ``bench/results/faults.md`` (the table,
also printed). Exit status 1 when any case fails.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from corpusslim.runtime.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
RESULTS = REPO / "bench" / "results"
POLL = 0.005
RUN_TIMEOUT = 900


# ---------------------------------------------------------------------------------------------------------------
# Run directory state and checks


@dataclass
class State:
    manifest: bool = False
    map: int = 0
    reduce: int = 0
    clusters: bool = False
    shards: int = 0
    quarantined: int = 0
    work: bool = False
    stats: bool = False        # written by this invocation (mtime >= its start)
    ledger: bool = False
    report_dir: bool = False
    html: bool = False
    summary: bool = False
    manifest_bytes: int = 0

    def units(self) -> int:
        return self.map + self.reduce + int(self.clusters) + self.shards + self.quarantined

    def phase(self, n_shards: int, n_reduce: int) -> str:
        if not self.manifest:
            return "map" if self.work else "startup"
        if self.map + self.quarantined < n_shards:
            return "map"
        if not self.clusters and self.shards < n_shards:
            return "reduce" if self.reduce < n_reduce else "verify/cluster"
        if self.shards + self.quarantined < n_shards:
            return "apply"
        if not self.summary:
            return "report"
        return "finished"

    def short(self) -> str:
        return (f"map {self.map}, reduce {self.reduce}, clusters {'yes' if self.clusters else 'no'}, "
                f"shards done {self.shards}, stats.json {'yes' if self.stats else 'no'}, "
                f"report/index.html {'yes' if self.html else 'no'}")


def _fresh(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def read_state(out: Path, since: float = 0.0) -> State:
    s = State()
    path = out / "_manifest.json"
    try:
        raw = path.read_bytes()
        m = read_manifest(str(out))  # the snapshot and its journal: a short run rewrites the snapshot only at its end
    except (OSError, ValueError):
        m = None
    if m:
        s.manifest, s.manifest_bytes = True, len(raw)
        sec = m.get("sections", {})
        s.map = sum(1 for u in sec.get("map", {}).values() if u.get("status", "done") == "done")
        s.reduce = len(sec.get("reduce", {}))
        s.clusters = "all" in sec.get("clusters", {})
        s.shards = sum(1 for u in sec.get("shards", {}).values() if u.get("status") == "done")
        s.quarantined = sum(1 for u in sec.get("shards", {}).values() if u.get("status") == "quarantined")
    s.work = (out / "_work").exists() or (out / "index").exists()
    s.stats = _fresh(out / "stats.json", since)
    s.ledger = _fresh(out / "ledger.parquet", since)
    s.report_dir = _fresh(out / "report", since)
    s.html = _fresh(out / "report" / "index.html", since)
    s.summary = _fresh(out / "report" / "summary.json", since)
    return s


def output_bytes(out: Path) -> dict[str, bytes]:
    return {f"{d}/{p.name}": p.read_bytes() for d in ("kept", "rejected") for p in sorted((out / d).glob("*"))}


def input_ids(path: Path) -> list[str]:
    """The ids the pipeline gives the rows of an input shard (``id`` as a string, else ``<stem>:<row>``)."""
    stem = path.name.removesuffix(".parquet")
    f = pq.ParquetFile(path)
    derived = [f"{stem}:{i}" for i in range(f.metadata.num_rows)]
    if "id" not in f.schema_arrow.names:
        return derived
    ids = pl.from_arrow(f.read(columns=["id"])).get_column("id").cast(pl.String).to_list()
    return [i if i is not None else d for i, d in zip(ids, derived)]


OUTPUT_COLUMNS = ("id", "text", "reject_stage", "reject_reason")


def output_frame(out: Path, stem: str) -> pl.DataFrame | None:
    """id, text, reject_stage, reject_reason of a shard's kept + rejected files (other columns are not read, so a
    carried-through column holding bytes polars refuses cannot hide the ids)."""
    frames = []
    for d in ("kept", "rejected"):
        p = out / d / f"{stem}.parquet"
        if p.exists():
            f = pq.ParquetFile(p)
            cols = [c for c in OUTPUT_COLUMNS if c in f.schema_arrow.names]
            frames.append(pl.from_arrow(f.read(columns=cols)))
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def synthetic_docs(input_dir: Path, n: int, seed: int = 7) -> list[str]:
    """English-looking documents of random words drawn from the sample's English text: no 5-gram in common with
    it, so they duplicate none of its documents (a later duplicate would change the annotations of its root)."""
    df = pl.read_parquet(input_dir / "shard-003.parquet")
    words = " ".join(df.filter(pl.col("source").str.starts_with("en_"))["text"].to_list()).split()
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(10, 20))).capitalize() + "."
                     for _ in range(8)]
        docs.append(" ".join(sentences))
    return docs


def conservation(out: Path, inputs: dict[str, list[str]]) -> tuple[int, int, list[str]]:
    """Documents lost and duplicated across kept + rejected, per shard, against the input id multisets."""
    lost = dup = 0
    notes = []
    for stem, ids in inputs.items():
        df = output_frame(out, stem)
        got = Counter(df["id"].to_list()) if df is not None else Counter()
        want = Counter(ids)
        missing, extra = sum((want - got).values()), sum((got - want).values())
        if missing or extra:
            notes.append(f"{stem}: {missing} lost, {extra} duplicated")
        lost, dup = lost + missing, dup + extra
    return lost, dup, notes


def manifest_consistent(out: Path) -> list[str]:
    """Shards marked done whose kept/rejected files do not hold the rows the manifest records."""
    try:
        m = json.loads((out / "_manifest.json").read_text())
    except (OSError, ValueError):
        return []
    bad = []
    for stem, entry in m.get("sections", {}).get("shards", {}).items():
        if entry.get("status") != "done":
            continue
        for d in ("kept", "rejected"):
            try:
                rows = pq.ParquetFile(out / d / f"{stem}.parquet").metadata.num_rows
            except Exception:  # noqa: BLE001 - missing or unreadable file
                rows = None
            if rows != entry["rows"][d]:
                bad.append(f"{d}/{stem}.parquet: {rows} rows on disk, {entry['rows'][d]} recorded")
    return bad


def not_done(out: Path, stems: list[str]) -> list[str]:
    try:
        m = json.loads((out / "_manifest.json").read_text())
    except (OSError, ValueError):
        return list(stems)
    shards = m.get("sections", {}).get("shards", {})
    return [s for s in stems if shards.get(s, {}).get("status") != "done"]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def has_traceback(text: str) -> bool:
    """An uncaught exception of the command itself: a traceback and a last line that is not the CLI's message."""
    return "Traceback (most recent call last)" in text and not last_line(text).startswith("Error: ")


def dask_noise(text: str) -> int:
    """Lines of Dask worker ERROR logs (with their tracebacks) printed to stderr before the CLI's own message."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if " - distributed." in line and " - ERROR - " in line]
    if not starts:
        return 0
    end = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Error: ")), len(lines))
    return max(0, end - starts[0])


def noise_note(text: str) -> str:
    n = dask_noise(text)
    return f" (stderr also holds {n} lines of Dask worker ERROR logs / tracebacks before it)" if n else ""


# ---------------------------------------------------------------------------------------------------------------
# Processes


def command(config: Path, out: Path, workers: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "corpusslim.cli", "run", str(config), "--output", str(out), "--workers",
            str(workers), *extra]


def workers_of(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for p in children:
        try:
            cmd, parent = " ".join(p.cmdline()), p.ppid()
        except psutil.Error:
            continue
        if "forkserver" in cmd and parent != pid:  # forked by the server, the driver's child
            found.append(p)
    return found


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's process group (its session, started by us) and any child that left it."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for p in tree:
        try:
            if p.is_running():
                p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs([p for p in tree if p.pid != proc.pid], timeout=10)


@dataclass
class Outcome:
    rc: int | None
    seconds: float
    killed: bool = False
    state: State | None = None
    stderr: str = ""
    stdout: str = ""
    events: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.base = Path(args.work_dir)
        self.runs = self.base / "runs"
        self.logs = self.base / "logs"
        self.workers = args.workers
        self.results: list[dict] = []
        self.n_shards = 6
        self.n_reduce = 15
        self.rng = random.Random(args.seed)

    # -- setup ---------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        for d in (self.runs, self.logs):
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        self.input = self.base / "input"
        if self.input.exists():
            shutil.rmtree(self.input)
        self.input.mkdir(parents=True)
        for p in sorted(SAMPLE.glob("*.parquet")):
            shutil.copy(p, self.input / p.name)
        self.n_shards = len(list(self.input.glob("*.parquet")))
        self.sample_cfg = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
        self.config = self.write_config(self.base / "config.yaml", self.input)
        self.inputs = {p.name.removesuffix(".parquet"): input_ids(p) for p in sorted(self.input.glob("*.parquet"))}
        dedup = next(s for s in self.sample_cfg["stages"] if s["kind"] == "dedup")
        self.n_reduce = (1 + 14) * dedup.get("partitions", 1)

    def write_config(self, path: Path, input_: Path | str, **overrides) -> Path:
        cfg = dict(self.sample_cfg)
        cfg["input"] = str(input_)
        cfg["output"] = str(self.base / "unused-output")  # every command passes --output
        cfg.update(overrides)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        return path

    def _log(self, name: str) -> tuple[Path, Path]:
        return self.logs / f"{name}.out", self.logs / f"{name}.err"

    def launch(self, cmd: list[str], name: str, preexec: Callable | None = None) -> tuple[subprocess.Popen, tuple]:
        out_path, err_path = self._log(name)
        fo, fe = open(out_path, "w"), open(err_path, "w")
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, start_new_session=True, preexec_fn=preexec,
                                cwd=str(self.base))
        return proc, (fo, fe, out_path, err_path)

    @staticmethod
    def _finish(files) -> tuple[str, str]:
        fo, fe, out_path, err_path = files
        fo.close(), fe.close()
        return out_path.read_text(errors="replace"), err_path.read_text(errors="replace")

    def run(self, cmd: list[str], name: str, preexec: Callable | None = None) -> Outcome:
        """Run to completion."""
        start = time.monotonic()
        proc, files = self.launch(cmd, name, preexec)
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_group(proc)
        out, err = self._finish(files)
        return Outcome(proc.returncode, time.monotonic() - start, stderr=err, stdout=out)

    def run_until(self, cmd: list[str], name: str, out: Path, predicate: Callable[[State, float], bool],
                  action: Callable[[subprocess.Popen, State], object] | None = None, after_action=None,
                  preexec: Callable | None = None) -> Outcome:
        """Run, polling the output directory; when ``predicate(state, elapsed)`` first holds, either SIGKILL the
        process group (no ``action``) or call ``action(proc, state)`` and let the run finish."""
        start, since = time.monotonic(), time.time() - 0.001
        proc, files = self.launch(cmd, name, preexec)
        outcome = Outcome(None, 0.0)
        fired = False
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > RUN_TIMEOUT:
                kill_group(proc)
                outcome.events.append("timeout")
                break
            if not fired:
                s = read_state(out, since)
                if predicate(s, elapsed):
                    fired = True
                    outcome.state = s
                    if action is None:
                        kill_group(proc)
                        outcome.killed = True
                        outcome.events.append(f"killed at {elapsed:.1f}s")
                        break
                    note = action(proc, s)
                    outcome.events.append(f"{note} at {elapsed:.1f}s")
            elif after_action is not None:
                note = after_action(proc)
                if note:
                    outcome.events.append(note)
            time.sleep(POLL)
        if not outcome.killed:
            try:
                proc.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill_group(proc)
        outcome.rc = proc.returncode
        outcome.seconds = time.monotonic() - start
        outcome.stdout, outcome.stderr = self._finish(files)
        return outcome

    # -- checks --------------------------------------------------------------------------------------------------
    def check(self, out: Path, ref: dict[str, bytes] | None = None, inputs: dict[str, list[str]] | None = None) -> dict:
        ref = self.ref_bytes if ref is None else ref
        inputs = self.inputs if inputs is None else inputs
        got = {k: v for k, v in output_bytes(out).items() if k.split("/")[1].removesuffix(".parquet") in inputs}
        differ = sorted(k for k in set(ref) | set(got) if ref.get(k) != got.get(k))
        lost, dup, notes = conservation(out, inputs)
        return {"identical": not differ, "differing_files": differ, "lost": lost, "duplicated": dup,
                "conservation_notes": notes, "tmp_left": [str(p.relative_to(out)) for p in out.rglob("*.tmp")],
                "not_done": not_done(out, list(inputs)), "manifest_inconsistent": manifest_consistent(out),
                "work_left": (out / "_work").exists()}

    def record(self, section: str, case: str, happened: str, seconds: float, check: dict | None, ok: bool,
               **details) -> dict:
        row = {"section": section, "case": case, "what_happened": happened,
               "lost": check["lost"] if check else None, "duplicated": check["duplicated"] if check else None,
               "identical": (None if not check or check.get("identical") is None else check["identical"]),
               "seconds": round(seconds, 1), "ok": ok, "check": check, **details}
        self.results.append(row)
        mark = "ok  " if ok else "FAIL"
        ident = "-" if row["identical"] is None else ("yes" if row["identical"] else "NO")
        print(f"[{mark}] {section:6} {case}: {happened} | lost {row['lost']} dup {row['duplicated']} "
              f"identical {ident} | {seconds:.0f}s", flush=True)
        return row

    @staticmethod
    def passed(check: dict, rc: int | None) -> bool:
        return (rc == 0 and check["identical"] and check["lost"] == 0 and check["duplicated"] == 0
                and not check["tmp_left"] and not check["not_done"] and not check["manifest_inconsistent"])

    # -- 1. reference ----------------------------------------------------------------------------------------------
    def reference(self) -> None:
        out = self.runs / "reference"
        timeline: dict[str, float] = {}

        def watch(s: State, t: float) -> bool:
            for key, value in (("map", s.map), ("reduce", s.reduce), ("shards", s.shards)):
                if value and f"{key} {value}" not in timeline:
                    timeline[f"{key} {value}"] = round(t, 2)
            for key, value in (("work", s.work), ("clusters", s.clusters), ("stats", s.stats),
                               ("report/index.html", s.html), ("summary.json", s.summary)):
                if value and key not in timeline:
                    timeline[key] = round(t, 2)
            return False

        outcome = self.run_until(command(self.config, out, self.workers), "reference", out, watch)
        if outcome.rc != 0:
            raise SystemExit(f"reference run failed (exit {outcome.rc}):\n{outcome.stderr[-3000:]}")
        timeline["exit"] = round(outcome.seconds, 2)
        self.ref_out = out
        self.ref_bytes = output_bytes(out)
        self.ref_seconds = outcome.seconds
        self.timeline = timeline
        lost, dup, notes = conservation(out, self.inputs)
        stats = json.loads((out / "stats.json").read_text())
        self.reference_info = {
            "seconds": round(outcome.seconds, 1), "timeline": timeline,
            "files": {k: {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in self.ref_bytes.items()},
            "docs_in": stats["totals"]["docs_in"], "docs_kept": stats["totals"]["docs_kept"],
            "docs_rejected": stats["totals"]["docs_rejected"],
            "ids": {stem: len(ids) for stem, ids in self.inputs.items()}, "lost": lost, "duplicated": dup}
        ok = lost == 0 and dup == 0 and stats["totals"]["docs_in"] == sum(len(v) for v in self.inputs.values())
        self.record("ref", "uninterrupted reference run",
                    f"exit 0; {stats['totals']['docs_in']} docs in, {stats['totals']['docs_kept']} kept, "
                    f"{stats['totals']['docs_rejected']} rejected", outcome.seconds,
                    {"lost": lost, "duplicated": dup, "identical": None}, ok, timeline=timeline)
        print(f"  reference timeline (s): {timeline}", flush=True)

    # -- 2. driver SIGKILL -----------------------------------------------------------------------------------------
    def kill_points(self) -> list[dict]:
        n, r = self.n_shards, self.n_reduce
        fixed = [
            ("map: after 1 unit", "map", lambda s, t: s.map >= 1, False),
            ("reduce: after 1 unit", "reduce", lambda s, t: s.reduce >= 1, False),
            ("verify/cluster: all reduce units, clusters not recorded", "verify/cluster",
             lambda s, t: s.reduce >= r and not s.clusters, False),
            ("apply: right after clusters recorded", "apply", lambda s, t: s.clusters, False),
            ("apply: after 1 unit", "apply", lambda s, t: s.shards >= 1, True),
            ("report: stats.json written", "report", lambda s, t: s.stats, False),
            ("report: report/ created, index.html not yet (plots rendering)", "report",
             lambda s, t: s.report_dir and not s.html, False),
            ("map: after 3 units", "map", lambda s, t: s.map >= 3, True),
            ("reduce: after 7 units", "reduce", lambda s, t: s.reduce >= 7, True),
            ("apply: after 3 units", "apply", lambda s, t: s.shards >= 3, False),
            ("report: ledger.parquet written", "report", lambda s, t: s.ledger, True),
            ("map: after 5 units", "map", lambda s, t: s.map >= 5, False),
            ("reduce: after 13 units", "reduce", lambda s, t: s.reduce >= r - 2, False),
            ("apply: after 5 units", "apply", lambda s, t: s.shards >= n - 1, False),
            ("map: first files under index/ or _work/ (first unit in flight)", "map", lambda s, t: s.work, False),
        ]
        points = [{"label": a, "target": b, "predicate": c, "double": d} for a, b, c, d in fixed]
        points = points[: self.args.kill_points]
        total = self.timeline.get("exit", self.ref_seconds)
        first = min(self.timeline.get("work", 0.5), total / 2)  # after startup (the fixed points cover none of it)
        while len(points) < self.args.kill_points:
            delay = round(self.rng.uniform(first, total * 0.98), 2)
            points.append({"label": f"random: {delay:.2f} s after start", "target": None,
                           "predicate": (lambda d: (lambda s, t: t >= d))(delay),
                           "double": len(points) % 4 == 0})
        return points

    def section_kill(self) -> None:
        points = self.kill_points()
        for i, point in enumerate(points):
            out = self.runs / f"kill-{i:02d}"
            cmd = command(self.config, out, self.workers)
            first = self.run_until(cmd, f"kill-{i:02d}-a", out, point["predicate"])
            total = first.seconds
            if not first.killed:
                happened = f"not killed: the run ended first (exit {first.rc})"
                check = self.check(out)
                self.record("kill", point["label"], happened, total, check, False, kill_phase=None)
                continue
            phase = first.state.phase(self.n_shards, self.n_reduce)
            happened = f"killed at {first.seconds:.1f}s in {phase} ({first.state.short()})"
            second_state = None
            if point["double"]:
                base = read_state(out)
                again = self.run_until(cmd, f"kill-{i:02d}-b", out,
                                       lambda s, t, b=base: s.units() > b.units() or s.stats)
                total += again.seconds
                if again.killed:
                    second_state = again.state
                    happened += (f"; rerun killed again at {again.seconds:.1f}s in "
                                 f"{again.state.phase(self.n_shards, self.n_reduce)}")
                else:
                    happened += f"; rerun ended before the second kill (exit {again.rc})"
            final = self.run(cmd, f"kill-{i:02d}-c")
            total += final.seconds
            check = self.check(out)
            happened += f"; final rerun exit {final.rc} ({final.seconds:.0f}s)"
            if final.rc != 0:
                happened += f": {last_line(final.stderr)[:300]}"
            on_target = point["target"] is None or point["target"] == phase
            if not on_target:
                happened += f" [kill point meant for {point['target']}]"
            self.record("kill", point["label"] + (" + rerun killed" if point["double"] else ""), happened, total,
                        check, self.passed(check, final.rc), kill_phase=phase, target_phase=point["target"],
                        state_at_kill=first.state.__dict__,
                        second_state=second_state.__dict__ if second_state else None,
                        final_stderr_tail=final.stderr[-1500:] if final.rc else "")
        self.last_complete_kill_dirs = [self.runs / f"kill-{i:02d}" for i in range(len(points))]

    # -- 3. worker kill --------------------------------------------------------------------------------------------
    def section_worker(self) -> None:
        n, r = self.n_shards, self.n_reduce
        cases = [
            ("map: one worker killed after 2 map units", lambda s, t: 2 <= s.map < n, "one"),
            ("reduce: one worker killed after 1 reduce unit", lambda s, t: 1 <= s.reduce < r, "one"),
            ("apply: one worker killed after 1 apply unit", lambda s, t: 1 <= s.shards < n, "one"),
            ("map: every worker killed at once, first unit in flight", lambda s, t: s.work and s.map == 0, "all"),
        ]
        if self.args.quick:
            cases = [cases[0], cases[3]]
        for i, (label, predicate, which) in enumerate(cases):
            out = self.runs / f"worker-{i}"
            killed: dict = {"pids": [], "after": None}

            def act(proc: subprocess.Popen, s: State, which=which, killed=killed) -> str:
                workers = workers_of(proc.pid)
                victims = workers if which == "all" else workers[:1]
                for w in victims:
                    try:
                        w.kill()
                        killed["pids"].append(w.pid)
                    except psutil.Error:
                        pass
                return f"killed worker(s) {killed['pids']} ({s.short()})"

            def after(proc: subprocess.Popen, killed=killed) -> str | None:
                if killed["after"] is None:
                    pids = [w.pid for w in workers_of(proc.pid)]
                    if any(p not in killed["pids"] for p in pids) and len(pids) >= self.workers:
                        killed["after"] = pids
                        return f"workers running again: {pids}"
                return None

            outcome = self.run_until(command(self.config, out, self.workers), f"worker-{i}", out, predicate,
                                     action=act, after_action=after)
            check = self.check(out)
            if not killed["pids"]:
                happened = f"no worker killed (phase passed before it was seen); exit {outcome.rc}"
                ok = False
            else:
                phase = outcome.state.phase(self.n_shards, self.n_reduce)
                restarted = "nanny restarted it" if killed["after"] else "no restart seen"
                happened = (f"{len(killed['pids'])} worker(s) SIGKILLed in {phase}; {restarted}; exit {outcome.rc}")
                if outcome.rc != 0:
                    happened += f": {last_line(outcome.stderr)[:300]}"
                ok = self.passed(check, outcome.rc)
            self.record("worker", label, happened, outcome.seconds, check, ok, events=outcome.events,
                        stderr_tail=outcome.stderr[-1500:] if outcome.rc else "")

    # -- 4. disk full ----------------------------------------------------------------------------------------------
    @staticmethod
    def _limit_tree(limit: int) -> Callable[[], None]:
        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return apply

    def section_disk(self) -> None:
        n = self.n_shards
        # the smallest per-shard maximum of kept/rejected size, + 1: that shard's apply writes fit, larger ones fail
        fits = min(max(len(self.ref_bytes[f"{d}/{s}.parquet"]) for d in ("kept", "rejected")) for s in self.inputs) + 1
        cases = [
            # (label, how, limit or callable of state, predicate for when to apply)
            ("whole tree, 150 kB per file from the start (first map write fails)", "tree", 150_000, None),
            ("whole tree, 700 kB per file from the start (the largest map intermediate fails)", "tree", 700_000,
             None),
            (f"workers, {fits:,} B per file once clusters are recorded (apply writes of most shards fail)",
             "workers", fits, lambda s, t: s.clusters),
            ("driver, manifest size + 100 B once clusters are recorded (manifest write fails in apply)", "driver",
             "manifest+100", lambda s, t: s.clusters),
            ("driver, 100 kB per file once all shards are done (report/index.html write fails)", "driver", 100_000,
             lambda s, t: s.shards >= n),
        ]
        if self.args.quick:
            cases = [cases[0], cases[3]]
        for i, (label, how, limit, when) in enumerate(cases):
            out = self.runs / f"disk-{i}"
            cmd = command(self.config, out, self.workers)
            applied: dict = {}
            if how == "tree":
                first = self.run(cmd, f"disk-{i}-a", preexec=self._limit_tree(limit))
                applied["limit"] = limit
            else:
                def act(proc: subprocess.Popen, s: State, how=how, limit=limit, applied=applied) -> str:
                    lim = s.manifest_bytes + 100 if limit == "manifest+100" else limit
                    targets = [psutil.Process(proc.pid)] if how == "driver" else workers_of(proc.pid)
                    for p in targets:
                        p.rlimit(psutil.RLIMIT_FSIZE, (lim, lim))
                    applied.update(limit=lim, pids=[p.pid for p in targets], state=s.short())
                    return f"RLIMIT_FSIZE {lim} on {how} {applied['pids']}"
                first = self.run_until(cmd, f"disk-{i}-a", out, when, action=act)
            err = first.stderr
            message = last_line(err)
            clear = (message.startswith("Error: ") and "cannot write" in message and "File too large" in message
                     and not has_traceback(err))
            inconsistent = manifest_consistent(out)
            state = read_state(out)
            happened = f"exit {first.rc}; "
            happened += (f"one-line error: `{message[:260]}`{noise_note(err)}" if clear else
                         f"UNCLEAR error (traceback: {'yes' if has_traceback(err) else 'no'}): `{message[:260]}`")
            happened += f"; manifest: {state.shards} shards done, {len(inconsistent)} incomplete"
            second = self.run(cmd, f"disk-{i}-b")
            check = self.check(out)
            happened += f"; rerun without limit exit {second.rc}"
            if second.rc != 0:
                happened += f": {last_line(second.stderr)[:200]}"
            ok = (first.rc not in (0, None) and clear and not inconsistent and self.passed(check, second.rc))
            if not applied:
                happened = "limit never applied (phase passed); " + happened
                ok = False
            self.record("disk", label, happened, first.seconds + second.seconds, check, ok, limit=applied,
                        first_stderr_tail=err[-2500:], manifest_incomplete=inconsistent)

    # -- 5. torn files ---------------------------------------------------------------------------------------------
    @staticmethod
    def _truncate(path: Path, keep: float = 0.5) -> str:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return f"{path.parent.name}/{path.name} {len(data)} -> {int(len(data) * keep)} B"

    def _done_and_pending(self, out: Path) -> tuple[list[str], list[str]]:
        m = json.loads((out / "_manifest.json").read_text())
        done = sorted(k for k, v in m["sections"].get("shards", {}).items() if v.get("status") == "done")
        return done, [s for s in sorted(self.inputs) if s not in done]

    def section_torn(self) -> None:
        n, r = self.n_shards, self.n_reduce

        def tear_reduce(out: Path) -> list[str]:
            m = json.loads((out / "_manifest.json").read_text())
            task = sorted(t for t in m["sections"].get("reduce", {}) if t.startswith("band_"))[0]
            return [self._truncate(out / "_work" / "candidates" / f"{task}.parquet"),
                    self._truncate(out / "index" / "shard-002.parquet"),
                    self._truncate(out / "_work" / "pre" / "shard-004.parquet")]

        def tear_apply_pending(out: Path) -> list[str]:
            done, pending = self._done_and_pending(out)
            bands = sorted((out / "_work" / "candidates").glob("band_*.parquet"))
            return [self._truncate(bands[-1]), self._truncate(out / "index" / f"{pending[0]}.parquet"),
                    self._truncate(out / "_work" / "pre" / f"{pending[-1]}.parquet")]

        def ids_file(out: Path, stem: str) -> Path | None:
            path = out / "index" / "ids" / f"{stem}.parquet"
            return path if path.exists() else None

        def tear_apply_done_index(out: Path) -> list[str]:
            done, pending = self._done_and_pending(out)
            torn = [self._truncate(out / "index" / f"{done[0]}.parquet"),
                    self._truncate(out / "_work" / "pre" / f"{pending[0]}.parquet")]
            if (ids := ids_file(out, done[-1])) is not None:
                torn.append(self._truncate(ids).replace("ids/", "index/ids/", 1))
            return torn

        def tear_clusters_and_done_pre(out: Path) -> list[str]:
            done, pending = self._done_and_pending(out)
            torn = [self._truncate(out / "_work" / "clusters.parquet"),
                    self._truncate(out / "_work" / "pre" / f"{done[0]}.parquet")]
            if (ids := ids_file(out, done[-1])) is not None:
                torn.append(self._truncate(ids).replace("ids/", "index/ids/", 1))
            return torn

        killed_cases = [
            ("killed in reduce; a recorded band-candidates file, an index file and a pre file truncated",
             lambda s, t: 3 <= s.reduce < r, tear_reduce),
            ("killed in apply; a band-candidates file, a pending shard's index and pre truncated",
             lambda s, t: 2 <= s.shards < n, tear_apply_pending),
            ("killed in apply; a done shard's index (and another's ids file) and a pending shard's pre truncated",
             lambda s, t: 2 <= s.shards < n, tear_apply_done_index),
            ("killed in apply; _work/clusters.parquet, a done shard's pre (and another's ids file) truncated",
             lambda s, t: 2 <= s.shards < n, tear_clusters_and_done_pre),
        ]
        if self.args.quick:
            killed_cases = killed_cases[1:2] + killed_cases[3:]
        for i, (label, predicate, tear) in enumerate(killed_cases):
            out = self.runs / f"torn-{i}"
            cmd = command(self.config, out, self.workers)
            first = self.run_until(cmd, f"torn-{i}-a", out, predicate)
            if not first.killed:
                self.record("torn", label, f"kill point missed (exit {first.rc})", first.seconds, self.check(out),
                            False)
                continue
            torn = tear(out)
            second = self.run(cmd, f"torn-{i}-b")
            check = self.check(out)
            happened = (f"killed in {first.state.phase(n, r)} ({first.state.short()}); truncated "
                        f"{'; '.join(torn)}; rerun exit {second.rc}")
            if second.rc != 0:
                happened += f": `{last_line(second.stderr)[:300]}`"
                again = self.run(cmd, f"torn-{i}-c")
                happened += f"; a further rerun exit {again.rc}"
                check = self.check(out)
            self.record("torn", label, happened, first.seconds + second.seconds, check,
                        self.passed(check, second.rc), torn=torn, rerun_stderr_tail=second.stderr[-2000:])

        # After a finished run (the CI cases of tests/test_run.py::test_torn_file_is_redone, on fresh directories).
        finished = [d for d in getattr(self, "last_complete_kill_dirs", []) if self.check(d)["identical"]]
        finished_cases = [
            ("finished run; kept/shard-003.parquet truncated (CI 'torn output')",
             lambda out: [self._truncate(out / "kept" / "shard-003.parquet", keep=0.9)]),
            ("finished run; index/shard-001.parquet (and index/ids/shard-002) truncated, kept/shard-004.parquet "
             "deleted (CI 'torn index')",
             lambda out: [self._truncate(out / "index" / "shard-001.parquet", keep=0.9),
                          *([self._truncate(p, keep=0.9).replace("ids/", "index/ids/", 1)]
                            if (p := out / "index" / "ids" / "shard-002.parquet").exists() else []),
                          (out / "kept" / "shard-004.parquet").unlink() or "kept/shard-004.parquet deleted"]),
            ("finished run; index/shard-001.parquet truncated only (the index kept for --against runs)",
             lambda out: [self._truncate(out / "index" / "shard-001.parquet", keep=0.9)]),
        ]
        if self.args.quick:
            finished_cases = finished_cases[:1]
        for j, (label, tear) in enumerate(finished_cases):
            start = time.monotonic()
            if finished:  # a finished kill-case directory, used in place (its records hold absolute paths)
                out = finished.pop()
            else:
                out = self.runs / f"torn-finished-{j}"
                shutil.rmtree(out, ignore_errors=True)
                self.run(command(self.config, out, self.workers), f"torn-finished-{j}-a")
            torn = tear(out)
            second = self.run(command(self.config, out, self.workers), f"torn-finished-{j}-b")
            check = self.check(out)
            happened = f"truncated {'; '.join(torn)}; rerun exit {second.rc}"
            if second.rc != 0:
                happened += f": `{last_line(second.stderr)[:300]}`"
                again = self.run(command(self.config, out, self.workers), f"torn-finished-{j}-c")
                happened += f"; a further rerun exit {again.rc}"
            extra = {}
            ok = self.passed(check, second.rc)
            if "index" in label:
                m = json.loads((out / "_manifest.json").read_text())
                rec = m["sections"]["map"]["shard-001"]["index"]
                data = (out / "index" / "shard-001.parquet").read_bytes()
                intact = len(data) == rec["bytes"] and hashlib.sha256(data).hexdigest() == rec["sha256"]
                extra["index_intact_after_rerun"] = intact
                happened += f"; index/shard-001 {'rebuilt (checksum matches)' if intact else 'STILL TORN'}"
                ok = ok and intact
                if not intact and "only" in label:
                    happened += "; " + self._against(out, f"torn-against-{j}")
            self.record("torn", label, happened, time.monotonic() - start, check, ok, torn=torn,
                        rerun_stderr_tail=second.stderr[-2000:], **extra)

    def _against(self, run_dir: Path, name: str) -> str:
        """A later batch deduplicated ``--against`` the run whose index was torn: what the user sees."""
        inp = self.base / "against-input"
        shutil.rmtree(inp, ignore_errors=True)
        inp.mkdir(parents=True)
        pl.DataFrame({"id": [f"new-{i}" for i in range(4)], "text": synthetic_docs(self.input, 4, seed=5)}) \
            .write_parquet(inp / "shard-100.parquet")
        out = self.runs / name
        o = self.run(command(self.config, out, self.workers, "--input", str(inp), "--against", str(run_dir)), name)
        if o.rc == 0:
            return "a later `--against` run over it exits 0"
        return (f"a later `--against` run over it: exit {o.rc}, "
                f"{'traceback ' if has_traceback(o.stderr) else ''}`{last_line(o.stderr)[:200]}`"
                f"{noise_note(o.stderr)}; rerunning the finished run's own command does not repair it (above)")

    # -- 6. bad input ----------------------------------------------------------------------------------------------
    def section_input(self) -> None:
        root = self.base / "bad"
        shutil.rmtree(root, ignore_errors=True)
        inp = root / "input"
        inp.mkdir(parents=True)
        for p in sorted(self.input.glob("*.parquet")):
            shutil.copy(p, inp / p.name)
        cases = self._bad_shards(inp)
        config = self.write_config(root / "config.yaml", inp)
        out = self.runs / "bad-input"
        outcome = self.run(command(config, out, self.workers), "bad-input")
        stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else {}
        quarantined = {q["shard"]: q["error"] for q in stats.get("quarantined", [])}
        good = {stem: ids for stem, ids in self.inputs.items()}
        good_check = self.check(out, inputs=good)
        good_identical = good_check["identical"] if outcome.rc == 0 else False
        self.record("input", "six good shards among the bad ones (run as a whole)",
                    f"exit {outcome.rc}; {len(quarantined)} shards quarantined; the good shards' output "
                    f"{'equals' if good_identical else 'DIFFERS from'} the reference", outcome.seconds, good_check,
                    outcome.rc == 0 and good_identical and good_check["lost"] == 0 and good_check["duplicated"] == 0,
                    stdout_tail=outcome.stdout[-3000:], stderr_tail=outcome.stderr[-3000:])
        per_case = outcome.seconds / max(1, len(cases))
        for stem, (label, expect, note) in cases.items():
            path = inp / f"{stem}.parquet"
            if outcome.rc != 0:
                self.record("input", label, f"the whole run failed: {last_line(outcome.stderr)[:200]}", per_case,
                            None, False)
                continue
            if stem in quarantined:
                error = quarantined[stem]
                named = str(path) in error
                happened = f"quarantined: `{error[:200]}`" + ("" if named else " (file NOT named)")
                ok = expect in ("quarantine", "either") and named
                self.record("input", label, happened + (f" — {note}" if note else ""), per_case,
                            {"lost": 0, "duplicated": 0, "identical": None}, ok, error=error, expected=expect,
                            docs_not_processed="whole shard, by policy")
                continue
            ids = input_ids(path)
            lost, dup, notes = conservation(out, {stem: ids})
            df = output_frame(out, stem)
            rejected = df.filter(pl.col("reject_stage").is_not_null()) if df is not None else None
            kept_n = df.height - rejected.height if df is not None else 0
            reasons = dict(Counter(rejected["reject_reason"].to_list())) if rejected is not None else {}
            text_ok = self._text_preserved(path, df) if df is not None else False
            happened = (f"processed: {len(ids)} docs -> {kept_n} kept, {sum(reasons.values())} rejected "
                        f"{reasons if reasons else ''}; text byte-identical: {'yes' if text_ok else 'NO'}")
            ok = expect in ("process", "either") and lost == 0 and dup == 0 and text_ok
            self.record("input", label, happened + (f" — {note}" if note else ""), per_case,
                        {"lost": lost, "duplicated": dup, "identical": None, "notes": notes}, ok, expected=expect)
        if outcome.rc == 0:
            self._duplicate_ids_and_escaping(out, outcome, stats)
        self._input_separate_runs(root, out)

    def _bad_shards(self, inp: Path) -> dict[str, tuple[str, str, str]]:
        """Write the bad shards (names sort after the good ones); {stem: (label, expected, note)}."""
        en = {"text": synthetic_docs(self.input, 10)}  # new text: no duplicate of a good shard's document
        cases: dict[str, tuple[str, str, str]] = {}

        def add(name: str, label: str, expect: str, note: str = "") -> Path:
            stem = f"shard-9{len(cases):02d}-{name}"
            cases[stem] = (label, expect, note)
            return inp / f"{stem}.parquet"

        add("not-parquet", "not Parquet at all", "quarantine").write_bytes(b"this is not parquet at all\n" * 20)
        data = (self.input / "shard-002.parquet").read_bytes()
        add("truncated", "truncated Parquet (first half of a shard)", "quarantine").write_bytes(data[: len(data) // 2])
        pq.write_table(pa.table({"id": ["a", "b"], "body": ["x", "y"]}), add("no-text", "no `text` column",
                                                                          "quarantine"))
        pq.write_table(pa.table({"text": pa.array([1, 2, 3])}), add("text-int", "`text` of type int64", "quarantine"))
        dict_text = pa.array(["hello world, a fine sentence", "hello again"]).dictionary_encode()
        pq.write_table(pa.table({"text": dict_text}),
                       add("text-dict", "`text` dictionary-encoded strings", "either",
                           "valid strings, stored dictionary-encoded (as pandas categoricals are)"))
        texts = [en["text"][0], None, "", "   \n\t ", en["text"][1], None]
        pq.write_table(pa.table({"id": ["n0", "n1", "n2", "n3", None, "n5"], "text": texts}),
                       add("nulls-empty", "null and empty texts (and a null id)", "process"))
        sentence = en["text"][2].replace("\n", " ")
        big = (sentence + " ") * (20_000_000 // (len(sentence) + 1) + 1)
        big = big[:20_000_000]
        pq.write_table(pa.table({"id": ["huge", "small"], "text": [big, en["text"][3]]}),
                       add("huge-doc", "a 20 MB single document (default limits.max_doc_chars 1,000,000)", "process"))
        bad_bin = pa.array([b"valid bytes here, an ordinary sentence.", b"broken \xff\xfe bytes", b"ok"], pa.binary())
        pq.write_table(pa.table({"text": bad_bin}), add("binary-bad-utf8", "invalid UTF-8 in a binary `text`",
                                                        "quarantine"))
        ok_bin = pa.array(["Bytes offered as text, valid UTF-8: café 中文.".encode()], pa.binary())
        pq.write_table(pa.table({"text": ok_bin}), add("binary-ok", "valid UTF-8 in a binary `text`", "process"))
        bad_str = pa.Array.from_buffers(pa.string(), 3, pa.array(
            [b"fine text", b"bad \xc3\x28 sequence", b"more"]).buffers())
        pq.write_table(pa.table({"text": bad_str}), add("string-bad-utf8", "invalid UTF-8 in a string `text`",
                                                        "quarantine"))
        bad_src = pa.Array.from_buffers(pa.string(), 2, pa.array([b"src-ok", b"src \xff"]).buffers())
        pq.write_table(pa.table({"text": ["An ordinary sentence about the weather today.", "Another one."],
                                 "source": bad_src}),
                       add("other-col-bad-utf8", "invalid UTF-8 in another string column (`source`)", "quarantine"))
        taken = self.inputs["shard-000"][:3]
        pq.write_table(pa.table({"id": taken, "text": ["A repeated id, new text one.", "A repeated id, text two.",
                                                       en["text"][4]]}),
                       add("dup-ids", "duplicate ids across shards (3 ids of shard-000)", "process"))
        pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}),
                       add("zero-rows", "a shard with zero rows", "process"))
        pq.write_table(pa.table({"id": pa.array([7, 8, None]), "text": list(en["text"][5:8]),
                                 "extra": pa.array([1.5, None, 2.5]),
                                 "meta": pa.array([{"k": 1}, {"k": 2}, None])}),
                       add("mixed-schema", "mixed schema: int ids (one null), extra float and struct columns",
                           "process"))
        pq.write_table(pa.table({"text": list(en["text"][8:10])}),
                       add("no-id", "mixed schema: no `id` column", "process"))
        hostile = ["Control \x00\x07\x08\x1b[2J\x1b]0;title\x07 characters and a <script>alert(1)</script> tag in the "
                   "middle of an otherwise ordinary English sentence about the weather.",
                   "Tabs\tand\rcarriage returns\x0b\x0c and DEL \x7f and C1 \x85\x9b controls in a sentence here."]
        pq.write_table(pa.table({"id": ["c0", "c1"], "text": hostile}),
                       add("control-chars", "control characters, ANSI escapes and <script>", "process"))
        surrogate = pa.Array.from_buffers(pa.string(), 2, pa.array(
            [b"A lone surrogate \xed\xa0\x80 in text.", b"A pair as CESU-8 \xed\xa0\xbd\xed\xb8\x80 here."]).buffers())
        pq.write_table(pa.table({"text": surrogate}), add("lone-surrogates", "lone surrogates (CESU-8 bytes)",
                                                          "quarantine", "not valid UTF-8, so the shard is refused"))
        rtl = ["\u202eevil\u202c right-to-left override and zero\u200bwidth\u200d joiners\ufeff in an English sentence "
               "about the council budget.",
               "שלום עולם זהו טקסט בעברית מימין לשמאל עם מספרים 123 וסימנים.",
               "مرحبا بالعالم هذا نص عربي من اليمين إلى اليسار\u200f مع علامة.",
               "\u2067isolate\u2069 and \u200e marks \u2060 word-joiner \u00ad soft hyphen in an English sentence."]
        pq.write_table(pa.table({"id": ["r0", "r1", "r2", "r3"], "text": rtl}),
                       add("rtl-zero-width", "right-to-left and zero-width characters", "process"))
        return cases

    @staticmethod
    def _text_preserved(path: Path, out_df: pl.DataFrame) -> bool:
        """Every output row's text equals the input row's text (by id; rows with repeated ids by position)."""
        stem = path.name.removesuffix(".parquet")
        table = pq.read_table(path)
        text = table.column("text")
        if pa.types.is_dictionary(text.type):
            text = text.cast(text.type.value_type)
        if pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type):
            texts = [None if v is None else v.decode("utf-8") for v in text.to_pylist()]
        else:
            texts = text.to_pylist()
        ids = input_ids(path) if table.num_rows else []
        want = Counter(zip(ids, texts))
        got = Counter(zip(out_df["id"].to_list(), out_df["text"].to_list())) if out_df.height else Counter()
        return want == got or (not want and not got and stem is not None)

    def _duplicate_ids_and_escaping(self, out: Path, outcome: Outcome, stats: dict) -> None:
        dup = stats.get("duplicate_ids", {})
        taken = self.inputs["shard-000"][:3]
        reported = dup.get("count") == 3 and set(dup.get("examples", [])) == set(taken)
        self.record("input", "duplicate ids reported", f"stats.json duplicate_ids = {dup}; "
                    f"{'matches' if reported else 'does NOT match'} the 3 planted ids", 0.0, None, reported)
        index_html = out / "report" / "index.html"
        html = index_html.read_text(errors="replace") if index_html.exists() else ""
        raw_script = "<script>alert(1)</script>" in html
        raw_ansi = "\x1b[" in outcome.stdout or "\x1b[" in html
        self.record("input", "hostile text in report and CLI output",
                    f"report/index.html raw <script>alert: {'YES' if raw_script else 'no'}; raw ANSI escape in "
                    f"stdout/report: {'YES' if raw_ansi else 'no'}", 0.0, None, not raw_script and not raw_ansi)

    def _input_separate_runs(self, root: Path, bad_out: Path) -> None:
        # (a) a nested column with invalid UTF-8 (only top-level string columns are checked)
        nested = root / "nested"
        shutil.rmtree(nested, ignore_errors=True)
        (nested / "input").mkdir(parents=True)
        shutil.copy(self.input / "shard-000.parquet", nested / "input" / "shard-000.parquet")
        bad = pa.Array.from_buffers(pa.string(), 2, pa.array([b"tag", b"bad \xff tag"]).buffers())
        tags = pa.ListArray.from_arrays(pa.array([0, 1, 2], pa.int32()), bad)
        en = {"text": synthetic_docs(self.input, 2, seed=11)}
        path = nested / "input" / "shard-001.parquet"
        pq.write_table(pa.table({"id": ["t0", "t1"], "text": list(en["text"]), "tags": tags}), path)
        out = self.runs / "bad-nested"
        o = self.run(command(self.write_config(nested / "config.yaml", nested / "input"), out, self.workers),
                     "bad-nested")
        stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else {}
        q = {x["shard"]: x["error"] for x in stats.get("quarantined", [])}
        inputs = {"shard-000": self.inputs["shard-000"], "shard-001": input_ids(path)}
        if o.rc == 0 and "shard-001" not in q:
            lost, dup, notes = conservation(out, inputs)
            written = [pq.read_table(out / d / "shard-001.parquet") for d in ("kept", "rejected")]
            invalid = []
            for t in written:
                if "tags" in t.column_names:
                    try:
                        t.column("tags").validate(full=True)
                    except pa.ArrowInvalid as exc:
                        invalid.append(str(exc)[:100])
            happened = (f"exit 0, not quarantined; the invalid bytes were "
                        f"{'copied into the output (' + '; '.join(invalid) + ')' if invalid else 'not copied'}")
            check = {"lost": lost, "duplicated": dup, "identical": None}
            ok = not invalid and lost == 0 and dup == 0
        elif o.rc == 0:
            lost, dup, _ = conservation(out, {"shard-000": self.inputs["shard-000"]})
            happened, ok = f"quarantined: `{q['shard-001'][:200]}`", str(path) in q["shard-001"]
            check = {"lost": lost, "duplicated": dup, "identical": None}
        else:
            happened = (f"exit {o.rc}, {'traceback' if has_traceback(o.stderr) else 'error'}: "
                        f"`{last_line(o.stderr)[:250]}`")
            check, ok = None, (not has_traceback(o.stderr) and str(path) in o.stderr)
        self.record("input", "invalid UTF-8 inside a nested list<string> column", happened, o.seconds, check, ok,
                    stderr_tail=o.stderr[-3000:])

        # (b) on_bad_shard: fail, then the bad shard replaced by a good one and the command rerun
        failing = root / "fail-policy"
        shutil.rmtree(failing, ignore_errors=True)
        (failing / "input").mkdir(parents=True)
        for p in sorted(self.input.glob("*.parquet"))[:3]:
            shutil.copy(p, failing / "input" / p.name)
        bad_path = failing / "input" / "shard-002.parquet"
        bad_path.write_bytes(b"not parquet")
        cfg = self.write_config(failing / "config.yaml", failing / "input", on_bad_shard="fail")
        out = self.runs / "bad-fail-policy"
        first = self.run(command(cfg, out, self.workers), "bad-fail-a")
        message = last_line(first.stderr)
        clear = first.rc not in (0, None) and str(bad_path) in message and not has_traceback(first.stderr)
        shutil.copy(self.input / "shard-002.parquet", bad_path)  # the user fixes the shard and reruns
        second = self.run(command(cfg, out, self.workers), "bad-fail-b")
        check = self.check(out, ref={}, inputs={k: v for k, v in self.inputs.items() if k <= "shard-002"})
        check["identical"] = None  # three shards only: no reference to compare with
        happened = (f"exit {first.rc}: `{message[:200]}`{noise_note(first.stderr)}; after fixing the shard, rerun "
                    f"exit {second.rc}")
        if second.rc:
            happened += f": `{last_line(second.stderr)[:200]}`"
        ok = (clear and second.rc == 0 and check["lost"] == 0 and check["duplicated"] == 0 and not check["not_done"]
              and not check["tmp_left"])
        self.record("input", "on_bad_shard: fail (3 shards, shard-002 not Parquet), then fixed and rerun", happened,
                    first.seconds + second.seconds, check, ok)

        # (c) a 20 MB document actually processed (limit raised): every stage on it
        if not self.args.quick:
            huge = root / "huge"
            shutil.rmtree(huge, ignore_errors=True)
            (huge / "input").mkdir(parents=True)
            big_path = next((root / "input").glob("shard-9*-huge-doc.parquet"))
            shutil.copy(big_path, huge / "input" / "shard-000.parquet")
            cfg = self.write_config(huge / "config.yaml", huge / "input", limits={"max_doc_chars": 30_000_000})
            out = self.runs / "bad-huge-processed"
            o = self.run(command(cfg, out, self.workers), "bad-huge")
            ids = {"shard-000": input_ids(huge / "input" / "shard-000.parquet")}
            lost, dup, _ = conservation(out, ids) if o.rc == 0 else (None, None, [])
            df = output_frame(out, "shard-000") if o.rc == 0 else None
            fate = ""
            if df is not None:
                row = df.filter(pl.col("id") == "huge")
                fate = (f"; the 20 MB doc: {row['reject_stage'][0] or 'kept'} "
                        f"{row['reject_reason'][0] or ''}").rstrip()
            memory = ""
            if (out / "stats.json").exists():
                mem = json.loads((out / "stats.json").read_text()).get("memory_mb") or {}
                memory = f"; peak RSS {mem}" if mem else ""
            self.record("input", "a 20 MB single document with limits.max_doc_chars 30,000,000 (every stage)",
                        f"exit {o.rc} in {o.seconds:.0f}s{fate}{memory}"
                        + (f": `{last_line(o.stderr)[:200]}`" if o.rc else ""),
                        o.seconds, {"lost": lost, "duplicated": dup, "identical": None}, o.rc == 0 and lost == 0
                        and dup == 0)

        # (d) an input glob that matches nothing
        out = self.runs / "bad-empty-glob"
        o = self.run(command(self.config, out, self.workers, "--input", str(root / "nothing" / "*.parquet")),
                     "bad-empty-glob")
        message = last_line(o.stderr)
        ok = (o.rc not in (0, None) and "no input files (Parquet or JSON Lines) match" in message
              and not has_traceback(o.stderr))
        self.record("input", "input glob matching nothing", f"exit {o.rc}: `{message[:200]}`; output dir "
                    f"{'created' if out.exists() else 'not created'}", o.seconds, None, ok)

        # (e) an output directory holding another config's run: refused, untouched; then --force
        other = self.write_config(root / "other.yaml", self.input,
                                  stages=[{"kind": "lid", "languages": ["en"]}])
        target = self.ref_out
        before = {str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}
        o = self.run(command(other, target, self.workers), "bad-conflict")
        after = {str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}
        message = last_line(o.stderr)
        untouched = before == after
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        ok = (o.rc not in (0, None) and "holds a run of another config" in message and untouched
              and not has_traceback(o.stderr))
        self.record("input", "output dir holding another config's run (no --force)",
                    f"exit {o.rc}: `{message[:160]}`; directory "
                    f"{'untouched' if untouched else 'CHANGED: ' + ', '.join(changed[:5])}", o.seconds,
                    None, ok, changed=changed)
        forced_dir = self.runs / "bad-force"
        shutil.rmtree(forced_dir, ignore_errors=True)
        if not (bad_out / "_manifest.json").exists():
            self.record("input", "same, with --force", "skipped: the bad-input run left no run to replace", 0.0,
                        None, False)
            return
        shutil.copytree(bad_out, forced_dir)  # a finished run of the sample config with extra bad shards
        o = self.run(command(other, forced_dir, self.workers, "--force"), "bad-force")
        lost, dup, notes = conservation(forced_dir, self.inputs)
        stale = sorted(p.name for d in ("kept", "rejected", "index") for p in (forced_dir / d).glob("*")
                       if p.name.removesuffix(".parquet") not in self.inputs)
        kept = pl.concat([pl.read_parquet(p) for p in sorted((forced_dir / "kept").glob("shard-00*.parquet"))])
        langs = sorted(set(kept["lang"].to_list())) if "lang" in kept.columns else []
        m = json.loads((forced_dir / "_manifest.json").read_text())
        ok = o.rc == 0 and lost == 0 and dup == 0 and not stale and langs == ["en"]
        self.record("input", "same, with --force (lid-only config replaces the run)",
                    f"exit {o.rc}; kept languages {langs}; files of the replaced run left: "
                    f"{stale[:6] if stale else 'none'}; manifest sections {sorted(m['sections'])}", o.seconds,
                    {"lost": lost, "duplicated": dup, "identical": None}, ok, stale=stale)

    # -- 7. shard inserted between kill and rerun ------------------------------------------------------------------
    def section_insert(self) -> None:
        root = self.base / "insert"
        shutil.rmtree(root, ignore_errors=True)
        (root / "input").mkdir(parents=True)
        for p in sorted(self.input.glob("*.parquet")):
            shutil.copy(p, root / "input" / p.name)
        cfg = self.write_config(root / "config.yaml", root / "input")
        out = self.runs / "insert-resumed"
        first = self.run_until(command(cfg, out, self.workers), "insert-a", out, lambda s, t: s.map >= self.n_shards)
        # 50 documents of shard-004 under new ids, in a shard whose name sorts between shard-002 and shard-003
        extra = pl.read_parquet(self.input / "shard-004.parquet").head(50).with_columns(id=pl.col("id") + "-copy")
        new = root / "input" / "shard-002a.parquet"
        extra.write_parquet(new)
        second = self.run(command(cfg, out, self.workers), "insert-b")
        fresh = self.runs / "insert-fresh"
        ref = self.run(command(cfg, fresh, self.workers), "insert-fresh")
        inputs = {p.name.removesuffix(".parquet"): input_ids(p) for p in sorted((root / "input").glob("*.parquet"))}
        check = self.check(out, ref=output_bytes(fresh), inputs=inputs)
        m = json.loads((out / "_manifest.json").read_text())
        numbers = {k: v["shard_number"] for k, v in m["sections"]["map"].items()}
        clash = sorted({n for n in numbers.values() if list(numbers.values()).count(n) > 1})
        happened = (f"killed after map ({first.state.short() if first.state else 'not killed'}); shard-002a added; "
                    f"rerun exit {second.rc}; fresh run exit {ref.rc}; shard numbers in the manifest {numbers}"
                    + (f" — number {clash} given to two shards" if clash else ""))
        if not check["identical"]:
            diffs = []
            for stem in ("shard-002a", "shard-003", "shard-004"):
                a, b = output_frame(out, stem), output_frame(fresh, stem)
                ra = dict(Counter(a["reject_reason"].drop_nulls().to_list()))
                rb = dict(Counter(b["reject_reason"].drop_nulls().to_list()))
                diff = {k: (ra.get(k, 0), rb.get(k, 0)) for k in set(ra) | set(rb) if ra.get(k, 0) != rb.get(k, 0)}
                if diff:
                    diffs.append(f"{stem} (resumed, fresh): {diff}")
            happened += "; differences: " + "; ".join(diffs)
        self.record("insert", "shard sorting among mapped shards added between a kill and the rerun", happened,
                    first.seconds + second.seconds + ref.seconds, check, self.passed(check, second.rc),
                    shard_numbers=numbers)

    # -- report ----------------------------------------------------------------------------------------------------
    def write(self, started: float) -> int:
        RESULTS.mkdir(parents=True, exist_ok=True)
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "pipeline", "filters"], cwd=REPO,
                                   capture_output=True, text=True).stdout.strip()
        except OSError:
            commit, dirty = "?", ""
        if commit != self.start_commit:
            commit = f"{self.start_commit} at start, {commit} at the end (the code changed during the bench)"
        phases = Counter(r.get("kill_phase") for r in self.results if r["section"] == "kill")
        env = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "python": platform.python_version(),
               "polars": pl.__version__, "pyarrow": pa.__version__, "load_average_at_start": self.load_start,
               "commit": commit + (" (+ uncommitted changes in pipeline/ or filters/)" if dirty else ""),
               "command": " ".join(["python", "bench/faults.py", *sys.argv[1:]]),
               "wall_seconds": round(time.monotonic() - started, 1), "work_dir": str(self.base),
               "workers": self.workers}
        failures = [r for r in self.results if not r["ok"]]
        payload = {"environment": env, "reference": getattr(self, "reference_info", None),
                   "kill_phases": dict(phases), "cases": self.results,
                   "failures": [f"{r['section']}: {r['case']}" for r in failures]}
        (RESULTS / "faults.json").write_text(json.dumps(payload, indent=1, default=str, ensure_ascii=False) + "\n")

        def cell(v) -> str:
            return str(v).replace("|", "\\|").replace("\n", " ")

        lines = [f"# Fault injection (`{env['command']}`)", "",
                 f"{env['date']} · {env['cpus']} CPUs, CPython {env['python']}, polars {env['polars']} · load average "
                 f"at start {env['load_average_at_start']} · code: {env['commit']} · {env['workers']} workers · "
                 f"whole bench {env['wall_seconds']:.0f} s", "",
                 "Corpus: a copy of sample_data/ (6 shards, 4,845 documents), stages of configs/sample.yaml (lid, "
                 "segment, dedup, quality). Every case runs `python -m corpusslim.cli run CONFIG --output DIR "
                 "--workers 2` as a separate process group; *identical* = kept/ + rejected/ byte-identical to the "
                 "uninterrupted reference run; *lost* / *duplicated* = input ids missing from / repeated in kept + "
                 "rejected of their shard.", ""]
        if phases:
            lines += ["Driver kill points by phase at the moment of the kill: " +
                      ", ".join(f"{k}: {v}" for k, v in sorted(phases.items(), key=lambda kv: str(kv[0]))), ""]
        lines += ["| # | case | what happened | documents lost | documents duplicated | output identical | wall s "
                  "| ok |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(self.results, 1):
            ident = "n/a" if r["identical"] is None else ("yes" if r["identical"] else "**no**")
            lost = "n/a" if r["lost"] is None else (str(r["lost"]) if not r["lost"] else f"**{r['lost']}**")
            dup = "n/a" if r["duplicated"] is None else (str(r["duplicated"]) if not r["duplicated"]
                                                         else f"**{r['duplicated']}**")
            lines.append(f"| {i} | {cell(r['section'])}: {cell(r['case'])} | {cell(r['what_happened'])} | {lost} | "
                         f"{dup} | {ident} | {r['seconds']:.0f} | {'ok' if r['ok'] else '**FAIL**'} |")
        lines += ["", f"{len(self.results) - len(failures)} of {len(self.results)} cases pass."]
        if failures:
            lines += ["", "## Failures", ""]
            for r in failures:
                check = r.get("check") or {}
                extra = {k: check[k] for k in ("differing_files", "conservation_notes", "tmp_left", "not_done",
                                               "manifest_inconsistent") if check.get(k)}
                lines.append(f"- **{r['section']}: {r['case']}** — {r['what_happened']}"
                             + (f" — {json.dumps(extra)[:600]}" if extra else ""))
        text = "\n".join(lines) + "\n"
        (RESULTS / "faults.md").write_text(text)
        print("\n" + text)
        return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-points", type=int, default=20, help="driver SIGKILL points (default 20)")
    parser.add_argument("--quick", action="store_true", help="6 kill points and a few cases per section")
    parser.add_argument("--only", default="kill,worker,disk,torn,input,insert",
                        help="comma-separated sections (the reference always runs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill delays")
    parser.add_argument("--work-dir", default="/tmp/corpusslim-bench/faults")
    args = parser.parse_args()
    if args.quick and args.kill_points == 20:
        args.kill_points = 6
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    started = time.monotonic()
    bench = Bench(args)
    bench.load_start = [round(x, 2) for x in os.getloadavg()]
    bench.start_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True).stdout.strip()
    bench.setup()
    bench.reference()
    for name in ("kill", "worker", "disk", "torn", "input", "insert"):
        if name in sections:
            print(f"\n== {name} ==", flush=True)
            try:
                getattr(bench, f"section_{name}")()
            except Exception as exc:  # noqa: BLE001 - a bench bug must not hide the other sections' results
                import traceback
                traceback.print_exc()
                bench.record(name, "bench error", f"the section stopped: {type(exc).__name__}: {exc}"[:400], 0.0,
                             None, False)
    return bench.write(started)


if __name__ == "__main__":
    sys.exit(main())
