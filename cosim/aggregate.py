"""Aggregate recording (scenario ``record.aggregate``, README "A year"): one results row per interval.

The recorder still sees every physical step; :class:`Aggregator` folds the steps of one interval into
the row stamped with the interval's start, so the row covers [t, t + interval) as a full-resolution
row covers [t, t + step). What a row holds per attribute:

* **mean** (every attribute not named below: powers, flags, loadings, voltages, codes): the mean over
  the interval's steps, a step without a value counting as 0 and NaN when no step had one. The
  integral of an aggregated series therefore equals the NaN-as-0 integral of the full-resolution
  one (energies, flex kWh, losses, and the mean of a 0/1 flag is the fraction of the interval it was
  set: ``congestion`` and ``v_violation`` minutes stay exact).
* **last** (:data:`LAST`: device states and cumulative counters): the last value of the interval,
  i.e. the end-of-interval state the full-resolution file holds on the interval's last row (the
  window's start and end states, the terminal valuation and the final counter values stay exact).
* **first** (:data:`FIRST`: meter registers): the reading at the row's time stamp, as a meter read
  at the interval boundary (billed energies and ToU costs from register differences stay exact).

Attributes in :data:`EXTREMES` (voltages, loadings) are also stored as the interval minimum and
maximum in ``/<population>/_min/<attr>`` and ``/<population>/_max/<attr>``
(:meth:`cosim.results.Results.extreme`), so voltage extremes and loading maxima are exact.
"""

from __future__ import annotations

import numpy as np

#: meter energy registers (Wh, cumulative) and telecom message counters (cumulative)
REGISTERS = frozenset({"E_imp", "E_exp"})
COUNTERS = frozenset({"sent", "delivered", "lost", "bytes_sent"})
CUMULATIVE = REGISTERS | COUNTERS
#: states and counters: the end-of-interval value
LAST = frozenset({"soc", "soc_ev", "T_in"}) | COUNTERS
#: registers: the reading at the row's time stamp
FIRST = REGISTERS
#: also stored as interval minimum and maximum
EXTREMES = frozenset({"vm_pu", "vm_pu_a", "vm_pu_b", "vm_pu_c", "v_min", "v_max", "line_loading",
                      "trafo_loading", "max_line_loading", "vuf", "vuf_max"})
STATS = ("min", "max")


def extreme_group(pop: str, stat: str) -> str:
    """The HDF5 group of a population's interval minima / maxima."""
    return f"{pop}/_{stat}"


def extra_series(series: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The (group, attr, unit) of the extreme series an aggregated file stores beside *series*."""
    return [(extreme_group(p, s), a, u) for p, a, u in series if a in EXTREMES for s in STATS]


def _matrix(rows: list) -> tuple[list[str], np.ndarray]:
    """Device ids (first-seen order) and the (steps, devices) values of one interval's inputs."""
    index: dict[str, int] = {}
    for r in rows:
        if isinstance(r, dict):
            for k in r:
                index.setdefault(k, len(index))
    ids = list(index)
    M = np.full((len(rows), len(ids)), np.nan)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            continue
        if list(r) == ids:
            try:
                M[i] = np.fromiter(r.values(), dtype=float, count=len(ids))
                continue
            except (TypeError, ValueError):
                pass
        for k, v in r.items():
            try:
                M[i, index[k]] = float(v)
            except (TypeError, ValueError):
                pass
    return ids, M


def _reduce(attr: str, M: np.ndarray) -> dict[str, np.ndarray]:
    """{"": the row value, "min"/"max": extremes} of one interval's (steps, devices) values."""
    good = np.isfinite(M)
    have = good.any(axis=0)
    if attr in FIRST:
        value = M[0]
    elif attr in LAST:
        last = M.shape[0] - 1 - np.argmax(good[::-1], axis=0)
        value = np.where(have, M[last, np.arange(M.shape[1])], np.nan)
    else:
        value = np.where(have, np.where(good, M, 0.0).sum(axis=0) / M.shape[0], np.nan)
    out = {"": value}
    if attr in EXTREMES:
        with np.errstate(invalid="ignore"):
            out["min"] = np.where(have, np.nanmin(np.where(good, M, np.inf), axis=0), np.nan)
            out["max"] = np.where(have, np.nanmax(np.where(good, M, -np.inf), axis=0), np.nan)
    return out


class Aggregator:
    """Collects the step values {(population, attr): {device: value}} of one interval at a time."""

    def __init__(self, interval_ms: int):
        self.interval = int(interval_ms)
        self.row_t: int | None = None
        self.steps: list[dict] = []

    def add(self, t_ms: int, values: dict) -> tuple[int, dict] | None:
        """Add a step; returns the completed previous interval's row (t, values) when *t_ms* opens a new one."""
        row_t = int(t_ms) - int(t_ms) % self.interval
        done = self.close() if self.row_t is not None and row_t != self.row_t else None
        self.row_t = row_t
        self.steps.append(values)
        return done

    def close(self) -> tuple[int, dict] | None:
        """The open interval's row (or None), and start afresh."""
        if self.row_t is None or not self.steps:
            return None
        keys = {k for v in self.steps for k in v}
        row: dict = {}
        for pop, attr in keys:
            ids, M = _matrix([v.get((pop, attr)) for v in self.steps])
            if not ids:
                continue
            for stat, vals in _reduce(attr, M).items():
                key = (extreme_group(pop, stat), attr) if stat else (pop, attr)
                row[key] = dict(zip(ids, vals.tolist()))
        out = (self.row_t, row)
        self.row_t, self.steps = None, []
        return out
