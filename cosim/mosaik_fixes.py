"""Workarounds for measured mosaik 3.6 problems, applied once by the runner.

Progress waiters: a simulator that waits idle leaves one cancelled future in its Progress's waiting
list each time it is woken; every progress update walks the whole list, so runs with many event steps
(telecom, MAS) get quadratically slower (0.43 s -> 1.75 s -> 7.2 s for 100/200/400 pings per agent,
benchmarks/bench_telecom.py). Dropping cancelled futures first makes it linear again; results are
unchanged because a cancelled future is never resolved anyway.
"""

from __future__ import annotations

import mosaik.progress as _progress

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
    _applied = True
