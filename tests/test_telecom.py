"""Tests of the telecom simulator: model statistics per technology, queueing, loss, retries,
determinism, and the mosaik layer in a tiny World (pinger/echo agents through TelecomSim)."""

from __future__ import annotations

import json
import math
import sys
import warnings

import mosaik
import mosaik_api_v3
import numpy as np
import pytest

from simulators.telecom import META, TelecomSim
from simulators.telecom_model import TelecomModel, json_copy, stable_hash
from simulators.telecom_tech import DEFAULT_TECH, build_table

N = 2000
BYTES = 200


def _spaced_run(model: TelecomModel, src_of, dst: str, n: int = N, gap: int = 60_000,
                nbytes: int = BYTES) -> list[dict]:
    """n messages, one every *gap* ticks (idle medium: no queueing)."""
    for i in range(n):
        model.send({"id": f"m{i}", "src": src_of(i), "dst": dst, "kind": "t", "body": {},
                    "bytes": nbytes, "sent": i * gap}, i * gap)
    return model.drain()


def _expected_latencies(hops, n: int, seed: int = 99, nbytes: int = BYTES) -> np.ndarray:
    """Independent Monte-Carlo sample of the documented per-hop formula (no loss, no queue),
    quantised like the simulator (ceil to 1 ms, minimum 1 tick)."""
    rng = np.random.default_rng(seed)
    total = np.zeros(n)
    for tech in hops:
        total += tech.latency_ms + tech.tx_ms(nbytes)
        if tech.jitter_median_ms > 0:
            total += tech.jitter_median_ms * np.exp(tech.jitter_sigma * rng.standard_normal(n))
    return np.maximum(np.ceil(total - 1e-9), 1.0)


@pytest.mark.parametrize("tech", sorted(DEFAULT_TECH))
def test_latency_distribution_matches_parameters(tech):
    model = TelecomModel(endpoints={"d1.*": tech, "lfa.d1": tech}, default=tech, seed=7)
    recs = _spaced_run(model, lambda i: f"d1.h{i % 40:03d}", "lfa.d1")
    lat = np.array([r["latency_ms"] for r in recs if not r["lost"]])
    t = DEFAULT_TECH[tech]
    hops = [h[2] for h in model.path("d1.h000", "lfa.d1")]
    # direct media (PLC segment) take one hop; HAN is per home, so home -> lfa is two hops
    assert len(hops) == (1 if t.direct and t.scope == "district" else 2)
    assert {len(r["path"].split(">")) for r in recs} == {len(hops)}
    # analytic mean of the documented formula (+ <= 1 ms quantisation)
    mean_expected = sum(h.mean_hop_ms(BYTES) for h in hops)
    assert mean_expected - 0.05 * mean_expected - 0.1 <= lat.mean() <= mean_expected * 1.05 + 1.0
    # percentiles against an independent sample of the same formula
    ref = _expected_latencies(hops, 20_000)
    for q in (5, 50, 95):
        got, want = np.percentile(lat, q), np.percentile(ref, q)
        assert abs(got - want) <= 0.08 * want + 1.0, (tech, q, got, want)
    # every latency at least the fixed part and the transmission time
    assert lat.min() >= math.floor(sum(h.latency_ms + h.tx_ms(BYTES) for h in hops))
    assert all(r["queue_ms"] == 0 for r in recs)


def test_technology_ordering_and_ranges():
    """Rough sanity of the defaults: PLC/NB-IoT slow, LTE tens of ms, fibre/DSL few ms."""
    mean = {k: v.mean_hop_ms(BYTES) for k, v in DEFAULT_TECH.items()}
    assert 200 <= mean["plc"] <= 2000
    assert 500 <= mean["nbiot"] <= 5000
    assert 10 <= mean["lte"] <= 60
    assert 10 <= mean["han"] <= 60
    assert mean["fibre"] < mean["dsl"] < 20
    assert mean["ideal"] == 0.5
    assert DEFAULT_TECH["han"].bandwidth_bps == 250_000
    assert 0.01 <= DEFAULT_TECH["plc"].loss <= 0.05


def test_ideal_is_exactly_one_tick():
    model = TelecomModel(default="ideal", seed=1)
    recs = _spaced_run(model, lambda i: "d1.h001", "dso", n=50, gap=10)
    assert {r["latency_ms"] for r in recs} == {1.0}
    assert not any(r["lost"] for r in recs)


