"""``corpusslim value``: the issue 13 keys, JSON and text that agree in sign and name, one-line flag errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from corpusslim.cli import main

NEW_KEYS = {"loss_after", "loss_floor", "unbounded", "equivalent_flops", "equivalent_usd", "target_unique_tokens"}
OLD_KEYS = {"loss", "effective_tokens", "optimal_params", "optimal_tokens", "dloss_per_billion_unique"}


def run(*args: str):
    return CliRunner().invoke(main, ["value", *args])


def both(*args: str) -> tuple[dict, str]:
    as_json, text = run(*args, "--json"), run(*args)
    assert as_json.exit_code == 0 and text.exit_code == 0, as_json.output + text.output
    return json.loads(as_json.stdout), text.stdout


def test_compute_optimal_json_and_text_agree():
    out, text = both("--law", "muennighoff", "--plan", "compute-optimal", "--compute", "5.88e22", "--unique", "5e10")
    assert set(out) >= NEW_KEYS | OLD_KEYS
    assert out["value_status"] == "priced" and out["unbounded"] is False
    assert out["loss_after"] < out["loss"] and out["loss_floor"] < out["loss_after"]
    # the figure: $2,340 for 1B unique tokens at U = 5e10
    assert out["equivalent_usd"] == pytest.approx(2340, rel=0.01) and "$2,340" in text
    # the loss falls with more data: a negative change, printed with the same sign and name in both
    assert out["dloss_per_billion_unique"] < 0
    assert f"loss change per +1B unique tokens: {out['dloss_per_billion_unique']:+.3g}" in text
    assert f"{out['loss_after']:.4f}" in text and f"{out['loss_floor']:.4f}" in text
    assert out["target_unique_tokens"] > out["unique_tokens"]


def test_unbounded_is_true_with_null_compute():
    # 100 epochs over 100M unique tokens: a second 100M beats anything compute can do with the first
    out, text = both("--plan", "fixed", "--params", "1e9", "--tokens", "1e10", "--unique", "1e8", "--add", "1e8")
    assert out["unbounded"] is True and out["value_status"] == "unbounded"
    assert out["equivalent_flops"] is None and out["equivalent_usd"] is None
    assert out["loss_after"] < out["loss_floor"]
    assert "value of +100M unique tokens: unbounded" in " ".join(text.split())


def test_outside_the_law_is_neither_priced_nor_unbounded():
    out, text = both("--params", "1e6", "--tokens", "2e7", "--unique", "1e6")
    assert out["value_status"] == "outside_law" and out["unbounded"] is False and out["equivalent_usd"] is None
    assert "outside the law" in text and "uniform guess" in text


def test_fixed_params_is_worth_more_than_fixed():
    fixed, _ = both("--plan", "fixed", "--params", "7e9", "--tokens", "1.4e12", "--unique", "2e11")
    params, _ = both("--plan", "fixed-params", "--params", "7e9", "--tokens", "1.4e12", "--unique", "2e11")
    assert params["loss"] == fixed["loss"] and params["loss_floor"] > fixed["loss_floor"]
    assert params["equivalent_usd"] > fixed["equivalent_usd"] > 0


@pytest.mark.parametrize("args,flag", [
    (["--plan", "compute-optimal", "--params", "7e9", "--tokens", "1e12"], "--compute"),
    (["--plan", "compute-optimal", "--compute", "1e22", "--params", "7e9"], "--params"),
    (["--plan", "fixed", "--params", "7e9"], "--tokens"),
    (["--plan", "fixed-params", "--tokens", "1e12"], "--params"),
    (["--params", "7e9", "--tokens", "1e12", "--compute", "1e22"], "--compute"),
    (["--compute", "1e22", "--unique", "-5"], "--unique"),
    (["--compute", "1e22", "--add", "0"], "--add"),
    ([], "--compute"),
    (["--params", "1e300", "--tokens", "1e300"], "--params"),
])
def test_bad_flags_are_one_line_exit_2(args, flag):
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.output
