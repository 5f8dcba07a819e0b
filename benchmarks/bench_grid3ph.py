"""Unbalanced grid benchmark on the IEEE European LV feeder (907 buses, 55 single-phase loads):
ms per step of the fast3ph engine vs OpenDSS (dss-python) solving the same day in the same run,
and (``--uc3``) the wall time of uc3_physical with the balanced and the unbalanced engine.

    python benchmarks/bench_grid3ph.py [--steps 1440] [--uc3]

Engine: ``Engine3ph.solve`` only; model: ``GridModel3ph.solve`` plus every output as dicts (what
the mosaik grid simulator does per step). OpenDSS: ``Solution.Solve()`` of one yearly-mode step
plus reading ``AllBusVmagPu``. Target: <= 1 ms per step for the engine. numpy's BLAS threads
compete with the other processes of a shared machine; run with OPENBLAS_NUM_THREADS=1 to compare.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from simulators.grid3ph import OUT_ATTRS_3PH, GridModel3ph
from simulators.grid3ph_networks import BUNDLED_DSS, load_network3ph, make_engine3ph


def pct(xs: list[float]) -> str:
    a = np.asarray(xs) * 1e3
    return f"median {np.median(a):.3f} ms, p95 {np.percentile(a, 95):.3f} ms, total {a.sum() / 1e3:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1440)
    ap.add_argument("--uc3", action="store_true", help="also time uc3_physical, fast vs fast3ph")
    args = ap.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}")

    t0 = time.perf_counter()
    ns = load_network3ph("ieee_eu_lv")
    t1 = time.perf_counter()
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    t2 = time.perf_counter()
    print(f"ieee_eu_lv: {len(ns.net.buses)} buses, {ns.net.n} nodes, {len(ns.points)} loads; read+model "
          f"{t1 - t0:.2f} s, engine setup (LU + Z of load nodes) {t2 - t1:.2f} s")
    loads = [ns.feeder.load_kw(k) for k in range(args.steps)]
    times, its, vms = [], [], []
    for kw, kvar in loads:
        s = time.perf_counter()
        r = eng.solve(kw, kvar)
        times.append(time.perf_counter() - s)
        its.append(r.iterations)
        vms.append(r.vm_pu)
    print(f"fast3ph engine   : {pct(times)}; iterations mean {statistics.mean(its):.1f}, max {max(its)}")

    model = GridModel3ph("ieee_eu_lv", network_loads=True)
    mt = []
    for k in range(args.steps):
        s = time.perf_counter()
        model.solve(k / 60.0)
        for a in OUT_ATTRS_3PH:
            model.output(a)
        mt.append(time.perf_counter() - s)
    print(f"Grid3ph model    : {pct(mt)} (solve + all outputs as dicts)")

    try:
        from dss import DSS
    except ImportError as exc:
        print(f"OpenDSS: dss-python not importable ({exc}); skipped")
    else:
        DSS.Text.Command = "clear"
        DSS.Text.Command = f'redirect "{BUNDLED_DSS["ieee_eu_lv"]}"'
        c = DSS.ActiveCircuit
        DSS.Text.Command = "set mode=yearly number=1 stepsize=1m"
        bi = {b: k for k, b in enumerate(ns.net.buses)}
        order = np.array([(bi[n.rsplit(".", 1)[0]], int(n.rsplit(".", 1)[1]) - 1) for n in c.AllNodeNames])
        dt, worst = [], 0.0
        for k in range(args.steps):
            s = time.perf_counter()
            c.Solution.Solve()
            v = np.asarray(c.AllBusVmagPu)
            dt.append(time.perf_counter() - s)
            worst = max(worst, float(np.abs(vms[k][order[:, 0], order[:, 1]] - v).max()))
        print(f"OpenDSS (dss-python {DSS.Version.split()[0] if hasattr(DSS, 'Version') else ''}): {pct(dt)}")
        print(f"engine / OpenDSS median time ratio {np.median(times) / np.median(dt):.2f}; "
              f"max |dV| over all nodes and steps {worst:.2e} p.u.")

    if args.uc3:
        from cosim.runner import run_scenario
        from cosim.scenario import load_scenario
        with tempfile.TemporaryDirectory() as tmp:
            for engine in ("fast", "fast3ph"):
                scn, text = load_scenario("uc3_physical", {"grid.engine": engine})
                s = time.perf_counter()
                res = run_scenario(scn, text, out=Path(tmp) / f"uc3_{engine}.h5", progress=False)
                print(f"uc3_physical engine={engine:<8}: {res.steps} steps, wall {time.perf_counter() - s:.2f} s")


if __name__ == "__main__":
    main()
