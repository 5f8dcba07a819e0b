"""The few lines `cosim run` prints after a controlled run: MAS gap, messages, congestion, flexibility."""

from __future__ import annotations

from pathlib import Path

from cosim.kpi import compute_kpis


def run_summary(path: str | Path) -> list[str]:
    k = compute_kpis(str(path))
    lines = []
    total = k.get("total") or {}
    run = k.get("run") or {}
    if total.get("objective_eur") is not None:
        basis = "the community's exchange at the transformer" if total.get("objective_community") else \
            "the households' own energy"
        lines.append(f"window {run.get('window_h', 0):g} h from {run.get('start')}: cost {total['cost_eur']:.2f} EUR = "
                     f"objective {total['objective_eur']:.2f} EUR (energy {total['objective_energy_eur']:.2f} EUR, "
                     f"{basis} netted per {total['objective_netting_min']:g} min, + other terms "
                     f"{total['objective_eur'] - total['objective_energy_eur']:.2f} EUR) + terminal adjustment "
                     f"{total['terminal_adjustment_eur']:+.2f} EUR (stored energy "
                     f"{total['stored_start_kwh']:.1f} -> {total['stored_end_kwh']:.1f} kWh)")
    if total.get("bill_eur") is not None:
        lines.append(f"sum of household bills {total['bill_eur']:.2f} EUR, peak {total.get('peak_kw', float('nan')):.1f} kW")
    mas = k.get("mas") or {}
    if mas.get("negotiations"):
        gap = (f"planned gap to the central optimum per negotiation: mean {mas['gap_mean_pct']:.2f} %, "
               f"max {mas['gap_max_pct']:.2f} %" if mas.get("gap_mean_pct") is not None else "no central reference")
        lines.append(f"{mas['negotiations']} negotiations ({mas['negotiations_partial']} partial, "
                     f"{mas['negotiations_failed']} failed), rounds mean {mas.get('rounds_mean') or 0:.1f}; {gap}")
    tel = k.get("telecom") or {}
    if tel.get("messages_sent"):
        lat = tel.get("latency_ms") or {}
        lines.append(f"messages {tel['messages_sent']} ({tel.get('bytes_sent', 0) / 1e6:.1f} MB), lost "
                     f"{tel.get('messages_lost', 0)}, latency p50 {lat.get('p50', float('nan')):.0f} ms, "
                     f"p99 {lat.get('p99', float('nan')):.0f} ms")
    grid = k.get("grid") or {}
    if grid.get("congestion_min") is not None:
        t_max = (grid.get("trafo_loading_pct") or {}).get("max")
        v_min = grid.get("v_violation_min")
        lines.append(f"congestion {grid['congestion_min']:.0f} min (trafo max "
                     f"{'n/a' if t_max is None else f'{t_max:.1f} %'}, limit {grid['trafo_limit_pct']:.0f} %), "
                     f"voltage violations {'n/a' if v_min is None else f'{v_min:.0f} min'}")
    if grid.get("nonconverged_steps"):
        lines.append(f"power flow did not converge in {grid['nonconverged_steps']} steps: they have no voltages "
                     "or loadings and are not counted in the grid KPIs")
    flex = k.get("flexibility") or {}
    if flex.get("requests"):
        def kwh(key):
            return "n/a" if flex.get(key) is None else f"{flex[key]:.1f} kWh"
        lines.append(f"flexibility: requested {kwh('requested_kwh')}, ordered {kwh('ordered_kwh')}, "
                     f"delivered {kwh('delivered_kwh')}; {flex['orders']} orders, "
                     f"{flex['settlements']} settled" + (
                         f" ({flex['settlements_partial']} partially: the run stopped before their end or readings; "
                         "a longer evaluation.cooldown settles them)" if flex.get("settlements_partial") else ""))
    return lines
