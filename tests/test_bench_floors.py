"""benchmarks/bench_floors.py: the replay schedules the same steps without any model work, and the
block-diagonal district LP has the homes' optima."""
import sys

from cosim.durations import parse_duration_ms
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
    finally:
        tape.uninstall()
    assert dict(tape.steps) == recorded  # mosaik scheduled the same steps
    assert len(solves) == n_solves and len(model_steps) == n_model  # and no model worked
    assert "step" in vars(GridSim) and GridSim.step.__qualname__ == "GridSim.step"  # the classes are restored
    assert "get_data" not in vars(bf.RecorderSim)


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
