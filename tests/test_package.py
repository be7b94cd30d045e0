"""The distribution: one top-level package, ``corpusslim``, holding every subpackage of pipeline/ and filters/."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_holds_one_top_level_package_with_every_module(tmp_path):
    # Built as pip installs it: in an isolated environment with the build backend pyproject.toml names.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("corpusslim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"corpusslim", wheel.name.split("-py")[0] + ".dist-info"}
    for folder, package in (("pipeline", "corpusslim"), ("filters", "corpusslim/filters")):
        for source in (REPO / folder).rglob("*.py"):
            assert f"{package}/{source.relative_to(REPO / folder).as_posix()}" in names, source
