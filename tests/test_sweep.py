"""Parameter sweeps: dotted paths, validation before submit, dask LocalCluster runs, failures, re-runs."""

from __future__ import annotations

import csv
import signal

import pytest
import yaml

from cosim.errors import InputError
from cosim.sweep import NOT_STARTED, STOPPED_BY, _draw, expand, load_sweep, run_sweep, set_path
from tests.conftest import run_cosim, small_scenario


def _write(tmp_path, parameters, **extra):
    base = small_scenario(duration="30min", districts=[{"name": "d1", "households": 2, "shares": {"pv": 0.5}}])
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    spec = {"name": "t", "base": "base.yaml", "parameters": parameters, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_set_path():
    d = {"districts": [{"name": "d1", "shares": {"pv": 0.1}}]}
    set_path(d, "districts[0].shares.pv", 0.5)
    set_path(d, "telecom.default", "lte")
    assert d["districts"][0]["shares"]["pv"] == 0.5 and d["telecom"] == {"default": "lte"}
    with pytest.raises(ValueError, match=r"index \[2\] out of range: districts has 1 entries"):
        set_path(d, "districts[2].households", 3)
    with pytest.raises(ValueError, match="is not a mapping"):
        set_path(d, "districts[0].name.x", 1)
    with pytest.raises(ValueError, match="not a dotted path"):
        set_path(d, "districts..x", 1)


def test_expand_grid_random_and_validation(tmp_path):
    path = _write(tmp_path, {"districts[0].shares.pv": [0.0, 0.5], "seed": [1, 2, 3]})
    spec, p = load_sweep(path)
    variants = expand(spec, p, tmp_path / "out")
    assert len(variants) == 6 and len({v.run_id for v in variants}) == 6
    assert variants[0].params == {"districts[0].shares.pv": 0.0, "seed": 1}
    assert variants[0].path.name.startswith("small-")
    # random sampling is seeded
    path = _write(tmp_path, {"districts[0].shares.pv": {"min": 0.1, "max": 0.9}, "seed": [1, 2, 3]},
                  mode="random", samples=5, seed=9)
    spec, _ = load_sweep(path)
    a, b = _draw(spec), _draw(spec)
    assert a == b and len(a) == 5 and all(0.1 <= d["districts[0].shares.pv"] <= 0.9 for d in a)
    # a bad path or value names the parameter in one line, before anything runs
    for params, msg in [({"districts[0].shares.pv": [0.2, 1.5]}, r"districts\[0\].shares.pv: expected a value <= 1"),
                        ({"districts[4].households": [3]}, r"parameters.districts\[4\].households: index \[4\]"),
                        ({"districts[0].sharez.pv": [0.1]}, r"districts\[0\].sharez: unknown field")]:
        spec, p = load_sweep(_write(tmp_path, params))
        with pytest.raises(InputError, match=msg) as exc:
            expand(spec, p, tmp_path / "out")
        assert len(exc.value.lines) == 1
    proc = run_cosim("sweep", str(_write(tmp_path, {"districts[9].households": [3]})))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "districts[9]" in proc.stderr


def test_sweep_on_local_cluster_with_failure_and_rerun(tmp_path):
    broken = tmp_path / "no_such_grid.json"  # passes validation (a file), fails when the grid loads it
    broken.write_text("{this is not a pandapower network")
    grids = [None, {"network": "cigre_lv"}, {"network": "cigre_lv", "trafo_limit_pct": 50},
             {"network": str(broken)}]
    path = _write(tmp_path, {"grid": grids})
    out = tmp_path / "out"
    res = run_sweep(path, workers=2, out=out, progress=False)
    status = [v.status for v in res.variants]
    assert status == ["completed", "completed", "completed", "failed"]
    failed = res.variants[3]
    assert "no_such_grid" in failed.error
    for v in res.variants[:3]:
        assert v.path.exists() and v.wall_s > 0 and v.kpis["total.bill_eur"] is not None
    assert res.variants[0].kpis["grid.congestion_min"] is None and res.variants[1].kpis["grid.congestion_min"] == 0
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == status
    assert rows[3]["error"] and "no_such_grid" in rows[3]["grid"]
    assert {"run", "grid", "status", "wall_s", "error", "total.bill_eur", "total.self_sufficiency",
            "grid.congestion_min", "mas.gap_mean_pct"} <= set(rows[0])
    first_wall = res.wall_s

    # a re-run skips the finished runs and retries the failed one (through the CLI)
    proc = run_cosim("sweep", str(path), "--workers", "1", "--out", str(out), "--quiet")
    assert proc.returncode == 1, proc.stderr  # one run failed
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["cached"] for r in rows] == ["True", "True", "True", "False"]
    assert [r["status"] for r in rows] == status
    assert "3/4 completed (3 from earlier runs), 1 failed" in proc.stdout
    assert first_wall > 0


