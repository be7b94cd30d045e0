"""Corpus builders for the dedup benchmark (``bench/dedup_bench.py``): real text, planted duplicates, shards.

* :class:`Sources`: the documents of ``../shared/data/corpus`` (JSON Lines), or of ``sample_data/`` (Parquet shards
  with a ``source`` column) when the shared data checkout is absent.
* :func:`plant_near_duplicate`: an edited copy of a document whose exact shingle Jaccard (the dedup stage's
  shingles: word 5-grams; jieba-word 5-grams of the re-segmented text for Chinese) to its source is close to a
  target, by scattered word replacements / deletions / insertions or by replacing one contiguous block of words.
* :func:`accuracy_corpus`: base documents + planted near duplicates at targets spread over [0.5, 1.0] + exact
  copies (case and white space changed), shuffled into arrival order.
* :func:`synthetic_corpus`: documents assembled from random sentences of the corpus (so they are neither exact
  nor near duplicates of each other), a few words perturbed, plus planted near duplicates and exact duplicates of
  earlier documents; written in fixed-size shards so that more documents means more shards, and any prefix of the
  shards is a self-contained corpus (duplicates only point backwards).

No Dask here; polars and numpy only for writing shards.
"""
from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from corpusslim.filters.minhash import DEFAULT_N, DEFAULT_N_ZH, jaccard, shingles

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "sample_data"

# file stem in ../shared/data/corpus == value of sample_data's `source` column
EN_SOURCES = ("en_bbc_news", "en_abc_news", "en_webtext")
ZH_SOURCES = ("zh_wiki", "zh_hotel_reviews", "zh_web_pages")


# --------------------------------------------------------------------------------------------------------------
# Source documents
# --------------------------------------------------------------------------------------------------------------

class Sources:
    """Real documents by source name, from ``data_dir/corpus/<source>.jsonl`` or, as a fallback, ``sample_data``."""

    def __init__(self, data_dir: Path | None = None):
        data_dir = Path(data_dir) if data_dir else SHARED_DATA
        self.shared = (data_dir / "corpus").is_dir()
        self.data_dir = data_dir if self.shared else SAMPLE_DATA
        self._cache: dict[str, list[tuple[str, str]]] = {}
        self._sample = None

    @property
    def description(self) -> str:
        return str(self.data_dir / "corpus") if self.shared else f"{SAMPLE_DATA} (fallback: ../shared absent)"

    def docs(self, source: str) -> list[tuple[str, str]]:
        """(id, text) of every document of ``source``, in file order."""
        if source not in self._cache:
            if self.shared:
                with (self.data_dir / "corpus" / f"{source}.jsonl").open(encoding="utf-8") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                self._cache[source] = [(r["id"], r["text"]) for r in rows]
            else:
                import polars as pl

                if self._sample is None:
                    self._sample = pl.read_parquet(sorted(SAMPLE_DATA.glob("*.parquet")))
                df = self._sample.filter(pl.col("source") == source).sort("id")
                self._cache[source] = list(zip(df["id"].to_list(), df["text"].to_list()))
        return self._cache[source]

    def bbc_pairs(self) -> list[dict] | None:
        """Rows of ``neardup/bbc_dup_pairs.tsv`` (doc_a, doc_b, jaccard_word5, kind), or None without shared data."""
        path = self.data_dir / "neardup" / "bbc_dup_pairs.tsv"
        if not self.shared or not path.is_file():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
        head = lines[0].split("\t")
        return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line.strip()]


# --------------------------------------------------------------------------------------------------------------
# Shingles as the dedup stage computes them
# --------------------------------------------------------------------------------------------------------------

class Shingler:
    """The dedup stage's shingle sets: ``shingles(text, seg)`` with ``seg`` = jieba words (HMM off, the segment
    stage's default) for Chinese, None otherwise."""

    def __init__(self, n: int = DEFAULT_N, n_zh: int = DEFAULT_N_ZH):
        from corpusslim.filters.segment import Segmenter

        self.n, self.n_zh = n, n_zh
        self.segmenter = Segmenter(hmm=False)

    def seg(self, text: str, lang: str) -> str | None:
        return self.segmenter.segment([text])[0] if lang == "zh" else None

    def set(self, text: str, lang: str) -> set[str]:
        return set(shingles(text, self.seg(text, lang), self.n, self.n_zh))


# --------------------------------------------------------------------------------------------------------------
# Planted near duplicates
# --------------------------------------------------------------------------------------------------------------

