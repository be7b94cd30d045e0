"""stats.json: per stage and per batch, documents and tokens in, out and removed by reason, and CPU seconds."""
from __future__ import annotations

from collections.abc import Iterable


def merge_stage_stats(per_shard: Iterable[list[dict]]) -> list[dict]:
    """Sum per-shard stage stats into one entry per stage, in pipeline order."""
    merged: dict[str, dict] = {}
    for stages in per_shard:
        for s in stages:
            m = merged.setdefault(s["stage"], {"stage": s["stage"], "docs_in": 0, "tokens_in": 0, "docs_out": 0,
                                               "tokens_out": 0, "removed": {}, "cpu_seconds": 0.0})
            for key in ("docs_in", "tokens_in", "docs_out", "tokens_out", "cpu_seconds"):
                m[key] += s[key]
            _add(m["removed"], s["removed"])
            if "lines_removed" in s:
                _add(m.setdefault("lines_removed", {}), s["lines_removed"])
    for m in merged.values():
        m["cpu_seconds"] = round(m["cpu_seconds"], 3)
        m["removed"] = dict(sorted(m["removed"].items()))
        if "lines_removed" in m:
            m["lines_removed"] = dict(sorted(m["lines_removed"].items()))
    return list(merged.values())


def _add(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    """Add per-reason counts (documents and tokens, or lines and tokens) into ``total``."""
    for reason, counts in part.items():
        slot = total.setdefault(reason, dict.fromkeys(counts, 0))
        for key, value in counts.items():
            slot[key] += value


def build_stats(config_hash: str, shard_results: list[dict], batch_shards: int | dict[int, int], wall_seconds: float,
                memory: dict | None = None) -> dict:
    """The run's stats from the per-shard results, shards in arrival order; ``batch_shards``: units per batch, or
    the batch of each unit by index (corpusslim.tracker.ledger.batch_numbers)."""
    done = [r for r in shard_results if r["status"] == "done"]
    stages = merge_stage_stats(r["stages"] for r in done)
    batches: dict[int, list[dict]] = {}
    for r in done:
        batches.setdefault(batch_shards[r["index"]] if isinstance(batch_shards, dict) else r["index"] // batch_shards,
                           []).append(r)
    cpu = sum(s["cpu_seconds"] for s in stages) + sum(r["write_cpu_seconds"] for r in done)
    return {
        "config_hash": config_hash,
        "shards": {"total": len(shard_results), "done": len(done)},
        "quarantined": [{k: r[k] for k in ("shard", "path", "error")} for r in shard_results
                        if r["status"] != "done"],
        "totals": {
            "docs_in": sum(r["rows"]["in"] for r in done),
            "tokens_in": stages[0]["tokens_in"] if stages else 0,
            "docs_kept": sum(r["rows"]["kept"] for r in done),
            "tokens_kept": stages[-1]["tokens_out"] if stages else 0,
            "docs_rejected": sum(r["rows"]["rejected"] for r in done),
            "bytes_in": sum(r["bytes_in"] for r in done),
            "text_bytes": sum(r["text_bytes"] for r in done),
            "output_bytes": sum(f["bytes"] for r in done for f in r.get("files", {}).values()),
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall_seconds, 3),
        },
        "memory_mb": memory or {},
        "stages": stages,
        "batches": [{"batch": b, "shards": [r["shard"] for r in rs],
                     "stages": merge_stage_stats([r["stages"] for r in rs])} for b, rs in sorted(batches.items())],
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _size(n: int) -> str:
    """Bytes in kB, MB or GB with three significant digits."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def quarantine_message(q: dict) -> str:
    """A quarantined shard's error naming its path once (input errors start with the path)."""
    return q["error"] if q["error"].startswith(q["path"]) else f"{q['path']}: {q['error']}"


def format_summary(stats: dict) -> str:
    """The end-of-run table a person reads: per stage, documents and tokens in, kept and removed by reason."""
    rows = [("stage", "reason", "docs", "tokens", "% docs", "cpu s")]
    for s in stats["stages"]:
        rows.append((s["stage"], "in", f"{s['docs_in']:,}", f"{s['tokens_in']:,}", "", f"{s['cpu_seconds']:.2f}"))
        for reason, r in s["removed"].items():
            rows.append(("", f"- {reason}", f"{r['docs']:,}", f"{r['tokens']:,}", _pct(r["docs"], s["docs_in"]), ""))
        for reason, r in s.get("lines_removed", {}).items():
            rows.append(("", f"- {reason} (lines)", f"{r['lines']:,} lines", f"{r['tokens']:,}", "", ""))
        rows.append(("", "kept", f"{s['docs_out']:,}", f"{s['tokens_out']:,}", _pct(s["docs_out"], s["docs_in"]), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    t = stats["totals"]
    lines.append("")
    lines.append(f"shards {stats['shards']['done']}/{stats['shards']['total']} done · documents in {t['docs_in']:,}, "
                 f"kept {t['docs_kept']:,}, rejected {t['docs_rejected']:,} · tokens in {t['tokens_in']:,}, kept "
                 f"{t['tokens_kept']:,} · wall {t['wall_seconds']:.1f} s · CPU {t['cpu_seconds']:.1f} s")
    if t.get("bytes_in"):
        lines.append(f"written {_size(t['output_bytes'])} to kept/, rejected/ and removed_lines/: "
                     f"{t['output_bytes'] / t['bytes_in']:.2f}× the {_size(t['bytes_in'])} read"
                     + (f" (dedup index/: {_size(t['index_bytes'])} more)" if t.get("index_bytes") else ""))
    for q in stats["quarantined"]:
        lines.append(f"QUARANTINED {quarantine_message(q)}")
    if stats.get("removed_shards"):
        lines.append(f"WARNING: {len(stats['removed_shards'])} shards of an earlier run are no longer in the input; "
                     f"their outputs were deleted: {', '.join(stats['removed_shards'][:5])}")
    repeated = stats.get("duplicate_ids", {})
    if repeated.get("count"):
        examples = ", ".join(map(repr, repeated["examples"][:5]))
        if repeated.get("policy") == "suffix":
            lines.append(f"{repeated['count']:,} ids appeared on more than one input row (e.g. {examples}); their "
                         f"{repeated['renamed_rows']:,} later occurrences were renamed <id>#2, <id>#3, ...")
        else:
            lines.append(f"WARNING: {repeated['count']:,} ids appear on more than one input row (e.g. {examples}); "
                         "dup_of may name either of them (on_duplicate_id: suffix renames the later ones)")
    return "\n".join(lines)
