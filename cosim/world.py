"""Build a mosaik 3.6 World from a validated scenario.

Every simulator is started as the scenario says (in-process ``python``, subprocess ``cmd``, or
``connect`` to HOST:PORT) and exposes one population entity. The builder wires them:

    households ─P,Q─▶ meters ───────────────▶ recorder
        │  └──P,Q──▶ grid ─────────────────▶ recorder
        ◀─set points (time-shifted)─ device server ◀─ households, meters
    real meters (HIL) ─P,Q─▶ grid; ─P─▶ rule controller ─P_bat_set─▶ real gateways (HIL)

Real (HIL) homes are left out of the simulated populations; their meters' readings are recorded
under the same population (``meters``) and device ids, so consumers cannot tell them apart.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from importlib import import_module

import mosaik
import numpy as np

from cosim.population import build_population
from cosim.scenario import Scenario, ScenarioError, SimulatorStart
from simulators.devices.common import start_text
from simulators.devices.params import HouseholdSpec
from simulators import meter
from simulators.vocabulary import PHASE_POWERS, PHASE_VOLTAGES, SETPOINTS

# simulator name -> (module, class); every module also runs as `python -m module HOST:PORT`
SIMULATORS = {
    "household": ("simulators.household", "HouseholdSim"),
    "meter": ("simulators.meter", "MeterSim"),
    "grid": ("simulators.grid", "GridSim"),
    "rule": ("simulators.rule_controller", "RuleControllerSim"),
    "mas": ("simulators.mas.mas_sim", "MASSim"),
    "telecom": ("simulators.telecom", "TelecomSim"),
    "hil_meter": ("hil.meter_adapter", "ModbusMeters"),
    "hil_gateway": ("hil.gateway_adapter", "ModbusGateways"),
    "device_server": ("hil.device_server_sim", "DeviceServerSim"),
    "realtime": ("hil.realtime", "RealtimeMonitor"),
    "recorder": ("cosim.recorder", "RecorderSim"),
}
DEVICE_EVENTS = "devices"  # event stream of the real devices' link transitions, echoed on the console


def sim_config(starts: dict[str, SimulatorStart]) -> dict:
    """mosaik sim_config for the simulators, honouring each one's start mode."""
    config = {}
    for name, (module, cls) in SIMULATORS.items():
        start = starts.get(name) or SimulatorStart()
        if start.mode == "python":
            config[name] = {"python": f"{module}:{cls}"}
        elif start.mode == "cmd":
            # mosaik_api_v3 logs INFO unless told: follow this process's level (loguru's LOGURU_LEVEL)
            level = os.environ.get("LOGURU_LEVEL", "WARNING").lower()
            config[name] = {"cmd": f'"{sys.executable}" -m {module} %(addr)s --log-level {level}', "posix": True}
        else:
            config[name] = {"connect": start.address}
    return config


