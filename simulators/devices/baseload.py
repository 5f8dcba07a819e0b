"""Seeded synthetic household base load at 1-minute resolution.

Mean shape: the BDEW H0 standard load profile with its dynamisation (demandlib's ``h0_dyn``: 15-minute
values of the calendar year, weekdays/Saturdays/Sundays and seasons; public holidays not marked),
normalised to an annual mean of 1 (``day_shape``). Every household's expected load is this shape times
``annual_kwh / 8760`` kW, so the population mean follows H0.

Around it, per household (seeded by household id, persistent): a clock shift (σ 25 min), a morning-
vs-evening emphasis and a noise strength. Per household and day: a daily level factor (lognormal,
σ 0.1), an AR(1) minute noise (lognormal, mean 1) on the continuous part, and appliance events
(``APPLIANCES``: kettle, hob, oven, small appliances, laundry heating, and showers and taps on an
instantaneous water heater where the home has one) with nameplate powers and durations, started at
times drawn from the household's shifted shape. The events carry their expected energy; the continuous
part the rest of ``annual_kwh``, except the water heater's showers and taps (by household size): they
come on top of ``annual_kwh``, the home's electricity without water heating (``water_heater_kwh``). The
events set the 1-minute peaks and, being rare and short, the diversity between homes: the 15-minute
coincidence factor of many homes follows the Kerber / DIN 18015-1 curve
g(n) = g∞ + (1 - g∞)·n^(-3/4), g∞ ≈ 0.07 (``cosim calibrate``).
Reactive power from the power factor (inductive).

Each local day is generated once for the whole population as a (1440, N) matrix; a step reads a row.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .common import FIXED, MIN_PER_DAY, S_BASE_DAY, S_BASE_PARAMS, Clock, id_key, rng, wall_rows
from .params import BaseLoadParams

# Lag-1 autocorrelation per minute of the AR(1) noise on the continuous part (correlation time ≈ 10 min):
# modelling choice, not fitted to measured 1-min household data; the 15-min diversity it contributes to is
# checked against the Kerber / DIN 18015-1 coincidence band of cosim.calibrate.
_NOISE_PHI = 0.9
REF_KWH = 3500.0  # event rates are per day for a household of this annual consumption (scaled)
# Water-heater events (``water_heater``) come on top of ``annual_kwh`` (the home's electricity without water
# heating), at rates per day of one draw unit: shower 0.3 and tap 1.0 draws give 0.3 × 2.45 + 1.0 × 0.35 =
# 1.09 kWh/day = 397 kWh a year (about one person's: Stromspiegel 2017 reported +400 kWh per person). A home
# draws WATER_HEATER_KWH_BY_SIZE / 397 units.
# Electric water heating by household size (1, 2, 3, 4, 5+ persons), kWh/a: Stromspiegel für Deutschland 2021/22
# (co2online et al.), flats in multi-family houses, the mean with electric water heating minus the mean
# without (2,000 - 1,500 / 3,000 - 2,100 / 4,000 - 2,600 / 4,500 - 2,900 / 5,200 - 3,500 kWh), as tabulated by
# stromauskunft.de ("Wie viel Strom verbraucht eine Wohnung?"); for 5 persons in houses +1,700 kWh as well
# (die-stromsparinitiative.de, 5-Personen-Haushalt). Not linear in persons: the 400 kWh per person used before
# 2026-12-07 gave 2,000 kWh for 5 persons and 400 for one.
WATER_HEATER_KWH_BY_SIZE = (500.0, 900.0, 1400.0, 1600.0, 1700.0)
REF_PERSONS = 3  # persons of a home whose size is not given (BDEW's 3,500 kWh reference home: 3 persons)
MAX_EVENT_SHARE = 0.8  # modelling choice: the continuous part keeps at least 20 % of the energy


def ar1(x: np.ndarray, c: float, phi: float, z0: np.ndarray) -> np.ndarray:
    """y[:, k] = c·x[:, k] + phi·y[:, k-1] along the rows of *x*, with phi·y[:, -1] = *z0*: what
    ``scipy.signal.lfilter([c], [1, -phi], x, axis=1, zi=z0[:, None])[0]`` computes, the same
    operations in the same order (bit for bit, ``tests/test_devices.py``), without importing
    ``scipy.signal``, which adds 0.4-0.8 s to every process's start (``python -X importtime``)."""
    y = np.empty_like(x)
    cx = c * x
    prev = z0 + cx[:, 0]
    y[:, 0] = prev
    for k in range(1, x.shape[1]):
        prev = phi * prev + cx[:, k]
        y[:, k] = prev
    return y


class Appliance(NamedTuple):
    name: str
    per_day: float  # events per day at REF_KWH and an average day (water heater: per draw unit and day)
    kw: tuple[float, float]  # uniform power range
    minutes: tuple[int, int]  # uniform integer duration range
    water_heater: bool  # only in homes with an instantaneous water heater


