"""The speed-ups of issue 14 leave every result as it was: short runs of the controlled scenarios with
the previous behaviour restored (here, in the test) and without, compared dataset by dataset and
event by event (tests/helpers/same_results.py); the quiet agents also take fewer mosaik steps, and
the cheaper LP handling hands HiGHS the same models."""

from collections import Counter

import pytest

from cosim.recorder import RecorderSim
from cosim.runner import run_scenario
from cosim.scenario import load_scenario
from simulators.mas.mas_sim import MASSim
from simulators.telecom import TelecomSim
from tests.helpers.same_results import differences

# 1 h warm-up, 2 h evaluated, a 1-h cool-down (uc1_home simulates 30 min of it), a 2-h control horizon
SHORT = {"evaluation.warmup": "1h", "evaluation.cooldown": "1h", "control.horizon": "2h"}


def _eager_get_data(original):
    """MASSim.get_data as before: ``outbox`` and ``events`` present even when empty."""
    def get_data(self, outputs):
        data = original(self, outputs)
        for eid, attrs in outputs.items():
            for attr in ("outbox", "events"):
                if attr in attrs:
                    data[eid].setdefault(attr, {})
        return data
    return get_data


def _run(name: str, out, monkeypatch, eager: bool) -> Counter:
    steps: Counter = Counter()
    with monkeypatch.context() as m:
        if eager:
            m.setattr(MASSim, "get_data", _eager_get_data(MASSim.get_data))
        for cls in (MASSim, TelecomSim, RecorderSim):
            def counted(self, time, inputs, max_advance, _step=cls.step, _name=cls.__name__):
                steps[_name] += 1
                return _step(self, time, inputs, max_advance)
            m.setattr(cls, "step", counted)
        scn, text = load_scenario(name, SHORT)
        run_scenario(scn, text, out=out, until_ms=2 * 3_600_000, progress=False)
    return steps


@pytest.mark.parametrize("name", ["uc1_home", "uc3_substation"])
def test_quiet_agents_same_results_fewer_steps(name, tmp_path, monkeypatch):
    before = _run(name, tmp_path / "before.h5", monkeypatch, eager=True)
    after = _run(name, tmp_path / "after.h5", monkeypatch, eager=False)
    assert differences(tmp_path / "before.h5", tmp_path / "after.h5") == []
    assert after["MASSim"] == before["MASSim"]
    assert after["TelecomSim"] < before["TelecomSim"] and after["RecorderSim"] < before["RecorderSim"]


def test_time_arithmetic_as_mosaik_defines_it():
    """The patched TieredTime operations give mosaik's results (its tuple_add, add/ext split and
    dataclass equality) on random 1- to 3-tier values, including cutoffs shorter than the length, and
    ``earliest_sum`` the least sum over one to three durations."""
    import random

    from mosaik.tiered_time import MinimalDurations, TieredDuration, TieredTime, tuple_add

    from cosim import mosaik_fixes

    mosaik_fixes.apply()
    rng = random.Random(14)
    for _ in range(5000):
        n = rng.randint(1, 3)
        a = TieredTime(*(rng.randint(0, 3) for _ in range(n)))
        b = TieredTime(*(rng.randint(0, 3) for _ in range(n)))
        assert (a < b, a <= b, a > b, a >= b) == (a.tiers < b.tiers, a.tiers <= b.tiers, a.tiers > b.tiers,
                                                  a.tiers >= b.tiers)
        assert (a <= b) == (a.tiers < b.tiers or a == b)
        cutoff = rng.randint(1, n)
        d = TieredDuration(*(rng.randint(0, 3) for _ in range(rng.randint(cutoff, 3))), cutoff=cutoff, pre_length=n)
        assert (a + d).tiers == tuple_add(a.tiers, d.add) + d.ext
        assert type(a + d) is TieredTime and a + d == TieredTime(*(tuple_add(a.tiers, d.add) + d.ext))
        md = MinimalDurations()
        for _ in range(rng.randint(1, 3)):
            md.insert(TieredDuration(*(rng.randint(0, 3) for _ in range(n)), cutoff=rng.randint(1, n), pre_length=n))
        assert md.earliest_sum(a).tiers == min((a + x).tiers for x in md.durations)


