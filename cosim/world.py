"""Build a mosaik 3.6 World from a validated scenario.

Every simulator is started as the scenario says (in-process ``python``, subprocess ``cmd``, or
``connect`` to HOST:PORT) and exposes one population entity. The builder wires them:

    households ─P,Q─▶ meters ─▶ recorder
        │  └──P,Q──▶ grid ───▶ recorder
        └──────────────────────▶ recorder
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass, field

import mosaik
import numpy as np

from cosim.population import build_population
from cosim.scenario import Scenario, SimulatorStart
from simulators.devices.params import HouseholdSpec

# simulator name -> (module, class); every module also runs as `python -m module HOST:PORT`
SIMULATORS = {
    "household": ("simulators.household", "HouseholdSim"),
    "meter": ("simulators.meter", "MeterSim"),
    "grid": ("simulators.grid", "GridSim"),
    "recorder": ("cosim.recorder", "RecorderSim"),
}


def sim_config(starts: dict[str, SimulatorStart]) -> dict:
    """mosaik sim_config for the simulators, honouring each one's start mode."""
    config = {}
    for name, (module, cls) in SIMULATORS.items():
        start = starts.get(name) or SimulatorStart()
        if start.mode == "python":
            config[name] = {"python": f"{module}:{cls}"}
        elif start.mode == "cmd":
            config[name] = {"cmd": f'"{sys.executable}" -m {module} %(addr)s', "posix": True}
        else:
            config[name] = {"connect": start.address}
    return config


def sim_seed(seed: int, name: str) -> int:
    """A simulator's own seed: stable per (scenario seed, simulator name)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


@dataclass
class BuiltWorld:
    world: mosaik.World
    until: int
    households: list[HouseholdSpec]
    populations: dict[str, str] = field(default_factory=dict)  # full entity id -> population name


def _model_attrs(factory, model: str) -> list[str]:
    """Recordable outputs of a model: META 'outputs' (our convention) or else all its attrs."""
    desc = factory.meta["models"][model]
    return list(desc.get("outputs", desc["attrs"]))


def make_world(scn: Scenario) -> mosaik.World:
    """An empty world: 1 tick = 1 ms, mosaik leaves the application's logging alone."""
    starts = {"household": scn.simulators.household, "meter": scn.simulators.meter,
              "grid": scn.simulators.grid}
    return mosaik.World(sim_config(starts), time_resolution=0.001, configure_logging=False,
                        skip_greetings=True)


def build_world(world: mosaik.World, scn: Scenario, provenance: dict, out_path: str, until_ms: int,
                progress: bool) -> BuiltWorld:
    """Start the scenario's simulators in *world*, create the populations and wire them."""
    built = BuiltWorld(world=world, until=until_ms, households=build_population(scn))
    start_iso = scn.start.isoformat()
    common = {"start": start_iso, "step_size": scn.step}
    entities = {}  # population name -> (entity, attrs it offers)

    hh_sim = world.start("household", **common, seed=sim_seed(scn.seed, "household"),
                         latitude=scn.location.latitude, longitude=scn.location.longitude)
    households = hh_sim.Households(households=[h.model_dump() for h in built.households])
    entities["households"] = (households, _model_attrs(hh_sim, "Households"))

    if scn.meters is not None:
        m_sim = world.start("meter", **common, seed=sim_seed(scn.seed, "meter"))
        meters = m_sim.Meters(accuracy_class=scn.meters.accuracy_class, interval=scn.meters.interval,
                              resolution_w=scn.meters.resolution_w)
        world.connect(households, meters, "P", "Q")
        entities["meters"] = (meters, _model_attrs(m_sim, "Meters"))

    if scn.grid is not None:
        g = scn.grid
        g_sim = world.start("grid", **common)
        mapping = None if g.mapping == "round_robin" else g.mapping
        grid = g_sim.Grid(network=g.network, households=[h.id for h in built.households], mapping=mapping,
                          engine=g.engine, line_limit_pct=g.line_limit_pct,
                          trafo_limit_pct=g.trafo_limit_pct, v_band=g.v_band)
        world.connect(households, grid, "P", "Q")
        entities["grid"] = (grid, _model_attrs(g_sim, "Grid"))

    _connect_recorder(world, scn, provenance, out_path, until_ms, progress, entities, built)
    return built


def _connect_recorder(world, scn, provenance, out_path, until_ms, progress, entities, built) -> None:
    every = scn.record.every or scn.step
    series, pop_of = [], {}
    wiring = []
    for pop, selection in scn.record.include.items():
        if pop not in entities:
            continue
        entity, offered = entities[pop]
        attrs = [a for a in offered if a != "flex"] if selection == "all" else list(selection)
        unknown = [a for a in attrs if a not in offered]
        if unknown:
            from cosim.scenario import ScenarioError

            raise ScenarioError([f"record.include.{pop}: unknown attribute(s) {', '.join(unknown)}; "
                                 f"{pop} offers {', '.join(offered)}"])
        pop_of[entity.full_id] = pop
        series += [(pop, a) for a in attrs]
        wiring.append((entity, attrs))
    built.populations = pop_of
    rec_sim = world.start("recorder", start=scn.start.isoformat(), step_size=every, until=until_ms,
                          progress=progress)
    recorder = rec_sim.Recorder(path=out_path, attrs=provenance, series=series, populations=pop_of,
                                event_streams=[], flush_every=scn.record.flush_every)
    for entity, attrs in wiring:
        world.connect(entity, recorder, *attrs)