# Nameplate ratings: kettles 2-3 kW; hob 1-3 plates of 1.2-2.0 kW (up to ~5 kW together); ovens
# 2.0-3.5 kW; a festive meal with hob and oven together 6-10 kW (a 4-plate cooker with oven is
# rated ~10-11 kW, the DIN 18015-1 connection value for an electric cooker); microwave/toaster/hair
# dryer/vacuum 0.8-2 kW; washing machine and dishwasher heating phases ~2 kW; instantaneous water
# heaters 18/21/24 kW (DIN 18015-1 connection sizes). Rates and durations are modelling choices, set so that:
# cooking (hob, oven, kettle) is 568 kWh a year, 16 % of a 3,500 kWh household's electricity (14 % without
# the kettle), above the 9-13 % of HEA/BDEW, "Stromverbrauch im Haushalt"; the water heater's rates per draw
# unit as above (WATER_HEATER_KWH_BY_SIZE) (Destatis/BDEW: about a quarter of German homes heat water electrically and
# decentrally, cf. cosim.population).
APPLIANCES = (
    Appliance("kettle", 1.5, (2.0, 3.0), (2, 4), False),
    Appliance("hob", 0.6, (1.2, 5.0), (10, 40), False),
    Appliance("oven", 0.2, (2.0, 3.5), (15, 45), False),
    Appliance("hob_and_oven", 0.06, (6.0, 10.0), (20, 60), False),
    Appliance("small", 2.0, (0.8, 2.0), (2, 15), False),
    Appliance("laundry_heating", 0.3, (1.8, 2.5), (10, 30), False),
    Appliance("shower", 0.3, (18.0, 24.0), (4, 10), True),
    Appliance("tap", 1.0, (18.0, 24.0), (1, 1), True),
)
_RATE = np.array([a.per_day for a in APPLIANCES])
_KW = np.array([a.kw for a in APPLIANCES])
_MIN = np.array([a.minutes for a in APPLIANCES])
_WH = np.array([a.water_heater for a in APPLIANCES])
_E_EVENT = _KW.mean(axis=1) * _MIN.mean(axis=1) / 60.0  # expected kWh per event


_WH_UNIT_KWH = float(_RATE[_WH] @ _E_EVENT[_WH]) * 365.0  # expected kWh a year of one draw unit


def water_heater_kwh(persons: int | None) -> float:
    """Expected annual kWh of an instantaneous water heater in a home of *persons* (None: REF_PERSONS; 5 and
    more: the 5+ value)."""
    return WATER_HEATER_KWH_BY_SIZE[min(persons or REF_PERSONS, len(WATER_HEATER_KWH_BY_SIZE)) - 1]


# demandlib's default BDEW seasons (ElecSlp): (month, day) ranges, inclusive
H0_SEASONS = {"summer": [((5, 15), (9, 14))], "transition": [((3, 21), (5, 14)), ((9, 15), (10, 31))],
              "winter": [((1, 1), (3, 20)), ((11, 1), (12, 31))]}


@functools.lru_cache(maxsize=4)
def _h0_year(year: int) -> np.ndarray:
    """(days, 1440) BDEW H0 with dynamisation of a calendar year at minute resolution, annual mean 1.

    The same numbers as demandlib's ``ElecSlp(year)`` profile ``h0_dyn`` (no holidays; tested equal),
    taken from demandlib's BDEW table and dynamisation function without building every other
    standard profile of the year (which costs ~1 s per year) and without ElecSlp's process-wide
    ``warnings.simplefilter("error")`` (demandlib 0.2.2)."""
    import pandas as pd
    from demandlib.bdew import elec_slp

    tab = pd.read_csv(Path(elec_slp._bdew_datapath) / "selp_series.csv", usecols=["period", "weekday", "h0"])
    h0 = {(p, int(w)): g.to_numpy() for (p, w), g in tab.groupby(["period", "weekday"], sort=False)["h0"]}
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    season = np.empty(len(days), dtype=object)
    for name, ranges in H0_SEASONS.items():
        for (m0, d0), (m1, d1) in ranges:
            season[(days >= pd.Timestamp(year, m0, d0)) & (days <= pd.Timestamp(year, m1, d1))] = name
    q = np.concatenate([h0[(s, int(d.weekday()) + 1)] for s, d in zip(season, days)])
    q = q / q.sum() * elec_slp.dynamisation_function(pd.date_range(days[0], periods=len(q), freq="15min")).to_numpy()
    return np.repeat(q / q.mean(), 15).reshape(-1, MIN_PER_DAY)


def day_shape(day: int) -> np.ndarray:
    """Population-independent shape of a local day (1440,): BDEW H0, annual mean 1."""
    date = _dt.date(1970, 1, 1) + _dt.timedelta(days=int(day))
    return _h0_year(date.year)[date.timetuple().tm_yday - 1]


_EVENING = np.cos(2 * np.pi * (np.arange(MIN_PER_DAY) / MIN_PER_DAY - 20.0 / 24.0))  # centred on H0's evening peak


