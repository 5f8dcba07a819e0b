"""Household population simulator (mosaik-api-v3, time-based).

One entity per ``create()`` call carries a whole population of households; every attribute is a
mapping ``household id -> value`` (plain floats). Inside, the device models in
``simulators.devices`` compute with numpy over the population; all randomness is seeded by
(seed, household id, day), so a run is reproducible and a forecast reproduces the simulation.

Model ``Households(households=[HouseholdSpec.model_dump(), ...])``.
init params: ``time_resolution`` (s per tick, normally 0.001), ``start`` (ISO-8601 with timezone, optionally
an IANA zone in brackets, RFC 9557: ``2026-10-25T00:00:00+02:00[Europe/Berlin]``, see ``devices.common.Clock``),
``step_size`` (ticks), ``seed`` (int), ``latitude``/``longitude`` (default 48.1/11.6),
``flex_horizon_s`` (default 86400) and ``flex_slot_s`` (default 900) of the ``flex`` output.

Outputs (kW / kvar, load convention: consumption positive, PV negative, battery charging positive).
Every step covers [t, t + step_size); powers are that interval's (mean) power, states (``soc``,
``soc_ev``, ``T_in``) are the values at its end, t + step_size.
  ``P``, ``Q``      net household (all households); Q = base load only, from its power factor
  ``P_base``        base load (all households)
  ``P_pv``          PV (≤ 0)                       households with PV
  ``P_bat``, ``soc``  battery power, state of charge (0..1)   households with a battery
  ``P_ev``, ``soc_ev``  EV charging power, EV state of charge  households with an EV
  ``P_hp``, ``T_in``  heat-pump electrical power (space heating + hot water), indoor °C   heat-pump households
  ``P_app``         sum of the shiftable appliances          households with appliances
  ``P_a``, ``P_b``, ``P_c``, ``Q_a``, ``Q_b``, ``Q_c``  per phase (households with a ``phase``):
                    the single-phase part on L1/L2/L3 = ``phase``, three-phase devices
                    (``simulators.phases.three_phase_devices``: heat pumps, PV/EV/battery above
                    4.6 kVA) split equally; the phases add up to ``P`` and ``Q``
  ``flex``          flexibility envelope (below), computed only when requested (not in META
                    "outputs", the list of per-step recordable floats)
  the input attributes, when requested, give the active setpoints ({hid: value}; app_start
  {hid: {appliance name: tick}}); households on their default rule are absent
Inputs (setpoints persist until changed; None or NaN = back to the default rule; all sources merged):
  ``P_bat_set`` kW (+ charge)  clipped to power and SoC limits; default self-consumption
  ``P_ev_set``  kW ≥ 0         clipped to [0, charger_kw] and capacity; 0 while away; default full
                               power until the need is met; need guard forces full power when needed
  ``P_hp_set``  kW el          space heating, clipped to [0, p_el_kw]; comfort guard keeps T_in in
                               [t_min, t_max]; hot water (P_hp - space heating) is not controlled
  ``pv_limit``  kW             cap on PV generation (curtailment); default no cap
  ``app_start`` tick (ms since sim start) of the planned start of that day's appliance cycle;
                a number applies to all the household's appliances, a dict {name: tick} per appliance

Flexibility envelope ``flex`` {hid: dict} for the horizon starting at the end of the current step
(``t0`` tick), ``n`` slots of ``slot_s`` seconds. Lists have one value per slot (slot means, kW):
  ``t0``, ``slot_s``, ``n``
  ``p_base``   forecast base load (uncontrollable)
  ``p_pv``     forecast PV (≤ 0, before curtailment; PV households only); ``pv``: {kwp, curtailable}
  ``p_min``, ``p_max``  net household power reachable per slot, each slot on its own (battery at
               ± p_max, EV at 0 / charger × availability, HP at 0 / p_el, PV fully on / curtailed to 0,
               pending appliance windows at 0 / peak, running cycles committed)
  ``battery``  {e_kwh, e_min_kwh, e_max_kwh, capacity_kwh, p_max_kw, efficiency}:
               e' = e + (η·p⁺ - p⁻/η)·slot_h, e_min ≤ e' ≤ e_max
  ``ev``       {e_kwh, capacity_kwh, charger_kw, efficiency, avail [0..1 per slot],
               sessions: [{arrive, depart (ticks), e_need_kwh, home}]}: per session
               Σ p_k·η·slot_h over its slots ≥ e_need_kwh, 0 ≤ p_k ≤ charger_kw·avail_k; on a future
               arrival the battery energy drops by that session's need (the trip's consumption)
  ``hp``       {t_in, t_min, t_max, p_el_kw, ua_kw_per_k, c_kwh_per_k, a, t_out, cop, gain_kw, p_dhw
               [each per slot]}: T_{k+1} = a·T_k + (1 - a)·(t_out_k + (cop_k·p_k + gain_k)/ua),
               t_min ≤ T ≤ t_max (p = space heating); p_dhw (hot water, committed) is in p_min/p_max
  ``appliances`` [{name, profile_kw (per minute), cycles: [{earliest, latest_start, default_start,
               state ("pending"|"running"|"done"), start}]}]: run the profile once per pending cycle,
               starting in [earliest, latest_start] (ticks)

Forecasts for agents: ``forecast(households, t0, start=..., seed=...)`` (or a ``Forecaster``) gives
the base load, PV and outdoor temperature per slot from the same seeded models: with the simulator's
seed, start and location it is a perfect forecast (any subset of the households gives the same
values: models are keyed by household id, not position); ``noise`` > 0 adds a seeded forecast error.
``Forecaster(...).agent`` has the ``forecast(household_id, t0_tick, K, slot_s)`` signature the MAS
home agents take.
"""

