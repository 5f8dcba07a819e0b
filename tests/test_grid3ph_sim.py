"""Unbalanced grid in the co-simulation: phases, per-phase household outputs, the ieee_eu_lv_day
scenario against OpenDSS, and one-line errors."""

import h5py
import yaml
import numpy as np
import pytest

from cosim.cli import main
from simulators.devices.params import DeviceSet, EVParams, HeatPumpParams, HouseholdSpec, PVParams
from simulators.grid3ph import GridModel3ph
from simulators.grid3ph_networks import BUNDLED_DSS
from simulators.grid_networks import load_network
from simulators.household import HouseholdSim
from simulators.phases import three_phase_devices
from tests.conftest import ROOT
from tests.helpers.opendss_ref import needs_dss, yearly_voltages


def test_household_phase_and_per_phase_inputs():
    g = GridModel3ph("kerber_land_kabel_1", households=["a", "b", "c"], phases={"a": 2})
    assert g.phase["a"] == 2 and set(g.phase.values()) <= {1, 2, 3}
    g.set_power(P={"a": 4.0, "b": 1.0}, Q={"a": 1.0})
    p, q = g.per_phase()
    np.testing.assert_array_equal(p[0], [0.0, 4.0, 0.0])
    np.testing.assert_array_equal(q[0], [0.0, 1.0, 0.0])
    g.set_power(P_a={"b": 1.0}, P_b={"b": 2.0}, P_c={"b": 3.0})
    p, _ = g.per_phase()
    np.testing.assert_array_equal(p[1], [1.0, 2.0, 3.0])
    r = g.solve()
    assert r.converged
    vm_b = g.output("vm_pu_b")
    bus_a = g.hh_point["a"].bus
    # 4 kW on L2 at a's bus: L2 is the lowest phase there
    assert vm_b[bus_a] < g.output("vm_pu_a")[bus_a] and vm_b[bus_a] < g.output("vm_pu_c")[bus_a]
    assert g.output("vuf")[bus_a] > 0.0 and g.output("P")["b"] == pytest.approx(6.0)


def test_a_households_meter_voltage_is_its_buss_in_volts():
    """``V`` (what the device server serves as a meter's voltage): the mean of the phase voltages at the
    household's bus, on the 0.4-kV network's line-to-neutral base; the balanced grid's is its bus's."""
    g = GridModel3ph("kerber_land_kabel_1", households=["a", "b"], phases={"a": 2})
    g.set_power(P={"a": 6.0, "b": 1.0})
    g.solve()
    bus = g.hh_point["a"].bus
    mean_pu = np.mean([g.output(f"vm_pu_{ph}")[bus] for ph in "abc"])
    assert g.output("V")["a"] == pytest.approx(mean_pu * 400.0 / np.sqrt(3.0), rel=1e-12)
    assert g.output("V")["a"] < 400.0 / np.sqrt(3.0)
    from simulators.grid import GridModel

    b = GridModel("kerber_land_kabel_1", households=["a", "b"])
    b.set_inputs({"P": {"src": {"a": 6.0, "b": 1.0}}})
    b.solve()
    at_a = b.output("vm_pu")[b.bus_names[b.net.bus.index.get_loc(b.hh_bus["a"])]]
    assert at_a < 1.0 and b.output("V")["a"] == pytest.approx(at_a * 400.0 / np.sqrt(3.0), rel=1e-12)


def test_single_phase_load_drops_more_than_balanced():
    """The same 30 kW: on one phase the worst-phase voltage is lower than spread over three."""
    one = GridModel3ph("kerber_land_kabel_1", households=["a"], phases={"a": 1})
    three = GridModel3ph("kerber_land_kabel_1", households=["a"], phases={"a": 1})
    one.set_power(P={"a": 30.0})
    three.set_power(P_a={"a": 10.0}, P_b={"a": 10.0}, P_c={"a": 10.0})
    one.solve(), three.solve()
    assert one.output("v_min")["grid"] < three.output("v_min")["grid"] - 0.01
    assert three.output("vuf_max")["grid"] < 0.05 < one.output("vuf_max")["grid"]


