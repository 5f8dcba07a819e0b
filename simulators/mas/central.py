"""The district problem solved as one LP (the centralised reference) and its district-level part.

District problem (one LFA, households i, slots k, dt hours)::

    min  Σ_i f_i(x_i) + g(D)
    s.t. x_i ∈ X_i                      (each household's LP, home_lp.HomeModel)
         Σ_i p_i,k(x_i) + F_k = D_k     (coupling: the district's net exchange at the transformer)

``F_k`` is a fixed load (members whose plan is unknown, normally 0). ``g`` is the district part
(``DistrictPart``), with D = Dp − Dm::

    g = Σ_k dt·[α·(π_imp,k·Dp_k − π_exp,k·Dm_k) + ε·(Dp_k + Dm_k) + pen_k·(ov_k + uv_k)] + π_peak·pk
        Dp_k − ov_k <= cap_k    (transformer limit and flex-order caps, soft)
        Dm_k − uv_k <= capx_k   (export limit, soft)
        pk − Dp_k >= 0          (district peak, only with a peak price)

α = 1 for a community district (energy priced at the transformer), 0 otherwise.
``solve_central`` stacks every household LP and the district part into one LP for HiGHS; its
optimum is the reference of the decentralised algorithm (lfa.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .home_lp import HomeModel, HomePlan
from .lp import LP, Solution, solve_once
from .tariff import DistrictObjective

EPS_D = 1e-6  # €/kWh on Dp + Dm: keeps Dp·Dm = 0 when energy is not priced at the transformer
# €/kWh: a price within this of zero in every slot is that regularisation alone (its dual is ±EPS_D where
# nothing is priced at the transformer), not a price; doubled for the duals' tolerance and the messages' rounding
NO_PRICE = 2 * EPS_D
BIG_D = 1e5  # kW: bound on the district exchange (keeps the Lagrangian's district part finite)


class DistrictPart:
    """Variables [Dp, Dm, ov, uv, (pk)] and rows [lim_imp, lim_exp, (peak)] of the district term g."""

    def __init__(self, K: int, dt: float, pi_imp, pi_exp, obj: DistrictObjective,
                 cap_imp=None, cap_exp=None, penalty=None):
        self.K, self.dt, self.obj = K, dt, obj
        self._lp: LP | None = None
        self.has_peak = obj.peak_price > 0
        self.n = 4 * K + (1 if self.has_peak else 0)
        alpha = 1.0 if obj.community else 0.0
        pi_imp, pi_exp = np.asarray(pi_imp, float), np.asarray(pi_exp, float)
        pen = np.full(K, obj.overload_penalty) if penalty is None else np.asarray(penalty, float)
        c = np.zeros(self.n)
        c[0:K] = (alpha * pi_imp + EPS_D) * dt
        c[K:2 * K] = (-alpha * pi_exp + EPS_D) * dt
        c[2 * K:3 * K] = pen * dt
        c[3 * K:4 * K] = pen * dt
        if self.has_peak:
            c[4 * K] = obj.peak_price
        self.c = c
        self.lb = np.zeros(self.n)
        self.ub = np.full(self.n, np.inf)
        self.ub[0:2 * K] = BIG_D
        self.A = self._matrix(coupling=False)
        self.m = self.A.shape[0]
        self.lo = np.full(self.m, -np.inf)
        self.hi = np.full(self.m, np.inf)
        self.set_caps(cap_imp, cap_exp)
        if self.has_peak:
            self.lo[2 * K:] = 0.0
            self.hi[2 * K:] = np.inf

    def _matrix(self, coupling: bool) -> sp.csc_matrix:
        """The rows [lim_imp, lim_exp, (peak)] in CSC, with the K coupling rows above them if *coupling*
        (``stacked``), column by column in increasing rows: the arrays scipy's block construction gives
        (tests/test_mas_lfa.py), without its cost (0.8 ms per negotiation for K = 96 with a peak)."""
        K, o = self.K, self.K if coupling else 0
        ar = np.arange(K, dtype=np.int32)
        # (row of slot 0, coefficient) of the entries of each K-column block, in increasing rows; the
        # coupling row k has -1 on Dp_k and +1 on Dm_k
        cols = [
            ([(0, -1.0)] if coupling else []) + [(o, 1.0)] + ([(o + 2 * K, -1.0)] if self.has_peak else []),  # Dp
            ([(0, 1.0)] if coupling else []) + [(o + K, 1.0)],  # Dm
            [(o, -1.0)],  # ov
            [(o + K, -1.0)],  # uv
        ]
        idx = [np.stack([r + ar for r, _ in ent], axis=1).ravel() for ent in cols]
        val = [np.tile([v for _, v in ent], K) for ent in cols]
        counts = [np.full(K, len(ent), np.int32) for ent in cols]
        if self.has_peak:  # pk: +1 in every peak row
            idx.append(o + 2 * K + ar)
            val.append(np.ones(K))
            counts.append(np.array([K], np.int32))
        indptr = np.r_[np.int32(0), np.cumsum(np.concatenate(counts), dtype=np.int32)]
        rows = o + (3 if self.has_peak else 2) * K
        return sp.csc_matrix((np.concatenate(val).astype(float), np.concatenate(idx).astype(np.int32), indptr),
                             shape=(rows, self.n))

    def stacked(self) -> sp.csc_matrix:
        """The K coupling rows, then the district rows ``A`` (master and central LPs)."""
        return self._matrix(coupling=True)

    def set_caps(self, cap_imp=None, cap_exp=None):
        K, obj = self.K, self.obj
        ci = np.full(K, np.inf if obj.trafo_limit_kw is None else obj.trafo_limit_kw)
        if cap_imp is not None:
            ci = np.minimum(ci, np.asarray(cap_imp, float))
        ce = np.full(K, np.inf if obj.export_limit_kw is None else obj.export_limit_kw)
        if cap_exp is not None:
            ce = np.minimum(ce, np.asarray(cap_exp, float))
        self.cap_imp, self.cap_exp = ci, ce
        self.hi[0:K] = ci
        self.hi[K:2 * K] = ce

    def set_penalty(self, pen):
        K = self.K
        self.c[2 * K:3 * K] = np.asarray(pen, float) * self.dt
        self.c[3 * K:4 * K] = np.asarray(pen, float) * self.dt

    def value(self, D: np.ndarray) -> float:
        """g(D) for a given district net exchange (kW per slot)."""
        K = self.K
        D = np.asarray(D, float)
        Dp, Dm = np.maximum(D, 0), np.maximum(-D, 0)
        ov = np.maximum(Dp - self.cap_imp, 0)
        uv = np.maximum(Dm - self.cap_exp, 0)
        x = np.r_[Dp, Dm, ov, uv]
        if self.has_peak:
            x = np.r_[x, Dp.max() if K else 0.0]
        return float(self.c @ x)

    def dual_part(self, lam: np.ndarray) -> float:
        """min over the district variables of g(D) − dt·λ·D (the district term of the Lagrangian)."""
        K = self.K
        c = self.c.copy()
        c[0:K] -= lam * self.dt
        c[K:2 * K] += lam * self.dt
        if self._lp is None:
            self._lp = LP(self.A, c, self.lo, self.hi, self.lb, self.ub)
        else:
            self._lp.set_cost(c)
            self._lp.set_rows(np.arange(self.m), self.lo, self.hi)
        return self._lp.solve().obj


@dataclass
class CentralResult:
    obj: float
    plans: dict[str, HomePlan]
    D: np.ndarray
    lam: np.ndarray  # €/kWh, price of the coupling rows (the optimal multipliers)
    seconds: float
    n_vars: int
    n_rows: int


@dataclass
class CentralLP:
    """The district LP (household blocks on the diagonal, then the coupling rows, then the district
    rows) and where each household's columns start."""

    A: sp.csc_matrix
    c: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    offsets: list[int]
    n_home_cols: int
    n_home_rows: int

    def arrays(self) -> tuple:
        return self.A, self.c, self.lo, self.hi, self.lb, self.ub

    def same_as(self, other: "CentralLP") -> bool:
        """Exactly the same LP (structure, every coefficient and bound)."""
        a, b = self.A, other.A
        return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
                and np.array_equal(a.data, b.data)
                and all(np.array_equal(x, y) for x, y in zip(self.arrays()[1:], other.arrays()[1:])))


