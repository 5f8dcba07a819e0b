"""Run a scenario: build the world, step it, and always leave a valid results file behind.

mosaik 3.6's ``World.run`` swallows a remote simulator's error and a Ctrl-C (it only logs them) and
its ``rt_strict`` fails at the first step, so the runner drives mosaik's scheduler itself: remote
errors raise :class:`RunFailed`, SIGINT cancels the run cleanly, and in every case the recorder's
file is closed with a status (``completed``, ``interrupted``, ``failed``) and every completed step.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mosaik import scheduler
from mosaik.exceptions import ScenarioError as MosaikScenarioError
from mosaik.exceptions import ConnectionClosedError, SimulationError, SimulatorError
from mosaik_api_v3.connection import RemoteException

from cosim import mosaik_fixes, recorder, sim_watchdog
from hil.realtime import recorded_lateness_stats
from cosim.output_path import check_output
from cosim.provenance import provenance
from cosim.results import ResultsFileHeld, ResultsWriteFailed, read_lateness, stamp_attrs
from cosim.scenario import Scenario
from cosim.world import build_world, make_world


class RunFailed(Exception):
    """A simulator failed; the message names it and its error."""


class RunInterrupted(Exception):
    """The run was stopped by SIGINT, SIGTERM or its stop request (run_scenario(stop=...)).
    ``lateness``: a real-time run's summary of the steps it ran (as :attr:`RunResult.lateness`)."""

    lateness: dict | None = None


@dataclass
class RunResult:
    path: Path
    steps: int
    wall_s: float
    until_ms: int
    lateness: dict | None = None  # real-time runs: p50/p99/max lateness (ms) and late steps


DEATH_GRACE_S = 0.5  # after a simulator died, its error reply (if it sent one) wins over "died"


def _lateness_summary(path: Path, scn: Scenario) -> dict | None:
    """Summarise the recorded per-step lateness (hil.realtime.recorded_lateness_stats, late beyond the scenario's
    ``realtime.threshold_ms``, else that function's default) and stamp it on the file."""
    stamps = read_lateness(path)
    if stamps is None:
        return None
    threshold = {"threshold_ms": scn.realtime.threshold_ms} if scn.realtime else {}
    stats = recorded_lateness_stats(stamps, **threshold)
    if not stats["n"]:
        return None
    stamp_attrs(path, {f"lateness_{k}": v for k, v in stats.items()})
    return stats


def _describe_remote(exc: RemoteException) -> str:
    extra = ("\n" + "\n".join(exc.further_args)) if getattr(exc, "further_args", None) else ""
    return f"simulator {exc.source} failed: {exc.remote_type}: {exc.remote_msg}{extra}"


