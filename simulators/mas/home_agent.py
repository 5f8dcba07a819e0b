"""Home agent: plans its household and answers its LFA, using only its own data and received messages.

Protocol (see messages.py and lfa.py). At every scheduled re-plan tick (or on a ``start`` message)
the home agent takes a snapshot of its household's state and forecast, decides its shiftable
appliances, updates its LP and sends a ``plan``: ``own`` (its standalone optimum under its own
tariff) when it knows no price, or, priced at its meter, the last price was only the aggregator's
exchange regularisation (``central.NO_PRICE``); else ``prev`` (its best response to the last price it
received, shifted to the new horizon) and ``hold`` (the same price with a proximal term around the
plan it follows). Each ``price`` is answered with the best response to that price. A
``dispatch`` names convex weights of the plans it sent; the home combines its stored plans (a
convex combination of feasible plans is feasible) and follows the result.

Fallback: until a dispatch for the current negotiation arrives the home keeps following its
previous plan (if it still covers the present slot, else its first plan of this negotiation). If
no dispatch arrives by ``fallback_ms`` after the negotiation began, it switches to ``hold`` (the
last price with the proximal term around its previous plan), else ``prev`` (response to the last
price it knew), else ``own`` (standalone optimum) — all feasible for its present state.
"""

from __future__ import annotations

import math
import time

import numpy as np

from simulators.devices.common import Clock
from simulators.devices.params import HouseholdSpec, minutes_of_day

from .central import NO_PRICE
from .home_lp import HomeModel, HomePlan, appliance_windows, cycle_load, schedule_appliance, shift_profile
from .messages import arr, floats
from .tariff import Tariff


