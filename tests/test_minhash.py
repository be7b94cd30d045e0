"""Tests for corpusslim.filters.minhash (normalisation, shingles, MinHash signatures, LSH bands).

Offline: uses only tests/fixtures/minhash/docs.jsonl (10 BBC articles with two
real near-duplicate pairs, 6 zh_wiki paragraphs with their jieba segmentation;
see the README there) and datasketch as the reference implementation.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

import corpusslim.filters.minhash as fm
from corpusslim.filters.minhash import (
    MAX_HASH,
    MinHasher,
    band_keys,
    choose_bands,
    exact_hashes,
    jaccard,
    normalise_text,
    shingle_hashes,
    shingles,
    signature_jaccard,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "minhash"
P61 = (1 << 61) - 1


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    rows = [json.loads(line) for line in (FIXTURES / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 16
    return rows


def doc_shingles(d: dict) -> list[str]:
    return shingles(d["text"], d.get("seg"), 5, 5)


def reference(docs_shingles, num_perm, seed, scheme="legacy", permutations=None) -> np.ndarray:
    """datasketch, one MinHash per document, update() once per shingle."""
    out = []
    for doc in docs_shingles:
        if permutations is None:
            m = MinHash(num_perm, seed, scheme=scheme)
        else:
            m = MinHash(num_perm, seed, scheme=scheme, permutations=permutations)
        for s in doc:
            m.update(s.encode("utf-8"))
        out.append(m.hashvalues.astype(np.uint64))
    return np.array(out, dtype=np.uint64).reshape(len(out), num_perm)


def sha1_32(s: str) -> int:
    return struct.unpack("<I", hashlib.sha1(s.encode("utf-8")).digest()[:4])[0]


# --------------------------------------------------------------------------
# normalise_text / exact_hashes
# --------------------------------------------------------------------------

def test_normalise_text():
    assert normalise_text("  Hello\t\tWORLD \n") == "hello world"
    assert normalise_text("ＡＢＣ　１２３") == "abc 123"  # full-width letters, digits, ideographic space
    assert normalise_text("Straße") == "strasse"  # casefold, not lower
    assert normalise_text("ﬁne") == "fine"  # NFKC ligature
    assert normalise_text("") == normalise_text(" \n\t ") == ""
    for t in ["İstanbul ＡＢＣ", "ǅ ﬃ Ⅻ", "  我爱\u3000北京\xa0天安门 "]:
        once = normalise_text(t)
        assert normalise_text(once) == once  # idempotent


def test_exact_hashes_equal_under_normalisation():
    variants = [
        "The Quick brown fox.",
        "the quick BROWN fox.",
        "  The\tQuick\n\nbrown   fox. ",
        "Ｔｈｅ Ｑｕｉｃｋ ｂｒｏｗｎ ｆｏｘ．",  # full-width forms
        "The\u3000Quick\xa0brown fox.",
    ]
    h = exact_hashes(variants)
    assert h.dtype == np.uint64 and h.shape == (5,)
    assert len(set(h.tolist())) == 1


def test_exact_hashes_differ_otherwise():
    texts = ["the quick brown fox.", "the quick brown fox", "the quick brown fox!", "the quickbrown fox.",
             "the quick brown fax.", "我爱北京", "我爱北京天安门", ""]
    h = exact_hashes(texts)
    assert len(set(h.tolist())) == len(texts)


def test_exact_hashes_stable():
    # Pinned to the documented definition: BLAKE2b-64 of the normalised UTF-8, little-endian.
    want = int.from_bytes(hashlib.blake2b(b"hello world", digest_size=8).digest(), "little")
    assert exact_hashes(["Hello   WORLD"]).tolist() == [want]
    assert exact_hashes([]).shape == (0,)
    assert exact_hashes(["a"]).flags.writeable


# --------------------------------------------------------------------------
# shingles
# --------------------------------------------------------------------------

def test_shingles_english():
    text = "The quick brown fox jumps over the lazy dog."
    assert shingles(text, None, 5, 3) == [
        "the quick brown fox jumps",
        "quick brown fox jumps over",
        "brown fox jumps over the",
        "fox jumps over the lazy",
        "jumps over the lazy dog.",
    ]
    assert shingles("  A  b\tC ", None, 1, 3) == ["a", "b", "c"]
    assert shingles("one two three", None, 2, 3) == ["one two", "two three"]


def test_shingles_short_and_empty():
    assert shingles("Hello   World", None, 5, 3) == ["hello world"]
    assert shingles("a b c d e", None, 5, 3) == ["a b c d e"]
    assert shingles("", None, 5, 3) == []
    assert shingles(" \n\t", None, 5, 3) == []
    assert shingles("x", "", 5, 3) == []
    assert shingles("x", "， 。 ！", 5, 3) == []  # punctuation only
    with pytest.raises(ValueError):
        shingles("a b", None, 0, 3)


def test_shingles_chinese_seg():
    seg = "我 爱 北京 天安门 ， 天安门 上 太阳 升 。"
    # punctuation-only tokens dropped; the text argument is ignored
    assert shingles("ignored", seg, 5, 3) == [
        "我 爱 北京", "爱 北京 天安门", "北京 天安门 天安门", "天安门 天安门 上", "天安门 上 太阳", "上 太阳 升"]
    assert shingles("", "北京 ， 欢迎 你 。", 5, 5) == ["北京 欢迎 你"]  # shorter than n_zh
    # normalised like text: full width, case, whitespace; "……" and "——" are punctuation
    assert shingles("", " ＡＩ   模型 …… 发布\u3000—— GPT-4 ", 5, 2) == ["ai 模型", "模型 发布", "发布 gpt-4"]
    # numbers and mixed tokens are words
    assert shingles("", "2012 年 1 月", 5, 4) == ["2012 年 1 月"]


def test_shingles_fixture_docs(docs):
    for d in docs:
        sh = doc_shingles(d)
        if d["lang"] == "zh":
            words = [w for w in d["seg"].split() if any(c.isalnum() for c in w)]
            assert len(sh) == len(words) - 4
            assert not any(p in s for s in sh for p in "，。、《》")
        else:
            assert len(sh) == len(d["text"].split()) - 4


def test_normalised_input_gives_the_same_hashes_and_shingles(docs):
    """The dedup stage normalises each text once and passes ``normalised=True``: same exact hashes and shingles."""
    texts = [d["text"] for d in docs] + ["İstanbul ＦＵＬＬ  width\u3000x", "Straße STRASSE"]
    norms = [normalise_text(t) for t in texts]
    assert (exact_hashes(norms, normalised=True) == exact_hashes(texts)).all()
    segs = [d.get("seg") for d in docs] + [None, None]
    assert ([shingles(n, s, 5, 5, normalised=True) for n, s in zip(norms, segs)]
            == [shingles(t, s, 5, 5) for t, s in zip(texts, segs)])
    assert exact_hashes(texts, normalised=True)[-2] != exact_hashes(texts)[-2]  # the flag is not ignored


def _hash_cases(docs: list[dict]) -> tuple[list[str], list[str | None]]:
    """The fixture documents, plus documents of 0, 1, n - 1, n and n + 1 words, white space and punctuation only,
    full-width and case variants, in shuffled order."""
    texts = [d["text"] for d in docs]
    segs = [d.get("seg") for d in docs]
    rng = random.Random(3)
    for k in (0, 1, 2, 4, 5, 6, 9):
        words = [rng.choice(["a", "Bb", "c,", "ＤＤ", "é", "1"]) for _ in range(k)]
        texts += [" ".join(words), "x"]
        segs += [None, " ， ".join(words) or " "]
    texts += [" \n\t", "x", "ignored"]
    segs += [None, "， 。 ！", " ＡＩ   模型 …… 发布\u3000—— GPT-4 "]
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [segs[i] for i in order]


@pytest.mark.parametrize("n, n_zh, group", [(5, 5, None), (5, 3, None), (1, 2, None), (4, 5, 7)])
def test_shingle_hashes_equal_the_hashes_of_the_shingles(docs, monkeypatch, n, n_zh, group):
    """shingle_hashes builds the n-grams in polars: the same SHA-1 prefixes, in the same order, as hashing each
    document's shingles; also with both n-gram sizes in one batch and with word groups smaller than documents."""
    if group is not None:
        monkeypatch.setattr(fm, "_WORD_GROUP", group)
    texts, segs = _hash_cases(docs)
    expected = [shingles(t, s, n, n_zh) for t, s in zip(texts, segs)]
    for dtype in ("<u4", "<u8"):
        hashes, counts = shingle_hashes(texts, segs, n, n_zh, dtype=dtype)
        assert counts.tolist() == [len(x) for x in expected]
        assert np.array_equal(hashes, fm._sha1_prefixes(expected, dtype))
    norms = [normalise_text(t) for t in texts]
    assert np.array_equal(shingle_hashes(norms, segs, n, n_zh, normalised=True)[0],
                          shingle_hashes(texts, segs, n, n_zh)[0])
    sig = MinHasher(16, 1).signatures_of_hashes(*shingle_hashes(texts, segs, n, n_zh))
    assert np.array_equal(sig, reference(expected, 16, 1))


