"""Input readers on the same documents: throughput and CPU of each format against Parquet, and the peak memory of
splitting a big .jsonl.gz file into Parquet parts (the path a file over the chunk size takes).

    python bench/readers.py [--mb 200] [--big-gb 1.0] [--runs 3] [--out bench/results/readers.json]

The documents are sample_data's, repeated in a shuffled order (seeded) to ``--mb`` MB of text. Each measurement
runs in a fresh process (peak memory from VmHWM); the reported figure is the median of ``--runs`` alternating runs.
"""
from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "jsonl.zst": ".jsonl.zst"}

# One measurement in a fresh process: argv = path, what ("read" a whole file, or "split" it into parts).
PROBE = r"""
import json, sys, time, tempfile
from corpusslim.runtime.inputs import discover_shards, read_shard, split_jsonl
from corpusslim.runtime.measure import peak_rss_mb
path, what = sys.argv[1], sys.argv[2]
[shard] = discover_shards(path)
wall, cpu = time.perf_counter(), time.process_time()
if what == "read":
    rows = read_shard(shard).height
else:
    result = split_jsonl(shard, 20_000, 64.0, tempfile.mkdtemp())
    rows = sum(p["rows"] for p in result["parts"])
print(json.dumps({"rows": rows, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "peak_mb": peak_rss_mb()}))
"""


def corpus(mb: float, seed: int = 0) -> pl.DataFrame:
    docs = pl.concat([pl.read_parquet(p) for p in sorted((REPO / "sample_data").glob("*.parquet"))],
                     how="diagonal_relaxed")
    text_mb = docs["text"].str.len_bytes().sum() / 1e6
    copies = max(1, round(mb / text_mb))
    out = pl.concat([docs.with_columns(id=pl.col("id") + f"#{k}") for k in range(copies)])
    return out.sample(fraction=1.0, shuffle=True, seed=seed)


def write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.write_parquet(path, row_group_size=10_000)
        return
    data = df.write_ndjson().encode()
    if fmt == "jsonl.gz":
        data = gzip.compress(data, compresslevel=6)
    elif fmt == "jsonl.zst":
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, "zstd") as out:
            out.write(data)
        data = sink.getvalue().to_pybytes()
    path.write_bytes(data)


def probe(path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def readers(work: Path, mb: float, runs: int) -> dict:
    df = corpus(mb)
    text_mb = df["text"].str.len_bytes().sum() / 1e6
    paths = {fmt: work / f"docs{ext}" for fmt, ext in FORMATS.items()}
    for fmt, path in paths.items():
        write(df, path, fmt)
    samples: dict[str, list[dict]] = {fmt: [] for fmt in FORMATS}
    for _ in range(runs):  # alternating: every format once per round
        for fmt, path in paths.items():
            samples[fmt].append(probe(path, "read"))
    rows = {}
    for fmt, runs_ in samples.items():
        med = {k: statistics.median(r[k] for r in runs_) for k in ("wall_s", "cpu_s", "peak_mb")}
        rows[fmt] = {"file_mb": round(paths[fmt].stat().st_size / 1e6, 1), "text_mb": round(text_mb, 1),
                     "text_mb_per_s": round(text_mb / med["wall_s"], 1), "cpu_s": round(med["cpu_s"], 2),
                     "peak_mb": round(med["peak_mb"]), "docs": runs_[0]["rows"]}
    base = rows["parquet"]
    for row in rows.values():
        row["cpu_vs_parquet"] = round(row["cpu_s"] / base["cpu_s"], 2)
    return rows


def big_split(work: Path, gb: float) -> dict:
    """Split a .jsonl.gz of about ``gb`` GB compressed into Parquet parts; peak memory against its size."""
    path = work / "big.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        seed = 0
        while path.stat().st_size < gb * 1e9:
            f.write(corpus(500, seed).write_ndjson().encode())
            f.flush()
            seed += 1
    result = probe(path, "split")
    return {"file_gb": round(path.stat().st_size / 1e9, 2), **{k: round(v, 1) if isinstance(v, float) else v
                                                             for k, v in result.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--big-gb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench/results/readers.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        results = {"readers": readers(Path(tmp), args.mb, args.runs)}
        if args.big_gb > 0:
            results["big_jsonl_gz_split"] = big_split(Path(tmp), args.big_gb)
        results["seconds"] = round(time.time() - started)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
