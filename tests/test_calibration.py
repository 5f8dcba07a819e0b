"""Calibration bands (cosim.calibrate) on small populations: each statistic inside its published band."""

import pytest

from cosim import calibrate as cal
from cosim.population import build_population
from cosim.scenario import parse_scenario


def small(households=20, **shares):
    return parse_scenario({"name": "cal", "start": "2026-01-20T00:00:00+01:00", "duration": "1d", "seed": 7,
                           "districts": [{"name": "d1", "households": households, "shares": shares}]})


def assert_in_band(stats, names):
    got = {s.name: s for s in stats}
    assert set(names) <= set(got), set(names) - set(got)
    for n in names:
        s = got[n]
        assert s.ok, f"{n} = {s.value} outside [{s.target.lo}, {s.target.hi}] ({s.target.source})"


def test_every_target_names_its_source_and_a_band():
    for name, t in cal.TARGETS.items():
        assert t.lo <= t.hi and len(t.source) > 10 and t.unit, name
        # a band's source is a publication or says it is a model rule / choice, never a tracker entry
        assert "issue " not in t.source.lower(), (name, t.source)


def test_ownership_and_meter_bands():
    scn = small(20, pv=0.4, battery=0.2, ev=0.3, heat_pump=0.25)
    assert_in_band(cal.ownership_stats(scn, build_population(scn)) + cal.meter_stats(scn, 20_000),
                   ["ownership.share_error", "ownership.batteries_in_pv_homes", "meter.within_class"])


def test_pv_irradiation_yield_and_spread_bands():
    scn = small(30, pv=1.0)
    stats = cal.pv_stats(scn, build_population(scn), step_min=60.0)
    assert_in_band(stats, ["pv.ghi_kwh_m2", "pv.specific_yield", "pv.yield_spread"])
    # an annual yield needs the whole year, and the report says which one (the start is in January)
    assert all(s.window.startswith("2026-01-01 – 2026-12-31 (365 d, 60 min)") for s in stats), stats


def test_one_fixed_roof_has_no_yield_spread():
    scn = small(10, pv=1.0)
    scn.districts[0].pv_orientation = "fixed"
    spread = {s.name: s for s in cal.pv_stats(scn, build_population(scn), step_min=60.0)}["pv.yield_spread"]
    assert not spread.ok and spread.value < 0.01


@pytest.mark.parametrize("args, code, says", [
    (["calibrate", "no_such_scenario"], 2, "no_such_scenario"),
    # a bundled scenario without districts (the feeder's own load shapes): one line, not an IndexError
    (["calibrate", "ieee_eu_lv_day"], 2, "ieee_eu_lv_day: no household districts to calibrate"),
])
def test_cli_bad_scenario_exits_2(args, code, says, capsys):
    from cosim.cli import main

    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_ev_energy_distance_plugging_and_arrival_bands():
    scn = small(20, ev=0.5)
    stats = cal.ev_stats(scn, build_population(scn), days=14, n_min=40)
    assert_in_band(stats, ["ev.grid_kwh_per_day", "ev.km_per_day", "ev.plugged_day_share", "ev.arrival_sd_h"])
    assert {s.window for s in stats} == {
        "2026-01-20 – 2026-02-02 (14 d, 5 min), 40 EVs (10 of the scenario, 30 district d1 defaults)"}


def test_heat_pump_heating_limit_hot_water_and_summer_load_bands():
    scn = small(10, heat_pump=0.5)
    stats = {s.name: s for s in cal.hp_stats(scn, build_population(scn), n_min=8, dhw_days=7)}
    assert_in_band(stats.values(), ["hp.heating_limit_c", "hp.dhw_kwh_th_per_day", "hp.summer_kwh_el_per_day",
                                    "hp.spf"])
    assert stats["hp.heating_limit_c"].window == (
        "2026-01-01 – 2026-12-31 (365 d, 1 h), 8 houses (5 of the scenario, 3 district d1 defaults)")
    assert stats["hp.summer_kwh_el_per_day"].window.startswith("2026-07-01 – 2026-07-07 (7 d, 1 min), 8 tanks (5 ")


