"""Gateway adapter against the emulated SunSpec battery: set points, clipping, read-back,
revert timer, exception answers, shutdown."""

import time

import pytest

from hil.client import DeviceConfig
from hil.gateway_adapter import GatewayClient, ModbusGateways
from hil.testing import ThreadedEmulators
from tests.conftest import wait_until

EID = "gateways_0"
OUT = ["P_bat", "soc", "setpoint_ack", "setpoint_clipped", "quality", "age"]


@pytest.fixture
def lab():
    with ThreadedEmulators() as lab:
        yield lab


def _sim(devices):
    sim = ModbusGateways()
    meta = sim.init("GW", time_resolution=0.001, step_size=200)
    assert "P_bat_set" in meta["models"]["ModbusGateways"]["attrs"]
    sim.create(1, "ModbusGateways", devices=devices)
    return sim


def _data(sim):
    return sim.get_data({EID: OUT})[EID]


def _sp(value, dev="d1.h001"):
    return {EID: {"P_bat_set": {"MAS.ctl": {dev: value, "d9.h999": 3.0}}}}


def test_setpoint_reaches_battery_then_reverts_after_the_timer(lab):
    emu = lab.start("sunspec-battery", seed=1, soc_init=0.5)
    sim = _sim([dict(id="d1.h001", port=emu.port, interval=0.2, revert_s=1.0)])
    try:
        t = 0
        for _ in range(4):  # the controller writes every step: the set point is held
            t = sim.step(t, _sp(2.0), 10**9)  # charge 2 kW (load convention)
            time.sleep(0.25)
        assert emu.get("m704.WSet") == -2000.0  # SunSpec: W < 0 charging
        assert emu.get("m704.WSetEna") == 1 and emu.get("m704.WSetEnaRvrt") == 1
        assert emu.get("m704.WSetRvrtTms") == 1.0
        assert emu.get("m802.W") == pytest.approx(-2000, rel=0.02)
        d = _data(sim)
        assert d["P_bat"]["d1.h001"] == pytest.approx(2.0, rel=0.02)
        assert d["setpoint_ack"] == {"d1.h001": 1.0}
        assert d["quality"] == {"d1.h001": 0.0} and d["setpoint_clipped"] == {"d1.h001": 0.0}
        assert 0.49 < d["soc"]["d1.h001"] < 0.52
        # the controller disappears: no more set points (the co-simulation keeps stepping)
        t_stop = time.monotonic()
        dt = wait_until(lambda: emu.get("m802.W") == 0.0, 2.5)
        assert 0.6 < time.monotonic() - t_stop < 1.6, dt  # ~ revert_s after the last write
        assert emu.get("m704.WSet") == 0.0
        t = sim.step(t, {}, 10**9)
        wait_until(lambda: _data(sim)["setpoint_ack"] == {"d1.h001": 0.0}, 1.0)  # device reverted
        wait_until(lambda: _data(sim)["P_bat"]["d1.h001"] == 0.0, 1.0)
    finally:
        sim.finalize()


def test_out_of_range_setpoints_are_clipped_and_counted(lab):
    emu = lab.start("sunspec-battery", seed=2)
    sim = _sim([dict(id="d1.h001", port=emu.port, interval=0.2, revert_s=5.0)])
    try:
        sim.step(0, _sp(-9.0), 10**9)  # discharge 9 kW > 5 kW rating
        wait_until(lambda: emu.get("m704.WSet") == 5000.0, 2)
        sim.step(200, _sp(7.5), 10**9)
        wait_until(lambda: emu.get("m704.WSet") == -5000.0, 2)
        sim.step(400, _sp(float("nan")), 10**9)  # ignored
        wait_until(lambda: _data(sim).get("setpoint_ack") == {"d1.h001": 1.0}, 2)
        d = _data(sim)
        assert d["setpoint_clipped"] == {"d1.h001": 2.0}
        assert emu.get("m704.WSet") == -5000.0
    finally:
        sim.finalize()


def test_hold_rewrites_the_last_setpoint_every_step(lab):
    emu = lab.start("sunspec-battery", seed=3)
    # generous margins (revert 2 s, a write every 0.3 s) so a loaded CI machine cannot cause a revert
    sim = _sim([dict(id="d1.h001", port=emu.port, interval=0.2, revert_s=2.0, hold=True)])
    try:
        t = sim.step(0, _sp(-1.0), 10**9)
        for _ in range(8):  # 2.4 s without new input: hold keeps the device from reverting
            time.sleep(0.3)
            t = sim.step(t, {}, 10**9)
        assert emu.get("m704.WSet") == 1000.0
    finally:
        sim.finalize()
    # finalize writes the safe set point at once
    assert emu.get("m704.WSet") == 0.0


