"""Home LP (simulators.mas.home_lp): device limits, comfort, closed form, warm start, appliances."""

import numpy as np
import pytest

from simulators.devices.common import Clock
from simulators.devices.params import (ApplianceParams, BatteryParams, DeviceSet, EVParams, HeatPumpParams,
                                       HouseholdSpec, PVParams)
from simulators.mas.home_lp import HomeModel, schedule_appliance
from simulators.mas.tariff import Tariff

START = "2026-02-10T00:00:00+01:00"
K, SLOT = 96, 900


def _forecast(K=K, cold=True):
    h = np.arange(K) * SLOT / 3600.0
    base = 0.4 + 0.3 * np.exp(-((h - 19) ** 2) / 4) + 0.2 * np.exp(-((h - 7.5) ** 2) / 2)
    pv = -4.0 * np.clip(np.sin((h - 7) / 10 * np.pi), 0, None) * (h >= 7) * (h <= 17)
    t_out = (-3.0 if cold else 12.0) + 4 * np.sin((h - 9) / 24 * 2 * np.pi)
    return {"base": base, "pv": pv, "t_out": t_out}


def _full_home():
    return HouseholdSpec(id="d1.h001", devices=DeviceSet(
        pv=PVParams(kwp=5), battery=BatteryParams(capacity_kwh=8, p_max_kw=3),
        ev=EVParams(charger_kw=7.4, arrival="18:00", departure="07:30"),
        heat_pump=HeatPumpParams(p_el_kw=3, t_min=20, t_max=22, t_init=21)))


def test_home_lp_respects_device_limits_and_comfort():
    spec = _full_home()
    m = HomeModel(spec, K, SLOT, Tariff())
    m0 = Clock(START).local_min(0)
    state = {"soc": 0.5, "soc_ev": 0.4, "T_in": 20.5,
             "ev_sessions": [(m0, m0 + 7.5 * 60, 12.0, True), (m0 + 18 * 60, m0 + 31.5 * 60, 12.0, False)]}
    m.update(m0, state, _forecast())
    pl = m.solve(own=True)
    assert m.check(pl.x) < 1e-6
    b, ev, hp = spec.devices.battery, spec.devices.ev, spec.devices.heat_pump
    bat = pl.devices["bat"]
    assert np.all(np.abs(bat) <= b.p_max_kw + 1e-7)
    e = pl.devices["e"]
    assert np.all(e >= b.soc_min * b.capacity_kwh - 1e-6) and np.all(e <= b.soc_max * b.capacity_kwh + 1e-6)
    assert e[-1] >= 0.5 * b.capacity_kwh - 1e-6  # ends at least as full as it started
    evp = pl.devices["ev"]
    assert np.all(evp >= -1e-9) and np.all(evp <= ev.charger_kw * m.ev_avail + 1e-7)
    assert np.all(evp[(m.ev_avail == 0)] <= 1e-9)  # no charging while away
    dt = SLOT / 3600
    first_dep = int(7.5 * 4) - 1  # slot containing 07:30
    assert np.sum(evp[: first_dep + 1]) * ev.efficiency * dt >= 12.0 - 1e-4  # need met before departure
    assert np.all(pl.devices["hp"] <= hp.p_el_kw + 1e-7) and np.all(pl.devices["hp"] >= -1e-9)
    T = pl.devices["T"]
    assert T.min() >= hp.t_min - 1e-4 and T.max() <= hp.t_max + 1e-4  # comfort held (feasible here)
    # net power = sum of the parts (balance row)
    fc = _forecast()
    net = fc["base"] + fc["pv"] + pl.devices["cur"] + bat + evp + pl.devices["hp"]
    np.testing.assert_allclose(pl.p, net, atol=1e-6)
    # thermal model: the household simulator's discretisation
    from simulators.devices.heatpump import cop
    a = np.exp(-hp.ua_kw_per_k * dt / hp.c_kwh_per_k)
    T_prev = np.r_[20.5, T[:-1]]
    np.testing.assert_allclose(T, a * T_prev + (1 - a) * (fc["t_out"] + cop(fc["t_out"]) * pl.devices["hp"]
                                                           / hp.ua_kw_per_k), atol=1e-6)


def test_comfort_is_soft_when_the_heat_pump_is_too_small():
    spec = HouseholdSpec(id="d1.h002", devices=DeviceSet(heat_pump=HeatPumpParams(p_el_kw=0.3, ua_kw_per_k=0.4)))
    m = HomeModel(spec, 24, 3600, Tariff())
    fc = _forecast(24)
    fc["t_out"] = np.full(24, -15.0)
    m.update(Clock(START).local_min(0), {"T_in": 21.0}, fc)
    pl = m.solve(own=True)  # infeasible band: still a plan, HP at full power, penalty paid
    assert np.allclose(pl.devices["hp"][2:], 0.3, atol=1e-6)
    assert pl.devices["T"].min() < 20.0


def test_closed_form_equals_lp_for_pv_only_home():
    spec = HouseholdSpec(id="d1.h003", devices=DeviceSet(pv=PVParams(kwp=8)))
    tar = Tariff(feed_in=-0.05)  # negative feed-in: curtailment pays
    m = HomeModel(spec, K, SLOT, tar)
    assert m.simple
    m.update(Clock(START).local_min(0), {}, _forecast())
    rng = np.random.default_rng(1)
    lam = rng.normal(0.0, 0.2, K)
    closed = m.solve(lam)
    m.simple = False  # force the LP path on the same data
    lp = m.solve(lam)
    assert abs(closed.cost + m.dt * lam @ closed.p - (lp.cost + m.dt * lam @ lp.p)) < 1e-7
    assert closed.devices["cur"].max() > 0.1


