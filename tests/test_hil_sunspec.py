"""SunSpec maps against the reference client pysunspec2: every point's offset, size, type,
scale-factor point and access as pysunspec2 lays the model out; layouts come from its JSON; a map
that disagrees with the definition is refused; the model-chain scan."""

import asyncio
import time

import pytest
import sunspec2.device as ss
import yaml

from hil.client import DeviceConfig, ModbusLink
from hil.meter_adapter import MeterPoller
from hil.registers import MAPS_DIR, base_type, list_maps, load_map
from hil.sunspec import FoundModel, ScanError, relocation, scan
from hil.testing import ThreadedEmulators
from tests.conftest import wait_until

SUNSPEC_MAPS = [n for n in list_maps() if load_map(n).sunspec]


@pytest.fixture
def lab():
    with ThreadedEmulators() as lab:
        yield lab


def _reference_points(model_id: int) -> dict[str, ss.Point]:
    """pysunspec2's own in-memory model: point name (Group.Point in nested groups) -> Point."""
    out: dict[str, ss.Point] = {}

    def walk(group, prefix):
        for name, p in group.points.items():
            out[prefix + name] = p
        for gname, g in group.groups.items():
            for gi in g if isinstance(g, list) else [g]:
                walk(gi, f"{prefix}{gname}.")

    walk(ss.Model(model_id=model_id), "")
    return out


def test_bundled_sunspec_maps_exist():
    assert {"sunspec_meter", "sunspec_battery"} <= set(SUNSPEC_MAPS)


@pytest.mark.parametrize("name", SUNSPEC_MAPS)
def test_every_point_matches_pysunspec2(name):
    m = load_map(name)
    models = [b for b in m.blocks if b.model not in (None, 0xFFFF)]
    assert {b.model for b in models} >= ({203} if name == "sunspec_meter" else {802, 704})
    for b in models:
        ref = _reference_points(b.model)
        ours = {p.name.split(".", 1)[1]: p for p in m.all_points if p.name.startswith(b.name + ".")}
        assert set(ours) == set(ref), f"{name} model {b.model}: points differ"
        base = m.point(f"{b.name}.ID").address
        for pname, rp in ref.items():
            p = ours[pname]
            where = f"{name} {p.name}"
            assert p.address - base == rp.offset, where
            assert p.count == rp.len, where
            ref_type = rp.pdef["type"]
            assert p.type == ref_type or (pname in ("ID", "L") and base_type(p.type) == ref_type), where
            assert p.sf == rp.sf, where
            assert p.writable == (rp.pdef.get("access", "R") == "RW"), where
            if p.sf:
                assert m.sf_point(p).name == f"{b.name}.{p.sf}", where
        assert m.point(f"{b.name}.L").value == max(rp.offset + rp.len for rp in ref.values()) - 2


def test_model_704_scale_factors_and_set_point_layout():
    """The issue's bug: pysunspec2 read WSet_SF / PF_SF from other registers than the device."""
    m = load_map("sunspec_battery")
    ref = _reference_points(704)
    base = m.point("m704.ID").address
    for n in ("WSet_SF", "PF_SF", "WSet", "WSetPct", "WSetEna"):
        assert m.point(f"m704.{n}").address == base + ref[n].offset


def _map_with_m704(points):
    return {"name": "t", "sunspec": True, "blocks": [
        {"name": "hdr", "base": 40000, "points": [{"name": "SunS", "type": "uint32", "value": 0x53756E53}]},
        {"name": "m704", "model": 704, "points": points}]}


