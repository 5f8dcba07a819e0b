"""Air-source heat pump: space heating of a 1R1C house with gains, and a hot-water tank.

Space heating: C dT_in/dt = -UA (T_in - T_out) + COP(T_out) · P_el + Q_gain, integrated exactly over a
step with constant inputs: T' = a·T + (1 - a)·(T_out + (COP·P_el + Q_gain)/UA), a = exp(-UA·dt/C).
Q_gain = internal gains (``INTERNAL_GAIN_W_M2`` × floor area) + solar gains (``solar_aperture_m2`` ×
global horizontal irradiance). With the default house (UA 0.2 kW/K, 140 m², 4 m²) the gains carry the
house to about 15 °C daily mean outdoor temperature: the heating limit of VDI 3807 / DIN V 4108-6
(G20/15 degree days), instead of heating up to ~20 °C.
COP: Carnot fraction 0.41 towards a 35 °C flow temperature, ≈ 4.5 at 7 °C, ≈ 2.8 at -10 °C,
clipped to [1.5, 7].

Default thermostat: hysteresis inside the band, on below t_min + 25 % of the band, off above
t_max - 25 %, full power when on. Setpoint ``P_hp_set`` (kW el) is clipped to [0, p_el_kw].
Comfort guard (applies to setpoints and the thermostat): below t_min → full power, above t_max → off,
and the power is bounded so that the next temperature stays inside [t_min, t_max] whenever the
heat pump can achieve that (lower bound wins). The band therefore holds unless the heat pump is too
small for the weather (or the house overheats in summer: no cooling).

Hot water (``HotWater``): a tank (``dhw_tank_l`` litres heated from 10 to 50 °C) drawn by the 23
draws of the EN 16147 tapping cycle M (5.845 kWh a day), each seeded per household and day: a
persistent household clock offset and size factor, a daily factor, per-draw time jitter and a draw
that may be skipped; seasonally more in winter (colder mains water). Standby loss 60 W (EU 812/2013
label class B for 200 l). The heat pump reheats the tank at ``p_el_kw`` with a COP towards 55 °C
once it falls below 60 % of its content, until full. Each day starts with a full tank (evening
draws are reheated before midnight), so a day's hot-water power is a function of (seed, id, day) and
forecasts reproduce it. It is not controlled (the setpoint applies to space heating) and runs
alongside space heating (one compressor serving both in turn is not modelled).
"""

from __future__ import annotations

import numpy as np

from .common import FIXED, MIN_PER_DAY, S_DHW_DAY, S_DHW_PARAMS, Clock, doy_array, id_key, rng, wall_rows
from .params import HeatPumpParams

T_FLOW = 35.0  # °C, floor heating: the EN 14511 / EN 14825 low-temperature rating point W35
T_FLOW_DHW = 55.0  # °C, EN 14825 / EU 811/2013 medium-temperature application (W55); the tank is kept at 50 °C
# Modelling choice, not fitted to a product: the fraction of the Carnot COP that gives COP ≈ 4.5 at A7/W35 (the
# EN 14511 rating point, cf. cosim.objective COP_RATING_T_OUT); the COP-from-Carnot-factor method as in FfE
# (2019), "Modelling Load Profiles of Heat Pumps", Energies 12(4):766.
CARNOT_FRACTION = 0.41
INTERNAL_GAIN_W_M2 = 5.0  # DIN V 4108-6:2003 Anhang D, residential buildings: q_i = 5 W/m² of A_N

