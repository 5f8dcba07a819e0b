"""mosaik layer of the MAS (simulators.mas.mas_sim): direct driving and a tiny World."""

import json

import mosaik_api_v3
import pytest

from simulators.mas.instances import demo_specs
from simulators.mas.mas_sim import MASSim

START = "2026-01-20T00:00:00+01:00"
MIN = 60_000


def _sim(**init):
    sim = MASSim()
    sim.init("MAS-0", time_resolution=0.001, start=START, seed=3, K=24, slot_s=3600, replan_s=3600, **init)
    specs = [s.model_dump() for s in demo_specs(6)]
    sim.create(1, "HomeAgents", district="d1", households=specs, tariff={"feed_in": 0.07})
    sim.create(1, "LFA", district="d1", objective={"community": True, "trafo_limit_kw": 12.0}, max_rounds=6)
    sim.create(1, "DSO", districts=["d1"], trafo_limit_kw=1e6)
    sim.setup_done()
    return sim, specs


def test_massim_direct_loopback_outputs():
    sim, specs = _sim(loopback=True)
    ids = [s["id"] for s in specs]
    inputs = {"HomeAgents-d1": {"soc": {"Households-0": {ids[0]: 0.4, ids[3]: 0.6}},
                                "T_in": {"Households-0": {ids[1]: 20.5}}}}
    nxt = sim.step(0, inputs, 10**9)
    assert nxt == 3_600_000  # next slot boundary
    out = sim.get_data({"HomeAgents-d1": ["P_bat_set", "P_ev_set", "P_hp_set", "app_start", "plan_src", "outbox",
                                          "events"],
                        "LFA-d1": ["plan_cost", "rounds", "gap", "gap_dual", "outbox", "events"],
                        "DSO": ["flex_requested", "P_forecast", "outbox"]})
    json.dumps(out)  # JSON-safe (cmd:/connect: simulators talk JSON)
    h = out["HomeAgents-d1"]
    assert set(h["P_bat_set"]) == {ids[0], ids[3]}
    assert set(h["P_hp_set"]) == {ids[1], ids[3], ids[5]}
    assert set(h["plan_src"].values()) <= {"lfa", "own"}
    msgs = [m for lst in h["outbox"].values() for m in lst]
    assert msgs and all(set(m) >= {"id", "src", "dst", "kind", "body", "bytes", "sent"} for m in msgs)
    assert all(m["src"] in ids and m["dst"] == "lfa.d1" for m in msgs)
    assert len({m["id"] for m in msgs}) == len(msgs)
    lfa = out["LFA-d1"]
    assert lfa["rounds"]["lfa.d1"] >= 1 and lfa["plan_cost"]["lfa.d1"] is not None
    kinds = {m["kind"] for lst in lfa["outbox"].values() for m in lst}
    assert {"price", "dispatch", "report"} <= kinds
    assert any(e["kind"] == "negotiation" for e in lfa["events"]["lfa.d1"])
    assert "total" in out["DSO"]["P_forecast"]
    # the events output is non-persistent and omitted when empty (present, it would trigger the recorder)
    sim.step(60_000, {}, 10**9)
    assert sim.get_data({"LFA-d1": ["events", "outbox"]})["LFA-d1"] == {}


def test_massim_modes_none_and_central():
    sim, specs = _sim(mode="none")
    sim.step(0, {}, 10**9)
    # no messages: no outbox output at all (an empty one would trigger the telecom)
    assert sim.get_data({"HomeAgents-d1": ["P_bat_set", "outbox"]})["HomeAgents-d1"] == {"P_bat_set": {}}
    sim, specs = _sim(mode="central")
    sim.step(0, {}, 10**9)
    d = sim.get_data({"HomeAgents-d1": ["P_bat_set", "plan_src", "outbox"], "LFA-d1": ["plan_cost", "gap"]})
    assert d["HomeAgents-d1"]["P_bat_set"] and set(d["HomeAgents-d1"]["plan_src"].values()) == {"central"}
    assert "outbox" not in d["HomeAgents-d1"]  # central mode: no messages
    assert d["LFA-d1"]["plan_cost"]["lfa.d1"] is not None


def test_massim_reference_gap():
    sim, _ = _sim(loopback=True, reference=True)
    sim.step(0, {}, 10**9)
    gap = sim.get_data({"LFA-d1": ["gap"]})["LFA-d1"]["gap"]["lfa.d1"]
    print(f"\nMAS vs central gap {gap:.3f} %")
    assert gap is not None and -1e-6 <= gap <= 5.0


class LoopbackTelecom(mosaik_api_v3.Simulator):
    """Stub telecom: every message sent at t is delivered (time-shifted connection) at t + 1."""

    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "event-based", "models": {
            "Telecom": {"public": True, "params": [], "attrs": ["outbox", "inbox"]}}})
        self.buf = {}

    def init(self, sid, time_resolution=0.001, **kw):
        return self.meta

    def create(self, num, model, **kw):
        return [{"eid": "telecom", "type": model}]

    def step(self, time, inputs, max_advance):
        self.buf = {}
        for attrs in inputs.values():
            for src_val in attrs.get("outbox", {}).values():
                for msgs in (src_val or {}).values():
                    for m in msgs:
                        self.buf.setdefault(m["dst"], []).append(json.loads(json.dumps(m)))
        return None

    def get_data(self, outputs):
        return {"telecom": {"inbox": self.buf}} if self.buf else {"telecom": {}}


