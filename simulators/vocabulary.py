"""The shared vocabulary: attribute names and their units (docs/architecture.md), control modes.

Every simulator, the HIL adapters, the world builder and the recorder take their names from here, so a
new set point or measurement is added in one place. Load convention: + import / consumption (kW).
"""

from __future__ import annotations

# Set points a controller sends to a household's flexible devices (kW, load convention).
SETPOINTS = {
    "P_bat_set": "kW",   # battery power, + charging
    "P_ev_set": "kW",    # EV charging power
    "P_hp_set": "kW",    # heat-pump electric power
    "pv_limit": "kW",    # PV curtailment limit (generation cap)
}
# Real gateways also take an EV charging current (IEC 61851 / Modbus EV chargers).
GATEWAY_SETPOINTS = {**SETPOINTS, "ev_current_set": "A"}

# Measured or simulated quantities, per device.
MEASUREMENTS = {
    "P": "kW", "Q": "kvar", "P_base": "kW", "P_pv": "kW", "P_bat": "kW", "P_ev": "kW", "P_hp": "kW",
    "P_app": "kW", "P_15": "kW", "V": "V", "E_imp": "Wh", "E_exp": "Wh", "soc": "1", "soc_ev": "1",
    "T_in": "degC", "T_out": "degC",
}
# Per-phase powers of a household / grid connection (three-phase grid, engine fast3ph).
PHASE_POWERS = {"P_a": "kW", "P_b": "kW", "P_c": "kW", "Q_a": "kvar", "Q_b": "kvar", "Q_c": "kvar"}
# Line-to-neutral voltage per phase at a household's connection (three-phase grid), as its meter reads it.
PHASE_VOLTAGES = {"V_a": "V", "V_b": "V", "V_c": "V"}
# Grid simulator outputs (balanced and unbalanced).
GRID = {
    "vm_pu_a": "p.u.", "vm_pu_b": "p.u.", "vm_pu_c": "p.u.", "vuf": "%", "vuf_max": "%",
    "vm_pu": "p.u.", "v_min": "p.u.", "v_max": "p.u.", "line_loading": "%", "trafo_loading": "%",
    "max_line_loading": "%", "P_trafo": "kW", "losses": "kW", "congestion": "flag", "v_violation": "flag",
    "converged": "flag",
}
# Agents (simulators.mas): plans, negotiations, USEF flexibility.
AGENTS = {
    "P_plan": "kW", "plan_cost": "EUR", "plan_src": "0 own/1 LFA/2 fallback", "rounds": "1",
    "gap": "%", "gap_dual": "%", "flex_requested": "kW", "flex_offered": "kW", "flex_ordered": "kW",
    "flex_delivered": "kW", "P_forecast": "kW",
}
# Telecom counters per endpoint.
TELECOM = {
    "sent": "messages", "delivered": "messages", "lost": "messages", "bytes_sent": "B",
    "latency_ms": "ms", "latency_mean_ms": "ms",
}
# Real devices (HIL) and real-time pacing.
HIL = {
    "quality": "0 ok/1 stale/2 error", "age": "s", "setpoint_ack": "flag", "setpoint_clipped": "count",
    "lateness_ms": "ms",
}

UNITS = {**MEASUREMENTS, **PHASE_POWERS, **PHASE_VOLTAGES, **GRID, **AGENTS, **TELECOM, **HIL, **GATEWAY_SETPOINTS}

# Who controls the flexible devices (scenario control.mode, `cosim run --control`).
CONTROL_MODES = ("mas", "central", "none")
# Power-flow engines a scenario can choose (grid.engine): balanced fast engine, pandapower runpp,
# unbalanced phase-domain engine.
GRID_ENGINES = ("fast", "runpp", "fast3ph")
