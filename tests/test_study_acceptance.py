"""Acceptance of the study numbers on the bundled uc2_district (one evaluated day, a day of warm-up and
cool-down): both controllers beat no control and the MAS realises the central run's cost within 2 %.
Central and MAS are both rolling-horizon plans of the same LP (planned gap 0.01 % per negotiation), so
which of the two realises less is not determined: measured mas 1.5 % below central on this day.
About 4 minutes per run on the 2-core dev machine: marked slow (`pytest -m slow`)."""

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
