"""Unbalanced (phase-domain) power flow for LV feeders.

:class:`Network3ph` is the nodal model of a feeder: one node per bus and phase (the neutral is
solidly grounded at every bus, i.e. Kron-reduced: 4-wire cables enter through their sequence/phase
impedances), with

* the source as a Norton equivalent (Thevenin voltage ``E`` behind the 3x3 source impedance built
  from Z1 and Z0: ``Zs = (2Z1+Z0)/3``, ``Zm = (Z0-Z1)/3``);
* lines as their series admittance ``inv(Z)`` (n x n phase matrix) plus half the shunt susceptance
  at each end (pi model);
* two-winding three-phase transformers as three single-phase units (series impedance
  ``(R + jXHL)`` on the winding base, ideal ratio ``V_hv_winding/V_lv_winding``), wye windings
  between phase and ground, delta windings between phases; Dy: LV phase a is fed by HV winding A-C
  (``lag``, Dy1, OpenDSS ``LeadLag=Lag``) or A-B (``lead``, Dy11); and OpenDSS's ``ppm_antifloat``
  (a susceptance of -ppm x 1e-6 / (2 Zbase of the winding) from each winding terminal to ground,
  Transformer.pas ``ComputeAntiFloatAdder``).

Build one with :func:`from_feeder` (OpenDSS, :mod:`simulators.opendss`) or
:func:`simulators.grid3ph_networks.from_pandapower`.

:class:`Engine3ph` solves it for constant-power loads at given *points* (one node each, a wye
load of n phases is n points of S/n), every step:

``v = v0 + Z_AA J(v_A)`` on the *active* load nodes only, where ``v0`` is the no-load solution,
``Z_LL`` the load-node block of ``Y^-1`` (both computed once with ``scipy.sparse.linalg.splu``) and
``Z_AA`` its block of the load nodes that have carried power so far: an implicit Z-bus Gauss
iteration (current injection), warm-started from the previous step, on a dense matrix of (active
nodes)^2 instead of the full network. A node without power injects no current, so leaving it out
changes nothing but the work: the households' single-phase connections leave two of their three
phase nodes idle (kerber_vorstadt_1 in uc3_physical: 280 of 438 load nodes ever carry power). The
active set only grows, so its blocks are gathered again only when a node carries power for the first
time. Then ``v = v0 + Z_NA J_A`` with the active columns of ``Y^-1`` gives every node voltage (a
sparse LU solve instead when the (nodes x load nodes) matrix would exceed 64 MB). Like OpenDSS's
load model 1 (Load.pas ``DoConstantPQLoad``), a point is constant impedance above ``vmax``
(``conj(S)/vmax^2``) and at or below ``vlow`` (``conj(S)/vbase^2``), and between ``vlow`` and
``vmin`` draws a current linear in |v| from the one at ``vlow`` to ``S/vmin`` (``InterpolateY95_YLow``);
a point without power draws no current in any model. Households use pure
constant power (vmin=0, vmax=inf).

Convergence: max |delta v| between iterates of the active nodes < ``tol`` (p.u., default 1e-10).
Non-convergence never raises: ``converged`` is False and electrical results are NaN.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from threadpoolctl import ThreadpoolController

from simulators.opendss import Feeder

__all__ = ["Network3ph", "Engine3ph", "Result3ph", "from_feeder", "vuf_percent"]

_A = np.exp(2j * math.pi / 3)          # 120 degree operator
_S_BASE = 1e6                          # VA, scaling of the nodal equations only


@dataclass
class Network3ph:
    """Nodal model: ``Y`` in scaled units (``D Y D / S_BASE``, ``D`` = node base voltages)."""
    buses: list[str]
    bus_vbase: np.ndarray                    # V, line-to-neutral base per bus
    node_bus: np.ndarray                     # node -> bus index
    node_phase: np.ndarray                   # node -> phase 1..3
    Y: sp.csc_matrix                         # scaled nodal admittance (n x n)
    J_src: np.ndarray                        # scaled source injection (Norton), n
    src_nodes: np.ndarray
    Y_src: np.ndarray                        # scaled 3x3 source admittance
    E_src: np.ndarray                        # source EMF, p.u. of the source bus base
    line_names: list[str]
    line_from: sp.csr_matrix                 # (sum of line phases) x n: A per p.u. voltage
    line_to: sp.csr_matrix
    line_rows: np.ndarray                    # row -> line index
    line_amps: np.ndarray                    # per line, A (rating)
    trafo_names: list[str]
    trafo_nodes: list[np.ndarray]            # [hv nodes, lv nodes] concatenated per trafo
    trafo_Yprim: list[np.ndarray]            # scaled primitive on those nodes
    trafo_irated: list[np.ndarray]           # rated current per terminal node, A

    @property
    def n(self) -> int:
        return len(self.node_bus)

    def node_index(self) -> dict[tuple[str, int], int]:
        return {(self.buses[b], int(p)): k for k, (b, p) in enumerate(zip(self.node_bus, self.node_phase))}


_SEQ12 = np.array([[1.0, 1.0], [_A, _A * _A], [_A * _A, _A]]) / 3.0


def vuf_percent(V: np.ndarray) -> np.ndarray:
    """Voltage unbalance factor |V2|/|V1| in % per row of phase-to-neutral phasors ``V`` (n x 3;
    the zero sequence drops out, so this equals the line-to-line definition of IEC 61000-4-30)."""
    s12 = V @ _SEQ12
    with np.errstate(all="ignore"):
        return np.abs(s12[:, 1]) / np.abs(s12[:, 0]) * 100.0


class _Builder:
    """Collects primitive admittances (Siemens, node voltages in volts) into a sparse matrix."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def add(self, nodes: np.ndarray, yprim: np.ndarray) -> None:
        r, c = np.meshgrid(nodes, nodes, indexing="ij")
        self.rows.append(r.ravel())
        self.cols.append(c.ravel())
        self.vals.append(yprim.ravel())

    def matrix(self, n: int) -> sp.csc_matrix:
        if not self.rows:
            return sp.csc_matrix((n, n), dtype=np.complex128)
        return sp.csc_matrix((np.concatenate(self.vals), (np.concatenate(self.rows),
                                                          np.concatenate(self.cols))), shape=(n, n))


