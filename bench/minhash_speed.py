"""Speed of MinHash signatures: datasketch vs corpusslim.filters.minhash.MinHasher.

    python bench/minhash_speed.py [--data-dir DIR] [--docs 2000] [--runs 3]
    python bench/minhash_speed.py --shingle-study      # the n_zh measurement

Speed: the first ``--docs`` documents of en_bbc_news.jsonl are shingled once
(word 5-grams, ``corpusslim.filters.minhash.shingles``); every method then turns the same
shingles into signatures of ``--num-perm`` permutations:

(a) ``datasketch.MinHash.update`` once per shingle (a new MinHash per document);
(b) ``datasketch.MinHash.bulk`` (``update_batch`` per document);
(c) ``MinHasher.signatures`` over the whole list.

All use datasketch's default SHA-1 hash and, unless stated, the "legacy" scheme
(``MinHasher``'s default, datasketch's only scheme before 2.0.0); the "affine32"
rows use datasketch 2.x's default scheme. Each ``MinHasher`` output is checked
equal to datasketch's for the same scheme. Timings are CPU seconds of this single-threaded process
(``time.process_time``), median of ``--runs`` runs, encoding shingles to UTF-8
included. MB = 10^6 bytes of UTF-8 document text.

``--shingle-study``: shingle Jaccard between a document and a copy with 5 % of
its words replaced (random words of the same corpus), for Chinese jieba-word
n-grams (n_zh = 1..5, zh_wiki.jsonl, edited text re-segmented, and without
re-segmentation; also 5 % of the hanzi replaced instead of words) and English
word n-grams (en_bbc_news.jsonl), plus the mean and maximum
Jaccard of random unrelated pairs. The numbers behind ``DEFAULT_N_ZH``.

Data: BBC news (Greene & Cunningham 2006; BBC copyright, research use);
Chinese Wikipedia paragraphs from CMRC 2018 (CC BY-SA 4.0).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from corpusslim.filters.minhash import DEFAULT_NUM_PERM, MinHasher, jaccard, normalise_text, shingles

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/corpus"
BBC = "en_bbc_news.jsonl"
ZH_WIKI = "zh_wiki.jsonl"


def load_texts(path: Path, limit: int | None = None) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass --data-dir pointing at the directory holding {path.name})")
    texts = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"])
                if limit is not None and len(texts) >= limit:
                    break
    return texts


def cpu_median(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), out


# --------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------

def speed(args: argparse.Namespace) -> None:
    from datasketch import MinHash

    texts = load_texts(args.data_dir / BBC, args.docs)
    n_docs, mb = len(texts), sum(len(t.encode("utf-8")) for t in texts) / 1e6
    P, seed = args.num_perm, args.seed

    t_sh, docs = cpu_median(lambda: [shingles(t, None) for t in texts], args.runs)
    n_sh = sum(map(len, docs))

    def ds_update(scheme):
        def run():
            out = np.empty((n_docs, P), dtype=np.uint64)
            for i, doc in enumerate(docs):
                m = MinHash(P, seed, scheme=scheme)
                for s in doc:
                    m.update(s.encode("utf-8"))
                out[i] = m.hashvalues
            return out
        return run

    def ds_bulk(scheme):
        def run():
            ms = MinHash.bulk([[s.encode("utf-8") for s in doc] for doc in docs], num_perm=P, seed=seed, scheme=scheme)
            return np.array([m.hashvalues for m in ms], dtype=np.uint64)
        return run

    def ours(scheme):
        mh = MinHasher(P, seed, scheme=scheme)
        return lambda: mh.signatures(docs)

    rows: list[tuple[str, float]] = []
    ref: dict[str, np.ndarray] = {}
    methods = [
        ("(a) datasketch `update` per shingle", "legacy", ds_update),
        ("(b) datasketch `MinHash.bulk`", "legacy", ds_bulk),
        ("(c) `MinHasher.signatures`", "legacy", ours),
        ("(b) datasketch `MinHash.bulk`, affine32", "affine32", ds_bulk),
        ("(c) `MinHasher.signatures`, affine32", "affine32", ours),
    ]
    for name, scheme, make in methods:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        secs, sig = cpu_median(make(scheme), args.runs)
        if scheme in ref:
            if not np.array_equal(ref[scheme], sig):
                raise SystemExit(f"{name}: signatures differ from datasketch's")
        else:
            ref[scheme] = sig
        rows.append((name, secs))
    rows.append(("shingling alone (`shingles`, word 5-grams)", t_sh))
    rows.append(("shingling + (c)", t_sh + rows[2][1]))

    base = rows[0][1]
    print(f"\n{n_docs} BBC documents, {mb:.2f} MB, {n_sh:,} shingles, num_perm={P}, "
          f"CPU seconds, median of {args.runs}\n")
    print("| method | seconds | docs/s | MB/s | vs (a) |")
    print("|---|---|---|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.3f} | {n_docs / secs:,.0f} | {mb / secs:.2f} | {base / secs:.1f}x |")
    print("\nAll signatures checked equal to datasketch's for the same scheme.")


# --------------------------------------------------------------------------
# n_zh study
# --------------------------------------------------------------------------

def _is_content(tok: str) -> bool:
    return not tok.isspace() and any(c.isalnum() for c in tok)


def shingle_study(args: argparse.Namespace) -> None:
    import logging

    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)
    rng = random.Random(args.seed)
    frac, reps = args.edit_frac, args.edits

    def seg(text: str) -> str:
        return " ".join(w for w in jieba.lcut(text, HMM=False) if not w.isspace())

    # Chinese: paragraphs with >= 100 content words.
    zh = []
    for t in load_texts(args.data_dir / ZH_WIKI):
        toks = jieba.lcut(t, HMM=False)
        if sum(map(_is_content, toks)) >= 100:
            zh.append(toks)
        if len(zh) >= args.zh_docs:
            break
    zh_vocab = [w for toks in zh for w in toks if _is_content(w)]

    # English: BBC documents, words of the normalised text.
    en = [normalise_text(t).split(" ") for t in load_texts(args.data_dir / BBC, args.en_docs)]
    en_vocab = [w for ws in en for w in ws]

    def edit(tokens: list[str], eligible: list[int], vocab: list[str]) -> list[str]:
        out = list(tokens)
        for i in rng.sample(eligible, max(1, round(frac * len(eligible)))):
            w = tokens[i]
            while w == tokens[i]:
                w = rng.choice(vocab)
            out[i] = w
        return out

    def is_hanzi(c: str) -> bool:
        return "\u4e00" <= c <= "\u9fff"

    hanzi = [c for toks in zh for w in toks for c in w if is_hanzi(c)]
    ns = range(1, 6)
    zh_reseg = {n: [] for n in ns}
    zh_noreseg = {n: [] for n in ns}
    zh_chars = {n: [] for n in ns}
    for toks in zh:
        eligible = [i for i, w in enumerate(toks) if _is_content(w)]
        orig_text = "".join(toks)
        orig_seg = seg(orig_text)
        orig_words = " ".join(w for w in toks if not w.isspace())
        char_pos = [i for i, c in enumerate(orig_text) if is_hanzi(c)]
        for _ in range(reps):
            new = edit(toks, eligible, zh_vocab)
            new_seg = seg("".join(new))
            new_words = " ".join(w for w in new if not w.isspace())
            # Character-level variant: 5 % of the hanzi replaced by random hanzi.
            new_chars = seg("".join(edit(list(orig_text), char_pos, hanzi)))
            for n in ns:
                orig_sh = set(shingles("", orig_seg, n_zh=n))
                zh_reseg[n].append(jaccard(orig_sh, set(shingles("", new_seg, n_zh=n))))
                zh_chars[n].append(jaccard(orig_sh, set(shingles("", new_chars, n_zh=n))))
                zh_noreseg[n].append(
                    jaccard(set(shingles("", orig_words, n_zh=n)), set(shingles("", new_words, n_zh=n))))
    en_j = {n: [] for n in ns}
    for words in en:
        for _ in range(reps):
            new = " ".join(edit(words, list(range(len(words))), en_vocab))
            orig = " ".join(words)
            for n in ns:
                en_j[n].append(jaccard(set(shingles(orig, None, n=n)), set(shingles(new, None, n=n))))

    # Unrelated pairs.
    zh_segs = [seg("".join(t)) for t in zh]
    en_txt = [" ".join(w) for w in en]
    pairs_zh = [tuple(rng.sample(range(len(zh_segs)), 2)) for _ in range(args.pairs)]
    pairs_en = [tuple(rng.sample(range(len(en_txt)), 2)) for _ in range(args.pairs)]
    if args.verbose:
        i, j = max(pairs_zh, key=lambda p: jaccard(set(shingles("", zh_segs[p[0]])), set(shingles("", zh_segs[p[1]]))))
        print("most similar unrelated zh pair:", zh_segs[i][:120], "|", zh_segs[j][:120], sep="\n")
    zh_un = {n: [jaccard(set(shingles("", zh_segs[i], n_zh=n)), set(shingles("", zh_segs[j], n_zh=n)))
                 for i, j in pairs_zh] for n in ns}
    en_un = {n: [jaccard(set(shingles(en_txt[i], None, n=n)), set(shingles(en_txt[j], None, n=n)))
                 for i, j in pairs_en] for n in ns}

    mean = statistics.fmean
    print(f"\nShingle Jaccard after replacing {frac:.0%} of the words ({reps} random edits per document); "
          f"zh: {len(zh)} zh_wiki paragraphs (>= 100 content words, "
          f"mean {mean([len(s.split()) for s in zh_segs]):.0f} jieba words), "
          f"en: {len(en)} BBC documents (mean {mean(map(len, en)):.0f} words); unrelated: {args.pairs} random pairs\n")
    print("| n | zh, re-segmented | zh, same segmentation | zh, 5 % of hanzi | en "
          "| zh unrelated (mean / max) | en unrelated (mean / max) |")
    print("|---|---|---|---|---|---|---|")
    for n in ns:
        print(f"| {n} | {mean(zh_reseg[n]):.3f} | {mean(zh_noreseg[n]):.3f} | {mean(zh_chars[n]):.3f} "
              f"| {mean(en_j[n]):.3f} "
              f"| {mean(zh_un[n]):.4f} / {max(zh_un[n]):.3f} | {mean(en_un[n]):.4f} / {max(en_un[n]):.3f} |")
    print("\nexpected for independent edits: (1-f)^n / (2 - (1-f)^n) = "
          + ", ".join(f"{(1 - frac) ** n / (2 - (1 - frac) ** n):.3f}" for n in ns))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--docs", type=int, default=2000, help="BBC documents for the speed test")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shingle-study", action="store_true", help="run the n_zh study instead of the speed test")
    ap.add_argument("--edit-frac", type=float, default=0.05)
    ap.add_argument("--edits", type=int, default=3, help="random edits per document (study)")
    ap.add_argument("--zh-docs", type=int, default=300)
    ap.add_argument("--en-docs", type=int, default=500)
    ap.add_argument("--pairs", type=int, default=2000, help="random unrelated pairs (study)")
    ap.add_argument("--verbose", action="store_true", help="study: show the most similar unrelated zh pair")
    args = ap.parse_args(argv)
    if args.shingle_study:
        shingle_study(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
