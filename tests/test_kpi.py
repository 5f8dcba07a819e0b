"""KPIs: hand-checked values on a small synthetic results file, and a real tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cosim.results import ResultsWriter
from cosim.kpi import compute_kpis, flat_kpis
from cosim.kpi_text import kpi_text
from tests.conftest import run_cosim

H = 3_600_000  # one row per hour
T = 24
START = "2026-06-15T00:00:00+02:00"
IDS = ["d1.h001", "d1.h002", "d2.h001"]

SCENARIO = {
    "name": "synth",
    "start": START,
    "duration": "1d",
    "step": "1h",
    "seed": 5,
    "districts": [
        {"name": "d1", "households": 2, "variety": 0.0,
         "shares": {"pv": 1.0, "heat_pump": 1.0},
         "devices": {"heat_pump": {"t_min": 20.0, "t_max": 22.0}}},
        {"name": "d2", "households": 1, "shares": {"battery": 1.0}, "ownership": {"battery_needs_pv": False}},
    ],
    "meters": {"interval": "1h"},
    "grid": {"network": "cigre_lv", "trafo_limit_pct": 80, "v_band": 0.05},
}


def profiles(baseline: bool = False) -> dict[str, np.ndarray]:
    """Household power (kW) per hour. d1.h001: PV 3 kW 10-13 h (net −2 kW), else 1 kW;
    d1.h002: 2 kW flat (baseline: 0 kW at 0-3 h and 4 kW at 17-20 h, same energy); d2.h001 0.5 kW."""
    h = np.arange(T)
    p1 = np.where((h >= 10) & (h <= 13), -2.0, 1.0)
    pv1 = np.where((h >= 10) & (h <= 13), -3.0, 0.0)
    p2 = np.full(T, 2.0)
    if baseline:
        p2 = np.where(h <= 3, 0.0, np.where((h >= 17) & (h <= 20), 4.0, 2.0))
    return {"d1.h001": p1, "d1.h002": p2, "d2.h001": np.full(T, 0.5), "pv": pv1}


def write_synthetic(path, baseline: bool = False, mas: bool = True) -> str:
    """A results file with the recorder's layout and hand-checkable content (see the tests)."""
    pr = profiles(baseline)
    series = [("households", a, u) for a, u in (("P", "kW"), ("P_pv", "kW"), ("soc", "1"), ("T_in", "degC"))]
    series += [("meters", a, u) for a, u in (("P", "kW"), ("E_imp", "Wh"), ("E_exp", "Wh"))]
    series += [("grid", a, u) for a, u in (("trafo_loading", "%"), ("P_trafo", "kW"), ("line_loading", "%"),
                                           ("losses", "kW"), ("vm_pu", "p.u."), ("congestion", "flag"))]
    streams = []
    if mas:
        series += [("lfa", "gap", "%")]
        series += [("lfa", a, "") for a in ("rounds", "plan_cost", "flex_requested", "flex_delivered")]
        series += [("realtime", "lateness_ms", "ms")]
        streams = ["flex", "messages"]
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(SCENARIO, sort_keys=False), "seed": 5,
                                  "trafo_kva": json.dumps({"T1": 200.0})},
                      series, streams, START, H, flush_every=7)
    e_imp = dict.fromkeys(IDS, 0.0)
    e_exp = dict.fromkeys(IDS, 0.0)
    for k in range(T):
        P = {i: float(pr[i][k]) for i in IDS}
        # transformer (limit 80 %): 100 % at 18-19 h; baseline 120 % at 17-20 h
        load = (120.0 if 17 <= k <= 20 else 50.0) if baseline else (100.0 if k in (18, 19) else 50.0)
        vals = {
            ("households", "P"): P,
            ("households", "P_pv"): {"d1.h001": float(pr["pv"][k])},
            ("households", "soc"): {"d2.h001": 0.5 if k % 2 == 0 else 0.7},
            ("households", "T_in"): {"d1.h001": 19.0 if k == 3 else 22.5 if k == 15 else 21.0},
            ("meters", "P"): P,
            ("meters", "E_imp"): dict(e_imp),
            ("meters", "E_exp"): dict(e_exp),
            ("grid", "trafo_loading"): {"T1": load},
            ("grid", "P_trafo"): {"T1": 2.0 * load},
            ("grid", "line_loading"): {"L1": 30.0, "L2": 40.0},
            ("grid", "losses"): {"grid": 1.0},
            ("grid", "vm_pu"): {"b0": 1.0, "b1": 0.94 if k == 5 else 0.98, "b2": 1.02},
            ("grid", "congestion"): {"grid": 1.0 if load > 80 else 0.0},
        }
        if mas:
            vals[("lfa", "gap")] = {"lfa.d1": 1.0 if k % 6 == 0 else None}  # %
            vals[("lfa", "rounds")] = {"lfa.d1": 4.0}
            vals[("lfa", "plan_cost")] = {"lfa.d1": 10.0 + k}
            vals[("lfa", "flex_requested")] = {"lfa.d1": 10.0 if k in (18, 19) else 0.0}
            vals[("lfa", "flex_delivered")] = {"lfa.d1": 8.0 if k in (18, 19) else 0.0}
            vals[("realtime", "lateness_ms")] = {"rt": float(k + 1)}
        w.append(k * H, vals)
        for i in IDS:
            e_imp[i] += max(P[i], 0.0) * 1000.0
            e_exp[i] += max(-P[i], 0.0) * 1000.0
    if mas:
        req = {"kind": "flex_request", "req": "r1", "t0": 18 * H, "slot_s": 3600, "kw": [10, 10]}
        offer = {"kind": "flex_offer", "req": "r1", "offer": "o1", "t0": 18 * H, "slot_s": 3600, "kw": [9, 9]}
        order = {"kind": "flex_order", "order": "x1", "t0": 18 * H, "slot_s": 3600, "kw": [10, 10]}
        sett = {"kind": "settlement", "order": "x1", "lfa": "lfa.d1", "ordered_kwh": 20.0, "delivered_kwh": 16.0,
                "payment": 2.4, "penalty": 0.5, "partial": True, "t0": 18 * H, "slot_ms": H,
                "ordered_slots": [10.0, 10.0], "delivered_slots": [8.0, 8.0], "price": 0.15, "penalty_rate": 0.125}
        negs = [{"kind": "negotiation", "agent": "lfa.d1", "t": 3 * H, "rounds": 4, "status": "complete",
                 "gap_central_pct": 1.0},
                {"kind": "negotiation", "agent": "lfa.d1", "t": 9 * H, "rounds": 4, "status": "partial",
                 "gap_central_pct": 3.0},
                {"kind": "negotiation", "agent": "lfa.d1", "t": 15 * H, "rounds": 4, "status": "failed"}]
        w.add_events("flex", [req, offer, dict(offer), order, sett] + negs)  # the offer twice (DSO and LFA logs)
        msgs = []
        for i in range(10):
            lost = i == 9
            msgs.append({"id": f"a#{i}", "src": "d1.h001", "dst": "lfa.d1", "kind": "plan", "bytes": 100,
                         "sent": i * 1000, "delivered": None if lost else i * 1000 + 10 * (i + 1), "lost": lost,
                         "latency_ms": None if lost else 10.0 * (i + 1)})
        w.add_events("messages", msgs)
    w.close("completed")
    return str(path)


