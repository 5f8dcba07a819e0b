"""Pure telecom model: delay, jitter, loss and shared-medium queueing of agent messages (SimPy).

No mosaik here; :mod:`simulators.telecom` wraps it. Times inside are milliseconds (floats, SimPy
clock); the interface speaks integer *ticks* of ``tick_ms`` milliseconds (1 ms at mosaik
``time_resolution=0.001``).

Message contract (shared with the MAS)::

    {"id": str unique, "src": agent_id, "dst": agent_id, "kind": str, "body": JSON-safe dict,
     "bytes": int, "sent": tick}

Agent ids: ``"d1.h007"`` (home agent), ``"lfa.d1"`` (district aggregator), ``"dso"``. A missing
``bytes`` is estimated as the length of the JSON body + 40; a missing ``id`` is generated.

Endpoints, technologies and domains
-----------------------------------
* ``endpoints`` maps an agent id (or an ``fnmatch`` pattern such as ``"d1.*"``; exact ids win,
  then patterns in the given order) to a technology name of :mod:`simulators.telecom_tech`;
  anything else uses ``default``.
* A *domain* is one shared medium (a FIFO resource of capacity 1, :class:`Medium`: one frame on the
  medium at a time; two resources, up and down, for full-duplex technologies). By default the
  domain of an endpoint follows its technology's ``scope``: ``district`` -> one medium per
  technology and district (``plc@d1`` holds every ``d1.*`` PLC endpoint and ``lfa.d1``),
  ``home`` -> per household (``han@d1.h007``), ``endpoint`` -> a dedicated line per endpoint
  (DSL/fibre). The district of ``"d1.h007"`` is ``d1``, of ``"lfa.d1"`` / ``"dso.s1"`` it is the
  second part, of ``"dso"`` it is ``dso``. ``domains={"seg_a": ["d1.h00*", "lfa.d1"], ...}`` puts
  endpoints (ids or patterns) in a named domain explicitly; the dict form
  ``{"seg_a": {"members": [...], "bandwidth_bps": 9600}}`` also overrides technology fields for
  that medium. Members with different technologies get separate media of the same name.

Path of a message (the choice documented for the MAS engineer)
-------------------------------------------------------------
uplink hop on the sender's technology/domain, then downlink hop on the receiver's
technology/domain. If both endpoints are in the same domain and the technology is ``direct``
(PLC: a service node talks to the base node/concentrator on the same segment; HAN) the message
takes ONE hop on that medium. Cellular/DSL endpoints always go up to the core and down again,
even in the same cell. The core/backbone itself adds nothing beyond the per-technology latencies
(they include backhaul). ``src == dst`` is delivered after the minimum of 1 tick.

Per hop: FIFO wait for the medium, occupy it for ``(bytes + overhead) * 8 / bandwidth``, release,
then ``latency_ms + LogNormal(ln(jitter_median_ms), jitter_sigma)`` (not occupying the medium).
The hop is lost with probability ``loss`` (decided per attempt); with ``max_retries > 0`` the sender
waits ``rto_ms`` after the end of the lost transmission and retransmits (queueing again). A message
lost on its last attempt is dropped; its record carries ``lost=True`` and the time it would have
arrived. Loss is decided per hop, so a two-hop message is lost with ``1 - (1-p_up)(1-p_down)``.

Delivery tick ``d = max(sent + 1, ceil(t_arrival / tick_ms))``: the minimum latency is one tick.
With ``quantum_ms > 0`` delivery ticks are rounded up to a multiple of the quantum: up to one
quantum of extra latency, in exchange for far fewer distinct delivery times (mosaik steps) in large
populations. Default 0: exact to the tick.

Determinism
-----------
All random numbers of a message are drawn when it is sent, from the generator of its *sender*
endpoint: ``numpy.random.Generator(PCG64(SeedSequence(seed, spawn_key=(blake2b(agent_id),))))``.
Adding endpoints or traffic of other senders changes no sender's draws (only queueing
interactions); same seed and same inputs give identical deliveries.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import json
import math
from collections import deque
from dataclasses import replace
from typing import Any, Iterable, Mapping

import msgpack
import numpy as np
import simpy

from simulators.telecom_tech import Tech, build_table, canonical

EPS = 1e-9  # tolerance (in ticks) of the float clock when mapping arrivals to ticks
ROLE_PREFIXES = ("lfa", "dso")


def stable_hash(text: str) -> int:
    """64-bit hash of *text*, stable across processes and Python versions."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def district_of(agent_id: str) -> str:
    parts = agent_id.split(".")
    if len(parts) >= 2 and parts[0] in ROLE_PREFIXES:
        return parts[1]
    return parts[0]


