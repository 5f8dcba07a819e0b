"""Rule-based self-consumption controller for batteries behind a measured grid connection.

Lab-friendly and deterministic: each step it moves the battery set point against the measured net
power at the meter, ``set <- clip(set - gain * P_meter, -p_max, p_max)`` (kW, load convention:
positive = charging), i.e. an integral controller driving the household's exchange with the grid to
zero within the battery's power. It is the controller of real (HIL) batteries in lab scenarios;
agents of the MAS plan simulated homes.

Model ``SelfConsumption(ids=[...], p_max_kw={id: kW} | float, gain=0.8)``. Input ``P`` (meter
readings, merged over sources), output ``P_bat_set`` ``{id: kW}``.
"""

from __future__ import annotations

import math

import mosaik_api_v3

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "SelfConsumption": {
            "public": True,
            "params": ["ids", "p_max_kw", "gain"],
            "attrs": ["P", "P_bat_set"],
            "outputs": ["P_bat_set"],
        }
    },
}


class SelfConsumptionController:
    def __init__(self, ids: list[str], p_max_kw: dict[str, float] | float = 5.0, gain: float = 0.8):
        if not ids:
            raise ValueError("SelfConsumption needs at least one device id")
        if not 0 < gain <= 1:
            raise ValueError(f"gain must be in (0, 1], got {gain}")
        limits = p_max_kw if isinstance(p_max_kw, dict) else {i: float(p_max_kw) for i in ids}
        missing = [i for i in ids if i not in limits]
        if missing:
            raise ValueError(f"p_max_kw missing for {', '.join(missing)}")
        self.p_max = {i: float(limits[i]) for i in ids}
        self.gain = gain
        self.setpoint = {i: 0.0 for i in ids}

    def update(self, p_meter: dict[str, float]) -> dict[str, float]:
        for i, p in p_meter.items():
            if i not in self.setpoint or p is None or not math.isfinite(p):
                continue  # stale/missing reading: keep the last set point
            lim = self.p_max[i]
            self.setpoint[i] = min(lim, max(-lim, self.setpoint[i] - self.gain * float(p)))
        return dict(self.setpoint)


class RuleControllerSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.ctrl: SelfConsumptionController | None = None
        self.out: dict[str, float] = {}

    def init(self, sid, time_resolution=0.001, start=None, step_size=60_000, **_):
        self.step_size = int(step_size)
        return self.meta

    def create(self, num, model, ids=(), p_max_kw=5.0, gain=0.8):
        if num != 1 or self.ctrl is not None:
            raise ValueError("exactly one SelfConsumption entity per simulator")
        self.ctrl = SelfConsumptionController(list(ids), p_max_kw, gain)
        self.out = dict(self.ctrl.setpoint)
        return [{"eid": "rule", "type": model}]

    def step(self, time, inputs, max_advance):
        merged: dict[str, float] = {}
        for mapping in inputs.get("rule", {}).get("P", {}).values():
            merged.update(mapping or {})
        self.out = self.ctrl.update(merged)
        return time + self.step_size

    def get_data(self, outputs):
        return {eid: {a: dict(self.out) for a in attrs if a == "P_bat_set"} for eid, attrs in outputs.items()}


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(RuleControllerSim(), "rule-based self-consumption controller")
