"""Where a run's CPU goes by thread: the simulation thread (mosaik's loop and every simulator in the
process), the two threads that answer prices (``home-answers``) and the reference thread
(``central-reference``), each with its HiGHS share, and how long the simulation thread was idle (mostly
waiting for the answers). No profiler: thread CPU clocks only, so the run keeps its speed.

A run cannot take less wall time than its simulation thread's CPU; the answer threads help only while
that thread waits for them.

Usage: python benchmarks/profile_threads.py [--until 1d] [SCENARIO ...]   (default: uc3_substation)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_floors import DAY_MS, THREAD_GROUPS, HighsClock, thread_group
from cosim.durations import parse_duration_ms
from cosim.runner import run_scenario
from profile_scenarios import _load


def profile(name: str, until: int) -> dict:
    """CPU seconds per thread group (:func:`bench_floors.thread_group`) and, of them, HiGHS's (its
    ``run`` calls, as ``bench_floors.HighsClock`` counts them) of one in-process run of *name*."""
    scn, text = _load(name)
    cpu: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    submit = ThreadPoolExecutor.submit

    def timed_submit(self, fn, *args, **kwargs):  # each task's CPU on the worker thread that runs it
        def task():
            c0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    cpu[thread_group(threading.current_thread())] += time.thread_time() - c0
        return submit(self, task)

    ThreadPoolExecutor.submit = timed_submit
    try:
        with tempfile.TemporaryDirectory() as tmp, HighsClock() as highs:
            w0, c0 = time.perf_counter(), time.thread_time()
            run_scenario(scn, text, out=Path(tmp) / "x.h5", until_ms=until, progress=False)
            cpu["simulation"] = time.thread_time() - c0
            wall = time.perf_counter() - w0
    finally:
        ThreadPoolExecutor.submit = submit
    return {"sim_days": scn.run_ms(until) / DAY_MS, "wall": wall, "cpu": dict(cpu), "highs": dict(highs.by_thread)}


def report(name: str, r: dict) -> None:
    days, wall, cpu, highs = r["sim_days"], r["wall"], r["cpu"], r["highs"]
    print(f"\n{name}: {days:g} simulated day(s), wall {wall:.1f} s ({wall / days:.2f} s per simulated day)")
    for group in ("simulation",) + THREAD_GROUPS:
        c, h = cpu.get(group, 0.0), highs.get(group, 0.0)
        share = f" ({100 * h / c:.0f} %)" if c > 0 else ""
        print(f"  {group + ' thread' + ('s' if group == 'home-answers' else ''):<28} CPU {c:7.2f} s, "
              f"of it HiGHS {h:6.2f} s{share}")
    idle = wall - cpu.get("simulation", 0.0)
    print(f"  simulation thread idle (waiting for answers, I/O) {idle:6.2f} s = {100 * idle / wall:.0f} % of the wall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["uc3_substation"])
    ap.add_argument("--until", default="1d", help="evaluated time (default 1d)")
    args = ap.parse_args()
    for name in args.scenarios:
        report(name, profile(name, parse_duration_ms(args.until)))


if __name__ == "__main__":
    main()
