"""Hosts all MAS agents of a run and routes their messages; no mosaik here (mas_sim.py wraps it).

``AgentHost.step(now, inbox)`` delivers received messages to their agents, runs the scheduled
re-planning and the agents' timers, and returns the outbox ``{src: [msg, ...]}``. Agents only act on
their own data and on received messages; the host never hands one agent another agent's objects.
With ``loopback=True`` (no telecom simulator) messages are delivered at once inside the same step,
still as JSON copies.

Modes: ``mas`` (decentralised negotiation), ``central`` (per district one LP over all households,
solved by the LFA with perfect knowledge, no messages: the comparison baseline), ``none`` (no
planning, no setpoints: the households follow their default rules).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from simulators.devices.common import Clock
from simulators.devices.params import HouseholdSpec

from .central import central_lp, central_result, solve_central
from .lp import solve_once
from .dso import DSOAgent
from .home_agent import HomeAgent
from .lfa import LFAAgent
from .messages import Outbox, wire_copy
from .tariff import DistrictObjective, Tariff
from simulators.vocabulary import CONTROL_MODES

STATE_KEYS = ("soc", "soc_ev", "T_in", "ev_present", "ev_departure", "ev_need_kwh")


class AgentHost:
    def __init__(self, clock: Clock, K: int = 96, slot_s: int = 900, replan_s: int = 900, mode: str = "mas",
                 loopback: bool = False, reference: bool = False, backend: str | None = None):
        if mode not in CONTROL_MODES:
            raise ValueError(f"mode must be one of {CONTROL_MODES}, got {mode!r}")
        if replan_s % slot_s:
            raise ValueError(f"replan interval ({replan_s} s) must be a multiple of the slot ({slot_s} s)")
        self.clock = clock
        self.K, self.slot_s, self.replan_s = int(K), int(slot_s), int(replan_s)
        self.slot_ms = int(round(slot_s / clock.time_resolution))
        self.replan_ms = int(round(replan_s / clock.time_resolution))
        # the slot grid is aligned to local clock time (slots start at :00, :15, …)
        off_min = clock.local_min(0) % (slot_s / 60.0)
        self.grid0 = int(round((-off_min % (slot_s / 60.0)) * 60.0 / clock.time_resolution))
        self.mode = mode
        self.loopback = bool(loopback)
        self.reference = bool(reference)
        self.backend = backend
        self.homes: dict[str, HomeAgent] = {}
        self.home_district: dict[str, str] = {}
        self.district_homes: dict[str, list[str]] = defaultdict(list)
        self.lfas: dict[str, LFAAgent] = {}
        self.dso: DSOAgent | None = None
        self.state: dict[str, dict] = defaultdict(dict)
        self.meters: dict[str, list] = {}
        self.p_trafo: dict[str, float] = {}
        self.trafo_loading: dict[str, float] = {}  # % per transformer name (a DSO with trafo_limit_pct)
        self.trafo_map: dict[str, str] = {}
        self.outbox = Outbox()
        self.seen: dict[str, int] = {}
        self.events: dict[str, list] = defaultdict(list)
        self.kpi: dict[str, dict] = defaultdict(dict)
        self.last_replan: int | None = None
        self.stats = {"messages": 0, "bytes": 0, "central_s": 0.0, "negotiations": 0, "reference_ahead": 0}
        self.version = 0  # changes whenever a household's followed plan changes
        self._out_cache: dict = {}
        self.end: int | None = None  # tick to which the run is planned: no flexibility is requested beyond it
        self.stop: int | None = None  # tick at which the run stops when before end (open orders are settled before)
        # the reference of a re-planning negotiation, solved on another core while the negotiation runs
        # (HiGHS releases the GIL): {lfa id: (negotiation id, its central LP, the solve)}
        self._ahead: dict[str, tuple] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._home_pool: ThreadPoolExecutor | None = None  # homes' own LPs, see _home_threads
        # meter registers arrive this many ticks after the instant they describe (a time-shifted
        # connection: the meters' previous step); settlement snapshots are keyed by that instant
        self.meter_lag = 0

    # ------------------------------------------------------------------ configuration
    def add_homes(self, district: str, specs: list[HouseholdSpec], tariff: Tariff, community: bool, forecast,
                  fallback_ms: int = 120_000, ev_model=None, tie_break: tuple[float, int] = (0.0, 0),
                  **agent_kw) -> list[str]:
        """*tie_break*: (€/kWh, seed) of ``Tariff.with_tie_break``, drawn per home."""
        ids = []
        for s in specs:
            if s.id in self.homes:
                raise ValueError(f"household {s.id!r} is in two HomeAgents populations")
            a = HomeAgent(s, f"lfa.{district}", self.K, self.slot_s, tariff.with_tie_break(*tie_break, s.id),
                          community, self.clock, forecast, fallback_ms, self.backend, ev_model=ev_model, **agent_kw)
            a.on_change = self._bump
            self.homes[s.id] = a
            self.home_district[s.id] = district
            self.district_homes[district].append(s.id)
            ids.append(s.id)
        return ids

    def _bump(self) -> None:
        self.version += 1

    def add_lfa(self, district: str, members: list[str] | None, objective: DistrictObjective, tariff: Tariff,
                **kw) -> LFAAgent:
        lid = f"lfa.{district}"
        if lid in self.lfas:
            raise ValueError(f"two LFAs for district {district!r}")
        members = list(members) if members else list(self.district_homes.get(district, []))
        lfa = LFAAgent(district, members, objective, tariff, self.K, self.slot_s, self.clock, dso_id=None, **kw)
        self.lfas[lid] = lfa
        return lfa

    def add_dso(self, districts: list[str], trafo_limit_kw=None, trafo_map: dict | None = None, **kw) -> DSOAgent:
        self.dso = DSOAgent(districts, trafo_limit_kw, self.slot_s, self.clock, **kw)
        self.trafo_map = dict(trafo_map or {})
        return self.dso

    def _wire(self) -> None:
        """LFAs report to the DSO only when there is one (set at every step: models may come later)."""
        if self.dso is not None:
            self.dso.end = self.end
        for lfa in self.lfas.values():
            lfa.dso = self.dso.id if (self.dso is not None and lfa.district in self.dso.districts) else None

    # ------------------------------------------------------------------ inputs
    def set_state(self, hid: str, key: str, value) -> None:
        if value is None:
            self.state[hid].pop(key, None)
            return
        if key == "ev_departure":
            value = float(self.clock.local_min(float(value)))
        self.state[hid][key] = value

    def set_meters(self, register: str, values: dict) -> None:
        """One register (``"E_imp"`` or ``"E_exp"``) of many meters {hid: Wh}; None values are skipped
        (a register not yet read stays None)."""
        i = ("E_imp", "E_exp").index(register)
        meters = self.meters
        for hid, v in values.items():
            if v is not None:
                cur = meters.get(hid)
                if cur is None:
                    cur = meters[hid] = [None, None]
                cur[i] = float(v)

    def set_trafo(self, name: str, p_kw: float) -> None:
        """Measured transformer power; ``trafo_map`` names its scope (district or "total"). Without a
        map, a DSO that only watches the substation ("total") takes any transformer as the substation."""
        scope = self.trafo_map.get(name)
        if scope is None:
            only_total = self.dso is not None and set(self.dso.limits) == {"total"}
            scope = "total" if only_total else name
        self.p_trafo[scope] = float(p_kw)

    # ------------------------------------------------------------------ schedule
    def is_replan(self, now: int) -> bool:
        return (now - self.grid0) % self.replan_ms == 0 and now >= self.grid0

    def next_time(self, now: int) -> int:
        nxt = self.grid0 + ((now - self.grid0) // self.slot_ms + 1) * self.slot_ms if now >= self.grid0 else self.grid0
        cands = [nxt]
        if self.dso is not None and self.meter_lag:
            # the registers of the slot boundary arrive one meter step later: step then to snapshot them
            last = self.grid0 + ((now - self.meter_lag - self.grid0) // self.slot_ms) * self.slot_ms
            cands += [last + self.meter_lag, last + self.slot_ms + self.meter_lag]
        if self.mode == "mas":
            for a in self.lfas.values():
                t = a.next_time()
                if t is not None:
                    cands.append(t)
            for h in self.homes.values():
                t = h.next_time()
                if t is not None:
                    cands.append(t)
            if self.dso is not None:
                t = self.dso.next_time()
                if t is not None:
                    cands.append(t)
        # timers already due were handled in this step; one that is still pending (e.g. a settlement
        # waiting for meter data) must not make the simulator step every tick
        return int(min(t for t in cands if t > now))

    # ------------------------------------------------------------------ stepping
    def _send(self, src: str, items, now: int) -> list[dict]:
        msgs = []
        for dst, kind, body in items:
            msgs.append(self.outbox.send(src, dst, kind, body, now))
        return msgs

    def step(self, now: int, inbox: dict | None = None) -> dict[str, list[dict]]:
        """One host step at tick ``now``; returns the outbox of this step."""
        if self.mode == "none":
            return {}
        self._wire()
        local: list[dict] = []
        if self.is_replan(now) and self.last_replan != now:
            self.last_replan = now
            local += self._replan(now)
        msgs = []
        for lst in (inbox or {}).values():
            msgs.extend(lst if isinstance(lst, list) else [lst])
        msgs += local
        guard = 0
        while True:
            produced = self._deliver(msgs, now) if msgs else []
            produced += self._timers(now)
            if not self.loopback or not produced:
                break
            msgs = [wire_copy(m) for m in produced]
            guard += 1
            if guard > 10_000:
                raise RuntimeError("MAS loopback does not settle (message storm)")
        for lfa in self.lfas.values():
            for ev in lfa.events:
                self.events[lfa.id].append(ev)
                if ev["kind"] == "negotiation":
                    self.stats["negotiations"] += 1
                    if self.reference:
                        self._reference(lfa, ev)
            lfa.events.clear()
            neg = lfa.neg  # a negotiation announced by messages: its reference once every member has begun
            if self.reference and neg is not None and not neg.done and neg.purpose == "plan" \
                    and neg.id != self._ahead.get(lfa.id, ("",))[0]:
                self._solve_ahead(lfa, neg.id, neg.t0)
        if self.dso is not None:
            self.events[self.dso.id].extend(self.dso.events)
            self.dso.events.clear()
        out = self.outbox.take()
        for lst in out.values():
            self.stats["messages"] += len(lst)
            self.stats["bytes"] += sum(m["bytes"] for m in lst)
        return out

    def _replan(self, now: int) -> list[dict]:
        if self.mode == "central":
            self._central(now)
            return []
        produced = []
        for lid, lfa in self.lfas.items():
            lfa.prune_orders(now)
            produced += self._send(lid, lfa.begin(f"s{now}", now, now), now)
        for hid, h in self.homes.items():
            h.prepare(f"s{now}", now, now, self.state.get(hid, {}))
        cols = self._homes_at_once([h.plan for h in self.homes.values()])
        for (hid, h), c in zip(self.homes.items(), cols):
            items = h.send_plan(c)
            if h.lfa in self.lfas:
                produced += self._send(hid, items, now)
            else:
                h.dispatched = True  # no aggregator: the home follows its own plan
                h.deadline = None
        if self.reference:
            for lfa in self.lfas.values():
                self._solve_ahead(lfa, f"s{now}", now)
        return produced if self.loopback else []

    def _home_threads(self) -> ThreadPoolExecutor:
        """Two threads for the homes' own LPs (HiGHS releases the GIL while it solves)."""
        if self._home_pool is None:
            self._home_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="home-answers")
        return self._home_pool

    def _homes_at_once(self, calls: list) -> list:
        """The results of *calls* (each a home's own work, see HomeAgent.plan), in order, made on
        the two threads: the same as made one after the other."""
        if len(calls) < 2:
            return [c() for c in calls]
        return [f.result() for f in [self._home_threads().submit(c) for c in calls]]

    def _answer_prices(self, msgs: list[dict]) -> dict[int, Future]:
        """Start the answers of homes to the price messages of this batch on two threads. A home's best
        responses are LPs of its own (HiGHS releases the GIL while it solves), and only homes with no
        other message in the batch are taken, so each answer is what a call in turn would return;
        ``_deliver`` takes them in message order, so the messages sent are the same too."""
        count = Counter(m.get("dst") for m in msgs)
        picks = [i for i, m in enumerate(msgs)
                 if m.get("kind") == "price" and isinstance(m.get("body"), dict) and m.get("dst") in self.homes
                 and count[m.get("dst")] == 1 and m.get("id") not in self.seen]
        if len(picks) < 2:
            return {}
        return {i: self._home_threads().submit(self.homes[msgs[i]["dst"]].on_price, msgs[i]["body"]) for i in picks}

    def _deliver(self, msgs: list[dict], now: int) -> list[dict]:
        out = []
        answers = self._answer_prices(msgs)
        for i, m in enumerate(msgs):
            mid = m.get("id")
            if mid in self.seen:
                continue
            self.seen[mid] = now
            dst = m.get("dst")
            try:
                if dst in self.homes:
                    h = self.homes[dst]
                    k = m["kind"]
                    if k == "price":
                        out += self._send(dst, answers[i].result() if i in answers else h.on_price(m["body"]), now)
                    elif k == "dispatch":
                        h.on_dispatch(m["body"], now)
                    elif k == "start":
                        out += self._send(dst, h.on_start(m["body"], now, self.state.get(dst, {})), now)
                elif dst in self.lfas:
                    out += self._send(dst, self.lfas[dst].on_message(m, now), now)
                elif self.dso is not None and dst == self.dso.id:
                    out += self._send(dst, self.dso.on_message(m, now), now)
            except (KeyError, TypeError, ValueError) as e:  # a malformed message must not kill the run
                self.events["host"].append({"kind": "bad_message", "t": int(now), "id": mid, "error": str(e)})
        if len(self.seen) > 200_000:
            cut = now - 3_600_000
            self.seen = {k: v for k, v in self.seen.items() if v >= cut}
        return out

    def _timers(self, now: int) -> list[dict]:
        out = []
        for lid, lfa in self.lfas.items():
            out += self._send(lid, lfa.on_time(now), now)
        for h in self.homes.values():
            h.poll(now)
        if self.dso is not None:
            self.dso.measure(now, self.meters, self.p_trafo, meter_time=now - self.meter_lag,
                             loading=max(self.trafo_loading.values()) if self.trafo_loading else None)
            out += self._send(self.dso.id, self.dso.on_time(now), now)
            stop = self.end if self.stop is None else self.stop
            if stop is not None and now + self.slot_ms >= stop:  # last slot of the run
                out += self._send(self.dso.id, self.dso.settle_all(now), now)
        return out

    # ------------------------------------------------------------------ central mode and reference
    def _central(self, now: int) -> None:
        for district, hids in self.district_homes.items():
            lfa = self.lfas.get(f"lfa.{district}")
            homes = [self.homes[hid] for hid in hids]
            for hid, h in zip(hids, homes):
                h.prepare(f"c{now}", now, now, self.state.get(hid, {}))
            for h, cols in zip(homes, self._homes_at_once([h.plan for h in homes])):
                h.send_plan(cols)
                h.dispatched, h.deadline = True, None
            if lfa is None:
                continue
            t = time.perf_counter()
            dp = lfa._district_part(now)
            res = solve_central([self.homes[h].model for h in hids], dp, backend=self.backend)
            self.stats["central_s"] += time.perf_counter() - t
            for hid in hids:
                self.homes[hid]._activate(res.plans[hid], now, "central")
            lfa.kpi.update(plan_cost=res.obj, rounds=0, gap=0.0)
            self.events[lfa.id].append({"kind": "central", "agent": lfa.id, "t": int(now), "obj": res.obj,
                                        "seconds": res.seconds})
            if self.dso is not None:
                self.dso.reports[district] = {"t0": int(now), "D": res.D, "members": list(hids),
                                              "slot_s": self.slot_s}

    def _reference(self, lfa: LFAAgent, ev: dict) -> None:
        """Gap of the plan the negotiation dispatched to that negotiation's central optimum: € and % of
        max(|optimum|, gross value of the households' planned energy flows at their tariff).

        Every negotiation counts: members without a dispatched share (no plan arrived, or not in the
        master solution) are evaluated with the plan they fall back to (home_agent.py). A negotiation
        is ``complete`` when every member replied, ``partial`` otherwise, ``failed`` when a member never
        started it (its start message was lost): its problem is then not known and it has no gap."""
        neg = lfa.last
        if neg is None:
            return
        t = time.perf_counter()
        homes = [self.homes[m] for m in lfa.members if m in self.homes]
        status = "complete" if len(neg.known) >= len(neg.members) else "partial"
        ev["status"] = status
        if len(homes) != len(lfa.members) or any(h.neg != neg.id or not h.plans for h in homes):
            ev["status"] = "failed"
            lfa.kpi["gap_central"] = None
            return
        dp = lfa._district_part(neg.t0)
        models = [h.model for h in homes]
        clp = central_lp(models, dp)
        ahead = self._ahead.pop(lfa.id, None)
        if ahead is not None and ahead[0] == neg.id and ahead[1].same_as(clp):
            sol = ahead[2].result()  # the same LP, solved while the negotiation ran
            self.stats["reference_ahead"] += 1
        else:
            if ahead is not None:
                ahead[2].cancel()
            sol = solve_once(*clp.arrays(), backend=self.backend)
        res = central_result(clp, models, dp, sol, time.perf_counter() - t)
        cost, D = 0.0, np.zeros(self.K)
        for h in homes:
            plan = self._dispatched_plan(h, neg.sol.w.get(h.id))
            cost += plan.cost
            D += plan.p
        dispatched = cost + dp.value(D)
        self.stats["central_s"] += time.perf_counter() - t
        # relative to the money the plan moves, not to the objective alone: a district whose PV about
        # balances its load has an objective near 0 € and a relative gap without meaning
        m0, sm = lfa.clock.local_min(neg.t0), lfa.slot_s / 60.0
        pi_i, pi_e = lfa.tariff.import_prices(m0, self.K, sm, lfa.clock), lfa.tariff.export_prices(m0, self.K, sm)
        P = np.array([pl.p for pl in res.plans.values()])
        gross = lfa.dt * float((np.maximum(P, 0) @ pi_i).sum() + (np.maximum(-P, 0) @ pi_e).sum())
        gap = (dispatched - res.obj) / max(abs(res.obj), gross, 1e-9) * 100.0
        lfa.kpi["gap_central"] = gap
        lfa.kpi["central_cost"] = res.obj
        ev.update(central=res.obj, dispatched=dispatched, gross=gross, gap_central_pct=gap,
                  gap_central_eur=dispatched - res.obj)

    def _solve_ahead(self, lfa: LFAAgent, neg_id: str, t0: int) -> None:
        """Start the central reference of negotiation *neg_id* in a worker thread. ``_reference`` uses
        it only if the LP it assembles at the end is exactly this one (a flex order during the
        negotiation changes the district part, and then it solves again), so the gap is the same. Only
        once every member has begun it (a scheduled one at once, an announced one when the last
        ``start`` message has arrived)."""
        homes = [self.homes.get(m) for m in lfa.members]
        if not homes or any(h is None or h.neg != neg_id for h in homes):
            return
        old = self._ahead.pop(lfa.id, None)
        if old is not None:
            old[2].cancel()
        clp = central_lp([h.model for h in homes], lfa._district_part(t0))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-reference")
        fut: Future = self._pool.submit(solve_once, *clp.arrays(), backend=self.backend)
        self._ahead[lfa.id] = (neg_id, clp, fut)

    def close(self) -> None:
        """Stop the worker threads (a solve still running is waited for)."""
        for pool in (self._pool, self._home_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._home_pool = None
        self._ahead.clear()

    @staticmethod
    def _dispatched_plan(home: HomeAgent, pairs):
        """The plan a home follows after the dispatch *pairs* (tag, weight), or its fallback plan."""
        pairs = [(t, w) for t, w in (pairs or []) if w > 1e-9]
        if pairs and all(t in home.plans for t, _ in pairs):
            return home.model.combine([home.plans[t] for t, _ in pairs], [w for _, w in pairs])
        return home._fallback_plan()

    # ------------------------------------------------------------------ outputs
    def home_outputs(self, district_ids: list[str], now: int) -> dict[str, dict]:
        key = (id(district_ids), (now - self.grid0) // self.slot_ms, self.version)
        hit = self._out_cache.get(id(district_ids))
        if hit is not None and hit[0] == key:
            return hit[1]
        out = self._home_outputs(district_ids, now)
        self._out_cache[id(district_ids)] = (key, out)
        return out

    def _home_outputs(self, district_ids: list[str], now: int) -> dict[str, dict]:
        out: dict[str, dict] = defaultdict(dict)
        if self.mode == "none":
            return out
        for hid in district_ids:
            h = self.homes[hid]
            sp = h.setpoints(now)
            for k, v in sp.items():
                out[k][hid] = v
            if h.active is not None:
                out["plan_cost"][hid] = float(h.active.cost)
                pp = h.planned_power(now)
                if pp is not None:
                    out["P_plan"][hid] = pp
            out["plan_src"][hid] = h.active_src
        return out

    def lfa_outputs(self, lid: str, now: int) -> dict:
        lfa = self.lfas[lid]
        out: dict = {}
        k = lfa.kpi
        out["plan_cost"] = k.get("plan_cost")
        out["rounds"] = k.get("rounds")
        out["gap"] = k.get("gap_central")
        out["gap_dual"] = None if k.get("gap") is None else 100.0 * k["gap"]
        t = (now // self.slot_ms) * self.slot_ms
        off = 0.0
        for o in lfa.flex_offered:
            j = (t - o["t0"]) // self.slot_ms
            if 0 <= j < len(o["kw"]) and o["kw"][j] is not None:
                off += o["kw"][j]
        out["flex_offered"] = off
        ordd = 0.0
        for o in lfa.orders:
            j = (t - o.t0) // o.slot_ms
            if 0 <= j < len(o.kw):
                ordd += float(o.kw[j])
        out["flex_ordered"] = ordd
        neg = lfa.last
        if neg is not None and neg.sol is not None:
            j = (t - neg.t0) // self.slot_ms
            if 0 <= j < self.K:
                out["P_plan"] = float(neg.sol.D[j])
        return out
