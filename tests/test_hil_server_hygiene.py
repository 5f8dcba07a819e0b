"""Device server / emulator towards bad clients: exception responses carry the request's
function code + 0x80, malformed frames are logged once per connection without tracebacks (1000
of them against the emulator CLI), idle connections are closed, the connection limit holds, and
the served register image is consistent (S, PF derived from P and Q)."""

import math
import random
import re
import socket
import struct
import subprocess
import sys
import time

import pytest
from pyModbusTCP.client import ModbusClient

from hil.aio import BackgroundLoop
from hil.device_server import DeviceServer, power_triangle
from hil.registers import decode_raw
from hil.testing import ThreadedEmulators
from tests.conftest import wait_until


@pytest.fixture
def loop():
    bg = BackgroundLoop("test-hygiene").start()
    yield bg
    bg.stop()


def _serve(loop, **kw):
    srv = DeviceServer({"h1": (1, "sdm630"), "m1": (2, "sunspec_meter")}, **kw)
    loop.run(srv.start(), timeout=5)
    return srv


def _mbap(pdu: bytes, unit: int = 1, tid: int = 7) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _ask(port: int, frame: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(frame)
        return s.recv(300)


@pytest.mark.parametrize("pdu,fc,code", [
    (b"\x41\x00\x00", 0x41, 1),                          # unknown function code
    (b"\x08\x00\x00\x12\x34", 0x08, 1),                  # diagnostics: not served
    (b"\x2b\x0e\x01\x00", 0x2B, 1),                      # device identification: not served
    (b"\x01\x00\x00\x00\x08", 0x01, 1),                  # coils: not served
    (struct.pack(">BHH", 4, 0x34, 126), 0x04, 3),        # 126 registers: count outside 1..125
    (struct.pack(">BHH", 3, 40000, 126), 0x03, 3),
    (struct.pack(">BHH", 3, 40000, 0), 0x03, 3),
    (struct.pack(">BHHB", 16, 40000, 2, 3) + b"\x00\x01\x00", 0x10, 3),  # byte count != 2 x count
    (b"\x03\x9c", 0x03, 3),                              # truncated request
])
def test_refused_requests_answer_request_code_plus_0x80(loop, pdu, fc, code):
    srv = _serve(loop)
    try:
        ans = _ask(srv.port, _mbap(pdu))
        tid, pid, length, unit, afc, acode = struct.unpack(">HHHBBB", ans)
        assert (tid, pid, length, unit) == (7, 0, 3, 1)
        assert (afc, acode) == (fc + 0x80, code)
        assert srv.connection_stats()["bad_frames"] == 1
    finally:
        loop.run(srv.stop(), timeout=5)


def test_bad_frames_logged_once_per_connection(loop, caplog):
    srv = _serve(loop)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
            for k in range(20):
                s.sendall(_mbap(b"\x41\x00\x00", tid=k))
                assert s.recv(300)[7] == 0xC1
        with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
            s.sendall(b"\x00\x01\x00\x05\x00\x06\x01\x03\x00\x00\x00\x01")  # protocol id 5
            assert s.recv(300) == b""  # not Modbus/TCP: the stream is closed
        c = ModbusClient(host="127.0.0.1", port=srv.port, unit_id=1, timeout=2, auto_open=True)
        assert c.read_input_registers(0x34, 2) is not None  # still serving
        c.close()
        wait_until(lambda: srv.open_connections == 0, 2)
    finally:
        loop.run(srv.stop(), timeout=5)
    warn = [r.getMessage() for r in caplog.records if r.name == "hil.modbus_server" and r.levelname == "WARNING"]
    assert len(warn) == 2 and all("\n" not in m for m in warn)
    assert "function code 65 not served" in warn[0] and "protocol id 5" in warn[1]
    assert srv.connection_stats()["bad_frames"] == 21


def _malformed_frames(n: int, seed: int):
    """Seeded mutations of valid requests plus raw garbage."""
    rng = random.Random(seed)
    valid = [struct.pack(">BHH", 4, 0x34, 2), struct.pack(">BHH", 3, 0, 4),
             struct.pack(">BHHBH", 16, 2, 1, 2, 30), struct.pack(">BHH", 6, 2, 30)]
    for i in range(n):
        pdu = bytearray(rng.choice(valid))
        kind = rng.random()
        if kind < 0.3:
            pdu[0] = rng.choice([0, 7, 8, 11, 12, 17, 20, 21, 24, 43, 0x41, 0x80, 0xFF])
        elif kind < 0.6:
            pos = rng.randrange(1, len(pdu))
            pdu[pos] = rng.getrandbits(8)
            pdu = pdu[: rng.randint(1, len(pdu))]
        elif kind < 0.8:
            pdu += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 10)))
        else:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))
            continue
        yield _mbap(bytes(pdu), unit=rng.choice([0, 1, 2, 255]), tid=i & 0xFFFF)


