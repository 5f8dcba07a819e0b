"""Household population simulator: composition, inputs, determinism, validation, flex, forecast, mosaik."""

from __future__ import annotations

import json
import math

import mosaik
import mosaik_api_v3
import numpy as np
import pytest

from simulators.devices.params import (
    ApplianceParams,
    BaseLoadParams,
    BatteryParams,
    DeviceSet,
    EVParams,
    HeatPumpParams,
    HouseholdSpec,
    PVParams,
)
from simulators.household import META, Forecaster, HouseholdSim, forecast

START = "2026-04-20T00:00:00+02:00"
EID = "Households-0"
DEVICE_ATTRS = ["P", "Q", "P_base", "P_pv", "P_bat", "soc", "P_ev", "soc_ev", "P_hp", "T_in", "P_app"]


def _specs(n=6, **over):
    out = []
    for i in range(n):
        dev = DeviceSet(
            pv=PVParams() if i % 2 == 0 else None,
            battery=BatteryParams() if i % 3 == 0 else None,
            ev=EVParams() if i % 2 == 1 else None,
            heat_pump=HeatPumpParams() if i % 3 == 1 else None,
            appliances=[ApplianceParams()] if i % 2 == 0 else [],
        )
        out.append(HouseholdSpec(id=f"d1.h{i:03d}", devices=dev).model_dump())
    return out


def _sim(households=None, seed=7, start=START, step_size=60_000, **kw):
    s = HouseholdSim()
    s.init("H", time_resolution=0.001, start=start, step_size=step_size, seed=seed, **kw)
    s.create(1, "Households", households=households if households is not None else _specs())
    return s


def _run(sim, steps, attrs=DEVICE_ATTRS, inputs_at=None):
    rows = []
    t = 0
    for k in range(steps):
        inp = inputs_at(k) if inputs_at else {}
        t = sim.step(t, inp, math.inf)
        rows.append(sim.get_data({EID: attrs})[EID])
    return rows


def test_meta_declares_inputs_and_outputs():
    attrs = META["models"]["Households"]["attrs"]
    for a in DEVICE_ATTRS + ["flex", "P_bat_set", "P_ev_set", "P_hp_set", "pv_limit", "app_start"]:
        assert a in attrs
    assert META["type"] == "time-based"


def test_outputs_only_for_owners_and_P_is_sum_of_components():
    specs = _specs()
    rows = _run(_sim(specs), 180)
    ids = {a: set() for a in DEVICE_ATTRS}
    for i, h in enumerate(specs):
        d = h["devices"]
        ids["P"].add(h["id"]), ids["Q"].add(h["id"]), ids["P_base"].add(h["id"])
        for attr, key in (("P_pv", "pv"), ("P_bat", "battery"), ("soc", "battery"), ("P_ev", "ev"),
                          ("soc_ev", "ev"), ("P_hp", "heat_pump"), ("T_in", "heat_pump")):
            if d[key] is not None:
                ids[attr].add(h["id"])
        if d["appliances"]:
            ids["P_app"].add(h["id"])
    for row in rows:
        for a in DEVICE_ATTRS:
            assert set(row[a]) == ids[a], a
            assert all(type(v) is float for v in row[a].values())
        for hid, p in row["P"].items():
            parts = sum(row[a].get(hid, 0.0) for a in ("P_base", "P_pv", "P_bat", "P_ev", "P_hp", "P_app"))
            assert p == pytest.approx(parts, abs=1e-9)
        json.dumps(row)


def test_an_attribute_read_by_several_successors_is_computed_once(monkeypatch):
    """mosaik lists an attribute once per successor that reads it; the data are the same either way."""
    sim = _sim()
    sim.step(0, {}, math.inf)
    pop = sim.pops[EID]
    calls = []
    output = type(pop).output
    monkeypatch.setattr(type(pop), "output", lambda self, a, *args: calls.append(a) or output(self, a, *args))
    data = sim.get_data({EID: ["P", "Q", "P", "P_base", "P", "Q"]})[EID]
    assert sorted(calls) == ["P", "P_base", "Q"]
    assert data == {a: output(pop, a) for a in ("P", "Q", "P_base")}


