"""Small CLI gaps: --version, unit-less durations, --until beyond the scenario, log levels in subprocess
simulators, misspelt sweep KPIs, dotted overrides, the public API's errors."""

from __future__ import annotations

import pytest
import yaml

import cosim
from cosim.cli import main
from tests.conftest import run_cosim, small_scenario


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith(f"cosim (lvflex-cosim) {cosim.__version__}")


def test_a_bare_number_duration_is_refused(write_scenario, capsys):
    assert main(["validate", str(write_scenario(step=60))]) == 2
    err = capsys.readouterr().err
    assert "step: a bare number is ambiguous: give a unit, e.g. '60s' or '60min'" in err and len(err.splitlines()) == 1


def test_until_beyond_the_scenario_warns(write_scenario, tmp_path, capsys):
    assert main(["run", str(write_scenario(duration="10min")), "--until", "20min", "--quiet",
                 "--out", str(tmp_path / "a.h5")]) == 0
    assert "warning: --until 20min evaluates longer than the scenario's duration (10min)" in capsys.readouterr().err


def test_quiet_silences_subprocess_simulators_and_verbose_shows_them(write_scenario, tmp_path):
    scn = write_scenario(duration="3min", simulators={"household": {"mode": "cmd"}})
    quiet = run_cosim("run", str(scn), "--quiet", "--out", str(tmp_path / "q.h5"))
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr and quiet.stdout == "", quiet.stderr
    loud = run_cosim("run", str(scn), "-v", "--out", str(tmp_path / "v.h5"))
    assert loud.returncode == 0 and "HouseholdSim tries to connect" in loud.stderr