def test_loss_rate_matches():
    # single PLC hop (same segment, direct): loss = p
    model = TelecomModel(endpoints={"d1.*": "plc", "lfa.d1": "plc"}, seed=3)
    recs = _spaced_run(model, lambda i: f"d1.h{i % 40:03d}", "lfa.d1", n=4000)
    rate = np.mean([r["lost"] for r in recs])
    p = DEFAULT_TECH["plc"].loss
    sd = math.sqrt(p * (1 - p) / 4000)
    assert abs(rate - p) < 4 * sd
    # two hops with overridden loss: 1 - (1 - p)^2
    model = TelecomModel(default="lte", overrides={"lte": {"loss": 0.1}}, seed=3)
    recs = _spaced_run(model, lambda i: f"d1.h{i % 40:03d}", "dso", n=4000)
    rate = np.mean([r["lost"] for r in recs])
    assert abs(rate - 0.19) < 4 * math.sqrt(0.19 * 0.81 / 4000)
    lost = [r for r in recs if r["lost"]]
    assert all(r["delivered"] is None and r["latency_ms"] is None for r in lost)


def test_retransmissions_reduce_loss_and_add_rto():
    over = {"plc": {"loss": 0.5, "max_retries": 3, "rto_ms": 1000, "jitter_median_ms": 0}}
    model = TelecomModel(endpoints={"d1.*": "plc", "lfa.d1": "plc"}, overrides=over, seed=5)
    recs = _spaced_run(model, lambda i: f"d1.h{i % 40:03d}", "lfa.d1", n=2000, gap=100_000)
    rate = np.mean([r["lost"] for r in recs])
    assert abs(rate - 0.5 ** 4) < 4 * math.sqrt(0.0625 * 0.9375 / 2000)
    t = build_table(over)["plc"]
    one = t.latency_ms + t.tx_ms(BYTES)
    for r in recs:
        if not r["lost"]:
            expect = one + r["retries"] * (t.tx_ms(BYTES) + t.rto_ms)
            assert r["latency_ms"] == pytest.approx(math.ceil(expect - 1e-9), abs=1.0)
    assert max(r["retries"] for r in recs) == 3


def test_queueing_many_messages_take_longer_than_one():
    def burst(k):
        model = TelecomModel(endpoints={"d1.*": "plc", "lfa.d1": "plc"},
                             overrides={"plc": {"loss": 0.0}}, seed=11)
        for i in range(k):
            model.send({"id": f"b{i}", "src": f"d1.h{i:03d}", "dst": "lfa.d1", "kind": "t",
                        "body": {}, "bytes": BYTES}, 0)
        return model.drain()

    one = burst(1)[0]["latency_ms"]
    many = burst(100)
    lat = np.array([r["latency_ms"] for r in many])
    tx = DEFAULT_TECH["plc"].tx_ms(BYTES)  # 104 ms on the 20 kbit/s segment
    assert lat.max() >= 99 * tx  # the last one waited for the 99 before it
    assert lat.mean() > 10 * one
    assert max(r["queue_ms"] for r in many) >= 98 * tx
    # FIFO: queueing delays grow in sending order
    q = [r["queue_ms"] for r in many]
    assert q == sorted(q)
    # different districts do not share a segment
    model = TelecomModel(default="plc", overrides={"plc": {"loss": 0.0}}, seed=11)
    for i in range(100):
        model.send({"src": f"d{i}.h001", "dst": f"lfa.d{i}", "bytes": BYTES}, 0)
    assert max(r["queue_ms"] for r in model.drain()) == 0


def test_half_vs_full_duplex_and_direct_path():
    m = TelecomModel(endpoints={"d1.*": "plc", "lfa.d1": "plc", "dso": "fibre"}, seed=0)
    assert m.path("d1.h001", "lfa.d1")[0][0].name == "plc@d1"
    assert len(m.path("d1.h001", "lfa.d1")) == 1  # PLC direct on the segment
    assert [h[0].name for h in m.path("d1.h001", "dso")] == ["plc@d1", "fibre@dso"]
    dom = m.domain_of("d1.h001")
    assert dom.up is dom.down  # half duplex
    m2 = TelecomModel(default="lte", seed=0)
    assert len(m2.path("d1.h001", "lfa.d1")) == 2  # cellular always via the core
    assert m2.domain_of("d1.h001").up is not m2.domain_of("d1.h001").down


