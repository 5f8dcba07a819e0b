"""Business-model value flows: hand-checked amounts, cent-exact balance, economics schema, CLI."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from cosim.business import cents, value_flows
from cosim.economics import Economics, Prices
from cosim.scenario import ScenarioError, parse_scenario
from tests.conftest import run_cosim
from tests.test_kpi import SCENARIO, write_synthetic

MONTHS = 24 / (30.4375 * 24)


@pytest.fixture
def pair(tmp_path):
    return write_synthetic(tmp_path / "run.h5"), write_synthetic(tmp_path / "base.h5", baseline=True, mas=False)


def _amount(ledger, model, payer, payee):
    found = [t for t in ledger["transfers"] if (t["model"], t["payer"], t["payee"]) == (model, payer, payee)]
    assert len(found) == 1, (model, payer, payee, ledger["transfers"])
    return found[0]["amount_eur"]


def test_hand_checked_flows(pair):
    run, base = pair
    led = value_flows(run, base)
    assert led["use_case"] == "uc3"  # two districts
    assert led["business_models"] == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12",
                                      "B15", "B16"]
    # B1: d1.h002 moved 8 kWh (½∫|ΔP|) -> 0.05 €/kWh
    assert _amount(led, "B1", "lfa", "prosumer") == 0.40
    # B4: bill 14.96 (flat 2 kW) vs 16.56 (peak at 17-21 h): the prosumer pays 1.60 € less
    assert _amount(led, "B4", "retailer", "prosumer") == 1.60
    # B5: same imported energy; B2: same net energy at a flat price
    assert _amount(led, "B5", "prosumer", "dso") == 0.0
    assert _amount(led, "B2", "retailer", "market") == 0.0
    # B6: peak 2 kW instead of 4 kW for one day at 3.5 €/kW-month
    assert _amount(led, "B6", "dso", "prosumer") == round(3.5 * 2 * MONTHS, 2)
    # B3: USEF settlement payment and penalty; BRP part: 8 kWh activated - 16 kWh delivered to the DSO -> 0
    assert _amount(led, "B3", "dso", "lfa") == 2.40
    assert _amount(led, "B3", "lfa", "dso") == 0.50
    assert _amount(led, "B3", "retailer", "lfa") == 0.0
    # B8: overload 320 kWh (baseline) -> 80 kWh at 0.20 €/kWh
    assert _amount(led, "B8", "dso", "lfa") == 48.00
    # B9: reinforcement to keep the peak loading at the 80 % limit, 200 kVA × (L − 80)/80: 120 % -> 100 kVA
    # (baseline), 100 % -> 50 kVA; 100 €/kVA, annuity 40 a at 5 %, one day, half to the LFA
    af = Prices().annuity_factor
    annuity = 50 * 100 * af * 24 / (365.25 * 24)
    assert af == pytest.approx(0.0582782, rel=1e-5)
    assert led["avoided_costs"][0]["amount_eur"] == round(annuity, 2)
    assert _amount(led, "B9", "dso", "lfa") == round(0.5 * annuity, 2)
    # services for 3 households over one day, bought by the LFA (UC3)
    assert _amount(led, "B10", "lfa", "telecom") == round(2.0 * 3 * MONTHS, 2)
    assert _amount(led, "B11", "lfa", "data_service") == round(0.5 * 3 * MONTHS, 2)
    assert _amount(led, "B12", "lfa", "data_service") == round(1.0 * 3 * MONTHS, 2)
    # telecom: 10 messages, 1000 bytes in the run, none in the baseline
    assert _amount(led, "B15", "lfa", "telecom") == 0.01
    assert _amount(led, "B16", "lfa", "telecom") == 0.0
    assert {s["model"] for s in led["skipped"]} == {"B13", "B14", "B17"}
    assert led["balance_eur"] == 0.0
    json.dumps(led, allow_nan=False)


def test_ledger_balances_to_the_cent(pair, tmp_path):
    run, base = pair
    rnd = random.Random(3)
    for _ in range(5):
        prices = {name: round(rnd.uniform(0.0013, 0.9), 5) for name in
                  ("flex_purchase", "market_price", "contracted_price_brp", "grid_fee", "capacity_tariff",
                   "community_shared", "congestion_value", "telecom_bundle", "forecast_fee", "data_fee",
                   "price_per_message", "price_per_mb")}
        prices["reinforcement_cost"] = round(rnd.uniform(10, 300), 3)
        eco = Economics.model_validate({"prices": prices, "tariff": {"import_price": round(rnd.uniform(0.1, 0.5), 4)}})
        led = value_flows(run, base, economics=eco)
        total = 0
        for actor, v in led["actors"].items():
            c_paid = sum(t["cents"] for t in led["transfers"] if t["payer"] == actor)
            c_recv = sum(t["cents"] for t in led["transfers"] if t["payee"] == actor)
            assert v["net_cents"] == c_recv - c_paid
            assert v["net_eur"] == round((c_recv - c_paid) / 100, 2)
            total += v["net_cents"]
        assert total == 0 and led["balance_eur"] == 0.0
        for t in led["transfers"]:
            assert t["amount_eur"] >= 0 and t["cents"] == round(t["amount_eur"] * 100)
        for m, by_actor in led["by_model"].items():
            assert round(sum(by_actor.values()), 2) == 0.0, m


def test_cents_round_half_away_from_zero():
    assert cents(0.125) == 13 and cents(-0.125) == -13 and cents(0.005) == 1 and cents(1.234) == 123


def test_economics_in_scenario_and_explicit_models(pair, tmp_path):
    data = dict(SCENARIO, economics={"tariff": {"import_price": 0.3, "feed_in": 0.05},
                                     "prices": {"flex_purchase": 0.1}, "business_models": ["B1", "B4"]})
    scn = parse_scenario(data)
    assert scn.economics.prices.flex_purchase == 0.1 and scn.economics.tariff.feed_in == 0.05
    with pytest.raises(ScenarioError, match=r"economics.business_models.*B13 is out of scope"):
        parse_scenario(dict(SCENARIO, economics={"business_models": ["B13"]}))
    with pytest.raises(ScenarioError, match=r"economics.prices.flex_purchse: unknown field"):
        parse_scenario(dict(SCENARIO, economics={"prices": {"flex_purchse": 1}}))
    run, base = pair
    led = value_flows(run, base, economics=scn.economics)
    assert led["business_models"] == ["B1", "B4"]
    assert _amount(led, "B1", "lfa", "prosumer") == 0.80
    assert {t["model"] for t in led["transfers"]} == {"B1", "B4"}


def test_baseline_must_match(pair, tmp_path):
    from cosim.errors import InputError
    from cosim.results import ResultsWriter

    run, _ = pair
    other = tmp_path / "short.h5"
    w = ResultsWriter(str(other), {"scenario": yaml.safe_dump(SCENARIO)}, [("households", "P", "kW")], [],
                      SCENARIO["start"], 3_600_000)
    w.append(0, {("households", "P"): {"d1.h001": 1.0}})
    w.close()
    with pytest.raises(InputError, match="baseline time axis"):
        value_flows(run, other)


def test_value_cli(pair):
    run, base = pair
    proc = run_cosim("value", run, "--baseline", base, "--json")
    assert proc.returncode == 0, proc.stderr
    led = json.loads(proc.stdout)
    assert led["balance_eur"] == 0.0 and "cents" not in led["transfers"][0]
    proc = run_cosim("value", run, "--baseline", base)
    assert proc.returncode == 0 and "Per actor" in proc.stdout and "B8" in proc.stdout
    proc = run_cosim("value", run)
    assert proc.returncode == 2  # --baseline is required


@pytest.mark.parametrize("name, households, dso, expected", [
    ("uc1_home", None, False, "uc1"),   # one home, planned by its agent with an aggregator (LFA)
    ("uc1_home", 3, False, "uc2"),      # the same district with three homes
    ("uc1_home", None, True, "uc3"),    # a DSO agent buys flexibility
])
def test_use_case_follows_the_homes_and_the_dso(name, households, dso, expected):
    """The use case (and so the business models valued) comes from the population and the DSO, not
    from whether an aggregator is present: the bundled UC1 home has an LFA and is still UC1."""
    from cosim.kpi import use_case
    from cosim.scenario import load_scenario

    scn, _ = load_scenario(name, {"districts[0].households": households} if households else None)

    class Run:
        scenario = scn

        @staticmethod
        def has(pop: str) -> bool:
            return pop in ("agents", "lfa") or (dso and pop == "dso")

    assert use_case(Run()) == expected


def test_overload_uses_the_recorded_transformer_rating(pair):
    """B8/B9 scale with the rated kVA recorded in the files, not with P_trafo / loading (which differs
    from the rating whenever there is reactive power or unbalance); a file without ratings has none."""
    from cosim.results import Results, stamp_attrs
    from cosim.kpi import compute_kpis

    run, base = pair
    for path in pair:
        stamp_attrs(path, {"trafo_kva": json.dumps({"T1": 250.0})})  # P_trafo / loading says 200 kVA
    led = value_flows(run, base)
    assert _amount(led, "B8", "dso", "lfa") == 60.00  # (400 − 100) kWh × 0.20 €/kWh
    af = Prices().annuity_factor
    # 250 kVA × (120 − 80)/80 − 250 kVA × (100 − 80)/80 = 62.5 kVA
    assert _amount(led, "B9", "dso", "lfa") == round(0.5 * 62.5 * 100 * af * 24 / (365.25 * 24), 2)
    stamp_attrs(run, {"trafo_kva": ""})
    with Results(run) as r:
        assert r.trafo_kva() is None
    k = compute_kpis(run)
    assert k["grid"]["overload_kwh"] is None and "trafo_kva" in k["not_available"]["grid.overload_kwh"]


def test_stored_energy_drawn_is_booked_in_b2_b4_b5(pair):
    """A run that leaves its battery emptier than the baseline buys that energy later: B5 charges its
    grid fee, B2 its wholesale energy, B4 its tariff price, each as its own line; the KPIs give the
    import the window implies."""
    import h5py

    from cosim.kpi import compute_kpis

    run, base = pair
    with h5py.File(run, "r+") as f:  # the run ends with soc 0.1 instead of 0.7 (d2.h001's battery)
        f["households/soc"][-1, 0] = 0.1
    kr, kb = compute_kpis(run)["total"], compute_kpis(base)["total"]
    drawn = kr["stored_drawn_kwh"] - kb["stored_drawn_kwh"]
    assert drawn > 1.0
    assert kr["import_adjusted_kwh"] == pytest.approx(kr["import_kwh"] + kr["stored_drawn_kwh"], abs=2e-3)
    led = value_flows(run, base)
    lines = {t["model"]: t for t in led["transfers"] if "terminal adjustment" in t["basis"]}
    pr = Prices()
    assert (lines["B5"]["payer"], lines["B5"]["amount_eur"]) == ("prosumer", round(pr.grid_fee * drawn, 2))
    assert (lines["B2"]["payer"], lines["B2"]["amount_eur"]) == ("retailer", round(pr.market_price * drawn, 2))
    assert lines["B4"]["payer"] == "prosumer" and lines["B4"]["amount_eur"] > 0
    assert led["quantities"]["stored_drawn_kwh"] == pytest.approx(drawn, abs=1e-3)


def test_a_negative_subtrahend_is_in_parentheses():
    """A transfer's basis reads ``26.108 − (-1.941) kWh``, not ``26.108 − -1.941``."""
    from cosim.business import _sub

    assert _sub(-1.9414) == "(-1.941)" and _sub(2.0) == "2.000" and _sub(-0.5, 1) == "(-0.5)"


