"""Workarounds for measured mosaik 3.6 problems, applied once by the runner.

Progress waiters: a simulator that waits idle leaves one cancelled future in its Progress's waiting
list each time it is woken; every progress update walks the whole list, so runs with many event steps
(telecom, MAS) get quadratically slower (0.43 s -> 1.75 s -> 7.2 s for 100/200/400 pings per agent,
benchmarks/bench_telecom.py). Dropping cancelled futures first makes it linear again; results are
unchanged because a cancelled future is never resolved anyway.

Dataflow cache pruning: after every step mosaik rebuilds every simulator's output cache as a new dict
(``prune_dataflow_cache``), although entries only become prunable when the slowest simulator
advances. With event-driven agents that sleep while others step, the caches hold thousands of entries
and the rebuild was the largest single cost of a UC3 day (8 s of 75 s, profiled). The replacement
prunes only when the oldest needed time has moved, and deletes in place; what is kept is identical.

Progress of descendants of a simulator that is stepping: ``advance_progress`` bounds a simulator's
progress by its triggering ancestors' *next* steps only. While an ancestor in another process is in the
middle of a step it has no next step queued, so a descendant's progress jumped ahead and mosaik then
failed with "cannot progress backwards" once the ancestor returned an earlier next step (MAS <->
telecom loop with the telecom in a subprocess). The replacement also bounds by the ancestor's current
step, which is what it may still produce output for.

Requests to a simulator whose connection already closed: mosaik's reader task ends at the socket's end
of file, so a request written afterwards is never answered and the run waited forever (a SIGKILLed
subprocess simulator between two requests, also while the world is built). Such a request now raises
mosaik's own ``ConnectionClosedError`` at once; ``cosim.sim_watchdog`` covers a death while no request
is pending. A ``cmd`` simulator that dies before it connects made mosaik wait for its whole start
timeout; its start now fails as soon as the process has exited, naming the exit signal.

Time arithmetic: mosaik compares and adds its ``TieredTime`` values through generic tuple code with
asserts (``tuple_add`` over a generator, ``functools.total_ordering``), a few million calls a
simulated day of a controlled scenario. The replacements compute the same tuples directly (the
lengths they asserted are guaranteed by mosaik's construction of the values), ``earliest_sum`` of a
single duration is one addition, and ``Progress.set`` wakes the same futures
in the same order without a call per waiter; the scheduler's decisions and
therefore every result are unchanged (tests/test_speed_equivalence.py).

Waiting for dependencies: before each step mosaik wraps every progress condition on the simulator's
predecessors and successors in a task of its own (``asyncio.gather`` over coroutines), met or not, so
each step cost a task per neighbour and at least one turn of the event loop (uc1_home: 46 702 tasks
in 2 simulated days). The replacement registers, for a condition not yet met, the same future that
``Progress._add_trigger`` registers, and awaits only those; when all are met the step goes on at once.
The same files and the same steps per simulator as with mosaik's (tests/test_speed_equivalence.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import time
from operator import add as _add

import mosaik.progress as _progress
import mosaik.scheduler as _scheduler
import mosaik.starters as _starters
from mosaik.exceptions import ConnectionClosedError, SimulationError
from mosaik.proxies import RemoteProxy
from mosaik.tiered_time import MinimalDurations, TieredDuration, TieredTime

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _progress.Progress.set = _progress_set
    TieredTime.__add__ = _time_add
    TieredTime.__lt__ = _time_lt
    TieredTime.__le__ = _time_le
    TieredTime.__gt__ = _time_gt
    TieredTime.__ge__ = _time_ge
    MinimalDurations.earliest_sum = _earliest_sum
    _scheduler.prune_dataflow_cache = _prune_dataflow_cache
    _scheduler.wait_for_dependencies = _wait_for_dependencies
    _scheduler.advance_progress = _advance_progress
    send = RemoteProxy.send

    async def send_if_connected(self, request):
        if self._channel._receiver_task.done():
            raise ConnectionClosedError(simulator=self._channel._name or "unknown simulator",
                                        method_called=request[0])
        return await send(self, request)

    RemoteProxy.send = send_if_connected
    _starters.subprocess = _RecordingSubprocess()
    _starters.CmdStarter.start = _start_or_fail_fast(_starters.CmdStarter.start)
    _applied = True


_SPAWNED: contextvars.ContextVar[list] = contextvars.ContextVar("cosim_spawned")


class _RecordingSubprocess:
    """``subprocess`` for mosaik's starters: notes the processes a start spawns (``_SPAWNED``)."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 - subprocess's name
        proc = subprocess.Popen(*args, **kwargs)
        spawned = _SPAWNED.get(None)
        if spawned is not None:
            spawned.append(proc)
        return proc


def _start_or_fail_fast(start):
    """mosaik's CmdStarter.start, failing as soon as the spawned process exits or is stopped before it
    connects, and never leaving the process behind when the start fails."""
    from cosim.sim_watchdog import POLL_S, STOPPED_S, describe_exit, simulator_label, stopped_since

    async def start_watched(self, sim_id, *args, **kwargs):
        spawned: list = []
        token = _SPAWNED.set(spawned)
        try:
            task = asyncio.ensure_future(start(self, sim_id, *args, **kwargs))
        finally:
            _SPAWNED.reset(token)
        stopped = None
        try:
            while True:
                done, _ = await asyncio.wait([task], timeout=POLL_S)
                if done:
                    return task.result()
                if not spawned:
                    continue
                if spawned[0].poll() is not None:
                    raise SimulationError(f"{describe_exit(sim_id, spawned[0])} before it connected to mosaik")
                now = time.monotonic()
                stopped = stopped_since(spawned[0].pid, stopped, now)
                if stopped is not None and now - stopped >= STOPPED_S:
                    raise SimulationError(f"{simulator_label(sim_id, spawned[0])} is stopped (SIGSTOP or a debugger) "
                                          "before it connected to mosaik")
        except BaseException:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for proc in spawned:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise

    return start_watched