class BaseLoad:
    """Base load of a population (every household has one)."""

    def __init__(self, ids: list[str], params: list[BaseLoadParams], seed: int, clock: Clock | None = None):
        self.ids = list(ids)
        self.clock = clock or FIXED  # H0 is by local time: rows are read at the wall-clock minute
        self.seed = int(seed)
        self.n = len(ids)
        self.keys = [id_key(h) for h in ids]
        # the shiftable appliances' energy (simulators.devices.appliance) is part of annual_kwh: the base load
        # carries the rest, at least half of it (modelling choice: a guard against tiny annual_kwh)
        self.mean_kw = np.array([max(p.annual_kwh - p.appliance_kwh, 0.5 * p.annual_kwh) / 8760.0 for p in params])
        pf = np.array([p.power_factor for p in params])
        self.tan_phi = np.sqrt(1.0 - pf**2) / pf
        shift, emph, sig = np.empty(self.n), np.empty(self.n), np.empty(self.n)
        for i, k in enumerate(self.keys):
            g = rng(self.seed, S_BASE_PARAMS, k)
            # modelling choices: a household's clock (sd 25 min, within +-75 min), its morning/evening
            # emphasis and its noise strength; with them the 15-min diversity of cosim.calibrate holds
            shift[i] = np.clip(g.normal(0, 25), -75, 75)
            emph[i] = g.uniform(-0.25, 0.25)
            sig[i] = g.uniform(0.2, 0.4)
        self.shift = np.rint(shift).astype(np.int64)
        self.emph, self.sigma = emph, sig
        # appliance event rates per household (events/day on an average day), scaled with consumption; the
        # water heater's by household size, on top of annual_kwh (its energy is not taken from the continuous part)
        units = np.array([water_heater_kwh(p.persons) / _WH_UNIT_KWH if p.instant_water_heater else 0.0
                          for p in params])
        rate = _RATE[None, :] * (self.mean_kw * 8760.0 / REF_KWH)[:, None] * ~_WH[None, :]
        e_day = rate @ _E_EVENT
        cap = MAX_EVENT_SHARE * self.mean_kw * 24.0
        rate *= np.minimum(1.0, cap / np.maximum(e_day, 1e-12))[:, None]
        self.event_share = (rate @ _E_EVENT) / (self.mean_kw * 24.0)  # of annual_kwh
        self.rate = rate + _RATE[None, :] * units[:, None] * _WH[None, :]
        self.water_heater_kw = (self.rate[:, _WH] @ _E_EVENT[_WH]) / 24.0  # mean kW on top of annual_kwh
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
        level = base.mean()
        cdf = np.cumsum(base)
        cdf /= cdf[-1]
        ev_h, ev_t, ev_u = [], [], []
        for i, k in enumerate(self.keys):
            g = rng(self.seed, S_BASE_DAY, k, day + 1_000_000)
            x[i] = g.standard_normal(M)
            dfac[i] = g.standard_normal()
            counts = g.poisson(self.rate[i] * level)
            ns = int(counts.sum())
            if ns:
                ev_h.append(np.full(ns, i))
                ev_t.append(np.repeat(np.arange(len(APPLIANCES)), counts))
                ev_u.append(g.random((3, ns)))
        c = math.sqrt(1 - _NOISE_PHI**2)
        y = ar1(x, c, _NOISE_PHI, (1 - c) * x[:, 0])
        s = self.sigma[:, None]
        y *= s
        y -= 0.5 * s * s
        np.exp(y, out=y)
        y *= shape
        # a day's level varies with sd 0.1 (log-normal, mean 1: the -0.005 = -0.1²/2), modelling choice
        y *= (self.mean_kw * (1 - self.event_share) * np.exp(0.1 * dfac - 0.005))[:, None]
        p = y
        if ev_h:
            h, t, u = np.concatenate(ev_h), np.concatenate(ev_t), np.concatenate(ev_u, axis=1)
            lo, hi = _MIN[t, 0], _MIN[t, 1]
            du = lo + (u[1] * (hi - lo + 1)).astype(np.int64)
            st = np.minimum(np.searchsorted(cdf, u[0]), M - 1) + self.shift[h] - du // 2
            pw = _KW[t, 0] + u[2] * (_KW[t, 1] - _KW[t, 0])
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
        """(n, N) kW for the (linear) local minutes m0 .. m0+n-1."""
        return wall_rows(self.day, self.clock, m0, n)

    # ---- stepping -----------------------------------------------------------------------
    def step(self, m: float, dt_min: float) -> np.ndarray:
        """Mean kW over [m, m + dt_min) (minute resolution)."""
        m0 = int(math.floor(m + 1e-9))
        n = max(1, int(round(dt_min)))
        if n == 1:
            w = m0 if self.clock.zone is None else int(round(self.clock.wall_min(float(m0))))
            d = w // MIN_PER_DAY
            return self.day(d)[w - d * MIN_PER_DAY]
        return self.minutes(m0, n).mean(axis=0)

    def q(self, p: np.ndarray) -> np.ndarray:
        return p * self.tan_phi
