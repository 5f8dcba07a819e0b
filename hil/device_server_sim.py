"""Simulated devices served over Modbus, as a mosaik simulator.

Model ``DeviceServer(devices=..., host="127.0.0.1", port=0, framer="socket", tls_cert=None,
tls_key=None)``: one :class:`~hil.device_server.DeviceServer` (one listening socket, one unit id
per device) per entity; ``devices`` is ``{device_id: {"unit": u, "map": m}}``, ``{device_id:
[unit, map]}`` or ``[{"id", "unit", "map"}]``.

Inputs: any attribute of the served maps as population dicts (``{device_id: value}``, merged
over sources; e.g. ``P``, ``Q`` [kW], ``V`` [V], ``E_imp``, ``E_exp`` [Wh] for a meter map, ``P_bat`` [kW],
``soc`` [0..1] for the battery map), and a meter's per-phase ``P_a``..``Q_c`` [kW, kvar] and ``V_a``..``V_c``
[V] (three-phase grid); values for devices this server does not serve are ignored.

Outputs: the set points written by Modbus clients (an external controller under test), as
population dicts in attr units - e.g. ``P_bat_set`` ``{hid: kW}`` - holding, per device, the
latest written value (a map's set-point reversion, e.g. SunSpec 704 ``WSetRvrtTms``, is applied
by the server and shows up as the reverted value). Devices never written are absent, so the
household simulator follows its default rule for them.

The server runs in a background asyncio loop; ``step()`` only copies data under a lock.
The bound port of an entity: ``sim.address(eid)`` (also logged).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import mosaik_api_v3

from simulators.vocabulary import GATEWAY_SETPOINTS

from .aio import BackgroundLoop
from .device_server import PHASE_INPUTS, DeviceServer

log = logging.getLogger(__name__)

INPUT_ATTRS = ["P", "Q", "V", "E_imp", "E_exp", "P_15", "P_bat", "soc", "P_pv", "P_ev", "soc_ev",
               *PHASE_INPUTS]
SETPOINT_ATTRS = list(GATEWAY_SETPOINTS)

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "DeviceServer": {
            "public": True,
            "params": ["devices", "host", "port", "framer", "tls_cert", "tls_key"],
            "attrs": INPUT_ATTRS + SETPOINT_ATTRS,
        },
    },
}


class DeviceServerSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__({**META, "models": {k: dict(v) for k, v in META["models"].items()}})
        self.step_size = 1
        self.loop: BackgroundLoop | None = None
        self.servers: dict[str, DeviceServer] = {}
        self.held: dict[str, dict[str, dict[str, float]]] = {}

    def init(self, sid, time_resolution=1.0, start=None, step_size=None, attrs=None, **kwargs):
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size) if step_size else max(1, round(1.0 / self.time_resolution))
        if attrs:
            model = self.meta["models"]["DeviceServer"]
            model["attrs"] = list(dict.fromkeys([*model["attrs"], *attrs]))
        return self.meta

    def create(self, num, model, devices=None, host="127.0.0.1", port=0, framer="socket",
               tls_cert=None, tls_key=None):
        if model != "DeviceServer":
            raise ValueError(f"unknown model {model}")
        if num != 1:
            raise ValueError("DeviceServer: create exactly one entity per call (one socket each)")
        if not devices:
            raise ValueError("DeviceServer needs devices={device_id: {unit, map}}")
        if isinstance(devices, dict):
            devices = {k: (tuple(v) if isinstance(v, list) else v) for k, v in devices.items()}
        sslctx = None
        if tls_cert:
            sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sslctx.load_cert_chain(tls_cert, tls_key)
        server = DeviceServer(devices, host, port, framer=framer, sslctx=sslctx)
        if self.loop is None:
            self.loop = BackgroundLoop("hil-device-server").start()
        self.loop.run(server.start(), timeout=10)
        eid = f"devserver_{len(self.servers)}"
        self.servers[eid] = server
        self.held[eid] = {}
        log.info("%s: serving %d devices on %s:%d", eid, len(server.devices), server.host, server.port)
        return [{"eid": eid, "type": model}]

    def address(self, eid: str) -> tuple[str, int]:
        return self.servers[eid].address

    def step(self, time, inputs, max_advance):
        for eid, server in self.servers.items():
            per_dev: dict[str, dict[str, Any]] = {}
            for attr, sources in inputs.get(eid, {}).items():
                for mapping in sources.values():
                    if isinstance(mapping, dict):
                        for dev, v in mapping.items():
                            if dev in server.devices:
                                per_dev.setdefault(dev, {})[attr] = v
            for dev, vals in per_dev.items():
                server.update(dev, vals)
            held = self.held[eid]
            for dev, writes in server.pop_writes().items():
                for attr, v in writes.items():
                    held.setdefault(attr, {})[dev] = float(v)
        return time + self.step_size

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            held = self.held[eid]
            server = self.servers[eid]
            out = {}
            writable = set(SETPOINT_ATTRS) | {a for d in server.devices.values()
                                              for a, p in d.map.attrs.items() if p.writable}
            for a in attrs:
                if a in writable:
                    out[a] = dict(held.get(a, {}))
                else:  # an input attr: echo what the served devices hold (useful for recording)
                    vals = {d: server.get_attr(d, a) for d in server.devices}
                    out[a] = {d: v for d, v in vals.items() if v is not None and v == v}
            data[eid] = out
        return data

    def finalize(self):
        if self.loop is not None:
            for server in self.servers.values():
                try:
                    self.loop.run(server.stop(), timeout=5)
                except Exception:  # noqa: BLE001
                    log.exception("device server stop failed")
            self.loop.stop()
            self.loop = None
        self.servers.clear()


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(DeviceServerSim(), "Modbus device server (HIL)")