def test_determinism_same_seed_identical_other_seed_differs():
    a = _run(_sim(seed=3), 120)
    b = _run(_sim(seed=3), 120)
    c = _run(_sim(seed=4), 120)
    assert a == b
    assert a != c


def test_adding_devices_does_not_change_base_load_draws():
    # the shiftable appliances' energy is part of the annual kWh (the base load carries the rest): the plain
    # homes with the rest as their annual kWh draw the same base load
    rest = {s["id"]: s["devices"]["base"]["annual_kwh"] - s["devices"]["base"]["appliance_kwh"] for s in _specs()}
    plain = [HouseholdSpec(id=f"d1.h{i:03d}", devices=DeviceSet(base=BaseLoadParams(annual_kwh=rest[f"d1.h{i:03d}"])))
             .model_dump() for i in range(6)]
    a = _run(_sim(plain), 60, attrs=["P_base"])
    b = _run(_sim(_specs()), 60, attrs=["P_base"])
    assert a == b
    # a household's profile does not depend on who else is in the population
    c = _run(_sim(plain[3:]), 60, attrs=["P_base"])
    assert [r["P_base"]["d1.h004"] for r in a] == [r["P_base"]["d1.h004"] for r in c]


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"battery": {"capacity_kwh": -5}}, "capacity_kwh"),
        ({"battery": {"soc_min": 0.9, "soc_max": 0.2}}, "soc_min"),
        ({"appliances": [{"window_start": "18:00", "window_end": "09:00"}]}, "window_end"),
        ({"ev": {"arrival": "25:00"}}, "arrival"),
        ({"heat_pump": {"t_min": 23, "t_max": 21}}, "t_min"),
        ({"pv": {"kwp": 0}}, "kwp"),
        ({"fridge": {}}, "fridge"),
    ],
)
def test_bad_parameters_raise_value_error_naming_household_and_field(bad, field):
    hs = _specs(3)
    hs.append({"id": "d1.h999", "devices": bad})
    with pytest.raises(ValueError) as e:
        _sim(hs)
    assert "d1.h999" in str(e.value) and field in str(e.value)


def test_population_errors():
    with pytest.raises(ValueError, match="duplicate"):
        _sim(_specs(2) + _specs(1))
    s = HouseholdSim()
    s.init("H", start=START)
    with pytest.raises(ValueError, match="num=1"):
        s.create(2, "Households", households=_specs(2))
    with pytest.raises(ValueError, match="timezone"):
        HouseholdSim().init("H", start="2026-04-20T00:00:00")


def _inp(attr, *mappings):
    return {EID: {attr: {f"src{i}.x": m for i, m in enumerate(mappings)}}}


def test_setpoints_merge_persist_reset_and_are_copied():
    s = _sim()
    t = 0
    shared = {"d1.h000": 2.0}
    inputs = _inp("P_bat_set", shared, {"d1.h003": -1.0, "unknown": 5.0})
    t = s.step(t, inputs, math.inf)
    d = s.get_data({EID: ["P_bat"]})[EID]["P_bat"]
    assert d["d1.h000"] == pytest.approx(2.0) and d["d1.h003"] == pytest.approx(-1.0)
    shared["d1.h000"] = 4.0  # mosaik mutates/reuses its dicts after step(): must not leak in
    inputs.clear()
    t = s.step(t, {}, math.inf)  # persists
    d = s.get_data({EID: ["P_bat"]})[EID]["P_bat"]
    assert d["d1.h000"] == pytest.approx(2.0) and d["d1.h003"] == pytest.approx(-1.0)
    t = s.step(t, _inp("P_bat_set", {"d1.h000": None, "d1.h003": float("nan")}), math.inf)
    p_bat = s.get_data({EID: ["P_bat", "P"]})[EID]
    # back to self-consumption: the household's net import is driven towards 0 (or battery at a limit)
    assert p_bat["P"]["d1.h000"] == pytest.approx(0.0, abs=1e-9) or abs(p_bat["P_bat"]["d1.h000"]) > 0
    with pytest.raises(ValueError, match="d1.h000"):
        s.step(t, _inp("P_bat_set", {"d1.h000": "lots"}), math.inf)


