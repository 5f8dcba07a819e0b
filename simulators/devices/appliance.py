"""Shiftable appliances (washing machine, dishwasher, …): a cycle on some days inside a time window.

Each appliance instance runs its per-minute power profile once on each local day that has a cycle
(``cycles_per_week`` of 7 days, evenly spread by ``day_offset``: ``params.has_cycle``; 7 = every day),
starting at or after window_start and ending by window_end; on the other days it does not run.
Default start: window_start. A requested start
(``app_start``, converted to local minutes) applies to the cycle of the day it falls on when the whole
cycle fits in that day's window, otherwise that day runs the default. Requests persist until changed
(they only ever match the day they fall on). A cycle not started by its latest start
(window_end - cycle length) is started then (guard), so it always runs inside its window; a day whose
latest start already passed when the simulation began is skipped.
"""

from __future__ import annotations

import numpy as np

from .common import FIXED, MIN_PER_DAY, Clock, wall_day
from .params import ApplianceParams, has_cycle, minutes_of_day

PENDING, RUNNING, DONE = 0, 1, 2


class Appliances:
    def __init__(self, owner: list[int], params: list[ApplianceParams], clock: Clock | None = None):
        """owner[k]: population index of the household owning instance k. Windows are wall-clock times
        of the ``clock``'s zone; the cycles run on its linear axis."""
        self.clock = clock or FIXED
        self._windows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.owner = np.asarray(owner, dtype=np.int64)
        self.n = len(params)
        self.names = [p.name for p in params]
        self.length = np.array([len(p.profile_kw) for p in params], dtype=np.int64)
        lmax = int(self.length.max()) if self.n else 1
        prof = np.zeros((self.n, lmax))
        for k, p in enumerate(params):
            prof[k, : len(p.profile_kw)] = p.profile_kw
        self.profile = prof
        self.cum = np.concatenate([np.zeros((self.n, 1)), np.cumsum(prof, axis=1)], axis=1)
        self.peak = prof.max(axis=1) if self.n else np.zeros(0)
        self.ws = np.array([minutes_of_day(p.window_start) for p in params], dtype=float)
        self.we = np.array([minutes_of_day(p.window_end) for p in params], dtype=float)
        self.params = list(params)
        self._cycle_days: dict[int, np.ndarray] = {}
        self.state = np.full(self.n, PENDING, dtype=np.int64)
        self.day = np.full(self.n, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.start_min = np.full(self.n, np.nan)
        self.request = np.full(self.n, np.nan)  # requested start, local minutes
        self.runs = {}  # (instance, day) -> start minute: the run log (tests, KPIs)

    def window(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window start, window end, latest start) per instance on wall-clock day ``day``, linear minutes."""
        w = self._windows.get(day)
        if w is None:
            d0 = day * MIN_PER_DAY
            lin = self.clock.linear_min
            w0, w1 = lin(d0 + self.ws), lin(d0 + self.we)
            w = self._windows[day] = (w0, w1, w1 - self.length)
            if len(self._windows) > 4:
                del self._windows[min(self._windows)]
        return w

    def has_cycle(self, day: int) -> np.ndarray:
        """Per instance: whether wall-clock day ``day`` has a cycle."""
        c = self._cycle_days.get(day)
        if c is None:
            c = self._cycle_days[day] = np.array([has_cycle(p, day) for p in self.params], dtype=bool)
            if len(self._cycle_days) > 8:
                del self._cycle_days[min(self._cycle_days)]
        return c

    def planned(self, day: int) -> np.ndarray:
        """Start minute (local) planned for the cycle of ``day``: valid request or window start."""
        w0, _, latest = self.window(day)
        r = self.request
        ok = (~np.isnan(r)) & (r >= w0) & (r <= latest)
        return np.where(ok, r, w0)

    def step(self, m: float, dt_min: float) -> np.ndarray:
        """Power (kW) per instance, mean over [m, m + dt_min)."""
        if self.n == 0:
            return np.zeros(0)
        day = wall_day(self.clock, m)
        w0, _, latest = self.window(day)
        new = self.day != day
        if new.any():
            first = self.day[new] < -10**9
            st = np.where(self.state[new] == RUNNING, RUNNING, PENDING)  # (cannot run over midnight)
            # first day: a window whose latest start already passed is skipped
            late = first & (m > latest[new] + 1e-9)
            none = ~self.has_cycle(day)[new] & (st == PENDING)  # no cycle that day
            self.state[new] = np.where(late | none, DONE, st)
            self.day[new] = day
        start = (
            (self.state == PENDING)
            & (m >= w0 - 1e-9)
            & ((m >= self.planned(day) - 1e-9) | (m + dt_min > latest + 1e-9))
        )
        if start.any():
            self.state[start] = RUNNING
            self.start_min[start] = m
            for k in np.flatnonzero(start):
                self.runs[(int(k), day)] = m
        p = np.zeros(self.n)
        run = self.state == RUNNING
        if run.any():
            k = np.flatnonzero(run)
            el = m - self.start_min[k]
            L = self.length[k]
            if abs(dt_min - 1.0) < 1e-9:
                s = np.floor(el + 1e-9).astype(np.int64)
                p[k] = np.where(s < L, self.profile[k, np.minimum(s, self.profile.shape[1] - 1)], 0.0)
            else:  # exact mean of the piecewise-constant profile over [el, el + dt)
                p[k] = (self._energy(k, el + dt_min) - self._energy(k, el)) / dt_min
            done = k[el + dt_min >= L - 1e-9]
            self.state[done] = DONE
        return p

    def _energy(self, k: np.ndarray, x: np.ndarray) -> np.ndarray:
        """kW·min of instances k from their cycle start to x minutes into it."""
        x = np.clip(x, 0.0, self.length[k])
        i = np.minimum(np.floor(x + 1e-9).astype(np.int64), self.length[k])
        frac = np.maximum(x - i, 0.0)
        nxt = self.profile[k, np.minimum(i, self.profile.shape[1] - 1)]
        return self.cum[k, i] + np.where(i < self.length[k], frac * nxt, 0.0)
