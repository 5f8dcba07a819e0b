"""Device server: read by an independent client (pyModbusTCP), write checks, robustness, TLS,
RTU over TCP, set-point reversion, and the mosaik DeviceServerSim."""

import math
import socket
import ssl
import struct
import time

import pytest
from pyModbusTCP.client import ModbusClient

from hil.aio import BackgroundLoop
from hil.device_server import DeviceServer, battery_readings
from hil.device_server_sim import DeviceServerSim
from hil.registers import encode_raw
from hil.testing import make_test_certificate

DEVICES = {"h1": (1, "sdm630"), "h2": (2, "em24"), "b1": (3, "sunspec_battery"), "m1": (4, "sunspec_meter")}


@pytest.fixture
def loop():
    bg = BackgroundLoop("test-server").start()
    yield bg
    bg.stop()


@pytest.fixture
def served(loop):
    srv = DeviceServer(DEVICES)
    loop.run(srv.start(), timeout=5)
    yield srv
    loop.run(srv.stop(), timeout=5)


def client(srv, unit):
    return ModbusClient(host="127.0.0.1", port=srv.port, unit_id=unit, timeout=2.0, auto_open=True)


def f32_be(regs):
    return struct.unpack(">f", struct.pack(">HH", *regs))[0]


async def _read_p(link):
    """Connect *link*, read its P point once, close; the value in kW."""
    assert await link.connect()
    await link.read_points([link.map.by_attr("P")])
    v = link.attr_value("P")
    link.close()
    return v


def test_binds_loopback_on_a_free_port(served):
    assert served.host == "127.0.0.1" and served.port > 0


def test_independent_client_reads_float_big_endian(served):
    served.update("h1", {"P": 3.25, "Q": -0.5, "E_imp": 1_234_500.0, "E_exp": 42_000.0})
    c = client(served, 1)
    regs = c.read_input_registers(0x34, 2)
    assert regs is not None
    # big-endian word order: high word first
    assert regs == [0x454B, 0x2000]  # 3250.0 W as IEEE-754 0x454B2000
    assert f32_be(regs) == 3250.0
    assert f32_be(c.read_input_registers(0x3C, 2)) == -500.0
    assert f32_be(c.read_input_registers(0x48, 2)) == pytest.approx(1234.5)  # kWh
    assert f32_be(c.read_input_registers(0x4A, 2)) == pytest.approx(42.0)
    # one block read across the meter's small reserved gaps
    block = c.read_input_registers(0x34, 0x4C - 0x34)
    assert block is not None and f32_be(block[0:2]) == 3250.0 and f32_be(block[20:22]) == pytest.approx(1234.5)
    # static defaults
    assert f32_be(c.read_input_registers(0x46, 2)) == 50.0
    c.close()


def test_independent_client_reads_em24_low_word_first(served):
    served.update("h2", {"P": -2.5})
    c = client(served, 2)
    regs = c.read_holding_registers(0x28, 2)
    assert regs == [0x9E58, 0xFFFF]
    assert struct.unpack(">i", struct.pack(">HH", regs[1], regs[0]))[0] == -25000
    assert c.read_input_registers(0x28, 2) == regs  # EM24 answers FC3 and FC4 alike
    c.close()


def test_out_of_range_write_refused_with_code_3(served):
    c = client(served, 3)
    wset = 40134 + 24
    ok = c.write_multiple_registers(wset, encode_raw("int32", -2000))
    assert ok and served.pop_writes() == {"b1": {"P_bat_set": 2.0}}
    assert not c.write_multiple_registers(wset, encode_raw("int32", -9000))  # max 5000 W
    assert c.last_except == 3
    assert served.get_point("b1", "m704.WSet") == -2000.0  # unchanged
    assert served.pop_writes() == {}
    # float32 setting of the SDM630: demand period 0..60 min
    c1 = client(served, 1)
    assert not c1.write_multiple_registers(0x0002, encode_raw("float32", 99.0))
    assert c1.last_except == 3
    assert c1.write_multiple_registers(0x0002, encode_raw("float32", 30.0))
    assert served.get_point("h1", "demand_period") == 30.0
    c.close()
    c1.close()