def test_pv_limit_ev_hp_setpoints_through_step():
    s = _sim(start="2026-06-01T12:00:00+02:00")
    t = s.step(0, {}, math.inf)
    free = s.get_data({EID: ["P_pv"]})[EID]["P_pv"]["d1.h000"]
    assert free < 0
    t = s.step(t, _inp("pv_limit", {"d1.h000": 0.0}), math.inf)
    assert s.get_data({EID: ["P_pv"]})[EID]["P_pv"]["d1.h000"] == 0.0
    t = s.step(t, _inp("pv_limit", {"d1.h000": None}), math.inf)
    assert s.get_data({EID: ["P_pv"]})[EID]["P_pv"]["d1.h000"] < 0
    t = s.step(t, _inp("P_hp_set", {"d1.h001": 99.0}), math.inf)
    d = s.get_data({EID: ["P_hp", "T_in"]})[EID]
    assert 0 <= d["P_hp"]["d1.h001"] <= 3.0 and 20 - 1e-6 <= d["T_in"]["d1.h001"] <= 22 + 1e-6
    t = s.step(t, _inp("P_ev_set", {"d1.h001": 99.0}), math.inf)
    assert 0 <= s.get_data({EID: ["P_ev"]})[EID]["P_ev"]["d1.h001"] <= 11.0


def test_app_start_input_moves_the_cycle():
    hs = [HouseholdSpec(id="a", devices=DeviceSet(appliances=[ApplianceParams(name="wm"),
                                                              ApplianceParams(name="dw")])).model_dump()]
    s = _sim(hs)
    t, starts = 0, {}
    want = 14 * 3_600_000  # 14:00 on day 0 (ticks since start)
    for k in range(1440):
        inp = _inp("app_start", {"a": {"wm": want}}) if k == 10 else {}
        t_prev = t
        t = s.step(t, inp, math.inf)
        p = s.get_data({EID: ["P_app"]})[EID]["P_app"]["a"]
        if p > 0 and "first" not in starts:
            starts["first"] = t_prev
        starts.setdefault("all", []).append(p)
    energy = sum(starts["all"]) / 60
    assert energy == pytest.approx(2 * sum(ApplianceParams().profile_kw) / 60)
    assert starts["first"] == 9 * 3_600_000  # dw at the default window start
    # wm ran at 14:00: power at 14:00-14:15 includes its 2 kW phase
    assert starts["all"][14 * 60] == pytest.approx(2.0)


def test_flex_envelope_structure_and_bounds():
    s = _sim(flex_horizon_s=6 * 3600, flex_slot_s=900)
    _run(s, 17 * 60 + 30, attrs=["P"])  # 17:30: EVs arrive soon, appliances done/pending
    flex = s.get_data({EID: ["flex"]})[EID]["flex"]
    json.dumps(flex)
    assert set(flex) == {f"d1.h{i:03d}" for i in range(6)}
    for hid, f in flex.items():
        assert f["n"] == 24 and len(f["p_min"]) == 24 and len(f["p_max"]) == 24 and len(f["p_base"]) == 24
        assert f["t0"] == (17 * 60 + 30) * 60_000
        assert all(lo <= hi + 1e-9 for lo, hi in zip(f["p_min"], f["p_max"]))
    h0, h1 = flex["d1.h000"], flex["d1.h001"]
    assert set(h0) >= {"p_pv", "battery", "appliances"} and "ev" not in h0
    assert h0["battery"]["e_min_kwh"] <= h0["battery"]["e_kwh"] <= h0["battery"]["e_max_kwh"]
    assert h0["appliances"][0]["cycles"][0]["state"] == "done"
    ev = h1["ev"]
    assert len(ev["avail"]) == 24 and max(ev["avail"]) == 1.0 and ev["sessions"]
    for sess in ev["sessions"]:  # plugged-in sessions only; the current one may already be charged
        assert sess["arrive"] < sess["depart"] and sess["e_need_kwh"] >= 0
        assert sess["home"] or sess["e_need_kwh"] > 0
    hp = h1["hp"]
    assert len(hp["t_out"]) == 24 and len(hp["cop"]) == 24 and 0 < hp["a"] < 1
    assert hp["t_min"] <= hp["t_in"] <= hp["t_max"]


