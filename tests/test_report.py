"""HTML report (self-contained, parseable, plots only when data exists) and `cosim compare`."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest

from cosim.compare import compare, compare_text
from cosim.report import build_report
from tests.conftest import run_cosim
from tests.test_kpi import write_synthetic


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.tags, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a)
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    p.close()
    return p


@pytest.fixture
def pair(tmp_path):
    return write_synthetic(tmp_path / "run.h5"), write_synthetic(tmp_path / "base.h5", baseline=True, mas=False)


def test_report_with_baseline_is_self_contained(pair, tmp_path):
    run, base = pair
    out = tmp_path / "report.html"
    proc = run_cosim("report", run, "--baseline", base, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    p = _parse(text)
    assert p.links == [] and "http://" not in text and "https://" not in text and "<script" not in text
    alts = [i["alt"] for i in p.imgs]
    assert alts == ["District load", "Household load", "Transformer loading", "Voltage band",
                    "Battery state of charge", "Indoor temperature", "Flexibility", "Message latency",
                    "Real-time lateness"]  # the synthetic run has a real-time lateness record
    for img in p.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    body = " ".join(p.text)
    for heading in ("Key performance indicators", "Business-model value flows", "Per actor", "Transfers"):
        assert heading in body
    assert "Balance over all actors: 0.00 €" in body
    assert "energy bill" in body and "trafo loading p95" in body


def test_report_without_baseline_and_missing_data(tmp_path):
    run = write_synthetic(tmp_path / "nomas.h5", mas=False)
    p = _parse(build_report(run))
    alts = [i["alt"] for i in p.imgs]
    assert "Flexibility" not in alts and "Message latency" not in alts and "District load" in alts
    body = " ".join(p.text)
    assert "No baseline given" in body and "Not available in this run" in body


def test_report_bad_input(tmp_path):
    proc = run_cosim("report", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_compare(pair):
    run, base = pair
    res = compare([run, base])
    assert res["runs"] == ["run", "base"]
    assert res["kpis"]["total.bill_eur"] == [pytest.approx(24.26), pytest.approx(25.86)]
    assert res["kpis"]["mas.gap_mean_pct"] == [2.0, None]
    txt = compare_text(res)
    assert "sum of energy bills" in txt and "n/a" in txt
    proc = run_cosim("compare", run, base, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"] == ["run", "base"]
    proc = run_cosim("compare", run, base)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].split()[-2:] == ["run", "base"]


def test_compare_warns_when_runs_value_cost_differently(tmp_path):
    """Same scenario name, seed and window but another tariff: the costs do not compare, and compare
    (and cosim value, which shares the check) says so; equal valuation gives no such warning."""
    import yaml

    from cosim.results import stamp_attrs
    from tests.test_kpi import SCENARIO

    a = write_synthetic(tmp_path / "a.h5")
    b = write_synthetic(tmp_path / "b.h5")
    assert not [w for w in compare([a, b])["warnings"] if "value their cost" in w]
    other = dict(SCENARIO, economics={"tariff": {"import_price": 0.40}})
    stamp_attrs(b, {"scenario": yaml.safe_dump(other, sort_keys=False)})
    (warning,) = [w for w in compare([a, b])["warnings"] if "value their cost" in w]
    assert "objective_id" in warning


def test_terminal_price_default_and_ranking_sensitivity(pair):
    """The stored energy is valued at the tariff's lowest import price of the day (0.22 €/kWh, the
    night band of the default tariff) with the range to the highest (0.42); compare warns when the
    ranking of the runs' cost changes within that range."""
    from cosim.compare import realised_gaps
    from cosim.kpi import compute_kpis

    t = compute_kpis(pair[0])["total"]
    assert t["terminal_price_eur_per_kwh"] == 0.22 and t["terminal_price_range"] == [0.22, 0.42]
    drawn = t["stored_start_kwh"] - t["stored_end_kwh"]
    assert t["cost_eur_range"] == [pytest.approx(t["objective_eur"] + p * drawn, abs=1e-4) for p in (0.22, 0.42)]
    runs = [{"run": {}, "total": {"cost_eur_range": r}} for r in ([10.0, 14.0], [11.0, 12.0])]
    assert any("ranking" in w for w in realised_gaps(runs, ["a", "b"])[1])
    runs[1]["total"]["cost_eur_range"] = [11.0, 15.0]
    assert not any("ranking" in w for w in realised_gaps(runs, ["a", "b"])[1])


