"""Register maps as data: loading, schema checks, codec round trips."""

import math
import struct

import pytest

from hil.registers import (
    RegisterImage,
    decode_raw,
    encode_raw,
    list_maps,
    load_map,
)


def test_bundled_maps_load():
    assert {"sdm630", "em24", "sunspec_meter", "sunspec_battery"} <= set(list_maps())
    for name in list_maps():
        m = load_map(name)
        assert m.all_points
    # alias with a dash, as the emulator kinds are spelled
    assert load_map("sunspec-meter").name == "sunspec_meter"


def test_meter_maps_map_the_meter_attrs():
    for name in ("sdm630", "em24", "sunspec_meter"):
        m = load_map(name)
        assert {"P", "Q", "E_imp", "E_exp"} <= set(m.attrs), name
    sdm = load_map("sdm630")
    p = sdm.by_attr("P")
    assert (p.address, p.function, p.type, p.word_order, p.attr_scale) == (0x34, "input", "float32", "big", 0.001)
    assert sdm.by_attr("E_imp").address == 0x48 and sdm.by_attr("E_exp").address == 0x4A
    assert sdm.by_attr("E_imp").attr_scale == 1000.0


@pytest.mark.parametrize("value", [0.0, 1.5, -1234.567, 3.4e38, -1e-30])
@pytest.mark.parametrize("order", ["big", "little"])
def test_float32_round_trip_both_word_orders(value, order):
    regs = encode_raw("float32", value, order)
    assert len(regs) == 2
    be = struct.pack(">f", value)
    hi, lo = int.from_bytes(be[:2], "big"), int.from_bytes(be[2:], "big")
    assert regs == ([hi, lo] if order == "big" else [lo, hi])
    assert decode_raw("float32", regs, order) == pytest.approx(struct.unpack(">f", be)[0])


def test_int32_low_word_first():
    # EM24: -25000 (= -2500.0 W * 10) as int32, least significant word first
    regs = encode_raw("int32", -25000, "little")
    assert regs == [0x9E58, 0xFFFF]
    assert decode_raw("int32", regs, "little") == -25000
    assert decode_raw("int32", [0x0001, 0x0002], "little") == 0x00020001
    assert decode_raw("int32", [0x0001, 0x0002], "big") == 0x00010002
    with pytest.raises(ValueError):
        encode_raw("int16", 40000)


def test_em24_point_scaling():
    m = load_map("em24")
    img = RegisterImage(m)
    img.set_attr("P", -2.5)  # kW
    p = m.by_attr("P")
    assert img.raw_registers(p) == [0x9E58, 0xFFFF]
    assert img.get_attr("P") == pytest.approx(-2.5)
    img.set_attr("E_imp", 12_345_600.0)  # Wh -> 12345.6 kWh -> 123456 (kWh*10)
    assert decode_raw("int32", img.raw_registers(m.by_attr("E_imp")), "little") == 123456
    assert m.shared and m.table_of(p) == "shared"


def test_sunspec_scale_factors():
    m = load_map("sunspec_meter")
    img = RegisterImage(m)
    volt = m.point("m203.PhVphA")
    assert m.sf_point(volt).name == "m203.V_SF"
    img.set(volt, 231.4)  # V_SF = -1 -> raw 2314
    assert decode_raw("int16", img.raw_registers(volt)) == 2314
    assert img.get(volt) == pytest.approx(231.4)
    # change the scale factor: the same raw value now means something else
    img.set("m203.V_SF", -2)
    assert img.get(volt) == pytest.approx(23.14)
    # codec with explicit sf
    w = m.point("m203.W")
    assert m.encode(w, 1234.0, sf=1) == [123]
    assert m.decode(w, [123], sf=1) == 1230.0
    assert m.decode(w, [0xFFF6], sf=-1) == pytest.approx(-1.0)
    # not implemented -> NaN; a missing scale factor -> NaN
    assert math.isnan(m.decode(w, [0x8000], sf=0))
    assert math.isnan(img.get("m203.VA"))  # no value and not written: not implemented
    # clipping never lands on the not-implemented value
    assert m.encode(w, -1e9, sf=0) == [0x8001]


def test_sunspec_layout():
    m = load_map("sunspec_meter")
    img = RegisterImage(m)
    assert img.read("holding", 40000, 2) == [0x5375, 0x6E53]  # "SunS"
    assert (m.point("m1.ID").address, img.get("m1.ID"), img.get("m1.L")) == (40002, 1.0, 66.0)
    assert (m.point("m203.ID").address, img.get("m203.L")) == (40070, 105.0)
    assert m.point("m203.W").address == 40070 + 18
    assert m.point("m203.TotWhImp").address == 40070 + 46
    end = m.point("end.ID")
    assert end.address == 40070 + 107 and img.get(end) == 65535.0 and img.get("end.L") == 0.0
    b = load_map("sunspec_battery")
    bi = RegisterImage(b)
    # offsets of the published SunSpec 704 table (ID = offset 0)
    assert bi.get("m802.L") == 62 and bi.get("m704.L") == 65
    assert b.point("m704.WSet").offset == 24 and b.point("m704.WSetPct").offset == 28
    assert b.point("m704.WSetRvrtTms").offset == 31 and b.point("m704.WSet_SF").offset == 55
    assert b.point("m704.ID").address == b.point("m802.ID").address + 64
    assert bi.get("m1.Mn") == "lvflex"
    sp = b.setpoint("P_bat_set")
    assert sp.revert_timer == "m704.WSetRvrtTms"
    # soc in 0..1 <- SoC % with SoC_SF = -1
    bi.set_attr("soc", 0.537)
    assert decode_raw("uint16", bi.raw_registers(b.point("m802.SoC"))) == 537
    assert bi.get_attr("soc") == pytest.approx(0.537)
    # battery power: SunSpec W > 0 discharging, mosaik P_bat > 0 charging
    bi.set_attr("P_bat", 2.0)
    assert bi.get("m802.W") == -2000.0


