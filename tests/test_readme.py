"""Every README example meant to run is run: YAML blocks parse and validate (fragments inside a small
scenario), Python blocks execute."""

import re

import pytest
import yaml

from cosim.scenario import parse_scenario
from cosim.sweep import SweepSpec
from tests.conftest import ROOT, small_scenario

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")) if kind == lang]


YAML_BLOCKS = blocks("yaml")


def test_readme_has_examples():
    assert len(YAML_BLOCKS) >= 5 and blocks("python")


@pytest.mark.parametrize("i", range(len(YAML_BLOCKS)))
def test_readme_yaml_block_validates(i):
    data = yaml.safe_load(YAML_BLOCKS[i])
    assert isinstance(data, dict)
    if "parameters" in data:  # a sweep file
        SweepSpec.model_validate(data)
        return
    if "districts" not in data and "substations" not in data:  # a fragment: validated inside a small scenario with a grid
        data = small_scenario(grid={"network": "kerber_vorstadt_1"}) | data
    parse_scenario(data, f"README yaml block {i + 1}")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "results" / "api_demo.h5").exists()