async def _drive(world, until: int, rt_factor: float | None, scn: Scenario) -> None:
    aw = world._async_world
    aw.compile(use_cache=True)
    aw._init_progress_bars(until, False)  # mosaik's own bars stay disabled; the recorder shows one
    run = asyncio.ensure_future(scheduler.run(aw, until, rt_factor, False, True))
    timeouts = {name: start.timeout / 1000 for name, start in dict(scn.simulators).items()}
    watch = asyncio.ensure_future(sim_watchdog.watch(aw._proxies, timeouts))
    try:
        await asyncio.wait([run, watch], return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            # a simulator died: give the scheduler a moment to raise the simulator's own error first
            await asyncio.wait([run], timeout=DEATH_GRACE_S)
        if not run.done():
            raise RunFailed(watch.result())
        try:
            run.result()
        except ConnectionClosedError as exc:  # the scheduler saw the death first: name the dead simulator
            done, _ = await asyncio.wait([watch], timeout=DEATH_GRACE_S + 2 * sim_watchdog.POLL_S)
            raise RunFailed(watch.result() if done else str(exc)) from None
    finally:
        for task in (run, watch):
            task.cancel()
        await asyncio.gather(run, watch, return_exceptions=True)
        for sim in aw._get_sim_runners().values():
            sim.tqdm.close()
        aw.tqdm.close()


def _close_writers(status: str, error: str = "") -> int:
    """Close every open results writer; a file another process holds (:class:`ResultsFileHeld`) or that
    cannot be written fails the run with its message once all writers are closed."""
    steps, held = 0, []
    for writer in list(recorder.OPEN_WRITERS):
        try:
            writer.close(status, error)
        except (ResultsFileHeld, ResultsWriteFailed) as exc:
            held.append(str(exc))
        finally:
            steps = writer.rows_written
            recorder.OPEN_WRITERS.discard(writer)
    if held:
        raise RunFailed("; ".join(([error] if error else []) + held))
    return steps


def _shutdown(world) -> None:
    loop = world.loop
    if loop.is_closed():
        return
    # the run's outcome is decided: mosaik's tasks that fail while it stops (a simulator's connection reset
    # under a Ctrl-C) are not retrieved by anyone, and must not print "Task exception was never retrieved"
    loop.set_exception_handler(lambda _loop, _context: None)
    try:
        with warnings.catch_warnings():  # "could not terminate subprocess": kill_leftovers does
            warnings.filterwarnings("ignore", message="mosaik could not terminate subprocess")
            loop.run_until_complete(asyncio.wait_for(world._async_world.shutdown(), 10))
    except Exception:  # noqa: BLE001 - a dead remote simulator must not hide the run's outcome
        pass
    finally:
        sim_watchdog.kill_leftovers(world._async_world._proxies)
        # tasks mosaik's scheduler left waiting (a cancelled or failed run) end here, not in a warning
        pending = asyncio.all_tasks(loop)
        for t in pending:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        world._async_world._shutdown_performed = True
        loop.close()


STOP_POLL_S = 0.2  # how often a run checks its stop request (run_scenario(stop=...))


class StopRequest(threading.Event):
    """Set from another thread (:meth:`request`), it stops a run as SIGINT does; ``why`` ends in the
    file's ``error`` (``stopped by <why>``)."""

    why = "a stop request"

    def request(self, why: str) -> None:
        self.why = why
        self.set()


class _StopSignals:
    """SIGINT and SIGTERM both stop a run cleanly (main thread only): while the world is built they raise
    KeyboardInterrupt, while it runs they cancel the run's task. ``received`` names the signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = ""
        self.active = threading.current_thread() is threading.main_thread()
        self.previous = {}

    closing = False  # while the results file is closed a signal is only noted: the status must get written

    def _raise(self, signum, frame):
        self.received = self.received or signal.Signals(signum).name
        if not self.closing:
            raise KeyboardInterrupt

    def __enter__(self):
        if self.active:
            self.previous = {s: signal.signal(s, self._raise) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    @contextmanager
    def cancelling(self, loop, task, stop: StopRequest | None = None):
        """While the block runs *task* on *loop*, a signal (main thread) or *stop* being set cancels it."""
        watcher = loop.create_task(self._cancel_when_set(stop, task)) if stop is not None else None
        if not self.active:
            try:
                yield
            finally:
                if watcher is not None:
                    watcher.cancel()
            return

        def cancel(sig):
            self.received = sig.name
            task.cancel()

        for s in self.SIGNALS:
            loop.add_signal_handler(s, cancel, s)
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            for s in self.SIGNALS:
                loop.remove_signal_handler(s)
                signal.signal(s, self._raise)  # asyncio resets it to the default

    async def _cancel_when_set(self, stop: StopRequest, task) -> None:
        while not stop.is_set():
            await asyncio.sleep(STOP_POLL_S)
        self.received = self.received or stop.why
        task.cancel()


@contextmanager
def _fewer_collections():
    """Build and run with the cyclic garbage collector's first threshold at 50 000 allocations instead
    of 700 (restored after the run). A simulated day allocates millions of short-lived containers (messages,
    inputs, futures) that reference counting frees; at 700 the collector ran 2 300 young and 14 full
    collections per 54 simulated hours of uc3_substation, walking the 220 000 long-lived objects of the
    world each full time (2.2-2.3 s of 50 s), and at 50 000 it runs 16 young ones (0.3 s). What is
    garbage is the same, only collected later, so results are unchanged; peak memory in
    benchmarks/bench_year.py is in the README."""
    previous = gc.get_threshold()
    gc.set_threshold(50_000, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def run_scenario(
    scn: Scenario,
    scenario_yaml: str,
    out: str | Path | None = None,
    until_ms: int | None = None,
    rt_factor: float | None = None,
    progress: bool = True,
    stop: StopRequest | None = None,
) -> RunResult:
    """Run *scn* (whose effective YAML text is *scenario_yaml*) and return where the results are.

    *stop*: set from another thread, it stops the run as SIGINT does (a sweep's runs in dask workers,
    whose threads get no signals): the file is closed ``interrupted`` and :class:`RunInterrupted` raised."""
    mosaik_fixes.apply()
    path = Path(out) if out else scn.output_path()
    if rt_factor is None and scn.realtime is not None:
        rt_factor = scn.realtime.factor
    check_output(path)
    evaluated = until_ms or scn.duration
    sim = scn.model_copy(update={"duration": evaluated}).simulated()  # planned: warm-up + window + cool-down
    until = scn.run_ms(evaluated)  # the controllers still plan to sim.duration
    window = {"eval_start_ms": scn.warmup_ms, "eval_end_ms": scn.warmup_ms + evaluated}
    t0 = time.perf_counter()
    world = None
    status, error = "failed", ""
    interrupted: RunInterrupted | None = None
    with _StopSignals() as stops:
        try:
            with warnings.catch_warnings(), _fewer_collections():
                warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
                world = make_world(sim)
                build_world(world, sim, provenance(scenario_yaml, scn.seed) | window, str(path), until, progress,
                            rt_factor)
                loop = world.loop
                task = loop.create_task(_drive(world, until, rt_factor, scn))
                with stops.cancelling(loop, task, stop):
                    loop.run_until_complete(task)
            status = "completed"
        except (asyncio.CancelledError, KeyboardInterrupt):  # SIGINT/SIGTERM during the run / while building
            signame = stops.received or "SIGINT"
            status, error = "interrupted", f"stopped by {signame}"
            kept = f"completed steps are in {path}" if recorder.OPEN_WRITERS else "nothing was recorded yet"
            interrupted = RunInterrupted(f"run interrupted ({signame}); {kept}")
            raise interrupted from None
        except RunFailed as exc:
            error = str(exc)
            raise
        except ResultsWriteFailed as exc:
            error = str(exc)
            raise RunFailed(error) from None
        except RemoteException as exc:
            error = _describe_remote(exc)
            raise RunFailed(error) from None
        except (SimulationError, SimulatorError, MosaikScenarioError) as exc:
            dead = world is not None and sim_watchdog.dead_simulator(world._async_world._proxies, wait_s=1.0)
            error = dead or (str(exc) if str(exc).startswith("simulator ") else f"{type(exc).__name__}: {exc}")
            raise RunFailed(error) from None
        except SystemExit as exc:  # mosaik's adapters exit when a connected simulator never answers init()
            error = f"simulator start failed: {exc.code}"
            raise RunFailed(error) from None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            stops.closing = True
            try:
                steps = _close_writers(status, error)
            finally:
                if world is not None:
                    _shutdown(world)
            if interrupted is not None and rt_factor is not None and steps:
                # the steps run so far keep their lateness summary, as a completed run's
                try:
                    interrupted.lateness = _lateness_summary(path, scn)
                except Exception:  # noqa: BLE001 - the interrupt is reported all the same
                    pass
    lateness = _lateness_summary(path, scn) if rt_factor is not None else None
    return RunResult(path=path, steps=steps, wall_s=time.perf_counter() - t0, until_ms=until, lateness=lateness)
