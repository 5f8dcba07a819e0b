"""Lab emulator: values read by a pymodbus client, seeded load model, battery dynamics, CLI."""

import asyncio
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient

from hil.device_server import phase_voltages
from hil.emulator import KINDS, Emulator, HouseholdMeterModel, main
from hil.registers import RegisterImage, decode_raw, load_map


async def _read_attrs(emu, unit=1):
    m = emu.server.devices["dev"].map
    c = AsyncModbusTcpClient("127.0.0.1", port=emu.port, timeout=2, retries=0, reconnect_delay=0)
    assert await c.connect()
    img = RegisterImage(m, initial=False)
    pts = [m.by_attr(a) for a in ("P", "Q", "E_imp", "E_exp")]
    for table, addr, n in m.read_plan(pts):
        fn = c.read_input_registers if table == "input" else c.read_holding_registers
        r = await fn(addr, count=n, device_id=unit)
        assert not r.isError(), r
        img.write(table, addr, r.registers)
    c.close()
    return {a: img.get_attr(a) for a in ("P", "Q", "E_imp", "E_exp")}


@pytest.mark.parametrize("kind", ["sdm630", "em24", "sunspec-meter"])
def test_meter_emulator_read_by_pymodbus(kind):
    async def run():
        async with Emulator(kind, unit=3, seed=11, start_tod=19 * 3600, pv_kwp=0.0) as emu:
            assert emu.host == "127.0.0.1" and emu.port > 0
            await asyncio.sleep(0.3)
            got = await _read_attrs(emu, unit=3)
            q = emu.model.quantities()
            return got, q
    got, q = asyncio.run(run())
    # register resolution: SDM630 float32, EM24 0.1 W / 0.1 kWh, SunSpec 1 W / 1 Wh
    assert got["P"] == pytest.approx(q["P"] / 1000.0, abs=2e-3)
    assert got["Q"] == pytest.approx(q["Q"] / 1000.0, abs=2e-3)
    assert got["E_imp"] == pytest.approx(q["E_imp"], abs=150.0)
    assert got["E_exp"] == pytest.approx(q["E_exp"], abs=150.0)
    assert 0.05 < got["P"] < 15.0  # an evening household load, kW


def test_sunspec_marker_and_common_model():
    async def run():
        async with Emulator("sunspec-meter", unit=1) as emu:
            c = AsyncModbusTcpClient("127.0.0.1", port=emu.port, timeout=2, retries=0, reconnect_delay=0)
            await c.connect()
            r = await c.read_holding_registers(40000, count=4, device_id=1)
            mn = await c.read_holding_registers(40004, count=16, device_id=1)
            c.close()
            return r.registers, mn.registers
    regs, mn = asyncio.run(run())
    assert regs[:2] == [0x5375, 0x6E53] and regs[2:] == [1, 66]
    assert decode_raw("string", mn) == "lvflex"


def test_load_model_is_seeded_and_integrates():
    a, b, c = (HouseholdMeterModel(s, 7 * 3600) for s in (5, 5, 6))
    for _ in range(3000):  # 300 s in 0.1 s steps
        a.step(0.1)
        b.step(0.1)
        c.step(0.1)
    assert a.quantities() == b.quantities()
    assert a.quantities()["P"] != c.quantities()["P"]
    e0 = a.E_imp
    for _ in range(600):
        a.step(1.0)
    assert a.E_imp > e0 and a.E_exp == 0.0
    # daily shape: the evening peak exceeds the night
    m = HouseholdMeterModel(1, 0)
    assert m.shape(19.2) > 3 * m.shape(3.0)
    # PV: export at noon
    pv = HouseholdMeterModel(2, 12 * 3600, pv_kwp=8.0)
    ex0 = pv.E_exp
    for _ in range(600):
        pv.step(1.0)
    assert pv.E_exp > ex0


def test_reactive_energy_is_booked_by_quadrant():
    """SunSpec 20x: TotVArhImpQ1 (import W, import var), TotVArhImpQ2 (export W, import var),
    TotVArhExpQ3 (export W, export var), TotVArhExpQ4 (import W, export var)."""

    class Fixed(HouseholdMeterModel):
        PQ = (0.0, 0.0)

        def _evaluate(self, shape=None):
            self.P, self.Q = self.PQ

    m = Fixed(1, 0)
    q0 = m.quantities()
    for k, pq in enumerate([(500.0, 100.0), (-500.0, 200.0), (-500.0, -300.0), (500.0, -400.0)]):
        m.PQ = pq
        m.step(3600.0)
        q = m.quantities()
        assert [q[f"Eq_Q{j + 1}"] - q0[f"Eq_Q{j + 1}"] for j in range(4)] == [
            pytest.approx(abs(pq[1]) if j == k else 0.0) for j in range(4)], pq
        q0 = q
    assert q["Eq_imp"] == q["Eq_Q1"] + q["Eq_Q2"] and q["Eq_exp"] == q["Eq_Q3"] + q["Eq_Q4"]
    sunspec = load_map("sunspec_meter")
    assert [sunspec.by_quantity(f"Eq_Q{k}").name for k in range(1, 5)] == [
        "m203.TotVArhImpQ1", "m203.TotVArhImpQ2", "m203.TotVArhExpQ3", "m203.TotVArhExpQ4"]


