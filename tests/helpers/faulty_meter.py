"""A meter simulator whose 'firmware' crashes after a few steps (for failure-path tests).

Run as a mosaik server: python -m tests.helpers.faulty_meter --remote 127.0.0.1:PORT
"""

import mosaik_api_v3

from simulators.meter import MeterSim

CRASH_AT_MS = 5 * 60_000


class FaultyMeterSim(MeterSim):
    def step(self, time, inputs, max_advance):
        if time >= CRASH_AT_MS:
            raise RuntimeError(f"meter firmware crashed at t={time} ms")
        return super().step(time, inputs, max_advance)


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(FaultyMeterSim())