def test_out_has_the_short_form_o(pair, tmp_path):
    """``-o`` is ``--out`` for the commands that write a file or a folder: report, run, sweep."""
    from cosim.cli import build_parser, main

    run, _ = pair
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    assert "<html" in (tmp_path / "r.html").read_text(encoding="utf-8")
    p = build_parser()
    assert p.parse_args(["run", "uc1_home", "-o", "x.h5"]).out == "x.h5"
    assert p.parse_args(["sweep", "s.yaml", "-o", "d"]).out == "d"


def test_provenance_table_has_no_empty_header_row():
    """Header rows only where there are headers: the run's key-value table starts with its first key."""
    from cosim.report import _table

    assert _table(["", ""], [["seed", "42"]], left=(0, 1)).startswith('<table><tbody><tr><td class="l">seed</td>')
    assert "<thead><tr><th" in _table(["KPI", "value"], [["cost", 1.0]])


def test_changes_are_coloured_by_which_way_is_better():
    """Green where the change is an improvement: lower cost, higher self-sufficiency; no colour for a KPI
    that is better neither way (PV produced)."""
    from cosim.report import _kpi_section

    run = {"total": {"cost_eur": 10.0, "self_sufficiency": 0.5, "pv_kwh": 12.0}}
    base = {"total": {"cost_eur": 12.0, "self_sufficiency": 0.3, "pv_kwh": 10.0}}
    html = _kpi_section(run, base)
    rows = {r.split("</td>", 1)[0].rsplit(">", 1)[1]: r for r in html.split("<tr>")[1:]}
    assert 'class="pos">-2' in rows["cost (objective + terminal adjustment)"]
    assert 'class="pos">0.2' in rows["self-sufficiency"]
    assert 'class="pos"' not in rows["PV produced"] and 'class="neg"' not in rows["PV produced"]
    worse = _kpi_section(base, run)
    assert 'class="neg"' in worse.split("self-sufficiency", 1)[1].split("</tr>", 1)[0]


def test_money_is_shown_in_cents():
    """80.56 against 80.65 €: three significant digits showed 80.6 and 80.7, the wrong way round at the cent."""
    from cosim.kpi_text import text_table

    out = text_table(["KPI", "unit", "a", "b"], [["cost", "€", 80.56, 80.65], ["import", "kWh", 709.64, 769.41]],
                     left=(0, 1))
    assert "80.56" in out and "80.65" in out and "709.6" in out and "709.64" not in out
    assert "1,342.70" in text_table(["household", "bill €"], [["h1", 1342.7]])


def test_an_amount_that_rounds_to_zero_cents_has_no_minus_sign():
    """lab_hil, 90 s: district d1's cost of -0.004 € was shown as "-0.00" (report and `cosim kpis`)."""
    from cosim.kpi_text import fmt

    assert [fmt(v, money=True) for v in (-0.004, 0.004, -0.005001, -0.0)] == ["0.00", "0.00", "-0.01", "0.00"]


def test_compare_warns_when_the_comfort_penalty_decides_the_cost_difference():
    """uc2_district, one day: 25.0 of the 95.6 EUR between the MAS and no control was the comfort penalty
    of the uncontrolled thermostats' 1.25 K·h above the band (20 EUR per K·h, a weight, not money)."""
    from cosim.compare import realised_gaps

    def runs(comfort_none):
        return [{"run": {"control_mode": m}, "total": {"cost_eur": c, "objective_comfort_eur": f}}
                for m, c, f in (("mas", 80.56, 0.06), ("none", 176.15, comfort_none))]

    (warning,) = [w for w in realised_gaps(runs(25.04), ["mas", "none"])[1] if "comfort" in w]
    assert "differs by 24.98 EUR, 26% of the runs' cost difference" in warning
    assert not any("comfort" in w for w in realised_gaps(runs(2.0), ["mas", "none"])[1])


