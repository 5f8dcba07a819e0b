"""Append-only HDF5 results writer (h5py, SWMR).

Layout (docs/architecture.md): ``/time`` (int64 ms since start), ``/<population>/<attr>`` float64
(time, devices), ``/<population>/_ids/<attr>`` fixed-width device ids, ``/events/<stream>`` JSON Lines
stored as uint8 bytes (variable-length strings cannot be read under SWMR). Every dataset is created
before SWMR starts; new devices widen a dataset (NaN fill). Rows are buffered and written in blocks;
a block write is idempotent, so :meth:`close` after an interruption rewrites what might be half done
and the file always holds every completed step.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading

import h5py
import numpy as np

ID_DTYPE = "S64"
TIME_CHUNK = 1024


class _Series:
    """Buffered (time, devices) dataset of one population attribute."""

    __slots__ = ("ds", "ids_ds", "ids", "index", "rows", "written_ids")

    def __init__(self, group: h5py.Group, attr: str, unit: str, population: str, chunk_rows: int):
        # Chunks hold one flush block of rows, so each chunk is compressed once; gzip level 1
        # without shuffle measured fastest and smallest on meter-like data (benchmarks/bench_spine.py).
        self.ds = group.create_dataset(
            attr, shape=(0, 0), maxshape=(None, None), dtype="f8", chunks=(chunk_rows, 256),
            compression="gzip", compression_opts=1, fillvalue=np.nan,
        )
        self.ds.attrs.update(unit=unit, population=population, attr=attr)
        self.ids_ds = group.require_group("_ids").create_dataset(
            attr, shape=(0,), maxshape=(None,), dtype=ID_DTYPE, chunks=(1024,)
        )
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.rows: list[np.ndarray | None] = []
        self.written_ids = 0

    def add(self, value) -> None:
        if not isinstance(value, dict):
            self.rows.append(None)
            return
        ids = self.ids
        if len(value) == len(ids) and list(value) == ids:
            try:
                self.rows.append(np.fromiter(value.values(), dtype=float, count=len(ids)))
                return
            except (TypeError, ValueError):
                pass
        row = np.full(len(ids) + len(value), np.nan)
        for key, v in value.items():
            j = self.index.get(key)
            if j is None:
                j = self.index[key] = len(ids)
                ids.append(key)
            row[j] = _as_float(v)
        self.rows.append(row[: len(ids)])

    def write(self, t0: int, t1: int) -> None:
        """Write buffered rows as file rows t0..t1 (buffer index 0 = row t0)."""
        n = len(self.ids)
        if n > self.written_ids:
            self.ids_ds.resize((n,))
            self.ids_ds[self.written_ids:] = np.array(self.ids[self.written_ids:], dtype=ID_DTYPE)
            self.written_ids = n
        block = np.full((t1 - t0, n), np.nan)
        for i, row in enumerate(self.rows[: t1 - t0]):
            if row is not None:
                block[i, : len(row)] = row
        self.ds.resize((t1, max(n, self.ds.shape[1])))
        if n:
            self.ds[t0:t1, :n] = block

    def pad_to(self, n_rows: int) -> None:
        while len(self.rows) < n_rows:
            self.rows.append(None)


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


class ResultsWriter:
    def __init__(
        self,
        path: str,
        attrs: dict,
        series: list[tuple[str, str, str]],
        event_streams: list[str],
        start_iso: str,
        step_ms: int,
        flush_every: int = 60,
    ):
        self.path = str(path)
        self.flush_every = flush_every
        self._lock = threading.RLock()
        self.f = h5py.File(self.path, "w", libver="latest")
        self.f.attrs.update({k: v for k, v in attrs.items() if v is not None})
        self.f.attrs.update(status="running", start=start_iso, step_ms=step_ms)
        self.time = self.f.create_dataset("time", shape=(0,), maxshape=(None,), dtype="i8",
                                          chunks=(TIME_CHUNK,))
        self.time.attrs.update(unit="ms", start=start_iso)
        self.series: dict[tuple[str, str], _Series] = {}
        for pop, attr, unit in series:
            self.series[(pop, attr)] = _Series(self.f.require_group(pop), attr, unit, pop, flush_every)
        self.events = {}
        for name in event_streams:
            self.events[name] = self.f.require_group("events").create_dataset(
                name, shape=(0,), maxshape=(None,), dtype="u1", chunks=(65536,), compression="gzip"
            )
        self._event_buf: dict[str, list[bytes]] = {name: [] for name in event_streams}
        self.times: list[int] = []
        self.rows_written = 0
        self.f.swmr_mode = True
        self.closed = False

    def append(self, t_ms: int, values: dict[tuple[str, str], dict]) -> None:
        """Add one time row; missing series get NaN."""
        with self._lock:
            n = len(self.times) - self.rows_written
            for key, series in self.series.items():
                series.pad_to(n)
                series.add(values.get(key))
            self.times.append(int(t_ms))
            if n + 1 >= self.flush_every:
                self.flush()

    def add_events(self, stream: str, events: list[dict]) -> None:
        with self._lock:
            buf = self._event_buf[stream]
            buf.extend((json.dumps(e, separators=(",", ":"), default=str) + "\n").encode() for e in events)

    def flush(self) -> None:
        with self._lock:
            if self.closed:
                return
            t0, t1 = self.rows_written, len(self.times)
            if t1 > t0:
                for series in self.series.values():
                    series.pad_to(t1 - t0)
                    series.write(t0, t1)
                self.time.resize((t1,))
                self.time[t0:t1] = np.asarray(self.times[t0:t1], dtype="i8")
                for series in self.series.values():
                    del series.rows[: t1 - t0]
                self.rows_written = t1
            for name, buf in self._event_buf.items():
                if buf:
                    data = np.frombuffer(b"".join(buf), dtype="u1")
                    ds = self.events[name]
                    n = ds.shape[0]
                    ds.resize((n + len(data),))
                    ds[n:] = data
                    buf.clear()
            self.f.flush()

    def close(self, status: str = "completed", error: str = "") -> None:
        """Write what is buffered, close, and stamp the final status (outside SWMR)."""
        with self._lock:
            if self.closed:
                return
            try:
                self.flush()
            finally:
                self.closed = True
                self.f.close()
            with h5py.File(self.path, "r+", libver="latest") as f:
                f.attrs.update(
                    status=status,
                    error=error,
                    steps=self.rows_written,
                    finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                )
