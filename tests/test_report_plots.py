"""The report's plots are readable: no legend lies over the data it explains."""

from __future__ import annotations

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
