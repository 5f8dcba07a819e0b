"""Lower bounds under the speed goals of issue 14: what a bundled scenario's LPs and mosaik steps cost alone.

For each scenario, runs of the same composition for ``--until`` (evaluated time):

* real: the scenario as ``cosim run`` runs it. HiGHS's CPU time is summed over its ``run`` calls (each
  solving thread's CPU time, so the solves on the helper threads count and no waiting does); the
  central reference solved ahead on its own thread is kept apart, and counts only where the negotiation's
  gap took it (a negotiation whose LP changed discards it).
* replay (twice, the faster taken): the same world (simulators, entities, connections), each
  simulator's ``step`` and ``get_data`` answered with what the real run returned at that call, so
  mosaik schedules the same steps and routes the same data with no model work at all. Checked: the same
  steps at the same times, and every recorded answer used.

Only the scheduler's run is timed (world set-up and closing the file are not). Two bounds, per
simulated day:

* HiGHS alone: the solves the results need (of the references solved ahead, those used), over the cores. No
  run that solves the same LPs with HiGHS is faster, whatever the scheduler, the steps or the grid.
* lower bound: ``max(mosaik alone, (mosaik alone + products + HiGHS CPU) / cores)``, with the power
  flows' dense products timed alone on the engine's own matrices, as many as the real run made (the
  same results need the same iterates; their rows could be split over the cores, so they count as CPU,
  not as serial time). No run with these mosaik 3.6 steps, LPs and power-flow iterates is faster:
  mosaik's loop is one thread, and every CPU second has to run on one of the cores.

``--anchor`` times the ecosystem anchor (``anchor_ecosystem.py``) first, so both read against the goals'
budgets (20× the anchor for ``uc3_substation``, 50× for ``uc3_physical``) measured in the same run.

``--batched`` measures the issue's other suggestion, one HiGHS model per district instead of one per
home: the homes' LPs of a district (``uc3_substation``'s shares and slots) as one block-diagonal model,
re-solved from its previous basis for a sequence of district prices, against the same LPs one by one.

Usage: python benchmarks/bench_floors.py [--until 1d] [--anchor] [--batched] [--highs-only] [SCENARIO ...]
       (default: uc3_physical uc3_substation; ``scale_10k/land`` is the first substation of that group;
       ``scale_10k`` runs the first substation of each group and estimates the whole run from them)
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import cosim.runner as runner
from cosim.durations import parse_duration_ms
from cosim.scenario import load_scenario
from cosim.world import SIMULATORS
from simulators.grid3ph_engine import Engine3ph, single_threaded_blas
from simulators.mas import host as host_module
from simulators.mas import lp as lp_module
from profile_scenarios import _load

DAY_MS = 86_400_000
CORES = os.cpu_count() or 1
THREAD_GROUPS = ("home-answers", "central-reference")  # the MAS host's worker threads (simulators/mas/host.py)


def thread_group(th: threading.Thread) -> str:
    """"simulation" for mosaik's thread, else the MAS host's pool the thread belongs to (or "other")."""
    if th is threading.main_thread():
        return "simulation"
    return next((g for g in THREAD_GROUPS if th.name.startswith(g)), "other")


def _simulator_classes() -> list[type]:
    """The simulators of the bundled scenarios (the recorder among them), not the HIL adapters."""
    import importlib

    return [getattr(importlib.import_module(m), c) for m, c in SIMULATORS.values() if not m.startswith("hil.")]


class Tape:
    """Records (mode "record") or plays back (mode "replay") every simulator's step and get_data answers
    (the simulators of the bundled scenarios; not the HIL adapters, whose answers come from devices)."""

    def __init__(self):
        self.mode = "record"
        self.calls: dict[tuple, list] = defaultdict(list)
        self.pos: dict[tuple, int] = defaultdict(int)
        self.steps: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)  # wall time inside each simulator (record mode)
        self.instances: dict[str, object] = {}
        self._saved: list = []

    def install(self) -> None:
        for cls in _simulator_classes():
            init, step, get_data = cls.init, cls.step, cls.get_data  # (mosaik_api_v3.Simulator has all three)
            self._saved += [(cls, name, vars(cls).get(name)) for name in ("init", "step", "get_data")]
            tape = self

            def t_init(self, sid, *a, _init=init, **kw):
                self._tape_sid = sid
                tape.instances[sid] = self
                return _init(self, sid, *a, **kw)

            def t_step(self, at, inputs, max_advance, _step=step):
                tape.steps[self._tape_sid] += 1
                return tape.call((self._tape_sid, "step"), at, lambda: _step(self, at, inputs, max_advance))

            def t_get_data(self, outputs, _get=get_data):
                return tape.call((self._tape_sid, "get_data"), None, lambda: _copy(_get(self, outputs)))

            cls.init, cls.step, cls.get_data = t_init, t_step, t_get_data

    def uninstall(self) -> None:
        for cls, name, fn in reversed(self._saved):
            if fn is None:  # inherited: drop the wrapper
                delattr(cls, name)
            else:
                setattr(cls, name, fn)

    def call(self, key: tuple, at: int | None, real):
        if self.mode == "record":
            t0 = time.perf_counter()
            value = real()
            self.seconds[key[0]] += time.perf_counter() - t0
            self.calls[key].append((at, value))
            return value
        i = self.pos[key]
        self.pos[key] = i + 1
        if i >= len(self.calls[key]):
            raise RuntimeError(f"replay diverged: {key} call {i} was not recorded")
        recorded_at, value = self.calls[key][i]
        if recorded_at != at:
            raise RuntimeError(f"replay diverged: {key} call {i} at {at}, recorded at {recorded_at}")
        return value

    def replay(self) -> None:
        self.mode, self.pos, self.steps = "replay", defaultdict(int), defaultdict(int)

    def check_replayed(self, steps: dict[str, int]) -> None:
        """The replay made the recorded steps and used every recorded answer."""
        if dict(self.steps) != steps:
            raise RuntimeError(f"replay stepped differently: {dict(self.steps)} vs {steps}")
        short = {k: (self.pos[k], len(v)) for k, v in self.calls.items() if self.pos[k] != len(v)}
        if short:
            raise RuntimeError(f"replay left recorded answers unused (used, recorded): {short}")


def _copy(out: dict) -> dict:
    """The entity and attribute levels of a get_data answer (they decide mosaik's triggers), copied: a
    simulator may hand out a cached dict it changes later."""
    return {eid: dict(attrs) for eid, attrs in out.items()}


class HighsClock:
    """CPU seconds in HiGHS's ``run`` and the number of runs, while in use: each calling thread's CPU
    time, so the solves on the helper threads count and waiting does not, nor does reading the solution.
    The central reference solved ahead on its own thread (``AgentHost._solve_ahead``) is kept apart in
    ``ahead``: a negotiation that changes its LP discards that solve, so only ``ahead_used``, the solves
    whose solution the gap took (``central_result`` of the host), is needed. ``by_thread``: the same CPU
    per :func:`thread_group`."""

    def __init__(self):
        self.cpu = self.ahead = self.ahead_used = 0.0
        self.by_thread: dict[str, float] = defaultdict(float)
        self.solves = 0
        self._lock = threading.Lock()
        self._module = lp_module._hc
        self._host = (host_module.solve_once, host_module.central_result)
        self._solving = threading.local()  # HiGHS CPU of the reference solve running on this thread

    @property
    def needed(self) -> float:
        """HiGHS CPU of the solves the results need: all but the references solved ahead and discarded."""
        return self.cpu + self.ahead_used

    def __enter__(self):
        clock, module = self, self._module

        class TimedHighs(module._Highs):
            def run(self):
                c0 = time.thread_time()
                try:
                    return super().run()
                finally:
                    dt = time.thread_time() - c0
                    group = thread_group(threading.current_thread())
                    ahead = group == "central-reference"
                    with clock._lock:
                        clock.by_thread[group] += dt
                        if ahead:
                            clock.ahead += dt
                            clock._solving.cpu = getattr(clock._solving, "cpu", 0.0) + dt
                        else:
                            clock.cpu += dt
                        clock.solves += 1

        class Module:  # the SciPy HiGHS module, with the timed solver class
            _Highs = TimedHighs

            def __getattr__(self, name):
                return getattr(module, name)

        solve_once, central_result = self._host

        def solve_ahead(*args, **kwargs):  # the host's solve_once: its solution carries its HiGHS CPU
            clock._solving.cpu = 0.0
            sol = solve_once(*args, **kwargs)
            sol.ahead_cpu = clock._solving.cpu
            return sol

        def used(clp, models, district, sol, seconds):  # the gap of a negotiation takes this solution
            with clock._lock:
                clock.ahead_used += getattr(sol, "ahead_cpu", 0.0)
            return central_result(clp, models, district, sol, seconds)

        lp_module._hc = Module()
        host_module.solve_once, host_module.central_result = solve_ahead, used
        return self

    def __exit__(self, *exc):
        lp_module._hc = self._module
        host_module.solve_once, host_module.central_result = self._host


def power_flow_products(tape: Tape) -> float:
    """Seconds the three-phase power flows' dense products take alone: per iteration one product with
    the active load nodes' impedance matrix, per converged solve one more and one with the other nodes'
    rows (``Engine3ph._solve``; the engine's own arrays as the run left them, hot in the cache, one BLAS
    thread as in the engine). The same results need the same iterates."""
    total = 0.0
    for sim in tape.instances.values():
        for model in getattr(sim, "models", {}).values():
            eng = getattr(model, "engine", None)
            if not isinstance(eng, Engine3ph):
                continue
            x = eng.v_L[eng.active.nodes]
            with single_threaded_blas():
                per = []
                for Z in (eng.active.Z, eng.active.Z_rest):
                    if Z is None or not Z.size:
                        per.append(0.0)
                        continue
                    Z @ x
                    t0 = time.perf_counter()
                    for _ in range(200):
                        Z @ x
                    per.append((time.perf_counter() - t0) / 200)
            total += eng.stats["iterations"] * per[0] + eng.stats["solved"] * (per[0] + per[1])
    return total


def _timed_run(scn, text, out: Path, until: int) -> float:
    """Seconds of the scheduler's run (runner._drive) of one run_scenario."""
    drive, spent = runner._drive, []

    async def timed(*a, **kw):
        t0 = time.perf_counter()
        try:
            return await drive(*a, **kw)
        finally:
            spent.append(time.perf_counter() - t0)

    runner._drive = timed
    try:
        runner.run_scenario(scn, text, out=out, until_ms=until, progress=False)
    finally:
        runner._drive = drive
    return spent[0]


@dataclass
class Floors:
    """One scenario's measurements (seconds over the run, ``sim_days`` simulated days)."""
    sim_days: float
    steps: dict[str, int]        # mosaik steps per simulator, equal in the real run and the replay
    real: float                  # the real run's scheduler
    inside: dict[str, float]     # wall time inside each simulator's step and get_data, real run
    replay: float                # mosaik alone (the fastest of the replays)
    products: float              # the power flows' dense products alone
    highs: float                 # HiGHS CPU on all threads, the central reference solved ahead excepted
    ahead: float                 # HiGHS CPU of the central reference solved ahead
    ahead_used: float            # of it, the solves whose solution a negotiation's gap took
    highs_needed: float          # HighsClock.needed: the HiGHS CPU the results need
    solves: int

    def highs_alone(self, cores: int = CORES) -> float:
        """No run with these LPs is faster (whatever the scheduler, the steps or the grid engine)."""
        return self.highs_needed / cores

    def bound(self, cores: int = CORES) -> float:
        """No run with these steps, LPs and power-flow iterates is faster: mosaik's loop is one thread,
        and every CPU second has to run on one of the cores (the products can be split over them)."""
        return max(self.replay, (self.replay + self.products + self.highs_needed) / cores)


def measure(name: str, until: int, tmp: Path, replays: int = 2) -> Floors:
    """The real run and its replays of one scenario (or ``SCENARIO/GROUP``)."""
    scn, text = _load(name)
    tape = Tape()
    tape.install()
    try:
        with HighsClock() as highs:
            real = _timed_run(scn, text, tmp / "real.h5", until)
        recorded = dict(tape.steps)
        products = power_flow_products(tape)  # the real run's engines (the replay makes new ones)
        tape.instances.clear()
        replay = []
        for _ in range(replays):
            tape.replay()
            gc.collect()  # not the real run's garbage in the replay's time
            replay.append(_timed_run(scn, text, tmp / "replay.h5", until))
            tape.check_replayed(recorded)
    finally:
        tape.uninstall()
    return Floors(scn.run_ms(until) / DAY_MS, recorded, real, dict(tape.seconds), min(replay), products, highs.cpu,
                  highs.ahead, highs.ahead_used, highs.needed, highs.solves)


def floors(name: str, until: int, tmp: Path, anchor_day: float | None) -> Floors:
    """Measure and print the floors of one scenario (or one substation)."""
    f = measure(name, until, tmp)
    per = 1.0 / f.sim_days
    steps = sum(f.steps.values())
    print(f"\n{name}: {f.sim_days:g} simulated day(s), {steps} mosaik steps ({steps * per:.0f} per simulated day), "
          f"{f.solves} HiGHS solves")
    inside = sorted(f.inside.items(), key=lambda kv: -kv[1])
    rows = [("real run (scheduler)", f.real)] + [(f"  in {sid}", s) for sid, s in inside] + [
            ("  mosaik around them", f.real - sum(f.inside.values())),
            ("replay: mosaik alone, no model work", f.replay),
            ("power flows' dense products alone", f.products),
            ("HiGHS CPU (all threads)", f.highs),
            ("HiGHS CPU, central reference solved ahead", f.ahead),
            ("  of it used by the negotiations' gaps", f.ahead_used),
            (f"HiGHS alone over {CORES} cores, {name}", f.highs_alone()),
            (f"lower bound of {name}", f.bound())]
    for label, s in rows:
        ratio = f" = {anchor_day / (s * per):.1f}x the anchor at best" \
            if anchor_day and s > 0 and ("bound" in label or "alone over" in label) else ""
        print(f"  {label:<46} {s:7.2f} s  {s * per:6.2f} s per simulated day{ratio}")
    return f


def whole(name: str, until: int, tmp: Path) -> None:
    """A ``substations:`` scenario: the first substation of each group, its figures taken for all the
    group's substations (an estimate: each substation has its own seed, so its own negotiations). The
    substations are independent processes, so the whole run needs their summed CPU over the cores."""
    counts = {g.name: g.count for g in load_scenario(name)[0].substations}
    cpu = highs = 0.0
    for group, count in counts.items():
        f = floors(f"{name}/{group}", until, tmp, None)
        cpu += count * (f.replay + f.products + f.highs_needed)
        highs += count * f.highs_needed
    print(f"\n{name}: {sum(counts.values())} substations, estimated from the first of each group: HiGHS alone "
          f"{highs / CORES / 60:.1f} min over {CORES} cores; lower bound, sum over groups of count x (mosaik alone "
          f"+ products + HiGHS CPU) / {CORES} cores: {cpu / CORES:.0f} s = {cpu / CORES / 60:.1f} min")


def batched(districts: int = 3, households: int = 49, prices: int = 40) -> tuple[float, float, float]:
    """One block-diagonal HiGHS model per district against one model per home, same prices, one thread."""
    import scipy.sparse as sp

    from bench_mas import START, uc3_specs
    from simulators.devices.common import Clock
    from simulators.mas.forecast import HouseholdKnowledge
    from simulators.mas.home_lp import HomeModel
    from simulators.mas.tariff import Tariff

    K, slot = 48, 1800  # uc3_substation: 24-h horizon in 30-min slots
    rng = np.random.default_rng(0)
    t_one = t_block = 0.0
    it_one = it_block = n_homes = 0
    worst = 0.0
    for d in range(districts):
        specs = uc3_specs(households, f"d{d + 1}", 10 + d)
        kn = HouseholdKnowledge(specs, START, 0)
        m0 = Clock(START).local_min(0)
        models = []
        for s in specs:
            m = HomeModel(s, K, slot, Tariff(), community=True)
            if not m.simple:  # the others are solved in closed form, no LP
                m.update(m0, {}, kn.forecast(s.id, 0, K, slot))
                m.solve(own=True)
                models.append(m)
        n_homes += len(models)
        lps = [m._lp for m in models]
        block = lp_module.LP(sp.block_diag([p.A for p in lps], format="csc"), np.concatenate([p.c for p in lps]),
                             *(np.concatenate([getattr(p, a) for p in lps]) for a in ("lo", "hi", "lb", "ub")))
        block.solve()
        for _ in range(prices):  # a district price: a random walk around the tariff, as the LFA's rounds move it
            lam = 0.05 * np.cumsum(rng.normal(0, 0.02, K))
            costs = [m.priced_cost(lam)[: m.n_main] for m in models]
            t0 = time.perf_counter()
            obj = 0.0
            for p, c in zip(lps, costs):
                p.set_cost(c)
                s = p.solve()
                obj += s.obj
                it_one += s.iterations
            t_one += time.perf_counter() - t0
            t0 = time.perf_counter()
            block.set_cost(np.concatenate(costs))
            s = block.solve()
            t_block += time.perf_counter() - t0
            it_block += s.iterations
            worst = max(worst, abs(s.obj - obj) / max(abs(obj), 1.0))
    n = districts * prices
    print(f"\nbatched LPs: {districts} districts, {n_homes} homes with an LP, {prices} prices each, one thread")
    print(f"  one model per home           {1e3 * t_one / n:6.2f} ms per district price, {it_one / n:5.0f} simplex "
          f"iterations")
    print(f"  one block-diagonal model     {1e3 * t_block / n:6.2f} ms per district price, {it_block / n:5.0f} simplex "
          f"iterations ({t_block / t_one:.2f}x the time; objectives equal to {worst:.1e} relative)")
    return t_one, t_block, worst


def highs_only(name: str, until: int, tmp: Path) -> float:
    """The real run alone (no replay, which holds every answer in memory): HiGHS alone per simulated
    day, for runs too long to replay, and what it means for a year (366 simulated days)."""
    scn, text = _load(name)
    with HighsClock() as highs:
        real = _timed_run(scn, text, tmp / "real.h5", until)
    days = scn.run_ms(until) / DAY_MS
    alone = highs.needed / CORES / days
    print(f"\n{name}: {days:g} simulated day(s), real run (scheduler) {real:.1f} s = {real / days:.2f} s per "
          f"simulated day, {highs.solves} HiGHS solves")
    print(f"  HiGHS CPU {highs.cpu:.2f} s, central reference solved ahead {highs.ahead:.2f} s "
          f"(used {highs.ahead_used:.2f} s)")
    print(f"  HiGHS alone over {CORES} cores: {alone:.2f} s per simulated day; 366 simulated days: "
          f"{alone * 366 / 60:.1f} min (without the references: {highs.cpu / CORES / days * 366 / 60:.1f} min)")
    return alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["uc3_physical", "uc3_substation"])
    ap.add_argument("--until", default="1d", help="evaluated time per run (default 1d)")
    ap.add_argument("--anchor", action="store_true", help="time the ecosystem anchor first (needs .[bench])")
    ap.add_argument("--batched", action="store_true", help="also one HiGHS model per district vs one per home")
    ap.add_argument("--highs-only", action="store_true",
                    help="only the real run and HiGHS alone (no replay: for long --until)")
    args = ap.parse_args()
    if args.highs_only:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.scenarios:
                highs_only(name, parse_duration_ms(args.until), Path(tmp))
        return
    anchor_day = None
    if args.anchor:
        from anchor_ecosystem import run_anchor

        anchor_day = run_anchor(1)["wall_s"]
        print(f"ecosystem anchor: {anchor_day:.1f} s per day; 20x = {anchor_day / 20:.2f} s, "
              f"50x = {anchor_day / 50:.2f} s per day")
    until = parse_duration_ms(args.until)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            if "/" not in name and load_scenario(name)[0].substations:
                whole(name, until, Path(tmp))
            else:
                floors(name, until, Path(tmp), anchor_day)
    if args.batched:
        batched()


if __name__ == "__main__":
    main()
