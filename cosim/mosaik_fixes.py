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
"""

from __future__ import annotations

import mosaik.progress as _progress
import mosaik.scheduler as _scheduler

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    original = _progress.Progress.set

    def set_pruned(self, time):
        self._futures = [(spec, fut) for spec, fut in self._futures if not fut.cancelled()]
        return original(self, time)

    _progress.Progress.set = set_pruned
    _scheduler.prune_dataflow_cache = _prune_dataflow_cache
    _applied = True


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
