"""Fault suite: truncated or damaged results files never hang an analysis command; one line, exit 2."""

import time

import pytest

from cosim.cli import main

COMMANDS = [
    lambda bad, good, tmp: ["inspect", bad],
    lambda bad, good, tmp: ["kpis", bad],
    lambda bad, good, tmp: ["report", bad, "--out", str(tmp / "r.html")],
    lambda bad, good, tmp: ["compare", good, bad],
    lambda bad, good, tmp: ["value", bad, "--baseline", good],
    lambda bad, good, tmp: ["run", bad, "--out", str(tmp / "rerun.h5"), "--quiet"],
]
NAMES = ["inspect", "kpis", "report", "compare", "value", "run"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A real small run (6 households, meters and a grid, 1 h)."""
    from tests.conftest import small_scenario
    import yaml

    d = tmp_path_factory.mktemp("damaged")
    scn = d / "s.yaml"
    scn.write_text(yaml.safe_dump(small_scenario(grid={"network": "cigre_lv"}, duration="1h")))
    out = d / "good.h5"
    assert main(["run", str(scn), "--out", str(out), "--quiet"]) == 0
    return out


def _damaged(good, tmp_path, how: str):
    data = good.read_bytes()
    bad = tmp_path / f"{how}.h5"
    if how == "half":
        bad.write_bytes(data[: len(data) // 2])
    elif how.startswith("head"):
        bad.write_bytes(data[: int(how[4:])])
    elif how == "overwritten":  # the superblock's tail and the root group's header
        bad.write_bytes(data[:40] + b"\xaa" * 3000 + data[3040:])
    elif how == "empty":
        bad.write_bytes(b"")
    elif how == "text":
        bad.write_text("time,P\n0,1.0\n")
    return bad


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["head2048", "head4096", "half", "overwritten", "empty", "text"])
@pytest.mark.parametrize("command", range(len(COMMANDS)), ids=NAMES)
def test_damaged_results_file_one_line_exit_2(good_run, tmp_path, capsys, how, command):
    bad = _damaged(good_run, tmp_path, how)
    t0 = time.monotonic()
    code = main(COMMANDS[command](str(bad), str(good_run), tmp_path))
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: "), err
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_directory_and_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert main(["kpis", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path}: not a file", f"error: {tmp_path / 'nope.h5'}: no such file"]


def _damaged_chunk(good, tmp_path):
    """*good* with the first data chunk of /households/P zeroed in its middle: the metadata is intact, the
    chunk no longer decompresses (gzip)."""
    import h5py

    with h5py.File(good, "r") as f:
        info = f["households/P"].id.get_chunk_info(0)
    data = bytearray(good.read_bytes())
    mid = info.byte_offset + info.size // 2
    data[mid:mid + 64] = bytes(64)
    bad = tmp_path / "chunk.h5"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("command", [1, 2, 3, 4], ids=NAMES[1:5])
def test_a_damaged_data_chunk_is_one_line_naming_its_file(good_run, tmp_path, capsys, command):
    """Data damaged on disk is read only when used: the message names the file and the dataset (before:
    'error: ?: ...', so with two input files one could not tell which one was bad)."""
    bad = _damaged_chunk(good_run, tmp_path)
    assert main(COMMANDS[command](str(bad), str(good_run), tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: damaged results file (") and "/households/P" in err[0]


def test_a_damaged_data_chunk_through_the_api_is_an_input_error(good_run, tmp_path):
    import cosim

    bad = _damaged_chunk(good_run, tmp_path)
    with cosim.Results(bad) as res, pytest.raises(cosim.InputError, match=rf"{bad}: damaged results file"):
        res.frame("households", "P")


def _damaged_btree_header(good, tmp_path):
    """*good* with its last version-2 B-tree header ('BTHD', an index of attributes or links) overwritten
    with 0xff: HDF5 1.14 then crashed (SIGSEGV) walking the file's objects (as with most such headers of a
    uc1_home file; the others are refused by their checksum)."""
    data = bytearray(good.read_bytes())
    at = data.rfind(b"BTHD")
    assert at > 0
    data[at:at + 64] = b"\xff" * 64
    bad = tmp_path / "btree.h5"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", range(len(COMMANDS)), ids=NAMES)
def test_metadata_that_crashes_hdf5_is_one_line_exit_2(good_run, tmp_path, command):
    """Run as a subprocess: the crash it was (exit -11, nothing said) would have ended the test session."""
    from tests.conftest import run_cosim

    bad = _damaged_btree_header(good_run, tmp_path)
    proc = run_cosim(*COMMANDS[command](str(bad), str(good_run), tmp_path), timeout=60)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, err)
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: damaged"), err


def test_only_the_commands_walk_a_file_in_a_forked_child(good_run, monkeypatch):
    """The Python API (and sweep workers, tests) open a file without forking: the probe costs 25-35 ms per
    open and would fork processes with busy threads; inside cosim.cli.main (probing) it forks once per open."""
    import os

    import cosim
    from cosim import h5open

    forks = []

    def fake_fork():
        forks.append(1)
        raise OSError("no fork here")

    monkeypatch.setattr(os, "fork", fake_fork)
    with cosim.Results(good_run) as res:
        assert res.frame("households", "P").shape[0] > 0
    assert forks == []
    with h5open.probing(), pytest.raises(cosim.InputError, match="no fork here"):
        h5open.open_results(good_run)
    assert forks == [1] and not h5open._PROBE
