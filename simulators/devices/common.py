"""Time base and seeded random streams shared by the device models.

Time inside the device models is *local minutes since 1970-01-01 00:00 local time* (float), using
the fixed UTC offset of the scenario start (no DST switch inside a run). Working in absolute local
time makes every model a function of (seed, household id, time), so a forecast evaluated later with
the same inputs reproduces exactly what the simulation does.

Random streams: ``rng(seed, purpose, *keys)`` builds a numpy Generator from a SeedSequence of
``[seed, purpose, *keys]``. Each model uses its own purpose constant, so adding a device type or a
household never changes the draws of another model or another household (keys are the household id
hash and the local day number, never the position in a population).
"""

from __future__ import annotations

import datetime as _dt
import zlib

import numpy as np

MIN_PER_DAY = 1440

# purposes of the independent random streams (never reuse or renumber)
S_BASE_PARAMS = 11
S_BASE_DAY = 12
S_WEATHER_DAY = 21
S_PV_PARAMS = 31
S_EV_DAY = 41
S_EV_PARAMS = 42
S_DHW_PARAMS = 51
S_DHW_DAY = 52
S_FORECAST = 91


def id_key(hid: str) -> int:
    """Stable non-negative integer key of a device id (independent of Python's hash seed)."""
    return zlib.crc32(hid.encode("utf-8"))


def rng(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(purpose), *(int(k) for k in keys)])


class Clock:
    """Converts mosaik ticks to absolute local minutes (the time axis of the device models)."""

    def __init__(self, start: str | _dt.datetime, time_resolution: float = 0.001):
        t = _dt.datetime.fromisoformat(start) if isinstance(start, str) else start
        if t.tzinfo is None:
            raise ValueError(f"start must carry a timezone, e.g. 2026-06-01T00:00:00+02:00, got {start!r}")
        self.start = t
        self.time_resolution = float(time_resolution)
        self.utc_offset_min = t.utcoffset().total_seconds() / 60.0
        self.start_local_min = t.timestamp() / 60.0 + self.utc_offset_min

    def local_min(self, tick: float) -> float:
        return self.start_local_min + tick * self.time_resolution / 60.0

    def tick_of(self, local_min: float | np.ndarray):
        return (np.asarray(local_min) - self.start_local_min) * 60.0 / self.time_resolution


def day_of(local_min) -> np.ndarray | int:
    return np.floor_divide(local_min, MIN_PER_DAY).astype(np.int64) if isinstance(
        local_min, np.ndarray
    ) else int(local_min // MIN_PER_DAY)


def day_of_year(day: int) -> int:
    """1..366 for a local day number (days since 1970-01-01)."""
    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=int(day))).timetuple().tm_yday


def weekday(day: int) -> int:
    """0 = Monday … 6 = Sunday (1970-01-01 was a Thursday)."""
    return (int(day) + 3) % 7


def doy_array(day: np.ndarray) -> np.ndarray:
    d = np.asarray(day).astype("datetime64[D]")
    return (d - d.astype("datetime64[Y]")).astype(np.int64) + 1