class HomeAgent:
    def __init__(self, spec: HouseholdSpec, lfa_id: str, K: int, slot_s: int, tariff: Tariff, community: bool,
                 clock: Clock, forecast, fallback_ms: int = 120_000, backend: str | None = None,
                 prox_sigma: float = 0.02, hold_sigma: float = 0.1, ev_model=None):
        self.id = spec.id
        self.spec = spec
        self.lfa = lfa_id
        self.model = HomeModel(spec, K, slot_s, tariff, community, backend, clock)
        self.K, self.slot_s = K, int(slot_s)
        self.slot_ms = int(round(self.slot_s / clock.time_resolution))
        self.clock = clock
        self.forecast = forecast
        self.fallback_ms = int(fallback_ms)
        self.prox_sigma = float(prox_sigma)
        self.hold_sigma = float(hold_sigma)
        self.ev_model = ev_model  # callable(hid, m_from, m_to) -> [(arrive, depart, need_kwh)] local minutes
        self._ev_target: dict = {}
        dev = spec.devices
        # does the agent have anything to decide (LP variables besides import/export)?
        self.flex = not self.model.simple or dev.pv is not None
        self.neg: str | None = None
        self.t0: int | None = None
        self.plans: dict[str, HomePlan] = {}
        self._begun: tuple[int, np.ndarray | None] = (0, None)  # (now, price) of the last prepare
        self.active: HomePlan | None = None
        self.active_t0: int | None = None
        self.active_src = "none"
        self.active_plan_neg: str | None = None
        self.on_change = None  # callback when the followed plan changes (output caching by the host)
        self.dispatched = False
        self.deadline: int | None = None
        self.lam: np.ndarray | None = None
        self.lam_t0: int | None = None
        self.lam_id: str | None = None  # negotiation whose dispatch carried the price
        self.app_sched: dict[int, tuple[str, float]] = {}  # next planned start per appliance
        self._app_planned: dict[int, float] = {}
        self._app_started: dict[int, float] = {}
        self.solves = 0
        self.solve_s = 0.0
        self.fallbacks = 0

    # ------------------------------------------------------------------ helpers
    def _infer_state(self, state: dict, now_min: float, minute0: float) -> tuple[dict, list | None]:
        """LP state (home_lp.HomeModel.update keys) and appliance cycles from the household's inputs.

        Preferred source: the household's flexibility envelope (``flex`` input). Otherwise the
        measured ``soc``/``soc_ev``/``T_in`` plus the EV sessions from ``ev_model`` (the driver's
        announced arrival/departure/need) or, lacking that, the typical times of the parameters."""
        state = state or {}
        st: dict = {}
        cycles = None
        fl = state.get("flex") if isinstance(state.get("flex"), dict) else None
        tm = self.clock.local_min
        if fl:
            if "battery" in fl:
                st["bat_e_kwh"] = float(fl["battery"]["e_kwh"])
            if "ev" in fl:
                st["ev_e_kwh"] = float(fl["ev"]["e_kwh"])
                st["ev_sessions"] = [(tm(x["arrive"]), tm(x["depart"]), float(x["e_need_kwh"]), bool(x["home"]))
                                     for x in fl["ev"].get("sessions", [])]
            if "hp" in fl:
                st["T_in"] = float(fl["hp"]["t_in"])
            cycles = fl.get("appliances")
        for k in ("soc", "soc_ev", "T_in", "ev_present", "ev_departure", "ev_need_kwh"):
            if k not in st and state.get(k) is not None:
                st[k] = state[k]
        ev = self.spec.devices.ev
        if ev is not None and "ev_sessions" not in st:
            if self.ev_model is not None:
                cap = ev.capacity_kwh
                e_now = cap * float(st["soc_ev"]) if st.get("soc_ev") is not None else None
                sess = []
                for a, d, need in self.ev_model(self.id, minute0 - 1440.0, minute0 + self.K * self.model.slot_min):
                    if d <= now_min:
                        continue
                    if a <= now_min:  # plugged in now: remaining need from the target of this session
                        tgt = self._ev_target.get(round(a, 3))
                        if tgt is None:
                            tgt = min(cap, (e_now if e_now is not None else 0.0) + need)
                            self._ev_target = {round(a, 3): tgt}
                        rem = max(0.0, tgt - e_now) if e_now is not None else need
                        sess.append((now_min, d, rem, True))
                    else:
                        sess.append((a, d, need, False))
                st["ev_sessions"] = sess
            elif "ev_present" not in st:
                m = self.clock.wall_min(now_min) % 1440.0
                a, d = minutes_of_day(ev.arrival), minutes_of_day(ev.departure)
                st["ev_present"] = not ((d <= m < a) if d < a else not (a <= m < d))
        return st, cycles

    def _shifted_lam(self, t0: int) -> np.ndarray | None:
        """The last price received (for an earlier horizon), moved onto the horizon starting at t0."""
        if self.lam is None or self.lam_t0 is None:
            return None
        return self._shift(self.lam, self.lam_t0, t0)

    def _appliances(self, minute0: float, now_min: float, lam: np.ndarray | None, rhs: np.ndarray,
                    cycles: list | None) -> np.ndarray:
        """Decide the start of every pending appliance cycle; returns the fixed load per slot.

        ``cycles``: the household's own report (flex envelope ``appliances``) when available, else
        the agent tracks its cycles itself (a planned start that has passed = started)."""
        apps = self.spec.devices.appliances
        K, sm = self.K, self.model.slot_min
        fixed = np.zeros(K)
        self.app_sched = {}
        if not apps:
            return fixed
        t = self.model.tariff
        price = np.where(rhs > 0, t.import_prices(minute0, K, sm, self.clock), t.export_prices(minute0, K, sm))
        if lam is not None:
            price = lam if self.model.community else price + lam
        horizon = K * sm
        tick_min = self.clock.local_min
        for j, app in enumerate(apps):
            n = len(app.profile_kw)
            windows = []  # (earliest, latest, state, start)
            rep = None
            if cycles is not None:
                rep = next((c for c in cycles if c.get("name") == app.name), None)
            if rep is not None:
                for c in rep.get("cycles", []):
                    st = None if c.get("start") is None else tick_min(c["start"])
                    windows.append((tick_min(c["earliest"]), tick_min(c["latest_start"]), c.get("state", "pending"), st))
            else:
                st = self._app_planned.get(j)
                if st is not None and st <= now_min:
                    self._app_started[j] = st
                for e, l in appliance_windows(app, minute0, horizon, self.clock):
                    run = self._app_started.get(j)
                    if run is not None and e - 1e-9 <= run <= l + 1e-9:
                        windows.append((e, l, "running" if run + n > now_min else "done", run))
                    elif l >= now_min:
                        windows.append((e, l, "pending", None))
            for e, l, state, st in windows:
                if state == "running" and st is not None:
                    fixed += cycle_load(app, st, minute0, K, sm)
                elif state == "pending":
                    new = schedule_appliance(app, minute0, K, sm, price, max(e, now_min), l)
                    if new is not None:
                        if j not in self.app_sched or new < self.app_sched[j][1]:
                            self.app_sched[j] = (app.name, new)
                        fixed += cycle_load(app, new, minute0, K, sm)
            if j in self.app_sched:
                self._app_planned[j] = self.app_sched[j][1]
        return fixed

    def _solve(self, lam=None, own=False, target=None, sigma=0.0) -> HomePlan:
        t = time.perf_counter()
        pl = self.model.solve(lam, own=own, target=target, sigma=sigma)
        self.solve_s += time.perf_counter() - t
        self.solves += 1
        return pl

    @staticmethod
    def _col(tag: str, pl: HomePlan) -> dict:
        return {"tag": tag, "p": floats(pl.p), "cost": round(float(pl.cost), 6)}

    # ------------------------------------------------------------------ protocol
    def _shift(self, a: np.ndarray, t_from: int, t_to: int) -> np.ndarray | None:
        return shift_profile(a, t_from, t_to, self.slot_ms, abs(self.K * self.slot_s - 86400) < 1)

    def begin(self, neg: str, t0: int, now: int, state: dict) -> list[tuple[str, str, dict]]:
        """Start a negotiation: snapshot, plan, send the first columns (:meth:`prepare`, :meth:`plan`,
        :meth:`send_plan`).

        Columns: ``own`` (standalone optimum: when no earlier price is known, or when, priced at the
        meter, the last price is no more than the aggregator's exchange regularisation ``NO_PRICE``), ``prev`` (best
        response to the last received price, shifted to the new horizon) and ``hold`` (the same
        price with the proximal term around the previously followed plan: in rolling operation a
        near-optimal starting point)."""
        self.prepare(neg, t0, now, state)
        return self.send_plan(self.plan())

    def prepare(self, neg: str, t0: int, now: int, state: dict) -> None:
        """:meth:`begin`'s first part: the snapshot, the forecast, the appliance starts and the LP's data."""
        minute0 = self.clock.local_min(t0)
        now_min = self.clock.local_min(now)
        st, cycles = self._infer_state(state, now_min, minute0)
        fc = self.forecast(self.id, t0, self.K, self.slot_s)
        lam = self._shifted_lam(t0) if self.flex else None
        if lam is not None and not self.model.community and not np.any(np.abs(lam) > NO_PRICE):
            lam = None  # only the aggregator's exchange regularisation: the own plan is the best response
        rhs = np.asarray(fc["base"], float) + np.asarray(fc["pv"], float)
        fixed = self._appliances(minute0, now_min, lam, rhs, cycles)
        self.model.update(minute0, st, fc, fixed)
        self.neg, self.t0 = neg, int(t0)
        self.dispatched = False
        self.deadline = int(now) + self.fallback_ms
        self.plans = {}
        self._begun = (int(now), lam)

    def plan(self) -> list[dict]:
        """:meth:`begin`'s second part: the first columns. It solves this home's own LPs and touches
        nothing else, so the host runs it for several homes at once (``AgentHost._replan``)."""
        lam = self._begun[1]
        best = None  # (tag, lam_ref) of the column that is an exact best response to a known price
        if lam is None:
            self.plans["own"] = self._solve(own=True)
            if not self.model.community:  # own tariff = f_i: the own plan answers the price 0
                best = ("own", "zero")
        else:
            self.plans["prev"] = self._solve(lam)
            best = ("prev", self.lam_id)
        if lam is not None and np.any(np.abs(lam) > 1e-9) and self.hold_sigma > 0 and not self.model.simple \
                and self.active is not None:
            tgt = self._shift(self.active.p, self.active_t0, self.t0)
            if tgt is not None:
                self.plans["hold"] = self._solve(lam, target=tgt, sigma=self.hold_sigma)
        cols = []
        for tag, pl in self.plans.items():
            col = self._col(tag, pl)
            if best is not None and tag == best[0]:
                col["best"], col["lam_ref"] = True, best[1]
            cols.append(col)
        return cols

    def send_plan(self, cols: list[dict]) -> list[tuple[str, str, dict]]:
        """:meth:`begin`'s last part: the fallback plan where none is followed, and the columns' message."""
        now = self._begun[0]
        if self.active is None or self.active_t0 is None or now >= self.active_t0 + self.K * self.slot_ms:
            self._activate(self._fallback_plan(), self.t0, "own")
        return [(self.lfa, "plan", {"neg": self.neg, "round": 0, "flex": self.flex, "cols": cols})]

    def _fallback_plan(self) -> HomePlan:
        return self.plans.get("hold") or self.plans.get("prev") or self.plans.get("own")

    def on_price(self, body: dict) -> list[tuple[str, str, dict]]:
        """Best response to the price (tag r<round>, marked ``best`` for the LFA's bound) and, when the
        LFA sent a target, the proximal response around it (tag x<round>)."""
        if body.get("neg") != self.neg or not self.flex:
            return []  # stale negotiation: the model no longer holds its data
        lam = arr(body["lam"])
        r = int(body["round"])
        pl = self._solve(lam)
        self.plans[f"r{r}"] = pl
        col = self._col(f"r{r}", pl)
        col["best"] = True
        cols = [col]
        tgt = body.get("target")
        sigma = float(body.get("sigma", self.prox_sigma))
        if tgt is not None and sigma > 0 and not self.model.simple:
            px = self._solve(lam, target=arr(tgt), sigma=sigma)
            if np.max(np.abs(px.p - pl.p), initial=0.0) > 1e-6:
                self.plans[f"x{r}"] = px
                cols.append(self._col(f"x{r}", px))
        return [(self.lfa, "plan", {"neg": self.neg, "round": r, "flex": True, "cols": cols})]

    def on_dispatch(self, body: dict, now: int) -> None:
        if body.get("lam") is not None:
            self.lam = arr(body["lam"])
            self.lam_t0 = int(body.get("t0", self.t0 or 0))
            self.lam_id = str(body.get("neg"))
        if body.get("neg") != self.neg:
            return
        pairs = [(t, float(w)) for t, w in body.get("w", []) if float(w) > 1e-9]
        if not pairs or any(t not in self.plans for t, _ in pairs):
            return  # cannot reproduce: keep the fallback path
        plan = self.model.combine([self.plans[t] for t, _ in pairs], [w for _, w in pairs])
        self._activate(plan, self.t0, "lfa")
        self.dispatched = True

    def on_start(self, body: dict, now: int, state: dict):
        return self.begin(str(body["neg"]), int(body["t0"]), now, state)

    def poll(self, now: int) -> None:
        """Time-driven part: switch to the fallback plan when no dispatch came in time."""
        if self.neg is not None and not self.dispatched and self.deadline is not None and now >= self.deadline:
            plan = self._fallback_plan() if self.plans else None
            if plan is not None:
                self._activate(plan, self.t0, "fallback")
                self.fallbacks += 1
            self.deadline = None

    def _activate(self, plan: HomePlan, t0: int, src: str) -> None:
        self.active, self.active_t0, self.active_src = plan, int(t0), src
        if self.on_change is not None:
            self.on_change()
        self.active_plan_neg = self.neg  # the negotiation (model snapshot) the plan belongs to

    def next_time(self) -> int | None:
        return self.deadline if (self.deadline is not None and not self.dispatched) else None

    def slot_index(self, now: int) -> int | None:
        if self.active is None or self.active_t0 is None:
            return None
        k = (int(now) - self.active_t0) // self.slot_ms
        return k if 0 <= k < self.K else None

    def setpoints(self, now: int) -> dict:
        """Setpoints for the household simulator at ``now`` (kW, load convention)."""
        k = self.slot_index(now)
        out: dict = {}
        if k is None:
            return out
        pl = self.active
        if "bat" in pl.devices:
            out["P_bat_set"] = float(pl.devices["bat"][k])
        if "ev" in pl.devices:
            out["P_ev_set"] = float(pl.devices["ev"][k])
        if "hp" in pl.devices:
            out["P_hp_set"] = float(pl.devices["hp"][k])
        if "cur" in pl.devices:
            cur = float(pl.devices["cur"][k])
            gen = float(self.model.gen[k]) if self.active_t0 == self.t0 else math.nan
            out["pv_limit"] = max(0.0, gen - cur) if (cur > 1e-4 and math.isfinite(gen)) else None
        if self.app_sched:
            out["app_start"] = {name: int(round(float(self.clock.tick_of(m)))) for name, m in self.app_sched.values()}
        return out

    def planned_power(self, now: int) -> float | None:
        k = self.slot_index(now)
        return None if k is None else float(self.active.p[k])