_new_time = object.__new__
_set_tiers = object.__setattr__


def _time_add(self, interval):
    """``TieredTime + TieredDuration``: the first ``cutoff`` tiers added, the duration's others appended."""
    cut, tiers = interval.cutoff, interval.tiers
    if cut == 1:
        new = (self.tiers[0] + tiers[0], *tiers[1:])
    else:
        new = tuple(map(_add, self.tiers, tiers[:cut])) + tiers[cut:]
    t = _new_time(TieredTime)
    _set_tiers(t, "tiers", new)
    return t


def _earliest_sum(self, other):
    """``min(other + d for d in durations)``, without a generator and a minimum for the usual single
    duration."""
    ds = self.durations
    if len(ds) == 1:
        for d in ds:
            return other + d
    return min([other + d for d in ds])


def _time_lt(self, other):
    return self.tiers < other.tiers


def _time_le(self, other):
    return self.tiers <= other.tiers


def _time_gt(self, other):
    return self.tiers > other.tiers


def _time_ge(self, other):
    return self.tiers >= other.tiers


def _progress_set(self, time) -> None:
    """mosaik's ``Progress.set`` (same checks, same waiters woken in the same order), with the
    cancelled waiters dropped first, and nothing to do when the time has not moved (78 % of the calls in
    ``uc1_home``: the scheduler advances every simulator after every step)."""
    assert time >= self.time, "cannot progress backwards"
    if time.tiers == self.time.tiers:
        return  # no waiter can fire: each was checked against this time when it was added or last set
    self.time = time
    futures = self._futures = [(spec, fut) for spec, fut in self._futures if not fut.cancelled()]
    for index in reversed(range(len(futures))):
        (target, shift, needs_to_pass), future = futures[index]
        at = time + shift
        if at > target or (not needs_to_pass and at.tiers == target.tiers):
            if not future.cancelled():
                future.set_result(at)
            del futures[index]


async def _wait_for_dependencies(sim, lazy_stepping: bool) -> None:
    """mosaik's ``wait_for_dependencies``: the same progress conditions, each waited for with the
    future that mosaik's ``Progress.has_passed``/``has_reached`` would register, but only when the
    condition is not yet met. mosaik wraps every condition in a task of its own, met or not, so a
    step of a simulator with k predecessors and successors cost k tasks and a turn of the event loop."""
    waits: list[asyncio.Future] = []
    next_step = sim.next_steps[0]
    for pre_sim, min_delays in sim.input_delays.items():
        for delay in min_delays.durations:
            _wait_unless_met(pre_sim.progress, (next_step, delay, True), waits)
    followers = list(sim.successors_to_wait_for.items())
    if lazy_stepping:
        followers += sim.successors.items()
    for suc_sim, adapt in followers:
        progress = suc_sim.progress
        _wait_unless_met(progress, (next_step + adapt, TieredDuration(*((0,) * len(progress.time))), False), waits)
    if len(waits) == 1:
        await waits[0]
    elif waits:
        await asyncio.gather(*waits)


def _wait_unless_met(progress, spec, waits: list) -> None:
    """What ``Progress._add_trigger`` does for the condition ``spec`` (target, shift, needs_to_pass),
    without its coroutine: nothing when ``_triggered_time`` says it is met, else a future registered
    for ``Progress.set`` to resolve, appended to *waits*."""
    if not progress._triggered_time(spec):
        future = asyncio.get_running_loop().create_future()
        progress._futures.append((spec, future))
        waits.append(future)


def _advance_progress(sim, world) -> None:
    bounds = []
    for pre_sim, distance in sim.triggering_ancestors.items():
        if pre_sim.next_steps:
            bounds.append(distance.earliest_sum(pre_sim.next_steps[0]))
        if pre_sim.current_step is not None and getattr(pre_sim, "is_in_step", False):
            bounds.append(distance.earliest_sum(pre_sim.current_step))
    if sim.next_steps:
        bounds.append(sim.next_steps[0])
    if sim.current_step:
        bounds.append(sim.current_step)
    if world.rt_factor:
        rt_passed = _scheduler.perf_counter() - sim.rt_start
        bounds.append(_scheduler.TieredTime(_scheduler.ceil(rt_passed / world.rt_factor)))
    bounds.append(_scheduler.TieredTime(world.until) + sim.from_world_time)
    new_progress = min(bounds)
    sim.progress.set(new_progress)
    sim.tqdm.update(new_progress.time - sim.tqdm.n)


def _prune_dataflow_cache(world) -> None:
    if not world.use_cache:
        return
    sims = world._get_sim_runners().values()
    min_cache_time = min(s.last_step.time for s in sims)
    if getattr(world, "_cosim_pruned_at", None) == min_cache_time:
        return
    world._cosim_pruned_at = min_cache_time
    for sim in sims:
        if sim.outputs:
            for t in [t for t in sim.outputs if t < min_cache_time]:
                del sim.outputs[t]
