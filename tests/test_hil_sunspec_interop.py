"""Acceptance: the SunSpec reference client (pysunspec2's Modbus TCP client) scans the emulated
SunSpec meter and battery, reads what the device holds, and writes WSet, WSetPct and WSetEna,
which the emulated battery applies with the right scale factors."""

import time

import pytest
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from hil.testing import ThreadedEmulators


@pytest.fixture(scope="module")
def lab():
    with ThreadedEmulators() as lab:
        yield lab


def _device(emu):
    d = SunSpecModbusClientDeviceTCP(slave_id=emu.unit, ipaddr="127.0.0.1", ipport=emu.port, timeout=2)
    d.scan()
    return d


def _wait(cond, timeout=3.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_meter_scanned_and_read(lab):
    emu = lab.start("sunspec-meter", seed=3, tick=60.0, pv_kwp=3.0)  # registers stay put while we compare
    d = _device(emu)
    try:
        assert [k for k in d.models if isinstance(k, int)] == [1, 203]
        assert d.models[1][0].Md.value == "emulated-meter-203"
        m = d.models[203][0]
        for name in ("W", "VAR", "VA", "PF", "Hz", "PhVphA", "AphA", "TotWhImp", "TotWhExp"):
            ours = emu.get(f"m203.{name}")
            assert m.points[name].cvalue == pytest.approx(ours, abs=1e-9), name
        assert m.W_SF.value == emu.get("m203.W_SF") and m.PF_SF.value == emu.get("m203.PF_SF")
    finally:
        d.close()
        lab.stop(emu)


def test_battery_set_points_written_by_the_reference_client(lab):
    emu = lab.start("sunspec-battery", seed=4, soc_init=0.5)
    # a non-zero scale factor, so that a wrong scale shows as a factor of 10
    emu.server.set_points("dev", {"m704.WSet_SF": 1})
    d = _device(emu)
    try:
        assert [k for k in d.models if isinstance(k, int)] == [1, 802, 704]
        m = d.models[704][0]
        assert m.WSet_SF.value == 1 and m.PF_SF.value == emu.get("m704.PF_SF") == -3
        assert m.groups["PFWInj"].PF.cvalue == pytest.approx(1.0)
        assert d.models[802][0].SoC.cvalue == pytest.approx(emu.get("m802.SoC"))

        # watts mode: WSet = 1000 W discharging
        m.WSetMod.value = 1
        m.WSetMod.write()
        m.WSet.cvalue = 1000
        m.WSet.write()
        m.WSetEna.value = 1
        m.WSetEna.write()
        m.read()
        assert (m.WSet.cvalue, m.WSet.value, m.WSetEna.value) == (1000, 100, 1)
        assert emu.get("m704.WSet") == 1000.0 and emu.get("m704.WSetEna") == 1
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(1000, rel=0.02))

        # percent mode: WSetPct = -40 % of WMax (5000 W) = 2000 W charging
        m.WSetPct.cvalue = -40
        m.WSetPct.write()
        m.WSetMod.value = 0
        m.WSetMod.write()
        m.read()
        assert (m.WSetPct.cvalue, m.WSetMod.value) == (-40, 0)
        assert emu.get("m704.WSetPct") == -40.0
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(-2000, rel=0.02))

        m.WSetEna.value = 0
        m.WSetEna.write()
        m.read()
        assert m.WSetEna.value == 0
        assert _wait(lambda: emu.get("m802.W") == 0.0)
    finally:
        d.close()
        lab.stop(emu)


def test_active_power_limit_and_its_reversion(lab):
    """704 WMaxLimPct limits active power generation: injection at most WMaxLimPct % of WMax
    (WDisChaRteMax, 5000 W) while WMaxLimPctEna = 1, charging unlimited. With WMaxLimPctEnaRvrt = 1,
    WMaxLimPctRvrtRem counts down from WMaxLimPctRvrtTms and the limit then takes WMaxLimPctRvrt."""
    emu = lab.start("sunspec-battery", seed=10, soc_init=0.5)
    d = _device(emu)
    try:
        m = d.models[704][0]
        m.WSetMod.value, m.WSet.cvalue, m.WSetEna.value = 1, 4000, 1
        m.WMaxLimPctEna.value, m.WMaxLimPct.cvalue = 1, 10
        m.WMaxLimPctRvrt.cvalue, m.WMaxLimPctEnaRvrt.value, m.WMaxLimPctRvrtTms.value = 50, 1, 3
        m.write()
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(500, abs=5))
        for _ in range(5):  # never above the limit, metering noise included
            assert emu.get("m802.W") <= 500
            time.sleep(0.1)
        m.read()
        assert m.WMaxLimPctRvrtRem.value in (1, 2, 3)
        assert _wait(lambda: emu.get("m704.WMaxLimPct") == 50.0, 5)  # reverted to WMaxLimPctRvrt
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(2500, rel=0.02))
        m.read()
        assert (m.WMaxLimPct.cvalue, m.WMaxLimPctRvrtRem.value) == (50, 0)
        m.WSet.cvalue = -4000
        m.WSet.write()
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(-4000, rel=0.02))  # charging: not limited
    finally:
        d.close()
        lab.stop(emu)


def test_disconnect_inverter_state_and_alarm_reset(lab):
    """802 SetOp = 2 (DISCONNECT) stops the power exchange and State reads 1 (DISCONNECTED), SetOp = 1
    reconnects (State 3); only a started inverter (SetInvState = 3) exchanges power; AlmRst = 1 is
    back at 0 once the alarms are reset (none latch here)."""
    emu = lab.start("sunspec-battery", seed=11, soc_init=0.5)
    d = _device(emu)
    try:
        m, b = d.models[704][0], d.models[802][0]
        m.WSetMod.value, m.WSet.cvalue, m.WSetEna.value = 1, 3000, 1
        m.write()
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(3000, rel=0.02))
        b.SetOp.value = 2
        b.SetOp.write()
        assert _wait(lambda: emu.get("m802.W") == 0.0)
        b.read()
        assert (b.W.cvalue, b.A.cvalue, b.State.value, b.ChaSt.value) == (0, 0, 1, 6)
        b.SetOp.value = 1
        b.SetOp.write()
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(3000, rel=0.02) and emu.get("m802.State") == 3)
        b.SetInvState.value = 2  # the inverter in standby
        b.SetInvState.write()
        assert _wait(lambda: emu.get("m802.W") == 0.0)
        b.SetInvState.value = 3
        b.SetInvState.write()
        assert _wait(lambda: emu.get("m802.W") == pytest.approx(3000, rel=0.02))
        b.AlmRst.value = 1
        b.AlmRst.write()
        assert _wait(lambda: emu.get("m802.AlmRst") == 0.0)
        b.read()
        assert b.AlmRst.value == 0
    finally:
        d.close()
        lab.stop(emu)
