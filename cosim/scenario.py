"""Scenario files: pydantic schema, YAML loading and one-line error messages.

A scenario is a YAML mapping validated by :class:`Scenario`. Loading never raises a raw pydantic or
YAML traceback at the user: :func:`load_scenario` raises :class:`ScenarioError` whose ``lines`` each
name the field path (``districts[1].households: expected a positive integer, got 'ten'``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from importlib import resources
from pathlib import Path
from collections.abc import Hashable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cosim.durations import format_duration_ms, parse_duration_ms
from cosim.economics import Economics
from cosim.errors import InputError
from hil.client import DeviceConfig
from simulators.mas.tariff import DistrictObjective
from simulators.devices.common import after, parse_start
from simulators.vocabulary import CONTROL_MODES, GRID_ENGINES
from simulators.devices.params import (
    ApplianceParams,
    BaseLoadParams,
    BatteryParams,
    EVParams,
    HeatPumpParams,
    PVParams,
)


class ScenarioError(InputError):
    """Invalid scenario input. ``lines`` are complete, user-facing one-line messages."""


def _duration(v: Any) -> int:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):  # 60: s? min? say it
        raise ValueError(f"a bare number is ambiguous: give a unit, e.g. '{v}s' or '{v}min'")
    return parse_duration_ms(v)


# In YAML a duration is a string with a unit ("15min", "1d", "PT1H"); in Python, integer milliseconds.
DurationMs = Annotated[int, BeforeValidator(_duration), WithJsonSchema(
    {"type": "string", "pattern": r"^(P.+|-?(\d+(\.\d+)?\s*(ms|sec|min|s|m|h|d|w))+)$",
     "description": "duration with a unit: 90s, 15min, 6h, 1d, 1w, 1h30min, or ISO-8601 PT1H"})]


def _positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"expected a positive integer, got {v!r}")
    return v


PosInt = Annotated[int, BeforeValidator(_positive_int)]

# Largest seed: it is stored as a 64-bit signed HDF5 attribute of the results file.
MAX_SEED = 2**63 - 1

# Years a run can cover: pandas' nanosecond timestamps span 1677-09-21 to 2262-04-11, and the base-load
# profile is built for whole calendar years.
MIN_YEAR, MAX_YEAR = 1678, 2261


def _seed(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEED:
        raise ValueError(f"expected an integer from 0 to 2**63-1, got {v!r}")
    return v


# Households per district: an LV district is the area of one MV/LV substation, which serves tens to a
# few hundred households (Kerber 2011, reference networks of 14 to 146 households); 10 000 leaves two
# orders of magnitude for large aggregations while refusing typos that would exhaust memory.
MAX_HOUSEHOLDS = 10_000

# Largest magnitude of any real number in a scenario (kW, kWh, EUR/kWh, %, degrees, ...): a million
# times a household's size. Products of two such numbers (price x energy in the LPs) stay below HiGHS's
# large_matrix_value (1e15), above which HiGHS treats a coefficient as infinite (HiGHS option reference).
MAX_MAGNITUDE = 1e6

# Nesting depth of a scenario's YAML: the schema is at most 6 levels deep; 100 refuses pathological
# files (thousands of brackets) before the YAML composer recurses into them.
MAX_DEPTH = 100
EXPECTED_START = "expected an ISO-8601 date-time with timezone (2026-06-01T00:00:00+02:00)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


SimMode = Literal["python", "cmd", "connect"]


class SimulatorStart(_Strict):
    """How a simulator is started: in this process, as a subprocess, or by connecting to host:port."""

    mode: SimMode = "python"
    address: str | None = Field(None, description="host:port, required for mode 'connect'")
    # 2 min: the bundled simulators answer a call in well under a second (a power flow of 10 000 homes'
    # feeders, a district's LP), so a simulator silent that long is frozen, not busy; the run then fails
    timeout: DurationMs = Field(120_000, description="a 'cmd' or 'connect' simulator that does not answer a call "
                                "within it fails the run (it is frozen or stopped)")

    @model_validator(mode="after")
    def _address(self):
        if self.mode == "connect":
            if not self.address or ":" not in self.address:
                raise ValueError("mode 'connect' needs address: HOST:PORT")
            port = self.address.rpartition(":")[2]
            if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                raise ValueError(f"address {self.address!r}: the port must be a number in 1-65535")
        return self


class DeviceShares(_Strict):
    """Share (0..1) of the district's households that own each device."""

    pv: float = Field(0.0, ge=0, le=1)
    battery: float = Field(0.0, ge=0, le=1)
    ev: float = Field(0.0, ge=0, le=1)
    heat_pump: float = Field(0.0, ge=0, le=1)
    appliances: float = Field(0.0, ge=0, le=1)


DEVICES = tuple(DeviceShares.model_fields)  # the device vocabulary of shares, defaults and ownership
TRAITS = ("new_building", *DEVICES)  # latent household traits of the ownership copula

# Default rank correlations of the ownership copula (cosim.population). Sources of the signs and sizes:
# * heat pump ~ new building 0.6: heat pumps are the primary heating of 64 % of the residential
#   buildings completed in Germany in 2023 (Destatis, press release 21 June 2024) but of only ~6 % of
#   the dwelling stock (BDEW, "Wie heizt Deutschland 2023"); a strong positive dependence.
# * PV ~ new building 0.3: state PV obligations for new roofs (e.g. Baden-Württemberg KSG 2022) and
#   EEG statistics showing higher PV adoption on post-2000 single-family homes (assumed moderate).
# * PV ~ heat pump 0.3: owners combine them for self-consumption (BSW-Solar / BWP market surveys
#   report a majority of new heat pumps in PV homes; assumed moderate).
# * EV: independent of the others (0; the requested default, adjustable per scenario).
DEFAULT_CORRELATION = {"heat_pump~new_building": 0.6, "pv~new_building": 0.3, "pv~heat_pump": 0.3}