@pytest.fixture
def synth(tmp_path):
    return write_synthetic(tmp_path / "run.h5")


def test_household_kpis_hand_checked(synth):
    k = compute_kpis(synth)
    assert k["run"]["bill_source"] == "meters"
    h1, h2, h3 = (k["households"][i] for i in IDS)
    # d1.h001: import 20 kWh, export 8, PV 12 of which 4 used on site
    assert h1["import_kwh"] == pytest.approx(20.0)
    assert h1["export_kwh"] == pytest.approx(8.0)
    assert h1["pv_kwh"] == pytest.approx(12.0)
    assert h1["self_consumption"] == pytest.approx(4 / 12, abs=1e-4)
    assert h1["self_sufficiency"] == pytest.approx(4 / 24, abs=1e-4)
    # ToU: 0.22 €/kWh 00-06, 0.42 17-21, else 0.32; feed-in 0.08
    assert h1["bill_eur"] == pytest.approx(6 * 0.22 + 4 * 0.32 + 3 * 0.32 + 4 * 0.42 + 3 * 0.32 - 8 * 0.08)
    assert h2["bill_eur"] == pytest.approx(14.96)
    assert h3["bill_eur"] == pytest.approx(3.74)
    assert h1["peak_kw"] == 1.0 and h1["par"] == pytest.approx(2.0)
    assert h2["par"] == pytest.approx(1.0)
    assert h2["self_consumption"] is None and h2["self_sufficiency"] == 0.0
    assert h3["battery_efc"] == pytest.approx(0.2 * 23 / 2)
    assert h1["comfort_violation_kh"] == pytest.approx(1.5)
    assert h2["comfort_violation_kh"] is None and h1["battery_efc"] is None