_WS_SPLIT = re.compile(r"(\s+)")
_CONTENT = re.compile(r"\w")


def _tokens(text: str, lang: str, shingler: Shingler) -> tuple[list[str], str]:
    """Editable tokens and the joiner that rebuilds the text: English words with their white space kept as
    separate tokens (joined by ""), Chinese jieba words (joined by "")."""
    if lang == "zh":
        return shingler.segmenter.words(text), ""
    return _WS_SPLIT.split(text), ""


def _editable(tokens: list[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t and not t.isspace() and _CONTENT.search(t)]


def _edit(tokens: list[str], lang: str, amount: float, mode: str, vocab: list[str], donor: list[str],
          rng: random.Random) -> list[str]:
    """Apply edits to a copy of ``tokens``; ``amount`` is the fraction of editable words touched."""
    eligible = _editable(tokens)
    if not eligible:
        return list(tokens)
    k = max(1, round(amount * len(eligible)))
    sep = [] if lang == "zh" else [" "]
    if mode == "block":
        # Replace one contiguous run of k words (with what lies between them) by k words of another document.
        k = min(k, len(eligible))
        start = rng.randrange(0, len(eligible) - k + 1)
        lo, hi = eligible[start], eligible[start + k - 1]
        words = [w for w in donor if _CONTENT.search(w)] or vocab
        offset = rng.randrange(0, max(1, len(words) - k))
        new = []
        for w in words[offset: offset + k]:
            new += [w, *sep]
        if sep and new:
            new.pop()
        return tokens[:lo] + new + tokens[hi + 1:]
    out = list(tokens)
    chosen = sorted(rng.sample(eligible, min(k, len(eligible))), reverse=True)
    for i in chosen:  # right to left so indices stay valid
        op = rng.random()
        w = rng.choice(vocab)
        if op < 0.6:
            out[i] = w if w != out[i] else w + w
        elif op < 0.8:
            out[i: i + 1] = [] if lang == "zh" else [""]
        else:
            out[i: i + 1] = [out[i], *sep, w]
    return out


def _expected_amount(target: float, mode: str, n: int) -> float:
    """Fraction of words to edit for an expected shingle Jaccard ``target`` (independent scattered edits:
    J = q / (2 - q), q = (1 - f)^n; one block of f: J ~ (1 - f) / (1 + f))."""
    target = min(max(target, 1e-3), 0.999)
    if mode == "block":
        return (1 - target) / (1 + target)
    q = 2 * target / (1 + target)
    return 1 - q ** (1 / n)


@dataclass
class Planted:
    text: str
    jaccard: float  # achieved exact shingle Jaccard to the source
    mode: str
    amount: float


def plant_near_duplicate(text: str, lang: str, target: float, shingler: Shingler, vocab: list[str],
                         donor: str, rng: random.Random, mode: str | None = None, tries: int = 8,
                         tolerance: float = 0.015, source_set: set[str] | None = None) -> Planted:
    """An edited copy of ``text`` whose exact shingle Jaccard to ``text`` is within ``tolerance`` of ``target``
    if found in ``tries`` attempts (the amount is corrected from each attempt), else the closest attempt."""
    mode = mode or ("block" if rng.random() < 0.3 else "scatter")
    n = shingler.n_zh if lang == "zh" else shingler.n
    src = source_set if source_set is not None else shingler.set(text, lang)
    tokens, joiner = _tokens(text, lang, shingler)
    donor_tokens, _ = _tokens(donor, lang, shingler)
    want = amount = _expected_amount(target, mode, n)
    best: Planted | None = None
    for _ in range(tries):
        new = joiner.join(_edit(tokens, lang, amount, mode, vocab, donor_tokens, rng))
        j = jaccard(src, shingler.set(new, lang))
        if best is None or abs(j - target) < abs(best.jaccard - target):
            best = Planted(new, j, mode, amount)
        if abs(j - target) <= tolerance:
            break
        # Correct the amount: the model's amount for the achieved Jaccard says how effective the edits were.
        if j >= 0.999:
            amount *= 2.0
        else:
            amount = want * amount / _expected_amount(j, mode, n)
        amount = min(0.95, max(1e-4, amount))
    return best


def exact_copy(text: str, rng: random.Random) -> str:
    """The same normalised text (NFKC + casefold + white space collapsed), written differently."""
    variants = [lambda t: t.upper(), lambda t: "  " + t.replace(" ", "  ") + "\n", lambda t: t.lower() + " ",
                lambda t: t.replace("\n", " \n ")]
    return rng.choice(variants)(text)


# --------------------------------------------------------------------------------------------------------------
# Accuracy corpus
# --------------------------------------------------------------------------------------------------------------

@dataclass
class AccuracyPlan:
    base: dict[str, int] = field(default_factory=lambda: {"en_bbc_news": 1000, "en_abc_news": 1000, "zh_wiki": 800})
    near: int = 800          # planted near duplicates, targets uniform over [low, high]
    exact: int = 100         # planted exact duplicates (normalised text equal)
    low: float = 0.5
    high: float = 1.0
    shards: int = 4
    seed: int = 7


def accuracy_corpus(sources: Sources, plan: AccuracyPlan, shingler: Shingler) -> list[dict]:
    """Documents (id, text, source, lang, origin, planted, target, planted_jaccard) in arrival order.

    ``origin`` is the id of the source document for planted copies (else the document's own id); ``planted`` is
    ``base``, ``near`` or ``exact``. Near duplicates copy a random base document (with replacement, so a source
    may get several copies, and copies of one source are compared with each other by brute force too)."""
    rng = random.Random(plan.seed)
    base: list[dict] = []
    for source, n in plan.base.items():
        docs = [d for d in sources.docs(source) if len(d[1]) >= 200]
        lang = "zh" if source.startswith("zh") else "en"
        for doc_id, text in rng.sample(docs, min(n, len(docs))):
            base.append({"id": doc_id, "text": text, "source": source, "lang": lang, "origin": doc_id,
                         "planted": "base", "target": None, "planted_jaccard": None})
    vocab = {"en": [], "zh": []}
    for d in rng.sample(base, min(300, len(base))):
        toks, _ = _tokens(d["text"], d["lang"], shingler)
        vocab[d["lang"]] += [toks[i] for i in _editable(toks)]
    by_lang = {lang: [d for d in base if d["lang"] == lang] for lang in ("en", "zh")}
    planted: list[dict] = []
    for i in range(plan.near):
        src = rng.choice(base)
        target = plan.low + (plan.high - plan.low) * (i + rng.random()) / plan.near  # stratified over [low, high]
        donor = rng.choice(by_lang[src["lang"]])["text"]
        p = plant_near_duplicate(src["text"], src["lang"], target, shingler, vocab[src["lang"]], donor, rng)
        planted.append({**src, "id": f"near/{i:05d}", "text": p.text, "planted": "near", "target": round(target, 4),
                        "planted_jaccard": round(p.jaccard, 6), "source": src["source"]})
    for i in range(plan.exact):
        src = rng.choice(base)
        planted.append({**src, "id": f"exact/{i:05d}", "text": exact_copy(src["text"], rng), "planted": "exact",
                        "target": 1.0, "planted_jaccard": 1.0})
    docs = base + planted
    rng.shuffle(docs)
    return docs


# --------------------------------------------------------------------------------------------------------------
# Synthetic corpus for memory scaling
# --------------------------------------------------------------------------------------------------------------

_EN_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_ZH_SENT = re.compile(r"(?<=[。！？])|\n+")


def sentence_pools(sources: Sources, min_chars: int = 20) -> dict[str, list[str]]:
    """Sentences (English: split at . ! ? and newlines; Chinese: after 。！？ and at newlines) of every source."""
    pools: dict[str, list[str]] = {"en": [], "zh": []}
    for lang, names, pattern in (("en", EN_SOURCES, _EN_SENT), ("zh", ZH_SOURCES, _ZH_SENT)):
        seen = set()
        for name in names:
            for _id, text in sources.docs(name):
                for s in pattern.split(text):
                    s = s.strip()
                    if len(s) >= (min_chars if lang == "en" else min_chars // 2) and s not in seen:
                        seen.add(s)
                        pools[lang].append(s)
    return pools


@dataclass
class SyntheticPlan:
    docs: int
    shard_size: int = 10_000
    zh_share: float = 0.3
    near_share: float = 0.10   # planted near duplicates of an earlier document
    exact_share: float = 0.05  # planted exact duplicates of an earlier document
    en_sentences: tuple[int, int] = (4, 12)
    zh_sentences: tuple[int, int] = (3, 8)
    perturb_words: int = 3
    seed: int = 11


def _perturb(text: str, lang: str, k: int, rng: random.Random, alphabet: str) -> str:
    """Replace ``k`` random words (English) or characters (Chinese) so copies of one sentence mix differ."""
    if lang == "zh":
        chars = list(text)
        for _ in range(k):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice(alphabet)
        return "".join(chars)
    words = text.split(" ")
    for _ in range(k):
        i = rng.randrange(len(words))
        words[i] = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 8)))
    return " ".join(words)


