"""Plots of a results file for the HTML report (matplotlib, Agg, no pyplot state).

Every function takes the run (and optionally the baseline) as :class:`cosim.results.Results` and returns
PNG bytes, or ``None`` when the file has no data for that plot. Time axes are in the scenario's
local time (the timezone of its start).
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosim.kpi import _delivered_by_slot, _settlements_once, grid_limits  # noqa: E402
from cosim.kpi_unbalance import monitored_voltages  # noqa: E402
from cosim.population import district_of  # noqa: E402
from cosim.results import Results, finite  # noqa: E402
from simulators.devices.common import after  # noqa: E402

RUN_STYLE = {"lw": 1.4}
BASE_STYLE = {"lw": 1.1, "ls": "--", "alpha": 0.8}
DPI = 100


def _tz(res: Results) -> dt.tzinfo:
    return res.start.tzinfo if res.start is not None and res.start.tzinfo else dt.timezone.utc


def _tzname(res: Results) -> str:
    if res.start is not None and isinstance(res.start.tzinfo, ZoneInfo):
        return res.start.tzinfo.key
    off = res.start.utcoffset() if res.start is not None else None
    if off is None:
        return "UTC"
    mins = int(off.total_seconds() // 60)
    return f"UTC{'+' if mins >= 0 else '-'}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"


def _times(res: Results) -> list[dt.datetime]:
    return res.local_times()


def _figure(n_rows: int = 1, height: float = 3.4):
    fig = Figure(figsize=(9.5, height * n_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(n_rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _time_axis(ax, res: Results) -> None:
    """Local clock time on every tick: HH:MM (HH:MM:SS for ticks less than a minute apart, the day
    for ticks a day or more apart), never the bare "10, 20" of a concise formatter."""
    tz = _tz(res)
    loc = mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=10)
    fmt = mdates.AutoDateFormatter(loc, tz=tz)
    fmt.scaled = {365.0: "%Y", 30.0: "%d %b", 1.0: "%d %b", 1 / 24: "%H:%M", 1 / 1440: "%H:%M",
                  1 / 86400: "%H:%M:%S"}
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(fmt)
    ax.set_xlabel(f"local time ({_tzname(res)})")
    ax.grid(True, alpha=0.3)


def _legend(ax, **kw):
    """The legend beside the plot, right of its axes (constrained layout makes room), one column: inside
    the axes it hid the data under it (a district's peak in the upper left corner)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kw)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _edges(run: Results) -> list[dt.datetime]:
    """The rows' start times and the end of the last row, for step curves: with only the starts a curve
    ends where its last row begins (an aggregated file's last 15 min were a vertical tick)."""
    x = _times(run)
    return x + [after(x[-1], float(run.dt_h[-1]) * 3_600_000)] if x else x


def _held(x, y) -> np.ndarray:
    """*y* (one value per row) with its last value repeated when *x* also has the last row's end."""
    y = np.asarray(y, dtype=float)
    return np.append(y, y[-1:]) if len(x) == len(y) + 1 else y


def _step(ax, x, y, **kw):
    return ax.plot(x, _held(x, y), drawstyle="steps-post", **kw)


def _fill_step(ax, x, y1, y2, **kw):
    return ax.fill_between(x, _held(x, y1), _held(x, y2) if np.ndim(y2) else y2, step="post", **kw)


def district_load(run: Results, base: Results | None = None) -> bytes | None:
    """Summed household load per district (max 6 lines) or in total, with/without control."""
    s = run.series("households", "P") or run.series("meters", "P")
    if s is None:
        return None
    sb = None
    if base is not None and base.T == run.T:
        sb = base.series("households", "P") or base.series("meters", "P")
    districts = sorted({district_of(h) for h in s.ids})
    groups = districts if len(districts) <= 6 else ["all households"]
    fig, (ax,) = _figure(height=3.8)
    x = _edges(run)
    colors = matplotlib.colormaps["tab10"].colors
    for i, g in enumerate(groups):
        ids = s.ids if g == "all households" else [h for h in s.ids if district_of(h) == g]
        c = colors[i % 10]
        _step(ax, x, finite(s.aligned(ids)).sum(axis=1), color=c, label=f"{g} (controlled)" if sb else g, **RUN_STYLE)
        if sb is not None:
            _step(ax, x, finite(sb.aligned(ids)).sum(axis=1), color=c, label=f"{g} (baseline)", **BASE_STYLE)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("P (kW, + import)")
    ax.set_title("District load: sum of household net power" + (" with and without control" if sb else ""))
    _legend(ax)
    _time_axis(ax, run)
    return _png(fig)


DEVICE_ATTRS = (("P_pv", "PV"), ("P_bat", "battery"), ("P_ev", "EV"), ("P_hp", "heat pump"),
                ("P_app", "appliances"))


def _devices(run: Results, hid: str) -> list[str]:
    out = []
    for attr, name in DEVICE_ATTRS:
        s = run.series("households", attr)
        if s is not None and hid in s.ids and np.isfinite(s.aligned([hid])).any():
            out.append(name)
    return out


def household_load(run: Results, base: Results | None = None, n: int = 3) -> bytes | None:
    """Net power of up to *n* households with the most devices, with/without control."""
    s = run.series("households", "P")
    if s is None:
        return None
    sb = base.series("households", "P") if base is not None and base.T == run.T else None
    devices = {h: _devices(run, h) for h in s.ids}
    chosen = sorted(s.ids, key=lambda h: (-len(devices[h]), h))[:n]
    fig, axes = _figure(len(chosen), height=2.4)
    x = _edges(run)
    for ax, hid in zip(axes, chosen):
        _step(ax, x, finite(s.aligned([hid])[:, 0]), color="C0", label="controlled" if sb else "P", **RUN_STYLE)
        if sb is not None and hid in sb.ids:
            _step(ax, x, finite(sb.aligned([hid])[:, 0]), color="C1", label="baseline", **BASE_STYLE)
        pv = run.series("households", "P_pv")
        if pv is not None and hid in pv.ids:
            _fill_step(ax, x, finite(pv.aligned([hid])[:, 0]), 0, color="gold", alpha=0.35,
                            label="PV", lw=0)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel("P (kW, + import)")
        ax.set_title(f"Household {hid}: net power (devices: {', '.join(devices[hid]) or 'base load only'})",
                     fontsize=10)
        _legend(ax)
        ax.grid(True, alpha=0.3)
    _time_axis(axes[-1], run)
    return _png(fig)


def trafo_loading(run: Results, base: Results | None = None) -> bytes | None:
    s = run.series("grid", "trafo_loading")
    if s is None or not np.isfinite(s.values).any():  # no step with a power flow: nothing to draw
        return None
    limit, _, _ = grid_limits(run)
    used = [j for j in range(len(s.ids)) if np.nanmax(np.abs(s.values[:, j]), initial=0) > 1.0] or \
        list(range(len(s.ids)))
    fig, (ax,) = _figure(height=3.6)
    x = _edges(run)
    top = max(limit, float(np.nanmax(s.values, initial=0)))
    for k, j in enumerate(used[:8]):
        _step(ax, x, s.values[:, j], color=f"C{k}", label=f"{s.ids[j]}", **RUN_STYLE)
    if base is not None and base.T == run.T:
        sb = base.series("grid", "trafo_loading")
        if sb is not None:
            yb = np.nanmax(sb.values, axis=1)
            top = max(top, float(np.nanmax(yb, initial=0)))
            _step(ax, x, yb, color="grey", label="baseline (highest)", **BASE_STYLE)
    ax.axhline(limit, color="red", lw=1.2, label=f"limit {limit:g} %")
    ax.set_ylabel("loading (% of rating)")
    ax.set_ylim(bottom=0, top=top * 1.1)
    ax.set_title("Transformer loading")
    _legend(ax)
    _time_axis(ax, run)
    return _png(fig)


def voltage_band(run: Results, base: Results | None = None) -> bytes | None:
    def envelope(res):
        vm = res.series("grid", "vm_pu")
        if vm is not None:  # the LV buses' (not the MV bus's, the source's set point)
            a = b = monitored_voltages(res, vm)
        else:
            a, b = res.series("grid", "v_min"), res.series("grid", "v_max")
            if a is None or b is None:
                return None
            a, b = a.values, b.values
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # a non-converged step: all NaN
            return np.nanmin(a, axis=1), np.nanmax(b, axis=1)

    env = envelope(run)
    if env is None or not np.isfinite(env[0]).any():  # no step with a power flow: nothing to draw
        return None
    _, _, band = grid_limits(run)
    fig, (ax,) = _figure(height=3.6)
    x = _edges(run)
    _fill_step(ax, x, env[0], env[1], color="C0", alpha=0.35, lw=0,
                    label="min–max over buses" + (" (controlled)" if base else ""))
    _step(ax, x, env[0], color="C0", lw=0.8)
    _step(ax, x, env[1], color="C0", lw=0.8)
    if base is not None and base.T == run.T:
        eb = envelope(base)
        if eb is not None:
            _step(ax, x, eb[0], color="C1", label="baseline min / max", **BASE_STYLE)
            _step(ax, x, eb[1], color="C1", **BASE_STYLE)
    for v in (1 - band, 1 + band):
        ax.axhline(v, color="red", lw=1.2)
    ax.axhline(1.0, color="k", lw=0.5)
    lo, hi = min(1 - band, np.nanmin(env[0])), max(1 + band, np.nanmax(env[1]))
    ax.set_ylim(lo - 0.01, hi + 0.01)
    ax.set_ylabel("voltage (p.u.)")
    ax.set_title(f"Voltage envelope with the EN 50160 band {1 - band:.2f}–{1 + band:.2f} p.u. (red)")
    _legend(ax)
    _time_axis(ax, run)
    return _png(fig)


def battery_soc(run: Results, base: Results | None = None) -> bytes | None:
    s = run.series("households", "soc")
    if s is None:
        return None
    fig, (ax,) = _figure(height=3.4)
    x = _times(run)
    v = s.values * 100.0
    if v.shape[1] <= 8:
        for j, hid in enumerate(s.ids):
            ax.plot(x, v[:, j], label=hid, lw=1.3)
        _legend(ax)
    else:
        ax.fill_between(x, np.nanmin(v, axis=1), np.nanmax(v, axis=1), color="C2", alpha=0.3, lw=0,
                        label="min–max")
        ax.plot(x, np.nanmean(v, axis=1), color="C2", lw=1.5, label=f"mean of {v.shape[1]} batteries")
        _legend(ax)
    ax.set_ylim(0, 100)
    ax.set_ylabel("state of charge (%)")
    ax.set_title("Battery state of charge")
    _time_axis(ax, run)
    return _png(fig)


def indoor_temperature(run: Results, base: Results | None = None) -> bytes | None:
    s = run.series("households", "T_in")
    if s is None:
        return None
    specs = run.household_specs()
    fig, (ax,) = _figure(height=3.4)
    x = _times(run)
    if s.values.shape[1] <= 8:
        for j, hid in enumerate(s.ids):
            line = ax.plot(x, s.values[:, j], label=hid, lw=1.3)[0]
            hp = specs.get(hid).devices.heat_pump if specs.get(hid) else None
            if hp is not None:
                for t in (hp.t_min, hp.t_max):
                    ax.axhline(t, color=line.get_color(), lw=0.8, ls=":")
        _legend(ax)
        title = "dotted: comfort band"
    else:
        ax.fill_between(x, np.nanmin(s.values, axis=1), np.nanmax(s.values, axis=1), alpha=0.3, lw=0,
                        label="min–max")
        ax.plot(x, np.nanmean(s.values, axis=1), lw=1.5, label=f"mean of {s.values.shape[1]} homes")
        bands = {(hp.t_min, hp.t_max) for hid in s.ids if specs.get(hid) and (hp := specs[hid].devices.heat_pump)}
        if len(bands) == 1:  # one band for all: drawn; else the homes' bands differ and none is drawn
            for t in bands.pop():
                ax.axhline(t, color="0.3", lw=0.8, ls=":")
            title = "dotted: their comfort band"
        else:
            title = "comfort bands differ between homes, not drawn"
        _legend(ax)
    ax.set_ylabel("indoor temperature (°C)")
    ax.set_title(f"Indoor temperature of heat-pump homes ({title})")
    _time_axis(ax, run)
    return _png(fig)


def settled_delivery_kw(run: Results) -> np.ndarray | None:
    """kW delivered per row, in the slot the DSO's settlements measured it for (``delivered_slots``, kWh per
    slot, stacked orders as the KPI counts them: :func:`cosim.kpi._delivered_by_slot`), or None without such
    settlements. The live ``dso/flex_delivered`` series shows each slot one slot late."""
    settled = [r for r in _settlements_once(run.records("flex", window=False) or [])
               if r.get("delivered_slots") is not None and r.get("t0") is not None and r.get("slot_ms")]
    if not settled:
        return None
    slot_ms = {int(r["t0"]) + j * int(r["slot_ms"]): int(r["slot_ms"])
               for r in settled for j in range(len(r["delivered_slots"]))}
    y, t = np.zeros(run.T), run.t_ms
    for (_, _, a), kwh in _delivered_by_slot(settled).items():
        y[(t >= a) & (t < a + slot_ms[a])] += kwh * 3_600_000 / slot_ms[a]
    return y


def flexibility(run: Results, base: Results | None = None) -> bytes | None:
    x = _edges(run)
    curves = []
    for key, label in (("flex_requested", "requested"), ("flex_offered", "offered"),
                       ("flex_ordered", "ordered"), ("flex_delivered", "delivered")):
        if key == "flex_delivered" and (settled := settled_delivery_kw(run)) is not None:
            curves.append(("delivered (settled)", settled))
            continue
        s = run.series("lfa", key) or run.series("dso", key)
        if s is not None:
            curves.append((label if key != "flex_delivered" else "delivered (one slot late)",
                           finite(s.values).sum(axis=1)))
    ev = run.records("flex")
    if not curves and ev:
        t0 = run.t_ms
        for kind, label in (("flex_request", "requested"), ("flex_order", "ordered")):
            y = np.zeros(run.T)
            seen = set()
            for r in ev:
                if r.get("kind") != kind or r.get("t0") is None or not r.get("kw"):
                    continue
                key = r.get("req") if kind == "flex_request" else r.get("order")
                if key in seen:
                    continue
                seen.add(key)
                slot = float(r.get("slot_s") or 900) * 1000.0
                for k, kw in enumerate(r["kw"]):
                    a = r["t0"] + k * slot
                    y[(t0 >= a) & (t0 < a + slot)] += float(kw or 0)
            if seen:
                curves.append((label, y))
    if not any(np.nan_to_num(y).any() for _, y in curves):  # nothing asked, offered or delivered: no plot
        return None
    fig, (ax,) = _figure(height=3.4)
    for i, (label, y) in enumerate(curves):
        _step(ax, x, y, label=label, color=f"C{i}", lw=1.4)
    ax.set_ylabel("flexibility (kW)")
    ax.set_title("Flexibility requests, offers, orders and deliveries (all LFAs)")
    _legend(ax)
    _time_axis(ax, run)
    return _png(fig)


def latency_histogram(run: Results, base: Results | None = None) -> bytes | None:
    msgs = run.records("messages")
    if not msgs:
        return None
    lat = np.array([m["latency_ms"] for m in msgs if m.get("latency_ms") is not None], dtype=float)
    lost = sum(1 for m in msgs if m.get("lost"))
    if lat.size == 0:
        return None
    fig, (ax,) = _figure(height=3.4)
    bins = np.logspace(np.log10(max(lat.min(), 0.1)), np.log10(max(lat.max(), 1.0)) + 0.01, 40) \
        if lat.max() / max(lat.min(), 0.1) > 50 else 40
    ax.hist(lat, bins=bins, color="C4", alpha=0.85)
    if not isinstance(bins, int):
        ax.set_xscale("log")
    for p, ls in ((50, "-"), (99, "--")):
        v = float(np.percentile(lat, p))
        ax.axvline(v, color="k", ls=ls, lw=1, label=f"p{p} = {v:.0f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("messages")
    ax.set_title(f"Message latency: {lat.size} delivered, {lost} lost of {len(msgs)} sent")
    _legend(ax)
    ax.grid(True, alpha=0.3)
    return _png(fig)


# (title, function) in report order
PLOTS = [
    ("District load", district_load),
    ("Household load", household_load),
    ("Transformer loading", trafo_loading),
    ("Voltage band", voltage_band),
    ("Battery state of charge", battery_soc),
    ("Indoor temperature", indoor_temperature),
    ("Flexibility", flexibility),
    ("Message latency", latency_histogram),
]


def all_plots(run: Results, base: Results | None = None) -> list[tuple[str, bytes]]:
    out = []
    for title, fn in PLOTS:
        png = fn(run, base)
        if png:
            out.append((title, png))
    return out
