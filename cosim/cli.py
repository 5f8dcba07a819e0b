"""cosim: co-simulation of multi-agent flexibility management in LV grids (mosaik 3).

Exit codes: 0 ok, 1 a simulator or run failed, 2 bad input (scenario field, file, option), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from contextlib import ExitStack
from pathlib import Path

from cosim.durations import format_duration_ms, parse_duration_ms
from cosim.errors import InputError
from simulators.vocabulary import CONTROL_MODES

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose bad-option message is one ``error:`` line (the usage is in ``--help``),
    exit code 2, as every other bad input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "-1h" is a (negative) value, not an unknown option: argparse's own matcher only knows "-1", "-1.5"
        self._negative_number_matcher = re.compile(r"^-\d")

    def error(self, message: str):
        _err(f"{self.prog}: {message} (`{self.prog} --help` for the options)")
        sys.exit(EXIT_INPUT)


def _err(*lines: str) -> None:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)


def _load(args, overrides: dict | None = None):
    from cosim.api import load

    return load(args.scenario, overrides)


def _check_includes(scn, text: str, source: str) -> None:
    """``record.include`` of *scn* (of each group of substations) against what its populations offer,
    before anything starts; the problems name *source*."""
    from cosim.world import check_record_include

    if not scn.substations:
        return check_record_include(scn, source)
    from cosim.scenario import parse_scenario, read_yaml
    from cosim.substations import expand

    for s in {s.group: s for s in reversed(expand(read_yaml(text, source)))}.values():
        check_record_include(parse_scenario(s.data, s.id), f"{source} ({s.id})")


def _log_level(args) -> None:
    """mosaik and the simulators log through loguru: set its level here and, through LOGURU_LEVEL, in the
    subprocess simulators mosaik starts (their INFO lines otherwise reach the console)."""
    import os

    from loguru import logger

    level = "ERROR" if args.quiet and args.log_level is None else (args.log_level or "WARNING")
    os.environ["LOGURU_LEVEL"] = level
    logger.remove()
    logger.add(sys.stderr, level=level)


def cmd_run(args) -> int:
    from cosim.runner import RunFailed, RunInterrupted, run_scenario
    from cosim.scenario import _seed

    _log_level(args)
    overrides = {}
    if args.seed is not None:
        try:
            overrides["seed"] = _seed(args.seed)  # the scenario's own check, as cosim.run's
        except ValueError as exc:
            raise InputError(f"--seed: {exc}") from None
    if args.replicate is not None:
        if args.replicate < 0:
            raise InputError(f"--replicate: expected an integer >= 0, got {args.replicate}")
        overrides["replicate"] = args.replicate
    if args.until is not None:
        try:
            parse_duration_ms(args.until)
        except ValueError as exc:
            raise InputError(f"--until: {exc}") from None
        overrides["duration"] = args.until
    if args.control is not None:
        overrides["control.mode"] = args.control
    if args.aggregate is not None:
        overrides["record.aggregate"] = args.aggregate
    scn, text = _load(args, overrides)
    if args.until is not None:
        declared = _load(args, {k: v for k, v in overrides.items() if k != "duration"})[0].duration
        if scn.duration > declared:
            print(f"warning: --until {args.until} evaluates longer than the scenario's duration "
                  f"({format_duration_ms(declared)}): profiles and weather continue past it", file=sys.stderr)
    _check_includes(scn, text, args.scenario)
    for w in scn.study_warnings():
        print(f"warning: {w}", file=sys.stderr)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: expected a positive integer, got {args.workers}")
    if args.split_warmup is not None and args.split is None:
        raise InputError("--split-warmup: only with --split")
    if args.dashboard_host is not None and args.dashboard is None:
        raise InputError("--dashboard-host: only with --dashboard")
    if args.realtime is not None and not args.realtime > 0:  # (mosaik's own line named its rt_factor)
        raise InputError(f"--realtime: FACTOR must be > 0 (1 = real time, 0.5 = twice as fast), got {args.realtime:g}")
    if scn.substations:
        return _run_substations(args, scn, text)
    if args.scheduler is not None:
        raise InputError("--scheduler: only for a scenario with substations (a sweep: cosim sweep)")
    if args.substations is not None:
        raise InputError(f"--substations: {scn.name} has no substations")
    if args.workers is not None and args.split is None:
        raise InputError("--workers: only with --split or for a scenario with substations (a sweep: cosim sweep)")
    if args.split is not None:
        return _run_split(args, scn, text)
    if args.port_base is not None:
        from cosim.lab import with_ports

        scn, text, placed = with_ports(scn, text, args.port_base)
        print("ports: " + ", ".join(placed), flush=True)
    rt = args.realtime
    try:
        with ExitStack() as stack:
            if args.dashboard is not None:
                from cosim.dashboard import live_dashboard

                address = stack.enter_context(live_dashboard(args.dashboard_host or "127.0.0.1", args.dashboard,
                                                             f"{scn.name}: cosim run"))
                print(f"dashboard: {address}", flush=True)
            if args.emulate:
                from cosim.lab import emulated_devices

                print("emulated: " + "; ".join(stack.enter_context(emulated_devices(scn))), flush=True)
            result = run_scenario(scn, text, out=args.out, rt_factor=rt, progress=not args.quiet)
    except RunInterrupted as exc:
        _err(str(exc))
        if exc.lateness:
            _print_lateness(exc.lateness)
        return EXIT_INTERRUPTED
    except RunFailed as exc:
        _err(str(exc))
        return EXIT_FAIL
    if not args.quiet:
        print(f"{scn.name}: {result.steps} steps in {result.wall_s:.1f} s -> {result.path}")
    if not args.quiet and (scn.control is not None or scn.grid is not None):
        from cosim.summary import run_summary

        for line in run_summary(result.path):
            print("  " + line)
    if scn.hil is not None and (scn.hil.meters or scn.hil.gateways):
        _print_device_health(result.path, args.quiet)
    if result.lateness:
        _print_lateness(result.lateness)
    return EXIT_OK


def _print_lateness(lt: dict) -> None:
    print(f"real-time lateness over {lt['n']} steps: p50 {lt['p50_ms']:.1f} ms, p99 {lt['p99_ms']:.1f} ms, "
          f"max {lt['max_ms']:.1f} ms, {lt['late']} late (> {lt['threshold_ms']:.0f} ms)", flush=True)


def _lab_options(args) -> list[str]:
    """The run options given that need the one real-time process of a lab run (``--dashboard 0``
    counts: it asks for a free port)."""
    return [o for o, v in (("--realtime", args.realtime), ("--emulate", args.emulate),
                           ("--port-base", args.port_base), ("--dashboard", args.dashboard))
            if v is not None and v is not False]


def _run_substations(args, scn, text) -> int:
    """Every substation as its own run on dask, then one results view (cosim.substations)."""
    from cosim.scenario import read_yaml
    from cosim.substations import check_selection_folder, folder_of, run_substations, selection, selection_view

    if lab := _lab_options(args):
        raise InputError(f"{', '.join(lab)}: not for a scenario with substations (they run as independent processes)")
    if args.split is not None:
        raise InputError("--split: not for a scenario with substations (each substation is one run of its own)")
    only = folder = None
    out = args.out
    if args.substations is not None:
        data, whole = read_yaml(text, args.scenario), scn.output_path()
        only = selection(data, args.substations)
        if out is not None and Path(out).resolve() == whole.resolve():
            raise InputError(f"--out: {out} is the whole run's view; a selection writes a view of its own "
                             f"(default {selection_view(whole)})")
        if out is None:  # beside the whole run's view, its files in the whole run's folder (reused both ways)
            out, folder = selection_view(whole), folder_of(whole)
            check_selection_folder(data, only, folder)
    result = run_substations(scn, text, out=out, workers=args.workers, scheduler=args.scheduler,
                             progress=not args.quiet, only=only, folder=folder)
    for s in result.failed:
        _err(f"substation {s.id} failed: {s.error}")
    if not args.quiet:
        done = len(result.substations) - len(result.failed)
        print(f"{scn.name}: {done}/{len(result.substations)} substations, "
              f"{sum(s.households for s in result.substations)} households in {result.wall_s:.1f} s -> "
              f"{result.path} (files in {result.folder})")
    return EXIT_FAIL if result.failed else EXIT_OK


def _run_split(args, scn, text) -> int:
    """``cosim run --split``: the parts on dask, stitched into one results file (cosim.split)."""
    from cosim.split import run_split

    clash = _lab_options(args)
    if clash or scn.hil is not None or scn.realtime is not None:
        raise InputError(f"--split: not with {clash[0] if clash else 'a hil or realtime scenario'} "
                         "(parts run as independent simulations)")
    from cosim.runner import RunFailed

    try:
        path, wall = run_split(scn, text, args.split, out=args.out, workers=args.workers,
                               warmup=args.split_warmup, progress=not args.quiet)
    except RunFailed as exc:
        _err(str(exc))
        return EXIT_FAIL
    if not args.quiet:
        print(f"{scn.name}: stitched in {wall:.1f} s -> {path}")
        if scn.control is not None or scn.grid is not None:
            from cosim.summary import run_summary

            for line in run_summary(path):
                print("  " + line)
    return EXIT_OK


def _print_device_health(path, quiet: bool) -> None:
    """Outages and stale time per real device (printed under --quiet too when a device had any)."""
    from cosim.device_health import device_health, health_lines
    from cosim.results import Results

    with Results(path) as res:
        healths = device_health(res)
    if healths and (not quiet or any(h.outages or h.exceptions for h in healths)):
        lines = health_lines(healths)
        print("real devices:")
        for line in lines:
            print("  " + line)


def _check_network(scn) -> None:
    """An OpenDSS network is read and built as ``run`` builds it, so that its errors (one line, file:line)
    come at ``validate`` and not only when the run starts."""
    from cosim.scenario import ScenarioError
    from simulators.grid3ph_networks import is_opendss, load_network3ph

    if scn.grid is not None and is_opendss(scn.grid.network):
        try:
            load_network3ph(scn.grid.network)
        except ValueError as exc:
            raise ScenarioError([f"grid: {exc}"]) from None


def cmd_validate(args) -> int:
    scn, text = _load(args)
    _check_includes(scn, text, args.scenario)
    _check_network(scn)
    if scn.substations:
        from cosim.substations import describe

        print(f"{args.scenario}: ok ({scn.name}: {describe(scn)}, {scn.n_steps} evaluated steps of "
              f"{scn.step // 1000} s each)")
        return EXIT_OK
    n = sum(d.households for d in scn.districts)
    cool = (f"{scn.cooldown_ms // scn.step} cool-down steps" if scn.cooldown_run_ms == scn.cooldown_ms else
            f"{scn.cooldown_run_ms // scn.step} of {scn.cooldown_ms // scn.step} cool-down steps")
    extra = f", + {scn.warmup_ms // scn.step} warm-up and {cool}" if scn.warmup_ms or scn.cooldown_ms else ""
    print(f"{args.scenario}: ok ({scn.name}: {len(scn.districts)} district(s), {n} households, "
          f"{scn.n_steps} evaluated steps of {scn.step // 1000} s{extra})")
    for w in scn.study_warnings():
        print(f"warning: {w}", file=sys.stderr)
    return EXIT_OK


def cmd_list(args) -> int:
    import yaml

    from cosim.scenario import bundled_scenarios

    for name, path in sorted(bundled_scenarios().items()):
        data = yaml.safe_load(path.read_text()) or {}
        desc = str(data.get("description", "")).strip().splitlines()
        print(f"{name:<18} {desc[0] if desc else ''}")
    return EXIT_OK


def cmd_watch(args) -> int:
    from cosim.dashboard import FileSource, check_port, serve, url

    source = FileSource(args.results)
    port = check_port(args.host, args.port)
    try:
        serve(source, args.host, port, f"{Path(args.results).name}: cosim watch",
              on_ready=lambda: print(f"dashboard: {url(args.host, port)} (Ctrl-C to stop)", flush=True))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_schema(args) -> int:
    import json

    from cosim.scenario import Scenario

    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lvflex-cosim scenario"
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def cmd_inspect(args) -> int:
    from cosim.inspect import describe_results

    if args.repair:
        from cosim.h5repair import repair

        print(repair(args.results))
    print(describe_results(args.results))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="cosim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from cosim import __version__

    p.add_argument("--version", action="version", version=f"cosim (lvflex-cosim) {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a scenario (a YAML path, a bundled name, or a results file to re-run)")
    r.add_argument("scenario", metavar="SCENARIO")
    r.add_argument("-o", "--out", help="results file (default: the scenario's output field)")
    r.add_argument("--until", metavar="DURATION",
                   help="evaluate only this long, e.g. 1d, 6h, 90min (the warm-up and the cool-down the window needs are simulated as well)")
    r.add_argument("--seed", type=int, help="override the scenario's random seed")
    r.add_argument("--replicate", type=int, metavar="N",
                   help="draw the noise streams (telecom, meter noise) and the tie-break (control.tie_break) "
                        "afresh: same households and weather")
    r.add_argument("--aggregate", metavar="DURATION",
                   help="record one row of interval means per DURATION, e.g. 15min (record.aggregate)")
    r.add_argument("--split", metavar="month|DURATION",
                   help="run the evaluated period as parts (calendar months, or e.g. 7d) in parallel on dask and "
                        "stitch them into one results file (README 'A year')")
    r.add_argument("--split-warmup", metavar="DURATION", help="warm-up of every part after the first (default 2d)")
    r.add_argument("--realtime", nargs="?", const=1.0, type=float, metavar="FACTOR",
                   help="pace to the wall clock (FACTOR 1 = real time, 0.5 = twice as fast)")
    r.add_argument("--control", choices=CONTROL_MODES,
                   help="override control.mode: the MAS, the centralised optimiser, or no controller (baseline)")
    r.add_argument("--quiet", action="store_true", help="no progress bar, summary or simulator log lines")
    r.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                   help="log level of mosaik and the simulators, also in subprocesses (default WARNING)")
    r.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="INFO",
                   help="same as --log-level INFO")
    r.add_argument("--emulate", action="store_true",
                   help="start emulators for the scenario's Modbus devices (hil section) on 127.0.0.1, "
                        "except those already answering on their port")
    r.add_argument("--port-base", metavar="BASE|auto",
                   help="put the hil devices on 127.0.0.1 (meters, gateways, then the device server) on "
                        "consecutive ports from BASE, or on free ports with 'auto' (printed)")
    r.add_argument("--dashboard", nargs="?", const=5006, type=int, metavar="PORT",
                   help="serve a live dashboard of the run on http://127.0.0.1:PORT/ (default 5006; 0 = a free "
                        "port; the URL is printed)")
    r.add_argument("--dashboard-host", metavar="HOST",
                   help="address the dashboard listens on (default 127.0.0.1)")
    r.add_argument("--workers", type=int, metavar="N",
                   help="--split or a scenario with substations: local dask worker processes (default: the cores)")
    r.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="substations: run on this dask scheduler's workers (output folder on a shared path)")
    r.add_argument("--substations", metavar="IDS",
                   help="substations: run only these (comma-separated ids such as dorf_0, or group names), each "
                        "with its seed in the whole scenario; their files in the whole run's folder (where the "
                        "whole run reuses them), view <output stem>_selection.h5; with --out, both beside FILE")
    r.set_defaults(func=cmd_run)

    w = sub.add_parser("watch", help="serve the live dashboard of a results file (read-only, also while a run "
                                     "writes it)")
    w.add_argument("results", metavar="RESULTS.h5")
    w.add_argument("--port", type=int, default=5006, help="port (default 5006; 0 = a free one)")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    w.set_defaults(func=cmd_watch)

    v = sub.add_parser("validate", help="check a scenario file and report every problem")
    v.add_argument("scenario", metavar="SCENARIO")
    v.set_defaults(func=cmd_validate)

    sc = sub.add_parser("schema", help="print the scenario JSON Schema (editor completion: yaml-language-server)")
    sc.set_defaults(func=cmd_schema)

    ls = sub.add_parser("list", help="list the bundled scenarios")
    ls.set_defaults(func=cmd_list)

    e = sub.add_parser("emulate", add_help=False,
                       help="start an emulated lab device (sdm630, em24, sunspec-meter, sunspec-battery) "
                            "on 127.0.0.1; `cosim emulate --help` for options")
    e.add_argument("emulator_args", nargs=argparse.REMAINDER)

    i = sub.add_parser("inspect", help="show provenance, datasets and shapes of a results file")
    i.add_argument("results", metavar="RESULTS.h5")
    i.add_argument("--repair", action="store_true",
                   help="a file whose run was killed (status running, writer gone): rewrite it closed, status failed")
    i.set_defaults(func=cmd_inspect)
    from cosim.calibrate import register as register_calibrate
    from cosim.cli_study import register
    register(sub)
    register_calibrate(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulate"]:  # the emulator has its own parser (hil.emulator)
        from hil.emulator import main as emulate

        return emulate(argv[1:], parser_class=_OneLineParser)
    try:
        args = build_parser().parse_args(argv)  # the parser imports the study modules: Ctrl-C can come here
        if getattr(args, "out", None) == "":
            raise InputError("-o/--out: empty path")
        from cosim.h5open import probing

        with probing():  # a damaged file that crashes HDF5 itself is one line too
            return args.func(args)
    except InputError as exc:
        _err(*exc.lines)
        return EXIT_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        from cosim.h5open import raised_in_h5py, reason

        damaged = raised_in_h5py(exc)
        if damaged is None:
            raise
        _err(f"{damaged}: damaged results file ({reason(exc)})")
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