def home_of(agent_id: str) -> str:
    return ".".join(agent_id.split(".")[:2])


# IPv4 (RFC 791) and TCP (RFC 9293) headers without options, 20 + 20 bytes, on every message
IP_TCP_HEADER_BYTES = 40
# assumption, no source: a body that is not JSON counts as 256 bytes (the bundled agents send none)
UNSIZED_BODY_BYTES = 256


def estimate_bytes(body: Any) -> int:
    """A message's size on the wire: its compact JSON body plus the IP and TCP headers."""
    try:
        return len(json.dumps(body, separators=(",", ":"))) + IP_TCP_HEADER_BYTES
    except (TypeError, ValueError):
        return UNSIZED_BODY_BYTES


_CONTAINERS = (dict, list, tuple)


def json_copy(value: Any) -> Any:
    """Deep copy of a JSON-like structure (dicts, lists and tuples are copied, tuples as lists; other
    values are shared). Plain JSON types (str keys; str, int, float, bool, None, bytes values; no
    subclasses, no tuples) take one MessagePack round trip in C, anything else the recursive copy."""
    if not isinstance(value, _CONTAINERS):
        return value
    try:
        return msgpack.unpackb(msgpack.packb(value, strict_types=True))
    except (TypeError, ValueError, OverflowError):  # e.g. a tuple, a numpy value, an int key
        return _tree_copy(value)


