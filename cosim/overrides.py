"""Dotted paths into a scenario (``districts[0].shares.pv``): the override vocabulary of sweeps,
``cosim run`` options and the Python API (:func:`cosim.run`)."""

from __future__ import annotations

import copy
import re
from typing import Any

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])*)*$")


def parse_path(path: str) -> list[str | int]:
    if not _PATH.match(path):
        raise ValueError(f"not a dotted path like districts[0].shares.pv: {path!r}")
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _TOKEN.finditer(path)]


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``data[path] = value`` in nested dicts/lists; missing mapping keys are created."""
    parts = parse_path(path)
    cur: Any = data
    where = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(cur, list):
                raise ValueError(f"{where or '(top level)'} is not a list")
            if part >= len(cur):
                raise ValueError(f"index [{part}] out of range: {where} has {len(cur)} entries")
            where += f"[{part}]"
            if last:
                cur[part] = copy.deepcopy(value)
            else:
                if cur[part] is None:
                    cur[part] = {}
                cur = cur[part]
        else:
            if not isinstance(cur, dict):
                raise ValueError(f"{where} is not a mapping (it is {type(cur).__name__})")
            where += ("." if where else "") + part
            if last:
                cur[part] = copy.deepcopy(value)
            else:
                if cur.get(part) is None:
                    cur[part] = [] if isinstance(parts[i + 1], int) else {}
                cur = cur[part]