def test_exception_answers_give_quality_error(lab):
    emu = lab.start("sunspec-battery", seed=4)
    sim = _sim([dict(id="d1.h001", port=emu.port, interval=0.1, revert_s=5.0)])
    try:
        wait_until(lambda: _data(sim)["quality"] == {"d1.h001": 0.0}, 3)
        emu.fail(6)  # SERVER DEVICE BUSY
        t = sim.step(0, _sp(1.0), 10**9)
        wait_until(lambda: _data(sim)["quality"] == {"d1.h001": 2.0}, 2)
        for _ in range(3):
            t = sim.step(t, _sp(1.0), 10**9)
        emu.fail(None)
        t = sim.step(t, _sp(1.0), 10**9)
        wait_until(lambda: _data(sim)["quality"] == {"d1.h001": 0.0} and emu.get("m704.WSet") == -1000.0, 2)
    finally:
        sim.finalize()


def test_gateway_client_without_mosaik(lab):
    emu = lab.start("sunspec-battery", seed=5)
    gw = GatewayClient([dict(id="b", port=emu.port, interval=0.2, revert_s=2.0)]).start()
    try:
        gw.set("b", {"P_bat_set": -0.5, "unknown_attr": 1.0})
        wait_until(lambda: gw.snapshot()["b"].get("setpoint_ack") == 1.0, 2)
        assert emu.get("m704.WSet") == 500.0
        assert gw.stats()["b"]["writes"] == 1
    finally:
        gw.stop()


@pytest.mark.parametrize("revert_s, ok", [(0, True), (1, True), (10, True), (86400, True),
                                          (0.4, False), (2.5, False), (86401, False)])
def test_revert_s_must_be_what_the_reversion_timer_holds(revert_s, ok):
    """SunSpec 704's WSetRvrtTms is uint32 seconds up to 86400: 0.4 s would be written as 0, which the
    device reads as "never revert", so it is refused with the timer's steps and range."""
    if ok:
        assert DeviceConfig(id="b", port=1, map="sunspec_battery", revert_s=revert_s).revert_s == revert_s
        return
    with pytest.raises(ValueError, match=rf"device b: revert_s {revert_s:g}: m704.WSetRvrtTms counts in steps of "
                                         r"1 s up to 86400 s; give 0 \(no reversion\)"):
        DeviceConfig(id="b", port=1, map="sunspec_battery", revert_s=revert_s)


def test_an_infinite_revert_s_is_one_line_not_a_traceback(tmp_path, capsys):
    """``revert_s: .inf`` was an OverflowError traceback from the timer check (exit 1)."""
    import yaml

    from cosim.cli import main
    from tests.conftest import ROOT

    with pytest.raises(ValueError, match=r"device b: revert_s inf: m704.WSetRvrtTms counts in steps of 1 s"):
        DeviceConfig(id="b", port=1, map="sunspec_battery", revert_s=float("inf"))
    data = yaml.safe_load((ROOT / "scenarios" / "lab_hil.yaml").read_text())
    data["hil"]["gateways"][0]["revert_s"] = float("inf")
    path = tmp_path / "inf.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--until", "1s", "--quiet", "--out", str(tmp_path / "inf.h5")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "hil.gateways[0]" in err[0] and "revert_s inf" in err[0], err


def test_revert_s_is_checked_against_the_timers_of_attr_set_points_only():
    """A gateway writes revert_s into the reversion timer of the set points it writes (attr specs); a
    set point without attr (reverted by the device only) has its own timer, whatever its range."""
    regmap = {"name": "x", "points": [
        {"name": "w", "address": 0, "type": "int16", "access": "rw", "attr": "P_bat_set"},
        {"name": "w_tms", "address": 1, "type": "uint16", "access": "rw", "max": 60},
        {"name": "lim", "address": 2, "type": "uint16", "access": "rw"},
        {"name": "lim_tms", "address": 3, "type": "uint16", "access": "rw", "max": 10}],
        "setpoints": [{"attr": "P_bat_set", "revert_timer": "w_tms"}, {"point": "lim", "revert_timer": "lim_tms"}]}
    assert DeviceConfig(id="b", port=1, map=regmap, revert_s=30).revert_s == 30