def test_bad_grid3ph_params_are_one_line_errors():
    with pytest.raises(ValueError, match="phase of household 'a' must be 1, 2 or 3"):
        GridModel3ph("kerber_land_kabel_1", households=["a"], phases={"a": 4})
    with pytest.raises(ValueError, match="neither a load nor a bus"):
        GridModel3ph("ieee_eu_lv", mapping={"a": "nowhere"})
    g = GridModel3ph("ieee_eu_lv", mapping={"a": "LOAD3"})
    assert g.hh_point["a"].bus == "70" and g.phase["a"] == 1           # Load.LOAD3 Bus1=70.1
    k = GridModel3ph("kerber_land_kabel_1", mapping={"a": 3, "b": "bus5"})  # pandapower bus indices
    net = load_network("kerber_land_kabel_1")
    assert (k.hh_point["a"].bus, k.hh_point["b"].bus) == (net.bus.name[3], net.bus.name[5])


def test_three_phase_devices_vde_4105_limit():
    big = DeviceSet(pv=PVParams(kwp=8.0), ev=EVParams(charger_kw=11.0), heat_pump=HeatPumpParams())
    small = DeviceSet(pv=PVParams(kwp=4.6), ev=EVParams(charger_kw=3.7))
    assert three_phase_devices(big) == {"pv", "ev", "heat_pump"}
    assert three_phase_devices(small) == set()


def test_household_per_phase_outputs_add_up():
    sim = HouseholdSim()
    sim.init("h", start="2026-06-01T00:00:00+02:00", step_size=60_000, seed=1)
    hs = [HouseholdSpec(id="a", phase=2, devices=DeviceSet(pv=PVParams(kwp=8), heat_pump=HeatPumpParams())),
          HouseholdSpec(id="b", phase=3, devices=DeviceSet(pv=PVParams(kwp=3))), HouseholdSpec(id="c")]
    eid = sim.create(1, "Households", households=[h.model_dump() for h in hs])[0]["eid"]
    for t in range(0, 13 * 3_600_000, 3_600_000):
        sim.step(t, {}, None)
    d = sim.get_data({eid: ["P", "Q", "P_a", "P_b", "P_c", "Q_a", "Q_b", "Q_c", "P_pv"]})[eid]
    assert "c" not in d["P_a"]                                     # no phase: no per-phase output
    for h in ("a", "b"):
        assert sum(d[f"P_{x}"][h] for x in "abc") == pytest.approx(d["P"][h], abs=1e-12)
        assert sum(d[f"Q_{x}"][h] for x in "abc") == pytest.approx(d["Q"][h], abs=1e-12)
    assert d["P_pv"]["a"] < -1.0                                   # noon: PV produces
    # 8 kWp PV is three-phase: L1 and L3 of 'a' each carry a third of it (plus its heat pump)
    assert d["P_a"]["a"] == pytest.approx(d["P_c"]["a"])
    # 3 kWp PV is single-phase on L3: L1 and L2 of 'b' carry nothing
    assert d["P_a"]["b"] == 0.0 and d["P_b"]["b"] == 0.0 and d["P_c"]["b"] == pytest.approx(d["P"]["b"])


