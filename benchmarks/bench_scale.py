"""Many substations in parallel (`scale_10k`): wall time, peak memory, time per substation.

Runs the scenario as `cosim run` does (cosim.substations: a local dask cluster of --workers processes,
one substation per task, then the results view) and prints

* wall time of the whole run (cluster start, every substation, the view) and the peak of the summed
  RSS of this process and all its children (scheduler, nannies, workers), sampled every 0.2 s;
* households and substations, and per group the measured seconds per substation (each substation's
  own wall time in its worker: building its world, 1.625 simulated days, its KPIs)
  and its CPU time (of its worker process: on a machine shared with other jobs, wall time includes
  waiting for a core, CPU time does not);
* with --count K (the first K substations of each group, each with the id and seed it has in the full
  scenario, so the sample is part of the full run): the full scenario extrapolated from the measured
  groups: CPU = sum over groups of count x mean CPU seconds per substation, divided by the workers
  (the wall time on otherwise idle cores), and the fixed cost measured in this run (wall - CPU /
  workers: cluster start, imports, the view, and waiting for cores). Measured and extrapolated are
  printed apart.

A reference workload (benchmarks/bench_scenarios.reference_s) is timed in the same run: the machine is
shared and noisy, compare ratios across sessions.

Usage: python benchmarks/bench_scale.py [--count K] [--workers N] [--until DURATION] [--keep DIR] [SCENARIO]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scenarios import reference_s  # noqa: E402
from memory_sampler import RSSSampler  # noqa: E402

from cosim.api import load  # noqa: E402
from cosim.scenario import read_yaml  # noqa: E402
from cosim.substations import expand, run_substations  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="scale_10k")
    ap.add_argument("--count", type=int, default=None, help="run at most K substations of each group, extrapolate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--until", default=None, help="evaluated time (default: the scenario's)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the results in this folder")
    args = ap.parse_args()

    scn, text = load(args.scenario, {"duration": args.until} if args.until else {})
    only = None
    if args.count:
        taken: Counter = Counter()
        sample = set()
        for sub in expand(read_yaml(text, scn.name)):
            if taken[sub.group] < args.count:
                taken[sub.group] += 1
                sample.add(sub.id)

        def only(s):
            return s.id in sample
    load0 = os.getloadavg()
    ref = reference_s()
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.keep or Path(tmp)) / f"{scn.name}.h5"
        t0 = time.perf_counter()
        with RSSSampler() as rss:
            result = run_substations(scn, text, out=out, workers=args.workers, progress=False, only=only)
        wall = time.perf_counter() - t0
    subs = result.substations
    by_group: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in subs:
        if s.wall_s is not None and s.cpu_s is not None:
            by_group[s.group].append((s.wall_s, s.cpu_s))
    households = sum(s.households for s in subs)
    print(f"reference workload {ref:.2f} s; {args.workers} workers; evaluated {scn.duration / 3_600_000:g} h, "
          f"simulated {scn.run_ms() / 3_600_000:g} h per substation; load average before "
          f"{load0[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"MEASURED: {len(subs)} substations ({len(result.failed)} failed), {households} households: "
          f"wall {wall:.1f} s, peak RSS (sum over processes) {rss.peak / 2**30:.2f} GiB")
    print(f"{'group':<14} {'network':<26} {'hh':>4} {'n run':>5} {'wall s/substation':>22} {'CPU s/substation':>22}")
    cpu_run = cpu_full = 0.0
    for g in scn.substations:
        t = by_group.get(g.name, [])
        if not t:
            continue
        walls, cpus = [w for w, _ in t], [c for _, c in t]
        cpu_run += sum(cpus)
        cpu_full += g.count * sum(cpus) / len(cpus)
        print(f"{g.name:<14} {g.grid.network:<26} {sum(d.households for d in g.districts):>4} {len(t):>5} "
              f"{sum(walls) / len(walls):>8.1f} ({min(walls):.1f}-{max(walls):.1f}) "
              f"{sum(cpus) / len(cpus):>8.1f} ({min(cpus):.1f}-{max(cpus):.1f})")
    print(f"CPU time of the substations {cpu_run:.0f} s = {cpu_run / max(wall, 1e-9):.2f} cores busy on average "
          f"over the wall time")
    if args.count:
        n_full = sum(g.count for g in scn.substations)
        hh_full = sum(g.count * sum(d.households for d in g.districts) for g in scn.substations)
        fixed = max(wall - cpu_run / args.workers, 0.0)
        est = cpu_full / args.workers
        print(f"EXTRAPOLATED to the full scenario ({n_full} substations, {hh_full} households): CPU "
              f"{cpu_full:.0f} s; on {args.workers} otherwise idle cores {est:.0f} s ({est / 60:.1f} min) + the "
              f"fixed cost measured here (wall - CPU / workers) {fixed:.0f} s; ratio to the reference workload "
              f"{est / ref:.0f}")

if __name__ == "__main__":
    main()
