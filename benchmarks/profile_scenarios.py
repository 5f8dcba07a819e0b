"""Where the wall time of a bundled scenario goes: cProfile of one in-process run, split by layer.

Each layer is the cumulative time of its entry points (what mosaik calls in the simulators, or what
the runner calls), so nothing is counted twice; "mosaik scheduling" is what is left of the run loop
after the simulators' steps and data requests (asyncio, progress bookkeeping, input routing).
cProfile slows pure-Python code more than the solver's C code, so the shares are indicative: the
unprofiled wall time of the same run is printed beside them (``--no-wall`` skips that run).

Usage: python benchmarks/profile_scenarios.py [--until 1d] [--no-wall] [SCENARIO ...]
       (default: uc1_home uc3_physical uc3_substation; --until is the *evaluated* time: a scenario with
       ``evaluation: {warmup: 24h, cooldown: 24h}`` simulates the warm-up, 1 day and the part of the
       cool-down the window's numbers need for ``--until 1d`` (``uc3_substation``: 2.375 days);
       ``scale_10k/vorstadt1`` is the first substation of that group of a ``substations:`` scenario)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import yaml

from cosim.durations import parse_duration_ms
from cosim.runner import run_scenario
from cosim.scenario import load_scenario, parse_scenario, read_yaml
from cosim.substations import expand

# layer -> entry points (path suffix, function name); the first match of a function wins
LAYERS = {
    "HiGHS (LP solver, C)": [("simulators/mas/lp.py", "_solve_highs"), ("simulators/mas/lp.py", "_build_highs")],
    "MAS agents (Python around the LPs)": [("simulators/mas/mas_sim.py", "step"),
                                            ("simulators/mas/mas_sim.py", "get_data")],
    "telecom": [("simulators/telecom.py", "step"), ("simulators/telecom.py", "get_data")],
    "households (device models)": [("simulators/household.py", "step"), ("simulators/household.py", "get_data")],
    "meters": [("simulators/meter.py", "step"), ("simulators/meter.py", "get_data")],
    "grid power flow": [("simulators/grid.py", "step"), ("simulators/grid.py", "get_data")],
    "recording (HDF5)": [("cosim/recorder.py", "step"), ("cosim/results.py", "close")],
    "world set-up (simulators' init/create)": [("cosim/world.py", "build_world")],
}
STEPPED = {"households": "simulators/household.py", "meters": "simulators/meter.py", "grid": "simulators/grid.py",
           "mas": "simulators/mas/mas_sim.py", "telecom": "simulators/telecom.py", "recorder": "cosim/recorder.py"}


def _entries(stats: pstats.Stats, suffix: str, name: str) -> list:
    """Profile entries of *name* in the file ending with *suffix*, except those only called by a function
    of the same name in that file (e.g. the households' own ``step``, inside the simulator's ``step``)."""
    def here(f: str) -> bool:
        return f.replace("\\", "/").endswith(suffix)

    return [v for (f, _l, n), v in stats.stats.items()
            if n == name and here(f) and (not v[4] or any(not here(cf) or cn != name for cf, _cl, cn in v[4]))]


def breakdown(stats: pstats.Stats) -> tuple[float, dict[str, float], dict[str, int]]:
    """(total s, {layer: s}, {simulator: mosaik steps}) from a profile of ``run_scenario``."""
    total = sum(v[3] for v in _entries(stats, "cosim/runner.py", "run_scenario"))
    cum = {layer: sum(v[3] for s, n in eps for v in _entries(stats, s, n)) for layer, eps in LAYERS.items()}
    # the solver runs inside the MAS step: report it apart, not twice
    cum["MAS agents (Python around the LPs)"] -= cum["HiGHS (LP solver, C)"]
    cum["mosaik scheduling (the rest)"] = total - sum(cum.values())
    steps = {sim: sum(v[1] for v in _entries(stats, path, "step")) for sim, path in STEPPED.items()}
    return total, cum, {k: v for k, v in steps.items() if v}


def _load(name: str):
    """A bundled scenario, or ``SCENARIO/GROUP``: the first substation of a group of a ``substations:`` one."""
    if "/" not in name:
        return load_scenario(name)
    whole, group = name.split("/", 1)
    _, text = load_scenario(whole)
    sub = next(s for s in expand(read_yaml(text, whole)) if s.group == group)
    return parse_scenario(sub.data), yaml.safe_dump(sub.data, sort_keys=False)


def profile(name: str, until_ms: int, out: Path, wall: bool) -> None:
    scn, text = _load(name)
    stem = name.replace("/", "_")
    simulated_days = scn.run_ms(until_ms) / 86_400_000
    prof = cProfile.Profile()
    prof.enable()
    run_scenario(scn, text, out=out / f"{stem}.h5", until_ms=until_ms, progress=False)
    prof.disable()
    total, layers, steps = breakdown(pstats.Stats(prof))
    plain = None
    if wall:
        t0 = time.perf_counter()
        run_scenario(scn, text, out=out / f"{stem}_wall.h5", until_ms=until_ms, progress=False)
        plain = time.perf_counter() - t0
    evaluated_days = until_ms / 86_400_000
    print(f"\n{name}: {simulated_days:g} simulated day(s) for {evaluated_days:g} evaluated day(s)")
    print(f"  profiled wall {total:.1f} s" + (f", unprofiled wall {plain:.1f} s = {plain / simulated_days:.1f} s per "
                                              f"simulated day, {plain / evaluated_days:.1f} s per evaluated day"
                                              if plain is not None else ""))
    print(f"  {'layer':<42} {'s (profiled)':>12} {'share':>6}")
    for layer, s in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"  {layer:<42} {s:>12.1f} {s / total:>6.0%}")
    print("  mosaik steps: " + ", ".join(f"{k} {v}" for k, v in steps.items())
          + f" (total {sum(steps.values())}, {sum(steps.values()) / simulated_days:.0f} per simulated day)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=["uc1_home", "uc3_physical", "uc3_substation"])
    ap.add_argument("--until", default="1d", help="evaluated time per run (default 1d)")
    ap.add_argument("--no-wall", action="store_true", help="skip the unprofiled run")
    args = ap.parse_args()
    until = parse_duration_ms(args.until)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            profile(name, until, Path(tmp), not args.no_wall)


if __name__ == "__main__":
    main()
