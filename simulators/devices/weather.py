"""Seeded synthetic weather shared by a population: outdoor temperature, clearness, sun position.

Everything is a deterministic function of (seed, local day) so a forecast reproduces the simulation.

* Outdoor temperature: seasonal cosine (central-European climate: ≈ -0.5 °C mean in late January,
  ≈ 19 °C in late July) + daily cosine (max at 15:00, larger in summer) + a day-to-day anomaly
  (moving-average approximation of an AR(1), φ = 0.75, σ ≈ 3.5 K) + an hourly AR(1) noise.
* Clearness k (ratio of global irradiance to clear sky, 0.03…1): a daily latent weather state
  (moving-average over 5 days, sunnier in summer) mapped through a logistic, plus hourly AR(1)
  variability that is largest on mixed days.
* Sun position: NOAA low-precision formulas (equation of time, declination), accurate to ≈ 0.5°.
* Clear sky: Meinel beam attenuation with Kasten–Young air mass, plus a 12 % diffuse share.
All hourly values are interpolated linearly to the minute.
"""

from __future__ import annotations

import math

import numpy as np

from .common import MIN_PER_DAY, S_WEATHER_DAY, doy_array, rng

_T_MEAN, _T_SEASON_AMP, _T_COLDEST_DOY = 9.3, 9.8, 20
_T_ANOM_PHI, _T_ANOM_SD, _T_HOURLY_SD = 0.75, 3.5, 0.8
_C_PHI, _C_SD, _C_MU0, _C_MU_SEASON = 0.5, 1.3, 0.15, 0.75
_MA_LEN = 10


def _ma_weights(phi: float, n: int) -> np.ndarray:
    w = phi ** np.arange(n)
    return w / math.sqrt(float(np.sum(w**2)))  # unit variance


def solar_position(utc_min: np.ndarray, latitude: float, longitude: float):
    """cos(zenith) and sun azimuth (rad, from north, clockwise) at UTC minutes since 1970."""
    utc_min = np.asarray(utc_min, dtype=float)
    day = np.floor_divide(utc_min, MIN_PER_DAY)
    mod = utc_min - day * MIN_PER_DAY
    doy = doy_array(day.astype(np.int64))
    g = 2 * np.pi / 365.0 * (doy - 1 + (mod / 60.0 - 12) / 24.0)
    eqt = 229.18 * (
        0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g)
    )
    decl = (
        0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g)
    )
    tst = mod + eqt + 4.0 * longitude
    ha = np.radians(tst / 4.0 - 180.0)
    lat = math.radians(latitude)
    cos_z = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(ha)
    az = np.arctan2(np.sin(ha), np.cos(ha) * math.sin(lat) - np.tan(decl) * math.cos(lat)) + np.pi
    return np.clip(cos_z, -1.0, 1.0), az


def clear_sky(cos_z: np.ndarray, doy: np.ndarray):
    """Clear-sky direct normal and diffuse horizontal irradiance, W/m²."""
    cz = np.maximum(cos_z, 0.0)
    zen = np.degrees(np.arccos(np.clip(cos_z, -1, 1)))
    i0 = 1361.0 * (1 + 0.033 * np.cos(2 * np.pi * doy / 365.0))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        am = 1.0 / (cz + 0.50572 * np.maximum(96.07995 - zen, 1e-3) ** -1.6364)
        dni = np.where(cz > 0, i0 * 0.7 ** (am**0.678), 0.0)
    dhi = 0.12 * dni * cz / 0.88
    return dni, dhi


class Weather:
    """Shared weather of one location. Methods take local minutes since 1970 (scalar or array)."""

    def __init__(self, seed: int, latitude: float = 48.1, longitude: float = 11.6, utc_offset_min: float = 60.0):
        self.seed, self.latitude, self.longitude = int(seed), float(latitude), float(longitude)
        self.utc_offset_min = float(utc_offset_min)
        self._raw: dict[int, tuple] = {}
        self._hourly: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._last_hourly = None
        self._wt = _ma_weights(_T_ANOM_PHI, _MA_LEN)
        self._wc = _ma_weights(_C_PHI, _MA_LEN // 2)

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
        mu = _C_MU0 + _C_MU_SEASON * math.cos(2 * math.pi * (doy - 172) / 365.0)
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
        amp = 4.2 - 1.4 * np.cos(2 * np.pi * (doy - _T_COLDEST_DOY) / 365.0)
        a0, am, ap = self._anomaly(day), self._anomaly(day - 1), self._anomaly(day + 1)
        frac = (hours - 12.0) / 24.0
        anom = np.where(frac >= 0, a0 + frac * (ap - a0), a0 - frac * (am - a0))
        temp = season + amp * np.cos(2 * np.pi * (hours - 15.0) / 24.0) + anom + _T_HOURLY_SD * self._ar(tn, 0.8)
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
        """Outdoor temperature, °C."""
        return self._interp(m, 0)

    def clearness(self, m, lag=0.0):
        """Clearness index (global / clear-sky global), optionally at time m - lag (minutes)."""
        return self._interp(m, 1, lag)

    def sun(self, m):
        """(cos zenith, azimuth rad from north, clear-sky DNI, clear-sky DHI) at local minutes m."""
        if np.ndim(m) == 0 or (np.ndim(m) == 1 and len(m) == 1):
            r = self._sun_scalar(float(np.reshape(m, -1)[0]))
            return tuple(np.array([v]) for v in r)
        m = np.asarray(m, dtype=float)
        utc = m - self.utc_offset_min
        cz, az = solar_position(utc, self.latitude, self.longitude)
        doy = doy_array(np.floor_divide(utc, MIN_PER_DAY).astype(np.int64))
        dni, dhi = clear_sky(cz, doy)
        return cz, az, dni, dhi

    def _sun_scalar(self, m: float):
        """Same as ``sun`` for one time, in plain floats (the per-step path)."""
        utc = m - self.utc_offset_min
        day = math.floor(utc / MIN_PER_DAY)
        mod = utc - day * MIN_PER_DAY
        doy = int(doy_array(np.array([day]))[0]) if day != getattr(self, "_sd", None) else self._sdoy
        self._sd, self._sdoy = day, doy
        g = 2 * math.pi / 365.0 * (doy - 1 + (mod / 60.0 - 12) / 24.0)
        c1, s1, c2, s2 = math.cos(g), math.sin(g), math.cos(2 * g), math.sin(2 * g)
        c3, s3 = math.cos(3 * g), math.sin(3 * g)
        eqt = 229.18 * (0.000075 + 0.001868 * c1 - 0.032077 * s1 - 0.014615 * c2 - 0.040849 * s2)
        decl = 0.006918 - 0.399912 * c1 + 0.070257 * s1 - 0.006758 * c2 + 0.000907 * s2 - 0.002697 * c3 + 0.00148 * s3
        ha = math.radians((mod + eqt + 4.0 * self.longitude) / 4.0 - 180.0)
        lat = math.radians(self.latitude)
        cz = max(-1.0, min(1.0, math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)))
        az = math.atan2(math.sin(ha), math.cos(ha) * math.sin(lat) - math.tan(decl) * math.cos(lat)) + math.pi
        if cz <= 0:
            return cz, az, 0.0, 0.0
        zen = math.degrees(math.acos(cz))
        i0 = 1361.0 * (1 + 0.033 * math.cos(2 * math.pi * doy / 365.0))
        am = 1.0 / (cz + 0.50572 * max(96.07995 - zen, 1e-3) ** -1.6364)
        dni = i0 * 0.7 ** (am**0.678)
        return cz, az, dni, 0.12 * dni * cz / 0.88
