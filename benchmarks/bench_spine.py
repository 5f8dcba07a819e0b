"""Wall time of `cosim run` for 1, 100 and 1000 households (PV 40 %), meters and HDF5 recording,
1 day at 1-min steps, everything in-process. Usage: python benchmarks/bench_spine.py [N ...]"""

import sys
import tempfile
import time
from pathlib import Path

import yaml

from cosim.scenario import parse_scenario
from cosim.runner import run_scenario


def scenario(n: int) -> dict:
    return {
        "name": f"bench_{n}",
        "start": "2026-06-15T00:00:00+02:00",
        "duration": "1d",
        "step": "1min",
        "seed": 1,
        "districts": [{"name": "d1", "households": n, "shares": {"pv": 0.4}}],
        "meters": {"accuracy_class": 1.0},
    }


def main(sizes: list[int]) -> None:
    print(f"{'households':>10} {'steps':>6} {'wall s':>8} {'file MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            data = scenario(n)
            out = Path(tmp) / f"b{n}.h5"
            t0 = time.perf_counter()
            res = run_scenario(parse_scenario(data), yaml.safe_dump(data), out=out, progress=False)
            wall = time.perf_counter() - t0
            print(f"{n:>10} {res.steps:>6} {wall:>8.2f} {out.stat().st_size / 1e6:>8.1f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 100, 1000])
