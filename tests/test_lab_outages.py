"""Device outages in a lab run: an emulated meter killed and restarted gives one console line per
drop / reconnect (also under --quiet), records in /events/devices, per-device counts in the summary,
and the lab part of the report (real devices table, lab plots, clock-time axes)."""

import json
import threading
import time

import h5py
import yaml

import datetime as dt
import re
from types import SimpleNamespace

import numpy as np
from matplotlib.figure import Figure

from cosim.cli import main
from cosim.lab_plots import LAB_PLOTS
from cosim.plots import _time_axis
from cosim.report import build_report
from hil.testing import ThreadedEmulators
from tests.conftest import free_port
from tests.test_lab_hil import lab_scenario


def test_killed_meter_is_reported_on_console_in_events_and_in_summary(tmp_path, capsys):
    ports = {k: free_port() for k in ("m0", "m1", "gw", "ds")}
    data = lab_scenario(ports, 10, "d1.h004")
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "lab.h5"
    with ThreadedEmulators() as lab:
        m0 = lab.start("sdm630", port=ports["m0"], seed=1)
        m1 = lab.start("sunspec-meter", port=ports["m1"], seed=2)
        lab.start("sunspec-battery", port=ports["gw"], seed=3)

        def script():
            time.sleep(3.0)
            lab.stop(m0)
            m1.fail(4)
            time.sleep(3.0)
            lab.start("sdm630", port=ports["m0"], seed=1)
            m1.fail(None)

        t = threading.Thread(target=script)
        t.start()
        rc = main(["run", str(path), "--out", str(out), "--quiet"])
        t.join()
    assert rc == 0
    cap = capsys.readouterr()
    # the restarted emulator's register may restart a little lower: that is a counter reset, its own line
    lines = [line for line in cap.err.splitlines() if f"127.0.0.1:{ports['m0']}" in line and "went back" not in line]
    addr = f"meter home.h001 (127.0.0.1:{ports['m0']})"
    assert [line.split(" ", 2)[0] for line in lines] == ["warning:", "note:"], cap.err
    assert f"{addr}: no answer" in lines[0] and f"{addr}: answering again after" in lines[1]
    ex = [line for line in cap.err.splitlines() if f"127.0.0.1:{ports['m1']}" in line]
    assert "exception response (Modbus exception 4)" in ex[0] and "exception cleared" in ex[1], cap.err
    with h5py.File(out, "r") as f:
        recs = [json.loads(x) for x in bytes(f["events/devices"][()]).decode().splitlines()]
    kinds = [(r["device"], r["role"], r["kind"]) for r in recs]
    assert kinds.count(("home.h001", "meter", "drop")) == 1 and kinds.count(("home.h001", "meter", "reconnect")) == 1
    assert ("d1.h001", "meter", "exception") in kinds and ("d1.h001", "meter", "recovered") in kinds
    back = next(r for r in recs if r["kind"] == "reconnect")
    assert 2.5 < back["down_s"] < 6.0 and isinstance(back["t"], int)
    # summary (printed under --quiet because a device had outages): counts and stale seconds
    summary = {line.strip().split(":")[0]: line for line in cap.out.splitlines() if line.startswith("  meter")}
    home = summary["meter home.h001 (127.0.0.1"]
    assert "1 outage(s)" in home and "0 exception episode(s)" in home
    stale = float(home.split(" outage(s), ")[1].split(" s stale")[0])
    assert 2 <= stale <= 6, home
    assert "1 exception episode(s)" in summary["meter d1.h001 (127.0.0.1"]

    # the lab report: the real devices' table and the four lab plots
    page = build_report(out)
    table = page[page.index("<h2>Real devices</h2>"):page.index("<h2>Plots</h2>")]
    home_row = re.search(r"<td class=\"l\">meter</td><td class=\"l\">home.h001</td>(.*?)</tr>", table).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", home_row)
    assert cells[0] == f"127.0.0.1:{ports['m0']}" and cells[1] == "1" and 2 <= float(cells[2]) <= 6, cells
    for title, _ in LAB_PLOTS:
        assert f'alt="{title}"' in page, title


def test_time_axes_read_clock_time_on_every_tick():
    """A 10-minute lab run's axis reads 12:00, 12:02, ... and a 1-minute one 12:00:10, ... (never "10, 20")."""
    start = dt.datetime.fromisoformat("2026-06-15T12:00:00+02:00")
    for minutes, pattern in ((10, r"^12:\d\d$"), (1, r"^12:0\d:\d\d$")):
        fig = Figure()
        ax = fig.subplots()
        t = [start + dt.timedelta(seconds=s) for s in range(minutes * 60)]
        ax.plot(t, np.zeros(len(t)))
        _time_axis(ax, SimpleNamespace(start=start))
        fig.canvas.draw()
        labels = [x.get_text() for x in ax.get_xticklabels() if x.get_text()]
        assert len(labels) >= 3 and all(re.match(pattern, x) for x in labels), labels
