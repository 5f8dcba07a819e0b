"""Real (or emulated) Modbus meters as a mosaik simulator.

Model ``ModbusMeters(devices=[{id, host, port, unit, map, transport, timeout, interval, ...}])``
(one population entity; device fields: :class:`hil.client.DeviceConfig`). Outputs, per device id,
exactly the attributes of the simulated meter (docs/architecture.md) plus link quality:

* ``P``, ``Q`` [kW, kvar; load convention], ``V`` [V, mean phase voltage, where the map has it],
  ``E_imp``, ``E_exp`` [Wh] - the latest good sample;
* ``P_15`` [kW] - time-weighted average of the polled P samples over the last completed
  15-minute window (windows aligned to the wall clock, ``p15_window`` seconds; until the first
  window completes, the running average of the current one);
* ``quality`` - 0 ok, 1 stale (no good sample for ``stale_after`` s, or not connected: values held),
  2 error (the device answered the last request with a Modbus exception);
* ``age`` [s] - wall-clock seconds since the last good sample (since start if none yet);
* ``events`` (non-persistent) - ``{device_id: [record, ...]}`` when a device drops, reconnects,
  answers with an exception or recovers from one (:class:`hil.client.LinkEvents`), and
  ``kind: counter_reset`` when a device's energy register went back (a restarted or replaced meter);
  each record carries ``t``, the simulated time it was handed over (recorded in ``/events/devices``).

Energy registers are kept monotonic: after a reset the recorded ``E_imp``/``E_exp`` continue from
their last recorded value by the register's increase since the reset (the energy counted while the
device was down is unknown and not invented), and a warning is logged.

Polling runs in a background asyncio loop (:class:`hil.aio.BackgroundLoop`), one task per device
on its own absolute schedule, so ``step()`` only copies the latest samples and never waits for a
device; one slow or dead device never delays another. A lost device is reconnected with
exponential backoff (``backoff_min`` 0.1 s doubling to ``backoff_max`` 1 s) - pymodbus does not
retry a first failed connect, so the adapter does; after reconnecting it polls at once, so a
returning device is fresh again within about ``backoff_max`` + one request.
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

from .aio import BackgroundLoop
from .client import (Backoff, DeviceConfig, DeviceError, LinkError, LinkEvents, ModbusLink, quiet_pymodbus, reconnect,
                     snapshot_outputs)

log = logging.getLogger(__name__)

METER_ATTRS = ["P", "Q", "V", "E_imp", "E_exp"]
ENERGY_ATTRS = ("E_imp", "E_exp")
OUT_ATTRS = [*METER_ATTRS, "P_15", "quality", "age"]

META = {
    "api_version": "3.0",
    "type": "hybrid",  # time-based, with the non-persistent device events
    "models": {
        "ModbusMeters": {
            "public": True,
            "params": ["devices"],
            "attrs": [*OUT_ATTRS, "events"],
            "outputs": OUT_ATTRS,  # recorded as series; events go to their stream
            "non-persistent": ["events"],
        },
    },
}

QUALITY_OK, QUALITY_STALE, QUALITY_ERROR = 0, 1, 2


class WindowAverage:
    """Time-weighted (zero-order hold) average of samples over clock-aligned windows."""

    def __init__(self, window: float = 900.0, max_hold: float = 5.0):
        self.window = float(window)
        self.max_hold = float(max_hold)
        self.k: int | None = None
        self.area = 0.0
        self.cov = 0.0
        self.last: tuple[float, float] | None = None
        self.completed: float | None = None

    def _close(self) -> None:
        if self.cov > 0:
            self.completed = self.area / self.cov
        self.area = self.cov = 0.0

    def add(self, t: float, value: float) -> None:
        if self.last is not None:
            t0, v0 = self.last
            b = t0 + min(max(t - t0, 0.0), self.max_hold)  # do not bridge long gaps
            a = t0
            while a < b:
                k = math.floor(a / self.window)
                if self.k is None:
                    self.k = k
                elif k != self.k:
                    self._close()
                    self.k = k
                end = min(b, (k + 1) * self.window)
                self.area += v0 * (end - a)
                self.cov += end - a
                a = end
        k = math.floor(t / self.window)
        if self.k is not None and k != self.k:
            self._close()
        self.k = k
        self.last = (t, float(value))

    def value(self) -> float | None:
        if self.completed is not None:
            return self.completed
        if self.cov > 0:
            return self.area / self.cov
        return self.last[1] if self.last else None


class CounterGuard:
    """Keeps energy registers monotonic across device restarts: a register that went back is a reset."""

    def __init__(self):
        self.raw: dict[str, float] = {}
        self.offset: dict[str, float] = {}

    def apply(self, values: dict[str, float]) -> list[tuple[str, float, float]]:
        """Correct *values* in place; return (register, value before, value after) of each reset."""
        resets = []
        for attr in ENERGY_ATTRS:
            if attr not in values:
                continue
            raw, last = values[attr], self.raw.get(attr)
            if last is not None and raw < last:
                self.offset[attr] = self.offset.get(attr, 0.0) + last - raw
                resets.append((attr, last, raw))
            self.raw[attr] = raw
            values[attr] = raw + self.offset.get(attr, 0.0)
        return resets


class _Meter:
    def __init__(self, cfg: DeviceConfig, p15_window: float):
        self.cfg = cfg
        self.link = ModbusLink(cfg)
        m = self.link.map
        self.points = [m.by_attr(a) for a in METER_ATTRS if m.by_attr(a) is not None]
        if not self.points:
            raise ValueError(f"meter {cfg.id}: map {m.name} maps none of {METER_ATTRS}")
        self.plan = m.read_plan(self.points)
        self.lock = threading.Lock()
        self.values: dict[str, float] = {}
        self.t_good: float | None = None
        self.t_start = time.monotonic()
        self.connected = False
        self.error_code: int | None = None
        self.p15 = WindowAverage(p15_window, max_hold=max(3 * cfg.interval, 2.0))
        self.stats = collections.Counter()
        self.latency = collections.deque(maxlen=100_000)
        self.events = LinkEvents("meter", cfg)
        self.counters = CounterGuard()

    def check_counters(self, values: dict[str, float]) -> None:
        """Keep the energy registers monotonic and note each reset (call with ``lock`` held)."""
        for attr, before, after in self.counters.apply(values):
            self.stats["counter_reset"] += 1
            log.warning("meter %s: %s register went back from %.1f to %.1f Wh (device restarted?); recorded "
                        "energy continues from %.1f Wh", self.cfg.id, attr, before, after, values[attr])
            self.events.note("counter_reset", f"{attr} went back from {before:.1f} to {after:.1f} Wh",
                             register=attr, before_wh=before, after_wh=after)

    def snapshot(self, now: float) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = dict(self.values)
            p15 = self.p15.value()
            if p15 is not None:
                out["P_15"] = p15
            age = now - (self.t_good if self.t_good is not None else self.t_start)
            if self.error_code is not None:
                q = QUALITY_ERROR
            elif not self.connected or self.t_good is None or age > self.cfg.stale_after:
                q = QUALITY_STALE
            else:
                q = QUALITY_OK
        out["quality"] = q
        out["age"] = max(age, 0.0)
        return out


class MeterPoller:
    """Polls Modbus meters in a background loop; ``snapshot()`` returns the latest samples.

    Usable without mosaik (benchmarks, scripts); :class:`ModbusMeters` wraps it.
    """

    def __init__(self, devices: list[dict | DeviceConfig], p15_window: float = 900.0):
        quiet_pymodbus()
        cfgs = [d if isinstance(d, DeviceConfig) else DeviceConfig(**d) for d in devices]
        ids = [c.id for c in cfgs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate meter ids: {ids}")
        self.meters = [_Meter(c, p15_window) for c in cfgs]
        self.loop = BackgroundLoop("hil-meters")
        self._futures: list = []

    def start(self) -> MeterPoller:
        self.loop.start()
        n = len(self.meters)
        # spread the devices' polling phases over the interval: no burst of n requests at once
        self._futures = [self.loop.submit(self._poll(m, i / n)) for i, m in enumerate(self.meters)]
        return self

    async def _poll(self, m: _Meter, phase: float = 0.0) -> None:
        cfg = m.cfg
        backoff = Backoff(cfg.backoff_min, cfg.backoff_max)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(phase * cfg.interval)
        next_t = loop.time()
        try:
            while True:
                if not m.link.connected:
                    if not await reconnect(m, backoff):
                        continue
                    next_t = loop.time()  # poll at once after (re)connecting
                t0 = time.perf_counter()
                try:
                    await m.link.read_points(m.points, m.plan)
                    vals = {p.attr: m.link.attr_value(p.attr) for p in m.points}
                    dt = time.perf_counter() - t0
                    now_m, now_w = time.monotonic(), time.time()
                    with m.lock:
                        m.values = {k: v for k, v in vals.items() if v is not None}
                        m.check_counters(m.values)
                        m.t_good = now_m
                        m.error_code = None
                        if "P" in m.values:
                            m.p15.add(now_w, m.values["P"])
                    m.latency.append(dt)
                    m.stats["ok"] += 1
                    m.events.good()
                except DeviceError as exc:
                    m.stats["exception"] += 1
                    m.events.exception(exc.code)
                    with m.lock:
                        m.error_code = exc.code
                except LinkError as exc:
                    m.stats["link_fail"] += 1
                    m.events.lost(f"link lost: {exc}")
                    with m.lock:
                        m.connected = False
                        m.error_code = None  # no answer at all: stale, not error
                    continue
                next_t += cfg.interval
                now = loop.time()
                if next_t < now:  # missed slots are skipped, the schedule stays absolute
                    next_t += math.ceil((now - next_t) / cfg.interval) * cfg.interval
                await asyncio.sleep(next_t - now)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("meter %s: poller crashed", cfg.id)
        finally:
            m.link.close()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {m.cfg.id: m.snapshot(now) for m in self.meters}

    def latencies(self) -> list[float]:
        out: list[float] = []
        for m in self.meters:
            out.extend(m.latency)
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        return {m.cfg.id: dict(m.stats) for m in self.meters}

    def link_events(self) -> dict[str, LinkEvents]:
        return {m.cfg.id: m.events for m in self.meters}

    def stop(self) -> None:
        for f in self._futures:
            f.cancel()
        if self.loop.running:
            async def _drain():
                await asyncio.sleep(0)
                for m in self.meters:
                    m.link.close()
            try:
                self.loop.run(_drain(), timeout=2.0)
            except Exception:  # noqa: BLE001
                pass
        self.loop.stop()


class ModbusMeters(mosaik_api_v3.Simulator):
    """mosaik-api-v3 simulator: Modbus meters as one population entity per ``create``."""

    def __init__(self):
        super().__init__(META)
        self.sid = None
        self.step_size = 1
        self.p15_window = 900.0
        self.pollers: dict[str, MeterPoller] = {}
        self.time = 0

    def init(self, sid, time_resolution=1.0, start=None, step_size=None, p15_window=900.0, **kwargs):
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size) if step_size else max(1, round(1.0 / self.time_resolution))
        self.p15_window = float(p15_window)
        return self.meta

    def create(self, num, model, devices=None):
        if model != "ModbusMeters":
            raise ValueError(f"unknown model {model}")
        if num != 1:
            raise ValueError("ModbusMeters is a population entity: create exactly one per call")
        if not devices:
            raise ValueError("ModbusMeters needs devices=[{id, host, port, unit, map, ...}]")
        eid = f"meters_{len(self.pollers)}"
        known = {m.cfg.id for p in self.pollers.values() for m in p.meters}
        poller = MeterPoller(devices, self.p15_window)
        dup = known & {m.cfg.id for m in poller.meters}
        if dup:
            raise ValueError(f"meter ids already used by another entity: {sorted(dup)}")
        self.pollers[eid] = poller.start()
        return [{"eid": eid, "type": model}]

    def step(self, time, inputs, max_advance):
        self.time = time
        return time + self.step_size

    def get_data(self, outputs):
        return snapshot_outputs(self.pollers, outputs, t=self.time)

    def finalize(self):
        for p in self.pollers.values():
            p.stop()
        self.pollers.clear()


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(ModbusMeters(), "Modbus meter adapter (HIL)")
