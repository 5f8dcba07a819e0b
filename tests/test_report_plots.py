"""The report's plots are readable: no legend lies over the data it explains."""

from __future__ import annotations

import datetime as dt
import json
import matplotlib.dates as mdates
import numpy as np
import pytest
import yaml

import cosim.lab_plots as lab_plots
import cosim.plots as plots
from cosim.results import Results, ResultsWriter
from tests.test_kpi import START, write_synthetic


def lab_file(path) -> str:
    """A lab run's series: a real meter (with quality) beside simulated ones, a gateway with set point."""
    series = [("meters", "P", "kW"), ("meters", "quality", "1"), ("meters", "age", "s"),
              ("gateways", "P_bat", "kW"), ("gateways", "quality", "1"), ("gateways", "age", "s"),
              ("gateways", "setpoint_ack", "1"), ("controller", "P_bat_set", "kW")]
    scenario = {"name": "lab", "start": START, "duration": "1h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario), "seed": 1}, series, [], START, 60_000)
    rng = np.random.default_rng(1)
    for k in range(60):
        q = 1.0 if 20 <= k < 25 else 0.0
        w.append(k * 60_000, {
            ("meters", "P"): {"d1.h001": 3.0 + rng.normal(), "d1.h002": 1.0 + rng.normal(), "d1.h003": 2.0},
            ("meters", "quality"): {"d1.h001": q}, ("meters", "age"): {"d1.h001": 0.2 + 60 * q},
            ("gateways", "P_bat"): {"d1.h001": 2.0}, ("gateways", "quality"): {"d1.h001": 0.0},
            ("gateways", "age"): {"d1.h001": 0.3}, ("gateways", "setpoint_ack"): {"d1.h001": float(k % 7 != 0)},
            ("controller", "P_bat_set"): {"d1.h001": 2.5}})
    w.close()
    return str(path)


def figures(monkeypatch, fns, run, base=None) -> list:
    """The matplotlib figures the plot functions draw (before they become PNG bytes)."""
    drawn = []

    def keep(fig):
        drawn.append(fig)
        return b"png"

    monkeypatch.setattr(plots, "_png", keep)
    monkeypatch.setattr(lab_plots, "_png", keep)
    out = []
    for title, fn in fns:
        n = len(drawn)
        if fn(run, base) is not None:
            out.append((title, drawn[n]))
    return out


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    run, base = write_synthetic(tmp_path / "run.h5"), write_synthetic(tmp_path / "base.h5", baseline=True, mas=False)
    with Results(run) as r, Results(base) as b, Results(lab_file(tmp_path / "lab.h5")) as lab:
        yield figures(monkeypatch, plots.PLOTS, r, b) + figures(monkeypatch, lab_plots.LAB_PLOTS, lab)


def test_no_legend_covers_the_plotting_area(drawn):
    """A legend inside the axes hid the data under it: uc2_district's district load at 00:15-00:30, its
    peak of 152 kW (the KPI table's peak), lay under the legend in the upper left corner."""
    titles = [t for t, _ in drawn]
    assert {"District load", "Household load", "Voltage band", "Real against simulated meters",
            "Gateway set point against read-back", "Link quality and age per real device"} <= set(titles)
    for title, fig in drawn:
        fig.canvas.draw()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box, area = legend.get_window_extent(), ax.get_window_extent()
            assert not box.overlaps(area), f"{title}: the legend ({box}) lies over the plot ({area})"


def flex_file(path) -> str:
    """One order of 20 kW for 01:00-01:30, delivered 12 kWh there (24 kW); the live dso/flex_delivered
    series shows that slot one slot late (01:30-02:00), as simulators/mas/dso.py records it."""
    slot = 1_800_000
    series = [("lfa", "flex_ordered", "kW"), ("dso", "flex_delivered", "kW")]
    scenario = {"name": "flex", "start": START, "duration": "2h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario), "seed": 1}, series, ["flex"], START, 60_000)
    w.add_events("flex", [{"kind": "flex_order", "agent": "dso", "t": 0, "order": "o1", "lfa": "lfa.d1",
                           "t0": 2 * slot, "kwh": 10.0}])
    for k in range(120):
        t = k * 60_000
        w.append(t, {("lfa", "flex_ordered"): {"lfa.d1": 20.0 if 2 * slot <= t < 3 * slot else 0.0},
                     ("dso", "flex_delivered"): {"dso": 24.0 if 3 * slot <= t < 4 * slot else 0.0}})
        if t == 3 * slot + 60_000:
            w.add_events("flex", [{"kind": "settlement", "agent": "dso", "t": t, "t0": 2 * slot, "order": "o1",
                                   "lfa": "lfa.d1", "ordered_kwh": 10.0, "delivered_kwh": 12.0, "slot_ms": slot,
                                   "delivered_slots": [12.0], "ordered_slots": [10.0], "price": 0.0,
                                   "penalty_rate": 0.0}])
    w.close()
    return str(path)


def test_flexibility_plot_shows_delivery_in_the_slot_it_was_ordered_for(tmp_path, monkeypatch):
    """The delivered curve was the live dso/flex_delivered series, which shows each slot one slot late
    (README): on uc3_substation 31 kW delivered appeared at 01:30-02:00 beside 17 kW ordered for
    01:00-01:30, and nothing delivered where it was ordered."""
    with Results(flex_file(tmp_path / "flex.h5")) as run:
        ((_, fig),) = figures(monkeypatch, [("Flexibility", plots.flexibility)], run)
        t = run.t_ms
    lines = {ln.get_label(): np.asarray(ln.get_ydata(), dtype=float)[:len(t)] for ln in fig.axes[0].get_lines()}
    delivered = next(y for label, y in lines.items() if label.startswith("delivered"))
    ordered = lines["ordered"]
    slot = (t >= 3_600_000) & (t < 5_400_000)
    assert (ordered[slot] == 20.0).all() and (delivered[slot] == 24.0).all()  # 12 kWh in half an hour
    assert (delivered[~slot] == 0.0).all()


def test_no_flexibility_plot_when_no_flexibility_was_offered_or_ordered(tmp_path):
    """uc1_home and uc2_district record lfa/flex_offered and flex_ordered, zero throughout (no DSO asks):
    the report drew an empty plot of two flat lines at 0 kW."""
    series = [("lfa", "flex_offered", "kW"), ("lfa", "flex_ordered", "kW")]
    scenario = {"name": "noflex", "start": START, "duration": "1h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    w = ResultsWriter(str(tmp_path / "r.h5"), {"scenario": yaml.safe_dump(scenario), "seed": 1}, series, [],
                      START, 60_000)
    for k in range(60):
        w.append(k * 60_000, {("lfa", "flex_offered"): {"lfa.d1": 0.0}, ("lfa", "flex_ordered"): {"lfa.d1": 0.0}})
    w.close()
    with Results(tmp_path / "r.h5") as run:
        assert plots.flexibility(run) is None


def test_report_of_a_file_with_no_rows_in_its_window_yet(tmp_path):
    """A run still in its warm-up (or killed there): `cosim kpis` says the window has no rows yet, and
    `cosim report` printed a traceback (ValueError: zero-size array, from the voltage plot)."""
    from cosim.report import build_report
    from tests.test_report import _parse

    series = [("households", "P", "kW"), ("grid", "vm_pu", "p.u."), ("households", "soc", "1")]
    scenario = {"name": "early", "start": START, "duration": "1h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    attrs = {"scenario": yaml.safe_dump(scenario), "seed": 1, "eval_start_ms": 3_600_000, "eval_end_ms": 7_200_000}
    w = ResultsWriter(str(tmp_path / "r.h5"), attrs, series, [], START, 60_000)
    for k in range(30):  # half of the warm-up
        w.append(k * 60_000, {("households", "P"): {"d1.h001": 1.0}, ("grid", "vm_pu"): {"bus1": 1.0},
                              ("households", "soc"): {"d1.h001": 0.5}})
    w.close("interrupted")
    p = _parse(build_report(tmp_path / "r.h5"))
    body = " ".join(p.text)
    assert p.imgs == [] and "No plottable data" in body and "no rows in the evaluated window" in body


def grid_file(path, bad_rows) -> str:
    """A grid run whose power flow did not converge at *bad_rows* (no voltages or loadings there)."""
    series = [("households", "P", "kW"), ("grid", "vm_pu", "p.u."), ("grid", "trafo_loading", "%"),
              ("grid", "converged", "1")]
    scenario = {"name": "grid", "start": START, "duration": "1h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    w = ResultsWriter(str(path), {"scenario": yaml.safe_dump(scenario), "seed": 1}, series, [], START, 60_000)
    nan = float("nan")
    for k in range(60):
        bad = k in bad_rows
        w.append(k * 60_000, {("households", "P"): {"d1.h001": 1.0 + k % 5},
                              ("grid", "vm_pu"): {"bus1": nan if bad else 0.98, "bus2": nan if bad else 1.01},
                              ("grid", "trafo_loading"): {"trafo0": nan if bad else 40.0},
                              ("grid", "converged"): {"grid": 0.0 if bad else 1.0}})
    w.close()
    return str(path)


def test_a_step_without_power_flow_prints_no_numpy_warnings(tmp_path):
    """One non-converged step (all its voltages NaN): `cosim report` and `cosim kpis` printed numpy's
    'RuntimeWarning: All-NaN slice encountered' with source lines, as if something had gone wrong."""
    from tests.conftest import run_cosim

    path = grid_file(tmp_path / "g.h5", bad_rows={7})
    for args in (("report", path, "-o", str(tmp_path / "g.html")), ("kpis", path)):
        proc = run_cosim(*args)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)


def test_no_grid_plots_when_no_step_has_a_power_flow(tmp_path):
    """Without one converged step the voltage and loading plots were empty axes (and `cosim kpis`
    printed numpy's warnings for the lowest and highest voltage, which are n/a)."""
    from tests.conftest import run_cosim

    path = grid_file(tmp_path / "g.h5", bad_rows=set(range(60)))
    with Results(path) as run:
        assert plots.voltage_band(run) is None and plots.trafo_loading(run) is None
    proc = run_cosim("kpis", path, "--json")
    grid = json.loads(proc.stdout)["grid"]
    assert proc.stderr == "" and grid["v_min_pu"] is None and grid["nonconverged_steps"] == 60


def test_step_curves_cover_the_last_row(tmp_path, monkeypatch):
    """A step curve ended where its last row begins: in a file of 15-min means (--aggregate 15min) the
    window's last quarter hour was missing from every load, loading and voltage plot, drawn as a
    vertical tick at 02:45 of a window ending at 03:00."""
    series = [("households", "P", "kW"), ("grid", "vm_pu", "p.u."), ("grid", "trafo_loading", "%")]
    scenario = {"name": "agg", "start": START, "duration": "1h", "step": "1min", "seed": 1,
                "districts": [{"name": "d1", "households": 3}]}
    w = ResultsWriter(str(tmp_path / "a.h5"), {"scenario": yaml.safe_dump(scenario), "seed": 1,
                                               "aggregate_ms": 900_000}, series, [], START, 900_000)
    for k in range(4):
        w.append(k * 900_000, {("households", "P"): {"d1.h001": 1.0 + k}, ("grid", "vm_pu"): {"b": 1.0 - k / 100},
                               ("grid", "trafo_loading"): {"t": 10.0 * k}})
    w.close()
    with Results(tmp_path / "a.h5") as run:
        drawn = figures(monkeypatch, [(t, f) for t, f in plots.PLOTS if t in (
            "District load", "Household load", "Transformer loading", "Voltage band")], run)
        end = run.local_times()[-1] + dt.timedelta(minutes=15)
    assert len(drawn) == 4
    for title, fig in drawn:
        for ax in fig.axes:
            for line in ax.get_lines():
                x = line.get_xdata()
                if len(x) < 4:  # the axis lines (0 kW, the limits)
                    continue
                last = mdates.num2date(x[-1]) if not isinstance(x[-1], dt.datetime) else x[-1]
                assert last == end, (title, line.get_label(), last, end)
                assert line.get_ydata()[-1] == line.get_ydata()[-2], (title, line.get_label())
