"""Household population simulator (mosaik-api-v3, time-based).

One entity per ``create()`` call carries a whole population of households; every attribute is a
mapping ``household id -> value`` (plain floats). Inside, the device models in
``simulators.devices`` compute with numpy over the population.

Model ``Households(households=[HouseholdSpec.model_dump(), ...])``.
init params: ``time_resolution`` (s per tick, normally 0.001), ``start`` (ISO-8601 with timezone),
``step_size`` (ticks), ``seed`` (int), ``latitude``/``longitude`` (default 48.1/11.6).

Outputs (kW / kvar, load convention: consumption positive, PV negative, battery charging positive):
``P``, ``Q`` (net household), ``P_base`` (every household), ``P_pv`` (households with PV).
Inputs: ``pv_limit`` {hid: kW} cap on PV generation (None/NaN = no cap).

Each step covers [t, t + step_size); the outputs of step t are the mean (base load) or mid-step
(PV) power of that interval.
"""

from __future__ import annotations

import math

import mosaik_api_v3
import numpy as np
from pydantic import ValidationError

from simulators.devices.baseload import BaseLoad
from simulators.devices.common import Clock
from simulators.devices.params import HouseholdSpec
from simulators.devices.pv import PVArray
from simulators.devices.weather import Weather

MODEL = "Households"
OUTPUTS = ["P", "Q", "P_base", "P_pv"]
INPUTS = ["pv_limit"]

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        MODEL: {"public": True, "params": ["households"], "attrs": OUTPUTS + INPUTS},
    },
}


def validate_households(households) -> list[HouseholdSpec]:
    """HouseholdSpec list from dicts (or specs); ValueError naming the household and field."""
    if not isinstance(households, (list, tuple)) or not households:
        raise ValueError("households must be a non-empty list of household specifications")
    specs, seen = [], set()
    for i, h in enumerate(households):
        if isinstance(h, HouseholdSpec):
            spec = h
        else:
            hid = h.get("id", f"#{i}") if isinstance(h, dict) else f"#{i}"
            try:
                spec = HouseholdSpec.model_validate(h)
            except ValidationError as e:
                errs = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or '(spec)'}: {err['msg']}" for err in e.errors()
                )
                raise ValueError(f"household {hid!r}: invalid device parameters: {errs}") from None
        if spec.id in seen:
            raise ValueError(f"household {spec.id!r}: duplicate household id")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def _floats(ids, values) -> dict:
    return dict(zip(ids, np.asarray(values, dtype=float).tolist()))


class _Setpoints:
    """Persistent setpoints of one input attribute over a device subset (NaN = default rule)."""

    def __init__(self, ids: list[str]):
        self.index = {h: i for i, h in enumerate(ids)}
        self.values = np.full(len(ids), np.nan)

    def update(self, mapping: dict) -> None:
        for hid, v in mapping.items():
            i = self.index.get(hid)
            if i is None:
                continue
            try:
                f = float(v) if v is not None else math.nan
            except (TypeError, ValueError):
                raise ValueError(f"household {hid!r}: setpoint must be a number or None, got {v!r}") from None
            self.values[i] = f


class Population:
    """All households of one entity; pure Python/numpy (no mosaik)."""

    def __init__(self, specs: list[HouseholdSpec], clock: Clock, weather: Weather, seed: int):
        self.specs = specs
        self.clock, self.weather, self.seed = clock, weather, int(seed)
        self.ids = [s.id for s in specs]
        self.n = len(specs)
        self.base = BaseLoad(self.ids, [s.devices.base for s in specs], seed)
        pv_sel = [i for i, s in enumerate(specs) if s.devices.pv is not None]
        self.pv_idx = np.array(pv_sel, dtype=np.int64)
        self.pv_ids = [self.ids[i] for i in pv_sel]
        self.pv = PVArray(self.pv_ids, [specs[i].devices.pv for i in pv_sel], seed)
        self.sp = {"pv_limit": _Setpoints(self.pv_ids)}
        self.out: dict[str, np.ndarray] = {}

    def set_inputs(self, attr: str, mapping: dict) -> None:
        sp = self.sp.get(attr)
        if sp is not None:
            sp.update(mapping)

    def step(self, tick: int, dt_ticks: int) -> None:
        m = self.clock.local_min(tick)
        dt_min = dt_ticks * self.clock.time_resolution / 60.0
        p_base = self.base.step(m, dt_min)
        gen = self.pv.step(m, dt_min, self.weather)
        lim = self.sp["pv_limit"].values
        gen = np.where(np.isnan(lim), gen, np.minimum(gen, np.maximum(lim, 0.0)))
        p = p_base.copy()
        p[self.pv_idx] -= gen
        self.out = {"P": p, "Q": self.base.q(p_base), "P_base": p_base, "P_pv": -gen}

    def output(self, attr: str) -> dict:
        ids = self.pv_ids if attr == "P_pv" else self.ids
        return _floats(ids, self.out[attr])


class HouseholdSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.pops: dict[str, Population] = {}
        self.time = 0

    def init(self, sid, time_resolution=0.001, start="2026-01-01T00:00:00+01:00", step_size=60_000, seed=0,
             latitude=48.1, longitude=11.6):
        if int(step_size) <= 0:
            raise ValueError(f"step_size must be a positive number of ticks, got {step_size}")
        self.sid = sid
        self.clock = Clock(start, time_resolution)
        self.step_size = int(step_size)
        self.seed = int(seed)
        self.weather = Weather(self.seed, latitude, longitude, self.clock.utc_offset_min)
        return self.meta

    def create(self, num, model, households=None):
        if model != MODEL:
            raise ValueError(f"unknown model {model!r}, expected {MODEL!r}")
        if num != 1:
            raise ValueError("Households: create one entity per population (num=1); put all households in it")
        specs = validate_households(households)
        eid = f"{MODEL}-{len(self.pops)}"
        self.pops[eid] = Population(specs, self.clock, self.weather, self.seed)
        return [{"eid": eid, "type": model}]

    def step(self, time, inputs, max_advance):
        self.time = time
        for eid, attrs in inputs.items():
            pop = self.pops[eid]
            for attr, sources in attrs.items():
                for mapping in sources.values():
                    if isinstance(mapping, dict):
                        pop.set_inputs(attr, mapping)
        for pop in self.pops.values():
            pop.step(time, self.step_size)
        return time + self.step_size

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            pop = self.pops[eid]
            data[eid] = {a: pop.output(a) for a in attrs if a in OUTPUTS}
        return data


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(HouseholdSim())
