"""Aggregate recording (record.aggregate, cosim.aggregate): an aggregated file of a run against the
full-resolution file of the same run."""

import math

import numpy as np
import pytest

from cosim.aggregate import Aggregator
from cosim.api import load_scenario, run
from cosim.cli import main
from cosim.errors import InputError
from cosim.kpi import compute_kpis, lookup
from cosim.results import Results

# a summer noon on uc3_physical with tight limits, so that there is export, congestion and voltage
# violation to compare; the cool-down puts a meter reading after the window (closing reading)
STUDY = {"start": "2026-06-01T11:00:00+02:00", "grid.trafo_limit_pct": 30, "grid.line_limit_pct": 60,
         "grid.v_band": 0.04, "evaluation.warmup": "15min", "evaluation.cooldown": "15min"}
# KPIs that an aggregated file must reproduce to float precision (README "A year")
EXACT = [f"{g}.{k}" for g in ("total", "districts.d1") for k in (
    "import_kwh", "export_kwh", "bill_eur", "import_cost_eur", "feed_in_eur", "pv_kwh", "mean_kw",
    "peak_15min_kw", "objective_energy_eur", "stored_start_kwh", "stored_end_kwh", "terminal_adjustment_eur")] + [
    "grid.losses_kwh", "grid.trafo_energy_kwh", "grid.congestion_min", "grid.v_violation_min", "grid.v_min_pu",
    "grid.v_max_pu", "grid.trafo_loading_pct.max", "grid.line_loading_pct.max", "grid.nonconverged_steps",
    "grid.unbalance.vuf_max_pct"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("agg")
    run("uc3_physical", until="2h", out=d / "full.h5", **STUDY).close()
    run("uc3_physical", until="2h", out=d / "agg.h5", **{"record.aggregate": "15min"}, **STUDY).close()
    return d / "full.h5", d / "agg.h5"


def test_interval_statistics_by_hand():
    agg = Aggregator(180_000)  # 3 steps of 1 min
    steps = [{("h", "P"): {"a": 1.0, "b": 2.0}, ("h", "soc"): {"a": 0.5}, ("m", "E_imp"): {"a": 10.0},
              ("g", "vm_pu"): {"n": 1.00}},
             {("h", "P"): {"a": 4.0}, ("h", "soc"): {"a": 0.6}, ("m", "E_imp"): {"a": 11.0},
              ("g", "vm_pu"): {"n": 0.95}},
             {("h", "P"): {"a": 7.0, "b": float("nan")}, ("h", "soc"): None, ("m", "E_imp"): {"a": 12.0},
              ("g", "vm_pu"): {"n": 1.02}}]
    assert [agg.add(t * 60_000, v) for t, v in enumerate(steps)] == [None] * 3
    t, row = agg.add(180_000, steps[0])
    assert t == 0
    assert row[("h", "P")] == {"a": 4.0, "b": 2.0 / 3}  # mean, a step without a value counts 0
    assert row[("h", "soc")] == {"a": 0.6}  # last value
    assert row[("m", "E_imp")] == {"a": 10.0}  # register reading at the row's time stamp
    assert row[("g", "vm_pu")] == {"n": pytest.approx(0.99)}
    assert row[("g/_min", "vm_pu")] == {"n": 0.95} and row[("g/_max", "vm_pu")] == {"n": 1.02}
    assert agg.close()[0] == 180_000


def test_exact_kpis_equal_full_resolution(pair):
    full, agg = (compute_kpis(p) for p in pair)
    assert agg["run"]["rows"] * 15 == full["run"]["rows"] == 120
    assert lookup(full, "grid.congestion_min") > 0 and lookup(full, "grid.v_violation_min") > 0
    assert lookup(full, "total.export_kwh") > 0
    for key in EXACT:
        a, b = lookup(full, key), lookup(agg, key)
        assert a is not None and b == pytest.approx(a, rel=1e-9, abs=1e-9), key
    # what means cannot give is absent and says why, not a wrong number
    assert lookup(agg, "grid.trafo_overload_min") is None
    assert "congestion_min" in agg["not_available"]["grid.trafo_overload_min"]
    assert lookup(agg, "grid.unbalance.v_violation_worst_phase_min") is None


def test_frame_holds_interval_means(pair):
    with Results(pair[0]) as f, Results(pair[1]) as a:
        full, agg = f.frame("households", "P"), a.frame("households", "P")
        assert a.record_ms == 900_000 and agg.attrs["unit"] == "kW"
        expect = full.resample("15min").mean()  # pandas, independent of cosim.aggregate
        assert np.allclose(agg.to_numpy(), expect.to_numpy(), rtol=0, atol=1e-12, equal_nan=True)
        soc_f, soc_a = f.frame("households", "soc"), a.frame("households", "soc")
        assert np.allclose(soc_a.to_numpy(), soc_f.resample("15min").last().to_numpy(), equal_nan=True)
        vmin = a.extreme("grid", "vm_pu_a", "min").values
        assert np.allclose(vmin, f.series("grid", "vm_pu_a").values.reshape(-1, 15, vmin.shape[1]).min(axis=1))


def test_readers_accept_an_aggregated_file(pair, tmp_path, capsys):
    _, agg = pair
    assert main(["compare", str(pair[0]), str(agg)]) == 0
    assert main(["report", str(agg), "--out", str(tmp_path / "r.html")]) == 0
    assert main(["value", str(agg), "--baseline", str(agg)]) == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "voltage violation" in out


def test_cli_override_and_bad_aggregates(write_scenario, tmp_path, capsys):
    path = write_scenario(duration="1h")
    assert main(["run", str(path), "--aggregate", "30min", "--out", str(tmp_path / "a.h5"), "--quiet"]) == 0
    with Results(tmp_path / "a.h5") as res:
        assert list(res.t_ms) == [0, 1_800_000] and res.aggregate_ms == 1_800_000
        assert math.isclose(res.duration_h, 1.0)
    assert main(["run", str(path), "--aggregate", "7min", "--quiet", "--out", str(tmp_path / "b.h5")]) == 2
    assert "record.aggregate" in capsys.readouterr().err
    with pytest.raises(InputError, match="either every"):
        load_scenario(str(path), **{"record.aggregate": "15min", "record.every": "5min"})


def test_nonconverged_steps_are_not_violations_in_either_file(tmp_path):
    """The grid flags a step without a converged power flow as congestion and voltage violation; both
    files count only the real violations (5 min here) and report the 3 non-converged steps apart
    (before, the aggregated file counted 8 minutes of each)."""
    import yaml

    from cosim.aggregate import extra_series
    from cosim.results import ResultsWriter
    from tests.test_kpi import SCENARIO, START

    series = [("grid", a, u) for a, u in (("congestion", "flag"), ("v_violation", "flag"), ("converged", "flag"),
                                          ("v_min", "p.u."), ("v_max", "p.u."))]
    rows = []
    for k in range(30):
        bad, lost = 20 <= k < 25, 10 <= k < 13
        rows.append({("grid", "congestion"): {"grid": 1.0 if bad or lost else 0.0},
                     ("grid", "v_violation"): {"grid": 1.0 if bad or lost else 0.0},
                     ("grid", "converged"): {"grid": 0.0 if lost else 1.0},
                     ("grid", "v_min"): {"grid": float("nan") if lost else 0.85 if bad else 1.0},
                     ("grid", "v_max"): {"grid": float("nan") if lost else 1.0}})
    attrs = {"scenario": yaml.safe_dump(SCENARIO)}
    full = ResultsWriter(str(tmp_path / "full.h5"), attrs, series, [], START, 60_000)
    agg_w = ResultsWriter(str(tmp_path / "agg.h5"), {**attrs, "aggregate_ms": 900_000}, series + extra_series(series),
                          [], START, 60_000)
    agg = Aggregator(900_000)
    for k, row in enumerate(rows):
        full.append(k * 60_000, row)
        done = agg.add(k * 60_000, row)
        if done:
            agg_w.append(*done)
    agg_w.append(*agg.close())
    full.close("completed"), agg_w.close("completed")
    for name in ("full.h5", "agg.h5"):
        g = compute_kpis(tmp_path / name)["grid"]
        assert (g["congestion_min"], g["v_violation_min"], g["nonconverged_steps"]) == (5.0, 5.0, 3), name