def _near_copy(text: str, lang: str, rng: random.Random, alphabet: str) -> str:
    """A near duplicate: 0.3-2.5 % of the words (English) or 0.2-1.5 % of the characters (Chinese, shingled on
    white space without a segment stage) replaced."""
    if lang == "zh":
        return _perturb(text, lang, max(1, round(len(text) * rng.uniform(0.002, 0.015))), rng, alphabet)
    n = text.count(" ") + 1
    return _perturb(text, lang, max(1, round(n * rng.uniform(0.003, 0.025))), rng, alphabet)


def synthetic_corpus(pools: dict[str, list[str]], plan: SyntheticPlan, out_dir: Path,
                     log=None) -> dict:
    """Write ``plan.docs`` documents as shards of ``plan.shard_size`` rows under ``out_dir``
    (``part-00000.parquet``, ...; columns id, text, kind) and return a summary. Planted copies point at a uniformly
    random *earlier* document, so every prefix of the shards is a corpus on its own."""
    import polars as pl

    rng = random.Random(plan.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    en_alpha = "abcdefghijklmnopqrstuvwxyz"
    zh_alpha = "".join({c for s in pools["zh"][:5000] for c in s if "\u4e00" <= c <= "\u9fff"})
    texts: list[str] = []
    langs: list[str] = []
    counts = {"unique": 0, "near": 0, "exact": 0}
    shard_rows: dict[str, list] = {"id": [], "text": [], "kind": []}
    shard = 0
    en_pool, zh_pool = pools["en"], pools["zh"]
    for i in range(plan.docs):
        r = rng.random()
        if i > 0 and r < plan.exact_share:
            j = rng.randrange(i)
            text, lang, kind = exact_copy(texts[j], rng), langs[j], "exact"
        elif i > 0 and r < plan.exact_share + plan.near_share:
            j = rng.randrange(i)
            lang = langs[j]
            text, kind = _near_copy(texts[j], lang, rng, zh_alpha if lang == "zh" else en_alpha), "near"
        else:
            lang = "zh" if rng.random() < plan.zh_share else "en"
            lo, hi = plan.zh_sentences if lang == "zh" else plan.en_sentences
            pool = zh_pool if lang == "zh" else en_pool
            parts = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(lo, hi))]
            text = ("" if lang == "zh" else " ").join(parts)
            text = _perturb(text, lang, plan.perturb_words, rng, zh_alpha if lang == "zh" else en_alpha)
            kind = "unique"
        counts[kind] += 1
        texts.append(text)
        langs.append(lang)
        shard_rows["id"].append(f"d{i:08d}")
        shard_rows["text"].append(text)
        shard_rows["kind"].append(kind)
        if len(shard_rows["id"]) == plan.shard_size or i == plan.docs - 1:
            pl.DataFrame(shard_rows).write_parquet(out_dir / f"part-{shard:05d}.parquet", compression="zstd")
            shard += 1
            shard_rows = {"id": [], "text": [], "kind": []}
            if log and shard % 10 == 0:
                log(f"  synthetic corpus: {shard} shards written")
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    summary = {"docs": plan.docs, "shards": shard, "shard_size": plan.shard_size, "counts": counts,
               "text_mb": round(text_bytes / 1e6, 1), "zh_share": plan.zh_share, "seed": plan.seed,
               "mean_chars": round(sum(map(len, texts)) / max(1, len(texts)), 1)}
    (out_dir / "corpus.json").write_text(json.dumps(summary, indent=1))
    return summary


def write_shards(docs: list[dict], out_dir: Path, shards: int, columns: tuple[str, ...]) -> list[Path]:
    """Write ``docs`` in order as ``shards`` Parquet files of (almost) equal size, columns as given."""
    import polars as pl

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.parquet"):
        old.unlink()
    size = math.ceil(len(docs) / shards)
    paths = []
    for s in range(shards):
        part = docs[s * size:(s + 1) * size]
        if not part:
            break
        path = out_dir / f"shard-{s:03d}.parquet"
        pl.DataFrame({c: [d[c] for d in part] for c in columns}).write_parquet(path)
        paths.append(path)
    return paths