def test_shingle_hashes_of_no_documents():
    hashes, counts = shingle_hashes([], [])
    assert len(hashes) == 0 and len(counts) == 0
    assert MinHasher(8, 1).signatures_of_hashes(hashes, counts).shape == (0, 8)


# --------------------------------------------------------------------------
# MinHasher: equal to datasketch
# --------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["legacy", "affine32"])
def test_permutations_equal_datasketch(scheme):
    for num_perm, seed in [(112, 1), (128, 42), (7, 0)]:
        ours = MinHasher(num_perm, seed, scheme=scheme).permutations
        theirs = np.asarray(MinHash(num_perm, seed, scheme=scheme).permutations).astype(np.uint64)
        assert np.array_equal(ours.astype(np.uint64), theirs)


@pytest.mark.parametrize("scheme", ["legacy", "affine32"])
@pytest.mark.parametrize("num_perm,seed", [(112, 1), (128, 1), (64, 7), (13, 12345), (1, 3)])
def test_signatures_equal_datasketch(docs, scheme, num_perm, seed):
    batch = [doc_shingles(d) for d in docs]
    batch.insert(0, [])  # empty documents first, in the middle and last
    batch.insert(5, [])
    batch += [
        ["x"],
        ["ünïcödé wörds", "naïve café", "emoji 🙂 test", "日本語 テキスト", "北京 天安门 广场", "北京 天安门 广场"],
        [],
    ]
    sig = MinHasher(num_perm, seed, scheme=scheme).signatures(batch)
    assert sig.dtype == np.uint64 and sig.shape == (len(batch), num_perm)
    assert np.array_equal(sig, reference(batch, num_perm, seed, scheme))
    assert (sig[0] == MAX_HASH).all() and (sig[-1] == MAX_HASH).all()