from __future__ import annotations

import math

import mosaik_api_v3
import numpy as np
from pydantic import ValidationError

from simulators.devices.appliance import Appliances
from simulators.devices.baseload import BaseLoad
from simulators.devices.battery import Battery
from simulators.devices.common import S_FORECAST, Clock, id_key, rng
from simulators.devices.ev import EVFleet
from simulators.devices.flex import envelope, hp_forecast, slot_forecast, slot_grid
from simulators.devices.heatpump import HeatPumps, HotWater
from simulators.devices.params import HouseholdSpec
from simulators.devices.pv import PVArray
from simulators.phases import three_phase_devices
from simulators.devices.weather import Weather
from simulators.floats import Floats
from simulators.vocabulary import PHASE_POWERS, SETPOINTS

MODEL = "Households"
PHASE_OUTPUTS = list(PHASE_POWERS)
OUTPUTS = ["P", "Q", "P_base", "P_pv", "P_bat", "soc", "P_ev", "soc_ev", "P_hp", "T_in", "P_app",
           *PHASE_OUTPUTS, "flex"]
INPUTS = [*SETPOINTS, "app_start"]

_KNOWN = set(OUTPUTS + INPUTS)
RECORDABLE = [a for a in OUTPUTS if a != "flex"]  # float per device; flex is computed on request only

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        MODEL: {
            "public": True,
            "params": ["households"],
            "attrs": OUTPUTS + INPUTS,
            "outputs": RECORDABLE,  # project convention: what a recorder should take every step
            "inputs": INPUTS,
        },
    },
}


def validate_households(households) -> list[HouseholdSpec]:
    """HouseholdSpec list from dicts (or specs); ValueError naming the household and field."""
    if not isinstance(households, (list, tuple)) or not households:
        raise ValueError("households must be a non-empty list of household specifications")
    specs, seen = [], set()
    for i, h in enumerate(households):
        if isinstance(h, HouseholdSpec):
            spec = h
        else:
            hid = h.get("id", f"#{i}") if isinstance(h, dict) else f"#{i}"
            try:
                spec = HouseholdSpec.model_validate(h)
            except ValidationError as e:
                errs = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or '(spec)'}: {err['msg']}" for err in e.errors()
                )
                raise ValueError(f"household {hid!r}: invalid device parameters: {errs}") from None
        if spec.id in seen:
            raise ValueError(f"household {spec.id!r}: duplicate household id")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def _floats(ids, values) -> Floats:
    return Floats(ids, np.asarray(values, dtype=float) + 0.0)  # + 0.0: no -0.0



def _copy(mapping):
    """A copy of an input mapping that its sender's later changes in place do not reach (app_start: two levels)."""
    if not isinstance(mapping, dict):
        return mapping
    return {h: dict(v) if isinstance(v, dict) else v for h, v in mapping.items()}


def _num(hid: str, v) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"household {hid!r}: setpoint must be a number or None, got {v!r}") from None


class _Setpoints:
    """Persistent setpoints of one input attribute over a device subset (NaN = default rule)."""

    def __init__(self, ids: list[str]):
        self.index = {h: i for i, h in enumerate(ids)}
        self.values = np.full(len(ids), np.nan)

    def update(self, mapping: dict) -> None:
        for hid, v in mapping.items():
            i = self.index.get(hid)
            if i is not None:
                self.values[i] = _num(hid, v)


