"""Meter adapter against emulators: values, reconnection, exception answers, slow devices,
P_15, and a real-time mosaik run."""

import socket
import threading
import time

import mosaik
import numpy as np
import pytest

from hil.emulator import DEVICE_ID
from hil.meter_adapter import ModbusMeters, WindowAverage
from hil.testing import ThreadedEmulators
from tests.conftest import wait_until

EID = "meters_0"
ALL = ["P", "Q", "E_imp", "E_exp", "P_15", "quality", "age"]


@pytest.fixture
def lab():
    with ThreadedEmulators() as lab:
        yield lab


def _sim(devices, **init):
    sim = ModbusMeters()
    sim.init("Meters", time_resolution=0.001, step_size=1000, **init)
    assert sim.create(1, "ModbusMeters", devices=devices) == [{"eid": EID, "type": "ModbusMeters"}]
    return sim


def _data(sim, attrs=ALL):
    return sim.get_data({EID: attrs})[EID]


def test_values_arrive_from_three_meter_types(lab):
    kinds = {"h1": "sdm630", "h2": "em24", "h3": "sunspec-meter"}
    emus = {h: lab.start(k, seed=9, start_tod=18 * 3600) for h, k in kinds.items()}
    maps = {"sdm630": "sdm630", "em24": "em24", "sunspec-meter": "sunspec_meter"}
    sim = _sim([dict(id=h, port=e.port, map=maps[kinds[h]], interval=0.1) for h, e in emus.items()])
    try:
        wait_until(lambda: _data(sim)["quality"] == {"h1": 0.0, "h2": 0.0, "h3": 0.0}, 3)
        t = 0
        for _ in range(3):
            t = sim.step(t, {}, 10**9)
            assert t % 1000 == 0
        time.sleep(0.3)
        d = _data(sim)
        for h, e in emus.items():
            q = e.model.quantities()
            assert d["P"][h] == pytest.approx(q["P"] / 1000, abs=0.3), h  # sampled 0..0.1 s apart
            assert d["E_imp"][h] == pytest.approx(q["E_imp"], abs=200), h
            assert d["E_exp"][h] == pytest.approx(0.0, abs=1), h
            assert d["Q"][h] > 0 and d["P_15"][h] > 0
            assert d["age"][h] < 0.5
        assert set(d) == set(ALL)
    finally:
        sim.finalize()


def test_device_stopped_and_restarted_goes_stale_then_fresh_within_2s(lab):
    emu = lab.start("sdm630", seed=1)
    other = lab.start("em24", seed=2)
    port = emu.port
    sim = _sim([dict(id="h1", port=port, interval=0.2, timeout=0.5),
                dict(id="h2", port=other.port, map="em24", interval=0.2, timeout=0.5)])
    try:
        wait_until(lambda: _data(sim)["quality"].get("h1") == 0.0, 3)
        p_before = _data(sim)["P"]["h1"]
        lab.stop(emu)
        wait_until(lambda: _data(sim)["quality"]["h1"] == 1.0, 2)
        t = 0
        ages = []
        for _ in range(5):  # the run continues, values held, age grows
            t0 = time.perf_counter()
            t = sim.step(t, {}, 10**9)
            d = _data(sim)
            assert time.perf_counter() - t0 < 0.05  # step never waits for the dead device
            assert d["quality"]["h1"] == 1.0 and "P" in d and d["P"]["h1"] == pytest.approx(p_before, abs=0.5)
            assert d["quality"]["h2"] == 0.0
            ages.append(d["age"]["h1"])
            time.sleep(0.2)
        assert ages == sorted(ages) and ages[-1] > 0.8
        time.sleep(1.5)  # let the backoff reach its cap
        lab.start("sdm630", port=port, seed=1)
        dt = wait_until(lambda: _data(sim)["quality"]["h1"] == 0.0, 2.0)
        assert dt < 2.0
        assert _data(sim)["age"]["h1"] < 0.5
        st = sim.pollers[EID].stats()["h1"]
        assert st["connects"] >= 2 and st["connect_fail"] >= 1
    finally:
        sim.finalize()


def test_device_absent_at_start_then_appears(lab):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sim = _sim([dict(id="h1", port=port, interval=0.2, timeout=0.3)])
    try:
        time.sleep(0.5)
        d = _data(sim)
        assert d["quality"] == {"h1": 1.0} and d["P"] == {} and d["age"]["h1"] >= 0.4
        lab.start("sdm630", port=port)
        wait_until(lambda: _data(sim)["quality"]["h1"] == 0.0, 2.0)
    finally:
        sim.finalize()