def test_district_and_total_kpis(synth):
    k = compute_kpis(synth)
    d1 = k["districts"]["d1"]
    assert d1["households"] == 2
    assert d1["self_consumption"] == pytest.approx(1.0)  # the neighbour takes all the surplus
    assert d1["self_sufficiency"] == pytest.approx(12 / 72, abs=1e-4)
    assert d1["shared_kwh"] == pytest.approx(8.0)
    assert d1["peak_kw"] == pytest.approx(3.0)
    assert k["total"]["bill_eur"] == pytest.approx(5.56 + 14.96 + 3.74)
    assert k["districts"]["d2"]["battery_efc"] == pytest.approx(2.3)


def test_a_battery_that_exports_its_charge_is_not_consumption(tmp_path):
    """One home, load 1 kW every hour: PV 3 kW charges the battery 2 kW in hour 1; the battery discharges
    1.5 kW in hour 2 (0.5 kW exported) and 0.5 kW in hour 3. Consumption 4 kWh (import − export + PV −
    net charge = 1.5 − 0.5 + 3 − 0), not import + PV kept on site (4.5 kWh, the definition before
    2026-12-07, which counted the exported charge as consumed). Self-consumption 1 − 0.5/3 (the exported
    0.5 kWh came from PV through the battery; before: 1), self-sufficiency 1 − 1.5/4 (before: 3/4.5)."""
    pv, bat = np.array([0.0, 3.0, 0.0, 0.0]), np.array([0.0, 2.0, -1.5, -0.5])
    P = 1.0 - pv + bat
    series = [("households", a, "kW") for a in ("P", "P_pv", "P_bat")]
    scenario = dict(SCENARIO, duration="4h", districts=[{"name": "d1", "households": 1}])
    w = ResultsWriter(str(tmp_path / "bat.h5"), {"scenario": yaml.safe_dump(scenario), "seed": 5}, series, [],
                      START, H, flush_every=7)
    for k in range(4):
        w.append(k * H, {("households", "P"): {"d1.h001": P[k]}, ("households", "P_pv"): {"d1.h001": -pv[k]},
                         ("households", "P_bat"): {"d1.h001": bat[k]}})
    w.close("completed")
    k = compute_kpis(str(tmp_path / "bat.h5"))
    for view in (k["households"]["d1.h001"], k["total"]):
        assert view["consumption_kwh"] == pytest.approx(4.0)
        assert view["self_consumption"] == pytest.approx(1 - 0.5 / 3, abs=1e-4)
        assert view["self_sufficiency"] == pytest.approx(1 - 1.5 / 4, abs=1e-4)
        assert view["import_kwh"] == pytest.approx(1.5) and view["export_kwh"] == pytest.approx(0.5)


def test_battery_cycles_count_the_windows_first_step(tmp_path):
    """soc is an end-of-step state: the window's first step moves it from the row before the window
    (0.5 -> 0.9, 0.2 cycles) and the next from 0.9 to 0.7 (0.1); before 2026-12-07 the first was dropped."""
    scenario = dict(SCENARIO, duration="2h", districts=[{"name": "d1", "households": 1}])
    w = ResultsWriter(str(tmp_path / "soc.h5"), {"scenario": yaml.safe_dump(scenario), "seed": 5,
                                                 "eval_start_ms": 2 * H, "eval_end_ms": 4 * H},
                      [("households", "P", "kW"), ("households", "soc", "1")], [], START, H, flush_every=7)
    for k, soc in enumerate([0.5, 0.5, 0.9, 0.7, 0.7]):
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0}, ("households", "soc"): {"d1.h001": soc}})
    w.close("completed")
    assert compute_kpis(str(tmp_path / "soc.h5"))["households"]["d1.h001"]["battery_efc"] == pytest.approx(0.3)


