"""Many substations in one scenario (``substations:``): expansion, seeds and parallel runs on dask.

A scenario with ``substations`` describes N MV/LV substations compactly, as groups of ``count`` copies of
one template (grid, districts with one LFA each, DSO); every other top-level field (time, control,
telecom, economics, evaluation, record) is shared. Substations are electrically independent below the
MV busbar: every LV network here is fed by an ``ext_grid`` of fixed voltage at its transformer's MV side
(a stiff MV grid), and a substation's LFAs and DSO only deal with its own homes. So the scenario
expands into one ordinary scenario per substation, and those run as independent processes: on a local
dask cluster or on a given scheduler (``--scheduler tcp://HOST:8786``), through the sweep's executor
(:func:`cosim.sweep.execute`). :mod:`cosim.substation_view` stitches their files into one results view.

Substation *i* (in the order of the groups, then ``NAME_000, NAME_001, ...``) gets the seed
:func:`substation_seed` ``(seed, i)``: results do not depend on the number of workers or the order in
which they finish, and a group appended at the end leaves the other substations' results unchanged.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from cosim.errors import InputError
from cosim.scenario import MAX_SEED, Scenario, ScenarioError

SEP = "/"  # substation id and device id in the view: "vorstadt1_003/d1.h007"


@dataclass
class Substation:
    index: int
    id: str
    group: str
    network: str
    households: int
    seed: int
    data: dict  # the substation's own scenario (YAML mapping)
    path: Path | None = None
    status: str = "pending"
    error: str = ""
    wall_s: float | None = None
    cpu_s: float | None = None  # CPU time of its worker process while it ran (the machine's load aside)
    cached: bool = False
    summary: dict = field(default_factory=dict)


def substation_seed(seed: int, index: int) -> int:
    """Seed of substation *index*: a numpy SeedSequence of (scenario seed, index), 63 bits (independent
    streams for any two indices; numpy's documented way of spawning seeds)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]) & MAX_SEED


def expand(data: dict) -> list[Substation]:
    """The substations of a scenario mapping (validated or not), each as its own scenario mapping."""
    base = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("substations", "output")}
    out = []
    for group in data.get("substations") or []:
        width = len(str(max(int(group["count"]) - 1, 0)))
        for k in range(int(group["count"])):
            sid, i = f"{group['name']}_{k:0{width}d}", len(out)
            sub = copy.deepcopy(base)
            sub.update(name=f"{data['name']}-{sid}", seed=substation_seed(int(data["seed"]), i),
                       grid=copy.deepcopy(group["grid"]), districts=copy.deepcopy(group["districts"]))
            if group.get("dso") is not None:
                sub["dso"] = copy.deepcopy(group["dso"])
            out.append(Substation(i, sid, group["name"], str(group["grid"]["network"]),
                                  sum(int(d["households"]) for d in group["districts"]), sub["seed"], sub))
    return out


def check_groups(data: dict, source: str) -> None:
    """Validate the first substation of every group as the scenario it runs (cross-field rules such as
    a DSO needing control, or grid.mapping naming the group's households)."""
    from cosim.scenario import parse_scenario

    lines, seen = [], set()
    for sub in expand(data):
        if sub.group in seen:
            continue
        seen.add(sub.group)
        try:
            parse_scenario(sub.data, f"{source}: substations[{len(seen) - 1}] ({sub.group})")
        except ScenarioError as exc:
            lines += exc.lines
    if lines:
        raise ScenarioError(lines)


def selection(data: dict, spec: str) -> Callable[[Substation], bool]:
    """The substations ``cosim run --substations SPEC`` names: comma-separated substation ids
    (``dorf_0``) or group names (``dorf``: all of it). An unknown name is an InputError naming it."""
    subs = expand(data)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    ids, group_names = {s.id for s in subs}, {s.group for s in subs}
    unknown = [n for n in names if n not in ids and n not in group_names]
    if not names or unknown:
        groups = {}
        for s in subs:
            groups.setdefault(s.group, []).append(s.id)
        have = ", ".join(f"{g} ({ids[0]}..{ids[-1]})" if len(ids) > 1 else f"{g} ({ids[0]})"
                         for g, ids in groups.items())
        what = f"no substation or group {', '.join(map(repr, unknown))}" if unknown else "no names given"
        raise InputError(f"--substations: {what} in {data.get('name')}; groups: {have}")
    both = sorted(set(names) & ids & group_names)
    if both:
        raise InputError(f"--substations: {', '.join(map(repr, both))} is both a group and a substation id in "
                         f"{data.get('name')}; rename the group")
    chosen = set(names)
    return lambda s: s.id in chosen or s.group in chosen