def test_explicit_domains_and_domain_overrides():
    m = TelecomModel(endpoints={"*": "plc"},
                     domains={"segA": {"members": ["d1.h00*", "lfa.d1"], "bandwidth_bps": 5000},
                              "segB": ["d1.h01*"]}, seed=0)
    assert m.domain_of("d1.h003").name == "plc@segA"
    assert m.domain_of("lfa.d1").name == "plc@segA"
    assert m.domain_of("d1.h012").name == "plc@segB"
    assert m.tech_of("d1.h003").bandwidth_bps == 5000
    assert m.tech_of("d1.h012").bandwidth_bps == DEFAULT_TECH["plc"].bandwidth_bps
    assert m.domain_of("d2.h001").name == "plc@d2"
    # HAN: one medium per home
    h = TelecomModel(default="han", seed=0)
    assert h.domain_of("d1.h001.ev").name == "han@d1.h001"
    assert h.domain_of("d1.h001").name == "han@d1.h001"


def test_overrides_validation_and_new_technology():
    t = build_table({"plc_bad": {"base": "plc", "loss": 0.3}, "fiber": {"latency_ms": 1}})
    assert t["plc_bad"].loss == 0.3 and t["plc_bad"].bandwidth_bps == DEFAULT_TECH["plc"].bandwidth_bps
    assert t["fibre"].latency_ms == 1.0
    with pytest.raises(ValueError):
        build_table({"plc": {"lossy": 1}})
    with pytest.raises(ValueError):
        build_table({"plc": {"loss": 2}})
    with pytest.raises(ValueError):
        TelecomModel(default="carrier-pigeon")


def _traffic(model, senders, n=300, extra=()):
    """n messages from *senders* every 50 ticks, plus *extra* (tick, msg) pairs, in time order."""
    items = [(i * 50, {"id": f"{senders[i % len(senders)]}-{i}", "src": senders[i % len(senders)],
                       "dst": "lfa.d1", "kind": "t", "body": {"i": i}, "bytes": 120})
             for i in range(n)]
    for tick, msg in sorted([*items, *extra], key=lambda x: x[0]):
        model.send(msg, tick)
    return model.drain()


def test_determinism_same_seed_identical():
    cfg = dict(endpoints={"d1.*": "plc", "lfa.d1": "plc"}, default="lte")
    a = _traffic(TelecomModel(seed=42, **cfg), ["d1.h001", "d1.h002", "d1.h003"])
    b = _traffic(TelecomModel(seed=42, **cfg), ["d1.h001", "d1.h002", "d1.h003"])
    c = _traffic(TelecomModel(seed=43, **cfg), ["d1.h001", "d1.h002", "d1.h003"])
    assert a == b
    assert a != c


def test_determinism_stable_under_adding_endpoints():
    """Traffic of a new endpoint on another medium changes nothing for the existing ones."""
    cfg = dict(endpoints={"d1.*": "plc", "lfa.d1": "plc", "d2.*": "plc"}, default="lte")
    base = _traffic(TelecomModel(seed=5, **cfg), ["d1.h001", "d1.h002"])
    # extra endpoint in district 2 (another segment), interleaved in time
    extra = [(i * 50 + 7, {"id": f"x{i}", "src": "d2.h009", "dst": "lfa.d2", "bytes": 100})
             for i in range(300)]
    m = TelecomModel(seed=5, **cfg)
    more = [r for r in _traffic(m, ["d1.h001", "d1.h002"], extra=extra)
            if not r["id"].startswith("x")]
    assert base == more
    assert m.late_submissions == 0
    assert stable_hash("d1.h001") == stable_hash("d1.h001") != stable_hash("d1.h002")


def test_delivery_quantum_rounds_up():
    exact = _spaced_run(TelecomModel(default="lte", seed=2), lambda i: "d1.h001", "dso", n=200)
    coarse = _spaced_run(TelecomModel(default="lte", seed=2, quantum_ms=50), lambda i: "d1.h001",
                         "dso", n=200)
    for e, c in zip(exact, coarse):
        assert e["lost"] == c["lost"]
        if not e["lost"]:
            assert c["delivered"] % 50 == 0 and 0 <= c["delivered"] - e["delivered"] < 50


