"""cosim: co-simulation of multi-agent flexibility management in LV grids (mosaik 3).

Exit codes: 0 ok, 1 a simulator or run failed, 2 bad input (scenario field, file, option), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from cosim.durations import parse_duration_ms
from cosim.errors import InputError

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _err(*lines: str) -> None:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)


def _load(args, overrides: dict | None = None):
    from cosim.scenario import load_scenario

    return load_scenario(args.scenario, overrides)


def cmd_run(args) -> int:
    from cosim.runner import RunFailed, RunInterrupted, run_scenario

    overrides = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.until is not None:
        try:
            parse_duration_ms(args.until)
        except ValueError as exc:
            raise InputError(f"--until: {exc}") from None
        overrides["duration"] = args.until
    if args.control is not None:
        overrides["control.mode"] = args.control
    scn, text = _load(args, overrides)
    for w in scn.window_warnings():
        print(f"warning: {w}", file=sys.stderr)
    rt = args.realtime
    try:
        if args.emulate:
            from cosim.lab import emulated_devices

            with emulated_devices(scn) as started:
                if not args.quiet:
                    print("emulating: " + "; ".join(started))
                result = run_scenario(scn, text, out=args.out, rt_factor=rt, progress=not args.quiet)
        else:
            result = run_scenario(scn, text, out=args.out, rt_factor=rt, progress=not args.quiet)
    except RunInterrupted as exc:
        _err(str(exc))
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
    if result.lateness:
        lt = result.lateness
        print(f"real-time lateness over {lt['n']} steps: p50 {lt['p50_ms']:.1f} ms, p99 {lt['p99_ms']:.1f} ms, "
              f"max {lt['max_ms']:.1f} ms, {lt['late']} late (> {lt['threshold_ms']:.0f} ms)")
    return EXIT_OK


def cmd_validate(args) -> int:
    scn, _ = _load(args)
    n = sum(d.households for d in scn.districts)
    extra = (f", + {scn.warmup_ms // scn.step} warm-up and {scn.cooldown_ms // scn.step} cool-down steps"
             if scn.warmup_ms or scn.cooldown_ms else "")
    print(f"{args.scenario}: ok ({scn.name}: {len(scn.districts)} district(s), {n} households, "
          f"{scn.n_steps} evaluated steps of {scn.step // 1000} s{extra})")
    for w in scn.window_warnings():
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


def cmd_inspect(args) -> int:
    from cosim.inspect import describe_results

    print(describe_results(args.results))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cosim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a scenario (a YAML path, a bundled name, or a results file to re-run)")
    r.add_argument("scenario", metavar="SCENARIO")
    r.add_argument("--out", help="results file (default: the scenario's output field)")
    r.add_argument("--until", metavar="DURATION",
                   help="evaluate only this long, e.g. 1d, 6h, 90min (warm-up and cool-down are simulated as well)")
    r.add_argument("--seed", type=int, help="override the scenario's random seed")
    r.add_argument("--realtime", nargs="?", const=1.0, type=float, metavar="FACTOR",
                   help="pace to the wall clock (FACTOR 1 = real time, 0.5 = twice as fast)")
    r.add_argument("--control", choices=["mas", "central", "none"],
                   help="override control.mode: the MAS, the centralised optimiser, or no controller (baseline)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--emulate", action="store_true",
                   help="start emulators for the scenario's Modbus devices (hil section) on 127.0.0.1")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a scenario file and report every problem")
    v.add_argument("scenario", metavar="SCENARIO")
    v.set_defaults(func=cmd_validate)

    ls = sub.add_parser("list", help="list the bundled scenarios")
    ls.set_defaults(func=cmd_list)

    e = sub.add_parser("emulate", add_help=False,
                       help="start an emulated lab device (sdm630, em24, sunspec-meter, sunspec-battery) "
                            "on 127.0.0.1; `cosim emulate --help` for options")
    e.add_argument("emulator_args", nargs=argparse.REMAINDER)

    i = sub.add_parser("inspect", help="show provenance, datasets and shapes of a results file")
    i.add_argument("results", metavar="RESULTS.h5")
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

        return emulate(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        _err(*exc.lines)
        return EXIT_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
