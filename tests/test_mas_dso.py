"""DSO agent: forecast -> FlexRequest -> FlexOffer -> FlexOrder -> activation -> settlement from meter data."""

import numpy as np

from simulators.devices.common import Clock
from simulators.mas.forecast import HouseholdKnowledge
from simulators.mas.host import AgentHost
from simulators.mas.tariff import DistrictObjective, Tariff
from simulators.mas.instances import demo_specs as specs

START = "2026-01-15T12:00:00+01:00"
H = 3_600_000


def build():
    clock = Clock(START)
    host = AgentHost(clock, K=24, slot_s=3600, replan_s=3600, loopback=True)
    for d in ("d1", "d2"):
        sp = specs(6, district=d, seed=1 if d == "d1" else 2)
        kn = HouseholdKnowledge(sp, START, seed=0)
        host.add_homes(d, sp, Tariff(), False, kn.forecast, ev_model=kn.ev_sessions)
    host.add_dso(["d1", "d2"], 1e6, lookahead_slots=6, lead_slots=1, price_max=0.5, penalty=1.0)
    for d in ("d1", "d2"):
        host.add_lfa(d, None, DistrictObjective(community=False), Tariff(), max_rounds=6)
    return host


def test_flex_cycle_every_order_settled_from_meter_energy():
    host = build()
    dso = host.dso
    meters = {h: [0.0, 0.0] for h in host.homes}  # Wh registers, integrated from what households do
    host.end = 10 * H
    t = 0
    while t < 10 * H:
        host.step(t, {})
        if t == 0:  # congestion: a limit below the planned evening peak of the two districts
            peak = max(dso.forecast("total", k * H) for k in range(1, 7))
            dso.limits["total"] = 0.85 * peak
        for hid, h in host.homes.items():
            p = h.planned_power(t)
            p = 0.0 if p is None else p
            meters[hid][0] += max(p, 0.0) * 1000 / 60  # one minute
            meters[hid][1] += max(-p, 0.0) * 1000 / 60
            host.set_meters("E_imp", {hid: meters[hid][0]})
            host.set_meters("E_exp", {hid: meters[hid][1]})
        t += 60_000
    ev = host.events["dso"]
    kinds = [e["kind"] for e in ev]
    assert "flex_request" in kinds and "flex_offer" in kinds and "flex_order" in kinds
    orders = dso.orders.values()
    assert orders and all(o["status"] == "settled" for o in orders)
    settled = [e for e in ev if e["kind"] == "settlement"]
    assert len(settled) == len(dso.orders)
    # the LFAs heard about their orders and replanned with the cap
    lfa_ev = host.events["lfa.d1"] + host.events["lfa.d2"]
    assert any(e["kind"] == "flex_order_received" for e in lfa_ev)
    assert any(e["kind"] == "settlement_received" for e in lfa_ev)
    for o in orders:
        # delivered = baseline - measured energy per slot, measured from the meter registers
        members = dso.reports[o["district"]]["members"]
        for j in range(len(o["kw"])):
            ta = o["t0"] + j * H
            if ta + H not in dso.snap:  # after the end of the run: settled without data (shortfall)
                assert np.isnan(o["measured"][j]) and o["delivered"][j] == 0.0
                continue
            e = sum(dso.snap[ta + H][m] - dso.snap[ta][m] for m in members) / 1000
            assert abs(o["measured"][j] - e) < 1e-9
            assert abs(o["delivered"][j] - max(0.0, o["baseline"][j] - e)) < 1e-9
        s = next(e for e in settled if e["order"] == o["id"])
        assert abs(s["payment"] - o["price"] * np.minimum(o["delivered"], o["kw"]).sum()) < 1e-6
        print(f"\n{o['id']} {o['lfa']} ordered {s['ordered_kwh']:.2f} kWh delivered {s['delivered_kwh']:.2f} kWh "
              f"price {o['price']:.3f} EUR/kWh payment {s['payment']:.2f} penalty {s['penalty']:.2f}")
    o = next(iter(orders))
    k = dso.slot_kpis(o["t0"])
    assert k["flex_ordered"] >= o["kw"][0] - 1e-9 and k["flex_requested"] >= k["flex_ordered"] - 1e-9
    # delivered kW of the first ordered slot, reported once that slot is complete (dt = 1 h here)
    assert dso.slot_kpis(o["t0"] + H)["flex_delivered"] >= o["delivered"][0] - 1e-6
    # activation worked: together the orders were (almost) delivered
    assert sum(e["delivered_kwh"] for e in settled) >= 0.8 * sum(min(e["delivered_kwh"], e["ordered_kwh"])
                                                                 for e in settled)
    assert sum(e["delivered_kwh"] for e in settled) > 0


