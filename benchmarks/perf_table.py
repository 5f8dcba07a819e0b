"""Regenerate the README's performance table from the benchmark scripts' printouts.

Each row names a benchmark command and the figures to take from what it prints (regular expressions;
a figure printed several times, e.g. by ``--repeat 2``, becomes a range). The table goes between the
``<!-- perf-table:begin -->`` and ``<!-- perf-table:end -->`` markers of README.md, headed by the date,
the machine (CPU model, cores, memory, load average at the start) and the command that made it.
A benchmark that fails or prints no figure stops the script with its output, and README.md is left
as it was. Every printout is kept in ``benchmarks/results/NAME.txt`` (first line: date and machine;
committed with the README), so ``--only NAME`` re-runs some benchmarks and takes the others' figures
from their kept printouts.

Usage: python benchmarks/perf_table.py [--only NAME ...] [--dry-run]
       (the full set takes 25-45 min on the 2-core development machine; needs ``pip install -e ".[bench]"``
       for the ecosystem anchor)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
KEPT = HERE / "results"
BEGIN, END = "<!-- perf-table:begin -->", "<!-- perf-table:end -->"
NUM = r"([0-9]+(?:\.[0-9]+)?)"


@dataclass(frozen=True)
class Row:
    """One table row: ``cell`` is a format string over the named figures (``{name}``: all values
    the pattern ``figures[name]`` matched in the printout, as one value or a min–max range)."""
    what: str
    cell: str
    figures: dict[str, str | tuple[str, int]]  # pattern, or (pattern, group number)


@dataclass(frozen=True)
class Bench:
    name: str
    args: list[str]
    rows: list[Row]


def _scenario_rows(name: str, what: str) -> Row:
    line = rf"^{name}\s+\d+\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}(?:\s+{NUM})?"
    return Row(what, "{s_sim_day} s per simulated day ({speedup}× the anchor); {s_eval_day} s per evaluated day",
               {"s_sim_day": (line, 3), "s_eval_day": (line, 4), "speedup": (line, 8)})


BENCHES = [
    Bench("spine", ["bench_spine.py"], [
        Row("1 / 100 / 1000 households, PV, meters, recording, 1 day at 1 min", "{w1} s / {w100} s / {w1000} s",
            {"w1": rf"^\s+1\s+\d+\s+{NUM}", "w100": rf"^\s+100\s+\d+\s+{NUM}", "w1000": rf"^\s+1000\s+\d+\s+{NUM}"}),
    ]),
    Bench("scenarios", ["bench_scenarios.py", "--anchor", "--until", "1d", "--repeat", "2"], [
        Row("ecosystem anchor: mosaik-householdsim → mosaik-pandapower-2 (kerber Vorstadtnetz) → CSV writer, "
            "146 households, 1 day", "{wall} s", {"wall": rf"^ecosystem anchor\s+\d+\s+\d+\s+{NUM}"}),
        _scenario_rows("uc3_physical", "uc3_physical: 146 households, meters, three-phase grid, recording, 1 day"),
        _scenario_rows("uc3_substation", "uc3_substation: the same + 3 LFAs, DSO, MAS, LTE telecom, meter "
                       "readings on PLC; 1 evaluated day = 2.375 simulated (24-h warm-up, 9 h of the cool-down)"),
        _scenario_rows("uc1_home", "uc1_home: one home and its agent, 1 evaluated day = 2.02 simulated"),
    ]),
    Bench("grid", ["bench_grid.py"], [
        Row("balanced power flow, kerber Vorstadtnetz: fast engine vs pandapower `runpp` (recycle), median",
            "{fast} ms vs {runpp} ms per step",
            {"fast": rf"^fast \(auto.*?\)\s+{NUM}\s+{NUM}", "runpp": rf"^runpp \+ recycle\s+{NUM}\s+{NUM}"}),
    ]),
    Bench("grid3ph", ["bench_grid3ph.py"], [
        Row("unbalanced power flow, IEEE EU LV feeder (2721 nodes): fast3ph vs OpenDSS, median",
            "{fast} ms vs {dss} ms per step (max ΔV {dv} p.u.)",
            {"fast": rf"^fast3ph engine\s+: median {NUM}", "dss": rf"^OpenDSS.*?median {NUM}",
             "dv": r"max \|dV\| over all nodes and steps ([0-9.e+-]+)"}),
    ]),
    Bench("mas", ["bench_mas.py", "--quick"], [
        Row("home LP (96 slots), warm start / 146-household negotiation, cold",
            "{lp} ms / {neg} s", {"lp": (rf"^home LP K= 96: cold {NUM} ms, warm \(new price\) {NUM}", 2),
                                  "neg": rf"N=146 K=96 cold:.*?negotiation\s+{NUM} s"}),
    ]),
    Bench("telecom", ["bench_telecom.py"], [
        Row("telecom model, mixed technologies", "{rate} messages/s", {"rate": rf"^model, mixed techs:\s+{NUM}"}),
    ]),
    Bench("scale", ["bench_scale.py", "--count", "1"], [
        Row("scale_10k: 104 substations, 10 000 households, 1 day, 2 workers; the first substation of each "
            "group run (its seed as in the full run), the others extrapolated from its CPU time",
            "{wall} s wall for 5 substations, peak RSS {rss} GiB; the 104 ≈ {est} min on 2 idle cores",
            {"wall": rf"^MEASURED: .*? wall {NUM} s", "rss": rf"peak RSS \(sum over processes\) {NUM} GiB",
             "est": (rf"on \d+ otherwise idle cores {NUM} s \({NUM} min\)", 2)}),
    ]),
    Bench("floors", ["bench_floors.py", "--anchor", "--batched", "uc3_physical", "uc3_substation", "scale_10k"], [
        Row("uc3_substation, per simulated day: HiGHS alone over 2 cores (the LPs the results need) / lower "
            "bound with the same mosaik steps, LPs and power-flow iterates",
            "{h} s ({h_x}× the anchor at best) / {sub} s ({sub_x}×)",
            {"h": (rf"^  HiGHS alone over \d+ cores, uc3_substation\s+{NUM} s\s+{NUM} s per simulated day", 2),
             "h_x": rf"^  HiGHS alone over \d+ cores, uc3_substation .*=\s*{NUM}x the anchor",
             "sub": (rf"^  lower bound of uc3_substation\s+{NUM} s\s+{NUM} s per simulated day", 2),
             "sub_x": rf"^  lower bound of uc3_substation .*=\s*{NUM}x the anchor"}),
        Row("uc3_physical, per simulated day: lower bound with the same mosaik steps and power-flow iterates",
            "{phys} s ({phys_x}× the anchor at best)",
            {"phys": (rf"^  lower bound of uc3_physical\s+{NUM} s\s+{NUM} s per simulated day", 2),
             "phys_x": rf"^  lower bound of uc3_physical .*=\s*{NUM}x the anchor"}),
        Row("all of scale_10k, estimated from the first substation of each group: HiGHS alone over 2 cores / "
            "lower bound", "{scale_h} min / {scale} min",
            {"scale_h": rf"^scale_10k: .*HiGHS alone {NUM} min", "scale": rf"^scale_10k: .*= {NUM} min"}),
        Row("one block-diagonal HiGHS model per district instead of one per home (uc3 homes, 30-min slots), "
            "one thread", "{block} ms against {one} ms per district price ({ratio}× the time, the same iterations)",
            {"block": rf"^  one block-diagonal model\s+{NUM} ms", "one": rf"^  one model per home\s+{NUM} ms",
             "ratio": rf"\({NUM}x the time"}),
    ]),
    Bench("year_floor", ["bench_floors.py", "--highs-only", "--until", "3d", "uc3_substation"], [
        Row("a year of uc3_substation (366 simulated days): HiGHS alone over 2 cores with the central references "
            "the gaps need, from 3 evaluated days (4.375 simulated)",
            "{year} min ({day} s per simulated day; without the references {noref} min)",
            {"day": rf"^  HiGHS alone over \d+ cores: {NUM} s per simulated day",
             "year": rf"366 simulated days: {NUM} min", "noref": rf"without the references: {NUM} min"}),
    ]),
    Bench("hil_poll", ["bench_hil_poll.py"], [
        Row("20 Modbus meters polled at 1 s, poll latency", "p50 {p50} ms, p99 {p99} ms",
            {"p50": rf"poll latency.*?p50={NUM}", "p99": rf"poll latency.*?p99={NUM}"}),
    ]),
    Bench("realtime", ["bench_realtime_hil.py", "2min"], [
        Row("real time, 1 s steps, 20 Modbus meters + 100 households, 2 min, lateness",
            "p50 {p50} ms, p99 {p99} ms, max {max} ms",
            {"p50": rf"lateness p50 {NUM}", "p99": rf"lateness.*?p99 {NUM}", "max": rf"lateness.*?max {NUM}"}),
    ]),
]


def _fmt(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    if 0 < hi < 1e-3:  # an error bound: the worst value
        return f"{hi:.1e}"
    digits = 0 if hi >= 100 else 1 if hi >= 10 else 2 if hi >= 0.1 else 3
    if hi >= 1e4:
        return f"{lo:,.0f}" + ("" if lo == hi else f"–{hi:,.0f}")
    a, b = f"{lo:.{digits}f}", f"{hi:.{digits}f}"
    return a if a == b else f"{a}–{b}"


def figures(out: str, pattern) -> list[float]:
    regex, group = pattern if isinstance(pattern, tuple) else (pattern, 1)
    vals = []
    for m in re.finditer(regex, out, flags=re.MULTILINE):
        if m.group(group) is not None:
            vals.append(float(m.group(group)))
    return vals


def cell(row: Row, out: str, bench: str) -> str:
    got = {}
    for name, pattern in row.figures.items():
        vals = figures(out, pattern)
        if not vals:
            raise SystemExit(f"perf_table: benchmark {bench!r} printed no figure {name!r} for row "
                             f"{row.what!r}; its output:\n{out}")
        got[name] = _fmt(vals)
    return row.cell.format(**got)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal")) / 1024 ** 2
        mem_s = f", {mem:.0f} GB"
    except (OSError, StopIteration):
        mem_s = ""
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores{mem_s}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average {load} at the start")


def table(results: list[tuple[Bench, str]], header: str) -> str:
    lines = [header, "", "| what | script | result |", "|---|---|---|"]
    for bench, out in results:
        for row in bench.rows:
            lines.append(f"| {row.what} | `{' '.join(bench.args)}` | {cell(row, out, bench.name)} |")
    return "\n".join(lines)


def run(bench: Bench, kept: Path | None = KEPT) -> str:
    """Run ``bench`` and return its printout (kept in ``kept/NAME.txt`` after a first line
    ``# DATE on MACHINE``)."""
    cmd = [sys.executable, str(HERE / bench.args[0]), *bench.args[1:]]
    print(f"perf_table: running {' '.join(bench.args)}", file=sys.stderr, flush=True)
    stamp = f"# {dt.date.today().isoformat()} on {machine()}\n"
    p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"perf_table: {' '.join(bench.args)} failed (exit {p.returncode}):\n"
                         f"{p.stdout[-2000:]}{p.stderr[-2000:]}")
    if kept:
        kept.mkdir(exist_ok=True)
        (kept / f"{bench.name}.txt").write_text(stamp + p.stdout)
    return stamp + p.stdout


