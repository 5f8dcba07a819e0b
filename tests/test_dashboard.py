"""The live dashboard without a browser: the page and BokehJS are served by this machine only (no CDN),
snapshots carry the real devices and only them, a results file is tailed incrementally, and bad
input is one line with exit code 2."""

import datetime as dt
import re
import subprocess
import sys
import urllib.request


from cosim import recorder
from cosim.cli import main
from cosim.dashboard import History, live_dashboard
from cosim.results import ResultsWriter
from cosim.live import ResultsTail, snapshot
from tests.conftest import free_port

START = "2026-06-15T12:00:00+02:00"


def row(t_s: float, p_real: float, quality: float) -> dict:
    return {("meters", "P"): {"d1.h001": p_real, "d1.h002": 0.4},   # d1.h002: a simulated meter
            ("meters", "quality"): {"d1.h001": quality}, ("meters", "age"): {"d1.h001": 0.2 + t_s},
            ("gateways", "P_bat"): {"d1.h001": 1.0}, ("gateways", "quality"): {"d1.h001": 0.0},
            ("controller", "P_bat_set"): {"d1.h001": 1.5}, ("realtime", "lateness_ms"): {"rt": 3.0},
            ("grid", "v_min"): {"grid": 0.97}, ("grid", "v_max"): {"grid": 1.02},
            ("households", "P"): {"d1.h001": 1.25, "d1.h002": -0.5, "d1.h003": float("nan")}}


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return r.read().decode("utf-8", "replace")


def test_snapshot_has_the_real_devices_only_with_set_point_and_read_back():
    values = row(1, 0.7, 1.0)
    s = snapshot(1000, 1000.0, lambda p, a: values.get((p, a)))
    assert [(d["role"], d["id"]) for d in s["devices"]] == [("meter", "d1.h001"), ("gateway", "d1.h001")]
    meter, gateway = s["devices"]
    assert meter["P"] == 0.7 and meter["quality"] == 1.0 and meter["V"] is None
    assert gateway["set"] == 1.5 and gateway["readback"] == 1.0
    assert (s["v_min"], s["v_max"], s["lateness_ms"], s["x"]) == (0.97, 1.02, 3.0, 1000.0)
    assert s["households_kw"] == 0.75  # the simulated households' net power, summed (a NaN is no value)
    assert snapshot(0, 0.0, lambda p, a: None)["households_kw"] is None


def test_simulated_households_net_power_is_plotted_and_shown():
    from cosim.dashboard import plot_groups, state_text

    h = History()
    for t in range(3):
        values = row(t, 0.5, 0.0)
        values[("households", "P")] = {"d1.h001": 1.0 + t, "d1.h002": 0.5}
        h.add(snapshot(t * 1000, 0.0, lambda p, a: values.get((p, a))))
    assert list(h.cols["households_kw"]) == [1.5, 2.5, 3.5]
    titles = [title for title, _, _ in plot_groups(sorted(h.cols))]
    assert "Simulated households: net power" in titles
    assert "3.50 kW" in state_text(h)
    assert "Simulated households: net power" not in [t for t, _, _ in plot_groups(["x", "latency_ms"])]


def test_step_lateness_is_shown_only_for_a_real_time_run():
    """A run as fast as it goes has no step lateness: its header said 'step lateness – ms'."""
    from cosim.dashboard import status_text

    fast, paced = History(), History()
    values = {k: v for k, v in row(0, 0.5, 0.0).items() if k[0] != "realtime"}
    fast.add(snapshot(0, 0.0, lambda p, a: values.get((p, a))))
    paced.add(snapshot(0, 0.0, lambda p, a: row(0, 0.5, 0.0).get((p, a))))
    assert "lateness" not in status_text(fast, "run") and "update 1" in status_text(fast, "run")
    assert "step lateness <b>0.0 ms</b>" in status_text(paced, "run")  # re-anchored at the earliest step