def _matrix(correlation: dict[str, float]) -> np.ndarray:
    """Correlation matrix over TRAITS of "a~b" pairs; ValueError when it is not positive definite."""
    c = np.eye(len(TRAITS))
    for key, rho in correlation.items():
        a, _, b = key.partition("~")
        i, j = TRAITS.index(a), TRAITS.index(b)
        c[i, j] = c[j, i] = rho
    low = float(np.linalg.eigvalsh(c).min())
    if low <= 1e-9:
        raise ValueError(f"the matrix these pairs define is not positive definite (smallest eigenvalue {low:.3g})")
    return c


class Ownership(_Strict):
    """How device ownership is drawn: a Gaussian copula over household traits (cosim.population)."""

    battery_needs_pv: bool = Field(
        True, description="batteries only in PV homes (a battery without PV never recharges under the default rule)"
    )
    # Destatis Mikrozensus 2018 (Zusatzerhebung Wohnen) / BDEW Beheizungsstruktur: about a quarter of
    # German dwellings heat water electrically and decentrally (instantaneous heaters, small tanks)
    instant_water_heater: float = Field(
        0.25, ge=0, le=1, description="share of the homes without heat pump with an instantaneous water heater"
    )
    correlation: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_CORRELATION),
        description='latent correlations "a~b" between traits (new_building and the devices); unnamed pairs 0',
    )

    @field_validator("correlation")
    @classmethod
    def _pairs(cls, v: dict[str, float]) -> dict[str, float]:
        seen: dict[frozenset, str] = {}
        for key, rho in v.items():
            a, _, b = key.partition("~")
            if a not in TRAITS or b not in TRAITS or a == b:
                raise ValueError(f'"{key}": expected "a~b" with two different names of {", ".join(TRAITS)}')
            if not -1 < rho < 1:
                raise ValueError(f'"{key}": correlation must lie in (-1, 1), got {rho}')
            first = seen.setdefault(frozenset((a, b)), key)
            if first != key:  # "pv~ev" and "ev~pv": one would silently overwrite the other
                raise ValueError(f'"{first}" and "{key}" name the same pair: give it once')
        _matrix(v)
        return v

    def matrix(self):
        """Correlation matrix over TRAITS (checked positive definite when the scenario is read)."""
        return _matrix(self.correlation)


class DeviceDefaults(_Strict):
    """Parameters of the district's devices (each household varies around them, seeded)."""

    base: BaseLoadParams = Field(default_factory=BaseLoadParams)
    pv: PVParams = Field(default_factory=PVParams)
    battery: BatteryParams = Field(default_factory=BatteryParams)
    ev: EVParams = Field(default_factory=EVParams)
    heat_pump: HeatPumpParams = Field(default_factory=HeatPumpParams)
    appliances: list[ApplianceParams] = Field(default_factory=lambda: [ApplianceParams()])

    @model_validator(mode="after")
    def _derived(self):
        if "appliance_kwh" in self.base.model_fields_set:  # DeviceSet sets it from each home's appliances
            raise ValueError("base.appliance_kwh follows from the home's appliances (DeviceSet); give "
                             "appliances (profile_kw, cycles_per_week) instead")
        return self


class District(_Strict):
    # 57: its households' ids "<name>.h10000" fit the results file's 64-byte id cells (cosim.results.ID_BYTES)
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=57)
    households: PosInt = Field(le=MAX_HOUSEHOLDS)
    shares: DeviceShares = Field(default_factory=DeviceShares)
    devices: DeviceDefaults = Field(default_factory=DeviceDefaults)
    variety: float = Field(  # 0.2: modelling choice for kWp, battery kWh, heat loss and a fixed annual_kwh
        0.2, ge=0, le=0.9, description="relative spread of sizes (kWp, kWh, UA; annual kWh when devices.base "
        "sets it) between households; 0: no spread (a drawn annual kWh is then its household size's mean)"
    )
    ownership: Ownership = Field(default_factory=Ownership)
    pv_orientation: Literal["spread", "fixed"] = Field(
        "spread", description="spread: tilt/azimuth drawn per roof (cosim.population); fixed: devices.pv's"
    )

    @model_validator(mode="after")
    def _battery_pv(self):
        if self.ownership.battery_needs_pv and self.shares.battery > self.shares.pv:
            raise ValueError(
                f"shares.battery ({self.shares.battery}) exceeds shares.pv ({self.shares.pv}): batteries go to PV "
                "homes only (set ownership.battery_needs_pv: false to allow batteries without PV)"
            )
        return self


class Location(_Strict):
    # Munich: modelling choice, inside the DWD climate of the calibration bands (cosim.calibrate)
    latitude: float = Field(48.1, ge=-90, le=90)
    longitude: float = Field(11.6, ge=-180, le=180)


class MeterConfig(_Strict):
    # class 1: IEC 62053-21 class 1 / MID (EN 50470-3) class B, the usual household meter; the 1-min interval
    # and 1-W resolution are modelling choices (a smart meter gateway's 15-min values are coarser)
    accuracy_class: float = Field(1.0, gt=0, le=5, description="IEC accuracy class in %")
    interval: DurationMs = Field(60_000, description="reporting interval")
    resolution_w: float = Field(1.0, gt=0, description="quantisation of the power reading, W")