def _seq(z1: complex, z0: complex) -> np.ndarray:
    zs, zm = (2 * z1 + z0) / 3.0, (z0 - z1) / 3.0
    return np.full((3, 3), zm, dtype=np.complex128) + np.eye(3) * (zs - zm)


def _trafo_prim(conns: tuple[str, str], kvs: tuple[float, float], kva: float,
                taps: tuple[float, float], z_pu: complex, lead: bool, ppm: float,
                reverse: bool = False, mag_pu: complex = 0j) -> np.ndarray:
    """6x6 primitive admittance (Siemens) on [HV a b c, LV a b c] of a 3-phase 2-winding unit."""
    vw = [kv * 1e3 / (math.sqrt(3.0) if c == "wye" else 1.0) * t for kv, c, t in zip(kvs, conns, taps)]
    # the per-unit impedance is on the tapped winding voltages (OpenDSS Transformer.pas, 1-volt
    # model): referred to the LV winding it scales with the LV tap squared
    zbase_lv = vw[1] ** 2 / (kva * 1e3 / 3.0)
    z_ohm_lv = z_pu * zbase_lv
    # T equivalent of one unit, referred to the LV winding: z/2 - shunt y_m - z/2
    y_m = mag_pu / zbase_lv
    z1 = z2 = z_ohm_lv / 2.0
    d = z1 + z2 + z1 * z2 * y_m
    y2 = np.array([[(1 + z2 * y_m) / d, -1 / d], [-1 / d, (1 + z1 * y_m) / d]])
    ratio = vw[0] / vw[1] * (-1.0 if reverse else 1.0)
    # unit k: (plus, minus) terminal positions per winding, -1 = ground. A delta winding is in
    # phase with the other side's phase k: Dy lag (Dy1) HV A-C, lead (Dy11) HV A-B; Yd lag (Yd1)
    # LV a-b, lead (Yd11) LV a-c; Dd0 both A-B.
    def terminals(side: int, k: int) -> tuple[int, int]:
        off = 3 * side
        if conns[side] == "wye":
            return off + k, -1
        if conns[1 - side] == "delta":
            step = 1
        elif side == 0:
            step = 1 if lead else -1
        else:
            step = -1 if lead else 1
        return off + k, off + (k + step) % 3
    Y = np.zeros((6, 6), dtype=np.complex128)
    # single-phase unit on [p+, p-, s+, s-]: winding voltages (p+ - p-)/ratio and (s+ - s-)
    T = np.array([[1 / ratio, -1 / ratio, 0, 0], [0, 0, 1, -1]])
    unit = T.T @ y2 @ T
    # anti-float: each winding terminal gets -j ppm 1e-6 / (2 Zbase) of its winding to ground
    # (Transformer.pas TWinding.ComputeAntiFloatAdder, Y_PPM, "half on each terminal of the winding")
    for w, (kv, c) in enumerate(zip(kvs, conns)):
        zb = (kv * 1e3 / (math.sqrt(3.0) if c == "wye" else 1.0)) ** 2 / (kva * 1e3 / 3.0)
        unit[2 * w, 2 * w] -= 1j * ppm * 1e-6 / (2.0 * zb)
        unit[2 * w + 1, 2 * w + 1] -= 1j * ppm * 1e-6 / (2.0 * zb)
    for k in range(3):
        t = terminals(0, k) + terminals(1, k)
        for i, ti in enumerate(t):
            if ti < 0:
                continue
            for j, tj in enumerate(t):
                if tj >= 0:
                    Y[ti, tj] += unit[i, j]
    return Y


