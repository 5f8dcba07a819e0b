"""Agent messages: the only way MAS agents talk to each other.

A message is a JSON-safe dict (the telecom simulator's format)::

    {"id": "d1.h007#12", "src": "d1.h007", "dst": "lfa.d1", "kind": "plan",
     "body": {...}, "bytes": 412, "sent": 3600000}

``bytes`` is the size of the message on the wire: MessagePack (msgpack.org, a compact binary JSON)
with floats as IEEE single precision (7 significant digits: 1 W in 10 MW, 0.1 µ€ in 1 €/kWh). The
receiver gets exactly what that encoding carries (``Outbox.send`` replaces the body by its decoded
form), so the telecom model's sizes and the agents' numbers are those of one real encoding. Kinds and bodies (ticks are mosaik ticks, powers kW, prices €/kWh):

=============  ==========  =============================================================================
kind           direction   body
=============  ==========  =============================================================================
plan           home → LFA  neg, round, flex (bool), cols: [{tag, p: [K], cost}]
price          LFA → home  neg, round, lam: [K]
dispatch       LFA → home  neg, w: [[tag, weight], ...], lam: [K], t0
start          LFA → home  neg, t0  (a negotiation the LFA starts out of schedule, e.g. after an order)
report         LFA → DSO   neg, t0, slot_s, D: [K] (planned district net kW), members: [ids], cost
flex_request   DSO → LFA   req, t0, slot_s, kw: [n] (reduction wanted per slot), price_max, deadline
flex_offer     LFA → DSO   req, offer, t0, slot_s, kw: [n], price, baseline: [n]
flex_order     DSO → LFA   order, offer, req, t0, slot_s, kw: [n], price, penalty
settlement     DSO → LFA   order, ordered_kwh, delivered_kwh, payment, penalty
=============  ==========  =============================================================================
"""

from __future__ import annotations

import math
from collections import defaultdict

import msgpack
import numpy as np

KINDS = ("plan", "price", "dispatch", "start", "report", "flex_request", "flex_offer", "flex_order", "settlement")


def floats(a, nd: int = 5) -> list[float]:
    """JSON-safe rounded list of an array (NaN/inf become None)."""
    a = np.asarray(a, dtype=float).ravel()
    if np.isfinite(a).all():
        return np.round(a, nd).tolist()
    return [round(v, nd) if math.isfinite(v) else None for v in a.tolist()]


def arr(v) -> np.ndarray:
    """Float array of a received list (None, a non-finite value sent by :func:`floats`, becomes NaN)."""
    if isinstance(v, (list, tuple)):
        return np.array(v, dtype=float)  # numpy reads None as NaN
    return np.array([np.nan if x is None else x for x in v], dtype=float)


class Outbox:
    """Builds messages with unique ids and collects them per sending agent."""

    def __init__(self):
        self.seq: dict[str, int] = defaultdict(int)
        self.items: dict[str, list[dict]] = defaultdict(list)

    def send(self, src: str, dst: str, kind: str, body: dict, tick: int) -> dict:
        self.seq[src] += 1
        wire = encode({"id": f"{src}#{self.seq[src]}", "src": src, "dst": dst, "kind": kind, "body": body,
                       "bytes": 0, "sent": int(tick)})
        msg = decode(wire)
        # the size with its own size field included: the encoding of the decoded message is *wire* again,
        # with the 0 (one byte) replaced by the size of the message (a larger integer takes more bytes)
        msg["bytes"] = len(wire) - 1 + uint_size(len(wire))
        self.items[src].append(msg)
        return msg

    def take(self) -> dict[str, list[dict]]:
        out = dict(self.items)
        self.items = defaultdict(list)
        return out


def encode(msg: dict) -> bytes:
    """The wire form of a message (MessagePack, single-precision floats)."""
    return msgpack.packb(msg, use_single_float=True)


def decode(data: bytes) -> dict:
    return msgpack.unpackb(data)


def uint_size(n: int) -> int:
    """Bytes of a non-negative integer in MessagePack (its smallest form: fixint, uint 8/16/32/64)."""
    return 1 if n < 128 else 2 if n < 256 else 3 if n < 65536 else 5 if n < 2**32 else 9


def wire_copy(msg: dict) -> dict:
    """What the receiver gets: a deep copy through the wire encoding (no shared memory between agents)."""
    return decode(encode(msg))


class LossyPump:
    """In-memory stand-in for the telecom simulator (tests, benchmarks): fixed latency, seeded loss.

    ``deliver(outbox, now)`` queues messages; ``due(now)`` returns the inbox {dst: [msg]} of every
    message whose delivery time has come."""

    def __init__(self, latency_ms: int = 100, loss: float = 0.0, seed: int = 0, kinds_lossy=None):
        self.latency = int(latency_ms)
        self.loss = float(loss)
        self.rng = np.random.default_rng(seed)
        self.kinds_lossy = set(kinds_lossy) if kinds_lossy else None
        self.queue: list[tuple[int, dict]] = []
        self.sent = self.dropped = self.bytes = 0

    def deliver(self, outbox: dict[str, list[dict]], now: int) -> None:
        for msgs in outbox.values():
            for m in msgs:
                self.sent += 1
                self.bytes += m["bytes"]
                lossy = self.kinds_lossy is None or m["kind"] in self.kinds_lossy
                if lossy and self.loss > 0 and self.rng.random() < self.loss:
                    self.dropped += 1
                    continue
                self.queue.append((now + self.latency, wire_copy(m)))

    def next_time(self) -> int | None:
        return min((t for t, _ in self.queue), default=None)

    def due(self, now: int) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        keep = []
        for t, m in self.queue:
            if t <= now:
                out[m["dst"]].append(m)
            else:
                keep.append((t, m))
        self.queue = keep
        return dict(out)
