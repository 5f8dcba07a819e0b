"""ResultsWriter: layout, NaN for missing devices, widening, events, idempotent close."""

import json
import subprocess
import sys
import zlib

import h5py
import numpy as np
import pytest

from cosim import results
from cosim.results import ResultsWriter
from tests.conftest import ROOT


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


@pytest.mark.parametrize("window", [False, True])
def test_events_of_a_live_and_a_closed_file_are_the_same_frame(tmp_path, window):
    """Results.events gives the same columns, dtypes, values and value types from the JSON Lines stream
    of a live file and from the event table of the closed one: lists and mappings, booleans, nulls,
    empty strings, mixed types, fields missing in some records, non-ASCII text."""
    import warnings

    import pandas as pd

    from cosim.results import Results

    recs = [{"kind": "settlement", "t": 0, "partial": False, "delivered_slots": [1.5, None], "agent": "dso"},
            {"kind": "order", "t": 60_000, "t0": 120_000, "kwh": 2, "slot": {"a": 1, "b": {}}, "note": ""},
            {"kind": "négociation", "t": 120_000, "partial": True, "delivered_slots": [], "note": "n", "gap": None,
             "code": 5, "ok": True, "members": {"h1": [1, 2]}},
            {"kind": "message", "sent": 180_000, "lost": True, "agent": None, "code": "x", "ok": None}]
    path = tmp_path / "ev.h5"
    window_attrs = {"eval_start_ms": 60_000, "eval_end_ms": 180_000} if window else {}
    w = ResultsWriter(str(path), window_attrs, [("pop", "P", "kW")], ["flex"], "2026-06-15T00:00:00+02:00", 60_000, 2)
    w.append(0, {("pop", "P"): {"h1": 1.0}})
    w.add_events("flex", recs)
    w.flush()
    with Results(path) as live:
        before = live.events("flex")
    w.close()
    with Results(path) as closed:
        after = closed.events("flex")
    assert len(before) == (2 if window else 4)
    assert after["partial"].dropna().map(type).eq(bool).all()  # not 1.0/0.0
    assert after["delivered_slots"].dropna().iloc[-1] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas warns where it takes None and NaN for equal
        pd.testing.assert_frame_equal(before, after)
    for c in before.columns:
        assert [type(v) for v in before[c]] == [type(v) for v in after[c]], c


def test_populations_are_the_series_groups_and_a_closed_results_refuses_every_read(tmp_path):
    """populations() (and so frame()'s list of what the file has, and kpis()) names the groups of device
    series, not /events or /event_tables; after close() every read raises InputError in one line, also
    kpis() and a series read (and cached) before."""
    import re

    from cosim.api import Results
    from cosim.errors import InputError

    path = tmp_path / "r.h5"
    w = make(path)
    w.append(0, {("pop", "P"): {"a": 1.0}})
    w.add_events("messages", [{"id": "m1", "t": 0}])
    w.close()
    with Results(path) as res:
        assert res.populations() == ["pop"]
        with pytest.raises(InputError, match=r"no series event_tables/messages \(the file has: pop/P, pop/soc\)$"):
            res.frame("event_tables", "messages")
        assert res.frame("pop", "P").shape == (1, 1)
    for read in (lambda: res.frame("pop", "P"), lambda: res.events("messages"), res.kpis, res.populations):
        with pytest.raises(InputError, match=f"^{re.escape(str(path))}: closed [^\n]*$"):
            read()
    res.close()  # again: nothing happens


def test_device_ids_are_utf8_and_an_id_too_long_for_its_cell_is_refused(tmp_path):
    """A non-ASCII device id is stored as UTF-8 and read back, also from the live file; an id longer than
    the 64-byte cell is refused in one line naming it (two 71-character ids used to be cut to one and the
    same 64-character column) and the rows before it stay readable."""
    from cosim.errors import InputError
    from cosim.results import Results

    path = tmp_path / "r.h5"
    w = make(path, flush_every=1)
    w.append(0, {("pop", "P"): {"Zähler-Süd.1": 1.0, "a": 2.0}})
    with Results(path) as live:
        assert list(live.frame("pop", "P").columns) == ["Zähler-Süd.1", "a"]
    long = ["d" * 70 + "1", "d" * 70 + "2"]
    with pytest.raises(InputError, match=f"^device id '{long[0]}' of pop/P is 71 bytes in UTF-8: [^\n]*$"):
        w.append(60_000, {("pop", "P"): {"a": 3.0, long[0]: 4.0, long[1]: 5.0}})
    w.close("failed")
    with Results(path) as res:
        df = res.frame("pop", "P")
    assert list(df.columns) == ["Zähler-Süd.1", "a"] and df.values.tolist() == [[1.0, 2.0]]