def _nearest_bases(v_ln: np.ndarray, voltagebases: Sequence[float]) -> np.ndarray:
    """Per bus, the line-to-neutral base (V) of the ``Set voltagebases`` entry (line-to-line kV)
    nearest to ``v_ln`` (V) in ratio, as OpenDSS's Calcvoltagebases picks it from the no-load voltage
    (Circuit.pas ``NearestBasekV``: min |1 - kV/base|): a 0.42 kV transformer winding under
    ``voltagebases=[11 0.4]`` gives 0.4 kV buses (p.u. of 230.9 V, not 242.5 V)."""
    legal = np.asarray([b for b in voltagebases if b > 0], dtype=np.float64) * 1e3 / math.sqrt(3.0)
    if not len(legal):
        return v_ln
    pick = np.abs(1.0 - v_ln[:, None] / legal[None, :]).argmin(axis=1)
    return legal[pick]


def from_feeder(fd: Feeder) -> Network3ph:
    """Nodal model of an OpenDSS :class:`~simulators.opendss.Feeder`."""
    if fd.source is None:
        raise ValueError(f"{fd.path}: the circuit has no source (New Circuit)")
    buses = fd.buses()
    bidx = {b: k for k, b in enumerate(buses)}
    src_bus = fd.source.bus
    # base voltages by walking from the source through lines and transformers
    vbase = np.full(len(buses), np.nan)
    vbase[bidx[src_bus]] = fd.source.basekv * 1e3 / math.sqrt(3.0)
    adj: dict[str, list[tuple[str, float | None]]] = {b: [] for b in buses}
    for ln in fd.lines:
        if ln.enabled:
            adj[ln.bus1].append((ln.bus2, None))
            adj[ln.bus2].append((ln.bus1, None))
    transformers = [tr for tr in fd.transformers if tr.enabled]
    for tr in transformers:
        hv, lv = tr.buses
        adj[hv].append((lv, tr.kvs[1] * 1e3 / math.sqrt(3.0)))
        adj[lv].append((hv, tr.kvs[0] * 1e3 / math.sqrt(3.0)))
    queue = deque([src_bus])
    while queue:
        b = queue.popleft()
        for other, base in adj[b]:
            if np.isnan(vbase[bidx[other]]):
                vbase[bidx[other]] = vbase[bidx[b]] if base is None else base
                queue.append(other)
    isolated = [b for b in buses if np.isnan(vbase[bidx[b]])]
    if fd.voltagebases and not isolated:
        picked = _nearest_bases(vbase * fd.source.pu, fd.voltagebases)
        # 25 %: modelling choice (OpenDSS picks the nearest base however far; beyond a quarter it is a
        # missing entry, e.g. [11] for a 0.4-kV bus, not a tapped or 0.42-kV winding)
        off = np.abs(1.0 - vbase * fd.source.pu / picked) > 0.25
        if off.any():       # OpenDSS would report such a bus in p.u. of a base it is far from
            b = buses[int(np.argmax(off))]
            raise ValueError(f"{fd.path}: Set voltagebases={fd.voltagebases} has no entry near bus {b!r}'s "
                             f"{vbase[bidx[b]] * math.sqrt(3.0) / 1e3:g} kV (add it)")
        vbase = picked
    if isolated:
        more = f" (and {len(isolated) - 1} more: {', '.join(isolated[1:5])}" \
            f"{' ...' if len(isolated) > 5 else ''})" if len(isolated) > 1 else ""
        raise ValueError(f"{fd.locate(isolated[0])}: bus {isolated[0]!r} is not connected to the source "
                         f"by any enabled Line or Transformer{more}")
    # nodes: phases used at each bus
    used: dict[str, set[int]] = {b: set() for b in buses}
    used[src_bus].update(fd.source.nodes)
    for ln in fd.lines:
        used[ln.bus1].update(ln.nodes1)
        used[ln.bus2].update(ln.nodes2)
    for tr in transformers:
        for b, nodes in zip(tr.buses, tr.nodes):
            used[b].update(nodes)
    for ld in fd.loads:
        used[ld.bus].update(ld.nodes)
    node_bus, node_phase, nidx = [], [], {}
    for b in buses:
        for ph in sorted(used[b]):
            if ph not in (1, 2, 3):
                raise ValueError(f"{fd.locate(b, ph)}: bus {b} uses node {ph}; only phase nodes 1, 2, 3 "
                                 "(neutral grounded) are supported")
            nidx[(b, ph)] = len(node_bus)
            node_bus.append(bidx[b])
            node_phase.append(ph)
    node_bus_a = np.asarray(node_bus, dtype=np.int64)
    n = len(node_bus)
    vb_node = vbase[node_bus_a]
    builder = _Builder()

    def nodes_of(bus: str, phases: Sequence[int]) -> np.ndarray:
        return np.array([nidx[(bus, p)] for p in phases], dtype=np.int64)

    # source (Norton)
    src = fd.source
    s_nodes = nodes_of(src.bus, src.nodes)
    Ysrc = np.linalg.inv(_seq(src.z1, src.z0))
    builder.add(s_nodes, Ysrc)
    ang = math.radians(src.angle_deg)
    E = src.pu * np.exp(1j * ang) * np.array([1.0, _A ** 2, _A])  # p.u. of the source bus base
    E_volt = E * vbase[bidx[src.bus]]
    J = np.zeros(n, dtype=np.complex128)
    J[s_nodes] += Ysrc @ E_volt
    # lines
    lf_r, lf_c, lf_v, lt_v, rows_line, amps, names = [], [], [], [], [], [], []
    row = 0
    for ln in fd.lines:
        if not ln.enabled:
            continue
        f, t = nodes_of(ln.bus1, ln.nodes1), nodes_of(ln.bus2, ln.nodes2)
        ys = np.linalg.inv(ln.z)
        yh = 0.5j * ln.b_shunt
        prim = np.block([[ys + yh, -ys], [-ys, ys + yh]])
        builder.add(np.r_[f, t], prim)
        k = len(f)
        both = np.r_[f, t]
        for i in range(k):
            lf_r.extend([row + i] * 2 * k)
            lf_c.extend(both.tolist())
            lf_v.extend(prim[i].tolist())          # current into the line at the from end
            lt_v.extend((-prim[k + i]).tolist())   # current out of the line at the to end
        rows_line.extend([len(names)] * k)
        amps.append(ln.normamps)
        names.append(ln.name)
        row += k
    nrow = row
    vcol = vb_node[np.asarray(lf_c, dtype=np.int64)] if lf_c else np.zeros(0)
    line_from = sp.csr_matrix((np.asarray(lf_v) * vcol, (lf_r, lf_c)), shape=(nrow, n))
    line_to = sp.csr_matrix((np.asarray(lt_v) * vcol, (lf_r, lf_c)), shape=(nrow, n))
    # transformers
    t_names, t_nodes, t_prim, t_irated = [], [], [], []
    for tr in transformers:
        prim = _trafo_prim(tr.conns, tr.kvs, tr.kva, tr.taps, complex(tr.r_pu, tr.x_pu), tr.lead,
                           tr.ppm_antifloat, tr.reverse, tr.mag_pu)
        nodes = np.r_[nodes_of(tr.buses[0], tr.nodes[0]), nodes_of(tr.buses[1], tr.nodes[1])]
        builder.add(nodes, prim)
        d = vb_node[nodes]
        t_names.append(tr.name)
        t_nodes.append(nodes)
        t_prim.append(prim * np.outer(d, d) / _S_BASE)
        irated = np.r_[np.full(3, tr.kva * 1e3 / (math.sqrt(3.0) * tr.kvs[0] * 1e3)),
                       np.full(3, tr.kva * 1e3 / (math.sqrt(3.0) * tr.kvs[1] * 1e3))]
        t_irated.append(irated)
    Y = builder.matrix(n)
    D = sp.diags(vb_node)
    Ys = (D @ Y @ D / _S_BASE).tocsc()
    return Network3ph(buses=buses, bus_vbase=vbase, node_bus=node_bus_a,
                      node_phase=np.asarray(node_phase, dtype=np.int64), Y=Ys,
                      J_src=J * vb_node / _S_BASE, src_nodes=s_nodes,
                      Y_src=Ysrc * np.outer(vb_node[s_nodes], vb_node[s_nodes]) / _S_BASE,
                      E_src=E, line_names=names, line_from=line_from, line_to=line_to,
                      line_rows=np.asarray(rows_line, dtype=np.int64),
                      line_amps=np.asarray(amps, dtype=np.float64), trafo_names=t_names,
                      trafo_nodes=t_nodes, trafo_Yprim=t_prim, trafo_irated=t_irated)


