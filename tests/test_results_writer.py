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


def test_event_tables_read_without_json_and_equal_the_stream(tmp_path):
    """At close each JSON Lines stream is also written as a compound dataset (h5py/pandas, no JSON);
    Results.events gives the same frame from either, in the window."""
    import h5py
    import pandas as pd

    from cosim.results import Results

    path = tmp_path / "ev.h5"
    w = ResultsWriter(str(path), {"eval_start_ms": 60_000, "eval_end_ms": 180_000}, [("households", "P", "kW")],
                      ["flex"], "2026-06-15T00:00:00+02:00", 60_000, flush_every=2)
    recs = [{"kind": "order", "t": 0, "kwh": 1.5, "agent": "lfa.d1", "slot": {"a": 1}},
            {"kind": "negotiation", "t": 70_000, "gap": 0.25, "members": [1, 2]},
            {"kind": "settlement", "t": 200_000, "t0": 120_000, "kwh": 2.0}]
    for i in range(4):
        w.append(i * 60_000, {("households", "P"): {"h1": float(i)}})
    w.add_events("flex", recs)
    w.flush()
    with Results(path) as live:  # still being written: from the JSON Lines stream
        from_stream = live.events("flex")
    w.close()
    with h5py.File(path, "r") as f:
        table = f["event_tables/flex"][()]
    assert set(table.dtype.names) == {"kind", "t", "kwh", "agent", "gap", "members", "t0", "slot.a"}
    assert list(table["t"]) == [0, 70_000, 200_000] and table["kind"][2] == b"settlement"
    assert table["members"][1] == b"[1,2]" and pd.isna(table["kwh"][1])
    with Results(path) as res:
        df = res.events("flex")
    assert list(df["kind"]) == ["negotiation", "settlement"]  # t=0 is before the window; settlement is about t0
    assert list(from_stream["kind"]) == ["negotiation", "settlement"]
    assert df["gap"].iloc[0] == 0.25 and df["t0"].iloc[1] == 120_000


def test_rows_of_changing_device_sets_over_several_blocks(tmp_path):
    """Each file row holds exactly the step's values by device id, whatever the order, gaps, new devices,
    non-numbers and block boundaries (7 blocks of 3 rows, the last one partial)."""
    rng = np.random.default_rng(7)
    pool = [f"d{j}" for j in range(12)]
    steps = []
    for t in range(20):
        if t % 5 == 4:
            steps.append(None)  # the series is missing at this step
            continue
        chosen = list(rng.choice(pool[: 4 + t // 3], size=rng.integers(1, 4 + t // 3), replace=False))
        if t % 3 == 0:
            chosen.sort()
        row = {k: float(rng.normal()) for k in chosen}
        if t == 7:
            row[chosen[0]] = "not a number"
        steps.append(row)
    w = make(tmp_path / "r.h5")
    for t, row in enumerate(steps):
        w.append(t * 60_000, {} if row is None else {("pop", "P"): row})
    w.close()
    with h5py.File(tmp_path / "r.h5", "r") as f:
        ids = [i.decode() for i in f["pop/_ids/P"][()]]
        got = f["pop/P"][()]
    seen = []  # expected: columns in first-seen order, NaN where a step has no number for a device
    for row in steps:
        seen += [k for k in row or {} if k not in seen]
    assert ids == seen and got.shape == (20, len(seen))
    for t, row in enumerate(steps):
        for j, k in enumerate(seen):
            v = (row or {}).get(k)
            if isinstance(v, float):
                assert got[t, j] == v
            else:
                assert np.isnan(got[t, j])
