"""Scenario schema: valid files load; each kind of invalid file gives one line naming the field."""

import textwrap

import pytest
import yaml

from cosim.cli import main
from cosim.durations import parse_duration_ms
from cosim.population import build_population
from cosim.scenario import ScenarioError, bundled_scenarios, load_scenario, parse_scenario

BASE = {
    "name": "t",
    "start": "2026-06-01T00:00:00+02:00",
    "duration": "1h",
    "step": "1min",
    "seed": 1,
    "districts": [{"name": "d1", "households": 3}, {"name": "d2", "households": 2}],
}


def errors_for(**changes):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes.items():
        target = data
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data, "s.yaml")
    return exc.value.lines


def test_valid_scenario_loads():
    scn = parse_scenario(BASE)
    assert scn.n_steps == 60 and scn.duration == 3_600_000


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"districts__1__households": "ten"}, "s.yaml: districts[1].households: expected a positive integer, got 'ten'"),
        ({"districts__1__households": 0}, "s.yaml: districts[1].households: expected a positive integer, got 0"),
        ({"duration": "-1d"}, "s.yaml: duration: expected a positive duration, got '-1d'"),
        ({"duration": "soon"}, "s.yaml: duration: expected a duration like"),
        ({"start": "2026-13-45"}, "s.yaml: start: expected an ISO-8601 date-time"),
        ({"start": "2026-06-01T00:00:00"}, "s.yaml: start: start needs a timezone"),
        ({"start": 1750000000},  # not read as Unix time
         "s.yaml: start: expected an ISO-8601 date-time with timezone (2026-06-01T00:00:00+02:00), got 1750000000"),
        ({"colour": "red"}, "s.yaml: colour: unknown field"),
        ({"districts__0__sharez": {}}, "s.yaml: districts[0].sharez: unknown field"),
        ({"seed": -3}, "s.yaml: seed: expected an integer from 0 to 2**63-1, got -3"),
        ({"districts__0__shares": {"pv": 1.5}}, "s.yaml: districts[0].shares.pv: expected a value <= 1"),
        ({"districts__0__devices": {"battery": {"soc_min": 0.9, "soc_max": 0.2}}},
         "s.yaml: districts[0].devices.battery: soc_min (0.9) must be below soc_max (0.2)"),
        ({"districts__0__devices": {"appliances": [{"window_start": "18:00", "window_end": "09:00"}]}},
         "s.yaml: districts[0].devices.appliances[0]: window_end (09:00) must be after window_start"),
        ({"districts__0__devices": {"battery": {"capacity_kwh": -5}}},
         "s.yaml: districts[0].devices.battery.capacity_kwh: expected a value > 0, got -5"),
        ({"simulators": {"grid": {"mode": "connect"}}}, "s.yaml: simulators.grid: mode 'connect' needs address"),
        # validated, then an OverflowError traceback when the run connected
        ({"simulators": {"grid": {"mode": "connect", "address": "127.0.0.1:99999"}}},
         "s.yaml: simulators.grid: address '127.0.0.1:99999': the port must be a number in 1-65535"),
        ({"simulators": {"grid": {"mode": "connect", "address": "127.0.0.1:http"}}},
         "s.yaml: simulators.grid: address '127.0.0.1:http': the port must be a number in 1-65535"),
        ({"simulators": {"grid": {"mode": "ssh"}}}, "s.yaml: simulators.grid.mode: expected one of"),
        ({"control": {"slot": "7min"}},
         "s.yaml: control: horizon (1d) and replan (15min) must be multiples of slot (7min)"),
        # the DSO settles each slot on the registers at its boundaries: a 1-h reading interval under 30-min slots
        # measured 0 kWh in the slots starting on the hour (paid as delivered) and an hour in the others
        # (uc3_substation, 6 h: 2.75-9.30 EUR penalties per order for deliveries the meters had)
        ({"control": {"slot": "30min", "replan": "2h"}, "dso": {"trafo_limit_kw": 300}, "grid": {"network": "cigre_lv"},
          "meters": {"interval": "1h"}}, "s.yaml: (top level): meters.interval (3600000 ms) must divide control.slot"),
        ({"control": {}, "dso": {"trafo_limit_kw": 300}, "grid": {"network": "cigre_lv"}, "meters": None},
         "s.yaml: (top level): dso needs meters"),  # every order would be settled short in full
        # derived from each home's appliances: a scenario's value was accepted and silently replaced
        ({"districts__0__devices": {"base": {"appliance_kwh": 900}}},
         "s.yaml: districts[0].devices: base.appliance_kwh follows from the home's appliances"),
    ],
)
def test_invalid_field_named_in_one_line(changes, expected):
    lines = errors_for(**changes)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_missing_field():
    data = dict(BASE)
    del data["seed"]
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data, "s.yaml")
    assert exc.value.lines == ["s.yaml: seed: required field is missing"]


