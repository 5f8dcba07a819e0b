"""Business-model value flows of a controlled run against its baseline (`cosim value`).

The baseline is the same scenario run without the controller. :func:`value_flows` prices the
*differences* between the two runs with the scenario's ``economics`` (:mod:`cosim.economics`) and
returns a ledger of transfers ``{model, payer, payee, amount_eur, basis}``: the change, caused by the
controller, of the money ``payer`` pays ``payee``. Every amount is rounded to the cent once and all
totals are sums of those cents, so the ledger balances to the cent by construction (Σ of all
actors' net = 0). A negative change is written as a positive transfer in the other direction.
Avoided costs that are nobody's income (the DSO's deferred reinforcement) are listed separately
under ``avoided_costs``.

Actors: ``prosumer`` (all households together), ``lfa`` (local flexibility aggregator), ``dso``,
``retailer`` (supplier and balance responsible party, BRP), ``telecom`` (operator), ``data_service``
(forecast and data provider), ``market`` (wholesale market, external). Quantities are from
:mod:`cosim.kpi`; Δx = x(controlled) − x(baseline); *months* = duration / 30.4375 d; *N* = households;
*buyer* = the service buyer: the prosumer in UC1 (home agent), the LFA in UC2/UC3.

===== ===================================== ==================== ===========================================
model what                                  payer → payee        amount
===== ===================================== ==================== ===========================================
B1    flexibility bought from prosumers     lfa → prosumer       flex_purchase × Σ_h ½∫|P_h − P_h^base| dt
B2    wholesale sourcing of the portfolio   retailer → market    Δ Σ_t (Σ_h P_h)·dt·market_price(t) + ΔS ×
                                                                 market price in the cheapest tariff band
B3    contracted flexibility (USEF, DSO)    dso → lfa            Σ settlement payments (or delivered kWh ×
                                                                 contracted_price_dso); penalties lfa → dso
B3    contracted flexibility (BRP)          retailer → lfa       contracted_price_brp × max(Σ_d ½∫|D_d −
                                                                 D_d^base| dt − DSO-delivered kWh, 0)
B4    time-of-use energy bill               prosumer → retailer  Δ Σ_h (ToU import cost − feed-in) +
                                                                 terminal price × ΔS
B5    self-balancing (network charge)       prosumer → dso       grid_fee × (Δ import kWh + ΔS)
B6    peak / capacity tariff                prosumer → dso       capacity_tariff × Δ Σ_h Σ_month peak15_h
                                                                 × month fraction
B7    local energy community (shared kWh)   retailer → lfa       community_shared × Δ shared kWh
B8    congestion management                 dso → lfa            congestion_value × (overload kWh^base −
                                                                 overload kWh)
B9    deferred reinforcement                dso → lfa            deferral_share × A; A = ΔkVA ×
                                                                 reinforcement_cost × annuity factor ×
                                                                 duration/year (A is the DSO's avoided cost)
B10   telecom bundle                        buyer → telecom      telecom_bundle × N × months
B11   forecast service                      buyer → data_service forecast_fee × N × months
B12   data service                          buyer → data_service data_fee × N × months
B15   telecom per message                   buyer → telecom      price_per_message × Δ messages sent
B16   telecom per MB                        buyer → telecom      price_per_mb × Δ bytes sent / 10^6
===== ===================================== ==================== ===========================================

ΔS = Δ stored energy drawn in the window (grid kWh, ``stored_drawn_kwh`` of :mod:`cosim.objective`):
energy a run takes from its batteries, EVs and building heat beyond the baseline is bought (and its
network charge paid) after the window, energy it leaves there is not; each is its own transfer line.
D_d is the summed power of district d; "shared kWh" is energy exported by some households and
imported by others of a district in the same interval; overload kWh is the transformer's energy above
its limit, reinforcement kVA the rating increase that keeps its largest loading at the limit
(:func:`cosim.kpi.trafo_overload`), ΔkVA = kVA^base − kVA.

Out of scope: **B13, B14, B17** — they price services outside the simulated LV energy/telecom
system (no simulated quantity to price), see ``cosim.economics.OUT_OF_SCOPE``.

Default business models by use case (``economics.business_models: auto``):
UC1 (one home): B4 B5 B6 B10 B11 B12 B15 B16; UC2 (one district): + B1 B2 B3 B7 (+ B8 B9 with a
grid); UC3 (several districts or a DSO agent): all.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from cosim.compare import realised_gaps
from cosim.economics import ALL_MODELS, OUT_OF_SCOPE, Economics, price_table_per_minute
from cosim.errors import InputError
from cosim.kpi import (
    compute_kpis,
    district_of,
    energy_data,
    monthly_peak_charge_kw_months,
    trafo_overload,
    use_case,
)
from cosim.kpi_text import text_table
from cosim.results import Results

ACTORS = ("prosumer", "lfa", "dso", "retailer", "telecom", "data_service", "market")
MONTH_H = 30.4375 * 24
YEAR_H = 365.25 * 24

UC_MODELS = {
    "uc1": ["B4", "B5", "B6", "B10", "B11", "B12", "B15", "B16"],
    "uc2": ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B10", "B11", "B12", "B15", "B16"],
    "uc3": list(ALL_MODELS),
}


def cents(x: float) -> int:
    """€ -> integer cents, half away from zero (from the shortest repr, so 0.125 -> 13)."""
    return int(Decimal(repr(float(x))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)


def _eur(c: int) -> float:
    return round(c / 100.0, 2)


class Ledger:
    def __init__(self):
        self.transfers: list[dict] = []
        self.avoided: list[dict] = []
        self.skipped: list[dict] = []

    def add(self, model: str, payer: str, payee: str, amount_eur: float, basis: str) -> None:
        c = cents(amount_eur)
        if c < 0:
            payer, payee, c = payee, payer, -c
            basis += " (negative: reversed direction)"
        self.transfers.append({"model": model, "payer": payer, "payee": payee, "amount_eur": _eur(c),
                               "cents": c, "basis": basis})

    def add_terminal(self, model: str, payer: str, payee: str, amount_eur: float, basis: str) -> None:
        """The stored-energy line of a model (ΔS), left out when it rounds to 0 cents."""
        if cents(amount_eur):
            self.add(model, payer, payee, amount_eur, "terminal adjustment: " + basis)

    def avoid(self, model: str, actor: str, amount_eur: float, basis: str) -> None:
        self.avoided.append({"model": model, "actor": actor, "amount_eur": _eur(cents(amount_eur)),
                             "cents": cents(amount_eur), "basis": basis})

    def skip(self, model: str, reason: str) -> None:
        self.skipped.append({"model": model, "reason": reason})


def _axis(res: Results) -> str:
    """The evaluated rows of *res*: how many, and from when to when after the simulation's start."""
    if res.T == 0:
        return "0 rows"
    return f"{res.T} rows, {res.t_ms[0] / 3.6e6:g} to {res.t_ms[-1] / 3.6e6:g} h after the simulation's start"