def test_layout_comes_from_the_definition_and_clashes_are_refused():
    m = load_map(_map_with_m704([{"name": "WSet", "value": 100, "attr": "P_set"}]))
    assert m.point("m704.WSet").type == "int32" and m.point("m704.WSet").writable
    assert m.by_attr("P_set").name == "m704.WSet"
    with pytest.raises(ValueError, match="WSetPct: type='int32'"):
        load_map(_map_with_m704([{"name": "WSetPct", "type": "int32"}]))
    with pytest.raises(ValueError, match="no point 'RGra'"):
        load_map(_map_with_m704([{"name": "RGra", "value": 0}]))
    with pytest.raises(ValueError, match="sf="):
        load_map(_map_with_m704([{"name": "WSet", "sf": "W_SF"}]))


def test_enum_write_range_from_the_symbols():
    m = load_map("sunspec_battery")
    p = m.point("m704.WSetMod")  # 0 = % of WMax, 1 = watts (model_704.json symbols)
    assert (p.min, p.max) == (0, 1)


def _fake_device(regs: dict[int, int]):
    async def read(addr, count):
        out = [regs.get(a) for a in range(addr, addr + count)]
        if None in out:
            raise RuntimeError("exception 2")
        return out
    return read


def test_scan_walks_the_chain_from_any_base():
    regs = {0: 0x5375, 1: 0x6E53, 2: 1, 3: 3, 4: 0, 5: 0, 6: 0, 7: 64100, 8: 1, 9: 0, 10: 0xFFFF}
    base, found = asyncio.run(scan(_fake_device(regs)))
    assert base == 0
    assert found == [FoundModel(1, 2, 3), FoundModel(64100, 7, 1)]


def test_scan_without_marker_or_endless_chain():
    with pytest.raises(ScanError, match="no SunSpec marker"):
        asyncio.run(scan(_fake_device({40000: 1, 40001: 2})))
    # a chain of 1-register models that never ends
    regs = {40000: 0x5375, 40001: 0x6E53}
    regs.update({a: (7 if a % 3 == 2 else 1) for a in range(40002, 41000)})
    with pytest.raises(ScanError, match="longer than 4"):
        asyncio.run(scan(_fake_device(regs), max_models=4))


# ------------------------------------------------------------------------------------------------
# our client finds the models by walking the chain, wherever the device puts them
# ------------------------------------------------------------------------------------------------
def _moved_map(name: str, vendor_after: str) -> dict:
    """A bundled SunSpec map served from base 0 with a vendor model inserted after a block."""
    data = yaml.safe_load((MAPS_DIR / f"{name}.yaml").read_text())
    data["name"] = f"{name}_moved"
    blocks = data["blocks"]
    blocks[0]["base"] = 0
    i = next(k for k, b in enumerate(blocks) if b["name"] == vendor_after)
    blocks.insert(i + 1, {"name": "vnd", "model": 64100, "points": [
        {"name": f"X{k}", "type": "uint16", "value": 7} for k in range(5)]})
    return data


def test_meter_adapter_reads_a_device_whose_models_moved(lab):
    emu = lab.start("sunspec-meter", seed=5, tick=60.0, map=_moved_map("sunspec_meter", "m1"))
    w_dev = emu.get("m203.W")
    assert emu.server.devices["dev"].map.point("m203.W").address == 2 + 68 + 7 + 18
    poller = MeterPoller([dict(id="m", port=emu.port, map="sunspec_meter", interval=0.2)]).start()
    try:
        wait_until(lambda: poller.snapshot()["m"]["quality"] == 0, 5)
        assert poller.snapshot()["m"]["P"] == pytest.approx(w_dev / 1000)
        assert poller.meters[0].link.shifts[0] == (40000, 40002, -40000)
    finally:
        poller.stop()


def test_link_writes_a_set_point_where_the_device_has_model_704(lab):
    emu = lab.start("sunspec-battery", seed=6, map=_moved_map("sunspec_battery", "m802"))
    link = ModbusLink(DeviceConfig(id="b", port=emu.port, map="sunspec_battery"))

    async def go():
        assert await link.connect()
        await link.write_points({"m704.WSet": -1500, "m704.WSetEna": 1, "m704.WSetMod": 1})
        await link.read_points([link.map.point("m704.WSet"), link.map.point("m802.SoC")])
        link.close()
        return link.image.get("m704.WSet"), link.image.get("m802.SoC")

    assert lab.loop.run(go(), timeout=10) == (-1500.0, pytest.approx(emu.get("m802.SoC")))
    assert emu.get("m704.WSet") == -1500.0 and emu.get("m704.WSetEna") == 1


