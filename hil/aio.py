"""An asyncio event loop in a daemon thread, for the synchronous mosaik simulators.

mosaik calls ``step()`` synchronously; a blocking Modbus call there stalls every simulator of the
run. The HIL simulators therefore keep their Modbus I/O in a :class:`BackgroundLoop` and only
exchange plain data with it under a lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class BackgroundLoop:
    """``loop = BackgroundLoop("name"); loop.start(); loop.run(coro); loop.stop()``."""

    def __init__(self, name: str = "hil-io"):
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> BackgroundLoop:
        if self._thread is not None:
            return self
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        """Schedule ``coro`` on the loop; returns a concurrent future (does not wait)."""
        if not self.running:
            coro.close()
            raise RuntimeError(f"background loop {self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result (never call from the loop itself)."""
        return self.submit(coro).result(timeout)

    def call_soon(self, fn, *args) -> None:
        if self.running:
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the loop's tasks, stop it and join the thread (idempotent)."""
        if self._thread is None:
            return
        if self.running:
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel *task* (if any) and wait until it has finished, swallowing its outcome."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down: nothing to report
        pass
