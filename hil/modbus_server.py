"""pymodbus server glue with the behaviour a lab device needs towards bad clients.

pymodbus 3.16 answers an undecodable request (unknown function code, a register count outside
1..125) with function code 0x80, logs datastore failures with a traceback and a frame dump, keeps
a TCP stream whose MBAP header is garbage waiting forever, and never closes idle connections.
Here, per connection:

* every request is checked before pymodbus decodes it (:func:`check_request`); a refused one is
  answered with the exception response ``request function code + 0x80`` (code 1 ILLEGAL FUNCTION
  for a function we do not serve, 3 ILLEGAL DATA VALUE for a bad count or length - Modbus
  Application Protocol V1.1b3, sections 6 and 7);
* bad frames (refused requests, CRC errors, garbage headers, failing requests) are logged ONCE
  per connection as one WARNING line, counted in ``stats["bad_frames"]`` and summed up in one
  INFO line when the connection closes; nothing reaches stderr as a traceback;
* a TCP stream whose MBAP header is not Modbus (protocol id != 0, length outside 2..254) cannot
  be resynchronised: the connection is closed;
* connections beyond ``max_connections`` are closed at once, and connections without a request
  for ``idle_timeout`` seconds are closed (half-open clients hold no slot forever).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerRTU, FramerSocket, FramerTLS, FramerType
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer, ModbusTlsServer
from pymodbus.server.requesthandler import ServerRequestHandler

log = logging.getLogger(__name__)

SERVED_FCS = {3, 4, 6, 16, 22, 23}  # register functions; coils/discrete inputs are not served
MAX_READ = 125   # registers per FC3/FC4/FC23 read (Modbus Application Protocol V1.1b3, 6.3/6.4)
MAX_WRITE = 123  # registers per FC16 write (ibid. 6.12)
MAX_RW_WRITE = 121  # registers written by FC23 (ibid. 6.17)


def check_request(pdu: bytes) -> tuple[int, str] | None:
    """``(exception code, reason)`` for a request PDU we refuse, None for one we serve."""
    fc, body = pdu[0], pdu[1:]
    if fc not in SERVED_FCS:
        return ExcCodes.ILLEGAL_FUNCTION, f"function code {fc} not served"
    n = len(body)

    def count(at: int) -> int:
        return int.from_bytes(body[at:at + 2], "big")

    if fc in (3, 4):
        if n != 4:
            return ExcCodes.ILLEGAL_VALUE, f"fc {fc}: {n} data bytes, 4 expected"
        if not 1 <= count(2) <= MAX_READ:
            return ExcCodes.ILLEGAL_VALUE, f"fc {fc}: register count {count(2)} outside 1..{MAX_READ}"
    elif fc == 6 and n != 4:
        return ExcCodes.ILLEGAL_VALUE, f"fc 6: {n} data bytes, 4 expected"
    elif fc == 22 and n != 6:
        return ExcCodes.ILLEGAL_VALUE, f"fc 22: {n} data bytes, 6 expected"
    elif fc == 16:
        if n < 5 or not 1 <= count(2) <= MAX_WRITE or body[4] != 2 * count(2) or n != 5 + body[4]:
            return ExcCodes.ILLEGAL_VALUE, f"fc 16: count/byte count/length inconsistent ({pdu[:8].hex()})"
    elif fc == 23:
        if (n < 9 or not 1 <= count(2) <= MAX_READ or not 1 <= count(6) <= MAX_RW_WRITE
                or body[8] != 2 * count(6) or n != 9 + body[8]):
            return ExcCodes.ILLEGAL_VALUE, f"fc 23: counts/byte count/length inconsistent ({pdu[:12].hex()})"
    return None


class _Refused:
    """A request answered with an exception response without reaching the datastore."""

    def __init__(self, function_code: int, code: int):
        self.function_code = function_code
        self.code = code
        self.dev_id = 0
        self.transaction_id = 0


class _Unframeable(Exception):
    """The byte stream is not Modbus: the connection is closed."""


class _CheckedFramer:
    """Mixin over a pymodbus framer: check each request PDU before pymodbus decodes it."""

    on_bad: Any = None  # callback(reason) set by the connection's handler

    def handleFrame(self, data: bytes, exp_devid: int, exp_tid: int):  # noqa: N802 - pymodbus API
        used = 0
        while used < len(data):
            n, dev_id, tid, frame = self.decode(data[used:])
            used += n
            if not n:
                return used, None
            if not frame:
                self.on_bad("frame dropped (bad CRC, or too short)")
                continue
            refusal = check_request(frame)
            if refusal is None:
                pdu = self.decoder.decode(frame)
                if pdu is None:
                    refusal = (ExcCodes.ILLEGAL_VALUE, f"fc {frame[0]}: request not decodable")
            if refusal is not None:
                self.on_bad(refusal[1])
                pdu = _Refused(frame[0], refusal[0])
            pdu.dev_id, pdu.transaction_id = dev_id, tid
            return used, pdu
        return used, None


class CheckedSocketFramer(_CheckedFramer, FramerSocket):
    def decode(self, data: bytes):
        if len(data) >= 6:
            pid, length = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:6], "big")
            if pid != 0 or not 2 <= length <= 254:
                raise _Unframeable(f"not a Modbus/TCP header (protocol id {pid}, length {length})")
        return super().decode(data)


class CheckedTlsFramer(_CheckedFramer, FramerTLS):
    pass


class CheckedRtuFramer(_CheckedFramer, FramerRTU):
    pass


class _Handler(ServerRequestHandler):
    """One client connection: request checks, bad-frame logging, idle time."""

    def __init__(self, owner, *args):
        super().__init__(owner, *args)
        self.framer.on_bad = self.note_bad
        self.bad = 0
        self.last_active = time.monotonic()
        self.peer = "?"

    def callback_connected(self) -> None:
        super().callback_connected()
        srv = self.server
        if self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or srv.comm_params.source_address[0])
        srv.note_connection(self)

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        if self.bad > 1:
            log.info("%s: %s: %d bad frames on this connection", self.server.name, self.peer, self.bad)

    def note_bad(self, reason: str) -> None:
        self.bad += 1
        self.server.stats["bad_frames"] += 1
        if self.bad == 1:
            log.warning("%s: %s: bad frame: %s (further bad frames on this connection are counted, "
                        "not logged)", self.server.name, self.peer, reason)

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        self.last_active = time.monotonic()
        try:
            return super().callback_data(data, addr)
        except _Unframeable as exc:
            self.note_bad(f"{exc}; connection closed")
            self.close()
            return len(data)

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if not pdu:
            return
        if isinstance(pdu, _Refused):
            response = ExceptionResponse(pdu.function_code, pdu.code)
        else:
            try:
                response = await pdu.datastore_update(self.server.context, pdu.dev_id)
            except NoSuchIdException:
                self.note_bad(f"unit {pdu.dev_id} not served")
                response = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
            except Exception as exc:  # noqa: BLE001 - one log line, the client gets exception 4
                self.note_bad(f"fc {pdu.function_code} failed: {type(exc).__name__}: {exc}")
                response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.server_send(response, self.last_addr)


class _Guarded:
    """Mixin over a pymodbus server: checked framing, connection limit and idle timeout."""

    def setup_guards(self, name: str, framer_cls: type, idle_timeout: float | None,
                     max_connections: int | None) -> None:
        self.framer = framer_cls
        self.name = name
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.stats = {"bad_frames": 0, "connections": 0, "refused_connections": 0, "idle_closed": 0}
        self._reaper: asyncio.Task | None = None

    def callback_new_connection(self):
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)

    def note_connection(self, handler: _Handler) -> None:
        self.stats["connections"] += 1
        if self.max_connections is not None and len(self.active_connections) > self.max_connections:
            self.stats["refused_connections"] += 1
            if self.stats["refused_connections"] == 1 or self.stats["refused_connections"] % 100 == 0:
                log.warning("%s: %s: connection refused, %d connections open (limit %d; %d refused so far)",
                            self.name, handler.peer, len(self.active_connections) - 1,
                            self.max_connections, self.stats["refused_connections"])
            handler.close()
            return
        if self.idle_timeout and self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        period = min(1.0, self.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for h in list(self.active_connections.values()):
                if isinstance(h, _Handler) and now - h.last_active > self.idle_timeout:
                    self.stats["idle_closed"] += 1
                    log.info("%s: %s: closed after %.0f s without a request", self.name, h.peer,
                             self.idle_timeout)
                    h.close()

    async def shutdown(self):
        task, self._reaper = self._reaper, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await super().shutdown()


class GuardedTcpServer(_Guarded, ModbusTcpServer):
    pass


class GuardedTlsServer(_Guarded, ModbusTlsServer):
    pass


class GuardedSerialServer(_Guarded, ModbusSerialServer):
    pass


def make_server(devices: list, *, name: str, host: str, port: int, framer: str = "socket",
                sslctx=None, serial: dict | None = None, idle_timeout: float | None = 60.0,
                max_connections: int | None = 64):
    """A guarded pymodbus server: Modbus/TCP (``framer="socket"``), RTU over TCP (``"rtu"``),
    TLS (``sslctx``) or serial RTU (``serial={"port": "/dev/ttyUSB0", "baudrate": ...}``)."""
    if serial is not None:
        srv = GuardedSerialServer(devices, **serial)
        srv.setup_guards(name, CheckedRtuFramer, None, None)
    elif sslctx is not None:
        srv = GuardedTlsServer(devices, address=(host, port), sslctx=sslctx)
        srv.setup_guards(name, CheckedTlsFramer, idle_timeout, max_connections)
    else:
        srv = GuardedTcpServer(devices, address=(host, port),
                               framer=FramerType.RTU if framer == "rtu" else FramerType.SOCKET)
        srv.setup_guards(name, CheckedRtuFramer if framer == "rtu" else CheckedSocketFramer,
                         idle_timeout, max_connections)
    return srv
