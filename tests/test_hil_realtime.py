"""Lateness statistics and the RealtimeMonitor simulator."""

import json
import math

import mosaik
import pytest

from hil.realtime import RealtimeMonitor, lateness_stats


def test_lateness_stats():
    pairs = [(i * 1.0, i * 1.0 + d / 1000.0) for i, d in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 100])]
    st = lateness_stats(pairs, threshold_ms=5.0)
    assert st["n"] == 10
    assert st["p50_ms"] == pytest.approx(4.5)
    assert st["p99_ms"] == pytest.approx(8 + 0.91 * 92)  # linear interpolation like numpy
    assert st["max_ms"] == pytest.approx(100.0)
    assert st["late"] == 4 and st["late_frac"] == pytest.approx(0.4)
    early = lateness_stats([(1.0, 0.999)])
    assert early["p50_ms"] == pytest.approx(-1.0) and early["late"] == 0
    empty = lateness_stats([])
    assert empty["n"] == 0 and math.isnan(empty["p50_ms"])


def test_monitor_with_a_fake_clock(tmp_path):
    clock = iter([10.0, 11.0, 12.05, 13.3, 14.0]).__next__
    mon = RealtimeMonitor(clock=clock)
    mon.init("RT", time_resolution=0.001, step_size=1000)
    assert mon.create(1, "RealtimeMonitor", rt_factor=1.0, threshold_ms=100,
                      report_path=str(tmp_path / "rt.json")) == [{"eid": "rt", "type": "RealtimeMonitor"}]
    t, lat = 0, []
    for _ in range(5):
        t = mon.step(t, {}, 10**9)
        lat.append(mon.get_data({"rt": ["lateness_ms"]})["rt"]["lateness_ms"]["rt"])
    assert lat == pytest.approx([0.0, 0.0, 50.0, 300.0, 0.0])
    st = mon.stats()
    assert st["late"] == 1 and st["max_ms"] == pytest.approx(300.0)
    mon.finalize()
    rep = json.loads((tmp_path / "rt.json").read_text())
    assert rep["n"] == 5 and len(rep["records"]) == 5


def test_monitor_rt_factor_scales_the_schedule():
    """mosaik's rt_factor is wall seconds per simulated second (0.5 = twice as fast as real time)."""
    clock = iter([0.0, 0.5, 1.0]).__next__
    mon = RealtimeMonitor(clock=clock)
    mon.init("RT", time_resolution=0.001, step_size=1000)
    mon.create(1, "RealtimeMonitor", rt_factor=0.5)
    t = 0
    for _ in range(3):
        t = mon.step(t, {}, 10**9)
    assert [r[1] for r in mon.records] == pytest.approx([0.0, 0.5, 1.0])
    assert mon.stats()["max_ms"] == pytest.approx(0.0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_monitor_in_a_realtime_mosaik_run(tmp_path):
    report = tmp_path / "lateness.json"
    world = mosaik.World({"RT": {"python": "hil.realtime:RealtimeMonitor"}},
                         time_resolution=0.001, configure_logging=False, skip_greetings=True)
    world.start("RT", step_size=50).RealtimeMonitor(rt_factor=1.0, threshold_ms=20,
                                                    report_path=str(report))
    world.run(until=1000, rt_factor=1.0, print_progress=False)
    st = json.loads(report.read_text())
    assert st["n"] == 20
    assert st["p99_ms"] < 50  # mosaik's absolute schedule keeps lateness to a few ms


def test_an_interrupted_realtime_run_still_reports_its_lateness(write_scenario, tmp_path):
    """Ctrl-C during a real-time run: the steps run so far are recorded, and their lateness is
    summarised as at the end of a completed run (printed and stamped on the file), not lost."""
    import subprocess

    import h5py

    from tests.conftest import ROOT, cosim_cmd, interrupt_after_rows

    scn = write_scenario(duration="1d", record={"flush_every": 5})
    out = tmp_path / "rt.h5"
    proc = subprocess.Popen(cosim_cmd("run", str(scn), "--out", str(out), "--quiet", "--realtime", "0.001"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows, stdout, err = interrupt_after_rows(proc, out, 10)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
        n = int(f.attrs["steps"])
        assert f.attrs["lateness_n"] == n >= rows
    assert f"real-time lateness over {n} steps: p50 " in stdout + err
