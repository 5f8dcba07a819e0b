"""Controlled runs end to end: MAS vs centralised optimum, lossy telecom, DSO flexibility vs none."""

import json

import h5py
import numpy as np
import pytest

from cosim.cli import main
from cosim.kpi import compute_kpis
from cosim.summary import run_summary

DISTRICT = {"name": "d1", "households": 8,
            "shares": {"pv": 0.5, "battery": 0.5, "ev": 0.25, "heat_pump": 0.25, "appliances": 0.5}}


def control_scenario(write_scenario, name="c.yaml", **extra):
    base = dict(
        start="2026-04-14T10:00:00+02:00", duration="4h", seed=5, districts=[DISTRICT],
        grid={"network": "dickert_lv_short"},
        control={"mode": "mas", "horizon": "6h", "slot": "15min", "replan": "1h", "reference": True},
        telecom={"default": "lte"},
    )
    base.update(extra)
    return write_scenario(name, **base)


def events(path, stream):
    with h5py.File(path, "r") as f:
        if f"events/{stream}" not in f:
            return []
        return [json.loads(x) for x in bytes(f[f"events/{stream}"][()]).decode().splitlines()]


def test_mas_within_two_percent_of_central_optimum(write_scenario, tmp_path, capsys):
    out = tmp_path / "mas.h5"
    assert main(["run", str(control_scenario(write_scenario)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "planned gap to the central optimum per negotiation" in printed and "objective" in printed
    with h5py.File(out, "r") as f:
        gap = f["lfa/gap"][()]           # % per negotiation, MAS plan cost vs central LP optimum
        assert np.isfinite(gap).any()
        assert np.nanmax(gap) <= 2.0, gap
        assert np.isfinite(f["agents/P_bat_set"][()]).any()
    negotiations = [e for e in events(out, "flex") if e["kind"] == "negotiation"]
    assert len(negotiations) >= 4  # one per re-plan hour
    messages = events(out, "messages")
    assert messages and all(m["latency_ms"] is None or m["latency_ms"] >= 1 for m in messages)


def test_central_and_none_modes(write_scenario, tmp_path):
    scn = control_scenario(write_scenario)
    for mode in ("central", "none"):
        out = tmp_path / f"{mode}.h5"
        assert main(["run", str(scn), "--out", str(out), "--quiet", "--control", mode]) == 0
        with h5py.File(out, "r") as f:
            assert f.attrs["status"] == "completed"
            sets = f["agents/P_bat_set"][()] if "agents/P_bat_set" in f else np.array([])
            if mode == "none":
                assert not np.isfinite(sets).any()
            else:
                assert np.isfinite(sets).any()


def test_half_of_the_messages_lost_falls_back_without_crashing(write_scenario, tmp_path):
    scn = control_scenario(write_scenario, telecom={"default": "lte", "overrides": {"lte": {"loss": 0.5}}})
    out = tmp_path / "lossy.h5"
    assert main(["run", str(scn), "--out", str(out), "--quiet"]) == 0
    messages = events(out, "messages")
    lost = sum(m["lost"] for m in messages) / len(messages)
    assert 0.4 < lost < 0.85  # two hops at 50 % each for home <-> LFA over LTE
    negotiations = [e for e in events(out, "flex") if e["kind"] == "negotiation"]
    assert any(e["replied"] < e["members"] for e in negotiations)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed"
        assert np.isfinite(f["agents/P_bat_set"][()]).any()  # homes still act on a plan (fallback)
    assert any("messages" in line for line in run_summary(out))


@pytest.mark.parametrize("limit", [{"trafo_limit_kw": 20}, {"trafo_limit_pct": 20}])
def test_dso_flexibility_reduces_congestion_and_every_order_is_settled(limit, write_scenario, tmp_path):
    districts = [{"name": n, "households": 6, "shares": {"ev": 0.5, "battery": 0.5, "heat_pump": 0.3, "pv": 0.5}}
                 for n in ("d1", "d2")]
    scn = write_scenario(
        "dso.yaml", start="2026-01-20T16:00:00+01:00", duration="6h", seed=8, districts=districts,
        grid={"network": "kerber_land_kabel_1", "trafo_limit_pct": 20},
        control={"mode": "mas", "horizon": "6h", "slot": "15min", "replan": "1h"},
        dso={**limit, "lookahead_slots": 8}, telecom={"default": "lte"})
    congestion = {}
    for mode in ("none", "mas"):
        out = tmp_path / f"{mode}.h5"
        assert main(["run", str(scn), "--out", str(out), "--quiet", "--control", mode]) == 0
        with h5py.File(out, "r") as f:  # congested steps in the evaluated window (after the 6 h warm-up)
            window = (f["time"][()] >= 6 * 3_600_000) & (f["time"][()] < 12 * 3_600_000)
            congestion[mode] = int(f["grid/congestion"][()].ravel()[window].sum())
    assert congestion["none"] > 30 and congestion["mas"] < congestion["none"], congestion
    ev = events(tmp_path / "mas.h5", "flex")
    orders = {e["order"] for e in ev if e["kind"] == "flex_order"}
    settled = {e["order"]: e for e in ev if e["kind"] == "settlement"}
    assert orders and orders <= set(settled)
    placed = {e["order"]: e for e in ev if e["kind"] == "flex_order"}
    with h5py.File(tmp_path / "mas.h5", "r") as f:  # the meters' registers as recorded, Wh
        t = f["time"][()]
        ids = [i.decode() for i in f["meters/_ids/E_imp"][()]]
        net = f["meters/E_imp"][()] - f["meters/E_exp"][()]
    in_window: dict[tuple, float] = {}  # (LFA, slot) -> kWh: stacked orders' slots once, the largest delivery
    for order in orders:  # delivered energy per slot, from the recorded registers: max(0, baseline − E)
        s, o = settled[order], placed[order]
        cols = [k for k, h in enumerate(ids) if h.startswith(o["lfa"].split("lfa.", 1)[1] + ".")]
        for j, got in enumerate(s["delivered_slots"]):
            ta = s["t0"] + j * s["slot_ms"]
            if got is None:  # no register at the slot's end when the run ended (settled at the end: partial)
                assert s["missing_slots"] > 0 and ta + s["slot_ms"] >= t[-1] - 3_600_000
                continue
            a, b = np.flatnonzero(t == ta), np.flatnonzero(t == ta + s["slot_ms"])
            e_kwh = (net[b[0], cols].sum() - net[a[0], cols].sum()) / 1000.0
            assert got == pytest.approx(max(0.0, o["baseline"][j] * 0.25 - e_kwh), abs=2e-3)
            if 6 * 3_600_000 <= ta < 12 * 3_600_000 and s["ordered_slots"][j] > 0:  # a slot with nothing
                in_window[o["lfa"], ta] = max(in_window.get((o["lfa"], ta), 0.0), got)  # ordered delivers nothing
        assert s["delivered_kwh"] == pytest.approx(sum(v or 0.0 for v in s["delivered_slots"]))
    assert sum(in_window.values()) > 0
    assert compute_kpis(tmp_path / "mas.h5")["flexibility"]["delivered_kwh"] == pytest.approx(
        sum(in_window.values()), abs=1e-3)


@pytest.mark.parametrize("tie_break", [0.0, 1e-4])
def test_mas_and_telecom_in_subprocesses_equal_in_process(write_scenario, tmp_path, tie_break):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    short = {"duration": "2h", "control": {"mode": "mas", "horizon": "6h", "slot": "15min", "replan": "1h",
                                           "reference": True, "tie_break": tie_break}}
    assert main(["run", str(control_scenario(write_scenario, "p.yaml", **short)), "--out", str(a), "--quiet"]) == 0
    cmd = {"mas": {"mode": "cmd"}, "telecom": {"mode": "cmd"}}
    scn = control_scenario(write_scenario, "c.yaml", simulators=cmd, **short)
    assert main(["run", str(scn), "--out", str(b), "--quiet"]) == 0
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for key in ("agents/P_bat_set", "lfa/plan_cost", "households/P", "telecom/sent"):
            np.testing.assert_array_equal(fa[key][()], fb[key][()], err_msg=key)
    assert events(a, "messages") == events(b, "messages")


def test_realised_objective_central_le_mas_le_none_on_the_same_window(write_scenario, tmp_path):
    """The three modes of one scenario on one evaluated window (after warm-up, before cool-down), on
    the objective the optimisers minimise; compare reports the realised gap against the central run."""
    from cosim.compare import compare
    from cosim.kpi import compute_kpis

    # an evening window: the district imports, so a relative tolerance on its cost is meaningful
    scn = control_scenario(write_scenario, telecom=None, start="2026-04-14T16:00:00+02:00")
    out = {}
    for mode in ("none", "mas", "central"):
        out[mode] = tmp_path / f"{mode}.h5"
        assert main(["run", str(scn), "--out", str(out[mode]), "--quiet", "--control", mode]) == 0
    k = {m: compute_kpis(p) for m, p in out.items()}
    assert {k[m]["run"]["window_ms"][0] for m in k} == {6 * 3_600_000}  # warm-up = the 6-h horizon
    obj = {m: k[m]["total"]["objective_eur"] for m in k}
    cost = {m: k[m]["total"]["cost_eur"] for m in k}  # + the stored energy drawn in the window
    # both controllers beat no control; central and mas are both rolling-horizon plans of the same LP,
    # so the realised order between them is not guaranteed (uc2_district's day: mas 0.11 % below central)
    # the objective alone leaves out what each run stores for after the window (the controllers fill
    # their stores here, the uncontrolled run draws them): only cost_eur compares the three fairly
    assert max(cost["central"], cost["mas"]) < cost["none"], cost
    drawn = {m: k[m]["total"]["stored_start_kwh"] - k[m]["total"]["stored_end_kwh"] for m in k}
    assert max(drawn["central"], drawn["mas"]) < drawn["none"], drawn
    assert all(cost[m] == pytest.approx(obj[m] + k[m]["total"]["terminal_adjustment_eur"], abs=2e-4) for m in k)
    res = compare([str(out["mas"]), str(out["central"]), str(out["none"])])
    gap = res["realised_gap_pct"]
    assert gap[1] is None and gap[0] is not None and gap[2] is not None
    assert gap[0] == round((cost["mas"] - cost["central"]) / abs(cost["central"]) * 100, 4)
    # 8 homes, a 4-h window: the 2 % acceptance on a day of uc2_district is tests/test_study_acceptance.py
    assert abs(gap[0]) <= 5.0, gap
    # the controllers draw their stores in this window far more than the uncontrolled run
    assert any("end states differ" in w for w in res["warnings"])


def test_uc1_home_priced_at_its_meter_same_optimum_converges_at_once(tmp_path):
    """The bundled uc1_home prices its one home at the meter (``community: false``): the same optimum as the
    community exchange at the transformer (central control realises the same objective both ways), but the
    decomposition is not degenerate: negotiations end in the first exchange at the central optimum (community
    pricing needed 6.7 rounds to a 2.9 % gap on this window, 2026-12-06: no better than the bundled pricing)."""
    import cosim

    short = {"evaluation.warmup": "1h", "evaluation.cooldown": "1h"}
    # the same LP both ways only without the tie-break: it draws per home at the meter and per aggregator
    # at the transformer, and the two draws pick different ones of the equally cheap plans
    central = [cosim.run("uc1_home", until="6h", out=tmp_path / f"central_{c}.h5", **short,
                         **{"control.mode": "central", "control.lfa.objective.community": c,
                            "control.tie_break": 0.0}).kpis()["total"]
               for c in (True, False)]
    assert central[0]["objective_eur"] == pytest.approx(central[1]["objective_eur"], rel=1e-9), central
    assert central[0]["objective_community"] and not central[1]["objective_community"]
    pricing = {"community": {"control.lfa.objective.community": True}, "bundled": {}}
    mas = {c: cosim.run("uc1_home", until="3h", out=tmp_path / f"mas_{c}.h5", **short, **{"control.reference": True},
                        **ov).kpis()["mas"] for c, ov in pricing.items()}
    assert mas["bundled"]["negotiations"] >= 10 and mas["bundled"]["rounds_mean"] < 1, mas
    assert mas["bundled"]["gap_max_pct"] < 0.1, mas
    assert mas["bundled"]["rounds_mean"] <= mas["community"]["rounds_mean"], mas
    assert mas["bundled"]["gap_mean_pct"] <= mas["community"]["gap_mean_pct"], mas