# EN 16147:2017 tapping cycle M (also EU 814/2013 Annex VII): (clock minute, kWh) of the 23 draws
DHW_CYCLE_M = (
    (420, 0.105), (425, 1.4), (450, 0.105), (481, 0.105), (495, 0.105), (510, 0.105), (525, 0.105),
    (540, 0.105), (570, 0.105), (630, 0.105), (690, 0.105), (705, 0.105), (765, 0.315), (870, 0.105),
    (930, 0.105), (990, 0.105), (1080, 0.105), (1095, 0.105), (1110, 0.105), (1140, 0.105),
    (1230, 0.735), (1275, 0.105), (1290, 1.4),
)
DHW_CYCLE_KWH = sum(e for _, e in DHW_CYCLE_M)  # 5.845
# Spread of the EN 16147 cycle between households and days (DHW_SIZE_SIGMA ... DHW_SEASON): modelling choices,
# not fitted to measured draw statistics; the daily mean is checked against the EN 16147 band of cosim.calibrate.
DHW_SIZE_SIGMA = 0.3  # lognormal σ of the persistent per-household factor (household size, habits)
DHW_DAY_SIGMA = 0.2  # lognormal σ of the daily factor
DHW_SHIFT_SD, DHW_JITTER_SD = 45.0, 20.0  # minutes: persistent household offset, per-draw jitter
DHW_SKIP = 0.15  # probability a small draw does not happen on a day
# ± share: assumed mains water ~8 °C in late winter, ~15 °C in late summer (heated to 50 °C), i.e. ±3.5 K of a
# mean 38.5 K rise; the mains temperatures are an assumption, not from a source
DHW_SEASON = 0.09
DHW_SEASON_PEAK_DOY = 45  # the largest draw in mid-February (coldest mains water): part of the same assumption
DHW_LOSS_KW = 0.06  # standby loss, EU 812/2013 energy label class B for a 200 l tank
# DHW_ON: reheat below 60 % of the content, modelling choice (not from a source); WATER_KWH_PER_L_K: specific
# heat of water, 4.186 kJ/(kg·K), with 1 l ≈ 1 kg (physical constant)
DHW_ON, WATER_KWH_PER_L_K = 0.6, 4.186 / 3600.0
# tank heated from 10 to 50 °C: 10 °C cold water is a modelling choice; 50 °C: DVGW W 551 (small installations)
# says outlet temperatures below 50 °C should be avoided
DHW_DT_K = 40.0


def cop(t_out, t_flow: float = T_FLOW):
    """Coefficient of performance at outdoor temperature t_out (°C) towards flow temperature t_flow."""
    t = np.asarray(t_out, dtype=float)
    with np.errstate(divide="ignore"):
        c = CARNOT_FRACTION * (t_flow + 273.15) / np.maximum(t_flow - t, 1e-6)
    return np.clip(c, 1.5, 7.0)  # bounds: modelling choice, keeps the Carnot model in a plausible range


class HeatPumps:
    def __init__(self, ids: list[str], params: list[HeatPumpParams]):
        self.ids = list(ids)
        self.n = len(ids)
        self.p_el = np.array([p.p_el_kw for p in params], dtype=float)
        self.t_min = np.array([p.t_min for p in params], dtype=float)
        self.t_max = np.array([p.t_max for p in params], dtype=float)
        self.ua = np.array([p.ua_kw_per_k for p in params], dtype=float)
        self.c = np.array([p.c_kwh_per_k for p in params], dtype=float)
        self.q_int = np.array([p.floor_area_m2 for p in params], dtype=float) * INTERNAL_GAIN_W_M2 / 1000.0
        self.aperture = np.array([p.solar_aperture_m2 for p in params], dtype=float)
        self.t_in = np.array([p.t_init for p in params], dtype=float)
        band = self.t_max - self.t_min  # thermostat hysteresis at 25 % of the band: modelling choice
        self.t_on, self.t_off = self.t_min + 0.25 * band, self.t_max - 0.25 * band
        self.on = self.t_in < 0.5 * (self.t_min + self.t_max)

    def gains(self, ghi) -> np.ndarray:
        """Internal + solar gains (kW) per house for global horizontal irradiance ghi (W/m², scalar or (T,))."""
        g = np.asarray(ghi, dtype=float)
        return self.q_int + self.aperture * g[..., None] / 1000.0

    def step(self, t_out: float, p_set: np.ndarray, dt_h: float, gain: np.ndarray | float = 0.0) -> np.ndarray:
        """Electrical power (kW ≥ 0) over the step; advances T_in. NaN setpoint = thermostat."""
        if getattr(self, "_dt_h", None) != dt_h:
            self._dt_h, self._a = dt_h, np.exp(-self.ua * dt_h / self.c)
        a = self._a
        cp = float(cop(t_out))
        self.on = (self.t_in < self.t_on) | (self.on & (self.t_in <= self.t_off))
        p = np.where(self.on, self.p_el, 0.0)
        if not np.isnan(p_set).all():
            p = np.where(np.isnan(p_set), p, np.clip(p_set, 0.0, self.p_el))
        gain_k = (1 - a) * cp / self.ua  # K per kW
        free = a * self.t_in + (1 - a) * (t_out + gain / self.ua)
        p_lo = np.clip((self.t_min - free) / gain_k, 0.0, self.p_el)
        p_hi = np.maximum((self.t_max - free) / gain_k, 0.0)
        p = np.maximum(np.minimum(p, p_hi), p_lo)
        p = np.where(self.t_in < self.t_min, self.p_el, np.where(self.t_in > self.t_max, 0.0, p))
        self.t_in = free + gain_k * p
        return p


