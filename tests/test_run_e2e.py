"""End-to-end runs through the CLI: determinism, provenance re-run, cmd == python, failures, SIGINT."""

import subprocess

import h5py
import numpy as np

from cosim.cli import main
from tests.conftest import ROOT, cosim_cmd, free_port, interrupt_after_rows, run_cosim, start_sim_server


def datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same(a, b):
    da, db = datasets(a), datasets(b)
    assert da.keys() == db.keys()
    for key in da:
        np.testing.assert_array_equal(da[key], db[key], err_msg=key)


def test_same_seed_same_results_and_layout(write_scenario, tmp_path):
    scn = write_scenario()
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    assert main(["run", str(scn), "--out", str(a), "--quiet"]) == 0
    assert main(["run", str(scn), "--out", str(b), "--quiet"]) == 0
    assert_same(a, b)
    assert main(["run", str(scn), "--out", str(c), "--quiet", "--seed", "12"]) == 0
    assert not np.array_equal(datasets(a)["households/P"], datasets(c)["households/P"])
    with h5py.File(a, "r") as f:
        assert f.attrs["status"] == "completed" and f.attrs["seed"] == 11
        assert f["time"].shape == (120,) and f["time"][1] == 60_000
        assert f["households/P"].shape == (120, 6) and f["households/P"].attrs["unit"] == "kW"
        ids = [i.decode() for i in f["households/_ids/P"][()]]
        assert ids == [f"d1.h{i:03d}" for i in range(1, 7)]
        assert f["meters/E_imp"].shape == (120, 6)
        e = f["meters/E_imp"][()]
        assert (np.diff(e, axis=0) >= 0).all(), "import register must be monotonic"
        assert "districts" in f.attrs["scenario"] and f.attrs["versions"]


def test_provenance_reproduces_the_run(write_scenario, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["run", str(write_scenario()), "--out", str(a), "--quiet", "--seed", "5", "--until", "1h"]) == 0
    assert main(["run", str(a), "--out", str(b), "--quiet"]) == 0  # scenario + seed taken from a.h5
    assert_same(a, b)
    with h5py.File(b, "r") as f:
        assert f.attrs["seed"] == 5 and f["time"].shape == (60,)


def test_subprocess_simulators_equal_in_process(write_scenario, tmp_path):
    cmd = {"household": {"mode": "cmd"}, "meter": {"mode": "cmd"}, "grid": {"mode": "cmd"}}
    grid = {"network": "cigre_lv"}
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["run", str(write_scenario("p.yaml", grid=grid)), "--out", str(a), "--quiet"]) == 0
    assert main(["run", str(write_scenario("c.yaml", grid=grid, simulators=cmd)), "--out", str(b), "--quiet"]) == 0
    assert_same(a, b)


def test_remote_simulator_error_fails_the_run(write_scenario, tmp_path):
    port = free_port()
    server = start_sim_server("tests.helpers.faulty_meter", port)
    try:
        scn = write_scenario(simulators={"meter": {"mode": "connect", "address": f"127.0.0.1:{port}"}})
        out = tmp_path / "f.h5"
        proc = run_cosim("run", str(scn), "--out", str(out), "--quiet")
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 1, proc.stderr
    assert "meter firmware crashed at t=300000 ms" in proc.stderr
    assert "Traceback" not in proc.stderr.split("meter firmware")[0]
    with h5py.File(out, "r") as f:  # what was recorded before the crash is kept
        assert f.attrs["status"] == "failed"
        assert 1 <= f["time"].shape[0] <= 5


def test_sigint_leaves_readable_file_with_completed_steps(write_scenario, tmp_path):
    scn = write_scenario(duration="30d", districts=[{"name": "d1", "households": 50}],
                         record={"flush_every": 10})
    out = tmp_path / "i.h5"
    proc = subprocess.Popen(cosim_cmd("run", str(scn), "--out", str(out), "--quiet"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows, _, err = interrupt_after_rows(proc, out, 30)  # read by a second process while the run goes on (SWMR)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
        n = f["time"].shape[0]
        assert n >= rows and n < 30 * 1440
        assert f.attrs["steps"] == n
        np.testing.assert_array_equal(f["time"][()], np.arange(n) * 60_000)
        p = f["households/P"][()]
        assert p.shape == (n, 50) and not np.isnan(p).any()
