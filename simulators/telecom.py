"""Telecom simulator (mosaik-api-v3): carries agent messages with per-technology delay, jitter,
loss and shared-medium queueing. The network model is :mod:`simulators.telecom_model` (SimPy),
the technology table :mod:`simulators.telecom_tech` (values and sources).

Model ``Telecom`` (one entity per network, eid ``"telecom"``, then ``"telecom_1"`` …)
    params: ``endpoints`` {agent_id or fnmatch pattern: tech}, ``default`` tech (``"lte"``),
    ``overrides`` {tech: {field: value}} (also new techs with ``base``), ``domains``
    {name: [ids/patterns]} or {name: {"members": [...], field: value}}, ``max_retries`` (overrides
    every technology), ``readings`` (see below; ``None`` = defaults), ``quantum_ms`` (round
    delivery times up to a multiple of this, default 0 = exact; trades <= 1 quantum of latency for
    far fewer mosaik steps with large populations).
init params: ``time_resolution`` (s per tick, 0.001 -> tick = 1 ms), ``start`` (ignored, for
    uniformity), ``seed`` (int), ``delivery_shift`` (default 1), ``lookahead`` (default True).

Type ``hybrid`` (not ``event-based``): mosaik 3.6 forbids persistent outputs for event-based
simulators, and the cumulative counters below are persistent so that a time-based recorder can
pull them at any step. Behaviour is event-based: input ``outbox`` triggers (``readings`` is sampled, see below),
the simulator steps when messages arrive and at the times it requests (``step`` returns the next
one, or ``None`` when nothing is in flight). Like every hybrid simulator it also steps once at 0.

Inputs (``outbox`` triggers a step; ``readings`` is sampled at the steps the telecom takes anyway and
at every reading interval ``every``, so meters publishing each minute do not wake it each minute)
    ``outbox``   {src_full_id: {agent_id: [msg, ...]}} (also accepted: a list of msgs or one msg);
                 every source is merged; messages are copied on arrival (mosaik reuses inputs).
    ``readings`` {src_full_id: {device_id: value}} — optional: meter readings carried as messages
                 ``{"id": "rd:<dev>:<tick>", "src": dev, "dst": "lfa.<district>", "kind":
                 "reading", "body": {"value": value}, "bytes": 48}``; model param ``readings``
                 ``{"dst": "lfa.{district}", "kind": "reading", "bytes": 48, "every": 0}`` changes the
                 template (``{district}``, ``{home}``, ``{id}`` are filled in); ``every`` (ticks) sends
                 at most one reading per device per interval (0: one per input).
Outputs
    ``inbox``    {dst_agent_id: [msg, ...]} non-persistent: the messages arriving at the consumer,
                 each a copy of the sent msg plus ``"delivered"`` (tick) and ``"latency_ms"``
                 (``(delivered - sent) * tick_ms``). Omitted when empty (so it triggers nobody).
    ``events``   {"telecom" (= eid): [record, ...]} non-persistent: one record per message when
                 its fate is known: ``{id, src, dst, kind, bytes, sent, delivered|None, lost,
                 latency_ms|None, path, retries, queue_ms}``.
    ``sent``, ``lost``, ``bytes_sent`` per sender; ``delivered`` per receiver: cumulative floats
                 (persistent, every agent seen so far, 0.0 included).
    ``latency_ms`` {dst: mean latency (ms) of the messages delivered at this step} (persistent
                 attribute, but only the destinations served at this step are present).
    ``latency_mean_ms`` {dst: mean latency since the start} (persistent).

Timing convention (``delivery_shift``)
    The lead connects ``MAS.outbox -> Telecom.outbox`` (plain) and ``Telecom.inbox -> MAS.inbox``
    with ``time_shifted=True``: data output at step t reaches the MAS at t + 1. So a message due at
    tick d is output at the step d - delivery_shift (default 1) and carries ``delivered = d``. A
    message sent at t is due at d >= t + 1, so it may be output in the very step that received it.
    Set ``delivery_shift=0`` if inbox is connected without a time shift (then the cycle must be
    broken elsewhere). If mosaik ever steps the simulator late, ``delivered`` is the actual arrival
    tick (step time + shift), never earlier.

Causality / ``max_advance``
    At step t the network is run up to t + delivery_shift (needed to know what is due). With
    ``lookahead`` it is run further, up to mosaik's ``max_advance`` (no input can arrive before)
    but never past the first pending delivery - shift + 1 (the earliest time a reply to that
    delivery could come back through the MAS), which removes steps that would output nothing.
"""