def test_malformed_messages_never_crash():
    m = TelecomModel(default="lte", seed=0)
    m.send({"src": "d1.h001"}, 0)  # no dst
    m.send("garbage", 0)  # not a dict
    m.send({"src": "d1.h001", "dst": "dso", "bytes": "many", "body": {"x": [1, 2]}}, 0)
    m.send({"src": "dso", "dst": "dso", "bytes": 10}, 0)  # loopback
    recs = m.drain()
    assert [r["lost"] for r in recs] == [True, True, False, False]
    assert recs[2]["bytes"] > 40 and recs[3]["latency_ms"] == 1.0


# ---------------------------------------------------------------------------------------------
# mosaik layer
# ---------------------------------------------------------------------------------------------
RESULTS: dict[str, dict] = {}

PINGER_META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {"Pinger": {"public": True, "params": ["agents", "echo", "n", "nbytes", "key"],
                          "attrs": ["inbox", "outbox"], "trigger": ["inbox"],
                          "non-persistent": ["outbox"]}},
}


class Pinger(mosaik_api_v3.Simulator):
    """Hosts agents: each of ``agents`` sends ``n`` pings to ``echo`` at t=0; ``echo`` answers
    every ping with a pong. Everything received is logged in RESULTS[key]["recv"]."""

    def __init__(self):
        super().__init__(PINGER_META)
        self.outbox: dict = {}

    def create(self, num, model, agents, echo, n=1, nbytes=100, key="default"):
        self.agents, self.echo, self.n, self.nbytes, self.key = agents, echo, n, nbytes, key
        RESULTS[key] = {"recv": [], "events": [], "stats": {}}
        return [{"eid": "mas", "type": model}]

    def step(self, time, inputs, max_advance):
        out: dict[str, list] = {}
        if time == 0:
            for a in self.agents:
                out[a] = [{"id": f"{a}:ping:{i}", "src": a, "dst": self.echo, "kind": "ping",
                           "body": {"i": i}, "bytes": self.nbytes, "sent": time}
                          for i in range(self.n)]
        for _src, inbox in inputs.get("mas", {}).get("inbox", {}).items():
            for dst, msgs in inbox.items():
                for msg in msgs:
                    RESULTS[self.key]["recv"].append((time, dst, json.loads(json.dumps(msg))))
                    if msg["kind"] == "ping" and dst == self.echo:
                        out.setdefault(dst, []).append(
                            {"id": msg["id"] + ":pong", "src": dst, "dst": msg["src"],
                             "kind": "pong", "body": {"t_ping": msg["sent"]},
                             "bytes": self.nbytes, "sent": time})
                    msg["body"] = "mutated by the consumer"  # must not hurt the telecom sim
        self.outbox = out
        return None

    def get_data(self, outputs):
        return {"mas": {"outbox": self.outbox}} if self.outbox else {"mas": {}}


COLLECTOR_META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {"Collector": {"public": True, "params": ["key"], "any_inputs": True, "attrs": []}},
}


