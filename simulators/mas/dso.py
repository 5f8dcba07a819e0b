"""DSO agent: congestion forecast and USEF-style flexibility trading with the LFAs of a substation.

Cycle (all by messages except the meter readings, which are measurements):

1. Forecast. Every LFA ``report``s its dispatched district plan (kW per slot). At each slot boundary
   the DSO sums the plans of its districts for the next ``lookahead_slots`` slots (after
   ``lead_slots``), corrects them by the measured-minus-planned transformer power of the present
   slot (exponentially smoothed bias, when ``P_trafo`` is connected) and compares them with the
   limits: ``trafo_limit_kw`` as a number is the substation transformer (sum of all districts), as
   a mapping ``{district: kW}`` per district feeder (key ``"total"`` for the substation as well).
   ``trafo_limit_pct`` instead defends a loading of the substation transformer as the grid reports it
   (worst terminal current, % of rated): the kW limit of a slot is that loading times the lowest kW
   per % of loading measured at the slot boundaries of the last 25 h, within an hour of the slot's
   time of day, where the loading was at least half the limit (without such a sample: the lowest of
   all). On an unbalanced grid the worst phase reaches the limit well below the kW a balanced load
   would need (kerber_vorstadt_1 three-phase: 48 % of 630 kVA at 191-237 kW, not 300 kW), and the
   ratio follows the time of day: a smoothed value missed the evening's unbalance, and the lowest of
   the whole day came from midday PV on some phases (2.5 kW/% against 3.3-4.0 in the evening).
2. FlexRequest: for a congested window the DSO asks the LFAs concerned for the reduction (kW per slot
   above ``limit·(1 − margin)``, less what is already ordered), with its ``price_max``.
3. FlexOffer: each LFA answers what its households can reduce, at which price, with its baseline.
4. FlexOrder: when all offers are in (or after ``offer_timeout_ms``) the DSO accepts offers in merit
   order (cheapest first, pay-as-bid, partial acceptance) up to the need per slot.
5. Activation: the LFA re-plans with the ordered cap (lfa.py).
6. Settlement: after the order's last slot (+ ``settle_delay_ms``) the DSO measures the district's
   energy per slot from the smart meters' ``E_imp``/``E_exp`` registers of the LFA's members
   (differences of readings at slot boundaries), delivered = baseline − measured (≥ 0), pays
   price × min(delivered, ordered) and charges ``penalty`` × shortfall. Every order is settled:
   orders still open when the run stops are settled with the data available (``settle_all``,
   ``partial``); the slots the run never reached or whose readings had not come are cancelled (neither
   paid nor penalised, ``cancelled_kwh``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators.devices.common import Clock

from .messages import arr, floats

DAY_MS = 86_400_000
# the kW-per-% samples of a loading limit (trafo_limit_pct): those within TOD_MS of a slot's time of day,
# kept for a day and TOD_MS. ±1 h: modelling choice (the evening's ratio differs from midday's), not from a source
TOD_MS = 3_600_000


class DSOAgent:
    # Defaults (the scenario's DSOConfig overrides them). Message flow after USEF Foundation (2015), "USEF: The
    # Framework Explained" (FlexRequest / FlexOffer / FlexOrder, settlement against a baseline); USEF fixes no
    # numbers. slot_s 900: the 15-min imbalance settlement period of EU 2017/2195 (EB GL) Art. 53. All other
    # numbers are modelling choices, not from a source, to be set per study: lookahead 8 slots (2 h), lead 1
    # slot, margin 0, price_max 0.30 €/kWh (a cap below the default import price), penalty 0.60 €/kWh
    # (2 × price_max: a shortfall costs more than delivery earns), offer timeout 60 s, settle delay 0,
    # min_request_kw 0.5 (ignore noise-sized congestion), bias_smoothing 0.3 (exponential smoothing weight of the
    # forecast bias).
    def __init__(self, districts: list[str], trafo_limit_kw=None, slot_s: int = 900, clock: Clock | None = None,
                 lookahead_slots: int = 8, lead_slots: int = 1, margin: float = 0.0, price_max: float = 0.30,
                 penalty: float = 0.60, offer_timeout_ms: int = 60_000, settle_delay_ms: int = 0,
                 min_request_kw: float = 0.5, bias_smoothing: float = 0.3, agent_id: str = "dso",
                 trafo_limit_pct: float | None = None):
        self.id = agent_id
        self.districts = list(districts)
        if (trafo_limit_kw is None) == (trafo_limit_pct is None):
            raise ValueError("DSO: give trafo_limit_kw or trafo_limit_pct (one of them)")
        self.limit_pct = None if trafo_limit_pct is None else float(trafo_limit_pct)
        self.kw_per_pct: dict[int, float] = {}  # tick -> measured transformer kW per % of loading (limit_pct)
        if self.limit_pct is not None:
            self.limits = {"total": np.inf}  # until the loading has been measured near the limit
        elif isinstance(trafo_limit_kw, dict):
            self.limits = {str(k): float(v) for k, v in trafo_limit_kw.items()}
        else:
            self.limits = {"total": float(trafo_limit_kw)}
        self.slot_s = int(slot_s)
        self.clock = clock or Clock("2026-01-01T00:00:00+01:00")
        self.slot_ms = int(round(self.slot_s / self.clock.time_resolution))
        self.dt = self.slot_s / 3600.0
        self.lookahead, self.lead = int(lookahead_slots), int(lead_slots)
        self.margin = float(margin)
        self.price_max, self.penalty = float(price_max), float(penalty)
        self.offer_timeout = int(offer_timeout_ms)
        self.settle_delay = int(settle_delay_ms)
        self.min_kw = float(min_request_kw)
        self.beta = float(bias_smoothing)
        self.reports: dict[str, dict] = {}  # district -> {t0, D, members}
        self.requests: dict[str, dict] = {}
        self.orders: dict[str, dict] = {}
        self.ordered: dict[tuple[str, int], float] = {}  # (scope, slot tick) -> kW ordered
        self.requested: dict[tuple[str, int], float] = {}
        self.snap: dict[int, dict[str, float]] = {}  # slot tick -> {hid: net Wh}
        self.bias: dict[str, float] = {}
        self.events: list[dict] = []
        self.seq = 0
        self.forecast_kw: dict[str, float] = {}
        self._checked: int | None = None
        self.end: int | None = None  # end of the planned span (tick): no flexibility is requested beyond it

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def lfa_of(district: str) -> str:
        return f"lfa.{district}"

    def _plan_at(self, district: str, tick: int) -> float | None:
        r = self.reports.get(district)
        if r is None:
            return None
        k = (tick - r["t0"]) // self.slot_ms
        if 0 <= k < len(r["D"]):
            v = r["D"][k]
            return None if not np.isfinite(v) else float(v)
        return None

    def _scope_districts(self, scope: str) -> list[str]:
        return self.districts if scope == "total" else [scope]

    def forecast(self, scope: str, tick: int) -> float | None:
        vals = [self._plan_at(d, tick) for d in self._scope_districts(scope)]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return float(sum(vals)) + self.bias.get(scope, 0.0)

    # ------------------------------------------------------------------ inputs
    def measure(self, now: int, meters: dict[str, Sequence[float | None]] | None, p_trafo: dict | None,
                meter_time: int | None = None, loading: float | None = None) -> None:
        """Meter registers {hid: (E_imp Wh, E_exp Wh)} as they stood at tick ``meter_time`` (default
        ``now``; a pair with a None, a register not read yet, is left out), measured transformer
        power {district|"total": kW} and the substation transformer's loading (%, with
        ``trafo_limit_pct``). Registers are snapshotted at slot boundaries of the instant they
        describe, so a slot's energy is measured over exactly it."""
        meter_time = int(now if meter_time is None else meter_time)
        if meters and meter_time % self.slot_ms == 0 and meter_time >= 0:
            snap = {h: float(ei) - float(ee) for h, (ei, ee) in meters.items() if ei is not None and ee is not None}
            if snap:
                self.snap[meter_time] = snap
                if len(self.snap) > 400:
                    for t in sorted(self.snap)[:100]:
                        del self.snap[t]
        if p_trafo and now % self.slot_ms == 0:
            total = p_trafo.get("total")
            if total is None and all(d in p_trafo for d in self.districts):
                total = sum(p_trafo[d] for d in self.districts)
            if self.limit_pct is not None and loading is not None and total is not None and total > 0 \
                    and loading >= 0.5 * self.limit_pct:
                self.kw_per_pct[now] = float(total) / float(loading)
                for t in [t for t in self.kw_per_pct if t <= now - DAY_MS - TOD_MS]:
                    del self.kw_per_pct[t]
                self.limits["total"] = self.limit_pct * min(self.kw_per_pct.values())
            for scope in self.limits:
                meas = total if scope == "total" else p_trafo.get(scope)
                plan = self.forecast(scope, now)
                if meas is not None and plan is not None:
                    b = self.bias.get(scope, 0.0)
                    self.bias[scope] = (1 - self.beta) * b + self.beta * (float(meas) - (plan - b))

    # ------------------------------------------------------------------ messages
    def on_message(self, msg: dict, now: int) -> list:
        kind, body = msg["kind"], msg["body"]
        if kind == "report":
            d = msg["src"].split("lfa.", 1)[-1]
            self.reports[d] = {"t0": int(body["t0"]), "D": arr(body["D"]), "members": list(body.get("members", [])),
                               "slot_s": int(body.get("slot_s", self.slot_s))}
            return []
        if kind == "flex_offer":
            req = self.requests.get(body.get("req"))
            if req is None or req["status"] != "open":
                return []
            req["offers"][msg["src"]] = body
            self.events.append({"kind": "flex_offer", "agent": self.id, "t": int(now), "req": body["req"],
                                "offer": body.get("offer"), "lfa": msg["src"],
                                "kwh": float(np.nansum(arr(body["kw"])) * self.dt), "price": body.get("price")})
            if set(req["offers"]) >= set(req["lfas"]):
                return self._select(req, now)
        return []

    # ------------------------------------------------------------------ time-driven
    def on_time(self, now: int) -> list:
        out = []
        for req in list(self.requests.values()):
            if req["status"] == "open" and now >= req["deadline"]:
                out += self._select(req, now)
        if now % self.slot_ms == 0 and self._checked != now:
            self._checked = now
            out += self._check_congestion(now)
        for sc in self.limits:
            f = self.forecast(sc, now)
            if f is not None:
                self.forecast_kw[sc] = f
        for o in list(self.orders.values()):
            if o["status"] == "ordered" and self._due(o, now):
                out += self._settle(o, now)
        return out

    def next_time(self) -> int | None:
        ts = [r["deadline"] for r in self.requests.values() if r["status"] == "open"]
        for o in self.orders.values():
            if o["status"] == "ordered":  # settle at the end, or one slot later without meter data
                ts += [o["end"] + self.settle_delay, self._readings_by(o["end"])]
        return min(ts) if ts else None

    def limit_at(self, scope: str, t: int) -> float:
        """The kW limit of *scope* in the slot starting at *t*: with ``trafo_limit_pct`` the loading limit
        times the lowest kW per % measured within TOD_MS of t's time of day (else of all samples)."""
        if scope != "total" or self.limit_pct is None:
            return self.limits[scope]
        near = [v for s, v in self.kw_per_pct.items() if abs((t - s + DAY_MS // 2) % DAY_MS - DAY_MS // 2) <= TOD_MS]
        return self.limit_pct * min(near) if near else self.limits[scope]

    def _check_congestion(self, now: int) -> list:
        out = []
        first = now + self.lead * self.slot_ms
        for scope in self.limits:
            need = []
            for j in range(self.lookahead):
                t = first + j * self.slot_ms
                if self.end is not None and t + self.slot_ms > self.end:
                    break
                lim = self.limit_at(scope, t) * (1.0 - self.margin)
                f = self.forecast(scope, t)
                done = self.ordered.get((scope, t), 0.0) + self.requested.get((scope, t), 0.0)
                need.append(0.0 if f is None else max(0.0, f - lim - done))
            need = np.array(need)
            if need.size == 0 or need.max(initial=0.0) < self.min_kw:
                continue
            idx = np.flatnonzero(need >= self.min_kw)
            j0, j1 = int(idx[0]), int(idx[-1]) + 1
            kw = need[j0:j1]
            t0 = first + j0 * self.slot_ms
            self.seq += 1
            rid = f"{self.id}.r{self.seq}"
            lfas = [self.lfa_of(d) for d in self._scope_districts(scope) if d in self.reports]
            if not lfas:
                continue
            req = {"id": rid, "scope": scope, "t0": t0, "kw": kw, "lfas": lfas, "offers": {}, "status": "open",
                   "deadline": int(now) + self.offer_timeout, "created": int(now)}
            self.requests[rid] = req
            for j, v in enumerate(kw):
                key = (scope, t0 + j * self.slot_ms)
                self.requested[key] = self.requested.get(key, 0.0) + float(v)
            body = {"req": rid, "t0": int(t0), "slot_s": self.slot_s, "kw": floats(kw, 4),
                    "price_max": self.price_max, "deadline": req["deadline"]}
            out += [(lfa, "flex_request", body) for lfa in lfas]
            self.events.append({"kind": "flex_request", "agent": self.id, "t": int(now), "req": rid, "scope": scope,
                                "t0": int(t0), "slots": len(kw), "kwh": float(kw.sum() * self.dt)})
        return out

    def _select(self, req: dict, now: int) -> list:
        req["status"] = "closed"
        kw = np.asarray(req["kw"], float)
        n = len(kw)
        for j, v in enumerate(kw):  # the request no longer blocks new requests for these slots
            key = (req["scope"], req["t0"] + j * self.slot_ms)
            self.requested[key] = max(0.0, self.requested.get(key, 0.0) - float(v))
        remaining = kw.copy()
        offers = []
        for lfa, off in req["offers"].items():
            q = arr(off["kw"])[:n]
            q = np.r_[q, np.zeros(n - len(q))]
            price = off.get("price")
            offers.append((np.inf if price is None and q.sum() > 0 else (price or 0.0), lfa, off, np.nan_to_num(q)))
        offers.sort(key=lambda o: (o[0], o[1]))
        out = []
        for price, lfa, off, q in offers:
            if price > self.price_max:
                continue
            take = np.minimum(q, remaining)
            if take.sum() * self.dt < 1e-3:
                continue
            remaining -= take
            self.seq += 1
            oid = f"{self.id}.o{self.seq}"
            base = arr(off.get("baseline", []))[:n]
            order = {"id": oid, "lfa": lfa, "district": lfa.split("lfa.", 1)[-1], "req": req["id"],
                     "offer": off.get("offer"), "t0": req["t0"], "kw": take, "price": float(price),
                     "baseline": base, "end": req["t0"] + n * self.slot_ms, "status": "ordered", "scope": req["scope"]}
            self.orders[oid] = order
            for j, v in enumerate(take):
                key = (req["scope"], req["t0"] + j * self.slot_ms)
                self.ordered[key] = self.ordered.get(key, 0.0) + float(v)
            out.append((lfa, "flex_order", {"order": oid, "offer": off.get("offer"), "req": req["id"],
                                            "t0": int(req["t0"]), "slot_s": self.slot_s, "kw": floats(take, 4),
                                            "price": float(price), "penalty": self.penalty,
                                            "baseline": floats(base, 4)}))
            self.events.append({"kind": "flex_order", "agent": self.id, "t": int(now), "order": oid, "lfa": lfa,
                                "req": req["id"], "t0": int(req["t0"]), "kwh": float(take.sum() * self.dt),
                                "price": float(price), "baseline": floats(base, 4)})
        return out

    # ------------------------------------------------------------------ settlement
    def _members(self, order: dict) -> list[str]:
        r = self.reports.get(order["district"])
        return r["members"] if r else []

    def _readings_by(self, t: int) -> int:
        """By when the meter readings of instant *t* have come, if they come (one slot after it, + the
        settlement delay); later, a missing reading is missing."""
        return t + self.settle_delay + self.slot_ms

    def _due(self, order: dict, now: int) -> bool:
        """The order is settled now: its end (+ delay) has passed and its last readings are in or overdue."""
        return now >= order["end"] + self.settle_delay and (order["end"] in self.snap
                                                             or now >= self._readings_by(order["end"]))

    def _energy(self, members: list[str], t_a: int, t_b: int) -> float | None:
        a, b = self.snap.get(t_a), self.snap.get(t_b)
        if a is None or b is None:
            return None
        common = [h for h in members if h in a and h in b]
        if not common:
            return None
        return sum(b[h] - a[h] for h in common) / 1000.0

    def _settle(self, order: dict, now: int, partial: bool = False) -> list:
        members = self._members(order)
        n = len(order["kw"])
        delivered = np.zeros(n)
        measured = np.full(n, np.nan)
        ordered = np.asarray(order["kw"], float) * self.dt
        base = np.asarray(order["baseline"], float)
        base = np.r_[base, np.full(n - len(base), np.nan)] if len(base) < n else base
        missing = 0
        cancelled = 0.0
        for j in range(n):
            ta = order["t0"] + j * self.slot_ms
            e = self._energy(members, ta, ta + self.slot_ms)
            if e is None or not np.isfinite(base[j]):
                missing += 1
                # at the end of the run, a slot not reached or whose readings could still come is
                # cancelled, not a shortfall
                if partial and now < self._readings_by(ta + self.slot_ms):
                    cancelled += float(ordered[j])
                    ordered[j] = 0.0
                continue
            measured[j] = e
            delivered[j] = max(0.0, base[j] * self.dt - e)
        paid_kwh = np.minimum(delivered, ordered)
        short = np.maximum(ordered - delivered, 0.0)
        payment = float(order["price"] * paid_kwh.sum())
        pen = float(self.penalty * short.sum())
        order.update(status="settled", delivered=delivered, measured=measured, payment=payment, penalty_paid=pen,
                     settled_at=int(now), missing_slots=missing)
        ev = {"kind": "settlement", "agent": self.id, "t": int(now), "t0": int(order["t0"]), "order": order["id"],
              "lfa": order["lfa"],
              "ordered_kwh": float(ordered.sum()), "delivered_kwh": float(delivered.sum()),
              "payment": payment, "penalty": pen, "missing_slots": missing, "partial": bool(partial),
              "cancelled_kwh": cancelled, "slot_ms": int(self.slot_ms),
              # kWh per slot, None where the slot had no meter data (missing_slots)
              "delivered_slots": [None if np.isnan(m) else float(d) for d, m in zip(delivered, measured)],
              # the terms per slot, so that a window's settlement counts only its own slots
              "ordered_slots": [float(x) for x in ordered], "price": float(order["price"]),
              "penalty_rate": float(self.penalty)}
        self.events.append(ev)
        body = {k: ev[k] for k in ("order", "ordered_kwh", "delivered_kwh", "payment", "penalty")}
        return [(order["lfa"], "settlement", body)]

    def settle_all(self, now: int) -> list:
        """Settle every open order with the data there is (end of the run): partially when it would
        not be settled yet (on_time's condition)."""
        out = []
        for o in self.orders.values():
            if o["status"] == "ordered":
                out += self._settle(o, now, partial=not self._due(o, now))
        return out

    # ------------------------------------------------------------------ KPIs
    def slot_kpis(self, now: int) -> dict:
        """kW requested / ordered for the present slot, kW delivered in the last completed slot (a live
        indicator, one slot late and 0 until the meters reported the slot's end; the delivered energy
        of a study is the settlements', ``delivered_slots``)."""
        t = (now // self.slot_ms) * self.slot_ms

        def at(items, tt):
            v = 0.0
            for r in items:
                j = (tt - r["t0"]) // self.slot_ms
                if 0 <= j < len(r["kw"]):
                    v += float(r["kw"][j])
            return v

        req = at(self.requests.values(), t)
        ordd = at(self.orders.values(), t)
        delv = 0.0
        prev = t - self.slot_ms
        for o in self.orders.values():
            if o["t0"] <= prev < o["end"]:
                j = (prev - o["t0"]) // self.slot_ms
                e = self._energy(self._members(o), prev, t)
                if e is not None and j < len(o["baseline"]) and np.isfinite(o["baseline"][j]):
                    delv += max(0.0, o["baseline"][j] - e / self.dt)
        return {"flex_requested": req, "flex_ordered": ordd, "flex_delivered": delv}
