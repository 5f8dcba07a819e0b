"""The results file: its HDF5 layout, the writer and the reader (docs/architecture.md).

This is the only module that knows the layout:

* file attributes (all of them: docs/architecture.md): provenance (``scenario`` YAML text, ``seed``,
  ``versions``, ``git_commit``, ``host``, ``pid``, ``command``, ...), ``status``
  (``running``/``completed``/``interrupted``/``failed``), ``error``, ``steps`` (rows written), ``start``
  (the simulation start: the scenario's start minus its warm-up), ``step_ms``, the evaluated window
  ``eval_start_ms``/``eval_end_ms`` and, for real-time runs, the lateness summary ``lateness_*``;
* ``/time``: int64 ms since ``start``;
* ``/<population>/<attr>``: float64 (time, devices) with attributes ``unit``, ``population``, ``attr``;
  ``/<population>/_ids/<attr>``: the device id of each column (UTF-8 in 64-byte cells, see ID_BYTES);
* ``/events/<stream>``: JSON Lines stored as uint8 bytes (variable-length strings cannot be read under
  SWMR).

The writer creates every dataset before SWMR starts; new devices widen a dataset (NaN fill). Rows are
buffered and written in blocks; a block write is idempotent, so :meth:`ResultsWriter.close` after an
interruption rewrites what might be half done and the file always holds every completed step.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import h5py
import numpy as np
from isal import isal_zlib

from cosim.errors import InputError
from cosim.h5open import H5_ERRORS, open_results, reason
from simulators.devices.common import Clock, after

# ---------------------------------------------------------------------------- opening


def open_file(path: str | Path, mode: str = "r") -> h5py.File:
    """Open a results file for reading (checked: a damaged or truncated file is refused at once, one
    line; SWMR only for a file that is being written, :mod:`cosim.h5open`) or ``r+``."""
    if mode == "r":
        return open_results(path)
    try:
        return h5py.File(str(path), mode, libver="latest")
    except OSError as exc:
        raise InputError(f"{path}: cannot open the results file for writing ({exc})") from None


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The file attributes (provenance, status, window), decoded."""
    with open_file(path) as f:
        return {k: _text(v) for k, v in f.attrs.items()}