def test_forecast_is_the_simulation_and_noise_is_seeded():
    specs = _specs()
    s = _sim(specs)
    rows = _run(s, 120, attrs=["P_base", "P_pv"])
    fc = forecast(specs, 0, start=START, seed=7, horizon_s=7200, slot_s=900)
    f2 = Forecaster(specs[:1], start=START, seed=7)(0, horizon_s=7200, slot_s=900)
    assert f2["d1.h000"] == fc["d1.h000"]  # a household's forecast does not depend on the others
    for hid in fc:
        sim_base = np.array([r["P_base"][hid] for r in rows]).reshape(8, 15).mean(axis=1)
        np.testing.assert_allclose(fc[hid]["p_base"], sim_base, rtol=1e-12)
        assert len(fc[hid]["t_out"]) == 8
    noisy = forecast(specs, 0, start=START, seed=7, horizon_s=7200, slot_s=900, noise=0.3)
    noisy2 = forecast(specs, 0, start=START, seed=7, horizon_s=7200, slot_s=900, noise=0.3)
    assert noisy == noisy2 and noisy["d1.h000"]["p_base"] != fc["d1.h000"]["p_base"]
    # PV at midday: forecast slot means match the simulated minute values closely
    s = _sim(specs, start="2026-06-01T11:00:00+02:00")
    rows = _run(s, 60, attrs=["P_pv"])
    fc = forecast(specs, 0, start="2026-06-01T11:00:00+02:00", seed=7, horizon_s=3600, slot_s=900)
    sim_pv = np.array([r["P_pv"]["d1.h000"] for r in rows]).reshape(4, 15).mean(axis=1)
    np.testing.assert_allclose(fc["d1.h000"]["p_pv"], sim_pv, atol=0.05 * 5)


# ---------------------------------------------------------------- mosaik end-to-end
_COLLECTORS: list = []


class _Collector(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"C": {"public": True, "params": [], "attrs": [], "any_inputs": True}}})
        self.data = []
        _COLLECTORS.append(self)

    def init(self, sid, time_resolution=1.0, step_size=60_000):
        self.step_size = step_size
        return self.meta

    def create(self, num, model):
        return [{"eid": "c", "type": model}]

    def step(self, time, inputs, max_advance):
        self.data.append((time, json.loads(json.dumps(inputs))))
        return time + self.step_size

    def get_data(self, outputs):
        return {}


class _Controller(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"Ctl": {"public": True, "params": [], "attrs": ["P_bat_set"]}}})

    def init(self, sid, time_resolution=1.0):
        return self.meta

    def create(self, num, model):
        return [{"eid": "ctl", "type": model}]

    def step(self, time, inputs, max_advance):
        self.time = time
        return time + 60_000

    def get_data(self, outputs):
        return {"ctl": {"P_bat_set": {"d1.h000": 1.5 if self.time < 120_000 else None}}}


def test_mosaik_end_to_end():
    world = mosaik.World(
        {"H": {"python": "simulators.household:HouseholdSim"},
         "C": {"python": f"{__name__}:_Collector"},
         "K": {"python": f"{__name__}:_Controller"}},
        time_resolution=0.001, configure_logging=False, skip_greetings=True,
    )
    hh = world.start("H", start=START, step_size=60_000, seed=1).Households(households=_specs())
    col = world.start("C", step_size=60_000).C()
    ctl = world.start("K").Ctl()
    world.connect(ctl, hh, "P_bat_set")
    world.connect(hh, col, "P", "P_bat", "soc", "P_ev")
    world.run(until=5 * 60_000, print_progress=False)
    data = _COLLECTORS[-1].data
    assert len(data) == 5
    for time, inputs in data:
        p = next(iter(inputs["c"]["P"].values()))
        assert len(p) == 6
        p_bat = next(iter(inputs["c"]["P_bat"].values()))
        if time < 120_000:
            assert p_bat["d1.h000"] == pytest.approx(1.5)


