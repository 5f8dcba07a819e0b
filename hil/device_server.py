"""Serve simulated devices as Modbus TCP (or RTU-over-TCP, or TLS) devices.

A :class:`DeviceServer` serves several devices on one listening socket, one Modbus unit id per
device, each laid out by a register map (:mod:`hil.registers`). The simulation pushes values with
``update(device_id, {attr: value})``; writes by a Modbus client to writable points are checked,
stored and collected for the simulation (``pop_writes()`` -> ``{device_id: {attr: value}}``).

Behaviour towards clients (documented contract):

* reads return the current register image; unmapped registers -> exception 2 (ILLEGAL DATA ADDRESS)
  (small gaps declared with the map's ``fill_gaps`` read as 0);
* a write touching a read-only register or an unmapped register -> exception 2 (ILLEGAL DATA
  ADDRESS), the same code pymodbus uses for its read-only registers; nothing of that request is
  written;
* a write whose decoded value lies outside the point's ``[min, max]`` (or is NaN / the SunSpec
  not-implemented value) -> exception 3 (ILLEGAL DATA VALUE); nothing of that request is written;
  SunSpec model 1 ``DA`` (the device address) takes only the unit id it is served on (a served
  device cannot move to another unit id), anything else -> exception 3;
* coil / discrete-input functions -> exception 1 (ILLEGAL FUNCTION), like every function code that
  is not served;
* a unit id that is not served -> exception 0x0B (GATEWAY TARGET FAILED TO RESPOND) at register 0,
  exception 2 elsewhere;
* requests are checked before pymodbus decodes them (:mod:`hil.modbus_server`): a function code
  that is not served -> exception 1, a register count outside 1..125 (or an inconsistent byte
  count / length) -> exception 3, each answered with function code = request code + 0x80;
  malformed frames are logged once per connection in one line, never with a traceback;
* connections: at most ``max_connections`` (default 64) open at once (more are closed at once),
  and a connection without a request for ``idle_timeout`` s (default 60) is closed;
* set-point reversion (map ``setpoints`` with ``revert_timer``): a write touching a set point's
  group arms a wall-clock timer of ``revert_timer`` seconds (if ``revert_enable`` is non-zero);
  when it expires without a fresh write the set point takes ``revert_value`` (0 if omitted), and
  the reversion is reported like a write (``pop_point_writes()``, and ``pop_writes()`` for a set
  point with a mosaik attr).

The server runs on the current asyncio loop (``await start()`` / ``await stop()`` or
``async with``). ``update``/``set_points``/``pop_writes`` are thread-safe, so a synchronous
caller (the mosaik :class:`~hil.device_server_sim.DeviceServerSim`) can run the server in a
:class:`hil.aio.BackgroundLoop` and talk to it from its own thread. The lab emulator
(:mod:`hil.emulator`) is a DeviceServer plus a physics model.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.vocabulary import PHASE_POWERS, PHASE_VOLTAGES

from .aio import cancel_and_wait
from .modbus_server import make_server
from .registers import Point, RegisterImage, RegisterMap, SetpointSpec, load_map

log = logging.getLogger(__name__)

WriteCallback = Callable[[str, dict[str, float | str]], None]

_WRITE_FCS = {6, 16, 22, 23}
PHASE_INPUTS = {**PHASE_POWERS, **PHASE_VOLTAGES}  # per-phase inputs of a served meter (three-phase grid)


@dataclass
class ServedDevice:
    """One served device: id, unit id, map and its live register image."""

    id: str
    unit: int
    map: RegisterMap
    image: RegisterImage
    fixed: dict[str, float] = field(default_factory=dict)  # points a write may not change: their value
    phases: dict[str, float] = field(default_factory=dict)  # its latest per-phase P, Q and V (engineering units)
    stats: dict[str, int] = field(default_factory=lambda: {
        "reads": 0, "writes": 0, "refused_address": 0, "refused_value": 0, "errors": 0, "reverts": 0})


def power_triangle(P: float, Q: float) -> tuple[float, float]:
    """Apparent power S = sqrt(P^2 + Q^2) and power factor |P|/S (1 only when P = Q = 0);
    NaN in, NaN out."""
    S = math.hypot(P, Q)
    if math.isnan(S):
        return math.nan, math.nan
    return S, (abs(P) / S if S > 0 else 1.0)


def phase_voltages(V: Sequence[float]) -> dict[str, float]:
    """Phase voltages V_L1..V_L3 [V] and their mean V_avg, and the line-to-line voltages of phases 120
    degrees apart (V_L12 = sqrt(V1^2 + V1 V2 + V2^2), V_L23, V_L31) and their mean V_LL_avg."""
    ll = {f"V_L{a + 1}{b + 1}": math.sqrt(V[a] ** 2 + V[a] * V[b] + V[b] ** 2) for a, b in ((0, 1), (1, 2), (2, 0))}
    return {**{f"V_L{k + 1}": v for k, v in enumerate(V)}, "V_avg": sum(V) / 3.0,
            **ll, "V_LL_avg": sum(ll.values()) / 3.0}


def finite_quantity(img: RegisterImage, quantity: str, default: float) -> float:
    """Canonical value of the point tagged *quantity*; *default* if untagged or not a number (NaN, or
    the SunSpec not-implemented value)."""
    v = img.get_quantity(quantity, default)
    return default if v is None or math.isnan(v) else v


def soc_window(q: Callable[[str, float], float]) -> tuple[float, float]:
    """The SoC window [lo, hi] (fractions) of a battery: its nameplate limits narrowed by its reserve set
    points; ``q(quantity, default)`` reads them."""
    return max(q("soc_min", 0.0), q("soc_rsv_min", 0.0)), min(q("soc_max", 1.0), q("soc_rsv_max", 1.0))


def battery_readings(P: float, soc: float, lo: float, hi: float, wh_rtg: float = 10_000.0,
                     v_max: float = 58.4) -> dict[str, float]:
    """What a battery (SunSpec 802) reads besides its power P [W, > 0 discharging] and state of charge
    soc in its window [lo, hi]: depth of discharge, DC bus and cell voltages, DC current and the charge
    status ChaSt. The DC side follows the battery's nameplate: its 802 ``VMax`` sets the number of
    LFP cells in series (3.65 V charge cut-off per cell, LFP cell datasheets, e.g. A123 ANR26650M1B),
    each at 3.0 + 0.5·soc V (a linear open-circuit curve over the 2.5–3.65 V window: a modelling
    choice) less 0.25 V per C of its rate P / ``WHRtg`` (about 2.5 mΩ for a 100-Ah cell: a modelling
    choice), so a 200-kWh bank at 100 kW reads as a 10-kWh one at 5 kW. The defaults (16 cells,
    10 kWh) are the bundled map's."""
    n = max(1, round(v_max / 3.65))
    cell = 3.0 + 0.5 * soc - 0.25 * P / max(wh_rtg, 1.0)
    V = n * cell
    if P > 1:
        chast = 3  # DISCHARGING
    elif P < -1:
        chast = 4  # CHARGING
    elif soc <= lo + 1e-3:
        chast = 2  # EMPTY
    elif soc >= hi - 1e-3:
        chast = 5  # FULL
    else:
        chast = 6  # HOLDING
    return {"dod": 1.0 - soc, "V_dc": V, "A_dc": P / V, "cell_v_avg": cell, "cell_v_max": cell + 0.01,
            "cell_v_min": cell - 0.01, "chast": chast}


