"""MAS simulator (mosaik-api-v3, hybrid): home agents, local flexibility aggregators and the DSO agent.

All agents live in this one simulator, but they exchange messages only through ``outbox`` → telecom
→ ``inbox`` (or an internal JSON loopback with ``loopback=True`` when there is no telecom). The
negotiation and the USEF flexibility cycle are described in lfa.py and dso.py, the home problem in
home_lp.py, the centralised reference in central.py.

init params: ``time_resolution`` (0.001), ``start`` (ISO-8601 with timezone, as the households),
``seed`` (the household simulator's seed: forecasts and EV sessions come from its models),
``latitude``/``longitude``, ``K`` (slots per horizon, 96), ``slot_s`` (900), ``replan_s`` (900,
a multiple of ``slot_s``), ``mode`` (``mas`` | ``central`` | ``none``), ``loopback`` (False),
``reference`` (False: when True every negotiation is also solved centrally and ``gap`` reported),
``forecast_noise`` (0.0), ``end`` (tick of the end of the run: the DSO settles every open order at
the last step before it), ``tie_break`` (€/kWh, 0.0: off) and ``tie_break_seed`` (every planner's
tariff ``Tariff.with_tie_break``, a draw per home and per aggregator).

Models (one entity each; attributes are mappings keyed by agent or household id):

``HomeAgents(district, households=[HouseholdSpec dicts], tariff={...}, fallback_ms=120000,
prox_sigma=0.02, hold_sigma=0.1)`` — the home agents of one district (agent id = household id).
  inputs (non-trigger, merged over all sources, keyed by household id): ``soc``, ``soc_ev``, ``T_in``
  (household states), ``flex`` (the household's flexibility envelope; preferred when connected),
  ``E_imp``, ``E_exp`` (meter registers, Wh; used by the DSO's settlement), ``P`` (ignored).
  outputs: ``P_bat_set``, ``P_ev_set``, ``P_hp_set``, ``pv_limit`` (kW, load convention; persistent),
  ``app_start`` ({hid: {appliance: tick}}), ``plan_cost`` (€ of the followed plan over its horizon),
  ``P_plan`` (planned net kW now), ``plan_src`` (lfa | own | fallback | central).

``LFA(district, members=None, objective={...DistrictObjective}, tariff={...}, tol=0.01,
max_rounds=10, round_timeout_ms=5000, neg_timeout_ms=60000, smoothing=0.3, prox_sigma=0.02,
stall_tol=0.001, offer_rounds=4)`` — agent id ``lfa.<district>``; ``members`` default: all homes of
the district. outputs (keyed by LFA id): ``plan_cost`` (€, upper bound of the dispatched plan),
``rounds``, ``gap`` (% MAS vs central optimum, only with ``reference``), ``gap_dual`` (% certified
Lagrangian gap, None when not every household answered), ``flex_offered``, ``flex_ordered``
(kW in the current slot), ``P_plan`` (planned district kW now).

``DSO(districts=[...], trafo_limit_kw=kW | {district|"total": kW} or trafo_limit_pct=%, trafo_map={trafo
name: district|"total"}, lookahead_slots=8, lead_slots=1, margin=0.0, price_max=0.30, penalty=0.60,
offer_timeout_ms=60000)`` — agent id ``dso``. inputs: ``P_trafo`` (kW per transformer name),
``trafo_loading`` (% per transformer, used with ``trafo_limit_pct``), ``E_imp``/``E_exp``. outputs (key
``dso``): ``flex_requested``, ``flex_ordered``, ``flex_delivered`` (kW, current/last slot), ``P_forecast``
({scope: kW}).

Every model: input ``inbox`` (trigger; {telecom_full_id: {agent_id: [msg]}}), outputs ``outbox``
({agent_id: [msg]}, non-persistent) and ``events`` ({agent_id: [event dict]}, non-persistent:
negotiations, flex requests/offers/orders, settlements). Both are omitted at a step that has none,
so a step without messages does not trigger the telecom and one without events not the recorder
(mosaik 3.6 triggers a successor whenever the attribute is present, even empty).

Stepping: at every slot boundary (setpoints change), at every re-plan tick, at the agents' timers
(round timeouts, fallback deadlines, offer deadlines, settlements) and whenever messages arrive.
"""

from __future__ import annotations

import mosaik_api_v3

from simulators.devices.common import Clock
from simulators.household import validate_households

from .forecast import HouseholdKnowledge
from .host import AgentHost
from .tariff import DistrictObjective, Tariff
from simulators.vocabulary import SETPOINTS

