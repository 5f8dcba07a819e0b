"""Slot forecasts and the flexibility envelope of a household population.

``slot_forecast`` evaluates the uncontrollable models (base load, PV, outdoor temperature) on a slot
grid; it is deterministic (perfect forecast) because every model is a function of (seed, id, time).
``envelope`` turns the population's current state plus that forecast into one JSON-safe dict per
household (format documented in ``simulators.household``).
"""

from __future__ import annotations

import math

import numpy as np

from .appliance import DONE, PENDING, RUNNING
from .common import wall_day
from .heatpump import cop

_STATE = {PENDING: "pending", RUNNING: "running", DONE: "done"}


def slot_grid(m0: float, horizon_s: float, slot_s: float) -> tuple[int, int]:
    """(number of slots, slot length in minutes); slot_s must be a whole number of minutes."""
    slot_min = slot_s / 60.0
    if slot_min < 1 or abs(slot_min - round(slot_min)) > 1e-9:
        raise ValueError(f"flex/forecast slot must be a whole number of minutes, got {slot_s} s")
    n = int(math.ceil(horizon_s / slot_s - 1e-9))
    if n < 1:
        raise ValueError(f"flex/forecast horizon ({horizon_s} s) must be at least one slot ({slot_s} s)")
    return n, int(round(slot_min))


def slot_forecast(base, pv, weather, m0: float, n: int, slot_min: int):
    """Slot means: base load (n, N) kW, PV generation (n, n_pv) kW ≥ 0, outdoor temperature (n,) °C.

    The slot grid starts at local minute m0; the base load is taken at minute resolution from
    floor(m0), and so is PV (the minute values the simulation steps through).
    """
    mi = int(math.floor(m0 + 1e-9))
    # reduce along a contiguous per-household axis: bit-identical whatever the population size
    block = np.ascontiguousarray(base.minutes(mi, n * slot_min).T).reshape(base.n, n, slot_min)
    p_base = block.mean(axis=2).T
    starts = m0 + slot_min * np.arange(n)
    t_out = weather.temperature(starts + 0.5 * slot_min)
    if pv.n:
        gen = pv.minutes(mi, n * slot_min, weather).reshape(n, slot_min, pv.n).mean(axis=1)
    else:
        gen = np.zeros((n, 0))
    return p_base, gen, t_out


def hp_forecast(hp, dhw, weather, m0: float, n: int, slot_min: int):
    """Slot means for the heat-pump houses: gains (n, n_hp) kW and hot-water power (n, n_hp) kW."""
    mi = int(math.floor(m0 + 1e-9))
    ghi = weather.ghi_minutes(mi, n * slot_min).reshape(n, slot_min).mean(axis=1)
    p_dhw = dhw.minutes(mi, n * slot_min, weather).reshape(n, slot_min, dhw.n).mean(axis=1)
    return hp.gains(ghi), p_dhw


def _overlap(a0, a1, b0, b1):
    """Overlap length of intervals [a0, a1) (arrays, broadcast) and [b0, b1)."""
    return np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0, None)


def envelope(pop, m0: float, horizon_s: float, slot_s: float) -> dict[str, dict]:
    """Flexibility envelope of every household of ``pop`` (a household.Population) from local minute m0."""
    clock = pop.clock
    n, slot_min = slot_grid(m0, horizon_s, slot_s)
    slot_h = slot_min / 60.0
    s0 = m0 + slot_min * np.arange(n)
    s1 = s0 + slot_min
    c0, cf = clock.start_local_min, 60.0 / clock.time_resolution

    def tick(m):
        return int(round((m - c0) * cf))

    p_base, gen, t_out = slot_forecast(pop.base, pop.pv, pop.weather, m0, n, slot_min)
    p_min = p_base.copy()
    p_max = p_base.copy()
    p_min[:, pop.pv_idx] -= gen
    t0 = tick(m0)
    per: list[dict] = [{"t0": t0, "slot_s": float(slot_s), "n": n} for _ in range(pop.n)]
    for d, row in zip(per, p_base.T.tolist()):
        d["p_base"] = row
    for i, row, kwp in zip(pop.pv_idx.tolist(), (-gen).T.tolist(), pop.pv.kwp.tolist()):
        per[i]["p_pv"] = row
        per[i]["pv"] = {"kwp": kwp, "curtailable": True}

    b = pop.bat
    if b.n:
        p_min[:, pop.bat_idx] -= b.p_max
        p_max[:, pop.bat_idx] += b.p_max
        cols = zip(pop.bat_idx.tolist(), b.e.tolist(), b.e_min.tolist(), b.e_max.tolist(), b.capacity.tolist(),
                   b.p_max.tolist(), b.eff.tolist())
        for i, e, lo, hi, cap, pm, eff in cols:
            per[i]["battery"] = {"e_kwh": e, "e_min_kwh": lo, "e_max_kwh": hi, "capacity_kwh": cap,
                                 "p_max_kw": pm, "efficiency": eff}

    ev = pop.ev
    if ev.n:
        _ev_envelope(ev, pop.ev_idx, per, p_max, m0, s0, s1, n, slot_min, tick)

    hp = pop.hp
    if hp.n:
        gain, p_dhw = hp_forecast(hp, pop.dhw, pop.weather, m0, n, slot_min)
        p_min[:, pop.hp_idx] += p_dhw
        p_max[:, pop.hp_idx] += hp.p_el + p_dhw
        t_out_l, cop_l = t_out.tolist(), cop(t_out).tolist()
        a = np.exp(-hp.ua * slot_h / hp.c)
        cols = zip(pop.hp_idx.tolist(), hp.t_in.tolist(), hp.t_min.tolist(), hp.t_max.tolist(), hp.p_el.tolist(),
                   hp.ua.tolist(), hp.c.tolist(), a.tolist(), gain.T.tolist(), p_dhw.T.tolist())
        for i, tin, tmin, tmax, pel, ua, c, aa, g, dh in cols:
            per[i]["hp"] = {"t_in": tin, "t_min": tmin, "t_max": tmax, "p_el_kw": pel, "ua_kw_per_k": ua,
                            "c_kwh_per_k": c, "a": aa, "t_out": t_out_l, "cop": cop_l, "gain_kw": g, "p_dhw": dh}

    if pop.app.n:
        _app_envelope(pop.app, per, p_min, p_max, m0, s0, s1, n, slot_min, tick)

    for d, lo, hi in zip(per, p_min.T.tolist(), p_max.T.tolist()):
        d["p_min"] = lo
        d["p_max"] = hi
    return dict(zip(pop.ids, per))


