"""Wall time of bundled scenarios, in-process, no progress bar. Targets on the 2-core dev machine:
uc3_physical (146 households, meters, grid, 1 day at 1 min) <= 8 s; uc3_substation (the same with
3 LFAs, DSO, telecom and MAS) <= 15 s.

Usage: python benchmarks/bench_scenarios.py [SCENARIO[:CONTROL] ...]   (default: uc3_physical uc3_substation)
"""

import sys
import tempfile
import time
from pathlib import Path

from cosim.runner import run_scenario
from cosim.scenario import load_scenario


def main(names: list[str]) -> None:
    print(f"{'scenario':<28} {'steps':>6} {'wall s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in names:
            name, _, control = spec.partition(":")
            scn, text = load_scenario(name, {"control.mode": control} if control else None)
            t0 = time.perf_counter()
            res = run_scenario(scn, text, out=Path(tmp) / f"{name}.h5", progress=False)
            print(f"{spec:<28} {res.steps:>6} {time.perf_counter() - t0:>8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["uc3_physical", "uc3_substation"])
