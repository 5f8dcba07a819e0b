"""Time base and seeded random streams shared by the device models.

Time inside the device models is *local minutes since 1970-01-01 00:00 local time* (float): the
linear axis at the scenario start's UTC offset for the dynamics, and ``Clock.wall_min`` of it for
every time-of-day lookup (they differ only in an IANA zone after a daylight-saving change). Working
in absolute local time makes every model a function of (seed, household id, time), so a forecast
evaluated later with the same inputs reproduces exactly what the simulation does.

Random streams: ``rng(seed, purpose, *keys)`` builds a numpy Generator from a SeedSequence of
``[seed, purpose, *keys]``. Each model uses its own purpose constant, so adding a device type or a
household never changes the draws of another model or another household (keys are the household id
hash and the local day number, never the position in a population).
"""

from __future__ import annotations

import datetime as _dt
import zlib

import numpy as np
from zoneinfo import ZoneInfo

from .zone_offsets import zone_offsets

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
    """Converts mosaik ticks to local minutes (the time axis of the device models).

    Two axes, equal for a fixed UTC offset:

    * the **linear** axis (``local_min``): minutes since 1970-01-01 00:00 at the start's UTC offset,
      i.e. UTC minutes + that offset. Every model's dynamics (energy, temperatures, the sun) run on it:
      it never jumps.
    * the **wall-clock** axis (``wall_min``): what a clock on the wall in the scenario's time zone
      shows, as minutes since 1970-01-01 00:00 of that wall clock. Every time-of-day lookup (tariff
      bands, EV and appliance times, base-load and hot-water profile rows, day numbers) reads it. With
      an IANA zone (``start`` given as ``2026-03-29T00:00:00+01:00[Europe/Berlin]``, RFC 9557) it follows
      the zone's daylight-saving changes: a 23-h day skips the wall minutes 02:00-03:00, a 25-h day
      reads 02:00-03:00 twice.

    ``linear_min`` maps a wall-clock minute back to the linear axis (an hour that occurs twice: its
    first occurrence; a skipped hour: as if the clock had not changed yet, like ``zoneinfo``'s fold=0).
    """

    def __init__(self, start: str | _dt.datetime, time_resolution: float = 0.001):
        t = parse_start(start) if isinstance(start, str) else start
        if t.tzinfo is None:
            raise ValueError(f"start must carry a timezone, e.g. 2026-06-01T00:00:00+02:00, got {start!r}")
        self.start = t
        self.time_resolution = float(time_resolution)
        self.utc_offset_min = t.utcoffset().total_seconds() / 60.0
        self.start_local_min = t.timestamp() / 60.0 + self.utc_offset_min
        self.zone = zone_offsets(t.tzinfo.key) if isinstance(t.tzinfo, ZoneInfo) else None

    def local_min(self, tick: float) -> float:
        return self.start_local_min + tick * self.time_resolution / 60.0

    def tick_of(self, local_min: float | np.ndarray):
        return (np.asarray(local_min) - self.start_local_min) * 60.0 / self.time_resolution

    def wall_min(self, m):
        """Wall-clock minute (since 1970, local) at linear minute ``m`` (float or array)."""
        if self.zone is None:
            return m
        if isinstance(m, (float, int)):
            utc = m - self.utc_offset_min
            return utc + self.zone.offset_of(utc)
        utc = np.asarray(m, dtype=float) - self.utc_offset_min
        w = utc + self.zone.offset_at(utc)
        return float(w) if w.ndim == 0 else w

    def linear_min(self, w):
        """Linear minute of wall-clock minute ``w`` (float or array); see the class text for the
        hour that occurs twice or not at all."""
        if self.zone is None:
            return w
        utc = self.zone.utc_of_wall(np.asarray(w, dtype=float))
        m = utc + self.utc_offset_min
        return float(m) if m.ndim == 0 else m


def wall_rows(day_table, clock: Clock, m0: int, n: int) -> np.ndarray:
    """(n, N) rows of the linear minutes m0 … m0+n-1 from ``day_table(day) -> (1440, N)``, a table per
    wall-clock day indexed by wall-clock minute (profiles by local time: a skipped hour is not read, an
    hour that occurs twice is read twice)."""
    w = None
    if clock.zone is not None and n == 1:
        m0 = int(round(clock.wall_min(float(m0))))
    elif clock.zone is not None:
        w = np.rint(clock.wall_min(m0 + np.arange(n, dtype=float))).astype(np.int64)
        if w[-1] - w[0] == n - 1:  # no change inside: one contiguous block
            m0, w = int(w[0]), None
    if w is None:
        d0, d1 = m0 // MIN_PER_DAY, (m0 + n - 1) // MIN_PER_DAY
        r = m0 - d0 * MIN_PER_DAY
        if d0 == d1:
            return day_table(d0)[r : r + n]
        return np.concatenate([day_table(d) for d in range(d0, d1 + 1)])[r : r + n]
    days = w // MIN_PER_DAY
    first = day_table(int(days[0]))
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    for d in np.unique(days).tolist():
        sel = days == d
        out[sel] = day_table(d)[w[sel] - d * MIN_PER_DAY]
    return out


def wall_day(clock: Clock, m: float) -> int:
    """Wall-clock day number (days since 1970-01-01 local) of linear minute m."""
    return int(clock.wall_min(m) // MIN_PER_DAY)


def parse_start(text: str) -> _dt.datetime:
    """An ISO-8601 date-time with offset, optionally followed by an IANA zone in brackets (RFC 9557:
    ``2026-10-25T00:00:00+02:00[Europe/Berlin]``); then the result carries the zone. The offset must be
    the zone's offset at that instant."""
    s = str(text).strip()
    name = None
    if s.endswith("]") and "[" in s:
        s, name = s[:-1].split("[", 1)
    t = _dt.datetime.fromisoformat(s)
    if name is None:
        return t
    zone = ZoneInfo(name)
    if t.tzinfo is None:
        return t.replace(tzinfo=zone)
    local = t.astimezone(zone)
    if local.utcoffset() != t.utcoffset():
        raise ValueError(f"offset {t.isoformat()[19:]} is not {name}'s offset at {s} ({local.isoformat()[19:]})")
    return local


def after(start: _dt.datetime, ms: float) -> _dt.datetime:
    """The instant ``ms`` milliseconds after ``start``, in ``start``'s time zone (elapsed time: Python's
    aware arithmetic would add wall-clock time in an IANA zone)."""
    utc = start.astimezone(_dt.timezone.utc) + _dt.timedelta(milliseconds=float(ms))
    return utc.astimezone(start.tzinfo)


def start_text(start: _dt.datetime) -> str:
    """``start`` as ``parse_start`` reads it back (with ``[zone]`` when it carries an IANA zone)."""
    iso = start.isoformat()
    return f"{iso}[{start.tzinfo.key}]" if isinstance(start.tzinfo, ZoneInfo) else iso


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


FIXED = Clock("1970-01-01T00:00:00+00:00")  # models built without a clock: wall clock = linear axis