def _subset(specs, attr):
    sel = [i for i, s in enumerate(specs) if getattr(s.devices, attr) is not None]
    return np.array(sel, dtype=np.int64), [specs[i].id for i in sel], [getattr(specs[i].devices, attr) for i in sel]


class Population:
    """All households of one entity; pure Python/numpy (no mosaik)."""

    def __init__(self, specs: list[HouseholdSpec], clock: Clock, weather: Weather, seed: int):
        self.specs = specs
        self.clock, self.weather, self.seed = clock, weather, int(seed)
        self.ids = [s.id for s in specs]
        self.index = {h: i for i, h in enumerate(self.ids)}
        self.n = len(specs)
        self.base = BaseLoad(self.ids, [s.devices.base for s in specs], seed, clock)
        self.pv_idx, self.pv_ids, prm = _subset(specs, "pv")
        self.pv = PVArray(self.pv_ids, prm, seed)
        self.bat_idx, self.bat_ids, prm = _subset(specs, "battery")
        self.bat = Battery(self.bat_ids, prm)
        self.ev_idx, self.ev_ids, prm = _subset(specs, "ev")
        self.ev = EVFleet(self.ev_ids, prm, seed, clock)
        self.hp_idx, self.hp_ids, prm = _subset(specs, "heat_pump")
        self.hp = HeatPumps(self.hp_ids, prm)
        self.dhw = HotWater(self.hp_ids, prm, seed, clock)
        owner, aprm = [], []
        for i, s in enumerate(specs):
            for a in s.devices.appliances:
                owner.append(i)
                aprm.append(a)
        self.app = Appliances(owner, aprm, clock)
        self.app_hh = np.unique(np.asarray(owner, dtype=np.int64))
        self.app_ids = [self.ids[i] for i in self.app_hh]
        self._app_of: dict[str, list[int]] = {}
        for k, i in enumerate(owner):
            self._app_of.setdefault(self.ids[i], []).append(k)
        self.sp = {
            "pv_limit": _Setpoints(self.pv_ids),
            "P_bat_set": _Setpoints(self.bat_ids),
            "P_ev_set": _Setpoints(self.ev_ids),
            "P_hp_set": _Setpoints(self.hp_ids),
        }
        self.ids_of = {
            "P_pv": self.pv_ids, "P_bat": self.bat_ids, "soc": self.bat_ids, "P_ev": self.ev_ids,
            "soc_ev": self.ev_ids, "P_hp": self.hp_ids, "T_in": self.hp_ids, "P_app": self.app_ids,
        }
        # per-phase outputs: households with a phase; which devices are three-phase
        self.ph_idx = np.array([i for i, sp in enumerate(specs) if sp.phase is not None], dtype=np.int64)
        self.ph_ids = [self.ids[i] for i in self.ph_idx]
        self._phase = np.array([specs[i].phase - 1 for i in self.ph_idx], dtype=np.int64)
        kinds = [three_phase_devices(s.devices) for s in specs]
        self._three = {k: np.array([k in kinds[i] for i in idx], dtype=bool)
                       for k, idx in (("pv", self.pv_idx), ("battery", self.bat_idx), ("ev", self.ev_idx),
                                      ("heat_pump", self.hp_idx))}
        for a in PHASE_OUTPUTS:
            self.ids_of[a] = self.ph_ids
        self.out: dict[str, np.ndarray] = {}
        self.m_next = None

    # ---- inputs -----------------------------------------------------------------------------
    def set_inputs(self, attr: str, mapping: dict) -> None:
        if attr == "app_start":
            self._app_start(mapping)
            return
        sp = self.sp.get(attr)
        if sp is not None:
            sp.update(mapping)

    def _app_start(self, mapping: dict) -> None:
        for hid, v in mapping.items():
            ks = self._app_of.get(hid)
            if not ks:
                continue
            if isinstance(v, dict):
                for name, t in v.items():
                    for k in ks:
                        if self.app.names[k] == name:
                            self.app.request[k] = self._tick_to_min(hid, t)
            else:
                self.app.request[ks] = self._tick_to_min(hid, v)

    def _tick_to_min(self, hid, v) -> float:
        t = _num(hid, v)
        return math.nan if math.isnan(t) else self.clock.local_min(t)

    # ---- stepping -----------------------------------------------------------------------------
    def step(self, tick: int, dt_ticks: int) -> None:
        m = self.clock.local_min(tick)
        dt_min = dt_ticks * self.clock.time_resolution / 60.0
        dt_h = dt_min / 60.0
        p_base = self.base.step(m, dt_min)
        net = p_base.copy()
        out = {"P_base": p_base}
        t_out = None
        if self.pv.n:
            gen = self.pv.step(m, dt_min, self.weather)
            lim = self.sp["pv_limit"].values
            gen = np.where(np.isnan(lim), gen, np.minimum(gen, np.maximum(lim, 0.0)))
            net[self.pv_idx] -= gen
            out["P_pv"] = 0.0 - gen
        if self.ev.n:
            p = self.ev.step(m, dt_min, self.sp["P_ev_set"].values)
            net[self.ev_idx] += p
            out["P_ev"], out["soc_ev"] = p, self.ev.soc
        if self.hp.n:
            t_out = float(self.weather.temperature(m + 0.5 * dt_min))
            m0, nm = int(math.floor(m + 1e-9)), max(1, int(round(dt_min)))
            ghi = self.weather.ghi_minutes(m0, nm)
            gain = self.hp.gains(float(ghi[0] if nm == 1 else ghi.mean()))
            p = self.hp.step(t_out, self.sp["P_hp_set"].values, dt_h, gain)
            dhw = self.dhw.minutes(m0, nm, self.weather)
            p += dhw[0] if nm == 1 else dhw.mean(axis=0)
            net[self.hp_idx] += p
            out["P_hp"], out["T_in"] = p, self.hp.t_in
        if self.app.n:
            p = self.app.step(m, dt_min)
            tot = np.zeros(self.n)
            np.add.at(tot, self.app.owner, p)
            net += tot
            out["P_app"] = tot[self.app_hh]
        if self.bat.n:
            p = self.bat.step(self.sp["P_bat_set"].values, net[self.bat_idx], dt_h)
            net[self.bat_idx] += p
            out["P_bat"], out["soc"] = p, self.bat.soc
        out["P"] = net
        out["Q"] = self.base.q(p_base)
        if len(self.ph_idx):
            self._per_phase(out)
        self.out = out
        self.m_next = m + dt_min
        self._flex = None

    def _per_phase(self, out: dict) -> None:
        """P_a..Q_c: three-phase devices split in thirds, the rest on the household's phase."""
        three = np.zeros(self.n)
        for kind, attr, idx in (("pv", "P_pv", self.pv_idx), ("battery", "P_bat", self.bat_idx),
                                ("ev", "P_ev", self.ev_idx), ("heat_pump", "P_hp", self.hp_idx)):
            if attr in out and self._three[kind].any():
                three[idx[self._three[kind]]] += out[attr][self._three[kind]]
        single = (out["P"] - three)[self.ph_idx]
        k = np.arange(len(self.ph_idx))
        p = np.repeat(three[self.ph_idx, None] / 3.0, 3, axis=1)
        p[k, self._phase] += single
        q = np.zeros((len(self.ph_idx), 3))
        q[k, self._phase] = out["Q"][self.ph_idx]
        for j, c in enumerate("abc"):
            out[f"P_{c}"], out[f"Q_{c}"] = p[:, j], q[:, j]

    def output(self, attr: str, horizon_s: float = 86400, slot_s: float = 900):
        if attr == "flex":
            if self.m_next is None:
                return {}
            if self._flex is None:
                self._flex = envelope(self, self.m_next, horizon_s, slot_s)
            return self._flex
        if attr in self.sp:  # active setpoints (the default rule where absent)
            sp = self.sp[attr]
            return {h: float(sp.values[i]) for h, i in sp.index.items() if not math.isnan(sp.values[i])}
        if attr == "app_start":
            out: dict = {}
            for hid, ks in self._app_of.items():
                for k in ks:
                    r = self.app.request[k]
                    if not math.isnan(r):
                        tick = int(round(float(self.clock.tick_of(r))))
                        out.setdefault(hid, {})[self.app.names[k]] = tick
            return out
        arr = self.out.get(attr)
        if arr is None:
            return {}
        return _floats(self.ids_of.get(attr, self.ids), arr)


