"""Language-ID accuracy and speed on the nine-language sentences: fastText alone, langdetect alone, our stage.

    python bench/lid_accuracy.py [--data ../shared/data/lid/lid_dev_9lang.jsonl] [--runs 3]

Prints a Markdown table: accuracy per language and overall, errors, and sentences per second on one core
(median of --runs timed runs, after the models are loaded).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from corpusslim.filters.langid import LanguageIdentifier, normalise

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/lid/lid_dev_9lang.jsonl"


def fasttext_alone(lid: LanguageIdentifier, texts: list[str]) -> list[str]:
    labels, _ = lid._model().predict([t.replace("\n", " ") for t in texts], k=1)
    return [normalise(label[0]) for label in labels]


def langdetect_alone(lid: LanguageIdentifier, texts: list[str]) -> list[str]:
    return [lid._detect_langs(t)[0] or "unknown" for t in texts]


def combined(lid: LanguageIdentifier, texts: list[str]) -> list[str]:
    return lid.identify(texts).lang


def measure(method, lid, texts, runs):
    method(lid, texts[:50])  # load models outside the timing
    times, labels = [], None
    for _ in range(runs):
        start = time.perf_counter()
        labels = method(lid, texts)
        times.append(time.perf_counter() - start)
    return labels, len(texts) / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with args.data.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    texts, gold = [r["text"] for r in rows], [r["lang"] for r in rows]
    langs = sorted(set(gold))
    lid = LanguageIdentifier()
    table = []
    for name, method in (("fastText LID-176 alone", fasttext_alone), ("langdetect alone", langdetect_alone),
                         ("combined stage", combined)):
        labels, speed = measure(method, lid, texts, args.runs)
        right, total = Counter(), Counter(gold)
        for g, p in zip(gold, labels):
            right[g] += g == p
        errors = len(gold) - sum(right.values())
        table.append([name] + [f"{right[lg] / total[lg]:.2%}" for lg in langs]
                     + [f"{1 - errors / len(gold):.2%}", str(errors), f"{speed:,.0f}"])
    header = ["method", *langs, "overall", "errors", "sentences/s"]
    print(f"{len(texts)} sentences from {args.data.name}; speed = median of {args.runs} runs, one core\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