def test_a_district_name_too_long_for_its_households_ids_is_refused_before_the_run(tmp_path):
    """A 58-character district name gives household ids longer than the file's 64-byte id cells: the scenario
    is refused before anything runs (the writer would stop the run at its first step, the test above)."""
    import cosim
    from cosim.errors import InputError

    name = "D" + "x" * 57
    with pytest.raises(InputError, match=r"districts\[0\].name: String should have at most 57 characters"):
        cosim.run("uc1_home", until="10min", out=tmp_path / "r.h5", **{"districts[0].name": name})
    assert not (tmp_path / "r.h5").exists()
    scn = cosim.load_scenario("uc1_home", **{"districts[0].name": name[:57]})  # 57 characters fit
    assert len(f"{scn.districts[0].name}.h10000".encode()) <= results.ID_BYTES


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


def _table_in_one_piece(f, name):
    """write_event_table with the whole stream parsed at once (as before 2026-12-06): the reference."""
    import itertools

    from cosim.results import _JSON, _records, flatten

    recs = _records(bytes(np.asarray(f["events"][name][()], dtype=np.uint8).tobytes()))
    flats = [flatten(rec) for rec in recs]
    keys = dict.fromkeys(itertools.chain.from_iterable(flats))
    cols = {}
    for key in keys:
        values = [rec[key] for rec in flats if key in rec]
        kinds, missing = {type(v) for v in values}, len(values) < len(flats)
        if kinds <= {int} and not missing:
            cols[key] = np.asarray(values, dtype=np.int64)
        elif kinds <= {int, float, type(None)} and kinds & {int, float} or kinds == {bool}:
            cols[key] = np.asarray([np.nan if rec.get(key) is None else float(rec[key]) for rec in flats])
        else:
            plain = kinds == {str} and all(values)
            text = [(rec[key] if plain else _JSON.encode(rec[key])).encode() if key in rec else b"" for rec in flats]
            cols[key] = np.asarray(text, dtype=f"S{max(1, max(map(len, text)))}")
    table = np.empty(len(recs), dtype=[(c, a.dtype) for c, a in cols.items()])
    for c, a in cols.items():
        table[c] = a
    return table


def test_event_table_built_in_batches_equals_the_table_in_one_piece(tmp_path):
    """Fields, types, text widths and values of the batched table equal those of the stream parsed at
    once: ints, floats with missing values, bools, nested mappings, lists, a field with numbers and
    text whose widest cell is a number in an early batch, text with nulls and empty strings in some
    records only, a field that appears late, a damaged line."""
    from cosim.results import write_event_table

    rng = np.random.default_rng(3)
    recs = []
    for i in range(3000):
        rec = {"t": i * 1000, "kind": str(rng.choice(["order", "msg", "negotiation"]))}
        if rng.random() < 0.7:
            rec["kwh"] = float(rng.normal())
        if rng.random() < 0.3:
            rec["ok"] = bool(rng.random() < 0.5)
        if rng.random() < 0.2:
            rec["slot"] = {"a": int(rng.integers(10)), "b": {"c": float(rng.random())}}
        if rng.random() < 0.1:
            rec["members"] = [int(x) for x in rng.integers(0, 100, size=int(rng.integers(0, 5)))]
        rec["code"] = 123456789012 if i == 5 else ("x" if i % 7 else i)  # widest cell: a number, early
        if rng.random() < 0.5:
            rec["note"] = None if i % 5 == 0 else "n" * int(rng.integers(0, 9))
        if i > 2500:
            rec["late"] = "z" * int(rng.integers(1, 30))
        recs.append(rec)
    raw = "".join(json.dumps(r) + "\n" for r in recs).encode()
    raw = raw.replace(b'{"t": 1500000', b'{"t": 15', 1) + b'{"t": 9, "kind"\n'  # a line cut by a crash
    for batch in (512, 4096, len(raw) + 1):
        path = tmp_path / f"t{batch}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("events/s", data=np.frombuffer(raw, dtype="u1"))
            write_event_table(f, "s", batch_bytes=batch)
            got, want = f["event_tables/s"][()], _table_in_one_piece(f, "s")
        assert got.dtype == want.dtype and len(got) == len(want) == 3000
        for name in want.dtype.names:
            if want.dtype[name].kind == "f":
                np.testing.assert_array_equal(got[name], want[name])
            else:
                assert (got[name] == want[name]).all(), name
    assert want.dtype["code"] == np.dtype("S12") and want.dtype["late"].kind == "S"
    assert b"null" in want["note"] and want["late"][-1].startswith(b"z")  # JSON, and text as it is