def sim_seed(seed: int, name: str) -> int:
    """A simulator's own seed: stable per (scenario seed, simulator name)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def noise_seed(scn, name: str) -> int:
    """Seed of a noise stream (telecom, meter noise, an emulated device): the scenario's own for
    ``replicate: 0``, an independent one per further replicate (same households and weather)."""
    return sim_seed(scn.seed, name if scn.replicate == 0 else f"{name}/replicate {scn.replicate}")


@dataclass
class BuiltWorld:
    until: int
    households: list[HouseholdSpec]
    real_homes: list[str] = field(default_factory=list)
    # population -> (entity, recorded attrs, population recorded under, event stream or None)
    entities: dict[str, tuple] = field(default_factory=dict)


START_TIMEOUT_S = 60


def make_world(scn: Scenario) -> mosaik.World:
    """An empty world: 1 tick = 1 ms, mosaik leaves the application's logging alone.

    A subprocess simulator gets START_TIMEOUT_S to connect (mosaik's default 10 s is less than importing
    pandapower takes on a loaded 2-core machine: 12 s measured); one that never connects fails the run."""
    return mosaik.World(sim_config(dict(scn.simulators)), mosaik_config={"start_timeout": START_TIMEOUT_S},
                        time_resolution=0.001, configure_logging=False, skip_greetings=True)


def _outputs(factory, model: str) -> list[str]:
    """Recordable outputs of a model: META 'outputs' (our convention) or else all its attrs."""
    return _meta_outputs(factory.meta, model)


def _meta_outputs(meta: dict, model: str) -> list[str]:
    """... but never the ``events`` stream (recorded as events, see :meth:`_Builder.add`)."""
    desc = meta["models"][model]
    return [a for a in desc.get("outputs", desc["attrs"]) if a != "events"]


# populations whose recordable attributes are fixed by their simulator's META (checked before a run)
_FIXED_OUTPUTS = {"households": ("household", "Households"), "meters": ("meter", "Meters"), "grid": ("grid", "Grid"),
                  "grid3ph": ("grid", "Grid3ph")}


def _three_phase(scn: Scenario) -> bool:
    """The homes have a phase (per-phase powers and meter readings) only under the three-phase grid."""
    return scn.grid is not None and scn.grid.engine == "fast3ph"


def _unrecorded(scn: Scenario) -> tuple[str, ...]:
    """Outputs of the households and meters that have no values in *scn*: the per-phase ones without the
    three-phase grid."""
    return () if _three_phase(scn) else tuple(PHASE_POWERS)


# Every population a world records (:class:`_Builder`'s names; real meters are recorded as meters): a name
# outside them is a misspelling, refused by validate (one of them the scenario lacks: when the world is built).
RECORDED_POPULATIONS = ("households", "meters", "grid", "gateways", "controller", "device_server", "agents", "lfa",
                        "dso", "telecom", "meter_telecom", "realtime")


def check_record_include(scn: Scenario, source: str) -> None:
    """Refuse unknown populations and attributes in ``record.include`` before any simulator starts (what the
    recorder checks again against the built world), in lines that name *source*."""
    problems = [f"record.include.{pop}: no such population (recorded populations: {', '.join(RECORDED_POPULATIONS)})"
                for pop in scn.record.include if pop not in RECORDED_POPULATIONS]
    for pop, selection in scn.record.include.items():
        if selection == "all" or pop not in _FIXED_OUTPUTS:
            continue
        unbalanced = pop == "grid" and _three_phase(scn)
        sim, model = _FIXED_OUTPUTS["grid3ph" if unbalanced else pop]
        offered = _meta_outputs(import_module(SIMULATORS[sim][0]).META, model)
        if pop in ("households", "meters"):
            offered = [a for a in offered if a not in _unrecorded(scn)]
        problems += _unknown_attrs(pop, selection, offered)
    if problems:
        raise ScenarioError([f"{source}: {p}" for p in problems])


def _unknown_attrs(pop: str, selection, offered) -> list[str]:
    """The line refusing the attributes of ``record.include.<pop>`` that *pop* does not offer (or none)."""
    unknown = [a for a in selection if a not in offered]
    why = " (per-phase powers need a three-phase grid: grid.engine fast3ph)" if set(unknown) & set(PHASE_POWERS) else ""
    return [f"record.include.{pop}: unknown attribute(s) {', '.join(unknown)}{why}; "
            f"{pop} offers {', '.join(offered)}"] if unknown else []


class _Builder:
    def __init__(self, world: mosaik.World, scn: Scenario, until: int):
        self.world, self.scn = world, scn
        self.common = {"start": scn.start.isoformat(), "step_size": scn.step}
        try:
            households = build_population(scn)
        except ValueError as exc:
            raise ScenarioError([str(exc)]) from None
        self.built = BuiltWorld(until=until, households=households)
        self.factories = {}

    def add(self, pop: str, name: str, model: str, sim_params: dict | None, outputs=None, record_as=None,
            events=None, drop=(), **entity_params):
        """Create one population entity; *sim_params* None = reuse the simulator already started.

        *record_as*: the population it is recorded under (default *pop*; several entities may share
        one); *events*: the event stream its ``events`` output is recorded in; *drop*: outputs it has
        no values of in this world (not recorded)."""
        if sim_params is None:
            factory = self.factories[name]
        else:
            factory = self.factories[name] = self.world.start(name, **sim_params)
        try:
            entity = getattr(factory, model)(**entity_params)
        except ValueError as exc:  # in-process simulators reject bad parameters with ValueError
            raise ScenarioError([f"{pop}: {exc}"]) from None
        except OSError as exc:  # e.g. the device server's port is taken
            raise ScenarioError([f"{pop}: {exc.strerror or exc}"]) from None
        recorded = [a for a in (outputs if outputs is not None else _outputs(factory, model)) if a not in drop]
        self.built.entities[pop] = (entity, recorded, record_as or pop, events)
        return entity

    def connect_shifted(self, src, dest, *attrs: str) -> None:
        """Cycle-closing connection: *dest* gets *src*'s last values (empty mappings at first)."""
        self.world.connect(src, dest, *attrs, time_shifted=True, initial_data={a: {} for a in attrs})

    def physical(self) -> None:
        scn, b = self.scn, self.built
        real = set(b.real_homes)
        simulated = [h for h in b.households if h.id not in real]
        self.households = None
        if simulated:
            self.households = self.add(
                "households", "household", "Households",
                {**self.common, "start": start_text(scn.start), "seed": sim_seed(scn.seed, "household"),
                 "latitude": scn.location.latitude,
                 "longitude": scn.location.longitude},
                drop=_unrecorded(scn), households=[h.model_dump() for h in simulated])
        self.meters = None
        if scn.meters is not None and self.households is not None:
            m = scn.meters
            phases = meter.PHASES if _three_phase(scn) else []
            self.meters = self.add("meters", "meter", "Meters", {**self.common, "seed": noise_seed(scn, "meter")},
                                   drop=_unrecorded(scn),
                                   accuracy_class=m.accuracy_class, interval=m.interval,
                                   resolution_w=m.resolution_w, exclude=sorted(real))
            self.world.connect(self.households, self.meters, "P", "Q", *phases)
        self.grid = None
        if scn.grid is not None:
            g = scn.grid
            ids = [h.id for h in b.households]
            mapping = None if g.mapping == "round_robin" else g.mapping
            limits = dict(line_limit_pct=g.line_limit_pct, trafo_limit_pct=g.trafo_limit_pct, v_band=g.v_band)
            if g.engine == "fast3ph":
                self.grid = self.add("grid", "grid", "Grid3ph", self.common, network=g.network, households=ids,
                                     mapping=mapping, phases={h.id: h.phase for h in b.households},
                                     network_loads=g.network_loads, **limits)
            else:
                self.grid = self.add("grid", "grid", "Grid", self.common, network=g.network, households=ids,
                                     mapping=mapping, engine=g.engine, **limits)
            if self.households is not None:
                phase_attrs = tuple(PHASE_POWERS) if g.engine == "fast3ph" else ()
                self.world.connect(self.households, self.grid, "P", "Q", *phase_attrs)

    def hil(self) -> None:
        hil = self.scn.hil
        if hil is None:
            return
        if hil.meters:
            # recorded under the population 'meters' too, with quality and age
            real_meters = self.add("hil_meters", "hil_meter", "ModbusMeters", self.common, record_as="meters",
                                   events=DEVICE_EVENTS, devices=[d.model_dump() for d in hil.meters])
            if self.grid is not None:
                self.world.connect(real_meters, self.grid, "P", "Q")
            if hil.gateways:
                gateways = self.add("gateways", "hil_gateway", "ModbusGateways", self.common,
                                    events=DEVICE_EVENTS, devices=[d.model_dump() for d in hil.gateways])
                if hil.controller == "self_consumption":
                    rule = self.add("controller", "rule", "SelfConsumption", self.common,
                                    ids=[g.id for g in hil.gateways], p_max_kw=5.0)
                    self.world.connect(real_meters, rule, "P")
                    self.world.connect(rule, gateways, "P_bat_set")
        if hil.device_server is not None:
            ds = hil.device_server
            server = self.add("device_server", "device_server", "DeviceServer", self.common,
                              devices={k: v.model_dump() for k, v in ds.devices.items()},
                              host=ds.host, port=ds.port, tls_cert=ds.tls_cert, tls_key=ds.tls_key)
            three = _three_phase(self.scn)
            self.world.connect(self.households, server, "P", "Q", "P_bat", "soc", "P_pv", "P_ev", "soc_ev",
                               *(PHASE_POWERS if three else ()))
            if self.meters is not None:
                self.world.connect(self.meters, server, "E_imp", "E_exp", "P_15")
            if self.grid is not None:  # each served meter's voltages are its household's at its bus
                self.world.connect(self.grid, server, "V", *(PHASE_VOLTAGES if three else ()))
            self.connect_shifted(server, self.households, *SETPOINTS)

    def control(self) -> None:
        """Home agents and LFA per district, the DSO agent, and the telecom carrying their messages."""
        scn, c = self.scn, self.scn.control
        if c is None:
            return
        from simulators.mas.mas_sim import DSO_OUT, HOME_OUT, LFA_OUT

        real = set(self.built.real_homes)
        homes: dict[str, list] = {}
        for h in self.built.households:
            if h.id not in real:
                homes.setdefault(h.id.split(".")[0], []).append(h)
        tariff = scn.economics.tariff.model_dump()
        mas = {"start": start_text(scn.start), "seed": sim_seed(scn.seed, "household"),
               "latitude": scn.location.latitude, "longitude": scn.location.longitude,
               "K": c.horizon // c.slot, "slot_s": c.slot // 1000, "replan_s": c.replan // 1000,
               "mode": c.mode, "loopback": scn.telecom is None, "reference": c.reference,
               "forecast_noise": c.forecast_noise, "end": scn.duration, "stop": self.built.until,
               "tie_break": c.tie_break, "tie_break_seed": noise_seed(scn, "tie_break"),
               "meter_lag_ms": scn.step}  # meter registers reach the agents one physical step late (shifted)
        agents_all = []
        for d in scn.districts:
            if d.name not in homes:
                continue
            agents = self.add(f"agents.{d.name}", "mas", "HomeAgents", mas if not agents_all else None,
                              outputs=[a for a in HOME_OUT if a not in ("app_start", "plan_src")],
                              record_as="agents", events="flex", district=d.name,
                              households=[h.model_dump() for h in homes[d.name]], tariff=tariff,
                              fallback_ms=c.fallback)
            lfa = self.add(f"lfa.{d.name}", "mas", "LFA", None, outputs=LFA_OUT, record_as="lfa", events="flex",
                           district=d.name, objective=c.lfa.objective.model_dump(), tariff=tariff,
                           tol=c.lfa.tol, max_rounds=c.lfa.max_rounds, round_timeout_ms=c.lfa.round_timeout,
                           neg_timeout_ms=c.lfa.negotiation_timeout, stall_tol=c.lfa.stall_tol)
            # agents decide on the last measurements; their set points act at once
            self.connect_shifted(self.households, agents, "soc", "soc_ev", "T_in")
            if self.meters is not None:
                self.connect_shifted(self.meters, agents, "E_imp", "E_exp")
            if self.grid is not None:
                self.connect_shifted(self.grid, lfa, "P_trafo")
            self.world.connect(agents, self.households, *SETPOINTS, "app_start")
            agents_all += [agents, lfa]
        if not agents_all:
            return
        if scn.dso is not None:
            o = scn.dso
            dso = self.add("dso", "mas", "DSO", None, outputs=DSO_OUT, events="flex",
                           districts=[d.name for d in scn.districts if d.name in homes],
                           trafo_limit_kw=o.trafo_limit_kw, trafo_limit_pct=o.trafo_limit_pct,
                           lookahead_slots=o.lookahead_slots,
                           lead_slots=o.lead_slots, margin=o.margin, price_max=o.price_max,
                           penalty=o.penalty, offer_timeout_ms=o.offer_timeout)
            self.connect_shifted(self.grid, dso, "P_trafo", "trafo_loading")
            if self.meters is not None:
                self.connect_shifted(self.meters, dso, "E_imp", "E_exp")
            agents_all.append(dso)
        if scn.telecom is not None:
            t = scn.telecom
            telecom = self.add("telecom", "telecom", "Telecom",
                               {"start": scn.start.isoformat(), "seed": noise_seed(scn, "telecom")},
                               outputs=["sent", "delivered", "lost", "bytes_sent", "latency_mean_ms"],
                               events="messages", endpoints=t.endpoints, default=t.default,
                               overrides=t.overrides, domains=t.domains, max_retries=t.max_retries,
                               quantum_ms=t.quantum_ms)
            for entity in agents_all:
                self.world.connect(entity, telecom, "outbox")
            # one MAS entity takes the whole inbox: all agents live in that one simulator
            self.world.connect(telecom, agents_all[0], "inbox", time_shifted=1)
            if t.meters is not None and self.meters is not None:
                # meter readings on their own network (e.g. PLC): traffic, latency and losses recorded
                meter_net = self.add("meter_telecom", "telecom", "Telecom", None,
                                     outputs=["sent", "delivered", "lost", "latency_mean_ms"],
                                     events="meter_readings", default=t.meters.technology,
                                     overrides=t.overrides, quantum_ms=t.meters.quantum_ms,
                                     readings={"bytes": t.meters.bytes, "every": t.meters.every})
                self.world.connect(self.meters, meter_net, ("E_imp", "readings"))

    def realtime(self, rt_factor: float | None) -> None:
        if rt_factor is None:
            return
        threshold = self.scn.realtime.threshold_ms if self.scn.realtime else 100.0
        self.add("realtime", "realtime", "RealtimeMonitor", self.common, rt_factor=rt_factor, threshold_ms=threshold)

    def check_real_homes(self) -> None:
        hil = self.scn.hil
        if hil is None:
            return
        known = {h.id for h in self.built.households}
        for i, m in enumerate(hil.meters):
            if m.id not in known:
                raise ScenarioError([f"hil.meters[{i}].id: {m.id!r} is not a household of the scenario "
                                     f"(ids look like {next(iter(sorted(known)))!r})"])
        for i, d in enumerate(hil.device_server.devices if hil.device_server else {}):
            if d not in known:
                raise ScenarioError([f"hil.device_server.devices.{d}: not a household of the scenario"])
        self.built.real_homes = [m.id for m in hil.meters]


