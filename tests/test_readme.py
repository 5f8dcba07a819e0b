"""Every README example meant to run is run: YAML blocks parse and validate (fragments inside a small
scenario), whole scenario and sweep files run, Python blocks execute."""

import re

import pytest
import yaml

import cosim

from cosim.scenario import parse_scenario
from cosim.sweep import SweepSpec
from tests.conftest import ROOT, small_scenario

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")) if kind == lang]


YAML_BLOCKS = blocks("yaml")


def block_kind(data: dict) -> str:
    """A YAML block is a whole sweep file, a whole scenario file, or a fragment of a scenario."""
    if "parameters" in data:
        return "sweep"
    return "scenario" if "districts" in data or "substations" in data else "fragment"


def test_readme_has_examples():
    assert len(YAML_BLOCKS) >= 5 and blocks("python")


@pytest.mark.parametrize("i", range(len(YAML_BLOCKS)))
def test_readme_yaml_block_validates(i):
    data = yaml.safe_load(YAML_BLOCKS[i])
    assert isinstance(data, dict)
    if block_kind(data) == "sweep":
        SweepSpec.model_validate(data)
        return
    if block_kind(data) == "fragment":  # validated inside a small scenario with a grid
        data = small_scenario(grid={"network": "kerber_vorstadt_1"}) | data
    parse_scenario(data, f"README yaml block {i + 1}")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "results" / "api_demo.h5").exists()
    with cosim.Results(tmp_path / "results" / "year_demo.h5") as res:  # "4 rows of 15-min mean kW"
        assert res.aggregate_ms == 900_000 and len(res.frame("households", "P")) == 4


SCENARIO_BLOCKS = [b for b in YAML_BLOCKS if block_kind(yaml.safe_load(b)) == "scenario"]
SWEEP_BLOCKS = [b for b in YAML_BLOCKS if block_kind(yaml.safe_load(b)) == "sweep"]


def test_readme_has_whole_files():
    assert len(SCENARIO_BLOCKS) >= 3 and len(SWEEP_BLOCKS) >= 1


@pytest.mark.parametrize("i", range(len(SCENARIO_BLOCKS)))
def test_readme_scenario_block_runs(i, tmp_path, monkeypatch):
    """A whole scenario file of the README runs as written, for its first evaluated hour. A simulator it
    connects to (``mode: connect``) is started first, as the README says, on a free port of 127.0.0.1."""
    from cosim.cli import main
    from tests.conftest import free_port, start_sim_server

    text = SCENARIO_BLOCKS[i]
    data = yaml.safe_load(text)
    servers = []
    try:
        for sim, cfg in (data.get("simulators") or {}).items():
            if cfg.get("mode") == "connect":
                port = free_port()
                servers.append(start_sim_server(f"simulators.{sim}", port))
                text = text.replace(cfg["address"], f"127.0.0.1:{port}")
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        assert main(["run", str(path), "--until", "1h", "--quiet"]) == 0
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
    out = tmp_path / "results" / f"{data['name']}.h5"
    assert main(["kpis", str(out), "--json"]) == 0


@pytest.mark.parametrize("i", range(len(SWEEP_BLOCKS)))
def test_readme_sweep_block_runs(i, tmp_path, monkeypatch):
    """A sweep file of the README runs as written: one completed run per combination, its extra KPI
    columns in the summary."""
    import itertools

    from cosim.sweep import run_sweep

    data = yaml.safe_load(SWEEP_BLOCKS[i])
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(SWEEP_BLOCKS[i], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    res = run_sweep(path, workers=1, out=tmp_path / "sweep", progress=False)
    combinations = len(list(itertools.product(*data["parameters"].values())))
    assert [v.status for v in res.variants] == ["completed"] * combinations
    summary = (tmp_path / "sweep" / "summary.csv").read_text(encoding="utf-8").splitlines()
    assert len(summary) == 1 + combinations and all(k in summary[0] for k in data.get("kpis", []))
