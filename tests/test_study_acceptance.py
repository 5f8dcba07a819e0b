"""Acceptance of the study numbers on the bundled uc2_district (one evaluated day, a day of warm-up and
cool-down): both controllers beat no control and the MAS realises the central run's cost within 2 %.
Central and MAS are both rolling-horizon plans of the same LP (planned gap 0.02 % per negotiation), with
equally cheap slots ranked the same way in every plan (``control.tie_break``), so which of the two
realises less is not determined: measured 2026-12-07, mas 0.11 % below central in cost and 1.59 % in
objective on this day (replicate 0; replicates 1-3: -0.43 to +1.38 % in cost, -0.30 to +2.17 % in
objective, so the 2 % holds for this draw, not for every one). Without the tie-break the central run
realised 2.1 % more than the MAS and this test failed (README, "Study numbers").
About 3 minutes per MAS run on the 2-core dev machine: marked slow (`pytest -m slow`)."""

import pytest

from cosim.cli import main
from cosim.compare import compare
from cosim.kpi import compute_kpis


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_uc2_district_day_central_le_mas_le_none(tmp_path):
    out = {m: tmp_path / f"{m}.h5" for m in ("none", "mas", "central")}
    for mode, path in out.items():
        assert main(["run", "uc2_district", "--out", str(path), "--quiet", "--control", mode]) == 0
    k = {m: compute_kpis(str(p)) for m, p in out.items()}
    obj = {m: k[m]["total"]["objective_eur"] for m in k}
    assert max(obj["central"], obj["mas"]) < obj["none"], obj
    assert abs(obj["mas"] - obj["central"]) <= 0.02 * abs(obj["central"]), obj
    res = compare([str(out["mas"]), str(out["central"])])
    assert res["realised_gap_pct"][0] is not None and abs(res["realised_gap_pct"][0]) <= 2.0, res["realised_gap_pct"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_uc2_district_mas_realises_the_central_cost_within_2_percent_over_replicates(tmp_path):
    """The claim as a study makes it: the bundled sweep `uc2_gap` (both controllers in replicates 0-3,
    noise and tie-break re-drawn) and the mean realised gap over the replicates, in cost and in
    objective, within 2 %. About 6.5 min on 2 workers (measured 2026-12-07: cost +0.53 %, objective
    +0.26 %, 95 % CI half-widths 1.5 and 2.5 %)."""
    from cosim.replicates import spread
    from cosim.sweep import run_sweep

    runs = run_sweep("uc2_gap", workers=2, out=tmp_path / "gap", progress=False).variants
    assert [v.status for v in runs] == ["completed"] * 8
    k = {(v.params["control.mode"], v.params["replicate"]): compute_kpis(v.path)["total"] for v in runs}
    for key in ("cost_eur", "objective_eur"):
        gaps = [(k[("mas", r)][key] - k[("central", r)][key]) / abs(k[("central", r)][key]) * 100 for r in range(4)]
        s = spread(gaps)
        assert abs(s["mean"]) <= 2.0, (key, gaps, s)
