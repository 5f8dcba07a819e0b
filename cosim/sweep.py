"""Parameter sweeps on dask.distributed (`cosim sweep SWEEP.yaml`).

A sweep file names a base scenario and the parameters to vary, by dotted path into the scenario::

    name: pv_battery
    base: demo_district            # bundled name, or a path (relative to this file or the cwd)
    set: {duration: 6h}            # fixed changes applied to every run (dotted paths too)
    mode: grid                     # grid = every combination; random = `samples` seeded draws
    parameters:
      districts[0].shares.pv: [0.2, 0.6]
      districts[0].shares.battery: [0.0, 0.5]
    # mode: random, samples: 8, seed: 1, and ranges: {min: 0.1, max: 0.9} (add integer: true)
    out: results/sweeps/pv_battery  # default results/sweeps/<name>
    kpis: [total.peak_15min_kw]     # extra KPI columns in the summary (dotted keys of `cosim kpis --json`)

Every variant is validated with the scenario schema before anything is submitted; a bad path or
value stops the sweep with one line naming it. Each run writes ``<out>/<scenario>-<hash>.h5`` where
the hash is of the run's full effective scenario, so a re-run finds its finished files
(status ``completed``) and skips them; a failed run is retried. Runs execute on a
``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`` bound to 127.0.0.1 (mosaik is not
thread-safe: one run per process at a time) or on a given scheduler (``tcp://HOST:PORT``; its workers
need this package installed and the output directory on a shared path). A failed run does not stop the
sweep: it gets status ``failed`` and its error in the summary (``summary.csv``, plus
``summary.parquet`` when pyarrow is importable): one row per run with its parameters, status, wall
time and key KPIs.

Ctrl-C (or SIGTERM) stops a sweep cleanly: runs not started do not start, each running run stops at its
next recorded row and closes its file as ``interrupted`` with every completed step (as a `cosim run`
does), the summary is still written with those runs ``interrupted`` and the command exits 130
(:class:`SweepInterrupted`). A re-run runs them again.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cosim.errors import InputError
from cosim.overrides import set_path
from cosim.replicates import REPLICATE, replicate_rows
from cosim.results import read_attrs

SUMMARY_KPIS = [
    "total.bill_eur", "total.self_sufficiency", "total.self_consumption", "total.peak_kw", "total.par",
    "total.battery_efc", "total.comfort_violation_kh", "grid.losses_kwh", "grid.trafo_loading_pct.max",
    "grid.congestion_min", "grid.v_violation_min", "flexibility.delivered_kwh", "mas.gap_mean_pct", "total.cost_eur", "total.objective_eur",
    "telecom.messages_sent", "telecom.latency_ms.p99",
    "run.window_h", "run.objective_id",  # what a cost is over and how it is valued (cosim.objective)
]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Strict):
    """A uniform range for random sampling."""

    min: float
    max: float
    integer: bool = False

    @field_validator("max")
    @classmethod
    def _order(cls, v, info):
        if "min" in info.data and v < info.data["min"]:
            raise ValueError(f"max ({v}) is below min ({info.data['min']})")
        return v


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    base: str = Field(description="base scenario: bundled name or path")
    set: dict[str, Any] = Field(default_factory=dict, description="fixed changes for every run")
    mode: Literal["grid", "random"] = "grid"
    samples: int | None = Field(None, gt=0, description="number of random draws (mode random)")
    seed: int = Field(0, ge=0, description="seed of the random draws")
    parameters: dict[str, list[Any] | Range] = Field(min_length=1)
    out: str | None = None
    kpis: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------- variants


@dataclass
class Variant:
    index: int
    params: dict[str, Any]
    data: dict
    run_id: str
    path: Path
    status: str = "pending"
    cached: bool = False
    wall_s: float | None = None
    error: str = ""
    kpis: dict[str, Any] = field(default_factory=dict)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def run_hash(data: dict) -> str:
    return hashlib.sha256(_canonical(data).encode()).hexdigest()[:12]


def bundled_sweeps() -> dict[str, Path]:
    """name -> path of the sweep files shipped in scenarios/sweeps/."""
    from importlib import resources

    root = resources.files("scenarios") / "sweeps"
    try:
        return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def load_sweep(path: str | Path) -> tuple[SweepSpec, Path]:
    from cosim.scenario import format_validation_error, read_text_file, read_yaml

    p = Path(path)
    if not p.exists():
        bundled = bundled_sweeps()
        if str(path) not in bundled:
            raise InputError(f"{path}: no such file and no bundled sweep of that name "
                             f"(bundled: {', '.join(sorted(bundled)) or 'none'})")
        p = bundled[str(path)]
    data = read_yaml(read_text_file(p, "a sweep"), str(p))
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a YAML mapping with name, base and parameters")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, str(p))) from None
    return spec, p


def _base_data(spec: SweepSpec, sweep_path: Path) -> tuple[dict, str]:
    from cosim.api import scenario_source
    from cosim.scenario import read_yaml

    ref = spec.base
    local = sweep_path.parent / ref
    if not Path(ref).is_absolute() and local.exists():
        ref = str(local)
    text, source = scenario_source(ref)
    data = read_yaml(text, source)
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a YAML mapping of scenario fields")
    return data, source


def _draw(spec: SweepSpec) -> list[dict[str, Any]]:
    names = list(spec.parameters)
    if spec.mode == "grid":
        for n, v in spec.parameters.items():
            if isinstance(v, Range):
                raise InputError(f"parameters.{n}: a {{min, max}} range needs mode: random")
            if not v:
                raise InputError(f"parameters.{n}: empty list of values")
        return [dict(zip(names, combo)) for combo in itertools.product(*(spec.parameters[n] for n in names))]
    if not spec.samples:
        raise InputError("samples: mode random needs the number of samples")
    rng = np.random.default_rng(spec.seed)
    out = []
    for _ in range(spec.samples):
        d = {}
        for n in names:
            v = spec.parameters[n]
            if isinstance(v, Range):
                d[n] = int(rng.integers(int(v.min), int(v.max) + 1)) if v.integer else \
                    round(float(rng.uniform(v.min, v.max)), 6)
            else:
                if not v:
                    raise InputError(f"parameters.{n}: empty list of values")
                d[n] = copy.deepcopy(v[int(rng.integers(len(v)))])
        out.append(d)
    return out


def expand(spec: SweepSpec, sweep_path: Path, out_dir: Path) -> list[Variant]:
    """Every run of the sweep, validated against the scenario schema."""
    from cosim.scenario import ScenarioError, parse_scenario

    try:
        base, source = _base_data(spec, sweep_path)
        draws = _draw(spec)
    except InputError as exc:  # name the sweep file and, for the base, the field
        raise InputError([line if line.startswith(str(sweep_path)) else f"{sweep_path}: "
                          + ("" if line.startswith(("parameters.", "samples:")) else "base: ") + line
                          for line in exc.lines]) from None
    for p, v in spec.set.items():
        try:
            set_path(base, p, v)
        except ValueError as exc:
            raise InputError(f"{sweep_path}: set.{p}: {exc}") from None
    variants = []
    for i, params in enumerate(draws):
        data = copy.deepcopy(base)
        for p, v in params.items():
            try:
                set_path(data, p, v)
            except ValueError as exc:
                raise InputError(f"{sweep_path}: parameters.{p}: {exc}") from None
        label = ", ".join(f"{k}={_canonical(v)}" for k, v in params.items())
        try:
            scn = parse_scenario(data, source=f"{sweep_path}: run {i} ({label})")
        except ScenarioError as exc:
            raise InputError(exc.lines) from None
        # the scenario's own output is replaced by the sweep's file
        data.pop("output", None)
        rid = f"{scn.name}-{run_hash(data)}"
        variants.append(Variant(index=i, params=params, data=data, run_id=rid, path=out_dir / f"{rid}.h5"))
    return variants


# ---------------------------------------------------------------------------- work units (run on workers)


def summary_kpis(path: str, extra: list[str] | tuple = ()) -> dict[str, Any]:
    from cosim.kpi import compute_kpis, lookup

    k = compute_kpis(path)
    return {key: lookup(k, key) for key in [*SUMMARY_KPIS, *extra]}


def run_variant(data: dict, out: str, extra_kpis: list[str], summarise=summary_kpis) -> dict:
    """Run one variant into *out* and summarise it (``summarise(out, extra_kpis)``, default the summary
    KPIs); never raises (errors become status failed; a run stopped because its sweep was interrupted,
    :func:`stop_runs`, is status interrupted, without KPIs)."""
    import warnings

    from cosim.runner import RunInterrupted

    key = _task_key()
    if key is not None and key in _STOP_KEYS:
        _STOP_KEYS.discard(key)
        return {"status": "interrupted", "error": NOT_STARTED, "wall_s": None, "kpis": {}}
    t0 = time.perf_counter()
    status, error, kpis = "failed", "", {}
    try:
        from cosim.runner import run_scenario
        from cosim.scenario import parse_scenario

        warnings.filterwarnings("ignore")
        logging.getLogger("distributed").setLevel(logging.ERROR)
        scn = parse_scenario(data)
        text = yaml.safe_dump(data, sort_keys=False)
        with _stoppable(key) as stop:
            run_scenario(scn, text, out=out, progress=False, stop=stop)
        status = "completed"
    except (RunInterrupted, KeyboardInterrupt):
        status, error = "interrupted", STOPPED
    except BaseException as exc:  # noqa: BLE001 - a failed run is a result, not a crash of the sweep
        error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500] if str(exc) else type(exc).__name__
    wall = time.perf_counter() - t0
    if status == "completed":
        try:
            kpis = summarise(out, extra_kpis)
        except Exception as exc:  # noqa: BLE001 - a run without its numbers failed the sweep
            status, error = "failed", f"KPIs failed: {type(exc).__name__}: {exc}"[:500]
    return {"status": status, "error": error, "wall_s": round(wall, 3), "kpis": kpis}


# ---------------------------------------------------------------------------- stopping runs (in the workers)

# a sweep's runs, a split's parts and a scenario's substations all run here: the words fit each
NOT_STARTED = "not run: the runs were interrupted"
STOPPED = "stopped: the runs were interrupted; its completed steps are in its file"
STOPPED_BY = "the interrupt of the runs it belongs to (Ctrl-C or SIGTERM)"  # the run file's error: "stopped by ..."
_STOP_KEYS: set[str] = set()  # tasks of this worker process whose sweep was interrupted (stop_runs)
_RUNNING: dict[str, Any] = {}  # key of a task whose run executes here -> its cosim.runner.StopRequest


def _task_key() -> str | None:
    """The key of the dask task this thread executes (None outside a dask worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().get_current_task())
    except (ImportError, ValueError, AttributeError):
        return None


