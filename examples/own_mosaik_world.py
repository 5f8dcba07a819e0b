"""Use this package's population simulators inside your own mosaik world.

A third-party simulator usually has one entity per device: here a thermostat per heat pump, written the
usual mosaik way. Our ``Households`` population carries every household in one entity whose attributes
are mappings ``{household id: value}``. mosaik 3.6's ``World.connect_one(..., transform=...)`` bridges
the two: each household's ``T_in`` is picked out of the mapping on the way to its thermostat, and each
thermostat's float set point is wrapped as ``{household id: value}`` on the way back (the households
simulator merges the mappings of all its sources).

    python examples/own_mosaik_world.py [HOURS]   # prints each heat pump's duty cycle and T_in range
"""

from __future__ import annotations

import json
import sys

import mosaik
import mosaik_api_v3

import cosim
from cosim.population import build_population

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Thermostat": {"public": True, "params": ["setpoint_c", "p_el_kw"], "attrs": ["T_in", "P_hp_set"]}},
}
HISTORY: dict[str, list[tuple[float, float]]] = {}  # thermostat -> [(T_in, set point kW)] (this process)


class Thermostats(mosaik_api_v3.Simulator):
    """On/off thermostats: full heat-pump power below the set point, off above it (one entity each)."""

    def __init__(self):
        super().__init__(META)
        self.units: dict[str, dict] = {}

    def create(self, num, model, setpoint_c=21.0, p_el_kw=2.0):
        start = len(self.units)
        for i in range(start, start + num):
            self.units[f"tst{i}"] = {"setpoint": setpoint_c, "p": p_el_kw, "set": 0.0}
            HISTORY[f"tst{i}"] = []
        return [{"eid": f"tst{i}", "type": model} for i in range(start, start + num)]

    def step(self, time, inputs, max_advance):
        for eid, attrs in inputs.items():
            t_in = next(iter(attrs.get("T_in", {}).values()), None)
            u = self.units[eid]
            if t_in is not None:
                u["set"] = u["p"] if t_in < u["setpoint"] else 0.0
                HISTORY[eid].append((t_in, u["set"]))
        return time + 60_000

    def get_data(self, outputs):
        return {eid: {a: self.units[eid]["set"] for a in attrs if a == "P_hp_set"} for eid, attrs in outputs.items()}


def main(hours: int = 6) -> dict[str, dict[str, float]]:
    scn = cosim.load_scenario("uc2_district", start="2026-01-15T00:00:00+01:00")
    homes = [h for h in build_population(scn) if h.devices.heat_pump is not None][:5]
    # one tick = 1 ms, the time base of every simulator in this package (docs/architecture.md)
    world = mosaik.World({"household": {"python": "simulators.household:HouseholdSim"},
                          "thermostat": {"python": f"{__name__}:Thermostats"}}, time_resolution=0.001)
    households = world.start("household", start=scn.start.isoformat(), step_size=60_000,
                             seed=scn.seed).Households(households=[h.model_dump() for h in homes])
    thermostats = world.start("thermostat").Thermostat.create(len(homes), setpoint_c=21.0,
                                                              p_el_kw=homes[0].devices.heat_pump.p_el_kw)
    for home, tst in zip(homes, thermostats):
        # population -> device: this household's value out of the mapping (last step's: breaks the cycle)
        world.connect_one(households, tst, "T_in", transform=lambda m, h=home.id: (m or {}).get(h),
                          time_shifted=True, initial_data={"T_in": {}})
        # device -> population: the float as a one-household mapping
        world.connect_one(tst, households, "P_hp_set", transform=lambda v, h=home.id: {h: v})
    world.run(until=hours * 3_600_000, print_progress=False)
    out = {}
    for home, tst in zip(homes, thermostats):
        t = [x for x, _ in HISTORY[tst.eid]]
        on = [p > 0 for _, p in HISTORY[tst.eid]]
        out[home.id] = {"T_in_min": round(min(t), 2), "T_in_max": round(max(t), 2),
                        "duty": round(sum(on) / len(on), 3)}
    return out


if __name__ == "__main__":
    for hid, v in main(int(sys.argv[1]) if len(sys.argv) > 1 else 6).items():
        print(hid, json.dumps(v))
