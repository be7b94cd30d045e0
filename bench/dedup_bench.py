"""Dedup stage benchmark: accuracy against brute force, speed against datasketch, memory scaling.

    python bench/dedup_bench.py                       # everything (about an hour on 2 cores)
    python bench/dedup_bench.py --quick               # small smoke run (a few minutes)
    python bench/dedup_bench.py --only accuracy,bbc   # sections: accuracy, bbc, speed, memory
    python bench/dedup_bench.py --only memory --sizes 10000,100000,1000000 --max-minutes 25

Writes ``bench/results/dedup.json`` (every number) and ``bench/results/dedup.md`` (the tables, also printed).
Generated corpora and run directories go under ``--work-dir`` (default /tmp/corpusslim-bench). Data:
``../shared/data`` (``--data-dir``), else ``sample_data/`` (smaller runs; the BBC pair list is then absent).

1. Accuracy (section ``accuracy``). Corpus: random en_bbc_news, en_abc_news and zh_wiki documents, plus planted
   near duplicates of random ones (words edited until the exact shingle Jaccard to the source is within 0.015 of
   a target stratified over [0.5, 1.0]: scattered replacements / deletions / insertions, or one replaced block;
   Chinese edits are jieba words and the Jaccard is measured on the re-segmented text) and exact copies (case and
   white space changed), shuffled, in 4 Parquet shards. The whole pipeline runs on it (``corpusslim run`` with
   stages lid, segment, dedup). Ground truth: the documents that reach dedup (kept, or rejected by dedup), their
   shingle sets computed as the stage does (``shingles(text, seg)`` with the pipeline's own ``seg`` column),
   all-pairs exact Jaccard (sparse shingle-incidence product, checked against ``corpusslim.filters.minhash.jaccard``).
   Definitions, threshold t (0.8):

   * true pair: two documents with exact shingle Jaccard >= t;
   * a true pair is *found* when both documents end in the same duplicate cluster (same non-null
     ``dup_cluster``); recall = found / true pairs (also per Jaccard bucket; below t the "found" share is the
     share merged although below the threshold);
   * reported pair: (document, ``dup_of``) for every document rejected as ``exact_dup`` / ``near_dup``, i.e. the
     pair the output claims; it is a false positive when its exact Jaccard < t; precision = 1 - FP / reported.
     Also given: "linked" precision (the removed document has Jaccard >= t with at least one other member of its
     cluster), and the pair-level precision over all pairs inside clusters.
   * misses and false positives are explained from the run's own index files (band keys, signatures): no shared
     band; shared a band but the reduce step paired each document with the bucket's *earliest* member only; a
     candidate the signature estimate rejected; false positives as direct edges (estimate >= t > exact) or
     transitive (chained through other members).

   ``--sweep`` (on by default when a target is missed) reruns the pipeline with other bands x rows and verify
   settings on the same corpus (the defaults are never changed here).
2. BBC pairs (section ``bbc``): the pipeline on all of en_bbc_news (4 shards, file order); each exact / near pair
   of ``neardup/bbc_dup_pairs.tsv`` is found when both documents end in the same cluster.
3. Speed (section ``speed``): one process, CPU seconds (``time.process_time``), median of ``--runs`` interleaved
   runs over the same documents (accuracy corpus; Chinese ``seg`` computed beforehand): shingling, ``MinHasher
   .signatures``, both, the stage's map step (``DedupStage.index``: exact hash + shingles + signatures + band
   keys), datasketch 2.0 ``MinHash.update`` per shingle (a new ``MinHash`` per document) and ``MinHash.bulk``, all
   with scheme affine32, 112 permutations, seed 1 (signatures checked equal). The whole stage: dedup CPU seconds
   in stats.json / documents (map + reduce + verify + cluster + apply) of the accuracy runs and memory runs.
4. Memory (section ``memory``): synthetic corpora (sentences of the corpus files drawn at random into documents,
   a few words perturbed; 10 % near duplicates and 5 % exact duplicates of random earlier documents) in shards of
   ``--shard-size`` documents, stages lid + dedup, ``--workers`` workers. Reported: stats.json's
   ``memory_mb`` (ru_maxrss of the driver, max over worker tasks), RSS sampled every 0.2 s per phase (driver and
   worker processes), wall time, documents/s, candidate / verified / exact pairs. The largest size is replaced by
   300k when the estimate from the previous size exceeds ``--max-minutes``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from corpus import (  # noqa: E402
    AccuracyPlan,
    Shingler,
    Sources,
    SyntheticPlan,
    accuracy_corpus,
    sentence_pools,
    synthetic_corpus,
    write_shards,
)

RESULTS = REPO / "bench" / "results"
BUCKETS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0 + 1e-9)]
PHASES = ("startup", "map", "reduce", "verify", "cluster", "apply", "finish", "report", "exit")

# Stage settings the sweep tries (bands, rows, verify, threshold); the first is the default config.
DEFAULT_SWEEP = ["14x8:signature", "14x8:exact", "16x7:signature", "16x7:exact", "14x8:signature:0.75",
                 "18x6:exact", "16x7:none"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ==============================================================================================================
# Running the pipeline (a subprocess; driver and worker RSS sampled)
# ==============================================================================================================

# The same ``run()`` the CLI calls, with a Progress that prints phase boundaries (for per-phase memory).
DRIVER = r"""
import sys, time
from corpusslim.config import load_config
from corpusslim.runtime.runner import Progress, run
from corpusslim.tracker.stats import format_summary
class P(Progress):
    def start(self, total, done, dashboard): print("@@start", time.time(), file=sys.stderr, flush=True)
    def phase(self, name, tasks): print("@@phase", name, tasks, time.time(), file=sys.stderr, flush=True)
    def task(self, result): print("@@task", time.time(), file=sys.stderr, flush=True)