def test_a_run_still_in_its_warm_up_has_no_window_kpis_and_says_so(tmp_path):
    """A live file (or one stopped) before its evaluated window: KPIs say why they are empty (before: a
    numpy ValueError from the grid KPIs)."""
    w = ResultsWriter(str(tmp_path / "warm.h5"), {"scenario": yaml.safe_dump(SCENARIO), "seed": 5,
                                                  "eval_start_ms": 6 * H, "eval_end_ms": 8 * H},
                      [("households", "P", "kW"), ("grid", "vm_pu", "p.u."), ("grid", "trafo_loading", "%")], [],
                      START, H, flush_every=7)
    for k in range(3):
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0}, ("grid", "vm_pu"): {"b1": 0.98},
                         ("grid", "trafo_loading"): {"T1": 40.0}})
    w.close("interrupted", "stopped by SIGINT")
    k = compute_kpis(str(tmp_path / "warm.h5"))
    assert k["not_available"] == {
        "window": "no rows in the evaluated window yet (3 rows before it, status interrupted)"}
    assert k["total"] is None and k["grid"] is None and k["households"] == {}


def test_settlements_count_the_windows_slots_only(tmp_path):
    """Settlement totals are over the window's slots, as delivered energy is: an order that runs past the
    window's end counts its slots inside (before 2026-12-07 its whole ordered energy, payment and penalty
    counted), and one that began before the window counts its slots inside too. Paid min(delivered,
    ordered) × price, penalised the shortfall × rate, per slot (simulators/mas/dso.py)."""
    w0, w1, slot = 2 * H, 4 * H, H
    w = ResultsWriter(str(tmp_path / "sett.h5"), {"scenario": yaml.safe_dump(dict(SCENARIO, duration="2h")),
                                                  "seed": 5, "eval_start_ms": w0, "eval_end_ms": w1},
                      [("households", "P", "kW")], ["flex"], START, H, flush_every=7)
    for k in range(7):
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0}})
    terms = {"kind": "settlement", "agent": "dso", "lfa": "lfa.d1", "slot_ms": slot, "price": 0.3, "penalty_rate": 0.6}
    w.add_events("flex", [
        {**terms, "t": w1 + 3 * H, "t0": w1 - slot, "order": "late", "ordered_slots": [2.0, 2.0, 2.0],
         "delivered_slots": [1.5, 2.5, None], "ordered_kwh": 6.0, "delivered_kwh": 4.0, "payment": 1.05,
         "penalty": 1.5},
        {**terms, "lfa": "lfa.d2", "t": w0 + H, "t0": w0 - slot, "order": "early", "ordered_slots": [1.0, 1.0],
         "delivered_slots": [1.0, 3.0], "ordered_kwh": 2.0, "delivered_kwh": 4.0, "payment": 0.6, "penalty": 0.0},
    ])
    w.close("completed")
    fl = compute_kpis(str(tmp_path / "sett.h5"))["flexibility"]
    assert fl["settled_ordered_kwh"] == pytest.approx(2.0 + 1.0)
    assert fl["settled_delivered_kwh"] == pytest.approx(1.5 + 3.0) == fl["delivered_kwh"]
    assert fl["settlement_payment_eur"] == pytest.approx(0.3 * (1.5 + 1.0))
    assert fl["settlement_penalty_eur"] == pytest.approx(0.6 * 0.5)
    assert fl["settlements"] == 1  # counted by their order's start, as orders are


def test_peak_15min_is_over_the_clocks_quarter_hours(tmp_path):
    """A run that starts at 00:05: 1 kW, and 10 kW from 00:10 to 00:14. The quarter-hour 00:00-00:15 holds
    10 minutes of the run, mean 5.5 kW; blocks counted from the start (00:05-00:20, before 2026-12-07)
    gave 4 kW."""
    start = "2026-06-15T00:05:00+02:00"
    scenario = dict(SCENARIO, start=start, duration="40min", step="1min", districts=[{"name": "d1", "households": 1}])
    w = ResultsWriter(str(tmp_path / "q.h5"), {"scenario": yaml.safe_dump(scenario), "seed": 5},
                      [("households", "P", "kW")], [], start, 60_000, flush_every=7)
    for k in range(40):
        w.append(k * 60_000, {("households", "P"): {"d1.h001": 10.0 if 5 <= k < 10 else 1.0}})
    w.close("completed")
    assert compute_kpis(str(tmp_path / "q.h5"))["total"]["peak_15min_kw"] == pytest.approx(5.5)


