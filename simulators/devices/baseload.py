"""Seeded synthetic household base load at 1-minute resolution.

Shape: an H0-like standard-load-profile shape (hourly, three day types × winter/summer, blended by
season; hand-made approximation of the BDEW H0 curve, not the official table) with a seasonal level
(+15 % in winter, -15 % in summer) and weekday/Saturday/Sunday levels.
Per household (seeded by household id, persistent): a clock shift (σ 25 min), a morning-vs-evening
emphasis, a noise strength. Per household and day: a daily level factor (lognormal, σ 0.1), an AR(1)
minute noise (lognormal, mean 1) and random appliance spikes (kettle, oven, …: 1–3 kW, 1–20 min, more
likely at active hours) carrying ``SPIKE_SHARE`` of the energy. Everything is normalised so the
expected mean power is ``annual_kwh / 8760`` kW. Reactive power from the power factor (inductive).

Each local day is generated once for the whole population as a (1440, N) matrix; a step reads a row.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from .common import MIN_PER_DAY, S_BASE_DAY, S_BASE_PARAMS, day_of_year, id_key, rng, weekday
from .params import BaseLoadParams

SPIKE_SHARE = 0.25
_SPIKE_P = (1.0, 3.0)  # kW, uniform
_SPIKE_D = (1, 20)  # minutes, uniform integer
_SPIKE_E = 0.5 * sum(_SPIKE_P) * 0.5 * (_SPIKE_D[0] + _SPIKE_D[1]) / 60.0  # expected kWh per spike
_NOISE_PHI = 0.9

# hourly H0-like shapes, W per 1000 kWh/a (winter, summer) x (weekday, Saturday, Sunday)
_W = {
    "winter": [
        [70, 55, 48, 45, 45, 50, 75, 115, 125, 120, 118, 125, 140, 135, 120, 115, 125, 160, 190, 200, 190, 170, 140, 100],
        [80, 62, 52, 48, 46, 47, 55, 80, 120, 150, 165, 175, 180, 165, 145, 140, 145, 170, 195, 200, 190, 175, 150, 115],
        [90, 70, 57, 50, 47, 46, 50, 62, 95, 140, 170, 195, 210, 180, 150, 145, 150, 170, 190, 195, 185, 165, 135, 100],
    ],
    "summer": [
        [75, 58, 50, 47, 46, 50, 70, 100, 110, 110, 112, 120, 135, 128, 112, 105, 108, 120, 130, 135, 140, 150, 135, 105],
        [85, 65, 55, 50, 48, 48, 55, 75, 110, 135, 145, 155, 160, 145, 125, 118, 118, 125, 135, 138, 140, 148, 138, 110],
        [95, 72, 58, 52, 49, 48, 50, 60, 90, 130, 155, 175, 185, 160, 130, 120, 120, 125, 135, 140, 142, 145, 130, 100],
    ],
}


def _minute_shapes() -> dict[str, np.ndarray]:
    """(3, 1440) per season: each day type's shape, weekly mean normalised to 1."""
    out = {}
    hours = np.arange(24) + 0.5
    mins = np.arange(MIN_PER_DAY) / 60.0
    for season, tables in _W.items():
        rows = []
        for tab in tables:
            t = np.asarray(tab, float)
            rows.append(np.interp(mins, np.r_[hours - 24, hours, hours + 24], np.r_[t, t, t]))
        arr = np.array(rows)
        week_mean = (5 * arr[0].mean() + arr[1].mean() + arr[2].mean()) / 7
        out[season] = arr / week_mean
    return out


_SHAPES = _minute_shapes()
_EVENING = np.cos(2 * np.pi * (np.arange(MIN_PER_DAY) / MIN_PER_DAY - 20.0 / 24.0))


def day_shape(day: int) -> np.ndarray:
    """Population-independent shape of a local day (1440,), annual mean 1."""
    doy, wd = day_of_year(day), weekday(day)
    dtype = 0 if wd < 5 else (1 if wd == 5 else 2)
    w = 0.5 * (1 + math.cos(2 * math.pi * (doy - 15) / 365.0))
    level = 1.0 + 0.15 * math.cos(2 * math.pi * (doy - 5) / 365.0)
    return level * (w * _SHAPES["winter"][dtype] + (1 - w) * _SHAPES["summer"][dtype])


