"""Fault suite: scenarios that used to pass validation and crash at run time (issue 15, item 4) are refused
by `cosim validate` and `cosim run` with one line naming the field, exit 2."""

import pytest
import yaml

from cosim.cli import main
from tests.conftest import small_scenario

INF = float("inf")


def _with_district(**district):
    return {"districts": [{"name": "d1", "households": 2, **district}]}


# name -> (scenario changes, text expected in the error line)
CASES = {
    "duration .inf": ({"duration": INF}, "duration: expected a finite duration, got inf"),
    "control.slot .inf": ({"control": {"slot": INF}}, "control.slot: expected a finite duration, got inf"),
    "century+ duration": ({"duration": "6000w"}, "duration: expected a duration of at most 100 years"),
    "output {foo}": ({"output": "results/{foo}.h5"}, "output: 'results/{foo}.h5': unknown placeholder {foo}"),
    "output unbalanced {": ({"output": "results/{name.h5"}, "output: 'results/{name.h5': expected '}'"),
    "output unbalanced }": ({"output": "results/name}.h5"}, "output: 'results/name}.h5': Single '}'"),
    "output attribute": ({"output": "{name.__class__}.h5"}, "unknown placeholder {name.__class__}"),
    "output directory": ({"output": "results/"}, "output: 'results/': must name a file"),
    "output 10000 chars": ({"output": "r/" + "a" * 10_000 + ".h5"}, "output: path of 10005 bytes"),
    "output long name": ({"output": "r/" + "a" * 300 + ".h5"}, "output: file or directory name of 303 bytes"),
    "name 10000 chars": ({"name": "a" * 10_000}, "name: String should have at most 128 characters"),
    "seed 2**64+1": ({"seed": 2**64 + 1}, "seed: expected an integer from 0 to 2**63-1, got 18446744073709551617"),
    "seed true": ({"seed": True}, "seed: expected an integer from 0 to 2**63-1, got True"),
    "households 2**64+1": (_with_district(households=2**64 + 1), "districts[0].households: expected a value <= 10000"),
    "mapping stranger": ({"grid": {"network": "cigre_lv", "mapping": {"d1.h999": 3}}},
                         "grid.mapping: 'd1.h999' is not a household of the scenario"),
    "price inf": ({"economics": {"tariff": {"import_price": INF}}},
                  "economics.tariff.import_price: expected a finite number, got inf"),
    "price 1e30": ({"economics": {"tariff": {"feed_in": 1e30}}}, "economics.tariff.feed_in: 1e+30 is out of range"),
    "profile inf": (_with_district(shares={"appliances": 1}, devices={"appliances": [{"profile_kw": [1.0, INF]}]}),
                    "districts[0].devices.appliances[0].profile_kw[1]: expected a finite number, got inf"),
    "profile 1e30": (_with_district(shares={"appliances": 1}, devices={"appliances": [{"profile_kw": [1e30]}]}),
                     "profile_kw[0]: 1e+30 is out of range"),
    "market profile inf": ({"economics": {"prices": {"market_profile": [0.1] * 23 + [INF]}}},
                           "economics.prices.market_profile[23]: expected a finite number"),
    "kwp as huge int": (_with_district(shares={"pv": 1}, devices={"pv": {"kwp": 10**30}}),
                        "districts[0].devices.pv.kwp: 1e+30 is out of range"),
    "annual nan": (_with_district(devices={"base": {"annual_kwh": float("nan")}}),
                   "annual_kwh: expected a value > 0, got nan"),
    "heat pump t_init inf": (_with_district(devices={"heat_pump": {"t_init": INF}}),
                             "districts[0].devices.heat_pump.t_init: expected a finite number, got inf"),
    "telecom latency 1e30": ({"telecom": {"overrides": {"lte": {"latency_ms": 1e30}}}},
                             "telecom.overrides.lte.latency_ms: 1e+30 is out of range"),
    # a union (a list of models, or 'auto'): one line, of the member the value was meant for (it was two)
    "business model B99": ({"economics": {"business_models": ["B99"]}},
                           "economics.business_models[0]: expected one of 'B1', 'B2'"),
    # validated, then a traceback when the run built its profiles (pandas' OutOfBoundsDatetime, a KeyError)
    "start in year 226": ({"start": "0226-06-15T00:00:00+02:00"},
                          "start: 0226-06-15T00:00:00+02:00 is outside the years 1678-2261"),
    "run past 2261": ({"start": "2261-12-31T23:00:00+00:00", "duration": "2d"},
                      "the run ends 2262-01-02T23:00:00+00:00, outside the years 1678-2261"),
}


