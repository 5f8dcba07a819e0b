"""The ecosystem composition anchor of issue 14: what the same physical study costs when composed
from published mosaik components, one mosaik entity per household.

- households: ``mosaik-householdsim`` (one ``House`` entity per load, 1-min profiles from a file in its
  own format, written here from a seeded generator: the values do not matter for speed, only that
  they are plausible so that the power flow converges like a real one),
- grid: ``mosaik-pandapower-2`` on the kerber Vorstadtnetz (``create_kerber_vorstadtnetz_kabel_1``,
  146 loads, the network of ``uc3_physical``), each house connected to its load's bus
  (``P_load[MW]``, W → MW by a ``connect_one`` transform), Newton–Raphson ``runpp`` every minute,
- recording: ``mosaik-csv``'s ``CSVWriter`` (every house's power and every bus voltage).

All three run in-process (``python:`` simulators), the fastest way mosaik offers; 1-min steps.

Usage: python benchmarks/anchor_ecosystem.py [--days 1]    (needs ``pip install -e ".[bench]"``)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

N_PROFILES = 146  # one profile per load of kerber_vorstadt_1
GRID_NAME = "kerber_vorstadt_1"


def write_profiles(path: Path, days: int, seed: int = 0) -> None:
    """A ``mosaik-householdsim`` profile file (its format: meta, id list, attrs, then one row per
    minute) with a day shape of the BDEW H0 kind and seeded lognormal noise, in W."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 1440)
    hour = (minutes % 1440) / 60
    shape = 250 + 300 * np.exp(-((hour - 19.5) / 2.5) ** 2) + 150 * np.exp(-((hour - 12.5) / 2) ** 2)
    p = shape[:, None] * rng.lognormal(0.0, 0.6, size=(len(minutes), N_PROFILES))
    with open(path, "w") as f:
        f.write("# meta\n")
        f.write(json.dumps({"start_date": "2026-01-20 00:00", "resolution": 1, "unit": "W",
                            "num_profiles": N_PROFILES}) + "\n")
        f.write("# id_list\n")
        f.write(json.dumps({GRID_NAME: [f"load_{i}" for i in range(N_PROFILES)]}) + "\n")
        f.write("# attrs\n")
        f.write("num_hh," + ",".join(["1"] * N_PROFILES) + "\n")
        f.write("num_residents," + ",".join(["2"] * N_PROFILES) + "\n")
        f.write("# profiles\n")
        for m in minutes:
            stamp = f"2026-01-{20 + m // 1440:02d} {(m % 1440) // 60:02d}:{m % 60:02d}"
            f.write(stamp + "," + ",".join(f"{v:.1f}" for v in p[m]) + "\n")


def run_anchor(days: int = 1, workdir: Path | None = None) -> dict[str, float]:
    """Run the composition for ``days`` simulated days; returns wall seconds (set-up and run)."""
    import mosaik
    import pandapower.networks as pn
    from loguru import logger  # mosaik's and mosaik-pandapower-2's logger: keep the printout to the numbers

    logger.remove()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        profiles = work / "profiles.csv"
        write_profiles(profiles, days)
        t0 = time.perf_counter()
        world = mosaik.World({
            "Households": {"python": "householdsim.mosaik:HouseholdSim"},
            "Grid": {"python": "mosaik_components.pandapower:Simulator"},
            "CSV": {"python": "mosaik_csv_writer:CSVWriter"},
        }, time_resolution=1.0, debug=False)
        net = pn.create_kerber_vorstadtnetz_kabel_1()
        net.load["p_mw"] = 0.0  # the houses supply the load
        grid = world.start("Grid", step_size=60).Grid(net=net)
        houses = world.start("Households").ResidentialLoads(
            sim_start="2026-01-20 00:00", profile_file=str(profiles), grid_name=GRID_NAME).children
        csv = world.start("CSV", start_date="2026-01-20 00:00:00",
                          output_file=str(work / "results.csv")).CSVWriter(buff_size=60 * 60)
        buses = {e.eid: e for e in grid.children if e.type == "Bus"}
        load_bus = [int(b) for b in net.load.bus]
        for house, bus in zip(houses, load_bus):
            world.connect_one(house, buses[f"Bus-{bus}"], "P_out", "P_load[MW]",
                              transform=lambda w: w * 1e-6)
            world.connect(house, csv, "P_out")
        for bus in buses.values():
            world.connect(bus, csv, "Vm[pu]")
        t_setup = time.perf_counter() - t0
        world.run(until=days * 86_400, print_progress=False)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "setup_s": t_setup, "days": days, "households": len(load_bus)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=1)
    args = ap.parse_args()
    r = run_anchor(args.days)
    print(f"ecosystem anchor: {r['households']} households, {r['days']} d at 1 min: "
          f"{r['wall_s']:.1f} s wall ({r['setup_s']:.1f} s set-up), {r['wall_s'] / r['days']:.1f} s/day")


if __name__ == "__main__":
    main()