class Forecaster:
    """Base load / PV / outdoor temperature forecasts per slot from the simulator's seeded models.

    Built from the same household list (or any subset: models are keyed by household id), ``start``,
    ``seed``, ``time_resolution`` and location as the HouseholdSim it forecasts.
    """

    def __init__(self, households, *, start: str, seed: int, time_resolution: float = 0.001,
                 latitude: float = 48.1, longitude: float = 11.6):
        specs = validate_households(households)
        self.clock = Clock(start, time_resolution)
        self.seed = int(seed)
        self.weather = Weather(self.seed, latitude, longitude, self.clock.utc_offset_min)
        self.ids = [s.id for s in specs]
        self.base = BaseLoad(self.ids, [s.devices.base for s in specs], seed, self.clock)
        self.index = {h: i for i, h in enumerate(self.ids)}
        self.pv_idx, pv_ids, prm = _subset(specs, "pv")
        self.pv = PVArray(pv_ids, prm, seed)
        self.has_pv = np.zeros(len(self.ids), dtype=bool)
        self.has_pv[self.pv_idx] = True
        self.hp_idx, hp_ids, prm = _subset(specs, "heat_pump")
        self.hp, self.dhw = HeatPumps(hp_ids, prm), HotWater(hp_ids, prm, seed, self.clock)
        self.hp_col = {int(i): j for j, i in enumerate(self.hp_idx)}
        self._cache: dict = {}

    def _arrays(self, t0: int, horizon_s: float, slot_s: float, noise: float):
        """(p_base (n, N), p_pv (n, N) ≤ 0, t_out (n,), hp gains (n, N_hp), hot water (n, N_hp)), cached
        for the last few requests."""
        key = (int(t0), float(horizon_s), float(slot_s), float(noise))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        m0 = self.clock.local_min(t0)
        n, slot_min = slot_grid(m0, horizon_s, slot_s)
        p_base, gen, t_out = slot_forecast(self.base, self.pv, self.weather, m0, n, slot_min)
        hp = hp_forecast(self.hp, self.dhw, self.weather, m0, n, slot_min) if self.hp.n else None
        p_pv = np.zeros_like(p_base)
        p_pv[:, self.pv_idx] = -gen
        if noise > 0:  # (off by default) assumptions, no source: the error grows as a random walk, √(lead /
            # horizon), and PV is clipped to [0, 2] × its forecast (no negative PV)
            s = noise * np.sqrt((np.arange(n) + 1.0) / n)
            for i, hid in enumerate(self.ids):
                e = rng(self.seed, S_FORECAST, id_key(hid), int(round(m0)) + 10**9).standard_normal((2, n))
                p_base[:, i] *= np.exp(s * e[0] - 0.5 * s * s)
                p_pv[:, i] *= np.clip(1.0 + s * e[1], 0.0, 2.0)
            kwp = np.zeros(len(self.ids))
            kwp[self.pv_idx] = self.pv.kwp
            p_pv = np.maximum(p_pv, -kwp)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = (p_base, p_pv, t_out, hp)
        return p_base, p_pv, t_out, hp

    def __call__(self, t0: int, horizon_s: float = 86400, slot_s: float = 900, noise: float = 0.0) -> dict:
        """{hid: {"t0", "slot_s", "n", "p_base", "p_pv" (PV households), "t_out"}} (lists, JSON-safe)."""
        p_base, p_pv, t_out, hp = self._arrays(t0, horizon_s, slot_s, noise)
        n = p_base.shape[0]
        t_l = t_out.tolist()
        base_l, pv_l = p_base.T.tolist(), p_pv.T.tolist()
        out = {}
        for i, hid in enumerate(self.ids):
            d = {"t0": int(t0), "slot_s": float(slot_s), "n": n, "p_base": base_l[i], "t_out": t_l}
            if self.has_pv[i]:
                d["p_pv"] = pv_l[i]
            j = self.hp_col.get(i)
            if j is not None:
                d["hp_gain"], d["p_dhw"] = hp[0][:, j].tolist(), hp[1][:, j].tolist()
            out[hid] = d
        return out

    def agent(self, household_id: str, t0_tick: int, K: int, slot_s: int, noise: float = 0.0) -> dict:
        """The home-agent forecaster signature of ``simulators.mas`` (``MASSim(forecast=...)``):
        numpy arrays of length K: ``base`` (kW), ``pv`` (kW ≤ 0, zeros without PV), ``t_out`` (°C), and for
        heat-pump homes ``hp_gain`` (internal + solar gains, kW) and ``dhw`` (hot-water power, kW)."""
        p_base, p_pv, t_out, hp = self._arrays(t0_tick, K * slot_s, slot_s, noise)
        i = self.index[household_id]
        out = {"base": p_base[:, i].copy(), "pv": p_pv[:, i].copy(), "t_out": t_out.copy()}
        j = self.hp_col.get(i)
        if j is not None:
            out["hp_gain"], out["dhw"] = hp[0][:, j].copy(), hp[1][:, j].copy()
        return out