def test_read_only_write_refused_with_code_2(served):
    c = client(served, 3)
    assert not c.write_single_register(40070 + 47, 123)  # m802.W is read-only
    assert c.last_except == 2
    assert not c.write_single_register(40000, 1)  # SunS marker
    assert c.last_except == 2
    # a write spanning a writable and a read-only register is refused as a whole
    before = served.get_point("b1", "m704.WSetRvrtTms")
    assert not c.write_multiple_registers(40134 + 33, [0, 5, 7])  # WSetRvrtTms + WSetRvrtRem
    assert c.last_except == 2 and served.get_point("b1", "m704.WSetRvrtTms") == before
    # unmapped register, coils, unknown unit
    c1 = client(served, 1)
    assert c1.read_input_registers(0x0200, 2) is None and c1.last_except == 2
    assert c1.read_coils(0, 1) is None and c1.last_except == 1
    assert client(served, 77).read_holding_registers(0, 1) is None
    c.close()
    c1.close()


def test_malformed_requests_do_not_kill_the_server(served):
    junk = [
        b"\xff" * 64,                                          # garbage
        b"\x00\x01\x00\x00\x00\x02\x01\x99",                   # unknown function code
        b"\x00\x02\x00\x00\x00\x06\x01\x04\x00",              # truncated read
        b"\x00\x03\x00\x00\xff\xff\x01\x03\x00\x00\x00\x01",   # absurd length field
        b"\x00\x04\x00\x00\x00\x06\x01\x03\xff\xff\x00\x7d",   # read past 65535
        b"\x00\x05\x00\x00\x00\x06\x01\x04\x00\x00\x07\xd0",   # count 2000 (> 125)
        b"\x00\x06\x00\x00\x00\x09\x03\x10\x9c\xde\x00\x02\x02\x00\x01",  # byte count mismatch
    ]
    for payload in junk:
        s = socket.create_connection(("127.0.0.1", served.port), timeout=2)
        s.sendall(payload)
        s.settimeout(0.3)
        try:
            s.recv(256)
        except OSError:
            pass
        s.close()
    served.update("h1", {"P": 1.0})
    c = client(served, 1)
    assert f32_be(c.read_input_registers(0x34, 2)) == 1000.0
    c.close()


def test_setpoint_reversion_in_the_server(served):
    c = client(served, 3)
    # the gateway-style atomic write: WSetEna..WSetRvrtTms (m704 offsets 22..34)
    vals = {"WSetEna": 1, "WSetMod": 1, "WSet": -1500, "WSetRvrt": 0, "WSetPct": 0,
            "WSetPctRvrt": 0, "WSetEnaRvrt": 1, "WSetRvrtTms": 1}
    regs = (encode_raw("uint16", 1) + encode_raw("uint16", 1) + encode_raw("int32", -1500)
            + encode_raw("int32", 0) + encode_raw("int16", 0) * 2 + encode_raw("uint16", 1)
            + encode_raw("uint32", 1))
    assert len(vals) == 8 and len(regs) == 11
    assert c.write_multiple_registers(40134 + 22, regs)
    assert served.pop_writes() == {"b1": {"P_bat_set": 1.5}}
    assert served.get_point("b1", "m704.WSetRvrtRem") == 1.0
    time.sleep(1.3)
    assert served.get_point("b1", "m704.WSet") == 0.0
    assert served.pop_writes() == {"b1": {"P_bat_set": 0.0}}
    assert served.stats()["b1"]["reverts"] == 1
    c.close()


