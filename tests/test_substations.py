"""Many substations (`substations:`): schema and expansion, parallel runs on dask, the results view and
its KPIs, the same run on a dask scheduler and worker started as on other hosts (loopback)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from cosim.api import Results, load
from cosim.errors import InputError
from cosim.kpi import compute_kpis
from cosim.results import read_attrs
from cosim.scenario import MAX_SEED, ScenarioError, parse_scenario
from cosim.substations import expand, run_substations, selection, substation_seed
from tests.conftest import free_port, run_cosim, wait_until


def scaled(tmp_path, **extra) -> dict:
    """Two small substations (kerber Landnetz, 8 homes each) with MAS, DSO and LTE, 1 h."""
    data = {
        "name": "two", "start": "2026-01-20T00:00:00+01:00", "duration": "1h", "step": "1min", "seed": 5,
        "control": {"mode": "mas", "horizon": "1h", "slot": "30min", "replan": "30min", "reference": False,
                    "lfa": {"max_rounds": 3}},
        "dso": {"trafo_limit_kw": 15, "lookahead_slots": 2},
        "telecom": {"default": "lte", "endpoints": {"dso": "fibre"}, "quantum_ms": 50},
        "evaluation": {"warmup": "30min", "cooldown": "30min"},
        "substations": [{"name": "land", "count": 2, "grid": {"network": "kerber_land_kabel_1"},
                         "districts": [{"name": "d1", "households": 8,
                                        "shares": {"pv": 0.5, "battery": 0.25, "ev": 0.25, "heat_pump": 0.25}}]}],
        "output": str(tmp_path / "two.h5"),
    }
    data.update(extra)
    return data


def uncontrolled(tmp_path, count: int = 2) -> dict:
    """``scaled`` without control, DSO, telecom or evaluation window, 30 min, *count* substations."""
    data = scaled(tmp_path, duration="30min")
    for key in ("control", "dso", "telecom", "evaluation"):
        data.pop(key)
    data["substations"][0]["count"] = count
    return data


def write(tmp_path, data, name="two.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_expansion_ids_seeds_and_order(tmp_path):
    data = scaled(tmp_path)
    subs = expand(data)
    assert [s.id for s in subs] == ["land_0", "land_1"]
    assert [s.data["name"] for s in subs] == ["two-land_0", "two-land_1"]
    assert all("substations" not in s.data and "output" not in s.data for s in subs)
    assert subs[0].seed != subs[1].seed and subs[0].seed == substation_seed(5, 0)
    # a group appended at the end leaves the others' seeds and scenarios alone
    more = copy.deepcopy(data)
    more["substations"].append(dict(data["substations"][0], name="more", count=3))
    again = expand(more)
    assert [s.data for s in again[:2]] == [s.data for s in subs] and len(again) == 5
    seeds = [substation_seed(5, i) for i in range(2000)]
    assert len(set(seeds)) == 2000 and all(0 <= x <= MAX_SEED for x in seeds)
    assert substation_seed(6, 0) != substation_seed(5, 0)
    # every expanded substation is a valid scenario of its own
    for s in again:
        assert parse_scenario(s.data).grid.network == "kerber_land_kabel_1"


@pytest.mark.parametrize("change, message", [
    ({"substations[0].districts[0].households": "ten"},
     r"substations\[0\]\.districts\[0\]\.households: expected a positive integer, got 'ten'"),
    ({"substations[0].grid.network": "nowhere"}, r"substations\[0\]\.grid\.network: unknown network 'nowhere'"),
    ({"districts": [{"name": "d1", "households": 2}]}, r"substations: districts cannot be combined with substations"),
    ({"substations[0].count": 0}, r"substations\[0\]\.count: expected a positive integer, got 0"),
    ({"control": None}, r"dso needs a control section"),
    ({"substations[0].grid.mapping": {"x.h001": 1}},
     r"substations\[0\] \(land\): grid\.mapping: 'x\.h001' is not a household"),
])
def test_bad_substations_are_one_line_each(tmp_path, change, message):
    from cosim.overrides import set_path

    data = scaled(tmp_path)
    for path, value in change.items():
        set_path(data, path, value)
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data, "s.yaml")
    assert len(exc.value.lines) == 1 and re.search(message, exc.value.lines[0]), exc.value.lines


def test_cli_validate_schema_and_bad_input(tmp_path):
    proc = run_cosim("validate", "scale_10k")
    assert proc.returncode == 0, proc.stderr
    assert "104 substations" in proc.stdout and "10000 households" in proc.stdout
    schema = run_cosim("schema")
    assert "SubstationGroup" in schema.stdout and '"substations"' in schema.stdout
    bad = scaled(tmp_path)
    bad["substations"][0]["districts"][0]["households"] = -3
    proc = run_cosim("validate", str(write(tmp_path, bad)))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "substations[0].districts[0]" in proc.stderr
    proc = run_cosim("run", str(write(tmp_path, scaled(tmp_path))), "--realtime")
    assert proc.returncode == 2 and "--realtime: not for a scenario with substations" in proc.stderr
    proc = run_cosim("run", str(write(tmp_path, scaled(tmp_path))), "--dashboard", "0")  # 0: a free port
    assert proc.returncode == 2 and "--dashboard: not for a scenario with substations" in proc.stderr


def test_bundled_scale_10k_has_10000_households_in_kerber_and_dickert_networks():
    scn, _ = load("scale_10k")
    nets = {g.grid.network for g in scn.substations}
    assert sum(g.count * sum(d.households for d in g.districts) for g in scn.substations) == 10_000
    assert any(n.startswith("kerber") for n in nets) and any(n.startswith("dickert") for n in nets)
    assert scn.dso is not None and scn.telecom is not None and scn.control.mode == "mas"


def _check_view(view, subs_folder):
    """The view's columns are the substations' own data, and its KPIs aggregate theirs."""
    with Results(view) as res:
        P = res.frame("households", "P")
        assert res.status == "completed" and P.shape[1] == 16
        assert P.columns[0] == "land_0/d1.h001" and P.columns[-1] == "land_1/d1.h008"
        k = res.kpis()
        lv, vm = res.monitored_buses(), res.series("grid", "vm_pu")
    own_lv = []
    own = {}
    for sid in ("land_0", "land_1"):
        with Results(subs_folder / f"{sid}.h5") as r:
            mine = r.frame("households", "P")
            np.testing.assert_array_equal(P[[f"{sid}/{c}" for c in mine.columns]].to_numpy(), mine.to_numpy())
            own[sid] = (compute_kpis(r), mine.sum(axis=1))
            own_lv += [f"{sid}/{b}" for b in r.monitored_buses()]
    assert lv == own_lv and len(vm.ids) == len(lv) + 2  # the view's LV buses: each substation's, its MV bus not
    total = sum(p for _, p in own.values())
    assert k["run"]["substations"] == 2 and k["run"]["households"] == 16
    for key in ("import_kwh", "consumption_kwh", "bill_eur"):
        assert k["total"][key] == pytest.approx(sum(o["total"][key] for o, _ in own.values()), abs=2e-3)
    assert k["total"]["peak_kw"] == pytest.approx(float(total.max()), abs=1e-3)  # coincident
    assert k["total"]["cost_eur_range"] == pytest.approx(  # the bounds of the sum (before: None, "differs")
        [sum(o["total"]["cost_eur_range"][i] for o, _ in own.values()) for i in (0, 1)], abs=1e-6)
    assert all(round(v, 6) == v for v in k["total"].values() if isinstance(v, float))  # no float-sum noise
    assert k["grid"]["congestion_min"] == sum(o["grid"]["congestion_min"] for o, _ in own.values())
    assert set(k["substations"]) == {"land_0", "land_1"} and "congestion_min" in k["substations"]["land_0"]
    return P


def test_view_of_substations_run_in_process(tmp_path):
    """The work unit and the view without dask: two uncontrolled substations, 30 min."""
    from cosim.substation_view import write_view
    from cosim.substations import run_substation

    data = uncontrolled(tmp_path)
    subs = expand(data)
    (tmp_path / "two_substations").mkdir()
    for s in subs:
        s.path = tmp_path / "two_substations" / f"{s.id}.h5"
        r = run_substation(s.data, str(s.path))
        s.status, s.error, s.wall_s, s.cpu_s, s.summary = r["status"], r["error"], r["wall_s"], r["cpu_s"], r["kpis"]
        assert s.status == "completed", s.error
    write_view(tmp_path / "two.h5", yaml.safe_dump(data), 5, subs, 1.0)
    _check_view(tmp_path / "two.h5", tmp_path / "two_substations")
    assert run_substation(subs[0].data, str(subs[0].path))["cached"]  # the finished file is reused
    # without its folder the view would read NaN (the virtual datasets' fill value): refused in one line
    (tmp_path / "two_substations").rename(tmp_path / "elsewhere")
    with pytest.raises(InputError, match=r"two.h5: substation view without its substation file "
                                         r"two_substations/land_0.h5 \(2 missing; keep the two_substations folder"):
        Results(tmp_path / "two.h5")


def test_view_of_substations_that_stop_at_different_times(tmp_path):
    """Each substation stops where its window's numbers are final: with DSO orders of up to 2 and 4
    slots, 2 h and 3 h into the 3-h cool-down. The view ends at the first stop, after the window."""
    from cosim.substation_view import write_view
    from cosim.substations import run_substation

    data = scaled(tmp_path, evaluation={"warmup": "30min", "cooldown": "3h"})
    data["substations"][0]["count"] = 1
    longer = copy.deepcopy(data["substations"][0])
    longer.update(name="longer", dso={"trafo_limit_kw": 15, "lookahead_slots": 4})
    data["substations"].append(longer)
    subs = expand(data)
    (tmp_path / "two_substations").mkdir()
    for s in subs:
        s.path = tmp_path / "two_substations" / f"{s.id}.h5"
        r = run_substation(s.data, str(s.path))
        s.status, s.error, s.summary = r["status"], r["error"], r["kpis"]
        assert s.status == "completed", s.error
    rows = []
    for s in subs:
        with h5py.File(s.path, "r") as f:
            rows.append(len(f["time"]))
    assert rows == [(30 + 60 + 120), (30 + 60 + 180)]  # 1-min rows: warm-up, window, the cool-down run
    write_view(tmp_path / "two.h5", yaml.safe_dump(data), 5, subs, 1.0)
    with Results(tmp_path / "two.h5") as res:
        assert len(res.t_ms) == 60 and res.window_ms == (30 * 60_000, 90 * 60_000)
        assert res.kpis()["run"]["substations"] == 2
    with Results(tmp_path / "two.h5", window=False) as res:
        assert len(res.t_ms) == rows[0]
        P = res.frame("households", "P", full=True)
        with Results(subs[1].path) as own:
            mine = own.frame("households", "P", full=True)
        np.testing.assert_array_equal(P[[f"longer_0/{c}" for c in mine.columns]].to_numpy(), mine.to_numpy()[:rows[0]])


def test_only_runs_the_chosen_substations_with_their_seeds_in_the_whole_scenario(tmp_path):
    """``run_substations(only=...)`` (bench_scale's sample): the chosen substation alone, with the id,
    seed and results it has in the whole scenario (run here in process as the reference)."""
    from cosim.substations import run_substation

    data = uncontrolled(tmp_path, count=3)
    scn, text = load(str(write(tmp_path, data)))
    result = run_substations(scn, text, out=tmp_path / "sample" / "two.h5", workers=1, progress=False,
                             only=lambda s: s.id == "land_1")
    [sub] = result.substations
    assert (sub.id, sub.index, sub.seed, sub.status) == ("land_1", 1, substation_seed(5, 1), "completed")
    whole = expand(data)[1]
    assert run_substation(whole.data, str(tmp_path / "whole_land_1.h5"))["status"] == "completed"
    with Results(tmp_path / "whole_land_1.h5") as a, Results(sub.path) as b:
        np.testing.assert_array_equal(a.frame("households", "P").to_numpy(), b.frame("households", "P").to_numpy())
    with Results(result.path) as view:
        assert list(view.frame("households", "P").columns) == [f"land_1/d1.h00{k}" for k in range(1, 9)]


def test_cli_runs_a_selection_beside_the_whole_view_and_the_whole_run_reuses_it(tmp_path):
    """``cosim run SCENARIO --substations IDS``: the named substations (ids or groups) with their seeds in the
    whole scenario, their files in the whole run's folder, the view beside the whole run's (which it never
    replaces); unknown names and a scenario without substations are one line each, exit 2."""
    from cosim.substations import run_substation

    data = uncontrolled(tmp_path, count=3)
    data["substations"].append({"name": "kabel", "count": 1, "grid": {"network": "kerber_land_kabel_1"},
                                "districts": [{"name": "d1", "households": 2}]})
    path = write(tmp_path, data)
    (tmp_path / "two.h5").write_bytes(b"the whole run's view")
    proc = run_cosim("run", str(path), "--substations", "land_1,kabel", "--workers", "1", "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "two.h5").read_bytes() == b"the whole run's view"
    assert sorted(p.name for p in (tmp_path / "two_substations").iterdir()) == ["kabel_0.h5", "land_1.h5"]
    with Results(tmp_path / "two_selection.h5") as view:
        cols = list(view.frame("households", "P").columns)
    assert cols == [f"land_1/d1.h00{k}" for k in range(1, 9)] + ["kabel_0/d1.h001", "kabel_0/d1.h002"], cols
    whole = expand(data)
    assert run_substation(whole[1].data, str(tmp_path / "two_substations" / "land_1.h5"))["cached"]
    seeds = [int(read_attrs(tmp_path / "two_substations" / f"{i}.h5")["seed"]) for i in ("land_1", "kabel_0")]
    assert seeds == [substation_seed(5, 1), substation_seed(5, 3)]
    groups = "groups: land (land_0..land_2), kabel (kabel_0)"
    other = tmp_path / "two_substations" / "land_1.h5"
    for args, message in [
        (("--substations", "land_7,land"), f"--substations: no substation or group 'land_7' in two; {groups}"),
        (("--substations", " ,"), f"--substations: no names given in two; {groups}"),
        # a finished file of another scenario (here another --until) is the whole run's: not replaced
        (("--substations", "land_1", "--until", "20min"), f"--substations: {other} is a finished run of land_1 for "
         "another scenario (another --until, --seed, --control, --aggregate or an edited file), which the whole "
         "run's view reads; give --out to run the selection into a folder of its own"),
        (("--substations", "land_1", "--out", str(tmp_path / "two.h5")), f"--out: {tmp_path / 'two.h5'} is the "
         f"whole run's view; a selection writes a view of its own (default {tmp_path / 'two_selection.h5'})"),
        (("--split", "10min"), "--split: not for a scenario with substations (each substation is one run of its own)"),
    ]:
        bad = run_cosim("run", str(path), *args, "--quiet")
        assert (bad.returncode, bad.stderr) == (2, f"error: {message}\n"), bad.stderr
    assert (tmp_path / "two.h5").read_bytes() == b"the whole run's view"
    clash = copy.deepcopy(data)
    clash["substations"][1]["name"] = "land_1"  # a group named like the id of land's second substation
    with pytest.raises(InputError, match=r"^--substations: 'land_1' is both a group and a substation id in two"):
        selection(clash, "land_0,land_1")
    assert [s.id for s in expand(clash) if selection(clash, "land_1_0")(s)] == ["land_1_0"]
    single = run_cosim("run", "uc1_home", "--substations", "land_1", "--quiet")
    assert (single.returncode, single.stderr) == (2, "error: --substations: uc1_home has no substations\n")


@pytest.mark.slow  # three local dask clusters and runs: 40-90 s on the shared 2-core machine
def test_run_on_two_workers_view_kpis_and_worker_count_independence(tmp_path):
    data = scaled(tmp_path)
    path = write(tmp_path, data)
    proc = run_cosim("run", str(path), "--workers", "2", "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    P2 = _check_view(tmp_path / "two.h5", tmp_path / "two_substations")
    text = run_cosim("kpis", str(tmp_path / "two.h5"))
    assert text.returncode == 0 and "2 substations (0 failed), 16 households" in text.stdout
    # one worker, another folder: the same numbers; a re-run reuses the finished files
    scn, yaml_text = load(str(path))
    one = run_substations(scn, yaml_text, out=tmp_path / "one" / "two.h5", workers=1, progress=False)
    with Results(one.path) as res:
        np.testing.assert_array_equal(res.frame("households", "P").to_numpy(), P2.to_numpy())
    again = run_substations(scn, yaml_text, out=tmp_path / "one" / "two.h5", workers=1, progress=False)
    assert all(s.cached for s in again.substations) and not again.failed


@pytest.mark.slow  # a scheduler, a worker and a run: 40 s on the shared 2-core machine
def test_multihost_recipe_on_loopback(tmp_path):
    """The README recipe with HOST = 127.0.0.1 and free ports: a scheduler and a worker as separate
    processes, `cosim run --scheduler`, results checked, both stopped."""
    port = free_port()
    from tests.test_readme_shell import MULTIHOST, recipe

    lines = [ln.split("#", 1)[0].strip().replace("HOST", "127.0.0.1").replace("8786", str(port))
             for ln in recipe(MULTIHOST).splitlines() if ln.split("#", 1)[0].strip()]
    scheduler, worker, run = lines
    assert scheduler.startswith("dask scheduler") and worker.startswith("dask worker")
    assert run.startswith("cosim run scale_10k --scheduler")
    procs = []
    try:
        for line in (scheduler, worker):  # `dask ...` as `python -m dask ...` of this interpreter
            with open(tmp_path / f"{line.split()[1]}.log", "w") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", *line.split(), "--no-dashboard"],
                                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as client:
            wait_until(lambda: len(client.scheduler_info()["workers"]) >= 1, timeout=60, period=0.2)
        args = run.split()[2:]
        args[0] = str(write(tmp_path, scaled(tmp_path)))
        proc = run_cosim("run", *args, "--quiet", timeout=300)
        assert proc.returncode == 0, proc.stderr
        _check_view(tmp_path / "two.h5", tmp_path / "two_substations")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