def test_exception_answers_give_quality_error_and_steps_continue(lab):
    emu = lab.start("sunspec-meter", seed=3)
    sim = _sim([dict(id="h1", port=emu.port, map="sunspec_meter", interval=0.1)])
    try:
        wait_until(lambda: _data(sim)["quality"].get("h1") == 0.0, 3)
        emu.fail(4)  # SERVER DEVICE FAILURE on every request
        wait_until(lambda: _data(sim)["quality"]["h1"] == 2.0, 2)
        t = 0
        for _ in range(5):
            t = sim.step(t, {}, 10**9)
            d = _data(sim)
            assert d["quality"]["h1"] == 2.0 and "h1" in d["P"]  # last good value held
            time.sleep(0.05)
        assert t == 5000
        emu.fail(2)
        time.sleep(0.3)
        assert _data(sim)["quality"]["h1"] == 2.0
        emu.fail(None)
        wait_until(lambda: _data(sim)["quality"]["h1"] == 0.0, 2)
        assert sim.pollers[EID].stats()["h1"]["exception"] >= 3
    finally:
        sim.finalize()


def test_slow_device_does_not_stall_the_others(lab):
    # a "device" that accepts connections and never answers
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    emu = lab.start("sdm630", seed=4)
    sim = _sim([dict(id="slow", port=srv.getsockname()[1], interval=0.2, timeout=1.0),
                dict(id="h1", port=emu.port, interval=0.2, timeout=1.0)])
    try:
        time.sleep(1.5)
        t = 0
        for _ in range(5):
            t0 = time.perf_counter()
            t = sim.step(t, {}, 10**9)
            d = _data(sim)
            assert time.perf_counter() - t0 < 0.05
            assert d["quality"]["h1"] == 0.0 and d["age"]["h1"] < 0.5
            assert d["quality"]["slow"] == 1.0
            time.sleep(0.1)
        assert sim.pollers[EID].stats()["h1"]["ok"] >= 6
    finally:
        sim.finalize()
        stop.set()
        th.join(2)
        for c in conns:
            c.close()
        srv.close()


def test_window_average_is_time_weighted_and_clock_aligned():
    w = WindowAverage(window=10.0, max_hold=5.0)
    w.add(100.0, 1.0)
    w.add(104.0, 3.0)   # 1.0 held for 4 s
    assert w.value() == pytest.approx(1.0)  # running average before a window completes
    w.add(108.0, 3.0)   # 3.0 for 4 s
    w.add(112.0, 0.0)   # 3.0 for 2 s into [110, 120): window [100, 110) = (4*1 + 6*3) / 10
    assert w.value() == pytest.approx(2.2)
    w.add(130.0, 5.0)   # 18 s gap, held 5 s only: [110, 120) = (2*3 + 5*0) / 7 s covered
    assert w.completed == pytest.approx(6 / 7)
    w.add(141.0, 1.0)   # closes [130, 140): 5.0 held for 5 s
    assert w.value() == pytest.approx(5.0)


def test_invalid_config_is_refused():
    sim = ModbusMeters()
    sim.init("M", time_resolution=0.001)
    with pytest.raises(ValueError):
        sim.create(1, "ModbusMeters", devices=[dict(id="a"), dict(id="a")])
    with pytest.raises(ValueError):
        sim.create(1, "ModbusMeters", devices=[dict(id="a", transport="rtu-serial")])
    with pytest.raises(ValueError):
        sim.create(1, "ModbusMeters", devices=[dict(id="a", map="sunspec_battery")])  # no meter attrs


# ---- a real-time mosaik run: adapter + lateness monitor + a consumer --------------------------
_COLLECTED: list = []


class _Collector:
    def __init__(self):
        import mosaik_api_v3

        self._s = mosaik_api_v3.Simulator({"api_version": "3.0", "type": "time-based", "models": {
            "C": {"public": True, "params": [], "attrs": ["P", "quality", "lateness_ms"]}}})
        self.meta = self._s.meta
        self.data = []
        _COLLECTED.append(self)

    def init(self, sid, time_resolution=1.0, **kw):
        return self.meta

    def create(self, num, model):
        return [{"eid": "c", "type": model}]

    def step(self, time, inputs, max_advance):
        self.data.append((time, {a: {k: dict(v) if isinstance(v, dict) else v for k, v in s.items()}
                                 for a, s in inputs.get("c", {}).items()}))
        return time + 250

    def get_data(self, outputs):
        return {}

    def setup_done(self):
        pass

    def finalize(self):
        pass


@pytest.mark.filterwarnings("ignore::UserWarning")  # mosaik warns on every ms behind schedule
def test_mosaik_realtime_run(lab):
    emu = lab.start("sdm630", seed=5)
    world = mosaik.World(
        {"Meters": {"python": "hil.meter_adapter:ModbusMeters"},
         "RT": {"python": "hil.realtime:RealtimeMonitor"},
         "C": {"python": f"{__name__}:_Collector"}},
        time_resolution=0.001, configure_logging=False, skip_greetings=True,
    )
    meters = world.start("Meters", step_size=250).ModbusMeters(
        devices=[{"id": "d1.h001", "port": emu.port, "interval": 0.1}])
    rt = world.start("RT", step_size=250).RealtimeMonitor(rt_factor=1.0, threshold_ms=50)
    col = world.start("C").C()
    world.connect(meters, col, "P", "quality")
    world.connect(rt, col, "lateness_ms")
    time.sleep(0.5)  # first samples
    world.run(until=2000, rt_factor=1.0)
    data = _COLLECTED[-1].data
    assert len(data) == 8
    last = data[-1][1]
    assert next(iter(last["quality"].values())) == {"d1.h001": 0.0}
    assert next(iter(last["P"].values()))["d1.h001"] > 0
    lat = [next(iter(d["lateness_ms"].values()))["rt"] for _, d in data[1:]]
    assert max(lat) < 200


