"""``python -m simulators.<name> [--remote] HOST:PORT``: mosaik's ``start_simulation`` with the address checked
first, so that a bad one is one line, ``error: ...``, exit 2 (mosaik-api 3 printed a port outside 0-65535 as an
OverflowError traceback, and a malformed address in a line of its own with exit status 0)."""

from __future__ import annotations

import sys

import mosaik_api_v3

_WITH_VALUE = ("-l", "--log-level", "-t", "--timeout")  # mosaik_api_v3's options that take a value


def address_problem(argv: list[str]) -> str | None:
    """The line refusing the HOST:PORT among *argv* (the command line after the program), or None."""
    skip = False
    for arg in argv:
        if skip or arg.startswith("-"):
            skip = arg in _WITH_VALUE
            continue
        host, sep, port = arg.rpartition(":")
        if not (sep and host and port.isascii() and port.isdigit() and int(port) <= 65535):
            return f"error: {arg}: expected HOST:PORT with a port in 0-65535"
    return None


def start_simulation(sim, description: str = "") -> None:
    if (problem := address_problem(sys.argv[1:])) is not None:
        print(problem, file=sys.stderr)
        sys.exit(2)
    mosaik_api_v3.start_simulation(sim, description)