_BLAS: ThreadpoolController | None = None


def single_threaded_blas():
    """Context in which BLAS runs on one thread. The engine's products are small (a 438 x 438
    complex matrix-vector product on kerber_vorstadt_1): one thread does one in 0.11 ms, numpy's
    threaded zgemv took 2.4-7.3 ms on the busy 2-core machine, and SuperLU's 438-column solve at
    set-up 1.6-11 s instead of 0.06 s. threadpoolctl's controller enters and leaves in ~20 µs and
    restores the previous setting on exit."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass
class Result3ph:
    """Result of one unbalanced power flow (arrays over buses are NaN for absent phases)."""
    converged: bool
    iterations: int
    vm_pu: np.ndarray              # (n_bus, 3) |V| p.u. of the bus line-to-neutral base
    va_degree: np.ndarray          # (n_bus, 3)
    vuf_pct: np.ndarray            # (n_bus,) NaN unless all three phases exist
    line_i_ka: np.ndarray          # (n_line, 3) max(|I_from|, |I_to|) per phase, kA
    line_loading: np.ndarray       # (n_line,) % of normamps, worst phase
    trafo_loading: np.ndarray      # (n_trafo,) % of rated current, worst terminal
    p_trafo_mw: np.ndarray         # (n_trafo,) HV side, into the transformer
    losses_mw: float
    p_point_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # actual load P per point
    info: dict = field(default_factory=dict)


@dataclass
class _Active:
    """The load nodes that have carried power so far, and what the iteration needs of them."""
    mask: np.ndarray                 # over Engine3ph.lnodes: carried power since the engine was built
    nodes: np.ndarray                # their positions in Engine3ph.lnodes
    pts: np.ndarray                  # the points at those nodes
    pos: np.ndarray                  # each of those points' position in ``nodes``
    Z: np.ndarray                    # Z_LL block on ``nodes`` (dense, contiguous)
    v0: np.ndarray                   # no-load voltages of ``nodes``
    rest: np.ndarray                 # every other network node
    Z_rest: np.ndarray | None        # their rows of Y^-1, active columns (None: LU solve instead)
    v0_rest: np.ndarray
    band: tuple | None               # (vmin, vmax, vlow, vbase) of ``pts`` when banded
    one_each: bool                   # point k is at node k: the node sums are the points' values


class Engine3ph:
    """Z-bus Gauss on the active load nodes with a prefactorised sparse nodal matrix (see module doc)."""

    name = "fast3ph"

    def __init__(self, net: Network3ph, point_nodes: Sequence[int], *,
                 vmin_pu: Sequence[float] | float = 0.0, vmax_pu: Sequence[float] | float = np.inf,
                 vlow_pu: Sequence[float] | float = 0.0, vbase_pu: Sequence[float] | float = 1.0,
                 tol: float = 1e-10, max_iter: int = 100):
        self.net = net
        self.points = np.asarray(point_nodes, dtype=np.int64)
        m = len(self.points)
        if m and (self.points.min() < 0 or self.points.max() >= net.n):
            raise ValueError("point nodes out of range")
        b = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), (m,)).copy()  # noqa: E731
        vbase = b(vbase_pu)                               # load base in p.u. of the node base
        vmin, vmax, vlow = b(vmin_pu) * vbase, b(vmax_pu) * vbase, b(vlow_pu) * vbase
        # constant-impedance bands can switch on only if some vmin > 0 or vmax < inf
        self._band = (vmin, vmax, vlow, vbase) if np.any(vmin > 0.0) or np.any(vmax < np.inf) else None
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.lnodes, self.pt_pos = np.unique(self.points, return_inverse=True)
        nl = len(self.lnodes)
        E = np.zeros((net.n, nl), dtype=np.complex128)
        E[self.lnodes, np.arange(nl)] = 1.0
        with single_threaded_blas():
            self.lu = splu(net.Y)
            self.v0 = self.lu.solve(net.J_src)           # no-load voltages
            Z_NL = self.lu.solve(E) if nl else np.zeros((net.n, 0), dtype=np.complex128)
        self.Z_LL = np.ascontiguousarray(Z_NL[self.lnodes, :])
        # all node voltages from the active nodes' currents: dense products are ~3x faster than a
        # sparse LU solve on the IEEE LV feeder; used while the (nodes x load nodes) matrix is up
        # to 64 MB. Active nodes take their Z_LL block, still in the cache from the iteration, so
        # only the other rows (Z_rest) are read from memory: between steps the other simulators
        # evict them, and on kerber_vorstadt_1 reading all 6 MB of rows cold took 0.7 ms, the other
        # rows' 3 MB 0.3 ms (2-core AMD EPYC, caches flushed). Z_LL and Z_OL stay for the set's
        # growth, so the engine holds up to twice that matrix (kerber_vorstadt_1, 280 active: 6 + 4 MB).
        self._onodes = np.setdiff1d(np.arange(net.n), self.lnodes)
        self.Z_OL = np.ascontiguousarray(Z_NL[self._onodes, :]) if Z_NL.nbytes <= 64e6 else None
        self._v0L = self.v0[self.lnodes]
        self.v_L = self._v0L.copy()
        self.active = self._activate(np.zeros(nl, dtype=bool))
        nb = len(net.buses)
        self._grid = np.full((nb, 3), -1, dtype=np.int64)
        self._grid[net.node_bus, net.node_phase - 1] = np.arange(net.n)
        self._has = self._grid >= 0
        self._gidx = np.where(self._has, self._grid, 0)
        # results: line currents from one product of the stacked [from; to] matrices (same rows,
        # same sums); each current row's cell in the flat (line, phase) table (rows of one line
        # are consecutive: phase columns 0..k-1); the transformers' terminal base voltages
        self._line_ft = sp.vstack([net.line_from, net.line_to], format="csr")
        col = np.arange(len(net.line_rows)) - np.searchsorted(net.line_rows, net.line_rows)
        self._line_cell = net.line_rows * 3 + col
        self._trafo_vbase = [net.bus_vbase[net.node_bus[nodes]] for nodes in net.trafo_nodes]
        self.stats = {"solved": 0, "failed": 0, "iterations": 0}

    def _activate(self, mask: np.ndarray) -> _Active:
        """The active set of the load nodes in ``mask`` (gathered once per growth of the set)."""
        nodes = np.flatnonzero(mask)
        pts = np.flatnonzero(mask[self.pt_pos])
        where = np.full(len(self.lnodes), -1, dtype=np.int64)
        where[nodes] = np.arange(len(nodes))
        idle = np.flatnonzero(~mask)
        rest = np.r_[self.lnodes[idle], self._onodes]
        Z_rest = None if self.Z_OL is None else \
            np.vstack([self.Z_LL[np.ix_(idle, nodes)], self.Z_OL[:, nodes]])
        band = None if self._band is None else tuple(a[pts] for a in self._band)
        pos = where[self.pt_pos[pts]]
        return _Active(mask, nodes, pts, pos, np.ascontiguousarray(self.Z_LL[np.ix_(nodes, nodes)]),
                       self._v0L[nodes], rest, Z_rest, self.v0[rest], band,
                       bool(np.array_equal(pos, np.arange(len(nodes)))))

    def solve(self, p_kw, q_kvar=None) -> Result3ph:
        """Power flow for ``p_kw``/``q_kvar`` per point (load convention)."""
        with single_threaded_blas():
            return self._solve(p_kw, q_kvar)

    def _solve(self, p_kw, q_kvar) -> Result3ph:
        t0 = time.perf_counter()
        p = np.asarray(p_kw, dtype=np.float64).reshape(-1)
        q = np.zeros_like(p) if q_kvar is None else np.asarray(q_kvar, dtype=np.float64).reshape(-1)
        if p.shape != self.points.shape or q.shape != self.points.shape:
            raise ValueError(f"expected {len(self.points)} point powers, got P {p.shape}, Q {q.shape}")
        s = (p + 1j * q) * 1e3 / _S_BASE
        ok, it = False, 0
        if np.isfinite(s).all():
            A = self.active
            loaded = self.pt_pos[s != 0]
            if not A.mask[loaded].all():        # a node carries power for the first time
                mask = A.mask.copy()
                mask[loaded] = True
                A = self.active = self._activate(mask)
            sA = s[A.pts]
            with np.errstate(all="ignore"):
                ok, it, vA = self._iterate(A, self.v_L[A.nodes], sA)
                if not ok:  # retry from the no-load solution
                    ok, it2, vA = self._iterate(A, A.v0, sA)
                    it += it2
        self.stats["iterations"] += it
        if not ok:
            self.stats["failed"] += 1
            return self._nan(it)
        self.stats["solved"] += 1
        jA_pts = self._point_currents(vA[A.pos], sA, A.band)
        jA = self._node_sums(A, jA_pts)
        if A.Z_rest is not None:
            v = np.empty(self.net.n, dtype=np.complex128)
            v[self.lnodes[A.nodes]] = A.v0 + A.Z @ jA
            v[A.rest] = A.v0_rest + A.Z_rest @ jA
        else:
            jfull = np.zeros(self.net.n, dtype=np.complex128)
            jfull[self.lnodes[A.nodes]] = jA
            v = self.v0 + self.lu.solve(jfull)
        self.v_L = v[self.lnodes]
        self.v_L[A.nodes] = vA                  # the converged iterate: next step's warm start
        j_pts = np.zeros(len(self.points), dtype=np.complex128)
        j_pts[A.pts] = jA_pts
        res = self._results(v, it, j_pts, self.v_L)
        res.info["solve_s"] = time.perf_counter() - t0
        return res

    @staticmethod
    def _node_sums(A: _Active, j: np.ndarray) -> np.ndarray:
        """The active points' injections ``j`` summed per active node."""
        if A.one_each:      # households on buses of their own (uc3_physical): 5 µs per iteration
            return j
        na = len(A.nodes)
        return np.bincount(A.pos, weights=j.real, minlength=na) \
            + 1j * np.bincount(A.pos, weights=j.imag, minlength=na)

    def _iterate(self, A: _Active, vA: np.ndarray, sA: np.ndarray) -> tuple[bool, int, np.ndarray]:
        v0, Z, pos, band = A.v0, A.Z, A.pos, A.band
        plain = A.one_each and band is None    # point k at node k, constant power: the currents inline
        for it in range(1, self.max_iter + 1):
            if plain:
                vn = v0 + Z @ -np.conj(sA / vA)
            else:
                vn = v0 + Z @ self._node_sums(A, self._point_currents(vA[pos], sA, band))
            d = float(np.abs(vn - vA).max()) if len(vn) else 0.0
            vA = vn
            if not math.isfinite(d):
                return False, it, vA
            if d < self.tol:
                return True, it, vA
        return False, self.max_iter, vA

    def node_voltages(self, res_v: np.ndarray) -> np.ndarray:
        """(n_bus, 3) complex array of node voltages in p.u. (NaN where a phase is absent)."""
        return np.where(self._has, res_v[self._gidx], np.nan)

    def _results(self, v: np.ndarray, it: int, j_pts: np.ndarray, vL: np.ndarray) -> Result3ph:
        net = self.net
        V = self.node_voltages(v)
        vm = np.abs(V)
        va = np.angle(V, deg=True)
        vuf = vuf_percent(V)
        nl = len(net.line_names)
        if nl:
            i_ft = np.abs(self._line_ft @ v)
            nrow = len(net.line_rows)
            imax = np.maximum(i_ft[:nrow], i_ft[nrow:])
            per_line = np.zeros(nl * 3)
            per_line[self._line_cell] = imax
            per_line = per_line.reshape(nl, 3)
            # worst phase: column maxima (numpy's max over a 3-wide axis took 15 µs per step)
            loading = np.maximum(np.maximum(per_line[:, 0], per_line[:, 1]), per_line[:, 2]) \
                / net.line_amps * 100.0
            line_i = per_line / 1e3
        else:
            loading, line_i = np.zeros(0), np.zeros((0, 3))
        tl, pt = [], []
        for nodes, Yp, ir, vb in zip(net.trafo_nodes, net.trafo_Yprim, net.trafo_irated, self._trafo_vbase):
            vt = v[nodes]
            jt = Yp @ vt                                     # scaled currents (VA per p.u.)
            amps = np.abs(jt) * _S_BASE / vb
            tl.append(float((amps / ir).max() * 100.0))
            pt.append(float((vt[:3] * np.conj(jt[:3])).real.sum() * _S_BASE / 1e6))
        # losses = power delivered by the source - power taken by the loads
        vs = v[net.src_nodes]
        j_into = net.Y_src @ (net.E_src - vs)
        p_src = float((vs * np.conj(j_into)).real.sum()) * _S_BASE
        p_pts = -(vL[self.pt_pos] * np.conj(j_pts)).real * _S_BASE
        losses = (p_src - p_pts.sum()) / 1e6
        return Result3ph(True, it, vm, va, vuf, line_i, loading, np.asarray(tl), np.asarray(pt),
                         losses, p_pts / 1e3)

    @staticmethod
    def _point_currents(vp: np.ndarray, s: np.ndarray, band: tuple | None) -> np.ndarray:
        """Scaled injection of points at voltages ``vp``: constant S inside their ``band`` =
        (vmin, vmax, vlow, vbase) of those points, else OpenDSS Load.pas ``DoConstantPQLoad``:
        above vmax ``Yeq105 = conj(S)/vmax^2``; at or below vlow ``Yeq = conj(S)/vbase^2``; between
        vlow and vmin the current runs linearly in |v| from ``Yeq vlow`` to ``conj(S)/vmin``
        (``InterpolateY95_YLow``: ``(ILow + M95 (|v| - vlow)) / |v|``)."""
        j = -np.conj(s / vp)
        if band is None:
            return j
        vmin, vmax, vlow, vbase = band
        mag = np.abs(vp)
        lo, hi = mag <= vmin, mag > vmax
        z = lo | hi
        if z.any():
            sc = np.conj(s)
            with np.errstate(all="ignore"):     # points without a band: vmin 0, vmax inf
                i_low = sc / vbase ** 2 * vlow
                m95 = (sc / vmin - i_low) / (vmin - vlow)
                y = np.where(mag <= vlow, sc / vbase ** 2,
                             np.where(lo, (i_low + m95 * (mag - vlow)) / mag, sc / vmax ** 2))
            j = np.where(z, -y * vp, j)
        return j

    def _nan(self, it: int) -> Result3ph:
        nb, nl, nt = len(self.net.buses), len(self.net.line_names), len(self.net.trafo_names)
        f = np.full
        return Result3ph(False, it, f((nb, 3), np.nan), f((nb, 3), np.nan), f(nb, np.nan),
                         f((nl, 3), np.nan), f(nl, np.nan), f(nt, np.nan), f(nt, np.nan), np.nan,
                         f(len(self.points), np.nan))

    def reset(self) -> None:
        self.v_L = self._v0L.copy()
