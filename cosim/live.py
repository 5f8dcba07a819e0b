"""What the live dashboard shows, as one small snapshot per recorded row.

The snapshot is taken from the recorder's row in a running simulation (:class:`LiveFeed`, handed to
the dashboard process through a queue, never waiting: the step goes on if the dashboard is slow) or
from the rows of a results file that is being written (:class:`ResultsTail`, SWMR, for `cosim watch`).
Both build it with :func:`snapshot`, so the page cannot tell them apart.

A snapshot is a plain dict: ``t`` (simulated ms), ``x`` (the simulated local time as naive epoch ms,
for the time axes), ``devices`` (one dict per real device: ``role``, ``id``, readings, ``quality``,
``age``; a gateway also ``set``, the controller's set point, and ``readback``), ``lateness_ms``,
``households_kw`` (the simulated households' net power summed, kW, + import), ``v_min``/``v_max``
(p.u.), ``trafo_loading`` (%, the highest), ``lfa`` ({lfa id: rounds, gap}),
``latency_ms``, ``sent``, ``lost`` (telecom) and ``events`` (device link events and negotiation
records since the previous snapshot).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import queue
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import numpy as np

from cosim.errors import InputError
from cosim.results import open_file, time_problem
from simulators.devices.common import after

METER_READINGS = ("P", "V", "E_imp", "E_exp", "quality", "age")
GATEWAY_READINGS = ("P_bat", "soc", "setpoint_ack", "quality", "age")
# (population, attr) pairs a snapshot is made of: what ResultsTail reads from a file
SERIES = ([("meters", a) for a in METER_READINGS] + [("gateways", a) for a in GATEWAY_READINGS]
          + [("controller", "P_bat_set"), ("realtime", "lateness_ms"), ("households", "P"),
             ("grid", "v_min"), ("grid", "v_max"), ("grid", "trafo_loading"), ("lfa", "rounds"), ("lfa", "gap"),
             ("telecom", "latency_mean_ms"), ("telecom", "sent"), ("telecom", "lost")])
EVENT_STREAMS = ("devices", "flex")
NO_START = "2000-01-01T00:00:00+00:00"  # the clock of a file without a usable start time (cosim.Results')
EVENT_KINDS = {"drop", "reconnect", "exception", "recovered", "negotiation"}

Getter = Callable[[str, str], "dict[str, float] | None"]


class LocalClock:
    """Simulated ms after *start_iso* -> the local wall time as naive epoch ms (the page's time axes read
    it as UTC), in the scenario's *zone* when it names one: the start's offset plus the elapsed time would
    be an hour off across a daylight-saving switch."""

    def __init__(self, start_iso: str, zone: str | None = None):
        start = dt.datetime.fromisoformat(start_iso)
        self.start = start.astimezone(ZoneInfo(zone)) if zone else start

    def __call__(self, t_ms: float) -> float:
        return after(self.start, t_ms).replace(tzinfo=dt.timezone.utc).timestamp() * 1000.0


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _values(d: dict | None) -> list[float]:
    return [f for v in (d or {}).values() if (f := _num(v)) is not None]


def snapshot(t_ms: int, x_ms: float, get: Getter) -> dict:
    """The snapshot of the row at *t_ms* (local wall time *x_ms*, :class:`LocalClock`); *get(pop, attr)*
    gives the row's ``{id: value}`` or None."""
    devices = []
    quality = get("meters", "quality") or {}
    for dev in sorted(d for d, q in quality.items() if _num(q) is not None):  # simulated meters have none
        devices.append({"role": "meter", "id": dev,
                        **{a: _num((get("meters", a) or {}).get(dev)) for a in METER_READINGS}})
    set_points = get("controller", "P_bat_set") or {}
    for dev in sorted(get("gateways", "quality") or {}):
        g = {a: _num((get("gateways", a) or {}).get(dev)) for a in GATEWAY_READINGS}
        devices.append({"role": "gateway", "id": dev, **g, "set": _num(set_points.get(dev)), "readback": g["P_bat"]})
    households = _values(get("households", "P"))
    v_min, v_max = _values(get("grid", "v_min")), _values(get("grid", "v_max"))
    trafo = _values(get("grid", "trafo_loading"))
    lat, sent, lost = (_values(get("telecom", a)) for a in ("latency_mean_ms", "sent", "lost"))
    rounds, gaps = get("lfa", "rounds") or {}, get("lfa", "gap") or {}
    return {
        "t": int(t_ms), "x": float(x_ms), "devices": devices,
        "lateness_ms": next(iter(_values(get("realtime", "lateness_ms"))), None),
        "households_kw": sum(households) if households else None,
        "v_min": min(v_min, default=None), "v_max": max(v_max, default=None),
        "trafo_loading": max(trafo, default=None),
        "lfa": {k: {"rounds": _num(rounds.get(k)), "gap": _num(gaps.get(k))} for k in sorted(set(rounds) | set(gaps))},
        "latency_ms": float(np.mean(lat)) if lat else None,
        "sent": sum(sent) if sent else None, "lost": sum(lost) if lost else None,
        "events": [],
    }


