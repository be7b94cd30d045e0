"""Throughput of each pipeline stage against the bare library calls it wraps, and of the whole job.

    python bench/stage_throughput.py                          # sample_data/*.parquet, one batch per shard
    python bench/stage_throughput.py --data ../shared/data/corpus --zh-share 0.3 --min-chars 200 --max-chars 5000
    python bench/stage_throughput.py --runs 5 --profile       # + cProfile of every stage (top functions)
    python bench/stage_throughput.py --no-e2e                 # stages only

Per stage, one core (this process, ``POLARS_MAX_THREADS=1``), after a warm-up pass (models, dictionary and
tokenizer loaded), the same batches of documents go through

* the **stage** as the pipeline runs it: ``input_step`` (token counting), ``LidStage.process``,
  ``SegmentStage.process``, ``DedupStage.index`` (the map step), ``QualityStage.process``; each stage gets the
  documents that reach it in the pipeline (lid sees every document, segment lid's survivors, dedup and quality
  segment's output -- without dedup's removals, which need the global reduce);
* the **bare** library calls on the same texts in a plain loop:
  tokens  ``len(enc.encode_ordinary(t))`` (o200k_base, bpe-openai);
  lid     ``model.predict(heads, k=1)``, the heads (first ``max_chars`` characters, line breaks as spaces) built
          before timing;
  segment ``jieba.lcut(t, HMM=False)`` on the Chinese documents only;
  dedup   ``MinHasher.signatures`` on shingles built before timing (the kernel), and, as rows of their own,
          shingling (``corpusslim.filters.minhash.shingles``) and ``exact_hashes``;
  quality ``document_stats`` + ``first_failure`` per document (the statistics loop alone).

Timing: CPU seconds (``time.process_time``; wall clock in the JSON), summed over the batches. Each of ``--runs``
repetitions times stage and bare back to back, alternating which goes first (A B, B A, ...); the ratio reported is
the median of the per-repetition ratios stage / bare (target <= 1.25), the times the medians. MB = 10^6 bytes of
UTF-8 text of the documents each side processes (segment: stage MB/s over all its input, bare over Chinese only).

End to end: ``corpusslim run CONFIG --output <fresh dir>`` ``--e2e-runs`` times (default 3; 2 Dask workers unless
the config says otherwise), on sample_data or, with ``--data``, on the same documents written as Parquet shards.
Reported from stats.json: documents/s = totals.docs_in / totals.wall_seconds, CPU s per document =
totals.cpu_seconds / docs_in (the stages' CPU as the workers record it), and the CPU of the whole process tree
(driver, scheduler, workers; ``getrusage(RUSAGE_CHILDREN)``) per document. ``e2e ÷ bare`` divides the pipeline's
CPU per document by the sum of the bare rows' CPU per document measured above (tokens, fastText, jieba, shingling +
signatures + exact hashes, quality statistics) -- on the same documents only when the e2e input is the stage input.

Results: ``bench/results/stages.json`` and ``stages.md`` (``--out-dir``).
"""
from __future__ import annotations

import os

