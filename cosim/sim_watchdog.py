"""Notice a subprocess or remote simulator that died or froze, so the run fails instead of waiting forever.

mosaik 3.6 talks to ``cmd`` and ``connect`` simulators over a TCP socket. When such a simulator dies
between two requests, the socket's end of file only ends mosaik's reader task; the next request is
written to the dead socket and its answer is awaited forever (measured: a SIGKILLed
``python -m simulators.grid`` left the run asleep). A frozen one (SIGSTOP, a hung host) keeps its socket
open and never answers. The watchdog polls every remote simulator's process handle, reader task and
pending calls while the scheduler runs and returns one line naming the first dead one: exited, connection
closed, stopped (a subprocess in state T for STOPPED_S), or a call unanswered for its ``timeout``
(scenario ``simulators.<name>.timeout``); the runner then cancels the scheduler and fails the run.
"""

from __future__ import annotations

import asyncio
import signal
import time

from mosaik.proxies import RemoteProxy

POLL_S = 0.2  # detection latency bound; a poll is a few attribute reads per simulator
STOPPED_S = 3.0  # a subprocess stopped this long (SIGSTOP, Ctrl-Z of its own) with a call pending is frozen
DEFAULT_TIMEOUT_S = 120.0  # scenario simulators.<name>.timeout


def is_stopped(pid: int) -> bool:
    """True if process *pid* is stopped (state T: SIGSTOP; t: stopped by a tracer), from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def stopped_since(pid: int, since: float | None, now: float) -> float | None:
    """Since when process *pid* has been stopped (*since*: the answer of the previous look, None if it was
    running; *now* the first time it is seen stopped), None while it runs."""
    return (now if since is None else since) if is_stopped(pid) else None


def _process_of(proxy):
    """The subprocess of a ``cmd`` simulator's proxy, None for any other simulator."""
    return proxy._process[0] if isinstance(proxy, RemoteProxy) and proxy._process else None


def _where(sid: str, proxy) -> str:
    process = _process_of(proxy)
    return simulator_label(sid, process) if process is not None else f"simulator {sid}"


class _Pending:
    """Since when each remote simulator has had its oldest unanswered call, and been stopped."""

    def __init__(self, timeouts: dict[str, float]):
        self.timeouts = timeouts
        self.calls: dict[tuple[str, int], float] = {}
        self.stopped: dict[str, float | None] = {}

    def frozen(self, sid: str, proxy, now: float) -> str | None:
        ids = set(proxy._channel._outgoing_request_futures)
        for key in [k for k in self.calls if k[0] == sid and k[1] not in ids]:
            del self.calls[key]
        first = min((self.calls.setdefault((sid, i), now) for i in ids), default=None)
        process = _process_of(proxy)
        since = self.stopped[sid] = (stopped_since(process.pid, self.stopped.get(sid), now)
                                     if process is not None and first is not None else None)
        if since is not None and now - since >= STOPPED_S:
            return f"{_where(sid, proxy)} is stopped (SIGSTOP or a debugger) and does not answer"
        name = sid.rsplit("-", 1)[0]  # mosaik's sid of the scenario's simulator <name>: <name>-0
        limit = self.timeouts.get(name, DEFAULT_TIMEOUT_S)
        if first is not None and now - first >= limit:
            return (f"{_where(sid, proxy)} did not answer a call within {limit:g} s "
                    f"(simulators.{name}.timeout): it is frozen or its host is unreachable")
        return None


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def simulator_label(sid: str, process) -> str:
    """'simulator grid-0 (python -m simulators.grid, pid 8392)'."""
    args = process.args if isinstance(process.args, list) else [process.args]
    cmd = " ".join(["python", *map(str, args[1:3])] if "-m" in args[1:2] else map(str, args[:1]))
    return f"simulator {sid} ({cmd}, pid {process.pid})"


def describe_exit(sid: str, process) -> str:
    """'simulator grid-0 (python -m simulators.grid, pid 8392) killed by SIGKILL' of an exited process."""
    return f"{simulator_label(sid, process)} {_exit_reason(process.returncode)}"


def dead_simulator(proxies: dict, wait_s: float = 0.0, pending: _Pending | None = None) -> str | None:
    """One line naming the first remote simulator whose process exited or whose connection closed (or,
    with *pending*, that is frozen).

    A closed connection of a subprocess is looked at again for up to *wait_s* seconds: the socket's end
    of file comes just before the process can be reaped, and its exit status is the better message."""
    deadline = time.monotonic() + wait_s
    while True:
        closed = None
        for sid, proxy in proxies.items():
            if not isinstance(proxy, RemoteProxy):
                continue
            process = _process_of(proxy)
            if process is not None and process.poll() is not None:
                return describe_exit(sid, process)
            if closed is None and proxy._channel._receiver_task.done():
                closed = f"simulator {sid} closed its connection"
            if closed is None and pending is not None:
                closed = pending.frozen(sid, proxy, time.monotonic())
        if closed is None or time.monotonic() >= deadline:
            return closed
        time.sleep(0.05)


async def watch(proxies: dict, timeouts: dict[str, float] | None = None, period: float = POLL_S) -> str:
    """Return (one line) as soon as a remote simulator in *proxies* (sid -> mosaik proxy) is dead or frozen
    (*timeouts*: simulator name -> s a call may go unanswered)."""
    pending = _Pending(timeouts or {})
    while True:
        found = dead_simulator(proxies, pending=pending)
        if found:
            # the socket's EOF can come just before the process is reapable: look once more for its exit code
            await asyncio.sleep(period)
            return dead_simulator(proxies) or found
        await asyncio.sleep(period)


def kill_leftovers(proxies: dict) -> None:
    """Kill and reap every subprocess simulator still alive after the world's shutdown (mosaik only sends
    SIGTERM and waits 1 s, which a stopped or hung process survives)."""
    for proxy in proxies.values():
        process = _process_of(proxy)
        if process is not None and process.poll() is None:
            process.kill()
            try:
                process.wait(5)
            except Exception:  # noqa: BLE001 - nothing more to do for it
                pass