class LiveFeed:
    """The running simulation's side: the recorder hands over each row and event batch
    (:data:`cosim.recorder.LIVE_FEEDS`); at most one snapshot per *min_interval* s is built and put on
    *out* without waiting (dropped, events kept for the next, when the queue is full). Its clock is the
    recorder's (:meth:`clock`: the simulation's start, a warm-up before the evaluated window), so the
    page's times are those of the recorded rows."""

    def __init__(self, out, min_interval: float = 0.2):
        self.out = out
        self.local: Callable[[float], float] = float
        self.min_interval = min_interval
        self._last = -math.inf
        self._events: list[dict] = []

    def clock(self, start_iso: str, zone: str | None = None) -> None:
        """The recorder's start (rows are ms after it) and the scenario's time zone, handed over when the
        recorder is initialised."""
        self.local = LocalClock(start_iso, zone) if start_iso else float

    def events(self, stream: str, records: list[dict]) -> None:
        if stream in EVENT_STREAMS:
            self._events = (self._events + [r for r in records if r.get("kind") in EVENT_KINDS])[-100:]

    def row(self, t_ms: int, values: dict) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        snap = snapshot(t_ms, self.local(t_ms), lambda pop, attr: values.get((pop, attr)))
        snap["events"] = self._events
        try:
            self.out.put_nowait(snap)
        except queue.Full:
            return
        self._last = now
        self._events = []

    def close(self) -> None:
        try:
            self.out.put_nowait(None)  # the run has ended
        except queue.Full:
            pass


class ResultsTail:
    """`cosim watch`'s side: the rows and events added to a results file (SWMR) since the last poll."""

    def __init__(self, path: str, max_rows: int = 900):
        self.f = open_file(path)  # checked; SWMR while a run writes it
        if problem := time_problem(self.f):
            self.f.close()
            raise InputError(f"{path}: not a cosim results file ({problem})")
        self.max_rows = max_rows
        from cosim.scenario import parse_recorded  # the zone as cosim.Results reads it

        scn = parse_recorded(_str(self.f.attrs.get("scenario")))
        try:
            self.local = LocalClock(_str(self.f["time"].attrs.get("start") or self.f.attrs.get("start")),
                                    scn.timezone if scn is not None else None)
        except (ValueError, KeyError):  # no usable start time or zone: from 2000-01-01 UTC, as cosim.Results
            self.local = LocalClock(NO_START)
        self.rows = 0
        self.event_bytes = {s: 0 for s in EVENT_STREAMS}

    def status(self) -> str:
        return _str(self.f.attrs.get("status", ""))

    def _read(self, pop: str, attr: str, r0: int, r1: int) -> tuple[list[str], np.ndarray] | None:
        ds = self.f.get(f"{pop}/{attr}")
        ids_ds = self.f.get(f"{pop}/_ids/{attr}")
        if ds is None or ids_ds is None:
            return None
        self._refresh(ds, ids_ds)
        ids = [_str(i) for i in ids_ds[()]]
        n = min(len(ids), ds.shape[1])
        block = np.full((r1 - r0, n), np.nan)
        have = min(r1, ds.shape[0])
        if have > r0:
            block[: have - r0] = ds[r0:have, :n]
        return ids[:n], block

    def _refresh(self, *datasets) -> None:
        if self.f.swmr_mode:  # a file still being written: see what the writer flushed since
            for ds in datasets:
                ds.refresh()

    def poll(self) -> list[dict]:
        t = self.f["time"]
        self._refresh(t)
        n = t.shape[0]
        if n <= self.rows:
            return []
        r0 = max(self.rows, n - self.max_rows)
        times = t[r0:n]
        blocks = {k: b for k in SERIES if (b := self._read(*k, r0, n)) is not None}
        snaps = []
        for i, t_ms in enumerate(times):
            def get(pop, attr, i=i):
                b = blocks.get((pop, attr))
                return None if b is None else dict(zip(b[0], b[1][i]))
            snaps.append(snapshot(int(t_ms), self.local(int(t_ms)), get))
        snaps[-1]["events"] = self._new_events()
        self.rows = n
        return snaps

    def _new_events(self) -> list[dict]:
        out = []
        for stream, seen in self.event_bytes.items():
            ds = self.f.get(f"events/{stream}")
            if ds is None:
                continue
            self._refresh(ds)
            raw = bytes(ds[seen:].tobytes())
            end = raw.rfind(b"\n") + 1  # whole lines only
            self.event_bytes[stream] = seen + end
            for line in raw[:end].splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and rec.get("kind") in EVENT_KINDS:
                    out.append(rec)
        return out[-100:]

    def close(self) -> None:
        self.f.close()


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")
