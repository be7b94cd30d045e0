"""Build sample_data/ shards from ../shared/data (real text; see SOURCES.md).

Run from the repository root: ``python sample_data/build.py``. The output is
deterministic for a given source and seed, so the committed shards can be rebuilt.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"

# (file, how many documents, source label); BBC documents in duplicate pairs are always kept.
PLAN = [
    ("corpus/en_bbc_news.jsonl", 900, "en_bbc_news"),
    ("corpus/en_abc_news.jsonl", 600, "en_abc_news"),
    ("corpus/en_webtext.jsonl", 500, "en_webtext"),
    ("corpus/zh_wiki.jsonl", 700, "zh_wiki"),
    ("corpus/zh_web_pages.jsonl", 45, "zh_web_pages"),
    ("corpus/zh_hotel_reviews.jsonl", 1500, "zh_hotel_reviews"),
]
OTHER_LANG_SENTENCES = 600  # from lid/lid_dev_9lang.jsonl, languages other than en and zh


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bbc_duplicate_ids(shared: Path) -> set[str]:
    ids: set[str] = set()
    lines = (shared / "neardup/bbc_dup_pairs.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        a, b, _jaccard, kind = line.split("\t")
        if kind in ("exact", "near"):
            ids.update((a, b))
    return ids


def build(shared: Path, out: Path, shards: int, seed: int) -> None:
    rng = random.Random(seed)
    docs: list[dict] = []
    dup_ids = bbc_duplicate_ids(shared)
    for rel, n, source in PLAN:
        rows = read_jsonl(shared / rel)
        must = [r for r in rows if r["id"] in dup_ids] if source == "en_bbc_news" else []
        rest = [r for r in rows if r["id"] not in dup_ids] if must else rows
        chosen = must + rng.sample(rest, max(0, n - len(must)))
        docs += [{"id": r["id"], "text": r["text"], "source": source} for r in chosen]
    sentences = [r for r in read_jsonl(shared / "lid/lid_dev_9lang.jsonl") if r["lang"] not in ("en", "zh")]
    for i, r in enumerate(rng.sample(sentences, OTHER_LANG_SENTENCES)):
        docs.append({"id": f"lid/{r['lang']}/{i:04d}", "text": r["text"], "source": f"lid_{r['lang']}"})
    rng.shuffle(docs)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.parquet"):
        old.unlink()
    per = -(-len(docs) // shards)
    for k in range(shards):
        part = pl.DataFrame(docs[k * per:(k + 1) * per],
                            schema={"id": pl.String, "text": pl.String, "source": pl.String})
        part.write_parquet(out / f"shard-{k:03d}.parquet", compression="zstd", compression_level=9)
    total = sum(p.stat().st_size for p in out.glob("shard-*.parquet"))
    print(f"{len(docs)} documents in {shards} shards, {total / 1e6:.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data directory")
    ap.add_argument("--out", type=Path, default=REPO / "sample_data")
    ap.add_argument("--shards", type=int, default=6)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    build(args.shared, args.out, args.shards, args.seed)


if __name__ == "__main__":
    main()
