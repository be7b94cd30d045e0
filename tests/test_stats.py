"""stats.json and the end-of-run summary: per-shard counts add up, line removals per reason included."""
from __future__ import annotations

from corpusslim.tracker.stats import build_stats, format_summary


def _shard(index: int, lines: int, kept_bytes: int) -> dict:
    stage = {"stage": "lines", "docs_in": 10, "tokens_in": 1000, "docs_out": 10, "tokens_out": 900, "removed": {},
             "cpu_seconds": 0.5, "lines_removed": {"c4_line_javascript": {"lines": lines, "tokens": 10 * lines}}}
    return {"shard": f"s{index}", "path": f"/in/s{index}.parquet", "index": index, "status": "done",
            "rows": {"in": 10, "kept": 10, "rejected": 0}, "bytes_in": 4000, "text_bytes": 3000,
            "files": {"kept": {"rows": 10, "bytes": kept_bytes}, "rejected": {"rows": 0, "bytes": 100}},
            "stages": [stage], "write_cpu_seconds": 0.1, "startup_cpu_seconds": 0.0, "peak_rss_mb": 1.0}


def test_line_removals_and_output_size_add_up_over_shards():
    stats = build_stats("h", [_shard(0, 3, 1000), _shard(1, 4, 3000)], batch_shards=1, wall_seconds=1.0)
    [lines] = stats["stages"]
    assert lines["lines_removed"] == {"c4_line_javascript": {"lines": 7, "tokens": 70}}
    assert stats["totals"]["output_bytes"] == 4200 and stats["totals"]["bytes_in"] == 8000
    text = format_summary(stats)
    assert "c4_line_javascript (lines)" in text and "7 lines" in text
    assert "written 4.2 kB" in text and "0.53× the 8 kB read" in text
