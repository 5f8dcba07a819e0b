"""Smart-meter population simulator.

Measures each household's net power: a per-meter systematic gain error and per-reading noise within its
accuracy class (seeded per meter id: one noise stream per meter, so adding a meter changes no other's
readings), quantised to the meter's resolution. The class (IEC 62053-21: class 1 = ±1 % of the
reading in the rated current range; EN 50470-3 / MID classes A, B, C = 2, 1, 0.5 %) bounds the *total* error
of a reading, so the error budget is split (a modelling choice within that bound): the gain error is uniform
in ±class/2 and the per-reading noise is normal (σ = class/6) truncated at ±class/2, so |gain + noise| never
exceeds the class. Quantisation adds at most half a resolution step on top (the class applies above the
meter's minimum current, where that step is negligible); integrates import and export energy registers (Wh,
monotonic, integer register values like a real meter's display) and keeps the last completed 15-minute
average. Readings are published every ``interval``; energy is integrated every physical step. A HIL meter
adapter outputs the same attributes for the device ids it replaces.

Three-phase meters (SDM630, EM24 and every German smart meter are three-phase): when the household's
per-phase powers ``P_a``/``P_b``/``P_c`` are connected (the unbalanced grid), the meter also publishes
them as measured, with the meter's gain error and noise of its own seeded stream (the total ``P`` and
the registers are unchanged by it).
"""

from __future__ import annotations

import numpy as np
import mosaik_api_v3

from simulators.devices.common import parse_start
from simulators.floats import Floats
from simulators.vocabulary import PHASE_POWERS

PHASES = [a for a in PHASE_POWERS if a.startswith("P_")]  # per-phase active power registers
REGISTERS = ["P", "Q", "E_imp", "E_exp", "P_15"]  # every meter
ATTRS = [*REGISTERS, *PHASES]
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Meters": {
            "public": True,
            "params": ["ids", "exclude", "accuracy_class", "interval", "resolution_w"],
            "attrs": ATTRS,  # P and Q are also the inputs (true household power)
            "outputs": ATTRS,
        }
    },
}
QUARTER_MS = 900_000


class _Noise:
    """Standard-normal reading noise, one stream per meter keyed by (seed, purpose, meter id), drawn in blocks:
    a meter's k-th reading gets its stream's k-th number, whatever other meters there are or in which order."""

    BLOCK = 64  # numbers per refill: memory 3 x 8 B x 64 per meter

    def __init__(self, seed: int, purpose: int):
        self.seed, self.purpose = seed, purpose
        self.gens: list[np.random.Generator] = []
        self.buf = np.zeros((0, self.BLOCK))
        self.pos = np.zeros(0, dtype=np.int64)
        self.same: int | None = 0  # every stream's position while they are all at one (pos not kept then)
        self.rows = np.zeros(0, dtype=np.int64)

    def add(self, ids: list[str]) -> None:
        gens = [np.random.default_rng(np.random.SeedSequence([self.seed, self.purpose, *i.encode()])) for i in ids]
        self.gens += gens
        self.buf = np.concatenate([self.buf, np.array([g.standard_normal(self.BLOCK) for g in gens]).reshape(
            len(gens), self.BLOCK)])
        if self.same is not None:
            self.pos[:] = self.same
        self.pos = np.concatenate([self.pos, np.zeros(len(gens), dtype=np.int64)])
        self.same = 0 if not self.pos.any() else None
        self.rows = np.arange(len(self.gens))

    def draw(self) -> np.ndarray:
        """The next number of every meter's stream, in meter order."""
        if self.same is not None:  # the usual case: one column of the blocks (9 -> 4 µs for 146 meters)
            if self.same >= self.BLOCK:
                for k, gen in enumerate(self.gens):
                    self.buf[k] = gen.standard_normal(self.BLOCK)
                self.same = 0
            z = self.buf[:, self.same].copy()
            self.same += 1
            return z
        for k in np.flatnonzero(self.pos >= self.BLOCK):
            self.buf[k] = self.gens[k].standard_normal(self.BLOCK)
            self.pos[k] = 0
        z = self.buf[self.rows, self.pos]
        self.pos += 1
        return z


