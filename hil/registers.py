"""Modbus register maps as data, and the codec between values and registers.

A register map is a YAML file (bundled ones in ``hil/maps/``, or a user file with the same schema)
loaded into the pydantic model :class:`RegisterMap`. The same map drives every side of the HIL
layer: the device server / lab emulator serve it, the meter and gateway adapters read and write it.

YAML schema (all keys except ``name`` optional)::

    name: sdm630                     # map name (bundled maps are looked up by it)
    description: "..."
    function: input                  # default table of the points: holding (FC3/6/16) | input (FC4)
    word_order: big                  # default word order of multi-register points: big | little
    shared: false                    # true: holding and input requests read ONE register table
                                     #   (devices answering FC3 and FC4 alike, e.g. Carlo Gavazzi EM24)
    fill_gaps: 0                     # unmapped gaps of up to N registers between points read as 0
                                     #   (block reads across them work); other unmapped registers
                                     #   are refused with exception 2 (ILLEGAL DATA ADDRESS)
    sunspec: false                   # SunSpec semantics: scale-factor points, not-implemented values -> NaN
    points:                          # points with absolute addresses ...
      - name: total_power            # unique name
        address: 0x0034              # absolute 0-based register address (PDU address)
        function: input              # optional, overrides the map default
        type: float32                # uint16 int16 uint32 int32 uint64 int64 float32 float64 string
                                     #   + SunSpec aliases: sunssf enum16 bitfield16 acc16 acc32
                                     #     enum32 bitfield32 acc64 pad
        count: 2                     # registers; derived from type, required for string
        word_order: big              # optional override
        scale: 1.0                   # engineering value = raw * scale * 10**sf
        sf: W_SF                     # SunSpec scale-factor point (same block first, then full name)
        unit: W                      # engineering unit (W kW var kvar VA kVA Wh kWh V A Hz % s ...)
        access: r                    # r | rw
        min: -5000                   # allowed range of written values (engineering units, rw points)
        max: 5000
        attr: P                      # mosaik attribute this point maps to ...
        attr_scale: 0.001            #   ... attr value = engineering value * attr_scale (W -> kW)
        quantity: P                  # physical quantity tag used by the emulator's physics models
        value: 0                     # initial / constant value (engineering units or a string)
    blocks:                          # ... and/or blocks of points with relative offsets
      - name: m203                   # point full names are "<block>.<point>", e.g. m203.W
        base: 40070                  # absolute start; omitted = right after the previous block
        model: 203                   # SunSpec model id: adds the ID and L points at offsets 0 and 1
        length: 105                  # SunSpec L (checked against the points)
        points:                      # offset omitted = right after the previous point
          - {name: A, type: int16, sf: A_SF, unit: A}
    setpoints:                       # set points and how the device reverts them (see gateway_adapter)
      - attr: P_bat_set              # attr of an rw point (what a gateway writes), or instead
                                     #   point: m704.WMaxLimPct  (a set point without attr: only reverted)
        with: {m704.WSetEna: 1}      # companion points written together with every setpoint
        revert_timer: m704.WSetRvrtTms   # the device's revert timeout point (seconds)
        revert_enable: m704.WSetRvrtEna  # reversion runs only while this point is non-zero
        revert_value: m704.WSetRvrt      # safe value the set point reverts to (omitted: 0)
        revert_remaining: m704.WSetRvrtRem  # countdown maintained by the (emulated) device
        revert_also: {m704.WSetPct: m704.WSetPctRvrt}  # further points reverted, each to its point's value

Sign and unit conventions of the mosaik attributes are those of docs/architecture.md (kW, load
convention, Wh energy registers, soc as a 0..1 fraction); ``attr_scale`` carries the conversion.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pymodbus.client.mixin import ModbusClientMixin

from .sunspec import END_MODEL, merge_block_points

DT = ModbusClientMixin.DATATYPE
MAPS_DIR = Path(__file__).with_name("maps")

# type name -> (pymodbus DATATYPE, registers, is_integer, signed)
_BASE_TYPES: dict[str, tuple[Any, int, bool, bool]] = {
    "uint16": (DT.UINT16, 1, True, False),
    "int16": (DT.INT16, 1, True, True),
    "uint32": (DT.UINT32, 2, True, False),
    "int32": (DT.INT32, 2, True, True),
    "uint64": (DT.UINT64, 4, True, False),
    "int64": (DT.INT64, 4, True, True),
    "float32": (DT.FLOAT32, 2, False, True),
    "float64": (DT.FLOAT64, 4, False, True),
    "string": (DT.STRING, 0, False, False),
}
TYPE_ALIASES = {
    "sunssf": "int16",
    "enum16": "uint16",
    "bitfield16": "uint16",
    "acc16": "uint16",
    "count": "uint16",
    "pad": "uint16",
    "acc32": "uint32",
    "enum32": "uint32",
    "bitfield32": "uint32",
    "acc64": "uint64",
}
TYPES = sorted([*_BASE_TYPES, *TYPE_ALIASES])
# SunSpec "not implemented" raw values (acc* are counters: 0 is a legal reading, not NaN)
_SUNSPEC_NA = {
    "int16": 0x8000 - 0x10000,
    "sunssf": 0x8000 - 0x10000,
    "uint16": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "int32": -(2**31),
    "uint32": 0xFFFFFFFF,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "int64": -(2**63),
    "uint64": 2**64 - 1,
}
FUNCTION_CODES = {"holding": 3, "input": 4}
# engineering unit -> size in canonical units (W, var, VA, Wh, varh, VAh, V, A, Hz, s, fraction);
# used for ``quantity`` values: point value = canonical value / UNIT_FACTORS[unit]
UNIT_FACTORS = {
    "": 1.0, "W": 1.0, "kW": 1e3, "var": 1.0, "Var": 1.0, "kvar": 1e3, "VA": 1.0, "kVA": 1e3,
    "Wh": 1.0, "kWh": 1e3, "varh": 1.0, "kvarh": 1e3, "VAh": 1.0, "kVAh": 1e3,
    "V": 1.0, "A": 1.0, "Ah": 1.0, "Hz": 1.0, "s": 1.0, "Secs": 1.0, "min": 60.0,
    "%": 0.01, "Pct": 0.01, "%WHRtg": 0.01, "deg": 1.0, "C": 1.0,
}


def base_type(type_name: str) -> str:
    return TYPE_ALIASES.get(type_name, type_name)


def type_registers(type_name: str) -> int:
    """Registers of one value of a numeric type (0 for string)."""
    return _BASE_TYPES[base_type(type_name)][1]


def _int_range(type_name: str) -> tuple[int, int]:
    _, regs, _, signed = _BASE_TYPES[base_type(type_name)]
    bits = 16 * regs
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


# --------------------------------------------------------------------------------------------
# raw codec: python value <-> registers (no scaling)
# --------------------------------------------------------------------------------------------
def encode_raw(
    type_name: str, value: int | float | str, word_order: str = "big", count: int | None = None
) -> list[int]:
    """Encode one raw value into registers (pymodbus ``convert_to_registers``).

    Integers are range-checked (ValueError), strings are NUL-padded/truncated to ``count``
    registers, word_order "little" puts the least significant word first (EM24 int32).
    """
    bt = base_type(type_name)
    dtype, regs, is_int, _ = _BASE_TYPES[bt]
    if bt == "string":
        if count is None:
            raise ValueError("string needs a register count")
        raw = str(value).encode("utf-8")[: 2 * count].ljust(2 * count, b"\x00")
        out = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * count, 2)]
        return list(reversed(out)) if word_order == "little" else out
    if is_int:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{type_name} cannot hold {value}")
            value = int(round(value))
        lo, hi = _int_range(bt)
        if not lo <= value <= hi:
            raise ValueError(f"{value} out of {type_name} range [{lo}, {hi}]")
    else:
        value = float(value)
    return ModbusClientMixin.convert_to_registers(value, dtype, word_order=word_order)


def decode_raw(type_name: str, registers: list[int], word_order: str = "big") -> int | float | str:
    """Decode registers into one raw value (pymodbus ``convert_from_registers``)."""
    bt = base_type(type_name)
    dtype, regs, _, _ = _BASE_TYPES[bt]
    if bt == "string":
        regs_ = list(reversed(registers)) if word_order == "little" else list(registers)
        raw = b"".join(int(r).to_bytes(2, "big") for r in regs_)
        return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if len(registers) != regs:
        raise ValueError(f"{type_name} needs {regs} registers, got {len(registers)}")
    return ModbusClientMixin.convert_from_registers(list(registers), dtype, word_order=word_order)


# --------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Point(_Strict):
    """One register point. After loading, ``address``/``function``/``word_order``/``count`` are set
    and ``name`` is the full name (``block.point`` for block points)."""

    name: str
    address: int | None = Field(None, ge=0, le=0xFFFF)
    offset: int | None = Field(None, ge=0, le=0xFFFF)
    function: Literal["holding", "input"] | None = None
    type: str
    count: int | None = Field(None, ge=1, le=125)
    scale: float = 1.0
    sf: str | None = None
    word_order: Literal["big", "little"] | None = None
    unit: str = ""
    access: Literal["r", "rw"] = "r"
    min: float | None = None
    max: float | None = None
    attr: str | None = None
    attr_scale: float = 1.0
    quantity: str | None = None
    value: float | int | str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self):
        if self.type not in TYPES:
            raise ValueError(f"point {self.name}: unknown type {self.type!r} (known: {', '.join(TYPES)})")
        if base_type(self.type) == "string":
            if self.count is None:
                raise ValueError(f"point {self.name}: a string needs count (registers)")
            if self.attr is not None:
                raise ValueError(f"point {self.name}: a string point cannot map to a mosaik attr")
        else:
            n = type_registers(self.type)
            if self.count is None:
                self.count = n
            elif self.count != n:
                raise ValueError(f"point {self.name}: {self.type} has {n} registers, count={self.count}")
        if self.quantity is not None and self.unit not in UNIT_FACTORS:
            raise ValueError(f"point {self.name}: unit {self.unit!r} unknown for a quantity "
                             f"(known: {', '.join(sorted(UNIT_FACTORS))})")
        if self.scale == 0 or self.attr_scale == 0:
            raise ValueError(f"point {self.name}: scale and attr_scale must be non-zero")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"point {self.name}: min {self.min} > max {self.max}")
        if self.address is not None and self.offset is not None:
            raise ValueError(f"point {self.name}: give address or offset, not both")
        return self

    # ---- helpers ------------------------------------------------------------------------------
    @property
    def is_string(self) -> bool:
        return base_type(self.type) == "string"

    @property
    def is_integer(self) -> bool:
        return _BASE_TYPES[base_type(self.type)][2]

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    @property
    def end(self) -> int:
        """One past the last register."""
        return int(self.address) + int(self.count)

    def attr_bounds(self) -> tuple[float, float]:
        """[min, max] expressed in attr units (respecting a negative attr_scale)."""
        lo = -math.inf if self.min is None else self.min * self.attr_scale
        hi = math.inf if self.max is None else self.max * self.attr_scale
        return (lo, hi) if lo <= hi else (hi, lo)


class Block(_Strict):
    name: str
    base: int | None = Field(None, ge=0, le=0xFFFF)
    function: Literal["holding", "input"] | None = None
    model: int | None = Field(None, ge=0, le=0xFFFF)
    length: int | None = Field(None, ge=0)
    description: str = ""
    points: list[Point] = Field(default_factory=list)


class SetpointSpec(_Strict):
    """How a set point is written, and how the device reverts it.

    The set point is the point of ``attr`` (a mosaik attribute: what a gateway writes) or ``point`` (a
    point without attr, which only the device server reverts, e.g. SunSpec 704 ``WMaxLimPct``).
    ``with``: companion points written in the same request; ``revert_timer``: point holding the
    reversion time (s, 0 = none) that a gateway writes with every set point; ``revert_enable``:
    point that must be non-zero for the reversion to run; ``revert_value``: point holding the safe
    value (omitted: 0); ``revert_remaining``: read-only countdown point the device maintains;
    ``revert_also``: further points the reversion sets, each to the value of its own point (SunSpec
    704 in percent mode, ``WSetMod`` = 0, runs on ``WSetPct`` and reverts it to ``WSetPctRvrt``).
    """

    attr: str | None = None
    point: str | None = None
    with_: dict[str, float] = Field(default_factory=dict, alias="with")
    revert_timer: str | None = None
    revert_enable: str | None = None
    revert_value: str | None = None
    revert_remaining: str | None = None
    revert_also: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.attr is None) == (self.point is None):
            raise ValueError(f"setpoint {self.attr or self.point or ''}: give its attr or its point (one of them)")
        return self

    def target(self, regmap: "RegisterMap") -> Point:
        """The set point: the point of ``attr``, or ``point``."""
        return regmap.by_attr(self.attr) if self.attr else regmap.point(self.point)

    def group(self, regmap: "RegisterMap") -> set[str]:
        """Point names whose write (re)starts the reversion timer."""
        names = {self.target(regmap).name, *self.with_, *self.revert_also, *self.revert_also.values()}
        for n in (self.revert_timer, self.revert_enable, self.revert_value):
            if n:
                names.add(n)
        return names


class RegisterMap(_Strict):
    name: str
    description: str = ""
    function: Literal["holding", "input"] = "holding"
    word_order: Literal["big", "little"] = "big"
    shared: bool = False
    fill_gaps: int = Field(0, ge=0, le=1000)
    sunspec: bool = False
    points: list[Point] = Field(default_factory=list)
    blocks: list[Block] = Field(default_factory=list)
    setpoints: list[SetpointSpec] = Field(default_factory=list)

    _points: dict[str, Point] = PrivateAttr(default_factory=dict)
    _by_attr: dict[str, Point] = PrivateAttr(default_factory=dict)
    _by_quantity: dict[str, Point] = PrivateAttr(default_factory=dict)
    _sf_of: dict[str, Point] = PrivateAttr(default_factory=dict)
    _owner: dict[str, dict[int, Point]] = PrivateAttr(default_factory=dict)
    _readable: dict[str, set[int]] = PrivateAttr(default_factory=dict)
    _setpoints: dict[str, SetpointSpec] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sunspec_layouts(cls, data: Any) -> Any:
        """SunSpec model blocks take their layout from the official model definition
        (:func:`hil.sunspec.merge_block_points`); the map's points only add values and attrs."""
        if not isinstance(data, dict) or not data.get("sunspec"):
            return data
        blocks = []
        for b in data.get("blocks") or []:
            if isinstance(b, dict) and b.get("model") not in (None, END_MODEL):
                try:
                    merged = merge_block_points(int(b["model"]), list(b.get("points") or []))
                except ValueError as exc:
                    raise ValueError(f"block {b.get('name')}: {exc}") from None
                if merged is not None:
                    b = {**b, "points": merged}
            blocks.append(b)
        return {**data, "blocks": blocks}

    @model_validator(mode="after")
    def _resolve(self):
        resolved: list[Point] = []
        for p in self.points:
            if p.address is None:
                raise ValueError(f"point {p.name}: top-level points need an absolute address")
            resolved.append(p.model_copy(update={
                "function": p.function or self.function,
                "word_order": p.word_order or self.word_order,
            }))
        block_scope: dict[str, str] = {}  # full name -> block name
        cursor: int | None = None
        for b in self.blocks:
            base = b.base if b.base is not None else cursor
            if base is None:
                raise ValueError(f"block {b.name}: the first block needs a base address")
            pts = list(b.points)
            if b.model is not None:
                # type "count" = uint16 without a SunSpec not-implemented value (0xFFFF is the end id)
                head = [Point(name="ID", type="count", value=b.model, description="model id"),
                        Point(name="L", type="count", value=0, description="model length")]
                if any(p.name in ("ID", "L") for p in pts):
                    raise ValueError(f"block {b.name}: ID and L are added automatically for a model")
                pts = head + pts
            off = 0
            end = 0
            for p in pts:
                if p.address is not None:
                    raise ValueError(f"block {b.name} point {p.name}: use offset inside a block")
                o = p.offset if p.offset is not None else off
                full = f"{b.name}.{p.name}"
                q = p.model_copy(update={
                    "name": full, "address": base + o, "offset": o,
                    "function": p.function or b.function or self.function,
                    "word_order": p.word_order or self.word_order,
                })
                resolved.append(q)
                block_scope[full] = b.name
                off = o + q.count
                end = max(end, off)
            if b.model is not None:
                length = end - 2
                if b.length is not None and b.length != length:
                    raise ValueError(f"block {b.name}: points span L={length}, length says {b.length}")
                # patch the L point value
                for i, q in enumerate(resolved):
                    if q.name == f"{b.name}.L":
                        resolved[i] = q.model_copy(update={"value": length})
            cursor = base + end
        # index
        pts: dict[str, Point] = {}
        for p in resolved:
            if p.name in pts:
                raise ValueError(f"duplicate point name {p.name}")
            if p.end > 0x10000:
                raise ValueError(f"point {p.name} runs past register 65535")
            pts[p.name] = p
        self._points = pts
        owner: dict[str, dict[int, Point]] = {}
        for p in resolved:
            tab = owner.setdefault(self.table_of(p), {})
            for a in range(p.address, p.end):
                if a in tab:
                    raise ValueError(f"points {tab[a].name} and {p.name} overlap at register {a}")
                tab[a] = p
        self._owner = owner
        for table, tab in owner.items():
            ok = set(tab)
            addrs = sorted(tab)
            for a, b in zip(addrs, addrs[1:]):
                if 1 < b - a <= self.fill_gaps + 1:
                    ok.update(range(a + 1, b))
            self._readable[table] = ok
        for p in resolved:
            if p.sf is not None:
                cands = []
                if p.name in block_scope:
                    cands.append(f"{block_scope[p.name]}.{p.sf}")
                cands.append(p.sf)
                sfp = next((pts[c] for c in cands if c in pts), None)
                if sfp is None:
                    raise ValueError(f"point {p.name}: scale-factor point {p.sf} not found")
                if base_type(sfp.type) != "int16":
                    raise ValueError(f"point {p.name}: scale factor {sfp.name} must be int16/sunssf")
                self._sf_of[p.name] = sfp
            if p.attr is not None:
                if p.attr in self._by_attr:
                    raise ValueError(f"attr {p.attr} mapped twice ({self._by_attr[p.attr].name}, {p.name})")
                self._by_attr[p.attr] = p
            if p.quantity is not None:
                if p.quantity in self._by_quantity:
                    raise ValueError(f"quantity {p.quantity} tagged twice")
                self._by_quantity[p.quantity] = p
            if p.writable is False and (p.min is not None or p.max is not None):
                pass  # documentation only
        targets: set[str] = set()
        for sp in self.setpoints:
            name = sp.attr or sp.point
            pt = self._by_attr.get(sp.attr) if sp.attr else pts.get(sp.point)
            if pt is None or not pt.writable:
                raise ValueError(f"setpoint {name}: needs a writable point{' with that attr' if sp.attr else ''}")
            if pt.name in targets:
                raise ValueError(f"setpoint {name}: point {pt.name} has a setpoint spec already")
            targets.add(pt.name)
            for n in sorted(sp.group(self) - {pt.name}):  # what a write of the set point touches
                if n not in pts or not pts[n].writable:
                    raise ValueError(f"setpoint {name}: {n} is not a writable point")
            if sp.revert_remaining and sp.revert_remaining not in pts:
                raise ValueError(f"setpoint {name}: no point {sp.revert_remaining}")
            if sp.attr:
                self._setpoints[sp.attr] = sp
        return self

    # ---- lookups ------------------------------------------------------------------------------
    def table_of(self, p: Point) -> str:
        return "shared" if self.shared else str(p.function)

    def table_for_fc(self, function_code: int) -> str:
        if self.shared:
            return "shared"
        return "input" if function_code == 4 else "holding"

    @property
    def all_points(self) -> list[Point]:
        return list(self._points.values())

    def point(self, name: str) -> Point:
        try:
            return self._points[name]
        except KeyError:
            raise KeyError(f"map {self.name}: no point {name!r}") from None

    def has_point(self, name: str) -> bool:
        return name in self._points

    def by_attr(self, attr: str) -> Point | None:
        return self._by_attr.get(attr)

    @property
    def attrs(self) -> dict[str, Point]:
        return dict(self._by_attr)

    def by_quantity(self, quantity: str) -> Point | None:
        return self._by_quantity.get(quantity)

    def sf_point(self, p: Point) -> Point | None:
        return self._sf_of.get(p.name)

    def setpoint(self, attr: str) -> SetpointSpec | None:
        """The setpoint spec of a mosaik attribute (specs naming a point without attr are not here)."""
        return self._setpoints.get(attr)

    def used_points(self) -> set[str]:
        """Names of the points an adapter reads or writes: the attr points, their scale factors, and
        each set point's companions and reversion points."""
        names = set()
        for p in self._by_attr.values():
            names.add(p.name)
            if (sfp := self.sf_point(p)) is not None:
                names.add(sfp.name)
        for sp in self._setpoints.values():
            names |= sp.group(self)
            if sp.revert_remaining:
                names.add(sp.revert_remaining)
        return names

    def owner(self, table: str, address: int) -> Point | None:
        return self._owner.get(table, {}).get(address)

    def tables(self) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {}
        for p in sorted(self._points.values(), key=lambda q: q.address):
            out.setdefault(self.table_of(p), []).append(p)
        return out

    def readable(self, table: str, start: int, end: int) -> bool:
        """True if every register in [start, end) can be read (mapped, or fill_gaps)."""
        ok = self._readable.get(table, set())
        return all(a in ok for a in range(start, end))

    def runs(self, table: str) -> list[tuple[int, int]]:
        """Readable register runs [start, end) of a table (what a server serves)."""
        addrs = sorted(self._readable.get(table, ()))
        out: list[tuple[int, int]] = []
        for a in addrs:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], a + 1)
            else:
                out.append((a, a + 1))
        return out

    def read_plan(self, points: list[Point], max_regs: int = 120, max_gap: int = 32) -> list[tuple[str, int, int]]:
        """Coalesce the registers of ``points`` (plus their scale factors) into read requests.

        Returns (table, address, count) tuples; adjacent runs are merged across gaps of at most
        ``max_gap`` registers when the gap is readable, up to ``max_regs`` registers per request.
        """
        need: dict[str, set[tuple[int, int]]] = {}
        for p in points:
            for q in (p, self.sf_point(p)):
                if q is not None:
                    need.setdefault(self.table_of(q), set()).add((q.address, q.end))
        plan = []
        for table, spans in need.items():
            cur_s = cur_e = None
            for s, e in sorted(spans):
                if cur_s is None:
                    cur_s, cur_e = s, e
                elif (s <= cur_e or (s - cur_e <= max_gap and self.readable(table, cur_e, s))) and max(e, cur_e) - cur_s <= max_regs:
                    cur_e = max(cur_e, e)
                else:
                    plan.append((table, cur_s, cur_e - cur_s))
                    cur_s, cur_e = s, e
            if cur_s is not None:
                plan.append((table, cur_s, cur_e - cur_s))
        return plan

    # ---- value codec -----------------------------------------------------------------------
    def factor(self, p: Point, sf: int | float | None) -> float:
        f = p.scale
        if p.sf is not None:
            if sf is None or (isinstance(sf, float) and math.isnan(sf)):
                return math.nan
            f *= 10.0 ** int(sf)
        return f

    def encode(self, p: Point, value: float | int | str, sf: int | None = None, clip: bool = True) -> list[int]:
        """Engineering value -> registers (scale and SunSpec scale factor applied).

        NaN encodes as the SunSpec not-implemented value in a SunSpec map. Integers out of the
        type's range are clipped when ``clip`` (else ValueError)."""
        if p.is_string:
            return encode_raw(p.type, str(value), p.word_order, p.count)
        bt = base_type(p.type)
        v = float(value)
        if p.sf is not None and sf is None:
            raise ValueError(f"{p.name}: needs the value of scale factor {p.sf}")
        if math.isnan(v):
            if p.is_integer:
                if self.sunspec and p.type in _SUNSPEC_NA:
                    return encode_raw(bt, _SUNSPEC_NA[p.type], p.word_order)
                raise ValueError(f"{p.name}: NaN cannot be encoded in {p.type}")
            return encode_raw(bt, v, p.word_order)
        raw = v / self.factor(p, sf)
        if p.is_integer:
            raw = int(round(raw))
            lo, hi = _int_range(bt)
            if not lo <= raw <= hi:
                if not clip:
                    raise ValueError(f"{p.name}: {value} needs raw {raw}, outside {p.type}")
                if self.sunspec and p.type in _SUNSPEC_NA:  # do not clip onto "not implemented"
                    na = _SUNSPEC_NA[p.type]
                    lo, hi = (lo + 1, hi) if na == lo else (lo, hi - 1) if na == hi else (lo, hi)
                raw = min(max(raw, lo), hi)
        return encode_raw(bt, raw, p.word_order)

    def decode(self, p: Point, registers: list[int], sf: int | None = None) -> float | str:
        """Registers -> engineering value (NaN for SunSpec not-implemented values)."""
        raw = decode_raw(p.type, registers, p.word_order)
        if p.is_string:
            return raw
        if self.sunspec and p.type in _SUNSPEC_NA and raw == _SUNSPEC_NA[p.type]:
            return math.nan
        if p.type == "sunssf" or (p.sf is None and p.scale == 1.0):
            return float(raw)
        return float(raw) * self.factor(p, sf)


