"""A long run as consecutive parts run in parallel and stitched along time (README "A year").

``cosim run SCENARIO --until 365d --split month --workers 2`` cuts the evaluated period into parts
(calendar months of the scenario's clock, or a fixed length such as ``7d``). Each part is the scenario
with its own ``start``, ``duration`` and an evaluation window: the first part keeps the scenario's
warm-up (it starts exactly as the single run does), the others simulate ``--split-warmup`` (default
2 days) before their window; every part keeps the scenario's cool-down (the last one ends exactly as
the single run does; each simulates as much of it as its window's numbers need,
``Scenario.cooldown_run_ms``), and at least one recorded row, so that the meter readings at each
boundary exist. The parts run as a sweep (:mod:`cosim.sweep`: dask.distributed, one run per
worker process, finished parts are reused on a re-run) into ``<out>.parts/``.

The stitched file ``<out>`` is one results file (:mod:`cosim.results` layout) whose series are HDF5
virtual datasets over the parts' files: the first part's warm-up and window, every further part's
window, the last part's cool-down. Its rows, time axis and evaluation window are those of the single
long run, so :class:`cosim.results.Results`, ``cosim kpis``, ``compare``, ``report`` and ``frame()``
read it unchanged. The time axis and the event streams are real datasets (event times are shifted to
the stitched clock; request, offer, order and negotiation ids of later parts get a ``p<k>/`` prefix so
that they stay unique). The parts folder must stay beside the stitched file.

Why virtual datasets rather than a copy or a view class: the parts are written once by ordinary runs,
the stitched file costs kilobytes and a second, any HDF5 reader (h5py, pandas through cosim, HDFView)
sees one file, and no reader of cosim needs to know about parts.

Random streams: households, weather, EVs, hot water and PV are functions of (seed, device id, local
day) (simulators/devices/common.py), so every part draws exactly what the single run draws for its
period. Sequential streams (meter reading noise, telecom latency and loss) restart in each part, so
those draws differ; the parts' start states (battery and EV state of charge, building temperatures,
controller plans) come from their warm-up, not from the previous part. Without a controller the
warm-up reaches the single run's state, and the stored energy the parts leave bounds the difference;
with the MAS the later parts differ from the single run as a replicate of it does (cosim.replicates,
tests/test_split.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml

from cosim.aggregate import CUMULATIVE
from cosim.durations import format_duration_ms, parse_duration_ms
from cosim.errors import InputError
from cosim.results import (ID_DTYPE, append_events, create_event_stream, event_time, record_batches, series_ids,
                           series_names, source_path, write_event_table)
from cosim.scenario import Scenario

DAY_MS = 86_400_000
DEFAULT_WARMUP = "2d"
# event record fields that hold a time (ms since the run's start) and fields that hold an id
TIME_KEYS = ("t", "t0", "sent", "delivered", "end")
ID_KEYS = ("req", "offer", "order", "neg", "id")
PARTS_ATTR = "split_parts"


@dataclass
class Part:
    start: dt.datetime  # start of the part's evaluated window
    duration_ms: int
    warmup_ms: int
    cooldown_ms: int


def plan(scn: Scenario, split: str, warmup_ms: int) -> list[Part]:
    """The parts of *scn*'s evaluated period: calendar months (``month``) or fixed lengths (``7d``)."""
    # boundaries as instants (UTC): durations are elapsed time, also across a daylight-saving change
    utc = dt.timezone.utc
    start = scn.start.astimezone(utc)
    end = start + dt.timedelta(milliseconds=scn.duration)
    if split == "month":  # local midnight on the first of each month
        cuts, t = [], scn.start
        while True:
            t = (t.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            if t.astimezone(utc) >= end:
                break
            cuts.append(t.astimezone(utc))
    else:
        try:
            length = parse_duration_ms(split)
        except ValueError as exc:
            raise InputError(f"--split {split}: {exc} (give 'month' or a duration such as 7d)") from None
        cuts = [start + dt.timedelta(milliseconds=k) for k in range(length, scn.duration, length)]
    edges = [start, *cuts, end]
    grain = scn.record.aggregate or scn.step
    # every part but the last runs at least one row past its window: the meter readings at the boundary
    # continue the registers exactly in the stitched file
    parts = [Part(a.astimezone(scn.start.tzinfo), int((b - a).total_seconds() * 1000),
                  scn.warmup_ms if i == 0 else warmup_ms,
                  scn.cooldown_ms if i == len(edges) - 2 else max(scn.cooldown_ms, grain))
             for i, (a, b) in enumerate(zip(edges, edges[1:]))]
    for p in parts:
        if p.duration_ms % grain or p.warmup_ms % grain:
            raise InputError(f"--split {split}: a part of {format_duration_ms(p.duration_ms)} with "
                             f"{format_duration_ms(p.warmup_ms)} warm-up is not a multiple of "
                             f"{format_duration_ms(grain)} (the step or record.aggregate)")
    return parts


def part_data(scn: Scenario, text: str, part: Part) -> dict:
    """The scenario data of one part (its own start, duration and evaluation window)."""
    data = yaml.safe_load(text)
    data.pop("output", None)
    data["start"] = part.start.isoformat()
    data["duration"] = format_duration_ms(part.duration_ms)
    ev = dict(data.get("evaluation") or {})
    for key, ms in (("warmup", part.warmup_ms), ("cooldown", part.cooldown_ms)):
        ev.pop(key, None)
        if ms:  # zero is the default without a controller (and not a valid duration)
            ev[key] = format_duration_ms(ms)
    data["evaluation"] = ev
    return data


def run_split(scn: Scenario, text: str, split: str, out: str | Path | None = None, workers: int | None = None,
              warmup: str | None = None, scheduler: str | None = None, progress: bool = True) -> tuple[Path, float]:
    """Run *scn* as parts on dask and stitch them into *out*; returns (stitched path, wall s)."""
    from cosim.scenario import parse_scenario
    from cosim.sweep import SweepSpec, Variant, _execute, is_completed, run_hash

    try:
        warmup_ms = parse_duration_ms(warmup or DEFAULT_WARMUP)
    except ValueError as exc:
        raise InputError(f"--split-warmup {warmup}: {exc}") from None
    path = Path(out) if out else scn.output_path()
    parts_dir = path.with_name(path.stem + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    variants = []
    for i, part in enumerate(plan(scn, split, warmup_ms)):
        data = part_data(scn, text, part)
        parse_scenario(data, source=f"--split part {i}")
        rid = f"{scn.name}-{run_hash(data)}"
        variants.append(Variant(index=i, params={"start": data["start"], "duration": data["duration"]},
                                data=data, run_id=rid, path=parts_dir / f"{rid}.h5"))
    todo = [v for v in variants if not is_completed(v.path)]
    t0 = time.perf_counter()
    if todo:
        spec = SweepSpec(name=f"{scn.name}-split", base=scn.name,
                         parameters={"start": [v.params["start"] for v in variants]})
        _execute(spec, variants, todo, workers, scheduler, progress)
    failed = [v for v in todo if v.status != "completed"]
    if failed:
        from cosim.runner import RunFailed

        raise RunFailed(f"--split: part {failed[0].index} ({failed[0].params['start']}) failed: {failed[0].error}")
    stitch([v.path for v in variants], path, text)
    return path, time.perf_counter() - t0


def _id_bytes(f: h5py.File, name: str) -> list[bytes]:
    """Column ids of a part's series, numbered when the part has none."""
    ids = series_ids(f, name)
    return [i.encode() for i in ids] if ids is not None else [b"%d" % j for j in range(f[name].shape[1])]


def _runs(cols: list[int]) -> list[tuple[int, int, int]]:
    """(source start, target start, length) of the contiguous runs of a column mapping."""
    out: list[tuple[int, int, int]] = []
    for j, c in enumerate(cols):
        if out and out[-1][0] + out[-1][2] == j and out[-1][1] + out[-1][2] == c:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
        else:
            out.append((j, c, 1))
    return out


def stitch(part_paths: list[Path], out: Path, text: str) -> None:
    """Write *out*: virtual datasets over the parts' rows (see the module docstring)."""
    files = [h5py.File(p, "r") for p in part_paths]
    try:
        starts = [dt.datetime.fromisoformat(str(f.attrs["start"])) for f in files]
        offsets = [int((s - starts[0]).total_seconds() * 1000) for s in starts]
        times = [np.asarray(f["time"][()], dtype=np.int64) for f in files]
        last = len(files) - 1
        spans = []  # (first row, end row, first ms, end ms) of each part's contribution, in its own clock
        for k, (f, t) in enumerate(zip(files, times)):
            w0, w1 = int(f.attrs["eval_start_ms"]), int(f.attrs["eval_end_ms"])
            i0 = 0 if k == 0 else int(np.searchsorted(t, w0))
            i1 = len(t) if k == last else int(np.searchsorted(t, w1))
            spans.append((i0, i1, -np.inf if k == 0 else w0, np.inf if k == last else w1))
        rows = [i1 - i0 for i0, i1, _, _ in spans]
        T = sum(rows)
        tmp = out.with_name(out.name + ".tmp")
        with h5py.File(tmp, "w", libver="latest") as g:
            g.attrs.update(dict(files[0].attrs))
            g.attrs.update(
                scenario=text, steps=T, eval_end_ms=offsets[-1] + int(files[-1].attrs["eval_end_ms"]),
                status="completed" if all(str(f.attrs.get("status")) == "completed" for f in files) else "failed",
                finished_at=str(files[-1].attrs.get("finished_at", "")),
                **{PARTS_ATTR: json.dumps([{"file": source_path(p, out), "start": s.isoformat(), "offset_ms": o,
                                            "rows": n} for p, s, o, n in zip(part_paths, starts, offsets, rows)])})
            tds = g.create_dataset("time", data=np.concatenate(
                [t[i0:i1] + o for t, (i0, i1, _, _), o in zip(times, spans, offsets)]))
            tds.attrs.update(dict(files[0]["time"].attrs))
            names = sorted({n for f in files for n in series_names(f)})
            for name in names:
                have = [k for k, f in enumerate(files) if name in f]
                ids: dict[bytes, int] = {}
                cols = {}
                for k in have:
                    cols[k] = [ids.setdefault(i, len(ids)) for i in _id_bytes(files[k], name)]
                if name.rpartition("/")[2] in CUMULATIVE:
                    _continued(g, name, files, have, cols, spans, len(ids))
                    _copy_ids_and_attrs(g, name, files[have[0]], ids)
                    continue
                layout = h5py.VirtualLayout(shape=(T, len(ids)), dtype="f8")
                for k in have:
                    i0, i1, _, _ = spans[k]
                    row0 = sum(rows[:k])
                    ds = files[k][name]
                    src = h5py.VirtualSource(source_path(part_paths[k], out), name, shape=ds.shape)
                    for s0, c0, n in _runs(cols[k][: ds.shape[1]]):
                        layout[row0:row0 + i1 - i0, c0:c0 + n] = src[i0:i1, s0:s0 + n]
                g.create_virtual_dataset(name, layout, fillvalue=np.nan)
                _copy_ids_and_attrs(g, name, files[have[0]], ids)
            streams = sorted({s for f in files for s in (f["events"].keys() if "events" in f else [])})
            for stream in streams:  # appended part by part, batch by batch: a year's streams hold gigabytes
                ds = create_event_stream(g, stream)
                for k, f in enumerate(files):
                    if stream in f.get("events", {}):
                        for recs in record_batches(f["events"][stream]):
                            lines = _part_events(recs, k, spans[k][2], spans[k][3], offsets[k])
                            append_events(ds, "".join(lines).encode())
                write_event_table(g, stream)
        tmp.replace(out)
    finally:
        for f in files:
            f.close()


def _copy_ids_and_attrs(g: h5py.File, name: str, first: h5py.File, ids: dict[bytes, int]) -> None:
    g[name].attrs.update(dict(first[name].attrs))
    group, _, attr = name.rpartition("/")
    g.require_group(f"{group}/_ids").create_dataset(attr, data=np.array(list(ids), dtype=ID_DTYPE))


def _continued(g: h5py.File, name: str, files: list[h5py.File], have: list[int], cols: dict[int, list[int]],
               spans: list[tuple], n: int) -> None:
    """A cumulative series (meter registers, message counters; each part's start from zero) as a real
    dataset that continues across parts: part k is offset by what the previous part had counted at
    the boundary (its reading at its window's end: every part but the last runs past it)."""
    blocks, offset, prev_end = [], np.zeros(n), None
    for k in have:
        i0, i1, _, _ = spans[k]
        ds = files[k][name]
        full = np.full((ds.shape[0], n), np.nan)
        m = min(ds.shape[1], len(cols[k]))
        full[:, cols[k][:m]] = ds[()][:, :m]
        if prev_end is not None:
            offset = offset + np.nan_to_num(prev_end - full[i0], nan=0.0)
        blocks.append(full[i0:i1] + offset)
        prev_end = full[min(i1, len(full) - 1)]
    g.create_dataset(name, data=np.vstack(blocks), compression="gzip", compression_opts=1, fillvalue=np.nan)


def _part_events(recs: list[dict], k: int, lo: float, hi: float, offset: int) -> list[str]:
    """JSON lines of one part's events (*recs*) in its contribution [lo, hi) (the time an event is
    about, as Results.in_window), times shifted by *offset*, ids of later parts prefixed."""
    out = []
    for rec in recs:
        t = event_time(rec)
        if isinstance(t, (int, float)) and not lo <= t < hi:
            continue
        for key in TIME_KEYS:
            if isinstance(rec.get(key), (int, float)) and not isinstance(rec.get(key), bool):
                rec[key] = rec[key] + offset
        if k:
            for key in ID_KEYS:
                if isinstance(rec.get(key), str):
                    rec[key] = f"p{k}/{rec[key]}"
        out.append(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
    return out


def missing_sources(path: str | Path, attrs: dict, f) -> str | None:
    """One line naming the files a stitched results file or a substation view (open as *f*) reads through
    its virtual datasets and that are not there; None when all are (or for an ordinary file). Without
    them HDF5 reads the virtual datasets' fill value: NaN, silently."""
    folder = Path(path).resolve().parent
    if parts := attrs.get(PARTS_ATTR):
        what, keep = "stitched results file without its part file", "the .parts folder"
        files = [p["file"] for p in json.loads(parts)]
    elif attrs.get("view") == "substations" and "substation_index" in f:
        what, keep = "substation view without its substation file", f"the {Path(path).stem}_substations folder"
        files = [r["file"].decode() for r in f["substation_index"][()] if r["status"] == b"completed"]
    else:
        return None
    missing = [x for x in files if not (folder / x).exists()]
    if not missing:
        return None
    return f"{path}: {what} {missing[0]} ({len(missing)} missing; keep {keep} beside it)"
