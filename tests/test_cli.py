"""The CLI on the mistakes users make: each gives one line naming the flag or key at fault, and its exit status;
Ctrl-C ends with one line and status 130, leaving a resumable run; every command the README lists exists as listed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from corpusslim.cli import main
from corpusslim.config import load_config
from corpusslim.filters.langid import default_model_path
from corpusslim.preview.plan import write_planned_config
from corpusslim.runtime.cluster import local_workers_problem, scheduler_address
from corpusslim.tracker.stats import quarantine_message
from tests.conftest import REPO, SAMPLE, output_bytes, write_config

INTERRUPTED_LINE = "interrupted; rerun the same command to resume"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def config_file(tmp_path: Path, **keys) -> Path:
    """A valid config over sample_data (nothing runs unless the test starts it)."""
    return write_config(tmp_path, **{"input": str(SAMPLE), **keys})


def test_workers_zero_is_blamed_on_the_flag(tmp_path):
    config = config_file(tmp_path)
    result = invoke("run", str(config), "--workers", "0")
    assert result.exit_code == 2
    assert "'--workers'" in result.output and "config.yaml" not in result.output


def test_workers_beyond_the_cores_refused_unless_forced(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    config = config_file(tmp_path)
    result = invoke("run", str(config), "--workers", "9")
    assert result.exit_code == 2
    assert "'--workers'" in result.output and "more than 4 per core" in result.output and "at most 8" in result.output
    assert local_workers_problem(8) is None
    # --force lifts the bound: the job goes on and stops at the next mistake (here, an input that does not exist).
    forced = invoke("run", str(config_file(tmp_path, input="nowhere")), "--workers", "9", "--force")
    assert forced.exit_code == 1 and "per core" not in forced.output and "nowhere" in forced.output


def test_workers_beyond_the_memory_refused(monkeypatch):
    memory = namedtuple("memory", "total")
    monkeypatch.setattr("psutil.virtual_memory", lambda: memory(4 * 2**30))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert local_workers_problem(2) is None
    problem = local_workers_problem(3)
    assert "4.0 GB of RAM" in problem and "1.33 GB each" in problem and "at most 2" in problem


def test_workers_in_the_config_are_blamed_on_the_config(tmp_path):
    result = invoke("run", str(config_file(tmp_path, workers=1000)))
    assert result.exit_code == 1
    assert "config.yaml: workers: 1000:" in result.output and "'--workers'" not in result.output


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("not json", "not JSON"),
    ('{"type": "Scheduler"}', "no 'address'"),
])
def test_scheduler_file_mistakes_name_the_flag(tmp_path, content, message):
    path = tmp_path / "scheduler.json"
    if content is not None:
        path.write_text(content)
    result = invoke("run", str(config_file(tmp_path)), "--scheduler-file", str(path))
    assert result.exit_code == 2
    assert "'--scheduler-file'" in result.output and str(path) in result.output and message in result.output


def test_scheduler_file_address_and_exclusive_flags(tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"type": "Scheduler", "address": "tcp://10.0.0.1:8786", "workers": {}}))
    assert scheduler_address(str(path)) == "tcp://10.0.0.1:8786"
    both = invoke("run", str(config_file(tmp_path)), "--scheduler", "tcp://10.0.0.1:8786", "--scheduler-file",
                  str(path))
    assert both.exit_code == 2 and "--scheduler or --scheduler-file, not both" in both.output


@pytest.mark.parametrize("languages, hint", [
    (["english", "zh"], "did you mean 'en'?"),
    (["en", "Chinese"], "did you mean 'zh'?"),
    (["en-us"], "did you mean 'en'?"),
    (["jp"], "did you mean 'ja'?"),
    (["xx"], "use ISO 639-1 codes"),
])
def test_unknown_language_codes_refused_with_a_hint(tmp_path, languages, hint):
    config = config_file(tmp_path, stages=[{"kind": "lid", "languages": languages}])
    result = invoke("run", str(config))
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "stages[0]: languages:" in line and "LID-176 or langdetect" in line and hint in line


def test_language_codes_of_either_library_accepted(tmp_path):
    """langdetect's zh-cn and LID-176's three-letter codes (ceb, yue) are labels the stage emits."""
    config = load_config(config_file(tmp_path, stages=[{"kind": "lid", "languages": ["zh-cn", "ceb", "yue", "en"]}]))
    assert config.stages[0].languages == ["ceb", "en", "yue", "zh"]


def test_stage_input_is_explained(tmp_path):
    result = invoke("stage", "input", str(config_file(tmp_path)))
    assert result.exit_code == 2
    assert "not a stage of its own" in result.output and "stages: prefilter, lid" in result.output


def test_quarantine_message_names_the_path_once():
    path = "/data/shard-003.jsonl.gz"
    assert quarantine_message({"path": path, "error": f"{path}: line 7: not valid JSON"}).count(path) == 1
    assert quarantine_message({"path": path, "error": "not processed"}) == f"{path}: not processed"


def test_ctrl_c_is_one_line_and_status_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("corpusslim.api.run", interrupted)
    result = invoke("run", str(config_file(tmp_path)))
    assert result.exit_code == 130
    assert result.output.strip() == INTERRUPTED_LINE and "Traceback" not in result.output


def test_plan_write_paths_relative_to_the_new_file_and_a_new_output(tmp_path):
    source, target = tmp_path / "project", tmp_path / "elsewhere" / "planned.yaml"
    source.mkdir()
    target.parent.mkdir()
    os.symlink(default_model_path(), source / "lid.ftz")
    stages = [{"kind": "lid", "model_path": "lid.ftz"}, {"kind": "dedup"}, {"kind": "quality"}]
    original = load_config(write_config(source, input="data", output="runs/first", stages=stages))
    result = {"proposed": {"order": ["lid", "quality", "dedup"]}}
    output = write_planned_config(str(source / "config.yaml"), result, str(target))
    written = yaml.safe_load(target.read_text())
    assert written["input"] == "../project/data" and written["output"] == "../project/runs/planned"
    planned = load_config(target)
    assert planned.input == original.input and planned.output == output != original.output
    assert planned.stages[0].model_path == original.stages[0].model_path
    assert [s.kind for s in planned.stages] == ["lid", "quality", "dedup"]


def _readme_commands() -> list[str]:
    """Every ``corpusslim ...`` command in the README (table cells and code blocks)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [m.replace("\\|", "|") for m in re.findall(r"`(corpusslim [^`]+)`", text)] + \
        re.findall(r"^\s*(corpusslim [^\n#]+)", text, flags=re.M)


