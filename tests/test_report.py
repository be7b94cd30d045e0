"""The marginal-benefit report and the value CLI: files, self-containment, escaping, rebuild, JSON keys."""
from __future__ import annotations

import json
import re

import polars as pl
import pytest
from click.testing import CliRunner

from corpusslim.cli import main
from tests.conftest import write_config

HOSTILE = "<script>alert('x')</script> \x1b[31mred\x1b[0m"


@pytest.mark.slow
def test_report_of_a_run(sample_input, tmp_path):
    # A hostile document, rejected as too long (the only one with that reason, so it is shown as an example):
    # its text must appear escaped in the report.
    pl.DataFrame({"id": ["hostile"], "text": [HOSTILE + " weather" * 150_000]}) \
        .write_parquet(sample_input / "shard-006.parquet")
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path))])
    assert result.exit_code == 0, result.output
    report = tmp_path / "out/report"
    page = (report / "index.html").read_text(encoding="utf-8")
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    # The one-sentence answer is printed by run and is the first thing in the report.
    assert summary["headline"] == summary["recommendation"] and summary["headline"] in result.output
    assert summary["headline"] in page and summary["headline"] in (report / "summary.md").read_text()
    assert len(summary["batches"]) == 7 and summary["curve"]["model"] in ("power_law", "exponential",
                                                                            "michaelis_menten")
    assert len(summary["extrapolation"]) == summary["value_assumptions"]["extrapolate_batches"]
    assert {"value_status", "value_usd", "pool_cost_usd", "cpu_usd", "acquisition_usd", "storage_usd"} \
        <= set(summary["batches"][1])
    assert summary["batches"][0]["value_status"] == "n/a"
    assert set(summary["stop"]) >= {"batches_more", "low", "high"} or "reason" in summary["stop"]
    # Tables and sentences, not JSON dumps; plots carry titles.
    assert '{"' not in page and "<table>" in page and "Value vs full cost per batch" in page
    # Self-contained: images inline, nothing fetched.
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # Escaped: no live script tag or raw escape character from document text.
    assert "<script>" not in page and "&lt;script&gt;alert" in page
    assert "\x1b" not in page and "\\x1b[31mred" in page
    assert "hostile" in page
    md = (report / "summary.md").read_text(encoding="utf-8")
    assert md.startswith("# CorpusSlim marginal-benefit report") and "| batch |" in md
    # `corpusslim report` rebuilds the same figures from the run directory alone.
    before = (report / "summary.json").read_text(encoding="utf-8")
    (report / "summary.json").unlink()
    rebuilt = CliRunner().invoke(main, ["report", str(tmp_path / "out")])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (report / "summary.json").read_text(encoding="utf-8") == before


