"""Real-time pacing: lateness statistics and a mosaik monitor that measures them.

mosaik's ``rt_factor`` keeps an absolute schedule but ``rt_strict`` is unusable in mosaik 3.6,
so a HIL run measures its own lateness: :class:`RealtimeMonitor` is stepped at every physical
step and records, per step, the wall-clock lateness against the ideal schedule
``t0 + sim_time * rt_factor`` (mosaik's factor: wall seconds per simulated second, 0.5 = twice as
fast; ``t0`` = wall time of its first step, minus that step's sim time × rt_factor). :func:`lateness_stats` summarises any list of (scheduled, actual) wall times.
"""

from __future__ import annotations

import json
import logging
import math
import time as _time
from collections.abc import Iterable, Sequence

import mosaik_api_v3

log = logging.getLogger(__name__)


def _percentile(sorted_vals: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of sorted values."""
    n = len(sorted_vals)
    if n == 0:
        return math.nan
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def lateness_stats(pairs: Iterable[tuple[float, float]], threshold_ms: float = 100.0) -> dict[str, float]:
    """Lateness of steps from ``(scheduled_wall_s, actual_wall_s)`` pairs.

    Lateness = actual - scheduled (ms; negative = early). Returns ``n``, ``p50_ms``, ``p99_ms``,
    ``max_ms``, ``mean_ms``, ``late`` (steps later than ``threshold_ms``), ``late_frac`` and
    ``threshold_ms``. Percentiles are linear-interpolated (numpy's default).
    """
    lat = sorted((a - s) * 1000.0 for s, a in pairs)
    n = len(lat)
    late = sum(1 for x in lat if x > threshold_ms)
    return {
        "n": n,
        "p50_ms": _percentile(lat, 50.0),
        "p99_ms": _percentile(lat, 99.0),
        "max_ms": lat[-1] if n else math.nan,
        "mean_ms": sum(lat) / n if n else math.nan,
        "late": late,
        "late_frac": late / n if n else math.nan,
        "threshold_ms": float(threshold_ms),
    }


def recorded_lateness_stats(lateness_ms: Iterable[float], threshold_ms: float = 100.0) -> dict[str, float]:
    """The one definition of a run's lateness (run summary, ``cosim kpis``, report) from the recorded
    per-step ``lateness_ms``: the monitor anchors its schedule at its own first step, which may itself
    be late (start-up work at t=0); mosaik never steps before its absolute schedule, so the earliest
    step is the best estimate of the schedule's origin and the values are re-anchored there."""
    vals = [float(x) for x in lateness_ms if x is not None and math.isfinite(float(x))]
    origin = min(vals, default=0.0)
    return lateness_stats(((0.0, (x - origin) / 1000.0) for x in vals), threshold_ms)


META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "RealtimeMonitor": {
            "public": True,
            "params": ["rt_factor", "threshold_ms", "report_path"],
            "attrs": ["lateness_ms"],
        },
    },
}


class RealtimeMonitor(mosaik_api_v3.Simulator):
    """Model ``RealtimeMonitor(rt_factor=1.0, threshold_ms=100.0, report_path=None)``; steps every
    ``step_size`` ticks (init param; set it to the physical step) and outputs
    ``lateness_ms`` ``{"rt": ms}`` of the current step. ``records`` holds
    ``(sim_time_s, scheduled_wall, actual_wall)``; ``stats()`` summarises; ``finalize`` logs the
    summary and writes it as JSON to ``report_path`` if given."""

    def __init__(self, clock=_time.perf_counter):
        super().__init__(META)
        self.clock = clock
        self.step_size = 1
        self.eid: str | None = None
        self.rt_factor = 1.0
        self.threshold_ms = 100.0
        self.report_path: str | None = None
        self.t0: float | None = None
        self.records: list[tuple[float, float, float]] = []
        self.current = math.nan

    def init(self, sid, time_resolution=1.0, start=None, step_size=None, **kwargs):
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size) if step_size else max(1, round(1.0 / self.time_resolution))
        return self.meta

    def create(self, num, model, rt_factor=1.0, threshold_ms=100.0, report_path=None):
        if num != 1 or self.eid is not None:
            raise ValueError("RealtimeMonitor: exactly one entity")
        if rt_factor <= 0:
            raise ValueError("rt_factor must be > 0")
        self.rt_factor = float(rt_factor)
        self.threshold_ms = float(threshold_ms)
        self.report_path = report_path
        self.eid = "rt"
        return [{"eid": self.eid, "type": model}]

    def step(self, time, inputs, max_advance):
        now = self.clock()
        sim_s = time * self.time_resolution
        if self.t0 is None:
            self.t0 = now - sim_s * self.rt_factor
        scheduled = self.t0 + sim_s * self.rt_factor
        self.records.append((sim_s, scheduled, now))
        self.current = (now - scheduled) * 1000.0
        return time + self.step_size

    def get_data(self, outputs):
        return {eid: {a: {"rt": self.current} for a in attrs if a == "lateness_ms"}
                for eid, attrs in outputs.items()}

    def stats(self) -> dict[str, float]:
        return lateness_stats(((s, a) for _, s, a in self.records), self.threshold_ms)

    def finalize(self):
        if not self.records:
            return
        st = self.stats()
        log.info("real-time lateness over %d steps: p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
                 "%d late (> %.0f ms)", st["n"], st["p50_ms"], st["p99_ms"], st["max_ms"],
                 st["late"], st["threshold_ms"])
        if self.report_path:
            with open(self.report_path, "w", encoding="utf-8") as fh:
                json.dump({"rt_factor": self.rt_factor, **st,
                           "records": [list(r) for r in self.records]}, fh)


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(RealtimeMonitor(), "Real-time lateness monitor")