def _write(tmp_path, changes) -> str:
    path = tmp_path / "s.yaml"
    data = small_scenario(duration="10min")
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("name", CASES)
def test_refused_with_one_line(tmp_path, capsys, name):
    changes, expected = CASES[name]
    path = _write(tmp_path, changes)
    for argv in (["validate", path], ["run", path, "--quiet", "--out", str(tmp_path / "r.h5")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and expected in err[0], err
        assert len(err[0]) < 300, err[0]
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("content, expected", [
    (b"name: x\ndescription: caf\xff\n", "not UTF-8 text (byte 0xff at offset 24)"),
    (b"name: x\nfoo: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested more than 100 levels deep"),
    (b"a: " + b"{b: " * 5000 + b"1" + b"}" * 5000, "nested more than 100 levels deep"),
    (b"just some text\n", "expected a YAML mapping of scenario fields at the top level"),
    (b"", "expected a YAML mapping of scenario fields at the top level"),
    (b"name: x\nname: y\n", "bad.yaml:2:1: YAML error: duplicate key 'name'"),
    (b"? [a]\n: 1\nname: x\n", "YAML error: found unhashable key"),
    (b"name: x\nstart: 2026-13-45T00:00:00+01:00\n", "not a valid date or time: month must be in 1..12"),
    (b"name: x\nstart: 2026-02-01T25:00:00+01:00\n", "not a valid date or time: hour must be in 0..23"),
])
def test_unreadable_scenario_files(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_run_on_a_directory(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: cannot read: Is a directory"


@pytest.mark.parametrize("out, expected", [
    ("{dir}", "is a directory; the output must name a file"),
    ("/proc/x.h5", "cannot write the file there (No such file or directory)"),
    ("{dir}/" + "b" * 300 + ".h5", "file or directory name of 303 bytes"),
])
def test_bad_output_paths_at_run_time(tmp_path, capsys, out, expected):
    scn = _write(tmp_path, {})
    out = out.format(dir=tmp_path)
    assert main(["run", scn, "--quiet", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_bad_inputs_found_by_the_audit_are_one_line(tmp_path, capsys):
    """Each was a traceback (exit 1), a silent overwrite or a silently ignored option before 2026-12-07."""
    run = tmp_path / "run.h5"
    assert main(["run", _write(tmp_path, {}), "--quiet", "--out", str(run)]) == 0
    (tmp_path / "notes.yaml").write_text("x: 1\n")
    for name, text in (("s1", "base: nothere\nparameters: {seed: [1]}"),
                       ("s2", "base: uc1_home\nparameters: {seed: []}"),
                       ("s3", "base: uc1_home\nmode: random\nparameters: {seed: [1]}"),
                       ("u1", "base: uc1_home\nparameters: {pv: 0.3}"),
                       ("u2", "base: uc1_home\nmode: random\nsamples: 2\nparameters: {pv: {min: 0.9, max: 0.1}}")):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\n{text}\n")
    (tmp_path / "inc.yaml").write_text(yaml.safe_dump(dict(yaml.safe_load(open(_write(tmp_path, {}))),
                                                            record={"include": {"households": ["bogus"]}})))
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    capsys.readouterr()
    for argv, expected in [
        (["report", str(run), "-o", str(run)], "is an input of the report; refusing to overwrite it"),
        (["report", str(run), "-o", str(tmp_path / "notes.yaml")], "exists and is not an HTML file"),
        (["report", str(run), "-o", "/proc/x.html"], "cannot write the file there"),
        (["report", str(run), "-o", str(tmp_path)], "is a directory; the output must name a file"),
        (["run", str(run), "--dashboard", "99999"], "dashboard: port 99999 is not a TCP port"),
        (["run", "uc1_home", "-o", ""], "-o/--out: empty path"),
        (["sweep", str(tmp_path / "binary.yaml")], "not UTF-8 text (byte 0xff at offset 0); a sweep is"),
        (["sweep", str(tmp_path)], "cannot read: Is a directory"),
        (["sweep", "sweep_demo", "-o", str(tmp_path / "notes.yaml")], "cannot make the sweep's output directory"),
        (["sweep", str(tmp_path / "s1.yaml")], "s1.yaml: base: nothere: no such file"),
        (["sweep", str(tmp_path / "s2.yaml")], "s2.yaml: parameters.seed: empty list of values"),
        (["sweep", str(tmp_path / "s3.yaml")], "s3.yaml: samples: mode random needs the number of samples"),
        (["run", str(tmp_path / "inc.yaml"), "--quiet"], "inc.yaml: record.include.households: unknown attribute"),
        (["sweep", str(tmp_path / "u1.yaml")], "u1.yaml: parameters.pv: expected a list or a mapping, got 0.3"),
        (["sweep", str(tmp_path / "u2.yaml")], "u2.yaml: parameters.pv.max: max (0.1) is below min (0.9)"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (argv, err)
    assert run.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n" and (tmp_path / "notes.yaml").read_text() == "x: 1\n"


@pytest.mark.parametrize("content, where", [
    (b"name: x\nstart: 2026-13-45T00:00:00+01:00\n", "bad.yaml:2:8: "),
    (b"name: x\nseed: 1\nsweep_note: [1, 2026-02-30]\n", "bad.yaml:3:17: "),
])
def test_a_date_that_does_not_exist_is_refused_where_it_is(tmp_path, capsys, content, where):
    """The line said what (`not a valid date or time: ...`) but not where: no field, no line."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / where}") and "not a valid date" in err[0], err


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1", "localhost:abc"])
def test_a_simulator_server_refuses_a_bad_address_in_one_line(address):
    """`python -m simulators.meter --remote HOST:PORT` (README): a port outside 0-65535 was an OverflowError
    traceback, a malformed address a line of mosaik-api's with exit status 0."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "simulators.meter", "--remote", address], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.splitlines() == [f"error: {address}: expected HOST:PORT with a port in 0-65535"]


def test_the_address_check_passes_what_mosaik_starts():
    from simulators.start import address_problem

    assert address_problem(["127.0.0.1:5678"]) is None  # mode cmd: mosaik passes its own address
    assert address_problem(["-l", "info", "--remote", "127.0.0.1:0", "-t", "10"]) is None
    assert address_problem(["-t", "10", "host:70000"]) == "error: host:70000: expected HOST:PORT with a port in 0-65535"