def list_datasets(path: str | Path) -> list[tuple[str, tuple, str, str]]:
    """(name, shape, dtype, unit) of every data set except the device-id columns."""
    out = []
    with open_file(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "/_ids/" not in f"/{name}/":
                out.append((f"/{name}", obj.shape, str(obj.dtype), str(_text(obj.attrs.get("unit", "")))))

        f.visititems(visit)
    return out


def series_names(f: h5py.File) -> list[str]:
    """Names of every 2-D device series of an open results file (``pop/attr``, and ``pop/_min/attr``
    ... of an aggregated file): not the device-id columns, the events or the event tables."""
    names: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and "/_ids/" not in f"/{name}/" \
                and name.split("/", 1)[0] not in NOT_POPULATIONS:
            names.append(name)

    f.visititems(visit)
    return names


def series_ids(f: h5py.File | h5py.Group, name: str) -> list[str] | None:
    """The device ids of the columns of series ``name`` (``pop/attr``: ``/pop/_ids/attr``), None
    when the file has none for it."""
    group, _, attr = name.strip("/").rpartition("/")
    ids = f.get(f"{group}/_ids/{attr}" if group else f"_ids/{attr}")  # relative to a group ``f``
    return None if ids is None else [_text(x) for x in ids[()]]


EVENT_TIME_FIELDS = ("t0", "t", "sent")  # an event's time: the time it is about, else when it happened


def event_time(rec: dict):
    """The time an event record is about (``t0``), else when it happened (``t``, ``sent``); None without."""
    for field in EVENT_TIME_FIELDS:
        if field in rec:
            return rec[field]
    return None


def source_path(source: str | Path, out: str | Path) -> str:
    """How a file that virtual datasets of *out* read from is named in *out*: relative to *out*'s folder
    when it lies below it (HDF5 resolves it from there, so the two can be moved together), else absolute."""
    source, folder = Path(source).resolve(), Path(out).resolve().parent
    return str(source.relative_to(folder)) if source.is_relative_to(folder) else str(source)


def read_scenario_text(path: str | Path) -> str:
    """The scenario YAML recorded in a results file."""
    text = read_attrs(path).get("scenario")
    if not text:
        raise InputError(f"{path}: results file has no 'scenario' provenance attribute")
    return str(text)


def stamp_attrs(path: str | Path, attrs: dict[str, Any]) -> None:
    """Add attributes to a closed results file (e.g. the lateness summary)."""
    with open_file(path, "r+") as f:
        f.attrs.update(attrs)


def read_lateness(path: str | Path):
    """The per-step lateness stamps (ms) of a real-time run, or ``None``."""
    with open_file(path) as f:
        if "realtime/lateness_ms" not in f:
            return None
        return np.asarray(f["realtime/lateness_ms"][:, 0], dtype=float)


# ---------------------------------------------------------------------------- writing


# Device ids are UTF-8 in fixed-width cells: a SWMR reader cannot read variable-length strings (h5py issue
# 1273; with h5py 3.16 / HDF5 2.0 a live reader's every read failed "address of object past end of
# allocation" once the writer had appended some), and the writer adds ids while the run goes on.
ID_BYTES = 64
ID_DTYPE = f"S{ID_BYTES}"
TIME_CHUNK = 1024
# Columns per chunk of a series. A series narrower than a chunk is stored padded to the chunk's width,
# and gzip compresses the padding too: with 256 a 57-household series was 78 % NaN padding per chunk.
# benchmarks/bench_filters.py --only widths (2026-12-06), 64 against 256: writing CPU -25 % and file -10 %
# for a 57-household substation, -8...-18 % and -5 % for 146 households, -7...-9 % and +1 % for 1000;
# 32 gained nothing more on writing and read wide series slower.
CHUNK_COLUMNS = 64
# The series are gzip-compressed (HDF5's deflate filter). The writer compresses their chunks itself, with
# ISA-L (python-isal), and stores them as they are: the filter's format is a zlib stream, which isal_zlib
# writes, so any HDF5 reader decompresses them. benchmarks/bench_filters.py --only filters (2026-12-06,
# uc3_substation 6 h, 66 series, the writer's whole write path): ISA-L level 1 0.12-0.13 s CPU and 9.4 MB
# stored, HDF5's gzip level 1 0.28-0.30 s and 9.2 MB. The compressors alone on the 2 280 chunks (70 MB) of
# a 1-day uc3_physical file, measured once by hand: zlib level 1 599 ms (28.2 MB), ISA-L level 1 122 ms
# (29.0 MB), libdeflate level 1 248 ms (28.5 MB).
ISAL_LEVEL = 1


class _Series:
    """Buffered (time, devices) dataset of one population attribute: the rows of one flush block are
    filled into a preallocated (block rows, devices) array (NaN = no value; one column per device id,
    widened when new ids come) and written in one call."""

    __slots__ = ("ds", "ids_ds", "ids", "index", "block", "written_ids")

    def __init__(self, group: h5py.Group, attr: str, unit: str, population: str, chunk_rows: int):
        # Chunks hold one flush block of rows, so each chunk is compressed once. gzip level 1 without
        # shuffle (benchmarks/bench_filters.py on uc3_substation series, 2026-12-05): 0.39 s CPU and 12.2 MB
        # per 3.4 M values; shuffle is slower and larger (0.43 s, 13.2 MB); lzf is faster but 16 % larger
        # (0.27 s, 14.1 MB) and readable only where h5py's lzf filter is installed; gzip 4 saves 4 % for +44 % CPU.
        self.ds = group.create_dataset(
            attr, shape=(0, 0), maxshape=(None, None), dtype="f8", chunks=(chunk_rows, CHUNK_COLUMNS),
            compression="gzip", compression_opts=1, fillvalue=np.nan,
        )
        self.ds.attrs.update(unit=unit, population=population, attr=attr)
        self.ids_ds = group.require_group("_ids").create_dataset(
            attr, shape=(0,), maxshape=(None,), dtype=ID_DTYPE, chunks=(1024,)
        )
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.block = np.full((chunk_rows, 0), np.nan)
        self.written_ids = 0

    def add(self, i: int, value: dict) -> None:
        """Block row *i* from one step's {device id: value}; a value that is not a number is NaN."""
        ids = self.ids
        n = len(ids)
        if len(value) == n and list(value) == ids:
            arr = getattr(value, "array", None)  # a Floats' values as its array (3 us less per 146 values)
            try:
                self.block[i] = arr if arr is not None else np.fromiter(value.values(), dtype=float, count=n)
                return
            except (TypeError, ValueError):
                pass
        index = self.index
        for key in [_checked_id(key, self.ds.name) for key in value if key not in index]:  # all, then add
            index[key] = len(ids)
            ids.append(key)
        if len(ids) > n:  # new devices: a wider block
            wider = np.full((self.block.shape[0], len(ids)), np.nan)
            wider[:, :n] = self.block
            self.block = wider
        row = self.block[i]
        for key, v in value.items():
            row[index[key]] = _as_float(v)

    def write(self, t0: int, k: int) -> None:
        """Write the block's first *k* rows as file rows t0..t0+k (again after an interruption: the block
        is kept until :meth:`clear`). Rows that start a chunk are written as whole chunks, padded with
        NaN (the fill value) and compressed here (see ISAL_LEVEL); other rows (after a partial block) go
        through HDF5's filter, which reads the chunk they continue."""
        n = len(self.ids)
        if n > self.written_ids:
            self.ids_ds.resize((n,))
            self.ids_ds[self.written_ids:] = np.array([str(k).encode() for k in self.ids[self.written_ids:]],
                                                      dtype=ID_DTYPE)
            self.written_ids = n
        self.ds.resize((t0 + k, max(n, self.ds.shape[1])))
        if not n:
            return
        chunk_rows = self.block.shape[0]
        dsid = self.ds.id
        if t0 % chunk_rows == 0:  # rows k.. of the block are NaN (see clear)
            chunk = np.empty((chunk_rows, CHUNK_COLUMNS))
            for c0 in range(0, n, CHUNK_COLUMNS):
                w = min(CHUNK_COLUMNS, n - c0)
                if w < CHUNK_COLUMNS:
                    chunk[:, w:] = np.nan
                chunk[:, :w] = self.block[:, c0:c0 + w]
                dsid.write_direct_chunk((t0, c0), isal_zlib.compress(chunk, ISAL_LEVEL))
        else:  # low-level: without h5py's selection parsing and checks of ds[t0:t0 + k, :n] = ...
            rows = dsid.get_space()
            rows.select_hyperslab((t0, 0), (k, n))
            dsid.write(h5py.h5s.create_simple((k, n)), rows, self.block[:k])

    def clear(self, k: int) -> None:
        """The block's first *k* rows are written: NaN for the next block."""
        self.block[:k] = np.nan


def _checked_id(key, series: str):
    """*key*, a new device id of *series*, if its UTF-8 fits an id cell; else InputError naming it."""
    size = len(str(key).encode())
    if size > ID_BYTES:
        raise InputError(f"device id {key!r} of {series.strip('/')} is {size} bytes in UTF-8: a results file holds "
                         f"ids of up to {ID_BYTES} (give the device a shorter name in the scenario or network)")
    return key


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def create_event_stream(f: h5py.Group, name: str) -> h5py.Dataset:
    """An empty ``/events/<name>`` JSON Lines stream of *f* (bytes, growing by :func:`append_events`)."""
    return f.require_group("events").create_dataset(name, shape=(0,), maxshape=(None,), dtype="u1",
                                                    chunks=(65536,), compression="gzip")


def append_events(ds: h5py.Dataset, data: bytes) -> None:
    """Append JSON Lines *data* to the event stream *ds*."""
    n = ds.shape[0]
    ds.resize((n + len(data),))
    ds[n:] = np.frombuffer(data, dtype="u1")


# one encoder for event records and event-table cells: json.dumps with options builds a new one per call
_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


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
        # no chunk cache: every chunk is written once, as a whole block; HDF5's default cache kept written
        # chunks and grew by ~150 MB per simulated day of a 1-min uc3 file (benchmarks/bench_year.py)
        self.f = h5py.File(self.path, "w", libver="latest", rdcc_nbytes=0)
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
            self.events[name] = create_event_stream(self.f, name)
        self._event_buf: dict[str, list[bytes]] = {name: [] for name in event_streams}
        self.times: list[int] = []  # time stamps not yet written (file rows rows_written..)
        self.rows_written = 0
        self.f.swmr_mode = True
        self.closed = False
        self.broken: str | None = None  # why a write failed (a full disk): nothing more is written

    def append(self, t_ms: int, values: dict[tuple[str, str], dict]) -> None:
        """Add one time row; missing series get NaN (nothing once the writer is closed)."""
        with self._lock:
            if self.closed:
                return
            i = len(self.times)
            for key, value in values.items():
                series = self.series.get(key)
                if series is not None and isinstance(value, dict):
                    series.add(i, value)
            self.times.append(int(t_ms))
            if i + 1 >= self.flush_every:
                self.flush()

    def add_events(self, stream: str, events: list[dict]) -> None:
        with self._lock:
            buf = self._event_buf[stream]
            buf.extend((_JSON.encode(e) + "\n").encode() for e in events)

    def flush(self) -> None:
        with self._lock:
            if self.closed or self.broken:
                return
            try:
                self._write_buffered()
            except H5_ERRORS as exc:  # a full disk, a lost file system: the run fails with this one line
                self.broken = f"{self.path}: writing the results failed ({reason(exc)})"
                raise ResultsWriteFailed(self.broken) from None

    def _write_buffered(self) -> None:
        t0, k = self.rows_written, len(self.times)
        t1 = t0 + k
        if k:
            for series in self.series.values():
                series.write(t0, k)
            self.time.resize((t1,))
            self.time[t0:t1] = np.asarray(self.times, dtype="i8")
            for series in self.series.values():
                series.clear(k)
            self.times.clear()
            self.rows_written = t1
        for name, buf in self._event_buf.items():
            if buf:
                append_events(self.events[name], b"".join(buf))
                buf.clear()
        self.f.flush()

    def close(self, status: str = "completed", error: str = "") -> None:
        """Write what is buffered, close, and stamp the final status (outside SWMR). After a failed write
        (:class:`ResultsWriteFailed`) only what is on disk stays: the file is closed as it can be, and the
        stamp is tried once (a full disk refuses it; the file then reads as a run whose writer stopped)."""
        with self._lock:
            if self.closed:
                return
            try:
                self.flush()
            finally:
                self.closed = True
                try:
                    self.f.close()
                except H5_ERRORS:
                    if not self.broken:
                        raise
            if self.broken:
                try:
                    with h5py.File(self.path, "r+", libver="latest") as f:
                        f.attrs.update(status="failed", error=self.broken, steps=self.rows_written)
                except H5_ERRORS:
                    pass
                return
            with _reopen(self.path, status) as f:
                f.attrs.update(
                    status=status,
                    error=error,
                    steps=self.rows_written,
                    finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                )
                for name in self.events:
                    write_event_table(f, name)


class ResultsWriteFailed(RuntimeError):
    """Writing the results file failed (a full disk, a lost file system); the message names the file."""


class ResultsFileHeld(RuntimeError):
    """Another process holds the results file open with HDF5's file lock, so the writer cannot stamp it."""


HELD_WAIT_S = 10.0  # how long the final stamp waits for another process to let go of the file


def _reopen(path: Path, status: str) -> h5py.File:
    """The closed results file at *path*, open to stamp (waits up to HELD_WAIT_S for a reader that locks it:
    ``cosim`` readers do not lock, but HDFView or a plain ``h5py.File(path)`` do)."""
    deadline = time.monotonic() + HELD_WAIT_S
    while True:
        try:
            return h5py.File(path, "r+", libver="latest")
        except OSError as exc:
            if "lock" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise ResultsFileHeld(
                    f"{path}: another process holds it open (HDF5 file lock), so its final status ({status}) "
                    "and event tables are not written; every recorded row is in it and reads as a live file "
                    "(status running)") from None
            time.sleep(0.2)


# ---------------------------------------------------------------------------- event tables

EVENT_TABLES = "event_tables"
NOT_POPULATIONS = ("events", EVENT_TABLES)  # the top-level groups that hold no device series


def _records(raw: bytes) -> list[dict]:
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return []
    try:  # one parse of the whole stream (fast); per line only when a line is damaged
        recs = json.loads("[" + ",".join(text.splitlines()) + "]")
    except json.JSONDecodeError:
        recs = []
        for line in text.splitlines():
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
    return [r for r in recs if isinstance(r, dict)]


# How write_event_table stores a field, by the types of its values (kinds): "int" int64; "float" float64
# (NaN: missing or null); "bool" float64 1/0 (NaN: missing); "text" UTF-8 (empty: missing); "json" JSON
# text (empty: missing) for the rest: lists, mappings, nulls beside text or booleans, mixed types, empty
# strings. The table's attributes bool_fields and json_fields name the fields Results.events decodes.
_MISSING = object()  # in a field's kinds: a record without the field (and rec.get's default for it)
_EMPTY = object()  # in a field's kinds: an empty string (an empty text cell means missing)
_NUMBERS = (int, float, bool)


def _storage(kinds: set) -> str:
    """The first way to store a field with values of the types *kinds* that keeps every value."""
    if kinds <= {int}:
        return "int"
    if kinds <= {int, float, type(None), _MISSING} and kinds & {int, float}:
        return "float"
    if kinds <= {bool, _MISSING}:
        return "bool"
    if kinds <= {str, _MISSING}:
        return "text"
    return "json"


def _column(values: list, storage: str, dtype: np.dtype) -> np.ndarray:
    if storage == "int":
        return np.asarray(values, dtype=np.int64)
    if storage in ("float", "bool"):
        return np.asarray([np.nan if v is None or v is _MISSING else float(v) for v in values], dtype=np.float64)
    if storage == "text":
        return np.asarray([b"" if v is _MISSING else v.encode() for v in values], dtype=dtype)
    return np.asarray([b"" if v is _MISSING else _JSON.encode(v).encode() for v in values], dtype=dtype)


def flatten(rec: dict, prefix: str = "") -> dict:
    """A record with its nested mappings flattened to dotted keys in place (as pandas.json_normalize, which
    moves them to the end and drops empty mappings)."""
    if not prefix and dict not in map(type, rec.values()):  # (records are parsed JSON: plain dicts)
        return rec
    out = {}
    for k, v in rec.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


EVENT_BATCH_BYTES = 8 << 20


def record_batches(stream: h5py.Dataset, batch_bytes: int = EVENT_BATCH_BYTES):
    """The records of an event stream in lists of whole lines of about *batch_bytes* each (memory does
    not grow with the stream)."""
    carry = b""
    for start in range(0, stream.shape[0], batch_bytes):
        raw = carry + stream[start:start + batch_bytes].tobytes()
        cut = raw.rfind(b"\n") + 1
        if start + batch_bytes >= stream.shape[0]:
            cut = len(raw)  # the end: a last line without newline too
        carry = raw[cut:]
        recs = _records(raw[:cut])
        if recs:
            yield recs


def _flat_batches(stream: h5py.Dataset, batch_bytes: int = EVENT_BATCH_BYTES):
    for recs in record_batches(stream, batch_bytes):
        yield [flatten(rec) for rec in recs]


def write_event_table(f: h5py.File, name: str, batch_bytes: int = EVENT_BATCH_BYTES) -> None:
    """``/event_tables/<name>``: the stream as one compound dataset (one field per record key, nested keys
    joined with '.'), written when the file is closed, for h5py and pandas without JSON decoding (but
    for the fields its attribute ``json_fields`` names; ``bool_fields`` are booleans stored as 1/0).
    (``/events/<name>`` stays the JSON Lines stream a reader sees while the run goes on: SWMR cannot
    create or retype datasets once writing has started.) Two passes over the stream in batches, the
    first for the fields and their types, so memory does not grow with the stream: a year's streams
    hold gigabytes of JSON."""
    stream = f["events"][name]
    kinds: dict[str, set] = {}  # field -> value types, in first-seen order
    seen: dict[str, int] = {}  # field -> records that have it
    width: dict[str, int] = {}  # field -> widest cell of its values that are not numbers (text: UTF-8)
    n = 0
    for flats in _flat_batches(stream, batch_bytes):
        n += len(flats)
        for rec in flats:
            for key, v in rec.items():
                kind = kinds.get(key)
                if kind is None:
                    kind = kinds[key] = set()
                    seen[key] = width[key] = 0
                seen[key] += 1
                t = type(v)
                if t is str:
                    width[key] = max(width[key], len(v.encode()))
                    t = t if v else _EMPTY
                elif t not in _NUMBERS:
                    width[key] = max(width[key], len(_JSON.encode(v)))
                kind.add(t)
    if not n:
        return
    for key, kind in kinds.items():
        if seen[key] < n:
            kind.add(_MISSING)
    storage = {key: _storage(kind) for key, kind in kinds.items()}
    mixed = [k for k, kind in kinds.items() if storage[k] == "json" and kind & {*_NUMBERS, str, _EMPTY}]
    if mixed:  # numbers and text in a JSON field: their JSON text counts for its width
        for flats in _flat_batches(stream, batch_bytes):
            for rec in flats:
                for key in mixed:
                    if key in rec:
                        width[key] = max(width[key], len(_JSON.encode(rec[key])))
    numeric = {"int": np.int64, "float": np.float64, "bool": np.float64}
    dtype = np.dtype([(key, numeric.get(s, f"S{max(1, width[key])}")) for key, s in storage.items()])
    g = f.require_group(EVENT_TABLES)
    if name in g:
        del g[name]
    table = g.create_dataset(name, shape=(n,), dtype=dtype, chunks=True, compression="gzip", compression_opts=1)
    for code in ("bool", "json"):
        names = [key for key, s in storage.items() if s == code]
        table.attrs[f"{code}_fields"] = np.array(names, dtype=h5py.string_dtype())
    row = 0
    for flats in _flat_batches(stream, batch_bytes):
        part = np.empty(len(flats), dtype=dtype)
        for key, s in storage.items():
            part[key] = _column([rec.get(key, _MISSING) for rec in flats], s, dtype[key])
        table[row:row + len(flats)] = part
        row += len(flats)


def _event_frame(table: h5py.Dataset, data: np.ndarray):
    """An event table (*data* its rows) as a pandas DataFrame of the stream's values: text decoded, an empty
    cell missing (NaN), the fields in the attributes ``bool_fields`` and ``json_fields`` booleans and parsed
    JSON."""
    import pandas as pd

    bools, jsons = ({_text(x) for x in table.attrs.get(f"{code}_fields", ())} for code in ("bool", "json"))
    cols = {}
    for key in data.dtype.names:
        col = data[key]
        if key in bools:
            cols[key] = [np.nan if x != x else bool(x) for x in col]
        elif key in jsons:
            cols[key] = [json.loads(x) if x else np.nan for x in col]
        elif col.dtype.kind == "S":
            cols[key] = [x.decode() if x else np.nan for x in col]
        else:
            cols[key] = col
    return pd.DataFrame(cols)


# ---------------------------------------------------------------------------- reading



def finite(a: np.ndarray) -> np.ndarray:
    """Missing values (NaN: a device without a column, a row before it existed) and infinities as 0."""
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Series:
    """One population attribute: ``values`` (T, N), column j belongs to ``ids[j]``."""

    ids: list[str]
    values: np.ndarray
    unit: str = ""

    def aligned(self, ids: list[str], fill: float = np.nan) -> np.ndarray:
        """(T, len(ids)) with the columns of *ids* (``fill`` where an id has no column)."""
        index = {k: j for j, k in enumerate(self.ids)}
        out = np.full((self.values.shape[0], len(ids)), fill, dtype=float)
        for i, k in enumerate(ids):
            j = index.get(k)
            if j is not None:
                out[:, i] = self.values[:, j]
        return out


def _text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def time_problem(f: h5py.File) -> str | None:
    """Why *f* has no cosim time axis (/time: one number of ms per row), or None when it has one."""
    ds = f.get("time")
    if ds is None:
        return "no /time dataset"
    if not isinstance(ds, h5py.Dataset):
        return "/time is a group, not one number of ms per row"
    if ds.ndim != 1 or ds.dtype.kind not in "iuf":
        return f"/time is {ds.dtype} of shape {ds.shape}, not one number of ms per row"
    return None


class Results:
    """Read access to a results file (also while it is being written, SWMR).

    ``window=True`` (default): rows, series and events are those of the evaluated window
    (file attributes ``eval_start_ms``/``eval_end_ms``, written by the runner; the whole file when
    absent). ``full_series`` reads a series over the whole simulated period."""

    def __init__(self, path: str | Path, window: bool = True):
        self.path = str(path)
        self._f: h5py.File | None = open_file(self.path)
        if problem := time_problem(self.f):
            self.f.close()
            raise InputError(f"{path}: not a cosim results file ({problem})")
        self.attrs = {k: _text(v) for k, v in self.f.attrs.items()}
        from cosim.split import missing_sources  # stitched files and views read other files (virtual datasets)

        if problem := missing_sources(path, self.attrs, self.f):
            self.f.close()
            raise InputError(problem)
        self.t_all = np.asarray(self.read(self.f["time"]), dtype=np.int64)
        i0, i1 = 0, len(self.t_all)
        try:
            w0, w1, step, _ = (self._ms(k) for k in ("eval_start_ms", "eval_end_ms", "step_ms", "aggregate_ms"))
        except InputError:
            self.f.close()
            raise
        self.window_ms = (w0, w1) if window and w0 is not None and w1 is not None else None
        if self.window_ms is not None:
            i0, i1 = (int(np.searchsorted(self.t_all, w, side="left")) for w in self.window_ms)
        self.rows = slice(i0, i1)
        self.t_ms = self.t_all[self.rows]
        start = _text(self.f["time"].attrs.get("start")) or self.attrs.get("start")
        try:
            self.start = dt.datetime.fromisoformat(str(start)) if start else None
        except ValueError:
            self.start = None
        self.scenario_text = str(self.attrs.get("scenario") or "")
        from cosim.scenario import parse_recorded  # the scenario schema reads the recorded text

        self.scenario = parse_recorded(self.scenario_text)
        if self.start is not None and self.scenario is not None and self.scenario.timezone:
            self.start = self.start.astimezone(ZoneInfo(self.scenario.timezone))  # local time follows DST
        if not step and len(self.t_ms) > 1:
            step = int(np.median(np.diff(self.t_ms)))
        self.step_ms = int(step or 60_000)
        self.status = str(self.attrs.get("status", ""))
        self._cache: dict[tuple[str, str], Series | None] = {}

    @property
    def window_start(self) -> dt.datetime | None:
        """Local time of the first evaluated instant (the scenario's ``start``)."""
        if self.start is None:
            return None
        return after(self.start, self.window_ms[0] if self.window_ms else 0)

    # context manager
    def __enter__(self) -> "Results":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; any later read of it raises :class:`InputError`."""
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass

    @property
    def f(self) -> h5py.File:
        """The open HDF5 file (:class:`InputError` once :meth:`close` was called)."""
        if self._f is None:
            raise InputError(f"{self.path}: closed (cosim.Results.close() was called or its with block ended); "
                             "open it again with cosim.Results(path)")
        return self._f

    @property
    def T(self) -> int:
        return len(self.t_ms)

    @property
    def aggregate_ms(self) -> int | None:
        """The interval of an aggregated file (one row of interval means each, cosim.aggregate), else None."""
        return self._ms("aggregate_ms") or None

    def _ms(self, name: str) -> int | None:
        """The file attribute *name*, a whole number of ms (None when absent); one line naming it when it
        is not a number (a damaged or hand-edited file)."""
        v = self.attrs.get(name)
        if v is None or v == "":
            return None
        try:
            n = int(v)
            if isinstance(v, (float, np.floating)) and v != n:  # int() would cut 1.5 to 1 silently
                raise ValueError
            return n
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{self.path}: damaged results file (attribute {name} is {v!r}, not a whole number "
                             "of ms)") from None

    @property
    def record_ms(self) -> int:
        """Nominal row interval (the recording interval)."""
        if self.aggregate_ms:
            return self.aggregate_ms
        if len(self.t_ms) > 1:
            return int(np.median(np.diff(self.t_ms)))
        if self.scenario is not None and self.scenario.record.every:
            return int(self.scenario.record.every)
        return self.step_ms

    @property
    def dt_h(self) -> np.ndarray:
        """Duration of each row in hours: up to the next row, the last one the nominal interval."""
        if self.T == 0:
            return np.zeros(0)
        d = np.diff(self.t_ms, append=self.t_ms[-1] + self.record_ms).astype(float)
        return d / 3_600_000.0

    @property
    def duration_h(self) -> float:
        return float(self.dt_h.sum())

    def populations(self) -> list[str]:
        """The groups of device series (not the events and event tables)."""
        return sorted(k for k, v in self.f.items() if isinstance(v, h5py.Group) and k not in NOT_POPULATIONS)

    def has(self, pop: str, attr: str | None = None) -> bool:
        if pop not in self.f or not isinstance(self.f[pop], h5py.Group):
            return False
        if attr is None:
            return True
        s = self.series(pop, attr)
        return s is not None

    def attrs_of(self, pop: str) -> list[str]:
        if not self.has(pop):
            return []
        return sorted(k for k, v in self.f[pop].items() if isinstance(v, h5py.Dataset))

    def series(self, pop: str, attr: str) -> Series | None:
        """The (T, N) data of ``/pop/attr`` in the window, or ``None`` when absent or without columns."""
        full = self.full_series(pop, attr)
        if full is None or self.rows == slice(0, len(self.t_all)):
            return full
        return Series(ids=full.ids, values=full.values[self.rows], unit=full.unit)

    def extreme(self, pop: str, attr: str, stat: str) -> Series | None:
        """Per-row minimum (*stat* ``"min"``) or maximum (``"max"``) of ``/pop/attr``: an aggregated file's
        interval extremes (cosim.aggregate) when it stores them, else the series itself."""
        from cosim.aggregate import extreme_group

        group = extreme_group(pop, stat)
        if self.aggregate_ms and isinstance(self.f.get(f"{group}/{attr}"), h5py.Dataset):
            return self.series(group, attr)
        return self.series(pop, attr)

    def full_series(self, pop: str, attr: str) -> Series | None:
        """The (T_all, N) data of ``/pop/attr`` over the whole simulated period."""
        key = (pop, attr)
        f = self.f  # also for a series read before: InputError once closed
        if key in self._cache:
            return self._cache[key]
        out = None
        g = f.get(pop)
        if isinstance(g, h5py.Group) and isinstance(g.get(attr), h5py.Dataset):
            ds = g[attr]
            if ds.ndim == 2 and ds.shape[1] > 0:
                ids = series_ids(g, attr) or []
                vals = np.asarray(self.read(ds), dtype=float)
                n = min(len(ids), vals.shape[1]) if ids else vals.shape[1]
                ids = ids[:n] if ids else [f"{attr}{j}" for j in range(n)]
                vals = vals[:, :n]
                T = len(self.t_all)
                if vals.shape[0] >= T:
                    vals = vals[:T]
                else:
                    vals = np.vstack([vals, np.full((T - vals.shape[0], n), np.nan)])
                out = Series(ids=ids, values=vals, unit=str(_text(ds.attrs.get("unit", ""))))
        self._cache[key] = out
        return out

    def read(self, ds: h5py.Dataset) -> np.ndarray:
        """All of *ds*; its data damaged on disk (a chunk that does not decompress) is an :class:`InputError`
        naming this file and the dataset, not h5py's OSError."""
        try:
            return ds[()]
        except H5_ERRORS as exc:
            raise InputError(f"{self.path}: damaged results file ({reason(exc)} in {ds.name})") from None

    def event_streams(self) -> list[str]:
        g = self.f.get("events")
        return sorted(g.keys()) if isinstance(g, h5py.Group) else []

    def records(self, name: str, window: bool = True) -> list[dict] | None:
        """The records of ``/events/<name>`` (JSON Lines) in the window (all with ``window=False``), or
        ``None`` when the stream is absent."""
        g = self.f.get("events")
        if not isinstance(g, h5py.Group) or name not in g:
            return None
        raw = bytes(np.asarray(self.read(g[name]), dtype=np.uint8).tobytes())
        return [rec for rec in _records(raw) if not window or self.in_window(rec)]

    def in_window(self, rec: dict) -> bool:
        """An event belongs to the window by the time it is about (``t0``) or else when it happened."""
        if self.window_ms is None:
            return True
        t = event_time(rec)
        if not isinstance(t, (int, float)):
            return True
        return self.window_ms[0] <= t < self.window_ms[1]

    # ---- time

    def local_times(self) -> list[dt.datetime]:
        start = self.start or dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        return [after(start, int(t)) for t in self.t_ms]

    def local_minutes(self, t_ms: np.ndarray | None = None) -> np.ndarray:
        """Local (wall-clock) minute of day (float) of each time (default: each row)."""
        t = self.t_ms if t_ms is None else np.asarray(t_ms)
        start = self.start or dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        if isinstance(start.tzinfo, ZoneInfo):
            clock = Clock(start)
            return clock.wall_min(clock.start_local_min + t / 60_000.0) % 1440.0
        m0 = start.hour * 60 + start.minute + start.second / 60.0
        return (m0 + t / 60_000.0) % 1440.0

    # ---- scenario-derived parameters

    def economics(self):
        from cosim.economics import Economics

        return self.scenario.economics if self.scenario is not None else Economics()

    def trafo_kva(self) -> dict[str, float] | None:
        """Rated apparent power (kVA) per transformer id as the grid simulator reported it, or None for
        a file without it (written before the ratings were recorded, or without a grid)."""
        raw = self.attrs.get("trafo_kva")
        return {str(k): float(v) for k, v in json.loads(raw).items()} if raw else None

    def monitored_buses(self) -> list[str] | None:
        """The buses whose voltages the grid judges (its LV buses, as its ``v_violation`` flag; in a view over
        substations each substation's, named as its columns), or None for a file without them (written before
        2026-12-08, or without a grid)."""
        raw = self.attrs.get("monitored_buses")
        return [str(b) for b in json.loads(raw)] if raw else None

    def household_specs(self) -> dict:
        """household id -> HouseholdSpec regenerated from the recorded scenario (seeded), or {}."""
        if self.scenario is None:
            return {}
        try:
            from cosim.population import build_population

            return {h.id: h for h in build_population(self.scenario)}
        except Exception:  # noqa: BLE001 - a KPI must not fail on a population it cannot rebuild
            return {}

    # ---- pandas views (the public API, README "Python API")

    def index(self, full: bool = False):
        """tz-aware ``pandas.DatetimeIndex`` of the rows (evaluated window, or every row with *full*)."""
        import pandas as pd

        t = self.t_all if full else self.t_ms
        start = pd.Timestamp(self.start or dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
        utc = start.tz_convert("UTC") + pd.to_timedelta(t, unit="ms")  # elapsed time, shown in the run's zone
        return pd.DatetimeIndex(utc, name="time").tz_convert(start.tz)

    def frame(self, population: str, attr: str, full: bool = False):
        """``/population/attr`` as a DataFrame: tz-aware DatetimeIndex, one column per device.

        The unit is in ``df.attrs["unit"]``. Raises :class:`InputError` naming what the file has when
        the series is absent."""
        import pandas as pd

        s = self.full_series(population, attr) if full else self.series(population, attr)
        if s is None:
            have = ", ".join(f"{p}/{a}" for p in self.populations() for a in self.attrs_of(p)) or "none"
            raise InputError(f"{self.path}: no series {population}/{attr} (the file has: {have})")
        df = pd.DataFrame(s.values, index=self.index(full), columns=pd.Index(s.ids, name="device"))
        df.attrs["unit"] = s.unit
        return df

    def events(self, stream: str):
        """``/events/<stream>`` of the window as a DataFrame, one row per record (nested fields flattened
        with dots; from ``/event_tables/<stream>`` once the file is closed, with the same columns, types
        and values). Raises :class:`InputError` when the stream is absent."""
        import pandas as pd

        table = self.f.get(f"{EVENT_TABLES}/{stream}")
        if isinstance(table, h5py.Dataset):
            df = _event_frame(table, self.read(table))
        else:
            recs = self.records(stream, window=False)
            if recs is None:
                raise InputError(f"{self.path}: no event stream {stream!r} (the file has: "
                                 f"{', '.join(self.event_streams()) or 'none'})")
            df = pd.DataFrame([flatten(rec) for rec in recs])
        if self.window_ms is None or df.empty:
            return df
        # as in_window: the time an event is about (t0), else when it happened (t, sent)
        t = pd.Series(np.nan, index=df.index)
        for c in EVENT_TIME_FIELDS:
            if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
                t = t.fillna(df[c].astype(float))
        return df[t.isna() | ((t >= self.window_ms[0]) & (t < self.window_ms[1]))].reset_index(drop=True)