def test_stacked_orders_deliver_once_and_offers_count_with_their_request(tmp_path):
    """Two orders on one slot of one LFA, the second's baseline below the first's by the first's order: each
    settlement measures from its own baseline (14 and 7.9 kWh against the same meters), the LFA delivered
    14 kWh (the sum, 21.9, counted the 7.9 twice). An offer sent before the window for a request whose
    slots are in it is one of the window's offers (before: counted by when it was sent)."""
    w0 = 2 * H
    w = ResultsWriter(str(tmp_path / "flex.h5"), {"scenario": yaml.safe_dump(dict(SCENARIO, duration="4h")),
                                                  "seed": 5, "eval_start_ms": w0, "eval_end_ms": 4 * H},
                      [("households", "P", "kW")], ["flex"], START, H, flush_every=7)
    for k in range(6):
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0}})
    slot = 1_800_000
    t0 = w0 + slot
    w.add_events("flex", [
        {"kind": "flex_request", "agent": "dso", "t": w0 - H, "t0": t0, "req": "r1", "slot_ms": slot},
        {"kind": "flex_offer", "agent": "dso", "t": w0 - H, "req": "r1", "offer": "f1", "lfa": "lfa.d1"},
        {"kind": "flex_offer", "agent": "dso", "t": w0 - H, "req": "r9", "offer": "f9", "lfa": "lfa.d1"},
        {"kind": "settlement", "agent": "dso", "t": t0 + H, "t0": t0, "order": "o1", "lfa": "lfa.d1",
         "ordered_kwh": 6.0, "delivered_kwh": 14.0, "slot_ms": slot, "delivered_slots": [14.0]},
        {"kind": "settlement", "agent": "dso", "t": t0 + H, "t0": t0, "order": "o2", "lfa": "lfa.d1",
         "ordered_kwh": 4.0, "delivered_kwh": 7.9, "slot_ms": slot, "delivered_slots": [7.9]},
        {"kind": "settlement", "agent": "dso", "t": t0 + H, "t0": t0 + slot, "order": "o3", "lfa": "lfa.d2",
         "ordered_kwh": 1.0, "delivered_kwh": 2.0, "slot_ms": slot, "delivered_slots": [2.0]},
    ])
    w.close("completed")
    fl = compute_kpis(str(tmp_path / "flex.h5"))["flexibility"]
    assert fl["delivered_kwh"] == pytest.approx(16.0) and fl["settled_delivered_kwh"] == pytest.approx(16.0)
    assert fl["settled_ordered_kwh"] == pytest.approx(11.0) and fl["settlements"] == 3
    assert fl["agents"]["lfa.d1"]["delivered_kwh"] == pytest.approx(14.0)
    assert fl["agents"]["lfa.d2"]["delivered_kwh"] == pytest.approx(2.0)
    assert fl["agents"]["dso"]["delivered_kwh"] == pytest.approx(16.0)
    assert fl["requests"] == 1 and fl["offers"] == 1  # f9's request is not in the file: when it was sent