COMMON = ["inbox", "outbox", "events"]
HOME_IN = ["soc", "soc_ev", "T_in", "flex", "E_imp", "E_exp", "P"]
HOME_OUT = [*SETPOINTS, "app_start", "plan_cost", "P_plan", "plan_src"]
LFA_IN = ["P_trafo", "E_imp", "E_exp"]
LFA_OUT = ["plan_cost", "rounds", "gap", "gap_dual", "flex_offered", "flex_ordered", "P_plan"]
DSO_IN = ["P_trafo", "trafo_loading", "E_imp", "E_exp"]
DSO_OUT = ["flex_requested", "flex_ordered", "flex_delivered", "P_forecast"]
ALL_IN = frozenset(HOME_IN + LFA_IN + DSO_IN)


def _model(params, ins, outs):
    return {"public": True, "params": params, "attrs": COMMON + ins + outs, "trigger": ["inbox"],
            "non-persistent": ["outbox", "events"]}


META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "HomeAgents": _model(["district", "households", "tariff", "fallback_ms", "prox_sigma", "hold_sigma"],
                             HOME_IN, HOME_OUT),
        "LFA": _model(["district", "members", "objective", "tariff", "tol", "max_rounds", "round_timeout_ms",
                       "neg_timeout_ms", "smoothing", "prox_sigma", "stall_tol", "offer_rounds"], LFA_IN, LFA_OUT),
        "DSO": _model(["districts", "trafo_limit_kw", "trafo_limit_pct", "trafo_map", "lookahead_slots", "lead_slots",
                       "margin", "price_max", "penalty", "offer_timeout_ms"], DSO_IN, DSO_OUT),
    },
}


class MASSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.host: AgentHost | None = None
        self.entities: dict[str, tuple[str, str]] = {}  # eid -> (model, district or "dso")
        self.pending_homes: list = []
        self.out: dict = {}
        self.step_events: dict = {}
        self.time = 0

    def init(self, sid, time_resolution=0.001, start="2026-01-01T00:00:00+01:00", seed=0, latitude=48.1,
             longitude=11.6, K=96, slot_s=900, replan_s=900, mode="mas", loopback=False, reference=False,
             forecast_noise=0.0, end=None, stop=None, backend=None, meter_lag_ms=0, tie_break=0.0, tie_break_seed=0):
        self.sid = sid
        self.clock = Clock(start, time_resolution)
        self.start, self.seed = start, int(seed)
        self.lat, self.lon = float(latitude), float(longitude)
        self.noise = float(forecast_noise)
        self.tie_break = (float(tie_break), int(tie_break_seed))
        self.host = AgentHost(self.clock, K=int(K), slot_s=int(slot_s), replan_s=int(replan_s), mode=mode,
                              loopback=bool(loopback), reference=bool(reference), backend=backend)
        if end is not None:
            self.host.end = int(end)
        if stop is not None:
            self.host.stop = int(stop)
        self.host.meter_lag = int(meter_lag_ms)
        self.homes_tariff: dict[str, Tariff] = {}
        return self.meta

    def create(self, num, model, **params):
        if num != 1:
            raise ValueError(f"{model}: create one entity per district / substation (num=1)")
        h = self.host
        if model == "HomeAgents":
            district = str(params["district"])
            specs = validate_households(params.get("households") or [])
            tariff = Tariff.model_validate(params.get("tariff") or {})
            know = HouseholdKnowledge(specs, self.start, self.seed, self.clock.time_resolution, self.lat, self.lon,
                                      self.noise)
            h.add_homes(district, specs, tariff, False, know.forecast,
                        fallback_ms=int(params.get("fallback_ms") or 120_000), tie_break=self.tie_break)
            for s in specs:
                a = h.homes[s.id]
                a.ev_model = know.ev_sessions
                if params.get("prox_sigma") is not None:
                    a.prox_sigma = float(params["prox_sigma"])
                if params.get("hold_sigma") is not None:
                    a.hold_sigma = float(params["hold_sigma"])
            self.homes_tariff[district] = tariff
            eid = f"HomeAgents-{district}"
            self.entities[eid] = ("HomeAgents", district)
        elif model == "LFA":
            district = str(params["district"])
            obj = DistrictObjective.model_validate(params.get("objective") or {})
            tariff = params.get("tariff")
            tariff = Tariff.model_validate(tariff) if tariff is not None else self.homes_tariff.get(district, Tariff())
            tariff = tariff.with_tie_break(*self.tie_break, f"lfa.{district}")
            kw = {k: params[k] for k in ("tol", "max_rounds", "round_timeout_ms", "neg_timeout_ms", "smoothing",
                                         "prox_sigma", "stall_tol", "offer_rounds") if params.get(k) is not None}
            h.add_lfa(district, params.get("members"), obj, tariff, **kw)
            eid = f"LFA-{district}"
            self.entities[eid] = ("LFA", district)
        elif model == "DSO":
            if h.dso is not None:
                raise ValueError("DSO: one DSO agent per MAS simulator")
            kw = {k: params[k] for k in ("lookahead_slots", "lead_slots", "margin", "price_max", "penalty",
                                         "offer_timeout_ms", "trafo_limit_pct") if params.get(k) is not None}
            h.add_dso(list(params.get("districts") or []), params.get("trafo_limit_kw"), params.get("trafo_map"),
                      **kw)
            eid = "DSO"
            self.entities[eid] = ("DSO", "dso")
        else:
            raise ValueError(f"unknown model {model!r} (HomeAgents, LFA, DSO)")
        return [{"eid": eid, "type": model}]

    def setup_done(self):
        h = self.host
        for lid, lfa in h.lfas.items():
            if not lfa.members:
                lfa.members = list(h.district_homes.get(lfa.district, []))
            for m in lfa.members:
                if m in h.homes:
                    h.homes[m].model.community = lfa.obj.community
        if h.dso is not None and not h.dso.districts:
            h.dso.districts = [lfa.district for lfa in h.lfas.values()]

    # ------------------------------------------------------------------ stepping
    def _read_inputs(self, inputs: dict) -> dict:
        """Merge the inputs. Delivered messages are used as they are: the telecom hands over fresh
        copies (or JSON decodes them, across processes) and nothing else receives them."""
        h = self.host
        inbox: dict = {}
        for _eid, attrs in inputs.items():
            for attr, sources in attrs.items():
                for val in sources.values():
                    if val is None:
                        continue
                    if attr == "inbox":
                        if isinstance(val, dict):
                            for dst, msgs in val.items():
                                lst = msgs if isinstance(msgs, list) else [msgs]
                                inbox.setdefault(dst, []).extend(lst)
                        elif isinstance(val, list):
                            for m in val:
                                inbox.setdefault(m.get("dst"), []).append(m)
                        continue
                    if not isinstance(val, dict):
                        continue
                    if attr in ("soc", "soc_ev", "T_in"):
                        for hid, v in val.items():
                            h.set_state(hid, attr, None if v is None else float(v))
                    elif attr == "flex":
                        for hid, v in val.items():
                            h.set_state(hid, "flex", dict(v) if isinstance(v, dict) else None)
                    elif attr == "E_imp" or attr == "E_exp":
                        h.set_meters(attr, val)
                    elif attr == "P_trafo":
                        for name, v in val.items():
                            if v is not None:
                                h.set_trafo(name, v)
                    elif attr == "trafo_loading":
                        h.trafo_loading.update({name: float(v) for name, v in val.items() if v is not None})
        return inbox

    def step(self, time, inputs, max_advance):
        self.time = int(time)
        inbox = self._read_inputs(inputs)
        outbox = self.host.step(self.time, inbox)
        self.out = outbox
        self.step_events = {k: list(v) for k, v in self.host.events.items() if v}
        self.host.events.clear()
        return self.host.next_time(self.time)

    def finalize(self):
        if self.host is not None:
            self.host.close()

    def get_data(self, outputs):
        h = self.host
        data = {}
        for eid, attrs in outputs.items():
            model, district = self.entities[eid]
            if model == "HomeAgents":
                ids = h.district_homes.get(district, [])
                agents = set(ids)
                vals = h.home_outputs(ids, self.time)
            elif model == "LFA":
                lid = f"lfa.{district}"
                agents = {lid}
                vals = {k: {lid: v} for k, v in h.lfa_outputs(lid, self.time).items()}
            else:
                agents = {h.dso.id} if h.dso is not None else set()
                vals = {}
                if h.dso is not None:
                    k = h.dso.slot_kpis(self.time)
                    vals = {a: {h.dso.id: v} for a, v in k.items()}
                    vals["P_forecast"] = dict(h.dso.forecast_kw)
            d = {}
            for attr in attrs:
                if attr == "outbox":
                    box = {a: msgs for a, msgs in self.out.items() if a in agents}
                    if box:  # omitted when empty: a present output triggers the telecom
                        d[attr] = box
                elif attr == "events":
                    events = {a: ev for a, ev in self.step_events.items() if a in agents}
                    if events:  # omitted when empty: a present output triggers the recorder
                        d[attr] = events
                elif attr == "inbox" or attr in ALL_IN and attr not in vals:
                    d[attr] = {}
                else:
                    d[attr] = vals.get(attr, {})
            data[eid] = d
        return data


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(MASSim())