def test_yaml_syntax_error_names_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstart: [unclosed\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "YAML syntax error" in err and "Traceback" not in err


def test_cli_validate_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""
        name: t
        start: 2026-06-01T00:00:00+02:00
        duration: 1h
        seed: 1
        districts: [{name: d1, households: ten}]
    """))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: districts[0].households: expected a positive integer, got 'ten'"]
    assert main(["validate", "no_such_scenario"]) == 2


def test_durations():
    assert parse_duration_ms("1d") == 86_400_000
    assert parse_duration_ms("1h30min") == 5_400_000
    assert parse_duration_ms("PT15M") == 900_000
    assert parse_duration_ms(90) == 90_000
    for bad in ("0s", "-5min", "1 fortnight", True):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def test_bundled_scenarios_validate():
    names = bundled_scenarios()
    assert "uc1_home" in names
    for name in names:
        load_scenario(name)


def test_population_is_seeded_and_shares_respected():
    data = dict(BASE, districts=[{"name": "d1", "households": 20, "shares": {"pv": 0.4, "battery": 0.25}}])
    a = build_population(parse_scenario(data))
    b = build_population(parse_scenario(data))
    assert [h.model_dump() for h in a] == [h.model_dump() for h in b]
    assert sum(h.devices.pv is not None for h in a) == 8
    assert sum(h.devices.battery is not None for h in a) == 5
    c = build_population(parse_scenario(dict(data, seed=2)))
    assert [h.model_dump() for h in a] != [h.model_dump() for h in c]
    assert a[0].id == "d1.h001"


def test_unknown_network_is_a_field_error():
    lines = errors_for(grid={"network": "atlantis"})
    assert lines[0].startswith("s.yaml: grid.network: unknown network 'atlantis': expected one of cigre_lv, ")


def test_study_warnings_short_window_and_one_household_community():
    """Warnings where a controlled run's numbers may be biased: a window shorter than the control horizon, and
    a one-household district priced as a community (the same optimum as its own bill, reached through a
    degenerate price); the bundled scenarios have neither, and uncontrolled or central runs get no pricing one."""
    for name in ("uc1_home", "uc2_district", "uc3_substation"):
        assert load_scenario(name)[0].study_warnings() == [], name
    community = {"control.lfa.objective.community": True}
    short, single = load_scenario("uc1_home", {**community, "evaluation.warmup": "1h",
                                               "evaluation.cooldown": "1h"})[0].study_warnings()
    assert short.startswith("warmup + cooldown (2 h) is shorter than the control horizon (24 h)"), short
    assert single.startswith("districts[0] (home) has one household under control.lfa.objective.community: true"), \
        single
    for mode in ("central", "none"):
        assert load_scenario("uc1_home", {**community, "control.mode": mode})[0].study_warnings() == [], mode
    assert load_scenario("uc1_home", {**community, "districts[0].households": 2})[0].study_warnings() == []
    groups = load_scenario("scale_10k", {"substations[4].districts[0].households": 1})[0].study_warnings()
    assert [w.split(" has ")[0] for w in groups] == ["substations[4].districts[0] (d1)"], groups
