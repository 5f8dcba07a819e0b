"""The README's shell recipes, pasted into bash as they stand, with short durations: each bundled
scenario they name is replaced by a short copy of itself (same name and kind, warm-up, cool-down and
horizon of an hour, fewer households), written into a temporary working directory. The lab recipe has
its own test (tests/test_readme_lab_recipe.py); the install recipe as written (fresh venv, the real
one-day demo) is the slow test at the end."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cosim.api import load_scenario
from tests.conftest import ROOT
from tests.test_readme import blocks

SHELL = ("bash", "sh", "console", "shell")
SHORT = {"evaluation.warmup": "1h", "evaluation.cooldown": "1h", "control.horizon": "2h"}


def shell_blocks() -> list[str]:
    return [b for lang in SHELL for b in blocks(lang)]


def recipe(marker: str) -> str:
    found = [b for b in shell_blocks() if marker in b]
    assert len(found) == 1, f"README: {len(found)} shell blocks contain {marker!r}"
    return found[0]


QUICKSTART, REALISED_GAP, LAB = "cosim run uc1_home --until 1d", "cosim compare mas.h5 central.h5", "cosim run lab_hil"
MULTIHOST = "cosim run scale_10k --scheduler"  # tests/test_substations.py, on loopback
YEAR = "--until 365d --split month"
REPLICATES = "cosim sweep uc3_replicates"


def test_every_shell_block_is_run_by_a_test():
    """A new shell block in the README needs its test here (or its marker added to a test)."""
    for b in shell_blocks():
        assert sum(m in b for m in (QUICKSTART, REALISED_GAP, LAB, MULTIHOST, YEAR, REPLICATES)) == 1, \
            f"README shell block not run by a test:\n{b}"
    assert "recipe()" in (ROOT / "tests" / "test_readme_lab_recipe.py").read_text()
    assert "recipe(MULTIHOST)" in (ROOT / "tests" / "test_substations.py").read_text()


def short_copy(name: str, cwd: Path, **overrides) -> str:
    """A short copy of a bundled scenario in cwd (same name: same output file); returns its file name."""
    path = cwd / f"{name}.yaml"
    path.write_text(load_scenario(name, **SHORT, **overrides)._text)
    return path.name


def bash(script: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"README recipe changed: {old!r} not found"
    return text.replace(old, new)


def test_realised_gap_recipe(tmp_path):
    """Paired mas/central runs and `cosim compare`: the compare table with the realised gap; then the
    bundled sweep of both controllers over replicates (here 2 of them), with the spread per controller."""
    short = short_copy('uc2_district', tmp_path, duration='30min', **{'districts[0].households': 4})
    spec = yaml.safe_load((ROOT / "scenarios" / "sweeps" / "uc2_gap.yaml").read_text())
    spec["parameters"]["replicate"] = [0, 1]
    spec.update(base=short, out="gap")
    (tmp_path / "uc2_gap.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    script = substitute(recipe(REALISED_GAP), "cosim run uc2_district", f"cosim run {short}")
    r = bash(substitute(script, "cosim sweep uc2_gap", "cosim sweep uc2_gap.yaml"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "mas.h5").exists() and (tmp_path / "central.h5").exists()
    assert "realised gap to the central run (cost)" in r.stdout, r.stdout
    assert "planned without control.tie_break" not in r.stdout, r.stdout  # on by default
    with (tmp_path / "gap" / "replicates.csv").open() as fh:
        spreads = {(row["control.mode"], row["kpi"]): row for row in csv.DictReader(fh)}
    assert int(spreads[("mas", "total.cost_eur")]["n"]) == int(spreads[("central", "total.cost_eur")]["n"]) == 2


def test_quickstart_demo_commands(tmp_path):
    """The quick-start's demo run and the `cosim inspect` after it, with this environment as `.venv`
    (the install itself: the slow test below)."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    first = recipe(QUICKSTART).splitlines()[1]
    run = first[first.index(".venv/bin/cosim run"):]
    run = substitute(run, "uc1_home --until 1d", f"{short_copy('uc1_home', tmp_path)} --until 1h")
    r = bash(f"{run}\n.venv/bin/cosim inspect results/uc1_home.h5", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status       completed" in r.stdout and "/households/P " in r.stdout, r.stdout


def test_year_split_recipe(tmp_path):
    """README "A year": a split run on dask, aggregated, stitched, then `cosim kpis` of the stitched file
    (2 h as two 1-h parts instead of a year as months)."""
    name = short_copy("uc3_substation", tmp_path, **{f"districts[{i}].households": 3 for i in range(3)})
    script = substitute(recipe(YEAR), "uc3_substation --until 365d --split month",
                        f"{name} --until 2h --split 1h --split-warmup 1h --quiet")
    r = bash(script, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / "results" / "uc3_substation.parts").glob("*.h5"))) == 2
    assert "import" in r.stdout and "congestion" in r.stdout, r.stdout


def test_replicates_recipe(tmp_path):
    """README "Replicates": the bundled replicate sweep (on a short uc3_substation, 1 h instead of 2 days)
    prints the spread over the replicates and writes it to replicates.csv."""
    name = short_copy("uc3_substation", tmp_path, **{f"districts[{i}].households": 3 for i in range(3)})
    spec = yaml.safe_load((ROOT / "scenarios" / "sweeps" / "uc3_replicates.yaml").read_text())
    spec.update(base=name, set={"duration": "1h"}, out="reps")
    (tmp_path / "uc3_replicates.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    r = bash(substitute(recipe(REPLICATES), "cosim sweep uc3_replicates", "cosim sweep uc3_replicates.yaml"),
             tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "over the replicates" in r.stdout and "total.cost_eur" in r.stdout, r.stdout
    with (tmp_path / "reps" / "summary.csv").open() as fh:
        runs = list(csv.DictReader(fh))
    with (tmp_path / "reps" / "replicates.csv").open() as fh:
        spreads = {row["kpi"]: row for row in csv.DictReader(fh)}
    assert [row["replicate"] for row in runs] == ["0", "1", "2", "3"]
    for key in ("total.cost_eur", "total.import_kwh"):  # a bundled-summary KPI and one the sweep file adds
        values = [float(row[key]) for row in runs]
        assert int(spreads[key]["n"]) == 4
        assert float(spreads[key]["mean"]) == pytest.approx(np.mean(values), rel=1e-12)
        assert float(spreads[key]["sd"]) == pytest.approx(np.std(values, ddof=1), rel=1e-9, abs=1e-12)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_quickstart_as_written_in_a_fresh_venv(tmp_path):
    """Both quick-start commands verbatim in a copy of the repository: a fresh venv, `pip install .`,
    the one-day uc1_home demo, `cosim inspect`; then the test install, whose suite is collected here
    (running it is what CI does)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            dst = tmp_path / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes((ROOT / name).read_bytes())
    lines = [ln for ln in recipe(QUICKSTART).splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 2
    test_install = substitute(lines[1], "-m pytest", "-m pytest --collect-only -q")
    r = bash(f"{lines[0]}\n.venv/bin/cosim inspect results/uc1_home.h5\n{test_install}", tmp_path, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "results" / "uc1_home.h5").exists()
    assert "status       completed" in r.stdout and "tests/test_readme_shell.py: " in r.stdout, r.stdout[-2000:]
