"""Health of the real (HIL) devices of a results file: outages, exception episodes, stale and error time.

A device is a (role, id) pair - a home's meter and its battery gateway share the household id. Its
rows come from the ``quality`` series of the population it is recorded under (``meters`` for real
meters, beside the simulated ones, which have no quality; ``gateways``), its transitions from the
``/events/devices`` stream (:class:`hil.client.LinkEvents` records).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.results import Results

ROLE_OF = {"meters": "meter", "gateways": "gateway"}
QUALITY_NAMES = {0: "ok", 1: "stale", 2: "error"}  # hil.meter_adapter QUALITY_* codes


@dataclass
class DeviceHealth:
    role: str
    device: str
    outages: int = 0        # drops: the device stopped answering
    exceptions: int = 0     # episodes of Modbus exception responses
    stale_s: float = 0.0    # recorded time with quality 1
    error_s: float = 0.0    # recorded time with quality 2
    addr: str = ""


def device_health(res: Results) -> list[DeviceHealth]:
    row_s = res.dt_h * 3600.0
    hil = res.scenario.hil if res.scenario is not None else None
    addr = {(role, d.id): f"{d.host}:{d.port}" for pop, role in ROLE_OF.items() for d in getattr(hil, pop, [])}
    out: dict[tuple[str, str], DeviceHealth] = {}
    for pop, role in ROLE_OF.items():
        q = res.series(pop, "quality")
        if q is None:
            continue
        for j, dev in enumerate(q.ids):
            col = q.values[:, j]
            if np.isnan(col).all():  # a simulated meter
                continue
            out[(role, dev)] = DeviceHealth(role, dev, stale_s=float(row_s[col == 1].sum()),
                                            error_s=float(row_s[col == 2].sum()), addr=addr.get((role, dev), ""))
    for ev in res.records("devices") or []:
        h = out.setdefault((ev.get("role", "?"), ev.get("device", "?")),
                           DeviceHealth(ev.get("role", "?"), ev.get("device", "?")))
        h.addr = ev.get("addr", h.addr)
        if ev.get("kind") == "drop":
            h.outages += 1
        elif ev.get("kind") == "exception":
            h.exceptions += 1
    return list(out.values())


def health_lines(healths: list[DeviceHealth]) -> list[str]:
    """One line per real device for the end-of-run summary."""
    return [f"{h.role} {h.device}{f' ({h.addr})' if h.addr else ''}: {h.outages} outage(s), "
            f"{h.stale_s:.0f} s stale, {h.exceptions} exception episode(s), {h.error_s:.0f} s error"
            for h in healths]