def _rescenario(path, **changes) -> str:
    """*path* with its recorded scenario changed (top-level fields; ``d1_pv`` sets d1's PV share)."""
    import h5py

    scn = dict(SCENARIO)
    pv = changes.pop("d1_pv", None)
    if pv is not None:
        scn["districts"] = [dict(SCENARIO["districts"][0], shares={**SCENARIO["districts"][0]["shares"], "pv": pv}),
                            *SCENARIO["districts"][1:]]
    scn.update(changes)
    with h5py.File(path, "a") as f:
        f.attrs["scenario"] = yaml.safe_dump(scn, sort_keys=False)
    return str(path)


@pytest.mark.parametrize("changes, says", [
    ({"control": {"mode": "mas"}}, "control mode 'mas'"),   # a controlled run is no baseline (B10-B12 in full)
    ({"seed": 6}, r"seed \(6 vs 5\)"),                        # other households' devices under the same ids
    ({"d1_pv": 0.5}, "in districts"),                       # another population of the same size
    ({"start": "2026-06-16T00:00:00+02:00"}, "start"),      # another day's weather, same time axis in ms
])
def test_a_baseline_of_another_scenario_or_with_a_controller_is_refused(pair, changes, says):
    """The baseline is the run's scenario without a controller: anything else is one line, exit 2 (it was
    priced, at most with a warning for another seed)."""
    from cosim.errors import InputError

    run, base = pair
    base = _rescenario(base, **changes)
    with pytest.raises(InputError, match=says) as exc:
        value_flows(run, base)
    assert len(exc.value.lines) == 1 and base in exc.value.lines[0]
    proc = run_cosim("value", run, "--baseline", base)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith(f"error: {base}: not a baseline")


