"""ResultsWriter: layout, NaN for missing devices, widening, events, idempotent close."""

import json

import h5py
import numpy as np

from cosim.results import ResultsWriter


def make(path, flush_every=3):
    return ResultsWriter(str(path), {"seed": 1, "scenario": "name: x"}, [("pop", "P", "kW"), ("pop", "soc", "1")],
                         ["messages"], "2026-01-01T00:00:00+01:00", 60_000, flush_every)


def test_rows_missing_and_new_devices(tmp_path):
    w = make(tmp_path / "r.h5")
    w.append(0, {("pop", "P"): {"a": 1.0, "b": 2.0}, ("pop", "soc"): {"a": 0.5}})
    w.append(60_000, {("pop", "P"): {"a": 1.5, "b": 2.5}})          # soc missing this step
    w.append(120_000, {("pop", "P"): {"b": 3.0, "c": 4.0, "a": None}})  # new device, order changed
    w.append(180_000, {("pop", "P"): {"a": 5.0, "b": 6.0, "c": 7.0}})
    w.add_events("messages", [{"id": "m1", "latency_ms": 12.5}, {"id": "m2", "lost": True}])
    w.close("completed")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["status"] == "completed" and f.attrs["steps"] == 4
        np.testing.assert_array_equal(f["time"][()], [0, 60_000, 120_000, 180_000])
        assert [i.decode() for i in f["pop/_ids/P"][()]] == ["a", "b", "c"]
        np.testing.assert_array_equal(
            f["pop/P"][()], [[1, 2, np.nan], [1.5, 2.5, np.nan], [np.nan, 3, 4], [5, 6, 7]])
        np.testing.assert_array_equal(f["pop/soc"][()], [[0.5], [np.nan], [np.nan], [np.nan]])
        assert f["pop/P"].attrs["unit"] == "kW"
        lines = bytes(f["events/messages"][()]).decode().splitlines()
        assert [json.loads(x)["id"] for x in lines] == ["m1", "m2"]


def test_close_twice_and_flush_after_partial_block(tmp_path):
    w = make(tmp_path / "r.h5", flush_every=100)
    for t in range(5):
        w.append(t * 60_000, {("pop", "P"): {"a": float(t)}})
    w.flush()
    w.flush()  # idempotent
    w.append(300_000, {("pop", "P"): {"a": 5.0}})
    w.close("interrupted", "stopped by SIGINT")
    w.close("completed")  # no effect once closed
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["status"] == "interrupted" and f.attrs["error"] == "stopped by SIGINT"
        np.testing.assert_array_equal(f["pop/P"][()][:, 0], np.arange(6.0))