class _Waiter:
    """A future's stand-in that logs when it is resolved."""

    def __init__(self, name, log, cancelled=False):
        self.name, self.log, self._cancelled = name, log, cancelled

    def cancelled(self):
        return self._cancelled

    def set_result(self, value):
        self.log.append((self.name, value.tiers))


def _mosaik_progress_set(self, time):
    """mosaik 3.6's Progress.set, as released (mosaik/progress.py)."""
    assert time >= self.time, "cannot progress backwards"
    self.time = time
    for index in reversed(range(0, len(self._futures))):
        trigger_spec, future = self._futures[index]
        triggered_time = self._triggered_time(trigger_spec)
        if triggered_time:
            if not future.cancelled():
                future.set_result(triggered_time)
            del self._futures[index]


def test_progress_set_wakes_the_waiters_mosaik_wakes():
    """The patched Progress.set (cancelled waiters dropped, nothing done when the time has not moved)
    resolves the same waiters with the same times in the same order as mosaik's, on random sequences
    of waits (some cancelled) and sets that often repeat the current time."""
    import random

    from mosaik.progress import Progress
    from mosaik.tiered_time import TieredDuration, TieredTime

    from cosim import mosaik_fixes

    rng = random.Random(14)
    for _ in range(300):
        logs = ([], [])
        progs = (Progress(TieredTime(0, 0)), Progress(TieredTime(0, 0)))
        now = [0, 0]
        for op in range(60):
            if rng.random() < 0.5:
                spec = (TieredTime(now[0] + rng.randint(0, 4), rng.randint(0, 2)),
                        TieredDuration(rng.randint(0, 2), rng.randint(0, 1)), rng.random() < 0.5)
                cancelled = rng.random() < 0.3
                for prog, log in zip(progs, logs):
                    if not prog._triggered_time(spec):  # as _add_trigger: a waiter only when not yet due
                        prog._futures.append((spec, _Waiter(op, log, cancelled)))
            else:
                if rng.random() < 0.5:  # half the sets move the time, the others repeat it
                    now = [now[0] + rng.randint(0, 2), rng.randint(0, 2)]
                    if now[0] == progs[0].time.tiers[0]:
                        now[1] = max(now[1], progs[0].time.tiers[1])
                t = TieredTime(*now)
                mosaik_fixes._progress_set(progs[0], t)
                _mosaik_progress_set(progs[1], t)
                assert logs[0] == logs[1]
                assert progs[0].time.tiers == progs[1].time.tiers


async def _mosaik_wait_for_dependencies(sim, lazy_stepping):
    """mosaik 3.6's wait_for_dependencies, as released (mosaik/scheduler.py)."""
    import asyncio

    futures = []
    next_step = sim.next_steps[0]
    for pre_sim, min_delays in sim.input_delays.items():
        for delay in min_delays.durations:
            futures.append(pre_sim.progress.has_passed(next_step, shift=delay))
    for suc_sim, adapt in sim.successors_to_wait_for.items():
        futures.append(suc_sim.progress.has_reached(next_step + adapt))
    if lazy_stepping:
        for suc_sim, adapt in sim.successors.items():
            futures.append(suc_sim.progress.has_reached(next_step + adapt))
    await asyncio.gather(*futures)


@pytest.mark.parametrize("name", ["uc1_home", "uc3_substation"])
def test_dependency_waits_same_results_same_steps(name, tmp_path, monkeypatch):
    """The patched wait_for_dependencies (a future only for a condition not yet met) against mosaik's
    (a task per condition): the same files and the same steps of every simulator."""
    import mosaik.scheduler as scheduler

    from cosim import mosaik_fixes

    mosaik_fixes.apply()
    assert scheduler.wait_for_dependencies is mosaik_fixes._wait_for_dependencies
    with monkeypatch.context() as m:
        m.setattr(scheduler, "wait_for_dependencies", _mosaik_wait_for_dependencies)
        before = _run(name, tmp_path / "mosaik.h5", monkeypatch, eager=False)
    after = _run(name, tmp_path / "patched.h5", monkeypatch, eager=False)
    assert differences(tmp_path / "mosaik.h5", tmp_path / "patched.h5") == []
    assert after == before and after["MASSim"] > 0