def test_a_slot_with_nothing_ordered_delivers_nothing(tmp_path):
    """An order the DSO took in the middle slot of its request only (uc3_substation, 2026-12-07: dso.o23 of
    lfa.d3, ordered 0 / 8.6 / 0 kWh, meters 1.28 / 8.65 / 11.83 kWh below the offer's baseline): the first
    and last slots are the aggregator's re-plans, not flexibility bought, and are not delivered (21.76 kWh
    were counted for 8.6 ordered)."""
    w0, slot = 2 * H, 1_800_000
    w = ResultsWriter(str(tmp_path / "flex.h5"), {"scenario": yaml.safe_dump(dict(SCENARIO, duration="4h")),
                                                  "seed": 5, "eval_start_ms": w0, "eval_end_ms": 4 * H},
                      [("households", "P", "kW")], ["flex"], START, H, flush_every=7)
    for k in range(6):
        w.append(k * H, {("households", "P"): {"d3.h001": 1.0}})
    w.add_events("flex", [
        {"kind": "settlement", "agent": "dso", "t": w0 + 2 * H, "t0": w0, "order": "o23", "lfa": "lfa.d3",
         "ordered_kwh": 8.6, "delivered_kwh": 21.76, "slot_ms": slot, "delivered_slots": [1.28, 8.65, 11.83],
         "ordered_slots": [0.0, 8.6, 0.0], "price": 0.016, "penalty_rate": 0.6, "payment": 0.016 * 8.6,
         "penalty": 0.0}])
    w.close("completed")
    fl = compute_kpis(str(tmp_path / "flex.h5"))["flexibility"]
    assert fl["delivered_kwh"] == pytest.approx(8.65) and fl["settled_delivered_kwh"] == pytest.approx(8.65)
    assert fl["agents"]["lfa.d3"]["delivered_kwh"] == pytest.approx(8.65)
    assert fl["settled_ordered_kwh"] == pytest.approx(8.6) and fl["settlement_payment_eur"] == pytest.approx(0.1376)


def test_grid_kpis(synth):
    g = compute_kpis(synth)["grid"]
    assert g["losses_kwh"] == pytest.approx(24.0)
    assert g["trafo_loading_pct"] == {"p50": 50.0, "p95": pytest.approx(92.5), "p99": 100.0,
                                      "max": 100.0}
    assert g["line_loading_pct"]["max"] == 40.0
    assert g["congestion_min"] == 120.0 and g["trafo_overload_min"] == 120.0 and g["line_overload_min"] == 0
    assert g["v_violation_min"] == 60.0  # 0.94 < 1 - 0.05 during one hour
    assert g["v_min_pu"] == 0.94 and g["v_max_pu"] == 1.02
    assert g["overload_kwh"] == pytest.approx(80.0)  # (100 - 80) % of 200 kVA for 2 h
    assert g["reinforcement_kva"] == pytest.approx(50.0)  # 200 kVA × (100 − 80)/80: the rating to keep 80 %


def test_mas_flex_telecom_realtime(synth):
    k = compute_kpis(synth)
    f = k["flexibility"]
    assert f["requested_kwh"] == 20.0 and f["delivered_kwh"] == 16.0
    assert (f["requests"], f["offers"], f["orders"], f["settlements"]) == (1, 1, 1, 1)
    assert f["settlement_payment_eur"] == 2.4 and f["settled_delivered_kwh"] == 16.0
    assert f["settlements_partial"] == 1  # settled when the run stopped
    from cosim.summary import run_summary
    assert any("1 settled (1 partially: the run stopped" in line for line in run_summary(synth))
    # the gap is a mean over negotiations (not minutes), in %; the failed one has no reference
    m = k["mas"]
    assert (m["gap_mean_pct"], m["gap_max_pct"]) == (pytest.approx(2.0), pytest.approx(3.0))
    assert (m["negotiations"], m["negotiations_partial"], m["negotiations_failed"]) == (3, 1, 1)
    assert m["agents"]["lfa.d1"]["rounds_mean"] == 4.0
    t = k["telecom"]
    assert (t["messages_sent"], t["messages_delivered"], t["messages_lost"], t["bytes_sent"]) == (10, 9, 1, 1000)
    assert t["latency_ms"]["p50"] == 50.0 and t["latency_ms"]["max"] == 90.0
    # one definition (hil.realtime.recorded_lateness_stats): re-anchored at the earliest step (1 ms)
    assert k["realtime"]["lateness_ms"]["max"] == 23.0 and k["realtime"]["lateness_ms"]["p50"] == 11.5
    assert k["not_available"] == {}
    json.dumps(k, allow_nan=False)


def test_missing_populations_are_reported(tmp_path):
    path = write_synthetic(tmp_path / "nomas.h5", mas=False)
    k = compute_kpis(path)
    assert k["mas"] is None and k["telecom"] is None and k["realtime"] is None and k["flexibility"] is None
    assert set(k["not_available"]) == {"mas", "telecom", "realtime", "flexibility"}
    flat = flat_kpis(k)
    assert flat["mas.gap_mean_pct"] is None and flat["grid.congestion_min"] == 120.0
    assert "Not available" in kpi_text(k)