@pytest.mark.slow
def test_run_without_figures_then_report_draws_them(sample_input, tmp_path):
    """``run --no-figures`` writes the same summary, and a page without images that says how to draw them;
    ``corpusslim report`` then draws them."""
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path)), "--no-figures"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "out/report"
    page = (report / "index.html").read_text(encoding="utf-8")
    before = (report / "summary.json").read_text(encoding="utf-8")
    assert "data:image/png" not in page and "corpusslim report RUN_DIR draws them" in page
    assert CliRunner().invoke(main, ["report", str(tmp_path / "out")]).exit_code == 0
    page = (report / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3 and "--no-figures" not in page
    assert (report / "summary.json").read_text(encoding="utf-8") == before


def test_value_cli_json_and_text_agree_in_sign_and_name():
    args = ["value", "--law", "muennighoff", "--params", "6.34e9", "--tokens", "242e9", "--unique", "25e9"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {"loss", "effective_tokens", "optimal_params", "optimal_tokens", "dloss_per_billion_unique", "loss_after",
            "loss_floor", "unbounded", "equivalent_flops", "equivalent_usd", "target_unique_tokens"} <= set(out)
    assert abs(out["loss"] - 2.2256440889984477) < 1e-9
    text = CliRunner().invoke(main, args).output
    assert out["dloss_per_billion_unique"] < 0 and f"{out['dloss_per_billion_unique']:+.3g}" in text


def test_report_needs_a_run(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code != 0 and "not a finished run" in result.output


@pytest.mark.slow
def test_every_shard_quarantined_is_one_clear_error(tmp_path):
    (tmp_path / "input").mkdir()
    for name in ("a.parquet", "b.parquet"):
        (tmp_path / "input" / name).write_bytes(b"not parquet")
    result = CliRunner().invoke(main, ["run", str(write_config(tmp_path))])
    assert result.exit_code != 0
    assert "every input shard was quarantined" in result.output and "a (" in result.output and "b (" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, AttributeError))


@pytest.mark.slow
def test_against_continues_the_ledger_of_the_earlier_run(sample_input, tmp_path):
    """sample_data in one run, and as its first 3 shards then the other 3 with --against: same batches, same
    cumulative R and U, same headline (cleaning CPU pinned, so only the data decide)."""
    shards = sorted(sample_input.glob("*.parquet"))
    for part, chosen in (("first", shards[:3]), ("second", shards[3:])):
        (tmp_path / part).mkdir()
        for s in chosen:
            (tmp_path / part / s.name).write_bytes(s.read_bytes())
    cost = {"cpu_seconds_per_raw_token": 2e-6}
    single = CliRunner().invoke(main, ["run", str(write_config(tmp_path, cost=cost))])
    assert single.exit_code == 0, single.output
    for part, extra in (("first", []), ("second", ["--against", str(tmp_path / "out-first")])):
        config = write_config(tmp_path, input=part, output=f"out-{part}", cost=cost)
        result = CliRunner().invoke(main, ["run", str(config), *extra])
        assert result.exit_code == 0, result.output
    ledgers = [pl.read_parquet(tmp_path / d / "ledger.parquet") for d in ("out", "out-second")]
    for column in ("batch", "raw_tokens", "new_unique_tokens", "cum_raw_tokens", "cum_unique_tokens"):
        assert ledgers[0][column].to_list() == ledgers[1][column].to_list(), column
    heads = [json.loads((tmp_path / d / "report/summary.json").read_text())["headline"] for d in ("out", "out-second")]
    assert heads[0] == heads[1]


def test_rendered_report_keeps_unbounded_na_and_outside_the_law_apart():
    from corpusslim.tracker.report import render_html, render_markdown, worth
    from tests.test_ledger import CONFIG, build_ledger, series, stats_of, summarise
    summary = summarise(build_ledger(series(6), 1, CONFIG.cost), stats_of([]), CONFIG)
    summary["batches"][1].update(value_status="unbounded", value_usd=None)
    summary["batches"][2].update(value_status="outside_law", value_usd=None)
    page, md = render_html(summary, {}, {}), render_markdown(summary)
    for text in (page, md):
        assert ">n/a<" in text or "| n/a |" in text
        assert "unbounded" in text and "outside the law" in text
    assert [worth(s, None) for s in ("unbounded", "outside_law", "n/a")] == ["unbounded", "outside the law", "n/a"]
    assert worth("priced", 0.0) == "$0"


def test_bar_plots_draw_one_artist_per_series_however_many_batches():
    """Removals per batch over 1,000 batches: one collection per reason (not a patch per bar), stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from corpusslim.tracker.plots import removals_plot
    removals = [{"batch": b, "stage": "quality", "reason": r, "docs": 1 + (r == "b"), "tokens": 5}
                for b in range(1000) for r in ("a", "b")]
    fig, _ = removals_plot(plt, {"removals": removals})
    ax = fig.axes[0]
    assert not ax.patches and len(ax.collections) == 2
    assert [len(c.get_paths()) for c in ax.collections] == [1000, 1000]
    # the second reason's bars sit on the first's: 1 document, then 2 more on top
    assert {tuple(sorted({y for _, y in p.vertices})) for p in ax.collections[1].get_paths()} == {(1.0, 3.0)}
    plt.close(fig)


def test_examples_stop_reading_once_every_reason_has_its_examples(tmp_path):
    """The rejected files are read in order only until each reason the run removed by has its examples: a later
    file is never opened (here it is not even Parquet)."""
    from corpusslim.runtime.inputs import Columns
    from corpusslim.tracker.report import EXAMPLES_PER_REASON, examples
    (tmp_path / "rejected").mkdir()
    pl.DataFrame({"id": [f"d{i}" for i in range(5)], "text": ["short"] * 5, "reject_stage": ["quality"] * 5,
                  "reject_reason": ["too_short"] * 5}).write_parquet(tmp_path / "rejected/a.parquet")
    (tmp_path / "rejected/b.parquet").write_bytes(b"not parquet")
    found = examples(str(tmp_path), Columns(), {"quality/too_short"})
    assert [e["id"] for e in found["quality/too_short"]] == [f"d{i}" for i in range(EXAMPLES_PER_REASON)]
    with pytest.raises(pl.exceptions.ComputeError):  # a reason not yet found makes it read on
        examples(str(tmp_path), Columns(), {"quality/too_short", "lid/lang_not_allowed"})
