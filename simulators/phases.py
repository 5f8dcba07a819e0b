"""Which phase carries what: single-phase households and three-phase devices.

A household's single-phase connection is on L1, L2 or L3 (``HouseholdSpec.phase``). Devices above
:data:`SINGLE_PHASE_MAX_KVA` are connected three-phase and split equally over L1-L3:
VDE-AR-N 4105:2018-11, 5.5.2 (generators and storage: at most 4.6 kVA on one phase) and
VDE-AR-N 4100:2019-04, 5.5.3 (consumer devices: single-phase up to 4.6 kVA). Heat pumps are
three-phase whatever their size (compressor motors of household heat pumps are 3 x 400 V; the
issue's convention). Device ratings used: PV ``kwp`` (inverter sized to the array), EV
``charger_kw`` (11 kW = 3 x 16 A), battery ``p_max_kw``.
"""
from __future__ import annotations

from simulators.devices.params import DeviceSet

__all__ = ["SINGLE_PHASE_MAX_KVA", "three_phase_devices"]

#: kVA; VDE-AR-N 4105:2018-11 5.5.2 / VDE-AR-N 4100:2019-04 5.5.3
SINGLE_PHASE_MAX_KVA = 4.6


def three_phase_devices(devices: DeviceSet) -> set[str]:
    """Device kinds of a household connected three-phase: subset of pv, battery, ev, heat_pump."""
    out = set()
    if devices.heat_pump is not None:
        out.add("heat_pump")
    if devices.pv is not None and devices.pv.kwp > SINGLE_PHASE_MAX_KVA:
        out.add("pv")
    if devices.ev is not None and devices.ev.charger_kw > SINGLE_PHASE_MAX_KVA:
        out.add("ev")
    if devices.battery is not None and devices.battery.p_max_kw > SINGLE_PHASE_MAX_KVA:
        out.add("battery")
    return out