def test_series_chunks_are_gzip_streams_any_hdf5_reader_decodes(tmp_path):
    """The writer compresses whole chunks itself (ISA-L) and stores them as they are: HDF5's own deflate
    filter (h5py's reading) and Python's zlib on the raw chunk give the appended values, across column
    chunks (the last one partial), a widening between blocks and a partial last block."""
    w = ResultsWriter(str(tmp_path / "r.h5"), {}, [("pop", "P", "kW")], [], "2026-01-01T00:00:00+01:00",
                      60_000, flush_every=4)
    expected = np.full((10, 150), np.nan)
    for t in range(10):
        n = 100 if t < 5 else 150
        row = {f"d{j:03d}": t * 1000.0 + j * 0.25 for j in range(n)}
        expected[t, :n] = list(row.values())
        w.append(t * 60_000, {("pop", "P"): row})
    w.close()
    with h5py.File(tmp_path / "r.h5", "r") as f:
        ds = f["pop/P"]
        assert ds.compression == "gzip" and ds.chunks == (4, 64)
        np.testing.assert_array_equal(ds[()], expected)
        mask, raw = ds.id.read_direct_chunk((4, 128))  # rows 4..7, columns 128..191
        chunk = np.frombuffer(zlib.decompress(raw), dtype="<f8").reshape(4, 64)
        assert mask == 0
        np.testing.assert_array_equal(chunk[:, :22], expected[4:8, 128:150])
        assert np.isnan(chunk[:, 22:]).all()


def _held_by_another_process(path, opener: str) -> subprocess.Popen:
    """A reader in another process (a notebook, HDFView) holding *path* open until its stdin closes."""
    code = (f"import sys, h5py\nfrom cosim.h5open import open_results\nf = {opener}\n"
            "print('open', flush=True)\nsys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, cwd=ROOT)
    assert p.stdout.readline().strip() == "open"
    return p


def _live(path):
    w = make(path, flush_every=2)
    for t in range(4):
        w.append(t * 60_000, {("pop", "P"): {"a": float(t)}})
    w.add_events("messages", [{"id": "m1"}])
    w.flush()
    return w


def test_a_cosim_reader_holding_the_live_file_does_not_stop_the_final_stamp(tmp_path):
    """README: another process can read a results file while the run goes on; a notebook that keeps
    ``cosim.Results`` open must not make the run fail at its end (it did: HDF5's file lock)."""
    w = _live(tmp_path / "r.h5")
    reader = _held_by_another_process(tmp_path / "r.h5", "open_results(sys.argv[1])")
    try:
        w.close("completed")
    finally:
        reader.stdin.close()
        reader.wait(10)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["status"] == "completed" and "event_tables/messages" in f


def test_a_locking_reader_holding_the_file_fails_the_stamp_with_one_message(tmp_path, monkeypatch):
    """A reader that takes HDF5's file lock (plain h5py, HDFView) is waited for, then named; the rows stay."""
    monkeypatch.setattr(results, "HELD_WAIT_S", 0.5)
    w = _live(tmp_path / "r.h5")
    reader = _held_by_another_process(tmp_path / "r.h5", "h5py.File(sys.argv[1], 'r', libver='latest', swmr=True)")
    try:
        with pytest.raises(results.ResultsFileHeld, match=r"r.h5: another process holds it open \(HDF5 file lock\), "
                                                          r"so its final status \(completed\) and event tables"):
            w.close("completed")
    finally:
        reader.stdin.close()
        reader.wait(10)
    with results.Results(tmp_path / "r.h5") as res:
        np.testing.assert_array_equal(res.frame("pop", "P", full=True).values[:, 0], np.arange(4.0))
