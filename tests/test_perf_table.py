"""benchmarks/perf_table.py: figures from printouts, ranges, the README block, failures."""
import sys

import pytest

sys.path.insert(0, "benchmarks")
import perf_table as pt  # noqa: E402


def fake_bench(tmp_path, body: str, rows) -> pt.Bench:
    script = tmp_path / "bench_fake.py"
    script.write_text(body)
    return pt.Bench("fake", [str(script)], rows)


def test_figures_printed_twice_become_a_range_and_replace_only_the_marked_block(tmp_path):
    bench = fake_bench(tmp_path, "print('uc 0 12.5 s'); print('uc 1 11.25 s'); print('err 3.2e-06')\n", [
        pt.Row("a scenario", "{wall} s, error {dv} p.u.", {"wall": rf"^uc \d+ {pt.NUM} s", "dv": r"^err (\S+)"})])
    out = pt.run(bench, tmp_path)
    assert out.startswith("# ") and (tmp_path / "fake.txt").read_text() == out  # kept, stamped
    text = pt.table([(bench, out)], "Measured today.")
    assert "| a scenario | `" in text and "| 11.2–12.5 s, error 3.2e-06 p.u. |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\nbefore\n{pt.BEGIN}\nold table\n{pt.END}\nafter\n")
    pt.write_readme(text, readme)
    new = readme.read_text()
    assert new.startswith("# title\nbefore\n") and new.endswith(f"{pt.END}\nafter\n")
    assert "old table" not in new and "11.2–12.5 s" in new


def test_a_missing_figure_or_a_failing_benchmark_stops_with_its_output(tmp_path):
    bench = fake_bench(tmp_path, "print('nothing useful')\n", [pt.Row("r", "{x}", {"x": rf"^x {pt.NUM}"})])
    with pytest.raises(SystemExit, match="(?s)printed no figure 'x'.*nothing useful"):
        pt.table([(bench, pt.run(bench, tmp_path))], "h")
    failing = fake_bench(tmp_path, "import sys; print('partial'); sys.exit(3)\n", [])
    with pytest.raises(SystemExit, match="(?s)failed \\(exit 3\\).*partial"):
        pt.run(failing, tmp_path)


def test_the_readme_has_the_markers_and_every_benchmark_script_exists():
    text = pt.README.read_text()
    assert text.count(pt.BEGIN) == 1 and text.count(pt.END) == 1
    for bench in pt.BENCHES:
        assert (pt.HERE / bench.args[0]).is_file(), bench.args[0]