def test_non_mapping_input_is_a_clear_error():
    s = _sim()
    with pytest.raises(ValueError, match="expected a mapping"):
        s.step(0, {EID: {"P_bat_set": {"ctl.x": 3.0}}}, math.inf)


def test_flex_supports_a_home_lp_whose_schedule_the_simulator_reproduces():
    """Build a small cost-minimising LP from ``flex`` (battery + heat pump), feed its schedule back as
    setpoints, and check the simulated SoC and indoor temperature follow the LP's prediction."""
    from scipy.optimize import linprog

    hs = [HouseholdSpec(id="a", devices=DeviceSet(pv=PVParams(), battery=BatteryParams(),
                                                   heat_pump=HeatPumpParams(t_init=21.0))).model_dump()]
    s = _sim(hs, start="2026-03-02T10:00:00+01:00", flex_horizon_s=2 * 3600, flex_slot_s=60)
    t = s.step(0, {}, math.inf)
    f = s.get_data({EID: ["flex"]})[EID]["flex"]["a"]
    n, h = f["n"], f["slot_s"] / 3600
    b, hp = f["battery"], f["hp"]
    price = 0.3 + 0.2 * np.sin(np.arange(n) / 10.0)
    # x = [ch(n), dis(n), php(n), e(n), T(n)]
    nv = 5 * n
    ch, dis, php, e, T = (np.arange(n) + k * n for k in range(5))
    c = np.zeros(nv)
    c[ch], c[dis], c[php] = price, -price, price
    A, rhs = [], []
    for k in range(n):
        row = np.zeros(nv)  # e_k - e_{k-1} - eta h ch + h/eta dis = 0
        row[e[k]] = 1
        row[ch[k]], row[dis[k]] = -b["efficiency"] * h, h / b["efficiency"]
        if k:
            row[e[k - 1]] = -1
        A.append(row), rhs.append(0 if k else b["e_kwh"])
        row = np.zeros(nv)  # T_k - a T_{k-1} - (1-a) cop/ua p = (1-a) (t_out + gain/ua)
        a = hp["a"]
        row[T[k]] = 1
        row[php[k]] = -(1 - a) * hp["cop"][k] / hp["ua_kw_per_k"]
        if k:
            row[T[k - 1]] = -a
        t_eq = hp["t_out"][k] + hp["gain_kw"][k] / hp["ua_kw_per_k"]
        A.append(row), rhs.append((1 - a) * t_eq + (0 if k else a * hp["t_in"]))
    bounds = ([(0, b["p_max_kw"])] * n + [(0, b["p_max_kw"])] * n + [(0, hp["p_el_kw"])] * n
              + [(b["e_min_kwh"], b["e_max_kwh"])] * n + [(hp["t_min"] + 0.05, hp["t_max"] - 0.05)] * n)
    res = linprog(c, A_eq=np.array(A), b_eq=np.array(rhs), bounds=bounds, method="highs")
    assert res.status == 0
    x = res.x
    soc, tin = [], []
    for k in range(n):
        p_bat = x[ch[k]] - x[dis[k]]
        inp = {EID: {"P_bat_set": {"lp": {"a": p_bat}}, "P_hp_set": {"lp": {"a": x[php[k]]}}}}
        t = s.step(t, inp, math.inf)
        d = s.get_data({EID: ["soc", "T_in"]})[EID]
        soc.append(d["soc"]["a"]), tin.append(d["T_in"]["a"])
    np.testing.assert_allclose(np.array(soc) * 10.0, x[e], atol=1e-6)
    np.testing.assert_allclose(tin, x[T], atol=1e-6)


def test_input_attributes_report_active_setpoints_and_meta_outputs_are_recordable():
    assert "flex" not in META["models"]["Households"]["outputs"]
    s = _sim()
    t = s.step(0, _inp("P_bat_set", {"d1.h000": 1.0}), math.inf)
    t = s.step(t, _inp("app_start", {"d1.h000": 50_000_000}), math.inf)
    d = s.get_data({EID: ["P_bat_set", "P_hp_set", "app_start"]})[EID]
    assert d == {"P_bat_set": {"d1.h000": 1.0}, "P_hp_set": {}, "app_start": {"d1.h000": {"washing_machine": 50_000_000}}}