def test_open_orders_are_settled_at_the_end_of_the_run():
    host = build()
    dso = host.dso
    host.step(0, {})
    peak = max(dso.forecast("total", k * H) for k in range(1, 7))
    dso.limits["total"] = 0.85 * peak
    host.step(H, {})  # congestion check at the next slot boundary -> request/offer/order (loopback)
    assert any(o["status"] == "ordered" for o in dso.orders.values())
    host.end = 2 * H
    host.step(H + 60_000, {})  # the run ends before the ordered period: settle with what is there
    assert all(o["status"] == "settled" for o in dso.orders.values())
    st = [e for e in host.events["dso"] if e["kind"] == "settlement"]
    assert st and all(e["partial"] and e["penalty"] == 0.0 for e in st)
    assert all(abs(e["cancelled_kwh"] - float(np.sum(dso.orders[e["order"]]["kw"]))) < 1e-9 for e in st)


def ordered(share: float):
    """(host, DSO, its first order) after the DSO ordered flexibility at 1 h against a limit of *share*
    × the planned peak of the next 6 h."""
    host = build()
    dso = host.dso
    host.step(0, {})
    dso.limits["total"] = share * max(dso.forecast("total", k * H) for k in range(1, 7))
    host.step(H, {})
    return host, dso, next(iter(dso.orders.values()))


def test_end_of_run_cancels_the_slots_whose_readings_have_not_come():
    """A run that stops just after an order's end: its last slot's readings are still on their way
    (they come by the end + one slot), so that slot is cancelled, not a shortfall; the slots measured
    are settled as usual."""
    _, dso, o = ordered(0.7)
    members, n = dso._members(o), len(o["kw"])
    assert n >= 2
    for j in range(n):  # registers at every slot boundary of the order but its end: 1 MWh per member and slot,
        dso.snap[o["t0"] + j * H] = {m: 1e6 * j for m in members}  # far above the baseline: nothing delivered
    dso.settle_all(o["end"] + 60_000)
    (st,) = [e for e in dso.events if e["kind"] == "settlement"]
    assert st["partial"] and st["missing_slots"] == 1
    assert abs(st["cancelled_kwh"] - o["kw"][-1]) < 1e-9  # 1-h slots: kW = kWh
    assert np.array_equal(o["delivered"], np.zeros(n))
    assert st["penalty"] > 0 and abs(st["penalty"] - dso.penalty * sum(o["kw"][:-1])) < 1e-9  # the measured slots


def test_settlement_waiting_for_meter_data_does_not_spin():
    host, dso, o = ordered(0.85)
    t = o["end"] + 1_000  # past the order's end, no meter data connected
    host.step(t, {})
    assert o["status"] == "ordered"
    assert host.next_time(t) >= o["end"] + H - 1  # wait for the next slot, not the next tick
    host.step(o["end"] + H, {})
    assert o["status"] == "settled" and o["missing_slots"] == len(o["kw"])


def test_settlement_measures_exactly_the_slot_with_lagged_meter_registers():
    """Registers reach the DSO one meter step late (time-shifted connection, as in the world): a load
    step of 5 kW per home exactly at a slot boundary is settled as the integral of P over each slot."""
    host = build()
    lag = 60_000
    host.meter_lag = lag
    dso = host.dso
    host.end = 10 * H
    E = {h: [0.0, 0.0] for h in host.homes}
    history: dict[int, dict] = {}  # tick -> registers as they stood then
    step_at = None
    t = 0
    while t < 10 * H:
        if t >= lag:
            for i, register in enumerate(("E_imp", "E_exp")):
                host.set_meters(register, {hid: v[i] for hid, v in history[t - lag].items()})
        history[t] = {h: tuple(v) for h, v in E.items()}
        host.step(t, {})
        if t == 0:  # a limit below two consecutive planned hours, so the order has two slots
            dso.limits["total"] = 0.65 * max(dso.forecast("total", k * H) for k in range(1, 7))
        if step_at is None and dso.orders:
            o = next(iter(dso.orders.values()))
            step_at = o["t0"] + H  # the sharp step: at the boundary of the order's second slot
        for hid, h in host.homes.items():
            p = h.planned_power(t) or 0.0
            if step_at is not None and t >= step_at:
                p += 5.0
            E[hid][0] += max(p, 0.0) * 1000 / 60
            E[hid][1] += max(-p, 0.0) * 1000 / 60
        t += 60_000
    settled = [o for o in dso.orders.values() if o["status"] == "settled"]
    assert settled and step_at is not None
    checked = 0
    for o in settled:
        for j in range(len(o["kw"])):
            ta = o["t0"] + j * H
            if not np.isfinite(o["measured"][j]):
                continue
            ids = dso._members(o)
            exact = sum(  # the true energy of the order's members over exactly [ta, ta + H)
                (history[ta + H][h][0] - history[ta + H][h][1]) - (history[ta][h][0] - history[ta][h][1])
                for h in ids) / 1000.0
            assert abs(o["measured"][j] - exact) <= 1e-3 * abs(exact)
            checked += 1
    assert checked >= 2