from __future__ import annotations

import math
from typing import Any

import mosaik_api_v3

from simulators.telecom_model import TelecomModel, district_of, home_of, iter_messages, json_copy

NON_PERSISTENT = ["inbox", "events"]
PERSISTENT = ["sent", "delivered", "lost", "bytes_sent", "latency_ms", "latency_mean_ms"]
INPUTS = ["outbox", "readings"]

META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Telecom": {
            "public": True,
            "params": ["endpoints", "default", "overrides", "domains", "max_retries", "readings",
                       "quantum_ms"],
            "attrs": INPUTS + NON_PERSISTENT + PERSISTENT,
            "trigger": ["outbox"],  # readings are sampled: the telecom steps when the next is due
            "non-persistent": NON_PERSISTENT,
        }
    },
    "extra_methods": ["network_stats"],
}

# 48 bytes per reading: an assumption (one register value with its id and time stamp), not a measured frame
READINGS_DEFAULT = {"dst": "lfa.{district}", "kind": "reading", "bytes": 48, "every": 0}


class _Entity:
    __slots__ = ("eid", "model", "readings", "last_reading", "readings_due", "reading_dst", "inbox", "events",
                 "lat_step")

    def __init__(self, eid: str, model: TelecomModel, readings: dict[str, Any]):
        self.eid = eid
        self.model = model
        self.readings = readings
        self.last_reading: dict[str, int] = {}
        self.readings_due = 0  # with ``every``: no device is due before this tick
        self.reading_dst: dict[str, str] = {}  # destination of each device's readings (from the template)
        self.inbox: dict[str, list] = {}
        self.events: list[dict] = []
        self.lat_step: dict[str, float] = {}


class TelecomSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.entities: dict[str, _Entity] = {}
        self.tick_ms = 1.0
        self.seed = 0
        self.shift = 1
        self.use_lookahead = True
        self.time = 0

    def init(self, sid, time_resolution=0.001, start=None, seed=0, delivery_shift=1,
             lookahead=True, **_ignored):
        self.sid = sid
        self.tick_ms = float(time_resolution) * 1000.0
        self.seed = int(seed or 0)
        self.shift = int(delivery_shift)
        if self.shift < 0:
            raise ValueError("delivery_shift must be >= 0")
        self.use_lookahead = bool(lookahead)
        return self.meta

    def create(self, num, model, endpoints=None, default="lte", overrides=None, domains=None,
               max_retries=None, readings=None, quantum_ms=0.0):
        out = []
        for _ in range(num):
            eid = "telecom" if not self.entities else f"telecom_{len(self.entities)}"
            tm = TelecomModel(endpoints=endpoints, default=default, overrides=overrides,
                              domains=domains, seed=self.seed, tick_ms=self.tick_ms,
                              max_retries=max_retries, quantum_ms=quantum_ms)
            self.entities[eid] = _Entity(eid, tm, {**READINGS_DEFAULT, **(readings or {})})
            out.append({"eid": eid, "type": model})
        return out

    # -- stepping --------------------------------------------------------------------------------
    def step(self, time, inputs, max_advance):
        self.time = time
        due = time + self.shift
        nxt = math.inf
        for eid, ent in self.entities.items():
            m = ent.model
            m.advance(time)
            attrs = inputs.get(eid, {})
            for _src_full, value in (attrs.get("outbox") or {}).items():
                for msg in iter_messages(value):
                    self._send(ent, msg, time)
            if time >= ent.readings_due:
                for _src_full, value in (attrs.get("readings") or {}).items():
                    if isinstance(value, dict):
                        for dev, val in value.items():
                            self._send_reading(ent, str(dev), val, time)
                every = int(ent.readings.get("every") or 0)
                if every and ent.last_reading:
                    ent.readings_due = min(ent.last_reading.values()) + every
            m.advance(due)
            if self.use_lookahead:
                m.lookahead(max(max_advance if max_advance is not None else due, due), self.shift)
            delivered, lost = m.pop_ready(due, at=due)
            ent.inbox, ent.events, ent.lat_step = {}, [], {}
            lat_sum: dict[str, float] = {}
            for mm in delivered:
                out = mm.payload
                lat = m.latency_ms(mm)
                out["delivered"] = mm.tick
                out["latency_ms"] = lat
                ent.inbox.setdefault(mm.dst, []).append(out)
                lat_sum[mm.dst] = lat_sum.get(mm.dst, 0.0) + lat
                ent.events.append(m.record(mm))
                mm.payload = None  # handed over: do not keep a reference
            for mm in lost:
                ent.events.append(m.record(mm))
                mm.payload = None
            ent.lat_step = {d: s / len(ent.inbox[d]) for d, s in lat_sum.items()}
            nxt = min(nxt, m.next_ready_tick() - self.shift, m.next_event_tick() - self.shift)
            if ent.readings_due > time:  # sample the meters again when the next reading is due
                nxt = min(nxt, ent.readings_due)
        if nxt == math.inf:
            return None
        return int(max(nxt, time + 1))

    def _send(self, ent: _Entity, msg: Any, time: int) -> None:
        if isinstance(msg, dict):
            payload = dict(msg)
            if "body" in payload:
                payload["body"] = json_copy(payload["body"])
            if not isinstance(payload.get("sent"), int):
                payload["sent"] = time
        else:  # malformed: still recorded (as lost, no destination)
            payload = {"body": json_copy(msg), "sent": time}
        rec = ent.model.send(payload, time, payload=payload)
        if "id" not in payload and rec is not None:
            payload["id"] = rec.mid

    def _send_reading(self, ent: _Entity, dev: str, value: Any, time: int) -> None:
        cfg = ent.readings
        every = int(cfg.get("every") or 0)  # ticks between two readings of one device (0 = each input)
        if every and time - ent.last_reading.get(dev, -every) < every:
            return
        ent.last_reading[dev] = time
        dst = ent.reading_dst.get(dev)
        if dst is None:
            try:
                dst = str(cfg["dst"]).format(district=district_of(dev), home=home_of(dev), id=dev)
            except (KeyError, IndexError, ValueError):
                dst = f"lfa.{district_of(dev)}"
            ent.reading_dst[dev] = dst
        msg = {"id": f"rd:{dev}:{time}", "src": dev, "dst": dst, "kind": cfg.get("kind", "reading"),
               "body": {"value": json_copy(value)}, "bytes": int(cfg.get("bytes", READINGS_DEFAULT["bytes"])),
               "sent": time}
        ent.model.send(msg, time, payload=msg)

    # -- outputs ---------------------------------------------------------------------------------
    def get_data(self, outputs):
        data: dict[str, dict[str, Any]] = {}
        for eid, attrs in outputs.items():
            ent = self.entities[eid]
            m = ent.model
            d: dict[str, Any] = {}
            for attr in attrs:
                if attr == "inbox":
                    if ent.inbox:
                        d["inbox"] = ent.inbox
                elif attr == "events":
                    if ent.events:
                        d["events"] = {eid: ent.events}
                elif attr in ("sent", "delivered", "lost", "bytes_sent", "latency_mean_ms"):
                    d[attr] = dict(getattr(m, attr))  # copy: mosaik caches persistent outputs
                elif attr == "latency_ms":
                    d[attr] = dict(ent.lat_step)
                elif attr in INPUTS:
                    continue
                else:
                    raise ValueError(f"unknown attribute {attr!r}")
            data[eid] = d
        return data

    def network_stats(self) -> dict[str, Any]:
        """Extra method: per-domain medium usage and in-flight counts (for reports)."""
        return {eid: {"domains": e.model.domain_stats(), "in_flight": e.model.in_flight,
                      "late_submissions": e.model.late_submissions,
                      "late_deliveries": e.model.late_deliveries}
                for eid, e in self.entities.items()}


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(TelecomSim())