def test_a_device_without_the_model_is_not_used(lab, caplog):
    emu = lab.start("sunspec-battery", seed=7)
    poller = MeterPoller([dict(id="m", port=emu.port, map="sunspec_meter", interval=0.2,
                               backoff_max=0.2)]).start()
    try:
        time.sleep(1.0)
        assert poller.snapshot()["m"]["quality"] == 1  # stale: never read from the wrong registers
        assert "P" not in poller.snapshot()["m"]
    finally:
        poller.stop()
    msgs = [r.getMessage() for r in caplog.records if "SunSpec scan" in r.getMessage()]
    assert len(msgs) == 1 and "no SunSpec model 203 (found: 1, 802, 704)" in msgs[0]


def test_a_device_without_the_model_is_reported_as_such_not_as_unreachable(lab):
    """A device that answers but has no SunSpec model of the map (here: a wrong unit id, every read
    refused) is one drop whose reason is what the scan found, not "connection refused or timed out"."""
    emu = lab.start("sunspec-meter", seed=7)
    poller = MeterPoller([dict(id="m", port=emu.port, unit=7, map="sunspec_meter", interval=0.2,
                               backoff_max=0.2)]).start()
    try:
        time.sleep(1.0)
        assert poller.snapshot()["m"]["quality"] == 1
        events = poller.meters[0].events.take()
    finally:
        poller.stop()
    assert [e["kind"] for e in events] == ["drop"], events
    assert "unit 7: no SunSpec marker 'SunS'" in events[0]["msg"], events[0]["msg"]
    assert "connection refused" not in events[0]["msg"] and "no answer" not in events[0]["msg"]
    assert ": answers, but cannot be used (SunSpec scan of unit 7" in events[0]["msg"], events[0]["msg"]


def test_a_silent_sunspec_device_is_no_answer_not_a_missing_marker(lab, caplog):
    """A SunSpec device that accepts the connection but answers nothing (hung, or SIGSTOPped) is a
    device that does not answer: no "no SunSpec marker" claim, in the log or in its drop event."""
    emu = lab.start("sunspec-meter", seed=8)
    proxy = _SilentAbove(lab.loop, emu.port, silent=0)  # answers nothing
    poller = MeterPoller([dict(id="m", port=proxy.port, map="sunspec_meter", interval=0.2, timeout=0.2,
                               backoff_max=0.2)]).start()
    try:
        time.sleep(2.0)
        assert poller.snapshot()["m"]["quality"] == 1
        events = poller.meters[0].events.take()
    finally:
        poller.stop()
        proxy.close()
    assert [e["kind"] for e in events] == ["drop"], events
    assert "SunSpec" not in events[0]["msg"], events[0]["msg"]
    assert not [r for r in caplog.records if "SunSpec scan" in r.getMessage()], caplog.records[:3]


def test_a_model_shorter_than_its_definition_is_used_up_to_the_points_read():
    """SolarEdge and Fronius announce model 1 with L=65 (the revision before its Pad point): the
    adapters read none of model 1, so the device is used; a model too short for a point they read
    is refused, naming the point."""
    m = load_map("sunspec_meter")
    l203 = m.point("m203.ID").address  # the nominal layout: model 203 right after model 1 (L=66)
    shifts = relocation(m, 40000, [FoundModel(1, 40002, 65), FoundModel(203, 40069, 105)])
    assert (l203, l203 + 107, 40069 - l203) in shifts
    with pytest.raises(ScanError, match=r"model 203 on the device has L=50, the map needs \d+ \(up to m203\."):
        relocation(m, 40000, [FoundModel(1, 40002, 66), FoundModel(203, 40070, 50)])


