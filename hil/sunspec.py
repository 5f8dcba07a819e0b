"""SunSpec: register layouts from the official model definitions, and the model-chain scan.

Layouts come from the SunSpec information-model JSON files that pysunspec2 (the SunSpec
Alliance's reference client) ships in ``sunspec2/models/json``: a block ``{model: 704}`` of a
``sunspec: true`` register map takes every point's offset, type, size, scale-factor point, access
and unit from ``model_704.json``; the map's own points for that block only add what the model
cannot know (initial values, mosaik attrs, emulator quantities, write ranges). So a bundled map
and the reference client read the same registers by construction.

A SunSpec device is found by walking its model chain, never by fixed addresses: the ``SunS``
marker at one of the base addresses (40000, 0, 50000, the order pysunspec2 tries them), then
``(id, L)`` headers, each model starting ``L + 2`` registers after the previous one, until the
end model id 0xFFFF.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import sunspec2

MODELS_DIR = Path(sunspec2.__file__).with_name("models") / "json"
BASE_ADDRESSES = (40000, 0, 50000)  # SunSpec Modbus spec / pysunspec2 ``base_addr_list``
SUNS = (0x5375, 0x6E53)  # "SunS"
END_MODEL = 0xFFFF
LAYOUT_FIELDS = ("address", "offset", "type", "count", "sf", "access", "function", "word_order")
# SunSpec JSON types our codec has no type for (none of the bundled models uses them)
_UNSUPPORTED = {"ipaddr", "ipv6addr", "eui48"}


@lru_cache(maxsize=None)
def model_definition(model_id: int) -> dict | None:
    """The group tree of SunSpec model ``model_id`` from pysunspec2's JSON (None if it has none)."""
    path = MODELS_DIR / f"model_{int(model_id)}.json"
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)["group"]


def model_points(model_id: int) -> tuple[list[dict[str, Any]], int] | None:
    """Point specs of a model (without ``ID`` and ``L``) and its length ``L`` from the JSON.

    Each spec has ``name`` (``Group.Point`` inside a nested group, as pysunspec2 names them),
    ``offset`` (from the model start, ID = 0), ``type``, ``count``, ``sf``, ``access`` and ``unit``.
    Raises ValueError for repeating groups and types the codec does not know.
    """
    top = model_definition(model_id)
    if top is None:
        return None
    out: list[dict[str, Any]] = []
    off = 0

    def walk(group: dict, prefix: str) -> None:
        nonlocal off
        count = group.get("count", 1)
        if prefix and count not in (1, "1"):
            raise ValueError(f"SunSpec model {model_id}: repeating group {group['name']} "
                             f"(count {count}) is not supported")
        for p in group.get("points", []):
            name = prefix + p["name"]
            size = int(p["size"])
            if p["type"] in _UNSUPPORTED:
                raise ValueError(f"SunSpec model {model_id}: point {name} has unsupported type {p['type']}")
            if name not in ("ID", "L"):
                spec = {"name": name, "offset": off, "type": p["type"], "count": size,
                        "access": "rw" if p.get("access", "R").upper() == "RW" else "r",
                        "unit": p.get("units", "")}
                sf = p.get("sf")
                if isinstance(sf, int):
                    spec["scale"] = 10.0 ** sf
                elif sf:
                    spec["sf"] = sf
                if p["type"] != "string":
                    del spec["count"]
                symbols = [sym["value"] for sym in p.get("symbols", ())]
                if spec["access"] == "rw" and p["type"].startswith("enum") and symbols:
                    spec["min"], spec["max"] = min(symbols), max(symbols)  # write range of an enum
                out.append(spec)
            off += size
        for g in group.get("groups", []):
            walk(g, f"{prefix}{g['name']}.")

    walk(top, "")
    return out, off - 2


