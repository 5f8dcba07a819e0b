"""Plots of a lab (hardware-in-the-loop) run for the report: the real devices against the simulation.

Each function takes the run (:class:`cosim.kpi.Results`; the baseline argument of the report's plot
functions is ignored) and returns PNG bytes, or ``None`` when the run has no real device / no
real-time record. Real devices are the meters with a recorded ``quality`` (simulated meters have
none) and the gateways.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from matplotlib.patches import Patch

from cosim.device_health import QUALITY_NAMES
from cosim.results import Results
from cosim.plots import _edges, _figure, _fill_step, _legend, _png, _step, _time_axis, _times
from hil.realtime import recorded_lateness_stats

QUALITY_COLORS = {0: "#2ca02c", 1: "#ffbf00", 2: "#d62728"}


def _real_meter_ids(run: Results) -> list[str]:
    q = run.series("meters", "quality")
    if q is None:
        return []
    return [d for j, d in enumerate(q.ids) if not np.isnan(q.values[:, j]).all()]


def real_vs_simulated(run: Results, base: Results | None = None) -> bytes | None:
    """Each real meter's P against the simulated households' meters (median and 10-90 % band)."""
    real = _real_meter_ids(run)
    s = run.series("meters", "P")
    if not real or s is None:
        return None
    t = _times(run)
    fig, (ax,) = _figure(height=3.6)
    sim = [d for d in s.ids if d not in real]
    if sim:
        P = s.aligned(sim)
        ok = ~np.isnan(P).all(axis=1)
        lo, med, hi = (np.full(len(t), np.nan) for _ in range(3))
        lo[ok], med[ok], hi[ok] = np.nanpercentile(P[ok], [10, 50, 90], axis=1)
        _fill_step(ax, _edges(run), lo, hi, color="0.8", label=f"simulated meters, 10–90 % ({len(sim)})")
        _step(ax, _edges(run), med, color="0.45", lw=1.2, label="simulated meters, median")
    for i, d in enumerate(real):
        _step(ax, _edges(run), s.aligned([d])[:, 0], color=f"C{i}", lw=1.5, label=f"real {d}")
    ax.set_ylabel("P (kW, + import)")
    ax.set_title("Real meters against the simulated households")
    _legend(ax)
    _time_axis(ax, run)
    return _png(fig)


def setpoint_readback(run: Results, base: Results | None = None) -> bytes | None:
    """Per gateway: the controller's set point against the device's read-back, and the ack flag."""
    rb = run.series("gateways", "P_bat")
    if rb is None:
        return None
    sp = run.series("controller", "P_bat_set")
    ack = run.series("gateways", "setpoint_ack")
    t = _edges(run)
    fig, axes = _figure(n_rows=len(rb.ids), height=2.8)
    for ax, g in zip(axes, rb.ids):
        if sp is not None and g in sp.ids:
            _step(ax, t, sp.aligned([g])[:, 0], color="C1", ls="--", lw=1.4, label="set point (controller)")
        _step(ax, t, rb.aligned([g])[:, 0], color="C0", lw=1.4, label="read-back (device)")
        if ack is not None and g in ack.ids:
            a = ack.aligned([g])[:, 0]
            miss = np.flatnonzero(a == 0)
            if miss.size:
                y = np.nan_to_num(rb.aligned([g])[:, 0])[miss]
                ax.plot([t[i] for i in miss], y, "x", color="C3", ms=5, label="read-back ≠ set point")
        ax.set_ylabel("P_bat (kW, + charging)")
        ax.set_title(f"Gateway {g}: set point against read-back")
        _legend(ax)
        _time_axis(ax, run)
    return _png(fig)


def quality_timeline(run: Results, base: Results | None = None) -> bytes | None:
    """Per real device: quality over time (ok / stale / error bands) and the age of its last sample."""
    devices = [("meters", "meter", d) for d in _real_meter_ids(run)]
    gq = run.series("gateways", "quality")
    devices += [("gateways", "gateway", d) for d in (gq.ids if gq is not None else [])]
    if not devices:
        return None
    t = _times(run)
    ends = [ti + dt.timedelta(hours=float(h)) for ti, h in zip(t, run.dt_h)]
    fig, (ax_q, ax_age) = _figure(n_rows=2, height=2.2 + 0.35 * len(devices))
    labels = []
    for k, (pop, role, d) in enumerate(devices):
        q = run.series(pop, "quality").aligned([d])[:, 0]
        for code, color in QUALITY_COLORS.items():
            spans, i = [], 0
            while i < len(q):  # runs of rows with this quality, one bar each
                if q[i] == code:
                    j = i
                    while j + 1 < len(q) and q[j + 1] == code:
                        j += 1
                    spans.append((t[i], ends[j] - t[i]))
                    i = j
                i += 1
            if spans:
                ax_q.broken_barh(spans, (k - 0.4, 0.8), color=color)
        age = run.series(pop, "age")
        if age is not None and d in age.ids:
            _step(ax_age, _edges(run), age.aligned([d])[:, 0], color=f"C{k}", lw=1.2, label=f"{role} {d}")
        labels.append(f"{role} {d}")
    ax_q.set_yticks(range(len(devices)), labels)
    ax_q.set_ylim(-0.6, len(devices) - 0.4)
    handles = [Patch(color=c, label=QUALITY_NAMES[q]) for q, c in QUALITY_COLORS.items()]
    _legend(ax_q, handles=handles)
    ax_q.set_title("Link quality per real device")
    _time_axis(ax_q, run)
    ax_age.set_ylabel("age of last good sample (s)")
    _legend(ax_age)
    _time_axis(ax_age, run)
    return _png(fig)


def lateness_histogram(run: Results, base: Results | None = None) -> bytes | None:
    """Step lateness of a real-time run (re-anchored as in the run summary) with p50, p99 and the threshold."""
    s = run.series("realtime", "lateness_ms")
    if s is None:
        return None
    vals = s.values[:, 0]
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    threshold = run.scenario.realtime.threshold_ms if run.scenario is not None and run.scenario.realtime else 100.0
    st = recorded_lateness_stats(vals, threshold)
    lat = vals - vals.min()
    fig, (ax,) = _figure(height=3.2)
    ax.hist(lat, bins=min(60, max(10, lat.size // 5)), color="C4", alpha=0.85)
    ax.axvline(st["p50_ms"], color="k", lw=1, label=f"p50 = {st['p50_ms']:.1f} ms")
    ax.axvline(st["p99_ms"], color="k", ls="--", lw=1, label=f"p99 = {st['p99_ms']:.1f} ms")
    if threshold <= lat.max() * 1.5:
        ax.axvline(threshold, color="C3", lw=1, label=f"threshold {threshold:.0f} ms")
    ax.set_xlabel("step lateness (ms, from the earliest step)")
    ax.set_ylabel("steps")
    ax.set_title(f"Real-time lateness: {st['n']} steps, {st['late']} later than {threshold:.0f} ms, "
                 f"max {st['max_ms']:.1f} ms")
    _legend(ax)
    ax.grid(True, alpha=0.3)
    return _png(fig)


# (title, function) in report order
LAB_PLOTS = [
    ("Real against simulated meters", real_vs_simulated),
    ("Gateway set point against read-back", setpoint_readback),
    ("Link quality and age per real device", quality_timeline),
    ("Real-time lateness", lateness_histogram),
]
