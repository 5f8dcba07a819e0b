"""Household population: exact shares, batteries in PV homes, documented ownership correlations."""

import numpy as np
import pytest

from cosim.population import build_population, owners
from cosim.scenario import ScenarioError, parse_scenario

BASE = {"name": "t", "start": "2026-06-01T00:00:00+02:00", "duration": "1h", "seed": 4}


def scenario(n=20, ownership=None, **shares):
    d = {"name": "d1", "households": n, "shares": shares}
    if ownership is not None:
        d["ownership"] = ownership
    return parse_scenario(dict(BASE, districts=[d]), "s.yaml")


@pytest.mark.parametrize("n", [7, 20, 146])
def test_realised_shares_match_the_scenario(n):
    shares = {"pv": 0.4, "battery": 0.2, "ev": 0.25, "heat_pump": 0.3, "appliances": 0.5}
    pop = build_population(scenario(n, **shares))
    for dev, s in shares.items():
        got = sum(bool(getattr(h.devices, dev)) for h in pop)
        assert got == round(s * n), (dev, got)


def test_batteries_only_in_pv_homes_unless_asked():
    pop = build_population(scenario(50, pv=0.4, battery=0.4))
    assert all(h.devices.pv is not None for h in pop if h.devices.battery is not None)
    free = build_population(scenario(50, ownership={"battery_needs_pv": False}, pv=0.2, battery=0.6))
    assert sum(h.devices.battery is not None and h.devices.pv is None for h in free) > 0


def test_battery_share_above_pv_share_is_one_line_error():
    with pytest.raises(ScenarioError) as exc:
        scenario(10, pv=0.2, battery=0.5)
    assert exc.value.lines == [
        "s.yaml: districts[0]: shares.battery (0.5) exceeds shares.pv (0.2): batteries go to PV homes only "
        "(set ownership.battery_needs_pv: false to allow batteries without PV)"]


@pytest.mark.parametrize("corr, msg", [
    ({"heat_pump~attic": 0.5}, '"heat_pump~attic": expected "a~b" with two different names of new_building, pv'),
    ({"pv~ev": 1.0}, '"pv~ev": correlation must lie in (-1, 1), got 1.0'),
    ({"pv~ev": 0.9, "pv~heat_pump": 0.9, "ev~heat_pump": -0.9}, "districts[0].ownership.correlation: the matrix "
     "these pairs define is not positive definite (smallest eigenvalue -0.8)"),
    # the same pair spelt both ways: refused, not the later value silently
    ({"pv~ev": 0.3, "ev~pv": 0.5}, 'districts[0].ownership.correlation: "pv~ev" and "ev~pv" name the same pair'),
])
def test_bad_correlation_is_one_line_error(corr, msg):
    with pytest.raises(ScenarioError) as exc:
        scenario(10, ownership={"correlation": corr}, pv=0.2)
    assert len(exc.value.lines) == 1 and msg in exc.value.lines[0], exc.value.lines


def _phi(a, b):
    return float(np.corrcoef(a.astype(float), b.astype(float))[0, 1])


def test_default_correlations_heat_pump_newer_homes_ev_independent():
    scn = scenario(4000, pv=0.4, battery=0.2, ev=0.3, heat_pump=0.3)
    own = owners(scn.districts[0], np.random.default_rng(3))
    newer = own["new_building"] > np.median(own["new_building"])
    # heat pumps mostly in the newer half of the homes (latent rho 0.6), PV somewhat (0.3)
    assert own["heat_pump"][newer].mean() > 2 * own["heat_pump"][~newer].mean()
    assert _phi(own["pv"], own["heat_pump"]) > 0.1
    assert abs(_phi(own["ev"], own["heat_pump"])) < 0.05 and abs(_phi(own["ev"], own["pv"])) < 0.05
    flat = scenario(4000, ownership={"correlation": {}}, pv=0.4, heat_pump=0.3)
    own0 = owners(flat.districts[0], np.random.default_rng(3))
    assert abs(_phi(own0["pv"], own0["heat_pump"])) < 0.05


def test_pv_orientation_spread_east_south_west_with_flat_roofs():
    pop = build_population(scenario(2000, pv=1.0))
    tilt = np.array([h.devices.pv.tilt for h in pop])
    az = np.array([h.devices.pv.azimuth for h in pop])
    flat = tilt < 15
    assert 0.07 < flat.mean() < 0.13  # PV_FLAT_SHARE 0.10
    assert np.all((tilt[~flat] >= 15) & (tilt[~flat] <= 45)) and 28 < tilt[~flat].mean() < 36
    assert np.all((az >= 90) & (az <= 270)) and abs(np.median(az) - 180) < 5
    assert 0.2 < np.mean(np.abs(az - 180) > 45) < 0.4  # a third of the roofs face more east or west than SE/SW
    fixed = build_population(parse_scenario(dict(BASE, districts=[
        {"name": "d1", "households": 5, "shares": {"pv": 1.0}, "pv_orientation": "fixed",
         "devices": {"pv": {"tilt": 35, "azimuth": 170}}}])))
    assert {(h.devices.pv.tilt, h.devices.pv.azimuth) for h in fixed} == {(35, 170)}