def test_a_setting_listed_twice_runs_once(tmp_path, monkeypatch):
    """replicate: [0, 0, 1] is two runs, not three writers of one file; both rows of replicate 0 carry its
    result, and replicates.csv counts it once."""
    import cosim.sweep as sweep

    jobs = []
    real = sweep.execute
    monkeypatch.setattr(sweep, "execute", lambda fn, js, *a: (jobs.extend(js), real(fn, js, *a)))
    res = run_sweep(_write(tmp_path, {"replicate": [0, 0, 1]}), workers=1, out=tmp_path / "out", progress=False)
    assert len(jobs) == 2 and [v.status for v in res.variants] == ["completed"] * 3
    assert res.variants[0].kpis == res.variants[1].kpis and res.variants[0].path == res.variants[1].path
    with (tmp_path / "out" / "replicates.csv").open() as fh:
        assert {r["n"] for r in csv.DictReader(fh)} == {"2"}


def test_sweep_notes_runs_that_evaluate_different_windows(tmp_path):
    """A sweep over duration compares costs of different windows: the summary says so (cosim compare warns
    about it between two files; a sweep printed the costs side by side without a word)."""
    from cosim.sweep import sweep_text

    res = run_sweep(_write(tmp_path, {"duration": ["20min", "30min"]}), workers=1, out=tmp_path / "out",
                    progress=False)
    text = sweep_text(res)
    assert "note: the runs evaluate different windows (h): 0.3333, 0.5" in text, text
    assert "objective_id" not in text
    with (tmp_path / "out" / "summary.csv").open() as fh:
        assert {r["run.window_h"] for r in csv.DictReader(fh)} == {"0.3333", "0.5"}


def test_cached_runs_of_other_code_are_noted_and_runs_without_kpis_fail(tmp_path, monkeypatch):
    """A re-run takes finished files as they are: one that other code made says so (its numbers are that
    code's); a run whose KPIs cannot be computed is failed (it counted as completed, exit 0)."""
    import h5py

    import cosim.sweep as sweep
    from cosim.sweep import sweep_text

    path, out = _write(tmp_path, {"seed": [1]}), tmp_path / "out"
    first = run_sweep(path, workers=1, out=out, progress=False)
    assert "other code" not in sweep_text(first)
    with h5py.File(first.variants[0].path, "r+") as f:
        f.attrs["git_commit"] = "0123abc"
    again = run_sweep(path, workers=1, out=out, progress=False)
    assert again.variants[0].cached and "made by other code than this checkout's" in sweep_text(again)
    assert "0123abc" in sweep_text(again)

    def broken(*_):
        raise ValueError("no time axis")

    monkeypatch.setattr(sweep, "summary_kpis", broken)
    res = run_sweep(path, workers=1, out=out, progress=False)
    assert res.failed == 1 and res.variants[0].error == "KPIs failed: ValueError: no time axis"


KILL_WORKER = '''
import os, sys
sys.path.insert(0, {root!r})


def kill_worker(keys):  # instead of stopping its run: the worker dies with the run's file open
    os.kill(os.getpid(), 9)


if __name__ == "__main__":
    import cosim.sweep as sweep
    from cosim.cli import main

    sweep.stop_runs, sweep.STOP_WAIT_S = kill_worker, 0
    sys.exit(main(sys.argv[1:]))
'''


