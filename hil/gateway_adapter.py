"""Real (or emulated) Modbus gateways / controllable devices as a mosaik simulator.

Model ``ModbusGateways(devices=[{id, host, port, unit, map, transport, timeout, interval,
revert_s, hold, ...}])`` (device fields: :class:`hil.client.DeviceConfig`; default map
``sunspec_battery``).

Inputs: set points as population dicts (``{device_id: value}``, merged over sources), in the
units of docs/architecture.md: ``P_bat_set`` [kW, charging positive], ``P_ev_set``, ``P_hp_set``,
``pv_limit`` [kW], ``ev_current_set`` [A] - whichever the device's map maps to a writable point.

Range check (documented choice: **clip and count**): a set point outside the point's
``[min, max]`` (converted to attr units) is clipped to the bound, counted in the output
``setpoint_clipped`` and logged (first time per device/attr, then every 100th). NaN/None set
points are ignored.

Writing: asynchronous, in a background loop, latest value wins. A set point is written in one
request together with its companion points from the map's ``setpoints`` spec and with the
device's revert timer set to ``revert_s``; the device (SunSpec 704 ``WSetRvrtTms``) therefore
falls back to its safe set point if the controller stops writing for ``revert_s`` seconds. A
set point is written at every step at which it arrives (mosaik delivers a time-based source's
last value each step, so a running co-simulation acts as the heartbeat); with ``hold: true`` the
last value is re-written at every step even when no input arrived. ``revert_s`` must therefore
exceed the wall-clock time between two steps. On ``finalize`` the safe value (the ``with`` value
of ``revert_value``, e.g. ``WSetRvrt`` = 0 W) is written once.

Outputs, per device id: the read-back of every non-set-point attr of the map (e.g. ``P_bat``
[kW], ``soc`` [0..1]), ``setpoint_ack`` (1 when the last read-back of every written set point
equals the value written, within one register step; 0 otherwise - e.g. after a reversion or a
refused write; absent before the first write), ``setpoint_clipped`` (count), ``quality``
(0 ok, 1 stale, 2 error), ``age`` [s] since the last good read-back, and the non-persistent
``events`` (link transitions, :class:`hil.client.LinkEvents`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from typing import Any

import mosaik_api_v3

from simulators.vocabulary import GATEWAY_SETPOINTS

from .aio import BackgroundLoop
from .client import (Backoff, DeviceConfig, DeviceError, LinkError, LinkEvents, ModbusLink, quiet_pymodbus, reconnect,
                     snapshot_outputs)
from .registers import Point

log = logging.getLogger(__name__)

SETPOINT_ATTRS = list(GATEWAY_SETPOINTS)
READBACK_ATTRS = ["P_bat", "soc", "P", "Q", "P_ev", "soc_ev", "P_pv"]
STATUS_ATTRS = ["setpoint_ack", "setpoint_clipped", "quality", "age"]

META = {
    "api_version": "3.0",
    "type": "hybrid",  # time-based, with the non-persistent link events
    "models": {
        "ModbusGateways": {
            "public": True,
            "params": ["devices"],
            "attrs": SETPOINT_ATTRS + READBACK_ATTRS + STATUS_ATTRS + ["events"],
            "non-persistent": ["events"],
        },
    },
}


class _Gateway:
    def __init__(self, cfg: DeviceConfig):
        self.cfg = cfg
        self.link = ModbusLink(cfg)
        m = self.map = self.link.map
        self.setpoints: dict[str, Point] = {a: p for a, p in m.attrs.items() if p.writable}
        if not self.setpoints:
            raise ValueError(f"gateway {cfg.id}: map {m.name} has no writable point with an attr")
        self.readback_points = list(m.attrs.values())
        self.plan = m.read_plan(self.readback_points)
        self.out_attrs = [a for a in m.attrs if a not in self.setpoints]
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}
        self.last_sent: dict[str, float] = {}
        self.readback: dict[str, float] = {}
        self.t_good: float | None = None
        self.t_start = time.monotonic()
        self.connected = False
        self.error_code: int | None = None
        self.clipped = 0
        self._clip_logged: collections.Counter = collections.Counter()
        self.event: asyncio.Event | None = None
        self.task: asyncio.Task | None = None  # the polling/writing task, awaited on shutdown
        self.stopping = False
        self.stats = collections.Counter()
        self.write_latency = collections.deque(maxlen=10_000)
        self.events = LinkEvents("gateway", cfg)

    def check(self, attr: str, value: Any) -> float | None:
        """Range check in attr units: clip and count."""
        if value is None:
            return None
        v = float(value)
        if math.isnan(v):
            return None
        lo, hi = self.setpoints[attr].attr_bounds()
        if v < lo or v > hi:
            c = min(max(v, lo), hi)
            with self.lock:
                self.clipped += 1
            n = self._clip_logged[attr]
            self._clip_logged[attr] += 1
            if n % 100 == 0:
                log.warning("gateway %s: %s=%g outside [%g, %g], clipped to %g (%d clipped so far)",
                            self.cfg.id, attr, v, lo, hi, c, n + 1)
            v = c
        return v

    def points_for(self, attr: str, value: float) -> dict[str, float]:
        p = self.setpoints[attr]
        vals = {p.name: value / p.attr_scale}
        sp = self.map.setpoint(attr)
        if sp is not None:
            vals.update(sp.with_)
            if sp.revert_timer:
                vals[sp.revert_timer] = self.cfg.revert_s
        return vals

    def safe_points(self) -> dict[str, float]:
        vals: dict[str, float] = {}
        for attr in self.last_sent:
            sp = self.map.setpoint(attr)
            if sp is not None and sp.revert_value and sp.revert_value in sp.with_:
                vals.update(sp.with_)
                vals[self.setpoints[attr].name] = sp.with_[sp.revert_value]
                if sp.revert_timer:
                    vals[sp.revert_timer] = 0
        return vals

    def tolerance(self, attr: str) -> float:
        p = self.setpoints[attr]
        if not p.is_integer:
            return 1e-6 * max(1.0, abs(self.last_sent.get(attr, 0.0)))
        sfp = self.map.sf_point(p)
        sf = 0
        if sfp is not None:
            v = self.link.image.get(sfp)
            sf = 0 if isinstance(v, str) or math.isnan(v) else int(v)
        return 0.5 * abs(p.scale * 10.0**sf * p.attr_scale) + 1e-9

    def snapshot(self, now: float) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {a: v for a, v in self.readback.items() if a in self.out_attrs}
            if self.last_sent:
                ok = all(a in self.readback and abs(self.readback[a] - v) <= self.tolerance(a)
                         for a, v in self.last_sent.items())
                out["setpoint_ack"] = 1.0 if ok else 0.0
            out["setpoint_clipped"] = float(self.clipped)
            age = now - (self.t_good if self.t_good is not None else self.t_start)
            if self.error_code is not None:
                q = 2
            elif not self.connected or self.t_good is None or age > self.cfg.stale_after:
                q = 1
            else:
                q = 0
        out["quality"] = q
        out["age"] = max(age, 0.0)
        return out


class GatewayClient:
    """Writes set points to / reads back Modbus devices in a background loop (mosaik-free)."""

    def __init__(self, devices: list[dict | DeviceConfig]):
        quiet_pymodbus()
        cfgs = []
        for d in devices:
            if not isinstance(d, DeviceConfig):
                d = DeviceConfig(**({"map": "sunspec_battery"} | dict(d)))
            cfgs.append(d)
        ids = [c.id for c in cfgs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate gateway ids: {ids}")
        self.gateways = {c.id: _Gateway(c) for c in cfgs}
        self.loop = BackgroundLoop("hil-gateways")

    def start(self) -> GatewayClient:
        self.loop.start()
        for g in self.gateways.values():
            self.loop.submit(self._run(g))
        return self

    def set(self, device_id: str, values: dict[str, Any]) -> None:
        """Queue set points ``{attr: value}`` (attr units) for a device (range-checked)."""
        g = self.gateways[device_id]
        checked = {}
        for attr, v in values.items():
            if attr not in g.setpoints:
                continue
            c = g.check(attr, v)
            if c is not None:
                checked[attr] = c
        if checked:
            with g.lock:
                g.pending.update(checked)
            if g.event is not None:
                self.loop.call_soon(g.event.set)

    async def _run(self, g: _Gateway) -> None:
        cfg = g.cfg
        g.task = asyncio.current_task()
        g.event = asyncio.Event()
        loop = asyncio.get_running_loop()
        backoff = Backoff(cfg.backoff_min, cfg.backoff_max)
        next_read = loop.time()
        try:
            while not g.stopping:
                if not g.link.connected:
                    if not await reconnect(g, backoff):
                        continue
                    next_read = loop.time()
                wait = next_read - loop.time()
                if wait > 0 and not g.event.is_set():
                    try:
                        await asyncio.wait_for(g.event.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                g.event.clear()
                with g.lock:
                    pend, g.pending = g.pending, {}
                written = False
                try:
                    if pend:
                        vals: dict[str, float] = {}
                        for attr, v in pend.items():
                            vals.update(g.points_for(attr, v))
                        t0 = time.perf_counter()
                        await g.link.write_points(vals)
                        g.write_latency.append(time.perf_counter() - t0)
                        g.stats["writes"] += 1
                        with g.lock:
                            g.last_sent.update(pend)
                        written = True
                    await g.link.read_points(g.readback_points, g.plan)
                    rb = {p.attr: g.link.attr_value(p.attr) for p in g.readback_points}
                    with g.lock:
                        g.readback = {a: v for a, v in rb.items() if v is not None}
                        g.t_good = time.monotonic()
                        g.error_code = None
                    g.stats["reads"] += 1
                    g.events.good()
                except DeviceError as exc:
                    g.stats["exception"] += 1
                    g.events.exception(exc.code)
                    with g.lock:
                        g.error_code = exc.code
                        if pend and not written:  # refused write: the ack compares against it
                            g.last_sent.update(pend)
                except LinkError as exc:
                    g.stats["link_fail"] += 1
                    g.events.lost(f"link lost: {exc}")
                    with g.lock:
                        g.connected = False
                        g.error_code = None
                        g.pending = {**pend, **g.pending}  # write again once reconnected
                    continue
                now = loop.time()
                if now >= next_read:
                    next_read += cfg.interval
                    if next_read < now:
                        next_read = now + cfg.interval
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("gateway %s: task crashed", cfg.id)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {d: g.snapshot(now) for d, g in self.gateways.items()}

    def stats(self) -> dict[str, dict[str, int]]:
        return {d: dict(g.stats) for d, g in self.gateways.items()}

    def link_events(self) -> dict[str, LinkEvents]:
        return {d: g.events for d, g in self.gateways.items()}

    def stop(self, safe: bool = True) -> None:
        if self.loop.running:
            async def _shutdown():
                # let a write in flight finish first, so the safe set point is the last one written
                tasks = [g.task for g in self.gateways.values() if g.task is not None]
                for g in self.gateways.values():
                    g.stopping = True
                    if g.event is not None:
                        g.event.set()
                if tasks:
                    _, late = await asyncio.wait(tasks, timeout=2.0)
                    for t in late:
                        t.cancel()
                    await asyncio.gather(*late, return_exceptions=True)
                for g in self.gateways.values():
                    vals = g.safe_points() if safe else {}
                    if vals and g.link.connected:
                        try:
                            await g.link.write_points(vals)
                            log.info("gateway %s: safe set point written on shutdown", g.cfg.id)
                        except Exception as exc:  # noqa: BLE001
                            log.warning("gateway %s: safe set point not written: %s", g.cfg.id, exc)
                    g.link.close()
            try:
                self.loop.run(_shutdown(), timeout=5.0)
            except Exception:  # noqa: BLE001
                pass
        self.loop.stop()


class ModbusGateways(mosaik_api_v3.Simulator):
    """mosaik-api-v3 simulator: Modbus set-point gateways as one population entity per create."""

    def __init__(self):
        super().__init__({**META, "models": {k: dict(v) for k, v in META["models"].items()}})
        self.step_size = 1
        self.clients: dict[str, GatewayClient] = {}
        self._last: dict[str, dict[str, dict[str, float]]] = {}

    def init(self, sid, time_resolution=1.0, start=None, step_size=None, attrs=None, **kwargs):
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size) if step_size else max(1, round(1.0 / self.time_resolution))
        if attrs:  # extra set-point / read-back attrs of user maps
            model = self.meta["models"]["ModbusGateways"]
            model["attrs"] = list(dict.fromkeys([*model["attrs"], *attrs]))
        return self.meta

    def create(self, num, model, devices=None):
        if model != "ModbusGateways":
            raise ValueError(f"unknown model {model}")
        if num != 1:
            raise ValueError("ModbusGateways is a population entity: create exactly one per call")
        if not devices:
            raise ValueError("ModbusGateways needs devices=[{id, host, port, unit, map, ...}]")
        eid = f"gateways_{len(self.clients)}"
        self.clients[eid] = GatewayClient(devices).start()
        self._last[eid] = {}
        return [{"eid": eid, "type": model}]

    def step(self, time, inputs, max_advance):
        for eid, client in self.clients.items():
            received: dict[str, dict[str, float]] = {}
            for attr, sources in inputs.get(eid, {}).items():
                for mapping in sources.values():
                    if isinstance(mapping, dict):
                        for dev, v in mapping.items():
                            if dev in client.gateways:
                                received.setdefault(dev, {})[attr] = v
            last = self._last[eid]
            for dev, g in client.gateways.items():
                vals = dict(received.get(dev, {}))
                if g.cfg.hold:
                    vals = {**last.get(dev, {}), **vals}
                if vals:
                    last[dev] = {**last.get(dev, {}), **vals}
                    client.set(dev, vals)
        return time + self.step_size

    def get_data(self, outputs):
        return snapshot_outputs(self.clients, outputs)

    def finalize(self):
        for c in self.clients.values():
            c.stop()
        self.clients.clear()


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(ModbusGateways(), "Modbus gateway adapter (HIL)")