def test_every_readme_command_and_flag_exists():
    commands = _readme_commands()
    assert any(c.startswith("corpusslim run") for c in commands)
    for command in commands:
        name = command.split()[1]
        if name.startswith("--"):
            assert name in {o for p in main.params for o in p.opts}, f"README lists `{command}`"
            continue
        assert name in main.commands, f"README lists `{command}` but there is no command {name!r}"
        options = {o for p in main.commands[name].params for o in p.opts}
        for flag in re.findall(r"--[a-z][a-z-]*", command):
            assert flag in options, f"README lists `{command}` but {name} has no {flag}"


@pytest.mark.slow
def test_stage_without_dry_run_flag(tmp_path):
    """A dry run is the only mode: the flag may be left out, and is still accepted."""
    config = str(config_file(tmp_path))
    plain = invoke("stage", "prefilter", config, "--sample", "60", "--json")
    flagged = invoke("stage", "prefilter", config, "--dry-run", "--sample", "60", "--json")
    assert plain.exit_code == 0 and flagged.exit_code == 0, plain.output + flagged.output
    first, second = json.loads(plain.output), json.loads(flagged.output)
    assert first["removed"] == second["removed"] and first["sample"]["docs"] == 60
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sigint_mid_map_then_rerun_resumes_with_identical_output(reference, tmp_path):
    """Ctrl-C in a terminal signals the whole process group (driver and Dask workers): one line, status 130, no
    traceback from any process; the same command then resumes and gives the uninterrupted run's output."""
    root, _ = reference
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "corpusslim.cli", "run", str(write_config(root)), "--output", str(out),
           "--workers", "1"]
    # As from a terminal's shell: SIGINT at its default even when the tests run as a background job (which a
    # non-interactive shell starts with SIGINT ignored, inherited by every child).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("map [2/"):
            os.killpg(proc.pid, signal.SIGINT)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + stderr
    assert stderr.strip() == INTERRUPTED_LINE and "Traceback" not in stdout
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    first_map = next(line for line in rerun.stderr.splitlines() if line.startswith("map ["))
    assert int(re.match(r"map \[1/(\d+)\]", first_map).group(1)) < 6, "the rerun mapped every shard again"
    assert output_bytes(out) == output_bytes(root / "out")


@pytest.mark.slow
def test_scheduler_file_of_an_external_cluster(reference, tmp_path):
    """``--scheduler-file`` as dask-jobqueue and dask-mpi hand it out: the job runs on that cluster and gives the
    local run's output."""
    from tests.test_cluster import ExternalCluster

    root, _ = reference
    external = ExternalCluster(tmp_path / "dask", 2, dict(os.environ))
    try:
        result = invoke("run", str(write_config(root)), "--output", str(tmp_path / "out"), "--scheduler-file",
                        str(external.scheduler_file))
    finally:
        external.close()
    assert result.exit_code == 0, result.output
    assert output_bytes(tmp_path / "out") == output_bytes(root / "out")


def test_plan_write_into_a_missing_directory_is_refused_before_planning(tmp_path, monkeypatch):
    monkeypatch.setattr("corpusslim.api.plan_order", lambda *a, **k: pytest.fail("planned before checking --write"))
    result = invoke("plan", str(config_file(tmp_path)), "--write", str(tmp_path / "nodir" / "new.yaml"))
    assert result.exit_code == 2 and "'--write'" in result.output and "no directory" in result.output


def test_an_input_flag_matching_nothing_names_the_flag(tmp_path):
    for command in (["run"], ["stage", "lid"]):
        result = invoke(*command, str(config_file(tmp_path)), "--input", str(tmp_path / "nowhere"))
        assert result.exit_code == 1
        assert result.output.startswith("Error: --input: ") and str(tmp_path / "nowhere") in result.output
