"""Household population benchmark: µs per step for N households with every device, 1-min steps.

    python benchmarks/bench_household.py [--n 1000] [--steps 1440] [--seed 1]

Reports, for one simulated day in January (heat pumps working, EVs arriving, appliances running):
  * ``step``            HouseholdSim.step() alone (all device physics, day generation amortised)
  * ``get_data P,Q``    building the P and Q mappings (what meters/grid consume every step)
  * ``get_data all``    every per-device attribute (what a full recorder consumes)
  * ``flex``            one flexibility envelope for all households (24 h × 15 min), ms
  * ``day generation``  base-load day matrix for the population (once per simulated day), ms
  * ``mosaik``          the same day through mosaik in-process with a collector of P and Q, s
"""

from __future__ import annotations

import argparse
import math
import time

import mosaik
import mosaik_api_v3

from simulators.devices.params import (
    ApplianceParams,
    BatteryParams,
    DeviceSet,
    EVParams,
    HeatPumpParams,
    HouseholdSpec,
    PVParams,
)
from simulators.household import HouseholdSim

START = "2026-01-12T00:00:00+01:00"
ALL = ["P", "Q", "P_base", "P_pv", "P_bat", "soc", "P_ev", "soc_ev", "P_hp", "T_in", "P_app"]


def households(n: int) -> list[dict]:
    full = DeviceSet(pv=PVParams(), battery=BatteryParams(), ev=EVParams(), heat_pump=HeatPumpParams(),
                     appliances=[ApplianceParams()])
    return [HouseholdSpec(id=f"d1.h{i:04d}", devices=full).model_dump() for i in range(n)]


class Sink(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"Sink": {"public": True, "params": [], "attrs": [], "any_inputs": True}}})

    def init(self, sid, time_resolution=1.0):
        return self.meta

    def create(self, num, model):
        return [{"eid": "sink", "type": model}]

    def step(self, time, inputs, max_advance):
        return time + 60_000

    def get_data(self, outputs):
        return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1440)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    hs = households(a.n)

    sim = HouseholdSim()
    sim.init("H", time_resolution=0.001, start=START, step_size=60_000, seed=a.seed)
    t0 = time.perf_counter()
    sim.create(1, "Households", households=hs)
    t_create = time.perf_counter() - t0
    pop = sim.pops["Households-0"]
    t0 = time.perf_counter()
    pop.base._generate(20_000)
    t_day = time.perf_counter() - t0

    t_step = t_pq = t_all = 0.0
    t = 0
    for _ in range(a.steps):
        c0 = time.perf_counter()
        t = sim.step(t, {}, math.inf)
        c1 = time.perf_counter()
        sim.get_data({"Households-0": ["P", "Q"]})
        c2 = time.perf_counter()
        sim.get_data({"Households-0": ALL})
        c3 = time.perf_counter()
        t_step += c1 - c0
        t_pq += c2 - c1
        t_all += c3 - c2
    pop._flex = None
    c0 = time.perf_counter()
    sim.get_data({"Households-0": ["flex"]})
    t_flex_cold = time.perf_counter() - c0
    pop._flex = None
    c0 = time.perf_counter()
    sim.get_data({"Households-0": ["flex"]})
    t_flex = time.perf_counter() - c0

    world = mosaik.World({"H": {"python": "simulators.household:HouseholdSim"}, "S": {"python": "__main__:Sink"}},
                         time_resolution=0.001, configure_logging=False, skip_greetings=True)
    hh = world.start("H", start=START, step_size=60_000, seed=a.seed).Households(households=hs)
    sink = world.start("S").Sink()
    world.connect(hh, sink, "P", "Q")
    c0 = time.perf_counter()
    world.run(until=a.steps * 60_000, print_progress=False)
    t_mosaik = time.perf_counter() - c0

    us = 1e6 / a.steps
    print(f"households: {a.n} (PV, battery, EV, heat pump, appliance each), steps: {a.steps} × 1 min")
    print(f"create:          {t_create * 1e3:8.1f} ms")
    print(f"step:            {t_step * us:8.1f} µs/step")
    print(f"get_data P,Q:    {t_pq * us:8.1f} µs/step")
    print(f"get_data all:    {t_all * us:8.1f} µs/step  ({len(ALL)} attributes)")
    print(f"flex (24h/15m):  {t_flex * 1e3:8.1f} ms per request ({t_flex_cold * 1e3:.0f} ms when it first "
          "needs the next days generated)")
    print(f"day generation:  {t_day * 1e3:8.1f} ms per simulated day")
    print(f"mosaik P,Q run:  {t_mosaik:8.2f} s for {a.steps} steps ({t_mosaik / a.steps * 1e6:.0f} µs/step)")


if __name__ == "__main__":
    main()
