"""Cost of the wall-clock lookups of an IANA zone (``timezone: Europe/Berlin``) against the fixed offset,
measured alternately in the same process over the 25-h day of 2026-10-25.

    python benchmarks/bench_timezone.py [--n 150] [--reps 3]

Prints per variant (fixed offset, Europe/Berlin) the range over the repetitions of:
  * ``step``   µs per HouseholdSim.step of N households with every device (one day, 1-min steps)
  * ``flex``   ms per flexibility envelope of the N households (24 h × 15 min, every hour)
  * ``tariff`` µs per Tariff.import_prices of 96 slots (the home LP's per-round price lookup)
and the zone/fixed ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from simulators.devices.common import Clock
from simulators.household import HouseholdSim
from simulators.mas.tariff import Tariff

FIXED, ZONE = "2026-10-25T00:00:00+02:00", "2026-10-25T00:00:00+02:00[Europe/Berlin]"
STEPS = 1500  # the 25-h day


def households(n: int) -> list[dict]:
    from benchmarks.bench_household import households as full

    return full(n)


def one_day(start: str, hs: list[dict]) -> tuple[float, float]:
    sim = HouseholdSim()
    sim.init("H", time_resolution=0.001, start=start, step_size=60_000, seed=1)
    sim.create(1, "Households", households=hs)
    pop = sim.pops["Households-0"]
    t_step = t_flex = 0.0
    n_flex = 0
    for k in range(STEPS):
        t0 = time.perf_counter()
        sim.step(k * 60_000, {}, None)
        t_step += time.perf_counter() - t0
        if k % 60 == 0:
            t0 = time.perf_counter()
            pop.output("flex")
            t_flex += time.perf_counter() - t0
            n_flex += 1
    return t_step / STEPS * 1e6, t_flex / n_flex * 1e3


def tariff_us(start: str, n: int = 2000) -> float:
    c, t = Clock(start), Tariff()
    m0 = c.start_local_min
    t0 = time.perf_counter()
    for k in range(n):
        t.import_prices(m0 + 15.0 * (k % 100), 96, 15.0, c)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    hs = households(a.n)
    res: dict[str, list[tuple[float, float, float]]] = {FIXED: [], ZONE: []}
    for _ in range(a.reps):
        for start in (FIXED, ZONE):
            step, flex = one_day(start, hs)
            res[start].append((step, flex, tariff_us(start)))
    print(f"{a.n} households, {STEPS} steps over 2026-10-25, {a.reps} alternating repetitions")
    print(f"{'':>16} {'step µs':>17} {'flex ms':>15} {'tariff µs':>15}")
    for name, start in (("fixed offset", FIXED), ("Europe/Berlin", ZONE)):
        cols = list(zip(*res[start]))
        print(f"{name:>16} " + " ".join(f"{min(c):>7.1f}-{max(c):<7.1f}" for c in cols))
    ratios = [statistics.median(z) / statistics.median(f) for z, f in zip(zip(*res[ZONE]), zip(*res[FIXED]))]
    print(f"{'zone / fixed':>16} " + " ".join(f"{r:>15.2f}" for r in ratios))


if __name__ == "__main__":
    main()
