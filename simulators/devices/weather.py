"""Seeded synthetic weather shared by a population: outdoor temperature, clearness, sun position.

Everything is a deterministic function of (seed, local day) so a forecast reproduces the simulation.

* Outdoor temperature: seasonal cosine (central-European climate: ≈ -0.5 °C mean in late January,
  ≈ 19 °C in late July) + daily cosine (max at 15:00, larger in summer) + a day-to-day anomaly
  (moving-average approximation of an AR(1), φ = 0.75, σ ≈ 3.5 K) + an hourly AR(1) noise.
* Clearness k (ratio of global irradiance to clear sky, 0.03…1): a daily latent weather state
  (moving-average over 5 days, sunnier in summer) mapped through a logistic, plus hourly AR(1)
  variability that is largest on mixed days.
* Sun position and clear sky: pvlib (NREL SPA in numpy; Ineichen–Perez clear-sky model with the
  Linke turbidity climatology pvlib ships, interpolated to the day; Kasten–Young air mass).
All hourly values are interpolated linearly to the minute.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import pvlib

from .common import MIN_PER_DAY, S_WEATHER_DAY, doy_array, rng

# Temperature. _T_MEAN 9.3 °C: DWD area mean of Germany 1991-2020 (9.3 °C; Munich-Stadt 1981-2010: 9.7 °C,
# Statistisches Amt München, "Das Münchner Wetter 2020"). _T_SEASON_AMP 9.8 K: modelling choice, gives
# ≈ -0.5 °C in late January and ≈ 19 °C in late July, a little more continental than the German means of
# 1991-2020 (DWD: January 0.9 °C, July 18.3 °C), as in southern Bavaria. _T_COLDEST_DOY 20 (about 20
# January): modelling choice (the usual ~4-week lag of the coldest days after the solstice).
_T_MEAN, _T_SEASON_AMP, _T_COLDEST_DOY = 9.3, 9.8, 20
# Day-to-day anomaly (φ, σ) and hourly noise σ: modelling choices, not fitted to station data.
_T_ANOM_PHI, _T_ANOM_SD, _T_HOURLY_SD = 0.75, 3.5, 0.8
# Clearness. μ0: annual GHI ≈ 1,180 kWh/m² at Munich (DWD 1991–2020 annual global irradiation, southern Bavaria
# 1,150–1,250); φ, σ and the seasonal swing: modelling choices, tuned so that the GHI band pv.ghi_kwh_m2 of
# cosim.calibrate (DWD) holds, not fitted to measured clearness statistics.
_C_PHI, _C_SD, _C_MU0, _C_MU_SEASON = 0.5, 1.3, 0.7, 0.75
_C_SEASON_PEAK_DOY = 172  # the clearest days around the June solstice (21 June, day 172): the same modelling choice
_MA_LEN = 10  # days of the moving-average approximation of the AR(1) (truncation, not a statistic)
_ALTITUDE_M = 500.0  # site altitude for the clear sky: assumption, a round figure near Munich's ≈ 520 m a.s.l.
_PRESSURE_PA = pvlib.atmosphere.alt2pres(_ALTITUDE_M)


class Sun(NamedTuple):
    """Per time: zenith and azimuth (degrees, azimuth clockwise from north), clear-sky GHI (W/m²),
    extraterrestrial normal irradiance (W/m²), day of year."""

    zenith: np.ndarray
    azimuth: np.ndarray
    ghi_cs: np.ndarray
    dni_extra: np.ndarray
    doy: np.ndarray


def _ma_weights(phi: float, n: int) -> np.ndarray:
    w = phi ** np.arange(n)
    return w / math.sqrt(float(np.sum(w**2)))  # unit variance


class Weather:
    """Shared weather of one location. Methods take local minutes since 1970 (scalar or array)."""

    # default location: Munich (48.1° N, 11.6° E), CET (UTC+60 min)
    def __init__(self, seed: int, latitude: float = 48.1, longitude: float = 11.6, utc_offset_min: float = 60.0):
        self.seed, self.latitude, self.longitude = int(seed), float(latitude), float(longitude)
        self.utc_offset_min = float(utc_offset_min)
        self._raw: dict[int, tuple] = {}
        self._hourly: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._last_hourly = None
        self._wt = _ma_weights(_T_ANOM_PHI, _MA_LEN)
        self._wc = _ma_weights(_C_PHI, _MA_LEN // 2)
        self._tl = None
        self._ghi: dict[int, np.ndarray] = {}

    # ---- per-day draws and hourly series -------------------------------------------------
    def _draws(self, day: int):
        r = self._raw.get(day)
        if r is None:
            g = rng(self.seed, S_WEATHER_DAY, day + 1_000_000)
            r = (g.standard_normal(), g.standard_normal(24), g.standard_normal(), g.standard_normal(24))
            if len(self._raw) > 400:
                self._raw.clear()
            self._raw[day] = r
        return r

    def _anomaly(self, day: int) -> float:
        return _T_ANOM_SD * sum(w * self._draws(day - k)[0] for k, w in enumerate(self._wt))

    def _cloud_latent(self, day: int) -> float:
        doy = doy_array(np.array([day]))[0]
        mu = _C_MU0 + _C_MU_SEASON * math.cos(2 * math.pi * (doy - _C_SEASON_PEAK_DOY) / 365.0)
        return mu + _C_SD * sum(w * self._draws(day - k)[2] for k, w in enumerate(self._wc))

    @staticmethod
    def _ar(x: np.ndarray, phi: float) -> np.ndarray:
        y = np.empty_like(x)
        y[0] = x[0]
        c = math.sqrt(1 - phi * phi)
        for i in range(1, len(x)):
            y[i] = phi * y[i - 1] + c * x[i]
        return y

    def _day_hourly(self, day: int):
        """Temperature and clearness at hours 0..23 of a local day."""
        h = self._hourly.get(day)
        if h is not None:
            return h
        _, tn, _, cn = self._draws(day)
        hours = np.arange(24.0)
        doy = doy_array(np.array([day]))[0] + hours / 24.0
        season = _T_MEAN - _T_SEASON_AMP * np.cos(2 * np.pi * (doy - _T_COLDEST_DOY) / 365.0)
        # half the daily range: 2.8 K in winter, 5.6 K in summer; modelling choice, near Munich's mean daily
        # max/min of about 2/-4 °C in January and 23/13 °C in July (DWD / Statistisches Amt München, as quoted
        # in München Wiki, "Klima in München"); maximum at 15:00 and the hourly AR(1) φ 0.8: modelling choices
        amp = 4.2 - 1.4 * np.cos(2 * np.pi * (doy - _T_COLDEST_DOY) / 365.0)
        a0, am, ap = self._anomaly(day), self._anomaly(day - 1), self._anomaly(day + 1)
        frac = (hours - 12.0) / 24.0
        anom = np.where(frac >= 0, a0 + frac * (ap - a0), a0 - frac * (am - a0))
        temp = season + amp * np.cos(2 * np.pi * (hours - 15.0) / 24.0) + anom + _T_HOURLY_SD * self._ar(tn, 0.8)
        # logistic map, hourly variability (0.22, AR(1) φ 0.7) and the bounds 0.03..1: modelling choices, tuned
        # with the constants above for the DWD GHI band (cosim.calibrate), not fitted to measured clearness data
        kd = 0.12 + 0.86 / (1.0 + math.exp(-1.6 * self._cloud_latent(day)))
        k = np.clip(kd + 4 * kd * (1 - kd) * 0.22 * self._ar(cn, 0.7), 0.03, 1.0)
        if len(self._hourly) > 400:
            self._hourly.clear()
        self._hourly[day] = (temp, k)
        return temp, k

    def hourly(self, day0: int, day1: int):
        """Hourly (temperature, clearness) from hour 0 of day0 to hour 0 of day1+1 (inclusive)."""
        key = (day0, day1)
        if self._last_hourly is not None and self._last_hourly[0] == key:
            return self._last_hourly[1]
        parts = [self._day_hourly(d) for d in range(day0, day1 + 2)]
        t = np.concatenate([p[0] for p in parts[:-1]] + [parts[-1][0][:1]])
        k = np.concatenate([p[1] for p in parts[:-1]] + [parts[-1][1][:1]])
        self._last_hourly = (key, (t, k))
        return t, k

    def _interp(self, m, which: int, lag=0.0):
        m = np.asarray(m, dtype=float)
        mm = m - lag
        d0 = int(np.floor(np.min(mm) / MIN_PER_DAY))
        d1 = int(np.floor(np.max(mm) / MIN_PER_DAY))
        series = self.hourly(d0, d1)[which]
        grid = d0 * MIN_PER_DAY + 60.0 * np.arange(len(series))
        return np.interp(mm, grid, series)

    # ---- public ---------------------------------------------------------------------------
    def temperature(self, m):
        """Outdoor temperature, °C (a float for a scalar m: the per-step path)."""
        if np.ndim(m) == 0:
            x = float(m)
            d = math.floor(x / MIN_PER_DAY)
            t = self.hourly(d, d)[0]
            h = (x - d * MIN_PER_DAY) / 60.0
            i = min(int(h), 23)
            return float(t[i] + (h - i) * (t[i + 1] - t[i]))
        return self._interp(m, 0)

    def clearness(self, m, lag=0.0):
        """Clearness index (global / clear-sky global), optionally at time m - lag (minutes)."""
        return self._interp(m, 1, lag)

    def sun(self, m) -> Sun:
        """Sun position and clear-sky irradiance (pvlib) at local minutes m (array)."""
        m = np.atleast_1d(np.asarray(m, dtype=float))
        utc_ns = np.rint((m - self.utc_offset_min) * 60e9).astype("int64")
        times = pd.DatetimeIndex(utc_ns.astype("datetime64[ns]"), tz="UTC")
        sp = pvlib.solarposition.get_solarposition(times, self.latitude, self.longitude, method="nrel_numpy")
        zen, app = sp["zenith"].to_numpy(), sp["apparent_zenith"].to_numpy()
        doy = times.dayofyear.to_numpy()
        dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(doy), dtype=float)
        am = pvlib.atmosphere.get_absolute_airmass(pvlib.atmosphere.get_relative_airmass(app), _PRESSURE_PA)
        with np.errstate(divide="ignore", invalid="ignore"):  # night rows (sun below the horizon)
            cs = pvlib.clearsky.ineichen(app, am, self._linke()[doy - 1], _ALTITUDE_M, dni_extra)
        ghi = np.nan_to_num(np.asarray(cs["ghi"], dtype=float))
        return Sun(zen, sp["azimuth"].to_numpy(), ghi, dni_extra, doy)

    def ghi_minutes(self, m0: int, n: int) -> np.ndarray:
        """Global horizontal irradiance (W/m², shared cloud field, no lag) at the midpoints of the local
        minutes m0 .. m0+n-1; whole days are evaluated once and cached."""
        d0, d1 = m0 // MIN_PER_DAY, (m0 + n - 1) // MIN_PER_DAY
        parts = []
        for d in range(d0, d1 + 1):
            g = self._ghi.get(d)
            if g is None:
                m = d * MIN_PER_DAY + 0.5 + np.arange(MIN_PER_DAY)
                g = self.clearness(m) * self.sun(m).ghi_cs
                if len(self._ghi) > 4:
                    self._ghi.clear()
                self._ghi[d] = g
            parts.append(g)
        r = m0 - d0 * MIN_PER_DAY
        return (parts[0] if len(parts) == 1 else np.concatenate(parts))[r : r + n]

    def _linke(self) -> np.ndarray:
        """Daily Linke turbidity (doy 1..366) of the location: pvlib's monthly climatology, interpolated."""
        if self._tl is None:
            days = pd.date_range("2024-01-01", periods=366, freq="D", tz="UTC")
            self._tl = pvlib.clearsky.lookup_linke_turbidity(days, self.latitude, self.longitude).to_numpy()
        return self._tl