class GridConfig(_Strict):
    network: str = Field(description="bundled LV grid name, simbench:CODE, pandapower JSON path, or (engine "
                         "fast3ph) ieee_eu_lv / opendss:PATH/Master.dss")

    @field_validator("network")
    @classmethod
    def _known_network(cls, v: str) -> str:
        from simulators.grid3ph_networks import BUNDLED_DSS
        from simulators.grid_networks import bundled_names

        try:
            is_file = Path(v).is_file()
        except OSError:  # e.g. a name longer than the file system allows
            is_file = False
        if v in bundled_names() or v in BUNDLED_DSS or v.startswith("simbench:") or is_file:
            return v
        if v.startswith("opendss:"):
            if Path(v.split(":", 1)[1].strip()).is_file():
                return v
            raise ValueError(f"OpenDSS file {v.split(':', 1)[1].strip()!r} does not exist")
        raise ValueError(f"unknown network {v!r}: expected one of "
                         f"{', '.join(bundled_names() + sorted(BUNDLED_DSS))}, simbench:CODE, "
                         "opendss:PATH/Master.dss, or the path of a pandapower JSON file")
    engine: Literal[GRID_ENGINES] = Field(
        "fast", description="fast/runpp: balanced (positive sequence); fast3ph: unbalanced, per phase")
    mapping: dict[str, int | str] | Literal["round_robin"] = "round_robin"
    phases: dict[str, Literal[1, 2, 3]] | Literal["seeded"] = Field(
        "seeded", description="fast3ph: phase (1-3 = L1-L3) per household id; others drawn from the seed")
    network_loads: bool = Field(False, description="fast3ph, OpenDSS network: its loads follow their "
                                "Yearly load shapes as well (the file's own day)")
    line_limit_pct: float = Field(100.0, gt=0)
    trafo_limit_pct: float = Field(100.0, gt=0)
    v_band: float = Field(0.1, gt=0, lt=1, description="EN 50160 band half-width in p.u.")

    @model_validator(mode="after")
    def _engine_fits(self):
        from simulators.grid3ph_networks import is_opendss

        if self.engine != "fast3ph":
            if is_opendss(self.network):
                raise ValueError(f"network {self.network!r} (OpenDSS) needs engine: fast3ph")
            if self.phases != "seeded" or self.network_loads:
                raise ValueError("phases and network_loads need engine: fast3ph")
        elif self.network_loads and not is_opendss(self.network):
            raise ValueError("network_loads needs an OpenDSS network (ieee_eu_lv or opendss:PATH)")
        return self


class SimulatorsConfig(_Strict):
    """Start mode per simulator (default: all in-process)."""

    household: SimulatorStart = Field(default_factory=SimulatorStart)
    meter: SimulatorStart = Field(default_factory=SimulatorStart)
    grid: SimulatorStart = Field(default_factory=SimulatorStart)
    hil_meter: SimulatorStart = Field(default_factory=SimulatorStart)
    hil_gateway: SimulatorStart = Field(default_factory=SimulatorStart)
    device_server: SimulatorStart = Field(default_factory=SimulatorStart)
    rule: SimulatorStart = Field(default_factory=SimulatorStart)
    mas: SimulatorStart = Field(default_factory=SimulatorStart)
    telecom: SimulatorStart = Field(default_factory=SimulatorStart)


class DeviceServerConfig(_Strict):
    """Serve simulated households' meters / batteries as Modbus TCP devices (one unit id each)."""

    host: str = "127.0.0.1"
    port: int = Field(5502, ge=0, le=65535, description="0 = any free port (logged)")
    devices: dict[str, DeviceServerEntry] = Field(min_length=1, description="household id -> unit, map")
    tls_cert: str | None = None
    tls_key: str | None = None


class HilConfig(_Strict):
    """Real (or emulated) Modbus devices that replace simulated ones, and the device server.

    A household listed under ``meters`` is a real home: it is not simulated, its real meter's
    readings feed the grid and the results under its id. A gateway (battery inverter) belongs to a
    real home, so its id must also be under ``meters``."""

    meters: list[DeviceConfig] = Field(default_factory=list)
    gateways: list[DeviceConfig] = Field(default_factory=list)
    device_server: DeviceServerConfig | None = None
    controller: Literal["self_consumption", "none"] = Field(
        "self_consumption", description="controller of the real batteries (gateways)")

    @model_validator(mode="after")
    def _ids(self):
        meter_ids = [m.id for m in self.meters]
        dupes = sorted({i for i in meter_ids if meter_ids.count(i) > 1})
        if dupes:
            raise ValueError(f"meter ids repeated: {', '.join(dupes)}")
        orphans = [g.id for g in self.gateways if g.id not in meter_ids]
        if orphans:
            raise ValueError(f"gateway(s) {', '.join(orphans)} must belong to a real home listed under meters")
        return self


class RealtimeConfig(_Strict):
    factor: float = Field(1.0, gt=0, description="1 = real time, 0.5 = twice as fast")
    threshold_ms: float = Field(100.0, gt=0, description="a step later than this counts as late")


class RecordConfig(_Strict):
    """What goes into the HDF5 file: population -> list of attributes, or 'all'."""

    every: DurationMs | None = Field(None, description="recording interval; default = the physical step")
    aggregate: DurationMs | None = Field(None, description="one row per interval of interval means (states: "
                                         "last value, meter registers: reading at the row; README 'A year') "
                                         "instead of one row per step")
    include: dict[str, list[str] | Literal["all"]] = Field(
        default_factory=lambda: {"households": "all", "meters": "all", "grid": "all"}
    )
    flush_every: PosInt = Field(60, description="rows buffered before a write + flush")