# One core: polars' thread pool (and any BLAS/OpenMP pool) to a single thread, before polars is imported.
os.environ.setdefault("POLARS_MAX_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import glob  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpusslim.dedup.stage import DedupConfig, DedupStage  # noqa: E402
from corpusslim.filters.langid import cjk_by_script  # noqa: E402
from corpusslim.filters.minhash import MinHasher, exact_hashes, shingles  # noqa: E402
from corpusslim.filters.quality import document_stats, first_failure  # noqa: E402
from corpusslim.runtime.inputs import ROW, Shard, read_shard  # noqa: E402
from corpusslim.runtime.resources import language_identifier, tokenizer  # noqa: E402
from corpusslim.runtime.worker import input_step  # noqa: E402
from corpusslim.stages.lid import LidConfig, LidStage  # noqa: E402
from corpusslim.stages.quality import QualityStage, QualityStageConfig  # noqa: E402
from corpusslim.stages.segment import SegmentConfig, SegmentStage  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "sample.yaml"
DEFAULT_OUT = REPO / "bench" / "results"
MAX_DOC_CHARS = 1_000_000
TARGET = 1.25


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------
def _expand(paths: list[str]) -> list[str]:
    files: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.parquet")) + glob.glob(os.path.join(p, "*.jsonl")))
        elif glob.has_magic(p):
            files += sorted(glob.glob(p))
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise SystemExit(f"--data: no such file or directory: {p}")
    if not files:
        raise SystemExit(f"--data: no .parquet or .jsonl files in {paths}")
    return files


def _read_docs(path: str) -> list[tuple[str, str]]:
    """(id, text) of one JSONL or Parquet file; ids prefixed with the file stem so they stay unique."""
    stem = Path(path).name.split(".")[0]
    if path.endswith(".parquet"):
        df = pl.read_parquet(path)
        ids = df["id"].cast(pl.String).to_list() if "id" in df.columns else [None] * df.height
        texts = df["text"].to_list()
    else:
        ids, texts = [], []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    ids.append(rec.get("id"))
                    texts.append(rec.get("text"))
    return [(f"{stem}:{i if d is None else d}", t) for i, (d, t) in enumerate(zip(ids, texts)) if t]


def load_batches(args) -> tuple[list[tuple[int, pl.DataFrame]], dict]:
    """[(shard number, frame with _row, id, text)], and a description of the data."""
    if not args.data:
        paths = sorted(glob.glob(str(REPO / "sample_data" / "*.parquet")))
        batches = [(i, read_shard(Shard(p, Path(p).stem, i))) for i, p in enumerate(paths)]
        return batches, {"source": "sample_data/*.parquet", "batches": "one per shard", "files": len(paths)}
    files = _expand(args.data)
    rng = random.Random(args.seed)
    pools: dict[str, list[tuple[str, str]]] = {"zh": [], "other": []}
    for f in files:
        docs = [d for d in _read_docs(f) if args.min_chars <= len(d[1]) <= args.max_chars]
        pools["zh" if Path(f).name.startswith("zh") else "other"].extend(docs)
    if args.zh_share is not None:
        # Files whose names start with "zh" are the Chinese pool, every other file the rest.
        s = args.zh_share
        limit = min(len(pools["zh"]) / s if s > 0 else float("inf"),
                    len(pools["other"]) / (1 - s) if s < 1 else float("inf"))
        n = min(args.docs or int(limit), int(limit))
        n_zh = round(n * s)
        docs = rng.sample(pools["zh"], n_zh) + rng.sample(pools["other"], n - n_zh)
        rng.shuffle(docs)
    else:
        docs = pools["other"] + pools["zh"]
        rng.shuffle(docs)
        docs = docs[: args.docs] if args.docs else docs
    size = args.batch_docs
    batches = []
    for b, start in enumerate(range(0, len(docs), size)):
        chunk = docs[start:start + size]
        df = pl.DataFrame({"id": [d[0] for d in chunk], "text": [d[1] for d in chunk]}).with_row_index(ROW)
        batches.append((b, df))
    desc = {"source": [os.path.relpath(f, REPO) for f in files], "zh_share": args.zh_share, "docs": len(docs),
            "chars": [args.min_chars, args.max_chars], "batch_docs": size, "seed": args.seed}
    return batches, desc


# ----------------------------------------------------------------------------------------------------------------
# Per-batch inputs of every stage and every bare loop
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    number: int
    raw: pl.DataFrame  # input of the token step
    lid_in: pl.DataFrame = None
    seg_in: pl.DataFrame = None
    post_seg: pl.DataFrame = None  # input of dedup's map step and of quality
    texts: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    zh_texts: list[str] = field(default_factory=list)
    dd_texts: list[str] = field(default_factory=list)
    dd_segs: list = field(default_factory=list)
    dd_shingles: list = field(default_factory=list)
    q_langs: list = field(default_factory=list)
    ld_heads: list[str] = field(default_factory=list)  # heads lid hands to langdetect (fastText unsure)


class Bench:
    def __init__(self, args):
        self.lid = LidStage(LidConfig())
        self.seg = SegmentStage(SegmentConfig())
        self.dedup = DedupStage(DedupConfig())
        self.quality = QualityStage(QualityStageConfig())
        lc, dc = self.lid.config, self.dedup.config
        self.identifier = language_identifier(lc.model_path, lc.max_chars, lc.langdetect_below)
        self.model = self.identifier._model()
        self.encode = tokenizer().encode_ordinary
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self.lcut = jieba.lcut
        self.hasher = MinHasher(dc.num_perm, dc.seed, dc.scheme)
        self.qcfg = self.quality.config

    def prepare(self, number: int, raw: pl.DataFrame) -> Batch:
        b = Batch(number, raw)
        b.texts = raw["text"].to_list()
        b.lid_in, _, _ = input_step(raw, MAX_DOC_CHARS, 0.0)
        # Record the heads the stage hands to langdetect (a private hook of LanguageIdentifier; without it the
        # langdetect row is left out).
        hook = getattr(self.identifier, "_detect_langs", None)
        if hook is not None:
            def recording(head, _orig=hook):
                b.ld_heads.append(head)
                return _orig(head)
            self.identifier._detect_langs = recording
        try:
            b.seg_in, _ = self.lid.process(b.lid_in)
        finally:
            if hook is not None:
                del self.identifier._detect_langs  # back to the class attribute
        b.post_seg, _ = self.seg.process(b.seg_in)
        mc = self.lid.config.max_chars
        b.heads = [t[:mc].replace("\n", " ").replace("\r", " ") for t in b.lid_in["text"].to_list()]
        b.zh_texts = b.seg_in.filter(pl.col("lang").is_in(self.seg.config.languages))["text"].to_list()
        b.dd_texts = b.post_seg["text"].to_list()
        b.dd_segs = b.post_seg["seg"].to_list()
        b.q_langs = b.post_seg["lang"].to_list()
        dc = self.dedup.config
        b.dd_shingles = [shingles(t, s, dc.ngram, dc.ngram_zh) for t, s in zip(b.dd_texts, b.dd_segs)]
        return b

    # -- the timed callables, one batch each ----------------------------------------------------------------------
    def stage_tokens(self, b):
        return input_step(b.raw, MAX_DOC_CHARS, 0.0)

    def bare_tokens(self, b):
        enc = self.encode
        return [len(enc(t)) for t in b.texts]

    def stage_lid(self, b):
        return self.lid.process(b.lid_in)

    def bare_lid(self, b):
        return self.model.predict(b.heads, k=1)

    def bare_script(self, b):
        return [cjk_by_script(h) for h in b.heads]

    def bare_langdetect(self, b):
        detect = self.identifier._detect_langs
        return [detect(h) for h in b.ld_heads]

    def stage_segment(self, b):
        return self.seg.process(b.seg_in)

    def bare_segment(self, b):
        lcut = self.lcut
        return [lcut(t, HMM=False) for t in b.zh_texts]

    def stage_dedup(self, b):
        return self.dedup.index(b.post_seg, b.number)

    def bare_signatures(self, b):
        return self.hasher.signatures(b.dd_shingles)

    def bare_shingles(self, b):
        dc = self.dedup.config
        return [shingles(t, s, dc.ngram, dc.ngram_zh) for t, s in zip(b.dd_texts, b.dd_segs)]

    def bare_exact(self, b):
        return exact_hashes(b.dd_texts)

    def stage_quality(self, b):
        return self.quality.process(b.post_seg)

    def bare_quality(self, b):
        cfg = self.qcfg
        return [first_failure(document_stats(t, lang, s, cfg=cfg), lang, cfg)
                for t, lang, s in zip(b.dd_texts, b.q_langs, b.dd_segs)]


def _mb(texts) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


def timed(fn: Callable, batches: list[Batch]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``fn`` over every batch."""
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    for b in batches:
        fn(b)
    return time.process_time() - c0, time.perf_counter() - w0


# Each row: name, stage callable (or None for a bare-only row), bare callables summed as "bare", texts of each side.
def rows(bench: Bench) -> list[dict]:
    return [
        {"name": "tokens (input step)", "stage": bench.stage_tokens, "bare": [bench.bare_tokens],
         "bare_desc": "len(encode_ordinary(t)), o200k_base", "stage_texts": lambda b: b.texts,
         "bare_texts": lambda b: b.texts},
        {"name": "lid", "stage": bench.stage_lid, "bare": [bench.bare_lid],
         "bare_desc": "fastText predict(heads, k=1)", "stage_texts": lambda b: b.lid_in["text"].to_list(),
         "bare_texts": lambda b: b.lid_in["text"].to_list(),
         "extra": {"cjk_by_script (every head)": (bench.bare_script, lambda b: b.lid_in["text"].to_list()),
                   "langdetect (heads fastText is unsure of)": (bench.bare_langdetect, lambda b: b.ld_heads)},
         "extra_desc": "fastText + script check + langdetect"},
        {"name": "segment", "stage": bench.stage_segment, "bare": [bench.bare_segment],
         "bare_desc": "jieba.lcut(t, HMM=False), zh docs", "stage_texts": lambda b: b.seg_in["text"].to_list(),
         "bare_texts": lambda b: b.zh_texts},
        {"name": "dedup map", "stage": bench.stage_dedup, "bare": [bench.bare_signatures],
         "bare_desc": "MinHasher.signatures(precomputed shingles)", "stage_texts": lambda b: b.dd_texts,
         "bare_texts": lambda b: b.dd_texts,
         "extra": {"shingling": (bench.bare_shingles, lambda b: b.dd_texts),
                   "exact_hashes": (bench.bare_exact, lambda b: b.dd_texts)},
         "extra_desc": "shingling + signatures + exact hashes"},
        {"name": "quality", "stage": bench.stage_quality, "bare": [bench.bare_quality],
         "bare_desc": "document_stats + first_failure loop", "stage_texts": lambda b: b.dd_texts,
         "bare_texts": lambda b: b.dd_texts},
    ]


def measure(bench: Bench, batches: list[Batch], runs: int, only: set[str] | None) -> list[dict]:
    results = []
    for row in rows(bench):
        if only and not any(o in row["name"] for o in only):
            continue
        extra = row.get("extra", {})
        sides = {"stage": row["stage"], "bare": row["bare"][0], **{k: fn for k, (fn, _) in extra.items()}}
        per_run: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        for r in range(runs):
            order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))  # A B ..., then ... B A
            for k in order:
                per_run[k].append(timed(sides[k], batches))
        n_stage = sum(len(row["stage_texts"](b)) for b in batches)
        n_bare = sum(len(row["bare_texts"](b)) for b in batches)
        mb_stage = sum(_mb(row["stage_texts"](b)) for b in batches)
        mb_bare = sum(_mb(row["bare_texts"](b)) for b in batches)
        med = {k: max(statistics.median(c for c, _ in v), 1e-9) for k, v in per_run.items()}
        med_wall = {k: statistics.median(w for _, w in v) for k, v in per_run.items()}
        ratios = [s[0] / b[0] for s, b in zip(per_run["stage"], per_run["bare"])]
        out = {
            "stage": row["name"], "bare": row["bare_desc"],
            "stage_docs": n_stage, "stage_mb": round(mb_stage, 3), "bare_docs": n_bare, "bare_mb": round(mb_bare, 3),
            "stage_cpu_s": round(med["stage"], 4), "bare_cpu_s": round(med["bare"], 4),
            "stage_wall_s": round(med_wall["stage"], 4), "bare_wall_s": round(med_wall["bare"], 4),
            "stage_docs_per_s": round(n_stage / med["stage"], 1), "stage_mb_per_s": round(mb_stage / med["stage"], 3),
            "bare_docs_per_s": round(n_bare / med["bare"], 1), "bare_mb_per_s": round(mb_bare / med["bare"], 3),
            "ratio": round(statistics.median(ratios), 3), "ratios": [round(x, 3) for x in ratios],
            "runs_cpu_s": {k: [round(c, 4) for c, _ in v] for k, v in per_run.items()},
        }
        if row["name"] == "lid":
            out["langdetect_calls"] = sum(len(b.ld_heads) for b in batches)
        if "extra" in row:
            out["extra_cpu_s"] = {k: round(med[k], 4) for k in extra}
            out["extra_docs"] = {k: sum(len(tf(b)) for b in batches) for k, (_, tf) in extra.items()}
            out["extra_docs_per_s"] = {k: round(out["extra_docs"][k] / med[k], 1) for k in extra}
            out["extra_mb_per_s"] = {k: round(sum(_mb(tf(b)) for b in batches) / med[k], 3)
                                     for k, (_, tf) in extra.items()}
            kernels = [tuple(per_run[k][i][0] for k in ("bare", *row["extra"])) for i in range(runs)]
            out["all_kernels"] = row["extra_desc"]
            out["ratio_vs_all_kernels"] = round(statistics.median(
                s[0] / sum(k) for s, k in zip(per_run["stage"], kernels)), 3)
        results.append(out)
        print(f"  {row['name']:<20} stage {med['stage']:.3f} s  bare {med['bare']:.3f} s  "
              f"ratio {out['ratio']:.2f}" + (f"  (vs {row['extra_desc']} {out['ratio_vs_all_kernels']:.2f})"
                                              if "extra" in row else ""), file=sys.stderr)
    return results


def profile(bench: Bench, batches: list[Batch], top: int) -> dict[str, str]:
    """cProfile of each stage over every batch (one pass): the top functions by own time."""
    out = {}
    for name, fn in [("tokens (input step)", bench.stage_tokens), ("lid", bench.stage_lid),
                     ("segment", bench.stage_segment), ("dedup map", bench.stage_dedup),
                     ("quality", bench.stage_quality)]:
        prof = cProfile.Profile()
        prof.enable()
        for b in batches:
            fn(b)
        prof.disable()
        s = io.StringIO()
        st = pstats.Stats(prof, stream=s)
        st.strip_dirs().sort_stats("tottime").print_stats(top)
        out[name] = "\n".join(line for line in s.getvalue().splitlines()
                              if line.strip() and not line.startswith(("   Ordered by", "   List reduced")))
    return out


# ----------------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------------
def write_input(batches: list[tuple[int, pl.DataFrame]], directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    for n, df in batches:
        df.select("id", "text").write_parquet(os.path.join(directory, f"shard-{n:03d}.parquet"))
    return directory


def end_to_end(config: Path, input_dir: str | None, runs: int, workers: int | None, tmp: str) -> dict:
    exe = shutil.which("corpusslim") or "corpusslim"
    per_run = []
    for i in range(runs):
        out = os.path.join(tmp, f"e2e-{i}")
        cmd = [exe, "run", str(config), "--output", out]
        if input_dir:
            cmd += ["--input", input_dir]
        if workers:
            cmd += ["--workers", str(workers)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        stats = json.loads(Path(out, "stats.json").read_text())
        t = stats["totals"]
        tree_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        # CPU the workers spent loading models (tokenizer, fastText + langdetect, jieba), where the runner records
        # it: per final shard result (an apply result carries its map step's share)
        manifest = json.loads(Path(out, "_manifest.json").read_text())
        startup = sum(u.get("startup_cpu_seconds", 0.0) for u in manifest.get("sections", {}).get("shards", {}).values()
                      if isinstance(u, dict))
        per_run.append({
            "docs_in": t["docs_in"], "wall_seconds": t["wall_seconds"], "command_wall_seconds": round(wall, 3),
            "docs_per_s": t["docs_in"] / t["wall_seconds"], "cpu_seconds": t["cpu_seconds"],
            "cpu_s_per_doc": t["cpu_seconds"] / t["docs_in"], "tree_cpu_seconds": round(tree_cpu, 3),
            "tree_cpu_s_per_doc": tree_cpu / t["docs_in"], "startup_cpu_seconds": round(startup, 3),
            "cpu_s_per_doc_without_startup": (t["cpu_seconds"] - startup) / t["docs_in"],
            "stage_cpu_seconds": {s["stage"]: s["cpu_seconds"] for s in stats["stages"]},
            "workers": workers,
        })
        print(f"  e2e run {i + 1}: {t['docs_in']} docs, wall {t['wall_seconds']:.2f} s "
              f"({t['docs_in'] / t['wall_seconds']:.0f} docs/s), stage CPU {t['cpu_seconds']:.2f} s, "
              f"process-tree CPU {tree_cpu:.2f} s", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in per_run) for k in
           ("docs_per_s", "wall_seconds", "command_wall_seconds", "cpu_seconds", "cpu_s_per_doc",
            "tree_cpu_seconds", "tree_cpu_s_per_doc", "startup_cpu_seconds", "cpu_s_per_doc_without_startup")}
    stage_cpu = {s: statistics.median(r["stage_cpu_seconds"][s] for r in per_run)
                 for s in per_run[0]["stage_cpu_seconds"]}
    return {"command": " ".join(["corpusslim", "run", os.path.relpath(config, REPO), "--output", "<fresh dir>"]
                                + (["--input", "<the same documents as Parquet>"] if input_dir else [])),
            "runs": per_run, "median": med, "docs_in": per_run[0]["docs_in"], "stage_cpu_seconds": stage_cpu}


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    L = [f"# Stage throughput vs bare libraries ({res['date']})", "",
         f"Machine: {res['machine']}. Data: {res['data']}. One core (POLARS_MAX_THREADS=1), CPU seconds, "
         f"medians of {res['runs']} runs alternating stage/bare; ratio = median of per-run stage ÷ bare "
         f"(target ≤ {TARGET}). Load average (1/5/15 min) at start {res['load_avg_start']}, at end "
         f"{res['load_avg_end']} (other jobs share the 2 cores: absolute rates are ±25 %, ratios firmer).", "",
         f"Command: `{res['command']}`", "",
         "| stage | docs | MB | stage docs/s | stage MB/s | bare (same texts) | bare docs/s | bare MB/s | "
         "stage ÷ bare |",
         "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in res["stages"]:
        flag = "" if r["ratio"] <= TARGET else " ✗"
        L.append(f"| {r['stage']} | {r['stage_docs']:,} | {r['stage_mb']:.2f} | {r['stage_docs_per_s']:,.0f} | "
                 f"{r['stage_mb_per_s']:.2f} | {r['bare']} ({r['bare_docs']:,} docs) | {r['bare_docs_per_s']:,.0f} "
                 f"| {r['bare_mb_per_s']:.2f} | **{r['ratio']:.2f}**{flag} |")
        for k in r.get("extra_cpu_s", {}):
            L.append(f"| ↳ {k} | | | | | {r['extra_docs'][k]:,} docs, {r['extra_cpu_s'][k]:.3f} s CPU | "
                     f"{r['extra_docs_per_s'][k]:,.0f} | "
                     f"{r['extra_mb_per_s'][k]:.2f} | |")
        if "ratio_vs_all_kernels" in r:
            L.append(f"| ↳ {r['stage']} ÷ ({r['all_kernels']}) | | | | | | | | "
                     f"**{r['ratio_vs_all_kernels']:.2f}** |")
    if res.get("e2e"):
        e = res["e2e"]
        m = e["median"]
        L += ["", f"End to end: `{e['command']}`, medians of {len(e['runs'])} runs, {e['docs_in']:,} documents.", "",
              "| documents/s (docs_in / wall_seconds) | wall s | command wall s | stage CPU s (stats.json) | "
              "of which model loading | CPU / doc | CPU / doc without loading | process-tree CPU / doc | "
              "pipeline CPU ÷ bare sum | without loading ÷ bare sum | tree CPU ÷ bare sum |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
              f"| {m['docs_per_s']:,.0f} | {m['wall_seconds']:.2f} | {m['command_wall_seconds']:.2f} | "
              f"{m['cpu_seconds']:.2f} | {m['startup_cpu_seconds']:.2f} | {m['cpu_s_per_doc'] * 1e3:.3f} ms | "
              f"{m['cpu_s_per_doc_without_startup'] * 1e3:.3f} ms | {m['tree_cpu_s_per_doc'] * 1e3:.3f} ms | "
              f"{e.get('ratio_cpu_vs_bare', float('nan')):.2f} | "
              f"{e.get('ratio_cpu_without_startup_vs_bare', float('nan')):.2f} | "
              f"{e.get('ratio_tree_vs_bare', float('nan')):.2f} |",
              "", "Command wall includes CLI start-up and what follows stats.json (ledger, report); process-tree CPU "
              "adds the driver, the Dask scheduler and worker processes' start-up and imports to the stage CPU.",
              "", f"Bare sum on the stage benchmark's documents: {e.get('bare_cpu_s_per_doc', float('nan')) * 1e3:.3f} "
              "ms CPU per document (every bare and ↳ row above: tokens, fastText, script check, langdetect, jieba, "
              "shingling, signatures, exact hashes, quality statistics; one core).", "",
              "Stage CPU inside the pipeline (stats.json, median, s; includes per-worker model loading and, for "
              "dedup, reduce/verify/cluster): " + ", ".join(f"{k} {v:.2f}" for k, v in e["stage_cpu_seconds"].items())]
    if res.get("profile"):
        L += ["", "## cProfile of each stage (one pass, top functions by own time)"]
        for name, text in res["profile"].items():
            L += ["", f"### {name}", "", "```", text, "```"]
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", help="JSONL/Parquet files, directories or globs (default: sample_data)")
    ap.add_argument("--zh-share", type=float, help="with --data: sample this share from files named zh*")
    ap.add_argument("--docs", type=int, help="with --data: number of documents (default: all that fit)")
    ap.add_argument("--min-chars", type=int, default=1)
    ap.add_argument("--max-chars", type=int, default=10**9)
    ap.add_argument("--batch-docs", type=int, default=1000, help="with --data: documents per batch (shard)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="stages to time (substrings of the row names)")
    ap.add_argument("--profile", action="store_true", help="also cProfile every stage")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--e2e-runs", type=int, default=3)
    ap.add_argument("--workers", type=int, help="e2e: Dask workers (default: the config's, else CPU count)")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    raw_batches, data_desc = load_batches(args)
    print(f"data: {sum(df.height for _, df in raw_batches)} documents in {len(raw_batches)} batches", file=sys.stderr)
    t0 = time.perf_counter()
    bench = Bench(args)
    batches = [bench.prepare(n, df) for n, df in raw_batches]  # the first pass doubles as warm-up
    for name in dir(bench):  # one more warm-up pass of every callable on the first batch
        if name.startswith(("stage_", "bare_")):
            getattr(bench, name)(batches[0])
    print(f"warm-up {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    n_docs = sum(df.height for _, df in raw_batches)
    if args.data:
        data = (f"{n_docs:,} docs from {', '.join(data_desc['source'])} (zh share {data_desc['zh_share']}, "
                f"{data_desc['chars'][0]}–{data_desc['chars'][1]} chars, batches of {data_desc['batch_docs']})")
    else:
        data = f"sample_data/*.parquet ({n_docs:,} docs, one batch per shard)"
    from importlib.metadata import version

    libs = ", ".join(f"{p} {version(p)}" for p in ("fasttext", "langdetect", "jieba", "bpe-openai", "polars", "numpy"))
    res = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {libs}",
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "data": data, "data_spec": data_desc, "runs": args.runs,
        "command": " ".join(["python", "bench/stage_throughput.py", *sys.argv[1:]]),
    }
    res["stages"] = measure(bench, batches, args.runs, set(args.only) if args.only else None)

    if not args.no_e2e:
        with tempfile.TemporaryDirectory(prefix="corpusslim-e2e-") as tmp:
            input_dir = write_input(raw_batches, os.path.join(tmp, "input")) if args.data else None
            res["e2e"] = end_to_end(args.config, input_dir, args.e2e_runs, args.workers, tmp)
        if len(res["stages"]) == 5:
            # Every kernel the stages call: the bare rows and their extra rows (script check, langdetect,
            # shingling, exact hashes), one core, on the stage benchmark's documents.
            bare = sum(r["bare_cpu_s"] + sum(r.get("extra_cpu_s", {}).values()) for r in res["stages"])
            per_doc = bare / res["stages"][0]["stage_docs"]
            e = res["e2e"]
            e["bare_cpu_s_per_doc"] = per_doc
            e["ratio_cpu_vs_bare"] = round(e["median"]["cpu_s_per_doc"] / per_doc, 3)
            e["ratio_tree_vs_bare"] = round(e["median"]["tree_cpu_s_per_doc"] / per_doc, 3)
            e["ratio_cpu_without_startup_vs_bare"] = round(e["median"]["cpu_s_per_doc_without_startup"] / per_doc, 3)
    if args.profile:
        res["profile"] = profile(bench, batches, args.top)
    res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]

    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "stages.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = markdown(res)
    (args.out_dir / "stages.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