def test_counter_reset_is_flagged_and_recorded_energy_stays_monotonic(lab):
    emu = lab.start("sdm630", seed=3)
    port = emu.port
    sim = _sim([dict(id="h1", port=port, interval=0.1, timeout=0.5)])
    try:
        wait_until(lambda: _data(sim)["quality"].get("h1") == 0.0, 3)
        sim.step(0, {}, 10**9)
        before = _data(sim)["E_imp"]["h1"]
        assert before > 1_000_000  # the emulated register starts at 1000..8000 kWh
        lab.stop(emu)
        def from_500_wh(emu):  # the restarted device's register counts from 500 Wh, from its first answer
            emu.model.E_imp, emu.model.E_exp = 500.0, 0.0
            emu.server.set_quantities(DEVICE_ID, emu.model.quantities())

        restarted = lab.start("sdm630", port=port, seed=3, setup=from_500_wh)
        events = []
        wait_until(lambda: events.extend(_data(sim, ["events"]).get("events", {}).get("h1", []))
                   or any(e["kind"] == "counter_reset" for e in events), 4)
        events = [e for e in events if e["kind"] == "counter_reset"]  # the restart also gives drop/reconnect
        (ev,) = events
        assert ev["kind"] == "counter_reset" and ev["device"] == "h1" and ev["register"] == "E_imp"
        assert ev["t"] == 0 and ev["before_wh"] == pytest.approx(before, abs=50) and 500 <= ev["after_wh"] < 600
        sim.step(1000, {}, 10**9)
        time.sleep(0.5)
        after = _data(sim)["E_imp"]["h1"]
        assert before <= after < before + 100  # continues from the last recorded value, no jump
        assert 0 < after - before == pytest.approx(restarted.model.E_imp - 500.0, abs=5)
        assert sim.pollers[EID].stats()["h1"]["counter_reset"] == 1  # E_exp stayed 0 -> 0: no reset
    finally:
        sim.finalize()


def test_counter_reset_event_fields():
    from hil.meter_adapter import CounterGuard

    guard = CounterGuard()
    seen = []
    for imp in [100.0, 150.0, 20.0, 30.0, 5.0, 8.0]:
        values = {"E_imp": imp, "E_exp": 7.0}
        resets = guard.apply(values)
        seen.append((values["E_imp"], resets))
    assert [v for v, _ in seen] == [100.0, 150.0, 150.0, 160.0, 160.0, 163.0]
    assert [r for _, r in seen if r] == [[("E_imp", 150.0, 20.0)], [("E_imp", 30.0, 5.0)]]


@pytest.mark.filterwarnings("ignore:Simulation too slow")
def test_counter_reset_lands_in_events_devices(lab, tmp_path):
    """Through mosaik and the recorder, as the world builder wires it (stream 'devices')."""
    import h5py
    import json

    emu = lab.start("sdm630", seed=4)
    world = mosaik.World({"Meters": {"python": "hil.meter_adapter:ModbusMeters"},
                          "Rec": {"python": "cosim.recorder:RecorderSim"}},
                         time_resolution=0.001, configure_logging=False, skip_greetings=True)
    meters = world.start("Meters", step_size=250).ModbusMeters(
        devices=[{"id": "d1.h001", "port": emu.port, "interval": 0.05}])
    out = tmp_path / "r.h5"
    rec = world.start("Rec", start="2026-06-15T00:00:00+02:00", step_size=250).Recorder(
        path=str(out), attrs={}, series=[("meters", "E_imp")], populations={meters.full_id: "meters"},
        event_sources={meters.full_id: "devices"}, flush_every=1)
    world.connect(meters, rec, "E_imp")
    world.connect(meters, rec, "events")
    wait_until(lambda: emu.model.E_imp > 0 and world.sims["Meters-0"]._proxy.sim.pollers["meters_0"]
               .snapshot()["d1.h001"]["quality"] == 0, 3)
    threading.Timer(1.0, lambda: setattr(emu.model, "E_imp", 10.0)).start()
    world.run(until=2500, rt_factor=1.0)
    with h5py.File(out, "r") as f:
        records = [json.loads(line) for line in bytes(f["events/devices"][()]).decode().splitlines()]
        e_imp = f["meters/E_imp"][:, 0]
    assert [r["kind"] for r in records] == ["counter_reset"] and records[0]["device"] == "d1.h001"
    assert 0 < records[0]["t"] <= 2500
    assert (e_imp[~np.isnan(e_imp)][1:] >= e_imp[~np.isnan(e_imp)][:-1]).all()
