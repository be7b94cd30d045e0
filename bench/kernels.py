"""The per-document kernels changed for issue 17, each against the code it replaced, in the same process.

    python bench/kernels.py                       # sample_data, 5 repetitions
    python bench/kernels.py --input DIR --reps 7  # any folder of Parquet files with a text column

Per kernel, CPU seconds (``time.process_time``: polars' own threads included) of one pass over every document,
median of ``--reps`` repetitions, before and after, and whether both give the same values:

* ``sha1``: the first 4 bytes of SHA-1 of every word 5-gram shingle (datasketch's ``sha1_hash32``): hashlib per
  shingle (before) against the polars-hash plugin over one column (``corpusslim.filters.minhash``);
* ``sentences``: C4's sentence count per line: a regex matching each candidate with a lazy word prefix (before)
  against scanning for the end marks (``corpusslim.filters.sentences``);
* ``letter-free tokens``: Gopher's tokens without a letter: a regex search per distinct token (before) against one
  regex pass (``corpusslim.filters.quality``);
* ``tokens``: o200k_base counts: bpe-openai's ``encode_ordinary`` (before) against its binding's ``count``
  (``corpusslim.runtime.resources``);
* ``shingle hashes``: the SHA-1 prefixes of every document's word 5-grams: the shingles as Python strings, then
  hashed over one column (before) against n-grams built and hashed in polars (``minhash.shingle_hashes``);
* ``zh sentence ends``: whether a line has a Chinese sentence end: NFKC, then the end regex (before), against the
  marks looked up first (``corpusslim.filters.lines.zh_has_sentence_end``).

Results: ``bench/results/kernels.json`` and ``kernels.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from corpusslim.filters import lines as line_rules
from corpusslim.filters import minhash, quality, sentences
from corpusslim.runtime.resources import count_tokens

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results"


def sha1_before(docs: list[list[str]]) -> np.ndarray:
    digests = b"".join([hashlib.sha1(s.encode()).digest() for doc in docs for s in doc])
    return np.ndarray((len(digests) // 20,), dtype="<u4", buffer=digests, strides=(20,))


_LAZY_CANDIDATE = re.compile(r"(\S*?)([.!?]+)[\"'”’)\]]*(?=\s|$)")


def sentences_before(text: str) -> int:
    n = last_end = 0
    for m in _LAZY_CANDIDATE.finditer(text):
        if m.group(2) == "." and sentences._is_abbreviation(m.group(1)):
            continue
        nxt = sentences._NEXT_WORD.match(text, m.end())
        if nxt and (nxt.group(1).islower() or nxt.group(1).isdigit()):
            continue
        n += 1
        last_end = m.end()
    return n + (1 if text[last_end:].strip() else 0)


_HAS_LETTER = re.compile(r"[^\W\d_]").search


def letter_free_before(text: str) -> int:
    tokens = text.split()
    no_alpha = {t for t in set(tokens) if not _HAS_LETTER(t)}
    return sum(1 for t in tokens if t in no_alpha) if no_alpha else 0


def tokens_before(texts: list[str]) -> list[int]:
    import bpe_openai

    encode = bpe_openai.get_encoding("o200k_base").encode_ordinary
    return [len(encode(t)) for t in texts]


def timed(fn, arg, reps: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        start = time.process_time()
        out = fn(arg)
        times.append(time.process_time() - start)
    return round(statistics.median(times), 4), out


def same(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="sample_data", help="folder of Parquet files (relative: to the repository)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    texts = pl.concat([pl.read_parquet(p, columns=["text"]) for p in sorted((REPO / args.input).glob("*.parquet"))])
    texts = texts["text"].drop_nulls().to_list()
    docs = [minhash.shingles(t, None) for t in texts]
    lines = [line for t in texts for line in t.split("\n")]
    count_tokens(["warm up"])
    tokens_before(["warm up"])
    kernels = {
        "sha1": (sha1_before, lambda d: minhash._sha1_prefixes(d, "<u4"), docs,
                 f"{sum(map(len, docs)):,} word 5-gram shingles"),
        "sentences": (lambda ls: [sentences_before(x) for x in ls],
                      lambda ls: [sentences.count_sentences(x) for x in ls], lines, f"{len(lines):,} lines"),
        "letter-free tokens": (lambda ts: [letter_free_before(t) for t in ts],
                               lambda ts: [len(quality._NO_LETTER_TOKENS(t)) for t in ts], texts,
                               f"{len(texts):,} documents"),
        "tokens": (tokens_before, count_tokens, texts, f"{len(texts):,} documents"),
        "shingle hashes": (lambda ts: minhash._sha1_prefixes([minhash.shingles(t, None) for t in ts], "<u4"),
                           lambda ts: minhash.shingle_hashes(ts, [None] * len(ts))[0], texts,
                           f"{len(texts):,} documents"),
        "zh sentence ends": (lambda ls: [line_rules._ZH_SENT_END.search(unicodedata.normalize("NFKC", x)) is not None
                                         for x in ls],
                             lambda ls: [line_rules.zh_has_sentence_end(x) for x in ls], lines,
                             f"{len(lines):,} lines"),
    }
    rows = []
    for name, (before, after, data, what) in kernels.items():
        t_before, v_before = timed(before, data, args.reps)
        t_after, v_after = timed(after, data, args.reps)
        rows.append({"kernel": name, "over": what, "before_cpu_s": t_before, "after_cpu_s": t_after,
                     "ratio": round(t_before / t_after, 2) if t_after else None, "identical": same(v_before, v_after)})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit.strip(),
            "input": args.input, "reps": args.reps, "load": os.getloadavg()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kernels.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = [f"# Kernels before and after (issue 17), {meta['date']}, commit {meta['commit']}", "",
          f"Command: `python bench/kernels.py --input {args.input} --reps {args.reps}`; CPU seconds, median of "
          f"{args.reps}; load average {' '.join(f'{x:.1f}' for x in meta['load'])}.", "",
          "| kernel | over | before CPU s | after CPU s | before ÷ after | identical |", "|---|---|---:|---:|---:|---|"]
    md += [f"| {r['kernel']} | {r['over']} | {r['before_cpu_s']} | {r['after_cpu_s']} | {r['ratio']}× | "
           f"{'yes' if r['identical'] else 'NO'} |" for r in rows]
    (OUT / "kernels.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    sys.exit(0 if all(r["identical"] for r in rows) else 1)


if __name__ == "__main__":
    main()