def test_a_baseline_of_another_replicate_is_priced_with_a_warning(pair):
    run, base = pair
    led = value_flows(run, _rescenario(base, replicate=1))
    assert any("replicate 1 differs" in w for w in led["warnings"])
    assert not [w for w in value_flows(run, _rescenario(base))["warnings"] if "baseline" in w]  # the same scenario


def test_the_settlement_line_names_the_energy_paid_for(pair):
    """The DSO pays min(delivered, ordered) per slot: the basis names the ordered energy beside the delivered
    (it said "payments for 70.718 kWh delivered" on a uc3_substation day with 61.096 kWh ordered)."""
    led = value_flows(*pair)
    (line,) = [t for t in led["transfers"] if (t["model"], t["payer"]) == ("B3", "dso")]
    assert "min(delivered, ordered) per slot of 20.000 kWh ordered (16.000 kWh delivered)" in line["basis"]


def test_a_baseline_with_another_warm_up_names_both_time_axes(pair, tmp_path):
    """The same number of rows an hour later in the simulation (another warm-up): the line says where each
    window lies (it read "(24 rows) differs from ... (24 rows)")."""
    from cosim.errors import InputError
    from cosim.results import ResultsWriter
    from tests.test_kpi import H, IDS, T

    run, _ = pair
    other = tmp_path / "warm.h5"
    w = ResultsWriter(str(other), {"scenario": yaml.safe_dump(SCENARIO)}, [("households", "P", "kW")], [],
                      SCENARIO["start"], H)
    for k in range(T):
        w.append((k + 1) * H, {("households", "P"): dict.fromkeys(IDS, 1.0)})
    w.close()
    with pytest.raises(InputError, match=r"baseline time axis \(24 rows, 1 to 24 h after the simulation's start\) "
                                         r"differs from .* \(24 rows, 0 to 23 h after") as exc:
        value_flows(run, other)
    assert len(exc.value.lines) == 1


def test_congestion_relief_paid_twice_is_warned(pair):
    """The synthetic DSO paid 2.40 EUR of USEF settlements (B3) and B8 / B9 pay the LFA 48 EUR and a share of
    the deferral for the same relief: the ledger says that the two remunerations are alternatives."""
    run, base = pair
    led = value_flows(run, base)
    assert _amount(led, "B3", "dso", "lfa") == 2.40 and _amount(led, "B8", "dso", "lfa") == 48.00
    (w,) = [w for w in led["warnings"] if w.startswith("B3 ")]
    assert "B8 and B9 both pay the LFA for the same congestion relief" in w
    for models in (["B3", "B4"], ["B4", "B8", "B9"]):  # one remuneration: nothing to warn about
        eco = Economics.model_validate({"business_models": models})
        assert not [w for w in value_flows(run, base, economics=eco)["warnings"] if w.startswith("B3 ")]
