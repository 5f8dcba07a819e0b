"""UTC offsets of an IANA time zone as a numpy transition table (for ``common.Clock``).

``zoneinfo`` answers one instant at a time; the models ask for whole horizons (96 slots, 1440
minutes) every step. The table holds the zone's offset changes (UTC minute, offset after) for the
calendar years asked so far, found by sampling ``zoneinfo`` every ``SAMPLE_MIN`` minutes and
bisecting each change to the minute; lookups are then one ``searchsorted``.
"""

from __future__ import annotations

import datetime as _dt
import functools
from zoneinfo import ZoneInfo

import numpy as np

SAMPLE_MIN = 180  # no zone changes its offset twice within 3 h
_UTC = _dt.timezone.utc


@functools.lru_cache(maxsize=16)
def zone_offsets(key: str) -> ZoneOffsets:
    return ZoneOffsets(ZoneInfo(key))


def _year_start_min(year: int) -> int:
    return int(_dt.datetime(year, 1, 1, tzinfo=_UTC).timestamp()) // 60


class ZoneOffsets:
    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self.years: tuple[int, int] | None = None  # covered calendar years (UTC), inclusive
        self.lo = self.hi = 0  # covered UTC minutes [lo, hi)
        self.t = np.empty(0)  # UTC minute of each change
        self.o = np.empty(1)  # offset (min) before t[0], after t[0], after t[1], …
        self._seg = (0.0, 0.0, 0.0)  # (from, to, offset) of the last scalar lookup: steps stay in it

    def _off(self, utc_min: int) -> float:
        return _dt.datetime.fromtimestamp(utc_min * 60, self.tz).utcoffset().total_seconds() / 60.0

    def _cover(self, u_min: float, u_max: float) -> None:
        y = np.array([u_min, u_max]).astype("datetime64[m]").astype("datetime64[Y]").astype(int) + 1970
        y0, y1 = int(y[0]) - 1, int(y[1]) + 1
        if self.years is not None:
            y0, y1 = min(y0, self.years[0]), max(y1, self.years[1])
        a, b = _year_start_min(y0), _year_start_min(y1 + 1)
        prev_u, prev = a, self._off(a)
        t, o = [], [prev]
        for u in [*range(a + SAMPLE_MIN, b, SAMPLE_MIN), b]:
            cur = self._off(u)
            if cur != prev:
                lo, hi = prev_u, u  # off(lo) == prev != off(hi): bisect to the first changed minute
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self._off(mid) == prev:
                        lo = mid
                    else:
                        hi = mid
                t.append(hi)
                o.append(cur)
            prev_u, prev = u, cur
        self.years, self.lo, self.hi = (y0, y1), a, b
        self.t, self.o = np.array(t, dtype=float), np.array(o, dtype=float)

    def offset_at(self, utc_min: np.ndarray) -> np.ndarray | float:
        """Offset (minutes east of UTC) at each UTC minute (since 1970); one number when they all fall
        between the same two changes as the last scalar lookup (a horizon without a change)."""
        u = np.asarray(utc_min, dtype=float)
        if not u.size:
            return np.empty(u.shape)
        lo, hi = float(u.min()), float(u.max())
        a, b, off = self._seg
        if a <= lo and hi < b:
            return off
        if lo < self.lo or hi >= self.hi:
            self._cover(lo, hi)
        return self.o[np.searchsorted(self.t, u, side="right")]

    def offset_of(self, utc_min: float) -> float:
        """``offset_at`` of one instant (a step's lookup: usually the segment of the previous one)."""
        a, b, off = self._seg
        if a <= utc_min < b:
            return off
        if not self.lo <= utc_min < self.hi:
            self._cover(utc_min, utc_min)
        i = int(np.searchsorted(self.t, utc_min, side="right"))
        a = float(self.t[i - 1]) if i > 0 else float(self.lo)
        b = float(self.t[i]) if i < len(self.t) else float(self.hi)
        self._seg = (a, b, float(self.o[i]))
        return self._seg[2]

    def utc_of_wall(self, wall_min: np.ndarray) -> np.ndarray:
        """UTC minute of each wall-clock minute; an hour that occurs twice: the first occurrence, a
        skipped one: read with the offset before the change (``zoneinfo``'s fold=0)."""
        w = np.asarray(wall_min, dtype=float)
        if w.size:
            self.offset_at(np.array([w.min() - 1440.0, w.max() + 1440.0]))
        span_hi, span_lo = float(self.o.max()), float(self.o.min())
        c1, c2 = self.offset_at(w - span_hi), self.offset_at(w - span_lo)  # earliest and latest candidate
        oa, ob = np.maximum(c1, c2), np.minimum(c1, c2)
        ua, ub = w - oa, w - ob
        return np.where(self.offset_at(ua) == oa, ua, np.where(self.offset_at(ub) == ob, ub, w - c1))
