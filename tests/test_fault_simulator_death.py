"""Fault suite: a subprocess or remote simulator that dies or freezes, mid-run or before it connects, fails
the run within seconds, naming it, with ``status: failed`` and every completed step kept, and no subprocess
is left behind; SIGTERM stops a run like SIGINT."""

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT, cosim_cmd, free_port, start_sim_server

KILL_TO_EXIT_S = 10  # issue 15: a killed simulator ends the run within 10 s


def _children(pid: int, needle: str) -> list[int]:
    """Pids of *pid*'s child processes whose command line contains *needle* (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and needle in cmdline:
            found.append(int(stat.parent.name))
    return found


def _rows(out: Path) -> int:
    try:  # read while the run writes (SWMR)
        with h5py.File(out, "r", libver="latest", swmr=True) as f:
            return f["time"].shape[0]
    except (OSError, KeyError):
        return 0


def _start_run(scn: Path, out: Path) -> subprocess.Popen:
    # real-time factor 0.05: one 1-min step takes 3 s, so the run is still going when it is disturbed
    return subprocess.Popen(cosim_cmd("run", str(scn), "--out", str(out), "--quiet", "--realtime", "0.05"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(proc: subprocess.Popen, out: Path, n: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        rows = _rows(out)
        if rows >= n:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"the run did not write {n} rows (exit {proc.poll()})")


def _assert_failed_file(out: Path, rows_seen: int, needle: str) -> None:
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed"
        assert needle in f.attrs["error"]
        n = f["time"].shape[0]
        assert n >= rows_seen and f.attrs["steps"] == n
        np.testing.assert_array_equal(f["time"][()], np.arange(n) * 60_000)
        assert not np.isnan(f["households/P"][()]).any()


def _grid_signalled_mid_run(write_scenario, tmp_path, mode: str, sig: int, **start) -> tuple:
    """A run whose grid simulator (a ``cmd`` subprocess, or a ``connect`` server; *start*: more of its start
    fields) gets *sig* after 2 rows; (stderr, s from the signal to the run's exit, rows seen, the grid's
    pid, results file). The run must have failed (exit 1)."""
    server = None
    if mode == "cmd":
        sims = {"grid": {"mode": "cmd", **start}}
    else:
        port = free_port()
        server = start_sim_server("simulators.grid", port)
        sims = {"grid": {"mode": "connect", "address": f"127.0.0.1:{port}", **start}}
    scn = write_scenario(grid={"network": "cigre_lv"}, simulators=sims, record={"flush_every": 1})
    out = tmp_path / "g.h5"
    proc = _start_run(scn, out)
    try:
        rows = _wait_rows(proc, out, 2)
        victim = _children(proc.pid, "simulators.grid")[0] if mode == "cmd" else server.pid
        os.kill(victim, sig)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
        if server is not None:
            server.kill()
            server.wait()
    assert proc.returncode == 1, err
    return err, elapsed, rows, victim, out


@pytest.mark.parametrize("mode", ["cmd", "connect"])
def test_killed_grid_simulator_fails_the_run_fast(write_scenario, tmp_path, mode):
    err, elapsed, rows, _, out = _grid_signalled_mid_run(write_scenario, tmp_path, mode, signal.SIGKILL)
    assert elapsed < KILL_TO_EXIT_S, f"{elapsed:.1f} s from kill to exit"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    expected = "killed by SIGKILL" if mode == "cmd" else "closed its connection"
    assert len(errors) == 1 and "simulator grid-0" in errors[0] and expected in errors[0], err
    assert "Traceback" not in err and "Task was destroyed" not in err
    _assert_failed_file(out, rows, "grid-0")


def test_sigterm_stops_the_run_like_sigint(write_scenario, tmp_path):
    scn = write_scenario(record={"flush_every": 1})
    out = tmp_path / "t.h5"
    proc = _start_run(scn, out)
    try:
        rows = _wait_rows(proc, out, 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted" and f.attrs["error"] == "stopped by SIGTERM"
        n = f["time"].shape[0]
        assert n >= rows and f.attrs["steps"] == n


def _grid_signalled_before_it_connects(write_scenario, tmp_path, sig: int) -> tuple[str, float, int]:
    """A run whose ``cmd`` grid simulator gets *sig* while it still imports (not connected); (stderr, s from
    the signal to the run's exit, the grid's pid). The run must have failed (exit 1)."""
    scn = write_scenario(grid={"network": "cigre_lv"}, simulators={"grid": {"mode": "cmd"}})
    proc = _start_run(scn, tmp_path / "s.h5")
    try:
        deadline = time.monotonic() + 60
        victims = []
        while not victims and time.monotonic() < deadline and proc.poll() is None:
            victims = _children(proc.pid, "simulators.grid")
            time.sleep(0.02)
        os.kill(victims[0], sig)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1, err
    return err, elapsed, victims[0]


def test_simulator_killed_before_it_connects_fails_fast(write_scenario, tmp_path):
    err, elapsed, _ = _grid_signalled_before_it_connects(write_scenario, tmp_path, signal.SIGKILL)
    assert elapsed < KILL_TO_EXIT_S, f"{elapsed:.1f} s from kill to exit"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "simulator grid-0" in errors[0] and "killed by SIGKILL" in errors[0], err
    assert "Traceback" not in err


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["cmd", "connect"])
def test_frozen_grid_simulator_fails_the_run_and_is_not_left_behind(write_scenario, tmp_path, mode):
    """A simulator that stops answering (SIGSTOP; a hung host) keeps its socket open: before, the run
    waited forever. A stopped subprocess fails it within seconds and is killed; a remote one that leaves a
    call unanswered for its ``timeout`` (here 4 s) fails it too."""
    start = {} if mode == "cmd" else {"timeout": "4s"}
    err, elapsed, rows, victim, out = _grid_signalled_mid_run(write_scenario, tmp_path, mode, signal.SIGSTOP,
                                                              **start)
    assert elapsed < KILL_TO_EXIT_S + 4, f"{elapsed:.1f} s from SIGSTOP to exit"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    expected = ("is stopped (SIGSTOP or a debugger) and does not answer" if mode == "cmd"
                else "did not answer a call within 4 s (simulators.grid.timeout)")
    assert len(errors) == 1 and "simulator grid-0" in errors[0] and expected in errors[0], err
    assert "Traceback" not in err and "could not terminate" not in err
    if mode == "cmd":
        assert not _alive(victim), "the stopped simulator was left behind"
    _assert_failed_file(out, rows, "grid-0")


def test_simulator_stopped_before_it_connects_fails_and_is_killed(write_scenario, tmp_path):
    err, _, victim = _grid_signalled_before_it_connects(write_scenario, tmp_path, signal.SIGSTOP)
    assert err.splitlines() == [f"error: simulator grid-0 (python -m simulators.grid, pid {victim}) is stopped "
                                "(SIGSTOP or a debugger) before it connected to mosaik"], err
    assert not _alive(victim)