def _open(x: str | Path | Results) -> tuple[Results, bool]:
    return (x, False) if isinstance(x, Results) else (Results(x), True)


def _n(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def _sub(x: float, nd: int = 3) -> str:
    """*x* as the subtrahend of an ``a − b`` basis: in parentheses when negative (not ``a − -b``)."""
    return f"({x:.{nd}f})" if x < 0 else _n(x, nd)


def _messages(kpis: dict) -> tuple[float, float] | None:
    t = kpis.get("telecom")
    if not t or t.get("messages_sent") is None:
        return None
    return float(t["messages_sent"] or 0), float(t.get("bytes_sent") or 0)


def _settlements(res: Results, kpis: dict) -> dict | None:
    fl = kpis.get("flexibility") or {}
    if fl.get("settlements"):
        return {"payment": float(fl.get("settlement_payment_eur") or 0),
                "delivered": float(fl.get("settled_delivered_kwh") or 0),
                "ordered": float(fl.get("settled_ordered_kwh") or 0),
                "penalty": float(fl.get("settlement_penalty_eur") or 0),
                "source": f"{fl['settlements']} USEF settlements"}
    if fl.get("delivered_kwh") is not None:
        return {"payment": None, "delivered": float(fl["delivered_kwh"]), "penalty": 0.0,
                "source": "flex_delivered series"}
    return None


# the fields of a scenario that make its households, devices, weather and grid: a baseline must have them all
# as the run has (the controller, its telecom, the DSO, recording and economics may differ)
PHYSICAL = ("start", "timezone", "step", "seed", "location", "districts", "meters", "grid", "substations")


def _check_baseline(run: Results, base: Results) -> list[str]:
    """Refuse (InputError, one line) a baseline that is not the run's scenario without a controller; warnings
    for a different replicate (noise streams and tie-break drawn afresh, same households)."""
    rs, bs = run.scenario, base.scenario
    if rs is None or bs is None:  # files without their scenario: only the time axis and households are checked
        return []
    problems = []
    if bs.control is not None and bs.control.mode != "none":
        problems.append(f"it was run with control mode '{bs.control.mode}' (run the scenario with --control none)")
    differ = [f for f in PHYSICAL if getattr(rs, f) != getattr(bs, f)]
    if differ:
        what = ", ".join(f"{f} ({getattr(bs, f)} vs {getattr(rs, f)})" if f in ("seed", "start", "step") else f
                         for f in differ)
        problems.append(f"its scenario {bs.name!r} differs from {rs.name!r} of the run in {what}")
    if problems:
        raise InputError(f"{base.path}: not a baseline of {run.path} (the same scenario without a controller): "
                         + "; ".join(problems))
    if rs.replicate != bs.replicate:
        return [f"baseline replicate {bs.replicate} differs from the run's {rs.replicate} (other meter noise, "
                "telecom draws and tie-break)"]
    return []


def default_models(uc: str, has_grid: bool) -> list[str]:
    models = list(UC_MODELS[uc])
    if uc == "uc2" and has_grid:
        models += ["B8", "B9"]
    return sorted(models, key=lambda m: int(m[1:]))


def value_flows(results: str | Path | Results, baseline: str | Path | Results,
                economics: Economics | None = None) -> dict:
    """Ledger of business-model value flows of *results* against *baseline* (module docstring)."""
    run, own_r = _open(results)
    base, own_b = _open(baseline)
    try:
        return _value_flows(run, base, economics)
    finally:
        if own_r:
            run.close()
        if own_b:
            base.close()


def _value_flows(run: Results, base: Results, economics: Economics | None) -> dict:
    eco = economics or run.economics()
    pr = eco.prices
    warnings: list[str] = []
    if run.T == 0 or base.T == 0:
        raise InputError(f"{run.path if run.T == 0 else base.path}: no recorded rows")
    if run.T != base.T or not np.array_equal(run.t_ms, base.t_ms):
        raise InputError(f"{base.path}: baseline time axis ({_axis(base)}) differs from {run.path} "
                         f"({_axis(run)}): run the baseline with the same start, warm-up, duration and recording")
    en_r, en_b = energy_data(run), energy_data(base)
    if en_r is None or en_b is None:
        raise InputError(f"{(base if en_b is None else run).path}: no households/P or meters/P to compare")
    if sorted(en_r.ids) != sorted(en_b.ids):
        only = sorted(set(en_r.ids) ^ set(en_b.ids))
        raise InputError(f"{base.path}: baseline households differ from the run's ({', '.join(only[:5])}...)")
    warnings += _check_baseline(run, base)
    ids = en_r.ids
    order = [en_b.ids.index(h) for h in ids]
    Pb = en_b.P[:, order]
    kr, kb = compute_kpis(run), compute_kpis(base)
    warnings += realised_gaps([kr, kb], [Path(run.path).stem, Path(base.path).stem])[1]
    dt_h = run.dt_h
    hours = run.duration_h
    months = hours / MONTH_H
    N = len(ids)
    uc = use_case(run)
    has_grid = run.has("grid") and base.has("grid")
    models = default_models(uc, has_grid) if eco.business_models == "auto" else list(eco.business_models)
    buyer = "prosumer" if uc == "uc1" else "lfa"
    L = Ledger()
    qty: dict[str, Any] = {"households": N, "duration_h": round(hours, 4), "months": round(months, 6)}

    # shared quantities
    act_hh = float(0.5 * (np.abs(en_r.P - Pb) * dt_h[:, None]).sum())
    act_d = 0.0
    for d in sorted({district_of(h) for h in ids}):
        cols = [j for j, h in enumerate(ids) if district_of(h) == d]
        act_d += float(0.5 * (np.abs(en_r.P[:, cols].sum(axis=1) - Pb[:, cols].sum(axis=1)) * dt_h).sum())
    qty["flex_activated_household_kwh"] = round(act_hh, 4)
    qty["flex_activated_district_kwh"] = round(act_d, 4)
    sett = _settlements(run, kr)
    dso_delivered = sett["delivered"] if sett else 0.0
    tr, tb = (k.get("total") or {} for k in (kr, kb))
    # stored energy the controlled run drew in the window beyond the baseline's (grid kWh): bought later
    drawn = (tr["stored_drawn_kwh"] - tb["stored_drawn_kwh"]
             if tr.get("stored_drawn_kwh") is not None and tb.get("stored_drawn_kwh") is not None else None)
    qty["stored_drawn_kwh"] = round(drawn, 4) if drawn is not None else None

    for m in models:
        if m == "B1":
            L.add(m, "lfa", "prosumer", pr.flex_purchase * act_hh,
                  f"{_n(act_hh)} kWh activated household flexibility (½∫|P − P of the baseline run|dt) × "
                  f"{pr.flex_purchase} €/kWh")
        elif m == "B2":
            mp = pr.market_prices(run.local_minutes() / 60.0)
            cr = float((en_r.P.sum(axis=1) * dt_h * mp).sum())
            cb = float((Pb.sum(axis=1) * dt_h * mp).sum())
            price = "hourly market profile" if pr.market_profile else f"{pr.market_price} €/kWh"
            L.add(m, "retailer", "market", cr - cb,
                  f"portfolio net energy at {price}: {_n(cr, 4)} − {_sub(cb, 4)} € (controlled − baseline)")
            if drawn is not None:
                # bought back where the terminal price is (the tariff's cheapest import minutes of the day)
                imp = price_table_per_minute(eco.tariff)[0]
                p_mean = float(np.mean(pr.market_prices(np.flatnonzero(imp == imp.min()) / 60.0)))
                L.add_terminal(m, "retailer", "market", p_mean * drawn,
                               f"stored energy drawn in the window {_n(drawn)} kWh (controlled − baseline) × "
                               f"{p_mean:.4f} €/kWh market price in the cheapest tariff band (bought later)")
        elif m == "B3":
            if sett is not None:
                if sett["payment"] is not None:
                    # paid per slot for min(delivered, ordered) (simulators/mas/dso.py): never more than ordered
                    L.add(m, "dso", "lfa", sett["payment"], f"{sett['source']}: payments for "
                          f"min(delivered, ordered) per slot of {_n(sett['ordered'])} kWh ordered "
                          f"({_n(sett['delivered'])} kWh delivered)")
                else:
                    L.add(m, "dso", "lfa", sett["delivered"] * pr.contracted_price_dso,
                          f"{_n(sett['delivered'])} kWh delivered ({sett['source']}) × "
                          f"{pr.contracted_price_dso} €/kWh")
                if sett["penalty"]:
                    L.add(m, "lfa", "dso", sett["penalty"], f"{sett['source']}: penalties for under-delivery")
            elif uc == "uc3":
                L.skip(m + " (DSO)", "no flexibility settlements or flex_delivered series in the results")
            brp = max(act_d - dso_delivered, 0.0)
            L.add(m, "retailer", "lfa", pr.contracted_price_brp * brp,
                  f"max({_n(act_d)} kWh activated district flexibility (½∫|D−D_base|dt) − "
                  f"{_n(dso_delivered)} kWh DSO-delivered, 0) × {pr.contracted_price_brp} €/kWh")
        elif m == "B4":
            br = float((en_r.import_cost - en_r.feed_in).sum())
            bb = float((en_b.import_cost - en_b.feed_in).sum())
            L.add(m, "prosumer", "retailer", br - bb,
                  f"ToU energy bill {_n(br, 4)} − {_sub(bb, 4)} € (controlled − baseline, from {en_r.bill_source})")
            if tr.get("terminal_adjustment_eur") is not None and tb.get("terminal_adjustment_eur") is not None:
                dt_eur = tr["terminal_adjustment_eur"] - tb["terminal_adjustment_eur"]
                L.add_terminal(m, "prosumer", "retailer", dt_eur,
                               f"stored energy drawn in the window {_n(tr['stored_drawn_kwh'])} − "
                               f"{_sub(tb['stored_drawn_kwh'])} kWh × {tr['terminal_price_eur_per_kwh']:.4f} €/kWh "
                               "(bought later under the tariff)")
        elif m == "B5":
            di = float(en_r.import_kwh.sum() - en_b.import_kwh.sum())
            L.add(m, "prosumer", "dso", pr.grid_fee * di, f"Δ import {_n(di)} kWh × {pr.grid_fee} €/kWh grid fee")
            if drawn is not None:
                L.add_terminal(m, "prosumer", "dso", pr.grid_fee * drawn,
                               f"stored energy drawn in the window {_n(drawn)} kWh (controlled − baseline, "
                               f"imported later) × {pr.grid_fee} €/kWh grid fee")
        elif m == "B6":
            pk_r = float(monthly_peak_charge_kw_months(run, en_r.P).sum())
            pk_b = float(monthly_peak_charge_kw_months(base, Pb).sum())
            L.add(m, "prosumer", "dso", pr.capacity_tariff * (pk_r - pk_b),
                  f"Σ households' monthly 15-min peak × month fraction {_n(pk_r, 4)} − {_n(pk_b, 4)} kW·month × "
                  f"{pr.capacity_tariff} €/kW-month")
        elif m == "B7":
            sr = float((kr.get("total") or {}).get("shared_kwh") or 0)
            sb = float((kb.get("total") or {}).get("shared_kwh") or 0)
            L.add(m, "retailer", "lfa", pr.community_shared * (sr - sb),
                  f"Δ energy shared between neighbours {_n(sr)} − {_n(sb)} kWh × {pr.community_shared} €/kWh")
        elif m in ("B8", "B9"):
            ov_r, ov_b = trafo_overload(run), trafo_overload(base)
            if ov_r is None or ov_b is None:
                L.skip(m, "no grid/trafo_loading and transformer ratings (trafo_kva) in both files")
                continue
            if m == "B8":
                avoided = ov_b[0] - ov_r[0]
                L.add(m, "dso", "lfa", pr.congestion_value * avoided,
                      f"avoided transformer overload {_n(ov_b[0])} − {_n(ov_r[0])} kWh × "
                      f"{pr.congestion_value} €/kWh")
            else:
                dkva = ov_b[1] - ov_r[1]
                af = pr.annuity_factor
                annuity = dkva * pr.reinforcement_cost * af * hours / YEAR_H
                basis = (f"deferred reinforcement {_n(ov_b[1])} − {_n(ov_r[1])} kVA × {pr.reinforcement_cost} €/kVA "
                         f"× annuity {af:.5f}/a ({pr.lifetime_years:g} a, {pr.interest:g}) × {_n(hours / YEAR_H, 6)} a")
                L.avoid(m, "dso", annuity, basis)
                L.add(m, "dso", "lfa", pr.deferral_share * annuity, f"{pr.deferral_share} × ({basis})")
        elif m in ("B10", "B11", "B12"):
            fee, payee, what = {
                "B10": (pr.telecom_bundle, "telecom", "telecom bundle"),
                "B11": (pr.forecast_fee, "data_service", "forecast service"),
                "B12": (pr.data_fee, "data_service", "data service"),
            }[m]
            L.add(m, buyer, payee, fee * N * months,
                  f"{what}: {fee} €/household-month × {N} households × {months:.4f} months")
        elif m in ("B15", "B16"):
            mr, mb = _messages(kr), _messages(kb)
            if mr is None:
                L.skip(m, "no telecom data (/events/messages or telecom population) in the results")
                continue
            mb = mb or (0.0, 0.0)
            if m == "B15":
                dm = mr[0] - mb[0]
                L.add(m, buyer, "telecom", pr.price_per_message * dm,
                      f"Δ messages {mr[0]:.0f} − {mb[0]:.0f} × {pr.price_per_message} €/message")
            else:
                dmb = (mr[1] - mb[1]) / 1e6
                L.add(m, buyer, "telecom", pr.price_per_mb * dmb,
                      f"Δ data {dmb:.6f} MB × {pr.price_per_mb} €/MB")

    # the DSO's USEF payments (B3) already buy the congestion relief that B8 (and B9's share) price again
    bought = any(t["model"] == "B3" and t["payer"] == "dso" and t["cents"] for t in L.transfers)
    again = sorted({t["model"] for t in L.transfers if t["model"] in ("B8", "B9") and t["payee"] == "lfa"
                    and t["cents"]})
    if bought and again:
        warnings.append(f"B3 (the DSO's USEF settlement payments) and {' and '.join(again)} both pay the LFA for the "
                        "same congestion relief: alternative remunerations, not additive; the DSO's and the LFA's "
                        "totals count it twice (choose with economics.business_models)")

    for m in sorted(OUT_OF_SCOPE):
        L.skip(m, OUT_OF_SCOPE[m])

    # totals from integer cents: balances to the cent by construction
    actors = {a: {"paid": 0, "received": 0, "avoided": 0} for a in ACTORS}
    by_model: dict[str, dict[str, int]] = {}
    for t in L.transfers:
        actors[t["payer"]]["paid"] += t["cents"]
        actors[t["payee"]]["received"] += t["cents"]
        bm = by_model.setdefault(t["model"], {})
        bm[t["payer"]] = bm.get(t["payer"], 0) - t["cents"]
        bm[t["payee"]] = bm.get(t["payee"], 0) + t["cents"]
    for a in L.avoided:
        actors[a["actor"]]["avoided"] += a["cents"]
    actor_out = {
        a: {"paid_eur": _eur(v["paid"]), "received_eur": _eur(v["received"]),
            "net_eur": _eur(v["received"] - v["paid"]), "net_cents": v["received"] - v["paid"],
            "avoided_cost_eur": _eur(v["avoided"]),
            "value_eur": _eur(v["received"] - v["paid"] + v["avoided"])}
        for a, v in actors.items()
    }
    balance = sum(v["net_cents"] for v in actor_out.values())
    return {
        "run": run.path,
        "baseline": base.path,
        "use_case": uc,
        "business_models": models,
        "prices": pr.model_dump(),
        "tariff": eco.tariff.model_dump(),
        "quantities": qty,
        "transfers": L.transfers,
        "avoided_costs": L.avoided,
        "skipped": L.skipped,
        "actors": actor_out,
        "by_model": {m: {a: _eur(c) for a, c in v.items()} for m, v in by_model.items()},
        "balance_eur": _eur(balance),
        "warnings": warnings,
    }


def value_text(ledger: dict) -> str:
    out = [f"{ledger['run']} against baseline {ledger['baseline']} ({ledger['use_case']}; "
           f"models {' '.join(ledger['business_models'])})"]
    out += [f"warning: {w}" for w in ledger.get("warnings", [])]
    out += ["", "Transfers (change caused by the controller)",
            text_table(["model", "payer", "payee", "€", "basis"],
                       [[t["model"], t["payer"], t["payee"], f"{t['amount_eur']:.2f}", t["basis"]]
                        for t in ledger["transfers"]], left=(0, 1, 2, 4))]
    act = [a for a, v in ledger["actors"].items() if v["paid_eur"] or v["received_eur"] or v["avoided_cost_eur"]]
    out += ["", "Per actor (€)",
            text_table(["actor", "paid", "received", "net", "avoided cost", "value"],
                       [[a] + [f"{ledger['actors'][a][k]:.2f}" for k in
                               ("paid_eur", "received_eur", "net_eur", "avoided_cost_eur", "value_eur")]
                        for a in act])]
    models = list(ledger["by_model"])
    if models:
        out += ["", "Net per business model and actor (€)",
                text_table(["actor"] + models,
                           [[a] + [f"{ledger['by_model'][m][a]:.2f}" if a in ledger["by_model"][m] else ""
                                   for m in models] for a in act])]
    out.append(f"\nbalance over all actors: {ledger['balance_eur']:.2f} €")
    if ledger["avoided_costs"]:
        out += ["Avoided costs:"] + [f"  {a['model']} {a['actor']}: {a['amount_eur']:.2f} € ({a['basis']})"
                                     for a in ledger["avoided_costs"]]
    if ledger["skipped"]:
        out += ["Not evaluated:"] + [f"  {s['model']}: {s['reason']}" for s in ledger["skipped"]]
    return "\n".join(out)