def test_strings_round_trip():
    regs = encode_raw("string", "SDM630", "big", count=4)
    assert len(regs) == 4 and decode_raw("string", regs) == "SDM630"
    assert decode_raw("string", encode_raw("string", "toolongvalue", "big", count=2)) == "tool"


def test_read_plan_coalesces():
    m = load_map("sdm630")
    plan = m.read_plan([m.by_attr(a) for a in ("P", "Q", "E_imp", "E_exp")])
    assert plan == [("input", 0x34, 0x4C - 0x34)]  # one request across the small reserved gaps
    s = load_map("sunspec_meter")
    plan = s.read_plan([s.by_attr(a) for a in ("P", "Q", "E_imp", "E_exp")])
    assert len(plan) == 1 and plan[0][0] == "holding"
    t, a, n = plan[0]
    assert a <= s.point("m203.W").address and a + n >= s.point("m203.TotWh_SF").end


def test_user_map_same_schema(tmp_path):
    y = tmp_path / "mymeter.yaml"
    y.write_text("""
name: mymeter
function: holding
word_order: little
points:
  - {name: power, address: 100, type: int32, scale: 0.1, unit: W, attr: P, attr_scale: 0.001}
  - {name: limit, address: 102, type: uint16, unit: W, access: rw, min: 0, max: 3000, attr: pv_limit, attr_scale: 0.001}
blocks:
  - name: b
    base: 200
    points:
      - {name: v, type: float32, unit: V, value: 230}
      - {name: e, type: uint32, unit: Wh, attr: E_imp}
""")
    m = load_map(str(y))
    assert m.name == "mymeter"
    assert m.point("b.e").address == 202 and m.point("power").word_order == "little"
    assert m.by_attr("pv_limit").attr_bounds() == (0.0, 3.0)
    assert RegisterImage(m).get("b.v") == 230.0


@pytest.mark.parametrize("bad,msg", [
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int99"}]}, "unknown type"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "uint32"},
                              {"name": "b", "address": 1, "type": "uint16"}]}, "overlap"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "sf": "nope"}]}, "not found"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "string"}]}, "count"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "min": 5, "max": 1}]}, "min"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "attr": "P"},
                              {"name": "b", "address": 1, "type": "int16", "attr": "P"}]}, "twice"),
    ({"name": "x", "blocks": [{"name": "m", "base": 0, "model": 7, "length": 3,
                               "points": [{"name": "a", "type": "int16"}]}]}, "L=1"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "attr": "P"}],
      "setpoints": [{"attr": "P"}]}, "writable"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "access": "rw", "attr": "P"}],
      "setpoints": [{"attr": "P", "point": "a"}]}, "give its attr or its point"),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16"}],
      "setpoints": [{"point": "a"}]}, r"setpoint a: needs a writable point \["),
    ({"name": "x", "points": [{"name": "a", "address": 0, "type": "int16", "access": "rw", "attr": "P"}],
      "setpoints": [{"attr": "P"}, {"point": "a"}]}, "point a has a setpoint spec already"),
])
def test_invalid_maps_are_refused(bad, msg):
    with pytest.raises(ValueError, match=msg):
        load_map(bad)


def test_an_invalid_map_file_is_one_line(tmp_path):
    """A user's map file with errors: one line naming the file and each problem (it was pydantic's
    multi-line report, with its URL, in the middle of the scenario's error line)."""
    from hil.registers import check_map

    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\npoints:\n  - {name: P, address: 0, type: float99}\n"
                    "  - {name: Q, address: 2, type: float32, unit: var, bogus: 1}\n")
    with pytest.raises(ValueError) as err:
        check_map(str(path))
    msg = str(err.value)
    assert "\n" not in msg and "pydantic" not in msg, msg
    assert msg.startswith(f"{path}: invalid register map: ") and "unknown type 'float99'" in msg, msg
    assert "points[1].bogus" in msg, msg


def test_a_setpoint_spec_can_name_a_point_without_attr():
    """SunSpec 704's active-power limit WMaxLimPct has a reversion timer and no mosaik attr: its spec
    names the point; the attr lookup (what a gateway writes) and the points adapters use do not change."""
    b = load_map("sunspec_battery")
    lim = next(sp for sp in b.setpoints if sp.point == "m704.WMaxLimPct")
    assert lim.attr is None and lim.target(b).name == "m704.WMaxLimPct"
    assert lim.group(b) == {"m704.WMaxLimPct", "m704.WMaxLimPctRvrtTms", "m704.WMaxLimPctEnaRvrt",
                            "m704.WMaxLimPctRvrt"}
    assert b.setpoint("P_bat_set").target(b).name == "m704.WSet"
    assert not {n for n in b.used_points() if "WMaxLim" in n}


def test_unknown_map_name():
    with pytest.raises(FileNotFoundError, match="bundled"):
        load_map("no_such_meter")
