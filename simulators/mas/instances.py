"""Small deterministic household populations for tests, benchmarks and examples of the MAS."""

from __future__ import annotations

import numpy as np

from simulators.devices.params import (ApplianceParams, BaseLoadParams, BatteryParams, DeviceSet, EVParams,
                                       HeatPumpParams, HouseholdSpec, PVParams)


def demo_specs(n: int, district: str = "d1", seed: int = 0, share: float = 1.0) -> list[HouseholdSpec]:
    """n households with a rotating device mix (PV every 2nd, battery every 3rd, EV every 3rd (offset),
    heat pump every 2nd (offset), washing machine every 4th). ``share`` < 1 leaves that fraction of
    the households with flexible devices and gives the others only a base load (and PV)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        flex = rng.random() < share
        out.append(HouseholdSpec(id=f"{district}.h{i + 1:03d}", devices=DeviceSet(
            base=BaseLoadParams(annual_kwh=float(rng.uniform(2500, 5000))),
            pv=PVParams(kwp=float(rng.uniform(3, 8))) if i % 2 == 0 else None,
            battery=BatteryParams(capacity_kwh=float(rng.uniform(5, 12))) if flex and i % 3 == 0 else None,
            ev=EVParams() if flex and i % 3 == 1 else None,
            heat_pump=HeatPumpParams() if flex and i % 2 == 1 else None,
            appliances=[ApplianceParams()] if i % 4 == 0 else [])))
    return out