def build_world(world: mosaik.World, scn: Scenario, provenance: dict, out_path: str, until_ms: int,
                progress: bool, rt_factor: float | None = None) -> BuiltWorld:
    """Start the scenario's simulators in *world*, create the populations and wire them."""
    b = _Builder(world, scn, until_ms)
    b.check_real_homes()
    b.physical()
    b.hil()
    b.control()
    b.realtime(rt_factor)
    _connect_recorder(world, scn, provenance, out_path, until_ms, progress, b.built)
    return b.built


def _connect_recorder(world, scn, provenance, out_path, until_ms, progress, built: BuiltWorld) -> None:
    every = scn.record.every or scn.step
    include = dict(scn.record.include)
    for extra in ("gateways", "controller", "realtime", "agents", "lfa", "dso", "telecom", "meter_telecom"):
        include.setdefault(extra, "all")
    present = {rec for _, _, rec, _ in built.entities.values()}
    if "include" in scn.record.model_fields_set:
        unknown = sorted(set(scn.record.include) - present)
        if unknown:
            raise ScenarioError([f"record.include.{p}: no such population in this scenario "
                                 f"(there are: {', '.join(sorted(present))})" for p in unknown])
    series, pop_of, wiring, event_sources = [], {}, [], {}
    for pop, (entity, offered, name, events) in built.entities.items():
        if events:
            event_sources[entity.full_id] = events
        selection = include.get(name)
        if selection is None:
            continue
        if selection == "all":
            attrs = offered
        elif pop == name:
            problems = _unknown_attrs(name, selection, offered)
            if problems:
                raise ScenarioError(problems)
            attrs = list(selection)
        else:  # a second source of the population (e.g. real meters): what it has of the selection
            attrs = [a for a in selection if a in offered] + [a for a in ("quality", "age") if a in offered]
        pop_of[entity.full_id] = name
        series += [(name, a) for a in attrs if (name, a) not in series]
        wiring.append((entity, attrs))
    rec_sim = world.start("recorder", start=scn.start.isoformat(), step_size=every, until=until_ms,
                          progress=progress, timezone=scn.timezone)
    grid = built.entities.get("grid")
    info = (getattr(grid[0], "extra_info", None) or {}) if grid else {}
    # the transformers' ratings, the base of their loading (Results.trafo_kva), and the LV buses the grid judges
    # voltages on (Results.monitored_buses)
    provenance = {**provenance, **{k: json.dumps(info[k]) for k in ("trafo_kva", "monitored_buses") if k in info}}
    recorder = rec_sim.Recorder(path=out_path, attrs=provenance, series=series, populations=pop_of,
                                event_sources=event_sources, flush_every=scn.record.flush_every,
                                echo=[DEVICE_EVENTS], aggregate_ms=scn.record.aggregate)
    for entity, attrs in wiring:
        if attrs:
            world.connect(entity, recorder, *attrs)
    for pop, (entity, _, _, events) in built.entities.items():
        if events:
            world.connect(entity, recorder, "events")
