"""Smart-meter population: accuracy class, quantisation, monotonic Wh registers, 15-minute averages."""

import numpy as np

from simulators.meter import MeterPopulation, MeterSim, _Noise

MIN = 60_000


def run_meter(p_series: dict[str, list[float]], accuracy_class=1.0, interval=MIN, resolution_w=1.0, seed=3,
              start="2026-01-01T00:00:00+01:00"):
    sim = MeterSim()
    sim.init("m", time_resolution=0.001, start=start, step_size=MIN, seed=seed)
    sim.create(1, "Meters", accuracy_class=accuracy_class, interval=interval, resolution_w=resolution_w)
    n = len(next(iter(p_series.values())))
    rows = []
    for k in range(n):
        p = {hid: series[k] for hid, series in p_series.items()}
        sim.step(k * MIN, {"meters": {"P": {"hh.households": p}}}, None)
        rows.append(sim.get_data({"meters": ["P", "E_imp", "E_exp", "P_15"]})["meters"])
    return rows


def test_accuracy_class_and_quantisation():
    rows = run_meter({"a": [2.0] * 200, "b": [-3.0] * 200}, accuracy_class=1.0, resolution_w=10.0)
    pa = np.array([r["P"]["a"] for r in rows])
    pb = np.array([r["P"]["b"] for r in rows])
    assert np.all(np.abs(pa - 2.0) / 2.0 < 0.02) and np.all(np.abs(pb + 3.0) / 3.0 < 0.02)
    assert np.allclose(np.round(pa / 0.01), pa / 0.01)  # 10 W resolution
    assert abs(pa.mean() - 2.0) / 2.0 <= 0.005 + 3 * 0.01 / 3 / np.sqrt(200)  # gain error within class/2


def test_registers_monotonic_integer_and_energy_right():
    rng = np.random.default_rng(0)
    series = list(rng.normal(0.5, 2.0, 120))  # import and export
    rows = run_meter({"a": series}, accuracy_class=0.5)
    e_imp = np.array([r["E_imp"]["a"] for r in rows])
    e_exp = np.array([r["E_exp"]["a"] for r in rows])
    assert (np.diff(e_imp) >= 0).all() and (np.diff(e_exp) >= 0).all()
    assert np.array_equal(e_imp, np.floor(e_imp))
    true_imp = sum(max(p, 0) for p in series[:-1]) * 1000 / 60  # registers at t hold energy up to t
    assert abs(e_imp[-1] - true_imp) <= 0.01 * true_imp + 1


def test_quarter_hour_average_and_interval():
    series = [1.0] * 15 + [3.0] * 15 + [0.0] * 15
    rows = run_meter({"a": series}, accuracy_class=0.2, resolution_w=1.0)
    p15 = [r["P_15"]["a"] for r in rows]
    assert p15[14] == 0.0 and abs(p15[15] - 1.0) < 0.01 and abs(p15[30] - 3.0) < 0.03
    # a start at 00:05: the first quarter-hour ends at 00:15, after 10 steps (the energy it saw over 15 min;
    # counted from the start, before 2026-12-07, it ended at 00:20)
    rows = run_meter({"a": [1.0] * 10 + [3.0] * 20}, accuracy_class=0.2, start="2026-01-01T00:05:00+01:00")
    p15 = [r["P_15"]["a"] for r in rows]
    assert p15[9] == 0.0 and abs(p15[10] - 2 / 3) < 0.01 and abs(p15[25] - 3.0) < 0.03
    rows = run_meter({"a": list(np.linspace(0, 5, 30))}, interval=5 * MIN)
    p = [r["P"]["a"] for r in rows]
    assert p[0] == p[4] and p[5] == p[9] and p[4] != p[5]  # published every 5 min, held between


def test_seeded_and_new_devices_join():
    a = run_meter({"a": [1.0] * 10, "b": [2.0] * 10}, seed=9)
    b = run_meter({"a": [1.0] * 10, "b": [2.0] * 10}, seed=9)
    assert a == b
    pop = MeterPopulation(seed=1)
    v = pop.vector({"x": 1.0})
    v = pop.vector({"y": 2.0, "x": 1.5})
    assert pop.ids == ["x", "y"] and list(v) == [1.5, 2.0]


def test_readings_within_accuracy_class():
    """IEC 62053-21: the class bounds each reading's total error; >= 99.9 % must lie within it."""
    for acc in (0.5, 1.0, 2.0):
        pop = MeterPopulation(seed=5, accuracy_class=acc, resolution_w=1.0)
        ids = {f"h{i}": 0.0 for i in range(500)}
        pop.vector(ids)
        rng = np.random.default_rng(1)
        p_true = rng.uniform(0.2, 10.0, (200, 500)) * rng.choice([-1, 1], (200, 500))
        meas = np.array([pop.measure(row) for row in p_true])
        within = np.abs(meas - p_true) <= acc / 100 * np.abs(p_true) + 0.0005
        assert within.mean() >= 0.999, (acc, within.mean())


