"""Score and time corpusslim.filters.segment.Segmenter on the SIGHAN 2005 PKU test set.

    python bench/cws_pku.py [--data-dir DIR] [--runs 3]

Accuracy: SIGHAN word-span precision / recall / F1 of ``pku_test.utf8``
against ``pku_test_gold.utf8``, for HMM on and off, computed both from a bare
``jieba.lcut`` loop and from ``Segmenter.segment`` (the two must agree).
Speed: MB/s (UTF-8 bytes of the test lines / CPU seconds) of
``Segmenter.segment`` vs a bare ``jieba.lcut`` loop on the same lines, median
of ``--runs`` runs (interleaved chunk by chunk), timed after both are initialised.

Data: icwb2-data (SIGHAN 2005 bakeoff), research / non-commercial use.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jieba

from corpusslim.filters.segment import Segmenter, sighan_score

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared/data/cws"
TEST_FILE = "pku_test.utf8"
GOLD_FILE = "pku_test_gold.utf8"


def load(data_dir: Path) -> tuple[list[str], list[list[str]]]:
    """Raw test lines and gold word lists (CRLF handled by universal newlines)."""
    missing = [f for f in (TEST_FILE, GOLD_FILE) if not (data_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"PKU data not found: {', '.join(str(data_dir / f) for f in missing)} "
            f"(pass --data-dir pointing at the directory holding {TEST_FILE} and {GOLD_FILE})"
        )
    raw = (data_dir / TEST_FILE).read_text(encoding="utf-8").splitlines()
    gold = [line.split() for line in (data_dir / GOLD_FILE).read_text(encoding="utf-8").splitlines()]
    if len(raw) != len(gold):
        raise ValueError(f"{TEST_FILE} has {len(raw)} lines but {GOLD_FILE} has {len(gold)}")
    return raw, gold


def bare_words(lines: list[str], hmm: bool) -> list[list[str]]:
    return [[w for w in jieba.lcut(t, HMM=hmm) if not w.isspace()] for t in lines]


def segmenter_words(seg: Segmenter, lines: list[str]) -> list[list[str]]:
    return [s.split() for s in seg.segment(lines)]


def time_runs(lines: list[str], seg: Segmenter, runs: int, chunk: int = 50) -> tuple[float, float]:
    """Median CPU seconds of a full pass of (bare lcut loop, Segmenter.segment).

    Each run is one pass over all lines for each implementation, interleaved
    chunk by chunk (alternating which goes first) so both see the same
    machine conditions; CPU time keeps other processes out of the figures.
    """
    hmm = seg.hmm
    lcut = jieba.lcut
    clock = time.process_time
    chunks = [lines[i:i + chunk] for i in range(0, len(lines), chunk)]
    bare_t, seg_t = [], []
    for _ in range(runs):
        tb = ts = 0.0
        for j, part in enumerate(chunks):
            for which in ((0, 1) if j % 2 == 0 else (1, 0)):
                t0 = clock()
                if which == 0:
                    out = [lcut(t, HMM=hmm) for t in part]
                else:
                    out = seg.segment(part)
                dt = clock() - t0
                del out
                if which == 0:
                    tb += dt
                else:
                    ts += dt
        bare_t.append(tb)
        seg_t.append(ts)
    return statistics.median(bare_t), statistics.median(seg_t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help=f"directory with {TEST_FILE} and {GOLD_FILE} (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per setting; median reported")
    args = ap.parse_args(argv)
    if not args.data_dir.is_dir():
        ap.error(f"--data-dir {args.data_dir} does not exist "
                 f"(expected the SIGHAN PKU files {TEST_FILE} and {GOLD_FILE})")
    try:
        raw, gold = load(args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))

    n_bytes = sum(len(t.encode("utf-8")) for t in raw)
    jieba.setLogLevel(30)
    jieba.initialize()

    acc_rows, speed_rows = [], []
    for hmm in (True, False):
        seg = Segmenter(hmm=hmm)
        seg.segment(["初始化分词器"])  # initialise outside the timed region
        bw, sw = bare_words(raw, hmm), segmenter_words(seg, raw)
        if bw != sw:
            bad = next(i for i, (a, b) in enumerate(zip(bw, sw)) if a != b)
            raise SystemExit(f"HMM={hmm}: Segmenter differs from jieba.lcut at line {bad}")
        for impl, words in (("jieba.lcut", bw), ("Segmenter", sw)):
            s = sighan_score(words, gold)
            acc_rows.append((hmm, impl, s))
        tb, ts = time_runs(raw, seg, args.runs)
        speed_rows.append((hmm, n_bytes / tb / 1e6, n_bytes / ts / 1e6))

    print(f"PKU test set: {len(raw)} lines, {sum(map(len, gold))} gold words, "
          f"{n_bytes / 1e6:.3f} MB UTF-8; jieba {jieba.__version__}\n")
    print("| HMM | via | words | correct | P | R | F1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for hmm, impl, s in acc_rows:
        print(f"| {'on' if hmm else 'off'} | {impl} | {s['predicted']} | {s['correct']} "
              f"| {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} |")
    print(f"\nThroughput, median of {args.runs} runs (MB/s of UTF-8 input per CPU second):\n")
    print("| HMM | jieba.lcut loop | Segmenter.segment | ratio Segmenter/bare |")
    print("|---|---:|---:|---:|")
    for hmm, mb_bare, mb_seg in speed_rows:
        print(f"| {'on' if hmm else 'off'} | {mb_bare:.3f} | {mb_seg:.3f} | {mb_seg / mb_bare:.3f} |")
    best = max((r for r in acc_rows if r[1] == "Segmenter"), key=lambda r: r[2]["f1"])
    print(f"\nBest F1: HMM={'on' if best[0] else 'off'} ({best[2]['f1']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
