"""Grid KPIs of the unbalanced (per-phase) grid: worst-phase voltage violations and EN 50160
voltage unbalance. Used by :mod:`cosim.kpi` (``grid.unbalance``); None for balanced results.

EN 50160:2010, 4.2.5 (LV supply voltage unbalance): under normal operating conditions, during
each period of one week, 95 % of the 10-min mean r.m.s. values of the negative-sequence component
shall be within 0 % to 2 % of the positive-sequence component. Here the period is the evaluated
window; the 10-min values are taken over consecutive 10-min blocks from the window start, per bus
(``/grid/vuf``), or over the grid-wide maximum (``/grid/vuf_max``, conservative) when the per-bus
values were not recorded. A 10-min value aggregates the step values as IEC 61000-4-30:2015, 4.5
(to which EN 50160 refers for its measurements) aggregates the 10/12-cycle values: the square root of
the arithmetic mean of the squared values (r.m.s.), for the unbalance and for the voltage alike; an
arithmetic mean would pass a block of 5 min at 0 % and 5 min at 3 % (1.5 %), the r.m.s. is 2.1 %.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["EN50160_VUF_LIMIT_PCT", "EN50160_VUF_SHARE", "unbalance_kpis", "ten_minute_rms",
           "ten_minute_violation_min", "monitored_voltages"]

#: EN 50160:2010 4.2.5: 10-min values of the unbalance within 2 % ...
EN50160_VUF_LIMIT_PCT = 2.0
#: ... for 95 % of the 10-min intervals
EN50160_VUF_SHARE = 0.95
_BLOCK_MS = 600_000


def ten_minute_rms(t_ms: np.ndarray, dt_h: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(blocks, N) 10-min values of ``values`` (T, N): the r.m.s. over each 10-min block,
    sqrt(duration-weighted mean of the squares) (IEC 61000-4-30 4.5; NaN steps ignored)."""
    block = (t_ms - t_ms[0]) // _BLOCK_MS
    nb = int(block[-1]) + 1
    ok = np.isfinite(values)
    w = dt_h[:, None] * ok
    num = np.zeros((nb, values.shape[1]))
    den = np.zeros((nb, values.shape[1]))
    np.add.at(num, block, np.where(ok, values, 0.0) ** 2 * w)
    np.add.at(den, block, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sqrt(num / den), np.nan)


def monitored_voltages(res, s) -> np.ndarray:
    """The columns of the per-bus voltage series *s* of the buses the grid judges (its LV buses,
    ``Results.monitored_buses``; all columns in a file without that list): the MV bus of a substation is
    the supplier's, not the LV grid's, and its voltage is the source's set point."""
    buses = res.monitored_buses()
    if buses is None:
        return s.values
    keep = set(buses)
    return s.values[:, [j for j, k in enumerate(s.ids) if k in keep]]


def ten_minute_violation_min(res, band: float) -> float | None:
    """Minutes of the 10-min blocks (from the window start) in which some LV bus, or some phase of one,
    has its 10-min voltage (r.m.s. over the block) outside 1 ± band: EN 50160:2010 4.2.2 judges supply
    voltage variations on 10-min mean r.m.s. values (95 % of them within ±10 % over a week), where ``v_violation_min``
    counts every recorded step outside the band. None without per-bus voltages or in an aggregated
    file (its interval means are not 10-min means)."""
    series = [s for s in (res.series("grid", a) for a in ("vm_pu", "vm_pu_a", "vm_pu_b", "vm_pu_c")) if s is not None]
    if not series or res.aggregate_ms or not res.T:
        return None
    block = (res.t_ms - res.t_ms[0]) // _BLOCK_MS
    minutes = np.zeros(int(block[-1]) + 1)
    np.add.at(minutes, block, res.dt_h * 60.0)
    bad = np.zeros(len(minutes), dtype=bool)
    for s in series:
        with np.errstate(invalid="ignore"):
            bad |= (np.abs(ten_minute_rms(res.t_ms, res.dt_h, monitored_voltages(res, s)) - 1.0) > band).any(axis=1)
    return _r(float(minutes[bad].sum()), 2)


def _r(v: float, nd: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def unbalance_kpis(res, band: float) -> dict[str, Any] | None:
    """Per-phase KPIs of a results file (``cosim.kpi.Results``), None without per-phase data."""
    phases = {c: res.series("grid", f"vm_pu_{c}") for c in "abc"}
    vuf = res.series("grid", "vuf")
    vuf_src = "per bus"
    if vuf is None:
        vuf, vuf_src = res.series("grid", "vuf_max"), "grid maximum"
    if all(s is None for s in phases.values()) and vuf is None:
        return None
    out: dict[str, Any] = {}
    dt_min = res.dt_h * 60.0
    # an aggregated file (cosim.aggregate) has interval means: per-phase violation minutes are not in it,
    # and 10-min values only when the interval divides 10 min; the maximum VUF is the interval maxima's
    agg = res.aggregate_ms
    if agg and any(s is not None for s in phases.values()):
        out["v_violation_min_by_phase"] = out["v_violation_worst_phase_min"] = None
    elif any(s is not None for s in phases.values()):
        worst = np.zeros(res.T, dtype=bool)
        by_phase = {}
        for c, s in phases.items():
            if s is None:
                continue
            v = monitored_voltages(res, s)
            with np.errstate(invalid="ignore"):  # a step without a converged power flow is not counted
                bad = (np.abs(v - 1.0) > band).any(axis=1)
            by_phase[c] = _r((dt_min * bad).sum(), 2)
            worst |= bad
        out["v_violation_min_by_phase"] = by_phase
        out["v_violation_worst_phase_min"] = _r((dt_min * worst).sum(), 2)
    if vuf is not None and res.T:
        v = vuf.values
        m10 = ten_minute_rms(res.t_ms, res.dt_h, v)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bus without a converged value
            share = np.nanmean(np.where(np.isfinite(m10), m10 <= EN50160_VUF_LIMIT_PCT, np.nan), axis=0)
        # the bus with the lowest share within the limit; among equal shares (all within it, typically) the
        # one with the highest 10-min values (p95)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bus without a converged value
            p95 = np.nanpercentile(m10, 95, axis=0) if m10.shape[0] else np.full(v.shape[1], np.nan)
        worst_bus = int(np.lexsort((-np.nan_to_num(p95, nan=-np.inf), np.nan_to_num(share, nan=np.inf)))[0])
        if agg and _BLOCK_MS % agg:
            m10 = np.full_like(m10, np.nan)
            share = np.full(v.shape[1], np.nan)
        vmax = res.extreme("grid", "vuf" if vuf_src == "per bus" else "vuf_max", "max").values
        out["vuf_source"] = vuf_src
        out["vuf_max_pct"] = _r(np.nanmax(vmax)) if np.isfinite(vmax).any() else None
        out["vuf_10min_p95_pct"] = _r(np.nanmax(np.nanpercentile(m10, 95, axis=0))) \
            if np.isfinite(m10).any() else None
        out["en50160_share_within_2pct"] = _r(share[worst_bus]) if np.isfinite(share).any() else None
        out["en50160_unbalance_ok"] = bool(share[worst_bus] >= EN50160_VUF_SHARE) \
            if np.isfinite(share[worst_bus]) else None
        out["worst_bus"] = vuf.ids[worst_bus]
    return out
