"""Floats: output mappings that keep their values' array, read by the recorder, the grid and the meters."""

import copy
import pickle

import h5py
import numpy as np
import pytest

from cosim.results import _Series
from simulators.floats import Floats
from simulators.grid3ph import _merge
from simulators.meter import MeterPopulation

IDS = ["h1", "h2", "h3"]


def test_floats_is_the_mapping_of_its_values_and_keeps_them_as_an_array():
    f = Floats(IDS, np.array([1.5, -0.0, np.nan]))
    assert isinstance(f, dict) and list(f) == IDS
    assert f["h1"] == 1.5 and np.isnan(f["h3"])
    assert f.array.dtype == np.float64 and f.array.tolist()[:2] == [1.5, -0.0]
    assert Floats(["h1", "h1"], [1.0, 2.0]).array is None  # a key twice: the array is not in key order
    assert Floats(IDS[:2], [1.0, 2.0, 3.0]).array is None
    assert pickle.loads(pickle.dumps(f)).array.tolist()[:2] == [1.5, -0.0]


@pytest.mark.parametrize("change", [
    lambda f: f.__setitem__("h1", 9.0), lambda f: f.update(h1=9.0), lambda f: f.setdefault("h4", 9.0),
    lambda f: f.pop("h1"), lambda f: f.popitem(), lambda f: f.clear(), lambda f: f.__delitem__("h2"),
    lambda f: f.__ior__({"h1": 9.0}),
])
def test_any_change_drops_the_array(change):
    f = Floats(IDS, [1.0, 2.0, 3.0])
    change(f)
    assert f.array is None
    g = copy.deepcopy(Floats(IDS, [1.0, 2.0, 3.0]))
    assert g == dict(zip(IDS, [1.0, 2.0, 3.0]))
    change(g)
    assert g.array is None


def test_readers_take_the_array_and_read_a_changed_mapping_by_its_values(tmp_path):
    """The recorder's rows, the grid's inputs and the meters' vectors: from the array while the mapping
    is as made, from its values once changed."""
    changed = Floats(IDS, [1.0, 2.0, 3.0])
    changed["h2"] = 7.0
    with h5py.File(tmp_path / "f.h5", "w") as f:
        s = _Series(f, "P", "kW", "households", 4)
        s.add(0, {"h1": 0.0, "h2": 0.0, "h3": 0.0})
        s.add(1, Floats(IDS, [1.0, 2.0, 3.0]))
        s.add(2, changed)
        assert s.block[1:3].tolist() == [[1.0, 2.0, 3.0], [1.0, 7.0, 3.0]]
    target, orders = np.zeros(3), {}
    index = {h: k for k, h in enumerate(IDS)}
    for value, want in ((Floats(IDS, [1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]), (changed, [1.0, 7.0, 3.0]),
                        (Floats(IDS, [4.0, np.nan, 6.0]), [4.0, 7.0, 6.0])):
        _merge({"P": {"src": value}}, {"P": target}, index, orders)
        assert target.tolist() == want
    pop = MeterPopulation(seed=1)
    pop.vector(dict.fromkeys(IDS, 0.0))
    assert pop.vector(Floats(IDS, [1.0, 2.0, 3.0])).tolist() == [1.0, 2.0, 3.0]
    assert pop.vector(changed).tolist() == [1.0, 7.0, 3.0]