class LFAConfig(_Strict):
    """Local flexibility aggregator: negotiation settings and district objective."""

    objective: DistrictObjective = Field(default_factory=DistrictObjective)
    tol: float = Field(0.01, gt=0, description="relative convergence tolerance of the negotiation")
    max_rounds: PosInt = 10
    round_timeout: DurationMs = Field(5_000, description="wait for the home agents' answers per round")
    negotiation_timeout: DurationMs = Field(60_000, description="deadline of a negotiation (then fallback)")
    stall_tol: float = Field(0.001, ge=0, description="stop when the plan cost improves less than this "
                             "(relative) over two rounds; 0 = run to tol or max_rounds")


class ControlConfig(_Strict):
    """Who controls the flexible devices: the multi-agent system, a centralised optimiser, or nobody."""

    mode: Literal[CONTROL_MODES] = "mas"
    horizon: DurationMs = Field(86_400_000, description="planning horizon")
    slot: DurationMs = Field(900_000, description="planning slot")
    replan: DurationMs = Field(900_000, description="re-planning interval (a multiple of slot)")
    reference: bool = Field(True, description="also solve each negotiation centrally: the MAS gap KPI")
    forecast_noise: float = Field(0.0, ge=0, description="relative forecast error growing with lead time")
    fallback: DurationMs = Field(120_000, description="home agent's deadline before it falls back to its own plan")
    # A tie-break, not a price signal: 1e-4 EUR/kWh is below a tenth of a cent (tariffs are set in cents) and,
    # times a 15-min slot, 2.5e-5 EUR per kW, above HiGHS's dual feasibility tolerance (1e-7), so it decides
    # between otherwise equally cheap plans only. Modelling choice; measured on uc2_district (README, "Study
    # numbers"). Bounded at 0.001 so that it cannot become a price. On by default: without it the day carried
    # out depends on which optimal vertex HiGHS returns (uc2_district: a 2 % bias of the central benchmark;
    # uc3_substation: 11 instead of 3.5 congestion minutes, mean of 4 replicates; README, "Study numbers").
    tie_break: float = Field(1e-4, ge=0, le=0.001, description="EUR/kWh: rank equally cheap slots the same way "
                             "in every plan (import prices + this x a fixed draw per slot; replicates re-draw "
                             "it); 0 = off")
    lfa: LFAConfig = Field(default_factory=LFAConfig)

    @model_validator(mode="after")
    def _grid(self):
        if self.horizon % self.slot or self.replan % self.slot:
            f = format_duration_ms
            raise ValueError(f"horizon ({f(self.horizon)}) and replan ({f(self.replan)}) must be multiples of "
                             f"slot ({f(self.slot)})")
        return self


class DSOConfig(_Strict):
    """DSO agent of the substation: congestion forecast and USEF flexibility requests."""

    trafo_limit_kw: float | None = Field(None, gt=0, description="transformer import limit the DSO defends, kW")
    trafo_limit_pct: float | None = Field(
        None, gt=0, le=200, description="or: the substation transformer's loading the DSO defends (% of rated, worst "
        "terminal, as the grid reports it); its kW limit follows the measured kW per % (unbalance, reactive power)")
    # Defaults below: modelling choices, not from a source (see simulators.mas.dso.DSOAgent): lookahead 8 slots
    # (2 h), lead 1 slot, margin 0, price_max 0.30 EUR/kWh (a cap below the default import price 0.32), penalty
    # 0.60 EUR/kWh (2 × price_max), offer timeout 60 s; placeholders, set per study.
    lookahead_slots: PosInt = 8
    lead_slots: int = Field(1, ge=0)
    margin: float = Field(0.0, ge=0, lt=1)
    price_max: float = Field(0.30, ge=0, description="max price the DSO pays, EUR/kWh")
    penalty: float = Field(0.60, ge=0, description="penalty per kWh not delivered, EUR/kWh")
    offer_timeout: DurationMs = 60_000

    @model_validator(mode="after")
    def _one_limit(self):
        if (self.trafo_limit_kw is None) == (self.trafo_limit_pct is None):
            raise ValueError("give trafo_limit_kw (kW) or trafo_limit_pct (% loading of the transformer), one of them")
        return self


class MeterLinkConfig(_Strict):
    """Smart-meter readings carried to the district's LFA over their own network (e.g. PLC)."""

    technology: str = "plc"
    every: DurationMs = Field(900_000, description="one reading per meter per interval")
    bytes: PosInt = Field(48, description="payload of one reading")  # modelling choice: id, time, 2 registers
    quantum_ms: PosInt = Field(1000, description="deliveries rounded up to this many ms (meter data is not "
                               "latency-critical; fewer simulation steps)")


class TelecomConfig(_Strict):
    """Technologies carrying agent messages (simulators/telecom_tech.py has the table and sources)."""

    default: str = Field("lte", description="technology of endpoints not listed")
    endpoints: dict[str, str] = Field(default_factory=dict, description="agent id or pattern -> technology")
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, description="tech -> {param: value}")
    domains: dict[str, Any] | None = None
    max_retries: int = Field(0, ge=0)
    quantum_ms: int = Field(1, ge=1, description="round delivery times up to this many ms (fewer steps)")
    meters: MeterLinkConfig | None = Field(None, description="meter readings over their own network")

    @model_validator(mode="after")
    def _techs(self):
        from simulators.telecom_tech import build_table, canonical

        try:
            known = build_table(self.overrides)
        except ValueError as exc:
            raise ValueError(f"overrides: {exc}") from None
        techs = [("default", self.default), *((f"endpoints.{k}", v) for k, v in self.endpoints.items())]
        if self.meters is not None:
            techs.append(("meters.technology", self.meters.technology))
        for where, tech in techs:
            if canonical(tech) not in known:
                raise ValueError(f"{where}: unknown technology {tech!r} (known: {', '.join(sorted(known))})")
        return self


