"""How much of a result is noise: statistics over replicates (README "Replicates").

A replicate (scenario ``replicate: N``) re-draws the noise streams (telecom latency and loss, meter
noise) with the same households, weather and devices. A controlled substation's KPIs move with them,
because every agent acts on what arrived when: ``uc3_substation`` over 2 days ordered 140 to
266 kWh of flexibility in four replicates (445 to 2 070 kWh while its DSO bought more than the loading
needed, which amplified the noise; README "Replicates"). A study reports such numbers over replicates, and a run
that differs from another only in its noise (a split run's later parts restart their streams) is
judged against that spread.

Sample statistics with Student's t (the replicates are independent draws of one distribution; its
normality is the usual assumption for a handful of them): ``spread`` gives n, mean, standard
deviation (ddof 1), range and the 95 % confidence half-width of the mean, ``prediction_interval`` the
interval that holds a further independent draw with the given probability,
mean ± t(n−1, (1+level)/2)·s·√(1 + 1/n) (e.g. Montgomery & Runger, Applied Statistics and
Probability for Engineers, 6th ed., §8.7).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from scipy import stats

REPLICATE = "replicate"  # the scenario field and sweep parameter


def _finite(values: Iterable[Any]) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def spread(values: Iterable[Any]) -> dict[str, float | int | None]:
    """n, mean, sd, min, max and the 95 % confidence half-width of the mean (None below 2 values)."""
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "ci95": None}
    sd = float(x.std(ddof=1)) if n > 1 else None
    ci = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else None
    return {"n": n, "mean": float(x.mean()), "sd": sd, "min": float(x.min()), "max": float(x.max()), "ci95": ci}


def prediction_interval(values: Iterable[Any], level: float = 0.99) -> tuple[float, float]:
    """The interval that holds one further independent replicate with probability *level*."""
    x = _finite(values)
    if x.size < 2:
        raise ValueError(f"a prediction interval needs at least 2 replicates, got {x.size}")
    n = x.size
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) * math.sqrt(1 + 1 / n))
    return float(x.mean()) - half, float(x.mean()) + half


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)


def replicate_rows(rows: list[dict[str, Any]], params: list[str], keys: list[str]) -> list[dict[str, Any]]:
    """One row per (setting of the other parameters, KPI) with the spread over its completed replicates:
    each run once (a random sweep can draw a setting twice: one run, not two replicates), for the KPIs
    that are numbers (not a range, a list or a text)."""
    others = [p for p in params if p != REPLICATE]
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r.get("status") == "completed":
            groups.setdefault(tuple(str(r.get(p)) for p in others), {}).setdefault(r.get("run") or id(r), r)
    out = []
    for setting, by_run in groups.items():
        members = list(by_run.values())
        for key in keys:
            if not all(m.get(key) is None or _is_number(m.get(key)) for m in members):
                continue
            s = spread(m.get(key) for m in members)
            if s["n"]:
                out.append({**dict(zip(others, setting)), "kpi": key, **s})
    return out