class BaseLoad:
    """Base load of a population (every household has one)."""

    def __init__(self, ids: list[str], params: list[BaseLoadParams], seed: int):
        self.ids = list(ids)
        self.seed = int(seed)
        self.n = len(ids)
        self.keys = [id_key(h) for h in ids]
        self.mean_kw = np.array([p.annual_kwh / 8760.0 for p in params])
        pf = np.array([p.power_factor for p in params])
        self.tan_phi = np.sqrt(1.0 - pf**2) / pf
        shift, emph, sig = np.empty(self.n), np.empty(self.n), np.empty(self.n)
        for i, k in enumerate(self.keys):
            g = rng(self.seed, S_BASE_PARAMS, k)
            shift[i] = np.clip(g.normal(0, 25), -75, 75)
            emph[i] = g.uniform(-0.25, 0.25)
            sig[i] = g.uniform(0.2, 0.4)
        self.shift = np.rint(shift).astype(np.int64)
        self.emph, self.sigma = emph, sig
        self._days: dict[int, np.ndarray] = {}
        self._idx = self._even = None

    # ---- generation ---------------------------------------------------------------------
    def _generate(self, day: int) -> np.ndarray:
        n, M = self.n, MIN_PER_DAY
        base = day_shape(day)
        if self._idx is None:  # persistent per-household clock shift and evening emphasis
            self._idx = (np.arange(M)[None, :] - self.shift[:, None]) % M
            self._even = 1.0 + self.emph[:, None] * _EVENING[self._idx]
        shape = base[self._idx]
        shape *= self._even
        shape *= base.mean() / shape.mean(axis=1, keepdims=True)
        x = np.empty((n, M))
        dfac = np.empty(n)
        lam = SPIKE_SHARE * self.mean_kw * 24.0 * base.mean() / _SPIKE_E
        cdf = np.cumsum(base)
        cdf /= cdf[-1]
        ev_h, ev_u = [], []
        for i, k in enumerate(self.keys):
            g = rng(self.seed, S_BASE_DAY, k, day + 1_000_000)
            x[i] = g.standard_normal(M)
            dfac[i] = g.standard_normal()
            ns = g.poisson(lam[i])
            if ns:
                ev_h.append(np.full(ns, i))
                ev_u.append(g.random((3, ns)))
        c = math.sqrt(1 - _NOISE_PHI**2)
        y = lfilter([c], [1.0, -_NOISE_PHI], x, axis=1, zi=((1 - c) * x[:, :1]))[0]
        s = self.sigma[:, None]
        y *= s
        y -= 0.5 * s * s
        np.exp(y, out=y)
        y *= shape
        y *= (self.mean_kw * (1 - SPIKE_SHARE) * np.exp(0.1 * dfac - 0.005))[:, None]
        p = y
        if ev_h:
            h, u = np.concatenate(ev_h), np.concatenate(ev_u, axis=1)
            st = np.minimum(np.searchsorted(cdf, u[0]), M - 1) + self.shift[h]
            du = _SPIKE_D[0] + (u[1] * (_SPIKE_D[1] - _SPIKE_D[0] + 1)).astype(np.int64)
            pw = _SPIKE_P[0] + u[2] * (_SPIKE_P[1] - _SPIKE_P[0])
            rep = np.repeat(np.arange(len(h)), du)
            off = np.arange(len(rep)) - np.repeat(np.cumsum(du) - du, du)
            flat = h[rep] * M + (st[rep] + off) % M
            p += np.bincount(flat, weights=pw[rep], minlength=n * M).reshape(n, M)
        return np.ascontiguousarray(p.T)

    def day(self, day: int) -> np.ndarray:
        """(1440, N) kW of a local day (cached; a few days kept)."""
        m = self._days.get(day)
        if m is None:
            m = self._generate(day)
            if len(self._days) >= 3:
                for d in sorted(self._days, key=lambda d: abs(d - day), reverse=True)[: len(self._days) - 2]:
                    del self._days[d]
            self._days[day] = m
        return m

    def minutes(self, m0: int, n: int) -> np.ndarray:
        """(n, N) kW for the local minutes m0 .. m0+n-1."""
        d0, d1 = m0 // MIN_PER_DAY, (m0 + n - 1) // MIN_PER_DAY
        if d0 == d1:
            r = m0 - d0 * MIN_PER_DAY
            return self.day(d0)[r : r + n]
        block = np.concatenate([self.day(d) for d in range(d0, d1 + 1)])
        r = m0 - d0 * MIN_PER_DAY
        return block[r : r + n]

    # ---- stepping -----------------------------------------------------------------------
    def step(self, m: float, dt_min: float) -> np.ndarray:
        """Mean kW over [m, m + dt_min) (minute resolution)."""
        m0 = int(math.floor(m + 1e-9))
        n = max(1, int(round(dt_min)))
        if n == 1:
            d = m0 // MIN_PER_DAY
            return self.day(d)[m0 - d * MIN_PER_DAY]
        return self.minutes(m0, n).mean(axis=0)

    def q(self, p: np.ndarray) -> np.ndarray:
        return p * self.tan_phi