def test_tiny_world_with_households_and_loopback_telecom():
    mosaik = pytest.importorskip("mosaik")
    from mosaik.starters import PythonStarter

    specs = [s.model_dump() for s in demo_specs(6)]
    mas_inst = MASSim()
    world = mosaik.World({
        "HH": {"python": "simulators.household:HouseholdSim"},
        "MAS": PythonStarter(lambda: mas_inst),
        "TEL": PythonStarter(LoopbackTelecom),
    }, time_resolution=0.001, debug=False, configure_logging=False)
    end = 3 * 3_600_000
    hh = world.start("HH", start=START, step_size=MIN, seed=3).Households(households=specs)
    mas_sim = world.start("MAS", start=START, seed=3, K=24, slot_s=900, replan_s=3600, end=end)
    homes = mas_sim.HomeAgents(district="d1", households=specs)
    lfa = mas_sim.LFA(district="d1", objective={"community": True, "trafo_limit_kw": 12.0}, max_rounds=5)
    tel = world.start("TEL").Telecom()
    world.connect(hh, homes, "soc", "soc_ev", "T_in")
    world.connect(homes, hh, "P_bat_set", "P_ev_set", "P_hp_set", "pv_limit", "app_start", time_shifted=True,
                  initial_data={"P_bat_set": {}, "P_ev_set": {}, "P_hp_set": {}, "pv_limit": {}, "app_start": {}})
    for ent in (homes, lfa):
        world.connect(ent, tel, "outbox")
        world.connect(tel, ent, "inbox", time_shifted=1)
    world.run(until=end, print_progress=False)
    host = mas_inst.host
    assert host.stats["negotiations"] >= 3  # at 0, 1 h and 2 h, by messages through the stub telecom
    assert host.stats["messages"] > 0
    srcs = {h.active_src for h in host.homes.values() if h.flex}
    assert srcs == {"lfa"}


def test_home_agents_use_the_household_flex_envelope():
    from simulators.household import HouseholdSim

    specs = [s.model_dump() for s in demo_specs(6)]
    hh = HouseholdSim()
    hh.init("HH-0", start=START, step_size=MIN, seed=3)
    hh.create(1, "Households", households=specs)
    hh.step(0, {}, 10**9)
    flex = hh.get_data({"Households-0": ["flex"]})["Households-0"]["flex"]
    sim, _ = _sim(loopback=True)
    sim.step(0, {"HomeAgents-d1": {"flex": {"HH-0.Households-0": flex}}}, 10**9)
    host = sim.host
    ev_homes = [s["id"] for s in specs if s["devices"].get("ev")]
    assert ev_homes
    for hid in ev_homes:
        h = host.homes[hid]
        f = flex[hid]["ev"]
        assert abs(h.model.lb[h.model.blocks["rhs_evdyn"].start] - f["e_kwh"]) < 1e-9  # energy from flex
        home = [x for x in f["sessions"] if x["home"]]
        if home and h.model.ev_targets:
            kd, target = h.model.ev_targets[0]
            reach = f["e_kwh"] + f["charger_kw"] * f["efficiency"] * (home[0]["depart"] - MIN) / 3_600_000
            assert abs(target - min(f["e_kwh"] + home[0]["e_need_kwh"], reach, f["capacity_kwh"])) < 0.2
        assert h.model.check(h.active.x) < 1e-6
    for s in specs:
        if s["devices"].get("battery"):
            m = host.homes[s["id"]].model
            assert abs(m.e0 - flex[s["id"]]["battery"]["e_kwh"]) < 1e-9


def test_message_size_counts_its_own_size_field():
    """``bytes`` is the length of the encoding of the message whose size field holds the length of the
    encoding with a 0 there (the definition, computed here by encoding twice), also where the size
    crosses MessagePack's integer widths (128, 256, 65536 bytes)."""
    from simulators.mas.messages import Outbox, encode

    box = Outbox()
    for n in [0, 1, 50, 80, 100, 105, 110, 115, 120, 125, 130, 150, 200, 230, 240, 250, 300, 65400, 65450, 65500]:
        body = {"s": "x" * n}
        msg = box.send("d1.h001", "lfa.d1", "plan", body, 7)
        wire0 = {**msg, "bytes": 0}
        assert msg["bytes"] == len(encode({**msg, "bytes": len(encode(wire0))}))
        assert msg["body"] == body and msg["sent"] == 7
    sizes = [m["bytes"] for m in box.take()["d1.h001"]]
    assert min(sizes) < 128 and any(128 <= s < 256 for s in sizes) and any(256 <= s < 65536 for s in sizes)
    assert max(sizes) >= 65536
