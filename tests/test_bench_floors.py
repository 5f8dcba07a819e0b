"""benchmarks/bench_floors.py: the replay schedules the same steps without any model work, and the
block-diagonal district LP has the homes' optima."""
import sys

import pytest

from cosim.durations import parse_duration_ms
from cosim.recorder import RecorderSim
from simulators import grid3ph_engine, household
from simulators.grid import GridSim

sys.path.insert(0, "benchmarks")
import bench_floors as bf  # noqa: E402


def test_replay_steps_like_the_real_run_without_solving_a_power_flow(tmp_path, monkeypatch):
    solves = []
    real_solve = grid3ph_engine.Engine3ph._solve
    monkeypatch.setattr(grid3ph_engine.Engine3ph, "_solve",
                        lambda self, p, q: solves.append(1) or real_solve(self, p, q))
    model_steps = []
    real_step = household.Population.step
    monkeypatch.setattr(household.Population, "step", lambda self, *a: model_steps.append(1) or real_step(self, *a))
    until = parse_duration_ms("30min")
    tape = bf.Tape()
    tape.install()
    try:
        bf._timed_run(*bf._load("uc3_physical"), tmp_path / "real.h5", until)
        recorded, n_solves, n_model = dict(tape.steps), len(solves), len(model_steps)
        assert recorded["grid-0"] == 30 and n_solves == 30 and n_model > 0
        assert bf.power_flow_products(tape) > 0  # the engine iterated
        tape.replay()
        bf._timed_run(*bf._load("uc3_physical"), tmp_path / "replay.h5", until)
        tape.check_replayed(recorded)  # mosaik scheduled the same steps and took every recorded answer
    finally:
        tape.uninstall()
    assert len(solves) == n_solves and len(model_steps) == n_model  # and no model worked
    assert "step" in vars(GridSim) and GridSim.step.__qualname__ == "GridSim.step"  # the classes are restored
    assert "get_data" not in vars(RecorderSim)


def test_a_diverging_replay_is_refused():
    tape = bf.Tape()
    tape.call(("sim-0", "step"), 0, lambda: 60_000)
    tape.replay()
    try:
        tape.call(("sim-0", "step"), 60_000, lambda: None)
    except RuntimeError as exc:
        assert "replay diverged" in str(exc)
    else:
        raise AssertionError("a call at another time was replayed")


def test_block_diagonal_district_lp_has_the_homes_optima():
    t_one, t_block, worst = bf.batched(districts=1, households=12, prices=3)
    assert t_one > 0 and t_block > 0 and worst < 1e-9


def test_highs_clock_counts_every_thread_keeps_the_reference_ahead_apart_and_restores_the_module():
    import threading

    import numpy as np

    from simulators.mas import lp

    def solve():
        sol = lp.LP(np.array([[1.0, 1.0]]), np.array([1.0, 2.0]), [1.0], [np.inf], [0.0, 0.0], [5.0, 5.0]).solve()
        assert abs(sol.obj - 1.0) < 1e-9

    module = lp._hc
    with bf.HighsClock() as clock:
        solve()
        for name in ("home-answers_0", "central-reference_0"):
            t = threading.Thread(target=solve, name=name)
            t.start()
            t.join()
        assert clock.solves == 3 and clock.cpu > 0.0 and clock.ahead > 0.0
        assert set(clock.by_thread) == {"simulation", "home-answers", "central-reference"}
        assert clock.by_thread["central-reference"] == clock.ahead
        assert clock.by_thread["simulation"] + clock.by_thread["home-answers"] == pytest.approx(clock.cpu, rel=1e-12)
        cpu = clock.cpu
    solve()  # after the clock: not counted
    assert clock.solves == 3 and clock.cpu == cpu and lp._hc is module


def test_highs_clock_counts_a_reference_solved_ahead_only_where_a_gap_takes_it():
    import threading

    import numpy as np

    from simulators.mas import host
    from simulators.mas.central import DistrictPart, central_lp
    from simulators.mas.home_lp import HomeModel
    from simulators.mas.tariff import DistrictObjective

    mdl = HomeModel({"id": "h0", "devices": {"pv": {"kwp": 5.0}, "battery": {"capacity_kwh": 8.0}}}, K=16, slot_s=1800)
    mdl.update(0.0, {"soc": 0.5}, {"base": np.full(16, 0.4), "pv": -np.linspace(0, 2, 16), "t_out": np.full(16, 5.0)})
    dp = DistrictPart(16, 0.5, np.full(16, 0.3), np.full(16, 0.08), DistrictObjective(community=True))
    clp = central_lp([mdl], dp)
    original = (host.solve_once, host.central_result)
    sols = []
    with bf.HighsClock() as clock:
        for _ in range(2):  # two references solved ahead, as AgentHost._solve_ahead does
            t = threading.Thread(target=lambda: sols.append(host.solve_once(*clp.arrays())),
                                 name="central-reference_0")
            t.start()
            t.join()
        assert clock.ahead > 0.0 and clock.ahead_used == 0.0 and clock.cpu == 0.0
        res = host.central_result(clp, [mdl], dp, sols[0], 0.0)  # a negotiation's gap takes the first
        assert clock.ahead_used == sols[0].ahead_cpu > 0.0 and clock.ahead_used < clock.ahead
    assert (host.solve_once, host.central_result) == original and res.obj == sols[0].obj


def test_a_replay_that_leaves_answers_unused_is_refused():
    tape = bf.Tape()
    tape.call(("sim-0", "step"), 0, lambda: 60_000)
    tape.call(("sim-0", "step"), 60_000, lambda: 120_000)
    tape.replay()
    tape.call(("sim-0", "step"), 0, lambda: None)
    try:
        tape.check_replayed({})
    except RuntimeError as exc:
        assert "unused" in str(exc)
    else:
        raise AssertionError("an unused recorded answer passed")


def test_floors_prints_the_bounds_against_the_anchor(tmp_path, capsys):
    f = bf.floors("uc3_physical", parse_duration_ms("20min"), tmp_path, anchor_day=50.0)
    out = capsys.readouterr().out
    assert f.highs == 0 and f.products > 0 and f.bound() >= f.replay > 0
    assert "lower bound of uc3_physical" in out and "x the anchor at best" in out


def test_highs_only_prints_highs_alone_of_a_real_run(tmp_path, capsys):
    alone = bf.highs_only("uc1_home", parse_duration_ms("1h"), tmp_path)
    out = capsys.readouterr().out
    assert alone > 0.0 and f"HiGHS alone over {bf.CORES} cores" in out and "366 simulated days" in out
