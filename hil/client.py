"""Modbus client side shared by the meter and gateway adapters.

:class:`DeviceConfig` is the validated description of one field device (``devices=[...]`` of the
adapters); :class:`ModbusLink` owns the pymodbus async client of one device: connect (no pymodbus
auto-reconnect: the adapters retry themselves with their own backoff, because pymodbus does not
retry a first failed ``connect()``), coalesced reads into a :class:`~hil.registers.RegisterImage`,
and coalesced writes of points.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import ssl
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, AsyncModbusTlsClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from .registers import Point, RegisterImage, RegisterMap, check_map, load_map
from .sunspec import ScanError, relocation, scan

log = logging.getLogger(__name__)


def quiet_pymodbus() -> None:
    """pymodbus logs every failed (re)connect at WARNING and every unanswered request at ERROR, with frame
    dumps (524 lines in 40 s of one silent device); the adapters report link state through ``quality``
    and one line per outage instead. Raise its level unless the application configured it already."""
    lg = logging.getLogger("pymodbus")
    if lg.level == logging.NOTSET:
        lg.setLevel(logging.CRITICAL)


class DeviceError(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, what: str = ""):
        super().__init__(f"Modbus exception {code} {what}".strip())
        self.code = int(code)


class LinkError(Exception):
    """No answer: not connected, connection lost, or timeout."""


class DeviceConfig(BaseModel):
    """One field device of an adapter's ``devices=[...]`` parameter."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="mosaik device id (e.g. the household id the meter measures)")
    host: str = "127.0.0.1"
    port: int = Field(502, ge=0, le=65535)
    unit: int = Field(1, ge=0, le=255)
    map: str | dict = Field("sdm630", description="bundled map name, YAML path, or inline map")
    transport: Literal["tcp", "rtu-tcp", "tls", "rtu-serial"] = "tcp"
    timeout: float = Field(1.0, gt=0, description="request / connect timeout, s")
    interval: float = Field(1.0, gt=0, description="polling interval, s")
    stale_after: float | None = Field(None, gt=0, description="age after which values are stale "
                                      "(default 2 x interval + timeout)")
    backoff_min: float = Field(0.1, gt=0, description="first reconnect delay, s")
    backoff_max: float = Field(1.0, gt=0, description="reconnect delay cap, s")
    # serial (rtu-serial)
    serial_port: str | None = Field(None, description="e.g. /dev/ttyUSB0 (rtu-serial)")
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = Field(1, ge=1, le=2)
    bytesize: int = Field(8, ge=5, le=8)
    # TLS
    cafile: str | None = Field(None, description="CA bundle to verify the device certificate")
    certfile: str | None = Field(None, description="client certificate (mutual TLS)")
    keyfile: str | None = None
    verify: bool = Field(True, description="verify the device certificate (tls)")
    # gateway only
    revert_s: float = Field(30.0, ge=0, description="device revert timeout written with every set point")
    hold: bool = Field(False, description="re-write the last set point every step even without new input")

    @field_validator("map")
    @classmethod
    def _known_map(cls, v: str | dict) -> str | dict:
        check_map(v)
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.transport == "rtu-serial" and not self.serial_port:
            raise ValueError(f"device {self.id}: rtu-serial needs serial_port")
        if self.backoff_max < self.backoff_min:
            raise ValueError(f"device {self.id}: backoff_max < backoff_min")
        if self.stale_after is None:
            self.stale_after = 2.0 * self.interval + self.timeout
        if self.transport == "tls":
            self.sslctx()  # files that cannot be loaded are bad input, not a crash of the poller mid-run
        self._check_revert()
        return self

    def _check_revert(self) -> None:
        """``revert_s`` must be what the map's reversion timers hold: 0 (no reversion) or a whole number
        of their steps within their range. Rounded by the register, 0.4 s would be written as 0, which
        a device reads as "never revert" (SunSpec model 704 ``WSetRvrtTms``: uint32 seconds)."""
        regmap = load_map(self.map)
        for sp in regmap.setpoints:
            if not sp.attr or not sp.revert_timer or not self.revert_s:  # a gateway writes attr set points
                continue
            p = regmap.point(sp.revert_timer)
            step = abs(p.scale)
            n = self.revert_s / step
            if not math.isfinite(n) or abs(n - round(n)) > 1e-9 or (p.min is not None and self.revert_s < p.min) or (
                    p.max is not None and self.revert_s > p.max):
                lo = max(step, p.min or 0.0)
                raise ValueError(f"device {self.id}: revert_s {self.revert_s:g}: {p.name} counts in steps of {step:g} s"
                                 + (f" up to {p.max:g} s" if p.max is not None else "")
                                 + f"; give 0 (no reversion) or a multiple of {step:g} s from {lo:g} s")

    def sslctx(self) -> ssl.SSLContext:
        """The TLS client context; ValueError naming the device and the file that cannot be loaded."""
        def why(exc: OSError) -> str:
            return str(getattr(exc, "reason", None) or exc.strerror or exc)

        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        except OSError as exc:  # ssl.SSLError too
            raise ValueError(f"device {self.id}: cafile {self.cafile}: {why(exc)}") from None
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.certfile:
            try:
                ctx.load_cert_chain(self.certfile, self.keyfile)
            except OSError as exc:
                key = f" / keyfile {self.keyfile}" if self.keyfile else ""
                raise ValueError(f"device {self.id}: certfile {self.certfile}{key}: {why(exc)}") from None
        return ctx