def _tree_copy(value: Any) -> Any:
    """:func:`json_copy` of any structure, one level per call; scalars are taken as they are,
    without a call each (message bodies are mostly long lists of floats)."""
    if isinstance(value, dict):
        return {k: _tree_copy(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tree_copy(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


class Medium:
    """A FIFO resource of capacity 1 that schedules its events as SimPy's ``Resource`` does (so the
    order of events at equal times, and with it every result, is the same), with plain events.

    ``request()`` returns an event that succeeds when the medium is granted: at once if it is free,
    else when the previous user's release is processed (or a later request finds it free first).
    ``release()`` frees the medium now and schedules the release event that grants the next one."""

    __slots__ = ("env", "user", "queue")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.user: simpy.Event | None = None
        self.queue: deque[simpy.Event] = deque()

    def request(self) -> simpy.Event:
        ev = simpy.Event(self.env)
        self.queue.append(ev)
        self._grant()
        return ev

    def release(self) -> None:
        self.user = None
        ev = simpy.Event(self.env)
        ev.callbacks.append(self._grant)
        ev.succeed()

    def _grant(self, _event: simpy.Event | None = None) -> None:
        if self.user is None and self.queue:
            self.user = self.queue.popleft()
            self.user.succeed()


class Domain:
    """One shared medium: FIFO resource(s) of capacity 1 (None if the bandwidth is unlimited)."""

    __slots__ = ("name", "tech", "up", "down", "busy_ms", "frames")

    def __init__(self, env: simpy.Environment, name: str, tech: Tech):
        self.name = name
        self.tech = tech
        limited = tech.bandwidth_bps > 0
        self.up = Medium(env) if limited else None
        if tech.duplex == "half":
            self.down = self.up
        else:
            self.down = Medium(env) if limited else None
        self.busy_ms = 0.0  # time the medium was occupied (sum over directions)
        self.frames = 0


class _Msg:
    __slots__ = ("seq", "mid", "src", "dst", "kind", "nbytes", "sent", "t0", "payload", "hops",
                 "u", "z", "k", "retries", "queue_ms", "t_done", "lost", "tick")

    def __init__(self, seq, mid, src, dst, kind, nbytes, sent, t0, payload, hops):
        self.seq = seq
        self.mid = mid
        self.src = src
        self.dst = dst
        self.kind = kind
        self.nbytes = nbytes
        self.sent = sent
        self.t0 = t0
        self.payload = payload
        self.hops = hops
        self.u: list[float] = []
        self.z: list[float] = []
        self.k = 0
        self.retries = 0
        self.queue_ms = 0.0
        self.t_done = math.nan
        self.lost = False
        self.tick = 0


class TelecomModel:
    """Seeded SimPy model of the message network (see module docstring).

    Usage: ``send(msg, tick)`` for each message sent at ``tick``; ``advance(tick)`` runs the
    network up to and including ``tick``; ``pop_ready(tick)`` returns the messages whose delivery
    tick (or loss tick) is ``<= tick``. ``drain()`` runs everything to the end (offline use).
    """

    def __init__(
        self,
        endpoints: Mapping[str, str] | None = None,
        default: str = "lte",
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        domains: Mapping[str, Any] | None = None,
        seed: int = 0,
        tick_ms: float = 1.0,
        max_retries: int | None = None,
        quantum_ms: float = 0.0,
    ):
        self.table = build_table(overrides)
        if max_retries is not None:  # scenario-wide override of every technology
            self.table = {k: replace(t, max_retries=int(max_retries)) for k, t in self.table.items()}
        self.default = self._tech_name(default)
        self.exact: dict[str, str] = {}
        self.patterns: list[tuple[str, str]] = []
        for key, tech in (endpoints or {}).items():
            name = self._tech_name(tech)
            if any(c in key for c in "*?["):
                self.patterns.append((key, name))
            else:
                self.exact[key] = name
        self.domain_exact: dict[str, str] = {}
        self.domain_patterns: list[tuple[str, str]] = []
        self.domain_params: dict[str, dict[str, Any]] = {}
        for dname, spec in (domains or {}).items():
            if isinstance(spec, Mapping):
                spec = dict(spec)
                members = spec.pop("members", [])
                self.domain_params[dname] = spec
            else:
                members = spec
            if isinstance(members, str):
                members = [members]
            for member in members:
                if any(c in member for c in "*?["):
                    self.domain_patterns.append((member, dname))
                else:
                    self.domain_exact[member] = dname
        self.seed = int(seed)
        self.tick_ms = float(tick_ms)
        if self.tick_ms <= 0:
            raise ValueError("tick_ms must be > 0")
        # delivery ticks rounded up to a multiple of the quantum (fewer mosaik steps, coarser time)
        self.quantum = max(1, int(round(float(quantum_ms or 0) / self.tick_ms)))
        self.env = simpy.Environment()
        self.domains: dict[str, Domain] = {}
        self._ep: dict[str, tuple[Tech, Domain]] = {}
        self._gen: dict[str, np.random.Generator] = {}
        self._paths: dict[tuple[str, str], tuple] = {}
        self._routes: dict[tuple[str, str], tuple[tuple, int, bool]] = {}
        self._ready: list[tuple[int, int, _Msg]] = []  # delivered, by delivery tick
        self._ready_lost: list[tuple[int, int, _Msg]] = []
        self._seq = 0
        self.in_flight = 0
        self.late_submissions = 0  # messages submitted behind the model clock (should stay 0)
        self.late_deliveries = 0  # messages handed over after their due tick (should stay 0)
        # cumulative counters (floats, every agent seen so far has a key in all four)
        self.sent: dict[str, float] = {}
        self.bytes_sent: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.lost: dict[str, float] = {}
        self.latency_sum_ms: dict[str, float] = {}
        self.latency_mean_ms: dict[str, float] = {}  # per receiver, over all its deliveries
        for agent_id in self.exact:
            self.endpoint(agent_id)
            self._touch(agent_id)

    # -- configuration -------------------------------------------------------------------------
    def _touch(self, agent_id: str) -> None:
        if agent_id not in self.sent:
            self.sent[agent_id] = 0.0
            self.bytes_sent[agent_id] = 0.0
            self.delivered[agent_id] = 0.0
            self.lost[agent_id] = 0.0

    def _tech_name(self, name: str) -> str:
        key = canonical(name)
        if key not in self.table:
            raise ValueError(f"unknown technology {name!r}; known: {sorted(self.table)}")
        return key

    def tech_of(self, agent_id: str) -> Tech:
        return self.endpoint(agent_id)[0]

    def domain_of(self, agent_id: str) -> Domain:
        return self.endpoint(agent_id)[1]

    def endpoint(self, agent_id: str) -> tuple[Tech, Domain]:
        hit = self._ep.get(agent_id)
        if hit is not None:
            return hit
        name = self.exact.get(agent_id)
        if name is None:
            name = next((t for pat, t in self.patterns if fnmatch.fnmatchcase(agent_id, pat)),
                        self.default)
        tech = self.table[name]
        dname = self.domain_exact.get(agent_id)
        if dname is None:
            dname = next((d for pat, d in self.domain_patterns
                          if fnmatch.fnmatchcase(agent_id, pat)), None)
        if dname is not None:
            params = self.domain_params.get(dname)
            if params:
                tech = replace(tech, **_coerce(params))
        else:
            dname = {"district": district_of, "home": home_of}.get(tech.scope, str)(agent_id)
        key = f"{tech.name}@{dname}"
        dom = self.domains.get(key)
        if dom is None:
            dom = self.domains[key] = Domain(self.env, key, tech)
        self._ep[agent_id] = (dom.tech, dom)
        return dom.tech, dom

    def generator(self, agent_id: str) -> np.random.Generator:
        gen = self._gen.get(agent_id)
        if gen is None:
            ss = np.random.SeedSequence(self.seed, spawn_key=(stable_hash(agent_id),))
            gen = self._gen[agent_id] = np.random.Generator(np.random.PCG64(ss))
        return gen

    def path(self, src: str, dst: str) -> tuple:
        """Hops ``((domain, resource_or_None, tech), ...)`` of a message from *src* to *dst*."""
        hit = self._paths.get((src, dst))
        if hit is not None:
            return hit
        if src == dst:
            hops: tuple = ()
        else:
            s_tech, s_dom = self.endpoint(src)
            d_tech, d_dom = self.endpoint(dst)
            if s_dom is d_dom and s_tech.direct:
                hops = ((s_dom, s_dom.up, s_tech),)
            else:
                hops = ((s_dom, s_dom.up, s_tech), (d_dom, d_dom.down, d_tech))
        self._paths[(src, dst)] = hops
        return hops

    def _route(self, src: str, dst: str) -> tuple[tuple, int, bool]:
        """``(hops, random draws per message, whether no hop has a medium to share)`` of a path."""
        hit = self._routes.get((src, dst))
        if hit is None:
            hops = self.path(src, dst)
            hit = self._routes[(src, dst)] = (hops, sum(1 + h[2].max_retries for h in hops),
                                              all(h[1] is None for h in hops))
        return hit

    # -- sending ---------------------------------------------------------------------------------
    def send(self, msg: Mapping[str, Any], tick: int, payload: Any = None) -> _Msg | None:
        """Submit *msg* (contract dict) sent at *tick*; *payload* is kept and handed back on
        delivery (default: the msg itself, not copied). Malformed messages are dropped and
        recorded as lost (never raises for bad input)."""
        self._seq += 1
        seq = self._seq
        if not isinstance(msg, dict) and not isinstance(msg, Mapping):
            msg = {"body": msg}
        src = str(msg.get("src", "?"))
        dst = msg.get("dst")
        mid = msg.get("id")
        mid = str(mid) if mid is not None else f"{src}#{seq}"
        kind = str(msg.get("kind", ""))
        nbytes = msg.get("bytes")
        try:
            nbytes = int(nbytes)
            if nbytes < 0:
                raise ValueError
        except (TypeError, ValueError):
            nbytes = estimate_bytes(msg.get("body"))
        t0 = tick * self.tick_ms
        now = self.env.now
        if t0 < now - EPS * self.tick_ms:
            self.late_submissions += 1
        if t0 > now + EPS * self.tick_ms:
            self.advance(tick)
        self._touch(src)
        self.sent[src] += 1.0
        self.bytes_sent[src] += nbytes
        if dst is not None:
            self._touch(str(dst))
        m = _Msg(seq, mid, src, None if dst is None else str(dst), kind, nbytes, int(tick), t0,
                 msg if payload is None else payload, ())
        if m.dst is None:  # undeliverable: lost at once
            m.t_done = max(t0, self.env.now)
            self._finish(m, lost=True)
            return m
        m.hops, n, fixed = self._route(src, m.dst)
        if n:
            gen = self.generator(src)
            m.u = gen.random(n).tolist()
            m.z = gen.standard_normal(n).tolist()
        self.in_flight += 1
        if fixed:  # no medium to share: one timeout, no process
            delay, lost, retries = self._fixed_path(m)
            m.retries = retries
            ev = self.env.timeout(delay)
            ev.callbacks.append(lambda _e, m=m, lost=lost: self._done(m, lost))
        else:
            self._start(self._transfer(m))
        return m

    @staticmethod
    def _start(gen) -> None:
        """Run the transfer *gen* now and resume it whenever the event it waits for is processed:
        what ``env.process`` does, without its start and end events (nothing waits for a transfer,
        and the start at once issues the first request in the order of the sends, as the start
        events, urgent, did before any other event of that time)."""
        def resume(_event=None):
            ev = next(gen, None)
            if ev is not None:
                ev.callbacks.append(resume)
        resume()

    def _hop_delay(self, tech: Tech, z: float) -> float:
        if tech.jitter_median_ms > 0:
            return tech.latency_ms + tech.jitter_median_ms * math.exp(tech.jitter_sigma * z)
        return tech.latency_ms

    def _fixed_path(self, m: _Msg) -> tuple[float, bool, int]:
        delay = 0.0
        retries = 0
        for _dom, _res, tech in m.hops:
            tx = tech.tx_ms(m.nbytes)
            attempt = 0
            while True:
                u, z = m.u[m.k], m.z[m.k]
                m.k += 1
                delay += tx
                if u >= tech.loss:
                    delay += self._hop_delay(tech, z)
                    break
                if attempt >= tech.max_retries:
                    return delay + self._hop_delay(tech, z), True, retries
                attempt += 1
                retries += 1
                delay += tech.rto_ms
        return delay, False, retries

    def _transfer(self, m: _Msg):
        env = self.env
        for dom, res, tech in m.hops:
            tx = tech.tx_ms(m.nbytes)
            attempt = 0
            while True:
                if res is not None:
                    t_req = env.now
                    yield res.request()
                    m.queue_ms += env.now - t_req
                    dom.frames += 1
                    dom.busy_ms += tx
                    if tx > 0:
                        yield env.timeout(tx)
                    res.release()
                elif tx > 0:
                    yield env.timeout(tx)
                u, z = m.u[m.k], m.z[m.k]
                m.k += 1
                delay = self._hop_delay(tech, z)
                if u >= tech.loss:
                    if delay > 0:
                        yield env.timeout(delay)
                    break
                if attempt >= tech.max_retries:
                    if delay > 0:
                        yield env.timeout(delay)
                    self._done(m, True)
                    return
                attempt += 1
                m.retries += 1
                if tech.rto_ms > 0:
                    yield env.timeout(tech.rto_ms)
        self._done(m, False)

    def _done(self, m: _Msg, lost: bool) -> None:
        self.in_flight -= 1
        m.t_done = self.env.now
        self._finish(m, lost)

    def _finish(self, m: _Msg, lost: bool) -> None:
        m.lost = lost
        tick = max(m.sent + 1, math.ceil(m.t_done / self.tick_ms - EPS))
        q = self.quantum
        m.tick = tick if q == 1 else -(-tick // q) * q
        heapq.heappush(self._ready_lost if lost else self._ready, (m.tick, m.seq, m))

    # -- running -------------------------------------------------------------------------------
    def advance(self, tick: float) -> None:
        """Process every network event at times <= *tick* (ticks); the clock ends at *tick*."""
        env = self.env
        t = tick * self.tick_ms
        if t > env.now:
            env.run(until=t)
        lim = (tick + EPS) * self.tick_ms
        while env.peek() <= lim:
            env.step()

    def lookahead(self, limit_tick: float, shift: int = 1) -> None:
        """Process events up to *limit_tick* without moving the clock past the last event, but
        stop before an event later than ``first pending delivery - shift + 1`` (the earliest time
        a reply to an output could come back). Used by the mosaik layer with ``max_advance``."""
        peek, step, ready = self.env.peek, self.env.step, self._ready
        lim = (limit_tick + EPS) * self.tick_ms
        while True:
            p = peek()
            if p > lim:
                return
            if ready and p > (ready[0][0] - shift + 1 + EPS) * self.tick_ms:
                return
            step()

    def next_event_tick(self) -> float:
        """Tick of the next internal event (``inf`` if none)."""
        p = self.env.peek()
        return p if p == math.inf else math.ceil(p / self.tick_ms - EPS)

    def next_ready_tick(self) -> float:
        """Earliest delivery (or loss) tick of a finished message not yet popped (``inf``)."""
        a = self._ready[0][0] if self._ready else math.inf
        b = self._ready_lost[0][0] if self._ready_lost else math.inf
        return min(a, b)

    def next_delivery_tick(self) -> float:
        return self._ready[0][0] if self._ready else math.inf

    def pop_ready(self, tick: float, at: int | None = None) -> tuple[list[_Msg], list[_Msg]]:
        """Finished messages with tick <= *tick*: ``(delivered, lost)``, each in tick order.
        *at* is the tick at which the delivered ones actually reach their receiver (a message due
        earlier but handed over late gets ``tick = at``). Updates the delivered/lost counters."""
        out: list[_Msg] = []
        while self._ready and self._ready[0][0] <= tick:
            m = heapq.heappop(self._ready)[2]
            if at is not None and m.tick < at:
                self.late_deliveries += 1
                m.tick = at
            n = self.delivered[m.dst] = self.delivered[m.dst] + 1.0
            tot = self.latency_sum_ms[m.dst] = (self.latency_sum_ms.get(m.dst, 0.0)
                                                + (m.tick - m.sent) * self.tick_ms)
            self.latency_mean_ms[m.dst] = tot / n
            out.append(m)
        lost: list[_Msg] = []
        while self._ready_lost and self._ready_lost[0][0] <= tick:
            m = heapq.heappop(self._ready_lost)[2]
            self.lost[m.src] += 1.0
            lost.append(m)
        return out, lost

    def drain(self) -> list[dict[str, Any]]:
        """Run the network until nothing is in flight; return the records of all finished
        messages (offline use: tests, benchmarks)."""
        env = self.env
        while env.peek() < math.inf:
            env.step()
        delivered, lost = self.pop_ready(math.inf)
        return [self.record(m) for m in sorted(delivered + lost, key=lambda m: m.seq)]

    # -- output --------------------------------------------------------------------------------
    def latency_ms(self, m: _Msg) -> float:
        return (m.tick - m.sent) * self.tick_ms

    def record(self, m: _Msg) -> dict[str, Any]:
        """Per-message record for the event table."""
        return {
            "id": m.mid,
            "src": m.src,
            "dst": m.dst,
            "kind": m.kind,
            "bytes": m.nbytes,
            "sent": m.sent,
            "delivered": None if m.lost else m.tick,
            "lost": m.lost,
            "latency_ms": None if m.lost else self.latency_ms(m),
            "path": ">".join(h[0].name for h in m.hops),
            "retries": m.retries,
            "queue_ms": round(m.queue_ms, 3),
        }

    def domain_stats(self) -> dict[str, dict[str, float]]:
        return {k: {"frames": d.frames, "busy_ms": d.busy_ms} for k, d in self.domains.items()}


def _coerce(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate/convert per-domain technology overrides."""
    from simulators.telecom_tech import TECH_FIELDS

    unknown = set(params) - set(TECH_FIELDS)
    if unknown:
        raise ValueError(f"domain override: unknown parameter(s) {sorted(unknown)}")
    out = dict(params)
    for key in ("latency_ms", "jitter_median_ms", "jitter_sigma", "loss", "bandwidth_bps", "rto_ms"):
        if key in out:
            out[key] = float(out[key])
    for key in ("overhead_bytes", "max_retries"):
        if key in out:
            out[key] = int(out[key])
    return out


def iter_messages(value: Any) -> Iterable[Any]:
    """Messages inside one mosaik input value: ``{agent_id: [msg, ...]}``, ``[msg, ...]`` or a
    single msg dict (recognised by its ``dst`` key)."""
    if value is None:
        return
    if isinstance(value, Mapping):
        if "dst" in value and "src" in value:
            yield value
            return
        for v in value.values():
            if isinstance(v, (list, tuple)):
                yield from v
            elif isinstance(v, Mapping):
                yield v
    elif isinstance(value, (list, tuple)):
        yield from value