def _ev_envelope(ev, ev_idx, per, p_max, m0, s0, s1, n, slot_min, tick):
    if not ev._started:
        ev._start(m0)
    m_end = m0 + n * slot_min
    sess: list[list] = [[] for _ in range(ev.n)]
    # current session (if home) with its remaining need
    avail = np.where(ev.home[None, :], _overlap(s0[:, None], s1[:, None], m0, ev.dep[None, :]), 0.0)
    for j in np.flatnonzero(ev.home).tolist():
        sess[j].append({"arrive": tick(m0), "depart": tick(float(ev.dep[j])),
                        "e_need_kwh": float(ev.remaining[j]), "home": True})
    # future sessions inside the horizon (seeded, hence known in advance)
    for day in range(wall_day(ev.clock, m0) - 1, wall_day(ev.clock, m_end) + 1):
        arr, dep, need = ev.sessions(day)
        pending = ~ev.home & (day == ev.sess_day)  # next arrival, even if due at m0 exactly
        fut = ((arr >= m0) | pending) & (arr < m_end) & np.where(ev.home, day > ev.sess_day, day >= ev.sess_day)
        fut &= dep > arr  # a zero-length session: the car is not plugged in that day
        if not fut.any():
            continue
        avail += np.where(fut[None, :], _overlap(s0[:, None], s1[:, None], arr[None, :], dep[None, :]), 0.0)
        for j in np.flatnonzero(fut).tolist():
            sess[j].append({"arrive": tick(float(arr[j])), "depart": tick(float(dep[j])),
                            "e_need_kwh": float(need[j]), "home": False})
    avail = np.clip(avail / slot_min, 0.0, 1.0)
    p_max[:, ev_idx] += ev.charger * avail
    cols = zip(ev_idx.tolist(), ev.e.tolist(), ev.capacity.tolist(), ev.charger.tolist(), ev.eff.tolist(),
               avail.T.tolist(), sess)
    for i, e, cap, ch, eff, av, ss in cols:
        per[i]["ev"] = {"e_kwh": e, "capacity_kwh": cap, "charger_kw": ch, "efficiency": eff,
                        "avail": av, "sessions": ss}


def _app_envelope(ap, per, p_min, p_max, m0, s0, s1, n, slot_min, tick):
    m_end = m0 + n * slot_min
    if not hasattr(ap, "_profile_lists"):
        ap._profile_lists = [ap.profile[k, : int(ap.length[k])].tolist() for k in range(ap.n)]
    entries = [{"name": ap.names[k], "profile_kw": ap._profile_lists[k], "cycles": []} for k in range(ap.n)]
    for day in range(wall_day(ap.clock, m0), wall_day(ap.clock, m_end) + 1):
        w0, w1, latest = ap.window(day)
        today = ap.day == day
        state = np.where(today, ap.state, PENDING)
        show = (w1 > m0) & (w0 < m_end) & ~((state == PENDING) & (m0 > latest + 1e-9)) & ap.has_cycle(day)
        if not show.any():
            continue
        pend = show & (state == PENDING)
        if pend.any():
            win = _overlap(s0[:, None], s1[:, None], np.maximum(w0, m0)[None, :], w1[None, :]) > 0
            add = np.where(win & pend[None, :], ap.peak[None, :], 0.0)
            np.add.at(p_max.T, ap.owner, add.T)
        planned = ap.planned(day)
        for k in np.flatnonzero(show).tolist():
            st = int(state[k])
            c = {"earliest": tick(max(float(w0[k]), m0)), "latest_start": tick(float(latest[k])),
                 "default_start": tick(float(planned[k])), "state": _STATE[st], "start": None}
            if st != PENDING:
                start = float(ap.start_min[k])
                c["start"] = tick(start)
                if st == RUNNING:  # committed remainder of the running cycle, per slot
                    L = int(ap.length[k])
                    e = np.zeros(n)
                    for mm, pk in zip((start + np.arange(L)).tolist(), ap._profile_lists[k]):
                        if mm + 1 > m0 and pk:
                            e += _overlap(s0, s1, mm, mm + 1.0) * pk
                    i = int(ap.owner[k])
                    p_min[:, i] += e / slot_min
                    p_max[:, i] += e / slot_min
            entries[k]["cycles"].append(c)
    for k, e in enumerate(entries):
        per[int(ap.owner[k])].setdefault("appliances", []).append(e)
