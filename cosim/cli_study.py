"""`cosim` subcommands for studies: kpis, value, report, compare, sweep.

Registered by :func:`register` from ``cosim.cli.build_parser``. Each command returns an exit code
(0 ok, 1 a run failed, 2 bad input); bad input raises :class:`cosim.errors.InputError`, which the
main CLI prints as one line per problem (exit 2).
"""

from __future__ import annotations

import json
import sys

from cosim.errors import InputError

EXIT_OK, EXIT_FAIL, EXIT_INPUT = 0, 1, 2


def _dump(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def cmd_kpis(args) -> int:
    from cosim.kpi import compute_kpis
    from cosim.kpi_text import kpi_text

    k = compute_kpis(args.results)
    if args.json:
        _dump(k)
    else:
        print(kpi_text(k, households=True if args.households else None))
    return EXIT_OK


def _strip_cents(ledger: dict) -> dict:
    out = dict(ledger)
    out["transfers"] = [{k: v for k, v in t.items() if k != "cents"} for t in ledger["transfers"]]
    out["avoided_costs"] = [{k: v for k, v in t.items() if k != "cents"} for t in ledger["avoided_costs"]]
    return out


def cmd_value(args) -> int:
    from cosim.business import value_flows, value_text

    ledger = value_flows(args.results, args.baseline)
    if args.json:
        _dump(_strip_cents(ledger))
    else:
        print(value_text(ledger))
    return EXIT_OK


def cmd_report(args) -> int:
    from cosim.report import write_report

    out = write_report(args.results, args.out, args.baseline)
    print(f"report written to {out}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from cosim.compare import compare, compare_text

    if len(args.results) < 1:
        raise InputError("compare: give at least one results file")
    result = compare(args.results)
    if args.json:
        _dump(result)
    else:
        print(compare_text(result))
    return EXIT_OK


def cmd_sweep(args) -> int:
    from cosim.sweep import SweepInterrupted, run_sweep, sweep_text

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: expected a positive integer, got {args.workers}")
    try:
        result = run_sweep(args.sweep, workers=args.workers, scheduler=args.scheduler, out=args.out,
                           progress=not args.quiet)
    except SweepInterrupted as exc:  # Ctrl-C: the summary so far, then `error: interrupted`, exit 130
        print(sweep_text(exc.result), flush=True)
        raise
    print(sweep_text(result))
    if result.unknown_kpis:
        raise InputError([f"{args.sweep}: {line}" for line in result.unknown_kpis])
    return EXIT_FAIL if result.failed else EXIT_OK


def register(subparsers) -> None:
    k = subparsers.add_parser("kpis", help="key performance indicators of a results file")
    k.add_argument("results", metavar="RESULTS.h5")
    k.add_argument("--json", action="store_true", help="all KPIs as JSON (per household, district, grid...)")
    k.add_argument("--households", action="store_true", help="also list every household in the table")
    k.set_defaults(func=cmd_kpis)

    v = subparsers.add_parser("value", help="business-model value flows of a run against its baseline")
    v.add_argument("results", metavar="RESULTS.h5", help="the controlled run")
    v.add_argument("--baseline", required=True, metavar="BASE.h5",
                   help="the same scenario run without the controller")
    v.add_argument("--json", action="store_true", help="the ledger as JSON")
    v.set_defaults(func=cmd_value)

    r = subparsers.add_parser("report", help="self-contained HTML report (KPIs, value flows, plots)")
    r.add_argument("results", metavar="RESULTS.h5")
    r.add_argument("--baseline", metavar="BASE.h5", help="baseline run: comparison and value flows")
    r.add_argument("-o", "--out", required=True, metavar="REPORT.html")
    r.set_defaults(func=cmd_report)

    c = subparsers.add_parser("compare", help="key KPIs of several runs side by side")
    c.add_argument("results", nargs="+", metavar="RESULTS.h5")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    s = subparsers.add_parser("sweep", help="run a parameter sweep on dask (local processes or a cluster)")
    s.add_argument("sweep", metavar="SWEEP.yaml")
    s.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    s.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use a running dask scheduler instead")
    s.add_argument("-o", "--out", metavar="DIR", help="output directory (default: the sweep's out or "
                                                  "results/sweeps/<name>)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)