def _run_day(tmp_path, until):
    out = tmp_path / "day.h5"
    assert main(["run", "ieee_eu_lv_day", "--until", until, "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        return {c: (f[f"grid/vm_pu_{c}"][()], [i.decode() for i in f[f"grid/_ids/vm_pu_{c}"][()]])
                for c in "abc"}


def _max_dev(rec, names, ref):
    worst = 0.0
    for c, k in zip("abc", range(3)):
        vals, ids = rec[c]
        col = {b: j for j, b in enumerate(ids)}
        pick = [(i, col[n.rsplit(".", 1)[0]]) for i, n in enumerate(names) if n.endswith(f".{k + 1}")]
        ri, ci = np.array(pick).T
        worst = max(worst, float(np.abs(vals[:, ci] - ref[:len(vals), ri]).max()))
    return worst


@needs_dss
def test_ieee_eu_lv_day_scenario_equals_opendss_first_hour(tmp_path):
    rec = _run_day(tmp_path, "1h")
    assert rec["a"][0].shape == (60, 907) and "sourcebus" in rec["a"][1]
    names, ref = yearly_voltages(BUNDLED_DSS["ieee_eu_lv"], 60)
    assert _max_dev(rec, names, ref) <= 1e-4


@pytest.mark.slow
@needs_dss
def test_ieee_eu_lv_day_scenario_equals_opendss_full_day(tmp_path):
    rec = _run_day(tmp_path, "1d")
    names, ref = yearly_voltages(BUNDLED_DSS["ieee_eu_lv"], 1440)
    assert rec["a"][0].shape == (1440, 907)
    assert _max_dev(rec, names, ref) <= 1e-4


def test_fast3ph_scenario_records_phases(write_scenario, tmp_path):
    scn = write_scenario(grid={"network": "kerber_land_kabel_1", "engine": "fast3ph",
                               "phases": {"d1.h001": 3}}, duration="30min")
    out = tmp_path / "r.h5"
    assert main(["run", str(scn), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        ids = [i.decode() for i in f["households/_ids/P"][()]]
        assert [i.decode() for i in f["households/_ids/P_a"][()]] == ids        # every household has a phase
        total = sum(f[f"households/P_{c}"][()] for c in "abc")
        np.testing.assert_allclose(total, f["households/P"][()], atol=1e-9)
        j = ids.index("d1.h001")                                          # given: L3, no device above 4.6 kVA
        q = {c: f[f"households/Q_{c}"][:, j] for c in "abc"}
        assert np.all(q["a"] == 0) and np.all(q["b"] == 0) and np.all(q["c"] > 0)
        assert f["grid/vm_pu_a"].shape[0] == 30 and np.all(f["grid/converged"][()] == 1)
        assert np.isfinite(f["grid/vuf_max"][()]).all()


@pytest.mark.parametrize("grid, needle", [
    ({"network": "ieee_eu_lv"}, "needs engine: fast3ph"),
    ({"network": "opendss:/nonexistent/Master.dss", "engine": "fast3ph"}, "does not exist"),
    ({"network": "kerber_dorf", "engine": "fast3ph", "network_loads": True}, "needs an OpenDSS network"),
])
def test_bad_grid_config_exit_2(write_scenario, capsys, grid, needle):
    scn = write_scenario(grid=grid)
    assert main(["validate", str(scn)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


@pytest.mark.parametrize("command", ["run", "validate"])
def test_unsupported_opendss_element_is_one_line(write_scenario, tmp_path, capsys, command):
    """In `run` and, before anything runs, in `validate` (which only checked that the file exists)."""
    master = tmp_path / "Master.dss"
    master.write_text("New Circuit.x basekv=11\nNew Capacitor.c bus1=sourcebus kvar=5\n")
    scn = write_scenario(grid={"network": f"opendss:{master}", "engine": "fast3ph"}, duration="5min")
    extra = ["--out", str(tmp_path / "o.h5"), "--quiet"] if command == "run" else []
    assert main([command, str(scn), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{master}:2:" in err[0] and "capacitor" in err[0]
    assert not (tmp_path / "o.h5").exists()


def test_readme_grid_example_validates(write_scenario):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Three-phase grid and OpenDSS networks", 1)[1]
    block = section.split("```yaml", 1)[1].split("```", 1)[0]
    grid = yaml.safe_load(block)["grid"]
    assert grid["engine"] == "fast3ph"
    assert main(["validate", str(write_scenario(grid=grid))]) == 0


def test_three_phase_run_records_per_phase_meter_readings(write_scenario, tmp_path):
    """With the unbalanced grid the meters are three-phase: /meters/P_a.._c, each household's phases add
    up to its total reading within the class."""
    out = tmp_path / "m.h5"
    path = write_scenario(duration="20min", grid={"network": "kerber_vorstadt_1", "engine": "fast3ph"})
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        p = f["meters/P"][()]
        phases = np.stack([f[f"meters/P_{x}"][()] for x in "abc"])
        assert [i.decode() for i in f["meters/_ids/P_a"][()]] == [i.decode() for i in f["meters/_ids/P"][()]]
    assert np.isfinite(phases).all()
    np.testing.assert_allclose(phases.sum(axis=0), p, atol=0.02 * np.abs(p).max() + 0.003)


def test_inputs_in_a_known_key_order_take_the_vectorised_path_with_the_same_result():
    hids = [f"h{i}" for i in range(8)]
    fast = GridModel3ph("kerber_dorf", households=hids, seed=3)
    fresh = lambda: GridModel3ph("kerber_dorf", households=hids, seed=3)  # noqa: E731
    steps = [{h: 1.0 + i for i, h in enumerate(hids)},
             {h: (float("nan") if i == 5 else 0.5 * i) for i, h in enumerate(hids)},  # vectorised, NaN kept out
             {h: (None if i == 2 else 2.0 - i) for i, h in enumerate(hids)},          # a None: per item
             {h: 3.0 * i for i, h in enumerate(hids)}]
    ref = fresh()  # never learns an order: the per-item path only
    ref._orders = None
    for P in steps:  # the first call learns the order, later ones use it
        fast.set_power(P=P, P_a={hids[0]: 0.25})
        ref.set_power(P=P, P_a={hids[0]: 0.25})
        assert np.array_equal(fast.P, ref.P) and np.array_equal(fast.Pph, ref.Pph, equal_nan=True)
    assert fast._orders and ("P", "direct") in fast._orders
    with pytest.raises(ValueError, match="unknown household id 'x'"):
        fast.set_power(P={"x": 1.0})


def test_outputs_describe_the_last_solve():
    """Outputs (P/Q as used too) are those of the last solve, each computed once per solve;
    inputs given afterwards show after the next solve. Per-phase inputs land on their phase."""
    g = GridModel3ph("kerber_land_kabel_1", households=["a", "b"], phases={"a": 1, "b": 2})
    g.set_power(P={"a": 2.0, "b": 1.0}, Q_c={"b": 0.5})
    assert g.output("P") == {"a": 2.0, "b": 1.0}                    # before any solve: inputs so far
    with pytest.raises(ValueError, match="before the first step"):
        g.output("vm_pu_a")
    g.solve()
    v_min = g.output("v_min")["grid"]
    g.set_power(P={"a": 30.0})                                      # not solved yet
    assert g.output("P") == {"a": 2.0, "b": 1.0} and g.output("Q") == {"a": 0.0, "b": 0.5}
    assert (g.output("P_a")["a"], g.output("P_b")["b"], g.output("Q_c")["b"], g.output("Q_b")["b"]) \
        == (2.0, 1.0, 0.5, 0.0)
    assert g.output("vm_pu_a") is g.output("vm_pu_a")
    g.solve()
    assert g.output("P")["a"] == g.output("P_a")["a"] == 30.0 and g.output("v_min")["grid"] < v_min


@pytest.mark.parametrize("engine", ["fast", "fast3ph"])
def test_run_records_the_transformer_ratings(engine, write_scenario, tmp_path):
    """Both grid models stamp the rated kVA of each transformer on the file (the base of the overload
    KPIs), as pandapower's network table has it, and the buses they judge voltages on: the LV buses, of
    the recorded voltage columns every one but the MV bus."""
    from cosim.results import Results
    from simulators.grid_networks import load_network

    scn = write_scenario(grid={"network": "kerber_land_kabel_1", "engine": engine}, duration="10min")
    out = tmp_path / "r.h5"
    assert main(["run", str(scn), "--out", str(out), "--quiet"]) == 0
    net = load_network("kerber_land_kabel_1")
    with Results(out) as r:
        assert list(r.trafo_kva().values()) == (net.trafo.sn_mva * 1000).tolist()
        assert r.series("grid", "trafo_loading").ids == list(r.trafo_kva())
        lv = net.bus.name[net.bus.vn_kv < 1.0].tolist()
        assert sorted(r.monitored_buses()) == sorted(lv) and len(lv) == len(net.bus) - 1
        vm = r.series("grid", "vm_pu" if engine == "fast" else "vm_pu_a")
        assert set(vm.ids) - set(lv) == set(net.bus.name[net.bus.vn_kv >= 1.0])


def test_without_a_three_phase_grid_no_per_phase_series(write_scenario, tmp_path, capsys):
    """The homes have a phase only under the unbalanced grid: without it no empty /households/P_a..Q_c
    (nor /meters/P_a..) datasets are written; asking for one is a one-line error, exit 2."""
    out = tmp_path / "b.h5"
    path = write_scenario(duration="10min", grid={"network": "kerber_vorstadt_1", "engine": "fast"})
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        assert "P" in f["households"] and not [a for a in f["households"] if a[-2:] in ("_a", "_b", "_c")]
        assert not [a for a in f["meters"] if a[-2:] in ("_a", "_b", "_c")]
    path = write_scenario(duration="10min", record={"include": {"households": ["P", "P_a"]}})
    assert main(["validate", str(path)]) == 2  # refused before any simulator starts
    assert "per-phase powers need a three-phase grid" in capsys.readouterr().err
    assert main(["run", str(path), "--out", str(tmp_path / "c.h5"), "--quiet"]) == 2
