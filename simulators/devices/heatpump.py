"""Air-source heat pump heating a 1R1C house (heating only).

Thermal model: C dT_in/dt = -UA (T_in - T_out) + COP(T_out) · P_el, integrated exactly over a step
with constant inputs: T' = a·T + (1 - a)·(T_out + COP·P_el/UA), a = exp(-UA·dt/C).
COP: Carnot fraction 0.41 towards a 35 °C flow temperature, ≈ 4.5 at 7 °C, ≈ 2.8 at -10 °C,
clipped to [1.5, 7].

Default thermostat: hysteresis inside the band, on below t_min + 25 % of the band, off above
t_max - 25 %, full power when on. Setpoint ``P_hp_set`` (kW el) is clipped to [0, p_el_kw].
Comfort guard (applies to setpoints and the thermostat): below t_min → full power, above t_max → off,
and the power is bounded so that the next temperature stays inside [t_min, t_max] whenever the
heat pump can achieve that (lower bound wins). The band therefore holds unless the heat pump is too
small for the weather (or the house overheats in summer: no cooling).
"""

from __future__ import annotations

import numpy as np

from .params import HeatPumpParams

T_FLOW = 35.0
CARNOT_FRACTION = 0.41


def cop(t_out):
    """Coefficient of performance at outdoor temperature t_out (°C)."""
    t = np.asarray(t_out, dtype=float)
    with np.errstate(divide="ignore"):
        c = CARNOT_FRACTION * (T_FLOW + 273.15) / np.maximum(T_FLOW - t, 1e-6)
    return np.clip(c, 1.5, 7.0)


class HeatPumps:
    def __init__(self, ids: list[str], params: list[HeatPumpParams]):
        self.ids = list(ids)
        self.n = len(ids)
        self.p_el = np.array([p.p_el_kw for p in params], dtype=float)
        self.t_min = np.array([p.t_min for p in params], dtype=float)
        self.t_max = np.array([p.t_max for p in params], dtype=float)
        self.ua = np.array([p.ua_kw_per_k for p in params], dtype=float)
        self.c = np.array([p.c_kwh_per_k for p in params], dtype=float)
        self.t_in = np.array([p.t_init for p in params], dtype=float)
        band = self.t_max - self.t_min
        self.t_on, self.t_off = self.t_min + 0.25 * band, self.t_max - 0.25 * band
        self.on = self.t_in < 0.5 * (self.t_min + self.t_max)

    def step(self, t_out: float, p_set: np.ndarray, dt_h: float) -> np.ndarray:
        """Electrical power (kW ≥ 0) over the step; advances T_in. NaN setpoint = thermostat."""
        a = np.exp(-self.ua * dt_h / self.c)
        cp = cop(t_out)
        self.on = np.where(self.t_in < self.t_on, True, np.where(self.t_in > self.t_off, False, self.on))
        p = np.where(np.isnan(p_set), np.where(self.on, self.p_el, 0.0), np.clip(p_set, 0.0, self.p_el))
        gain = (1 - a) * cp / self.ua  # K per kW
        free = a * self.t_in + (1 - a) * t_out
        p_lo = np.clip((self.t_min - free) / gain, 0.0, self.p_el)
        p_hi = np.maximum((self.t_max - free) / gain, 0.0)
        p = np.maximum(np.minimum(p, p_hi), p_lo)
        p = np.where(self.t_in < self.t_min, self.p_el, np.where(self.t_in > self.t_max, 0.0, p))
        self.t_in = free + gain * p
        return p