def test_three_phase_readings_within_class_and_the_total_unchanged():
    """Per-phase registers (SDM630/EM24-like): each phase reading is within the class of its true value;
    connecting the phases leaves the total P identical (their noise has its own seeded stream)."""
    def run(with_phases: bool):
        sim = MeterSim()
        sim.init("m", time_resolution=0.001, start="2026-01-01T00:00:00+01:00", step_size=MIN, seed=5)
        sim.create(1, "Meters", accuracy_class=1.0)
        out = []
        for k in range(200):
            pa, pb, pc = 1.0 + 0.01 * k, 0.5, 2.0 - 0.005 * k
            ins = {"P": {"hh": {"h1": pa + pb + pc}}}
            if with_phases:
                ins |= {"P_a": {"hh": {"h1": pa}}, "P_b": {"hh": {"h1": pb}}, "P_c": {"hh": {"h1": pc}}}
            sim.step(k * MIN, {"meters": ins}, None)
            out.append((sim.get_data({"meters": ["P", "P_a", "P_b", "P_c"]})["meters"], (pa, pb, pc)))
        return out

    with_p, without_p = run(True), run(False)
    assert [r["P"] for r, _ in with_p] == [r["P"] for r, _ in without_p]
    for reading, true in with_p:
        for attr, t in zip(("P_a", "P_b", "P_c"), true):
            assert abs(reading[attr]["h1"] - t) <= 0.01 * abs(t) + 0.0005 + 1e-12, (attr, reading, t)
    assert without_p[0][0]["P_a"] == {}


def test_a_meter_only_in_the_per_phase_or_reactive_inputs_joins_all_registers():
    """Ids that P lacks but Q or a phase brings (a three-phase device without its total yet) become
    meters of every register, with P read as 0, instead of breaking the energy integration."""
    sim = MeterSim()
    sim.init("m", time_resolution=0.001, start="2026-01-01T00:00:00+01:00", step_size=MIN, seed=5)
    sim.create(1, "Meters", accuracy_class=1.0)
    for k in range(3):
        ins = {"P": {"hh": {"h1": 3.0}}, "Q": {"hh": {"h1": 0.1, "h3": 0.2}},
               "P_a": {"hh": {"h1": 1.0, "h2": 0.4}}, "P_b": {"hh": {"h1": 1.0}}, "P_c": {"hh": {"h1": 1.0}}}
        sim.step(k * MIN, {"meters": ins}, None)
    out = sim.get_data({"meters": ["P", "Q", "P_a", "P_b", "E_imp"]})["meters"]
    assert list(out["P"]) == ["h1", "h3", "h2"] == list(out["P_a"]) == list(out["E_imp"])
    assert out["P"]["h2"] == out["P"]["h3"] == 0.0 and out["P_b"]["h2"] == 0.0
    assert abs(out["P_a"]["h2"] - 0.4) <= 0.004 + 0.0005 and abs(out["Q"]["h3"] - 0.2) <= 0.002 + 0.0005
    assert out["E_imp"]["h1"] > 0 and out["E_imp"]["h2"] == out["E_imp"]["h3"] == 0


def test_adding_a_meter_leaves_the_other_meters_readings_unchanged():
    """Reading noise comes from one stream per meter keyed by its id, not one shared stream in meter order."""
    def readings(ids, steps=150):
        pop = MeterPopulation(seed=3, accuracy_class=1.0, resolution_w=0.001)
        pop.vector({i: 0.0 for i in ids})
        p = np.full(len(ids), 5.0)
        r = np.array([pop.measure(p) for _ in range(steps)])
        return {i: r[:, k].tolist() for k, i in enumerate(ids)}

    base = readings(["d1.h001", "d1.h002"])
    more = readings(["a.h001", "d1.h002", "d1.h001"])  # a meter added in front, the others reordered
    assert more["d1.h001"] == base["d1.h001"] and more["d1.h002"] == base["d1.h002"]
    assert len(set(base["d1.h001"])) > 10  # the readings do carry noise


def test_noise_gives_each_meter_its_streams_numbers_in_order_when_meters_join():
    """A meter's k-th draw is the k-th number of its own stream (blocks of _Noise.BLOCK), whether all
    meters are at one position (one column of the blocks) or joined at other times (gathered per meter)."""
    def stream(i, n):
        gen = np.random.default_rng(np.random.SeedSequence([7, 2, *i.encode()]))
        return np.concatenate([gen.standard_normal(_Noise.BLOCK) for _ in range(n // _Noise.BLOCK + 1)])[:n]

    for joins in ({0: ["a", "b"]}, {0: ["a"], 1: [], 30: ["c"], 64: ["d"], 129: ["e"]}):
        noise, got = _Noise(7, 2), {}
        for t in range(200):
            for i in joins.get(t, []):
                noise.add([i])
                got[i] = []
            z = noise.draw()
            for k, i in enumerate(got):
                got[i].append(float(z[k]))
        assert len(got["a"]) == 200
        for i, draws in got.items():
            assert draws == stream(i, len(draws)).tolist(), (joins, i)