def test_a_set_point_without_attr_reverts_in_the_server(served):
    """SunSpec 704 WMaxLimPct (no mosaik attr) has its own reversion timer: a write to its group arms it,
    WMaxLimPctRvrtRem counts down, and at the end the limit takes WMaxLimPctRvrt, reported as a point
    write only."""
    m = served.devices["b1"].map
    c = client(served, 3)
    regs = encode_raw("uint16", 1) + encode_raw("uint16", 20) + encode_raw("uint16", 80) + encode_raw("uint16", 1)
    assert c.write_multiple_registers(m.point("m704.WMaxLimPctEna").address, regs + encode_raw("uint32", 30))
    assert served.get_point("b1", "m704.WMaxLimPct") == 20.0
    assert served.get_point("b1", "m704.WMaxLimPctRvrtRem") == 30.0
    served.pop_point_writes()
    assert served.check_reverts(time.monotonic() + 31) == [("b1", "m704.WMaxLimPct")]
    assert served.get_point("b1", "m704.WMaxLimPct") == 80.0
    assert served.get_point("b1", "m704.WMaxLimPctRvrtRem") == 0.0
    assert served.pop_point_writes() == {"b1": {"m704.WMaxLimPct": 80.0}}
    assert served.pop_writes() == {}  # no attr to report (and P_bat_set did not revert)
    c.close()


@pytest.mark.parametrize("name, raw", [
    ("m704.PFWInjEna", [1]), ("m704.PFWInj.PF", [900]), ("m704.PFWAbsRvrtTms", [0, 30]),
    ("m704.VarSetEna", [1]), ("m704.VarSet", encode_raw("int32", 1000)), ("m704.VarSetMod", [0]),
    ("m704.WRmp", [10]), ("m704.VarRmp", [10]), ("m704.AntiIslEna", [1]),
])
def test_controls_the_battery_cannot_honour_are_refused(served, name, raw):
    """The battery has no reactive power and no ramps: a write that would change those controls is
    refused with exception 3 (ILLEGAL DATA VALUE); writing what it does is accepted."""
    p = served.devices["b1"].map.point(name)
    c = client(served, 3)
    before = served.get_point("b1", name)
    assert not c.write_multiple_registers(p.address, raw)
    assert c.last_except == 3 and served.get_point("b1", name) == before
    assert c.write_multiple_registers(p.address, served.image("b1").raw_registers(p))
    c.close()


def test_served_meter_values_follow_from_v_p_and_q(served):
    def g(name):
        return served.get_point("m1", f"m203.{name}")

    served.update("m1", {"P": -1.234, "Q": 0.1, "V": 231.4})
    assert g("PhV") == g("PhVphA") == g("PhVphB") == g("PhVphC") == 231.4
    assert g("PPV") == g("PhVphAB") == g("PhVphCA") == pytest.approx(231.4 * math.sqrt(3), abs=0.05)
    assert g("A") == g("AphA") == pytest.approx(math.hypot(1234, 100) / 231.4, abs=0.006)
    served.update("m1", {"V": 225.0})  # a new voltage alone: the phases and the current follow
    assert g("PhVphC") == 225.0 and g("A") == pytest.approx(math.hypot(1234, 100) / 225.0, abs=0.006)


def test_served_battery_values_follow_from_its_power_and_soc(served):
    """A served battery charging 2.5 kW (SunSpec W = -2500) at SoC 42 % reads as the emulated one."""
    served.update("b1", {"P_bat": 2.5, "soc": 0.42})
    want = battery_readings(-2500.0, 0.42, 0.1, 0.95)
    assert served.get_point("b1", "m802.ChaSt") == want["chast"] == 4  # CHARGING
    assert served.get_point("b1", "m802.A") == pytest.approx(want["A_dc"], abs=0.05) and want["A_dc"] < -40
    assert served.get_point("b1", "m802.V") == pytest.approx(want["V_dc"], abs=0.05)
    assert served.get_point("b1", "m802.DoD") == 58.0


def test_sunspec_model_1_da_is_the_unit_id(served):
    assert (served.get_point("m1", "m1.DA"), served.get_point("b1", "m1.DA")) == (4, 3)
    # a client may write the address it is on; another one is refused (exception 3), since the device
    # would go on answering on unit 4 (before, 7 was stored and read back while unit 7 did not answer)
    da = served.image("m1").map.point("m1.DA").address
    c = client(served, 4)
    assert c.write_single_register(da, 4)
    assert not c.write_single_register(da, 7) and c.last_except == 3
    assert served.get_point("m1", "m1.DA") == 4
    c.close()


