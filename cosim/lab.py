"""Lab helpers: put a scenario's Modbus devices on chosen ports (`cosim run --port-base`) and emulate
them on this machine (`cosim run --emulate`)."""

from __future__ import annotations

import socket
from contextlib import ExitStack, contextmanager
from typing import Iterator

import yaml

from cosim.errors import InputError
from cosim.scenario import Scenario, parse_scenario
from cosim.world import noise_seed
from hil.emulator import KINDS
from hil.testing import ThreadedEmulators

LOOPBACK = {"127.0.0.1", "localhost"}
KIND_OF_MAP = {map_name: kind for kind, map_name in KINDS.items()}
SECTIONS = ("meters", "gateways")


def kind_of_map(ref: object) -> str | None:
    """The emulator kind of a bundled map, spelt as load_map takes it (``sunspec-meter`` = ``sunspec_meter``)."""
    return KIND_OF_MAP.get(ref.replace("-", "_")) if isinstance(ref, str) else None


def _local(entry: dict) -> bool:
    return entry.get("host", "127.0.0.1") in LOOPBACK and entry.get("transport", "tcp") != "rtu-serial"


def free_ports(n: int) -> list[int]:
    """*n* distinct ports that are free on 127.0.0.1 now (all sockets held until every one is chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def with_ports(scn: Scenario, text: str, base: str) -> tuple[Scenario, str, list[str]]:
    """Move the scenario's local Modbus devices (hil meters, then gateways, then the device server) to
    consecutive ports from *base*, or to free ports (``auto``). Returns the scenario, its effective
    YAML text and one ``what host:port`` entry per moved device."""
    data = yaml.safe_load(text)
    hil = data.get("hil") if isinstance(data, dict) else None
    entries = [(f"{s[:-1]} {d['id']}", d) for s in SECTIONS for d in (hil or {}).get(s) or [] if _local(d)]
    if hil and hil.get("device_server") and _local(hil["device_server"]):
        entries.append(("device server", hil["device_server"]))
    if not entries:
        raise InputError("--port-base: the scenario has no hil devices on 127.0.0.1 to place")
    if base == "auto":
        ports = free_ports(len(entries))
    else:
        try:
            first = int(base)
        except ValueError:
            raise InputError(f"--port-base: expected a port number or 'auto', got {base!r}") from None
        if not 1 <= first <= 65536 - len(entries):
            raise InputError(f"--port-base: {first} leaves no room for {len(entries)} ports below 65536")
        ports = list(range(first, first + len(entries)))
    for (_, entry), port in zip(entries, ports):
        entry["port"] = port
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_scenario(data, scn.name), text, [f"{what} 127.0.0.1:{p}" for (what, _), p in zip(entries, ports)]


def answering(port: int, timeout: float = 0.3) -> bool:
    """Something accepts TCP connections on 127.0.0.1:*port*."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def emulated_devices(scn: Scenario) -> Iterator[list[str]]:
    """Start one emulator per HIL meter and gateway of *scn* on its loopback port, except where a
    device already answers (one you started, e.g. `cosim emulate sdm630 --port 5020 &`: it is used
    as it is); yield one line per device saying which."""
    hil = scn.hil
    devices = [(s, i, d) for s in SECTIONS for i, d in enumerate(getattr(hil, s))] if hil else []
    if not devices:
        raise InputError("--emulate: the scenario has no hil.meters or hil.gateways to emulate")
    for section, i, d in devices:
        if d.host not in LOOPBACK:
            raise InputError(f"hil.{section}[{i}].host: --emulate only emulates devices on 127.0.0.1, got {d.host!r}")
        if d.transport != "tcp" or kind_of_map(d.map) is None:
            raise InputError(f"hil.{section}[{i}]: --emulate supports transport tcp with maps "
                             f"{', '.join(sorted(KIND_OF_MAP))}")
    lines = []
    with ThreadedEmulators() as lab:
        for section, i, d in devices:
            kind = kind_of_map(d.map)
            if answering(d.port):
                lines.append(f"{d.id}: 127.0.0.1:{d.port} already answers, used as it is")
                continue
            try:
                lab.start(kind, port=d.port, unit=d.unit, seed=noise_seed(scn, f"emulator.{d.id}.{kind}"))
            except OSError as exc:
                raise InputError(f"hil.{section}[{i}].port: cannot emulate on 127.0.0.1:{d.port}: {exc}") from None
            lines.append(f"{kind} for {d.id} on 127.0.0.1:{d.port} unit {d.unit}")
        yield lines
