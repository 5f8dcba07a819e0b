"""Notice a subprocess or remote simulator that died, so the run fails instead of waiting for it forever.

mosaik 3.6 talks to ``cmd`` and ``connect`` simulators over a TCP socket. When such a simulator dies
between two requests, the socket's end of file only ends mosaik's reader task; the next request is
written to the dead socket and its answer is awaited forever (measured: a SIGKILLed
``python -m simulators.grid`` left the run asleep). The watchdog polls every remote simulator's
process handle and reader task while the scheduler runs and returns one line naming the first dead
one; the runner then cancels the scheduler and fails the run.
"""

from __future__ import annotations

import asyncio
import signal
import time

from mosaik.proxies import RemoteProxy

POLL_S = 0.2  # detection latency bound; a poll is a few attribute reads per simulator


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def dead_simulator(proxies: dict, wait_s: float = 0.0) -> str | None:
    """One line naming the first remote simulator whose process exited or whose connection closed.

    A closed connection of a subprocess is looked at again for up to *wait_s* seconds: the socket's end
    of file comes just before the process can be reaped, and its exit status is the better message."""
    deadline = time.monotonic() + wait_s
    while True:
        closed = None
        for sid, proxy in proxies.items():
            if not isinstance(proxy, RemoteProxy):
                continue
            process = proxy._process[0] if proxy._process else None
            code = process.poll() if process is not None else None
            if code is not None:
                args = process.args if isinstance(process.args, list) else [process.args]
                cmd = " ".join(["python", *map(str, args[1:3])] if "-m" in args[1:2] else map(str, args[:1]))
                return f"simulator {sid} ({cmd}, pid {process.pid}) {_exit_reason(code)}"
            if closed is None and proxy._channel._receiver_task.done():
                closed = f"simulator {sid} closed its connection"
        if closed is None or time.monotonic() >= deadline:
            return closed
        time.sleep(0.05)


async def watch(proxies: dict, period: float = POLL_S) -> str:
    """Return (one line) as soon as a remote simulator in *proxies* (sid -> mosaik proxy) is dead."""
    while True:
        found = dead_simulator(proxies)
        if found:
            # the socket's EOF can come just before the process is reapable: look once more for its exit code
            await asyncio.sleep(period)
            return dead_simulator(proxies) or found
        await asyncio.sleep(period)
