"""Grid power-flow benchmark: ms/step of the fast engine vs pandapower runpp (with/without recycle).

    python benchmarks/bench_grid.py [--network kerber_vorstadt_1] [--steps 200] [--seed 1]

Every engine gets the same sequence of household loads: one household per original load bus
(146 on kerber Vorstadtnetz), an AR(1) random walk around 0.6 kW with a PV share feeding in at
midday-like steps, Q = 0.2 P. Also times the full ``GridModel`` step (input merge + power flow +
all outputs as dicts), which is what the mosaik simulator does per step, and reports the largest
deviation of each engine from plain runpp over the run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from simulators.grid import OUT_ATTRS, GridModel
from simulators.grid_engine import make_engine
from simulators.grid_networks import load_buses, load_network, strip_injections


def load_profile(n: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 1.2, n)
    pv_kwp = np.where(rng.random(n) < 0.4, rng.uniform(3, 10, n), 0.0)
    p = np.empty((steps, n))
    x = np.zeros(n)
    for k in range(steps):
        x = 0.9 * x + rng.normal(0, 0.4, n)
        sun = max(0.0, np.sin(np.pi * k / max(steps - 1, 1)))  # one "day" over the run
        p[k] = np.maximum(base + x, 0.05) + rng.exponential(0.3, n) - pv_kwp * sun * 0.8
    return p, 0.2 * p


def bench_engine(name: str, net, buses, P, Q, **opts):
    eng = make_engine(name, net, buses, **opts)
    times, results = [], []
    for p, q in zip(P, Q):
        t0 = time.perf_counter()
        r = eng.solve(p / 1000.0, q / 1000.0)
        times.append(time.perf_counter() - t0)
        results.append(r)
    return times, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", default="kerber_vorstadt_1")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    net = load_network(args.network)
    buses = load_buses(net)
    strip_injections(net)
    P, Q = load_profile(len(buses), args.steps, args.seed)
    print(f"network {args.network}: {len(net.bus)} buses, {len(net.line)} lines, "
          f"{len(buses)} household buses, {args.steps} steps")

    runs = {
        "fast (auto: Z-bus, NR fallback)": ("fast", {}),
        "fast (method=nr)": ("fast", {"method": "nr"}),
        "runpp + recycle": ("runpp", {}),
        "runpp (no recycle)": ("runpp_norecycle", {}),
    }
    out = {}
    for label, (name, opts) in runs.items():
        t0 = time.perf_counter()
        times, results = bench_engine(name, net, buses, P, Q, **opts)
        out[label] = (times, results, time.perf_counter() - t0)
    ref = out["runpp (no recycle)"][1]

    print(f"{'engine':34s} {'mean ms':>8s} {'median':>8s} {'p95':>8s} {'conv':>5s} "
          f"{'max dV pu':>10s} {'max dLine %':>11s}")
    for label, (times, results, _total) in out.items():
        ms = np.array(times) * 1e3
        dv = max(float(np.nanmax(np.abs(r.vm_pu - s.vm_pu))) for r, s in zip(results, ref))
        dl = max(float(np.nanmax(np.abs(r.line_loading - s.line_loading))) for r, s in zip(results, ref))
        conv = sum(r.converged for r in results)
        print(f"{label:34s} {ms.mean():8.3f} {statistics.median(ms):8.3f} "
              f"{np.percentile(ms, 95):8.3f} {conv:5d} {dv:10.2e} {dl:11.2e}")

    # full simulator step: merge inputs + solve + every output as a dict
    ids = [f"d1.h{i:03d}" for i in range(len(buses))]
    for engine in ("fast", "runpp"):
        m = GridModel(args.network, households=ids, engine=engine)
        times = []
        for p, q in zip(P, Q):
            inputs = {"P": {"Households-0.pop": dict(zip(ids, p.tolist()))},
                      "Q": {"Households-0.pop": dict(zip(ids, q.tolist()))}}
            t0 = time.perf_counter()
            m.set_inputs(inputs)
            m.solve()
            for a in OUT_ATTRS:
                m.output(a)
            times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1e3
        print(f"GridModel step ({engine:5s}, incl. I/O)   {ms.mean():8.3f} {statistics.median(ms):8.3f} "
              f"{np.percentile(ms, 95):8.3f}")


if __name__ == "__main__":
    main()