def test_plots_draw_only_the_series_the_history_has():
    """A file with the grid's voltage band but no transformer series: building the plots raised
    KeyError 'trafo_loading' (a 500 for the page, or a traceback every second in update_plots)."""
    from cosim.dashboard import plot_groups

    h = History()
    h.add(snapshot(0, 0.0, lambda p, a: row(0, 0.5, 0.0).get((p, a))))
    keys = sorted(h.cols)
    assert "v_min" in keys and "trafo_loading" not in keys
    for title, _, lines in plot_groups(keys):
        for _, series, labels in lines:
            assert set(series) <= set(keys) and len(series) == len(labels), title
    assert "Transformer loading" in [t for t, _, _ in plot_groups([*keys, "trafo_loading"])]


def test_page_and_bokehjs_are_served_locally_without_any_external_url():
    port = free_port()
    with live_dashboard("127.0.0.1", port, "test") as url:
        assert url == f"http://127.0.0.1:{port}/"
        feed = recorder.LIVE_FEEDS[-1]
        feed.row(0, row(0, 0.5, 0.0))
        page = get(url)
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/static/") for a in assets), assets
        assert not re.search(r"https?://(?!127\.0\.0\.1)", page)
        js = get(f"http://127.0.0.1:{port}{assets[0]}")
        assert len(js) > 100_000 and "Bokeh" in js
    assert recorder.LIVE_FEEDS == []


def test_results_tail_reads_new_rows_and_device_events_of_a_file_being_written(tmp_path):
    path = tmp_path / "r.h5"
    keys = list(row(0, 0, 0))
    w = ResultsWriter(str(path), {}, [(p, a, "") for p, a in keys], ["devices"], START, 1000, flush_every=1)
    for t in range(3):
        w.append(t * 1000, row(t, 0.5 + t, 0.0))
    tail = ResultsTail(str(path))
    first = tail.poll()
    assert [s["t"] for s in first] == [0, 1000, 2000]
    assert first[-1]["devices"][0]["P"] == 2.5 and first[-1]["events"] == []
    assert tail.poll() == []
    w.add_events("devices", [{"kind": "drop", "device": "d1.h001", "msg": "meter d1.h001: no answer"}])
    w.append(3000, row(3, 9.0, 1.0))
    new = tail.poll()
    assert [s["t"] for s in new] == [3000] and new[0]["devices"][0]["quality"] == 1.0
    assert [e["kind"] for e in new[0]["events"]] == ["drop"]
    h = History()
    for s in first + new:
        h.add(s)
    assert list(h.cols["P d1.h001"]) == [0.5, 1.5, 2.5, 9.0]
    assert list(h.cols["set d1.h001"]) == [1.5] * 4 and len(h.events) == 1
    tail.close()
    w.close()


def test_watch_serves_the_page_of_a_results_file(tmp_path):
    path = tmp_path / "r.h5"
    w = ResultsWriter(str(path), {}, [(p, a, "") for p, a in row(0, 0, 0)], [], START, 1000, flush_every=1)
    w.append(0, row(0, 0.5, 0.0))
    w.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "watch", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"dashboard: http://127.0.0.1:{port}/"), line
        assert "bokeh" in get(f"http://127.0.0.1:{port}/").lower()
    finally:
        proc.terminate()
        proc.wait(10)