class _Runner:
    """A simulator runner's stand-in: its progress (hashable, as mosaik's SimRunner)."""

    def __init__(self, progress):
        self.progress = progress


def test_dependency_waits_are_the_unmet_conditions():
    """On random progress states the patched wait registers exactly the conditions mosaik's
    ``has_passed``/``has_reached`` would still wait for, and returns at once when all are met."""
    import asyncio
    import random
    from types import SimpleNamespace

    from mosaik.progress import Progress
    from mosaik.tiered_time import MinimalDurations, TieredDuration, TieredTime

    from cosim import mosaik_fixes

    mosaik_fixes.apply()
    rng = random.Random(7)

    def t():
        return TieredTime(rng.randint(0, 6), rng.randint(0, 2))

    def d():
        return TieredDuration(rng.randint(0, 2), rng.randint(0, 1))

    async def main():
        for _ in range(500):
            pre = [_Runner(Progress(t())) for _ in range(rng.randint(0, 3))]
            suc = [_Runner(Progress(t())) for _ in range(rng.randint(0, 3))]
            delays = []
            for _p in pre:
                md = MinimalDurations()
                for _ in range(rng.randint(1, 2)):
                    md.insert(d())
                delays.append(md)
            adapts = [d() for _ in suc]
            split = rng.randint(0, len(suc))
            sim = SimpleNamespace(next_steps=[t()], input_delays=dict(zip(pre, delays)),
                                  successors_to_wait_for=dict(zip(suc[:split], adapts[:split])),
                                  successors=dict(zip(suc[split:], adapts[split:])))
            lazy = rng.random() < 0.5
            step = sim.next_steps[0]
            unmet = [(x.progress, (step, dl, True)) for x, md in sim.input_delays.items() for dl in md.durations
                     if not x.progress._triggered_time((step, dl, True))]
            followers = list(sim.successors_to_wait_for.items()) + (list(sim.successors.items()) if lazy else [])
            for x, a in followers:
                spec = (step + a, TieredDuration(*((0,) * len(x.progress.time))), False)
                if not x.progress._triggered_time(spec):
                    unmet.append((x.progress, spec))
            task = asyncio.ensure_future(mosaik_fixes._wait_for_dependencies(sim, lazy))
            await asyncio.sleep(0)
            registered = [(x.progress, spec) for x in pre + suc for spec, _f in x.progress._futures]
            key = lambda pair: (id(pair[0]), pair[1][0].tiers, pair[1][1].tiers, pair[1][2])  # noqa: E731
            assert sorted(map(key, registered)) == sorted(map(key, unmet))
            assert task.done() == (not unmet)
            for progress, (target, shift, _passed) in unmet:      # mosaik's progress catches up
                progress.set(max(progress.time, TieredTime(target.tiers[0] + 3, 0)))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert task.done()

    asyncio.run(main())


# ---------------------------------------------------------------- the LP changes (MAS Python around HiGHS)
def _old_lp_arrays(self):
    """HomeModel.lp_arrays as before: the COP coefficients set through a LIL copy."""
    A = self.A.tolil(copy=True)
    if self.dev.heat_pump is not None:
        r0, c0 = self.rblocks["th"].start, self.blocks["hp"].start
        for k, v in enumerate(self._hp_coef):
            A[r0 + k, c0 + k] = -v
    return A.tocsc(), self.lo.copy(), self.hi.copy(), self.lb.copy(), self.ub.copy(), self.c_f.copy()


