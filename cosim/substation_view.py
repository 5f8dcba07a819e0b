"""One results view over the files of many substations (:mod:`cosim.substations`), and its KPIs.

The view is an ordinary results file (read by :class:`cosim.results.Results`, ``cosim.load``,
``cosim kpis``) whose data live in the substations' own files:

* ``/time`` and the window attributes: those of the substations (all share one time axis);
* ``/<population>/<attr>``: an HDF5 virtual dataset (h5py VDS) that puts the columns of every
  substation's ``/<population>/<attr>`` side by side; ``/<population>/_ids/<attr>`` names them
  ``<substation>/<device>`` (``vorstadt1_003/d1.h007``). Source files are referenced by paths relative to
  the view, so the view and its ``<stem>_substations/`` folder can move together;
* ``/substations/P``: each substation's households' total power (kW, one column per substation);
* ``/substation_index``: one row per substation (id, group, network, households, seed, file, status,
  wall and CPU time, error); ``/substation_kpis``: each substation's KPIs (JSON, as ``cosim kpis --json``).

Event streams stay in the substations' files (their agent ids are per substation).

KPIs of the view (:func:`view_kpis`) aggregate the substations': energies, money, violation minutes and
counts are summed; ratios are weighted means with the weight of their definition (self-consumption by
PV energy, self-sufficiency by consumption, battery cycles by batteries, loss rate by messages sent,
mean latency by messages delivered, mean rounds by negotiations); maxima and minima are taken over
substations; peak, mean and peak-to-average ratio are those of the summed power of all substations
(coincident); percentiles and whatever differs between substations otherwise are not aggregated (``None``,
named under ``not_available``). ``substations`` lists each substation's own violation minutes and key
numbers; ``violations`` counts the substations with any.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cosim.errors import InputError
from cosim.results import NOT_POPULATIONS, flatten, open_file, series_ids, series_names, source_path

VIEW = "substations"  # the file attribute ``view`` of a view; also its use case and the P population
SKIP = (*NOT_POPULATIONS, VIEW)


def _columns(f: h5py.File) -> dict[tuple[str, str], tuple[tuple, list[str], str]]:
    """(population, attr) -> (shape, ids, unit) of every ``pop/attr`` series of a results file."""
    out = {}
    for name in series_names(f):
        pop, _, attr = name.partition("/")
        ds = f[name]
        if pop in SKIP or not attr or "/" in attr or ds.shape[1] == 0:
            continue
        ids = series_ids(f, name) or []
        n = min(len(ids), ds.shape[1])
        out[(pop, attr)] = (ds.shape, ids[:n], str(ds.attrs.get("unit", "")))
    return out


def write_view(path: Path, text: str, seed: int, subs: list, wall_s: float) -> None:
    """Write the view of the substations *subs* (:class:`cosim.substations.Substation`) to *path*."""
    from cosim.provenance import provenance

    done = [s for s in subs if s.status == "completed"]
    series: dict[tuple[str, str], list] = {}
    lv: list[str | None] = []  # each substation's LV buses (monitored_buses), if its file has them
    t = first = None
    for s in done:
        with open_file(s.path) as f:
            lv.append(f.attrs.get("monitored_buses"))
            times = np.asarray(f["time"][()], dtype=np.int64)
            if t is None:
                t, first = times, {k: f.attrs[k] for k in ("start", "step_ms", "eval_start_ms", "eval_end_ms",
                                                           "steps") if k in f.attrs}
            else:  # each substation stops where its window's numbers are final (its DSO's orders settled):
                n = min(len(t), len(times))  # the view ends at the first stop, after every window
                if not np.array_equal(times[:n], t[:n]):
                    raise InputError(f"{s.path}: its time axis differs from {done[0].path}'s: not one view")
                t = t[:n]
            rel = source_path(s.path, path)
            for key, (shape, ids, unit) in _columns(f).items():
                series.setdefault(key, []).append((rel, shape, [f"{s.id}/{i}" for i in ids], unit))
    failed = [s for s in subs if s.status != "completed"]
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs.update(provenance(text, seed))
        f.attrs.update(view=VIEW, substations=len(subs), wall_s=round(wall_s, 3),
                       status="failed" if failed else "completed",
                       error="; ".join(f"{s.id}: {s.error}" for s in failed)[:4000])
        if lv and all(lv):  # named as the view's columns (Results.monitored_buses); a file without: none
            f.attrs["monitored_buses"] = json.dumps([f"{s.id}/{b}" for s, own in zip(done, lv)
                                                     for b in json.loads(own)])
        if t is not None:
            f.attrs.update(first)
            f.attrs["steps"] = len(t)
            f.create_dataset("time", data=t).attrs.update(unit="ms", start=first["start"])
            for (pop, attr), parts in sorted(series.items()):
                _virtual(f.require_group(pop), attr, len(t), parts)
            totals = np.full((len(t), len(done)), np.nan)
            for j, s in enumerate(done):
                p = np.asarray(s.summary.get("P_total") or [], dtype=float)[: len(t)]
                totals[: len(p), j] = p
            g = f.require_group(VIEW)
            g.create_dataset("P", data=totals).attrs.update(unit="kW", population=VIEW, attr="P")
            g.require_group("_ids").create_dataset("P", data=np.array([s.id.encode() for s in done]))
        else:
            f.create_dataset("time", data=np.zeros(0, dtype=np.int64))
        f.create_dataset("substation_index", data=_index(subs, path))
        raw = json.dumps({s.id: s.summary.get("kpis") or {} for s in done}, separators=(",", ":"))
        f.create_dataset("substation_kpis", data=np.frombuffer(raw.encode(), dtype=np.uint8),
                         compression="gzip", compression_opts=1)


def _virtual(g: h5py.Group, attr: str, T: int, parts: list) -> None:
    n = sum(len(ids) for _, _, ids, _ in parts)
    layout = h5py.VirtualLayout(shape=(T, n), dtype="f8")
    off = 0
    for rel, shape, ids, _ in parts:
        src = h5py.VirtualSource(rel, f"{g.name}/{attr}", shape=shape)
        layout[:, off:off + len(ids)] = src[:T, :len(ids)]
        off += len(ids)
    ds = g.create_virtual_dataset(attr, layout, fillvalue=np.nan)
    ds.attrs.update(unit=parts[0][3], population=g.name.strip("/"), attr=attr)
    ids = [i.encode() for _, _, part, _ in parts for i in part]
    g.require_group("_ids").create_dataset(attr, data=np.array(ids, dtype=f"S{max(map(len, ids))}"))


def _index(subs: list, path: Path) -> np.ndarray:
    def s(v: Any) -> bytes:
        return str(v).encode()

    rows = [(s(x.id), s(x.group), s(x.network), x.households, x.seed, s(source_path(x.path, path)),
             s(x.status), np.nan if x.wall_s is None else float(x.wall_s),
             np.nan if x.cpu_s is None else float(x.cpu_s), s(x.error[:500])) for x in subs]
    names = ["id", "group", "network", "households", "seed", "file", "status", "wall_s", "cpu_s", "error"]
    width = {n: max([1] + [len(r[i]) for r in rows]) for i, n in enumerate(names) if isinstance(rows[0][i], bytes)} \
        if rows else {}
    dtype = [(n, f"S{width[n]}" if n in width else ("f8" if n in ("wall_s", "cpu_s") else "i8")) for n in names]
    return np.array(rows, dtype=dtype)


# ---------------------------------------------------------------------------- reading


def is_view(res) -> bool:
    return res.attrs.get("view") == VIEW


def index(res) -> list[dict]:
    """The rows of ``/substation_index`` as dicts (bytes decoded)."""
    table = res.f["substation_index"][()]
    return [{n: (r[n].decode() if isinstance(r[n], bytes) else r[n].item()) for n in table.dtype.names}
            for r in table]


def substation_kpis(res) -> dict[str, dict]:
    """substation id -> its KPIs (as ``cosim kpis --json`` of its own file)."""
    return json.loads(bytes(res.f["substation_kpis"][()]).decode())


SUMMED_SUFFIXES = ("_kwh", "_eur", "_min", "_kh", "_kva", "_steps")
COUNTS = {"households", "batteries", "heat_pumps", "negotiations", "negotiations_partial", "negotiations_failed",
          "requests", "offers", "orders", "settlements", "messages_sent", "messages_delivered", "messages_lost",
          "bytes_sent"}
WEIGHTS = {"self_consumption": "pv_kwh", "self_sufficiency": "consumption_kwh", "battery_efc": "batteries",
           "loss_rate": "messages_sent", "latency_mean_ms": "messages_delivered", "rounds_mean": "negotiations",
           "gap_mean_pct": "negotiations"}
SETTINGS = {"objective_netting_min", "terminal_price_eur_per_kwh"}  # names like sums, values are settings
COINCIDENT = ("peak_kw", "peak_15min_kw", "mean_kw", "par")  # total.*: from the summed power
VIOLATIONS = ("congestion_min", "trafo_overload_min", "line_overload_min", "v_violation_min")


def _nested(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, v in flat.items():
        *path, last = key.split(".")
        d = out
        for p in path:
            if not isinstance(d.get(p), dict):  # None in one substation, a mapping in another
                d[p] = {}
            d = d[p]
        if not isinstance(d.get(last), dict):
            d[last] = v
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _combine(key: str, values: list, flats: list[dict]) -> tuple[Any, str | None]:
    """The aggregate of one flat KPI over substations, or (None, why)."""
    parts = key.split(".")
    last, parent = parts[-1], (parts[-2] if len(parts) > 1 else "")
    nums = [v for v in values if _number(v)]
    if last.endswith("_ok") and all(isinstance(v, bool) for v in values):
        return all(values), None
    if "range" in last and all(isinstance(v, list) and len(v) == 2 and all(map(_number, v)) for v in values):
        return [round(float(sum(v[i] for v in values)), 6) for i in (0, 1)], None  # the bounds of the sum
    if not nums:
        return (values[0], None) if all(v == values[0] for v in values) else (None, "differs between substations")
    if ((last.endswith(SUMMED_SUFFIXES) or last in COUNTS or parent == "by_kind"
         or parent.endswith("_min_by_phase")) and last not in SETTINGS):
        # rounded: the parts carry at most 4 decimals, and a float sum adds noise in the 15th digit
        return round(float(np.sum(nums)), 6) if any(isinstance(v, float) for v in nums) else int(np.sum(nums)), None
    if last in WEIGHTS:
        wkey = key[: len(key) - len(last)] + WEIGHTS[last]
        pairs = [(v, f.get(wkey)) for v, f in zip(values, flats) if _number(v) and _number(f.get(wkey))]
        wsum = sum(w for _, w in pairs)
        return (round(sum(v * w for v, w in pairs) / wsum, 4), None) if wsum > 0 else (None, "no weight")
    if last == "max" or last.startswith("v_max") or last.endswith(("_max", "_max_pct")):
        return max(nums), None
    if last == "min" or last.startswith("v_min") or last.endswith("_min_pu"):
        return min(nums), None
    if all(v == values[0] for v in values):
        return values[0], None
    return None, "differs between substations (percentiles and settings are not aggregated; see substations)"


def view_kpis(res) -> dict:
    """KPIs of a view (module docstring: what is summed, weighted, coincident)."""
    from cosim.kpi import _f, _par, quarter_means

    rows = index(res)
    kpis = substation_kpis(res)
    na: dict[str, str] = {}
    flats = [flatten({k: v for k, v in kpis[sid].items() if k not in ("run", "households", "districts",
                                                                    "not_available")})
             for sid in kpis]
    keys = list(dict.fromkeys(k for fl in flats for k in fl))
    agg = {}
    for key in keys:
        agg[key], why = _combine(key, [fl.get(key) for fl in flats], flats)
        if why and not key.startswith(("flexibility.agents.", "mas.agents.")):
            na[key] = why
    p = res.series(VIEW, "P")
    if p is not None and res.T:
        total = np.nansum(p.values, axis=1)
        peak, mean = float(total.max()), float((total * res.dt_h).sum() / max(res.duration_h, 1e-12))
        qm, _ = quarter_means(res, total)
        agg.update({"total.peak_kw": _f(peak, 3), "total.peak_15min_kw": _f(qm.max() if qm.size else None, 3),
                    "total.mean_kw": _f(mean, 4), "total.par": _par(peak, mean)})
        for k in COINCIDENT:
            na.pop(f"total.{k}", None)
    out = _nested({k: v for k, v in agg.items() if not k.startswith(("flexibility.agents.", "mas.agents."))})
    out["households"] = {f"{sid}/{h}": v for sid in kpis for h, v in (kpis[sid].get("households") or {}).items()}
    out["districts"] = {f"{sid}/{d}": v for sid in kpis for d, v in (kpis[sid].get("districts") or {}).items()}
    per = {}
    for r in rows:
        k = kpis.get(r["id"], {})
        g, tot = k.get("grid") or {}, k.get("total") or {}
        per[r["id"]] = {"network": r["network"], "households": r["households"], "status": r["status"],
                        "wall_s": None if np.isnan(r["wall_s"]) else r["wall_s"],
                        "import_kwh": tot.get("import_kwh"), "peak_kw": tot.get("peak_kw"),
                        "trafo_loading_max_pct": (g.get("trafo_loading_pct") or {}).get("max"),
                        **{v: g.get(v) for v in VIOLATIONS},
                        "flex_delivered_kwh": (k.get("flexibility") or {}).get("delivered_kwh")}
    out["substations"] = per
    out["violations"] = {v: sum(1 for s in per.values() if (s.get(v) or 0) > 0) for v in VIOLATIONS}
    failed = [r for r in rows if r["status"] != "completed"]
    out["run"] = {"file": res.path, "name": res.scenario.name if res.scenario else None, "status": res.status,
                  "error": res.attrs.get("error") or None, "seed": res.attrs.get("seed"),
                  "start": res.window_start.isoformat() if res.start else None, "duration_h": _f(res.duration_h, 4),
                  "rows": res.T, "record_s": _f(res.record_ms / 1000.0, 3), "use_case": VIEW,
                  "control_mode": (res.scenario.control.mode if res.scenario and res.scenario.control else None),
                  "substations": len(rows), "failed": len(failed),
                  "households": int(sum(r["households"] for r in rows)), "populations": res.populations(),
                  "events": [], "wall_s": res.attrs.get("wall_s")}
    if failed:
        na["substations"] = f"{len(failed)} substation(s) failed: not in the totals ({', '.join(r['id'] for r in failed[:5])})"
    out["not_available"] = na
    return out


def view_text(kpis: dict) -> str:
    """Text report of a view's KPIs: totals, then one row per substation."""
    from cosim.kpi import GROUP_KPIS, KEY_KPIS, lookup
    from cosim.kpi_text import text_table

    run = kpis["run"]
    out = [f"{run['file']}: {run.get('name')}, {run['substations']} substations ({run['failed']} failed), "
           f"{run['households']} households, status {run.get('status')}, {run.get('duration_h')} h",
           "", "Energy (all substations)",
           text_table(["KPI", "unit", "total"], [[lab, u, (kpis.get("total") or {}).get(k)] for k, lab, u in GROUP_KPIS],
                      left=(0, 1))]
    rest = [[lab, u, lookup(kpis, k)] for k, lab, u in KEY_KPIS if not k.startswith("total.")]
    out += ["", "Grid, flexibility, MAS, telecom (summed; maxima over substations)",
            text_table(["KPI", "unit", "value"], [r for r in rest if r[2] is not None], left=(0, 1))]
    cols = ["network", "households", "status", "wall_s", "peak_kw", "trafo_loading_max_pct", *VIOLATIONS]
    out += ["", "Substations (violation minutes each; substations with any: "
            + ", ".join(f"{v} {n}" for v, n in kpis["violations"].items()) + ")",
            text_table(["substation", *cols], [[sid, *(s.get(c) for c in cols)] for sid, s in kpis["substations"].items()],
                       left=(0, 1, 3))]
    return "\n".join(out)
