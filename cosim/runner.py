"""Run a scenario: build the world, step it, and always leave a valid results file behind.

mosaik 3.6's ``World.run`` swallows a remote simulator's error and a Ctrl-C (it only logs them) and
its ``rt_strict`` fails at the first step, so the runner drives mosaik's scheduler itself: remote
errors raise :class:`RunFailed`, SIGINT cancels the run cleanly, and in every case the recorder's
file is closed with a status (``completed``, ``interrupted``, ``failed``) and every completed step.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from mosaik import scheduler
from mosaik.exceptions import ScenarioError as MosaikScenarioError
from mosaik.exceptions import SimulationError, SimulatorError
from mosaik_api_v3.connection import RemoteException

from cosim import mosaik_fixes, recorder
from hil.realtime import recorded_lateness_stats
from cosim.provenance import provenance
from cosim.results import read_lateness, stamp_attrs
from cosim.scenario import Scenario
from cosim.world import build_world, make_world


class RunFailed(Exception):
    """A simulator failed; the message names it and its error."""


class RunInterrupted(Exception):
    """The run was stopped by the user (SIGINT)."""


@dataclass
class RunResult:
    path: Path
    steps: int
    wall_s: float
    until_ms: int
    lateness: dict | None = None  # real-time runs: p50/p99/max lateness (ms) and late steps


def _lateness_summary(path: Path, threshold_ms: float) -> dict | None:
    """Summarise the recorded per-step lateness (hil.realtime.recorded_lateness_stats) and stamp it on the file."""
    stamps = read_lateness(path)
    if stamps is None:
        return None
    stats = recorded_lateness_stats(stamps, threshold_ms)
    if not stats["n"]:
        return None
    stamp_attrs(path, {f"lateness_{k}": v for k, v in stats.items()})
    return stats


def _describe_remote(exc: RemoteException) -> str:
    extra = ("\n" + "\n".join(exc.further_args)) if getattr(exc, "further_args", None) else ""
    return f"simulator {exc.source} failed: {exc.remote_type}: {exc.remote_msg}{extra}"


async def _drive(world, until: int, rt_factor: float | None) -> None:
    mosaik_fixes.apply()
    aw = world._async_world
    aw.compile(use_cache=True)
    aw._init_progress_bars(until, False)  # mosaik's own bars stay disabled; the recorder shows one
    try:
        await scheduler.run(aw, until, rt_factor, False, True)
    finally:
        for sim in aw._get_sim_runners().values():
            sim.tqdm.close()
        aw.tqdm.close()


def _close_writers(status: str, error: str = "") -> int:
    steps = 0
    for writer in list(recorder.OPEN_WRITERS):
        try:
            writer.close(status, error)
            steps = writer.rows_written
        finally:
            recorder.OPEN_WRITERS.discard(writer)
    return steps


def _shutdown(world) -> None:
    loop = world.loop
    if loop.is_closed():
        return
    try:
        loop.run_until_complete(asyncio.wait_for(world._async_world.shutdown(), 10))
    except Exception:  # noqa: BLE001 - a dead remote simulator must not hide the run's outcome
        pass
    finally:
        world._async_world._shutdown_performed = True
        loop.close()


def run_scenario(
    scn: Scenario,
    scenario_yaml: str,
    out: str | Path | None = None,
    until_ms: int | None = None,
    rt_factor: float | None = None,
    progress: bool = True,
) -> RunResult:
    """Run *scn* (whose effective YAML text is *scenario_yaml*) and return where the results are."""
    path = Path(out) if out else scn.output_path()
    if rt_factor is None and scn.realtime is not None:
        rt_factor = scn.realtime.factor
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluated = until_ms or scn.duration
    sim = scn.model_copy(update={"duration": evaluated}).simulated()  # warm-up + window + cool-down
    until = sim.duration
    window = {"eval_start_ms": scn.warmup_ms, "eval_end_ms": scn.warmup_ms + evaluated}
    t0 = time.perf_counter()
    world = None
    status, error = "failed", ""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
            world = make_world(sim)
            build_world(world, sim, provenance(scenario_yaml, scn.seed) | window, str(path), until, progress,
                        rt_factor)
            loop = world.loop
            task = loop.create_task(_drive(world, until, rt_factor))
            in_main = threading.current_thread() is threading.main_thread()
            if in_main:
                loop.add_signal_handler(signal.SIGINT, task.cancel)
            try:
                loop.run_until_complete(task)
            finally:
                if in_main:
                    loop.remove_signal_handler(signal.SIGINT)
        status = "completed"
    except (asyncio.CancelledError, KeyboardInterrupt):  # SIGINT during the run / while building
        status, error = "interrupted", "stopped by SIGINT"
        raise RunInterrupted(f"run interrupted; completed steps are in {path}") from None
    except RemoteException as exc:
        error = _describe_remote(exc)
        raise RunFailed(error) from None
    except (SimulationError, SimulatorError, MosaikScenarioError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise RunFailed(error) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        steps = _close_writers(status, error)
        if world is not None:
            _shutdown(world)
    lateness = None
    if rt_factor is not None:
        lateness = _lateness_summary(path, scn.realtime.threshold_ms if scn.realtime else 100.0)
    return RunResult(path=path, steps=steps, wall_s=time.perf_counter() - t0, until_ms=until, lateness=lateness)
