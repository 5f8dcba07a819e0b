"""Power-flow engines for the LV grid simulator.

Two engines with one interface (``solve(p_mw, q_mvar) -> PFResult``), both fed with active/reactive
power at a fixed list of *injection buses* (pandapower bus indices, load convention: positive =
consumption, MW/Mvar):

``FastEngine``
    Runs pandapower's ``runpp`` once on a private copy of the net to build pandapower's internal
    model (``net._ppc["internal"]``: ``Ybus``, ``Yf``, ``Yt``, bus types, base voltages, branch
    lookups), then solves every step on that model without touching pandas:

    1. *implicit Z-bus Gauss* (current injection) when the net has no PV buses: the non-slack block
       ``Ynn`` of ``Ybus`` is LU-factorised once (``scipy.sparse.linalg.splu``); every iteration is
       ``V_n = Ynn^-1 (conj(S_n / V_n) - Yns V_s)``, warm-started from the previous step's voltages.
       On LV feeders this contracts fast (typically 4-10 iterations of ~15 µs each). The power
       mismatch of the new iterate is exact and free: ``S_n (V_new / V_old - 1)``.
    2. *Newton-Raphson* (polar, like pandapower/pypower ``newtonpf``) with a sparse Jacobian whose
       pattern is built once and refilled in place, used when Z-bus stalls (heavy load near voltage
       collapse), when the net has PV buses, or with ``method="nr"``. A failed warm-started attempt
       is retried from the zero-load solution.

    Convergence: max |power mismatch| < ``tolerance_mva`` (p.u. of ``net.sn_mva``, as in pandapower
    where ``tolerance_mva`` is compared with the per-unit mismatch). Default 1e-10, tighter than
    runpp's 1e-8: Newton overshoots its tolerance quadratically, Z-bus converges linearly and stops
    just below it, so at 1e-8 Z-bus results were up to 1e-7 p.u. / 5e-5 % loading away from the
    exact solution; 1e-10 costs 1-3 more iterations (~15 µs each). Residual differences to runpp
    (~1e-8 p.u.) are then runpp's own tolerance (tests/test_grid.py checks both). Results follow pandapower's
    definitions (``results_branch.py``): line loading ``max(i_from, i_to) / (max_i_ka*df*parallel)``,
    transformer loading current based (``trafo_loading="current"``):
    ``max(i_hv*vn_hv, i_lv*vn_lv)*sqrt(3)/sn_mva / (parallel*df)``, transformer P at the HV side,
    losses = sum over all in-service branches of ``P_from + P_to`` (lines, transformers incl. iron
    losses, impedances).

``RunppEngine``
    pandapower ``runpp`` on a private copy of the net, with ``recycle=dict(bus_pq=True)`` after the
    first successful run (Ybus reused, warm start from the previous results).

Non-convergence never raises: ``PFResult.converged`` is False and every electrical result is NaN.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandapower as pp
import scipy.sparse as sp
from scipy.sparse.linalg import MatrixRankWarning, splu

from pandapower.pypower.idx_brch import F_BUS, PF, PT, T_BUS
from pandapower.pypower.idx_bus import BASE_KV

__all__ = ["PFResult", "FastEngine", "RunppEngine", "make_engine", "ENGINES"]

_SQRT3 = math.sqrt(3.0)
#: options passed to every pandapower runpp (numba is not installed: silence its warning)
_RUNPP_OPTS = dict(algorithm="nr", calculate_voltage_angles=True, trafo_model="t",
                   trafo_loading="current", numba=False, check_connectivity=True)


@dataclass
class PFResult:
    """Result of one power flow; arrays are in ``net.bus`` / ``net.line`` / ``net.trafo`` order."""
    converged: bool
    iterations: int
    vm_pu: np.ndarray
    va_degree: np.ndarray
    line_loading: np.ndarray          # %
    trafo_loading: np.ndarray         # %
    p_trafo_mw: np.ndarray            # HV side, load convention of the branch (flow into the trafo)
    losses_mw: float
    method: str = ""
    info: dict = field(default_factory=dict)


def _nan_result(nb: int, nl: int, nt: int, iterations: int, method: str) -> PFResult:
    nan = np.full
    return PFResult(False, iterations, nan(nb, np.nan), nan(nb, np.nan), nan(nl, np.nan),
                    nan(nt, np.nan), nan(nt, np.nan), float("nan"), method)


def _prepare_copy(net: pp.pandapowerNet, buses: Sequence[int]) -> tuple[pp.pandapowerNet, np.ndarray]:
    """Deep-copy ``net`` and add one zero constant-power load per injection bus."""
    buses = [int(b) for b in buses]
    if len(set(buses)) != len(buses):
        raise ValueError("injection buses must be unique (aggregate households per bus first)")
    missing = [b for b in buses if b not in net.bus.index]
    if missing:
        raise ValueError(f"injection buses {missing} do not exist in the network")
    oos = [b for b in buses if not bool(net.bus.at[b, "in_service"])]
    if oos:
        raise ValueError(f"injection buses {oos} are out of service")
    net = copy.deepcopy(net)
    idx = [pp.create_load(net, bus=b, p_mw=0.0, q_mvar=0.0, name=f"_inj_bus{b}") for b in buses]
    return net, np.asarray(idx, dtype=np.int64)


class _Engine:
    name = "?"

    def __init__(self, net: pp.pandapowerNet, buses: Sequence[int]):
        self.buses = np.asarray([int(b) for b in buses], dtype=np.int64)
        self.n_bus = len(net.bus)
        self.n_line = len(net.line)
        self.n_trafo = len(net.trafo)

    def _check_input(self, p_mw, q_mvar) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(p_mw, dtype=np.float64).reshape(-1)
        q = np.zeros_like(p) if q_mvar is None else np.asarray(q_mvar, dtype=np.float64).reshape(-1)
        if p.shape != self.buses.shape or q.shape != self.buses.shape:
            raise ValueError(f"expected {len(self.buses)} injections, got P {p.shape}, Q {q.shape}")
        return p, q

    def solve(self, p_mw, q_mvar=None) -> PFResult:  # pragma: no cover - interface
        raise NotImplementedError


class FastEngine(_Engine):
    """Reusable-model power flow (implicit Z-bus Gauss with Newton-Raphson fallback)."""

    name = "fast"

    def __init__(self, net: pp.pandapowerNet, buses: Sequence[int], *, method: str = "auto",
                 tolerance_mva: float = 1e-10, max_iter_zbus: int = 60, max_iter_nr: int = 30):
        super().__init__(net, buses)
        if method not in ("auto", "zbus", "nr"):
            raise ValueError(f"method must be 'auto', 'zbus' or 'nr', got {method!r}")
        self.tol = float(tolerance_mva)
        self.max_iter_zbus = int(max_iter_zbus)
        self.max_iter_nr = int(max_iter_nr)
        work, _ = _prepare_copy(net, self.buses)
        pp.runpp(work, **_RUNPP_OPTS)  # zero household load: builds pandapower's internal model
        internal = work._ppc["internal"]
        lookups = work._pd2ppc_lookups

        self.baseMVA = float(internal["baseMVA"])
        Ybus = sp.csr_matrix(internal["Ybus"])
        Ybus.sum_duplicates()
        Ybus.sort_indices()
        self.Ybus = Ybus
        self.Yf = sp.csr_matrix(internal["Yf"])
        self.Yt = sp.csr_matrix(internal["Yt"])
        n = Ybus.shape[0]
        self.ref = np.asarray(internal["ref"], dtype=np.int64)
        self.pv = np.asarray(internal["pv"], dtype=np.int64)
        self.pq = np.asarray(internal["pq"], dtype=np.int64)
        self.pvpq = np.r_[self.pv, self.pq]
        self.V_init = np.asarray(internal["V"], dtype=np.complex128).copy()  # zero-load solution
        self.V = self.V_init.copy()                                          # warm start
        # constant injections other than the households (generators' P at PV buses, ...)
        self.S_const = np.asarray(internal["Sbus"], dtype=np.complex128).copy()
        if self.method_ok_zbus() is False and method == "zbus":
            raise ValueError("method 'zbus' needs a net without PV buses (gens); use 'auto' or 'nr'")
        self.method = method

        # pandapower bus -> internal bus
        bus_lookup = np.asarray(lookups["bus"], dtype=np.int64)
        pp_bus = net.bus.index.values.astype(np.int64)
        ib = bus_lookup[pp_bus]
        self._bus_valid = (ib >= 0) & (ib < n)
        self._bus_int = np.where(self._bus_valid, ib, 0)
        inj = bus_lookup[self.buses]
        if np.any((inj < 0) | (inj >= n)):
            bad = self.buses[(inj < 0) | (inj >= n)].tolist()
            raise ValueError(f"injection buses {bad} are not connected to a slack (isolated)")
        if np.any(np.isin(inj, self.ref)):
            bad = self.buses[np.isin(inj, self.ref)].tolist()
            raise ValueError(f"injection buses {bad} are slack buses (ext_grid): cannot carry households")
        self._inj_int = inj

        # branches: ppc branch range -> internal (in-service) branch position
        branch_is = np.asarray(internal["branch_is"], dtype=bool)
        ppci_pos = np.cumsum(branch_is) - 1
        ibr = internal["branch"]
        self._f = ibr[:, F_BUS].real.astype(np.int64)
        self._t = ibr[:, T_BUS].real.astype(np.int64)
        base_kv = internal["bus"][:, BASE_KV].real.astype(np.float64)
        # |I| p.u. -> kA factor at each end of each internal branch
        self._ika_f = self.baseMVA / (_SQRT3 * base_kv[self._f])
        self._ika_t = self.baseMVA / (_SQRT3 * base_kv[self._t])

        def bus_alive(pp_buses) -> np.ndarray:
            ib = bus_lookup[np.asarray(pp_buses, dtype=np.int64)]
            return (ib >= 0) & (ib < n)

        def branch_rows(element: str, count: int, ends: tuple[str, str]):
            """internal positions, in-service mask, and the value of an out-of-service branch's
            loading as pandapower reports it: 0 between two energised buses, else NaN."""
            if count == 0 or element not in lookups["branch"]:
                return np.zeros(count, dtype=np.int64), np.zeros(count, dtype=bool), np.zeros(count)
            f, t = lookups["branch"][element]
            active = branch_is[f:t]
            tab = net[element]
            alive = bus_alive(tab[ends[0]].values) & bus_alive(tab[ends[1]].values)
            return np.where(active, ppci_pos[f:t], 0), active, np.where(alive, 0.0, np.nan)

        self._line_pos, self._line_act, self._line_off = branch_rows("line", self.n_line,
                                                                     ("from_bus", "to_bus"))
        line = net.line
        i_max = (line.max_i_ka.values * line.df.values * line.parallel.values).astype(np.float64)
        with np.errstate(divide="ignore"):
            inv = np.where(i_max != 0, 100.0 / np.where(i_max != 0, i_max, 1.0), np.inf)
        lp = self._line_pos
        self._line_sf = self._ika_f[lp] * inv if self.n_line else np.zeros(0)
        self._line_st = self._ika_t[lp] * inv if self.n_line else np.zeros(0)

        self._trafo_pos, self._trafo_act, self._trafo_off = branch_rows("trafo", self.n_trafo,
                                                                        ("hv_bus", "lv_bus"))
        tr = net.trafo
        if self.n_trafo:
            if np.any(tr.df.values <= 0):
                raise ValueError("transformer rating factor df must be positive")
            tp = self._trafo_pos
            k = 100.0 * _SQRT3 / (tr.sn_mva.values * tr.parallel.values * tr.df.values)
            self._trafo_sf = self._ika_f[tp] * tr.vn_hv_kv.values * k
            self._trafo_st = self._ika_t[tp] * tr.vn_lv_kv.values * k
        else:
            self._trafo_sf = self._trafo_st = np.zeros(0)

        self._setup_zbus()
        self._setup_nr()
        self.stats = {"zbus": 0, "nr": 0, "failed": 0, "iterations": 0}

    # ------------------------------------------------------------------ setup
    def method_ok_zbus(self) -> bool:
        return len(self.pv) == 0

    def _setup_zbus(self) -> None:
        self._lu = None
        if not self.method_ok_zbus() or len(self.pq) == 0:
            return
        Y = self.Ybus
        Ynn = Y[self.pq][:, self.pq].tocsc()
        Yns = Y[self.pq][:, self.ref]
        try:
            self._lu = splu(Ynn)
        except RuntimeError:  # singular (should not happen for connected nets)
            self._lu = None
            return
        self._c = -(Yns @ self.V_init[self.ref])  # slack voltages are fixed

    def _setup_nr(self) -> None:
        Y = self.Ybus.tocoo()
        rows, cols, data = Y.row.astype(np.int64), Y.col.astype(np.int64), Y.data
        n = Y.shape[0]
        # make sure every diagonal exists (needed for the diagonal Jacobian terms)
        diag_present = np.zeros(n, dtype=bool)
        diag_present[rows[rows == cols]] = True
        if not diag_present.all():
            miss = np.flatnonzero(~diag_present)
            rows = np.r_[rows, miss]
            cols = np.r_[cols, miss]
            data = np.r_[data, np.zeros(len(miss), dtype=data.dtype)]
        self._yr, self._yc, self._yd = rows, cols, data
        self._ydiag = np.full(n, -1, dtype=np.int64)
        d = np.flatnonzero(rows == cols)
        self._ydiag[rows[d]] = d
        npvpq, npq = len(self.pvpq), len(self.pq)
        ipvpq = np.full(n, -1, dtype=np.int64)
        ipvpq[self.pvpq] = np.arange(npvpq)
        ipq = np.full(n, -1, dtype=np.int64)
        ipq[self.pq] = np.arange(npq)
        blocks = []  # (mask over Y entries, J rows, J cols, kind) kind: 0 dVa.real 1 dVm.real 2 dVa.imag 3 dVm.imag
        m = (ipvpq[rows] >= 0) & (ipvpq[cols] >= 0)
        blocks.append((np.flatnonzero(m), ipvpq[rows[m]], ipvpq[cols[m]], 0))
        m = (ipvpq[rows] >= 0) & (ipq[cols] >= 0)
        blocks.append((np.flatnonzero(m), ipvpq[rows[m]], npvpq + ipq[cols[m]], 1))
        m = (ipq[rows] >= 0) & (ipvpq[cols] >= 0)
        blocks.append((np.flatnonzero(m), npvpq + ipq[rows[m]], ipvpq[cols[m]], 2))
        m = (ipq[rows] >= 0) & (ipq[cols] >= 0)
        blocks.append((np.flatnonzero(m), npvpq + ipq[rows[m]], npvpq + ipq[cols[m]], 3))
        self._jk = [b[0] for b in blocks]
        jr = np.concatenate([b[1] for b in blocks])
        jc = np.concatenate([b[2] for b in blocks])
        nj = npvpq + npq
        order = np.arange(1, len(jr) + 1, dtype=np.float64)
        J = sp.csc_matrix((order, (jr, jc)), shape=(nj, nj))
        J.sort_indices()
        self._jperm = J.data.astype(np.int64) - 1
        self._J = J

    # ------------------------------------------------------------------ solvers
    def _zbus(self, V: np.ndarray, S: np.ndarray) -> tuple[bool, int, np.ndarray]:
        pq = self.pq
        Sn = S[pq]
        Vn = V[pq]
        lu, c, tol = self._lu, self._c, self.tol
        prev = np.inf
        stall = 0
        for it in range(1, self.max_iter_zbus + 1):
            Vnew = lu.solve(np.conj(Sn / Vn) + c)
            mis = np.abs(Sn * (Vnew / Vn - 1.0)).max() if len(Sn) else 0.0
            Vn = Vnew
            if not np.isfinite(mis):
                return False, it, V
            if mis < tol:
                Vout = V.copy()
                Vout[pq] = Vn
                return True, it, Vout
            # contraction too slow (near the nose of the PV curve): hand over to Newton
            if mis > 0.7 * prev:
                stall += 1
                if stall >= 3:
                    return False, it, V
            prev = mis
        return False, self.max_iter_zbus, V

    def _nr(self, V: np.ndarray, S: np.ndarray) -> tuple[bool, int, np.ndarray]:
        Y = self.Ybus
        pq, pvpq = self.pq, self.pvpq
        npvpq = len(pvpq)
        yr, yc, yd, ydiag = self._yr, self._yc, self._yd, self._ydiag
        jk = self._jk
        J, jperm = self._J, self._jperm
        V = V.copy()
        Va = np.angle(V)
        Vm = np.abs(V)
        for it in range(0, self.max_iter_nr + 1):
            Ibus = Y @ V
            mis = V * np.conj(Ibus) - S
            F = np.r_[mis[pvpq].real, mis[pq].imag]
            if not np.all(np.isfinite(F)):
                return False, it, V
            if (np.abs(F).max() if len(F) else 0.0) < self.tol:
                return True, it, V
            if it == self.max_iter_nr:
                break
            # dS/dVa, dS/dVm on the Ybus pattern (pypower dSbus_dV, element-wise)
            t = V[yr] * np.conj(yd * V[yc])
            dVa = -1j * t
            dVa[ydiag] += 1j * V * np.conj(Ibus)
            dVm = t / Vm[yc]
            dVm[ydiag] += np.conj(Ibus) * V / Vm
            vals = np.concatenate((dVa.real[jk[0]], dVm.real[jk[1]], dVa.imag[jk[2]], dVm.imag[jk[3]]))
            J.data[:] = vals[jperm]
            try:
                dx = splu(J).solve(-F)
            except RuntimeError:  # singular Jacobian
                return False, it, V
            Va[pvpq] += dx[:npvpq]
            Vm[pq] += dx[npvpq:]
            if not np.all(np.isfinite(Vm)) or np.any(Vm[pq] <= 0):
                return False, it, V
            V = Vm * np.exp(1j * Va)
        return False, self.max_iter_nr, V

    def _run(self, V0: np.ndarray, S: np.ndarray) -> tuple[bool, int, np.ndarray, str]:
        iters = 0
        if self.method in ("auto", "zbus") and self._lu is not None:
            ok, it, V = self._zbus(V0, S)
            iters += it
            if ok:
                return True, iters, V, "zbus"
            if self.method == "zbus":
                return False, iters, V0, "zbus"
        ok, it, V = self._nr(V0, S)
        return ok, iters + it, V, "nr"

    def solve(self, p_mw, q_mvar=None) -> PFResult:
        t0 = time.perf_counter()
        p, q = self._check_input(p_mw, q_mvar)
        n = self.Ybus.shape[0]
        load = np.bincount(self._inj_int, weights=p, minlength=n) \
            + 1j * np.bincount(self._inj_int, weights=q, minlength=n)
        S = self.S_const - load / self.baseMVA
        if not np.all(np.isfinite(S)):
            self.stats["failed"] += 1
            return _nan_result(self.n_bus, self.n_line, self.n_trafo, 0, "none")
        with np.errstate(all="ignore"):  # divergent iterates overflow: detected, not warned
            ok, iters, V, method = self._run(self.V, S)
            if not ok and not np.array_equal(self.V, self.V_init):
                ok, it2, V, method = self._run(self.V_init, S)
                iters += it2
        self.stats["iterations"] += iters
        if not ok:
            self.stats["failed"] += 1
            return _nan_result(self.n_bus, self.n_line, self.n_trafo, iters, method)
        self.stats[method] += 1
        self.V = V
        res = self._results(V, iters, method)
        res.info["solve_s"] = time.perf_counter() - t0
        return res

    def _results(self, V: np.ndarray, iters: int, method: str) -> PFResult:
        vm_i = np.abs(V)
        va_i = np.angle(V, deg=True)
        vm = np.where(self._bus_valid, vm_i[self._bus_int], np.nan)
        va = np.where(self._bus_valid, va_i[self._bus_int], np.nan)
        If = self.Yf @ V
        It = self.Yt @ V
        aIf, aIt = np.abs(If), np.abs(It)
        Sf = V[self._f] * np.conj(If)
        St = V[self._t] * np.conj(It)
        losses = float((Sf.real.sum() + St.real.sum()) * self.baseMVA)
        if self.n_line:
            lp = self._line_pos
            ll = np.maximum(aIf[lp] * self._line_sf, aIt[lp] * self._line_st)
            ll = np.where(self._line_act, ll, self._line_off)
        else:
            ll = np.zeros(0)
        if self.n_trafo:
            tp = self._trafo_pos
            tl = np.maximum(aIf[tp] * self._trafo_sf, aIt[tp] * self._trafo_st)
            tl = np.where(self._trafo_act, tl, self._trafo_off)
            pt = np.where(self._trafo_act, Sf.real[tp] * self.baseMVA, 0.0)
        else:
            tl = pt = np.zeros(0)
        return PFResult(True, iters, vm, va, ll, tl, pt, losses, method)

    def reset(self) -> None:
        """Forget the warm start (next solve starts from the zero-load solution)."""
        self.V = self.V_init.copy()


class RunppEngine(_Engine):
    """pandapower ``runpp`` (with ``recycle`` after the first successful run when ``recycle``)."""

    name = "runpp"

    def __init__(self, net: pp.pandapowerNet, buses: Sequence[int], *, recycle: bool = True,
                 tolerance_mva: float = 1e-8, max_iteration: int | str = "auto"):
        super().__init__(net, buses)
        self.net, self._load_idx = _prepare_copy(net, self.buses)
        self.recycle = bool(recycle)
        self._opts = dict(_RUNPP_OPTS, tolerance_mva=tolerance_mva, max_iteration=max_iteration,
                          init="auto")
        self._warm = False
        self.stats = {"failed": 0}

    def solve(self, p_mw, q_mvar=None) -> PFResult:
        t0 = time.perf_counter()
        p, q = self._check_input(p_mw, q_mvar)
        net = self.net
        net.load.loc[self._load_idx, "p_mw"] = p
        net.load.loc[self._load_idx, "q_mvar"] = q
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                # divergence shows up as NaN/singular-matrix warnings; it is reported via converged
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", MatrixRankWarning)
                if self.recycle and self._warm:
                    pp.runpp(net, recycle=dict(bus_pq=True, trafo=False, gen=False), numba=False)
                else:
                    pp.runpp(net, **self._opts)
            ok = bool(net.converged)
        except Exception:  # LoadflowNotConverged, singular matrices, NaN inputs ...
            ok = False
        if not ok:
            self._warm = False
            net["_ppc"] = None  # force a full rebuild (and a fresh start) next time
            self.stats["failed"] += 1
            return _nan_result(self.n_bus, self.n_line, self.n_trafo, 0, "runpp")
        self._warm = True
        ppc = net._ppc
        losses = float(np.nansum(ppc["branch"][:, PF].real) + np.nansum(ppc["branch"][:, PT].real))
        res = PFResult(
            True, int(ppc.get("iterations", 0) or 0),
            net.res_bus.vm_pu.values.astype(np.float64).copy(),
            net.res_bus.va_degree.values.astype(np.float64).copy(),
            net.res_line.loading_percent.values.astype(np.float64).copy() if len(net.line) else np.zeros(0),
            net.res_trafo.loading_percent.values.astype(np.float64).copy() if len(net.trafo) else np.zeros(0),
            net.res_trafo.p_hv_mw.values.astype(np.float64).copy() if len(net.trafo) else np.zeros(0),
            losses, "runpp-recycle" if self.recycle else "runpp")
        res.info["solve_s"] = time.perf_counter() - t0
        return res


ENGINES = {"fast": FastEngine, "runpp": RunppEngine}


def make_engine(name: str, net: pp.pandapowerNet, buses: Sequence[int], **options) -> _Engine:
    """``name``: ``"fast"`` or ``"runpp"`` (``"runpp_norecycle"``: runpp without recycle)."""
    if name == "runpp_norecycle":
        return RunppEngine(net, buses, recycle=False, **options)
    if name not in ENGINES:
        raise ValueError(f"unknown grid engine {name!r}; valid: {sorted(ENGINES)} or 'runpp_norecycle'")
    return ENGINES[name](net, buses, **options)