def _old_central_lp(models, district, fixed=None):
    """central_lp as before: per-household LIL coupling blocks, block_diag, hstack and vstack."""
    import numpy as np
    import scipy.sparse as sp

    from simulators.mas.central import CentralLP

    K = district.K
    blocks, cs, los, his, lbs, ubs, coup_cols, offs, off = [], [], [], [], [], [], [], [], 0
    for mdl in models:
        A, lo, hi, lb, ub, c = mdl.lp_arrays()
        blocks.append(A), cs.append(c), los.append(lo), his.append(hi), lbs.append(lb), ubs.append(ub)
        C = sp.lil_matrix((K, mdl.n))
        bi, be = mdl.blocks["imp"], mdl.blocks["exp"]
        C[np.arange(K), np.arange(bi.start, bi.stop)] = 1.0
        C[np.arange(K), np.arange(be.start, be.stop)] = -1.0
        coup_cols.append(C.tocsc()), offs.append(off)
        off += mdl.n
    H = sp.block_diag(blocks, format="csc")
    coup = sp.hstack(coup_cols + [district.stacked()[:K]], format="csc")
    dist_rows = sp.hstack([sp.csc_matrix((district.m, off)), district.A], format="csc")
    top = sp.hstack([H, sp.csc_matrix((H.shape[0], district.n))], format="csc")
    A = sp.vstack([top, coup, dist_rows], format="csc")
    F = np.zeros(K) if fixed is None else np.asarray(fixed, float)
    return CentralLP(A, np.concatenate(cs + [district.c]), np.concatenate(los + [-F, district.lo]),
                     np.concatenate(his + [-F, district.hi]), np.concatenate(lbs + [district.lb]),
                     np.concatenate(ubs + [district.ub]), offs, off, H.shape[0])


def _old_solve_central(models, district, fixed=None, backend=None):
    """solve_central with the previous assembly (the central mode's plans)."""
    import time

    from simulators.mas.central import central_result
    from simulators.mas.lp import solve_once

    t0 = time.perf_counter()
    clp = _old_central_lp(models, district, fixed)
    return central_result(clp, models, district, solve_once(*clp.arrays(), backend=backend),
                          time.perf_counter() - t0)


def _old_lp(m):
    """Restore the LP wrapper's previous behaviour: every cost and column bound sent to HiGHS at each
    change, master columns added as a sparse matrix each."""
    import numpy as np
    import scipy.sparse as sp

    from simulators.mas import lp as lpmod

    def set_cost(self, c):
        c = np.asarray(c, dtype=float)
        if np.array_equal(c, self.c):
            return
        self.c[:] = c
        if self._h is not None:
            self._h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), self.c)

    def set_col_bounds(self, lb, ub):
        lb, ub = lpmod._inf(lb), lpmod._inf(ub)
        if np.array_equal(lb, self.lb) and np.array_equal(ub, self.ub):
            return
        self.lb[:], self.ub[:] = lb, ub
        self._primal_changed = True
        if self._h is not None:
            self._h.changeColsBounds(self.n, np.arange(self.n, dtype=np.int32), self.lb, self.ub)

    def add_col(self, c, lb, ub, rows, vals):
        col = sp.csc_matrix((np.asarray(vals, float), np.asarray(rows), [0, len(rows)]), shape=(self.m, 1))
        return int(self.add_cols([c], [lb], [ub], col)[0])

    m.setattr(lpmod.LP, "set_cost", set_cost)
    m.setattr(lpmod.LP, "set_col_bounds", set_col_bounds)
    m.setattr(lpmod.LP, "add_col", add_col)


@pytest.mark.parametrize("name", ["uc1_home", "uc3_substation"])
def test_lp_changes_same_results(name, tmp_path, monkeypatch):
    """Central reference assembled from coordinates, COP coefficients set in place, only changed costs
    and bounds sent to HiGHS, master columns without a sparse matrix: the same files as before."""
    from simulators.mas import host
    from simulators.mas.home_lp import HomeModel

    with monkeypatch.context() as m:
        m.setattr(HomeModel, "lp_arrays", _old_lp_arrays)
        m.setattr(host, "central_lp", _old_central_lp)
        m.setattr(host, "solve_central", _old_solve_central)
        _old_lp(m)
        scn, text = load_scenario(name, SHORT)
        run_scenario(scn, text, out=tmp_path / "before.h5", until_ms=2 * 3_600_000, progress=False)
    scn, text = load_scenario(name, SHORT)
    run_scenario(scn, text, out=tmp_path / "after.h5", until_ms=2 * 3_600_000, progress=False)
    assert differences(tmp_path / "before.h5", tmp_path / "after.h5") == []