def test_real_run_and_cli(tmp_path):
    from cosim.runner import run_scenario
    from cosim.scenario import parse_scenario

    data = {"name": "kpi_real", "start": "2026-06-15T18:00:00+02:00", "duration": "2h", "step": "1min", "seed": 4,
            "districts": [{"name": "d1", "households": 4,
                           "shares": {"pv": 0.5, "battery": 0.5, "heat_pump": 0.5}}],
            "meters": {"accuracy_class": 0.5}, "grid": {"network": "cigre_lv"}}
    out = tmp_path / "real.h5"
    run_scenario(parse_scenario(data), yaml.safe_dump(data), out=out, progress=False)
    k = compute_kpis(out)
    assert k["run"]["status"] == "completed" and k["run"]["rows"] == 120
    hh = k["households"]
    assert len(hh) == 4
    # billed import from the meter registers agrees with the household power within the meter class
    from cosim.kpi import _balance
    from cosim.results import Results

    with Results(out) as r:
        P = np.nan_to_num(r.series("households", "P").values)
        true_import = _balance(P, np.zeros_like(P), np.zeros_like(P), r.dt_h)["imp"].sum()
    assert k["total"]["import_kwh"] == pytest.approx(true_import, rel=0.01, abs=0.01)
    assert 0 <= k["total"]["self_sufficiency"] <= 1
    assert k["grid"]["losses_kwh"] > 0 and k["grid"]["trafo_loading_pct"]["max"] > 0
    assert k["grid"]["congestion_min"] == 0
    proc = run_cosim("kpis", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"]["bill_eur"] == k["total"]["bill_eur"]
    proc = run_cosim("kpis", str(out))
    assert proc.returncode == 0 and "energy bill" in proc.stdout and "trafo loading p95" in proc.stdout
    proc = run_cosim("kpis", str(tmp_path / "missing.h5"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_meter_only_home_is_included(tmp_path):
    """A real (HIL) home has no simulated household, only its meter: it still gets KPIs."""
    path = tmp_path / "hil.h5"
    scn = dict(SCENARIO, districts=[{"name": "d1", "households": 1}])
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scn)},
                      [("households", "P", "kW"), ("meters", "P", "kW"), ("meters", "E_imp", "Wh"),
                       ("meters", "E_exp", "Wh")], [], START, H)
    for k in range(4):
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0},
                         ("meters", "P"): {"d1.h001": 1.0, "lab.h001": 2.0},
                         ("meters", "E_imp"): {"d1.h001": 1000.0 * k, "lab.h001": 2000.0 * k},
                         ("meters", "E_exp"): {"d1.h001": 0.0, "lab.h001": 0.0}})
    w.close()
    k = compute_kpis(path)
    assert set(k["households"]) == {"d1.h001", "lab.h001"}
    assert k["households"]["lab.h001"]["import_kwh"] == pytest.approx(8.0)
    assert k["districts"]["lab"]["peak_kw"] == 2.0


def test_capacity_tariff_months_count_from_the_window_start(tmp_path):
    """Month blocks of the capacity tariff start with the evaluated window: a 4-day window that begins
    29 days into the run is one block of 4 days (peak 3 kW), whatever the warm-up before it."""
    from cosim.kpi import MONTH_MS, monthly_peak_charge_kw_months
    from cosim.results import Results, stamp_attrs

    path = tmp_path / "long.h5"
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(SCENARIO)}, [("households", "P", "kW")], [], START, H)
    for k in range(34 * 24):
        w.append(k * H, {("households", "P"): {"d1.h001": 3.0 if k == 32 * 24 + 18 else 1.0}})
    w.close()
    stamp_attrs(path, {"eval_start_ms": 29 * 24 * H, "eval_end_ms": 33 * 24 * H})
    with Results(path) as r:
        got = monthly_peak_charge_kw_months(r, r.series("households", "P").values)
    assert got == pytest.approx([3.0 * 4 * 24 * H / MONTH_MS])


