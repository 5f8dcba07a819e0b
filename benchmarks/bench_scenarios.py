"""Wall time of bundled scenarios, in-process, no progress bar, with a reference measured in the same run.

The machine is shared and noisy, so every run is timed together with a fixed reference workload
(pure Python and numpy, the same kind of work as a simulation step) measured just before it; the
ratio wall / reference is comparable across sessions and across code versions. The process's CPU
time (all its threads) is printed too: waiting for a busy core inflates the wall time, not it. ``--until`` is the
evaluated time: a scenario with ``evaluation: {warmup: 24h, cooldown: 24h}`` simulates its warm-up, the
evaluated time and the part of the cool-down the window's numbers need (``Scenario.cooldown_run_ms``:
``uc3_substation`` 2.375 days, ``uc1_home`` 2.02 for ``--until 1d``), and the per-day numbers are given
both ways.

Before/after on one machine: run this script once per code version, alternately, e.g.
``PYTHONPATH=/path/to/old/checkout python benchmarks/bench_scenarios.py`` (the old code's packages
shadow the installed ones) and ``python benchmarks/bench_scenarios.py``, and compare the ratios.
``--keep DIR`` keeps the results files (to compare them: ``python -m tests.helpers.same_results``).

``--anchor`` also times the ecosystem composition anchor of issue 14 (``anchor_ecosystem.py``: per-entity
mosaik households → mosaik-pandapower-2 on the kerber Vorstadtnetz → CSV writer, 1 day) once per repeat
and prints each scenario's speed-up against it: anchor s/day ÷ scenario s per simulated day.

Usage: python benchmarks/bench_scenarios.py [--until 1d] [--repeat 2] [--keep DIR] [--anchor] [SCENARIO[:CONTROL] ...]
       (default: uc1_home uc3_physical uc3_substation)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cosim.durations import parse_duration_ms
from cosim.runner import run_scenario
from cosim.scenario import load_scenario

DAY_MS = 86_400_000


def reference_s() -> float:
    """Seconds of a fixed workload: dict-heavy Python loops and small numpy operations."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    a = rng.random(256)
    acc = 0.0
    for i in range(60_000):
        d = {f"h{j}": float(a[(i + j) % 256]) for j in range(8)}
        acc += sum(d.values())
        if i % 20 == 0:
            acc += float(np.sort(a).cumsum()[-1])
    assert acc > 0
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["uc1_home", "uc3_physical", "uc3_substation"])
    ap.add_argument("--until", default=None, help="evaluated time per run (default: the scenario's duration)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="keep the results files in this folder")
    ap.add_argument("--anchor", action="store_true", help="also time the ecosystem anchor (needs .[bench])")
    args = ap.parse_args()
    print(f"{'scenario':<22} {'rep':>3} {'sim d':>5} {'wall s':>7} {'s/sim d':>7} {'s/eval d':>8} {'ref s':>6} "
          f"{'wall/ref':>8} {'cpu s':>7}" + (f" {'x anchor':>8}" if args.anchor else ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for rep in range(args.repeat):
            anchor_s_day = None
            if args.anchor:
                from anchor_ecosystem import run_anchor
                ref = reference_s()
                t0, c0 = time.perf_counter(), time.process_time()
                anchor_s_day = run_anchor(1)["wall_s"]
                cpu = time.process_time() - c0
                print(f"{'ecosystem anchor':<22} {rep:>3} {1:>5g} {anchor_s_day:>7.2f} {anchor_s_day:>7.2f} "
                      f"{anchor_s_day:>8.2f} {ref:>6.2f} {anchor_s_day / ref:>8.1f} {cpu:>7.1f} {1:>8.2f}",
                      flush=True)
            for spec in args.scenarios:
                name, _, control = spec.partition(":")
                scn, text = load_scenario(name, {"control.mode": control} if control else None)
                until = parse_duration_ms(args.until) if args.until else scn.duration
                sim_days = scn.run_ms(until) / DAY_MS
                ref = reference_s()
                t0, c0 = time.perf_counter(), time.process_time()
                run_scenario(scn, text, out=out / f"{spec.replace(':', '_')}_{rep}.h5", until_ms=until,
                             progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                speedup = f" {anchor_s_day / (wall / sim_days):>8.2f}" if anchor_s_day else ""
                print(f"{spec:<22} {rep:>3} {sim_days:>5g} {wall:>7.2f} {wall / sim_days:>7.2f} "
                      f"{wall / (until / DAY_MS):>8.2f} {ref:>6.2f} {wall / ref:>8.1f} {cpu:>7.1f}{speedup}",
                      flush=True)


if __name__ == "__main__":
    main()
