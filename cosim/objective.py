"""The cost the controllers minimise, realised on the evaluated window, and the stored energy at its ends.

One formula for every control mode (none, mas, central), so runs of the same scenario compare on the
objective the optimisers actually minimise (simulators/mas/home_lp.py, simulators/mas/central.py):

* **energy** (€): with ``control.lfa.objective.community: true`` the district's net exchange at the
  transformer D = Σ_h P_h is priced once per netting interval: Σ_k dt·(π_imp,k·max(D_k, 0) −
  π_exp,k·max(−D_k, 0)); otherwise every household's own net power is priced the same way (the sum
  of the bills). The netting interval is the control slot (default 15 min, the planning slot and the
  metering interval of German balancing settlement), prices at the interval's start as in the LPs.
* **household terms**, the same in both cases: B5 weight × (import + export) kWh per household,
  battery wear/2 × Σ|P_bat|·dt, comfort penalty × K·h outside the heat-pump band, B6 peak price ×
  the household's largest slot-mean import in the window (the LP's peak over its horizon).
* **district terms**: overload penalty × kWh above ``trafo_limit_kw`` / ``export_limit_kw`` and the
  district peak price × its largest slot-mean import.

``terminal_adjustment_eur`` = price × (stored energy at the window's start − at its end): energy a
run draws from storage inside the window (batteries, EVs, building heat above the comfort minimum)
is charged, energy it leaves there is credited. Stored energy is counted in the grid kWh that restore
it: battery (soc − soc_min)·capacity/η and EV soc·capacity/η (grid energy to charge it to that level;
before 2026-12-05 the battery was counted ·η, what it delivers, which under-counted a battery's draw
by η² = 0.90 against its cost of restoring), building heat C·(T_in − t_min)/COP(7 °C) (EN 14511
rating point A7). The price is ``evaluation.terminal_price``, by default the tariff's lowest import
price of the day (:func:`cosim.economics.price_table_per_minute`): the cost of
restoring the energy (or of buying what was left) in the cheapest band the controllers reach within
their day-long horizon, which is where they buy stored energy (before 2026-12-05 the time-weighted mean
was used: it overstated the credit of energy bought at night in a night window and the charge of an EV
left emptier, by the 0.09 €/kWh between the mean and the night price). ``terminal_price_range`` and
``cost_eur_range`` give the prices and the cost with the lowest and with the highest import price of
the day (in that order), the sensitivity to that choice; ``cost_eur`` = objective + terminal
adjustment: the number to compare between runs.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cosim.economics import price_table_per_minute, prices_at
from cosim.population import district_of
from cosim.results import Results, finite
from simulators.devices.params import HeatPumpParams

COP_RATING_T_OUT = 7.0  # °C, EN 14511 rating point A7/W35 for the nominal COP


def objective_id(scn) -> str | None:
    """A short digest of everything ``cost_eur`` is valued with: the economics (tariff, prices), the
    controllers' objective weights, the netting slot and the terminal price. Runs compare fairly only
    when it is the same (cosim compare, cosim value)."""
    if scn is None:
        return None
    ctl = scn.control
    basis = {"economics": scn.economics.model_dump(mode="json"),
             "objective": ctl.lfa.objective.model_dump(mode="json") if ctl is not None else None,
             "slot_ms": int(ctl.slot) if ctl is not None else None,
             "terminal_price": scn.evaluation.terminal_price}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:12]


def netting_ms(res) -> int:
    scn = res.scenario
    return int(scn.control.slot) if scn is not None and scn.control is not None else 900_000


def _slot_index(res) -> tuple[np.ndarray, np.ndarray]:
    """Per row the index of its netting interval (aligned to local clock time) and the intervals' start ms."""
    slot = netting_ms(res)
    start = res.start
    off = ((start.hour * 60 + start.minute) * 60 + start.second) * 1000 if start is not None else 0
    q = (res.t_ms + off) // slot
    uq, inv = np.unique(q, return_inverse=True)
    return inv, uq * slot - off


