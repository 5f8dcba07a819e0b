"""Home battery: energy-counting model with one-way efficiency and SoC limits.

State E (kWh in the cells). A step with power P (kW, load convention, + = charging) for dt hours:
E += P·η·dt when charging, E += P/η·dt when discharging. Feasible power range for a step:
[max(-p_max, -(E - E_min)·η/dt), min(p_max, (E_max - E)/(η·dt))], so SoC stays in [soc_min, soc_max]
whatever the setpoint. Default rule (no setpoint): self-consumption, i.e. P = -(net load of the rest
of the household), clipped to the feasible range.
"""

from __future__ import annotations

import numpy as np

from .params import BatteryParams


class Battery:
    def __init__(self, ids: list[str], params: list[BatteryParams]):
        self.ids = list(ids)
        self.n = len(ids)
        self.capacity = np.array([p.capacity_kwh for p in params], dtype=float)
        self.p_max = np.array([p.p_max_kw for p in params], dtype=float)
        self.eff = np.array([p.efficiency for p in params], dtype=float)
        self.e_min = self.capacity * np.array([p.soc_min for p in params], dtype=float)
        self.e_max = self.capacity * np.array([p.soc_max for p in params], dtype=float)
        self.e = self.capacity * np.array([p.soc_init for p in params], dtype=float)

    @property
    def soc(self) -> np.ndarray:
        return self.e / self.capacity

    def limits(self, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
        """Feasible (p_lo, p_hi) kW for the next step of dt_h hours."""
        hi = np.minimum(self.p_max, np.maximum(self.e_max - self.e, 0.0) / (self.eff * dt_h))
        lo = np.maximum(-self.p_max, -np.maximum(self.e - self.e_min, 0.0) * self.eff / dt_h)
        return lo, hi

    def step(self, p_set: np.ndarray, net_load: np.ndarray, dt_h: float) -> np.ndarray:
        """Apply setpoints (NaN = self-consumption on ``net_load``); returns the power actually drawn."""
        req = np.where(np.isnan(p_set), -net_load, p_set)
        lo, hi = self.limits(dt_h)
        p = np.clip(req, lo, hi)
        self.e = np.clip(self.e + np.where(p > 0, p * self.eff, p / self.eff) * dt_h, self.e_min, self.e_max)
        return p