def test_variants_keep_every_other_draw():
    """Sweep variants compare the same households: changing one share or one device's size leaves
    every other household draw as it was (per-household, per-purpose streams)."""
    def by_id(**shares):
        return {h.id: h.devices for h in build_population(scenario(40, **shares))}
    a = by_id(pv=0.6, battery=0.0, heat_pump=0.2)
    b = by_id(pv=0.6, battery=0.3, heat_pump=0.2)   # more batteries: the same PV systems and loads
    c = by_id(pv=0.2, battery=0.0, heat_pump=0.5)   # fewer PV, more heat pumps
    for other in (b, c):
        for hid, d in a.items():
            o = other[hid]
            assert o.base.annual_kwh == d.base.annual_kwh
            if d.pv is not None and o.pv is not None:
                assert (o.pv.kwp, o.pv.tilt, o.pv.azimuth) == (d.pv.kwp, d.pv.tilt, d.pv.azimuth)
            if d.heat_pump is not None and o.heat_pump is not None:
                assert o.heat_pump.ua_kw_per_k == d.heat_pump.ua_kw_per_k
    assert sum(d.pv.kwp for d in a.values() if d.pv) == sum(d.pv.kwp for d in b.values() if d.pv)


def test_household_sizes_and_annual_kwh_follow_destatis_and_bdew():
    """Each home draws a household size (Destatis shares) and its annual kWh around the size's BDEW mean with the
    Stromspiegel-fitted spread: the population's mean and spread follow household size, not one 3,500 kWh home."""
    from cosim.population import ANNUAL_KWH_BY_SIZE, HOUSEHOLD_SIZE_SHARES, annual_kwh

    pop = build_population(scenario(4000))
    persons = np.array([h.devices.base.persons for h in pop])
    kwh = np.array([h.devices.base.annual_kwh for h in pop])
    for k, (share, mean) in enumerate(zip(HOUSEHOLD_SIZE_SHARES, ANNUAL_KWH_BY_SIZE), start=1):
        assert abs((persons == k).mean() - share) < 0.02, k
        # the BDEW mean less the national share (1/4) of water heating, which comes on top in those homes
        assert 0.85 * mean < annual_kwh(k, None, spread=False) < mean
        assert abs(kwh[persons == k].mean() / annual_kwh(k, None, spread=False) - 1) < 0.08, k
    assert 0.45 < kwh.std() / kwh.mean() < 0.6  # was 0.19 (3,500 kWh × N(1, 0.2) for every home)
    assert kwh.min() < 1000 and kwh.max() > 8000


def test_scenario_annual_kwh_and_persons_override_the_draw():
    fixed = parse_scenario(dict(BASE, districts=[{"name": "home", "households": 3, "variety": 0.0,
                                                  "devices": {"base": {"annual_kwh": 3200}}}]))
    pop = build_population(fixed)
    assert {h.devices.base.annual_kwh for h in pop} == {3200.0} and all(h.devices.base.persons for h in pop)
    four = parse_scenario(dict(BASE, districts=[{"name": "d1", "households": 50,
                                                 "devices": {"base": {"persons": 4}}}]))
    kwh = [h.devices.base.annual_kwh for h in build_population(four)]
    from cosim.population import annual_kwh
    mean4 = annual_kwh(4, None, spread=False)
    assert {h.devices.base.persons for h in build_population(four)} == {4} and 0.8 < np.mean(kwh) / mean4 < 1.2
    # variety 0 without a fixed annual_kwh: each home its size's mean (without water heating)
    same = parse_scenario(dict(BASE, districts=[{"name": "d1", "households": 20, "variety": 0.0}]))
    assert all(h.devices.base.annual_kwh == annual_kwh(h.devices.base.persons, None, spread=False)
               for h in build_population(same))


def test_a_districts_homes_do_not_depend_on_the_other_districts():
    """Every per-district and per-household stream is keyed by the district's name: district b's homes (devices,
    sizes, phases) are the same alone, after a, and before a (was 0 of 10 identical after a)."""
    b = {"name": "b", "households": 10, "shares": {"pv": 0.4, "battery": 0.2, "ev": 0.3, "heat_pump": 0.2}}
    a = {"name": "a", "households": 7, "shares": {"pv": 0.5}}
    grid = {"network": "kerber_vorstadt_1", "engine": "fast3ph"}

    def homes(*districts):
        pop = build_population(parse_scenario(dict(BASE, districts=list(districts), grid=grid)))
        return {h.id: h for h in pop if h.id.startswith("b.")}

    alone = homes(b)
    assert homes(a, b) == alone and homes(b, a) == alone
    assert len({h.phase for h in alone.values()}) > 1


def test_a_scenarios_appliance_day_offset_is_kept():
    """An appliance whose day_offset the scenario sets keeps it (the drawn offset overwrote it); one without
    gets a drawn one per home, as cycles_per_week of a washing machine follows household size unless set."""
    apps = [{"name": "dishwasher", "cycles_per_week": 1, "day_offset": 3.0}, {"name": "dryer", "cycles_per_week": 2}]
    scn = parse_scenario(dict(BASE, districts=[{"name": "d1", "households": 8, "shares": {"appliances": 1.0},
                                                "devices": {"appliances": apps}}]))
    pop = build_population(scn)
    assert {h.devices.appliances[0].day_offset for h in pop} == {3.0}
    assert len({h.devices.appliances[1].day_offset for h in pop}) > 1