def test_central_lp_and_cop_coefficients_as_before(monkeypatch):
    """The district LP handed to HiGHS has exactly the entries of the block-diagonal assembly, and
    lp_arrays the COP coefficients of the LIL path (homes with and without a heat pump)."""
    import numpy as np

    from simulators.mas import central
    from simulators.mas import lp as lpmod
    from simulators.mas.central import DistrictPart
    from simulators.mas.home_lp import HomeModel
    from simulators.mas.lp import solve_once
    from simulators.mas.tariff import DistrictObjective

    models = []
    for i, hp in enumerate([True, False, True]):
        spec = {"id": f"h{i}", "devices": {"pv": {"kwp": 5.0}, "battery": {"capacity_kwh": 8.0},
                                           **({"heat_pump": {"p_el_kw": 3.0}} if hp else {})}}
        mdl = HomeModel(spec, K=16, slot_s=1800)
        fc = {"base": np.full(16, 0.4), "pv": -np.linspace(0, 2, 16), "t_out": np.linspace(-5, 5, 16) + i}
        mdl.update(0.0, {"soc": 0.5, "T_in": 21.0}, fc)
        models.append(mdl)
    for mdl in models:
        A_new, A_old = mdl.lp_arrays()[0], _old_lp_arrays(mdl)[0]
        assert A_new.nnz == A_old.nnz and (A_new != A_old).nnz == 0
    seen = []

    def recording(A, *rest, **kw):
        seen.append((A, rest))
        return solve_once(A, *rest, **kw)

    monkeypatch.setattr(central, "solve_once", recording)
    monkeypatch.setattr(lpmod, "solve_once", recording)
    dp = DistrictPart(16, 0.5, np.full(16, 0.3), np.full(16, 0.08), DistrictObjective(community=True))
    new = central.solve_central(models, dp)
    old_lp = _old_central_lp(models, dp)
    old = recording(*old_lp.arrays())
    (A1, r1), (A0, r0) = seen
    assert A1.shape == A0.shape and A1.nnz == A0.nnz and (A1 != A0).nnz == 0
    assert all(np.array_equal(a, b) for a, b in zip(r1, r0))
    assert old_lp.same_as(central.central_lp(models, dp))
    assert new.obj == old.obj and np.array_equal(new.lam, -old.row_dual[old_lp.n_home_rows:][:16] / dp.dt)


# ---------------------------------------------------------------- the second core (MAS threads around HiGHS)
def _one_core(m):
    """The MAS as before: the central reference solved when the negotiation ends, the homes' answers
    to prices computed one after the other."""
    from simulators.mas.host import AgentHost

    m.setattr(AgentHost, "_solve_ahead", lambda self, lfa, neg_id, t0: None)
    m.setattr(AgentHost, "_answer_prices", lambda self, msgs: {})


@pytest.mark.parametrize("name", ["uc2_district", "uc3_substation"])
def test_second_core_same_results(name, tmp_path, monkeypatch):
    """References solved ahead and price answers on threads: the same files as in turn, most
    references taken from the thread, and no worker thread left when the run ends."""
    import threading

    from simulators.mas.host import AgentHost

    with monkeypatch.context() as m:
        _one_core(m)
        scn, text = load_scenario(name, SHORT)
        run_scenario(scn, text, out=tmp_path / "before.h5", until_ms=2 * 3_600_000, progress=False)
    stats, answered = [], []
    with monkeypatch.context() as m:
        def close(self, _close=AgentHost.close):
            stats.append(dict(self.stats))
            _close(self)

        def answer(self, msgs, _answer=AgentHost._answer_prices):
            out = _answer(self, msgs)
            answered.append(len(out))
            return out
        m.setattr(AgentHost, "close", close)
        m.setattr(AgentHost, "_answer_prices", answer)
        scn, text = load_scenario(name, SHORT)
        run_scenario(scn, text, out=tmp_path / "after.h5", until_ms=2 * 3_600_000, progress=False)
    assert differences(tmp_path / "before.h5", tmp_path / "after.h5") == []
    (st,) = stats
    assert 0 < st["reference_ahead"] <= st["negotiations"]
    assert sum(answered) > 0
    assert not [t for t in threading.enumerate() if t.name.startswith(("central-reference", "home-answers"))]