class EvaluationConfig(_Strict):
    """The evaluated period is ``start`` + ``duration``; the run also simulates ``warmup`` before it and
    plans over ``cooldown`` after it, so that controllers start the window in operation and the end of
    the run does not truncate their plans. KPIs, value flows, compare and report use the window only.

    Nothing after the window changes what happened in it (every model is causal, and the controllers
    are told the end of the cool-down, not where the run stops), so a run stops as soon as the window's
    numbers are final: when the meters have reported the window's last slot and the DSO has settled the
    orders that start in it (``Scenario.cooldown_run_ms``; tests/test_cooldown_stop.py).
    ``full_cooldown: true`` simulates all of it."""

    warmup: DurationMs | None = Field(None, description="simulated before the window (default: the control horizon)")
    cooldown: DurationMs | None = Field(None, description="planned over after the window (default: the control "
                                        "horizon); simulated as far as the window's numbers need")
    full_cooldown: bool = Field(False, description="simulate the whole cool-down (e.g. to plot it), not only "
                                "what the window's numbers need")
    terminal_price: float | None = Field(
        None, ge=0, le=10,
        description="EUR/kWh (electric) of the energy stored at the window's ends (default: the tariff's "
                    "lowest import price of the day, the cost of restoring it; cosim/objective.py)")


class DeviceServerEntry(_Strict):
    unit: int = Field(ge=1, le=247)
    map: str = "sdm630"

    @field_validator("map")
    @classmethod
    def _known_map(cls, v: str) -> str:
        from hil.registers import check_map

        check_map(v)
        return v


DeviceServerConfig.model_rebuild()

# Substations of one scenario (cosim.substations): 1000 kerber Vorstadtnetze are 146 000 households, a
# large city's LV level; the bound refuses typos before thousands of runs are expanded.
MAX_SUBSTATIONS = 1000