class Collector(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(COLLECTOR_META)

    def create(self, num, model, key="default"):
        self.key = key
        return [{"eid": "rec", "type": model}]

    def step(self, time, inputs, max_advance):
        for attr, vals in inputs.get("rec", {}).items():
            for _src, v in vals.items():
                if attr == "events":
                    for recs in v.values():
                        RESULTS[self.key]["events"].extend(recs)
                else:
                    RESULTS[self.key]["stats"][attr] = v
        return None

    def get_data(self, outputs):
        return {}


def _run_world(key, telecom_params, agents, echo, n, until, nbytes=100, cmd=False,
               lookahead=True):
    mod = __name__
    sim_config = {
        "Telecom": ({"cmd": f"{sys.executable} -m simulators.telecom %(addr)s", "posix": True}
                    if cmd else {"python": "simulators.telecom:TelecomSim"}),
        "Pinger": {"python": f"{mod}:Pinger"},
        "Collector": {"python": f"{mod}:Collector"},
    }
    world = mosaik.World(sim_config, time_resolution=0.001, configure_logging=False,
                         skip_greetings=True)
    tel = world.start("Telecom", seed=1, lookahead=lookahead).Telecom(**telecom_params)
    mas = world.start("Pinger").Pinger(agents=agents, echo=echo, n=n, nbytes=nbytes, key=key)
    rec = world.start("Collector").Collector(key=key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # time_shifted=True into a trigger attr warns (intended)
        world.connect(mas, tel, "outbox")
        world.connect(tel, mas, "inbox", time_shifted=True)
        world.connect(tel, rec, "events", "sent", "delivered", "lost", "bytes_sent",
                      "latency_mean_ms")
        world.run(until=until, print_progress=False)
    return RESULTS[key]


def test_mosaik_ping_pong_latency_and_convention():
    params = dict(endpoints={"d1.*": "plc", "lfa.d1": "plc", "dso": "fibre"}, default="lte")
    agents = ["d1.h001", "d1.h002", "d2.h001"]  # PLC (direct), PLC, LTE (default)
    res = _run_world("pingpong", params, agents, "lfa.d1", n=5, until=120_000)
    recv = res["recv"]
    model = TelecomModel(**params)
    n_ping = sum(1 for _t, dst, m in recv if m["kind"] == "ping")
    n_pong = sum(1 for _t, dst, m in recv if m["kind"] == "pong")
    assert n_ping >= 12 and n_pong >= 10  # 15 sent, PLC loss 2 % per hop
    for t, dst, m in recv:
        # the consumer sees the message exactly at its delivery tick (time_shifted convention)
        assert t == m["delivered"]
        assert m["latency_ms"] == (m["delivered"] - m["sent"]) * 1.0
        base = sum(h[2].latency_ms for h in model.path(m["src"], m["dst"]))
        assert m["latency_ms"] >= max(base, 1.0)
        assert dst == m["dst"]
        if m["kind"] == "pong":
            assert t - m["body"]["t_ping"] >= 2 * base
    # stats and event records are consistent
    events = res["events"]
    st = res["stats"]
    assert len(events) == sum(st["sent"].values()) == n_ping + n_pong + sum(st["lost"].values())
    assert sum(st["delivered"].values()) == n_ping + n_pong
    assert st["sent"]["d1.h001"] == 5.0 and st["bytes_sent"]["d1.h001"] == 500.0
    assert st["delivered"]["lfa.d1"] == n_ping
    assert all(isinstance(v, float) for v in st["latency_mean_ms"].values())
    assert {e["id"] for e in events} == {m["id"] for _t, _d, m in recv} | {
        e["id"] for e in events if e["lost"]}


def test_mosaik_half_loss_does_not_crash():
    params = dict(endpoints={"d1.*": "plc", "lfa.d1": "plc"},
                  overrides={"plc": {"loss": 0.5, "bandwidth_bps": 200_000}})
    res = _run_world("half", params, ["d1.h001", "d1.h002"], "lfa.d1", n=200, until=200_000,
                     nbytes=50)
    pings = [m for _t, _d, m in res["recv"] if m["kind"] == "ping"]
    pongs = [m for _t, _d, m in res["recv"] if m["kind"] == "pong"]
    assert 150 <= len(pings) <= 250  # ~ half of 400
    assert 0.3 * len(pings) <= len(pongs) <= 0.7 * len(pings)
    lost = [e for e in res["events"] if e["lost"]]
    assert len(lost) + len(pings) + len(pongs) == len(res["events"]) == 400 + len(pings)
    assert all(t == m["delivered"] for t, _d, m in res["recv"])


def test_mosaik_lookahead_changes_nothing():
    """Running the network ahead to max_advance must not change any delivery."""
    params = dict(endpoints={"d1.*": "plc", "lfa.d1": "plc", "d2.*": "nbiot"}, default="lte",
                  overrides={"plc": {"max_retries": 2, "loss": 0.2}})
    agents = ["d1.h001", "d1.h002", "d2.h001", "d3.h001"]
    a = _run_world("la1", params, agents, "lfa.d1", n=15, until=120_000, lookahead=True)
    b = _run_world("la0", params, agents, "lfa.d1", n=15, until=120_000, lookahead=False)
    assert a["recv"] == b["recv"] and a["events"] == b["events"]
    assert len(a["recv"]) > 60


def test_mosaik_ideal_minimum_latency_one_tick():
    res = _run_world("ideal", dict(default="ideal"), ["d1.h001"], "lfa.d1", n=3, until=100)
    assert [(t, m["kind"]) for t, _d, m in res["recv"]] == [(1, "ping")] * 3 + [(2, "pong")] * 3


def test_mosaik_subprocess_json_mode():
    """The simulator runs as ``python -m simulators.telecom`` (outputs JSON-serialisable)."""
    res = _run_world("cmd", dict(default="lte"), ["d1.h001"], "lfa.d1", n=3, until=5_000,
                     cmd=True)
    assert sum(1 for _t, _d, m in res["recv"] if m["kind"] == "pong") >= 2


def test_sim_outputs_are_json_and_inputs_copied():
    sim = TelecomSim()
    sim.init("T", time_resolution=0.001, seed=3)
    sim.create(1, "Telecom", default="ideal")
    msg = {"id": "a", "src": "d1.h001", "dst": "dso", "kind": "k", "body": {"x": [1]},
           "bytes": 10, "sent": 0}
    inputs = {"telecom": {"outbox": {"MAS-0.mas": {"d1.h001": [msg]}}}}
    nxt = sim.step(0, inputs, 10**9)
    msg["body"]["x"].append(2)  # sender mutates after the step
    out = sim.get_data({"telecom": ["inbox", "events", "sent", "delivered", "lost",
                                    "bytes_sent", "latency_ms", "latency_mean_ms"]})
    json.dumps(out)
    got = out["telecom"]["inbox"]["dso"][0]
    assert got["body"] == {"x": [1]} and got["delivered"] == 1 and got["latency_ms"] == 1.0
    assert nxt is None
    assert out["telecom"]["events"]["telecom"][0]["delivered"] == 1
    assert sim.step(5, {}, 10**9) is None
    assert "inbox" not in sim.get_data({"telecom": ["inbox"]})["telecom"]
    assert set(META["models"]["Telecom"]["non-persistent"]) == {"inbox", "events"}


def test_meter_readings_are_carried_as_messages():
    sim = TelecomSim()
    sim.init("T", time_resolution=0.001, seed=3)
    sim.create(1, "Telecom", endpoints={"d1.*": "plc", "lfa.d1": "plc"})
    nxt = sim.step(60_000, {"telecom": {"readings": {"Meters-0.m": {"d1.h001": 1.5,
                                                                   "d1.h002": -0.7}}}}, 10**9)
    got, t = [], 60_000
    while nxt is not None:
        t = nxt
        nxt = sim.step(t, {}, 10**9)
        got += sim.get_data({"telecom": ["inbox"]})["telecom"].get("inbox", {}).get("lfa.d1", [])
    stats = sim.get_data({"telecom": ["sent", "delivered", "lost"]})["telecom"]
    assert stats["sent"]["d1.h001"] == 1.0 and stats["sent"]["d1.h002"] == 1.0
    assert len(got) + stats["lost"]["d1.h001"] + stats["lost"]["d1.h002"] == 2
    for m in got:
        assert m["kind"] == "reading" and m["body"]["value"] in (1.5, -0.7)
        assert m["delivered"] > 60_000 and m["id"].startswith("rd:")


@pytest.mark.parametrize("value", [
    {"a": [1.5, None, True, "s", {"b": [2, 3]}], "c": b"raw", "d": 2**70},  # plain JSON (big int: not)
    {"a": (1.0, [2.0]), "b": [(3, 4)]},  # tuples: copied as lists
    {"a": np.float64(1.5), "b": [np.arange(3)], 3: {"x": [1]}},  # numpy values shared, int key
    [1, [2, [3, {"k": []}]]],
    (1, 2), 4.5, "text", None,
])
def test_json_copy_is_a_deep_copy_with_tuples_as_lists(value):
    def expect(v):  # the copy as the definition says: containers anew, tuples as lists, the rest shared
        if isinstance(v, dict):
            return {k: expect(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [expect(x) for x in v]
        return v

    def containers(v):
        if isinstance(v, dict):
            return [v] + [c for x in v.values() for c in containers(x)]
        if isinstance(v, (list, tuple)):
            return [v] + [c for x in v for c in containers(x)]
        return []

    got = json_copy(value)
    want = expect(value)
    assert repr(got) == repr(want)  # same values, same types (list, not tuple), same key order
    if containers(value):
        originals = {id(c) for c in containers(value)}
        assert not any(id(c) in originals for c in containers(got))  # nothing shared with the original
    for a, b in ((value, got),) if isinstance(value, dict) else ():
        for k in a:  # numpy values are shared as they are
            if isinstance(a[k], np.generic):
                assert b[k] is a[k]