def kept_printout(bench: Bench, kept: Path = KEPT) -> str:
    path = kept / f"{bench.name}.txt"
    if not path.is_file():
        raise SystemExit(f"perf_table: no kept printout {path} for {bench.name!r}: run it (--only {bench.name})")
    return path.read_text()


def write_readme(text: str, readme: Path = README) -> None:
    src = readme.read_text()
    if BEGIN not in src or END not in src:
        raise SystemExit(f"perf_table: {readme} has no {BEGIN} ... {END} markers")
    head, rest = src.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BENCHES]
    ap.add_argument("--only", nargs="*", choices=names, default=names,
                    help="re-run only these (none: rebuild the table from the kept printouts)")
    ap.add_argument("--dry-run", action="store_true", help="print the table, leave README.md alone")
    args = ap.parse_args()
    fresh = {b.name: run(b) for b in BENCHES if b.name in args.only}
    results = [(b, fresh.get(b.name) or kept_printout(b)) for b in BENCHES]
    stamps = [out.splitlines()[0][2:] for _, out in results]  # "DATE on MACHINE; load average L at the start"
    machines = sorted({st.split(" on ", 1)[1].split("; load average")[0] for st in stamps})
    dates = sorted({st.split(" on ", 1)[0] for st in stamps})
    loads = [float(st.rsplit("load average ", 1)[1].split("/")[0]) for st in stamps]
    header = (f"Measured {', '.join(dates)} on {'; '.join(machines)}; 1-min load average at each benchmark's start "
              f"{min(loads)}…{max(loads)}. Made by `python benchmarks/perf_table.py`.")
    text = table(results, header)
    print(text)
    if not args.dry_run:
        write_readme(text)


if __name__ == "__main__":
    main()
