"""The speed-ups of issue 14 leave every result as it was: short runs of the controlled scenarios with
the previous behaviour restored (here, in the test) and without, compared dataset by dataset and
event by event (tests/helpers/same_results.py), and the optimised run takes fewer mosaik steps."""

from collections import Counter

import pytest

from cosim.recorder import RecorderSim
from cosim.runner import run_scenario
from cosim.scenario import load_scenario
from simulators.mas.mas_sim import MASSim
from simulators.telecom import TelecomSim
from tests.helpers.same_results import differences

# 4 simulated hours: 1 h warm-up, 2 h evaluated, 1 h cool-down, a 2-h control horizon
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
    dataclass equality) on random 1- to 3-tier values, including cutoffs shorter than the length."""
    import random

    from mosaik.tiered_time import TieredDuration, TieredTime, tuple_add

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
