"""A controlled run stops once its evaluated window's numbers are final (Scenario.cooldown_run_ms):
the same window, rows, events and KPIs as simulating the whole cool-down, on a run where the DSO's
orders cross the window's end."""

import json

import h5py

from cosim.api import Results
from cosim.runner import run_scenario
from cosim.scenario import load_scenario
from tests.helpers.same_results import differences

H = 3_600_000
# the evening of uc3_substation: window 17:00-23:30 after a 2-h warm-up, 5-h cool-down, 4-h horizon,
# DSO orders of up to 4 slots (the stop: 6 slots = 3 h after the window); the window's end is where the
# DSO's evening orders of 23:00-24:00 cross it (two of them, with the population of 2026-12-07 evening)
SHORT = {"start": "2026-01-20T15:00:00+01:00", "evaluation.warmup": "2h", "evaluation.cooldown": "5h",
         "control.horizon": "4h", "dso.lookahead_slots": 4}


def _flat(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _flat(v, f"{path}/{k}")
    else:
        yield path, json.dumps(x, default=str)


def test_cooldown_run_of_the_bundled_scenarios():
    scn, _ = load_scenario("uc3_substation")
    assert scn.cooldown_ms == 24 * H and scn.cooldown_run_ms == 9 * H  # (16 order slots + 2) x 30 min
    scn, _ = load_scenario("uc1_home")
    assert scn.cooldown_run_ms == H // 2  # 2 control slots of 15 min, no DSO
    scn, _ = load_scenario("uc1_home", {"evaluation.full_cooldown": True})
    assert scn.cooldown_run_ms == scn.cooldown_ms == 24 * H
    scn, _ = load_scenario("uc3_physical")
    assert scn.cooldown_ms == scn.cooldown_run_ms == 0
    # the longest interval the window's last values come in, twice, on the recording grain
    scn, _ = load_scenario("uc1_home", {"record.aggregate": "1h"})
    assert scn.cooldown_run_ms == 2 * H
    scn, _ = load_scenario("uc1_home", {"record.every": "20min"})
    assert scn.cooldown_run_ms == 40 * 60_000
    scn, _ = load_scenario("uc3_substation", {"dso.lookahead_slots": 1, "telecom.meters.every": "1h"})
    assert scn.cooldown_run_ms == 2 * H  # twice the hourly meter readings to the LFAs (the DSO: 3 slots, 1.5 h)
    scn, _ = load_scenario("uc3_substation", {"control.mode": "none"})
    assert scn.cooldown_run_ms == 30 * 60_000  # no planning, no DSO: the 15-min meter readings
    scn, _ = load_scenario("uc3_substation", {"evaluation.cooldown": "2h"})
    assert scn.cooldown_run_ms == 2 * H  # at most the cool-down


def test_stopping_after_the_window_changes_no_window_number(tmp_path):
    files = {}
    for full in (True, False):
        scn, text = load_scenario("uc3_substation", dict(SHORT, **{"evaluation.full_cooldown": full}))
        files[full] = run_scenario(scn, text, out=tmp_path / f"full_{full}.h5", until_ms=int(6.5 * H),
                                   progress=False).path
    w0, w1 = 2 * H, int(8.5 * H)
    with h5py.File(files[True]) as a, h5py.File(files[False]) as b:
        assert len(a["time"]) == int(13.5 * H) // 60_000 and len(b["time"]) == int(11.5 * H) // 60_000
        assert (a.attrs["eval_start_ms"], a.attrs["eval_end_ms"]) == (b.attrs["eval_start_ms"],
                                                                      b.attrs["eval_end_ms"]) == (w0, w1)
    full, early = Results(files[True]), Results(files[False])
    # not vacuous: an order starts in the window and ends after it; both runs settle it after the window
    crossing = [r["order"] for r in full.records("flex", window=False) if r.get("kind") == "settlement"
                and w0 <= r["t0"] < w1 < r["t0"] + len(r["delivered_slots"]) * r["slot_ms"]]
    assert crossing
    for res in (full, early):
        settled = {r["order"]: r for r in res.records("flex", window=False) if r.get("kind") == "settlement"}
        assert all(not settled[o]["partial"] and settled[o]["t"] > w1 for o in crossing)
    # every recorded row and event up to the early run's last control slot (10 h: there it settles the
    # orders still open, which the full run settles later), and every window KPI
    assert differences(files[True], files[False], before_ms=10 * H) == []
    ka, kb = dict(_flat(full.kpis())), dict(_flat(early.kpis()))
    assert {k for k in ka.keys() | kb.keys() if ka.get(k) != kb.get(k)} == {"/run/file"}