def test_reference_solved_again_when_the_district_part_changed():
    """A flex order during the negotiation changes the district LP: the reference solved ahead is
    not used, and the gap is that of the LP assembled at the end (as a solve in turn gives)."""
    import numpy as np

    from simulators.mas.central import solve_central
    from simulators.mas.tariff import DistrictObjective
    from tests.test_mas_lfa import make_host, specs

    results = {}
    for changed in (False, True):
        host, lfa = make_host(specs(4), 24, 3600, DistrictObjective(community=True, trafo_limit_kw=8.0),
                              max_rounds=10, tol=0.005)
        host.reference = True
        original = lfa._district_part
        if changed:  # the LP solved ahead sees a tighter limit than the one assembled at the end
            def tighter(t0, *a, **kw):
                dp = original(t0, *a, **kw)
                dp.set_caps(cap_imp=np.full(dp.K, 4.0))
                return dp

            def ahead(lfa_, neg_id, t0, _ahead=host._solve_ahead):
                lfa_._district_part = tighter
                try:
                    _ahead(lfa_, neg_id, t0)
                finally:
                    lfa_._district_part = original
            host._solve_ahead = ahead
        host.step(0, {})
        (ev,) = [e for e in host.events[lfa.id] if e.get("kind") == "negotiation"]
        ref = solve_central([host.homes[m].model for m in lfa.members], original(0))
        results[changed] = (host.stats["reference_ahead"], ev["central"], ref.obj,
                            solve_central([host.homes[m].model for m in lfa.members], tighter(0)).obj
                            if changed else None)
        host.close()
    assert results[False][0] == 1 and results[True][0] == 0
    for ahead, central, ref, _ in results.values():
        assert central == ref
    assert results[True][3] > results[True][2] + 1e-3  # the LP solved ahead was another one


def test_reference_of_an_announced_negotiation_solved_ahead_once_every_member_has_begun():
    """A flex order starts a negotiation announced by ``start`` messages: its reference goes to the
    thread once the last member has begun (not before), is taken from there, and its gap is that of
    the LP solved in turn at the end."""
    from simulators.mas.central import solve_central
    from simulators.mas.tariff import DistrictObjective
    from tests.test_mas_lfa import make_host, specs

    host, lfa = make_host(specs(4), 24, 3600, DistrictObjective(community=True, trafo_limit_kw=8.0),
                          loopback=False, replan_s=86_400, max_rounds=10, tol=0.005)
    host.reference = True
    t, out = 0, host.step(0, {})
    while any(out.values()):                   # the scheduled negotiation, message by message
        t += 1
        out = host.step(t, out)
    assert lfa.last.done and host.stats["reference_ahead"] == 1
    order = {"id": "dso#1", "src": "dso", "dst": lfa.id, "kind": "flex_order",
             "body": {"order": "o1", "t0": 0, "slot_s": 3600, "kw": [2.0] * 6, "baseline": [9.0] * 6}}
    t += 1
    out = host.step(t, {lfa.id: [order]})
    neg = lfa.neg
    starts = [m for lst in out.values() for m in lst if m["kind"] == "start"]
    assert neg.id.startswith(lfa.id) and not neg.done and len(starts) == 4
    assert host._ahead.get(lfa.id, ("",))[0] != neg.id    # the homes have not begun it yet
    first, rest = starts[:3], [m for lst in out.values() for m in lst if m not in starts[:3]]
    t += 1
    out = host.step(t, {"x": first})
    assert host._ahead.get(lfa.id, ("",))[0] != neg.id    # three of four
    t += 1
    out = host.step(t, {"x": rest + [m for lst in out.values() for m in lst]})
    assert not neg.done and host._ahead[lfa.id][0] == neg.id  # the last has begun: solving ahead
    while any(out.values()):
        t += 1
        out = host.step(t, out)
    assert lfa.last is neg and neg.done
    assert host.stats["reference_ahead"] == 2
    (ev,) = [e for e in host.events[lfa.id] if e.get("kind") == "negotiation" and e.get("neg") == neg.id]
    ref = solve_central([host.homes[m].model for m in lfa.members], lfa._district_part(neg.t0))
    assert ev["central"] == ref.obj
    host.close()