class _SilentAbove:
    """A TCP proxy in front of a Modbus TCP device that never answers a read at or above *silent*
    (an RTU device behind a TCP gateway, where it has no registers), and forwards everything else."""

    def __init__(self, loop, target_port: int, silent: int = 40000):
        self.target_port, self.silent, self.loop = target_port, silent, loop
        self.server = loop.run(asyncio.start_server(self._serve, "127.0.0.1", 0), timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        try:
            while True:
                head = await reader.readexactly(7)  # MBAP: transaction, protocol, length, unit
                pdu = await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
                if pdu[0] in (3, 4) and int.from_bytes(pdu[1:3], "big") >= self.silent:
                    continue  # no answer at all
                up_w.write(head + pdu)
                await up_w.drain()
                rhead = await up_r.readexactly(7)
                writer.write(rhead + await up_r.readexactly(int.from_bytes(rhead[4:6], "big") - 1))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            up_w.close()

    def close(self):
        self.server.close()
        self.loop.run(self.server.wait_closed(), timeout=5)


def test_a_base_address_without_an_answer_is_skipped_as_pysunspec2_does(lab):
    emu = lab.start("sunspec-meter", seed=8, tick=60.0, map=_moved_map("sunspec_meter", "m1"))  # at base 0
    proxy = _SilentAbove(lab.loop, emu.port)
    poller = MeterPoller([dict(id="m", port=proxy.port, map="sunspec_meter", interval=0.2, timeout=0.3)]).start()
    try:
        wait_until(lambda: poller.snapshot()["m"]["quality"] == 0, 10)
        assert poller.snapshot()["m"]["P"] == pytest.approx(emu.get("m203.W") / 1000)
        assert poller.meters[0].link.shifts[0] == (40000, 40002, -40000)  # found at base 0
    finally:
        poller.stop()
        proxy.close()


def test_model_704_reverts_in_percent_mode_as_in_watts_mode(lab):
    """A client that runs the battery in percent of WMax (WSetMod = 0, as pysunspec2 writes it) and
    stops writing: at the end of WSetRvrtTms, WSetPct takes WSetPctRvrt, as WSet takes WSetRvrt."""
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

    emu = lab.start("sunspec-battery", seed=9)
    d = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=emu.port, timeout=2)
    try:
        d.scan()
        m = d.models[704][0]
        m.WSetMod.value, m.WSetPct.cvalue, m.WSetPctRvrt.cvalue = 0, 40, 5
        m.WSetEnaRvrt.value, m.WSetRvrtTms.value, m.WSetEna.value = 1, 1, 1
        m.write()
        wait_until(lambda: abs(emu.get("m802.W")) > 100, 5)  # running at 40 % of WMax
        wait_until(lambda: emu.get("m704.WSetRvrtRem") == 0 and emu.get("m704.WSetPct") == 5.0, 5)
        m.read()
        assert m.WSetPct.cvalue == 5 and m.WSet.cvalue == 0
    finally:
        d.close()


def test_a_silent_device_is_one_outage_not_a_log_flood(lab, caplog):
    """pymodbus logs every unanswered request at ERROR with frame dumps (524 lines in 40 s of one silent
    device, before): the adapter's quality and its one warning per outage are the report."""
    import logging

    caplog.set_level(logging.NOTSET, "pymodbus")  # as in a fresh process (other tests set it)
    emu = lab.start("sdm630", seed=10)
    proxy = _SilentAbove(lab.loop, emu.port, silent=0)  # answers nothing
    poller = MeterPoller([dict(id="m", port=proxy.port, map="sdm630", interval=0.2, timeout=0.2)]).start()
    try:
        time.sleep(2.0)
        assert poller.snapshot()["m"]["quality"] == 1
    finally:
        poller.stop()
        proxy.close()
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")], caplog.records[:3]