def check_selection_folder(data: dict, only: Callable[[Substation], bool], folder: Path) -> None:
    """A selection run into the whole run's *folder* must not replace a finished file of another scenario
    (another ``--until``, ``--seed``, ``--control``, ``--aggregate`` or an edited file): the whole run's
    view reads it. InputError naming the first such file."""
    for s in expand(data):
        path = folder / f"{s.id}.h5"
        recorded = _completed_scenario(str(path)) if only(s) else None
        if recorded is not None and recorded != yaml.safe_dump(s.data, sort_keys=False):
            raise InputError(f"--substations: {path} is a finished run of {s.id} for another scenario (another "
                             "--until, --seed, --control, --aggregate or an edited file), which the whole run's "
                             "view reads; give --out to run the selection into a folder of its own")


def selection_view(view: Path) -> Path:
    """Where ``--substations`` writes its view by default: beside the whole run's, never over it
    (``<stem>_selection.h5``); the substations' files go to the whole run's folder, which reuses them."""
    return view.parent / f"{view.stem}_selection.h5"


def describe(scn: Scenario) -> str:
    """One line: substations, households, networks (``cosim validate``)."""
    groups = ", ".join(f"{g.count} x {g.grid.network}" for g in scn.substations)
    n = sum(g.count for g in scn.substations)
    hh = sum(g.count * sum(d.households for d in g.districts) for g in scn.substations)
    return f"{n} substations ({groups}), {hh} households"


# ---------------------------------------------------------------------------- work unit (runs on a worker)


def summarise(out: str, _extra: Any = ()) -> dict:
    """What the view needs of a finished substation file: its KPIs and its households' total P (kW)
    per recorded row of the whole simulated period (the coincident peak of all substations)."""
    from cosim.kpi import compute_kpis, energy_data
    from cosim.results import Results

    with Results(out, window=False) as res:
        en = energy_data(res)
        p = en.P.sum(axis=1).tolist() if en is not None else []
    return {"kpis": compute_kpis(out), "P_total": p}


def _completed_scenario(out: str) -> str | None:
    """The scenario text recorded in *out* if it is a completed results file, else None."""
    from cosim.results import read_attrs

    if not Path(out).exists():
        return None
    try:
        attrs = read_attrs(out)
    except InputError:
        return None
    return str(attrs.get("scenario")) if str(attrs.get("status")) == "completed" else None


def run_substation(data: dict, out: str) -> dict:
    """Run one substation into *out* and summarise it (a completed file of the same scenario is reused);
    never raises (see :func:`cosim.sweep.run_variant`)."""
    from cosim.sweep import run_variant

    if _completed_scenario(out) == yaml.safe_dump(data, sort_keys=False):
        try:
            return {"status": "completed", "error": "", "wall_s": None, "kpis": summarise(out), "cached": True}
        except Exception:  # noqa: BLE001 - unreadable: run it again
            pass
    cpu = time.process_time()
    return run_variant(data, out, [], summarise) | {"cpu_s": round(time.process_time() - cpu, 3)}


# ---------------------------------------------------------------------------- driver


@dataclass
class SubstationsResult:
    path: Path  # the results view
    folder: Path  # the substations' own files
    substations: list[Substation]
    wall_s: float

    @property
    def failed(self) -> list[Substation]:
        return [s for s in self.substations if s.status != "completed"]


def folder_of(view: Path) -> Path:
    """Where the substations' own files go: next to the view, ``<stem>_substations/``."""
    return view.parent / f"{view.stem}_substations"


def run_substations(scn: Scenario, text: str, out: str | Path | None = None, workers: int | None = None,
                    scheduler: str | None = None, progress: bool = True,
                    only: Callable[[Substation], bool] | None = None,
                    folder: str | Path | None = None) -> SubstationsResult:
    """Run every substation of *scn* (effective YAML *text*) on dask and write the results view. With
    *only*, just the substations it accepts, each with the id and seed it has in the whole scenario (a
    sample of it, as ``benchmarks/bench_scale.py --count`` takes); the view then holds them alone.
    The substations' files go to *folder* (default: :func:`folder_of` the view)."""
    from cosim.output_path import check_output
    from cosim.scenario import read_yaml
    from cosim.substation_view import write_view
    from cosim.sweep import execute

    view = Path(out) if out else scn.output_path()
    check_output(view)
    folder = Path(folder or folder_of(view)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    subs = [s for s in expand(read_yaml(text, scn.name)) if only is None or only(s)]
    for s in subs:
        s.path = folder / f"{s.id}.h5"
    t0 = time.perf_counter()

    def done(i: int, r: dict) -> str:
        s = subs[i]
        s.status, s.error, s.wall_s, s.cpu_s = r["status"], r["error"], r["wall_s"], r.get("cpu_s")
        s.cached, s.summary = bool(r.get("cached")), r.get("kpis") or {}
        if s.status == "completed" and not Path(s.path).exists():
            s.status, s.error = "failed", (f"{s.path} is not visible here: the workers need the output folder "
                                           "on a shared path")
        return f"{sum(x.status == 'failed' for x in subs)} failed"

    execute(run_substation, [(s.id, (s.data, str(s.path))) for s in subs], workers, scheduler,
            f"{scn.name}: {len(subs)} substations", progress, done)
    wall = time.perf_counter() - t0
    write_view(view, text, scn.seed, subs, wall)
    return SubstationsResult(view, folder, subs, wall)