def test_fewer_collections_same_results_threshold_restored(tmp_path, monkeypatch):
    """The garbage collector's first threshold is 50 000 while a world is built and run, the previous
    one afterwards, and the files are those of a run at the default threshold."""
    import contextlib
    import gc

    from cosim import runner

    seen = []
    drive, fewer = runner._drive, runner._fewer_collections

    async def spy(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return await drive(*args, **kwargs)

    before = gc.get_threshold()
    with monkeypatch.context() as m:
        m.setattr(runner, "_fewer_collections", contextlib.nullcontext)
        m.setattr(runner, "_drive", spy)
        scn, text = load_scenario("uc3_substation", SHORT)
        run_scenario(scn, text, out=tmp_path / "default.h5", until_ms=2 * 3_600_000, progress=False)
        scn, text = load_scenario("uc3_substation", SHORT)
        m.setattr(runner, "_fewer_collections", fewer)
        run_scenario(scn, text, out=tmp_path / "fewer.h5", until_ms=2 * 3_600_000, progress=False)
    assert seen == [before[0], 50_000] and gc.get_threshold() == before
    assert differences(tmp_path / "default.h5", tmp_path / "fewer.h5") == []


def test_grid_inputs_recorded_once(tmp_path, monkeypatch):
    """The grid's inputs (each household's P, Q and phase powers) are recorded under households only: in
    a run that records them under grid too, as before, they equal the households' series, and every
    other dataset equals the new file's."""
    import h5py
    import numpy as np

    from simulators import grid
    from simulators.grid3ph import IN_ATTRS_3PH, METER_ATTRS

    with monkeypatch.context() as m:
        for model in grid.META["models"].values():
            m.delitem(model, "outputs")  # every attr recordable, as before
        scn, text = load_scenario("uc3_physical")
        run_scenario(scn, text, out=tmp_path / "before.h5", until_ms=3_600_000, progress=False)
    scn, text = load_scenario("uc3_physical")
    run_scenario(scn, text, out=tmp_path / "after.h5", until_ms=3_600_000, progress=False)
    # the inputs, and the households' bus voltages for the device server (not recorded either)
    unrecorded = IN_ATTRS_3PH + METER_ATTRS
    echoes = sorted([f"grid/{a}" for a in unrecorded] + [f"grid/_ids/{a}" for a in unrecorded])
    assert differences(tmp_path / "before.h5", tmp_path / "after.h5") == [
        f"datasets differ: only old {echoes}, only new []"]
    with h5py.File(tmp_path / "before.h5", "r") as f:
        for a in IN_ATTRS_3PH:
            assert list(f[f"grid/_ids/{a}"][()]) == list(f[f"households/_ids/{a}"][()])
            g, h = f[f"grid/{a}"][()], f[f"households/{a}"][()]
            assert g.shape == h.shape and np.isfinite(g).all()
            # P: the grid sums the phase powers, the household its devices (3.6e-15 kW apart at most)
            np.testing.assert_allclose(g, h, rtol=0, atol=1e-12 if a == "P" else 0)


def test_series_chunks_64_columns_same_values(tmp_path, monkeypatch):
    """Series are chunked 64 columns wide (a narrow series is no longer padded to 256 columns per chunk),
    and the file holds the values of a run with the previous 256-column chunks."""
    import h5py

    from cosim import results
    from cosim.results import series_names

    with monkeypatch.context() as m:
        m.setattr(results, "CHUNK_COLUMNS", 256)
        scn, text = load_scenario("uc3_physical")
        run_scenario(scn, text, out=tmp_path / "wide.h5", until_ms=3_600_000, progress=False)
    scn, text = load_scenario("uc3_physical")
    run_scenario(scn, text, out=tmp_path / "narrow.h5", until_ms=3_600_000, progress=False)
    assert differences(tmp_path / "wide.h5", tmp_path / "narrow.h5") == []
    for path, width in ((tmp_path / "wide.h5", 256), (tmp_path / "narrow.h5", 64)):
        with h5py.File(path, "r") as f:
            names = series_names(f)
            assert names and {f[n].chunks[1] for n in names} == {width}
            assert any(f[n].shape[1] > 64 for n in names)  # some series span several chunks
