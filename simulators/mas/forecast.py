"""What the home agents know about the future: forecasts and announced EV sessions.

The home agent takes any callable ``forecast(household_id, t0_tick, K, slot_s) -> dict`` with arrays
of length K (slot means): ``base`` (kW ≥ 0), ``pv`` (kW ≤ 0) and ``t_out`` (°C). ``HouseholdKnowledge``
provides it from the household simulator's own seeded models (``simulators.household.Forecaster``:
perfect with ``noise=0``, a seeded error growing with lead time otherwise), and the EV sessions
(arrival, departure, energy need) the household's EV model will produce — the information a driver
gives a home energy manager. Build it with the household simulator's ``start``, ``seed`` and location.
"""

from __future__ import annotations

from simulators.devices.common import wall_day
from simulators.devices.ev import EVFleet
from simulators.devices.params import HouseholdSpec


class HouseholdKnowledge:
    def __init__(self, specs: list[HouseholdSpec], start: str, seed: int, time_resolution: float = 0.001,
                 latitude: float = 48.1, longitude: float = 11.6, noise: float = 0.0):
        from simulators.household import Forecaster  # local import: keeps mosaik-free imports light

        self.noise = float(noise)
        self.fc = Forecaster([s.model_dump() for s in specs], start=start, seed=seed,
                             time_resolution=time_resolution, latitude=latitude, longitude=longitude)
        ev = [s for s in specs if s.devices.ev is not None]
        self.ev_index = {s.id: i for i, s in enumerate(ev)}
        self.ev = EVFleet([s.id for s in ev], [s.devices.ev for s in ev], seed, self.fc.clock) if ev else None

    def forecast(self, hid: str, t0_tick: int, K: int, slot_s: int) -> dict:
        return self.fc.agent(hid, t0_tick, K, slot_s, noise=self.noise)

    def ev_sessions(self, hid: str, m_from: float, m_to: float) -> list[tuple[float, float, float]]:
        """(arrive, depart, need kWh) of the household's EV sessions overlapping [m_from, m_to) (local min)."""
        i = self.ev_index.get(hid)
        if i is None or self.ev is None:
            return []
        out = []
        for day in range(wall_day(self.ev.clock, m_from) - 1, wall_day(self.ev.clock, m_to) + 1):
            a, d, need = self.ev.sessions(day)
            if d[i] > max(m_from, a[i]) and a[i] < m_to:  # (a zero-length session: not plugged in that day)
                out.append((float(a[i]), float(d[i]), float(need[i])))
        return out
