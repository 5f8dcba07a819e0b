import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def small_scenario(**overrides) -> dict:
    data = {
        "name": "small",
        "description": "small test scenario",
        "start": "2026-06-15T00:00:00+02:00",
        "duration": "2h",
        "step": "1min",
        "seed": 11,
        "districts": [{"name": "d1", "households": 6, "shares": {"pv": 0.5}}],
        "meters": {"accuracy_class": 1.0},
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_scenario(tmp_path):
    def write(name="s.yaml", **overrides) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(small_scenario(**overrides), sort_keys=False))
        return path

    return write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start_sim_server(module: str, port: int) -> subprocess.Popen:
    """Start a mosaik simulator as a server on 127.0.0.1:port and wait until it listens.

    (A probe connection would be taken for mosaik's, so wait for its log line instead.)"""
    proc = subprocess.Popen([sys.executable, "-m", module, "--remote", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "awaits connection" in line:
            break
    time.sleep(0.5)
    return proc


def cosim_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cosim.cli", *args]


def run_cosim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cosim_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def interrupt_after_rows(proc: subprocess.Popen, out: Path, rows: int) -> tuple[int, str, str]:
    """SIGINT to the `cosim run` *proc* once another process reads at least *rows* rows of its file *out*
    (SWMR, while the run goes on); (rows read then, stdout, stderr). Fails if it had not written them
    within 60 s; the process is killed on any failure."""
    import signal

    import h5py

    try:
        deadline, seen = time.monotonic() + 60, 0
        while time.monotonic() < deadline and seen < rows:
            time.sleep(0.2)
            if out.exists():
                try:
                    with h5py.File(out, "r", libver="latest", swmr=True) as f:
                        seen = f["time"].shape[0]
                except (OSError, KeyError):
                    pass
        assert seen >= rows, "the run did not write while running"
        proc.send_signal(signal.SIGINT)
        stdout, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return seen, stdout, err


def wait_until(pred, timeout: float, period: float = 0.02) -> float:
    """Poll *pred* until it is true; return the seconds it took, fail after *timeout*."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(period)
    raise AssertionError(f"condition not met within {timeout} s")