def test_watch_bad_file_and_busy_port_are_one_line_exit_2(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'missing.h5'}: no such file"]
    path = tmp_path / "r.h5"
    ResultsWriter(str(path), {}, [], [], START, 1000).close()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert main(["watch", str(path), "--port", str(busy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: dashboard: cannot listen on 127.0.0.1:{busy}")


def test_mas_and_telecom_state_and_device_table_highlight():
    from cosim.dashboard import device_table, state_text

    values = {**row(0, 0.5, 2.0), ("lfa", "rounds"): {"lfa.d1": 3.0}, ("lfa", "gap"): {"lfa.d1": 0.8},
              ("telecom", "latency_mean_ms"): {"telecom": 42.0}, ("telecom", "sent"): {"telecom": 120.0},
              ("telecom", "lost"): {"telecom": 2.0}}
    s = snapshot(0, 0.0, lambda p, a: values.get((p, a)))
    s["events"] = [{"kind": "negotiation", "agent": "lfa.d1", "t": 5_400_000, "neg": "d1-7", "rounds": 3, "members": 10,
                    "replied": 9}, {"kind": "exception", "msg": "meter d1.h001 (127.0.0.1:1): exception response"}]
    h = History()
    h.add(s)
    text = state_text(h)
    assert "round 3, gap 0.80 %; last negotiation ended 01:30:00: 3 rounds, 9/10 replied" in text
    assert "42.0 ms" in text and "120 / 2" in text and "<li class='warn'>" in text
    table = device_table(s)
    assert "<td class='quality q-error'>error</td>" in table
    assert list(h.cols["latency_ms"]) == [42.0]


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_dashboard_process_goes_when_its_run_is_killed(write_scenario):
    """A run killed without cleanup (SIGKILL) must not leave its dashboard server behind."""
    import time

    port = free_port()
    path = write_scenario(realtime={"factor": 1.0})
    run = subprocess.Popen([sys.executable, "-m", "cosim.cli", "run", str(path), "--quiet", "--out",
                            str(path.with_suffix(".h5")), "--dashboard", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert run.stdout.readline().startswith(f"dashboard: http://127.0.0.1:{port}/")
        assert not port_free(port)
    finally:
        run.kill()
        run.wait(10)
    t0 = time.monotonic()
    while not port_free(port) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert port_free(port), "the dashboard server outlived its run"


def _zero_a_data_chunk(path, dataset: str = "meters/P") -> None:
    """Zero the bytes of *dataset*'s first stored chunk: its metadata stays good, its gzip data does not."""
    import h5py

    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\0" * info.size)


def test_watch_of_a_file_with_a_damaged_data_chunk_is_one_line_exit_2(tmp_path):
    """A chunk that fails to decompress was a traceback every 100 ms for as long as `cosim watch` ran."""
    path = tmp_path / "r.h5"
    w = ResultsWriter(str(path), {}, [(p, a, "") for p, a in row(0, 0, 0)], [], START, 1000, flush_every=1)
    for t in range(5):
        w.append(t * 1000, row(t, 0.5, 0.0))
    w.close()
    _zero_a_data_chunk(path)
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "watch", str(path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == 2, (out, err[-2000:])
    assert err.splitlines() == [f"error: {path}: damaged results file (filter returned failure during read)"], err
    assert out == ""


def test_a_source_failing_while_served_stops_the_server_and_raises_once(tmp_path):
    """A file damaged where later rows land: the page was served, then every poll raised. Now the first
    failure stops polling and serving, and serve() raises it (cosim watch: one line, exit 2)."""
    import threading

    from cosim.dashboard import serve
    from cosim.errors import InputError

    class Source:
        polls = 0
        closed = False

        def poll(self, history):
            self.polls += 1
            if self.polls >= 3:
                raise InputError("r.h5: damaged results file (filter returned failure during read)")

        def close(self):
            self.closed = True

    src, port, raised = Source(), free_port(), []

    def target():
        try:
            serve(src, "127.0.0.1", port, "t")
        except BaseException as exc:  # noqa: BLE001 - checked below
            raised.append(exc)

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(30)
    assert not th.is_alive(), "serve() went on after its source failed"
    assert [type(e) for e in raised] == [InputError] and src.polls == 3 and src.closed
    assert port_free(port)


def test_live_dashboard_clock_of_a_run_with_warm_up_reads_the_recorded_times(write_scenario, monkeypatch, tmp_path):
    """`cosim run --dashboard` of a scenario with a warm-up: the page's simulated time is the time of the
    recorded row. Its clock began at the window's start while the rows count from the warm-up's, so a
    uc2_district run showed 14 Apr 02:00 while simulating 13 Apr 02:00 (the 24-h warm-up ahead)."""
    import queue

    import cosim.dashboard as dashboard
    from cosim.results import Results

    class Page:  # the dashboard process's side: its queue, without serving the page
        def __init__(self, host, port, title):
            self.queue = queue.Queue()

        def start(self):
            return "http://127.0.0.1:1/"

        def stop(self, linger=0.0):
            pass

    pages = []
    monkeypatch.setattr(dashboard, "DashboardProcess", lambda *a: pages.append(Page(*a)) or pages[-1])
    path = write_scenario(duration="1h", evaluation={"warmup": "2h", "cooldown": "1min"})
    out = tmp_path / "r.h5"
    assert main(["run", str(path), "--quiet", "-o", str(out), "--dashboard", "0"]) == 0
    snaps = [s for s in iter(pages[0].queue.get_nowait, None)]
    assert snaps
    with Results(out, window=False) as res:
        recorded = {int(t): x for t, x in zip(res.t_ms, res.local_times())}
    for s in snaps:
        x = recorded[s["t"]].replace(tzinfo=None)
        assert s["x"] == x.replace(tzinfo=dt.timezone.utc).timestamp() * 1000.0, (s["t"], x)


def test_dashboard_times_follow_daylight_saving_time(tmp_path):
    """A run across the switch to summer time (Europe/Berlin, 29 Mar 2026 02:00 CET -> 03:00 CEST): the
    page's simulated time is the local wall time after it too. Its clock was the start's offset plus the
    elapsed time, an hour behind for the rest of summer (a year run watched in July showed 11:00 at 12:00)."""
    import queue

    import yaml

    from cosim.live import LiveFeed
    from cosim.results import Results

    start = "2026-03-29T00:00:00+01:00"
    scenario = {"name": "dst", "timezone": "Europe/Berlin", "start": start, "duration": "6h", "step": "1h",
                "seed": 1, "districts": [{"name": "d1", "households": 1}], "meters": {"interval": "1h"}}
    path = tmp_path / "r.h5"
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario)}, [("households", "P", "kW")], [], start,
                      3_600_000, flush_every=1)
    for k in range(6):
        w.append(k * 3_600_000, {("households", "P"): {"d1.h001": 1.0}})
    with Results(path) as res:
        wall = [t.replace(tzinfo=dt.timezone.utc).timestamp() * 1000.0 for t in res.local_times()]
    assert [dt.datetime.fromtimestamp(x / 1000, dt.timezone.utc).hour for x in wall] == [0, 1, 3, 4, 5, 6]
    tail = ResultsTail(str(path))  # cosim watch
    assert [s["x"] for s in tail.poll()] == wall
    tail.close()
    w.close()
    q = queue.Queue()  # cosim run --dashboard: the recorder hands the feed its clock
    feed = LiveFeed(q, min_interval=0.0)
    feed.clock(start, "Europe/Berlin")
    for k in range(6):
        feed.row(k * 3_600_000, {("households", "P"): {"d1.h001": 1.0}})
    assert [q.get_nowait()["x"] for _ in range(6)] == wall


def test_watch_reads_a_file_without_a_valid_start_time(tmp_path):
    """An HDF5 file with /time but no usable `start` attribute (another tool's file): `cosim kpis` and
    `cosim report` read it (from 2000-01-01 UTC, as cosim.Results does), `cosim watch` printed a
    traceback (ValueError: Invalid isoformat string)."""
    import h5py

    for start in ("garbage", None):
        path = tmp_path / f"{start}.h5"
        with h5py.File(path, "w") as f:
            f["time"] = [0, 60_000]
            if start is not None:
                f.attrs["start"] = start
        tail = ResultsTail(str(path))
        snaps = tail.poll()
        tail.close()
        origin = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000
        assert [s["x"] for s in snaps] == [origin, origin + 60_000]


def test_a_closed_browser_tab_is_not_a_warning_of_the_run(caplog):
    """Bokeh warns once per update it could not send to a tab that was just closed; the run's terminal
    showed such a line each time a page was closed. Other warnings of that logger still show."""
    import logging

    from cosim.dashboard import quiet_closed_tabs

    quiet_closed_tabs()
    ws = logging.getLogger("bokeh.server.views.ws")
    with caplog.at_level(logging.WARNING, logger="bokeh.server.views.ws"):
        ws.warning("Failed sending message as connection was closed")
        ws.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