def central_lp(models: list[HomeModel], district: DistrictPart, fixed: np.ndarray | None = None) -> CentralLP:
    """The LP over all households and the district part, assembled in CSC: each household's columns
    hold its own rows and, for its import and export columns, then its entry in the coupling rows (+1,
    -1), which follow every household's rows; the district part's columns come last. (From the models'
    CSC arrays directly: scipy's copies and conversions took twice the time, 6-7 ms per district of 49 homes.)"""
    K = district.K
    mh = sum(mdl.m for mdl in models)
    ar = np.arange(K)
    counts, indices, data, coup = [], [], [], []
    cs, los, his, lbs, ubs = [], [], [], [], []
    offs = []
    r0 = nh = 0
    for mdl in models:
        A = mdl.A
        counts.append(np.diff(A.indptr)), indices.append(A.indices + r0), data.append(mdl.a_data())
        cs.append(mdl.c_f), los.append(mdl.lo), his.append(mdl.hi), lbs.append(mdl.lb), ubs.append(mdl.ub)
        coup += [nh + mdl.blocks["imp"].start + ar, nh + mdl.blocks["exp"].start + ar]
        offs.append(nh)
        r0 += mdl.m
        nh += mdl.n
    dA = district.stacked()
    cnt = np.concatenate(counts) if models else np.zeros(0, dtype=np.int64)
    cc = np.concatenate(coup) if models else np.zeros(0, dtype=np.int64)
    per_col = cnt.copy()
    per_col[cc] += 1
    indptr = np.zeros(nh + district.n + 1, dtype=np.int32)
    np.cumsum(np.r_[per_col, np.diff(dA.indptr)], out=indptr[1:])
    ind = np.empty(indptr[-1], dtype=np.int32)
    dat = np.empty(indptr[-1])
    start = np.r_[0, np.cumsum(cnt)]     # where each household column's entries start in the models' arrays
    col = np.repeat(np.arange(nh), cnt)
    pos = np.arange(start[-1]) + (indptr[:nh] - start[:-1])[col]
    if models:
        ind[pos], dat[pos] = np.concatenate(indices), np.concatenate(data)
    last = indptr[cc + 1] - 1            # the coupling entry: the last of its column
    ind[last] = mh + np.tile(ar, 2 * len(models))
    dat[last] = np.tile(np.r_[np.ones(K), -np.ones(K)], len(models))
    ind[indptr[nh]:], dat[indptr[nh]:] = dA.indices + mh, dA.data
    A = sp.csc_matrix((dat, ind, indptr), shape=(mh + K + district.m, nh + district.n))
    F = np.zeros(K) if fixed is None else np.asarray(fixed, float)
    return CentralLP(A, np.concatenate(cs + [district.c]), np.concatenate(los + [-F, district.lo]),
                     np.concatenate(his + [-F, district.hi]), np.concatenate(lbs + [district.lb]),
                     np.concatenate(ubs + [district.ub]), offs, nh, mh)