def test_report_refuses_a_baseline_of_other_households(tmp_path):
    """As cosim value does: its KPI changes would compare different homes (before: exit 0, the refusal
    hidden in the HTML's value-flow section)."""
    import shutil

    import h5py

    run = write_synthetic(tmp_path / "run.h5")
    other = tmp_path / "other.h5"
    shutil.copy(run, other)
    with h5py.File(other, "r+") as f:  # the same file with its households renamed
        ids = f["households/_ids/P"][()]
        f["households/_ids/P"][...] = [b"x" + i[1:] for i in ids]
    proc = run_cosim("report", run, "--baseline", str(other), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "baseline households differ" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_time_axis_that_is_not_one_integer_per_row_is_one_line(tmp_path):
    """An HDF5 file whose /time holds text or a table (another tool's file): `cosim kpis` and `cosim report`
    printed a traceback (ValueError: invalid literal for int(), or numpy's dimension mismatch)."""
    import h5py
    import numpy as np

    from tests.conftest import run_cosim

    for name, data in (("text", np.array([b"a", b"b"])), ("table", np.zeros((2, 2)))):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f["time"] = data
            f.attrs["start"] = "2026-06-15T00:00:00+02:00"
        for args in (("kpis", str(path)), ("report", str(path), "-o", str(tmp_path / "r.html")),
                     ("watch", str(path), "--port", "0")):
            proc = run_cosim(*args, timeout=60)
            assert proc.returncode == 2 and proc.stdout == "", (args, proc.stdout)
            assert proc.stderr.startswith(f"error: {path}: not a cosim results file (/time is "), (args, proc.stderr)
            assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_a_damaged_number_attribute_is_one_line_naming_it(tmp_path):
    """A results file whose eval_start_ms, step_ms or aggregate_ms attribute is not a whole number (a
    damaged or hand-edited file): `cosim kpis` and `cosim report` printed a traceback (ValueError: invalid
    literal for int())."""
    import h5py

    from tests.conftest import run_cosim

    good = write_synthetic(tmp_path / "good.h5")
    for name in ("eval_start_ms", "step_ms", "aggregate_ms"):
        path = tmp_path / f"{name}.h5"
        path.write_bytes(open(good, "rb").read())
        with h5py.File(path, "r+") as f:
            f.attrs[name] = "x"
        for args in (("kpis", str(path)), ("report", str(path), "-o", str(tmp_path / "r.html"))):
            proc = run_cosim(*args, timeout=60)
            assert proc.returncode == 2 and proc.stderr == (
                f"error: {path}: damaged results file (attribute {name} is 'x', not a whole number of ms)\n"), \
                (args, proc.stderr)


def test_a_fractional_number_attribute_is_refused_not_cut(tmp_path):
    """60000.5 is not a whole number of ms: int() cut it to 60000 without a word."""
    import h5py

    from cosim.errors import InputError
    from cosim.results import Results

    path = write_synthetic(tmp_path / "frac.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["step_ms"] = 60000.5
    with pytest.raises(InputError, match="attribute step_ms is 60000.5, not a whole number of ms"):
        Results(path)
    with h5py.File(path, "r+") as f:
        f.attrs["step_ms"] = 60000.0  # a whole number stored as a float is fine
    assert Results(path).step_ms == 60000


def test_compare_warns_when_runs_are_recorded_at_different_intervals(tmp_path):
    """uc2_district, 3 h, the same run recorded per minute and as 15-min means (--aggregate 15min):
    compare showed peaks of 152.3 and 149.9 kW side by side without a word, as if the difference were
    the runs'; it is the recording's (a 15-min mean has no 1-min peak)."""
    from cosim.results import stamp_attrs

    a, b = write_synthetic(tmp_path / "a.h5"), write_synthetic(tmp_path / "b.h5")
    assert not [w for w in compare([a, b])["warnings"] if "recorded" in w]
    stamp_attrs(b, {"aggregate_ms": 7_200_000})
    (warning,) = [w for w in compare([a, b])["warnings"] if "recorded" in w]
    assert "a 3600 s, b 7200 s" in warning and "peak" in warning
