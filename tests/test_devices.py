"""Device models of the household simulator (physics, limits, default rules, seeded profiles)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from simulators.devices.appliance import Appliances
from simulators.devices.baseload import BaseLoad
from simulators.devices.battery import Battery
from simulators.devices.common import MIN_PER_DAY, Clock, weekday
from simulators.devices.ev import EVFleet
from simulators.devices.heatpump import HeatPumps, cop
from simulators.devices.params import (
    ApplianceParams,
    BaseLoadParams,
    BatteryParams,
    EVParams,
    HeatPumpParams,
    PVParams,
)
from simulators.devices.pv import PVArray
from simulators.devices.weather import Weather


def _clock(start="2026-01-05T00:00:00+01:00"):
    return Clock(start, 0.001)


# ---------------------------------------------------------------- battery
def test_battery_energy_balance_and_soc_limits_under_adversarial_setpoints():
    prm = [BatteryParams(), BatteryParams(capacity_kwh=3, p_max_kw=4, efficiency=0.9, soc_min=0.2, soc_max=0.8,
                                          soc_init=0.2)]
    b = Battery(["a", "b"], prm)
    g = np.random.default_rng(0)
    dt_h = 1 / 60
    charged = np.zeros(2)
    discharged = np.zeros(2)
    e0 = b.e.copy()
    for k in range(3000):
        sp = g.choice([-100.0, 100.0, -2.0, 3.0, np.nan], size=2)
        e_before = b.e.copy()
        p = b.step(sp, net_load=g.normal(0, 3, 2), dt_h=dt_h)
        de = b.e - e_before
        np.testing.assert_allclose(de, np.where(p > 0, p * b.eff, p / b.eff) * dt_h, atol=1e-9)
        assert np.all(np.abs(p) <= b.p_max + 1e-12)
        assert np.all(b.soc >= b.e_min / b.capacity - 1e-9) and np.all(b.soc <= b.e_max / b.capacity + 1e-9)
        charged += np.maximum(p, 0) * dt_h
        discharged += np.maximum(-p, 0) * dt_h
    np.testing.assert_allclose(b.e - e0, charged * b.eff - discharged / b.eff, atol=1e-6)
    assert charged.min() > 1 and discharged.min() > 1  # the limits were actually exercised


def test_battery_default_is_self_consumption():
    b = Battery(["a"], [BatteryParams(soc_init=0.5)])
    p = b.step(np.array([np.nan]), net_load=np.array([-2.0]), dt_h=1 / 60)  # 2 kW surplus
    assert p[0] == pytest.approx(2.0)
    p = b.step(np.array([np.nan]), net_load=np.array([1.5]), dt_h=1 / 60)
    assert p[0] == pytest.approx(-1.5)
    p = b.step(np.array([np.nan]), net_load=np.array([9.0]), dt_h=1 / 60)
    assert p[0] == pytest.approx(-5.0)  # power limit


# ---------------------------------------------------------------- EV
def _run_ev(p_set_fn, days=4, params=None, seed=3):
    params = params or [EVParams(), EVParams(arrival="17:00", departure="06:30", consumption_kwh_per_km=0.3, jitter_min=90),
                        EVParams(charger_kw=3.7)]
    ev = EVFleet([f"e{i}" for i in range(len(params))], params, seed)
    clk = _clock()
    m0 = clk.start_local_min
    log = []
    for k in range(days * MIN_PER_DAY):
        m = m0 + k
        home_before = ev.home.copy()
        p = ev.step(m, 1.0, p_set_fn(k, len(params)))
        log.append((m, p.copy(), ev.home.copy(), home_before, ev.remaining.copy(), ev.soc.copy()))
    return ev, log


def test_ev_default_meets_need_by_departure_and_zero_while_away():
    ev, log = _run_ev(lambda k, n: np.full(n, np.nan), days=7)
    assert np.all(ev.unmet_kwh == 0)
    departures = 0
    for (m, p, home, _, rem, soc), nxt in zip(log, log[1:]):
        assert np.all(p[~home] == 0)
        assert np.all(p <= ev.charger + 1e-12) and np.all(p >= 0)
        left = home & ~nxt[2]
        departures += left.sum()
        assert np.all(rem[left] < 1e-9)  # need met at departure
        assert np.all((soc >= 0) & (soc <= 1))
    assert departures >= 6  # plugged-in sessions only: the cars are not plugged in every day
    away = sum((~h).sum() for _, _, h, *_ in log)
    assert away > 1000  # the cars really leave


def test_ev_need_guard_overrides_a_zero_setpoint_and_setpoints_are_clipped():
    ev, log = _run_ev(lambda k, n: np.zeros(n))
    assert np.all(ev.unmet_kwh < 1e-9)  # guard charges at the last moment
    ev, log = _run_ev(lambda k, n: np.full(n, 1000.0), days=2)
    assert max(float(np.max(p - ev.charger)) for _, p, *_ in log) <= 1e-12
    assert np.all(ev.soc <= 1.0 + 1e-12)


def test_ev_sessions_are_seeded_and_plausible():
    ids = [f"c{i}" for i in range(200)]
    ev = EVFleet(ids, [EVParams()] * 200, seed=1)
    day0 = int(_clock().start_local_min // MIN_PER_DAY)
    a1, d1, n1 = ev.sessions(day0)
    a2, d2, n2 = EVFleet(ids, [EVParams()] * 200, seed=1).sessions(day0)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(n1, n2)
    arr, plugged, trip_km, wk_dep, we_dep = [], [], [], [], []
    for day in range(day0, day0 + 28):
        a, d, need = ev.sessions(day)
        used, kwh, dep, _, _ = ev.trips(day)
        plug = d > a
        assert np.all(need[~plug] == 0) and np.all(need[plug] > 0)
        assert np.all(d[plug] > a[plug] + 270)  # home overnight until the next morning
        assert np.all(a - day * MIN_PER_DAY <= 1410) and np.all(a > dep + 119)
        arr.append(a[used] - day * MIN_PER_DAY)
        plugged.append(plug.mean())
        trip_km.append(kwh / 0.18)
        (we_dep if weekday(day) >= 5 else wk_dep).append((dep - day * MIN_PER_DAY)[used])
    arr = np.concatenate(arr)
    assert 60 < arr.std() < 180  # MiD 2017: home arrivals spread over the afternoon and evening
    assert 0.25 < np.mean(plugged) < 0.75  # not plugged in every day
    assert 28 < np.mean(trip_km) < 42  # km per car and calendar day (MiD 2017 / KBA)
    assert np.mean(np.concatenate(we_dep)) > np.mean(np.concatenate(wk_dep)) + 60  # weekends leave later


def test_ev_starts_in_steady_state_and_charges_only_what_trips_used():
    """A run starting at 02:00 charges what is left of the night's sessions, not a full day's need."""
    ids = [f"c{i}" for i in range(100)]
    ev = EVFleet(ids, [EVParams()] * 100, seed=2)
    m0 = _clock("2026-03-03T02:00:00+01:00").start_local_min
    ev.step(m0, 1.0, np.full(100, np.nan))
    e_start = ev.e.copy()
    assert np.all(e_start <= ev.e_dep + 1e-9)  # nobody is above the level it leaves with
    grid = 0.0
    for k in range(1, 6 * 60):  # until 08:00: the cars plugged in at 02:00 have left or finished
        grid += ev.step(m0 + k, 1.0, np.full(100, np.nan)).sum() / 60
    need_left = np.sum(ev.e_dep - e_start) / 0.9
    assert grid == pytest.approx(need_left, rel=0.02)


def test_ev_mean_grid_energy_per_day_in_published_range():
    ids = [f"c{i}" for i in range(60)]
    ev = EVFleet(ids, [EVParams()] * 60, seed=3)
    m0 = _clock("2026-03-02T00:00:00+01:00").start_local_min
    kwh = 0.0
    for k in range(0, 28 * MIN_PER_DAY, 5):
        kwh += ev.step(m0 + k, 5.0, np.full(60, np.nan)).sum() * 5 / 60
    assert 5.0 <= kwh / 60 / 28 <= 9.0  # kWh per EV and day, German private cars
    assert np.all(ev.unmet_kwh < 1e-6)


# ---------------------------------------------------------------- heat pump
def test_cop_curve():
    assert cop(7.0) == pytest.approx(4.5, abs=0.1)
    assert cop(-10.0) < cop(0.0) < cop(7.0)
    assert cop(-10.0) > 2.0


def test_heat_pump_holds_comfort_band_over_cold_week():
    """Thermostat, always-off, always-full and random setpoints: the band holds in all cases."""
    clk = _clock("2026-01-05T00:00:00+01:00")
    w = Weather(2, utc_offset_min=clk.utc_offset_min)  # seed 2: a cold week (min ≈ -11 °C)
    prm = [HeatPumpParams(), HeatPumpParams(t_min=19, t_max=20, t_init=19.5, ua_kw_per_k=0.25, c_kwh_per_k=5)]
    modes = ["thermostat", "off", "full", "random"]
    hp = HeatPumps([f"{m}{i}" for m in modes for i in range(2)], prm * len(modes))
    g = np.random.default_rng(1)
    temps = w.temperature(clk.start_local_min + np.arange(7 * MIN_PER_DAY) + 0.5).tolist()
    energy = np.zeros(hp.n)
    for k in range(7 * MIN_PER_DAY):
        sp = np.concatenate([np.full(2, np.nan), np.zeros(2), np.full(2, 50.0), g.uniform(-2, 6, 2)])
        p = hp.step(temps[k], sp, 1 / 60)
        assert np.all((p >= 0) & (p <= hp.p_el + 1e-12))
        assert np.all(hp.t_in >= hp.t_min - 1e-6), (k, hp.t_in)
        assert np.all(hp.t_in <= hp.t_max + 1e-6), (k, hp.t_in)
        energy += p / 60
    assert min(temps) < -8
    assert np.all(energy > 100)  # it really heated
    assert energy[2] < energy[0] < energy[4]  # off ≈ band floor, full ≈ band ceiling


def test_heat_pump_setpoint_zero_lets_house_cool_to_band_edge():
    hp = HeatPumps(["a"], [HeatPumpParams(t_init=21.9)])
    for _ in range(600):
        hp.step(0.0, np.array([0.0]), 1 / 60)
    assert hp.t_in[0] == pytest.approx(20.0, abs=1e-6)


# ---------------------------------------------------------------- appliances
def _run_app(params, days, start="2026-01-05T00:00:00+01:00", requests=None, dt_min=1):
    clk = _clock(start)
    ap = Appliances(list(range(len(params))), params)
    log = []
    for k in range(0, int(days * MIN_PER_DAY), dt_min):
        m = clk.start_local_min + k
        if requests:
            for (kk, at_k), req in requests.items():
                if k == at_k:
                    ap.request[kk] = req(clk)
        log.append((m, ap.step(m, float(dt_min))))
    return ap, log


def _check_once_per_day(ap, log, params, dt_min=1):
    for k, p in enumerate(params):
        prof = np.array(p.profile_kw)
        energy_by_day = {}
        for m, pw in log:
            if pw[k] > 0:
                d = int(m // MIN_PER_DAY)
                mod = m - d * MIN_PER_DAY
                assert ap.ws[k] <= mod and mod + dt_min <= ap.we[k], (k, mod)
                energy_by_day[d] = energy_by_day.get(d, 0.0) + pw[k] * dt_min / 60
        for d, e in energy_by_day.items():
            assert e == pytest.approx(prof.sum() / 60), (k, d)
        starts = [v for (kk, d), v in ap.runs.items() if kk == k]
        assert len(starts) == len({d for (kk, d) in ap.runs if kk == k})
    return energy_by_day


def test_appliance_default_runs_once_per_day_at_window_start():
    params = [ApplianceParams(), ApplianceParams(name="dishwasher", profile_kw=[1.5] * 60, window_start="20:00",
                                                 window_end="23:59")]
    ap, log = _run_app(params, 5)
    _check_once_per_day(ap, log, params)
    days = {d for (_, d) in ap.runs}
    assert len(days) == 5 and len(ap.runs) == 10
    for (k, d), m in ap.runs.items():
        assert m - d * MIN_PER_DAY == ap.ws[k]


def test_appliance_app_start_inside_window_is_applied_else_default():
    params = [ApplianceParams(), ApplianceParams()]

    def at(day, hhmm):
        h, mm = map(int, hhmm.split(":"))
        return lambda clk: clk.start_local_min + day * MIN_PER_DAY + h * 60 + mm

    reqs = {
        (0, 0): at(0, "13:00"),   # valid → day 0 at 13:00
        (1, 0): at(0, "17:00"),   # cycle of 90 min would end after 18:00 → default
        (0, 1500): at(1, "16:30"),  # latest possible start (ends exactly 18:00) on day 1
        (1, 1500): at(1, "08:00"),  # before the window → default
    }
    ap, log = _run_app(params, 3, requests=reqs)
    _check_once_per_day(ap, log, params)
    d0 = int(_clock().start_local_min // MIN_PER_DAY)
    rel = {(k, d - d0): m - d * MIN_PER_DAY for (k, d), m in ap.runs.items()}
    assert rel[(0, 0)] == 13 * 60
    assert rel[(1, 0)] == 9 * 60
    assert rel[(0, 1)] == 16 * 60 + 30
    assert rel[(1, 1)] == 9 * 60
    assert rel[(0, 2)] == 9 * 60  # an old request does not carry over to other days


def test_appliance_with_coarse_steps_and_midwindow_start():
    params = [ApplianceParams()]
    ap, log = _run_app(params, 3, start="2026-01-05T12:00:00+01:00", dt_min=15)
    e = sum(p[0] * 15 / 60 for _, p in log)
    assert e == pytest.approx(4 * sum(params[0].profile_kw) / 60)  # 12:00 day 0 .. 12:00 day 3: 4 windows
    _check_once_per_day(ap, log, params, dt_min=15)
    ap, log = _run_app(params, 0.25, start="2026-01-05T17:00:00+01:00")
    assert len(ap.runs) == 0  # latest start 16:30 had passed: day skipped


# ---------------------------------------------------------------- PV and weather
def test_pv_zero_at_night_and_plausible_noon_and_annual_yield():
    clk = _clock("2026-01-01T00:00:00+01:00")
    w = Weather(5, utc_offset_min=clk.utc_offset_min)
    pv = PVArray(["a", "b", "c"], [PVParams(), PVParams(azimuth=90), PVParams(tilt=0, kwp=10)], 5)
    m = clk.start_local_min + np.arange(0, 365 * MIN_PER_DAY, 15.0)
    p = pv.power(m, w)
    hour = (m % MIN_PER_DAY) / 60
    assert np.all(p >= 0) and np.all(p <= pv.kwp)
    assert np.all(p[(hour < 3.5) | (hour >= 22.5)] == 0)
    yield_kwh_per_kwp = p.sum(axis=0) * 0.25 / pv.kwp
    assert np.all((yield_kwh_per_kwp > 750) & (yield_kwh_per_kwp < 1350)), yield_kwh_per_kwp
    assert yield_kwh_per_kwp[0] > yield_kwh_per_kwp[1]  # south beats east
    # June clear-ish noon: the best noon of June reaches 65-100 % of kWp for the south array
    june = (m >= clk.start_local_min + 151 * MIN_PER_DAY) & (m < clk.start_local_min + 181 * MIN_PER_DAY)
    noon = june & (np.abs(hour - 13.25) < 0.3)
    assert 0.65 < p[noon, 0].max() / pv.kwp[0] <= 1.0
    # the daily maximum falls near solar noon (≈ 12:15 CET at 11.6° E)
    day = p[: 96 * 200].reshape(200, 96, 3)[:, :, 0]
    peak_hour = np.argmax(day.mean(axis=0)) / 4
    assert 11 <= peak_hour <= 13.5


def test_weather_temperature_is_seasonal():
    clk = _clock("2026-01-01T00:00:00+01:00")
    w = Weather(1, utc_offset_min=clk.utc_offset_min)
    m = clk.start_local_min + np.arange(0, 365 * MIN_PER_DAY, 60.0)
    t = w.temperature(m)
    assert t[: 24 * 31].mean() < 4 < 15 < t[24 * 181 : 24 * 212].mean()
    assert -25 < t.min() and t.max() < 40
    k = w.clearness(m)
    assert 0.03 <= k.min() and k.max() <= 1.0 and 0.45 < k.mean() < 0.75


# ---------------------------------------------------------------- base load
def test_base_load_annual_energy_matches_annual_kwh():
    prm = [BaseLoadParams(annual_kwh=a) for a in (1500, 3500, 6000)]
    bl = BaseLoad(["x", "y", "z"], prm, seed=11)
    d0 = int(_clock("2026-01-01T00:00:00+01:00").start_local_min // MIN_PER_DAY)
    e = sum(bl.day(d).sum(axis=0) for d in range(d0, d0 + 365)) / 60
    np.testing.assert_allclose(e, [1500, 3500, 6000], rtol=0.04)
    q = bl.q(np.array([1.0, 1.0, 1.0]))
    assert q[0] == pytest.approx(np.tan(np.arccos(0.95)))


def test_base_load_shape_daily_weekly_seasonal_and_variety():
    bl = BaseLoad([f"h{i}" for i in range(50)], [BaseLoadParams()] * 50, seed=2)
    d0 = int(_clock("2026-01-05T00:00:00+01:00").start_local_min // MIN_PER_DAY)  # a Monday
    week = np.stack([bl.day(d0 + i) for i in range(7)])  # (7, 1440, 50)
    mean_profile = week.mean(axis=(0, 2))
    night, evening = mean_profile[2 * 60 : 5 * 60].mean(), mean_profile[18 * 60 : 21 * 60].mean()
    assert evening > 2 * night
    assert week.min() > 0
    assert week.max() > 1.5  # appliance spikes
    corr = np.corrcoef(week[0].T)
    assert corr[np.triu_indices(50, 1)].mean() < 0.6  # households are not copies of each other
    winter = np.mean([bl.day(d0 + i).mean() for i in range(7)])
    summer = np.mean([bl.day(d0 + 182 + i).mean() for i in range(7)])
    assert winter > 1.15 * summer


def test_appliance_sub_minute_steps_keep_energy():
    params = [ApplianceParams(profile_kw=[1.0, 3.0, 2.0], window_start="10:00", window_end="10:30")]
    ap, log = _run_app(params, 0.5, start="2026-01-05T09:59:00+01:00", dt_min=1)
    assert sum(p[0] for _, p in log) / 60 == pytest.approx(6 / 60)
    clk = _clock("2026-01-05T09:59:00+01:00")
    ap = Appliances([0], params)
    e = 0.0
    for k in range(200):
        e += ap.step(clk.start_local_min + k * 0.25, 0.25)[0] * 0.25 / 60
    assert e == pytest.approx(6 / 60)


def test_hot_water_is_seeded_balances_energy_and_is_larger_in_winter():
    from simulators.devices.heatpump import DHW_LOSS_KW, T_FLOW_DHW, HotWater

    prm = [HeatPumpParams()] * 6
    w = Weather(3, utc_offset_min=60.0)
    hw = HotWater([f"h{i}" for i in range(6)], prm, seed=3)
    day_w = int(_clock("2026-02-10T00:00:00+01:00").start_local_min // MIN_PER_DAY)
    day_s = day_w + 160  # mid-July
    np.testing.assert_array_equal(hw.draws(day_w), HotWater([f"h{i}" for i in range(6)], prm, seed=3).draws(day_w))
    for day in (day_w, day_s):
        p = hw.day(day, w)
        t = w.temperature(day * MIN_PER_DAY + 0.5 + np.arange(MIN_PER_DAY))
        heat = (p * cop(t, T_FLOW_DHW)[:, None]).sum(axis=0) / 60
        drawn = hw.draws(day).sum(axis=0) + DHW_LOSS_KW * 24
        # heat delivered = drawn + losses, up to the tank's refill state at midnight (< 60 % of a tank)
        assert np.all(np.abs(heat - drawn) <= 0.4 * hw.cap + 1e-9)
        assert np.all(p.max(axis=0) <= hw.p_el + 1e-12) and np.all(p.sum(axis=0) > 0)
    winter = np.mean([hw.draws(day_w + k).sum() for k in range(14)])
    summer = np.mean([hw.draws(day_s + k).sum() for k in range(14)])
    assert winter > summer  # colder mains water


@pytest.mark.parametrize("year", [2024, 2026])
def test_base_load_shape_is_demandlibs_dynamised_h0(year):
    from demandlib import bdew

    from simulators.devices.baseload import _h0_year

    with warnings.catch_warnings():  # ElecSlp sets simplefilter("error") process-wide (demandlib 0.2.2)
        ref = bdew.ElecSlp(year).get_profiles("h0_dyn")["h0_dyn"].to_numpy()
    np.testing.assert_allclose(_h0_year(year), np.repeat(ref / ref.mean(), 15).reshape(-1, MIN_PER_DAY), rtol=1e-12)


def test_base_load_noise_filter_is_scipys_lfilter_bit_for_bit():
    from scipy.signal import lfilter

    from simulators.devices.baseload import ar1

    g = np.random.default_rng(7)
    for n, m, phi in ((1, 5, 0.9), (7, 1440, 0.9), (3, 200, -0.35)):
        x = g.standard_normal((n, m)) * 10.0 ** g.integers(-3, 4, (n, 1))
        c = math.sqrt(1 - phi**2)
        z0 = (1 - c) * x[:, 0]
        ref = lfilter([c], [1.0, -phi], x, axis=1, zi=z0[:, None])[0]
        assert np.array_equal(ar1(x, c, phi, z0), ref)


def test_instant_water_heater_adds_to_the_annual_kwh():
    """A home's water heater (showers, taps; by household size) comes on top of its annual kWh: the rest of its use is
    the same with and without one (it was taken out of the annual kWh: 2,708 -> 1,520 kWh/a of other use)."""
    from simulators.devices.baseload import BaseLoad, day_shape, water_heater_kwh

    ids = [f"h{i}" for i in range(40)]
    days = range(20454, 20454 + 56)

    def kwh_per_day(wh):
        bl = BaseLoad(ids, [BaseLoadParams(annual_kwh=2000.0, persons=2, instant_water_heater=wh)] * 40, seed=3)
        return np.mean([bl.day(d).sum(axis=0).mean() / 60 for d in days])

    shape = np.mean([day_shape(d).mean() for d in days])
    without, with_wh = kwh_per_day(False), kwh_per_day(True)
    assert abs(without / (2000.0 / 365 * shape) - 1) < 0.03
    assert water_heater_kwh(2) == 900.0  # Stromspiegel 2021/22, flats of 2 persons
    assert abs((with_wh - without) / (water_heater_kwh(2) / 365 * shape) - 1) < 0.1
