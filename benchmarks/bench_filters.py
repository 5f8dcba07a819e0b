"""HDF5 filters and chunk widths for the results writer's series: CPU time and file size of writing real results.

Runs ``uc3_substation`` for a few hours (default 6 h evaluated, with its warm-up and cool-down cut to 1 h)
into a temporary file, takes its 2-D series (households, meters, grid, agents, ...) and writes them
again in blocks of ``flush_every`` (60) rows into chunks of (60, CHUNK_COLUMNS), for each filter in
turn, twice. Prints CPU seconds and the series' stored bytes per filter. The first line is the writer itself
(``cosim/results.py``: gzip streams made by ISA-L at level 1 and stored as whole chunks); the others
go through HDF5's filters.

Then, with HDF5's gzip level 1 filter, chunk widths (columns per chunk) on three populations: uc3_substation's
146 households, a 57-household ``scale_10k`` substation (``dorf``, with its own 6-h warm-up and
cool-down) and 1 000 households of ``bench_spine.py``, each run for ``--until``: CPU seconds to write,
to read every series back, and file size. The writer's width is marked.

Usage: python benchmarks/bench_filters.py [--until 6h] [--only filters|widths]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import h5py
import numpy as np

import yaml
from bench_spine import scenario as spine_scenario
from profile_scenarios import _load as load_group

from cosim.durations import parse_duration_ms
from cosim.results import CHUNK_COLUMNS, _Series, series_names
from cosim.runner import run_scenario
from cosim.scenario import load_scenario, parse_scenario

WRITER = "the writer's (ISA-L 1, chunks)"
FILTERS = {
    WRITER: None,
    "gzip 1": dict(compression="gzip", compression_opts=1),
    "gzip 1 + shuffle": dict(compression="gzip", compression_opts=1, shuffle=True),
    "gzip 4": dict(compression="gzip", compression_opts=4),
    "lzf": dict(compression="lzf"),
    "lzf + shuffle": dict(compression="lzf", shuffle=True),
    "none": {},
}
ROWS = 60  # ResultsWriter's default flush_every = its chunk height
WIDTHS = (256, 128, 64, 32)


def series_of(path: str) -> list[np.ndarray]:
    with h5py.File(path) as f:
        return [f[name][()] for name in series_names(f)]


def write(data: list[np.ndarray], path: str, kw: dict, width: int = CHUNK_COLUMNS) -> float:
    """CPU seconds to write *data* in ROWS-row blocks with filter *kw* into chunks *width* columns wide."""
    with h5py.File(path, "w", libver="latest", rdcc_nbytes=0) as f:
        dss = [f.create_dataset(f"d{i}", shape=(0, 0), maxshape=(None, None), dtype="f8", chunks=(ROWS, width),
                                fillvalue=np.nan, **kw) for i in range(len(data))]
        c = time.process_time()
        for t0 in range(0, data[0].shape[0], ROWS):
            for ds, d in zip(dss, data):
                t1 = min(d.shape[0], t0 + ROWS)
                ds.resize((t1, d.shape[1]))
                ds[t0:t1] = d[t0:t1]
        return time.process_time() - c


def write_as_writer(data: list[np.ndarray], path: str) -> float:
    """CPU seconds of the writer's own series writes of *data* (``_Series.write`` of ROWS-row blocks)."""
    with h5py.File(path, "w", libver="latest", rdcc_nbytes=0) as f:
        series = [_Series(f, f"d{i}", "", "", ROWS) for i in range(len(data))]
        for s, d in zip(series, data):
            s.ids = [str(j) for j in range(d.shape[1])]
            s.block = np.full((ROWS, d.shape[1]), np.nan)
        c = time.process_time()
        for t0 in range(0, data[0].shape[0], ROWS):
            for s, d in zip(series, data):
                k = min(d.shape[0], t0 + ROWS) - t0
                s.block[:k] = d[t0:t0 + k]
                s.write(t0, k)
                s.clear(k)
        return time.process_time() - c


def stored(path: str, n: int) -> int:
    """Bytes the *n* series datasets of *path* take in the file (their chunks; not the writer's id lists)."""
    with h5py.File(path) as f:
        return sum(f[f"d{i}"].id.get_storage_size() for i in range(n))


def read_all(path: str) -> float:
    """CPU seconds to read every dataset of *path* whole."""
    c = time.process_time()
    with h5py.File(path) as f:
        for name in f:
            f[name][()]
    return time.process_time() - c


def filters(data: list[np.ndarray], tmp: str) -> None:
    values = sum(d.size for d in data)
    print(f"filters: uc3_substation, {data[0].shape[0]} rows, {len(data)} series, {values / 1e6:.1f} M values")
    for name, kw in FILTERS.items():
        cpu, size = [], 0
        for _ in range(2):
            path = os.path.join(tmp, "x.h5")
            cpu.append(write_as_writer(data, path) if kw is None else write(data, path, kw))
            size = stored(path, len(data))
        print(f"{name:<32} {min(cpu):5.2f}-{max(cpu):5.2f} s CPU  {size / 1e6:7.1f} MB")


def widths(label: str, data: list[np.ndarray], tmp: str) -> None:
    print(f"chunk widths: {label}, {data[0].shape[0]} rows, {len(data)} series of "
          f"{min(d.shape[1] for d in data)}-{max(d.shape[1] for d in data)} columns")
    runs: dict[int, list[tuple[float, float, int]]] = {w: [] for w in WIDTHS}
    for _ in range(3):  # widths alternately, so that the machine's drift touches them alike
        for w in WIDTHS:
            path = os.path.join(tmp, f"w{w}.h5")
            runs[w].append((write(data, path, FILTERS["gzip 1"], w), read_all(path),
                            os.path.getsize(path)))
    for w, r in runs.items():
        mark = " (the writer's)" if w == CHUNK_COLUMNS else ""
        wr, rd = [x[0] for x in r], [x[1] for x in r]
        print(f"  {w:4d} columns{mark:<15} write {min(wr):5.2f}-{max(wr):5.2f} s CPU  read {min(rd):5.2f}-"
              f"{max(rd):5.2f} s CPU  {r[0][2] / 1e6:7.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--until", default="6h")
    ap.add_argument("--only", choices=["filters", "widths"])
    args = ap.parse_args()
    until = parse_duration_ms(args.until)
    short = {"evaluation.warmup": "1h", "evaluation.cooldown": "1h"}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src.h5")
        scn, text = load_scenario("uc3_substation", short)
        run_scenario(scn, text, out=src, until_ms=until, progress=False)
        data = series_of(src)
        if args.only != "widths":
            filters(data, tmp)
        if args.only == "filters":
            return
        widths("uc3_substation, 146 households", data, tmp)
        scn, text = load_group("scale_10k/dorf")
        run_scenario(scn, text, out=os.path.join(tmp, "dorf.h5"), until_ms=until, progress=False)
        widths("scale_10k/dorf, 57 households", series_of(os.path.join(tmp, "dorf.h5")), tmp)
        spine = spine_scenario(1000) | {"duration": args.until}
        run_scenario(parse_scenario(spine), yaml.safe_dump(spine), out=os.path.join(tmp, "spine.h5"), progress=False)
        widths("bench_spine.py, 1 000 households", series_of(os.path.join(tmp, "spine.h5")), tmp)


if __name__ == "__main__":
    main()