def central_result(clp: CentralLP, models: list[HomeModel], district: DistrictPart, sol: Solution,
                   seconds: float) -> CentralResult:
    """Plans, district exchange and coupling prices from the solution of :func:`central_lp`."""
    K, nh, r0 = district.K, clp.n_home_cols, clp.n_home_rows
    plans = {mdl.hid: mdl.plan_from_x(sol.x[o:o + mdl.n]) for mdl, o in zip(models, clp.offsets)}
    xd = sol.x[nh:]
    D = xd[0:K] - xd[K:2 * K]
    # row k of the coupling reads Σ p − Dp + Dm = −F; ∂obj/∂F_k = −y_k, so the price per kWh is −y/dt
    lam = -sol.row_dual[r0:r0 + K] / district.dt
    return CentralResult(sol.obj, plans, D, lam, seconds, clp.A.shape[1], clp.A.shape[0])


def solve_central(models: list[HomeModel], district: DistrictPart, fixed: np.ndarray | None = None,
                  backend: str | None = None) -> CentralResult:
    """One LP over all households and the district part (cold HiGHS solve)."""
    t0 = time.perf_counter()
    clp = central_lp(models, district, fixed)
    sol = solve_once(*clp.arrays(), backend=backend)
    return central_result(clp, models, district, sol, time.perf_counter() - t0)
