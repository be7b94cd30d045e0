"""Text and array logic for exact and near-duplicate detection (MinHash LSH).

Pure functions and one small class: no Dask, no I/O. The dedup stage calls

* :func:`normalise_text` / :func:`exact_hashes`: a stable 64-bit hash of the
  normalised text of each document, for exact duplicates;
* :func:`shingle_hashes` then :meth:`MinHasher.signatures_of_hashes`: one
  MinHash signature per document, identical to ``datasketch.MinHash`` fed the
  shingles :func:`shingles` defines (see below; :meth:`MinHasher.signatures`
  takes shingle lists);
* :func:`band_keys`: one 64-bit key per LSH band, grouped across shards in the
  reduce phase (two documents are candidates when they share a key in a band);
* :func:`choose_bands` when the config gives a Jaccard threshold instead of
  explicit bands x rows.

Defaults
--------
* 112 permutations as 14 bands x 8 rows and word 5-grams: FineWeb (Penedo et
  al. 2024, "The FineWeb Datasets"; datatrove ``MinhashConfig`` defaults).
  A pair of Jaccard s becomes a candidate with probability 1 - (1 - s^8)^14:
  0.5 at s = 0.69 ((1/14)^(1/8) = 0.72 is the usual threshold estimate),
  0.92 at s = 0.8, 0.9996 at s = 0.9, 0.05 at s = 0.5.
* Chinese: ``n_zh = 5`` jieba-word shingles (punctuation-only tokens dropped);
  see :data:`DEFAULT_N_ZH` for the measurement behind it.

datasketch compatibility (verified bit-for-bit by tests/test_minhash.py)
-----------------------------------------------------------------------
``MinHasher(num_perm, seed)`` reproduces ``datasketch.MinHash(num_perm, seed,
scheme="legacy")`` fed each shingle's UTF-8 bytes, which is what plain
``MinHash(num_perm, seed)`` computes in every datasketch release before 2.0.0:
permutations drawn from ``np.random.RandomState(seed)`` (per permutation
``a = randint(1, p)``, ``b = randint(0, p)``, ``p = 2**61 - 1``), hash
``sha1_hash32`` (first 4 bytes of SHA-1, little-endian), value
``((h * a + b) mod 2**64) mod p & (2**32 - 1)`` (numpy uint64 wrap-around
included), empty value ``2**32 - 1``.

datasketch 2.0.0 changed the *default* scheme to ``"affine32"`` (a MurmurHash3
pre-mix then ``a * h + b mod 2**32``). ``MinHasher(..., scheme="affine32")``
reproduces that one too; its values also lie in [0, 2**32) with the same empty
value, so band keys and storage are unchanged. The two schemes give unrelated
signatures: never mix them in one index (the stage should record the scheme
with the stored signatures).

Speed (``python bench/minhash_speed.py``: 2,000 BBC articles, 4.35 MB, 112
permutations, one core, CPU time): ``signatures`` 4,400 docs/s (9.6 MB/s) with
"legacy", 6,300 docs/s with "affine32", against 1,900 / 2,500 for datasketch's
``MinHash.bulk`` and 350 for ``update`` per shingle; shingling alone 6,600
docs/s. Those figures predate hashing in polars (bench/choices.md has the
later measurements).
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl
import polars_hash as plh

__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_N",
    "DEFAULT_N_ZH",
    "DEFAULT_NUM_PERM",
    "DEFAULT_ROWS",
    "MAX_HASH",
    "MinHasher",
    "band_keys",
    "choose_bands",
    "exact_hashes",
    "jaccard",
    "normalise_text",
    "shingle_hashes",
    "shingles",
    "signature_jaccard",
]

# FineWeb (Penedo et al. 2024): 112 hashes in 14 buckets of 8, word 5-grams.
DEFAULT_NUM_PERM = 112
DEFAULT_BANDS = 14
DEFAULT_ROWS = 8
DEFAULT_N = 5

# Chinese shingle size in jieba words. Measured with
# ``python bench/minhash_speed.py --shingle-study`` (seed 1): 300 zh_wiki
# paragraphs with >= 100 content words (mean 314 jieba words, HMM=False,
# whitespace and punctuation-only tokens dropped), 5 % of the content words
# replaced by random words of the same corpus, the edited text re-segmented;
# 500 en_bbc_news documents (mean 329 words) with 5 % of the words replaced.
# Mean shingle-set Jaccard to the original over 3 edits per document, and
# mean / max over 2,000 random pairs of different documents:
#
#     n                        1      2      3      4      5
#     zh, 5 % of words       0.900  0.819  0.749  0.686  0.630
#     en, 5 % of words       0.913  0.822  0.750  0.686  0.630
#     zh, 5 % of hanzi       0.800  0.704  0.623  0.553  0.492
#     zh unrelated, mean     0.049  0.002  3e-4   1e-4   1e-4
#     zh unrelated, max      0.37   0.16   0.10   0.06   0.035
#     en unrelated, mean     0.093  0.011  7e-4   1e-4   0.000
#     en unrelated, max      0.27   0.11   0.067  0.051  0.040
#
# Word edits follow (0.95^n) / (2 - 0.95^n) in both languages: re-segmenting
# after a word edit barely moves jieba's boundaries (0.630 at n = 5 with the
# original segmentation kept), so the n_zh that gives a 5 % word edit the
# Jaccard of English word 5-grams is 5, and zh 5-grams of unrelated text share
# no more than English ones (the zh max is two template-built species stubs).
# Caveat: if Chinese near-duplicates differ by *characters* (5 % of the hanzi
# replaced; each edit breaks its word and can re-cut its neighbours), n_zh = 3
# (0.623) would match English 5-grams instead.
DEFAULT_N_ZH = 5

_MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1  # datasketch's _max_hash: the value of an empty MinHash

# Work sizes of the vectorised affine pass: hash values per window and
# permutations per block. Two (block x window) uint64 scratch arrays = 1 MiB,
# which stays in L2 (1 MiB/core on the benchmark machine); larger windows
# cost more in cache misses than they save in numpy call overhead.
_WINDOW = 16384
_PERM_BLOCK = 4
# Documents are hashed in groups of about this many shingles, which bounds the
# transient Python objects (one bytes object per shingle) of a large batch.
_HASH_GROUP = 65536

# Index of the low 32-bit half of a uint64 viewed as two uint32.
_LOW_HALF = 0 if sys.byteorder == "little" else 1

_U64_61 = np.uint64(61)
_U32_MAX = np.uint32(MAX_HASH)


# --------------------------------------------------------------------------
# Normalisation and exact duplicates
# --------------------------------------------------------------------------

def normalise_text(text: str) -> str:
    """Unicode NFKC, casefold, whitespace runs collapsed to one space, stripped.

    Idempotent: casefolding can leave a string that is no longer NFKC (e.g.
    U+0130 -> "i" + combining dot), so it is re-normalised when needed.
    Whitespace is what ``str.split()`` splits on (Unicode whitespace,
    including U+3000 ideographic space).
    """
    t = unicodedata.normalize("NFKC", text).casefold()
    if not unicodedata.is_normalized("NFKC", t):
        t = unicodedata.normalize("NFKC", t)
    return " ".join(t.split())


def exact_hashes(texts: Sequence[str], *, normalised: bool = False) -> np.ndarray:
    """uint64 per text: BLAKE2b (digest_size=8, read little-endian) of the UTF-8
    bytes of :func:`normalise_text` (text); ``normalised``: the texts already are.

    Stable across processes, platforms and Python versions (unlike ``hash()``).
    Two different normalised texts share a hash with probability ~2^-64 per
    pair, i.e. ~n^2 / 2^65 expected collisions among n texts (~3e-4 for n = 10^8).
    """
    blake2b = hashlib.blake2b
    norms = texts if normalised else map(normalise_text, texts)
    digest = b"".join([blake2b(t.encode("utf-8"), digest_size=8).digest() for t in norms])
    return np.frombuffer(digest, dtype="<u8").astype(np.uint64)


# --------------------------------------------------------------------------
# Shingles
# --------------------------------------------------------------------------

# A token with no letter, digit or underscore-free word character: punctuation,
# symbols (and their runs, e.g. "……" or "——").
_PUNCT_ONLY = re.compile(r"[\W_]+")


def _ngrams(words: list[str], n: int) -> list[str]:
    if not words or words == [""]:
        return []
    if len(words) <= n:
        return [" ".join(words)]
    return list(map(" ".join, zip(*[words[i:] for i in range(n)])))


def shingles(text: str, seg: str | None, n: int = DEFAULT_N, n_zh: int = DEFAULT_N_ZH, *,
             normalised: bool = False) -> list[str]:
    """The shingles of one document, in document order (repeats kept: MinHash
    treats them as a set, and deduplicating costs more than it saves).

    * ``seg is None`` (space-delimited languages): word ``n``-grams of
      ``normalise_text(text).split(" ")``, each joined by one space. Words keep
      their punctuation ("profit," != "profit"), as in FineWeb.
    * ``seg`` given (Chinese: jieba words joined by single spaces, the ``seg``
      column): ``n_zh``-grams of the words of ``normalise_text(seg)``, *after
      dropping punctuation-only tokens* (no letter or digit: "，", "。", "《",
      "……"). jieba emits every punctuation mark as a word of its own; kept,
      they would fill n-gram slots with no content, and punctuation-only
      differences between copies (full-width vs ASCII, quote styles) would
      break shingles. ``text`` is ignored in this case.

    A document with at least one but fewer than ``n`` words yields one shingle:
    all its words. No words (empty / whitespace / punctuation-only Chinese)
    yields ``[]``. ``normalised``: ``text`` already is :func:`normalise_text`'s
    output (the dedup stage normalises once for the exact hash and the shingles).
    """
    if n < 1 or n_zh < 1:
        raise ValueError(f"shingle sizes must be >= 1, got n={n}, n_zh={n_zh}")
    return _ngrams(_shingle_words(text, seg, normalised).split(" "), n if seg is None else n_zh)


def _shingle_words(text: str, seg: str | None, normalised: bool) -> str:
    """The words :func:`shingles` takes n-grams of, joined by single spaces ("" for none)."""
    if seg is None:
        return text if normalised else normalise_text(text)
    match = _PUNCT_ONLY.fullmatch
    return " ".join(w for w in normalise_text(seg).split(" ") if not match(w))


# Documents are shingled in Rust (polars) in groups of about this many words, which bounds the transient columns
# (the shingles and their hexadecimal digests: about 70 bytes per word) to some 20 MB whatever the batch.
_WORD_GROUP = 262_144


def _hashed_ngrams(words: list[str], n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """SHA-1 prefixes (:func:`_sha1_prefix`) of the word ``n``-grams of space-joined ``words``, flattened in
    document order, and the count per document: :func:`_ngrams` of each ``split(" ")``, as polars columns."""
    joined = pl.Series("s", words, dtype=pl.String)
    split = joined.str.split(" ")
    lens = split.list.len().to_numpy().astype(np.int64)
    counts = np.where(joined.str.len_bytes().to_numpy() == 0, 0, np.where(lens <= n, 1, lens - n + 1))
    # one row per word; the n-gram starting at a word is kept when it lies inside its document
    at = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    keep = at < np.repeat(counts, lens)
    grams = split.explode().to_frame().select(
        pl.concat_str([pl.col("s").shift(-i) for i in range(n)], separator=" ", ignore_nulls=True))["s"].filter(keep)
    short = np.flatnonzero((lens <= n) & (counts > 0))
    if len(short):  # a document of at most n words has one shingle: all of them
        grams = grams.scatter((np.cumsum(counts) - counts)[short], joined.gather(short))
    return grams.to_frame().select(_sha1_prefix("s", dtype)).to_series().to_numpy(), counts


def shingle_hashes(texts: Sequence[str], segs: Sequence[str | None], n: int = DEFAULT_N, n_zh: int = DEFAULT_N_ZH,
                   *, normalised: bool = False, dtype: str = "<u4") -> tuple[np.ndarray, np.ndarray]:
    """The first bytes of the SHA-1 of every shingle of every document (``_sha1_prefixes`` of
    ``[shingles(t, s, n, n_zh) for t, s in zip(texts, segs)]``), flattened in document order, and the number of
    shingles per document. The n-grams are built and hashed in Rust (polars), without a Python string per shingle:
    0.64 s against 0.88 s CPU for 25,000 documents (bench/choices.md). ``tests/test_minhash.py`` checks both equal."""
    if n < 1 or n_zh < 1:
        raise ValueError(f"shingle sizes must be >= 1, got n={n}, n_zh={n_zh}")
    words = [_shingle_words(t, s, normalised) for t, s in zip(texts, segs)]
    size = np.array([n if s is None else n_zh for s in segs], dtype=np.int64)
    counts = np.zeros(len(words), dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (documents, their hashes)
    for width in np.unique(size):
        docs = np.flatnonzero(size == width)
        bounds = np.cumsum([w.count(" ") + 1 for w in (words[i] for i in docs)])
        for group in np.split(docs, np.searchsorted(bounds, np.arange(_WORD_GROUP, bounds[-1], _WORD_GROUP))):
            if len(group):
                hv, counts[group] = _hashed_ngrams([words[i] for i in group], int(width), dtype)
                parts.append((group, hv))
    starts = np.cumsum(counts) - counts
    out = np.empty(int(counts.sum()), dtype=np.uint32 if dtype == "<u4" else np.uint64)
    for docs, hv in parts:  # each group's hashes to their documents' places
        lens = counts[docs]
        out[np.repeat(starts[docs] - (np.cumsum(lens) - lens), lens) + np.arange(len(hv))] = hv
    return out, counts


# --------------------------------------------------------------------------
# MinHash signatures
# --------------------------------------------------------------------------

def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (datasketch 2.x ``_fmix(hv, 32)``), wrapping."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _sha1_prefixes(docs: Sequence[Sequence[str]], dtype: str) -> np.ndarray:
    """The first bytes of the SHA-1 digest of the UTF-8 bytes of every shingle of ``docs``, flattened in order,
    read little-endian (``"<u4"``: datasketch's ``sha1_hash32``; ``"<u8"``: 64 bits).

    One SHA-1 per shingle is unavoidable (it is datasketch's hash). The polars-hash plugin computes them in Rust
    over one column of all the shingles (hexadecimal digests, the prefix decoded), without a Python call per
    shingle: 0.12 s against 0.23 s CPU for hashlib per shingle on sample_data's 600k shingles (bench/choices.md).
    """
    column = pl.Series("s", [s for doc in docs for s in doc], dtype=pl.String)
    return column.to_frame().select(_sha1_prefix("s", dtype)).to_series().to_numpy()


def _sha1_prefix(column: str, dtype: str) -> pl.Expr:
    """The first 4 (``"<u4"``) or 8 (``"<u8"``) bytes of the SHA-1 of each UTF-8 string of ``column``, read
    little-endian."""
    width, out_dtype = (8, pl.UInt32) if dtype == "<u4" else (16, pl.UInt64)
    return (plh.col(column).nchash.sha1().str.slice(0, width).str.decode("hex")
            .bin.reinterpret(dtype=out_dtype, endianness="little"))


def _sha1_hash32(docs: Sequence[Sequence[str]]) -> np.ndarray:
    """datasketch.hashfunc.sha1_hash32 of every shingle of ``docs``, flattened in order, as uint64."""
    return _sha1_prefixes(docs, "<u4").astype(np.uint64)


class MinHasher:
    """Batch MinHash signatures equal to ``datasketch.MinHash``.

    ``MinHasher(num_perm, seed).signatures(docs)[i]`` equals
    ``MinHash(num_perm, seed, scheme="legacy")`` updated with
    ``s.encode("utf-8")`` for every shingle ``s`` of ``docs[i]`` (see the module
    docstring); ``scheme="affine32"`` matches datasketch 2.x's default scheme.

    Instances hold only the permutation arrays: cheap to create and to pickle.
    """

    SCHEMES = ("legacy", "affine32")

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, seed: int = 1, scheme: str = "legacy"):
        if num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {num_perm}")
        if scheme not in self.SCHEMES:
            raise ValueError(f"scheme must be one of {self.SCHEMES}, got {scheme!r}")
        self.num_perm = int(num_perm)
        self.seed = int(seed)
        self.scheme = scheme
        gen = np.random.RandomState(self.seed)
        if scheme == "legacy":
            # Exactly datasketch's draw order: (a, b) interleaved per permutation.
            p = np.uint64(_MERSENNE_PRIME)
            ab = np.array(
                [(gen.randint(1, p, dtype=np.uint64), gen.randint(0, p, dtype=np.uint64)) for _ in range(num_perm)],
                dtype=np.uint64,
            ).reshape(num_perm, 2)
            self.a = np.ascontiguousarray(ab[:, 0])
            self.b = np.ascontiguousarray(ab[:, 1])
        else:
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        self.a.flags.writeable = False
        self.b.flags.writeable = False

    def __repr__(self) -> str:
        return f"MinHasher(num_perm={self.num_perm}, seed={self.seed}, scheme={self.scheme!r})"

    @property
    def permutations(self) -> np.ndarray:
        """(2, num_perm) array [a, b], the layout of ``datasketch.MinHash.permutations``."""
        return np.array([self.a, self.b])

    # -- the affine pass -------------------------------------------------------
    #
    # Legacy arithmetic, done in 5 array passes instead of datasketch's 4 with a
    # slow uint64 modulo (~2 ns/element): with x = h*a + b (mod 2^64) =
    # hi*2^61 + lo (hi = x >> 61, lo = x & p), datasketch's value is
    # E = low32(x mod p), and x mod p = lo + hi, minus p when lo + hi >= p
    # (2^61 = 1 mod p). We compute L = low32(x1 + (x1 >> 61)) with
    # x1 = x + 1 = h*a + (b + 1) (mod 2^64). Case by case:
    #   lo < p, lo + hi < p:   x1 >> 61 = hi, L = low32(lo + hi + 1) = E + 1
    #                          (mod 2^32; L = 0 when E = 2^32 - 1);
    #   lo < p, lo + hi >= p:  L = low32(lo + hi + 1 - 2^61) = lo + hi - p = E <= 6;
    #   lo = p:                E = hi, and L = hi + 1 (hi < 7) or 0 (hi = 7).
    # So every element with L >= 8 has E = L - 1, and if the minimum of L over
    # a document is >= 8, the minimum of E is that minimum minus 1. Documents
    # whose minimum is < 8 for some permutation (probability ~8 x shingles /
    # 2^32 per permutation, ~1e-6) are recomputed with datasketch's formula.

    def _segment_min(self, hv: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Per-segment minimum, (len(starts), num_perm) uint32, of the permuted
        hash values ``hv`` (uint64); ``starts`` are strictly increasing segment
        starts with ``starts[0] == 0`` (no empty segment). For "legacy" the
        result is in the shifted space L described above."""
        n, P = len(hv), self.num_perm
        out = np.full((len(starts), P), _U32_MAX, dtype=np.uint32)
        legacy = self.scheme == "legacy"
        if legacy:
            a = self.a[:, None]
            b1 = (self.b + np.uint64(1))[:, None]
            dtype = np.uint64
        else:
            hv = _fmix32(hv.astype(np.uint32))
            a, b1 = self.a[:, None], self.b[:, None]
            dtype = np.uint32
        win = min(_WINDOW, n)
        x = np.empty((_PERM_BLOCK, win), dtype=dtype)
        t = np.empty((_PERM_BLOCK, win), dtype=dtype) if legacy else None
        for w0 in range(0, n, win):
            w1 = min(n, w0 + win)
            i0 = int(np.searchsorted(starts, w0, side="right")) - 1
            i1 = int(np.searchsorted(starts, w1, side="left"))
            local = starts[i0:i1] - w0
            local[0] = 0  # the first segment may have begun in an earlier window
            h = hv[None, w0:w1]
            for k0 in range(0, P, _PERM_BLOCK):
                k1 = min(P, k0 + _PERM_BLOCK)
                xx = x[: k1 - k0, : w1 - w0]
                np.multiply(h, a[k0:k1], out=xx)
                xx += b1[k0:k1]
                if legacy:
                    tt = t[: k1 - k0, : w1 - w0]
                    np.right_shift(xx, _U64_61, out=tt)
                    xx += tt
                    v = xx.view(np.uint32)[:, _LOW_HALF::2]
                else:
                    v = xx
                m = np.minimum.reduceat(v, local, axis=1).T
                np.minimum(out[i0:i1, k0:k1], m, out=out[i0:i1, k0:k1])
        return out

    def _legacy_exact(self, hv: np.ndarray) -> np.ndarray:
        """datasketch's own legacy formula for one document (num_perm,) uint64."""
        phv = (hv[:, None] * self.a[None, :] + self.b[None, :]) % np.uint64(_MERSENNE_PRIME)
        return np.bitwise_and(phv, np.uint64(MAX_HASH)).min(axis=0)

    def signatures(self, docs_shingles: Sequence[Sequence[str]]) -> np.ndarray:
        """(n_docs, num_perm) uint64 MinHash signatures of a batch of documents.

        ``docs_shingles[i]`` is the shingle list of document i (str; hashed as
        UTF-8). A document with no shingles gets all ``MAX_HASH`` (datasketch's
        empty MinHash). Shingles are hashed group by group, then signed by
        :meth:`signatures_of_hashes`.
        """
        n_docs = len(docs_shingles)
        lens = np.fromiter(map(len, docs_shingles), dtype=np.int64, count=n_docs)
        result = np.full((n_docs, self.num_perm), MAX_HASH, dtype=np.uint64)
        ends = np.cumsum(lens)
        d0 = 0
        while d0 < n_docs:
            # Next group: documents until ~_HASH_GROUP shingles (at least one).
            base = int(ends[d0 - 1]) if d0 else 0
            d1 = min(n_docs, max(d0 + 1, int(np.searchsorted(ends, base + _HASH_GROUP, side="right"))))
            result[d0:d1] = self.signatures_of_hashes(_sha1_hash32(docs_shingles[d0:d1]), lens[d0:d1])
            d0 = d1
        return result

    def signatures_of_hashes(self, hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(len(counts), num_perm) uint64 signatures of documents given by their shingles' ``sha1_hash32`` values
        (``hashes``, flattened in document order; from :func:`shingle_hashes`) and how many each has. Vectorised:
        one affine pass per window of hash values covers all the documents in it (``np.minimum.reduceat`` per
        document)."""
        hv = np.asarray(hashes, dtype=np.uint64)
        result = np.full((len(counts), self.num_perm), MAX_HASH, dtype=np.uint64)
        nonempty = np.flatnonzero(counts)
        if not len(nonempty):
            return result
        starts = (np.cumsum(counts) - counts)[nonempty]
        mins = self._segment_min(hv, starts)
        if self.scheme == "legacy":
            sig = mins.astype(np.uint64) - np.uint64(1)
            for j in np.flatnonzero((mins < 8).any(axis=1)):  # rare: see above
                s = int(starts[j])
                sig[j] = self._legacy_exact(hv[s : s + int(counts[nonempty[j]])])
        else:
            sig = mins.astype(np.uint64)
        result[nonempty] = sig
        return result


# --------------------------------------------------------------------------
# LSH bands
# --------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX_MUL = np.uint64(0xD6E8FEB86659FD93)  # odd


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer, in place: a bijection on uint64."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _band_seed(band: int) -> int:
    """splitmix64 of the band index: distinct per band (splitmix64 is a bijection)."""
    z = ((band + 1) * _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64: one 64-bit key per band of ``rows`` signature values.

    Band j covers columns ``j*rows .. (j+1)*rows - 1`` (needs bands*rows <=
    num_perm; extra columns are unused). Key = h_rows with
    h_0 = splitmix64(j + 1), h_{r+1} = fmix64(h_r ^ v_r) * C (C odd): each step
    is a bijection of h for a fixed value and of the value for a fixed h, so
    (1) the key is a deterministic function of the band's values and its index
    (stable across processes and versions: fixed constants, uint64 wrap-around);
    (2) two bands with the same index that differ in exactly one row *never*
    share a key; (3) otherwise keys behave like random 64-bit values: a false
    match has probability ~2^-64 per pair of documents and band, i.e. about
    bands x n^2 / 2^65 spurious candidate pairs among n documents (4e-3 for
    n = 10^8 and 14 bands). Keys of different band indices are seeded apart, so
    grouping on (band, key) or on key alone gives the same candidates up to
    that probability.
    """
    sig = np.asarray(signatures)
    if sig.ndim != 2:
        raise ValueError(f"signatures must be 2-D (n_docs, num_perm), got shape {sig.shape}")
    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be >= 1, got {bands} x {rows}")
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands x rows = {bands * rows} exceeds num_perm = {sig.shape[1]}")
    if sig.dtype != np.uint64:
        if sig.dtype.kind not in "iu" or (sig.size and sig.min() < 0):
            raise ValueError(f"signatures must hold non-negative integers, got dtype {sig.dtype}")
        sig = sig.astype(np.uint64)
    v = sig[:, : bands * rows].reshape(len(sig), bands, rows)
    h = np.empty((len(sig), bands), dtype=np.uint64)
    h[:] = np.array([_band_seed(j) for j in range(bands)], dtype=np.uint64)
    for r in range(rows):
        h ^= v[:, :, r]
        _fmix64(h)
        h *= _MIX_MUL
    return h


@lru_cache(maxsize=256)
def _choose_bands(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    # All (b, r) with b*r <= num_perm, in datasketch's order (b, then r, ascending).
    cand = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=np.float64)
    b, r = cand[:, :1], cand[:, 1:]

    def area(lo: float, hi: float, negative: bool) -> np.ndarray:
        # Composite Simpson on 2048 intervals: error < 1e-9 here, far below the
        # gaps between candidates that decide the choice.
        if hi <= lo:
            return np.zeros(len(cand))
        s = np.linspace(lo, hi, 2049)[None, :]
        p = 1.0 - (1.0 - s**r) ** b  # probability of sharing >= 1 band
        f = 1.0 - p if negative else p
        w = np.ones(2049)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        return (f * w).sum(axis=1) * (hi - lo) / (3 * 2048)

    error = fp_weight * area(0.0, threshold, False) + fn_weight * area(threshold, 1.0, True)
    best = int(np.argmin(error))
    return int(cand[best, 0]), int(cand[best, 1])


def choose_bands(
    threshold: float, num_perm: int, *, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= num_perm minimising
    ``fp_weight * FP + fn_weight * FN``, where FP is the area under the
    candidate probability 1 - (1 - s^rows)^bands for Jaccard s in [0, threshold]
    and FN the area above it for s in [threshold, 1] (the criterion of
    datasketch's ``MinHashLSH._optimal_param``, integrated here by Simpson's
    rule; same choices on the thresholds tested).

    Equal weights centre the S-curve on the threshold, so pairs just above it
    are found only about half the time: for 0.8 with 128 permutations this
    picks 9 x 13, which found only 72 % of the pairs with Jaccard >= 0.8 in
    MEASUREMENTS.md. Raise ``fn_weight`` to favour recall.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    if fp_weight < 0 or fn_weight < 0 or fp_weight + fn_weight <= 0:
        raise ValueError(f"weights must be >= 0 and not both 0, got {fp_weight}, {fn_weight}")
    return _choose_bands(float(threshold), int(num_perm), float(fp_weight), float(fn_weight))


# --------------------------------------------------------------------------
# Similarities
# --------------------------------------------------------------------------

def signature_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the fraction of positions where two
    signatures (same num_perm, seed and scheme) are equal."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"signatures must be 1-D of the same non-zero length, got {a.shape} and {b.shape}")
    return float(np.count_nonzero(a == b)) / a.size


def shingle_sets(texts: Sequence[str], segs: Sequence[str | None], n: int = DEFAULT_N,
                 n_zh: int = DEFAULT_N_ZH) -> list[np.ndarray]:
    """Each document's shingles (:func:`shingles`) as a sorted array of distinct 64-bit hashes (the first 8 bytes
    of each shingle's SHA-1): the compact form exact verification intersects. 64 bits, not the signatures' 32: LSH
    hands verification exactly the pairs whose 32-bit hashes collide (two one-shingle documents with colliding
    hashes have equal signatures), so those bits cannot tell them apart; the other 32 bits can."""
    hv, counts = shingle_hashes(texts, segs, n, n_zh, dtype="<u8")
    return [np.unique(part) for part in np.split(hv, np.cumsum(counts)[:-1])] if len(counts) else []


def set_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct values (from :func:`shingle_sets`); 1.0 for two
    empty sets, as :func:`jaccard`."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return 1.0 if union == 0 else inter / union


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|; 1.0 for two empty sets (as their MinHash signatures,
    all MAX_HASH, are equal)."""
    a, b = set(a), set(b)
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union