def test_a_misspelt_sweep_kpi_is_an_input_error(tmp_path):
    base = small_scenario(duration="5min", districts=[{"name": "d1", "households": 1}])
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    spec = {"name": "t", "base": "base.yaml", "parameters": {"seed": [1, 2]}, "kpis": ["total.peak_15mn_kw"]}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cosim("sweep", str(tmp_path / "sweep.yaml"), "--workers", "1", "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 2, proc.stderr
    line = "kpis: 'total.peak_15mn_kw' is not a KPI of these runs (did you mean total.peak_15min_kw"
    # said once as soon as the first run is done (the sweep goes on), and again as the sweep's error
    warned = [x for x in proc.stderr.splitlines() if x.startswith(f"warning: {line}")]
    assert len(warned) == 1 and "the sweep goes on" in warned[0], proc.stderr
    assert f"error: {tmp_path / 'sweep.yaml'}: {line}" in proc.stderr
    assert sum(1 for p in (tmp_path / "o").glob("*.h5")) == 2  # both runs ran and are kept
    # a corrected sweep is not needed to see the warning again: a re-run of the same one warns from its
    # kept runs before it would run anything
    again = run_cosim("sweep", str(tmp_path / "sweep.yaml"), "--workers", "1", "--out", str(tmp_path / "o"),
                      "--quiet")
    assert again.returncode == 2 and sum(x.startswith(f"warning: {line}") for x in again.stderr.splitlines()) == 1


def test_api_overrides_take_dotted_paths_and_bad_input_is_one_line(write_scenario):
    path = write_scenario()
    scn = cosim.load_scenario(path, **{"districts[0].households": 3, "duration": "30min"})
    assert scn.districts[0].households == 3 and scn.duration == 1_800_000
    with pytest.raises(cosim.ScenarioError, match=r"districts\[5\].households: index \[5\] out of range"):
        cosim.load_scenario(path, **{"districts[5].households": 3})
    with pytest.raises(cosim.ScenarioError, match="households"):
        cosim.load_scenario(path, **{"districts[0].households": "ten"})


def test_api_results_frame_and_events_errors(write_scenario, tmp_path):
    res = cosim.run(write_scenario(duration="10min"), out=tmp_path / "r.h5")
    df = res.frame("households", "P")
    assert df.shape == (10, 6) and str(df.index.tz) == "UTC+02:00" and df.attrs["unit"] == "kW"
    assert df.index[1] - df.index[0] == __import__("pandas").Timedelta("1min")
    with pytest.raises(cosim.results.InputError if hasattr(cosim, "results") else Exception, match="no series"):
        res.frame("households", "nope")
    with pytest.raises(Exception, match="no event stream 'flex'"):
        res.events("flex")
    assert res.kpis()["total"]["households"] == 6


def test_validate_refuses_an_unknown_recorded_attribute_before_running(write_scenario, capsys):
    path = write_scenario(record={"include": {"households": ["P", "Pbogus"]}})
    assert main(["validate", str(path)]) == 2
    assert "record.include.households: unknown attribute(s) Pbogus; households offers P, Q" in capsys.readouterr().err


def test_schema_validates_every_bundled_scenario_and_rejects_a_unitless_step(capsys):
    import json

    import jsonschema

    from cosim.scenario import bundled_scenarios

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name, path in bundled_scenarios().items():
        data = yaml.safe_load(path.read_text())
        data["start"] = data["start"].isoformat() if hasattr(data["start"], "isoformat") else data["start"]
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, (name, errors)
    bad = small_scenario(step=60)
    assert any("is not of type 'string'" in e.message for e in validator.iter_errors(bad))


@pytest.mark.parametrize("argv, starts", [
    (["run", "uc1_home", "--until"], "error: cosim run: argument --until: expected one argument"),
    (["frobnicate"], "error: cosim: argument COMMAND: invalid choice: 'frobnicate'"),
    (["report", "x.h5"], "error: cosim report: the following arguments are required: -o/--out"),
    (["emulate", "nosuch"], "error: cosim emulate: argument kind: invalid choice: 'nosuch'"),
])
def test_a_bad_option_is_one_error_line_exit_2(argv, starts, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(starts), err


@pytest.mark.parametrize("argv", [["run", "uc1_home", "--until", "-1h"], ["run", "uc1_home", "--until", "-15min"]])
def test_a_negative_duration_is_named_as_such(argv, capsys):
    """"-1h" is the option's (bad) value, not an unknown option: the message says what is wrong with it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: --until: expected a positive duration, got '{argv[-1]}'"], err


def test_an_unknown_field_points_to_where_the_schema_is(write_scenario, capsys):
    """The line named `cosim validate --help` for the schema, which shows no schema: `cosim schema` prints it."""
    path = write_scenario(foo=1)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {path}: foo: unknown field (check the spelling; `cosim schema` prints the schema)"], err


def test_split_warmup_without_split_is_refused(write_scenario, tmp_path, capsys):
    """It was silently ignored (the run went on without parts), unlike --workers without --split."""
    out = tmp_path / "r.h5"
    assert main(["run", str(write_scenario()), "--split-warmup", "1d", "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --split-warmup: only with --split"]
    assert not out.exists()


def test_dashboard_host_without_dashboard_is_refused(write_scenario, tmp_path, capsys):
    """It was silently ignored: no dashboard was served, on that host or any."""
    out = tmp_path / "r.h5"
    assert main(["run", str(write_scenario()), "--dashboard-host", "0.0.0.0", "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --dashboard-host: only with --dashboard"]
    assert not out.exists()


@pytest.mark.parametrize("kwargs, line", [
    ({"until": "5 minutes"}, "until: expected a duration like '1d', '15min', '90s' or 'PT1H', got '5 minutes'"),
    ({"until": "-1h"}, "until: expected a positive duration, got '-1h'"),
    ({"seed": -1}, "seed: expected an integer from 0 to 2**63-1, got -1"),
])
def test_api_names_its_own_arguments_not_the_scenario_file(write_scenario, tmp_path, kwargs, line):
    """cosim.run(until=..., seed=...) was refused as '<the scenario file>: duration: ...' / ': seed: ...', a
    field the user did not write there (the command line says '--until: ...')."""
    import cosim

    with pytest.raises(cosim.ScenarioError) as exc:
        cosim.run(str(write_scenario()), out=str(tmp_path / "r.h5"), **kwargs)
    assert exc.value.lines == [line]


@pytest.mark.parametrize("option, line", [
    (["--seed", "-1"], "error: --seed: expected an integer from 0 to 2**63-1, got -1"),
    (["--replicate", "-1"], "error: --replicate: expected an integer >= 0, got -1"),
])
def test_cli_names_its_own_options_not_the_scenario_file(write_scenario, tmp_path, capsys, option, line):
    assert main(["run", str(write_scenario()), *option, "--quiet", "--out", str(tmp_path / "r.h5")]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_validate_refuses_a_misspelt_recorded_population(write_scenario, capsys):
    """`record.include: {houshold: [P]}` validated, and the run then refused it in a line without the file."""
    path = write_scenario(record={"include": {"houshold": ["P"]}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: record.include.houshold: no such population"), err
    assert "households" in err[0]


def test_the_recorded_populations_are_the_ones_a_world_records():
    """The names validate accepts are the recorder's: every population a built world records is among them."""
    import re
    from pathlib import Path

    from cosim.world import RECORDED_POPULATIONS

    src = (Path(__file__).parents[1] / "cosim" / "world.py").read_text()
    added = set(re.findall(r'self\.add\(\s*f?"([a-z_]+)', src)) | set(re.findall(r'record_as="([a-z_]+)"', src))
    assert added - {"hil_meters"} <= set(RECORDED_POPULATIONS) and "households" in RECORDED_POPULATIONS


@pytest.mark.parametrize("factor", ["0", "-2", "nan"])
def test_a_realtime_factor_not_above_zero_is_refused_as_the_option(write_scenario, tmp_path, capsys, factor):
    """mosaik's own line named its parameter ('realtime: rt_factor must be > 0'), not the option given."""
    out = tmp_path / "r.h5"
    assert main(["run", str(write_scenario()), "--realtime", factor, "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: --realtime: FACTOR must be > 0 (1 = real time, 0.5 = twice as fast), got {factor}"], err
    assert not out.exists()