def test_tls(loop, tmp_path):
    cert, key = make_test_certificate(tmp_path)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    srv = DeviceServer({"h1": (1, "sdm630")}, sslctx=sctx)
    loop.run(srv.start(), timeout=5)
    try:
        srv.update("h1", {"P": 2.0})
        from hil.client import DeviceConfig, ModbusLink

        link = ModbusLink(DeviceConfig(id="h1", port=srv.port, transport="tls", cafile=str(cert)))

        assert loop.run(_read_p(link), timeout=10) == pytest.approx(2.0)
        # a plain-TCP client gets nothing from a TLS server
        c = client(srv, 1)
        c.timeout = 0.5
        assert c.read_input_registers(0x34, 2) is None
        c.close()
    finally:
        loop.run(srv.stop(), timeout=5)


def test_rtu_over_tcp(loop):
    srv = DeviceServer({"h1": (5, "sdm630")}, framer="rtu")
    loop.run(srv.start(), timeout=5)
    try:
        srv.update("h1", {"P": 0.75})
        from hil.client import DeviceConfig, ModbusLink

        link = ModbusLink(DeviceConfig(id="h1", port=srv.port, unit=5, transport="rtu-tcp"))

        assert loop.run(_read_p(link), timeout=10) == pytest.approx(0.75)
    finally:
        loop.run(srv.stop(), timeout=5)


def test_device_server_sim_mosaik_level():
    sim = DeviceServerSim()
    meta = sim.init("DS", time_resolution=0.001, step_size=1000)
    assert "P_bat_set" in meta["models"]["DeviceServer"]["attrs"]
    ents = sim.create(1, "DeviceServer", devices={"d1.h001": {"unit": 1, "map": "sunspec_battery"},
                                                   "d1.h002": [2, "sdm630"]})
    eid = ents[0]["eid"]
    host, port = sim.address(eid)
    assert host == "127.0.0.1"
    try:
        inputs = {eid: {"P_bat": {"hh-0": {"d1.h001": 1.2, "d1.h999": 9.0}},
                        "soc": {"hh-0": {"d1.h001": 0.62}},
                        "P": {"hh-0": {"d1.h002": 2.5}, "pv-0": {}}}}
        assert sim.step(0, inputs, 10**9) == 1000
        out = sim.get_data({eid: ["P_bat_set", "P_bat"]})[eid]
        assert out["P_bat_set"] == {}  # nobody wrote yet: the household keeps its default rule
        assert out["P_bat"]["d1.h001"] == pytest.approx(1.2)
        c = ModbusClient(host=host, port=port, unit_id=1, timeout=2, auto_open=True)
        assert struct.unpack(">h", struct.pack(">H", c.read_holding_registers(40070 + 47, 1)[0]))[0] == -1200
        assert c.read_holding_registers(40070 + 11, 1) == [620]  # SoC 62.0 %
        assert c.write_multiple_registers(40134 + 24, encode_raw("int32", 3000))  # discharge 3 kW
        c2 = ModbusClient(host=host, port=port, unit_id=2, timeout=2, auto_open=True)
        assert f32_be(c2.read_input_registers(0x34, 2)) == 2500.0
        sim.step(1000, {}, 10**9)
        assert sim.get_data({eid: ["P_bat_set"]})[eid]["P_bat_set"] == {"d1.h001": -3.0}
        sim.step(2000, {}, 10**9)  # held
        assert sim.get_data({eid: ["P_bat_set"]})[eid]["P_bat_set"] == {"d1.h001": -3.0}
        c.close()
        c2.close()
    finally:
        sim.finalize()


def test_battery_dc_side_follows_its_nameplate():
    """The DC bus of a 200-kWh, 240-cell bank at 100 kW reads as the bundled 10-kWh, 16-cell one at
    5 kW per cell (the same C-rate); the old fixed 16-cell curve gave 48 + 8 soc - 0.0004 P, 8 V at
    100 kW and below 0 V beyond 120 kW."""
    small = battery_readings(5_000.0, 0.5, 0.1, 0.95)
    assert small["V_dc"] == pytest.approx(48 + 8 * 0.5 - 0.0004 * 5_000.0)  # the bundled map unchanged
    big = battery_readings(100_000.0, 0.5, 0.1, 0.95, wh_rtg=200_000.0, v_max=876.0)
    assert big["cell_v_avg"] == pytest.approx(small["cell_v_avg"])
    assert big["V_dc"] == pytest.approx(240 * small["cell_v_avg"]) and 600 < big["V_dc"] < 876
    assert big["A_dc"] == pytest.approx(100_000.0 / big["V_dc"])