class ModbusLink:
    """The async Modbus connection to one device and its register image."""

    def __init__(self, cfg: DeviceConfig, regmap: RegisterMap | None = None):
        self.cfg = cfg
        self.map = regmap or load_map(cfg.map)
        self.image = RegisterImage(self.map, initial=False)
        self.client: Any = None
        self._sf_known = False
        # SunSpec maps: where the map's blocks sit on the device, found by walking its model chain
        # at every connect - [(nominal start, nominal end, shift)] of the holding registers
        self.shifts: list[tuple[int, int, int]] = []
        self._scan_problem: str | None = None
        # why the last connect() failed when the device answered (a SunSpec scan problem), else None
        self.problem: str | None = None

    def _make_client(self):
        c = self.cfg
        common = dict(timeout=c.timeout, retries=0, reconnect_delay=0)
        if c.transport == "tcp":
            return AsyncModbusTcpClient(c.host, port=c.port, **common)
        if c.transport == "rtu-tcp":
            return AsyncModbusTcpClient(c.host, port=c.port, framer=FramerType.RTU, **common)
        if c.transport == "tls":
            return AsyncModbusTlsClient(c.host, port=c.port, sslctx=c.sslctx(), **common)
        return AsyncModbusSerialClient(c.serial_port, baudrate=c.baudrate, parity=c.parity,
                                       stopbits=c.stopbits, bytesize=c.bytesize, **common)

    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    async def connect(self) -> bool:
        """One connection attempt (True when connected)."""
        if self.connected:
            return True
        self.problem = None
        ok = await self._open()
        self._sf_known = False
        if ok and self.map.sunspec:
            ok = await self._locate_models()
        if not ok:
            self.close()
        return bool(ok)

    async def _open(self) -> bool:
        """A new connection (True when connected)."""
        self.close()
        self.client = self._make_client()
        try:
            return bool(await asyncio.wait_for(self.client.connect(), self.cfg.timeout + 0.5))
        except (asyncio.TimeoutError, OSError, ModbusException, ssl.SSLError):
            return False

    async def _locate_models(self) -> bool:
        """Walk the device's SunSpec model chain and place the map's models where the device has
        them. False (logged once per distinct problem) if the device lacks a model of the map.

        A base address that does not answer in time is skipped, as pysunspec2's scan does (an RTU
        device behind a TCP gateway may stay silent where it has no registers); the timeout closed
        the link, so the next base is tried on a new connection."""
        answered = False  # a device that answered no request at all is silent, not without SunSpec

        async def read(address: int, count: int) -> list[int]:
            nonlocal answered
            if not self.connected and not await self._open():
                raise LinkError("reconnect failed")
            try:
                r = await self._call(self.client.read_holding_registers(address, count=count,
                                                                        device_id=self.cfg.unit))
            except DeviceError:
                answered = True
                raise
            answered = True
            return list(r.registers)[:count]

        try:
            base, found = await scan(read, refused=(DeviceError, LinkError))
            self.shifts = relocation(self.map, base, found)
        except (ScanError, DeviceError) as exc:
            if not answered:  # no answer to any request: the caller reports a device that does not answer
                return False
            msg = f"{self.cfg.id}: SunSpec scan of {self.cfg.host}:{self.cfg.port} unit {self.cfg.unit}: {exc}"
            if msg != self._scan_problem:
                log.warning("%s", msg)
            self._scan_problem = msg
            self.problem = f"SunSpec scan of unit {self.cfg.unit}: {exc}"
            return False
        except LinkError:
            return False
        self._scan_problem = None
        moved = [(s, sh) for s, _, sh in self.shifts if sh]
        if moved:
            log.info("%s: SunSpec models at %s", self.cfg.id,
                     ", ".join(f"{s}->{s + sh}" for s, sh in moved))
        return True

    def device_runs(self, table: str, address: int, count: int) -> list[tuple[int, int, int]]:
        """Split a request on map addresses into ``(map address, device address, count)`` runs."""
        if not self.shifts or table != "holding":
            return [(address, address, count)]
        out: list[tuple[int, int, int]] = []
        a, end = address, address + count
        while a < end:
            shift, stop = 0, end
            for s, e, sh in self.shifts:
                if s <= a < e:
                    shift, stop = sh, min(e, end)
                    break
                if a < s:
                    stop = min(s, end)
                    break
            if out and out[-1][1] + out[-1][2] == a + shift and out[-1][0] + out[-1][2] == a:
                out[-1] = (out[-1][0], out[-1][1], out[-1][2] + stop - a)
            else:
                out.append((a, a + shift, stop - a))
            a = stop
        return out

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    async def _call(self, coro):
        if not self.connected:
            coro.close()
            raise LinkError("not connected")
        try:
            r = await asyncio.wait_for(coro, self.cfg.timeout + 0.5)
        except (asyncio.TimeoutError, ModbusException, OSError) as exc:
            self.close()
            raise LinkError(str(exc) or type(exc).__name__) from exc
        if r.isError():
            code = getattr(r, "exception_code", 4)
            raise DeviceError(code)
        return r

    async def read_table(self, table: str, address: int, count: int) -> list[int]:
        c = self.client
        u = self.cfg.unit
        regs: list[int] = []
        for _, dev_addr, n in self.device_runs(table, address, count):
            if table == "input":
                r = await self._call(c.read_input_registers(dev_addr, count=n, device_id=u))
            else:  # holding, or a shared table (read with FC3)
                r = await self._call(c.read_holding_registers(dev_addr, count=n, device_id=u))
            got = list(r.registers)[:n]
            if len(got) != n:
                raise DeviceError(3, f"short answer {len(got)}/{n} registers")
            regs += got
        self.image.write(table, address, regs)
        return regs

    async def read_points(self, points: list[Point], plan: list[tuple[str, int, int]] | None = None) -> None:
        """Read ``points`` (and their scale factors) into the image, coalesced."""
        for table, addr, count in plan or self.map.read_plan(points):
            await self.read_table(table, addr, count)
        self._sf_known = True

    async def ensure_scale_factors(self, points: list[Point]) -> None:
        sfs = [sf for p in points if (sf := self.map.sf_point(p)) is not None]
        if sfs and not self._sf_known:
            await self.read_points(sfs)

    async def write_points(self, values: dict[str, float]) -> int:
        """Write points (engineering units), one FC16 request per contiguous run; returns the
        number of requests. Scale factors are read first when needed."""
        pts = [self.map.point(n) for n in values]
        await self.ensure_scale_factors(pts)
        with self.image.lock:
            for p in pts:
                self.image.set(p, values[p.name])
        runs: list[list[Point]] = []
        for p in sorted(pts, key=lambda q: (self.map.table_of(q), q.address)):
            if runs and self.map.table_of(runs[-1][-1]) == self.map.table_of(p) and runs[-1][-1].end == p.address \
                    and p.end - runs[-1][0].address <= 120:
                runs[-1].append(p)
            else:
                runs.append([p])
        for run in runs:
            table = self.map.table_of(run[0])
            if table == "input":
                raise ValueError(f"{run[0].name}: input registers cannot be written")
            start, end = run[0].address, run[-1].end
            regs = self.image.read(table, start, end - start)
            c = self.client
            for a, dev_addr, n in self.device_runs(table, start, end - start):
                part = regs[a - start : a - start + n]
                if n == 1:
                    await self._call(c.write_register(dev_addr, part[0], device_id=self.cfg.unit))
                else:
                    await self._call(c.write_registers(dev_addr, part, device_id=self.cfg.unit))
        return len(runs)

    def attr_value(self, attr: str) -> float | None:
        v = self.image.get_attr(attr)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class Backoff:
    """Exponential reconnect delay: backoff_min, x2, ... capped at backoff_max."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi
        self.cur = lo

    def next(self) -> float:
        d = self.cur
        self.cur = min(self.cur * 2.0, self.hi)
        return d

    def reset(self) -> None:
        self.cur = self.lo


def snapshot_outputs(sources, outputs, t: int | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """mosaik ``get_data`` of adapter populations: *sources* maps entity id -> an object whose
    ``snapshot()`` gives ``{device_id: {attr: value}}``; only attrs a device has are included
    (``events``: see :func:`events_outputs`, stamped with the simulated time *t*)."""
    data: dict[str, dict[str, dict[str, float]]] = {}
    for eid, attrs in outputs.items():
        snap = sources[eid].snapshot()
        data[eid] = {a: {dev: float(v[a]) for dev, v in snap.items() if a in v} for a in attrs if a != "events"}
    for eid, out in events_outputs(sources, outputs, t).items():
        data[eid].update(out)
    return data


class LinkEvents:
    """Drop / reconnect / exception / recovered transitions of one polled device, as event records.

    The polling task reports every answer (``good()``), Modbus exception (``exception(code)``) and
    missing answer (``lost(reason)``); a record is queued only when the device's state changes, so
    a device that stays away gives one ``drop`` however often it is retried. ``take()`` hands the
    queued records over (the adapter's non-persistent ``events`` output). Record fields: ``kind``,
    ``device``, ``role`` (meter/gateway), ``addr``, ``wall`` (UTC ISO time), ``detail``, ``down_s``
    (seconds since the device was last good, on ``reconnect`` / ``recovered``) and ``msg`` (one line).
    """

    def __init__(self, role: str, cfg: DeviceConfig):
        self.role, self.id = role, cfg.id
        self.addr = cfg.serial_port if cfg.transport == "rtu-serial" else f"{cfg.host}:{cfg.port}"
        self.state = "start"  # start | up | down | error
        self.t_bad: float | None = None
        self._lock = threading.Lock()
        self._queue: list[dict] = []

    def _emit(self, kind: str, detail: str, state: str, what: str | None = None) -> None:
        now = time.monotonic()
        rec = {"kind": kind, "device": self.id, "role": self.role, "addr": self.addr,
               "wall": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "detail": detail}
        if kind in ("reconnect", "recovered") and self.t_bad is not None:
            rec["down_s"] = round(now - self.t_bad, 3)
        if state in ("down", "error") and self.state not in ("down", "error"):
            self.t_bad = now
        what = what or {"drop": "no answer", "reconnect": "answering again", "exception": "exception response",
                        "recovered": "exception cleared"}[kind]
        extra = f" after {rec['down_s']:.1f} s" if "down_s" in rec else ""
        rec["msg"] = f"{self.role} {self.id} ({self.addr}): {what}{extra}" + (f" ({detail})" if detail else "")
        self.state = state
        with self._lock:
            self._queue.append(rec)

    def good(self) -> None:
        if self.state == "down":
            self._emit("reconnect", "", "up")
        elif self.state == "error":
            self._emit("recovered", "", "up")
        else:
            self.state = "up"

    def exception(self, code: int) -> None:
        if self.state != "error":
            self._emit("exception", f"Modbus exception {code}", "error")

    def lost(self, reason: str, answered: bool = False) -> None:
        """No (usable) answer: *answered* when the device answers but cannot be used (a SunSpec scan problem)."""
        if self.state != "down":
            if answered:
                self._emit("drop", reason, "down", what="answers, but cannot be used")
            else:
                self._emit("drop", reason if self.state != "start" else f"not reachable at start: {reason}", "down")

    def note(self, kind: str, detail: str, **fields) -> None:
        """Queue a record that is not a link transition (e.g. ``counter_reset``), state unchanged."""
        rec = {"kind": kind, "device": self.id, "role": self.role, "addr": self.addr,
               "wall": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "detail": detail,
               **fields, "msg": f"{self.role} {self.id} ({self.addr}): {detail}"}
        with self._lock:
            self._queue.append(rec)

    def take(self) -> list[dict]:
        with self._lock:
            out, self._queue = self._queue, []
        return out


def events_outputs(sources, outputs, t: int | None = None) -> dict:
    """The non-persistent ``events`` output of adapter populations: ``{eid: {"events": {device_id:
    [record, ...]}}}`` for the entities asked for that have records (*sources*: eid -> object whose
    ``link_events()`` gives ``{device_id: LinkEvents}``)."""
    data: dict = {}
    for eid, attrs in outputs.items():
        if "events" in attrs:
            recs = {dev: r for dev, ev in sources[eid].link_events().items() if (r := ev.take())}
            if t is not None:
                recs = {dev: [{"t": t, **rec} for rec in r] for dev, r in recs.items()}
            if recs:
                data.setdefault(eid, {})["events"] = recs
    return data


async def reconnect(dev, backoff: "Backoff") -> bool:
    """(Re)connect a polled device whose link is down: *dev* has ``link``, ``lock``, ``connected``,
    ``stats`` and ``events`` (:class:`LinkEvents`). True when connected now; False after a failed attempt (the backoff delay is slept)."""
    with dev.lock:
        dev.connected = False
    if not await dev.link.connect():
        dev.stats["connect_fail"] += 1
        if dev.link.problem:
            dev.events.lost(dev.link.problem, answered=True)
        else:
            dev.events.lost("connection refused or timed out")
        await asyncio.sleep(backoff.next())
        return False
    backoff.reset()
    dev.stats["connects"] += 1
    with dev.lock:
        dev.connected = True
    return True