@pytest.mark.parametrize("scheme", ["legacy", "affine32"])
def test_signatures_windows_and_groups(docs, monkeypatch, scheme):
    """Documents spanning several hash groups and affine windows (tiny sizes)."""
    monkeypatch.setattr(fm, "_WINDOW", 37)
    monkeypatch.setattr(fm, "_HASH_GROUP", 100)
    monkeypatch.setattr(fm, "_PERM_BLOCK", 3)
    batch = [doc_shingles(d) for d in docs] + [[], ["a b"], [], ["c d", "e f"]]
    random.Random(0).shuffle(batch)
    sig = MinHasher(20, 5, scheme=scheme).signatures(batch)
    assert np.array_equal(sig, reference(batch, 20, 5, scheme))


def test_signatures_edge_batches():
    mh = MinHasher(16, 1)
    assert mh.signatures([]).shape == (0, 16)
    assert (mh.signatures([[], []]) == MAX_HASH).all()
    one = mh.signatures([["hello world"]])
    assert np.array_equal(one, reference([["hello world"]], 16, 1))
    # order and repeats of shingles do not matter (set semantics)
    a = mh.signatures([["a", "b", "c"], ["c", "b", "a", "a"]])
    assert np.array_equal(a[0], a[1])


def test_legacy_arithmetic_edge_cases():
    """Crafted permutations that hit every branch of the mod-(2^61-1) shortcut
    (lo + hi >= p, lo == p, 64-bit wrap, E == 2^32 - 1), against datasketch."""
    shingle = "edge case shingle"
    h = sha1_32(shingle)
    targets = []  # values of x = h*a + b mod 2^64 to hit
    for hi in range(8):
        for lo in [P61, P61 - 1, P61 - 3, P61 - 7, P61 - 8, 0, 1, 6, 7, 8, 9, (1 << 32) - 1, (1 << 33) - 1]:
            targets.append((hi << 61) + lo)
    targets.append((1 << 64) - 1)
    M64 = (1 << 64) - 1
    a = np.array([(2 * k + 1) % M64 for k in range(len(targets))], dtype=np.uint64)
    b = np.array([(t - h * int(ak)) & M64 for t, ak in zip(targets, a)], dtype=np.uint64)
    rng = random.Random(0)
    others = [f"other {rng.random()}" for _ in range(50)]
    batch = [[shingle], [shingle] + others, others, [shingle, "x"]]
    # All permutations at once, then one at a time (a document is recomputed
    # exactly when any of its permutations needs it: test each case alone too).
    for k0, k1 in [(0, len(targets))] + [(k, k + 1) for k in range(len(targets))]:
        mh = MinHasher(k1 - k0, 1)
        mh.a, mh.b = a[k0:k1], b[k0:k1]
        got = mh.signatures(batch)
        want = reference(batch, k1 - k0, 1, "legacy", permutations=(a[k0:k1], b[k0:k1]))
        assert np.array_equal(got, want), (k0, targets[k0])
    # the crafted values really are the edge cases: E in 0..7 or 2^32 - 1
    e = ((np.uint64(h) * a + b) % np.uint64(P61)) & np.uint64(MAX_HASH)
    assert (e < 8).sum() >= 24 and (e == MAX_HASH).sum() >= 1


