"""Electric vehicle charged at home.

Sessions: one per local day d (seeded by household id and day): arrival at the typical arrival time
plus jitter, departure after the typical dwell time plus jitter (jitter N(0, jitter_min), clipped so a
session never overlaps the next), and an energy need (lognormal around energy_need_kwh, σ 0.3,
capped at the capacity): the energy the trip before the arrival consumed, to be recharged before
departure. On arrival the battery energy drops by the need (floored at 0).

Charging: not home → 0 kW. Default rule: full charger power from arrival until the need is
recharged. Setpoint ``P_ev_set`` (kW) is clipped to [0, charger_kw] and to the capacity headroom.
Need guard: when the remaining need can only just be met at full power before departure, the
charger runs at full power whatever the setpoint, so the need is always met when feasible.
Energy into the battery = P · efficiency · dt. Unmet energy at a departure is counted in
``unmet_kwh`` (only possible when the session was too short at full power).
"""

from __future__ import annotations

import numpy as np

from .common import MIN_PER_DAY, S_EV_DAY, id_key, rng
from .params import EVParams, minutes_of_day


class EVFleet:
    def __init__(self, ids: list[str], params: list[EVParams], seed: int):
        self.ids = list(ids)
        self.n = len(ids)
        self.seed = int(seed)
        self.keys = [id_key(h) for h in ids]
        self.capacity = np.array([p.capacity_kwh for p in params], dtype=float)
        self.charger = np.array([p.charger_kw for p in params], dtype=float)
        self.eff = np.array([p.efficiency for p in params], dtype=float)
        self.need_mean = np.array([p.energy_need_kwh for p in params], dtype=float)
        self.jitter = np.array([p.jitter_min for p in params], dtype=float)
        self.arr_min = np.array([minutes_of_day(p.arrival) for p in params], dtype=float)
        dwell = (np.array([minutes_of_day(p.departure) for p in params], dtype=float) - self.arr_min) % MIN_PER_DAY
        self.dwell = np.where(dwell == 0, MIN_PER_DAY, dwell)
        self.jlim = np.maximum(0.0, np.minimum(self.dwell, MIN_PER_DAY - self.dwell) / 2 - 15.0)
        self.e = self.capacity * np.array([p.soc_init for p in params], dtype=float)
        self.home = np.zeros(self.n, dtype=bool)
        self.remaining = np.zeros(self.n)
        self.unmet_kwh = np.zeros(self.n)
        self.sess_day = np.zeros(self.n, dtype=np.int64)
        self.arr = np.zeros(self.n)
        self.dep = np.zeros(self.n)
        self.need = np.zeros(self.n)
        self._days: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._started = False

    # ---- seeded sessions --------------------------------------------------------------
    def sessions(self, day: int):
        """(arrival, departure, need) arrays of the sessions arriving on local day ``day``."""
        s = self._days.get(day)
        if s is None:
            z = np.empty((self.n, 3))
            for i, k in enumerate(self.keys):
                z[i] = rng(self.seed, S_EV_DAY, k, day + 1_000_000).standard_normal(3)
            a = day * MIN_PER_DAY + self.arr_min + np.clip(z[:, 0] * self.jitter, -self.jlim, self.jlim)
            d = day * MIN_PER_DAY + self.arr_min + self.dwell + np.clip(z[:, 1] * self.jitter, -self.jlim, self.jlim)
            need = np.minimum(self.need_mean * np.exp(0.3 * z[:, 2] - 0.045), self.capacity)
            s = (a, d, need)
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
        d0 = int(m // MIN_PER_DAY)
        self.sess_day[:] = d0 - 1
        self._load(np.ones(self.n, dtype=bool))
        for _ in range(3):  # advance to the session containing m or the next one
            past = m >= self.dep
            if not past.any():
                break
            self.sess_day[past] += 1
            self._load(past)
        self.home = m >= self.arr
        left_h = np.maximum(self.dep - m, 0.0) / 60.0
        self.remaining = np.where(
            self.home,
            np.minimum(np.minimum(self.need, left_h * self.charger * self.eff), self.capacity - self.e),
            0.0,
        )
        self._started = True

    def _events(self, m: float) -> None:
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
