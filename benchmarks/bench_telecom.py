"""Throughput of the telecom simulator: the pure model, the mosaik API object stepped directly, and
a mosaik World (in-process) with a flooding MAS stand-in.

    python benchmarks/bench_telecom.py [--homes 200] [--rounds 50] [--patch-progress]

``--patch-progress`` drops cancelled futures from mosaik 3.6's ``Progress`` before every update:
without it, every simulator that waits idle (event-based, no next step) leaves one cancelled future
per wake-up in its progress list, and each progress update walks all of them, so mosaik's own cost
grows quadratically with the number of event steps (not the telecom simulator's doing).
"""

from __future__ import annotations

import argparse
import time

import mosaik
import mosaik_api_v3

from simulators.telecom import TelecomSim
from simulators.telecom_model import TelecomModel

ENDPOINTS = {"d1.*": "plc", "lfa.d1": "plc", "d2.*": "lte", "lfa.d2": "fibre", "dso": "fibre",
             "d3.*": "nbiot", "d4.*": "dsl", "lfa.*": "fibre"}


def homes(n: int) -> list[str]:
    return [f"d{1 + i % 4}.h{i // 4:03d}" for i in range(n)]


def msgs_round(ids: list[str], r: int, t: int) -> list[dict]:
    return [{"id": f"{a}:{r}", "src": a, "dst": f"lfa.{a.split('.')[0]}", "kind": "bid",
             "body": {"p": [0.1, 0.2, 0.3], "r": r}, "bytes": 120, "sent": t} for a in ids]


def bench_model(n_homes: int, rounds: int, gap: int, default: str = "lte",
                endpoints=ENDPOINTS) -> tuple[int, float]:
    ids = homes(n_homes)
    m = TelecomModel(endpoints=endpoints, default=default, seed=1)
    t0 = time.perf_counter()
    for r in range(rounds):
        t = r * gap
        m.advance(t)
        for msg in msgs_round(ids, r, t):
            m.send(msg, t)
    recs = m.drain()
    return len(recs), time.perf_counter() - t0


def bench_sim_direct(n_homes: int, rounds: int, gap: int) -> tuple[int, int, float]:
    """TelecomSim driven like mosaik would (step at sends and at requested times)."""
    ids = homes(n_homes)
    sim = TelecomSim()
    sim.init("T", time_resolution=0.001, seed=1)
    sim.create(1, "Telecom", endpoints=ENDPOINTS, default="lte")
    sends = {r * gap: r for r in range(rounds)}
    t, nxt, steps, delivered = 0, None, 0, 0
    t0 = time.perf_counter()
    until = rounds * gap + 600_000
    while t is not None and t < until:
        r = sends.get(t)
        inputs = ({"telecom": {"outbox": {"MAS-0.mas": {"x": msgs_round(ids, r, t)}}}}
                  if r is not None else {})
        nxt = sim.step(t, inputs, until)
        steps += 1
        out = sim.get_data({"telecom": ["inbox", "events", "sent", "delivered"]})["telecom"]
        delivered += sum(len(v) for v in out.get("inbox", {}).values())
        cands = [x for x in (nxt, next((s for s in sorted(sends) if s > t), None)) if x is not None]
        t = min(cands) if cands else None
    return delivered, steps, time.perf_counter() - t0


FLOOD_META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {"Flood": {"public": True, "params": ["ids", "rounds", "gap"],
                         "attrs": ["inbox", "outbox"], "trigger": ["inbox"],
                         "non-persistent": ["outbox"]}},
}


class Flood(mosaik_api_v3.Simulator):
    """MAS stand-in: every ``gap`` ticks each home sends one bid to its LFA; counts arrivals."""

    received = 0

    def __init__(self):
        super().__init__(FLOOD_META)
        self.out: dict = {}

    def create(self, num, model, ids, rounds, gap):
        self.ids, self.rounds, self.gap = ids, rounds, gap
        Flood.received = 0
        return [{"eid": "mas", "type": model}]

    def step(self, time, inputs, max_advance):
        for _src, inbox in inputs.get("mas", {}).get("inbox", {}).items():
            Flood.received += sum(len(v) for v in inbox.values())
        self.out = {}
        if time % self.gap == 0 and time // self.gap < self.rounds:
            self.out = {"all": msgs_round(self.ids, time // self.gap, time)}
        nxt = (time // self.gap + 1) * self.gap
        return nxt if nxt // self.gap < self.rounds else None

    def get_data(self, outputs):
        return {"mas": {"outbox": self.out}} if self.out else {"mas": {}}


def bench_world(n_homes: int, rounds: int, gap: int, quantum_ms: float = 0) -> tuple[int, float]:
    world = mosaik.World({"Telecom": {"python": "simulators.telecom:TelecomSim"},
                          "Flood": {"python": f"{__name__}:Flood"}},
                         time_resolution=0.001, configure_logging=False, skip_greetings=True)
    tel = world.start("Telecom", seed=1).Telecom(endpoints=ENDPOINTS, default="lte",
                                                 quantum_ms=quantum_ms)
    mas = world.start("Flood").Flood(ids=homes(n_homes), rounds=rounds, gap=gap)
    world.connect(mas, tel, "outbox")
    world.connect(tel, mas, "inbox", time_shifted=1)
    t0 = time.perf_counter()
    world.run(until=rounds * gap + 600_000, print_progress=False)
    return Flood.received, time.perf_counter() - t0


def patch_progress() -> None:
    import mosaik.progress as progress

    orig = progress.Progress.set

    def set_(self, t):
        self._futures = [(s, f) for s, f in self._futures if not f.cancelled()]
        return orig(self, t)

    progress.Progress.set = set_


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--homes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--gap", type=int, default=60_000, help="ticks between rounds")
    ap.add_argument("--patch-progress", action="store_true")
    a = ap.parse_args()
    if a.patch_progress:
        patch_progress()
    n_msgs = a.homes * a.rounds
    print(f"{a.homes} homes x {a.rounds} rounds = {n_msgs} messages (PLC/LTE/NB-IoT/DSL mix)")
    n, dt = bench_model(a.homes, a.rounds, a.gap)
    print(f"model, mixed techs:        {n / dt:10.0f} msg/s  ({dt:.2f} s)")
    n, dt = bench_model(a.homes, a.rounds, a.gap, default="plc", endpoints={})
    print(f"model, all PLC (queues):   {n / dt:10.0f} msg/s  ({dt:.2f} s)")
    n, dt = bench_model(a.homes, a.rounds, a.gap, default="ideal", endpoints={})
    print(f"model, ideal (fast path):  {n / dt:10.0f} msg/s  ({dt:.2f} s)")
    n, steps, dt = bench_sim_direct(a.homes, a.rounds, a.gap)
    print(f"TelecomSim stepped direct: {n_msgs / dt:10.0f} msg/s  ({dt:.2f} s, {steps} steps, "
          f"{n} delivered)")
    n, dt = bench_world(a.homes, a.rounds, a.gap)
    note = "  [Progress patched]" if a.patch_progress else ""
    print(f"mosaik World in-process:   {n_msgs / dt:10.0f} msg/s  ({dt:.2f} s, {n} delivered){note}")
    n, dt = bench_world(a.homes, a.rounds, a.gap, quantum_ms=100)
    print(f"  same, quantum_ms=100:    {n_msgs / dt:10.0f} msg/s  ({dt:.2f} s, {n} delivered){note}")


if __name__ == "__main__":
    main()