def test_without_gains_the_house_heats_far_above_the_heating_limit():
    """The gains are what brings the limit to ~15 °C: the same houses without them heat up to ~20 °C."""
    scn = small(10, heat_pump=1.0)
    scn.districts[0].devices.heat_pump = scn.districts[0].devices.heat_pump.model_copy(
        update={"floor_area_m2": 1e-6, "solar_aperture_m2": 0.0})
    limit = {s.name: s for s in cal.hp_stats(scn, build_population(scn), n_min=4, dhw_days=1)}["hp.heating_limit_c"]
    assert limit.value > 18.0


def test_base_load_follows_h0_and_the_coincidence_curve():
    scn = small(20, pv=0.4, heat_pump=0.2)
    stats = cal.base_stats(scn, n_homes=60, days=28)
    assert_in_band(stats, ["base.window_energy_ratio", "base.h0_profile_corr", "base.peak_1min_kw",
                           "base.g(2)", "base.g(5)", "base.g(10)", "base.g(20)", "base.g(50)"])
    assert "base.g(100)" not in {s.name for s in stats}  # not more homes than drawn
    w = "2025-12-01 – 2025-12-28 (28 d, 1 min), 60 homes drawn like district d1"
    assert all(s.window.startswith(w) for s in stats), stats


def test_readme_population_example_has_exact_shares():
    import re
    from pathlib import Path

    import yaml

    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    section = text.split("## Household population and calibration", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    scn = parse_scenario(yaml.safe_load(block))
    assert cal.ownership_stats(scn, build_population(scn))[0].value == 0


def test_cli_prints_every_statistic_with_band_and_source_and_exit_code(monkeypatch, capsys):
    import json

    from cosim.cli import main

    stats = [cal.Stat("pv.specific_yield", 1000.0, "2026-01-01 – 2026-12-31 (365 d, 15 min)"),
             cal.Stat("ev.grid_kwh_per_day", 12.0)]
    monkeypatch.setattr(cal, "calibrate", lambda scn: stats)
    assert main(["calibrate", "uc2_district"]) == 1  # one statistic outside its band
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("pv.specific_yield") and "900 – 1100" in out[1] and "yes" in out[1]
    assert "Fraunhofer ISE" in out[1] and out[2].split() == ["over", "2026-01-01", "–", "2026-12-31", "(365",
                                                             "d,", "15", "min)"]
    assert out[3].startswith("ev.grid_kwh_per_day") and "NO" in out[3]
    assert main(["calibrate", "uc2_district", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "uc2_district" and [s["ok"] for s in doc["stats"]] == [True, False]
    assert all({"value", "lo", "hi", "unit", "source", "window"} <= set(s) for s in doc["stats"])
    assert doc["stats"][0]["window"].startswith("2026-01-01")


def test_cli_refuses_a_scenario_with_substations_for_what_it_is(capsys):
    """scale_10k was refused with 'its loads are the grid's own', the reason for ieee_eu_lv_day: its homes are
    in its substation groups' districts."""
    from cosim.cli import main

    assert main(["calibrate", "scale_10k"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: scale_10k: ") and "substations" in err[0], err
    assert "grid's own" not in err[0]


def test_seasonal_performance_factor_follows_the_cop_curve():
    """The SPF is heat out / electricity in over the year: the same houses with a 30 % worse Carnot fraction
    (a poorer heat pump) fall below the field range's lower edge."""
    from simulators.devices import heatpump

    scn = small(10, heat_pump=1.0)
    spf = {s.name: s for s in cal.hp_stats(scn, build_population(scn), n_min=4, dhw_days=1, spf_every=14)}["hp.spf"]
    assert spf.ok and spf.window.endswith("hot water on every 14th day")
    try:
        heatpump.CARNOT_FRACTION *= 0.7
        worse = {s.name: s for s in cal.hp_stats(scn, build_population(scn), n_min=4, dhw_days=1,
                                                 spf_every=14)}["hp.spf"]
    finally:
        heatpump.CARNOT_FRACTION /= 0.7
    assert worse.value < min(spf.value * 0.8, cal.TARGETS["hp.spf"].lo) and not worse.ok


def test_simulated_annual_energy_per_household_size_against_bdew():
    """The homes' annual energy, simulated by the base-load model over the year, per household size against the
    BDEW means, the population's spread against the Destatis × BDEW / Stromspiegel band, and what a water heater
    adds per size against the Stromspiegel 2021/22 (the 400 kWh per person before gave 2,000 kWh for 5+)."""
    scn = small(10)
    stats = cal.annual_stats(scn, n_per_size=30, n_mix=200, stride=14)
    names = ([f"base.annual_kwh_{k}p" for k in range(1, 6)] + ["base.annual_kwh_cv"]
             + [f"base.water_heater_kwh_{k}p" for k in range(1, 6)])
    assert_in_band(stats, names)
    got = {s.name: s.value for s in stats}
    assert got["base.annual_kwh_1p"] < 0.6 * got["base.annual_kwh_4p"]  # size matters
    assert all("every 14th day" in s.window for s in stats)


def test_pv_dc_losses_and_inverter_bring_uc1_into_the_yield_band():
    """DC = PVWatts DC x (1 - 14 % PVWatts losses), AC = pvlib's PVWatts inverter (eta_nom 0.96): uc1_home's
    roof (8 kWp, 35° south) was 1,122 kWh/kWp with one 0.85 factor for everything, above the band."""
    from cosim.scenario import load_scenario
    from simulators.devices.pv import PVArray

    scn, _ = load_scenario("uc1_home")
    pop = build_population(scn)
    stats = {s.name: s for s in cal.pv_stats(scn, pop, step_min=60.0)}
    assert stats["pv.specific_yield"].ok and stats["pv.specific_yield"].value < 1095, stats["pv.specific_yield"]
    roof = [h.devices.pv for h in pop if h.devices.pv is not None]
    assert (roof[0].efficiency, roof[0].inverter_efficiency) == (0.86, 0.96)
    clock, m = cal._year_minutes(scn, 30.0)
    p = PVArray(["x"], roof[:1], scn.seed).power(m, cal._weather(scn, clock))
    assert p.max() <= 0.96 * roof[0].kwp + 1e-9  # the inverter's AC limit


def test_a_few_roofs_are_filled_up_for_the_yield_spread():
    """A spread over a handful of roofs is mostly chance (lab_hil's 5 roofs: CV 0.072 with one draw, 0.023 with
    another): like the EV and heat-pump statistics, the sample is filled up with roofs drawn like district d1."""
    scn = small(6, pv=0.5)
    stats = {s.name: s for s in cal.pv_stats(scn, build_population(scn), step_min=60.0, n_min=20)}
    assert stats["pv.yield_spread"].window.endswith("20 roofs (3 of the scenario, 17 district d1 defaults)")
    assert stats["pv.yield_spread"].ok and stats["pv.specific_yield"].ok


def test_hot_water_sampled_every_7th_day_is_scaled_to_the_days_it_stands_for():
    """365 days sampled on every 7th day are 53 days, which stand for 365, not 53 x 7 = 371 (the SPF's hot
    water was weighted 1.6 % high)."""
    import numpy as np

    from simulators.devices.heatpump import T_FLOW_DHW, cop

    class Tanks:  # two tanks reheating at 1 kW every minute of every day
        clock = type("C", (), {"linear_min": staticmethod(lambda m: m)})()

        def day(self, d, weather):
            return np.ones((1440, 2))

    weather = type("W", (), {"temperature": staticmethod(lambda m: np.full(np.shape(m), 10.0))})()
    el, th = cal.dhw_year_kwh(Tanks(), weather, 20454, 365, 7)
    assert el == pytest.approx(365 * 24 * 2) and th == pytest.approx(el * cop(10.0, T_FLOW_DHW))