def test_minhasher_pickle_and_repr():
    mh = MinHasher(32, 9)
    mh2 = pickle.loads(pickle.dumps(mh))
    batch = [["a b c"], ["d e f", "g h i"]]
    assert np.array_equal(mh.signatures(batch), mh2.signatures(batch))
    assert "num_perm=32" in repr(mh)
    with pytest.raises(ValueError):
        MinHasher(0)
    with pytest.raises(ValueError):
        MinHasher(8, scheme="affine64")


# --------------------------------------------------------------------------
# band_keys / choose_bands
# --------------------------------------------------------------------------

def test_band_keys_identical_and_one_row():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 1 << 32, size=(1, 112), dtype=np.uint64)
    keys = band_keys(np.vstack([sig, sig]), 14, 8)
    assert keys.dtype == np.uint64 and keys.shape == (2, 14)
    assert np.array_equal(keys[0], keys[1])
    base = keys[0]
    for col in range(112):
        changed = sig.copy()
        changed[0, col] ^= 1 + col
        k = band_keys(changed, 14, 8)[0]
        diff = np.flatnonzero(k != base)
        assert diff.tolist() == [col // 8], col


def test_band_keys_properties():
    rng = np.random.default_rng(1)
    sig = rng.integers(0, 1 << 32, size=(500, 112), dtype=np.uint64)
    keys = band_keys(sig, 14, 8)
    assert len(np.unique(keys)) == keys.size  # random bands: no collisions
    # same values in different bands give different keys
    same = np.tile(sig[:1, :8], (1, 14))
    assert len(set(band_keys(same, 14, 8)[0].tolist())) == 14
    # uint32 input gives the same keys; only the first bands*rows columns count
    assert np.array_equal(band_keys(sig.astype(np.uint32), 14, 8), keys)
    assert np.array_equal(band_keys(sig, 9, 12)[:, :9], band_keys(sig[:, :108], 9, 12))
    assert np.array_equal(band_keys(sig, 13, 8), keys[:, :13])
    with pytest.raises(ValueError):
        band_keys(sig, 15, 8)
    with pytest.raises(ValueError):
        band_keys(sig[0], 14, 8)
    assert band_keys(np.empty((0, 112), np.uint64), 14, 8).shape == (0, 14)


def test_band_keys_pinned():
    # Stored band keys must stay valid across versions: pin the function.
    sig = np.arange(16, dtype=np.uint64).reshape(2, 8) * np.uint64(0x9E3779B9)
    assert band_keys(sig, 2, 4).tolist() == PINNED_BAND_KEYS


PINNED_BAND_KEYS = [[16848108794744778675, 8974144384418848714], [2212409180719196595, 2155946772473824806]]


def test_choose_bands():
    for t in (0.5, 0.7, 0.8, 0.9):
        for num_perm in (64, 112, 128, 256):
            b, r = choose_bands(t, num_perm)
            assert b * r <= num_perm and b >= 1 and r >= 1
            # the S-curve's midpoint (1/b)^(1/r) sits near the threshold
            assert abs((1 / b) ** (1 / r) - t) < 0.1
    b, r = choose_bands(0.8, 112)
    assert (b, r) == (9, 12)
    # favouring recall moves the curve left (more bands or fewer rows)
    b2, r2 = choose_bands(0.8, 112, fp_weight=0.2, fn_weight=0.8)
    assert (1 / b2) ** (1 / r2) < (1 / b) ** (1 / r)
    with pytest.raises(ValueError):
        choose_bands(1.0, 112)
    with pytest.raises(ValueError):
        choose_bands(0.8, 0)


def test_choose_bands_matches_datasketch():
    lsh = pytest.importorskip("datasketch.lsh")
    for t in (0.5, 0.8, 0.9):
        for num_perm in (112, 128):
            assert choose_bands(t, num_perm) == lsh._optimal_param(t, num_perm, 0.5, 0.5)


# --------------------------------------------------------------------------
# Near duplicates end to end
# --------------------------------------------------------------------------

def shares_band(k1: np.ndarray, k2: np.ndarray) -> bool:
    return bool((k1 == k2).any())


def test_near_duplicates_share_a_band(docs):
    sh = [doc_shingles(d) for d in docs]
    keys = band_keys(MinHasher(112, 1).signatures(sh), 14, 8)
    groups = {}
    for i, d in enumerate(docs):
        if d["group"]:
            groups.setdefault(d["group"], []).append(i)
    assert len(groups) == 2
    for i, j in groups.values():
        assert 0.85 < jaccard(set(sh[i]), set(sh[j])) < 0.95
        assert shares_band(keys[i], keys[j])
    # every other pair (different groups, unrelated, Chinese) shares none
    paired = {frozenset(p) for p in groups.values()}
    for i, j in combinations(range(len(docs)), 2):
        if frozenset((i, j)) not in paired:
            assert not shares_band(keys[i], keys[j]), (docs[i]["id"], docs[j]["id"])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_planted_near_duplicate(docs, lang):
    """Replacing 1 % of the words gives a word-5-gram Jaccard ~0.9: candidates."""
    rng = random.Random(3)
    mh = MinHasher()
    for d in (d for d in docs if d["lang"] == lang and not d["group"]):
        if lang == "en":
            words = normalise_text(d["text"]).split(" ")
        else:
            words = [w for w in d["seg"].split() if any(c.isalnum() for c in w)]
        edited = list(words)
        for i in rng.sample(range(len(words)), max(1, round(0.01 * len(words)))):
            edited[i] = "XYZ"
        a = shingles(" ".join(words), None if lang == "en" else " ".join(words), 5, 5)
        b = shingles(" ".join(edited), None if lang == "en" else " ".join(edited), 5, 5)
        assert jaccard(set(a), set(b)) > 0.85
        sig = mh.signatures([a, b])
        assert abs(signature_jaccard(sig[0], sig[1]) - jaccard(set(a), set(b))) < 0.12
        assert shares_band(*band_keys(sig, 14, 8))


# --------------------------------------------------------------------------
# similarities
# --------------------------------------------------------------------------

def test_signature_jaccard_and_jaccard():
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert signature_jaccard(a, a) == 1.0
    assert signature_jaccard(a, np.array([1, 2, 0, 0], dtype=np.uint64)) == 0.5
    with pytest.raises(ValueError):
        signature_jaccard(a, a[:3])
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0
    assert jaccard({"a"}, set()) == 0.0


def test_signature_jaccard_estimates_jaccard():
    rng = random.Random(11)
    universe = [f"w{i}" for i in range(2000)]
    mh = MinHasher(256, 1)
    for target in (0.2, 0.5, 0.8):
        common = int(1000 * 2 * target / (1 + target))
        shared = rng.sample(universe, 1000)
        a = set(shared)
        b = set(shared[:common]) | {f"z{i}" for i in range(1000 - common)}
        sig = mh.signatures([sorted(a), sorted(b)])
        assert abs(signature_jaccard(sig[0], sig[1]) - jaccard(a, b)) < 0.1


def test_exact_verification_tells_apart_shingles_whose_32_bit_hashes_collide():
    """Two one-shingle documents whose datasketch hashes collide have equal signatures, so LSH always pairs them;
    the 64-bit shingle sets exact verification compares must still find them different."""
    from corpusslim.filters.minhash import _sha1_hash32, set_jaccard, shingle_sets

    seen: dict[int, str] = {}
    for i in range(1_000_000):
        word = f"w{i}"
        h = int(_sha1_hash32([[word]])[0])
        if h in seen:
            a, b = seen[h], word
            break
        seen[h] = word
    sig = MinHasher(num_perm=16, seed=1, scheme="affine32").signatures([[a], [b]])
    assert (sig[0] == sig[1]).all()
    sa, sb = shingle_sets([a, b], [None, None])
    assert set_jaccard(sa, sb) == 0.0 and set_jaccard(sa, sa) == 1.0