def test_served_battery_reads_its_own_nameplate(served):
    # a map for a big bank: its nameplate, with W and WHRtg in steps of 10 (16-bit registers)
    served.set_points("b1", {"m802.W_SF": 1, "m802.WHRtg_SF": 1})
    served.set_points("b1", {"m802.WHRtg": 200_000, "m802.VMax": 876.0})
    served.update("b1", {"P_bat": -100.0, "soc": 0.5})  # discharging 100 kW
    want = battery_readings(100_000.0, 0.5, 0.1, 0.95, wh_rtg=200_000.0, v_max=876.0)
    assert served.get_point("b1", "m802.V") == pytest.approx(want["V_dc"], abs=0.05)
    assert served.get_point("b1", "m802.A") == pytest.approx(want["A_dc"], abs=0.05)


def test_served_meter_with_phases_serves_each_phase(served):
    """Under the three-phase grid a served meter gets its household's per-phase powers and voltages:
    each phase reads its own P, Q, V and current (before, everything was on L1 at one voltage)."""
    def g(name):
        return served.get_point("m1", f"m203.{name}")

    served.update("m1", {"P": 4.2, "Q": 0.3, "V": 230.0, "P_a": 0.4, "P_b": 3.5, "P_c": 0.3,
                         "Q_a": 0.0, "Q_b": 0.3, "Q_c": 0.0, "V_a": 231.0, "V_b": 226.5, "V_c": 232.5})
    assert (g("WphA"), g("WphB"), g("WphC")) == (400.0, 3500.0, 300.0) and g("W") == 4200.0
    assert (g("PhVphA"), g("PhVphB"), g("PhVphC")) == (231.0, 226.5, 232.5)
    assert g("AphB") == pytest.approx(math.hypot(3500, 300) / 226.5, abs=0.006)
    assert g("A") == pytest.approx(400 / 231.0 + math.hypot(3500, 300) / 226.5 + 300 / 232.5, abs=0.02)
    assert g("PhVphAB") == pytest.approx(math.sqrt(231.0**2 + 231.0 * 226.5 + 226.5**2), abs=0.05)
    served.update("m1", {"V_b": 228.0})  # a phase's new voltage alone: its current follows
    assert g("PhVphB") == 228.0 and g("AphB") == pytest.approx(math.hypot(3500, 300) / 228.0, abs=0.006)


def test_served_phases_follow_the_maps_own_scale_and_sign(loop, tmp_path):
    """A meter map whose W and VAR registers count export positive (attr_scale -0.001): its per-phase powers
    carry the same sign as its total, so they still add up to it (they were served at +1000 x the input)."""
    import yaml

    from hil.registers import MAPS_DIR

    m = yaml.safe_load((MAPS_DIR / "sunspec_meter.yaml").read_text())
    for block in m["blocks"]:
        for p in block.get("points", []):
            if p.get("attr") in ("P", "Q"):
                p["attr_scale"] = -0.001
    path = tmp_path / "export_meter.yaml"
    path.write_text(yaml.safe_dump(m))
    srv = DeviceServer({"m": (1, str(path))})
    loop.run(srv.start(), timeout=5)
    try:
        srv.update("m", {"P": 4.2, "Q": 0.3, "P_a": 0.4, "P_b": 3.5, "P_c": 0.3, "Q_a": 0.0, "Q_b": 0.3, "Q_c": 0.0})

        def g(name):
            return srv.get_point("m", f"m203.{name}")

        assert g("W") == -4200.0 and (g("WphA"), g("WphB"), g("WphC")) == (-400.0, -3500.0, -300.0)
        assert g("VARphB") == -300.0
    finally:
        loop.run(srv.stop(), timeout=5)
