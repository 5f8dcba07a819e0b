"""The README lab recipe, pasted into bash as it stands (on free ports, 20 s instead of a minute): a
device started by hand is used, the others are emulated, and mbpoll reads the served household."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT


def recipe() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("No hardware at hand?"):]
    return section[section.index("```bash\n") + 8: section.index("```\n", section.index("```bash\n") + 8)]


def consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (apt-get install mbpoll)")
def test_readme_lab_recipe_runs_when_pasted(tmp_path):
    base = consecutive_free_ports(4)
    env = {**os.environ, "PORT": str(base), "UNTIL": "20s",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    # its own session, output to files: whatever the recipe leaves running is found and stopped below
    with out.open("w") as fo, err.open("w") as fe:
        shell = subprocess.Popen(["bash", "-c", "set -e\n" + recipe()], cwd=tmp_path, env=env, stdout=fo,
                                 stderr=fe, text=True, start_new_session=True)
        try:
            rc = shell.wait(timeout=180)
        finally:
            try:
                os.killpg(shell.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    r = SimpleNamespace(returncode=rc, stdout=out.read_text(), stderr=err.read_text())
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"home.h001: 127.0.0.1:{base} already answers, used as it is" in r.stdout, r.stdout
    assert f"sunspec-meter for d1.h001 on 127.0.0.1:{base + 1}" in r.stdout
    assert "address already in use" not in r.stdout + r.stderr
    assert f"device server 127.0.0.1:{base + 3}" in r.stdout
    served = re.search(r"\[53\]:\s+(-?[0-9.eE+-]+)", r.stdout)
    assert served, r.stdout
    with h5py.File(tmp_path / "results" / "lab_hil.h5", "r") as f:
        assert f.attrs["status"] == "completed"
        ids = [i.decode() for i in f["households/_ids/P"][()]]
        p_kw = f["households/P"][()][:, ids.index("d1.h002")]
    # mbpoll's reading (W) is one of the simulated household's recorded powers
    assert np.min(np.abs(p_kw * 1000.0 - float(served.group(1)))) < 0.5
    # and the one the README says it reads
    said = re.search(r"`mbpoll` reads \*\*(-?[0-9.]+) W\*\*", (ROOT / "README.md").read_text())
    assert said and abs(float(said.group(1)) - float(served.group(1))) < 0.5, (said and said.group(0), served.group(1))


@pytest.mark.parametrize("value, message", [("abc", "expected a port number or 'auto', got 'abc'"),
                                            ("65534", "65534 leaves no room for 4 ports below 65536")])
def test_port_base_bad_value_is_one_line_exit_2(value, message, capsys):
    from cosim.cli import main

    assert main(["run", "lab_hil", "--port-base", value, "--until", "1s"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --port-base: {message}"


def test_port_base_auto_places_every_device_on_a_distinct_free_port():
    from cosim.lab import with_ports
    from cosim.scenario import load_scenario

    scn, text = load_scenario("lab_hil")
    scn, text, placed = with_ports(scn, text, "auto")
    ports = [m.port for m in scn.hil.meters] + [g.port for g in scn.hil.gateways] + [scn.hil.device_server.port]
    assert len(set(ports)) == 4 and len(placed) == 4 and f"port: {ports[0]}" in text
