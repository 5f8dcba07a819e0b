"""Validated parameters of household devices.

These pydantic models are the single definition of what a device is configured with. The scenario
schema (cosim.scenario) embeds them, the household simulator builds its device populations from
them, and the home-agent optimisation reads the same numbers, so a device is described once.
Powers in kW (load convention in the simulation), energies in kWh, temperatures in °C, clock
times as "HH:MM" local to the scenario start's timezone.
"""

from __future__ import annotations

import math
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

    # 3,500 kWh/a: the three-person reference household of the BDEW-Strompreisanalyse (BDEW, yearly;
    # "Musterhaushalt" with 3,500 kWh/a). A district's homes draw theirs from their household size
    # (cosim.population) unless the scenario sets annual_kwh.
    annual_kwh: float = Field(3500.0, gt=0, description="yearly consumption of the base load")
    persons: int | None = Field(
        None, ge=1, le=5, description="household size (5 = five or more); drawn per home by cosim.population"
    )
    appliance_kwh: float = Field(
        0.0, ge=0, description="expected annual energy of the home's shiftable appliances, part of annual_kwh "
        "(set from DeviceSet.appliances; the base load carries the rest)"
    )
    instant_water_heater: bool = Field(
        False, description="electric instantaneous water heater (18-24 kW showers) in the base load"
    )
    # cos φ 0.95 (inductive): modelling choice, not from a source; set per study
    power_factor: float = Field(0.95, gt=0, le=1)


class PVParams(_Strict):
    # kwp 5: modelling choice (a small rooftop system), below the 7.5 kWp mean of new German small systems in
    #   2020 (EUPD Research 2021, "89 Prozent des Solarpotenzials noch ungenutzt"); the district's variety scales it
    # tilt 30° / azimuth 180°: centre of German rooftop systems (tilts mostly 20-40°, azimuths around south),
    #   Killinger et al. 2018, Solar Energy 173:1087-1106 (cf. the spread in cosim.population)
    # efficiency 0.86: DC side, 1 - 14 % PVWatts v5 default system losses (soiling, shading, mismatch, wiring,
    #   connections, light-induced degradation, nameplate, availability; Dobos 2014, "PVWatts Version 5 Manual",
    #   NREL/TP-6A20-62641, Table 4: 14.08 %); the inverter is separate (inverter_efficiency), temperature
    #   losses too (simulators.devices.pv)
    # inverter_efficiency 0.96: PVWatts v5 nominal inverter efficiency eta_inv_nom (Dobos 2014), with its
    #   part-load curve (pvlib.inverter.pvwatts); the inverter's DC rating = kwp (modelling choice: a DC/AC
    #   ratio of 1, German rooftop systems are rarely oversized much; PVWatts' default 1.2 is a US figure)
    kwp: float = Field(5.0, gt=0, description="peak power")
    tilt: float = Field(30.0, ge=0, le=90, description="panel tilt, degrees from horizontal")
    azimuth: float = Field(180.0, ge=0, lt=360, description="degrees from north (180 = south)")
    efficiency: float = Field(0.86, gt=0, le=1, description="DC system efficiency (losses before the inverter)")
    inverter_efficiency: float = Field(0.96, gt=0, le=1, description="nominal inverter efficiency (PVWatts)")


