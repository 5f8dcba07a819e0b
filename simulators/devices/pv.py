"""Rooftop PV with pvlib: clear sky × seeded clearness, Erbs decomposition, Hay–Davies transposition.

Per time and household: global horizontal irradiance = clearness k × pvlib's Ineichen clear-sky GHI
(``Weather.sun``); k comes from the shared cloud field, which reaches each household with a time lag
(uniform ±12 min, clouds passing over the district) and a small multiplicative ripple (±4 %), so
neighbours are strongly but not perfectly correlated (seeded by household id, persistent).
Then, all pvlib: beam/diffuse split by the Erbs correlation, plane-of-array irradiance by the
Hay–Davies model (albedo 0.2), incidence-angle losses of the beam by the physical (Fresnel) IAM,
cell temperature by the Faiman model (u0 = 25, u1 = 6.84, wind 1 m/s), DC power by PVWatts
(γ = -0.4 %/K) times the DC system efficiency (``efficiency``, PVWatts' 14 % losses); AC power by the PVWatts
inverter model (``pvlib.inverter.pvwatts``: nominal ``inverter_efficiency`` 0.96 with its part-load curve,
DC rating = kWp, so AC ≤ 0.96 kWp).
Returned as generation (kW ≥ 0).

A simulation day is evaluated once at every minute's midpoint and cached (like the base load):
``step`` and ``minutes`` return means of those minute values, so the slot forecast equals the
simulation; ``power`` evaluates arbitrary times.
"""

from __future__ import annotations

import math

import numpy as np
import pvlib

from .common import MIN_PER_DAY, S_PV_PARAMS, id_key, rng
from .params import PVParams
from .weather import Weather

ALBEDO = 0.2  # grass / mixed surroundings (pvlib irradiance.SURFACE_ALBEDOS "grass" = 0.20)
# 1/K: crystalline silicon, modelling choice between PVWatts v5's "premium" (-0.35 %/K) and "standard" (-0.47 %/K)
# module types (Dobos 2014, NREL/TP-6A20-62641) and inside pvlib pvwatts_dc's typical -0.2 ... -0.5 %/K
GAMMA_PDC = -0.004
WIND_MS = 1.0  # m/s, for the Faiman cell temperature (pvlib default)


class PVArray:
    def __init__(self, ids: list[str], params: list[PVParams], seed: int):
        self.ids = list(ids)
        self.n = len(ids)
        self.kwp = np.array([p.kwp for p in params])
        self.tilt = np.array([p.tilt for p in params], dtype=float)
        self.azimuth = np.array([p.azimuth for p in params], dtype=float)
        self.eff = np.array([p.efficiency for p in params])
        self.eta_inv = np.array([p.inverter_efficiency for p in params])
        lag, per, ph = np.empty(self.n), np.empty(self.n), np.empty(self.n)
        for i, h in enumerate(ids):
            g = rng(seed, S_PV_PARAMS, id_key(h))
            # modelling choices: each roof sees the clouds up to 12 min earlier or later than the weather
            # series, with a 20-90 min ripple of +-4 % (below) for what one station does not resolve
            lag[i] = g.uniform(-12, 12)
            per[i] = g.uniform(20, 90)
            ph[i] = g.uniform(0, 2 * np.pi)
        self.lag, self.omega, self.phase = lag, 2 * np.pi / per, ph
        self._days: dict[int, np.ndarray] = {}
        self._weather = None

    def power(self, m, weather: Weather) -> np.ndarray:
        """Generation (kW ≥ 0) at local minutes m: shape (n,) for scalar m, (T, n) for an array."""
        scalar = np.ndim(m) == 0
        m = np.atleast_1d(np.asarray(m, dtype=float))
        out = np.zeros((len(m), self.n))
        if self.n == 0:
            return out[0] if scalar else out
        sun = weather.sun(m)
        day = sun.zenith < 90.0
        if np.any(day):
            md = m[day]
            zen, azi = sun.zenith[day, None], sun.azimuth[day, None]
            k = weather.clearness(md[:, None], self.lag[None, :])
            k = k * (1.0 + 0.04 * np.sin(self.omega * md[:, None] + self.phase))
            ghi = k * sun.ghi_cs[day, None]
            split = pvlib.irradiance.erbs(ghi, zen, sun.doy[day, None])
            dni_extra = sun.dni_extra[day, None]
            poa = pvlib.irradiance.get_total_irradiance(
                self.tilt, self.azimuth, zen, azi, split["dni"], ghi, split["dhi"], dni_extra=dni_extra,
                albedo=ALBEDO, model="haydavies")
            aoi = pvlib.irradiance.aoi(self.tilt, self.azimuth, zen, azi)
            g_eff = poa["poa_direct"] * pvlib.iam.physical(aoi) + poa["poa_diffuse"]
            t_cell = pvlib.temperature.faiman(poa["poa_global"], weather.temperature(md)[:, None], WIND_MS)
            pdc = pvlib.pvsystem.pvwatts_dc(g_eff, t_cell, self.kwp, GAMMA_PDC)
            pdc = np.nan_to_num(pdc * self.eff)
            pac = pvlib.inverter.pvwatts(pdc, self.kwp, eta_inv_nom=self.eta_inv)
            out[day] = np.clip(np.nan_to_num(pac), 0.0, self.kwp)
        return out[0] if scalar else out

    # ---- per-minute cache and stepping ---------------------------------------------------------
    def day(self, d: int, weather: Weather) -> np.ndarray:
        """(1440, n) kW at the midpoints of the minutes of local day d (cached; a few days kept)."""
        if weather is not self._weather:
            self._days.clear()
            self._weather = weather
        p = self._days.get(d)
        if p is None:
            p = self.power(d * MIN_PER_DAY + 0.5 + np.arange(MIN_PER_DAY), weather)
            if len(self._days) >= 3:
                for old in sorted(self._days, key=lambda x: abs(x - d), reverse=True)[: len(self._days) - 2]:
                    del self._days[old]
            self._days[d] = p
        return p

    def minutes(self, m0: int, n: int, weather: Weather) -> np.ndarray:
        """(n, n_pv) kW for the local minutes m0 .. m0+n-1."""
        d0, d1 = m0 // MIN_PER_DAY, (m0 + n - 1) // MIN_PER_DAY
        r = m0 - d0 * MIN_PER_DAY
        if d0 == d1:
            return self.day(d0, weather)[r : r + n]
        return np.concatenate([self.day(d, weather) for d in range(d0, d1 + 1)])[r : r + n]

    def step(self, m: float, dt_min: float, weather: Weather) -> np.ndarray:
        """Mean generation (kW ≥ 0) over [m, m + dt_min): minute means on whole minutes."""
        m0 = math.floor(m + 1e-9)
        n = int(round(dt_min))
        if abs(m - m0) > 1e-9 or abs(dt_min - n) > 1e-9 or n < 1:
            return self.power(m + 0.5 * dt_min, weather)
        if n == 1:
            d = m0 // MIN_PER_DAY
            return self.day(d, weather)[m0 - d * MIN_PER_DAY]
        return self.minutes(m0, n, weather).mean(axis=0)