class HotWater:
    """Hot-water tanks of the heat-pump households: seeded draws, reheating by the heat pump."""

    def __init__(self, ids: list[str], params: list[HeatPumpParams], seed: int, clock: Clock | None = None):
        self.ids, self.n, self.seed = list(ids), len(ids), int(seed)
        self.clock = clock or FIXED  # draws by local time (EN 16147 cycle clock minutes)
        self.keys = [id_key(h) for h in ids]
        self.mean_kwh = np.array([p.dhw_kwh_per_day for p in params], dtype=float)
        self.cap = np.array([p.dhw_tank_l for p in params], dtype=float) * WATER_KWH_PER_L_K * DHW_DT_K
        self.p_el = np.array([p.p_el_kw for p in params], dtype=float)
        shift, size = np.empty(self.n), np.empty(self.n)
        for i, k in enumerate(self.keys):
            g = rng(self.seed, S_DHW_PARAMS, k)
            shift[i], size[i] = g.normal(0.0, DHW_SHIFT_SD), g.normal()
        self.shift = np.clip(shift, -3 * DHW_SHIFT_SD, 3 * DHW_SHIFT_SD)
        self.size = np.exp(DHW_SIZE_SIGMA * size - 0.5 * DHW_SIZE_SIGMA**2)
        self._t = np.array([t for t, _ in DHW_CYCLE_M], dtype=float)
        self._e = np.array([e for _, e in DHW_CYCLE_M]) / DHW_CYCLE_KWH
        self._days: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def draws(self, day: int) -> np.ndarray:
        """(1440, n) hot-water heat drawn per minute of local day ``day``, kWh."""
        d = np.zeros((MIN_PER_DAY, self.n))
        doy = doy_array(np.array([day]))[0]
        season = 1.0 + DHW_SEASON * np.cos(2 * np.pi * (doy - DHW_SEASON_PEAK_DOY) / 365.0)
        k = len(self._t)
        for i, key in enumerate(self.keys):
            g = rng(self.seed, S_DHW_DAY, key, day + 1_000_000)
            z, jit, skip = g.standard_normal(), g.standard_normal(k), g.random(k)
            f = self.mean_kwh[i] * self.size[i] * season * np.exp(DHW_DAY_SIGMA * z - 0.5 * DHW_DAY_SIGMA**2)
            keep = (self._e > 0.1) | (skip >= DHW_SKIP)
            e = self._e * keep / np.sum(self._e * keep) * f
            t = np.clip(np.rint(self._t + self.shift[i] + DHW_JITTER_SD * jit), 0, MIN_PER_DAY - 1).astype(int)
            np.add.at(d[:, i], t, e)
        return d

    def day(self, day: int, weather) -> np.ndarray:
        """(1440, n) electrical power (kW) reheating the tanks on local day ``day``."""
        hit = self._days.get(day)
        if hit is not None:
            return hit
        draw = self.draws(day)
        cp = cop(weather.temperature(self.clock.linear_min(day * MIN_PER_DAY + 0.5 + np.arange(MIN_PER_DAY))),
                 T_FLOW_DHW)
        e = self.cap.copy()
        on = np.zeros(self.n, dtype=bool)
        p = np.zeros((MIN_PER_DAY, self.n))
        loss = np.where(self.mean_kwh > 0, DHW_LOSS_KW / 60.0, 0.0)  # no hot water, no tank
        for t in range(MIN_PER_DAY):
            e = np.maximum(e - draw[t] - loss, 0.0)
            on = (e < DHW_ON * self.cap) | (on & (e < self.cap))
            heat = np.where(on, np.minimum(self.p_el * cp[t], (self.cap - e) * 60.0), 0.0)
            e += heat / 60.0
            p[t] = heat / cp[t]
        if len(self._days) >= 3:
            for old in sorted(self._days, key=lambda x: abs(x - day), reverse=True)[: len(self._days) - 2]:
                del self._days[old]
        self._days[day] = p
        return p

    def minutes(self, m0: int, n: int, weather) -> np.ndarray:
        """(n, n_hp) kW for the (linear) local minutes m0 .. m0+n-1."""
        return wall_rows(lambda d: self.day(d, weather), self.clock, m0, n)
