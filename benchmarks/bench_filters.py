"""HDF5 filters for the results writer's series: CPU time and file size of writing real results.

Runs ``uc3_substation`` for a few hours (default 6 h evaluated, with its warm-up and cool-down cut to 1 h)
into a temporary file, takes its 2-D series (households, meters, grid, agents, ...) and writes them
again as the writer does: blocks of ``flush_every`` (60) rows into chunks of (60, 256), for each filter
in turn, twice. Prints CPU seconds and file size per filter; the writer's choice (gzip level 1, no
shuffle, ``cosim/results.py``) is the first line.

Usage: python benchmarks/bench_filters.py [--until 6h]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import h5py
import numpy as np

from cosim.durations import parse_duration_ms
from cosim.results import series_names
from cosim.runner import run_scenario
from cosim.scenario import load_scenario

FILTERS = {
    "gzip 1 (the writer's)": dict(compression="gzip", compression_opts=1),
    "gzip 1 + shuffle": dict(compression="gzip", compression_opts=1, shuffle=True),
    "gzip 4": dict(compression="gzip", compression_opts=4),
    "lzf": dict(compression="lzf"),
    "lzf + shuffle": dict(compression="lzf", shuffle=True),
    "none": {},
}
ROWS = 60  # ResultsWriter's default flush_every = its chunk height


def series_of(path: str) -> list[np.ndarray]:
    with h5py.File(path) as f:
        return [f[name][()] for name in series_names(f)]


def write(data: list[np.ndarray], path: str, kw: dict) -> float:
    """CPU seconds to write *data* in ROWS-row blocks with filter *kw*."""
    with h5py.File(path, "w", libver="latest", rdcc_nbytes=0) as f:
        dss = [f.create_dataset(f"d{i}", shape=(0, 0), maxshape=(None, None), dtype="f8", chunks=(ROWS, 256),
                                fillvalue=np.nan, **kw) for i in range(len(data))]
        c = time.process_time()
        for t0 in range(0, data[0].shape[0], ROWS):
            for ds, d in zip(dss, data):
                t1 = min(d.shape[0], t0 + ROWS)
                ds.resize((t1, d.shape[1]))
                ds[t0:t1] = d[t0:t1]
        return time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--until", default="6h")
    args = ap.parse_args()
    scn, text = load_scenario("uc3_substation", {"evaluation.warmup": "1h", "evaluation.cooldown": "1h"})
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src.h5")
        run_scenario(scn, text, out=src, until_ms=parse_duration_ms(args.until), progress=False)
        data = series_of(src)
        values = sum(d.size for d in data)
        print(f"uc3_substation, {data[0].shape[0]} rows, {len(data)} series, {values / 1e6:.1f} M values")
        for name, kw in FILTERS.items():
            cpu, size = [], 0
            for _ in range(2):
                path = os.path.join(tmp, "x.h5")
                cpu.append(write(data, path, kw))
                size = os.path.getsize(path)
            print(f"{name:<22} {min(cpu):5.2f}-{max(cpu):5.2f} s CPU  {size / 1e6:7.1f} MB")


if __name__ == "__main__":
    main()
