"""The summed RSS of this process and all its descendants, sampled in a thread (bench_scale, bench_year)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import psutil


def tree_rss() -> int:
    """Bytes resident in this process and its descendants now (processes that end meanwhile are skipped)."""
    me, total = psutil.Process(), 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class RSSSampler:
    """``with RSSSampler(every_s, extra) as s:`` samples (wall s since start, RSS bytes, ``extra()``) into
    ``s.samples`` every *every_s* seconds and keeps the largest RSS in ``s.peak``."""

    def __init__(self, every_s: float = 0.2, extra: Callable[[], Any] | None = None):
        self.every_s, self.extra = every_s, extra
        self.peak, self.samples = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while True:
            rss = tree_rss()
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - t0, rss, self.extra() if self.extra else None))
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> "RSSSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
