"""A whole run with the lines stage: every input document's text is its kept or rejected text plus its rows of
``removed_lines/`` put back (original = kept lines + removed lines), and every removed line carries a reason of the
lines stage. Run-level (slow): a local Dask cluster over a copy of sample_data."""
from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner

from corpusslim.cli import main
from corpusslim.filters.lines import LINE_REASONS
from corpusslim.runtime.lines import restore
from tests.conftest import read_dir, write_config

STAGES = [{"kind": "lid", "languages": ["en", "zh"]}, {"kind": "lines"}, {"kind": "segment"}, {"kind": "dedup"},
          {"kind": "quality"}]


def test_every_document_is_kept_lines_plus_removed_lines(sample_input: Path):
    root = sample_input.parent
    result = CliRunner().invoke(main, ["run", str(write_config(root, stages=STAGES))])
    assert result.exit_code == 0, result.output
    original = dict(read_dir(sample_input).select("id", "text").iter_rows())
    out = pl.concat([read_dir(root / "out/kept"), read_dir(root / "out/rejected")], how="diagonal_relaxed")
    removed = read_dir(root / "out/removed_lines")
    assert set(removed["stage"]) == {"lines"} and set(removed["reason"]) <= set(LINE_REASONS)
    by_id: dict[str, list[dict]] = {}
    for row in removed.iter_rows(named=True):
        by_id.setdefault(row["id"], []).append(row)
    assert sorted(out["id"]) == sorted(original)
    assert all(restore(text, by_id.get(doc_id, [])) == original[doc_id]
               for doc_id, text in out.select("id", "text").iter_rows())
    assert removed.height > 1000  # the sample's Chinese pages lose their menus
