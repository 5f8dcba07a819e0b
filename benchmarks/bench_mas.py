"""MAS benchmark: home LP solve times, negotiations (rounds, messages, time) vs the central LP, and the
MAS compute cost of a uc3-like day (146 households, 3 LFAs). Not a test; prints a table.

    /work/venv/bin/python benchmarks/bench_mas.py            # everything (~1-2 min)
    /work/venv/bin/python benchmarks/bench_mas.py --quick    # smaller day runs
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulators.devices.common import Clock
from simulators.devices.params import (ApplianceParams, BaseLoadParams, BatteryParams, DeviceSet, EVParams,
                                       HeatPumpParams, HouseholdSpec, PVParams)
from simulators.mas.central import solve_central
from simulators.mas.forecast import HouseholdKnowledge
from simulators.mas.home_lp import HomeModel
from simulators.mas.host import AgentHost
from simulators.mas.instances import demo_specs
from simulators.mas.tariff import DistrictObjective, Tariff

START = "2026-01-20T00:00:00+01:00"


def uc3_specs(n: int, district: str, seed: int) -> list[HouseholdSpec]:
    """uc3_physical shares: 40 % PV, 20 % battery, 25 % EV, 20 % heat pump, 50 % appliances."""
    rng = np.random.default_rng(seed)

    def own(share):
        m = np.zeros(n, bool)
        m[rng.choice(n, int(round(share * n)), replace=False)] = True
        return m

    pv, bat, ev, hp, app = own(0.4), own(0.2), own(0.25), own(0.2), own(0.5)
    return [HouseholdSpec(id=f"{district}.h{i + 1:03d}", devices=DeviceSet(
        base=BaseLoadParams(annual_kwh=float(rng.uniform(2500, 5000))),
        pv=PVParams(kwp=float(rng.uniform(3, 8))) if pv[i] else None,
        battery=BatteryParams(capacity_kwh=float(rng.uniform(5, 12))) if bat[i] else None,
        ev=EVParams() if ev[i] else None, heat_pump=HeatPumpParams() if hp[i] else None,
        appliances=[ApplianceParams()] if app[i] else [])) for i in range(n)]


def bench_home_lp(K: int):
    slot = 86400 // K
    specs = demo_specs(24)
    kn = HouseholdKnowledge(specs, START, 0)
    m0 = Clock(START).local_min(0)
    rng = np.random.default_rng(0)
    cold, warm, prox = [], [], []
    for s in specs:
        m = HomeModel(s, K, slot, Tariff(), community=True)
        if m.simple:
            continue
        m.update(m0, {}, kn.forecast(s.id, 0, K, slot))
        t = time.perf_counter()
        own = m.solve(own=True)
        cold.append(time.perf_counter() - t)
        for _ in range(5):
            lam = m.pi_imp + rng.normal(0, 0.03, K)
            t = time.perf_counter()
            m.solve(lam)
            warm.append(time.perf_counter() - t)
            t = time.perf_counter()
            m.solve(lam, target=own.p, sigma=0.02)
            prox.append(time.perf_counter() - t)
    print(f"home LP K={K:3d}: cold {1e3 * np.mean(cold):.2f} ms, warm (new price) {1e3 * np.mean(warm):.2f} ms, "
          f"warm proximal {1e3 * np.mean(prox):.2f} ms   ({len(cold)} households with storage-like devices)")


def negotiation(n: int, K: int, limit_per_home: float, max_rounds: int):
    slot = 86400 // K
    specs = uc3_specs(n, "d1", 1)
    kn = HouseholdKnowledge(specs, START, 0)
    host = AgentHost(Clock(START), K=K, slot_s=slot, replan_s=slot, loopback=True)
    obj = DistrictObjective(community=True, trafo_limit_kw=limit_per_home * n)
    host.add_homes("d1", specs, Tariff(), True, kn.forecast, ev_model=kn.ev_sessions)
    lfa = host.add_lfa("d1", None, obj, Tariff(), max_rounds=max_rounds, tol=0.005)
    rows = []
    for it in range(2):  # cold start, then the next slot with warm prices / plans
        t_now = it * slot * 1000
        m0 = host.stats["messages"]
        b0 = host.stats["bytes"]
        s0 = sum(h.solves for h in host.homes.values())
        t = time.perf_counter()
        host.step(t_now, {})
        el = time.perf_counter() - t
        neg = lfa.last
        models = [host.homes[m].model for m in lfa.members]
        res = solve_central(models, lfa._district_part(t_now))
        gap = 100 * (neg.ub - res.obj) / abs(res.obj)
        rows.append((it, neg.round, host.stats["messages"] - m0, (host.stats["bytes"] - b0) / 1e3,
                     sum(h.solves for h in host.homes.values()) - s0, el, gap, res.seconds, res.n_vars))
        for h in host.homes.values():  # follow the plan for one slot
            d = h.active.devices
            if "e" in d:
                host.set_state(h.id, "soc", float(d["e"][0]) / h.spec.devices.battery.capacity_kwh)
            if "T" in d:
                host.set_state(h.id, "T_in", float(d["T"][0]))
    for it, rounds, msgs, kb, solves, el, gap, tc, nv in rows:
        print(f"  N={n:3d} K={K} {'cold' if it == 0 else 'warm'}: rounds {rounds:2d}, messages {msgs:5d} "
              f"({kb:7.1f} kB), home LPs {solves:5d}, negotiation {el:6.2f} s, gap vs central {gap:6.2f} %"
              f" | central LP {tc:5.2f} s ({nv} vars)")


def day(K: int, replan_min: int, max_rounds: int, community: bool, n_total: int = 146, hours: int = 24):
    slot = 86400 // K
    host = AgentHost(Clock(START), K=K, slot_s=slot, replan_s=replan_min * 60, loopback=True)
    sizes = [n_total // 3 + (1 if i < n_total % 3 else 0) for i in range(3)]
    for i, n in enumerate(sizes):
        d = f"d{i + 1}"
        specs = uc3_specs(n, d, 10 + i)
        kn = HouseholdKnowledge(specs, START, 0)
        host.add_homes(d, specs, Tariff(), community, kn.forecast, ev_model=kn.ev_sessions)
        host.add_lfa(d, None, DistrictObjective(community=community, trafo_limit_kw=2.5 * n), Tariff(),
                     max_rounds=max_rounds, tol=0.01)
    t_all = cpu = 0.0
    rounds = []
    for k in range(hours * 3600 // slot):
        now = k * slot * 1000
        t, c = time.perf_counter(), time.process_time()
        host.step(now, {})
        t_all += time.perf_counter() - t
        cpu += time.process_time() - c
        for h in host.homes.values():
            j = h.slot_index(now)
            if j is None:
                continue
            d = h.active.devices
            if "e" in d:
                host.set_state(h.id, "soc", float(d["e"][j]) / h.spec.devices.battery.capacity_kwh)
            if "T" in d:
                host.set_state(h.id, "T_in", float(d["T"][j]))
            if "ev" in d:
                cap = h.spec.devices.ev.capacity_kwh
                cur = host.state[h.id].get("soc_ev", 0.8)
                host.set_state(h.id, "soc_ev", min(1.0, cur + float(d["ev"][j]) * slot / 3600
                                                   * h.spec.devices.ev.efficiency / cap))
    for e in sum((host.events[lid] for lid in host.lfas), []):
        if e["kind"] == "negotiation":
            rounds.append(e["rounds"])
    solves = sum(h.solves for h in host.homes.values())
    s_solve = sum(h.solve_s for h in host.homes.values())
    print(f"  day {hours} h, 146 households/3 LFAs, K={K} (slot {slot // 60} min), replan {replan_min} min, "
          f"max_rounds {max_rounds}, {'community' if community else 'individual tariff'}: "
          f"MAS {t_all:6.2f} s wall / {cpu:6.2f} s CPU, home LPs {solves} ({1e3 * s_solve / max(solves, 1):.2f} ms each), "
          f"negotiations {len(rounds)}, mean rounds {np.mean(rounds):.1f}, messages {host.stats['messages']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print("== home LP (HiGHS via SciPy, persistent model, warm start) ==")
    for K in (48, 96):
        bench_home_lp(K)
    print("== negotiation (community district, transformer limit 2.5 kW/household) vs central LP ==")
    for n in (50, 146):
        negotiation(n, 96, 2.5, 10)
    print("== MAS compute for a day (loopback, plans followed exactly) ==")
    hours = 6 if a.quick else 24
    day(96, 60, 3, False, hours=hours)
    day(96, 60, 3, True, hours=hours)
    day(48, 60, 3, True, hours=hours)
    day(48, 120, 5, True, hours=hours)
    if not a.quick:
        day(96, 15, 3, True, hours=hours)


if __name__ == "__main__":
    main()
