"""Prices and weights of the home and district objectives (JSON-safe pydantic models).

``Tariff`` is what a household pays and values (B4 time-of-use import / feed-in, B5 self-balancing,
B6 peak), ``DistrictObjective`` what the local flexibility aggregator adds on top for its district
(community pricing at the transformer, transformer limit, district peak). Both are plain mosaik
parameters (``Tariff.model_validate(dict)``).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from simulators.devices.common import FIXED, Clock
from simulators.devices.params import minutes_of_day
from simulators.telecom_model import stable_hash


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def slot_uniforms(seed: int, slots: np.ndarray) -> np.ndarray:
    """A fixed uniform draw in [0, 1) per slot index (any integers, e.g. minutes since 1970 / slot length):
    SplitMix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators", OOPSLA) of
    seed and slot, the top 53 bits. A hash rather than a generator's stream: the same slot gets the same
    draw in every horizon that contains it, in any order of calls."""
    with np.errstate(over="ignore"):
        x = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + np.asarray(slots, dtype=np.int64).astype(np.uint64) \
            * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class TouBand(_Strict):
    """Import price inside [start, end) every day (end < start wraps over midnight)."""

    start: str = Field(description='"HH:MM"')
    end: str = Field(description='"HH:MM"')
    price: float = Field(description="€/kWh")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        minutes_of_day(v)
        return v


def _default_bands() -> list[TouBand]:
    # Illustrative time-of-use bands (night 0.22, evening peak 0.42 €/kWh): modelling choice, not a published
    # tariff; set per study.
    return [
        TouBand(start="00:00", end="06:00", price=0.22),
        TouBand(start="17:00", end="21:00", price=0.42),
    ]


class Tariff(_Strict):
    """Household tariff and objective weights (€/kWh unless stated)."""

    # 0.32 €/kWh: modelling choice (scenario assumption), below the BDEW-Strompreisanalyse mean of 39.7 ct/kWh
    # for the 3,500 kWh household in 2025; set per study
    import_price: float = Field(0.32, description="default import price (B4)")
    tou: list[TouBand] = Field(default_factory=_default_bands, description="time-of-use bands (B4)")
    # 0.08 €/kWh: EEG 2023 feed-in tariff for rooftop PV ≤ 10 kWp with self-consumption, 8.2 ct/kWh for
    # systems commissioned 2023 to Jan 2024 (§48(2) value 8.6 ct/kWh less the 0.4 ct/kWh of §53; 7.94 ct/kWh
    # from Feb 2025 after the half-yearly 1 % cut), rounded
    feed_in: float = Field(0.08, description="feed-in remuneration (B4); may be negative")
    # B5 and B6 weights default to 0 (off): placeholders, set per study
    self_consumption: float = Field(
        0.0, ge=0, description="B5: extra weight on every kWh exchanged with the grid (import and export)"
    )
    peak_price: float = Field(
        0.0, ge=0, description="B6: € per kW of the largest import over the planning horizon"
    )
    # comfort 20 €/(K·h): modelling choice, not from a source: high against energy prices (a K·h outside the band
    # costs more than any kWh), so the soft band only yields when it must
    # wear 0.01 €/kWh: modelling choice, not a degradation-cost estimate: a small weight against needless cycling
    comfort_penalty: float = Field(20.0, ge=0, description="€ per K·h outside the heat-pump comfort band (soft band)")
    battery_wear: float = Field(0.01, ge=0, description="€ per kWh of battery throughput")
    _tie_break: tuple[float, int] | None = PrivateAttr(None)  # (€/kWh, seed): see with_tie_break

    def with_tie_break(self, eur_per_kwh: float, seed: int, scope: str) -> "Tariff":
        """This tariff for planning with a consistent tie-break: every import price raised by
        ``eur_per_kwh`` × u, u in [0, 1) a fixed draw per slot of absolute time (``slot_uniforms``) and
        per *scope* (a home, an aggregator), so that every plan that prices the scope's energy (each
        re-plan, the aggregator's negotiation, the central optimiser, the reference) ranks its equally
        cheap slots the same way. Without it the solver's pivoting decides among optimal plans (see
        ``control.tie_break`` in cosim/scenario.py and the README, "Study numbers"). A draw per scope,
        not one for the run: one for all would send every home and district to the same slots. Only
        the planners use it; the realised cost is valued with the tariff itself."""
        t = self.model_copy()
        t._tie_break = (float(eur_per_kwh), int(seed) ^ stable_hash(scope)) if eur_per_kwh > 0 else None
        return t

    @field_validator("feed_in")
    @classmethod
    def _feed(cls, v: float) -> float:
        return float(v)

    def import_prices(self, minute0: float, K: int, slot_min: float, clock: Clock = FIXED) -> np.ndarray:
        """Import price of K slots starting at local minute ``minute0`` (price at the slot's start; the
        bands are wall-clock times of the ``clock``'s zone)."""
        m = clock.wall_min(minute0 + slot_min * np.arange(K)) % 1440.0
        out = np.full(K, float(self.import_price))
        for b in self.tou:
            s, e = minutes_of_day(b.start), minutes_of_day(b.end)
            inside = (m >= s) & (m < e) if s < e else (m >= s) | (m < e)
            out[inside] = b.price
        if self._tie_break is not None:
            eps, seed = self._tie_break
            out += eps * slot_uniforms(seed, np.floor(minute0 / slot_min + 1e-9) + np.arange(K))
        return out

    def export_prices(self, minute0: float, K: int, slot_min: float) -> np.ndarray:
        return np.full(K, float(self.feed_in))


class DistrictObjective(_Strict):
    """What the LFA optimises for the whole district on top of its households' objectives.

    ``community=True``: energy is priced once, at the transformer (the district's net import at the
    import price, net export at the feed-in price), so energy exchanged between neighbours in the
    same slot is free (local balancing); the households' own energy terms drop out and only their
    comfort, wear, B5 and B6 terms stay. ``community=False``: each household pays its own tariff at
    its meter and the district adds only the terms below.
    """

    community: bool = True
    trafo_limit_kw: float | None = Field(None, gt=0, description="import limit at the transformer (soft)")
    export_limit_kw: float | None = Field(None, gt=0, description="export limit at the transformer (soft)")
    # 2 €/kWh: modelling choice, not from a source: well above every energy price so that limits and flex-order
    # caps bind unless infeasible; peak_price 0 (off): placeholder, set per study
    overload_penalty: float = Field(2.0, ge=0, description="€ per kWh above a limit or a flex-order cap")
    peak_price: float = Field(0.0, ge=0, description="€ per kW of the district's largest import (capacity tariff)")