@contextmanager
def _stoppable(key: str | None):
    """The stop request (``run_scenario(stop=...)``) of the run that the block executes for task *key*:
    :func:`stop_runs` sets it, and the runner then stops as on SIGINT, closing its file ``interrupted``."""
    from cosim.runner import StopRequest

    stop = StopRequest()
    if key is None:
        yield stop
        return
    _RUNNING[key] = stop
    try:
        yield stop
    finally:
        _RUNNING.pop(key, None)
        _STOP_KEYS.discard(key)


def stop_runs(keys: list[str]) -> list[str]:
    """Run on each worker (``client.run``) when a sweep is interrupted: its tasks *keys* that have not
    started will not run, those running stop at their next step. Returns the keys running here."""
    _STOP_KEYS.update(keys)
    running = [k for k in keys if k in _RUNNING]
    for k in running:
        _RUNNING[k].request(STOPPED_BY)
    return running


def _ignore_sigint() -> None:
    """In a local worker process: Ctrl-C in the terminal reaches the whole process group, and a worker
    that died of it could not stop its run cleanly; the sweep's own process stops them (:func:`stop_runs`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sidecar(out: str | Path) -> Path:
    return Path(out).with_suffix(".json")


def summarize_existing(out: str, extra_kpis: list[str]) -> dict:
    """Summary of a finished run: wall time from its sidecar JSON (or the file's timestamps)."""
    wall = None
    try:
        wall = json.loads(_sidecar(out).read_text(encoding="utf-8")).get("wall_s")
    except (OSError, ValueError, AttributeError):
        pass
    if wall is None:
        attrs = read_attrs(out)
        a, b = attrs.get("started_at"), attrs.get("finished_at")
        try:
            wall = (dt.datetime.fromisoformat(str(b)) - dt.datetime.fromisoformat(str(a))).total_seconds()
        except (TypeError, ValueError):
            pass
    try:
        return {"status": "completed", "error": "", "wall_s": wall, "kpis": summary_kpis(out, extra_kpis)}
    except Exception as exc:  # noqa: BLE001 - a run without its numbers failed the sweep
        return {"status": "failed", "error": f"KPIs failed: {type(exc).__name__}: {exc}"[:500], "wall_s": wall,
                "kpis": {}}


def is_completed(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        return str(read_attrs(path).get("status", "")) == "completed"
    except InputError:
        return False


# ---------------------------------------------------------------------------- driver


@dataclass
class SweepResult:
    spec: SweepSpec
    out_dir: Path
    variants: list[Variant]
    wall_s: float
    csv_path: Path
    parquet_path: Path | None

    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM: runs it did not finish are ``interrupted``
    unknown_kpis: list[str] = field(default_factory=list)  # one line per ``kpis:`` entry no run has

    @property
    def failed(self) -> int:
        return sum(v.status not in ("completed", "interrupted") for v in self.variants)

    def other_code(self) -> list[Variant]:
        """Runs taken from earlier files that another version of the code made (their recorded git commit
        is not this checkout's): their numbers are that version's."""
        from cosim.provenance import git_commit

        now = git_commit()
        return [v for v in self.variants if v.cached and now and str(read_attrs(v.path).get("git_commit", "")) != now]


def _client(workers: int | None, scheduler: str | None, n_tasks: int):
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        except ValueError as exc:  # no port, a port that is not a number, an unknown protocol
            raise InputError(f"--scheduler {scheduler}: not an address like tcp://HOST:PORT ({exc})") from None
    n = workers or min(os.cpu_count() or 1, max(n_tasks, 1))
    # everything on 127.0.0.1; the scheduler's HTTP endpoint on a free port (None would mean :8787)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        client.run(_ignore_sigint, on_error="ignore", callback_timeout=30)
    except BaseException:
        client.close()
        cluster.close()
        raise
    return client, cluster


def run_sweep(sweep_file: str | Path, workers: int | None = None, scheduler: str | None = None,
              out: str | Path | None = None, progress: bool = True) -> SweepResult:
    spec, sweep_path = load_sweep(sweep_file)
    out_dir = Path(out or spec.out or f"results/sweeps/{spec.name}").resolve()
    variants = expand(spec, sweep_path, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot make the sweep's output directory ({exc.strerror or exc})") from None
    t0 = time.perf_counter()
    for v in variants:
        v.cached = is_completed(v.path)
    first: dict[str, Variant] = {}  # a setting drawn twice is one run: the same scenario, the same file
    for v in variants:
        first.setdefault(v.run_id, v)
    todo = [v for v in first.values() if not v.cached]
    interrupted = False
    check = _KpiCheck(spec.kpis)
    try:
        for v in first.values():
            if v.cached:  # nothing to run for it: summarise here
                _apply(v, summarize_existing(str(v.path), spec.kpis))
                check.run_done(v)
        if todo:
            _execute(spec, variants, todo, workers, scheduler, progress, check)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the summary of what there is, then SweepInterrupted
        interrupted = True
        for v in first.values():
            if v.status == "pending":
                v.status, v.error = "interrupted", NOT_STARTED
    for v in variants:
        rep = first[v.run_id]
        if v is not rep:
            v.cached, v.status, v.error, v.wall_s, v.kpis = rep.cached, rep.status, rep.error, rep.wall_s, rep.kpis
    wall = time.perf_counter() - t0
    if interrupted:
        with _signals_deferred():  # Ctrl-C again must not lose the summary
            csv_path, pq_path = write_summary(spec, variants, out_dir)
    else:
        csv_path, pq_path = write_summary(spec, variants, out_dir)
    result = SweepResult(spec, out_dir, variants, wall, csv_path, pq_path, interrupted, check.lines or [])
    if interrupted:
        raise SweepInterrupted(result)
    return result


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM, after its summary was written; ``result`` is that summary."""

    def __init__(self, result: SweepResult):
        super().__init__("interrupted")
        self.result = result


def _unknown_in(keys: list[str], path: Path) -> list[str]:
    """One line per key of *keys* that names no KPI of the results file *path* (with the nearest names)."""
    import difflib

    from cosim.kpi import compute_kpis

    known: set[str] = set()

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            known.add(prefix + k)
            if isinstance(v, dict):
                walk(v, prefix + k + ".")

    walk(compute_kpis(str(path)), "")
    out = []
    for key in keys:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=3)
            out.append(f"kpis: {key!r} is not a KPI of these runs"
                       + (f" (did you mean {', '.join(near)}?)" if near else " (see `cosim kpis --json`)"))
    return out


def _apply(v: Variant, r: dict) -> None:
    v.status, v.error, v.wall_s, v.kpis = r["status"], r["error"], r["wall_s"], r["kpis"]


STOP_WAIT_S = 30.0  # after Ctrl-C, how long running runs get to close their files (a second Ctrl-C: no longer)


@contextmanager
def _sigterm_interrupts():
    """SIGTERM stops the sweep as Ctrl-C does (main thread only; the previous handler is restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_deferred():
    """While the block runs, Ctrl-C and SIGTERM are noted, not raised, and raised after it (main thread
    only): a cluster whose closing a second Ctrl-C cut short was closed again at exit, 10 s later."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []
    previous = {s: signal.signal(s, lambda signum, frame: noted.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if noted:
        raise KeyboardInterrupt


def _interrupted(error: str) -> dict:
    return {"status": "interrupted", "error": error, "wall_s": None, "kpis": {}}


def _result(fut) -> dict:
    try:
        return fut.result(timeout=30)
    except Exception as exc:  # noqa: BLE001 - e.g. a worker died
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500], "wall_s": None, "kpis": {}}


def _stop(client, pending: dict, on_done) -> None:
    """After Ctrl-C: stop the *pending* tasks (future -> job index; see :func:`stop_runs`), wait at most
    STOP_WAIT_S for the running ones to close their files, and call ``on_done`` for every pending job:
    its result if it has one, else status interrupted."""
    from distributed import wait

    running: set[str] = set()
    try:
        keys = [str(f.key) for f in pending]
        for found in client.run(stop_runs, keys, on_error="ignore", callback_timeout=10).values():
            running.update(found)
        client.cancel([f for f in pending if f.status == "pending" and str(f.key) not in running])
        wait([f for f in pending if str(f.key) in running], timeout=STOP_WAIT_S)
    except (Exception, KeyboardInterrupt):  # noqa: BLE001 - no worker to ask, a timeout, or Ctrl-C again
        pass
    for fut, i in pending.items():
        if fut.status == "finished":
            r = _result(fut)
        elif str(fut.key) in running:
            r = _interrupted("interrupted: its worker was stopped before the run closed its file")
        else:
            r = _interrupted(NOT_STARTED)
        on_done(i, r)


def execute(fn, jobs: list[tuple[str, tuple]], workers: int | None, scheduler: str | None, desc: str,
            progress: bool, on_done) -> None:
    """Run ``fn(*args)`` for every ``(name, args)`` of *jobs* on a dask cluster (:func:`_client`) and call
    ``on_done(i, result)`` as job *i* finishes; a task that raised (e.g. its worker died) gives
    ``{"status": "failed", "error": ..., "wall_s": None, "kpis": {}}``.

    Ctrl-C or SIGTERM: jobs not started do not start, running runs of :func:`run_variant` stop at their
    next recorded row and close their files as interrupted (:func:`_stop`); every job then has had its
    ``on_done`` (status ``interrupted`` if it has no result) and KeyboardInterrupt is raised."""
    with _sigterm_interrupts():
        client, cluster = _client(workers, scheduler, len(jobs))
        try:
            from distributed import as_completed
            from tqdm import tqdm

            futures = {client.submit(fn, *args, pure=False, key=f"run-{name}-{time.time_ns()}"): i
                       for i, (name, args) in enumerate(jobs)}
            pending = dict(futures)
            try:
                with tqdm(total=len(futures), desc=desc, unit="run", disable=not progress,
                          dynamic_ncols=True) as bar:
                    for fut in as_completed(list(futures)):
                        r = _result(fut)
                        bar.set_postfix_str(on_done(pending.pop(fut), r) or "")
                        bar.update(1)
            except KeyboardInterrupt:
                _stop(client, pending, on_done)
                raise
        finally:
            _close(client, cluster)


def _close(client, cluster) -> None:
    with _signals_deferred():
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def _execute(spec: SweepSpec, variants: list[Variant], todo: list[Variant], workers: int | None,
             scheduler: str | None, progress: bool, check: _KpiCheck | None = None) -> None:
    check = check or _KpiCheck(spec.kpis)  # a sweep's own, shared with its kept runs; a split's has no kpis
    def done(i: int, r: dict) -> str:
        v = todo[i]
        _apply(v, r)
        if v.error != NOT_STARTED:
            _write_sidecar(v)
        check.run_done(v)
        return f"{sum(x.status == 'failed' for x in variants)} failed"

    started = time.time()
    try:
        execute(run_variant, [(v.run_id, (v.data, str(v.path), spec.kpis)) for v in todo], workers, scheduler,
                f"sweep {spec.name}", progress, done)
    except KeyboardInterrupt:
        for v in todo:  # the files this sweep wrote say how its unfinished runs ended
            if v.status != "completed" and _written_since(v.path, started):
                _settle(v, spec.kpis)
        raise


class _KpiCheck:
    """The sweep's ``kpis:`` entries, checked once against its first completed run: a misspelt column is
    a warning after one run, not found only after all (the sweep goes on and ends with exit 2);
    ``lines`` holds the problems (None: no run completed yet)."""

    def __init__(self, keys: list[str]):
        self.keys, self.lines = keys, None

    def run_done(self, v: Variant) -> None:
        from tqdm import tqdm

        if self.lines is not None or not self.keys or v.status != "completed":
            return
        self.lines = _unknown_in(self.keys, v.path)
        for line in self.lines:  # tqdm.write: above the progress bar, not through it
            tqdm.write(f"warning: {line}; the sweep goes on (its runs are kept for a corrected sweep)",
                       file=sys.stderr)


def _write_sidecar(v: Variant) -> None:
    try:
        _sidecar(v.path).write_text(json.dumps(
            {"run": v.run_id, "params": v.params, "status": v.status, "wall_s": v.wall_s,
             "error": v.error}, default=str, indent=1), encoding="utf-8")
    except OSError:
        pass


def _written_since(path: Path, t: float) -> bool:
    try:
        return path.stat().st_mtime >= t - 1.0
    except OSError:
        return False


def _settle(v: Variant, extra_kpis: list[str]) -> None:
    """After an interrupted sweep: *v* as its file says its run ended (the sweep stopped waiting for it,
    or could not ask its worker); a file its killed worker left open is closed as interrupted."""
    if _close_unclosed(v.path):
        v.status, v.error = "interrupted", UNCLOSED
    else:
        try:
            attrs = read_attrs(v.path)
        except InputError:
            return
        status = str(attrs.get("status", ""))
        if status == "completed":
            _apply(v, summarize_existing(str(v.path), extra_kpis))
        elif status == "interrupted":
            v.status, v.error = "interrupted", STOPPED
        elif status == "failed":
            v.status, v.error = "failed", str(attrs.get("error", ""))[:500]
        else:
            return
    _write_sidecar(v)


UNCLOSED = "interrupted: its worker was stopped before the run closed its file; its flushed rows are kept"


def _close_unclosed(path: Path, wait_s: float = 5.0) -> bool:
    """Close the file of a run whose writer was killed as ``interrupted`` (its flushed rows, copied as
    ``cosim inspect --repair`` does); True if it did. A file its writer still has open is left alone."""
    from cosim.h5open import H5_ERRORS, open_results
    from cosim.h5repair import repair_copy, write_closed_copy, writer_state

    if not path.exists():
        return False
    deadline = time.monotonic() + wait_s
    try:
        while True:
            with open_results(path) as src:
                state = writer_state(dict(src.attrs))
                if state == "gone":
                    write_closed_copy(src, path, "interrupted", UNCLOSED)
                    break
            if state != "alive" or time.monotonic() > deadline:  # closed, or on another host, or still alive
                return False
            time.sleep(0.2)  # its worker is going down
        os.replace(repair_copy(path), path)
        return True
    except (InputError, *H5_ERRORS):
        repair_copy(path).unlink(missing_ok=True)
        return False


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return _canonical(v)


def summary_rows(spec: SweepSpec, variants: list[Variant]) -> list[dict[str, Any]]:
    keys = [*SUMMARY_KPIS, *spec.kpis]
    rows = []
    for v in variants:
        row = {"run": v.run_id, "index": v.index}
        row.update({p: _cell(v.params.get(p)) for p in spec.parameters})
        row.update(status=v.status, cached=v.cached, wall_s=v.wall_s, error=v.error, file=str(v.path))
        row.update({k: v.kpis.get(k) for k in keys})
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["run"])
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if x is None else x for k, x in r.items()})


def write_summary(spec: SweepSpec, variants: list[Variant], out_dir: Path) -> tuple[Path, Path | None]:
    """``summary.csv`` (and ``summary.parquet``); with a ``replicate`` parameter also ``replicates.csv``,
    the spread of every summary KPI over the replicates of each setting (cosim.replicates)."""
    rows = summary_rows(spec, variants)
    csv_path = out_dir / "summary.csv"
    _write_csv(csv_path, rows)
    if REPLICATE in spec.parameters:
        _write_csv(out_dir / "replicates.csv",
                   replicate_rows(rows, list(spec.parameters), [*SUMMARY_KPIS, *spec.kpis]))
    pq_path = None
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None and rows:
        cols = {k: [r[k] if not isinstance(r[k], (dict, list)) else _canonical(r[k]) for r in rows] for k in rows[0]}
        for k, vals in cols.items():  # mixed types in one column -> strings
            kinds = {type(x) for x in vals if x is not None}
            if len(kinds - {int, float}) > 0 and len(kinds) > 1:
                cols[k] = [None if x is None else str(x) for x in vals]
        pq_path = out_dir / "summary.parquet"
        pq.write_table(pa.table(cols), pq_path)
    return csv_path, pq_path


def sweep_text(result: SweepResult) -> str:
    from cosim.kpi_text import text_table

    spec = result.spec
    params = list(spec.parameters)
    show = ["total.cost_eur", "total.self_sufficiency", "grid.congestion_min", "mas.gap_mean_pct"]
    show = [k for k in show if any(v.kpis.get(k) is not None for v in result.variants)]
    rows = []
    for v in result.variants:
        rows.append([v.run_id] + [_cell(v.params.get(p)) for p in params]
                    + [v.status + (" (cached)" if v.cached else ""), v.wall_s]
                    + [v.kpis.get(k) for k in show] + [v.error[:80]])
    table = text_table(["run"] + params + ["status", "wall s"] + show + ["error"], rows,
                       left=(0, len(params) + 1, len(params) + 3 + len(show)))
    if REPLICATE in params:
        spread = replicate_rows(summary_rows(spec, result.variants), params, show)
        others = [p for p in params if p != REPLICATE]
        table += "\n\nover the replicates (95 % CI: half-width of the mean's confidence interval)\n" + text_table(
            [*others, "kpi", "n", "mean", "sd", "min", "max", "95 % CI"],
            [[r[p] for p in others] + [r[k] for k in ("kpi", "n", "mean", "sd", "min", "max", "ci95")]
             for r in spread], left=tuple(range(len(others) + 1)))
    done = sum(v.status == "completed" for v in result.variants)
    ran = [v for v in result.variants if v.status == "completed"]
    for key, what in (("run.window_h", "evaluate different windows (h)"),
                      ("run.objective_id", "value their cost differently (objective_id)")):
        seen = sorted({str(v.kpis.get(key)) for v in ran})
        if len(seen) > 1:
            table += (f"\nnote: the runs {what}: {', '.join(seen)}; compare their costs only where that is the "
                      "parameter under study")
    cached = sum(v.cached for v in result.variants)
    other = result.other_code()
    if other:
        table += (f"\nnote: {len(other)} run(s) from earlier files were made by other code than this checkout's "
                  f"(e.g. {other[0].path.name}: {read_attrs(other[0].path).get('git_commit') or 'unknown'}): "
                  "delete them to re-run them with this code")
    stopped = sum(v.status == "interrupted" for v in result.variants)
    tail = (f"{done}/{len(result.variants)} completed ({cached} from earlier runs), {result.failed} failed, "
            + (f"{stopped} interrupted, " if result.interrupted or stopped else "")
            + f"{result.wall_s:.1f} s wall; summary: {result.csv_path}"
            + (f", {result.parquet_path}" if result.parquet_path else ""))
    return table + "\n" + tail
