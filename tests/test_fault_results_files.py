"""Fault suite: the output path never clobbers a foreign file; a killed writer's file is explained and repaired."""

import json
import signal
import subprocess
import time

import h5py
import pytest

from cosim.cli import main
from tests.conftest import ROOT, cosim_cmd


def test_existing_foreign_file_is_not_overwritten(write_scenario, tmp_path, capsys):
    out = tmp_path / "notes.h5"
    out.write_text("my lab notes\n")
    assert main(["run", str(write_scenario(duration="10min")), "--out", str(out), "--quiet"]) == 2
    assert out.read_text() == "my lab notes\n"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {out}: exists and is not a cosim results file; refusing to overwrite it "
                   "(remove it or choose another output)"]


def test_existing_results_file_is_replaced(write_scenario, tmp_path):
    out = tmp_path / "r.h5"
    assert main(["run", str(write_scenario(duration="10min")), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(write_scenario(duration="20min")), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        assert f["time"].shape == (20,)


def test_a_file_a_live_run_writes_is_not_replaced(write_scenario, tmp_path, capsys):
    """A second run with the same --out replaced it: the first run then failed at its next write
    ('writing the results failed (filter returned failure during read)') and its rows were gone."""
    out = tmp_path / "live.h5"
    proc = _live_run(write_scenario, out, stderr=subprocess.PIPE)
    try:
        short = write_scenario("short.yaml", duration="10min")
        assert main(["run", str(short), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"error: {out}: a run (pid {proc.pid}) is writing it; refusing to replace it "
                       "(wait for that run or choose another output)"], err
        assert proc.poll() is None  # the first run goes on
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted" and f["time"].shape[0] >= 1


def _inspect(path) -> subprocess.CompletedProcess:
    return subprocess.run(cosim_cmd("inspect", str(path)), cwd=ROOT, capture_output=True, text=True, timeout=60)


def _live_run(write_scenario, out, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """A 30-day `cosim run` writing *out*, once `cosim inspect` reports it live with rows (the caller stops it)."""
    scn = write_scenario(duration="30d", record={"flush_every": 1})
    proc = subprocess.Popen(cosim_cmd("run", str(scn), "--out", str(out), "--quiet"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    deadline, note = time.monotonic() + 90, ""
    while time.monotonic() < deadline and "/time" not in note:
        time.sleep(0.5)
        if out.exists():
            live = _inspect(out)
            note = live.stdout if live.returncode == 0 else ""
    if "is writing this file" not in note:
        proc.kill()
        proc.wait()
        raise AssertionError(note)
    return proc


def test_killed_writer_file_is_explained_and_repaired(write_scenario, tmp_path, capsys):
    out = tmp_path / "k.h5"
    proc = _live_run(write_scenario, out)
    try:
        assert main(["inspect", "--repair", str(out)]) == 2  # never repairs a file a live run writes
        assert "still being written" in capsys.readouterr().err
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(out, "r")
    gone = _inspect(out)
    assert gone.returncode == 0 and "status       running" in gone.stdout
    assert "was killed" in gone.stdout and f"cosim inspect --repair {out}" in gone.stdout
    assert main(["kpis", str(out), "--json"]) == 0  # a partial run, not a live one (before: "running")
    assert json.loads(capsys.readouterr().out)["run"]["status"] == "partial (its writer stopped without closing it)"
    with h5py.File(out, "r", libver="latest", swmr=True) as f:
        rows = f["time"].shape[0]
        p = f["households/P"][:rows]
    assert rows >= 1
    assert main(["inspect", "--repair", str(out)]) == 0
    assert f"{out}: repaired: {rows} rows kept" in capsys.readouterr().out
    with h5py.File(out, "r") as f:  # a plain open works again
        assert f.attrs["status"] == "failed" and "writer killed" in f.attrs["error"]
        assert f.attrs["steps"] == rows == f["time"].shape[0]
        assert (f["households/P"][:rows] == p).all()
    assert main(["kpis", str(out)]) == 0
    assert main(["inspect", "--repair", str(out)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_live_file_momentarily_shorter_than_its_stored_end_is_waited_for(tmp_path):
    """A live writer extends the file's stored end before the bytes reach the disk: a reader that opens it
    in that instant (a copy taken mid-write, cut short, stands for it) waits for the bytes instead of
    calling the file truncated; if they never come, it is truncated, in one line."""
    import threading

    import numpy as np

    from cosim.errors import InputError
    from cosim.h5open import open_results, superblock

    w = h5py.File(tmp_path / "live.h5", "w", libver="latest")
    w.create_dataset("time", data=np.arange(10), maxshape=(None,), chunks=(4,))
    w.swmr_mode = True
    w.flush()
    data = (tmp_path / "live.h5").read_bytes()  # as on disk while the writer runs: write flags set
    w.close()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[:-200])
    assert superblock(cut).open_for_write
    with pytest.raises(InputError, match=r"truncated results file \(\d+ of \d+ bytes\)"):
        open_results(cut)
    def arrive():  # the missing bytes reach the disk (appended: the file never shrinks, as under a writer)
        with open(cut, "ab") as f:
            f.write(data[-200:])
    late = threading.Timer(0.1, arrive)
    late.start()
    try:
        with open_results(cut) as f:
            assert list(f["time"][:3]) == [0, 1, 2]
    finally:
        late.join()


def test_a_results_file_that_cannot_be_written_fails_the_run_in_one_line(write_scenario, tmp_path, capsys,
                                                                          monkeypatch):
    """A full disk: HDF5's write fails in a flush. The run fails with one line naming the file and the cause
    (before: a segmentation fault in the error report, the file left 'running', the simulators not shut
    down), and the rows already on disk stay readable."""
    from cosim import results

    write = results.ResultsWriter._write_buffered
    calls = []

    def full_disk(self):
        calls.append(1)
        if len(calls) > 2:  # the first rows are written, then the disk is full
            raise OSError("Can't write data (file write failed: time = Mon Dec  7 15:29:13 2026\n, errno = 28, "
                          "error message = 'No space left on device', buf = 0x55, total write size = 25490)")
        write(self)

    monkeypatch.setattr(results.ResultsWriter, "_write_buffered", full_disk)
    out = tmp_path / "full.h5"
    assert main(["run", str(write_scenario(record={"flush_every": 5})), "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out}: writing the results failed (file write failed: No space left on device)"]
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed" and f["time"].shape[0] == 10 and f.attrs["steps"] == 10