def test_warm_started_highs_matches_linprog():
    spec = _full_home()
    m0 = Clock(START).local_min(0)
    a = HomeModel(spec, K, SLOT, Tariff(), community=True, backend="highs")
    b = HomeModel(spec, K, SLOT, Tariff(), community=True, backend="linprog")
    rng = np.random.default_rng(3)
    for it in range(3):
        st = {"soc": 0.3 + 0.2 * it, "T_in": 21.0, "ev_present": it % 2 == 0}
        for m in (a, b):
            m.update(m0 + 60 * it, st, _forecast())
        for _ in range(3):
            lam = 0.25 + rng.normal(0, 0.05, K)
            pa, pb = a.solve(lam), b.solve(lam)
            va, vb = pa.cost + a.dt * lam @ pa.p, pb.cost + b.dt * lam @ pb.p
            assert abs(va - vb) < 1e-6 * max(1, abs(va))


def test_proximal_response_is_feasible_and_closer_to_target():
    spec = _full_home()
    m = HomeModel(spec, K, SLOT, Tariff(), community=True)
    m.update(Clock(START).local_min(0), {"soc": 0.5, "T_in": 21.0, "ev_present": True}, _forecast())
    lam = np.full(K, 0.3)
    lam[::7] = 0.1
    pure = m.solve(lam)
    target = m.solve(own=True).p
    prox = m.solve(lam, target=target, sigma=0.5)
    assert m.check(prox.x) < 1e-6
    assert np.abs(prox.p - target).sum() < np.abs(pure.p - target).sum()


def test_appliance_start_is_the_cheapest_in_its_window():
    app = ApplianceParams(profile_kw=[2.0] * 60, window_start="08:00", window_end="20:00")
    m0 = Clock(START).local_min(0)
    price = np.full(K, 0.30)
    price[13 * 4:15 * 4] = 0.10  # cheap 13:00-15:00
    st = schedule_appliance(app, m0, K, 15, price, m0 + 8 * 60, m0 + 19 * 60)
    assert st == pytest.approx(m0 + 13 * 60)
    # window already partly over: the start is never in the past
    st2 = schedule_appliance(app, m0, K, 15, np.full(K, 0.3), m0 + 16 * 60 + 7, m0 + 19 * 60)
    assert st2 == pytest.approx(m0 + 16 * 60 + 7)


def test_appliance_start_against_a_brute_force_search():
    """The chosen start has the least cost of every start allowed (the earliest, then each slot
    boundary, the cycle ending inside the horizon), each cycle costed minute by minute here."""
    rng = np.random.default_rng(5)
    m0 = Clock(START).local_min(0)
    for _ in range(40):
        n = int(rng.integers(1, 180))
        app = ApplianceParams(profile_kw=rng.uniform(0.1, 2.0, n).round(3).tolist(), window_start="00:00",
                              window_end="23:59")
        price = rng.choice([0.1, 0.2, 0.3], K) + rng.uniform(0, 0.01, K)
        earliest = m0 + float(rng.uniform(0, 20 * 60))
        latest = earliest + float(rng.uniform(0, 10 * 60))
        starts = [earliest] + [m0 + k * 15.0 for k in range(K) if earliest < m0 + k * 15.0 <= latest + 1e-9]
        starts = [s for s in starts if s + n <= m0 + K * 15.0 + 1e-9]

        def cost(s):
            return sum(app.profile_kw[j] * price[min(int((s - m0 + j) // 15.0), K - 1)] for j in range(n)) / 60.0

        st = schedule_appliance(app, m0, K, 15, price, earliest, latest)
        if not starts:
            assert st is None
            continue
        assert st in starts and cost(st) <= min(cost(s) for s in starts) + 1e-9


def test_persistent_lps_take_each_rounds_cop_coefficients():
    """The heat pump's COP entries change with the outdoor temperature: after every update both persistent
    LPs (plain and proximal), in the wrapper and in HiGHS, hold the round's matrix (``lp_arrays``)."""
    import scipy.sparse as sp

    m = HomeModel(_full_home(), K, SLOT, Tariff(), community=True, backend="highs")
    m0 = Clock(START).local_min(0)
    lam = np.full(K, 0.3)
    for it, cold in enumerate((True, False, True, True)):
        m.update(m0 + 60 * it, {"soc": 0.5, "T_in": 21.0, "ev_present": True}, _forecast(cold=cold))
        m.solve(lam)
        m.solve(lam, target=np.zeros(K), sigma=0.5)
        A = m.lp_arrays()[0]
        for lp, rows, cols in ((m._lp, m.m_main, m.n_main), (m._lp_prox, m.m, m.n)):
            want = A[:rows, :cols].toarray()
            assert np.array_equal(lp.A.toarray(), want)
            h = lp._h.getLp().a_matrix_
            got = sp.csc_matrix((h.value_, h.index_, h.start_), shape=(rows, cols)).toarray()
            assert np.array_equal(got, want)
