"""Expand a scenario's districts into concrete, seeded household specifications."""

from __future__ import annotations

import numpy as np

from cosim.scenario import District, Scenario
from simulators.devices.params import DeviceSet, HouseholdSpec

# Independent random streams per purpose: adding a purpose never changes another's draws.
STREAM_POPULATION = 1


def household_id(district: str, index: int) -> str:
    return f"{district}.h{index:03d}"


def district_of(hid: str) -> str:
    """The district of a household id (the prefix before the first '.')."""
    return hid.split(".", 1)[0] if "." in hid else "(none)"


def _owners(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    k = int(round(share * n))
    if k:
        mask[rng.choice(n, size=k, replace=False)] = True
    return mask


def _scaled(model, rng: np.random.Generator, variety: float, fields: tuple[str, ...]):
    """Copy of a parameter model with the given size fields scaled by a seeded factor."""
    factor = float(np.clip(rng.normal(1.0, variety), 1 - 2 * variety, 1 + 2 * variety)) if variety else 1.0
    return model.model_copy(update={f: round(getattr(model, f) * factor, 3) for f in fields})


def district_households(district: District, rng: np.random.Generator) -> list[HouseholdSpec]:
    n, sh, dev, var = district.households, district.shares, district.devices, district.variety
    owners = {k: _owners(rng, n, getattr(sh, k)) for k in ("pv", "battery", "ev", "heat_pump", "appliances")}
    specs = []
    for i in range(n):
        devices = DeviceSet(
            base=_scaled(dev.base, rng, var, ("annual_kwh",)),
            pv=_scaled(dev.pv, rng, var, ("kwp",)) if owners["pv"][i] else None,
            battery=_scaled(dev.battery, rng, var, ("capacity_kwh",)) if owners["battery"][i] else None,
            ev=dev.ev if owners["ev"][i] else None,
            heat_pump=_scaled(dev.heat_pump, rng, var, ("ua_kw_per_k",)) if owners["heat_pump"][i] else None,
            appliances=list(dev.appliances) if owners["appliances"][i] else [],
        )
        specs.append(HouseholdSpec(id=household_id(district.name, i + 1), devices=devices))
    return specs


def build_population(scn: Scenario) -> list[HouseholdSpec]:
    """All households of the scenario, identical for identical (scenario, seed)."""
    seq = np.random.SeedSequence([scn.seed, STREAM_POPULATION])
    out: list[HouseholdSpec] = []
    for district, child in zip(scn.districts, seq.spawn(len(scn.districts))):
        out.extend(district_households(district, np.random.default_rng(child)))
    return out
