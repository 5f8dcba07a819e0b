"""Forecasts the home agents plan with.

The home agent only needs a callable ``forecast(household_id, t0_tick, K, slot_s) -> dict`` with
arrays of length K (slot averages): ``base`` (kW ≥ 0), ``pv`` (kW ≤ 0, generation negative) and
``t_out`` (°C). ``ProfileForecaster`` is the default: a standard-load-profile base load (the
population-independent H0-like day shape of ``devices.baseload`` scaled to the household's annual
energy: no knowledge of the household's own noise, spikes or clock shift), and PV / outdoor
temperature from the shared weather model of ``devices.weather`` evaluated with ``weather_seed``
(equal to the simulation's seed = a perfect weather forecast; another seed = a forecast from an
unrelated weather realisation). A forecaster by the household simulator's authors can replace it
(``MASSim`` accepts any callable with the signature above).
"""

from __future__ import annotations

import numpy as np

from simulators.devices.baseload import day_shape
from simulators.devices.common import MIN_PER_DAY, Clock
from simulators.devices.params import HouseholdSpec
from simulators.devices.pv import PVArray
from simulators.devices.weather import Weather


class ProfileForecaster:
    def __init__(self, specs: list[HouseholdSpec], start: str, time_resolution: float = 0.001,
                 weather_seed: int = 0, latitude: float = 48.1, longitude: float = 11.6, pv_seed: int | None = None):
        self.clock = Clock(start, time_resolution)
        self.weather = Weather(weather_seed, latitude, longitude, self.clock.utc_offset_min)
        self.specs = {s.id: s for s in specs}
        self.mean_kw = {s.id: s.devices.base.annual_kwh / 8760.0 for s in specs}
        pv_ids = [s.id for s in specs if s.devices.pv is not None]
        self.pv_index = {h: i for i, h in enumerate(pv_ids)}
        self.pv = PVArray(pv_ids, [self.specs[h].devices.pv for h in pv_ids],
                          weather_seed if pv_seed is None else pv_seed)
        self._cache: dict = {}

    def _minutes(self, t0_tick: int, K: int, slot_s: int) -> np.ndarray:
        m0 = self.clock.local_min(t0_tick)
        return m0 + np.arange(K * slot_s // 60, dtype=float)

    def _shape(self, mins: np.ndarray) -> np.ndarray:
        days = np.floor_divide(mins, MIN_PER_DAY).astype(np.int64)
        out = np.empty(len(mins))
        for d in np.unique(days):
            sel = days == d
            shape = day_shape(int(d))
            out[sel] = shape[(mins[sel] - d * MIN_PER_DAY).astype(np.int64)]
        return out

    def _common(self, t0_tick: int, K: int, slot_s: int):
        key = (int(t0_tick), K, slot_s)
        c = self._cache.get(key)
        if c is None:
            mins = self._minutes(t0_tick, K, slot_s)
            per = slot_s // 60
            shape = self._shape(mins).reshape(K, per).mean(axis=1)
            sample = mins.reshape(K, per)[:, ::5].ravel()  # PV and temperature every 5 min
            tout = self.weather.temperature(sample).reshape(K, -1).mean(axis=1)
            pv = self.pv.power(sample + 2.5, self.weather)
            pv = pv.reshape(K, -1, pv.shape[-1]).mean(axis=1) if pv.size else np.zeros((K, 0))
            c = (shape, tout, pv)
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = c
        return c

    def __call__(self, hid: str, t0_tick: int, K: int, slot_s: int) -> dict:
        shape, tout, pv = self._common(t0_tick, K, slot_s)
        i = self.pv_index.get(hid)
        return {
            "base": self.mean_kw[hid] * shape,
            "pv": -pv[:, i] if i is not None else np.zeros(K),
            "t_out": tout,
        }
