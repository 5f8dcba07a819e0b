"""IANA time zones (``timezone: Europe/Berlin``): local time follows the daylight-saving changes of
2026-03-29 (a 23-h day) and 2026-10-25 (a 25-h day) in tariffs, EV times, base-load rows, the results'
index and a run through mosaik; a zone without changes gives the fixed-offset results exactly."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cosim.cli import main
from cosim.results import Results
from cosim.runner import run_scenario
from cosim.scenario import load_scenario
from cosim.world import sim_seed
from simulators.devices.baseload import BaseLoad
from simulators.devices.common import FIXED, Clock
from simulators.devices.ev import EVFleet
from simulators.devices.params import BaseLoadParams, EVParams
from simulators.mas.home_lp import HomeModel, appliance_windows
from simulators.mas.tariff import Tariff, TouBand
from tests.helpers.same_results import differences

BERLIN = ZoneInfo("Europe/Berlin")
SPRING, AUTUMN = dt.date(2026, 3, 29), dt.date(2026, 10, 25)


def _clock(day: dt.date, zone: str | None = "Europe/Berlin") -> Clock:
    """A clock starting at midnight (wall) of the day before ``day``."""
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(0), BERLIN)
    return Clock(f"{start.isoformat()}[{zone}]" if zone else start.isoformat())


def _day_no(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _linear_day(clock: Clock, day: dt.date) -> np.ndarray:
    """Linear minutes of every minute of the wall-clock day (23, 24 or 25 h of them)."""
    a = clock.linear_min(_day_no(day) * 1440.0)
    b = clock.linear_min((_day_no(day) + 1) * 1440.0)
    return np.arange(a, b)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_wall_clock_agrees_with_zoneinfo(day):
    """Clock.wall_min / linear_min against zoneinfo's own conversions, minute by minute over 3 days."""
    c = _clock(day)
    m = c.start_local_min + np.arange(3 * 1440.0)
    utc = (m - c.utc_offset_min) * 60.0
    want = [(dt.datetime.fromtimestamp(u, BERLIN).replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds() / 60
            for u in utc.tolist()]
    np.testing.assert_array_equal(c.wall_min(m), want)
    assert [c.wall_min(float(x)) for x in m[::7]] == want[::7]  # the per-step scalar path
    np.testing.assert_array_equal(c.wall_min(m[-100:]), want[-100:])  # inside the last scalar's segment
    np.testing.assert_array_equal(c.wall_min(m[:100]), want[:100])
    # every wall minute of the day back to UTC, fold=0 (first occurrence; a skipped minute as zoneinfo reads it)
    w = _day_no(day) * 1440.0 + np.arange(1440.0)
    t0 = dt.datetime.combine(day, dt.time(0))
    ref = [dt.datetime.fromisoformat(str(t0 + dt.timedelta(minutes=k))).replace(tzinfo=BERLIN).timestamp() / 60
           for k in range(1440)]
    np.testing.assert_array_equal(c.linear_min(w) - c.utc_offset_min, ref)
    assert len(_linear_day(c, day)) == (23 if day == SPRING else 25) * 60


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_tariff_bands_follow_the_wall_clock(day):
    """A 17-20 h peak band is 12 quarter-hours on the change day too; the night band covers the
    hours the clock shows, and the fixed offset of the start is one hour off after the change."""
    t = Tariff(import_price=0.30, tou=[TouBand(start="00:00", end="06:00", price=0.20),
                                       TouBand(start="17:00", end="20:00", price=0.40)])
    c = _clock(day)
    m = _linear_day(c, day)[::15]
    p = t.import_prices(float(m[0]), len(m), 15.0, c)
    assert np.sum(p == 0.40) == 12
    night = 6 * 4 + (-4 if day == SPRING else 4)  # 02:00-03:00 skipped / shown twice
    assert np.sum(p == 0.20) == night
    utc_h = (m - c.utc_offset_min) / 60.0 % 24
    peak_utc = sorted(set(utc_h[p == 0.40].astype(int).tolist()))
    assert peak_utc == ([15, 16, 17] if day == SPRING else [16, 17, 18])  # 17-20 CEST / CET
    fixed = t.import_prices(float(m[0]), len(m), 15.0)  # the start's offset kept (the old behaviour)
    assert sorted(set(utc_h[fixed == 0.40].astype(int).tolist())) == ([16, 17, 18] if day == SPRING else [15, 16, 17])


def test_home_lp_prices_and_appliance_windows_by_wall_clock():
    """The home agent's LP prices slots and places appliance windows by the wall clock after the change."""
    c = _clock(AUTUMN)
    m0 = float(c.linear_min(_day_no(AUTUMN) * 1440.0))  # 2026-10-25 00:00 CEST
    model = HomeModel({"id": "h", "devices": {}}, K=100, slot_s=900, tariff=Tariff(), clock=c)
    model.update(m0, {}, {})
    np.testing.assert_array_equal(model.pi_imp, Tariff().import_prices(m0, 100, 15.0, c))
    assert np.sum(model.pi_imp == 0.42) == 16  # 17-21 h on the 25-h day
    from simulators.devices.params import ApplianceParams

    app = ApplianceParams(name="wm", window_start="09:00", window_end="17:00")
    (s0, s1), = appliance_windows(app, m0, 24 * 60.0, c)
    assert dt.datetime.fromtimestamp((s0 - c.utc_offset_min) * 60, BERLIN).strftime("%H:%M %Z") == "09:00 CET"
    assert s1 - s0 == 8 * 60 - len(app.profile_kw)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_ev_times_keep_their_wall_clock(day):
    """Departure and arrival times are drawn as clock times: the same draws as the fixed-offset model
    on the wall clock, hence at another UTC time after the change."""
    ids = [f"e{i}" for i in range(40)]
    c = _clock(day)
    zoned, fixed = EVFleet(ids, [EVParams()] * 40, 5, c), EVFleet(ids, [EVParams()] * 40, 5, FIXED)
    for d in (_day_no(day) - 1, _day_no(day), _day_no(day) + 1):
        _, _, dep, arr, _ = zoned.trips(d)
        _, _, dep_w, arr_w, _ = fixed.trips(d)
        np.testing.assert_allclose(c.wall_min(arr), arr_w, atol=1e-6)
        np.testing.assert_allclose(c.wall_min(dep), dep_w, atol=1e-6)
    # after the change the arrival is an hour earlier (spring) / later (autumn) on the linear axis
    _, _, _, arr, _ = zoned.trips(_day_no(day) + 1)
    _, _, _, arr_w, _ = fixed.trips(_day_no(day) + 1)
    np.testing.assert_allclose(arr - arr_w, -60.0 if day == SPRING else 60.0, atol=1e-6)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_base_load_reads_h0_rows_by_wall_clock(day):
    """23-h day: the rows of 02:00-02:59 are not read; 25-h day: they are read twice, in order."""
    c = _clock(day)
    bl = BaseLoad([f"h{i}" for i in range(5)], [BaseLoadParams()] * 5, seed=4, clock=c)
    m = _linear_day(c, day)
    got = bl.minutes(int(m[0]), len(m))
    table = bl.day(_day_no(day))
    rows = np.r_[0:120, 180:1440] if day == SPRING else np.r_[0:180, 120:1440]
    np.testing.assert_array_equal(got, table[rows])
    np.testing.assert_array_equal(bl.step(float(m[200]), 1.0), table[rows[200]])


def _short_uc1(out, **over):
    base = {"evaluation.warmup": "1h", "evaluation.cooldown": "1h", "control.horizon": "2h", "duration": "5h",
            "start": "2026-10-24T23:00:00+02:00", "timezone": "Europe/Berlin"}
    scn, text = load_scenario("uc1_home", base | over)
    run_scenario(scn, text, out=str(out), progress=False)
    return Results(str(out))


def _balanced(res: Results):
    P = res.frame("households", "P")
    parts = sum(res.frame("households", a).reindex(columns=P.columns, fill_value=0.0).to_numpy()
                for a in ("P_base", "P_pv", "P_bat", "P_ev", "P_hp", "P_app"))
    np.testing.assert_allclose(P.to_numpy(), parts, atol=1e-9)
    assert (np.diff(P.index.asi8) == 60_000_000_000).all()  # elapsed time: one minute a row
    return P


def test_run_over_the_march_change(tmp_path):
    """uc1_home over 2026-03-29: 02:00-02:59 never shows, the base load jumps from the 01:59 row to the
    03:00 row of the H0 day, and energy balances every minute."""
    res = _short_uc1(tmp_path / "mar.h5", start="2026-03-28T23:00:00+01:00")
    P = _balanced(res)
    assert P.index[0].isoformat() == "2026-03-28T23:00:00+01:00" and len(P) == 300
    assert P.index[-1].isoformat() == "2026-03-29T04:59:00+02:00"
    wall = list(P.index.strftime("%H:%M"))
    assert wall[179:181] == ["01:59", "03:00"] and not any(w.startswith("02:") for w in wall)
    np.testing.assert_array_equal(res.local_minutes()[[179, 180]], [119.0, 180.0])
    # the recorded base load is the H0 day's rows at 23:00, 01:59 and then 03:00 (the model, rebuilt)
    bl = BaseLoad(["home.h001"], [res.household_specs()["home.h001"].devices.base],
                  sim_seed(res.scenario.seed, "household"))
    day = _day_no(SPRING)
    want = [bl.day(day - 1)[1380, 0], bl.day(day)[119, 0], bl.day(day)[180, 0]]
    np.testing.assert_array_equal(res.frame("households", "P_base")["home.h001"].iloc[[0, 179, 180]], want)


def test_run_over_the_october_change(tmp_path):
    """uc1_home (MAS control) over 2026-10-25: the frame shows 02:00-02:59 twice, energy balances every
    minute, the base load repeats its 02:xx rows, and the tariff KPI prices by the wall clock."""
    res = _short_uc1(tmp_path / "oct.h5")
    P = _balanced(res)
    assert str(P.index.tz) == "Europe/Berlin" and len(P) == 300
    assert P.index[0].isoformat() == "2026-10-24T23:00:00+02:00"
    assert P.index[-1].isoformat() == "2026-10-25T02:59:00+01:00"
    wall = P.index.strftime("%H:%M")
    assert list(wall).count("02:30") == 2 and list(wall).count("03:30") == 0
    base = res.frame("households", "P_base")
    first, second = base.iloc[180:240], base.iloc[240:300]  # 02:00-02:59 CEST, then CET
    np.testing.assert_array_equal(first.to_numpy(), second.to_numpy())
    assert (first.index.strftime("%H:%M") == second.index.strftime("%H:%M")).all()
    lm = res.local_minutes()
    np.testing.assert_array_equal(lm[[0, 180, 239, 240, 299]], [1380.0, 120.0, 179.0, 120.0, 179.0])
    times = res.local_times()
    assert times[240].isoformat() == "2026-10-25T02:00:00+01:00" and times[0].tzinfo.key == "Europe/Berlin"
    from cosim import plots

    assert plots._tzname(res) == "Europe/Berlin" and plots.household_load(res)[:4] == b"\x89PNG"


def test_zone_without_change_gives_the_fixed_offset_results(tmp_path):
    """In January Europe/Berlin is +01:00 throughout: every dataset equals the fixed-offset run's."""
    jan = {"start": "2026-01-20T06:00:00+01:00"}
    _short_uc1(tmp_path / "zone.h5", **jan)
    _short_uc1(tmp_path / "fixed.h5", timezone=None, **jan)
    assert differences(str(tmp_path / "fixed.h5"), str(tmp_path / "zone.h5")) == []


def test_bad_zone_and_offset_are_one_line_exit_2(write_scenario, capsys):
    bad = write_scenario("bad.yaml", timezone="Europe/Berln")
    for cmd in ("validate", "run"):
        assert main([cmd, str(bad), "--quiet"] if cmd == "run" else [cmd, str(bad)]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.strip() == (
            f"error: {bad}: timezone: unknown IANA time zone 'Europe/Berln' (e.g. Europe/Berlin, UTC)")
    off = write_scenario("off.yaml", timezone="Europe/Berlin", start="2026-01-15T00:00:00+02:00")
    assert main(["validate", str(off)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {off}: start: offset +02:00 is not Europe/Berlin's offset at 2026-01-15T00:00:00+02:00 (+01:00)")
    naive = write_scenario("naive.yaml", timezone="Europe/Berlin", start="2026-07-01T00:00:00")
    scn, _ = load_scenario(str(naive))
    assert scn.start.isoformat() == "2026-07-01T00:00:00+02:00"


def test_a_misspelt_zone_with_a_start_without_offset_is_one_line(write_scenario, capsys):
    """The start without offset (allowed with a timezone) was also refused, for lack of a timezone: a
    second line blaming the start for the zone's misspelling."""
    bad = write_scenario("bad.yaml", timezone="Europe/Berln", start="2026-07-01T00:00:00")
    assert main(["validate", str(bad)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {bad}: timezone: unknown IANA time zone 'Europe/Berln' (e.g. Europe/Berlin, UTC)"]


def test_schema_has_the_timezone_field(capsys):
    assert main(["schema"]) == 0
    prop = json.loads(capsys.readouterr().out)["properties"]["timezone"]
    assert "IANA" in prop["description"]