def forecast(households, t0: int, *, start: str, seed: int, horizon_s: float = 86400, slot_s: float = 900,
             time_resolution: float = 0.001, latitude: float = 48.1, longitude: float = 11.6,
             noise: float = 0.0) -> dict[str, dict]:
    """Forecast per household for ``n = horizon_s / slot_s`` slots from tick ``t0`` (ms since start).

    Returns ``{hid: {"t0", "slot_s", "n", "p_base": [kW], "p_pv": [kW ≤ 0, PV households only],
    "t_out": [°C], "hp_gain", "p_dhw": [kW, heat-pump households only]}}``. With the simulator's ``start``/``seed``/location and ``noise=0`` this is exactly
    what the simulation will produce (slot means; PV before curtailment). ``noise`` (e.g. 0.2) adds a
    seeded error growing with lead time: base × lognormal(σ), PV × (1 + σ·N(0, 1)), σ = noise·√(lead).
    For repeated calls build a ``Forecaster`` once (it caches the generated days).
    """
    fc = Forecaster(households, start=start, seed=seed, time_resolution=time_resolution,
                    latitude=latitude, longitude=longitude)
    return fc(t0, horizon_s=horizon_s, slot_s=slot_s, noise=noise)


class HouseholdSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.pops: dict[str, Population] = {}
        self.time = 0
        self._applied: dict[tuple[str, str], list] = {}  # (entity, attr) -> its last applied [(source, mapping)]

    def init(self, sid, time_resolution=0.001, start="2026-01-01T00:00:00+01:00", step_size=60_000, seed=0,
             latitude=48.1, longitude=11.6, flex_horizon_s=86400, flex_slot_s=900):
        if int(step_size) <= 0:
            raise ValueError(f"step_size must be a positive number of ticks, got {step_size}")
        self.sid = sid
        self.clock = Clock(start, time_resolution)
        self.step_size = int(step_size)
        self.seed = int(seed)
        self.flex_horizon_s, self.flex_slot_s = float(flex_horizon_s), float(flex_slot_s)
        slot_grid(0.0, self.flex_horizon_s, self.flex_slot_s)  # validate early
        self.weather = Weather(self.seed, latitude, longitude, self.clock.utc_offset_min)
        return self.meta

    def create(self, num, model, households=None):
        if model != MODEL:
            raise ValueError(f"unknown model {model!r}, expected {MODEL!r}")
        if num != 1:
            raise ValueError("Households: create one entity per population (num=1); put all households in it")
        specs = validate_households(households)
        known = {h for p in self.pops.values() for h in p.ids}
        dup = [s.id for s in specs if s.id in known]
        if dup:
            raise ValueError(f"household {dup[0]!r}: already in another population of this simulator")
        eid = f"{MODEL}-{len(self.pops)}"
        self.pops[eid] = Population(specs, self.clock, self.weather, self.seed)
        return [{"eid": eid, "type": model}]

    def step(self, time, inputs, max_advance):
        self.time = time
        for eid, attrs in inputs.items():
            pop = self.pops[eid]
            for attr, sources in attrs.items():
                items = list(sources.items())
                if self._applied.get((eid, attr)) == items:
                    continue  # the inputs applied last step (mosaik resends them): applying them again changes nothing
                for src, mapping in items:
                    if mapping is None:
                        continue
                    if not isinstance(mapping, dict):
                        raise ValueError(
                            f"input {attr!r} from {src!r}: expected a mapping household id -> value, got "
                            f"{type(mapping).__name__} (per-device sources need a transform to {{id: value}})"
                        )
                    pop.set_inputs(attr, mapping)
                self._applied[(eid, attr)] = [(src, _copy(mapping)) for src, mapping in items]
        for pop in self.pops.values():
            pop.step(time, self.step_size)
        return time + self.step_size

    def get_data(self, outputs):
        # mosaik lists an attribute once per successor that reads it (P three times in uc3_physical:
        # grid, meters, recorder); each is computed once, and all readers get that one mapping
        data = {}
        for eid, attrs in outputs.items():
            pop = self.pops[eid]
            data[eid] = {
                a: pop.output(a, self.flex_horizon_s, self.flex_slot_s) for a in dict.fromkeys(attrs) if a in _KNOWN
            }
        return data


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(HouseholdSim())
