"""The network description :func:`simulators.opendss.read_dss` builds: a source, lines,
transformers, loads and load shapes (plain data, solved by :mod:`simulators.grid3ph_engine`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Feeder", "Source", "Line", "Transformer", "Load", "LoadShape", "delta_lv_feeding"]

_SQRT3 = math.sqrt(3.0)

# Why a delta LV winding is refused: every load is wye (phase to earth), and a delta winding leaves the
# LV side without an earthed neutral, so the loads' voltages have nothing to hold them. The engine does
# not converge there, and OpenDSS is no reference either: on a three-load example (tests/test_grid3ph.py,
# LOAD_BANDS_DSS with conns=[delta delta]) it "solved" to 0.23 / 1.50 / 1.82 p.u., held only by its
# ppm_antifloat shunts. Refused only where it feeds loads (``delta_lv_feeding``).
DELTA_LV = ("a delta LV winding is not supported: the loads are phase to earth, and without an earthed "
            "LV neutral their voltages float; use a wye LV winding (Dyn, conns=[delta wye])")


@dataclass
class Source:
    bus: str
    nodes: tuple[int, ...]
    basekv: float          # line-to-line kV
    pu: float
    angle_deg: float
    z1: complex            # ohm
    z0: complex


@dataclass
class Line:
    name: str
    bus1: str
    nodes1: tuple[int, ...]
    bus2: str
    nodes2: tuple[int, ...]
    z: np.ndarray          # ohm, nph x nph (total, length applied)
    b_shunt: np.ndarray    # siemens, nph x nph (total susceptance, half at each end)
    normamps: float
    enabled: bool = True


@dataclass
class Transformer:
    name: str
    buses: tuple[str, str]
    nodes: tuple[tuple[int, ...], tuple[int, ...]]
    conns: tuple[str, str]     # "wye" | "delta"
    kvs: tuple[float, float]   # line-to-line kV for 3 phases
    kva: float
    taps: tuple[float, float]
    r_pu: float                # total series resistance, p.u. of kva
    x_pu: float                # XHL, p.u.
    lead: bool                 # True: LV leads HV by 30 deg (Dy11, "Lead"/"Euro"); False: Dy1
    ppm_antifloat: float = 1.0
    reverse: bool = False      # LV winding polarity reversed (+180 deg: Dy5 / Dy7)
    mag_pu: complex = 0j       # magnetising admittance (p.u. of kva, LV side): pfe - j*q
    enabled: bool = True


@dataclass
class Load:
    name: str
    bus: str
    nodes: tuple[int, ...]
    kv: float                  # OpenDSS kV: line-to-line for 3 phases, line-to-neutral for 1
    kw: float
    kvar: float
    vminpu: float = 0.95
    vmaxpu: float = 1.05
    vlowpu: float = 0.50
    yearly: str | None = None
    daily: str | None = None
    duty: str | None = None
    enabled: bool = True
    fixed: bool = False        # status=fixed: no load shape multiplier applies (Load.pas)
    pf: float = 0.88           # power factor (negative: leading)
    pf_specified: bool = False  # PF given last (not kvar): a useactual shape's kW takes it (Load.pas)

    @property
    def vbase_ln_kv(self) -> float:
        return self.kv / _SQRT3 if len(self.nodes) > 1 else self.kv


@dataclass
class LoadShape:
    name: str
    mult: np.ndarray
    qmult: np.ndarray | None
    interval_h: float
    useactual: bool = False


@dataclass
class Feeder:
    name: str
    base_freq: float = 50.0
    source: Source | None = None
    lines: list[Line] = field(default_factory=list)
    transformers: list[Transformer] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    loadshapes: dict[str, LoadShape] = field(default_factory=dict)
    voltagebases: list[float] = field(default_factory=list)
    path: str = ""
    where: dict[str, str] = field(default_factory=dict)   # "Load.a" -> "file:line" of its New

    def locate(self, bus: str, node: int | None = None) -> str:
        """``file:line: Class.name`` of the first element connected to ``bus`` (at ``node``, if
        given), for errors found after reading; the feeder's path when none is."""
        elements = [("Vsource.source", self.source.bus, self.source.nodes)] if self.source else []
        elements += [(f"Line.{ln.name}", b, n) for ln in self.lines
                     for b, n in ((ln.bus1, ln.nodes1), (ln.bus2, ln.nodes2))]
        elements += [(f"Transformer.{tr.name}", b, n) for tr in self.transformers
                     for b, n in zip(tr.buses, tr.nodes)]
        elements += [(f"Load.{ld.name}", ld.bus, ld.nodes) for ld in self.loads]
        for label, b, nodes in elements:
            if b == bus and (node is None or node in nodes):
                return f"{self.where.get(label, self.path)}: {label}"
        return self.path

    def buses(self) -> list[str]:
        """Bus names in order of first appearance (source, lines, transformers, loads)."""
        seen: dict[str, None] = {}
        if self.source:
            seen[self.source.bus] = None
        for ln in self.lines:
            seen.setdefault(ln.bus1)
            seen.setdefault(ln.bus2)
        for tr in self.transformers:
            for b in tr.buses:
                seen.setdefault(b)
        for ld in self.loads:
            seen.setdefault(ld.bus)
        return list(seen)

    def load_kw(self, step: int, shape: str = "yearly") -> tuple[np.ndarray, np.ndarray]:
        """Per-load kW and kvar at ``step`` (index into the loads' ``shape`` multipliers).

        Loads without that shape, or with ``status=fixed``, keep their base kW/kvar. ``useactual=no``
        multiplies the base; ``useactual=yes`` gives kW, and kvar from ``qmult``, else from the load's
        PF if one was given (not kvar), else 0 (OpenDSS Load.pas)."""
        kw = np.array([ld.kw for ld in self.loads])
        kvar = np.array([ld.kvar for ld in self.loads])
        for k, ld in enumerate(self.loads):
            name = getattr(ld, shape)
            if name is None or ld.fixed:
                continue
            ls = self.loadshapes[name]
            m = ls.mult[step % len(ls.mult)]
            qm = ls.qmult[step % len(ls.qmult)] if ls.qmult is not None else None
            if ls.useactual:   # Load.pas SetNominalLoad: the shape's kW, its qmult, else the PF if given
                kw[k] = m
                kvar[k] = qm if qm is not None else \
                    m * math.sqrt(1.0 / ld.pf ** 2 - 1.0) * (-1.0 if ld.pf < 0 else 1.0) if ld.pf_specified else 0.0
            else:
                kw[k] = ld.kw * m
                kvar[k] = ld.kvar * (qm if qm is not None else m)
        return kw, kvar


def delta_lv_feeding(fd: Feeder, buses) -> Transformer | None:
    """The first enabled transformer whose delta LV winding reaches one of ``buses`` (where loads or
    households connect) over enabled lines, not through another transformer (DELTA_LV); None if none
    does. A delta secondary with no load in its zone (an MV/MV transformer ahead of the Dyn LV one) is
    solved as in OpenDSS (tests/test_grid3ph.py)."""
    targets = set(buses)
    adj: dict[str, list[str]] = {}
    for ln in fd.lines:
        if ln.enabled:
            adj.setdefault(ln.bus1, []).append(ln.bus2)
            adj.setdefault(ln.bus2, []).append(ln.bus1)
    for tr in fd.transformers:
        if not tr.enabled or tr.conns[1] != "delta":
            continue
        zone, todo = {tr.buses[1]}, [tr.buses[1]]
        while todo:
            for b in adj.get(todo.pop(), ()):
                if b not in zone:
                    zone.add(b)
                    todo.append(b)
        if zone & targets:
            return tr
    return None