def _normalise_devices(devices: Any) -> list[tuple[str, int, Any]]:
    """Accept {id: (unit, map)}, {id: {"unit":, "map":}} or [{"id":, "unit":, "map":}]."""
    out = []
    if isinstance(devices, Mapping):
        for dev_id, spec in devices.items():
            if isinstance(spec, Mapping):
                out.append((str(dev_id), int(spec["unit"]), spec["map"]))
            else:
                unit, regmap = spec
                out.append((str(dev_id), int(unit), regmap))
    else:
        for spec in devices:
            out.append((str(spec["id"]), int(spec["unit"]), spec["map"]))
    if not out:
        raise ValueError("a device server needs at least one device")
    units = [u for _, u, _ in out]
    if len(set(units)) != len(units):
        raise ValueError(f"unit ids must be unique per server, got {units}")
    ids = [d for d, _, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"device ids must be unique, got {ids}")
    for dev_id, unit, _ in out:
        if not 0 <= unit <= 247:
            raise ValueError(f"device {dev_id}: unit id {unit} outside 0..247")
    return out


def _bind_problem(host: str, port: int) -> str | None:
    """Why *host*:*port* cannot be listened on, as the operating system says it (pymodbus only says
    "Could not start listen, please check address."), e.g. ``address already in use``; None if it can."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers
            s.bind(addr)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return None


class DeviceServer:
    """Modbus server for simulated devices.

    :param devices: ``{device_id: (unit, map)}`` (or ``{id: {"unit": u, "map": m}}`` or a list of
        ``{"id", "unit", "map"}``); ``map`` is a bundled map name, a YAML path or a RegisterMap.
    :param host: interface to bind (default 127.0.0.1; bind elsewhere only deliberately).
    :param port: TCP port; 0 picks a free one (read it back from ``.port`` after ``start()``).
    :param framer: ``"socket"`` (Modbus TCP) or ``"rtu"`` (RTU frames over TCP, for serial gateways).
    :param sslctx: an ``ssl.SSLContext`` (server side, with certificate) to serve Modbus/TCP over TLS.
    :param serial: serve RTU on a serial port instead of TCP: ``{"port": "/dev/ttyUSB0",
        "baudrate": 9600, "parity": "N", "stopbits": 1, "bytesize": 8}`` (host/port unused).
    :param idle_timeout: close a TCP connection without a request for this many seconds (None: never;
        default 60 s, after the connection management of the Modbus Messaging on TCP/IP
        Implementation Guide V1.0b, 4.2.1: a server bounds its connections and closes unused ones).
    :param max_connections: TCP connections served at once; more are closed at once (None: no
        limit; default 64).
    :param on_write: optional ``callback(device_id, {point_name: value})`` called (in the server's
        loop) after every accepted write.
    """

    def __init__(
        self,
        devices: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        framer: str = "socket",
        sslctx: ssl.SSLContext | None = None,
        serial: Mapping[str, Any] | None = None,
        on_write: WriteCallback | None = None,
        idle_timeout: float | None = 60.0,
        max_connections: int | None = 64,
    ):
        self.host = host
        self.port = int(port)
        if framer not in ("socket", "rtu"):
            raise ValueError(f"framer must be 'socket' or 'rtu', got {framer!r}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 s or None, got {idle_timeout}")
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be >= 1 or None, got {max_connections}")
        self.framer = framer
        self.sslctx = sslctx
        self.serial = dict(serial) if serial is not None else None
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.devices: dict[str, ServedDevice] = {}
        self._by_unit: dict[int, ServedDevice] = {}
        for dev_id, unit, regmap in _normalise_devices(devices):
            m = load_map(regmap)
            dev = ServedDevice(dev_id, unit, m, RegisterImage(m))
            for b in m.blocks if m.sunspec else ():
                if b.model == 1 and m.has_point(f"{b.name}.DA"):
                    # SunSpec model 1 DA: the device's Modbus address; this server cannot move a device
                    # to another unit id while it serves, so a write of another address is refused
                    dev.image.set(f"{b.name}.DA", unit)
                    dev.fixed[f"{b.name}.DA"] = unit
            self.devices[dev_id] = dev
            self._by_unit[unit] = dev
        self._callbacks: list[WriteCallback] = [on_write] if on_write else []
        self._writes: dict[str, dict[str, float]] = {}
        self._point_writes: dict[str, dict[str, float | str]] = {}
        self._wlock = threading.Lock()
        self._server: Any = None
        self._conn_stats: dict[str, int] = {}
        self._unknown_attrs: set[tuple[str, str]] = set()
        self.fail_mode: dict[str, int] = {}  # device_id -> exception code forced on every request
        # set-point reversion (map ``setpoints`` with revert_timer): (device, set point) -> (deadline, spec)
        self._deadlines: dict[tuple[str, str], tuple[float, SetpointSpec]] = {}
        self._revert_task: asyncio.Task | None = None
        self.revert_period = 0.05

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> DeviceServer:
        if self._server is not None:
            return self
        simdevs = [self._simdevice(d) for d in self.devices.values()]
        if 0 not in self._by_unit:
            simdevs.append(SimDevice(
                id=0,
                simdata=[SimData(address=0, count=1, datatype=DataType.REGISTERS)],
                action=self._unknown_unit,
            ))
        where = self.serial["port"] if self.serial else f"{self.host}:{self.port}"
        self._server = make_server(simdevs, name=f"device server {where}", host=self.host, port=self.port,
                                   framer=self.framer, sslctx=self.sslctx, serial=self.serial,
                                   idle_timeout=self.idle_timeout, max_connections=self.max_connections)
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            self._server = None
            why = None if self.serial else _bind_problem(self.host, self.port)
            raise OSError(f"cannot listen on {where}: {why or exc}") from exc
        if self.serial is None:
            self.port = self._server.transport.sockets[0].getsockname()[1]
            self._server.name = f"device server {self.host}:{self.port}"
        self._conn_stats = self._server.stats
        if any(sp.revert_timer for d in self.devices.values() for sp in d.map.setpoints):
            self._revert_task = asyncio.get_running_loop().create_task(self._revert_loop())
        log.info("device server on %s serving %s", self.serial["port"] if self.serial else f"{self.host}:{self.port}",
                 ", ".join(f"{d.id}@unit{d.unit}({d.map.name})" for d in self.devices.values()))
        return self

    async def stop(self) -> None:
        task, self._revert_task = self._revert_task, None
        await cancel_and_wait(task)
        srv, self._server = self._server, None
        if srv is None:
            return
        listener = srv.transport
        await srv.shutdown()
        if listener is not None and hasattr(listener, "wait_closed"):
            try:
                await asyncio.wait_for(listener.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort on shutdown
                pass

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def __aenter__(self) -> DeviceServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def add_write_callback(self, cb: WriteCallback) -> None:
        self._callbacks.append(cb)

    # ------------------------------------------------------------------ simulation side API
    def _dev(self, device_id: str) -> ServedDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"device server: unknown device {device_id!r}") from None

    def update(self, device_id: str, values: Mapping[str, float | None]) -> None:
        """Set the points mapped to mosaik attributes (``{attr: value}`` in attr units).

        Unknown attributes are ignored (logged once); None/NaN become NaN (float points) or the
        SunSpec not-implemented value; out-of-range integers are clipped to the register type.
        The points that follow from them are derived: a meter's voltages, currents, S and PF from
        its V, P and Q, a battery's ChaSt, DoD and DC values from its P_bat and soc.
        """
        dev = self._dev(device_id)
        with dev.image.lock:
            for attr, value in values.items():
                if attr in PHASE_INPUTS:  # no point of their own: the per-phase points are derived, in the
                    # map's units and sign of its total (P_a as P, V_a as V: its attr_scale)
                    tot = dev.map.by_attr(attr[0])
                    scale = tot.attr_scale if tot is not None else (1.0 if attr[0] == "V" else 0.001)
                    dev.phases[attr] = math.nan if value is None else float(value) / scale
                    continue
                p = dev.map.by_attr(attr)
                if p is None:
                    if (device_id, attr) not in self._unknown_attrs:
                        self._unknown_attrs.add((device_id, attr))
                        log.info("device %s (%s): no point for attr %r, ignored", device_id, dev.map.name, attr)
                    continue
                v = math.nan if value is None else float(value)
                try:
                    dev.image.set(p, v / p.attr_scale if math.isfinite(v) else v)
                except ValueError:
                    pass  # NaN into a plain integer register: keep the last value
            given = {p.quantity for a in values if (p := dev.map.by_attr(a)) is not None}
            if given & {"P", "Q", "V_avg"} or PHASE_INPUTS.keys() & values.keys():
                self._derive_meter(dev.image, dev.phases)
            if given & {"P_bat", "soc"}:
                self._derive_battery(dev.image)

    @staticmethod
    def _derive_meter(img: RegisterImage, phases: Mapping[str, float]) -> None:
        """Phase and line-to-line voltages, S, PF, currents and phase values from V, P and Q, all as the
        image holds them (as a client reads them), so that the served registers agree with each other.
        With per-phase inputs (*phases*: ``P_a``..``Q_c`` and ``V_a``..``V_c`` from the three-phase grid,
        already in the units and sign of the map's P, Q and V points) each phase carries its own; without
        them the household is a single-phase connection: everything flows on L1, L2/L3 carry 0, all
        phases are at V (230 V if the map has no V_avg)."""
        V = img.get_quantity("V_avg", 230.0)
        Vk = [phases.get(f"V_{c}", math.nan) for c in "abc"]
        Vk = [v if math.isfinite(v) and v > 0 else V for v in Vk]  # a phase its bus lacks: at V
        derived = phase_voltages(Vk)
        P = img.get_quantity("P")
        if P is not None:
            Q = img.get_quantity("Q", 0.0)
            S, PF = power_triangle(P, Q)
            pq = [phases.get(a, math.nan) for a in PHASE_POWERS]
            if all(math.isfinite(x) for x in pq):
                pk, qk = pq[:3], pq[3:]
            else:
                pk, qk = [P, 0.0, 0.0], [Q, 0.0, 0.0]
            derived.update({"S": S, "PF": PF})
            for k in range(3):
                Sk, PFk = power_triangle(pk[k], qk[k])
                derived.update({f"P_L{k + 1}": pk[k], f"Q_L{k + 1}": qk[k], f"S_L{k + 1}": Sk,
                                f"PF_L{k + 1}": PFk, f"I_L{k + 1}": Sk / Vk[k] if Vk[k] > 0 else math.nan})
            I_sum = sum(derived[f"I_L{k}"] for k in (1, 2, 3))
            derived.update({"I_sum": I_sum, "I_avg": I_sum / 3.0})
        for q, v in derived.items():
            try:
                img.set_quantity(q, v)
            except ValueError:
                pass  # NaN into a plain integer register: keep the last value

    @staticmethod
    def _derive_battery(img: RegisterImage) -> None:
        """DoD, ChaSt, DC current and voltages from the power and SoC the image holds, as the emulated
        battery derives them (:func:`battery_readings`)."""
        P, soc = img.get_quantity("P_bat"), img.get_quantity("soc")
        if P is None or soc is None or math.isnan(P) or math.isnan(soc):
            return
        q = functools.partial(finite_quantity, img)
        lo, hi = soc_window(q)
        for name, v in battery_readings(P, soc, lo, hi, q("wh_rtg", 10_000.0), q("v_max", 58.4)).items():
            img.set_quantity(name, v)

    def set_points(self, device_id: str, values: Mapping[str, float | str]) -> None:
        """Set points by name (engineering units)."""
        dev = self._dev(device_id)
        with dev.image.lock:
            for name, value in values.items():
                dev.image.set(name, value)

    def set_quantities(self, device_id: str, values: Mapping[str, float]) -> None:
        """Set the points tagged with physical quantities (canonical units: W, var, Wh, V, A, Hz,
        fractions); quantities the map does not tag are skipped."""
        dev = self._dev(device_id)
        with dev.image.lock:
            for q, value in values.items():
                dev.image.set_quantity(q, value)

    def get_point(self, device_id: str, name: str) -> float | str:
        return self._dev(device_id).image.get(name)

    def get_quantity(self, device_id: str, quantity: str, default: float | None = None) -> float | None:
        return self._dev(device_id).image.get_quantity(quantity, default)

    def get_attr(self, device_id: str, attr: str) -> float | None:
        return self._dev(device_id).image.get_attr(attr)

    def image(self, device_id: str) -> RegisterImage:
        return self._dev(device_id).image

    def pop_writes(self) -> dict[str, dict[str, float]]:
        """Accepted client writes to attr-mapped points since the last call, in attr units
        (last value wins): ``{device_id: {attr: value}}``."""
        with self._wlock:
            out, self._writes = self._writes, {}
        return out

    def pop_point_writes(self) -> dict[str, dict[str, float | str]]:
        """Accepted client writes by point name (engineering units) since the last call."""
        with self._wlock:
            out, self._point_writes = self._point_writes, {}
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        return {d.id: dict(d.stats) for d in self.devices.values()}

    def connection_stats(self) -> dict[str, int]:
        """Connections accepted / refused over the limit / closed idle, and bad frames."""
        return dict(self._conn_stats)

    @property
    def open_connections(self) -> int:
        return len(self._server.active_connections) if self._server is not None else 0

    # ------------------------------------------------------------------ set-point reversion
    def _arm_reverts(self, dev: ServedDevice, touched: set[str], now: float) -> None:
        for sp in dev.map.setpoints:
            if not sp.revert_timer or not touched & sp.group(dev.map):
                continue
            img = dev.image
            timer = img.get(sp.revert_timer)
            enabled = True if not sp.revert_enable else (img.get(sp.revert_enable) or 0) != 0
            key = (dev.id, sp.target(dev.map).name)
            if enabled and isinstance(timer, float) and timer > 0:
                self._deadlines[key] = (now + timer, sp)
            else:
                self._deadlines.pop(key, None)
            if sp.revert_remaining:
                img.set(sp.revert_remaining, math.ceil(timer) if key in self._deadlines else 0)

    def check_reverts(self, now: float | None = None) -> list[tuple[str, str]]:
        """Revert set points whose reversion timer expired without a fresh write; update the
        remaining-time points. Runs by itself every ``revert_period`` s while the server is
        started; returns the (device, set point name) pairs reverted by this call."""
        now = time.monotonic() if now is None else now
        done = []
        for key, (deadline, sp) in list(self._deadlines.items()):
            dev = self.devices[key[0]]
            img = dev.image
            if now < deadline:
                if sp.revert_remaining:
                    img.set(sp.revert_remaining, math.ceil(deadline - now))
                continue
            del self._deadlines[key]
            p = sp.target(dev.map)

            def value_of(name: str | None) -> float:
                v = img.get(name) if name else 0.0
                return 0.0 if not isinstance(v, float) or math.isnan(v) else v

            safe = value_of(sp.revert_value)
            also = {n: value_of(v) for n, v in sp.revert_also.items()}
            with img.lock:
                img.set(p, safe)
                for n, v in also.items():
                    img.set(n, v)
                if sp.revert_remaining:
                    img.set(sp.revert_remaining, 0)
            dev.stats["reverts"] = dev.stats.get("reverts", 0) + 1
            with self._wlock:
                self._point_writes.setdefault(dev.id, {}).update({p.name: safe, **also})
                if sp.attr:
                    self._writes.setdefault(dev.id, {})[sp.attr] = safe * p.attr_scale
            log.info("device %s: %s reverted to %s %s (no fresh write within the revert time)",
                     dev.id, p.name, safe, p.unit)
            done.append(key)
        return done

    async def _revert_loop(self) -> None:
        while True:
            try:
                self.check_reverts()
            except Exception:  # noqa: BLE001
                log.exception("set-point reversion check failed")
            await asyncio.sleep(self.revert_period)

    # ------------------------------------------------------------------ pymodbus glue
    def _simdevice(self, dev: ServedDevice) -> SimDevice:
        def blocks(table: str) -> list[SimData]:
            return [SimData(address=s, count=e - s, datatype=DataType.REGISTERS)
                    for s, e in dev.map.runs(table)]

        action = functools.partial(self._action, dev)
        if dev.map.shared:
            return SimDevice(id=dev.unit, simdata=blocks("shared"), action=action)
        empty = [SimData(address=0, count=1, datatype=DataType.INVALID)]
        bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
        return SimDevice(
            id=dev.unit,
            simdata=(bits, list(bits), blocks("holding") or empty, blocks("input") or list(empty)),
            action=action,
        )

    async def _unknown_unit(self, function_code, start_address, address, count, registers, values):
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _action(
        self,
        dev: ServedDevice,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        try:
            if dev.id in self.fail_mode:
                return ExcCodes(self.fail_mode[dev.id])
            table = dev.map.table_for_fc(function_code)
            if values is None:
                dev.stats["reads"] += 1
                off = address - start_address
                registers[off : off + count] = dev.image.read(table, address, count)
                return None
            if function_code not in _WRITE_FCS:
                return ExcCodes.ILLEGAL_FUNCTION
            return self._write(dev, table, address, [int(v) for v in values])
        except Exception:  # noqa: BLE001 - a request must never take the server down
            dev.stats["errors"] += 1
            log.exception("device %s: request fc=%s addr=%s failed", dev.id, function_code, address)
            return ExcCodes.DEVICE_FAILURE

    def _write(self, dev: ServedDevice, table: str, address: int, values: list[int]) -> ExcCodes | None:
        end = address + len(values)
        touched: dict[str, Point] = {}
        for a in range(address, end):
            p = dev.map.owner(table, a)
            if p is None or not p.writable:
                dev.stats["refused_address"] += 1
                log.debug("device %s: write to %s register %d refused (read-only/unmapped)",
                          dev.id, table, a)
                return ExcCodes.ILLEGAL_ADDRESS
            touched[p.name] = p
        img = dev.image
        with img.lock:
            decoded: dict[str, float | str] = {}
            for p in touched.values():
                regs = img.raw_registers(p)
                for i in range(p.count):
                    a = p.address + i
                    if address <= a < end:
                        regs[i] = values[a - address]
                sf = img.sf_value(p) if p.sf else None
                if p.sf is not None and sf is None:
                    return ExcCodes.DEVICE_FAILURE
                v = dev.map.decode(p, regs, sf)
                if not p.is_string:
                    lo = -math.inf if p.min is None else p.min
                    hi = math.inf if p.max is None else p.max
                    tol = 1e-6 * max(1.0, abs(lo) if math.isfinite(lo) else 1.0, abs(hi) if math.isfinite(hi) else 1.0)
                    if p.name in dev.fixed:
                        lo = hi = dev.fixed[p.name]
                    if math.isnan(v) or not (lo - tol <= v <= hi + tol):
                        dev.stats["refused_value"] += 1
                        log.debug("device %s: write %s=%s outside [%s, %s] refused", dev.id, p.name, v, lo, hi)
                        return ExcCodes.ILLEGAL_VALUE
                decoded[p.name] = v
            img.write(table, address, values)
            dev.stats["writes"] += 1
            self._arm_reverts(dev, set(touched), time.monotonic())
        with self._wlock:
            pw = self._point_writes.setdefault(dev.id, {})
            aw = None
            for name, v in decoded.items():
                pw[name] = v
                p = touched[name]
                if p.attr is not None:
                    aw = aw if aw is not None else self._writes.setdefault(dev.id, {})
                    aw[p.attr] = float(v) * p.attr_scale
        for cb in self._callbacks:
            try:
                cb(dev.id, dict(decoded))
            except Exception:  # noqa: BLE001
                log.exception("device %s: write callback failed", dev.id)
        return None


def devices_from_specs(specs: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, Any]]:
    """``[{"id": "h1", "unit": 1, "map": "sdm630"}, ...]`` -> ``{"h1": (1, "sdm630")}``."""
    return {str(s["id"]): (int(s["unit"]), s["map"]) for s in specs}