# --------------------------------------------------------------------------------------------
# register image: the registers of one device, with point-level get/set
# --------------------------------------------------------------------------------------------
class RegisterImage:
    """Registers of one device laid out by a :class:`RegisterMap` (thread-safe).

    The device server keeps one per served device (it is the source of truth of what a client
    reads); adapters keep one per polled device and fill it with what they read.
    """

    def __init__(self, regmap: RegisterMap, initial: bool = True):
        self.map = regmap
        self.lock = threading.RLock()
        self._tabs: dict[str, tuple[int, list[int]]] = {}
        for table, pts in regmap.tables().items():
            lo = pts[0].address
            hi = max(p.end for p in pts)
            self._tabs[table] = (lo, [0] * (hi - lo))
        if initial:
            self.load_defaults()

    def load_defaults(self) -> None:
        """Write every point's ``value`` (scale factors first); others stay 0 / not-implemented."""
        pts = self.map.all_points
        sfs = [p for p in pts if p.type == "sunssf"]
        for p in sfs + [p for p in pts if p.type != "sunssf"]:
            if p.value is not None:
                self.set(p, p.value)
            elif self.map.sunspec and p.type in _SUNSPEC_NA:
                # SunSpec: a point nobody fills reads as "not implemented" (NaN for a client)
                self.write(self.map.table_of(p), p.address,
                           encode_raw(base_type(p.type), _SUNSPEC_NA[p.type], p.word_order))

    def span(self, table: str) -> tuple[int, int] | None:
        if table not in self._tabs:
            return None
        lo, regs = self._tabs[table]
        return lo, lo + len(regs)

    def read(self, table: str, address: int, count: int) -> list[int]:
        with self.lock:
            lo, regs = self._tabs[table]
            return regs[address - lo : address - lo + count]

    def write(self, table: str, address: int, values: list[int]) -> None:
        with self.lock:
            lo, regs = self._tabs[table]
            if address < lo or address + len(values) > lo + len(regs):
                raise IndexError(f"{table} registers {address}..{address + len(values) - 1} outside image")
            regs[address - lo : address - lo + len(values)] = [int(v) & 0xFFFF for v in values]

    def raw_registers(self, p: Point) -> list[int]:
        return self.read(self.map.table_of(p), p.address, p.count)

    def sf_value(self, p: Point) -> int | None:
        sfp = self.map.sf_point(p)
        if sfp is None:
            return None
        v = self.map.decode(sfp, self.raw_registers(sfp))
        return None if math.isnan(v) else int(v)

    def get(self, p: Point | str) -> float | str:
        p = self.map.point(p) if isinstance(p, str) else p
        with self.lock:
            regs = self.raw_registers(p)
            sf = self.sf_value(p)
        if p.sf is not None and sf is None:
            return math.nan
        return self.map.decode(p, regs, sf)

    def set(self, p: Point | str, value: float | int | str) -> None:
        p = self.map.point(p) if isinstance(p, str) else p
        with self.lock:
            regs = self.map.encode(p, value, self.sf_value(p) if p.sf else None)
            self.write(self.map.table_of(p), p.address, regs)

    def get_attr(self, attr: str) -> float | None:
        p = self.map.by_attr(attr)
        if p is None:
            return None
        v = self.get(p)
        return float(v) * p.attr_scale + 0.0  # + 0.0: no "-0.0" from a negative attr_scale

    def set_attr(self, attr: str, value: float) -> None:
        p = self.map.by_attr(attr)
        if p is None:
            raise KeyError(f"map {self.map.name}: no point for attr {attr!r}")
        self.set(p, float(value) / p.attr_scale)

    def set_quantity(self, quantity: str, value: float) -> bool:
        """Set the point tagged ``quantity`` from a canonical-unit value; False if untagged."""
        p = self.map.by_quantity(quantity)
        if p is None:
            return False
        self.set(p, float(value) / UNIT_FACTORS[p.unit])
        return True

    def get_quantity(self, quantity: str, default: float | None = None) -> float | None:
        """Canonical-unit value of the point tagged ``quantity`` (``default`` if untagged)."""
        p = self.map.by_quantity(quantity)
        if p is None:
            return default
        return float(self.get(p)) * UNIT_FACTORS[p.unit]


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def list_maps() -> list[str]:
    """Names of the bundled maps."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.yaml"))


def map_from_dict(data: dict) -> RegisterMap:
    return RegisterMap.model_validate(data)


@lru_cache(maxsize=64)
def _load_path(path: str, mtime: float) -> RegisterMap:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a register map must be a YAML mapping")
    try:
        return map_from_dict(data)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid register map: {_one_line(exc)}") from None
    except Exception as exc:
        raise ValueError(f"{path}: invalid register map: {exc}") from exc


def _one_line(exc: ValidationError) -> str:
    """pydantic's report (several lines, with URLs) as ``where: what; ...`` on one line."""
    parts = []
    for err in exc.errors(include_url=False):
        where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
        what = re.sub(r"^(Value|Assertion) error, ", "", str(err["msg"])).replace("\n", " ")
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name longer than the file system allows
        return False


def check_map(ref: str | dict) -> None:
    """Raise ValueError (one line) unless *ref* names or is a loadable register map (for validators)."""
    try:
        load_map(ref)
    except ValueError:
        raise
    except OSError as exc:  # our FileNotFoundError has a message; the system's name a file
        raise ValueError(f"{str(exc.filename)[:80]}: {exc.strerror}" if exc.filename else str(exc)) from None


def load_map(ref: str | Path | RegisterMap | dict) -> RegisterMap:
    """A map by bundled name (``"sdm630"``, ``"sunspec-meter"`` = ``sunspec_meter``), by YAML path,
    or passed through (RegisterMap / dict)."""
    if isinstance(ref, RegisterMap):
        return ref
    if isinstance(ref, dict):
        return map_from_dict(ref)
    s = str(ref)
    path = Path(s)
    if not (s.endswith((".yaml", ".yml")) or _exists(path)):
        path = MAPS_DIR / f"{s.replace('-', '_')}.yaml"
        if not _exists(path):
            raise FileNotFoundError(f"no register map {s[:80]!r}; bundled: {', '.join(list_maps())}")
    path = path.resolve()
    return _load_path(str(path), path.stat().st_mtime)
