"""Electric vehicle charged at home, driven by trips drawn from mobility statistics.

Trips (seeded by household id and local day): the car is used on a day with a probability by day
type and then drives a lognormal daily distance (weekday / Saturday / Sunday, MiD 2017), scaled by a
persistent per-car usage factor (commuters vs occasional drivers). Energy per day = distance ×
``consumption_kwh_per_km`` (capped at 80 % of the capacity). It leaves in the morning and comes home in
the afternoon/evening at its own typical times (persistent per-car offsets) plus day-to-day jitter;
on weekends it leaves later.

Plugging in: on arriving home the driver plugs in when the driving energy accumulated since the last
plug-in exceeds a per-car threshold (share of the capacity), or else with a per-car habit probability,
and always after ``MAX_UNPLUGGED`` driving days; a session lasts until the next morning's departure.
The accumulated need is decided from the preceding ``LOOKBACK`` days only, so a day's session is a
function of (seed, id, day) and a forecast reproduces it. Energy bookkeeping is per plug-in: the
battery energy drops by the accumulated need when the car is plugged in, and the session must
recharge it (at most the energy it left with: more was charged en route); unplugged days (no trip, or
not plugged in) are zero-length sessions (arrival = departure, need 0), which ``sessions`` returns like
any other.

Steady state: ``soc_init`` is the state of charge the car leaves home with (the default rule brings it
back there after every session). At the first step a car already plugged in has its session's need
less what the default rule would have charged since its arrival, so a short run does not charge a
full day's need that no trip consumed.

Charging: not home → 0 kW. Default rule: full charger power from arrival until the need is
recharged. Setpoint ``P_ev_set`` (kW) is clipped to [0, charger_kw] and to the capacity headroom.
Need guard: when the remaining need can only just be met at full power before departure, the
charger runs at full power whatever the setpoint, so the need is always met when feasible.
Energy into the battery = P · efficiency · dt. Unmet energy at a departure is counted in
``unmet_kwh`` (only possible when the session was too short at full power).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from .common import FIXED, MIN_PER_DAY, S_EV_DAY, S_EV_PARAMS, Clock, id_key, rng, wall_day, weekday
from .params import EVParams, minutes_of_day

# Mobility statistics, index 0 = Monday-Friday, 1 = Saturday, 2 = Sunday.
# MiD 2017 (infas/DLR for BMVI, "Mobilität in Deutschland – Ergebnisbericht", 2019): a private car is
# used on about 60-70 % of weekdays and less on weekends; a day with car use averages ~45-55 km of
# driving, weekends fewer but longer trips. Shares and means below are those figures, rounded; they
# give ~32.5 km per car and calendar day, ~11,900 km a year (300 cars over a year), about 3 % below KBA,
# "Verkehr in Kilometern" 2023: 12,320 km per German passenger car (and 15,852 km for "other" drives:
# electric, hybrid, gas), so the EVs here drive like an average car. Full reference: Nobis & Kuhnimhof (2018,
# version 1.1 of Feb 2019), "Mobilität in Deutschland - MiD Ergebnisbericht", infas, DLR, IVT, infas 360 for
# BMVI (FE-Nr. 70.904/15).
P_USE = (0.70, 0.60, 0.45)
KM_USE_DAY = (47.0, 55.0, 58.0)  # mean km on a day the car is used
KM_DAY_SIGMA = 0.7  # lognormal σ of a day's distance (MiD 2017: heavy-tailed daily distances); σ: modelling choice
KM_CAR_SIGMA = 0.35  # lognormal σ of the per-car usage factor (commuter vs occasional); modelling choice
# Times of day (MiD 2017 time-of-day profiles of trips from and to home): per-car typical departure
# and arrival spread around the parameters' times, weekends leave later and return earlier. The spreads,
# shifts and bounds below are modelling choices, not fitted to the MiD 2017 profiles; the resulting arrival
# spread is checked against the MiD 2017 band ev.arrival_sd_h of cosim.calibrate.
DEP_SPREAD_MIN, ARR_SPREAD_MIN = 60.0, 90.0  # σ between cars, minutes
WEEKEND_DEP_SHIFT, WEEKEND_ARR_SHIFT = 150.0, -60.0  # minutes
DEP_WINDOW = (240.0, 720.0)  # departure between 04:00 and 12:00
ARR_LATEST, MIN_AWAY = 1410.0, 120.0  # home by 23:30, away at least 2 h
# Plug-in behaviour (modelling assumption, cf. the rule-based charging in emobpy, Gaete-Morales et
# al. 2021, Sci. Data 8:152): plug in when the accumulated need exceeds a per-car share of the
# capacity, else by habit; private BEV drivers plug in at home a few times a week. The ranges and counts below
# are modelling choices (checked against the plug-in band ev.plugged_day_share of cosim.calibrate).
PLUG_THRESHOLD = (0.15, 0.35)  # uniform per car, share of capacity
PLUG_HABIT = (0.2, 0.6)  # uniform per car, probability of plugging in anyway
MAX_UNPLUGGED = 3  # driving days without plugging in at most
LOOKBACK = 7  # days the accumulated need looks back (model horizon, not a statistic)
TRIP_CAP = 0.8  # a day's driving energy at most this share of the capacity (modelling choice)


def typical_need_kwh(ev: EVParams) -> float:
    """Mean driving energy of a day the car is used (kWh at the battery), the weekly average."""
    w = np.array([5.0, 1.0, 1.0])
    km = float(np.sum(w * np.array(P_USE) * np.array(KM_USE_DAY)) / np.sum(w * np.array(P_USE)))
    return min(km * ev.consumption_kwh_per_km, TRIP_CAP * ev.capacity_kwh)


def _day_type(day: int) -> int:
    wd = weekday(day)
    return 0 if wd < 5 else wd - 4


class EVFleet:
    def __init__(self, ids: list[str], params: list[EVParams], seed: int, clock: Clock | None = None):
        self.ids = list(ids)
        self.clock = clock or FIXED  # days and times of day by the wall clock; sessions on the linear axis
        self.n = len(ids)
        self.seed = int(seed)
        self.keys = [id_key(h) for h in ids]
        self.capacity = np.array([p.capacity_kwh for p in params], dtype=float)
        self.charger = np.array([p.charger_kw for p in params], dtype=float)
        self.eff = np.array([p.efficiency for p in params], dtype=float)
        self.kwh_per_km = np.array([p.consumption_kwh_per_km for p in params], dtype=float)
        self.jitter = np.array([p.jitter_min for p in params], dtype=float)
        per = np.array([rng(self.seed, S_EV_PARAMS, k).random(5) for k in self.keys]).reshape(self.n, 5)
        z = _normal(per[:, :3])
        self.dep0 = np.array([minutes_of_day(p.departure) for p in params], dtype=float) + DEP_SPREAD_MIN * z[:, 0]
        self.arr0 = np.array([minutes_of_day(p.arrival) for p in params], dtype=float) + ARR_SPREAD_MIN * z[:, 1]
        self.km_factor = np.exp(KM_CAR_SIGMA * z[:, 2] - 0.5 * KM_CAR_SIGMA**2)
        self.plug_thr = (PLUG_THRESHOLD[0] + (PLUG_THRESHOLD[1] - PLUG_THRESHOLD[0]) * per[:, 3]) * self.capacity
        self.plug_habit = PLUG_HABIT[0] + (PLUG_HABIT[1] - PLUG_HABIT[0]) * per[:, 4]
        self.e_dep = self.capacity * np.array([p.soc_init for p in params], dtype=float)
        self.e = self.e_dep.copy()
        self.home = np.zeros(self.n, dtype=bool)
        self.remaining = np.zeros(self.n)
        self.unmet_kwh = np.zeros(self.n)
        self.sess_day = np.zeros(self.n, dtype=np.int64)
        self.arr = np.zeros(self.n)
        self.dep = np.zeros(self.n)
        self.need = np.zeros(self.n)
        self._draws: dict[int, tuple] = {}
        self._days: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._started = False
        self._next_event = -np.inf  # local minute of the next arrival or departure

    # ---- seeded trips and sessions ------------------------------------------------------------
    def trips(self, day: int):
        """(used, trip kWh, departure minute, arrival minute, plug draw) per car on local day ``day``
        (a wall-clock day; the minutes on the linear axis)."""
        t = self._draws.get(day)
        if t is None:
            u = np.empty((self.n, 5))
            for i, k in enumerate(self.keys):
                u[i] = rng(self.seed, S_EV_DAY, k, day + 1_000_000).random(5)
            z = _normal(u[:, 1:4])
            dt_ = _day_type(day)
            used = u[:, 0] < P_USE[dt_]
            km = self.km_factor * KM_USE_DAY[dt_] * np.exp(KM_DAY_SIGMA * z[:, 0] - 0.5 * KM_DAY_SIGMA**2)
            kwh = np.where(used, np.minimum(km * self.kwh_per_km, TRIP_CAP * self.capacity), 0.0)
            wk = dt_ > 0
            dep_tod = np.clip(self.dep0 + WEEKEND_DEP_SHIFT * wk + self.jitter * z[:, 1], *DEP_WINDOW)
            arr_tod = np.clip(self.arr0 + WEEKEND_ARR_SHIFT * wk + self.jitter * z[:, 2], dep_tod + MIN_AWAY, ARR_LATEST)
            lin = self.clock.linear_min
            t = (used, kwh, lin(day * MIN_PER_DAY + dep_tod), lin(day * MIN_PER_DAY + arr_tod), u[:, 4])
            if len(self._draws) > 3 * LOOKBACK:
                for old in sorted(self._draws)[: LOOKBACK]:
                    del self._draws[old]
            self._draws[day] = t
        return t

    def sessions(self, day: int):
        """(arrival, departure, need) arrays of the sessions starting on local day ``day``.

        A plugged-in session runs from the arrival to the next morning's departure and must recharge
        the driving energy accumulated since the last plug-in; a day without one is a zero-length
        session (arrival = departure, need 0)."""
        s = self._days.get(day)
        if s is None:
            acc = np.zeros(self.n)
            unplugged = np.zeros(self.n, dtype=np.int64)
            for d in range(day - LOOKBACK, day + 1):
                used, kwh, _, arr, u_plug = self.trips(d)
                acc = np.minimum(acc + kwh, self.e_dep)  # beyond that: charged en route, not at home
                plug = used & ((acc >= self.plug_thr) | (u_plug < self.plug_habit) | (unplugged >= MAX_UNPLUGGED))
                if d < day:
                    acc = np.where(plug, 0.0, acc)
                    unplugged = np.where(plug, 0, unplugged + used)
            dep_next = self.trips(day + 1)[2]
            s = (arr, np.where(plug, dep_next, arr), np.where(plug, acc, 0.0))
            if len(self._days) > 6:
                for old in sorted(self._days)[:-4]:
                    del self._days[old]
            self._days[day] = s
        return s

    def _load(self, sel: np.ndarray) -> None:
        for day in np.unique(self.sess_day[sel]):
            a, d, need = self.sessions(int(day))
            j = sel & (self.sess_day == day)
            self.arr[j], self.dep[j], self.need[j] = a[j], d[j], need[j]

    def _start(self, m: float) -> None:
        """Steady state at m: the car left with e_dep; one plugged in now has charged since arrival."""
        d0 = wall_day(self.clock, m)
        self.sess_day[:] = d0 - 1
        self._load(np.ones(self.n, dtype=bool))
        for _ in range(3):  # advance to the session containing m or the next one
            past = m >= self.dep
            if not past.any():
                break
            self.sess_day[past] += 1
            self._load(past)
        self.home = (m >= self.arr) & (self.dep > self.arr)
        charged = np.minimum(self.need, np.maximum(m - self.arr, 0.0) / 60.0 * self.charger * self.eff)
        self.e = np.where(self.home, np.maximum(self.e_dep - self.need, 0.0) + charged, self.e_dep)
        self.remaining = np.where(self.home, np.minimum(self.need - charged, self.capacity - self.e), 0.0)
        self._started = True
        self._next_event = -np.inf

    def _events(self, m: float) -> None:
        if m < self._next_event:
            return
        for _ in range(4):
            dep = self.home & (m >= self.dep)
            if dep.any():
                self.unmet_kwh[dep] += self.remaining[dep]
                self.remaining[dep] = 0.0
                self.home[dep] = False
                self.sess_day[dep] += 1
                self._load(dep)
            arr = ~self.home & (m >= self.arr)
            if arr.any():
                self.home[arr] = True
                self.e[arr] = np.maximum(self.e[arr] - self.need[arr], 0.0)
                self.remaining[arr] = np.minimum(self.need[arr], self.capacity[arr] - self.e[arr])
            if not dep.any() and not arr.any():
                break
        self._next_event = float(np.min(np.where(self.home, self.dep, self.arr), initial=np.inf))

    # ---- stepping -----------------------------------------------------------------------
    def step(self, m: float, dt_min: float, p_set: np.ndarray) -> np.ndarray:
        """Charging power (kW ≥ 0) over [m, m + dt_min); NaN setpoint = default rule."""
        if not self._started:
            self._start(m)
        self._events(m)
        dt_h = dt_min / 60.0
        head = np.maximum(self.capacity - self.e, 0.0) / (self.eff * dt_h)
        p = np.where(np.isnan(p_set), np.minimum(self.charger, self.remaining / (self.eff * dt_h)), p_set)
        p = np.clip(p, 0.0, np.minimum(self.charger, head))
        left_h = np.maximum(self.dep - m, 0.0) / 60.0
        force = (self.remaining > 1e-9) & (self.remaining >= (left_h - dt_h) * self.charger * self.eff)
        p = np.where(force, np.minimum(self.charger, head), p)
        p = np.where(self.home, p, 0.0)
        de = p * self.eff * dt_h
        self.e = np.minimum(self.e + de, self.capacity)
        self.remaining = np.maximum(self.remaining - de, 0.0)
        return p

    @property
    def soc(self) -> np.ndarray:
        return self.e / self.capacity


def _normal(u: np.ndarray) -> np.ndarray:
    """Standard normal quantiles of uniforms (probit), clipped to ±3.5 σ."""
    return np.clip(ndtri(np.clip(u, 1e-12, 1 - 1e-12)), -3.5, 3.5)