cfg = load_config(sys.argv[1], {"input": sys.argv[2], "output": sys.argv[3], "workers": int(sys.argv[4])})
stats = run(cfg, force=True, progress=P())
print("@@end", time.time(), file=sys.stderr, flush=True)
print(format_summary(stats))
"""


def write_config(path: Path, stages: list[dict], workers: int) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"input": "unused", "output": "unused", "workers": workers, "stages": stages},
                                   sort_keys=False))
    return path


def resolved_spec(out_dir: Path) -> str:
    """The dedup settings a run actually used (its validated config.json), as BANDSxROWS:VERIFY[:THRESHOLD]."""
    try:
        cfg = json.loads((out_dir / "config.json").read_text())
        d = next(st for st in cfg["stages"] if st["kind"] == "dedup")
        return f"{d['bands']}x{d['rows']}:{d['verify']}" + (f":{d['threshold']:g}" if d["threshold"] != 0.8 else "")
    except (OSError, KeyError, StopIteration, ValueError):
        return "?"


def dedup_stage(spec: str = "14x8:signature") -> dict:
    """A dedup stage config from "BANDSxROWS:VERIFY[:THRESHOLD]" (everything else default)."""
    parts = spec.split(":")
    bands, rows = map(int, parts[0].split("x"))
    stage = {"kind": "dedup", "bands": bands, "rows": rows, "verify": parts[1] if len(parts) > 1 else "signature"}
    stage["threshold"] = float(parts[2]) if len(parts) > 2 else 0.8
    if bands * rows > 112:
        stage["num_perm"] = bands * rows
    return stage


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (the kernel's high-water mark, what ru_maxrss reports), RssAnon, RssFile, RssShmem in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """RSS of a process and of its descendants every ``interval`` seconds, and the driver's /proc status
    (its VmHWM catches peaks shorter than the interval: a jump of VmHWM between two samples dates the peak)."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float, float, int]] = []  # time, driver MB, max child MB, children
        self.status: list[tuple[float, dict]] = []  # time, driver /proc status
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                driver = self.proc.memory_info().rss / 2**20
                self.status.append((time.time(), proc_status(self.proc.pid)))
                kids = []
                for child in self.proc.children(recursive=True):
                    try:
                        kids.append(child.memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
                self.samples.append((time.time(), driver, max(kids, default=0.0), len(kids)))
            except psutil.Error:
                break
            self.stop.wait(self.interval)


def run_pipeline(stages: list[dict], input_dir: Path, out_dir: Path, workers: int, via: str = "cli") -> dict:
    """One run of the whole pipeline in a fresh process; returns stats.json, the manifest's cluster record, the
    wall time and sampled memory (per phase when ``via="driver"``)."""
    cfg = write_config(out_dir.parent / f"{out_dir.name}.yaml", stages, workers)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    if via == "cli":
        exe = shutil.which("corpusslim") or str(Path(sys.executable).with_name("corpusslim"))
        cmd = [exe, "run", str(cfg), "--input", str(input_dir), "--output", str(out_dir), "--workers", str(workers),
               "--force"]
    else:
        cmd = [sys.executable, "-c", DRIVER, str(cfg), str(input_dir), str(out_dir), str(workers)]
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    events: list[tuple[float, str]] = []
    err_tail: list[str] = []

    def read_err() -> None:
        for line in proc.stderr:
            parts = line.split()
            if parts and parts[0] == "@@phase":
                events.append((float(parts[-1]), parts[1]))  # a phase by its first word: "link round 3" -> link
            elif parts and parts[0] in ("@@task", "@@start", "@@end"):
                events.append((float(parts[1]), parts[0][2:]))
            else:
                err_tail.append(line)
                del err_tail[:-40]

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    stdout = proc.stdout.read()
    proc.wait()
    reader.join()
    sampler.stop.set()
    sampler.join()
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline failed ({' '.join(cmd)}):\n{''.join(err_tail)}\n{stdout}")
    stats = json.loads((out_dir / "stats.json").read_text())
    manifest = json.loads((out_dir / "_manifest.json").read_text())
    sections = manifest["sections"]
    clusters = {k: v for k, v in sections.get("clusters", {}).get("all", {}).items()
                if k in ("candidate_pairs", "verified_pairs", "exact_pairs", "cpu_seconds", "members")}
    phase_peaks = _phase_peaks(sampler.samples, events)
    hwm = _hwm_jumps(sampler.status, events)
    dedup = next((s for s in stats["stages"] if s["stage"] == "dedup"), None)
    unit_peaks = {sec: max((u.get("peak_rss_mb", 0.0) for u in sections.get(sec, {}).values()), default=None)
                  for sec in ("map", "reduce", "shards")}
    return {
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
        "wall_seconds": round(wall, 2), "stats_wall_seconds": stats["totals"]["wall_seconds"],
        "docs_in": stats["totals"]["docs_in"], "cpu_seconds": stats["totals"]["cpu_seconds"],
        "memory_mb": stats["memory_mb"], "clusters": clusters,
        "dedup": {"docs_in": dedup["docs_in"], "cpu_seconds": dedup["cpu_seconds"], "removed": dedup["removed"]}
        if dedup else None,
        "stage_cpu": {s["stage"]: s["cpu_seconds"] for s in stats["stages"]},
        "map_cpu_seconds": round(sum(u.get("map_cpu_seconds", 0.0) for u in sections.get("map", {}).values()), 3),
        "reduce_cpu_seconds": round(sum(u.get("cpu_seconds", 0.0) for u in sections.get("reduce", {}).values()), 3),
        "task_peak_rss_mb": unit_peaks,
        "sampled": {"driver_max_mb": round(max((s[1] for s in sampler.samples), default=0.0), 1),
                    "worker_max_mb": round(max((s[2] for s in sampler.samples), default=0.0), 1),
                    "samples": len(sampler.samples), "phases": phase_peaks, "driver_hwm": hwm},
    }


def _phase_at(t: float, events: list[tuple[float, str]]) -> str:
    name = "startup"
    for te, e in events:
        if te > t:
            break
        if e not in ("task", "start"):
            name = e
    return name


def _hwm_jumps(status: list[tuple[float, dict]], events: list[tuple[float, str]]) -> dict:
    """The driver's VmHWM at the end, and the sampling intervals in which it rose by more than 20 MiB (with the
    phase and the anonymous / file-backed RSS around them)."""
    jumps = []
    prev = None
    for t, st in status:
        if "VmHWM" not in st:
            continue
        if prev is not None and st["VmHWM"] - prev[1]["VmHWM"] > 20:
            jumps.append({"t": round(t - status[0][0], 2), "phase": _phase_at(t, events),
                          "hwm_before": round(prev[1]["VmHWM"], 1), "hwm_after": round(st["VmHWM"], 1),
                          "rss_after": round(st.get("VmRSS", 0), 1), "anon_after": round(st.get("RssAnon", 0), 1),
                          "file_after": round(st.get("RssFile", 0), 1), "shmem_after": round(st.get("RssShmem", 0), 1)})
        prev = (t, st)
    last = next((st for _, st in reversed(status) if "VmHWM" in st), {})
    return {"final_hwm": round(last.get("VmHWM", 0.0), 1), "jumps": jumps[:20]}


def _phase_peaks(samples: list[tuple], events: list[tuple[float, str]]) -> dict:
    """Max sampled driver / worker RSS and seconds per phase. Phases start at the runner's ``phase`` call;
    ``cluster`` is the driver's work between the last verify task and the start of apply (before issue 19's
    linking on the workers; now ``link``)."""
    if not events:
        return {}
    bounds: list[tuple[float, str]] = []
    last_task = None
    current = "startup"
    for t, e in events:
        if e == "task":
            last_task = t
            continue
        if e == "start":
            continue
        if e == "end":
            if current == "apply" and last_task is not None:
                bounds.append((last_task, "finish"))
            bounds.append((t, "exit"))
            current = "exit"
            continue
        if e == "apply" and current == "verify" and last_task is not None:
            bounds.append((last_task, "cluster"))
        if e == "verify" and current == "reduce" and last_task is not None:
            pass  # reading and merging candidate pairs happens before the verify phase starts: count it as verify
        if not bounds or bounds[-1][1] != e:
            bounds.append((t, e))
        current = e
    out: dict[str, dict] = {}
    first = samples[0][0] if samples else 0.0
    timeline = [(first, "startup")] + bounds
    for i, (t0, name) in enumerate(timeline):
        t1 = timeline[i + 1][0] if i + 1 < len(timeline) else float("inf")
        inside = [s for s in samples if t0 <= s[0] < t1]
        slot = out.setdefault(name, {"seconds": 0.0, "driver_mb": None, "worker_mb": None})
        slot["seconds"] = round(slot["seconds"] + max(0.0, min(t1, samples[-1][0]) - t0 if samples else 0.0), 2)
        if inside:
            slot["driver_mb"] = round(max(slot["driver_mb"] or 0.0, max(s[1] for s in inside)), 1)
            slot["worker_mb"] = round(max(slot["worker_mb"] or 0.0, max(s[2] for s in inside)), 1)
    return out


def read_outputs(out_dir: Path):
    import polars as pl

    frames = [pl.read_parquet(p) for d in ("kept", "rejected") for p in sorted((out_dir / d).glob("*.parquet"))]
    df = pl.concat(frames, how="diagonal_relaxed")
    for col in ("reject_stage", "reject_reason", "dup_of", "dup_cluster", "seg"):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    return df


# ==============================================================================================================
# Brute force
# ==============================================================================================================

def all_pairs_jaccard(sets: list[set[str]], floor: float) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair (i < j) of shingle sets with Jaccard >= ``floor`` (> 0): the sparse product of
    the document x shingle incidence matrix gives every intersection size at once. Pairs of two empty sets have
    Jaccard 1 (``corpusslim.filters.minhash.jaccard``'s convention)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for s in sets:
        indices.extend(vocab.setdefault(x, len(vocab)) for x in s)
        indptr.append(len(indices))
    n = len(sets)
    a = csr_matrix((np.ones(len(indices), dtype=np.int32), np.asarray(indices, dtype=np.int64),
                    np.asarray(indptr, dtype=np.int64)), shape=(n, max(1, len(vocab))))
    inter = (a @ a.T).tocoo()
    upper = inter.row < inter.col
    r, c, x = inter.row[upper], inter.col[upper], inter.data[upper].astype(np.float64)
    sizes = np.diff(np.asarray(indptr))
    j = x / (sizes[r] + sizes[c] - x)
    keep = j >= floor
    out = {(int(i), int(k)): float(v) for i, k, v in zip(r[keep], c[keep], j[keep])}
    empty = [i for i, s in enumerate(sets) if not s]
    for p, i in enumerate(empty):
        for k in empty[p + 1:]:
            out[(i, k)] = 1.0
    return out


def bucket_of(j: float) -> str | None:
    for lo, hi in BUCKETS:
        if lo <= j < hi:
            return f"{lo:.1f}-{min(hi, 1.0):.1f}"
    return None


# ==============================================================================================================
# 1. Accuracy
# ==============================================================================================================

class Truth:
    """Documents that reached dedup in a run, their shingle sets (as the stage computes them) and brute-force
    pairs."""

    def __init__(self, df, threshold: float):
        import polars as pl

        from corpusslim.filters.minhash import DEFAULT_N, DEFAULT_N_ZH, shingles

        reached = df.filter(pl.col("reject_stage").is_null() | (pl.col("reject_stage") == "dedup")).sort("id")
        self.ids: list[str] = reached["id"].to_list()
        self.pos = {d: i for i, d in enumerate(self.ids)}
        self.n_input = df.height
        self.lid_rejected = df.filter(pl.col("reject_stage") == "lid").height
        self.langs = reached["lang"].to_list()
        self.sets = [set(shingles(t, s, DEFAULT_N, DEFAULT_N_ZH))
                     for t, s in zip(reached["text"].to_list(), reached["seg"].to_list())]
        self.meta = {c: reached[c].to_list() for c in ("planted", "origin", "planted_jaccard") if c in reached.columns}
        t0 = time.process_time()
        self.pairs = all_pairs_jaccard(self.sets, 0.5)
        self.brute_seconds = time.process_time() - t0
        self.threshold = threshold
        self._check()

    def _check(self) -> None:
        """The sparse brute force agrees with ``corpusslim.filters.minhash.jaccard`` (sampled pairs and random
        non-pairs)."""
        from corpusslim.filters.minhash import jaccard

        rng = random.Random(0)
        keys = rng.sample(sorted(self.pairs), min(3000, len(self.pairs)))
        for i, k in keys:
            assert abs(jaccard(self.sets[i], self.sets[k]) - self.pairs[(i, k)]) < 1e-12, (i, k)
        n = len(self.sets)
        for _ in range(3000):
            i, k = sorted(rng.sample(range(n), 2))
            if (i, k) not in self.pairs:
                assert jaccard(self.sets[i], self.sets[k]) < 0.5, (i, k)
        self.checked = len(keys) + 3000

    def j(self, a: str, b: str) -> float:
        from corpusslim.filters.minhash import jaccard

        i, k = sorted((self.pos[a], self.pos[b]))
        return self.pairs.get((i, k)) if (i, k) in self.pairs else jaccard(self.sets[i], self.sets[k])

    def planted_pair(self, i: int, k: int) -> bool:
        o = self.meta.get("origin")
        return bool(o) and o[i] == o[k]


def evaluate(df, truth: Truth, out_dir: Path, threshold: float, verify: str = "signature") -> dict:
    """Precision / recall of one run's clusters against the brute-force truth (definitions in the docstring)."""
    import polars as pl

    t = threshold
    reached = df.filter(pl.col("id").is_in(truth.ids))
    cluster = dict(zip(reached["id"].to_list(), reached["dup_cluster"].to_list()))
    clu = [cluster[d] for d in truth.ids]
    kept_of = dict(zip(reached["id"].to_list(), reached["reject_stage"].is_null().to_list()))
    kept = [kept_of[d] for d in truth.ids]
    # Recall per bucket (all pairs >= 0.5, planted pairs separately).
    per_bucket: dict[str, Counter] = defaultdict(Counter)
    missed: list[tuple[int, int, float]] = []
    both_kept = 0
    for (i, k), j in truth.pairs.items():
        b = bucket_of(j)
        same = clu[i] is not None and clu[i] == clu[k]
        dedup = not (kept[i] and kept[k])
        per_bucket[b]["pairs"] += 1
        per_bucket[b]["found"] += same
        per_bucket[b]["deduplicated"] += dedup
        if truth.planted_pair(i, k):
            per_bucket[b]["planted"] += 1
            per_bucket[b]["planted_found"] += same
        if j >= t and not same:
            missed.append((i, k, j))
        if j >= t and not dedup:
            both_kept += 1
    true_pairs = sum(1 for j in truth.pairs.values() if j >= t)
    found = true_pairs - len(missed)
    # Reported pairs: (doc, dup_of).
    rej = reached.filter(pl.col("reject_stage") == "dedup")
    reported = list(zip(rej["id"].to_list(), rej["dup_of"].to_list(), rej["reject_reason"].to_list()))
    rep_j = [(a, b, r, truth.j(a, b)) for a, b, r in reported]
    fps = [(a, b, r, j) for a, b, r, j in rep_j if j < t]
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(clu):
        if c is not None:
            members[c].append(i)
    linked = 0
    for a, _b, _r, j in rep_j:
        i = truth.pos[a]
        if j >= t or any(truth.pairs.get(tuple(sorted((i, k))), 0.0) >= t for k in members[cluster[a]] if k != i):
            linked += 1
    in_cluster = sum(len(m) * (len(m) - 1) // 2 for m in members.values())
    in_cluster_true = sum(1 for (i, k), j in truth.pairs.items() if j >= t and clu[i] is not None and clu[i] == clu[k])
    by_reason = Counter(r for _, _, r, _ in rep_j)
    fp_by_reason = Counter(r for _, _, r, _ in fps)
    diag = explain(out_dir, truth, missed, fps, t, verify)
    return {
        "docs_reaching_dedup": len(truth.ids), "true_pairs": true_pairs, "found": found,
        "recall": found / true_pairs if true_pairs else None,
        "both_kept": both_kept, "dedup_recall": 1 - both_kept / true_pairs if true_pairs else None,
        "reported_pairs": len(reported), "false_positives": len(fps),
        "precision": 1 - len(fps) / len(reported) if reported else None,
        "linked_precision": linked / len(reported) if reported else None,
        "cluster_pair_precision": in_cluster_true / in_cluster if in_cluster else None,
        "cluster_pairs": in_cluster, "clusters": len(members),
        "reported_by_reason": dict(by_reason), "fp_by_reason": dict(fp_by_reason),
        "fp_jaccard": sorted(round(j, 3) for *_, j in fps),
        "buckets": {b: dict(c) for b, c in sorted(per_bucket.items())},
        "diagnosis": diag,
    }


def explain(out_dir: Path, truth: Truth, missed, fps, t: float, verify: str = "signature") -> dict:
    """Why pairs were missed and why false positives were reported, from the run's index files (the band keys
    and signatures the pipeline itself computed): the reduce step is re-enacted (each document paired with the
    earliest member of each of its band buckets)."""
    import numpy as np
    import polars as pl

    idx = pl.concat([pl.read_parquet(p) for p in sorted((out_dir / "index").glob("*.parquet"))])
    bands = [c for c in idx.columns if c.startswith("band_")]
    if not bands:
        return {}
    doc_of = dict(zip(idx["id"].to_list(), idx["_doc"].to_list()))
    sig = {d: s for d, s in zip(idx["_doc"].to_list(), idx["sig"].to_numpy())}
    keys = {d: row for d, row in zip(idx["_doc"].to_list(), idx.select(bands).to_numpy())}
    emitted: set[tuple[int, int]] = set()
    for b in bands:
        g = idx.select("_doc", b).with_columns(m=pl.col("_doc").min().over(b)).filter(pl.col("_doc") != pl.col("m"))
        emitted.update(zip(g["_doc"].to_list(), g["m"].to_list()))
    ex = idx.select("_doc", "exact").with_columns(m=pl.col("_doc").min().over("exact")).filter(
        pl.col("_doc") != pl.col("m"))
    emitted_exact = set(zip(ex["_doc"].to_list(), ex["m"].to_list()))

    def estimate(a: int, b: int) -> float:
        return float(np.mean(sig[a] == sig[b]))

    why_missed = Counter()
    examples = []
    for i, k, j in missed:
        a, b = doc_of[truth.ids[i]], doc_of[truth.ids[k]]
        hi, lo = max(a, b), min(a, b)
        if (hi, lo) in emitted or (hi, lo) in emitted_exact:
            reason = {"signature": "candidate, signature estimate < threshold" if estimate(a, b) < t else None,
                      "exact": None, "none": None}[verify] or (
                "verified edge, but the later document links to its earliest duplicate, which has another root "
                "(chain clustering)")
        elif np.any(keys[a] == keys[b]):
            reason = "shared a band, not paired (bucket's earliest member was another document)"
        else:
            reason = "no shared band (LSH miss)"
        why_missed[reason] += 1
        if len(examples) < 8:
            examples.append({"a": truth.ids[i], "b": truth.ids[k], "jaccard": round(j, 3),
                             "estimate": round(estimate(a, b), 3), "reason": reason})
    why_fp = Counter()
    for x, y, r, _j in fps:
        a, b = doc_of[x], doc_of[y]
        hi, lo = max(a, b), min(a, b)
        if r == "exact_dup":
            why_fp["exact_dup with Jaccard < threshold"] += 1
        elif (hi, lo) in emitted and verify == "signature" and estimate(a, b) >= t:
            why_fp["direct edge: signature estimate >= threshold > exact"] += 1
        elif (hi, lo) in emitted and verify == "none":
            why_fp["direct edge: unverified candidate"] += 1
        else:
            why_fp["transitive: joined through other cluster members"] += 1
    return {"missed": dict(why_missed), "missed_examples": examples, "false_positives": dict(why_fp)}


def accuracy_section(args, sources: Sources, results: dict) -> None:
    shingler = Shingler()
    plan = AccuracyPlan()
    if args.quick:
        plan = AccuracyPlan(base={"en_bbc_news": 150, "en_abc_news": 150, "zh_wiki": 120}, near=150, exact=20)
    log(f"accuracy: building the corpus from {sources.description} ...")
    t0 = time.time()
    docs = accuracy_corpus(sources, plan, shingler)
    work = args.work_dir / "accuracy"
    columns = ("id", "text", "source", "origin", "planted", "target", "planted_jaccard")
    write_shards(docs, work / "input", plan.shards, columns)
    planted = [d for d in docs if d["planted"] == "near"]
    achieved = Counter(bucket_of(d["planted_jaccard"]) or "<0.5" for d in planted)
    off = [abs(d["planted_jaccard"] - d["target"]) for d in planted]
    corpus_info = {"documents": len(docs), "base": sum(d["planted"] == "base" for d in docs),
                   "near_planted": len(planted), "exact_planted": sum(d["planted"] == "exact" for d in docs),
                   "planted_by_bucket": dict(sorted(achieved.items())), "shards": plan.shards,
                   "target_error_median": round(statistics.median(off), 4) if off else None,
                   "languages": dict(Counter(d["lang"] for d in docs)), "build_seconds": round(time.time() - t0, 1),
                   "base_sources": plan.base}
    log(f"accuracy: {len(docs)} documents ({corpus_info})")
    runs = []
    stages = [{"kind": "lid"}, {"kind": "segment"}, {"kind": "dedup"}]  # dedup with the shipped defaults
    truth = None
    evals = {}
    for r in range(args.runs):
        log(f"accuracy: default config, run {r + 1}/{args.runs} ...")
        out = work / "out-default"
        run = run_pipeline(stages, work / "input", out, args.workers, via="cli")
        df = read_outputs(out)
        if truth is None:
            spec = resolved_spec(out)
            default = dedup_stage(spec)
            default_key = f"default = {spec}"
            truth = Truth(df, default["threshold"])
            evals[default_key] = evaluate(df, truth, out, default["threshold"], default["verify"])
            first = df.sort("id").select("id", "reject_reason", "dup_of", "dup_cluster")
        else:
            same = df.sort("id").select("id", "reject_reason", "dup_of", "dup_cluster").equals(first)
            run["identical_to_first"] = same
        runs.append(run)
    results["accuracy"] = {"corpus": corpus_info, "threshold": default["threshold"], "runs": runs,
                           "truth": {"docs_reaching_dedup": len(truth.ids), "lid_rejected": truth.lid_rejected,
                                     "pairs_ge_0.5": len(truth.pairs),
                                     "true_pairs": sum(j >= default["threshold"] for j in truth.pairs.values()),
                                     "brute_force_cpu_seconds": round(truth.brute_seconds, 2),
                                     "checked_against_jaccard": truth.checked},
                           "configs": evals}
    ev = evals[default_key]
    missed_target = (ev["precision"] or 0) < 0.98 or (ev["recall"] or 0) < 0.95
    sweep = args.sweep if args.sweep is not None else ([] if args.quick else DEFAULT_SWEEP)
    for spec in sweep:
        log(f"accuracy: sweep {spec} ...")
        out = work / f"out-{spec.replace(':', '_')}"
        stage = dedup_stage(spec)
        run = run_pipeline([{"kind": "lid"}, {"kind": "segment"}, stage], work / "input", out, args.workers, via="cli")
        e = evaluate(read_outputs(out), truth, out, default["threshold"], stage["verify"])
        e["run"] = run
        e["stage"] = stage
        evals[spec] = e
    results["accuracy"]["default_meets_targets"] = not missed_target
    results["accuracy"]["default"] = default_key


# ==============================================================================================================
# 2. BBC pairs
# ==============================================================================================================

def bbc_section(args, sources: Sources, results: dict) -> None:
    pairs = sources.bbc_pairs()
    if pairs is None:
        results["bbc"] = {"skipped": "neardup/bbc_dup_pairs.tsv not available (no ../shared/data)"}
        log("bbc: skipped (no shared data)")
        return
    docs = [{"id": i, "text": t} for i, t in sources.docs("en_bbc_news")]
    work = args.work_dir / "bbc"
    write_shards(docs, work / "input", 4, ("id", "text"))
    results["bbc"] = {"documents": len(docs), "configs": {}}
    truth = None
    for spec in args.bbc_configs:
        log(f"bbc: pipeline on {len(docs)} en_bbc_news documents, dedup {spec} ...")
        out = work / f"out-{spec.replace(':', '_')}"
        stage = {"kind": "dedup"} if spec == "default" else dedup_stage(spec)
        run = run_pipeline([{"kind": "lid"}, {"kind": "segment"}, stage], work / "input", out, args.workers,
                           via="cli")
        if spec == "default":
            spec = f"default = {resolved_spec(out)}"
            stage = dedup_stage(spec.split(" = ")[1])
        df = read_outputs(out)
        cluster = dict(zip(df["id"].to_list(), df["dup_cluster"].to_list()))
        stage_of = dict(zip(df["id"].to_list(), df["reject_stage"].to_list()))
        truth = truth or Truth(df, 0.8)
        table: dict[str, Counter] = defaultdict(Counter)
        missed = []
        for p in pairs:
            if p["kind"] not in ("exact", "near"):
                continue
            a, b = p["doc_a"], p["doc_b"]
            same = cluster.get(a) is not None and cluster.get(a) == cluster.get(b)
            j = truth.j(a, b) if a in truth.pos and b in truth.pos else None
            group = f"{p['kind']}, J {'>=' if j is not None and j >= 0.8 else '<'} 0.8"
            for key in (p["kind"], group, "all", f"all, J {'>=' if j is not None and j >= 0.8 else '<'} 0.8"):
                table[key]["pairs"] += 1
                table[key]["found"] += same
            if not same:
                missed.append({"a": a, "b": b, "kind": p["kind"], "jaccard_word5_tsv": float(p["jaccard_word5"]),
                               "jaccard_stage_shingles": None if j is None else round(j, 4),
                               "stages": [stage_of.get(a), stage_of.get(b)]})
        ev = evaluate(df, truth, out, 0.8, stage.get("verify", "signature"))
        results["bbc"]["configs"][spec] = {
            "pairs": {k: dict(v) for k, v in sorted(table.items())}, "missed": missed, "run": run,
            "all_pairs_eval": {k: ev[k] for k in ("true_pairs", "found", "recall", "reported_pairs",
                                                  "false_positives", "precision", "diagnosis")}}


# ==============================================================================================================
# 3. Speed
# ==============================================================================================================

def speed_section(args, sources: Sources, results: dict) -> None:
    import numpy as np
    import polars as pl
    from datasketch import MinHash

    from corpusslim.dedup.stage import DedupConfig, DedupStage
    from corpusslim.filters.minhash import MinHasher, shingles

    shingler = Shingler()
    n_docs = 300 if args.quick else args.speed_docs
    rng = random.Random(3)
    pool = [(t, "en") for name in ("en_bbc_news", "en_abc_news") for _, t in sources.docs(name)]
    zh = [(t, "zh") for _, t in sources.docs("zh_wiki")]
    n_zh = min(len(zh), round(n_docs * 0.3))
    chosen = rng.sample(pool, n_docs - n_zh) + rng.sample(zh, n_zh)
    rng.shuffle(chosen)
    texts = [t for t, _ in chosen]
    segs = [shingler.seg(t, lang) for t, lang in chosen]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    P, seed, scheme = 112, 1, "affine32"
    mh = MinHasher(P, seed, scheme)
    sh = [shingles(t, s) for t, s in zip(texts, segs)]
    n_sh = sum(map(len, sh))
    df = pl.DataFrame({"_row": pl.Series(range(len(texts)), dtype=pl.UInt32), "id": [str(i) for i in range(len(texts))],
                       "text": texts, "seg": pl.Series(segs, dtype=pl.String)})
    stage = DedupStage(DedupConfig())

    def ds_update():
        out = np.empty((len(sh), P), dtype=np.uint64)
        for i, doc in enumerate(sh):
            m = MinHash(num_perm=P, seed=seed, scheme=scheme)
            for s in doc:
                m.update(s.encode("utf-8"))
            out[i] = m.hashvalues
        return out

    def ds_bulk():
        ms = MinHash.bulk([[s.encode("utf-8") for s in doc] for doc in sh], num_perm=P, seed=seed, scheme=scheme)
        return np.array([m.hashvalues for m in ms], dtype=np.uint64)

    methods = {
        "shingling alone (`shingles`, en word / zh jieba-word 5-grams)":
            lambda: [shingles(t, s) for t, s in zip(texts, segs)],
        "`MinHasher.signatures` (shingles given)": lambda: mh.signatures(sh),
        "shingling + `MinHasher.signatures`": lambda: mh.signatures([shingles(t, s) for t, s in zip(texts, segs)]),
        "map step `DedupStage.index` (exact hash + shingles + signatures + band keys)": lambda: stage.index(df, 0),
        "(a) datasketch `MinHash.update` per shingle": ds_update,
        "(b) datasketch `MinHash.bulk`": ds_bulk,
    }
    times: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    log(f"speed: {len(texts)} documents, {n_sh:,} shingles, {args.runs} interleaved runs ...")
    for _ in range(args.runs):
        for name, fn in methods.items():
            t0 = time.process_time()
            outputs[name] = fn()
            times[name].append(time.process_time() - t0)
    ours = outputs["`MinHasher.signatures` (shingles given)"]
    equal_update = bool(np.array_equal(ours, outputs["(a) datasketch `MinHash.update` per shingle"]))
    equal_bulk = bool(np.array_equal(ours, outputs["(b) datasketch `MinHash.bulk`"]))
    base = statistics.median(times["(a) datasketch `MinHash.update` per shingle"])
    rows = []
    for name, ts in times.items():
        sec = statistics.median(ts)
        rows.append({"method": name, "cpu_seconds": round(sec, 4), "docs_per_s": round(len(texts) / sec, 1),
                     "mb_per_s": round(mb / sec, 2), "vs_update": round(base / sec, 2),
                     "runs": [round(x, 4) for x in ts]})
    import datasketch

    results["speed"] = {"documents": len(texts), "zh_documents": n_zh, "mb": round(mb, 2), "shingles": n_sh,
                        "num_perm": P, "scheme": scheme, "runs": args.runs, "rows": rows,
                        "equal_to_datasketch": {"update": equal_update, "bulk": equal_bulk},
                        "datasketch": datasketch.__version__ if hasattr(datasketch, "__version__") else "?"}


# ==============================================================================================================
# 4. Memory scaling
# ==============================================================================================================

# One measurement per fresh process (clean ru_maxrss): argv = run dir, what.
PROFILE = r"""
import json, os, resource, sys, time
from corpusslim.dedup.tasks import reduce_candidates
from corpusslim.runtime.shard_io import is_intact, read_checked
from corpusslim.runtime.keys import DOC
run_dir, what = sys.argv[1], sys.argv[2]
maps = json.load(open(os.path.join(run_dir, "_manifest.json")))["sections"]["map"]
records = [maps[k]["index"] for k in sorted(maps, key=lambda k: maps[k]["shard_number"])]
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"what": what, "docs": sum(r["rows"] for r in records), "shards": len(records)}
if what.startswith("reduce:"):
    parts = int(what.split(":")[1])
    out["rss_before_mb"] = round(rss(), 1)
    c0 = time.process_time()
    for p in range(parts):
        reduce_candidates("t", records, "band_000", p, parts, os.path.join(sys.argv[3], f"pairs-{p}.parquet"))
    out.update(peak_mb=round(rss(), 1), cpu_s=round(time.process_time() - c0, 2))
elif what == "reads":
    n = min(20, len(records))
    for name, fn in (("sha256 of the index file (is_intact)", lambda r: is_intact(r)),
                     ("read_checked [_doc, id]", lambda r: read_checked(r, [DOC, "id"])),
                     ("read_checked [_doc, band_000]", lambda r: read_checked(r, [DOC, "band_000"])),
                     ("read_checked [_doc, sig]", lambda r: read_checked(r, [DOC, "sig"]))):
        c0 = time.process_time()
        for r in records[:n]:
            fn(r)
        out[name] = round((time.process_time() - c0) / n * 1e3, 2)
    out["index_file_mb"] = round(records[0]["bytes"] / 1e6, 2)
print("@@" + json.dumps(out))
"""


def profile_tasks(run_dir: Path, work: Path) -> dict:
    """Memory and time of one reduce task (partitions 1, 4, 10) and the cost of one index-file read, on a finished
    run's index files; each in a fresh process. (The verify task is not profiled here: it is now a per-shard gather
    plus worker-to-worker payloads scheduled by ``corpusslim.dedup.driver.DedupLinker``.)"""
    work.mkdir(parents=True, exist_ok=True)
    prof = {}
    for what in ("reduce:1", "reduce:4", "reduce:10", "reads"):
        log(f"memory: profiling {what} on {run_dir} ...")
        res = subprocess.run([sys.executable, "-c", PROFILE, str(run_dir), what, str(work)], cwd=REPO,
                             capture_output=True, text=True)
        line = next((x for x in res.stdout.splitlines() if x.startswith("@@")), None)
        prof[what] = json.loads(line[2:]) if line else {"error": res.stderr[-2000:]}
    return prof


def memory_section(args, sources: Sources, results: dict) -> None:
    sizes = list(args.sizes)
    shard = args.shard_size
    pools = None
    stages = [{"kind": "lid"}, {"kind": "dedup"}]
    rows = []
    notes = []
    results["memory"] = {"shard_size": shard, "workers": args.workers, "stages": "lid, dedup (defaults)",
                         "rows": rows, "notes": notes}
    for n_i, size in enumerate(sizes):
        if rows and args.max_minutes:
            import math

            prev = rows[-1]
            per_doc = prev["wall_seconds_median"] / prev["docs"]
            growth = 1.0  # growth of the wall time per document per 10x more documents, from the last two sizes
            if len(rows) >= 2:
                pp = rows[-2]
                ratio = per_doc / (pp["wall_seconds_median"] / pp["docs"])
                growth = max(1.0, ratio ** (1 / math.log10(prev["docs"] / pp["docs"])))
            est = per_doc * size * growth ** math.log10(size / prev["docs"]) / 60
            log(f"memory: estimated {est:.1f} min for {size:,} documents")
            if est > args.max_minutes:
                fallback = args.fallback_size
                est_fb = per_doc * fallback * growth ** math.log10(fallback / prev["docs"]) / 60
                notes.append(f"{size:,} documents estimated at {est:.0f} min (> {args.max_minutes:g} min; from the "
                             f"{prev['docs']:,}-document run: {per_doc * 1e3:.2f} ms/document wall, growth "
                             f"{growth:.2f}x per document per 10x documents); ran {fallback:,} instead "
                             f"(estimated {est_fb:.0f} min)")
                size = fallback
        corpus_dir = args.work_dir / "memory" / f"synthetic-{size}-{shard}"
        info_path = corpus_dir / "corpus.json"
        if info_path.exists():
            info = json.loads(info_path.read_text())
        else:
            if pools is None:
                log("memory: building sentence pools ...")
                pools = sentence_pools(sources)
            log(f"memory: writing a synthetic corpus of {size:,} documents ...")
            t0 = time.time()
            if corpus_dir.exists():
                shutil.rmtree(corpus_dir)
            info = synthetic_corpus(pools, SyntheticPlan(docs=size, shard_size=shard), corpus_dir, log=log)
            info["build_seconds"] = round(time.time() - t0, 1)
            info["pool_sentences"] = {k: len(v) for k, v in pools.items()}
            info_path.write_text(json.dumps(info, indent=1))
        n_runs = args.mem_runs if size <= args.repeat_up_to else 1
        runs = []
        for r in range(n_runs):
            log(f"memory: {size:,} documents, run {r + 1}/{n_runs} ...")
            out = args.work_dir / "memory" / f"out-{size}"
            runs.append(run_pipeline(stages, corpus_dir, out, args.workers, via="driver"))
            if not args.keep_outputs and not (n_i == len(sizes) - 1 and r == n_runs - 1):
                shutil.rmtree(out, ignore_errors=True)  # the largest run is kept for profiling
        med = lambda f, runs=runs: statistics.median(f(x) for x in runs)  # noqa: E731
        rows.append({
            "docs": size, "shards": info["shards"], "corpus": info, "runs": len(runs),
            "wall_seconds_median": round(med(lambda x: x["wall_seconds"]), 1),
            "docs_per_s": round(size / med(lambda x: x["wall_seconds"]), 1),
            "driver_peak_rss_mb": max(x["memory_mb"]["driver_peak_rss"] for x in runs),
            "worker_peak_rss_mb": max(x["memory_mb"]["worker_peak_rss"] for x in runs),
            "sampled_driver_max_mb": max(x["sampled"]["driver_max_mb"] for x in runs),
            "sampled_worker_max_mb": max(x["sampled"]["worker_max_mb"] for x in runs),
            "candidate_pairs": runs[0]["clusters"].get("candidate_pairs"),
            "verified_pairs": runs[0]["clusters"].get("verified_pairs"),
            "verified_pairs_unique": runs[0]["clusters"].get("verified_pairs_unique"),
            "exact_pairs": runs[0]["clusters"].get("exact_pairs"),
            "cluster_members": runs[0]["clusters"].get("members"),
            "dedup_cpu_per_doc_ms": round(1e3 * med(lambda x: x["dedup"]["cpu_seconds"] / x["dedup"]["docs_in"]), 3),
            "dedup_docs_per_cpu_s": round(med(lambda x: x["dedup"]["docs_in"] / x["dedup"]["cpu_seconds"]), 1),
            "run_details": runs,
        })
        write_results(args, results)  # keep what is measured so far
    if rows:
        largest = args.work_dir / "memory" / f"out-{rows[-1]['docs']}"
        results["memory"]["profile"] = profile_tasks(largest, args.work_dir / "memory" / "profile")
        if not args.keep_outputs:
            shutil.rmtree(largest, ignore_errors=True)


# ==============================================================================================================
# Report
# ==============================================================================================================

def md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def per_doc_ms(runs: list[dict]) -> list[str]:
    """Median dedup map and reduce+verify+cluster CPU ms per document reaching dedup, over ``runs``."""
    return [f"{statistics.median(cpu(x) / x['dedup']['docs_in'] * 1e3 for x in runs):.3f}"
            for cpu in (lambda x: x["map_cpu_seconds"], lambda x: x["clusters"]["cpu_seconds"])]


def render(results: dict) -> str:
    out = [f"# Dedup benchmark (`python bench/dedup_bench.py {results['meta']['argv']}`)", "",
           f"{results['meta']['when']} · {results['meta']['machine']} · data: {results['meta']['data']} · "
           f"load average at start {results['meta']['loadavg']} · code: {results['meta'].get('git')}", ""]
    acc = results.get("accuracy")
    if acc:
        c, tr = acc["corpus"], acc["truth"]
        out += ["## 1. Accuracy against brute force", "", f"Code measured: {results['accuracy'].get('code', '?')}.", "",
                f"Corpus: {c['documents']:,} documents ({c['base']:,} base from {c['base_sources']}, "
                f"{c['near_planted']} planted near duplicates, {c['exact_planted']} exact copies; languages "
                f"{c['languages']}), {c['shards']} shards. Planted near duplicates by achieved Jaccard: "
                f"{c['planted_by_bucket']} (median |achieved - target| {c['target_error_median']}). "
                f"{tr['docs_reaching_dedup']:,} documents reach dedup ({tr['lid_rejected']} rejected by lid); "
                f"brute force: {tr['pairs_ge_0.5']:,} pairs with Jaccard >= 0.5, {tr['true_pairs']:,} >= "
                f"{acc['threshold']} ({tr['brute_force_cpu_seconds']} CPU s; {tr['checked_against_jaccard']:,} "
                f"pairs re-checked with `corpusslim.filters.minhash.jaccard`).", ""]
        head = ["config (bands x rows : verify [: threshold])", "true pairs", "same cluster", "recall (same cluster)",
                "recall (not both kept)", "reported pairs",
                "false pos.", "precision", "linked precision", "pairs in clusters with J >= t", "candidates",
                "verified", "exact", "dedup ms CPU/doc"]
        rows = []
        for spec, e in acc["configs"].items():
            run = e.get("run") or acc["runs"][0]
            cl = run["clusters"]
            rows.append([spec, e["true_pairs"], e["found"],
                         pct(e["recall"]), pct(e.get("dedup_recall")), e["reported_pairs"], e["false_positives"],
                         pct(e["precision"]),
                         pct(e["linked_precision"]), pct(e["cluster_pair_precision"]), cl.get("candidate_pairs"),
                         cl.get("verified_pairs"), cl.get("exact_pairs"),
                         f"{1e3 * run['dedup']['cpu_seconds'] / run['dedup']['docs_in']:.3f}"])
        out += [md_table(head, rows), ""]
        buckets = sorted({b for e in acc["configs"].values() for b in e["buckets"]})
        head = ["Jaccard bucket", "pairs (planted)"] + [f"same cluster, {s}" for s in acc["configs"]]
        rows = []
        first = next(iter(acc["configs"].values()))
        for b in buckets:
            bb = first["buckets"].get(b, {})
            row = [b, f"{bb.get('pairs', 0)} ({bb.get('planted', 0)})"]
            for e in acc["configs"].values():
                x = e["buckets"].get(b, {})
                row.append(f"{pct(x.get('found', 0) / x['pairs'])} / {pct(x.get('deduplicated', 0) / x['pairs'])}"
                           if x.get("pairs") else "-")
            rows.append(row)
        out += ["Per exact-Jaccard bucket: share of pairs that end in one cluster / share of pairs not both kept "
                "(recall for buckets >= 0.8; below 0.8, the share merged or thinned although under the threshold):",
                "", md_table(head, rows), ""]
        rows = []
        for spec, e in acc["configs"].items():
            d = e["diagnosis"]
            rows.append([spec, "; ".join(f"{k}: {v}" for k, v in d.get("missed", {}).items()) or "-",
                         "; ".join(f"{k}: {v}" for k, v in d.get("false_positives", {}).items()) or "-",
                         ", ".join(map(str, e["fp_jaccard"][:12])) + (" …" if len(e["fp_jaccard"]) > 12 else "")])
        out += ["Why true pairs were missed and why reported pairs were false positives:", "",
                md_table(["config", "missed true pairs", "false positives", "false-positive Jaccards"], rows), ""]
        r = acc["runs"]
        out += [f"Default config runs: wall {[x['wall_seconds'] for x in r]} s; outputs identical across runs: "
                f"{all(x.get('identical_to_first', True) for x in r)}.", ""]
    bbc = results.get("bbc")
    if bbc:
        out += ["## 2. Recall on the BBC duplicate pairs", "", f"Code measured: {results['bbc'].get('code', '?')}.", ""]
        if "skipped" in bbc:
            out += [bbc["skipped"], ""]
        else:
            confs = bbc["configs"]
            keys = sorted({k for c in confs.values() for k in c["pairs"]})
            first = next(iter(confs.values()))
            rows = [[k, first["pairs"][k]["pairs"]]
                    + [f"{c['pairs'][k].get('found', 0)} "
                       f"({pct(c['pairs'][k].get('found', 0) / c['pairs'][k]['pairs'])})"
                       for c in confs.values()] for k in keys]
            out += [f"Pipeline (lid, segment, dedup) on all {bbc['documents']:,} en_bbc_news documents in 4 shards "
                    "(file order); a pair is found when both end in the same cluster. J = exact Jaccard of the "
                    "stage's shingle sets.", "",
                    md_table(["pairs", "count"] + [f"found, {s}" for s in confs], rows), ""]
            for spec, c in confs.items():
                above = [m for m in c["missed"] if (m["jaccard_stage_shingles"] or 0) >= 0.8]
                below = len(c["missed"]) - len(above)
                out += [f"{spec}: {below} listed pairs with J < 0.8 not merged (as intended at threshold 0.8)"
                        + (", missed with J >= 0.8: " + "; ".join(
                            f"{m['a']} / {m['b']} ({m['kind']}, J {m['jaccard_stage_shingles']})" for m in above)
                           if above else ", no pair with J >= 0.8 missed") + ".", ""]
                e = c["all_pairs_eval"]
                out += [f"{spec}, against brute force on the same run: {e['found']}/{e['true_pairs']} pairs with "
                        f"J >= 0.8 found (recall {pct(e['recall'])}); {e['false_positives']}/{e['reported_pairs']} "
                        f"reported pairs below 0.8 (precision {pct(e['precision'])}); misses "
                        f"{e['diagnosis'].get('missed')}, false positives {e['diagnosis'].get('false_positives')}.",
                        ""]
    sp = results.get("speed")
    if sp:
        out += ["## 3. Speed", "", f"Code measured: {results['speed'].get('code', '?')}.", "",
                f"{sp['documents']:,} documents ({sp['zh_documents']} zh_wiki with jieba `seg` computed beforehand, "
                f"the rest BBC/ABC), {sp['mb']} MB, {sp['shingles']:,} shingles; {sp['num_perm']} permutations, "
                f"scheme {sp['scheme']}, datasketch {sp['datasketch']}; one process, CPU seconds, median of "
                f"{sp['runs']} interleaved runs. Signatures equal to datasketch's: {sp['equal_to_datasketch']}.", "",
                md_table(["method", "CPU s", "docs/s per core", "MB/s", "vs (a)"],
                         [[r["method"], r["cpu_seconds"], f"{r['docs_per_s']:,.0f}", r["mb_per_s"],
                           f"{r['vs_update']:.1f}x"] for r in sp["rows"]]), ""]
        stage_rows = []
        if acc:
            r = acc["runs"]
            per = [x["dedup"]["docs_in"] / x["dedup"]["cpu_seconds"] for x in r]
            stage_rows.append([f"accuracy corpus, lid+segment+dedup ({r[0]['dedup']['docs_in']:,} docs reach "
                               f"dedup), {len(r)} runs", f"{statistics.median(per):,.0f}",
                               *per_doc_ms(r),
                               f"{statistics.median(x['docs_in'] / x['wall_seconds'] for x in r):,.0f}"])
        mem = results.get("memory")
        if mem:
            for row in mem["rows"]:
                r = row["run_details"]
                stage_rows.append([f"synthetic {row['docs']:,} docs, lid+dedup, {len(r)} run(s)",
                                   f"{row['dedup_docs_per_cpu_s']:,.0f}",
                                   *per_doc_ms(r),
                                   f"{row['docs_per_s']:,.0f}"])
        if stage_rows:
            out += ["Whole dedup stage in the pipeline (stats.json: dedup `cpu_seconds` = map + share of reduce / "
                    "verify / cluster + apply, per document reaching dedup):", "",
                    md_table(["run", "dedup docs/s per core", "map ms/doc", "reduce+verify+cluster ms/doc",
                              "whole run docs/s (wall, 2 workers)"], stage_rows), ""]
    mem = results.get("memory")
    if mem:
        out += ["## 4. Memory scaling", "", f"Code measured: {results['memory'].get('code', '?')}.", "",
                f"Stages {mem['stages']}, {mem['workers']} workers, shards of {mem['shard_size']:,} documents. "
                "driver / worker peak = stats.json `memory_mb` (ru_maxrss, MiB); sampled = RSS every 0.2 s. "
                "Caveat: Linux keeps ru_maxrss across execve, so a process's ru_maxrss is at least the peak RSS "
                "of the process that forked it; the driver is started by this script, so when this script is "
                "large (e.g. right after generating a corpus in memory) stats.json's driver peak shows the "
                "script's size, not the driver's; compare with the sampled columns and the driver's VmHWM in the "
                "JSON (`driver_hwm`).", ""]
        for n in mem["notes"]:
            out += [f"Note: {n}", ""]
        def before_report(r: dict) -> str:
            ph = r["run_details"][0]["sampled"]["phases"]
            vals = [v["driver_mb"] for k, v in ph.items() if k not in ("report", "exit") and v["driver_mb"]]
            return f"{max(vals, default=0.0)}"

        head = ["documents", "shards", "runs", "wall s (median)", "docs/s", "driver peak MB", "worker peak MB",
                "sampled driver MB before report", "sampled driver / worker MB (whole run)", "candidate pairs",
                "verified pairs", "exact pairs", "cluster members"]
        rows = [[f"{r['docs']:,}", r["shards"], r["runs"], r["wall_seconds_median"], f"{r['docs_per_s']:,.0f}",
                 r["driver_peak_rss_mb"], r["worker_peak_rss_mb"], before_report(r),
                 f"{r['sampled_driver_max_mb']} / {r['sampled_worker_max_mb']}", f"{r['candidate_pairs']:,}",
                 f"{r['verified_pairs']:,}" + (f" ({r['verified_pairs_unique']:,} distinct)"
                                               if r.get("verified_pairs_unique") not in (None, r["verified_pairs"])
                                               else ""), f"{r['exact_pairs']:,}", f"{r['cluster_members'] or 0:,}"]
                for r in mem["rows"]]
        out += [md_table(head, rows), ""]
        seen = [p for p in PHASES if any(p in r["run_details"][0]["sampled"]["phases"] for r in mem["rows"])]
        head = ["documents"] + [f"{p} s / driver MB / worker MB" for p in seen]
        rows = []
        for r in mem["rows"]:
            ph = r["run_details"][0]["sampled"]["phases"]
            rows.append([f"{r['docs']:,}"] + [
                f"{ph[p]['seconds']} / {ph[p]['driver_mb'] or '-'} / {ph[p]['worker_mb'] or '-'}" if p in ph else "-"
                for p in seen])
        prof = mem.get("profile")
        if prof and "reduce:1" in prof and "error" not in prof["reduce:1"]:
            p1 = prof["reduce:1"]
            prow = [[f"reduce task, partitions {k.split(':')[1]} (all partitions of band_000 in turn)",
                     f"{prof[k]['rss_before_mb']} -> {prof[k]['peak_mb']}", prof[k]["cpu_s"]]
                    for k in ("reduce:1", "reduce:4", "reduce:10") if "peak_mb" in prof.get(k, {})]
            rd = prof.get("reads", {})
            reads = ", ".join(f"{k} {v} ms" for k, v in rd.items() if k not in ("what", "docs", "shards",
                                                                                  "index_file_mb"))
            out += [f"Tasks profiled on the index files of the {p1['docs']:,}-document run ({p1['shards']} shards), "
                    "each in a fresh process:", "",
                    md_table(["task", "ru_maxrss MB (before -> peak)", "CPU s"], prow), "",
                    f"One index file ({rd.get('index_file_mb')} MB) costs: {reads}.", ""]
        out += ["Per phase (first run; seconds and sampled RSS maxima, '-' = phase shorter than one sample; "
                "`cluster` = driver work between the last verify task and the apply phase (the merge of the "
                "candidate pairs happens at the end of `reduce`); `report` = the runner's ledger and HTML report, "
                "after stats.json's memory figures were taken; `exit` = interpreter exit):", "",
                md_table(head, rows), ""]
    return "\n".join(out)


def git_state() -> str:
    """HEAD and the pipeline/filters files modified in the working tree (the code actually measured)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipeline", "filters"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
        return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def write_results(args, results: dict) -> None:
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=1, default=str))
    (out / f"{args.name}.md").write_text(render(results) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-dir", type=Path, default=None, help="shared data (default ../shared/data)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/corpusslim-bench"))
    ap.add_argument("--results-dir", type=Path, default=None,
                    help="default bench/results (--quick: WORK_DIR/results, so a smoke run never overwrites them)")
    ap.add_argument("--name", default="dedup", help="results file name (without extension)")
    ap.add_argument("--only", default="accuracy,bbc,speed,memory")
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--runs", type=int, default=3, help="repeats for timings (medians)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sweep", default=None,
                    help="comma-separated BANDSxROWS:VERIFY[:THRESHOLD] to try on the accuracy corpus "
                         "(default: the built-in list when a target is missed; 'none' to skip)")
    ap.add_argument("--bbc-configs", default="default,14x8:signature,14x8:exact,16x7:exact",
                    help="dedup settings for the BBC pairs run ('default' = the shipped defaults)")
    ap.add_argument("--speed-docs", type=int, default=2000)
    ap.add_argument("--sizes", default=None, help="memory: document counts (default 10000,100000,1000000)")
    ap.add_argument("--shard-size", type=int, default=None, help="memory: documents per shard (default 10000)")
    ap.add_argument("--mem-runs", type=int, default=3, help="memory: runs per size up to --repeat-up-to")
    ap.add_argument("--repeat-up-to", type=int, default=100_000)
    ap.add_argument("--max-minutes", type=float, default=25.0)
    ap.add_argument("--fallback-size", type=int, default=300_000)
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the JSON results")
    ap.add_argument("--profile-run", type=Path, default=None,
                    help="only profile the reduce tasks and index reads on this finished run directory "
                         "(kept memory run)")
    args = ap.parse_args(argv)
    sources = Sources(args.data_dir)
    if args.sweep is not None:
        args.sweep = [] if args.sweep == "none" else [s for s in args.sweep.split(",") if s]
    args.bbc_configs = [s for s in args.bbc_configs.split(",") if s]
    if args.sizes:
        args.sizes = [int(x) for x in args.sizes.split(",")]
    elif args.quick:
        args.sizes = [5000, 20000]
    else:
        args.sizes = [10_000, 100_000, 1_000_000] if sources.shared else [10_000, 100_000]
    args.shard_size = args.shard_size or (2500 if args.quick else 10_000)
    if args.quick:
        args.runs = min(args.runs, 3)
        args.speed_docs = 300
    if args.results_dir is None:
        args.results_dir = args.work_dir / "results" if args.quick else RESULTS
    only = set() if args.profile_run else set(args.only.split(","))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    import polars as pl

    results = {"meta": {"argv": " ".join(sys.argv[1:]), "when": time.strftime("%Y-%m-%d %H:%M"),
                        "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} "
                                   f"{platform.python_version()}, polars {pl.__version__}",
                        "data": sources.description, "loadavg": [round(x, 2) for x in os.getloadavg()],
                        "git": git_state()}}
    results_path = Path(args.results_dir) / f"{args.name}.json"
    if results_path.exists() and only != {"accuracy", "bbc", "speed", "memory"}:
        previous = json.loads(results_path.read_text())  # keep the sections not rerun
        for k in ("accuracy", "bbc", "speed", "memory"):
            if k in previous and k not in only:
                results[k] = previous[k]
    if args.render_only:
        results = json.loads(results_path.read_text())
        write_results(args, results)
        print(render(results))
        return
    if args.profile_run:
        if not (args.profile_run / "_manifest.json").is_file():
            raise SystemExit(f"--profile-run: {args.profile_run} holds no finished run")
        results["memory"]["profile"] = profile_tasks(args.profile_run, args.work_dir / "memory" / "profile")
        write_results(args, results)
        print(render(results))
        return
    for name, fn in (("accuracy", accuracy_section), ("bbc", bbc_section), ("speed", speed_section),
                     ("memory", memory_section)):
        if name in only:
            t0 = time.time()
            code = git_state()
            fn(args, sources, results)
            if isinstance(results.get(name), dict):
                results[name]["code"] = code
            log(f"{name}: done in {time.time() - t0:.0f} s")
            write_results(args, results)
    print(render(results))


if __name__ == "__main__":
    main()
