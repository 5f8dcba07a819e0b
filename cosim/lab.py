"""Lab helpers: emulate a scenario's Modbus devices on this machine (`cosim run --emulate`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from cosim.errors import InputError
from cosim.scenario import Scenario
from cosim.world import sim_seed
from hil.emulator import KINDS
from hil.testing import ThreadedEmulators

LOOPBACK = {"127.0.0.1", "localhost"}
KIND_OF_MAP = {map_name: kind for kind, map_name in KINDS.items()}


@contextmanager
def emulated_devices(scn: Scenario) -> Iterator[list[str]]:
    """Start one emulator per HIL meter and gateway of *scn* (on their loopback ports); yield what runs."""
    hil = scn.hil
    devices = [("meters", i, d) for i, d in enumerate(hil.meters)] if hil else []
    devices += [("gateways", i, d) for i, d in enumerate(hil.gateways)] if hil else []
    if not devices:
        raise InputError("--emulate: the scenario has no hil.meters or hil.gateways to emulate")
    for section, i, d in devices:
        if d.host not in LOOPBACK:
            raise InputError(f"hil.{section}[{i}].host: --emulate only emulates devices on 127.0.0.1, got {d.host!r}")
        if d.transport != "tcp" or not isinstance(d.map, str) or d.map not in KIND_OF_MAP:
            raise InputError(f"hil.{section}[{i}]: --emulate supports transport tcp with maps "
                             f"{', '.join(sorted(KIND_OF_MAP))}")
    started = []
    with ThreadedEmulators() as lab:
        for section, i, d in devices:
            kind = KIND_OF_MAP[d.map]
            try:
                lab.start(kind, port=d.port, unit=d.unit, seed=sim_seed(scn.seed, f"emulator.{d.id}.{kind}"))
            except OSError as exc:
                raise InputError(f"hil.{section}[{i}].port: cannot emulate on 127.0.0.1:{d.port}: {exc}") from None
            started.append(f"{kind} for {d.id} on 127.0.0.1:{d.port} unit {d.unit}")
        yield started
