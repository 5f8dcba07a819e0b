"""Validated parameters of household devices.

These pydantic models are the single definition of what a device is configured with. The scenario
schema (cosim.scenario) embeds them, the household simulator builds its device populations from
them, and the home-agent optimisation reads the same numbers, so a device is described once.
Powers in kW (load convention in the simulation), energies in kWh, temperatures in °C, clock
times as "HH:MM" local to the scenario start's timezone.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def minutes_of_day(hhmm: str) -> int:
    """'07:30' -> 450."""
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_hhmm(v: str) -> str:
    if not _HHMM.match(v):
        raise ValueError(f'expected a clock time "HH:MM", got "{v}"')
    return v


class BaseLoadParams(_Strict):
    """Household base load (everything not flexible)."""

    annual_kwh: float = Field(3500.0, gt=0, description="yearly consumption of the base load")
    instant_water_heater: bool = Field(
        False, description="electric instantaneous water heater (18-24 kW showers) in the base load"
    )
    power_factor: float = Field(0.95, gt=0, le=1)


class PVParams(_Strict):
    kwp: float = Field(5.0, gt=0, description="peak power")
    tilt: float = Field(30.0, ge=0, le=90, description="panel tilt, degrees from horizontal")
    azimuth: float = Field(180.0, ge=0, lt=360, description="degrees from north (180 = south)")
    efficiency: float = Field(0.85, gt=0, le=1, description="system efficiency (inverter, losses)")


class BatteryParams(_Strict):
    capacity_kwh: float = Field(10.0, gt=0)
    p_max_kw: float = Field(5.0, gt=0, description="max charge and discharge power")
    efficiency: float = Field(0.95, gt=0, le=1, description="one-way efficiency")
    soc_min: float = Field(0.1, ge=0, le=1)
    soc_max: float = Field(0.95, ge=0, le=1)
    soc_init: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _order(self):
        if not self.soc_min < self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})")
        if not self.soc_min <= self.soc_init <= self.soc_max:
            raise ValueError(
                f"soc_init ({self.soc_init}) must lie in [soc_min, soc_max] "
                f"= [{self.soc_min}, {self.soc_max}]"
            )
        return self


class EVParams(_Strict):
    """A home-charged car; its trips follow mobility statistics (simulators.devices.ev)."""

    capacity_kwh: float = Field(50.0, gt=0)
    charger_kw: float = Field(11.0, gt=0)
    efficiency: float = Field(0.9, gt=0, le=1)
    # ADAC Ecotest (2023): tested BEVs need ~20 kWh/100 km from the grid incl. ~10 % charging losses
    consumption_kwh_per_km: float = Field(0.18, gt=0, le=1, description="driving energy at the battery")
    arrival: str = Field("17:30", description="typical weekday arrival home HH:MM (MiD 2017 afternoon peak)")
    departure: str = Field("07:30", description="typical weekday departure HH:MM (MiD 2017 morning peak)")
    jitter_min: float = Field(45.0, ge=0, description="day-to-day std-dev of arrival/departure, minutes")
    soc_init: float = Field(0.6, ge=0, le=1, description="state of charge when leaving home (steady state)")

    _hhmm = field_validator("arrival", "departure")(classmethod(lambda cls, v: _check_hhmm(v)))

    @model_validator(mode="after")
    def _overnight(self):
        if not minutes_of_day(self.departure) < minutes_of_day(self.arrival):
            raise ValueError(
                f"departure ({self.departure}) must be before arrival ({self.arrival}): the car charges at home "
                "overnight"
            )
        return self


class HeatPumpParams(_Strict):
    p_el_kw: float = Field(3.0, gt=0, description="max electrical power")
    t_min: float = Field(20.0, description="comfort band lower bound, °C")
    t_max: float = Field(22.0, description="comfort band upper bound, °C")
    t_init: float = Field(21.0)
    ua_kw_per_k: float = Field(0.2, gt=0, description="house heat-loss coefficient")
    c_kwh_per_k: float = Field(8.0, gt=0, description="house thermal capacity")
    floor_area_m2: float = Field(140.0, gt=0, description="heated living area (internal gains 5 W/m², DIN V 4108-6)")
    solar_aperture_m2: float = Field(
        4.0, ge=0, description="effective solar aperture on global horizontal irradiance (windows × g × frame × shading)"
    )
    dhw_kwh_per_day: float = Field(
        5.845, ge=0, description="mean hot-water heat drawn per day (EN 16147 tapping cycle M); 0 = no hot water"
    )
    dhw_tank_l: float = Field(200.0, gt=0, description="hot-water tank volume, litres (heated 10 -> 50 °C)")

    @model_validator(mode="after")
    def _band(self):
        if not self.t_min < self.t_max:
            raise ValueError(f"t_min ({self.t_min}) must be below t_max ({self.t_max})")
        return self


class ApplianceParams(_Strict):
    """A shiftable appliance: one cycle per day that must run inside [window_start, window_end]."""

    name: str = Field("washing_machine")
    profile_kw: list[float] = Field(
        default_factory=lambda: [2.0] * 15 + [0.3] * 45 + [0.8] * 30,
        description="power of the cycle per minute",
        min_length=1,
    )
    window_start: str = Field("09:00")
    window_end: str = Field("18:00")

    _hhmm = field_validator("window_start", "window_end")(classmethod(lambda cls, v: _check_hhmm(v)))

    @field_validator("profile_kw")
    @classmethod
    def _nonneg(cls, v: list[float]) -> list[float]:
        if any(p < 0 for p in v):
            raise ValueError("profile_kw values must be >= 0")
        return v

    @model_validator(mode="after")
    def _window(self):
        s, e = minutes_of_day(self.window_start), minutes_of_day(self.window_end)
        if e <= s:
            raise ValueError(f"window_end ({self.window_end}) must be after window_start ({self.window_start})")
        if e - s < len(self.profile_kw):
            raise ValueError(
                f"window {self.window_start}-{self.window_end} is shorter than the "
                f"{len(self.profile_kw)}-minute cycle"
            )
        return self


class DeviceSet(_Strict):
    """The devices of one household; absent = the household does not have it."""

    base: BaseLoadParams = Field(default_factory=BaseLoadParams)
    pv: PVParams | None = None
    battery: BatteryParams | None = None
    ev: EVParams | None = None
    heat_pump: HeatPumpParams | None = None
    appliances: list[ApplianceParams] = Field(default_factory=list)


class HouseholdSpec(_Strict):
    """One household as the household simulator receives it (JSON-serialisable via model_dump)."""

    id: str
    devices: DeviceSet = Field(default_factory=DeviceSet)
    phase: int | None = Field(None, ge=1, le=3, description="L1/L2/L3 of the single-phase connection "
                              "(unbalanced grid); None: no per-phase outputs")
