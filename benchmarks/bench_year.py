"""A year of simulation: wall time, memory growth and results-file size, extrapolated from short runs.

Each run is its own process (so one run's memory does not count against the next); inside it a thread
samples the resident memory (RSS, the process and any simulator subprocesses) and the simulated time
(rows the recorder has taken) once a second. Per scenario:

* two runs of ``--days`` evaluated days, full resolution and ``record.aggregate: 15min``: wall per
  simulated day (from the second simulated day on, start-up excluded), the RSS growth per simulated
  day (least-squares slope over the samples after the first simulated day) and the peak RSS;
* one 1-day run of each kind: the file size; with the ``--days`` run, a line size = a + b·days through
  both gives the year's file (365 evaluated days plus the scenario's warm-up and cool-down).

Extrapolated year: wall = start-up + s/day × simulated days; RSS = peak + growth × remaining days.
``--year`` also runs the whole year (aggregated) and prints the measured numbers.
The machine is shared and noisy: the reference workload of bench_scenarios.py is timed before each
run (``ref s``) so wall / ref can be compared across sessions.

Usage: python benchmarks/bench_year.py [--days 7] [--year] [SCENARIO ...]  (default: uc3_physical uc3_substation)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DAY_MS = 86_400_000
AGGREGATE = "15min"


def child(name: str, days: float, aggregate: bool, out: str) -> dict:
    """Run *name* for *days* evaluated days in this process, sampling RSS and simulated time."""
    from memory_sampler import RSSSampler

    from cosim import recorder
    from cosim.runner import run_scenario
    from cosim.scenario import load_scenario

    scn, text = load_scenario(name, {"record.aggregate": AGGREGATE} if aggregate else None)
    row_ms = scn.record.aggregate or scn.record.every or scn.step

    def simulated_days() -> float:
        return sum(w.rows_written + len(w.times) for w in list(recorder.OPEN_WRITERS)) * row_ms / DAY_MS

    t0 = time.perf_counter()
    with RSSSampler(1.0, simulated_days) as rss:
        res = run_scenario(scn, text, out=out, until_ms=int(days * DAY_MS), progress=False)
    wall = time.perf_counter() - t0
    sim_days = res.until_ms / DAY_MS
    # (wall s, simulated days, RSS MB)
    s = np.array([(t, d, b / 2**20) for t, b, d in rss.samples]) if rss.samples else np.zeros((0, 3))
    late = s[s[:, 1] >= min(1.0, sim_days / 2)] if len(s) else s
    fit = len(late) > 3 and np.ptp(late[:, 1]) > 0
    growth = float(np.polyfit(late[:, 1], late[:, 2], 1)[0]) if fit else float("nan")
    per_day = float(np.polyfit(late[:, 1], late[:, 0], 1)[0]) if fit else wall / sim_days
    return {"wall_s": wall, "sim_days": sim_days, "s_per_day": per_day, "startup_s": wall - per_day * sim_days,
            "rss_peak_mb": float(s[:, 2].max()) if len(s) else float("nan"), "rss_growth_mb_per_day": growth,
            "file_mb": Path(out).stat().st_size / 1e6,
            "margin_days": scn.run_ms(0) / DAY_MS}


def spawn(name: str, days: float, aggregate: bool, out: Path) -> dict:
    from bench_scenarios import reference_s

    ref = reference_s()
    cmd = [sys.executable, __file__, "--child", name, str(days), "1" if aggregate else "0", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{name} {days} d failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"ref_s": ref}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        name, days, agg, out = sys.argv[2:6]
        print(json.dumps(child(name, float(days), agg == "1", out)))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["uc3_physical", "uc3_substation"])
    ap.add_argument("--days", type=float, default=7.0, help="evaluated days of the growth runs (default 7)")
    ap.add_argument("--year", action="store_true", help="also run 365 days aggregated and print the measurement")
    args = ap.parse_args()
    if args.days == 1:
        ap.error("--days 1: the growth runs must differ in length from the 1-day runs (the file size is a line "
                 "through both)")
    sys.path.insert(0, str(Path(__file__).parent))
    print(f"{'scenario':<16} {'record':<6} {'eval d':>6} {'sim d':>5} {'wall s':>7} {'s/sim d':>7} {'ref s':>5} "
          f"{'RSS MB':>7} {'MB/sim d':>8} {'file MB':>8} | {'year wall min':>13} {'year RSS MB':>11} "
          f"{'year file MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            for agg in (False, True):
                kind = "15min" if agg else "1min"
                one = spawn(name, 1, agg, Path(tmp) / f"{name}-{kind}-1d.h5")
                many = spawn(name, args.days, agg, Path(tmp) / f"{name}-{kind}-n.h5")
                year_sim = 365 + many["margin_days"]
                b = (many["file_mb"] - one["file_mb"]) / (many["sim_days"] - one["sim_days"])
                year_file = one["file_mb"] + b * (year_sim - one["sim_days"])
                growth = max(many["rss_growth_mb_per_day"], 0.0)
                year_wall = (many["startup_s"] + many["s_per_day"] * year_sim) / 60
                year_rss = many["rss_peak_mb"] + growth * (year_sim - many["sim_days"])
                for r, d in ((one, 1), (many, args.days)):
                    print(f"{name:<16} {kind:<6} {d:>6g} {r['sim_days']:>5g} {r['wall_s']:>7.1f} "
                          f"{r['s_per_day']:>7.2f} {r['ref_s']:>5.2f} {r['rss_peak_mb']:>7.0f} "
                          f"{r['rss_growth_mb_per_day']:>8.2f} {r['file_mb']:>8.2f} |", end="")
                    print(f" {year_wall:>13.1f} {year_rss:>11.0f} {year_file:>12.1f}" if r is many else "",
                          flush=True)
            if args.year:
                r = spawn(name, 365, True, Path(tmp) / f"{name}-year.h5")
                print(f"{name:<16} {'15min':<6} {365:>6g} {r['sim_days']:>5g} {r['wall_s']:>7.1f} "
                      f"{r['s_per_day']:>7.2f} {r['ref_s']:>5.2f} {r['rss_peak_mb']:>7.0f} "
                      f"{r['rss_growth_mb_per_day']:>8.2f} {r['file_mb']:>8.2f} | measured", flush=True)


if __name__ == "__main__":
    main()