def test_meter_registers_read_as_whole_mappings():
    """set_meters takes one register of many meters at once: None is skipped, the other register of a
    meter is kept, values become floats; the DSO snapshots only meters with both registers read."""
    host = AgentHost(Clock(START), K=24, slot_s=3600, replan_s=3600)
    host.set_meters("E_imp", {"a": 1, "b": None, "c": np.float64(2.5)})
    host.set_meters("E_exp", {"b": 4.0, "a": None, "c": 0.5})
    host.set_meters("E_imp", {"a": 7})
    assert host.meters == {"a": [7.0, None], "b": [None, 4.0], "c": [2.5, 0.5]}
    assert all(type(v) is float for pair in host.meters.values() for v in pair if v is not None)
    dso = host.add_dso(["d1"], 1e6)
    dso.measure(0, host.meters, None)
    assert dso.snap == {0: {"c": 2.0}}
    dso.measure(H, {"a": [7.0, None]}, None)  # nothing complete: no snapshot
    assert list(dso.snap) == [0]


def test_loading_limit_follows_the_measured_kw_per_percent():
    """With trafo_limit_pct the DSO defends a loading: its kW limit in a slot is the limit times the lowest
    kW per % of loading measured near the limit within an hour of the slot's time of day in the last 25 h
    (else the lowest of all); unbalance (more % per kW) lowers it."""
    import pytest

    from simulators.mas.dso import DSOAgent

    with pytest.raises(ValueError, match="one of them"):
        DSOAgent(["d1"], 300, trafo_limit_pct=48)
    with pytest.raises(ValueError, match="one of them"):
        DSOAgent(["d1"])
    dso = DSOAgent(["d1"], trafo_limit_pct=48, slot_s=900, bias_smoothing=0.5)
    slot = dso.slot_ms
    assert dso.limits["total"] == np.inf
    dso.measure(0, None, {"total": 50.0}, loading=10.0)          # far below the limit: not learnt
    assert dso.limits["total"] == np.inf
    dso.measure(slot, None, {"total": 200.0}, loading=40.0)      # 5 kW per %: 240 kW
    assert dso.limits["total"] == pytest.approx(240.0)
    dso.measure(2 * slot, None, {"total": 200.0}, loading=50.0)  # 4 kW per % (worse unbalance)
    assert dso.limits["total"] == pytest.approx(48 * 4.0)
    dso.measure(2 * slot + 60_000, None, {"total": 100.0}, loading=50.0)  # not a slot boundary
    dso.measure(3 * slot, None, {"total": 250.0}, loading=50.0)  # 5 kW per %: the lowest of the day stays
    assert dso.limits["total"] == pytest.approx(48 * 4.0)
    assert dso.limit_at("total", 3 * slot) == pytest.approx(48 * 4.0)  # the samples within an hour
    hour, day = 3_600_000, 86_400_000
    dso.measure(12 * hour, None, {"total": 240.0}, loading=40.0)  # evening: 6 kW per %
    assert dso.limits["total"] == pytest.approx(48 * 4.0)  # the lowest of all
    assert dso.limit_at("total", 12 * hour + slot) == pytest.approx(48 * 6.0)  # its time of day: the evening's
    assert dso.limit_at("total", 6 * hour) == pytest.approx(48 * 4.0)  # no sample near 06:00: the lowest of all
    assert dso.limit_at("total", day + slot) == pytest.approx(48 * 4.0)  # tomorrow's early slots: today's
    dso.measure(day + hour + 2 * slot, None, {"total": 240.0}, loading=48.0)  # 5 kW per %
    assert dso.limit_at("total", day + hour + 2 * slot) == pytest.approx(48 * 5.0)  # the 4 kW per % is 25 h old
    assert dso.limits["total"] == pytest.approx(48 * 5.0)
