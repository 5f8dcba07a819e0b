"""The few lines `cosim run` prints after a controlled run: MAS gap, messages, congestion, flexibility."""

from __future__ import annotations

from pathlib import Path

from cosim.kpi import compute_kpis


def run_summary(path: str | Path) -> list[str]:
    k = compute_kpis(str(path))
    lines = []
    total = k.get("total") or {}
    if total.get("bill_eur") is not None:
        lines.append(f"district cost (bill) {total['bill_eur']:.2f} EUR, peak {total.get('peak_kw', float('nan')):.1f} kW")
    mas = k.get("mas") or {}
    agents = mas.get("agents") or {}
    if agents:
        gaps = [a["gap_max"] for a in agents.values() if a.get("gap_max") is not None]
        rounds = [a["rounds_mean"] for a in agents.values() if a.get("rounds_mean") is not None]
        if mas.get("gap_mean") is not None:
            lines.append(f"MAS gap to the centralised optimum: mean {100 * mas['gap_mean']:.2f} %, "
                         f"max {100 * max(gaps):.2f} % ({len(agents)} LFA)")
        if rounds:
            lines.append(f"negotiation rounds: mean {sum(rounds) / len(rounds):.1f}")
    tel = k.get("telecom") or {}
    if tel.get("messages_sent"):
        lat = tel.get("latency_ms") or {}
        lines.append(f"messages {tel['messages_sent']} ({tel.get('bytes_sent', 0) / 1e6:.1f} MB), lost "
                     f"{tel.get('messages_lost', 0)}, latency p50 {lat.get('p50', float('nan')):.0f} ms, "
                     f"p99 {lat.get('p99', float('nan')):.0f} ms")
    grid = k.get("grid") or {}
    if grid.get("congestion_min") is not None:
        lines.append(f"congestion {grid['congestion_min']:.0f} min (trafo max {grid['trafo_loading_pct']['max']:.1f} %, "
                     f"limit {grid['trafo_limit_pct']:.0f} %), voltage violations {grid['v_violation_min']:.0f} min")
    flex = k.get("flexibility") or {}
    if flex.get("requests"):
        lines.append(f"flexibility: requested {flex['requested_kwh']:.1f} kWh, ordered {flex['ordered_kwh']:.1f} kWh, "
                     f"delivered {flex['delivered_kwh']:.1f} kWh; {flex['orders']} orders, "
                     f"{flex['settlements']} settled")
    return lines
