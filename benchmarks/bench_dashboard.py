"""Cost of the live dashboard to a real-time run: 1 s steps, 16 emulated Modbus meters + 4 battery
gateways (20 devices) + 150 simulated households with meters, grid and recording, run alternately
without and with the dashboard (and a headless chromium showing the page), PAIRS times; prints the
step lateness of each run, the difference of the medians, the spread between the runs without
dashboard (the machine's noise) and the time the recorder spends handing rows to the dashboard (the
only work the dashboard adds to the simulation's thread).

Usage: python benchmarks/bench_dashboard.py [DURATION] [PAIRS] [--no-browser]   (default 2min, 2 pairs;
--no-browser: the page is served but not opened, as when the browser runs on another machine)
Needs Debian's chromium (/usr/bin/chromium) and playwright for the browser; without them the page is
served but not opened (said in the output).
"""

import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from cosim.dashboard import live_dashboard
from cosim.live import LiveFeed
from cosim.runner import run_scenario
from cosim.scenario import parse_scenario
from hil.testing import ThreadedEmulators

MAPS = [("sdm630", "sdm630"), ("sunspec-meter", "sunspec_meter"), ("em24", "em24")]
N_METERS, N_GATEWAYS, N_SIMULATED = 16, 4, 150


def scenario(lab: ThreadedEmulators, duration: str) -> dict:
    meters, gateways = [], []
    for i in range(N_METERS):
        kind, map_name = MAPS[i % len(MAPS)]
        emu = lab.start(kind, seed=i)
        meters.append({"id": f"d1.h{i + 1:03d}", "port": emu.port, "map": map_name, "interval": 1.0})
    for i in range(N_GATEWAYS):
        emu = lab.start("sunspec-battery", seed=100 + i)
        gateways.append({"id": f"d1.h{i + 1:03d}", "port": emu.port, "map": "sunspec_battery", "interval": 1.0})
    return {
        "name": "bench_dashboard", "start": "2026-06-15T12:00:00+02:00", "duration": duration, "step": "1s",
        "seed": 1, "districts": [{"name": "d1", "households": N_SIMULATED + N_METERS, "shares": {"pv": 0.4}}],
        "meters": {"interval": "1s"}, "grid": {"network": "dickert_lv_long"},
        "hil": {"meters": meters, "gateways": gateways}, "realtime": {"factor": 1.0, "threshold_ms": 20},
    }


def browse(url: str, stop: threading.Event, said: list[str]) -> None:
    """Keep the page open in a headless chromium until *stop* (the page updates itself)."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        said.append("page not opened: chromium or playwright missing")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#devices")
        said.append("page open in headless chromium")
        stop.wait()
        said.append(f"chromium used {cpu_seconds('chromium'):.1f} CPU s")
        browser.close()


def proc_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) used so far by process *pid* (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds(match: str) -> float:
    """CPU seconds used so far by the processes whose command line contains *match*."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if match.encode() in fh.read():
                    total += proc_cpu(pid)
        except OSError:
            continue
    return total


FEED_S: list[float] = []  # wall time of each LiveFeed.row call in the simulation's thread
LAST_ROW: dict = {}       # a recorded row of the run, replayed by handover_alone()


def timed_row(row):
    def wrapper(self, t_ms, values):
        t0 = time.perf_counter()
        row(self, t_ms, values)
        FEED_S.append(time.perf_counter() - t0)
        LAST_ROW.update(values=values)
    return wrapper


def handover_alone(n: int = 2000) -> list[float]:
    """LiveFeed.row on a recorded row of the run, every call building and queueing a snapshot, with
    nothing else running: the hand-over's own cost, free of the machine's noise."""
    q = multiprocessing.get_context("spawn").Queue(maxsize=64)
    reader = threading.Thread(target=lambda: [q.get() for _ in range(n)], daemon=True)
    reader.start()
    feed = LiveFeed(q, min_interval=0.0)
    feed.clock("2026-06-15T12:00:00+02:00")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        feed.row(i * 1000, LAST_ROW["values"])
        out.append(time.perf_counter() - t0)
        time.sleep(0.0005)
    reader.join(10)
    return sorted(out)


def run(duration: str, dashboard: bool, browser: bool = True) -> dict:
    with ThreadedEmulators() as lab, tempfile.TemporaryDirectory() as tmp:
        data = scenario(lab, duration)
        scn = parse_scenario(data)
        if not dashboard:
            return run_scenario(scn, yaml.safe_dump(data), out=Path(tmp) / "rt.h5", progress=False).lateness
        stop, said = threading.Event(), []
        with live_dashboard("127.0.0.1", 0, "bench") as url:
            viewer = threading.Thread(target=browse if browser else lambda *a: said.append("no browser"),
                                      args=(url, stop, said))
            viewer.start()
            try:
                return run_scenario(scn, yaml.safe_dump(data), out=Path(tmp) / "rt.h5", progress=False).lateness
            finally:
                server = multiprocessing.active_children()[0].pid
                said.append(f"dashboard server used {proc_cpu(server):.1f} CPU s")
                stop.set()
                viewer.join()
                print("  " + "; ".join(said))


def main(duration: str = "2min", pairs: str = "2", *flags: str) -> None:
    browser = "--no-browser" not in flags
    print(f"real time, 1 s steps, {duration} per run: {N_METERS} Modbus meters + {N_GATEWAYS} gateways + "
          f"{N_SIMULATED} simulated households, grid, recording")
    row = LiveFeed.row
    LiveFeed.row = timed_row(row)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(int(pairs)):
        for dash in (False, True):
            lt = run(duration, dash, browser)
            runs[dash].append(lt)
            name = ("with dashboard + browser" if browser else "with dashboard") if dash else "without dashboard"
            print(f"{name:<26} lateness p50 {lt['p50_ms']:6.2f} ms  p99 {lt['p99_ms']:6.2f} ms  "
                  f"max {lt['max_ms']:7.2f} ms  ({lt['n']} steps, {lt['late']} > {lt['threshold_ms']:.0f} ms)")
    med = {d: {k: statistics.median(r[k] for r in runs[d]) for k in ("p50_ms", "p99_ms")} for d in runs}
    p99_off = [r["p99_ms"] for r in runs[False]]
    print(f"median of the runs: p50 {med[False]['p50_ms']:.2f} -> {med[True]['p50_ms']:.2f} ms, "
          f"p99 {med[False]['p99_ms']:.2f} -> {med[True]['p99_ms']:.2f} ms "
          f"(added p99 {med[True]['p99_ms'] - med[False]['p99_ms']:+.2f} ms; runs without dashboard alone spread "
          f"{max(p99_off) - min(p99_off):.2f} ms in p99)")
    feed = sorted(FEED_S)
    print(f"LiveFeed.row in the simulation's thread during the runs: {len(feed)} calls, p50 "
          f"{feed[len(feed) // 2] * 1e3:.3f} ms, p99 {feed[int(len(feed) * 0.99)] * 1e3:.3f} ms, max {feed[-1] * 1e3:.3f} ms")
    LiveFeed.row = row
    alone = handover_alone()
    print(f"the same hand-over alone ({len(alone)} snapshots of a recorded row, {len(LAST_ROW['values'])} series): "
          f"p50 {alone[len(alone) // 2] * 1e3:.3f} ms, p99 {alone[int(len(alone) * 0.99)] * 1e3:.3f} ms")


if __name__ == "__main__":
    main(*sys.argv[1:])