def test_capacity_tariff_counts_a_window_that_starts_between_quarter_hours(tmp_path):
    """A 1-day window from 00:05 at a flat 2 kW: one month block of 1 day (2 kW × 1/30.44 months). The
    clock's first quarter-hour (00:00-00:15) starts 5 min before the window; its start must not open a
    month block of its own (it was block −1, counted as a whole month: 2.07 instead of 0.066 kW-months)."""
    from cosim.kpi import MONTH_MS, monthly_peak_charge_kw_months
    from cosim.results import Results

    start = "2026-06-15T00:05:00+02:00"
    scenario = dict(SCENARIO, start=start, duration="1d", step="1min", districts=[{"name": "d1", "households": 1}])
    path = tmp_path / "cap.h5"
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario), "seed": 5},
                      [("households", "P", "kW")], [], start, 60_000, flush_every=60)
    for k in range(1440):
        w.append(k * 60_000, {("households", "P"): {"d1.h001": 2.0}})
    w.close("completed")
    with Results(path) as r:
        got = monthly_peak_charge_kw_months(r, r.series("households", "P").values)
    assert got == pytest.approx([2.0 * 24 * H / MONTH_MS])


def test_voltage_kpis_are_the_grids_lv_buses_not_its_mv_bus(tmp_path):
    """The balanced grid records vm_pu of every bus, the MV bus at the slack (1.0 p.u.) among them, and v_min /
    v_max / v_violation over its LV buses only (simulators/grid.py, as the three-phase grid). The KPIs are the
    LV buses': max voltage 0.99, not the MV bus's 1.0 (kerber_vorstadt_1, 6 h: 1.0 against 0.9994)."""
    scenario = dict(SCENARIO, duration="1h", step="1min", districts=[{"name": "d1", "households": 1}])
    path = tmp_path / "v.h5"
    series = [("households", "P", "kW")] + [("grid", a, u) for a, u in (
        ("vm_pu", "p.u."), ("v_min", "p.u."), ("v_max", "p.u."), ("v_violation", "flag"))]
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario), "seed": 5}, series, [], START, 60_000)
    for k in range(60):
        lv = {"lv1": 0.99, "lv2": 0.94 if k < 5 else 0.97}  # below 1 - 0.05 for 5 min
        w.append(k * 60_000, {("households", "P"): {"d1.h001": 1.0},
                              ("grid", "vm_pu"): {"mv": 1.0, **lv},
                              ("grid", "v_min"): {"grid": min(lv.values())},
                              ("grid", "v_max"): {"grid": max(lv.values())},
                              ("grid", "v_violation"): {"grid": 1.0 if k < 5 else 0.0}})
    w.close("completed")
    g = compute_kpis(str(path))["grid"]
    assert g["v_max_pu"] == 0.99 and g["v_min_pu"] == 0.94
    assert g["v_violation_min"] == 5.0


def test_telecom_counters_count_the_windows_messages_only(tmp_path):
    """Without /events/messages the telecom KPIs come from the telecom population's counters, which count
    from the simulation's start: a window after a warm-up has the increase over the window, not the warm-up's
    messages too (uc2_district 6 h after its 24-h warm-up: 9 237 messages sent in the window, 46 808 in all)."""
    from cosim.results import stamp_attrs

    path = tmp_path / "tc.h5"
    series = [("households", "P", "kW")] + [("telecom", a, "") for a in ("sent", "delivered", "lost", "bytes_sent")]
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(SCENARIO), "seed": 5}, series, [], START, H)
    for k in range(48):  # 10 messages an hour per agent, one of them lost, 100 bytes each, from t = 0
        n = 10.0 * (k + 1)
        w.append(k * H, {("households", "P"): {"d1.h001": 1.0},
                         ("telecom", "sent"): {"a": n, "b": n}, ("telecom", "delivered"): {"a": 0.9 * n, "b": 0.9 * n},
                         ("telecom", "lost"): {"a": 0.1 * n, "b": 0.1 * n},
                         ("telecom", "bytes_sent"): {"a": 100.0 * n, "b": 100.0 * n}})
    w.close("completed")
    stamp_attrs(path, {"eval_start_ms": 24 * H, "eval_end_ms": 48 * H})
    tc = compute_kpis(str(path))["telecom"]
    assert tc["source"] == "telecom population"
    assert tc["messages_sent"] == 480 and tc["messages_lost"] == 48 and tc["messages_delivered"] == 432
    assert tc["bytes_sent"] == 48_000 and tc["loss_rate"] == pytest.approx(0.1)