def merge_block_points(model_id: int, overrides: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The points of a SunSpec model block: layout from the JSON, the rest from ``overrides``
    (point dicts of the map, matched by name). None when pysunspec2 has no such model."""
    defn = model_points(model_id)
    if defn is None:
        return None
    specs, _ = defn
    by_name = {s["name"]: dict(s) for s in specs}
    for o in overrides:
        name = o["name"]
        if name not in by_name:
            raise ValueError(f"model {model_id} has no point {name!r} (SunSpec model_{model_id}.json); "
                             f"points: {', '.join(by_name)}")
        spec = by_name[name]
        clash = [f"{k}={o[k]!r} (model: {spec.get(k)!r})" for k in LAYOUT_FIELDS
                 if o.get(k) is not None and (k != "count" or spec["type"] == "string")
                 and o[k] != spec.get(k)]
        if o.get("unit") and spec["unit"] and o["unit"] != spec["unit"]:
            clash.append(f"unit={o['unit']!r} (model: {spec['unit']!r})")
        if clash:
            raise ValueError(f"model {model_id} point {name}: {', '.join(clash)} - the layout comes "
                             f"from the SunSpec model definition")
        o = {k: v for k, v in o.items() if v is not None and k not in LAYOUT_FIELDS and not (k == "unit" and spec["unit"])}
        spec.update(o)
    return list(by_name.values())


def model_length(model_id: int) -> int | None:
    defn = model_points(model_id)
    return None if defn is None else defn[1]


# ------------------------------------------------------------------------------------------------
# model-chain scan
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoundModel:
    id: int
    address: int  # of the model's ID register
    length: int   # L: registers after the (ID, L) header


class ScanError(Exception):
    """The device does not present a usable SunSpec model chain."""


ReadFn = Callable[[int, int], Awaitable[list[int]]]


async def scan(read: ReadFn, bases: tuple[int, ...] = BASE_ADDRESSES, max_models: int = 256,
               refused: tuple[type[BaseException], ...] = (Exception,)) -> tuple[int, list[FoundModel]]:
    """Walk a device's model chain: ``(base, [FoundModel, ...])`` up to (without) the end model.

    ``read(address, count)`` reads holding registers; a base address where it raises one of
    ``refused`` (the device's Modbus exception) or that does not hold ``SunS`` is skipped, other
    errors propagate. Raises ScanError when no base holds the marker, the chain runs past register
    65535 or has more than ``max_models`` models.
    """
    base = None
    tried = []
    for b in bases:
        try:
            regs = await read(b, 2)
        except refused as exc:
            tried.append(f"{b}: {exc}")
            continue
        if tuple(regs) == SUNS:
            base = b
            break
        tried.append(f"{b}: no SunS marker")
    if base is None:
        raise ScanError("no SunSpec marker 'SunS' (" + "; ".join(tried) + ")")
    found: list[FoundModel] = []
    addr = base + 2
    while True:
        if addr + 1 > 0xFFFF:
            raise ScanError(f"model chain runs past register 65535 (at {addr})")
        if len(found) >= max_models:
            raise ScanError(f"model chain longer than {max_models} models")
        mid = (await read(addr, 1))[0]
        if mid == END_MODEL:
            return base, found
        length = (await read(addr + 1, 1))[0]
        found.append(FoundModel(mid, addr, length))
        addr += length + 2


def relocation(regmap, base: int, found: list[FoundModel]) -> list[tuple[int, int, int]]:
    """Where a SunSpec map's blocks are on a scanned device: ``[(start, end, shift), ...]``
    (nominal holding-register span of each block and the shift to add to reach the device's copy).

    The marker block moves to ``base``, the n-th block of model X to the device's n-th model X, the
    end block to the end of the chain. Raises ScanError when the device lacks a model of the map or
    has it too short for the points the adapters use (:meth:`RegisterMap.used_points`): a device may
    announce an older, shorter revision of a model (model 1 with L=65, before its Pad point, as
    SolarEdge and Fronius do), and the points beyond its L are then only not read.
    """
    used = regmap.used_points()
    spans = []
    seen: dict[int, int] = {}
    chain_end = found[-1].address + found[-1].length + 2 if found else base + 2
    first_model = min((regmap.point(f"{b.name}.ID").address for b in regmap.blocks if b.model is not None),
                      default=None)
    for b in regmap.blocks:
        pts = [p for p in regmap.all_points if p.name.startswith(b.name + ".")]
        if not pts:
            continue
        start, end = min(p.address for p in pts), max(p.end for p in pts)
        if b.model is None:
            if end == first_model:
                spans.append((start, end, base + 2 - end))  # the SunS marker block
            continue
        if b.model == END_MODEL:
            spans.append((start, end, chain_end - start))
            continue
        k = seen[b.model] = seen.get(b.model, -1) + 1
        hits = [f for f in found if f.id == b.model]
        if len(hits) <= k:
            raise ScanError(f"the device has no SunSpec model {b.model} (found: "
                            f"{', '.join(str(f.id) for f in found) or 'none'})")
        dev = hits[k]
        need = max((p.end for p in pts if p.name in used), default=start + 2) - start - 2
        if dev.length < need:
            far = max((p for p in pts if p.name in used), key=lambda p: p.end)
            raise ScanError(f"SunSpec model {b.model} on the device has L={dev.length}, the map needs {need} "
                            f"(up to {far.name})")
        spans.append((start, end, dev.address - start))
    return sorted(spans)