def _interrupt_sweep(tmp_path, signum: int, group: bool, script=None):
    """Run a 4-run sweep on one worker, signal it while its second run steps; (exit code, stdout, stderr,
    summary rows, the second run's file attrs)."""
    import os
    import subprocess
    import sys
    import time

    import h5py

    from cosim.results import read_attrs
    from tests.conftest import ROOT, wait_until

    base = small_scenario(duration="6d")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(
        {"name": "sigint", "base": "base.yaml", "parameters": {"districts[0].shares.pv": [0.1, 0.3, 0.5, 0.7]}}))
    out = tmp_path / "out"
    spec, _ = load_sweep(tmp_path / "sw.yaml")
    files = [v.path for v in expand(spec, tmp_path / "sw.yaml", out)]
    cmd = [sys.executable, *([str(script)] if script else ["-m", "cosim.cli"]),
           "sweep", str(tmp_path / "sw.yaml"), "--workers", "1", "-o", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's Ctrl-C reaches
    try:
        wait_until(lambda: files[0].with_suffix(".json").exists() or proc.poll() is not None, 240, 0.1)
        wait_until(lambda: files[1].exists() or proc.poll() is not None, 60, 0.05)
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    attrs = read_attrs(files[1])
    with h5py.File(files[1], "r") as f:  # a plain open: the file is closed
        attrs["rows"] = f["time"].shape[0]
    return proc.returncode, stdout, stderr, rows, attrs


@pytest.mark.timeout(400)
@pytest.mark.parametrize("signum, group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_writes_its_summary_and_its_run_closes_its_file(tmp_path, signum, group):
    """Ctrl-C (SIGINT to the process group, workers included) or SIGTERM to the sweep: exit 130 with one
    line, summary.csv and the table with the runs not finished `interrupted`, and the run in progress
    stopped by its own runner: its file says interrupted and keeps its steps. (It was exit 130 without a
    summary, the run's file left `running` by a killed writer, and a leaked-semaphore warning.)"""
    code, stdout, stderr, rows, attrs = _interrupt_sweep(tmp_path, signum, group)
    assert code == 130, stderr
    # (dask's own log lines, e.g. an event loop slow on a loaded machine, are dask's business)
    assert [ln for ln in stderr.splitlines() if " - distributed." not in ln] == ["error: interrupted"], stderr
    assert "leaked semaphore" not in stderr
    assert [r["status"] for r in rows] == ["completed", "interrupted", "interrupted", "interrupted"]
    assert rows[0]["total.bill_eur"] and not rows[1]["total.bill_eur"]
    assert "its completed steps are in its file" in rows[1]["error"]
    assert [r["error"] for r in rows[2:]] == [NOT_STARTED] * 2
    assert "1/4 completed (0 from earlier runs), 0 failed, 3 interrupted" in stdout
    assert attrs["status"] == "interrupted" and attrs["error"] == f"stopped by {STOPPED_BY}"
    assert attrs["steps"] == attrs["rows"] > 0


@pytest.mark.timeout(400)
def test_an_interrupted_sweep_closes_the_file_its_killed_worker_left_open(tmp_path):
    """The fallback: a run that cannot stop itself (its worker died with the file open) has its file
    closed by the sweep as `interrupted`, with the rows its writer flushed."""
    from tests.conftest import ROOT

    script = tmp_path / "kill_worker.py"
    script.write_text(KILL_WORKER.format(root=str(ROOT)))
    code, stdout, stderr, rows, attrs = _interrupt_sweep(tmp_path, signal.SIGINT, False, script)
    assert code == 130 and "error: interrupted" in stderr.splitlines() and "Traceback" not in stderr, stderr
    assert [r["status"] for r in rows] == ["completed", "interrupted", "interrupted", "interrupted"]
    assert "its worker was stopped before the run closed its file" in rows[1]["error"]
    assert attrs["status"] == "interrupted" and "its worker was stopped" in attrs["error"]
    assert attrs["steps"] == attrs["rows"]


@pytest.mark.parametrize("address", ["nonsense", "tcp://", "tcp://127.0.0.1:notaport"])
def test_a_malformed_scheduler_address_is_one_line(tmp_path, capsys, address):
    """`--scheduler` without a port or with a malformed one was a ValueError traceback (exit 1)."""
    from cosim.cli import main

    assert main(["sweep", "sweep_demo", "--quiet", "--scheduler", address, "-o", str(tmp_path / "o")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if " - distributed." not in ln]
    assert len(err) == 1 and err[0].startswith(f"error: --scheduler {address}: "), err