def test_1000_malformed_frames_against_the_emulator_cli():
    proc = subprocess.Popen([sys.executable, "-m", "hil.emulator", "sdm630", "--port", "0", "--duration", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        conns, s = 0, None
        for frame in _malformed_frames(1000, seed=15):
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                conns += 1
            try:
                s.sendall(frame)
                s.settimeout(0.05)
                s.recv(300)
            except socket.timeout:
                pass
            except OSError:
                s.close()
                s = None
        if s is not None:
            s.close()
        c = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=2, auto_open=True)
        assert c.read_input_registers(0x34, 2) is not None  # the device is still serving
        c.close()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert 1 <= len(lines) <= conns, (conns, lines[:5])  # at most one line per connection
    assert len(err) < 300 * conns


def test_idle_connections_are_closed(loop):
    srv = _serve(loop, idle_timeout=0.4)
    try:
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        busy = ModbusClient(host="127.0.0.1", port=srv.port, unit_id=1, timeout=2, auto_open=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.2:  # a client that keeps asking stays connected
            assert busy.read_input_registers(0x34, 2) is not None
            time.sleep(0.1)
        assert idle.recv(10) == b""  # closed by the server
        assert time.monotonic() - t0 < 2.5
        assert busy.is_open
        assert srv.connection_stats()["idle_closed"] == 1
        busy.close()
        idle.close()
    finally:
        loop.run(srv.stop(), timeout=5)


def test_connection_limit(loop):
    srv = _serve(loop, max_connections=3)
    try:
        held = [ModbusClient(host="127.0.0.1", port=srv.port, unit_id=1, timeout=2, auto_open=True)
                for _ in range(3)]
        for c in held:
            assert c.read_input_registers(0x34, 2) is not None
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
        assert extra.recv(10) == b""  # over the limit: closed at once
        extra.close()
        assert srv.connection_stats()["refused_connections"] == 1
        held[0].close()
        wait_until(lambda: srv.open_connections == 2, 2)
        again = ModbusClient(host="127.0.0.1", port=srv.port, unit_id=1, timeout=2, auto_open=True)
        assert again.read_input_registers(0x34, 2) is not None
        for c in [again, *held[1:]]:
            c.close()
    finally:
        loop.run(srv.stop(), timeout=5)


def _f32(c, addr):
    return decode_raw("float32", c.read_input_registers(addr, 2))


@pytest.mark.parametrize("P,Q", [(0.0, 0.0648), (3.0, -0.5), (-2.0, 0.0), (0.0, 0.0)])
def test_served_image_is_consistent(loop, P, Q):
    srv = _serve(loop)
    try:
        srv.update("h1", {"P": P, "Q": Q})
        srv.update("m1", {"P": P, "Q": Q})
        c = ModbusClient(host="127.0.0.1", port=srv.port, unit_id=1, timeout=2, auto_open=True)
        p, s, q, pf = _f32(c, 0x34), _f32(c, 0x38), _f32(c, 0x3C), _f32(c, 0x3E)
        assert (p, q) == (pytest.approx(P * 1000), pytest.approx(Q * 1000))
        assert s == pytest.approx(math.hypot(p, q), rel=1e-6)
        assert pf == pytest.approx(abs(p) / s if s else 1.0, rel=1e-6)
        # phases (single-phase household: all on L1) add up to the totals; I = S / V
        phase = {n: [_f32(c, a + 2 * k) for k in range(3)]
                 for n, a in (("V", 0x00), ("I", 0x06), ("P", 0x0C), ("S", 0x12), ("Q", 0x18))}
        assert sum(phase["P"]) == pytest.approx(p) and sum(phase["Q"]) == pytest.approx(q)
        assert sum(phase["S"]) == pytest.approx(s)
        assert phase["I"][0] == pytest.approx(s / phase["V"][0]) and _f32(c, 0x30) == pytest.approx(sum(phase["I"]))
        c.close()
        # SunSpec meter: int16 registers with scale factors, as a client decodes them
        W, VA, VAR, PF = (srv.get_point("m1", f"m203.{n}") for n in ("W", "VA", "VAR", "PF"))
        assert VA == pytest.approx(math.hypot(W, VAR), abs=0.5)
        assert PF == pytest.approx(100 * (abs(W) / VA if VA else 1.0), abs=0.5)
    finally:
        loop.run(srv.stop(), timeout=5)


def test_power_triangle():
    assert power_triangle(3.0, 4.0) == (5.0, 0.6)
    assert power_triangle(0.0, 0.0) == (0.0, 1.0)
    assert power_triangle(0.0, 64.8) == (64.8, 0.0)
    assert all(math.isnan(x) for x in power_triangle(math.nan, 1.0))


@pytest.mark.parametrize("kind", ["sdm630", "em24", "sunspec-meter"])
def test_emulated_image_is_consistent(kind):
    with ThreadedEmulators() as lab:
        emu = lab.start(kind, seed=21, time_scale=600.0, pv_kwp=4.0, start_tod=11 * 3600)
        for _ in range(5):
            time.sleep(0.15)
            with emu.server.image("dev").lock:
                P, Q, S, PF = (emu.quantity(x) for x in ("P", "Q", "S", "PF"))
            tol = 1.0 if kind != "sdm630" else 1e-3  # register resolution: 1 W / 0.1 W / float32
            assert S == pytest.approx(math.hypot(P, Q), abs=tol)
            assert PF == pytest.approx(abs(P) / S if S else 1.0, abs=0.011)


@pytest.mark.parametrize("opts,what", [
    (["--idle-timeout", "-1"], "idle_timeout"),
    (["--max-connections", "-2"], "max_connections"),
    (["--tls-cert", "/nonexistent/cert.pem"], "--tls-cert /nonexistent/cert.pem"),
    (["--map", "/nonexistent/map.yaml"], "/nonexistent/map.yaml"),
])
def test_emulator_cli_bad_options_exit_2_with_one_line(opts, what):
    r = subprocess.run([sys.executable, "-m", "hil.emulator", "sdm630", "--port", "0", "--duration", "1", *opts],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and what in r.stderr and "Traceback" not in r.stderr


def _crc(frame: bytes) -> bytes:
    from pymodbus.framer import FramerRTU
    return FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def test_rtu_over_tcp_refusals_and_crc_errors(loop):
    srv = DeviceServer({"h1": (1, "sdm630")}, framer="rtu")
    loop.run(srv.start(), timeout=5)
    try:
        req = struct.pack(">BBHH", 1, 4, 0x34, 126)
        ans = _ask(srv.port, req + _crc(req))
        assert ans == b"\x01\x84\x03" + _crc(b"\x01\x84\x03")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=0.5) as s:
            s.sendall(req + b"\x00\x00")  # bad CRC: dropped, no answer
            with pytest.raises(socket.timeout):
                s.recv(10)
            ok = struct.pack(">BBHH", 1, 4, 0x34, 2)
            s.settimeout(2)
            s.sendall(ok + _crc(ok))
            assert s.recv(20)[:3] == b"\x01\x04\x04"  # the stream recovers
        assert srv.connection_stats()["bad_frames"] == 2
    finally:
        loop.run(srv.stop(), timeout=5)