def _slot_means(res, P: np.ndarray, inv: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot-mean power (n, N) and slot length in hours (n,)."""
    w = res.dt_h
    num = np.zeros((n,) + P.shape[1:])
    np.add.at(num, inv, P * w[:, None])
    dt = np.zeros(n)
    np.add.at(dt, inv, w)
    return num / np.where(dt > 0, dt, np.nan)[:, None], dt


def objective_kpis(res, en, comfort: np.ndarray, district_of) -> dict[str, dict]:
    """{"total": {...}, "<district>": {...}} with ``objective_eur`` and its parts."""
    from simulators.mas.tariff import DistrictObjective

    scn = res.scenario
    tariff = res.economics().tariff
    obj = scn.control.lfa.objective if scn is not None and scn.control is not None else None
    community = bool(obj.community) if obj is not None else False
    obj = obj or DistrictObjective(community=False)
    if res.T == 0:
        return {}
    inv, slot_t = _slot_index(res)
    n = len(slot_t)
    pm, dt = _slot_means(res, en.P, inv, n)
    pm, dt = finite(pm), finite(dt)
    pi_i, pi_e = prices_at(tariff, res.local_minutes(slot_t))
    imp, exp = np.maximum(pm, 0), np.maximum(-pm, 0)
    own_energy = ((pi_i * dt)[:, None] * imp - (pi_e * dt)[:, None] * exp).sum(axis=0)
    b5 = tariff.self_consumption * ((imp + exp) * dt[:, None]).sum(axis=0)
    peak = tariff.peak_price * imp.max(axis=0)
    wear = np.zeros(len(en.ids))
    pb = res.series("households", "P_bat")
    if pb is not None:
        wear = 0.5 * tariff.battery_wear * np.nansum(np.abs(pb.aligned(en.ids)) * res.dt_h[:, None], axis=0)
    comfort_eur = tariff.comfort_penalty * np.nan_to_num(comfort, nan=0.0)
    household_terms = b5 + peak + wear + comfort_eur

    def group(cols: np.ndarray) -> dict:
        D = pm[:, cols].sum(axis=1)
        Dp, Dm = np.maximum(D, 0), np.maximum(-D, 0)
        energy = float(((pi_i * Dp - pi_e * Dm) * dt).sum()) if community else float(own_energy[cols].sum())
        over = 0.0
        if obj.trafo_limit_kw is not None:
            over += float((np.maximum(Dp - obj.trafo_limit_kw, 0) * dt).sum())
        if obj.export_limit_kw is not None:
            over += float((np.maximum(Dm - obj.export_limit_kw, 0) * dt).sum())
        district = obj.overload_penalty * over + obj.peak_price * (float(Dp.max()) if len(Dp) else 0.0)
        hh = float(household_terms[cols].sum())
        return {"objective_eur": energy + hh + district, "objective_energy_eur": energy,
                "objective_household_terms_eur": hh, "objective_district_terms_eur": district,
                "objective_comfort_eur": float(comfort_eur[cols].sum()),  # of the household terms
                "objective_community": community, "objective_netting_min": netting_ms(res) / 60_000}

    out = {"total": group(np.arange(len(en.ids)))}
    for name in sorted({district_of(h) for h in en.ids}):
        out[name] = group(np.array([j for j, h in enumerate(en.ids) if district_of(h) == name], dtype=int))
    return out


def terminal_price_range(res) -> tuple[float, float]:
    """The lowest and the highest import price of the tariff's day (€/kWh)."""
    imp = price_table_per_minute(res.economics().tariff)[0]
    return float(imp.min()), float(imp.max())


def terminal_price(res) -> float:
    """``evaluation.terminal_price``, else the day's lowest import price (module docstring)."""
    scn = res.scenario
    if scn is not None and scn.evaluation.terminal_price is not None:
        return float(scn.evaluation.terminal_price)
    return terminal_price_range(res)[0]


def _state_rows(res, pop: str, attr: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(value at the window's start, at its end) per id: the last finite end-of-step value before each."""
    s = res.full_series(pop, attr)
    if s is None:
        return None
    X = s.aligned(ids)
    i0, i1 = res.rows.start, res.rows.stop

    def last_before(i: int) -> np.ndarray:
        out = np.full(len(ids), np.nan)
        if i <= 0:
            return out
        block = X[:i]
        good = np.isfinite(block)
        idx = np.where(good.any(axis=0), i - 1 - np.argmax(good[::-1], axis=0), -1)
        for j, r in enumerate(idx):
            if r >= 0:
                out[j] = block[r, j]
        return out

    return last_before(i0), last_before(i1)


def stored_energy(res, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Grid-equivalent stored kWh per household at the window's start and end (see module docstring).

    Without a row before the window (no warm-up) the start state is the device's initial state."""
    from simulators.devices.heatpump import cop

    specs = res.household_specs()
    start, end = np.zeros(len(ids)), np.zeros(len(ids))
    cop7 = float(cop(COP_RATING_T_OUT))
    for attr in ("soc", "soc_ev", "T_in"):
        got = _state_rows(res, "households", attr, ids)
        if got is None:
            continue
        a, b = got
        for j, hid in enumerate(ids):
            spec = specs.get(hid)
            dev = spec.devices if spec is not None else None
            if attr == "soc" and dev is not None and dev.battery is not None:
                bat = dev.battery
                conv = lambda x, bat=bat: (x - bat.soc_min) * bat.capacity_kwh / bat.efficiency  # noqa: E731
                init = bat.soc_init
            elif attr == "soc_ev" and dev is not None and dev.ev is not None:
                ev = dev.ev
                conv = lambda x, ev=ev: x * ev.capacity_kwh / ev.efficiency  # noqa: E731
                init = ev.soc_init
            elif attr == "T_in" and dev is not None and dev.heat_pump is not None:
                hp = heat_pump_params(res, specs, hid)
                conv = lambda x, hp=hp: hp.c_kwh_per_k * (x - hp.t_min) / cop7  # noqa: E731
                init = hp.t_init
            else:
                continue
            x0 = a[j] if np.isfinite(a[j]) else (init if res.rows.start == 0 else np.nan)
            x1 = b[j] if np.isfinite(b[j]) else x0
            if np.isfinite(x0) and np.isfinite(x1):
                start[j] += conv(x0)
                end[j] += conv(x1)
    return start, end


def terminal_kpis(res, ids: list[str], district_of) -> dict[str, dict]:
    """{"total"|district: {stored_start_kwh, stored_end_kwh, terminal_adjustment_eur, terminal_price}}."""
    if res.T == 0:
        return {}
    s0, s1 = stored_energy(res, ids)
    price, (lo, hi) = terminal_price(res), terminal_price_range(res)
    lo, hi = min(lo, price), max(hi, price)  # a price set outside the day's range widens it

    def group(cols) -> dict:
        a, b = float(s0[cols].sum()), float(s1[cols].sum())
        return {"stored_start_kwh": a, "stored_end_kwh": b, "terminal_adjustment_eur": price * (a - b),
                "terminal_price_eur_per_kwh": price, "terminal_price_range": [lo, hi],
                "terminal_adjustment_range_eur": [lo * (a - b), hi * (a - b)]}

    out = {"total": group(np.arange(len(ids)))}
    for name in sorted({district_of(h) for h in ids}):
        out[name] = group(np.array([j for j, h in enumerate(ids) if district_of(h) == name], dtype=int))
    return out


def heat_pump_params(res: Results, specs: dict, hid: str):
    """The heat-pump parameters of a household: its spec, else its district's defaults, else the defaults."""
    spec = specs.get(hid)
    hp = spec.devices.heat_pump if spec and spec.devices.heat_pump else None
    if hp is None and res.scenario is not None:
        d = next((x for x in res.scenario.districts if x.name == district_of(hid)), None)
        hp = d.devices.heat_pump if d else None
    return hp or HeatPumpParams()