def test_line_to_line_voltages_are_those_of_the_phases():
    m = HouseholdMeterModel(4, 0)
    for _ in range(50):
        m.step(1.0)
    q = m.quantities()
    V = [q[f"V_L{k}"] for k in (1, 2, 3)]
    assert len(set(V)) == 3  # unbalanced
    assert q["V_L12"] == pytest.approx(math.sqrt(V[0] ** 2 + V[0] * V[1] + V[1] ** 2), rel=1e-12)
    assert q["V_LL_avg"] == pytest.approx((q["V_L12"] + q["V_L23"] + q["V_L31"]) / 3, rel=1e-12)
    assert phase_voltages([230.0] * 3)["V_L31"] == pytest.approx(230.0 * math.sqrt(3))


def test_model_1_da_is_the_unit_id():
    assert Emulator("sunspec-meter", unit=5).get("m1.DA") == 5.0
    assert Emulator("sunspec-battery", unit=17).get("m1.DA") == 17.0


@pytest.mark.parametrize("argv, says", [
    (["sunspec-battery", "--soc", "7"], "error: cosim emulate: the initial SoC must be in 0..1, got 7"),
    (["sdm630", "--time-scale", "-5"], "error: cosim emulate: the time scale must be > 0 device seconds per "
                                       "wall second, got -5"),
    (["sdm630", "--time-scale", "inf"], "error: cosim emulate: the time scale must be > 0"),
    (["sunspec-battery", "--map", "sdm630"], "error: cosim emulate: map sdm630 does not fit sunspec-battery; "
                                             "it fits sdm630, em24, sunspec-meter"),
    (["em24", "--map", "sunspec_battery"], "error: cosim emulate: map sunspec_battery does not fit em24; "
                                           "it fits sunspec-battery"),
])
def test_cli_refuses_option_values_the_emulator_cannot_use(argv, says, capsys):
    assert main([*argv, "--port", "0", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(says), err


@pytest.mark.parametrize("argv, says", [
    (["sdm630", "--pv-kwp", "inf", "--duration", "0.1"], "error: cosim emulate: --pv-kwp: expected a finite number"),
    (["sdm630", "--pv-kwp", "nan", "--duration", "0.1"], "error: cosim emulate: --pv-kwp: expected a finite number"),
    (["sdm630", "--pv-kwp", "-3", "--duration", "0.1"], "error: cosim emulate: --pv-kwp: expected a finite number"),
    (["sdm630", "--duration", "-1"], "error: cosim emulate: --duration: expected a number of seconds > 0"),
    (["sdm630", "--duration", "nan"], "error: cosim emulate: --duration: expected a number of seconds > 0"),
])
def test_cli_refuses_pv_and_duration_values_it_cannot_use(argv, says, capsys):
    """``--pv-kwp inf`` served NaN power and energy registers, nan and negative values were taken as no PV,
    and ``--duration -1`` or ``nan`` stopped at once, all with exit 0."""
    assert main([*argv, "--port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(says), err


@pytest.mark.parametrize("port", ["99999", "-5", "65536"])
def test_cli_refuses_a_port_outside_0_65535_in_one_line(port, capsys):
    """Was a traceback (OverflowError from bind(), exit 1) before 2026-12-08."""
    assert main(["sdm630", "--port", port, "--duration", "0.1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: cosim emulate: --port: {port} is not a TCP port (0-65535; 0 = a free one)"], err


def test_cli_port_in_use_is_one_error_line_naming_the_reason(capsys):
    """A port another program holds: exit 1 and one line starting with ``error:``, as every cosim error (it
    was ``cannot start the emulator: ...`` without the prefix before 2026-12-08), with the operating system's
    reason: pymodbus says only "Could not start listen, please check address." for a port that is taken."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["sdm630", "--port", str(port), "--duration", "0.1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: cosim emulate: cannot start the emulator: "), err
    assert err[0].endswith(f"cannot listen on 127.0.0.1:{port}: address already in use"), err


def test_emulate_takes_the_map_names_load_map_takes(tmp_path):
    """``cosim run --emulate``: a device with ``map: sunspec-meter`` (as load_map and the README spell it)
    is emulated like one with ``map: sunspec_meter``."""
    import yaml

    from cosim.lab import emulated_devices
    from cosim.scenario import load_scenario, parse_scenario
    from tests.conftest import free_port

    data = yaml.safe_load(load_scenario("lab_hil")[1])
    for d in (*data["hil"]["meters"], *data["hil"]["gateways"]):
        d["port"] = free_port()
    data["hil"]["meters"][1]["map"] = "sunspec-meter"
    data["hil"]["gateways"][0]["map"] = "sunspec-battery"
    with emulated_devices(parse_scenario(data)) as lines:
        assert any(line.startswith("sunspec-meter for ") for line in lines), lines
        assert any(line.startswith("sunspec-battery for ") for line in lines), lines


def test_meter_time_scale_accelerates_energy():
    async def run():
        async with Emulator("sunspec-meter", seed=3, time_scale=600.0, tick=0.05) as emu:
            e0 = emu.get("m203.TotWhImp")
            await asyncio.sleep(0.6)
            return e0, emu.get("m203.TotWhImp"), emu.device_time
    e0, e1, t = asyncio.run(run())
    assert t > 200  # >200 device seconds in 0.6 s
    assert e1 - e0 > 5.0  # Wh


def test_battery_follows_setpoint_soc_and_limits():
    async def run():
        async with Emulator("sunspec-battery", seed=1, soc_init=0.5, time_scale=60.0, tick=0.05) as emu:
            srv = emu.server
            srv.set_points("dev", {"m704.WSetEna": 1, "m704.WSetMod": 1, "m704.WSet": -5000})
            await asyncio.sleep(0.5)  # ~30 device seconds of 5 kW charging
            w, soc = emu.get("m802.W"), emu.get("m802.SoC")
            assert emu.get("m802.ChaSt") == 4
            srv.set_points("dev", {"m704.WSet": 8000})  # server-side set (no client range check): the model limits it
            await asyncio.sleep(0.2)
            w2 = emu.get("m802.W")
            srv.set_points("dev", {"m704.WSetEna": 0})
            await asyncio.sleep(0.2)
            return w, soc, w2, emu.get("m802.W"), emu.get("m802.ChaSt")
    w, soc, w2, w3, chast = asyncio.run(run())
    assert w == pytest.approx(-5000, rel=0.02)
    assert soc > 50.2  # % : charged
    assert w2 == pytest.approx(5000, rel=0.02)  # clipped to WDisChaRteMax
    assert w3 == 0.0 and chast == 6


def test_battery_power_stays_within_the_active_power_limit():
    """WMaxLimPct = 10 % of WMax (5000 W): a 4 kW discharge set point delivers 500 W, metering noise never
    above it; charging is not limited (704's limit is on active power generation)."""
    from hil.device_server import DeviceServer
    from hil.emulator import BatteryModel

    srv = DeviceServer({"dev": (1, "sunspec_battery")})  # not started: the model only needs its image
    srv.set_points("dev", {"m704.WSetEna": 1, "m704.WSetMod": 1, "m704.WSet": 4000,
                           "m704.WMaxLimPctEna": 1, "m704.WMaxLimPct": 10})
    bat = BatteryModel(srv, "dev", seed=3)
    powers = []
    for _ in range(200):
        bat.step(1.0)
        powers.append(bat.P)
    assert max(powers) <= 500.0 and min(powers) == pytest.approx(500.0, rel=0.01)
    srv.set_points("dev", {"m704.WSet": -4000})
    bat.step(1.0)
    assert bat.P == pytest.approx(-4000.0, rel=0.01)


def test_exception_mode():
    async def run():
        async with Emulator("sdm630") as emu:
            emu.fail(4)
            c = AsyncModbusTcpClient("127.0.0.1", port=emu.port, timeout=2, retries=0, reconnect_delay=0)
            await c.connect()
            r1 = await c.read_input_registers(0x34, count=2, device_id=1)
            emu.fail(None)
            r2 = await c.read_input_registers(0x34, count=2, device_id=1)
            c.close()
            return r1, r2
    r1, r2 = asyncio.run(run())
    assert r1.isError() and r1.exception_code == 4
    assert not r2.isError()


def test_unknown_kind():
    with pytest.raises(ValueError, match="sunspec-battery"):
        Emulator("toaster")
    assert set(KINDS) == {"sdm630", "em24", "sunspec-meter", "sunspec-battery"}


def test_cli_prints_address_and_stops_on_ctrl_c():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "hil.emulator", "em24", "--port", "0", "--unit", "2",
                          "--seed", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert "emulating em24" in line and "127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        from pyModbusTCP.client import ModbusClient

        c = ModbusClient(host="127.0.0.1", port=port, unit_id=2, timeout=2, auto_open=True)
        assert c.read_holding_registers(0x28, 2) is not None
        c.close()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert p.returncode == 0, err
        assert "stopped" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cli_main_duration(capsys):
    t0 = time.monotonic()
    assert main(["sdm630", "--port", "0", "--duration", "0.3"]) == 0
    assert time.monotonic() - t0 < 5
    assert "emulating sdm630" in capsys.readouterr().out