class MeterPopulation:
    """Vectorised meters for a growing set of device ids."""

    def __init__(self, seed: int, accuracy_class: float = 1.0, resolution_w: float = 1.0):
        self.seed = seed
        self.acc = accuracy_class / 100.0
        self.res_kw = resolution_w / 1000.0
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.gain = np.zeros(0)
        self.e_imp = np.zeros(0)  # Wh, exact
        self.e_exp = np.zeros(0)
        self.q_sum = np.zeros(0)  # kWh accumulated in the current quarter
        self.p15 = np.zeros(0)
        # reading noise: one stream per meter and purpose (active, reactive, per-phase readings), keyed by its id
        self.noise_p, self.noise_q, self.noise_phase = _Noise(seed, 2), _Noise(seed, 5), _Noise(seed, 4)

    def _add(self, ids: list[str]) -> None:
        for i in ids:
            self.index[i] = len(self.ids)
            self.ids.append(i)
        # per-meter gain error: stable per device id, independent of population order
        gains = [
            np.random.default_rng(np.random.SeedSequence([self.seed, 3, *i.encode()])).uniform(
                -self.acc / 2, self.acc / 2)
            for i in ids
        ]
        self.gain = np.concatenate([self.gain, 1.0 + np.asarray(gains)])
        for noise in (self.noise_p, self.noise_q, self.noise_phase):
            noise.add(ids)
        zeros = np.zeros(len(ids))
        self.e_imp, self.e_exp = np.concatenate([self.e_imp, zeros]), np.concatenate([self.e_exp, zeros])
        self.q_sum, self.p15 = np.concatenate([self.q_sum, zeros]), np.concatenate([self.p15, zeros])

    def register(self, mapping: dict[str, float]) -> bool:
        """Add meters for the ids of *mapping* not seen yet; True if its keys are the meters, in order."""
        if len(mapping) == len(self.ids) and list(mapping) == self.ids:  # the usual step: no new ids
            return True
        new = [k for k in mapping if k not in self.index]
        if new:
            self._add(new)
        return False

    def vector(self, mapping: dict[str, float]) -> np.ndarray:
        """The values in meter order (0 for a meter without a value); meters for new ids are added."""
        if self.register(mapping):
            arr = getattr(mapping, "array", None)  # a Floats' own values (not changed by the readers below)
            return arr if arr is not None else np.fromiter(mapping.values(), dtype=float, count=len(self.ids))
        out = np.zeros(len(self.ids))
        for k, v in mapping.items():
            out[self.index[k]] = v
        return out

    def measure(self, p_true: np.ndarray, noise: _Noise | None = None) -> np.ndarray:
        """Readings of the true values *p_true* (one per meter, meter order) with the next noise of each meter's
        stream (*noise*: default the active-power readings')."""
        half = self.acc / 2.0
        # np.minimum/np.maximum: np.clip's Python wrapper took 5 µs per call
        noise = np.minimum(np.maximum((noise or self.noise_p).draw() * (self.acc / 6.0), -half), half)
        p = p_true * (self.gain + noise)
        return np.round(p / self.res_kw) * self.res_kw

    def integrate(self, p_meas_kw: np.ndarray, dt_h: float, quarter_done: bool) -> None:
        self.e_imp += np.maximum(p_meas_kw, 0.0) * dt_h * 1000.0
        self.e_exp += np.maximum(-p_meas_kw, 0.0) * dt_h * 1000.0
        self.q_sum += p_meas_kw * dt_h
        if quarter_done:
            self.p15 = self.q_sum / 0.25
            self.q_sum = np.zeros_like(self.q_sum)


class MeterSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.eid = None
        self.out: dict[str, dict[str, float]] = {a: {} for a in ATTRS}

    def init(self, sid, time_resolution=0.001, start="", step_size=60_000, seed=0):
        self.ms_per_tick = time_resolution * 1000.0
        self.step_size = int(step_size)
        self.seed = int(seed)
        # P_15 averages the clock's quarter-hours (:00, :15, ...), also for a start between them
        self.q_offset_ms = round(parse_start(start).timestamp() * 1000) % QUARTER_MS if start else 0
        return self.meta

    def create(self, num, model, ids=None, exclude=(), accuracy_class=1.0, interval=None, resolution_w=1.0):
        if num != 1 or self.eid is not None:
            raise ValueError("exactly one Meters population entity per simulator")
        self.eid = "meters"
        self.only = set(ids) if ids else None
        self.exclude = set(exclude)
        self.pop = MeterPopulation(self.seed, accuracy_class, resolution_w)
        self.interval = int(interval or self.step_size)
        return [{"eid": self.eid, "type": model}]

    def _merged(self, inputs: dict, attr: str) -> dict[str, float]:
        sources = inputs.get(attr, {})
        if len(sources) == 1 and self.only is None and not self.exclude:
            for mapping in sources.values():  # one source (the usual case): its mapping, only read
                return mapping or {}
        merged: dict[str, float] = {}
        for mapping in sources.values():
            merged.update(mapping or {})
        if self.only is not None or self.exclude:
            merged = {k: v for k, v in merged.items()
                      if (self.only is None or k in self.only) and k not in self.exclude}
        return merged

    def step(self, time, inputs, max_advance):
        ins = inputs.get(self.eid, {})
        t_ms = time * self.ms_per_tick
        publish = int(t_ms) % self.interval == 0  # registers as they stand at the start of this step
        p_map, q_map = self._merged(ins, "P"), self._merged(ins, "Q")
        phases = {a: m for a in PHASES if (m := self._merged(ins, a))} if publish else {}
        # every meter of this step's inputs exists before any vector is built: all have one length
        for m in (p_map, q_map, *phases.values()):
            self.pop.register(m)
        p = self.pop.vector(p_map)
        q_vec = self.pop.vector(q_map) if q_map else np.zeros(len(p))
        dt_h = self.step_size * self.ms_per_tick / 3_600_000.0
        p_meas = self.pop.measure(p)
        if publish:
            ids = self.pop.ids
            q_meas = self.pop.measure(q_vec, self.pop.noise_q)
            self.out = {
                "P": Floats(ids, p_meas),
                "Q": Floats(ids, q_meas),
                "E_imp": Floats(ids, np.floor(self.pop.e_imp)),
                "E_exp": Floats(ids, np.floor(self.pop.e_exp)),
                "P_15": Floats(ids, self.pop.p15.copy()),
            }
            for attr, phase in phases.items():
                self.out[attr] = Floats(ids, self.pop.measure(self.pop.vector(phase), self.pop.noise_phase))
        quarter_done = int(self.q_offset_ms + t_ms + self.step_size * self.ms_per_tick) % QUARTER_MS == 0
        self.pop.integrate(p_meas, dt_h, quarter_done)
        return time + self.step_size

    def get_data(self, outputs):
        return {eid: {a: self.out.get(a, {}) for a in attrs} for eid, attrs in outputs.items()}


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(MeterSim(), "smart-meter population simulator")
