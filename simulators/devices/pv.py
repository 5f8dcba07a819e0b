"""Rooftop PV: clear-sky irradiance × seeded clearness, plane-of-array transposition, temperature derating.

Per household (seeded by id, persistent): the shared cloud field reaches it with a time lag
(uniform ±12 min, clouds passing over the district) and a small multiplicative ripple (±4 %), so
neighbours are strongly but not perfectly correlated.

Plane of array: beam × cos(angle of incidence) + isotropic diffuse (1 + cos β)/2 + ground reflection
(albedo 0.2). Beam share of the global irradiance falls with the clearness (overcast = diffuse only).
Cell temperature T_out + 25 K · POA/800 W/m², power coefficient -0.4 %/K. AC power
kwp · POA/1000 · derate · efficiency, clipped to [0, kwp]. Returned as generation (kW ≥ 0).
"""

from __future__ import annotations

import numpy as np

from .common import S_PV_PARAMS, id_key, rng
from .params import PVParams
from .weather import Weather


class PVArray:
    def __init__(self, ids: list[str], params: list[PVParams], seed: int):
        self.ids = list(ids)
        self.n = len(ids)
        self.kwp = np.array([p.kwp for p in params])
        tilt = np.radians([p.tilt for p in params])
        self.cos_b, self.sin_b = np.cos(tilt), np.sin(tilt)
        self.azimuth = np.radians([p.azimuth for p in params])
        self.eff = np.array([p.efficiency for p in params])
        lag, per, ph = np.empty(self.n), np.empty(self.n), np.empty(self.n)
        for i, h in enumerate(ids):
            g = rng(seed, S_PV_PARAMS, id_key(h))
            lag[i] = g.uniform(-12, 12)
            per[i] = g.uniform(20, 90)
            ph[i] = g.uniform(0, 2 * np.pi)
        self.lag, self.omega, self.phase = lag, 2 * np.pi / per, ph

    def power(self, m, weather: Weather, t_out=None) -> np.ndarray:
        """Generation (kW ≥ 0) at local minutes m: shape (n,) for scalar m, (T, n) for an array."""
        scalar = np.ndim(m) == 0
        m = np.atleast_1d(np.asarray(m, dtype=float))
        if self.n == 0:
            return np.zeros(0) if scalar else np.zeros((len(m), 0))
        cz, az, dni_cs, dhi_cs = weather.sun(m)
        out = np.zeros((len(m), self.n))
        day = cz > 0
        if np.any(day):
            md = m[day]
            cz, az, dni_cs, dhi_cs = cz[day, None], az[day, None], dni_cs[day, None], dhi_cs[day, None]
            k = weather.clearness(md[:, None], self.lag[None, :])
            k = k * (1.0 + 0.04 * np.sin(self.omega * md[:, None] + self.phase))
            ghi = k * (dni_cs * cz + dhi_cs)
            dni = dni_cs * np.clip((k - 0.2) / 0.8, 0.0, 1.0) ** 1.2
            dhi = np.maximum(ghi - dni * cz, 0.0)
            sz = np.sqrt(np.maximum(1.0 - cz * cz, 0.0))
            cos_aoi = cz * self.cos_b + sz * self.sin_b * np.cos(az - self.azimuth)
            poa = dni * np.maximum(cos_aoi, 0.0) + dhi * 0.5 * (1 + self.cos_b) + ghi * 0.1 * (1 - self.cos_b)
            t_o = weather.temperature(md) if t_out is None else np.broadcast_to(np.atleast_1d(t_out), m.shape)[day]
            t_cell = np.reshape(t_o, (-1, 1)) + poa * (25.0 / 800.0)
            p = self.kwp * poa / 1000.0 * (1.0 - 0.004 * (t_cell - 25.0)) * self.eff
            out[day] = np.clip(p, 0.0, self.kwp)
        return out[0] if scalar else out

    def step(self, m: float, dt_min: float, weather: Weather, t_out: float | None = None) -> np.ndarray:
        """Generation (kW ≥ 0) at the middle of the step [m, m + dt_min)."""
        return self.power(m + 0.5 * dt_min, weather, None if t_out is None else np.array([t_out]))