class SubstationGroup(_Strict):
    """``count`` substations built from one template: its grid, districts (one LFA each) and DSO. Each
    expanded substation is a scenario of its own (the top-level fields plus these), with its own seed."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=32,
                      description="prefix of the substations' ids: NAME_000, NAME_001, ...")
    count: PosInt = Field(le=MAX_SUBSTATIONS)
    grid: GridConfig
    districts: list[District] = Field(min_length=1)
    dso: DSOConfig | None = Field(None, description="DSO of each substation (default: the scenario's dso)")


class Scenario(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128, description="also names the output file")
    description: str = ""
    timezone: str | None = Field(None, description="IANA time zone, e.g. Europe/Berlin: local time (tariff "
                                 "bands, EV and appliance times, profiles, plots) follows its daylight-saving "
                                 "changes; unset: the start's UTC offset, fixed for the whole run")
    start: dt.datetime
    duration: DurationMs
    step: DurationMs = 60_000
    seed: Annotated[int, BeforeValidator(_seed)]
    replicate: int = Field(
        0, ge=0, le=MAX_SEED, description="draw of the noise streams (telecom latency and loss, meter noise, "
        "emulated lab devices): 0 = the seed's own; another value draws them afresh with the same households, "
        "weather and devices (README 'Replicates')")
    location: Location = Field(default_factory=Location)
    districts: list[District] = Field(default_factory=list, description="at least one, unless "
                                      "grid.network_loads drives the grid alone")
    meters: MeterConfig | None = Field(default_factory=MeterConfig)
    grid: GridConfig | None = None
    hil: HilConfig | None = None
    control: ControlConfig | None = Field(None, description="controller of the flexible devices")
    dso: DSOConfig | None = Field(None, description="DSO agent (needs control and a grid)")
    telecom: TelecomConfig | None = Field(None, description="telecom for agent messages; none = ideal")
    realtime: RealtimeConfig | None = Field(None, description="pace to the wall clock (lab runs)")
    simulators: SimulatorsConfig = Field(default_factory=SimulatorsConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    output: str = "results/{name}.h5"
    economics: Economics = Field(default_factory=Economics)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    substations: list[SubstationGroup] = Field(
        default_factory=list, description="many substations, each run on its own in parallel (cosim.substations); "
        "grid and districts are then given per group, not at the top level")
    _text: str = PrivateAttr("")  # the effective YAML text it was loaded from (cosim.api.load_scenario)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(f"unknown IANA time zone {v!r} (e.g. Europe/Berlin, UTC)") from None
        return v

    @field_validator("start", mode="before")
    @classmethod
    def _not_a_number(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):  # pydantic would read it as Unix time
            raise ValueError(f"{EXPECTED_START}, got {v!r}")
        return v

    @field_validator("start")
    @classmethod
    def _tz(cls, v: dt.datetime, info: ValidationInfo) -> dt.datetime:
        if not MIN_YEAR <= v.year <= MAX_YEAR:
            raise ValueError(f"{v.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR} that the simulation's "
                             "time axis can hold")
        if "timezone" not in info.data:  # given, and refused on its own line: nothing to check the start against
            return v
        zone = info.data["timezone"]
        if zone is None:
            if v.tzinfo is None:
                raise ValueError("start needs a timezone, e.g. 2026-06-01T00:00:00+02:00")
            return v
        try:  # a naive start is wall-clock time in the zone; an offset must be the zone's at that instant
            return parse_start(f"{v.isoformat()}[{zone}]")
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("output")
    @classmethod
    def _output_template(cls, v: str) -> str:
        import string

        from cosim.output_path import check_length

        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{v!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
        unknown = [f for f in fields if f not in ("name", "seed")]
        if unknown:
            raise ValueError(f"{v!r}: unknown placeholder {{{unknown[0]}}}; the output may use {{name}} and {{seed}}")
        if not v or v.endswith(("/", "\\")):
            raise ValueError(f"{v!r}: must name a file, e.g. results/{{name}}.h5")
        try:
            check_length(v, "output")
        except InputError as exc:
            raise ValueError(exc.lines[0].split(": ", 1)[1]) from None
        return v

    @model_validator(mode="after")
    def _consistency(self):
        if self.substations:
            clash = [f for f in ("districts", "grid", "hil", "realtime") if getattr(self, f)]
            if clash:
                raise ValueError(f"substations: {', '.join(clash)} cannot be combined with substations (each "
                                 "group gives its grid and districts)")
            groups = [g.name for g in self.substations]
            if len(set(groups)) < len(groups):
                raise ValueError(f"substations: group names must be unique, repeated: "
                                 f"{', '.join(sorted({n for n in groups if groups.count(n) > 1}))}")
            if sum(g.count for g in self.substations) > MAX_SUBSTATIONS:
                raise ValueError(f"substations: more than {MAX_SUBSTATIONS} substations in all")
        elif not self.districts and not (self.grid is not None and self.grid.network_loads):
            raise ValueError("districts: at least one district is needed (or a grid with network_loads)")
        names = [d.name for d in self.districts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"district names must be unique, repeated: {', '.join(dupes)}")
        if self.duration % self.step:
            raise ValueError(f"duration ({self.duration} ms) is not a multiple of step ({self.step} ms)")
        if self.record.every is not None and self.record.every % self.step:
            raise ValueError("record.every must be a multiple of step")
        if self.record.aggregate is not None:
            if self.record.every is not None:
                raise ValueError("record: give either every (samples) or aggregate (interval means), not both")
            for what, ms in (("step", self.step), ("duration", self.duration),
                             ("evaluation.warmup", self.warmup_ms), ("evaluation.cooldown", self.cooldown_ms)):
                if (ms % self.record.aggregate if what != "step" else self.record.aggregate % ms):
                    raise ValueError(f"record.aggregate ({self.record.aggregate} ms) and {what} ({ms} ms) do not "
                                     "fit: the aggregate must be a multiple of step and divide duration, "
                                     "warm-up and cool-down")
        if self.meters is not None and self.meters.interval % self.step:
            raise ValueError("meters.interval must be a multiple of step")
        if self.dso is not None and (self.control is None or (self.grid is None and not self.substations)):
            raise ValueError("dso needs a control section and a grid")
        if self.dso is not None:  # the DSO settles each control slot on the meter registers at its boundaries
            if self.meters is None:
                raise ValueError("dso needs meters: it settles its orders on the smart meters' energy registers")
            if self.control.slot % self.meters.interval:
                raise ValueError(f"meters.interval ({self.meters.interval} ms) must divide control.slot "
                                 f"({self.control.slot} ms) with a dso: it settles each slot on the registers "
                                 "read at the slot's boundaries, and stale registers measure a slot wrong")
        for part in ("warmup", "cooldown"):
            if getattr(self.evaluation, part) is not None and getattr(self.evaluation, part) % self.step:
                raise ValueError(f"evaluation.{part} must be a multiple of step")
        first = self.start - dt.timedelta(milliseconds=self.warmup_ms)
        last = self.start + dt.timedelta(milliseconds=self.duration + self.cooldown_ms)
        for what, t in (("begins", first), ("ends", last)):
            if not MIN_YEAR <= t.year <= MAX_YEAR:
                raise ValueError(f"the run {what} {t.isoformat()}, outside the years {MIN_YEAR}-{MAX_YEAR} that "
                                 "the simulation's time axis can hold")
        if self.grid is not None and isinstance(self.grid.mapping, dict):
            from cosim.population import household_id

            known = {household_id(d.name, i + 1) for d in self.districts for i in range(d.households)}
            strangers = sorted(set(self.grid.mapping) - known)
            if strangers:
                raise ValueError(f"grid.mapping: {strangers[0]!r} is not a household of the scenario "
                                 f"(ids look like {household_id(self.districts[0].name, 1)!r})")
        return self

    @property
    def warmup_ms(self) -> int:
        ev = self.evaluation.warmup
        return ev if ev is not None else (self.control.horizon if self.control is not None else 0)

    @property
    def cooldown_ms(self) -> int:
        ev = self.evaluation.cooldown
        return ev if ev is not None else (self.control.horizon if self.control is not None else 0)

    @property
    def dso_settled_ms(self) -> int:
        """By when after the window the DSO has settled every order that starts in it: its longest order
        (``dso.lookahead_slots``) ends, and its settlement waits at most one slot for the readings
        (simulators/mas/dso.py); one slot more for the step that settles. 0 without a DSO."""
        if self.dso is None or self.control.mode == "none":  # (a DSO needs control)
            return 0
        return (self.dso.lookahead_slots + 2) * self.control.slot

    @property
    def cooldown_run_ms(self) -> int:
        """The part of the cool-down the run simulates: all of it with ``evaluation.full_cooldown``, else
        twice the longest of the intervals the window's last values come in (control slot, meter
        reporting interval, meter readings to the LFAs over telecom, recorded row; at least two rows
        past the window: the meter reading at its end closes the bills) and, with a DSO, until the
        longest order that starts in the window (``dso.lookahead_slots``) has been settled (its
        settlement counts in the window's KPIs), rounded up to the recording grain and at most the
        cool-down. The margin is generous: one interval would do, the second covers a window that does
        not end on the interval's grid and the messages' delays (seconds)."""
        c = self.cooldown_ms
        if not c or self.evaluation.full_cooldown:
            return c
        every = [self.step, self.record.every or 0, self.record.aggregate or 0]
        if self.meters is not None:
            every.append(self.meters.interval)
        if self.control is not None and self.control.mode != "none":
            every.append(self.control.slot)
        if self.telecom is not None and self.telecom.meters is not None:
            every.append(self.telecom.meters.every)
        need = max(2 * max(every), self.dso_settled_ms)
        grain = self.record.aggregate or self.record.every or self.step
        need = -(-need // grain) * grain
        return min(c, need)

    def run_ms(self, evaluated_ms: int | None = None) -> int:
        """What a run of *evaluated_ms* (default: ``duration``) simulates: warm-up, window and the part
        of the cool-down it needs (``cooldown_run_ms``)."""
        return self.warmup_ms + (self.duration if evaluated_ms is None else evaluated_ms) + self.cooldown_run_ms

    def simulated(self) -> "Scenario":
        """The scenario as planned: starts ``warmup`` earlier and spans warmup + duration + cooldown (the
        run stops ``cooldown - cooldown_run_ms`` before its end, runner.py).

        The evaluated window of the result is [warmup, warmup + duration) ms after its start."""
        w, c = self.warmup_ms, self.cooldown_ms
        if not w and not c:
            return self
        return self.model_copy(update={"start": after(self.start, -w),
                                       "duration": w + self.duration + c})

    def study_warnings(self) -> list[str]:
        """Why a controlled run's numbers may be biased or slow to reach (empty when they cannot)."""
        if self.control is None or self.control.mode == "none":
            return []
        out = []
        h = self.control.horizon
        if self.warmup_ms + self.cooldown_ms < h:
            out.append(f"warmup + cooldown ({(self.warmup_ms + self.cooldown_ms) / 3_600_000:g} h) is shorter than the "
                       f"control horizon ({h / 3_600_000:g} h): the controller's start-up and end effects fall "
                       "inside the evaluated window (set evaluation.warmup/cooldown)")
        if self.control.mode == "mas" and self.control.lfa.objective.community:
            where = [(f"districts[{i}]", d) for i, d in enumerate(self.districts)]
            where += [(f"substations[{g}].districts[{i}]", d) for g, grp in enumerate(self.substations or [])
                      for i, d in enumerate(grp.districts)]
            out += [f"{path} ({d.name}) has one household under control.lfa.objective.community: true: its "
                    "exchange at the transformer is its own bill, so community: false is the same optimum without "
                    "the aggregator's degenerate price (uc1_home: 7.7 rounds per negotiation and a 1.81 % planned "
                    "gap to the optimum at community pricing, 0 rounds and 0.000 % without)"
                    for path, d in where if d.households == 1]
        return out

    @property
    def n_steps(self) -> int:
        return self.duration // self.step

    def output_path(self) -> Path:
        return Path(self.output.format(name=self.name, seed=self.seed))


# ---------------------------------------------------------------- loading and errors


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or _is_branch(part) or str(part).startswith(
            ("function-", "union[", "constrained-")
        ):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(err: dict) -> str:
    t, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    shown = repr(given) if not isinstance(given, dict) else "a mapping"
    shown = shown if len(shown) <= 60 else f"{shown[:40]}... ({len(shown)} characters)"
    if t == "missing":
        return "required field is missing"
    if t == "union":
        return f"expected {ctx['kinds']}, got {shown}"
    if t == "extra_forbidden":
        return "unknown field (check the spelling; `cosim schema` prints the schema)"
    if t in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {shown}"
    if t in ("float_parsing", "float_type"):
        return f"expected a number, got {shown}"
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[t]
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"expected a value {op} {bound}, got {shown}"
    if t.startswith("datetime") or t.startswith("date"):
        return f"{EXPECTED_START}, got {shown}"
    if t == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {shown}"
    if t == "string_pattern_mismatch":
        return f"expected letters, digits and '_' (pattern {ctx.get('pattern')}), got {shown}"
    if t in ("list_type", "too_short"):
        return f"{err['msg'].lower()}, got {shown}"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg']}, got {shown}"


def _model_names() -> set[str]:
    names, todo = set(), [BaseModel]
    while todo:
        for c in todo.pop().__subclasses__():
            names.add(c.__name__)
            todo.append(c)
    return names


def _is_branch(part: Any) -> bool:
    """Whether a location part names a member of a union (``list[...]``, ``literal['auto']``, a model)
    rather than a field or a key."""
    return isinstance(part, str) and (part.startswith(("list[", "dict[", "literal[", "tuple["))
                                      or (part[:1].isupper() and part in _model_names()))


def _branch_kind(tag: str) -> str:
    return ("a list" if tag.startswith(("list[", "tuple[")) else f"one of {tag[8:-1]}" if tag.startswith("literal[")
            else "a mapping")


def _one_per_union(errors: list[dict]) -> list[dict]:
    """Pydantic reports a value that fits no member of a union once per member. Keep the member whose
    error goes deepest (the one the value was meant for: ``business_models[0]: expected one of 'B1'...``);
    where none does (a number for a list or a range), one error that names every member."""
    by_prefix: dict[tuple, list[int]] = {}  # the location of the union -> its members' errors
    for i, err in enumerate(errors):
        loc = err["loc"]
        at = next((k for k, part in enumerate(loc) if _is_branch(part)), None)
        if at is not None:
            by_prefix.setdefault(loc[:at], []).append(i)
    drop: set[int] = set()
    merged: dict[int, dict] = {}
    for prefix, idx in by_prefix.items():
        tags = {errors[i]["loc"][len(prefix)] for i in idx}
        if len(tags) < 2:
            continue
        depth = {i: len(errors[i]["loc"]) for i in idx}
        deepest = max(depth.values())
        keep = [i for i in idx if depth[i] == deepest]
        if len({errors[i]["loc"][len(prefix)] for i in keep}) > 1:  # no member went deeper: name them all
            kinds = " or ".join(dict.fromkeys(_branch_kind(errors[i]["loc"][len(prefix)]) for i in keep))
            merged[keep[0]] = {**errors[keep[0]], "loc": prefix, "type": "union", "ctx": {"kinds": kinds}}
            keep = keep[:1]
        drop |= set(idx) - set(keep)
    return [merged.get(i, err) for i, err in enumerate(errors) if i not in drop]


def format_validation_error(exc: ValidationError, source: str) -> list[str]:
    lines, seen = [], set()
    for err in _one_per_union(exc.errors(include_url=False)):
        loc, text = _loc(err["loc"]), _describe(err)
        if loc == "(top level)" and re.match(r"^[A-Za-z_][\w.\[\]]*: ", text):  # the message names its field
            line = f"{source}: {text}"
        else:
            line = f"{source}: {loc}: {text}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _magnitudes(value: Any, where: str = "") -> list[str]:
    """Real numbers of a validated scenario that are not finite or larger than MAX_MAGNITUDE."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return [f"{where}: expected a finite number, got {value}"]
        if abs(value) > MAX_MAGNITUDE:
            return [f"{where}: {value:g} is out of range (|x| <= {MAX_MAGNITUDE:g} in the field's unit)"]
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _magnitudes(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _magnitudes(v, f"{where}[{i}]")]
    return []


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}: expected a YAML mapping of scenario fields at the top level"])
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, source)) from None
    problems = _magnitudes(scn.model_dump(exclude={"start"}))
    if problems:
        raise ScenarioError([f"{source}: {p}" for p in problems])
    if scn.substations:  # each group as the scenario one of its substations runs
        from cosim.substations import check_groups

        check_groups(data, source)
    return scn


def bundled_scenarios() -> dict[str, Path]:
    """name -> path of the scenarios shipped with the package."""
    root = resources.files("scenarios")
    return {
        Path(p.name).stem: Path(str(p))
        for p in root.iterdir()
        if p.name.endswith(".yaml")
    }


def resolve_scenario_path(ref: str) -> Path:
    path = Path(ref)
    try:
        if path.exists():
            return path
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ScenarioError([f"{ref[:80]}...: {exc.strerror}"]) from None
    bundled = bundled_scenarios()
    if ref in bundled:
        return bundled[ref]
    raise ScenarioError(
        [f"{ref}: no such file and no bundled scenario of that name (bundled: {', '.join(sorted(bundled))})"]
    )


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH (PyYAML's composer recurses once per level)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise ScenarioError([f"{source}:{mark.line + 1}:{mark.column + 1}: nested more than {MAX_DEPTH} "
                                     "levels deep; a scenario needs at most a few"])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last one would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # refused by the safe loader itself ("found unhashable key")
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):
        """A date that does not exist (2026-13-45, T25:00, +25:00) is refused at its line and column."""
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"not a valid date or time: {exc}",
                                                    node.start_mark) from None


_UniqueKeys.add_constructor("tag:yaml.org,2002:timestamp", _UniqueKeys.construct_yaml_timestamp)


def read_yaml(text: str, source: str) -> Any:
    try:
        _check_depth(text, source)
        return yaml.load(text, Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ScenarioError([f"{where}: {kind}: {problem}"]) from None
    except (ValueError, OverflowError) as exc:  # a timestamp out of range: 2026-13-45, T25:00, +25:00
        raise ScenarioError([f"{source}: not a valid date or time: {exc}"]) from None


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of *path*, or one line saying why not (*what*: "a scenario", "a sweep")."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                             f"{what} is a YAML text file"]) from None


def load_scenario_text(ref: str) -> tuple[str, str]:
    """(yaml text, source label) of a scenario path or bundled name (results files: :mod:`cosim.api`)."""
    path = resolve_scenario_path(ref)
    return read_text_file(path, "a scenario"), str(path)


def scenario_from_text(text: str, source: str, overrides: dict[str, Any] | None = None) -> tuple[Scenario, str]:
    """Parse YAML *text*, apply *overrides* (dotted paths as in sweeps: ``districts[0].households``)
    and validate. Returns the scenario and the effective YAML text (recorded as provenance)."""
    from cosim.overrides import set_path

    data = read_yaml(text, source)
    if overrides and isinstance(data, dict):
        for dotted, value in overrides.items():
            try:
                set_path(data, dotted, value)
            except ValueError as exc:
                raise ScenarioError([f"{source}: {dotted}: {exc}"]) from None
        text = yaml.safe_dump(data, sort_keys=False)
    return parse_scenario(data, source), text


def load_scenario(ref: str, overrides: dict[str, Any] | None = None) -> tuple[Scenario, str]:
    """Load a scenario file or bundled name, apply overrides and validate (see :func:`scenario_from_text`)."""
    text, source = load_scenario_text(ref)
    return scenario_from_text(text, source, overrides)


def parse_recorded(text: str) -> "Scenario | None":
    """The scenario recorded in a results file, or ``None`` when it cannot be parsed.

    Fields this checkout's schema does not know (written by a newer version) are dropped first."""
    if not text:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return parse_scenario(data)
    except ScenarioError:
        pass
    known = {k: v for k, v in data.items() if k in Scenario.model_fields}
    for attempt in (known, {k: v for k, v in known.items() if k != "economics"}):
        try:
            return parse_scenario(attempt)
        except ScenarioError:
            continue
    return None
