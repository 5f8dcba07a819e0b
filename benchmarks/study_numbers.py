"""The numbers a study publishes, per control mode, on one evaluated window (issue: honest study numbers).

    python benchmarks/study_numbers.py [SCENARIO ...] [--telecom uc2_district] [--out DIR]

For each scenario runs none / mas / central and prints objective, sum of bills, terminal adjustment,
cost, planned and realised MAS gap, partial/failed negotiations, congestion minutes and wall time.
``--telecom S`` also runs S in mas mode over ideal, LTE, DSL, PLC and NB-IoT (agents' messages) and
prints each realised gap against the central run of S.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cosim.compare import compare
from cosim.kpi import compute_kpis
from cosim.api import scenario_source

MODES = ("none", "mas", "central")
TECHS = ("ideal", "lte", "dsl", "plc", "nbiot")


def run(scn: str, out: Path, *extra: str) -> float:
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "cosim.cli", "run", scn, "--out", str(out), "--quiet", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr}")
    return time.perf_counter() - t


def row(label: str, path: Path, wall: float, gap: float | None) -> str:
    k = compute_kpis(str(path))
    t, m, g = k["total"], k.get("mas") or {}, k.get("grid") or {}
    f = lambda v, nd=2: "n/a" if v is None else f"{v:.{nd}f}"  # noqa: E731
    return (f"| {label} | {f(t['objective_eur'])} | {f(t['bill_eur'])} | {f(t['terminal_adjustment_eur'])} | "
            f"{f(t['cost_eur'])} | {f(m.get('gap_mean_pct'))} | {f(gap)} | "
            f"{m.get('negotiations', 'n/a')} / {m.get('negotiations_partial', 'n/a')} / "
            f"{m.get('negotiations_failed', 'n/a')} | {f(g.get('congestion_min'), 0)} | {wall:.0f} |")


HEAD = ("| run | objective € | sum of bills € | terminal adj. € | cost € | planned gap % (mean) | "
        "realised gap % | negotiations / partial / failed | congestion min | wall s |\n"
        "|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", nargs="*", default=["uc2_district", "uc3_substation"])
    ap.add_argument("--telecom", default=None)
    ap.add_argument("--techs", nargs="+", default=list(TECHS), choices=TECHS, help="technologies of --telecom")
    ap.add_argument("--no-modes", action="store_true", help="only the --telecom sweep")
    ap.add_argument("--out", default="results/study")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for scn in [] if a.no_modes else a.scenarios:
        walls = {m: run(scn, out / f"{scn}_{m}.h5", "--control", m) for m in MODES}
        paths = [out / f"{scn}_{m}.h5" for m in MODES]
        gaps = compare([str(p) for p in paths])
        print(f"\n{scn}\n{HEAD}")
        for m, p, g in zip(MODES, paths, gaps["realised_gap_pct"]):
            print(row(m, p, walls[m], g))
        for w in gaps["warnings"]:
            print(f"warning: {w}")
        sys.stdout.flush()
    if a.telecom:
        scn = a.telecom
        central = out / f"{scn}_central.h5"
        if not central.exists():
            run(scn, central, "--control", "central")
        print(f"\n{scn}: telecom technologies (agents' messages), mas\n{HEAD}")
        data = yaml.safe_load(scenario_source(scn)[0])
        for tech in a.techs:
            data["telecom"] = {**(data.get("telecom") or {}), "default": tech}
            f = out / f"{scn}_{tech}.yaml"
            f.write_text(yaml.safe_dump(data, sort_keys=False))
            p = out / f"{scn}_{tech}.h5"
            wall = run(str(f), p)
            g = compare([str(p), str(central)])["realised_gap_pct"][0]
            print(row(tech, p, wall, g))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
