"""The live dashboard: a Bokeh server page of a running lab run (`cosim run --dashboard`) or of a
results file being written (`cosim watch`).

The page is served by Bokeh's own server with BokehJS from the installed package (``/static``): no
CDN, it works with no network at all. It shows the real devices (readings, quality and age with stale
and error highlighted, gateway set point against read-back), the simulated households' net power, the
step lateness, the grid's voltage band and transformer loading, and the MAS / telecom state. Tables
update five times a second, plots once a second.

``cosim run --dashboard`` serves from its own process (:func:`start_process`), fed snapshots
(:mod:`cosim.live`) through a queue, so the Bokeh work never competes with the mosaik step.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import multiprocessing as mp
import queue
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cosim.errors import InputError

UPDATE_MS = 200        # tables and status (a device going stale shows within 2 s)
PLOT_MS = 1000         # plots (at least once a second; redrawing them is most of the browser's work)
POLL_MS = 100          # how often the server takes new snapshots
HISTORY = 900          # points kept per series (15 min of 1-s steps)
LOOPBACK = ("127.0.0.1", "localhost")
QUALITY = {0: ("ok", "q-ok"), 1: ("stale", "q-stale"), 2: ("error", "q-error")}  # hil quality codes
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

CSS = """
<style>
.lab table{border-collapse:collapse;font:13px system-ui,sans-serif}
.lab th,.lab td{border:1px solid #ccc;padding:2px 8px;text-align:right}
.lab th{background:#f2f2f2}.lab td.l{text-align:left}
.lab .q-ok{background:#d8f5d8}.lab .q-stale{background:#ffe08a;font-weight:bold}
.lab .q-error{background:#f7b0aa;font-weight:bold}.lab .warn{color:#b3261e}.lab .note{color:#555}
</style>
"""


def _f(v: Any, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


class History:
    """Rolling history of snapshots: flat time series for the plots and the latest state for the tables."""

    def __init__(self, maxlen: int = HISTORY):
        self.maxlen = maxlen
        self.cols: dict[str, deque] = {"x": deque(maxlen=maxlen)}
        self.n = 0                      # snapshots taken so far
        self.latest: dict | None = None
        self.events: deque = deque(maxlen=15)
        self.negotiations: dict[str, dict] = {}
        self.finished = False
        self.lateness_origin = math.inf
        self.origin = 0.0

    def flat(self, snap: dict) -> dict[str, float]:
        """One point per plotted series; a series appears with its first value (a run without grid or
        telecom has no such plot)."""
        row = {"x": snap["x"]}
        for d in snap["devices"]:
            if d["role"] == "meter":
                row[f"P {d['id']}"] = d.get("P")
            else:
                row[f"set {d['id']}"], row[f"readback {d['id']}"] = d.get("set"), d.get("readback")
        for k in ("households_kw", "v_min", "v_max", "trafo_loading", "latency_ms"):
            if snap.get(k) is not None or k in self.cols:
                row[k] = snap.get(k)
        if snap.get("lateness_ms") is not None:
            # re-anchored at the earliest step, as hil.realtime.recorded_lateness_stats does for the summary
            self.lateness_origin = min(self.lateness_origin, snap["lateness_ms"])
            row["lateness_ms"] = snap["lateness_ms"] - self.lateness_origin
        return {k: (math.nan if v is None else float(v)) for k, v in row.items()}

    def add(self, snap: dict) -> None:
        row = self.flat(snap)
        for k in row.keys() - self.cols.keys():
            self.cols[k] = deque([math.nan] * len(self.cols["x"]), maxlen=self.maxlen)
        for k, col in self.cols.items():
            col.append(row.get(k, math.nan))
        self.latest = snap
        self.origin = snap["x"] - snap["t"]  # naive epoch ms of the simulated start
        for ev in snap.get("events", []):
            if ev.get("kind") == "negotiation":
                self.negotiations[str(ev.get("agent"))] = ev
            else:
                self.events.append(ev)
        self.n += 1


class QueueSource:
    """Snapshots from a running simulation (:class:`cosim.live.LiveFeed`'s queue); None = run ended."""

    def __init__(self, q):
        self.q = q

    def poll(self, history: History) -> None:
        while True:
            try:
                snap = self.q.get_nowait()
            except (queue.Empty, EOFError, OSError):
                return
            if snap is None:
                history.finished = True
                return
            history.add(snap)


class FileSource:
    """Snapshots from a results file being written (:class:`cosim.live.ResultsTail`)."""

    def __init__(self, path: str):
        from cosim.live import ResultsTail

        self.path = path
        try:
            self.tail = ResultsTail(path)
        except (OSError, KeyError) as exc:
            raise InputError(f"{path}: not a readable cosim results file ({exc})") from None

    def poll(self, history: History) -> None:
        """Add the rows written since the last poll; a row that cannot be read (a damaged chunk: raw data
        is only read when used) is an :class:`InputError` naming the file, and the caller stops polling."""
        from cosim.h5open import raised_in_h5py, reason

        try:
            snaps = self.tail.poll()
            finished = self.tail.status() not in ("", "running")
        except Exception as exc:
            if raised_in_h5py(exc) is None:
                raise
            raise InputError(f"{self.path}: damaged results file ({reason(exc)})") from None
        for snap in snaps:
            history.add(snap)
        history.finished = finished

    def close(self) -> None:
        self.tail.close()


# ------------------------------------------------------------------------------------------ page


def device_table(snap: dict | None) -> str:
    if snap is None:
        return "<div class='lab'><p class='note'>waiting for the first step …</p></div>"
    rows = []
    for d in snap["devices"]:
        q = d.get("quality")
        text, cls = QUALITY.get(int(q), ("?", "")) if q is not None else ("?", "")
        energy = lambda a: _f(d[a] / 1000.0, 3) if d.get(a) is not None else "–"  # noqa: E731 - Wh -> kWh
        p = d.get("P") if d["role"] == "meter" else d.get("readback")
        rows.append(
            f"<tr data-device='{html.escape(d['role'])} {html.escape(d['id'])}'><td class='l'>{html.escape(d['role'])}</td>"
            f"<td class='l'>{html.escape(d['id'])}</td><td>{_f(p, 3)}</td><td>{_f(d.get('V'), 1)}</td>"
            f"<td>{energy('E_imp')}</td><td>{energy('E_exp')}</td><td>{_f(d.get('set'), 3)}</td>"
            f"<td>{_f(d.get('soc') * 100 if d.get('soc') is not None else None, 0)}</td>"
            f"<td class='quality {cls}'>{text}</td><td class='{cls}'>{_f(d.get('age'), 1)}</td></tr>")
    if not rows:
        rows.append("<tr><td class='l' colspan='10'>no real devices in this run</td></tr>")
    return (f"<div class='lab'>{CSS}<table id='devices'><thead><tr><th class='l'>role</th><th class='l'>device</th>"
            "<th>P / read-back kW</th><th>V</th><th>import kWh</th><th>export kWh</th><th>set point kW</th><th>SoC %</th>"
            "<th>quality</th><th>age s</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def status_text(h: History, title: str) -> str:
    s = h.latest
    when = "–"
    if s is not None:
        when = dt.datetime.fromtimestamp(s["x"] / 1000.0, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    state = "finished" if h.finished else ("running" if s is not None else "starting")
    # step lateness only for a real-time run (a run as fast as it goes has no lateness to show)
    lat = f"step lateness <b>{_f(h.cols['lateness_ms'][-1], 1)} ms</b> · " if "lateness_ms" in h.cols else ""
    return (f"<div class='lab'>{CSS}<h2 style='margin:0'>{html.escape(title)}</h2>"
            f"<p>simulated time <b id='simtime'>{when}</b> · <span id='state'>{state}</span> · "
            f"{lat}update {h.n}</p></div>")


def _clock(h: History, t) -> str:
    """Simulated local time of an event at *t* ms after the start, HH:MM:SS ("" without a time)."""
    if not isinstance(t, (int, float)):
        return ""
    return dt.datetime.fromtimestamp((h.origin + t) / 1000.0, dt.timezone.utc).strftime("%H:%M:%S")


def state_text(h: History) -> str:
    s = h.latest or {}
    parts = [f"<div class='lab'>{CSS}<h3>Households, grid, MAS and telecom</h3><table><tbody>",
             f"<tr><td class='l'>simulated households, net power</td><td>{_f(s.get('households_kw'), 2)} kW</td></tr>",
             f"<tr><td class='l'>voltage min / max</td><td>{_f(s.get('v_min'), 3)} / {_f(s.get('v_max'), 3)} p.u.</td></tr>",
             f"<tr><td class='l'>transformer loading</td><td>{_f(s.get('trafo_loading'), 1)} %</td></tr>",
             f"<tr><td class='l'>messages sent / lost</td><td>{_f(s.get('sent'), 0)} / {_f(s.get('lost'), 0)}</td></tr>",
             f"<tr><td class='l'>message latency (mean)</td><td>{_f(s.get('latency_ms'), 1)} ms</td></tr>"]
    for lfa, v in (s.get("lfa") or {}).items():
        neg = h.negotiations.get(lfa)
        last = (f"; last negotiation ended {_clock(h, neg.get('t'))}: {neg.get('rounds')} rounds, "
                f"{neg.get('replied')}/{neg.get('members')} replied") if neg else ""
        parts.append(f"<tr><td class='l'>{html.escape(lfa)}</td><td>round {_f(v.get('rounds'), 0)}, gap "
                     f"{_f(v.get('gap'), 2)} %{last}</td></tr>")
    if not s.get("lfa"):
        parts.append("<tr><td class='l'>MAS</td><td>no negotiation in this run</td></tr>")
    parts.append("</tbody></table>")
    if h.events:
        parts.append("<h3>Device events</h3><ul>")
        for ev in reversed(h.events):
            cls = "warn" if ev.get("kind") in ("drop", "exception") else "note"
            parts.append(f"<li class='{cls}'>{_clock(h, ev.get('t'))} "
                         f"{html.escape(str(ev.get('msg', ev.get('kind'))))}</li>")
        parts.append("</ul>")
    return "".join(parts) + "</div>"


def plot_groups(keys: list[str]) -> list[tuple[str, str, list[tuple[str, list[str], list[str]]]]]:
    """The plots for the history's series *keys*: (title, y label, [(line dash, series, labels)]); every
    group is drawn by one ``multi_line`` (one renderer per group keeps the browser's work per update
    small, whatever the number of devices)."""
    meters = [k for k in keys if k.startswith("P ")]
    gws = [k[len("set "):] for k in keys if k.startswith("set ")]
    out = []
    if meters:
        out.append(("Real meters: P", "kW (+ import)", [("solid", meters, [k[2:] for k in meters])]))
    if gws:
        out.append(("Gateways: set point (dashed) vs read-back", "kW (+ charging)",
                    [("dashed", [f"set {g}" for g in gws], [f"set {g}" for g in gws]),
                     ("solid", [f"readback {g}" for g in gws], [f"read-back {g}" for g in gws])]))
    if "households_kw" in keys:
        out.append(("Simulated households: net power", "kW (+ import)", [("solid", ["households_kw"], ["sum"])]))
    if "lateness_ms" in keys:
        out.append(("Step lateness (real time)", "ms", [("solid", ["lateness_ms"], ["lateness"])]))
    if "v_min" in keys:
        out.append(("Grid voltage band", "p.u.", [("solid", [k for k in ("v_min", "v_max") if k in keys],
                                                             [k[2:] for k in ("v_min", "v_max") if k in keys])]))
    if "trafo_loading" in keys:  # a grid may have no transformer series (or a file only some of them)
        out.append(("Transformer loading", "%", [("solid", ["trafo_loading"], ["highest"])]))
    if "latency_ms" in keys:
        out.append(("Message latency (mean)", "ms", [("solid", ["latency_ms"], ["mean"])]))
    return out


def make_document(doc, h: History, title: str) -> None:
    """Build one browser session's page: tables every UPDATE_MS, plots every PLOT_MS."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, DatetimeTickFormatter, Div
    from bokeh.plotting import figure

    fmt = DatetimeTickFormatter(seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hourmin="%H:%M",
                                hours="%H:%M", days="%d %b")
    header, devices, state = Div(), Div(), Div(width=520)
    waiting = Div(text="<i>plots appear with the first step …</i>")
    plots = column(waiting)
    session = {"n": -1, "keys": None, "groups": []}  # groups: [(source, series keys, labels, group index)]

    def data(keys: list[str], labels: list[str]) -> dict:
        x = list(h.cols["x"])
        return {"xs": [x] * len(keys), "ys": [list(h.cols[k]) for k in keys], "label": labels,
                "color": [PALETTE[i % len(PALETTE)] for i in range(len(keys))]}

    def legend_field(src, i: int) -> str:
        """Each group its own label column: groups sharing one field name would share one legend entry."""
        src.data[f"label{i}"] = src.data["label"]
        return f"label{i}"

    def build():
        keys = sorted(h.cols)
        figs, groups = [], []
        for title_, ylabel, lines in plot_groups(keys):
            p = figure(title=title_, x_axis_type="datetime", height=190, width=620, toolbar_location=None,
                       y_axis_label=ylabel)
            p.xaxis.formatter = fmt
            p.xaxis.axis_label = "simulated local time"
            for i, (dash, series, labels) in enumerate(lines):
                src = ColumnDataSource(data(series, labels))
                p.multi_line("xs", "ys", source=src, color="color", line_dash=dash, line_width=1.5,
                             legend_field=legend_field(src, i))
                groups.append((src, series, labels, i))
            p.legend.label_text_font_size = "9pt"
            p.add_layout(p.legend[0], "right")  # beside the plot: inside, it hid the data under it
            figs.append(p)
        plots.children = figs or [waiting]
        session.update(keys=keys, groups=groups, n=h.n)

    def update():
        header.text = status_text(h, title)
        devices.text = device_table(h.latest)
        state.text = state_text(h)

    def update_plots():
        if sorted(h.cols) != session["keys"]:
            build()
        elif h.n > session["n"]:
            for src, series, labels, i in session["groups"]:
                src.data = {**data(series, labels), f"label{i}": labels}
            session["n"] = h.n

    update()
    update_plots()
    doc.title = title
    doc.add_root(column(header, row(column(devices, state), plots)))
    doc.add_periodic_callback(update, UPDATE_MS)
    doc.add_periodic_callback(update_plots, PLOT_MS)


def _not_a_closed_tab(record) -> bool:
    """Bokeh logs a WARNING for every update it could not send to a browser tab that was just closed;
    closing the page is normal use, not a problem of the run (the run's terminal showed a line each)."""
    return not record.getMessage().startswith("Failed sending message as connection was closed")


def quiet_closed_tabs() -> None:
    logger = logging.getLogger("bokeh.server.views.ws")
    if _not_a_closed_tab not in logger.filters:
        logger.addFilter(_not_a_closed_tab)


def serve(source, host: str, port: int, title: str, on_ready=None, orphaned=None) -> None:
    """Serve the page of *source* on http://host:port/ until interrupted, or until *orphaned()* is true
    (blocks; own event loop). An error from ``source.poll`` (e.g. :class:`InputError`: a damaged results
    file) stops serving and is raised here, once: the first poll happens before the page is served."""
    import asyncio

    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server
    from tornado.ioloop import IOLoop, PeriodicCallback

    quiet_closed_tabs()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    h = History()
    try:
        source.poll(h)
        origins = [f"{n}:{port}" for n in (*LOOPBACK, host)] if host in LOOPBACK else ["*"]
        server = Server({"/": Application(FunctionHandler(lambda doc: make_document(doc, h, title)))},
                        io_loop=IOLoop.current(), address=host, port=port, allow_websocket_origin=origins,
                        check_unused_sessions_milliseconds=2000, unused_session_lifetime_milliseconds=5000)
    except BaseException:
        getattr(source, "close", lambda: None)()
        loop.close()
        raise
    failed: list[BaseException] = []

    def poll() -> None:
        if failed:
            return
        try:
            source.poll(h)
        except Exception as exc:  # noqa: BLE001 - raised by serve() once the loop has stopped
            failed.append(exc)
            poller.stop()
            server.io_loop.stop()

    poller = PeriodicCallback(poll, POLL_MS)
    try:
        server.start()
        poller.start()
        if orphaned is not None:
            PeriodicCallback(lambda: orphaned() and server.io_loop.stop(), 1000).start()
        if on_ready is not None:
            on_ready()
        server.io_loop.start()
    finally:
        poller.stop()
        server.stop()
        getattr(source, "close", lambda: None)()
    if failed:
        raise failed[0]


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


def check_port(host: str, port: int) -> int:
    """The port to serve on (0: a free one), or an InputError when it cannot be bound."""
    import socket

    if not 0 <= port <= 65535:
        raise InputError(f"dashboard: port {port} is not a TCP port (0-65535; 0 = a free one)")
    try:
        with socket.socket() as s:
            s.bind((host, port))
            return s.getsockname()[1]
    except OSError as exc:
        raise InputError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _child(q, host: str, port: int, title: str, ready) -> None:
    parent = mp.parent_process()  # a run killed without cleaning up must not leave the server behind
    serve(QueueSource(q), host, port, title, on_ready=ready.set, orphaned=lambda: not parent.is_alive())


class DashboardProcess:
    """`cosim run --dashboard`: the page served from its own process, fed by a queue of snapshots."""

    def __init__(self, host: str, port: int, title: str):
        self.host, self.port = host, check_port(host, port)
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue(maxsize=64)
        self._ready = ctx.Event()
        self.proc = ctx.Process(target=_child, args=(self.queue, self.host, self.port, title, self._ready),
                                name="cosim-dashboard", daemon=True)

    def start(self, timeout: float = 60.0) -> str:
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                code = self.proc.exitcode
                self.stop()
                why = f"its process exited with code {code}" if code is not None else f"not within {timeout:.0f} s"
                raise InputError(f"dashboard: the server did not start on {self.host}:{self.port} ({why})")
        return url(self.host, self.port)

    def stop(self, linger: float = 0.0) -> None:
        """Stop serving (after *linger* s, so the page can show the end of the run)."""
        if self.proc.is_alive():
            self.proc.join(linger)
            self.proc.terminate()
            self.proc.join(5)
        self.queue.close()
        self.queue.cancel_join_thread()


@contextmanager
def live_dashboard(host: str, port: int, title: str) -> Iterator[str]:
    """While the block runs, serve the dashboard of this process's simulation (its clock is the
    recorder's, :meth:`cosim.live.LiveFeed.clock`); yields its URL."""
    from cosim import recorder
    from cosim.live import LiveFeed

    dash = DashboardProcess(host, port, title)
    address = dash.start()
    feed = LiveFeed(dash.queue)
    recorder.LIVE_FEEDS.append(feed)
    try:
        yield address
    finally:
        recorder.LIVE_FEEDS.remove(feed)
        feed.close()
        dash.stop(linger=1.0)
