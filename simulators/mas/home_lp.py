"""The home agent's planning problem: one household over K slots as a linear programme.

Variables per slot k (kW, averages over the slot of length dt hours; present only for owned devices)::

    imp, exp >= 0     grid import / export at the household meter, net p = imp - exp
    cur  in [0, gen]  PV curtailment (gen = forecast generation)                       (pv)
    ch, dis in [0, pmax], e in [soc_min, soc_max]·cap   battery power and energy (kWh)    (battery)
    ev in [0, charger·avail_k], evE in [0, cap]  EV charging power and energy (kWh)       (ev)
    hp in [0, p_el], T (°C), slo, shi >= 0  heat pump, indoor temperature, comfort slacks (heat pump)
    pk >= imp_k                            peak import (only when the tariff has a peak price, B6)

Rows::

    balance   imp - exp - cur - ch + dis - ev - hp = base + pv + appliances   (pv <= 0, load convention)
    battery   e_k = e_{k-1} + eta·dt·ch_k - dt/eta·dis_k,          e_{K-1} >= e_init  (no end-of-day dumping)
    EV        evE_k = evE_{k-1} + eta·dt·ev_k - trip_k ;  evE_k >= target at a departure slot
    thermal   T_k = a·T_{k-1} + (1-a)·(T_out,k + COP(T_out,k)·hp_k / UA),   a = exp(-UA·dt/C)
              (exact discretisation of the 1R1C model C dT/dt = -UA (T - T_out) + COP·P_hp for a
              piecewise-constant input)
    comfort   T_k + slo_k >= t_min,  T_k - shi_k <= t_max   (soft band, penalty per K·h)
    peak      pk - imp_k >= 0

Objective f_i (€): Σ_k dt·[(α·π_imp + w_B5)·imp − (α·π_exp − w_B5)·exp + wear/2·(ch+dis) + comfort·(slo+shi)]
+ π_peak·pk + tiny tie-breakers (prefer early EV charging, avoid curtailment). α = 1 when the household
pays its own tariff, 0 in a community district (the LFA prices energy at the transformer). The
aggregator's coupling enters as a price λ_k (€/kWh) on the net power: + λ_k·dt·(imp − exp).

The model is built once per household (sparse matrix fixed); every update changes only row bounds
(forecasts, states), column bounds (EV availability, targets), a few matrix entries (COP follows
the outdoor temperature) and costs, and HiGHS re-solves from the previous basis (``lp.LP``).
Households without storage-like devices (no battery, EV, heat pump) and without a peak price are
separable per slot and solved in closed form (the same optimum as the LP; tested).

Shiftable appliances are not in the LP: the home agent picks each cycle's start by enumerating the
feasible start slots of its window against the current effective price (``schedule_appliance``)
and then treats the cycle as a fixed load; the centralised reference uses the same decision, so the
MAS-vs-central comparison is on the same problem. (A MILP with a binary per start slot would make
the home problem non-convex and break the decomposition's optimality certificate.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from simulators.devices.common import FIXED, Clock, wall_day
from simulators.devices.heatpump import cop  # the household simulator's COP(T_out): same physics
from simulators.devices.ev import typical_need_kwh  # mean driving energy of a day the car is used
from simulators.devices.params import ApplianceParams, DeviceSet, HouseholdSpec, has_cycle, minutes_of_day

from .lp import LP, csc_positions
from .tariff import Tariff

EPS_EV = 1e-5  # €/kWh per slot index: prefer charging early among equal prices (deterministic plans)
EPS_CUR = 1e-4  # €/kWh: curtail only when it pays
# proximal term: piecewise-linear convex penalty of |p - target| with segment widths (kW, relative to
# PROX_DELTA) and slopes (relative to the proximal weight sigma, €/kWh). EPS_* and PROX_*: solver tuning
# (tie-breaking, convergence of the negotiation), modelling choices, not from a source
PROX_WIDTH = (1.0, 2.0, np.inf)
PROX_SLOPE = (1.0, 3.0, 8.0)
PROX_DELTA = 1.0




@dataclass
class HomePlan:
    """A plan of one household over the horizon (kW per slot, load convention)."""

    hid: str
    p: np.ndarray
    cost: float
    x: np.ndarray | None = None
    devices: dict[str, np.ndarray] = field(default_factory=dict)

    def setpoint(self, name: str, k: int) -> float | None:
        v = self.devices.get(name)
        if v is None or k >= len(v):
            return None
        return float(v[k])


def ev_sessions(ev, minute0: float, horizon_min: float, present: bool, departure: float | None,
                clock: Clock = FIXED):
    """EV presence sessions (arrival, departure) in local minutes overlapping [minute0, minute0+H).

    The current session (present now) ends at ``departure`` or the next typical departure; later
    sessions follow the typical daily arrival/departure times of the parameters (wall clock)."""
    arr_m, dep_m = minutes_of_day(ev.arrival), minutes_of_day(ev.departure)
    end = minute0 + horizon_min
    day0 = math.floor(minute0 / 1440.0)

    def next_at(t: float, mod: int) -> float:
        d = wall_day(clock, t)
        c = clock.linear_min(d * 1440.0 + mod)
        return c if c > t else clock.linear_min((d + 1) * 1440.0 + mod)

    out = []
    t = minute0
    if present:
        dep = departure if departure is not None and departure > minute0 else next_at(minute0, dep_m)
        out.append((minute0, dep, True))
        t = dep
    while True:
        a = next_at(t, arr_m)
        if a >= end:
            break
        d = next_at(a, dep_m)
        out.append((a, d, False))
        t = d
        if len(out) > 4 or day0 > 1e9:
            break
    return out


def shift_profile(a: np.ndarray, t_from: int, t_to: int, slot_ms: int, day_horizon: bool) -> np.ndarray | None:
    """A per-slot profile of a horizon starting at tick ``t_from`` moved to one starting at ``t_to``:
    rolled when the horizon is a whole day (prices and plans repeat daily), else padded with the last
    value. None if ``t_to`` is earlier or (non-daily) beyond the old horizon."""
    s = int(round((t_to - t_from) / slot_ms))
    K = len(a)
    if s < 0:
        return None
    if day_horizon:
        return np.roll(a, -s)
    if s >= K:
        return None
    return np.r_[a[s:], np.full(s, a[-1])]


def appliance_windows(app: ApplianceParams, minute0: float, horizon_min: float,
                      clock: Clock = FIXED) -> list[tuple[float, float]]:
    """(earliest start, latest start) in local minutes of the daily (wall-clock) windows overlapping the horizon, on
    the days with a cycle (``params.has_cycle``)."""
    n = len(app.profile_kw)
    ws, we = minutes_of_day(app.window_start), minutes_of_day(app.window_end)
    out = []
    for d in range(wall_day(clock, minute0) - 1, wall_day(clock, minute0 + horizon_min) + 1):
        if not has_cycle(app, d):
            continue
        s0, s1 = clock.linear_min(d * 1440.0 + ws), clock.linear_min(d * 1440.0 + we) - n
        if s1 >= minute0 and s0 < minute0 + horizon_min:
            out.append((s0, s1))
    return out


def schedule_appliance(app: ApplianceParams, minute0: float, K: int, slot_min: float, price: np.ndarray,
                       earliest: float, latest: float) -> float | None:
    """Cheapest start (local minute) in [earliest, latest] against ``price`` (€/kWh per slot).

    Candidates: ``earliest`` and every slot boundary after it up to ``latest`` (enumeration; the cycle
    must end inside the horizon). None when no candidate fits."""
    prof = np.asarray(app.profile_kw, dtype=float)
    n = len(prof)
    end = minute0 + K * slot_min
    lo = max(earliest, minute0)
    if latest < lo:
        return None
    k0 = math.ceil((lo - minute0) / slot_min - 1e-9)
    k1 = math.floor((latest - minute0) / slot_min + 1e-9)
    cands = [lo] + [minute0 + k * slot_min for k in range(k0, k1 + 1) if minute0 + k * slot_min > lo]
    cands = [st for st in cands if st + n <= end + 1e-9]  # ascending: the cycles that end in the horizon
    if not cands:
        return None
    # the cost of every candidate at once: row i holds the price of each minute of the cycle started at cands[i]
    idx = np.minimum(((np.asarray(cands)[:, None] - minute0 + np.arange(n)) // slot_min).astype(int), K - 1)
    costs = ((prof * price[idx]).sum(axis=1) / 60.0).tolist()
    best, best_c = None, np.inf
    for st, c in zip(cands, costs):
        if c < best_c - 1e-12:
            best, best_c = st, c
    return best


def cycle_load(app: ApplianceParams, start: float, minute0: float, K: int, slot_min: float) -> np.ndarray:
    """Average kW per slot of a cycle that starts (or started) at local minute ``start``."""
    prof = np.asarray(app.profile_kw, dtype=float)
    t = start + np.arange(len(prof)) - minute0
    keep = (t >= 0) & (t < K * slot_min)
    out = np.zeros(K)
    np.add.at(out, (t[keep] // slot_min).astype(int), prof[keep])
    return out / slot_min


class HomeModel:
    """LP of one household, built once, updated in place each planning round."""

    def __init__(self, spec: HouseholdSpec | dict, K: int = 96, slot_s: int = 900, tariff: Tariff | None = None,
                 community: bool = False, backend: str | None = None, clock: Clock = FIXED):
        self.spec = spec if isinstance(spec, HouseholdSpec) else HouseholdSpec.model_validate(spec)
        self.clock = clock  # time-of-day lookups (tariff bands, typical EV times) by its wall clock
        self.hid = self.spec.id
        self.dev: DeviceSet = self.spec.devices
        self.K, self.slot_s = int(K), int(slot_s)
        self.dt = self.slot_s / 3600.0
        self.slot_min = self.slot_s / 60.0
        self.tariff = tariff or Tariff()
        self.community = bool(community)
        self.backend = backend
        self.simple = self.dev.battery is None and self.dev.ev is None and self.dev.heat_pump is None \
            and self.tariff.peak_price <= 0
        self._build()
        self._lp: LP | None = None  # plain responses (no proximal block)
        self._lp_prox: LP | None = None  # responses with the proximal term
        self._coef_set = False
        self._hp_lp_pos: dict[bool, tuple] = {}  # prox -> the COP entries' positions in that LP, rows, columns
        self._prox_dirty = True
        self.ready = False

    # ------------------------------------------------------------------ structure
    def _build(self):
        K, dev, dt = self.K, self.dev, self.dt
        blocks: dict[str, slice] = {}
        n = 0

        def var(name, size):
            nonlocal n
            blocks[name] = slice(n, n + size)
            n += size

        var("imp", K)
        var("exp", K)
        if dev.pv is not None:
            var("cur", K)
        if dev.battery is not None:
            var("ch", K), var("dis", K), var("e", K)
        if dev.ev is not None:
            var("ev", K), var("evE", K)
        if dev.heat_pump is not None:
            var("hp", K), var("T", K), var("slo", K), var("shi", K)
        if self.tariff.peak_price > 0:
            var("pk", 1)
        # right-hand sides that change every round enter as fixed columns (-1 in the row, bounds
        # [v, v]): HiGHS then takes the whole update in one vectorised changeColsBounds call
        self.rhs_blocks = ["bal"] + (["soc"] if dev.battery is not None else []) \
            + (["evdyn"] if dev.ev is not None else []) + (["th"] if dev.heat_pump is not None else [])
        for rb in self.rhs_blocks:
            var(f"rhs_{rb}", K)
        self.n_main = n  # the proximal block comes last: the plain LP is the leading submatrix
        if not self.simple:
            for j in range(len(PROX_WIDTH)):
                var(f"up{j}", K), var(f"un{j}", K)
            var("rhs_prox", K)
        self.blocks, self.n = blocks, n
        rows, cols, vals = [], [], []
        rblocks: dict[str, slice] = {}
        m = 0
        ar = np.arange(K)

        def put(r, c, v):
            rows.append(np.broadcast_to(r, np.shape(c)).ravel() if np.ndim(c) else [r])
            cols.append(np.ravel(c))
            vals.append(np.broadcast_to(v, np.shape(c)).ravel() if np.ndim(c) else [v])

        def rowblock(name):
            nonlocal m
            rblocks[name] = slice(m, m + K)
            m += K
            return rblocks[name].start + ar

        def col(name):
            return blocks[name].start + ar

        r = rowblock("bal")
        put(r, col("imp"), 1.0), put(r, col("exp"), -1.0)
        if "cur" in blocks:
            put(r, col("cur"), -1.0)
        if dev.battery is not None:
            b = dev.battery
            put(r, col("ch"), -1.0), put(r, col("dis"), 1.0)
            r = rowblock("soc")
            put(r, col("e"), 1.0), put(r[1:], col("e")[:-1], -1.0)
            put(r, col("ch"), -b.efficiency * dt), put(r, col("dis"), dt / b.efficiency)
        if dev.ev is not None:
            put(rblocks["bal"].start + ar, col("ev"), -1.0)
            r = rowblock("evdyn")
            put(r, col("evE"), 1.0), put(r[1:], col("evE")[:-1], -1.0)
            put(r, col("ev"), -dev.ev.efficiency * dt)
        if dev.heat_pump is not None:
            put(rblocks["bal"].start + ar, col("hp"), -1.0)
            r = rowblock("th")
            h = dev.heat_pump
            self._a = math.exp(-h.ua_kw_per_k * dt / h.c_kwh_per_k)
            put(r, col("T"), 1.0), put(r[1:], col("T")[:-1], -self._a)
            put(r, col("hp"), -1.0)  # coefficient set per update (COP)
            r = rowblock("clo")
            put(r, col("T"), 1.0), put(r, col("slo"), 1.0)
            r = rowblock("chi")
            put(r, col("T"), 1.0), put(r, col("shi"), -1.0)
        if "pk" in blocks:
            r = rowblock("pkr")
            put(r, np.full(K, blocks["pk"].start), 1.0), put(r, col("imp"), -1.0)
        self.m_main = m
        if not self.simple:
            r = rowblock("prox")  # imp - exp - Σ up + Σ un = target (inactive while the segments cost 0)
            put(r, col("imp"), 1.0), put(r, col("exp"), -1.0)
            for j in range(len(PROX_WIDTH)):
                put(r, col(f"up{j}"), -1.0), put(r, col(f"un{j}"), 1.0)
            put(r, col("rhs_prox"), -1.0)
        for rb in self.rhs_blocks:
            put(rblocks[rb].start + ar, col(f"rhs_{rb}"), -1.0)
        self.rblocks, self.m = rblocks, m
        A = sp.coo_matrix(
            (np.concatenate([np.asarray(v, float) for v in vals]),
             (np.concatenate([np.asarray(x, int) for x in rows]), np.concatenate([np.asarray(x, int) for x in cols]))),
            shape=(m, n),
        ).tocsc()
        A.sum_duplicates()
        self.A = A
        self.lo = np.zeros(m)
        self.hi = np.zeros(m)
        self.lb = np.zeros(n)
        self.ub = np.full(n, np.inf)

    # ------------------------------------------------------------------ data of one planning round
    def update(self, minute0: float, state: dict | None, forecast: dict, fixed_load: np.ndarray | None = None):
        """Set the round's data. ``minute0``: local minute (since 1970, see devices.common.Clock) of slot 0.

        ``forecast``: ``base`` (kW ≥ 0), ``pv`` (kW ≤ 0), ``t_out`` (°C), arrays of length K; for a heat pump
        also ``hp_gain`` (internal + solar gains, kW) and ``dhw`` (hot-water power, kW, uncontrolled).
        ``state`` keys (all optional): ``soc`` (0..1) or ``bat_e_kwh``; ``soc_ev`` or ``ev_e_kwh``;
        ``ev_sessions`` [(arrive, depart, need_kwh, home)] (local minutes) or else ``ev_present``,
        ``ev_departure`` (local minute), ``ev_need_kwh``; ``T_in`` (°C); ``cop`` (per slot).
        ``fixed_load``: kW per slot of decided appliance cycles."""
        K, dev, B = self.K, self.dev, self.blocks
        state = state or {}
        self.minute0 = float(minute0)
        base = np.asarray(forecast.get("base", np.zeros(K)), float)[:K]
        pv = np.minimum(np.asarray(forecast.get("pv", np.zeros(K)), float)[:K], 0.0) if dev.pv is not None else np.zeros(K)
        # without a forecast of the outdoor temperature: 10 °C, near Germany's annual mean (modelling choice)
        t_out = np.asarray(forecast.get("t_out", np.full(K, 10.0)), float)[:K]
        fixed = np.zeros(K) if fixed_load is None else np.asarray(fixed_load, float)[:K]
        if dev.heat_pump is not None:  # hot water runs on its own: uncontrolled load
            fixed = fixed + np.asarray(forecast.get("dhw", np.zeros(K)), float)[:K]
        self.rhs_load = base + pv + fixed  # uncontrolled net load
        self.gen = -pv
        lo, hi, lb, ub = self.lo, self.hi, self.lb, self.ub
        ub[:] = np.inf
        lb[:] = 0.0
        rb = self.rblocks
        lo[rb["bal"]] = hi[rb["bal"]] = self.rhs_load
        if "cur" in B:
            ub[B["cur"]] = self.gen
        if dev.battery is not None:
            b = dev.battery
            cap = b.capacity_kwh
            e0 = state.get("bat_e_kwh")
            if e0 is None:
                soc = state.get("soc")
                soc = b.soc_init if soc is None or not np.isfinite(soc) else float(soc)
                e0 = float(np.clip(soc, 0.0, 1.0)) * cap
            e0 = float(e0)
            ub[B["ch"]] = b.p_max_kw
            ub[B["dis"]] = b.p_max_kw
            lb[B["e"]] = min(b.soc_min * cap, e0)
            ub[B["e"]] = max(b.soc_max * cap, e0)
            lb[B["e"].stop - 1] = min(max(e0, b.soc_min * cap), b.soc_max * cap)  # end at least as full
            r = rb["soc"]
            lo[r] = hi[r] = 0.0
            lo[r.start] = hi[r.start] = e0
            self.e0 = e0
        if dev.ev is not None:
            self._update_ev(state)
        if dev.heat_pump is not None:
            h = dev.heat_pump
            T0 = state.get("T_in")
            T0 = h.t_init if T0 is None or not np.isfinite(T0) else float(T0)
            a = self._a
            r = rb["th"]
            gain = np.asarray(forecast.get("hp_gain", np.zeros(K)), float)[:K]  # internal + solar, kW
            lo[r] = hi[r] = (1 - a) * (t_out + gain / h.ua_kw_per_k)
            lo[r.start] += a * T0
            hi[r.start] += a * T0
            cp = state.get("cop")
            cp = cop(t_out) if cp is None else np.asarray(cp, float)[:K]
            self._hp_coef = (1 - a) * cp / h.ua_kw_per_k
            ub[B["hp"]] = h.p_el_kw
            lb[B["T"]] = -np.inf
            lo[rb["clo"]], hi[rb["clo"]] = h.t_min, np.inf
            lo[rb["chi"]], hi[rb["chi"]] = -np.inf, h.t_max
            self.T0 = T0
        if "pk" in B:
            lo[rb["pkr"]], hi[rb["pkr"]] = 0.0, np.inf
        if "prox" in rb:
            lo[rb["prox"]] = hi[rb["prox"]] = 0.0
            for j, w in enumerate(PROX_WIDTH):
                ub[B[f"up{j}"]] = w * PROX_DELTA
                ub[B[f"un{j}"]] = w * PROX_DELTA
        for blk in self.rhs_blocks + (["prox"] if "prox" in rb else []):
            r, cb = rb[blk], B[f"rhs_{blk}"]
            lb[cb] = ub[cb] = lo[r]
            lo[r] = hi[r] = 0.0
        # costs
        m0, sm = self.minute0, self.slot_min
        self.pi_imp = self.tariff.import_prices(m0, K, sm, self.clock)
        self.pi_exp = self.tariff.export_prices(m0, K, sm)
        self.c_f = self._cost(alpha=0.0 if self.community else 1.0)
        self.c_own = self._cost(alpha=1.0)
        self.ready = True
        self._push()
        self._prox_dirty = True

    def _update_ev(self, state: dict):
        """EV availability, trips and departure targets from the sessions overlapping the horizon.

        ``state["ev_sessions"]``: [(arrive, depart, need_kwh, home)] in local minutes (home = the car
        is plugged in now and need is what is still missing); without it the typical daily times of
        the parameters are used. Like the household model, a future arrival lowers the energy by the
        trip's need (at most to 0) and the car must leave with the arrival energy + need (≤ capacity)."""
        ev, K, B, dt = self.dev.ev, self.K, self.blocks, self.dt
        cap, eta, pmax = ev.capacity_kwh, ev.efficiency, ev.charger_kw
        m0, sm = self.minute0, self.slot_min
        e0 = state.get("ev_e_kwh")
        if e0 is None:
            soc = state.get("soc_ev")
            e0 = cap * (float(soc) if soc is not None and np.isfinite(soc) else max(0.0, 1.0 - typical_need_kwh(ev) / cap))
        e0 = float(e0)
        sess = state.get("ev_sessions")
        if sess is None:
            present = bool(state.get("ev_present", False))
            dep = state.get("ev_departure")
            need_now = state.get("ev_need_kwh")
            need_now = typical_need_kwh(ev) if need_now is None else max(0.0, float(need_now))
            sess = [(a, d, need_now if cur else typical_need_kwh(ev), cur)
                    for a, d, cur in ev_sessions(ev, m0, K * sm, present, None if dep is None else float(dep), self.clock)]
        avail = np.zeros(K)
        trip = np.zeros(K)
        tgt_lb = np.full(K, -np.inf)
        edges = m0 + sm * np.arange(K + 1)
        level = e0  # planned energy when the next session starts
        self.ev_targets = []
        for a, d, need, home in sorted(sess, key=lambda x: x[0]):
            a = max(float(a), m0) if home else float(a)
            d = float(d)
            if d <= m0 or a >= edges[-1]:
                continue
            ov = np.clip(np.minimum(edges[1:], d) - np.maximum(edges[:-1], a), 0, None) / sm
            avail = np.clip(avail + ov, 0.0, 1.0)
            ka = int(min(max(0, math.floor((a - m0) / sm)), K - 1))
            if not home:
                t_use = min(float(need), max(level, 0.0))
                trip[ka] += t_use
                level -= t_use
                rem = min(float(need), cap - level)
            else:
                rem = min(float(need), max(cap - level, 0.0))
            kd = math.ceil((d - m0) / sm - 1e-9) - 1  # slot containing the departure
            if ka <= kd <= K - 1:
                reach = level + eta * pmax * dt * float(np.sum(ov[ka:kd + 1]))
                target = min(level + rem, reach)
                tgt_lb[kd] = max(tgt_lb[kd], target - 1e-6)
                self.ev_targets.append((kd, target))
                level = target
            else:
                level = level  # departs after the horizon: no requirement inside it
        self.lb[B["evE"]] = tgt_lb  # (no lower bound elsewhere: energy bookkeeping only)
        self.ub[B["evE"]] = max(cap, e0)
        self.ub[B["ev"]] = pmax * avail
        r = self.rblocks["evdyn"]
        self.lo[r] = self.hi[r] = -trip
        self.lo[r.start] += e0
        self.hi[r.start] += e0
        self.ev_avail = avail

    def _cost(self, alpha: float) -> np.ndarray:
        t, B, dt, K = self.tariff, self.blocks, self.dt, self.K
        c = np.zeros(self.n)
        c[B["imp"]] = (alpha * self.pi_imp + t.self_consumption) * dt
        c[B["exp"]] = (-alpha * self.pi_exp + t.self_consumption) * dt
        if "cur" in B:
            c[B["cur"]] = EPS_CUR * dt
        if "ch" in B:
            c[B["ch"]] = 0.5 * t.battery_wear * dt
            c[B["dis"]] = 0.5 * t.battery_wear * dt
        if "ev" in B:
            c[B["ev"]] = EPS_EV * np.arange(K) * dt
        if "slo" in B:
            c[B["slo"]] = t.comfort_penalty * dt
            c[B["shi"]] = t.comfort_penalty * dt
        if "pk" in B:
            c[B["pk"]] = t.peak_price
        return c

    # ------------------------------------------------------------------ solving
    def _push(self, prox: bool = False):
        """Send this round's data to the persistent LP (the proximal one only when it is used)."""
        lp = self._lp_prox if prox else self._lp
        if lp is None:
            return
        n, m = lp.n, lp.m
        lp.set_col_bounds(self.lb[:n], self.ub[:n])
        lp.set_rows(np.arange(m), self.lo[:m], self.hi[:m])
        if self.dev.heat_pump is not None:  # the COP coefficients (row th_k, column hp_k) that changed
            if prox not in self._hp_lp_pos:
                rows, cols = self._hp_entries()
                self._hp_lp_pos[prox] = (lp.coeff_positions(rows, cols), rows, cols)
            lp.set_coeffs(*self._hp_lp_pos[prox], -self._hp_coef)
        if prox:
            self._prox_dirty = False

    def _ensure_lp(self, prox: bool = False) -> LP:
        """The persistent LP: without the proximal block (plain responses, smaller and faster) or with it."""
        lp = self._lp_prox if prox else self._lp
        if lp is None:
            if self.dev.heat_pump is not None and not self._coef_set:
                self.A.data[self._hp_pos()] = -self._hp_coef
                self._coef_set = True
            n, m = (self.n, self.m) if prox else (self.n_main, self.m_main)
            lp = LP(self.A[:m, :n], self.c_f[:n], self.lo[:m], self.hi[:m], self.lb[:n], self.ub[:n],
                    backend=self.backend)
            if prox:
                self._lp_prox = lp
            else:
                self._lp = lp
            self._push(prox)  # the coefficients of this round
        elif prox and self._prox_dirty:
            self._push(prox=True)
        return lp

    def lp_arrays(self):
        """(A, lo, hi, lb, ub, c_f) of the current round, with the COP coefficients applied."""
        A = self.A.copy()
        A.data = self.a_data()
        return A, self.lo.copy(), self.hi.copy(), self.lb.copy(), self.ub.copy(), self.c_f.copy()

    def a_data(self) -> np.ndarray:
        """The entries of ``A`` (CSC, in its order) of the current round: the COP coefficients applied."""
        data = self.A.data.copy()
        if self.dev.heat_pump is not None:  # entries of the structure (built with -1.0): set in place
            data[self._hp_pos()] = -self._hp_coef
        return data

    def _hp_pos(self) -> np.ndarray:
        """Positions in ``A.data`` of the heat pump's COP coefficients (row th_k, column hp_k)."""
        if getattr(self, "_hp_pos_cache", None) is None:
            self._hp_pos_cache = csc_positions(self.A, *self._hp_entries())
        return self._hp_pos_cache

    def _hp_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of the heat pump's COP coefficients: row th_k, column hp_k for every slot k."""
        r0, c0 = self.rblocks["th"].start, self.blocks["hp"].start
        return r0 + np.arange(self.K), c0 + np.arange(self.K)

    def priced_cost(self, lam: np.ndarray | None = None, own: bool = False) -> np.ndarray:
        """The LP's costs for price ``lam`` (€/kWh per slot on the net power, or none) added to f_i, or
        to the household's standalone objective with ``own``; a new array."""
        c = (self.c_own if own else self.c_f).copy()
        if lam is not None:
            lam = np.asarray(lam, float)[: self.K]
            c[self.blocks["imp"]] += lam * self.dt
            c[self.blocks["exp"]] -= lam * self.dt
        return c

    def solve(self, lam: np.ndarray | None = None, own: bool = False, target: np.ndarray | None = None,
              sigma: float = 0.0) -> HomePlan:
        """Best plan for price ``lam`` (€/kWh per slot on the net power) added to f_i.

        ``own=True``: the household's standalone objective (its own tariff even in a community) —
        the plan it would follow on its own, used as the first column and the fallback.
        ``target``/``sigma``: add the proximal term sigma·φ(p − target) (φ convex piecewise linear,
        ≈ quadratic, see PROX_*), which makes the response move gradually (used for extra columns)."""
        if not self.ready:
            raise RuntimeError(f"{self.hid}: update() before solve()")
        c = self.priced_cost(lam, own)
        if self.simple:
            x = self._solve_simple(c)
        elif target is not None and sigma > 0:
            lp = self._ensure_lp(prox=True)
            for j, sl in enumerate(PROX_SLOPE):
                c[self.blocks[f"up{j}"]] = sigma * sl * self.dt
                c[self.blocks[f"un{j}"]] = sigma * sl * self.dt
            cb = self.blocks["rhs_prox"]
            t = np.asarray(target, float)[: self.K]
            lp.set_cols_bounds(np.arange(cb.start, cb.stop), t, t)
            lp.set_cost(c)
            x = lp.solve().x
        else:
            lp = self._ensure_lp()
            lp.set_cost(c[: self.n_main])
            x = np.zeros(self.n)
            x[: self.n_main] = lp.solve().x
        return self.plan_from_x(x)

    def _solve_simple(self, c: np.ndarray) -> np.ndarray:
        """Closed form: per slot the net power p ∈ [r, r+gen] minimising a convex piecewise-linear cost."""
        B, K = self.blocks, self.K
        ci, ce = c[B["imp"]], c[B["exp"]]
        r = self.rhs_load
        gen = self.gen if "cur" in B else np.zeros(K)
        cc = c[B["cur"]] if "cur" in B else np.zeros(K)
        cands = np.stack([r, r + gen, np.clip(0.0, r, r + gen)])
        cost = np.where(cands > 0, ci * cands, -ce * cands) + cc * (cands - r)
        pick = np.argmin(cost + 1e-12 * np.arange(3)[:, None], axis=0)
        p = cands[pick, np.arange(K)]
        x = np.zeros(self.n)
        x[B["imp"]] = np.maximum(p, 0.0)
        x[B["exp"]] = np.maximum(-p, 0.0)
        if "cur" in B:
            x[B["cur"]] = p - r
        for blk in self.rhs_blocks:  # fixed right-hand-side columns
            x[B[f"rhs_{blk}"]] = self.lb[B[f"rhs_{blk}"]]
        return x

    def plan_from_x(self, x: np.ndarray) -> HomePlan:
        B = self.blocks
        p = x[B["imp"]] - x[B["exp"]]
        devs = {}
        if "ch" in B:
            devs["bat"] = x[B["ch"]] - x[B["dis"]]
            devs["e"] = x[B["e"]]
        if "ev" in B:
            devs["ev"] = x[B["ev"]]
        if "hp" in B:
            devs["hp"] = x[B["hp"]]
            devs["T"] = x[B["T"]]
        if "cur" in B:
            devs["cur"] = x[B["cur"]]
        return HomePlan(self.hid, p, self.cost_of(x), x, devs)

    def cost_of(self, x: np.ndarray, own: bool = False) -> float:
        """f_i of a plan, with the import/export split recomputed from the net power (never worse)."""
        B = self.blocks
        x = np.array(x, float)
        p = x[B["imp"]] - x[B["exp"]]
        x[B["imp"]], x[B["exp"]] = np.maximum(p, 0.0), np.maximum(-p, 0.0)
        if "pk" in B:
            x[B["pk"]] = max(0.0, float(np.max(x[B["imp"]])))
        return float((self.c_own if own else self.c_f) @ x)

    def combine(self, plans: list[HomePlan], weights: list[float]) -> HomePlan:
        """Convex combination of this round's plans (feasible: the home's feasible set is convex)."""
        w = np.asarray(weights, float)
        w = w / w.sum()
        x = sum(wi * pl.x for wi, pl in zip(w, plans))
        return self.plan_from_x(x)

    def check(self, x: np.ndarray, tol: float = 1e-6) -> float:
        """Largest violation of rows and bounds (0 = feasible) — used by tests."""
        A, lo, hi, lb, ub, _ = self.lp_arrays()
        if "prox" in self.rblocks:  # the proximal rows are not constraints of the household
            r, cb = self.rblocks["prox"], self.blocks["rhs_prox"]
            lo[r], hi[r] = -np.inf, np.inf
            lb[cb], ub[cb] = -np.inf, np.inf
        ax = A @ x
        v = max(
            float(np.max(np.r_[lo - ax, ax - hi, 0.0])),
            float(np.max(np.r_[lb - x, x - ub, 0.0])),
        )
        return v