class BatteryParams(_Strict):
    # capacity 10 kWh: modelling choice, rounded up from the German home-storage mean of ≈ 8.6 kWh (1.8 million
    #   systems with 15.4 GWh at the end of 2024, BSW-Solar from the MaStR, press release Jan 2025)
    # p_max 5 kW: modelling choice (0.5 C), not from a source
    # efficiency 0.95 per direction: HTW Berlin, Stromspeicher-Inspektion 2025 (J. Weniger et al.):
    #   conventional home storage systems reach mean conversion efficiencies around 95 %; round trip ≈ 0.90
    # soc_min 0.1 / soc_max 0.95 / soc_init 0.5: modelling choice (reserves against deep discharge and full
    #   charge; start mid-band), not from a source
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

    # capacity 50 kWh: modelling choice (a mid-size BEV), not from a market statistic; set per study
    capacity_kwh: float = Field(50.0, gt=0)
    # 11 kW: three-phase 16 A home wallbox; NAV §19(2) (as amended 2019): charging points above 12 kVA need the
    # DSO's consent, smaller ones only notification
    charger_kw: float = Field(11.0, gt=0)
    # 0.9: the ~10 % charging losses of the ADAC Ecotest figure below
    efficiency: float = Field(0.9, gt=0, le=1)
    # ADAC Ecotest (2023): tested BEVs need ~20 kWh/100 km from the grid incl. ~10 % charging losses
    consumption_kwh_per_km: float = Field(0.18, gt=0, le=1, description="driving energy at the battery")
    arrival: str = Field("17:30", description="typical weekday arrival home HH:MM (MiD 2017 afternoon peak)")
    departure: str = Field("07:30", description="typical weekday departure HH:MM (MiD 2017 morning peak)")
    # jitter 45 min and soc_init 0.6: modelling choices, not fitted to MiD 2017 (the arrival spread is checked
    # against the MiD 2017 band ev.arrival_sd_h of cosim.calibrate)
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
    # p_el 3 kW: modelling choice, sized to the default house: 3 kW × COP(-10 °C) ≈ 2.8 gives ≈ 8.4 kW of heat
    #   against UA × (20 - (-10)) = 6 kW of loss
    # t_min 20 °C: DIN EN 16798-1:2021, Annex B, IEQ category II: ≥ 20 °C in living spaces in winter
    # t_max 22 °C: modelling choice (a 2 K band the controllers may use), not from a source; t_init its middle
    # ua 0.2 kW/K: modelling choice (a moderately insulated single-family house), not from a typology; with the
    #   gains it puts the heating limit near 15 °C (VDI 3807 / DIN V 4108-6, checked by cosim.calibrate)
    # c 8 kWh/K: between EN ISO 13790:2008 Table 12 "medium" (165 kJ/(m²K) × 140 m² = 6.4 kWh/K) and "heavy"
    #   (260 kJ/(m²K) → 10.1 kWh/K); time constant C/UA = 40 h
    # floor_area 140 m²: single-family reference house of FfE (2019), "Modelling Load Profiles of Heat Pumps",
    #   Energies 12(4):766, Appendix A (139 m²), rounded
    # solar_aperture 4 m²: modelling choice, not from a source (chosen with the internal gains for the 15 °C
    #   heating limit above)
    # dhw_tank_l 200 l: modelling choice (a common single-family tank size); 10 -> 50 °C: 10 °C cold water is a
    #   modelling choice; 50 °C: DVGW W 551 (small installations) says outlet temperatures below 50 °C
    #   should be avoided and recommends 60 °C
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
    """A shiftable appliance: a cycle on ``cycles_per_week`` of the days, evenly spread (a day has a cycle when
    floor((day + day_offset) · cycles_per_week / 7) steps up), each inside [window_start, window_end]."""

    name: str = Field("washing_machine")
    # profile: modelling choice, a stylised 60 °C washing cycle (15 min heating at 2 kW, 45 min washing at
    # 0.3 kW, 30 min rinsing/spinning at 0.8 kW; ≈ 1.1 kWh), not a measured profile
    profile_kw: list[float] = Field(
        default_factory=lambda: [2.0] * 15 + [0.3] * 45 + [0.8] * 30,
        description="power of the cycle per minute",
        min_length=1,
    )
    # window 09:00-18:00: modelling choice (daytime, PV hours), set per study
    window_start: str = Field("09:00")
    window_end: str = Field("18:00")
    # 7 (a cycle every day): modelling choice of an appliance the scenario names; cosim.population sets a washing
    # machine's by household size (Öko-Institut washing frequencies, see there)
    cycles_per_week: float = Field(7.0, gt=0, le=7, description="cycles per week (7: every day)")
    day_offset: float = Field(0.0, ge=0, lt=7, description="phase of the cycle days (drawn per home)")

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


def has_cycle(app: ApplianceParams, day: int) -> bool:
    """Whether *app* runs a cycle on (wall-clock) day number *day*: ``cycles_per_week`` of 7 days, evenly."""
    c = app.cycles_per_week / 7.0
    return math.floor((day + app.day_offset) * c + 1e-9) > math.floor((day - 1 + app.day_offset) * c + 1e-9)


def appliance_kwh(apps: list[ApplianceParams]) -> float:
    """Expected annual energy of shiftable appliances: kWh per cycle × cycles per week × 365.25 / 7."""
    return float(sum(sum(a.profile_kw) / 60.0 * a.cycles_per_week * 365.25 / 7.0 for a in apps))


class DeviceSet(_Strict):
    """The devices of one household; absent = the household does not have it."""

    base: BaseLoadParams = Field(default_factory=BaseLoadParams)
    pv: PVParams | None = None
    battery: BatteryParams | None = None
    ev: EVParams | None = None
    heat_pump: HeatPumpParams | None = None
    appliances: list[ApplianceParams] = Field(default_factory=list)

    @model_validator(mode="after")
    def _appliance_energy(self):
        """The shiftable appliances' energy is part of the home's annual kWh (H0 includes laundry and dishes):
        the base load carries the rest (base.appliance_kwh)."""
        kwh = round(appliance_kwh(self.appliances), 3)
        if self.base.appliance_kwh != kwh:
            self.base = self.base.model_copy(update={"appliance_kwh": kwh})
        return self


class HouseholdSpec(_Strict):
    """One household as the household simulator receives it (JSON-serialisable via model_dump)."""

    id: str
    devices: DeviceSet = Field(default_factory=DeviceSet)
    phase: int | None = Field(None, ge=1, le=3, description="L1/L2/L3 of the single-phase connection "
                              "(unbalanced grid); None: no per-phase outputs")
