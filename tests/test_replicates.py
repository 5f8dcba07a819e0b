"""Replicates: ``replicate: N`` re-draws the noise streams and nothing else; their spread (cosim.replicates)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.api import run
from cosim.replicates import prediction_interval, replicate_rows, spread
from cosim.results import Results

# uc2_district cut to 6 homes and 2 evaluated hours (MAS over LTE, meters with class-1 noise): a few s per run
SMALL = {"districts[0].households": 6, "control.horizon": "2h", "evaluation.warmup": "1h",
         "evaluation.cooldown": "1h", "control.lfa.max_rounds": 5}


def test_replicate_redraws_telecom_and_meter_noise_not_the_households(tmp_path):
    paths = {r: tmp_path / f"r{r}.h5" for r in (0, 1)}
    for r, path in paths.items():
        run("uc2_district", until="2h", out=path, replicate=r, **SMALL).close()
    with Results(paths[0], window=False) as a, Results(paths[1], window=False) as b:
        for attr in ("P_base", "P_pv"):  # households, weather and PV: the seed's, whatever the replicate
            assert np.array_equal(a.series("households", attr).values, b.series("households", attr).values,
                                  equal_nan=True), attr
        ma, mb = a.events("messages"), b.events("messages")
        assert len(ma) > 50 and not np.array_equal(ma["latency_ms"].values, mb["latency_ms"].values)
        ea, eb = a.series("meters", "E_imp").values, b.series("meters", "E_imp").values
        assert not np.array_equal(ea, eb, equal_nan=True)  # meter noise re-drawn
        assert a.scenario.replicate == 0 and b.scenario.replicate == 1  # recorded with the scenario


def test_spread_and_prediction_interval_by_students_t():
    # 1, 2, 3, 4: mean 2.5, s = 1.2910; t(3) quantiles from the printed table: 3.182 (0.975), 5.841 (0.995)
    s = spread([1.0, 2.0, None, 3.0, 4.0, float("nan")])
    assert s["n"] == 4 and s["mean"] == 2.5 and (s["min"], s["max"]) == (1.0, 4.0)
    assert s["sd"] == pytest.approx(1.2910, abs=1e-4)
    assert s["ci95"] == pytest.approx(3.182 * 1.2910 / 2, abs=1e-3)
    lo, hi = prediction_interval([1.0, 2.0, 3.0, 4.0], 0.99)
    assert (hi - lo) / 2 == pytest.approx(5.841 * 1.2910 * math.sqrt(1.25), abs=2e-3) and (lo + hi) / 2 == 2.5
    assert spread([7.0])["sd"] is None
    with pytest.raises(ValueError, match="at least 2"):
        prediction_interval([1.0])


def test_replicate_rows_group_by_the_other_parameters():
    rows = [{"replicate": r, "control.mode": m, "status": "completed", "k": v}
            for r, (m, v) in enumerate([("mas", 1.0), ("mas", 3.0), ("central", 5.0), ("central", 5.0)])]
    rows.append({"replicate": 9, "control.mode": "mas", "status": "failed", "k": 100.0})
    got = {r["control.mode"]: r for r in replicate_rows(rows, ["replicate", "control.mode"], ["k"])}
    assert got["mas"]["n"] == 2 and got["mas"]["mean"] == 2.0 and got["central"]["sd"] == 0.0


def test_a_run_drawn_twice_is_one_replicate_and_only_numbers_have_a_spread():
    """A random sweep that draws replicate 0 three times runs one file: n = 2, not 4 (the copies made the
    confidence half-width 8x narrower). A range, a list or a text KPI has no spread (a range's ends were
    pooled as samples; a text stopped the sweep with a traceback)."""
    rows = [{"run": f"s-{r}", "replicate": r, "status": "completed", "k": v, "range": [0.22, 0.42], "id": "ab12"}
            for r, v in ((0, 1.9624), (0, 1.9624), (1, 1.9634), (0, 1.9624))]
    (got,) = replicate_rows(rows, ["replicate"], ["k", "range", "id"])
    assert got["kpi"] == "k" and got["n"] == 2 and got["sd"] == pytest.approx(0.000707, abs=1e-6)
