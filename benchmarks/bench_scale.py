"""Many substations in parallel (`scale_10k`): wall time, peak memory, time per substation.

Runs the scenario as `cosim run` does (cosim.substations: a local dask cluster of --workers processes,
one substation per task, then the results view) and prints

* wall time of the whole run (cluster start, every substation, the view) and the peak of the summed
  RSS of this process and all its children (scheduler, nannies, workers), sampled every 0.2 s;
* households and substations, and per group the measured seconds per substation (each substation's
  own wall time in its worker: building its world, 1.5 simulated days, its KPIs);
* with --count K (each group cut to K substations): the full scenario extrapolated from the measured
  groups: CPU work = sum over groups of count x mean seconds, divided by the workers, plus the
  measured fixed cost (wall - work / workers of this run). Measured and extrapolated are printed apart.

A reference workload (benchmarks/bench_scenarios.reference_s) is timed in the same run: the machine is
shared and noisy, compare ratios across sessions.

Usage: python benchmarks/bench_scale.py [--count K] [--workers N] [--until DURATION] [--keep DIR] [SCENARIO]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scenarios import reference_s  # noqa: E402

from cosim.api import load  # noqa: E402
from cosim.substations import run_substations  # noqa: E402


class PeakRSS:
    """Peak of the summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, every_s: float = 0.2):
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every_s)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="scale_10k")
    ap.add_argument("--count", type=int, default=None, help="run at most K substations of each group, extrapolate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--until", default=None, help="evaluated time (default: the scenario's)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the results in this folder")
    args = ap.parse_args()

    full, _ = load(args.scenario)
    overrides = {"duration": args.until} if args.until else {}
    if args.count:
        overrides |= {f"substations[{i}].count": min(g.count, args.count) for i, g in enumerate(full.substations)}
    scn, text = load(args.scenario, overrides)
    ref = reference_s()
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.keep or Path(tmp)) / f"{scn.name}.h5"
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            result = run_substations(scn, text, out=out, workers=args.workers, progress=False)
        wall = time.perf_counter() - t0
    subs = result.substations
    by_group: dict[str, list[float]] = defaultdict(list)
    for s in subs:
        if s.wall_s is not None:
            by_group[s.group].append(s.wall_s)
    households = sum(s.households for s in subs)
    print(f"reference workload {ref:.2f} s; {args.workers} workers; evaluated {scn.duration / 3_600_000:g} h, "
          f"simulated {scn.simulated().duration / 3_600_000:g} h per substation")
    print(f"MEASURED: {len(subs)} substations ({len(result.failed)} failed), {households} households: "
          f"wall {wall:.1f} s, peak RSS (sum over processes) {rss.peak / 2**30:.2f} GiB")
    print(f"{'group':<14} {'network':<26} {'hh':>4} {'n run':>5} {'s/substation (min-max)':>24}")
    work_run = 0.0
    work_full = 0.0
    for g in full.substations:
        t = by_group.get(g.name, [])
        hh = sum(d.households for d in g.districts)
        if t:
            mean = sum(t) / len(t)
            work_run += sum(t)
            work_full += g.count * mean
            print(f"{g.name:<14} {g.grid.network:<26} {hh:>4} {len(t):>5} {mean:>10.1f} ({min(t):.1f}-{max(t):.1f})")
    if args.count:
        fixed = max(wall - work_run / args.workers, 0.0)
        n_full = sum(g.count for g in full.substations)
        hh_full = sum(g.count * sum(d.households for d in g.districts) for g in full.substations)
        est = work_full / args.workers + fixed
        print(f"EXTRAPOLATED to the full scenario ({n_full} substations, {hh_full} households): work "
              f"{work_full:.0f} s / {args.workers} workers + fixed {fixed:.1f} s = {est:.0f} s wall "
              f"({est / 60:.1f} min); ratio to the reference workload {est / ref:.0f}")


if __name__ == "__main__":
    main()
