"""Real-time HIL run: 1 s steps, 20 emulated Modbus meters + 100 simulated households with meters,
grid and recording, paced to the wall clock; prints p50/p99/max step lateness.

Usage: python benchmarks/bench_realtime_hil.py [DURATION]   (default 5min; e.g. 60s for a quick look)
"""

import socket
import sys
import tempfile
from pathlib import Path

import yaml

from cosim.runner import run_scenario
from cosim.scenario import parse_scenario
from hil.testing import ThreadedEmulators

MAPS = [("sdm630", "sdm630"), ("sunspec-meter", "sunspec_meter"), ("em24", "em24")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(duration: str = "5min") -> None:
    n_real = 20
    with ThreadedEmulators() as lab, tempfile.TemporaryDirectory() as tmp:
        meters = []
        for i in range(n_real):
            kind, map_name = MAPS[i % len(MAPS)]
            port = free_port()
            lab.start(kind, port=port, seed=i)
            meters.append({"id": f"d1.h{i + 1:03d}", "port": port, "map": map_name, "interval": 1.0})
        data = {
            "name": "bench_rt", "start": "2026-06-15T12:00:00+02:00", "duration": duration, "step": "1s",
            "seed": 1, "districts": [{"name": "d1", "households": 100 + n_real, "shares": {"pv": 0.4}}],
            "meters": {"interval": "1s"}, "grid": {"network": "dickert_lv_long"},
            "hil": {"meters": meters}, "realtime": {"factor": 1.0, "threshold_ms": 20},
        }
        res = run_scenario(parse_scenario(data), yaml.safe_dump(data), out=Path(tmp) / "rt.h5", progress=False)
    lt = res.lateness
    print(f"{lt['n']} real-time steps of 1 s, {n_real} Modbus meters + 100 simulated households:")
    print(f"lateness p50 {lt['p50_ms']:.2f} ms, p99 {lt['p99_ms']:.2f} ms, max {lt['max_ms']:.2f} ms, "
          f"{lt['late']} steps later than {lt['threshold_ms']:.0f} ms")


if __name__ == "__main__":
    main(*sys.argv[1:])
