"""Compare two results files value by value: every dataset (NaN equal to NaN), its device ids and
unit, and every event stream record by record. Fields that measure the computer, not the simulation
(wall-clock seconds, file provenance times), are left out.

Also runs as ``python -m tests.helpers.same_results OLD.h5 NEW.h5`` (prints the differences; exit 1).
"""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np

WALL_CLOCK_FIELDS = ("seconds",)  # central-reference events carry the solver's wall time


def _events(raw: np.ndarray, before_ms: int | None = None) -> list[dict]:
    lines = bytes(raw).decode().splitlines()
    recs = [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK_FIELDS} for line in lines if line]
    if before_ms is not None:  # by when the event happened (flex: t; messages and readings: sent)
        recs = [r for r in recs if r.get("t", r.get("sent", 0)) < before_ms]
    return recs


def differences(old: str, new: str, before_ms: int | None = None) -> list[str]:
    """What differs between two results files (empty: the same results); with *before_ms*, only the
    rows of the times before it and the events that happened before it."""
    out: list[str] = []
    with h5py.File(old, "r") as a, h5py.File(new, "r") as b:
        names: dict[str, list[str]] = {}
        for f, key in ((a, "old"), (b, "new")):
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
            names[key] = sorted(n for n in found if not n.startswith("event_tables/"))
        if names["old"] != names["new"]:
            out.append(f"datasets differ: only old {sorted(set(names['old']) - set(names['new']))}, "
                       f"only new {sorted(set(names['new']) - set(names['old']))}")
        rows = None if before_ms is None else int(np.searchsorted(a["time"][()], before_ms))
        for n in sorted(set(names["old"]) & set(names["new"])):
            x, y = a[n][()], b[n][()]
            if rows is not None and "/_ids/" not in f"/{n}" and not n.startswith("events/") and x.ndim:
                x, y = x[:rows], y[:rows]
            if n.startswith("events/"):
                if _events(x, before_ms) != _events(y, before_ms):
                    out.append(f"/{n}: event records differ")
            elif x.shape != y.shape or x.dtype != y.dtype:
                out.append(f"/{n}: shape/dtype {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
            elif x.dtype.kind == "f" and not np.array_equal(x, y, equal_nan=True):
                out.append(f"/{n}: max |diff| {np.nanmax(np.abs(x - y))}")
            elif x.dtype.kind != "f" and not np.array_equal(x, y):
                out.append(f"/{n}: values differ")
            elif dict(a[n].attrs) != dict(b[n].attrs):
                out.append(f"/{n}: attributes differ")
    return out


if __name__ == "__main__":
    diffs = differences(sys.argv[1], sys.argv[2])
    print("\n".join(diffs) or "identical")
    sys.exit(1 if diffs else 0)