def test_forecaster_agent_signature_matches_forecast():
    specs = _specs()
    fc = Forecaster(specs, start=START, seed=7)
    full = fc(3_600_000, horizon_s=4 * 3600, slot_s=900, noise=0.1)
    a = fc.agent("d1.h000", 3_600_000, 16, 900, noise=0.1)
    np.testing.assert_array_equal(a["base"], full["d1.h000"]["p_base"])
    np.testing.assert_array_equal(a["pv"], full["d1.h000"]["p_pv"])
    assert np.all(fc.agent("d1.h001", 3_600_000, 16, 900)["pv"] == 0)


def test_resent_and_changed_inputs_give_the_setpoints_of_the_last_writer():
    """Inputs resent unchanged, changed in place by their sender, and two sources writing the same
    household: the active set points are always those of the last source in mosaik's order."""
    s = _sim()
    a, b = {"d1.h000": 1.0, "d1.h003": 2.0}, {"d1.h003": -1.0}
    apps = {"d1.h000": {"washing_machine": 50_000_000}}
    steps = [{"A": a}, {"A": a}, {"A": a, "B": b}, {"A": a, "B": b}, {"B": b, "A": a}, {"A": a}]
    t = 0
    for k, sources in enumerate(steps):
        if k == 3:
            a["d1.h003"] = 3.0  # the sender changed its mapping in place: A is applied again, then B
        if k == 5:
            a["d1.h000"] = None  # back to the default rule
            apps["d1.h000"]["washing_machine"] = 60_000_000
        t = s.step(t, {EID: {"P_bat_set": dict(sources), "app_start": {"A": apps}}}, math.inf)
        want: dict = {}
        for m in sources.values():
            want.update(m)
        got = s.get_data({EID: ["P_bat_set", "app_start"]})[EID]
        assert got["P_bat_set"] == {h: v for h, v in want.items() if v is not None}, k
        assert got["app_start"] == apps, k


def test_appliance_energy_is_part_of_the_annual_kwh_and_cycles_follow_household_size():
    """A home's shiftable appliances run on cycles_per_week of the days (a 2-person home's washing machine: 140 a
    year, Öko-Institut) and their energy is part of its annual kWh: base load + appliances over four weeks is
    what H0 gives the annual kWh (a daily 1.125 kWh cycle used to come on top: +411 kWh/a)."""
    import numpy as np

    from cosim.population import build_population
    from cosim.scenario import parse_scenario
    from simulators.devices.baseload import day_shape
    from simulators.devices.common import MIN_PER_DAY, Clock
    from simulators.devices.weather import Weather
    from simulators.household import Population

    scn = parse_scenario({"name": "t", "start": "2026-01-05T00:00:00+01:00", "duration": "1h", "seed": 5,
                          "districts": [{"name": "d1", "households": 30, "shares": {"appliances": 1.0},
                                         "devices": {"base": {"persons": 2}},
                                         "ownership": {"instant_water_heater": 0.0}}]})
    specs = build_population(scn)
    wm = specs[0].devices.appliances[0]
    assert wm.name == "washing_machine" and abs(wm.cycles_per_week * 365.25 / 7 - 140) < 0.5
    clock = Clock(scn.start.isoformat())
    pop = Population(specs, clock, Weather(5, 48.1, 11.6, clock.utc_offset_min), 5)
    days, step = 28, 15
    e = np.zeros(pop.n)
    for k in range(days * MIN_PER_DAY // step):
        pop.step(k * step * 60_000, step * 60_000)
        e += pop.out["P"] * step / 60
    d0 = int(clock.start_local_min // MIN_PER_DAY)
    share = sum(day_shape(d).mean() for d in range(d0, d0 + days)) / 365
    annual = np.array([s.devices.base.annual_kwh for s in specs])
    assert abs(e.sum() / (annual.sum() * share) - 1) < 0.03
    runs = np.bincount([k for k, _ in pop.app.runs], minlength=pop.app.n)
    assert set(runs) <= {10, 11}  # 28 days × 140 / 365.25
