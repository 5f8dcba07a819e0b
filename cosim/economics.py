"""Economic parameters of a scenario: the household tariff, the business-model prices, and which
business models are evaluated (``economics:`` section of a scenario; read by ``cosim kpis``,
``cosim value`` and ``cosim report``, never by the simulators).

Every price is a field with a documented default and unit (see ``PRICE_UNITS`` and the README).
The defaults are round, plausible European values for a study's first pass, not market data:
change them in the scenario, e.g.::

    economics:
      tariff: {import_price: 0.30, feed_in: 0.07}
      prices: {flex_purchase: 0.08, capacity_tariff: 4.0}
      business_models: [B1, B3, B4, B8]

The business models (B1–B12, B15, B16) and the formulas that use these prices are in
:mod:`cosim.business`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulators.mas.tariff import Tariff

BusinessModel = Literal["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B15", "B16"]
ALL_MODELS: tuple[str, ...] = BusinessModel.__args__  # type: ignore[attr-defined]
OUT_OF_SCOPE = {
    "B13": "not modelled: no simulated quantity to price (needs actors outside the LV energy/telecom system)",
    "B14": "not modelled: no simulated quantity to price (needs actors outside the LV energy/telecom system)",
    "B17": "not modelled: no simulated quantity to price (needs actors outside the LV energy/telecom system)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prices(_Strict):
    """Prices of the business models. Units in each description; € = EUR."""

    # Sources and choices. market_price 0.09: the order of German day-ahead base prices (EPEX DE-LU yearly
    # means 2023 and 2024 about 0.08-0.10 €/kWh, SMARD). grid_fee 0.08: a volumetric network charge below
    # German household network charges (BNetzA/BKartA Monitoringbericht: about 0.10-0.12 €/kWh with metering),
    # modelling choice. capacity_tariff 3.5 €/kW-month: the order of the Flemish capacity tariff (about
    # 40-50 €/kW-year). interest 0.05: near the BNetzA equity return for new assets in the 4th regulatory
    # period (5.07 %). lifetime 40 a: the order of the calculatory useful lives of LV cables in StromNEV
    # Anlage 1, modelling choice. Every other price (B1, B3, B7, B8, reinforcement cost and deferral share
    # of B9, B10-B16) is a modelling choice with no market reference: set them from the study's contracts.

    flex_purchase: float = Field(0.05, ge=0, description="B1: €/kWh the LFA pays a prosumer per kWh of "
                                                         "activated flexibility")
    market_price: float = Field(0.09, description="B2: wholesale energy price, €/kWh (flat)")
    market_profile: list[float] | None = Field(
        None, min_length=24, max_length=24,
        description="B2: 24 hourly wholesale prices, €/kWh, local time (replaces market_price)")
    contracted_price_dso: float = Field(0.15, ge=0, description="B3: €/kWh of delivered flexibility the DSO "
                                                                "pays under contract when a settlement "
                                                                "carries no payment")
    contracted_price_brp: float = Field(0.07, ge=0, description="B3: €/kWh the BRP (retailer) pays the LFA "
                                                                "for district-level activated flexibility")
    grid_fee: float = Field(0.08, ge=0, description="B5: volumetric network charge, €/kWh imported "
                                                    "(paid to the DSO)")
    capacity_tariff: float = Field(3.5, ge=0, description="B6: capacity tariff, € per kW of the monthly peak "
                                                          "15-min import per month")
    community_shared: float = Field(0.02, ge=0, description="B7: €/kWh of energy shared between neighbours "
                                                            "of a district in the same interval (BRP → LFA)")
    congestion_value: float = Field(0.20, ge=0, description="B8: €/kWh of avoided transformer overload energy "
                                                            "(DSO → LFA)")
    reinforcement_cost: float = Field(100.0, ge=0, description="B9: grid reinforcement capex, €/kVA")
    lifetime_years: float = Field(40.0, gt=0, description="B9: lifetime of a reinforcement, years")
    interest: float = Field(0.05, ge=0, lt=1, description="B9: interest rate for the annuity, 1/year")
    deferral_share: float = Field(0.5, ge=0, le=1, description="B9: share of the avoided annuity the DSO pays "
                                                               "the LFA, 1")
    telecom_bundle: float = Field(2.0, ge=0, description="B10: telecom bundle fee, € per household-month")
    forecast_fee: float = Field(0.5, ge=0, description="B11: forecast service fee, € per household-month")
    data_fee: float = Field(1.0, ge=0, description="B12: data service fee, € per household-month")
    price_per_message: float = Field(0.001, ge=0, description="B15: telecom price, € per message sent")
    price_per_mb: float = Field(0.01, ge=0, description="B16: telecom price, € per MB (10^6 bytes) sent")

    @property
    def annuity_factor(self) -> float:
        """Capital recovery factor i(1+i)^n / ((1+i)^n - 1), 1/year (1/n when i = 0)."""
        i, n = self.interest, self.lifetime_years
        if i == 0:
            return 1.0 / n
        q = (1.0 + i) ** n
        return i * q / (q - 1.0)

    def market_prices(self, local_hours: "list[float] | object") -> "object":
        """Wholesale price (€/kWh) at each local hour of day (float array in, array out)."""
        import numpy as np

        h = np.asarray(local_hours, dtype=float)
        if self.market_profile is None:
            return np.full(h.shape, float(self.market_price))
        return np.asarray(self.market_profile, dtype=float)[np.floor(h % 24).astype(int)]


def price_table() -> list[tuple[str, float | None, str]]:
    """(field, default, description) of every price, for documentation and reports."""
    return [(name, f.default, f.description or "") for name, f in Prices.model_fields.items()]


class Economics(_Strict):
    """Tariff, prices and enabled business models of a scenario."""

    tariff: Tariff = Field(default_factory=Tariff, description="household tariff (B4, B5, B6 weights)")
    prices: Prices = Field(default_factory=Prices)
    business_models: list[BusinessModel] | Literal["auto"] = Field(
        "auto", description="business models to evaluate; 'auto' = the set of the scenario's use case")

    @field_validator("business_models", mode="before")
    @classmethod
    def _scope(cls, v):
        if isinstance(v, list):
            for m in v:
                if m in OUT_OF_SCOPE:
                    raise ValueError(f"{m} is out of scope ({OUT_OF_SCOPE[m]})")
        return v


def price_table_per_minute(tariff: Tariff) -> tuple[np.ndarray, np.ndarray]:
    """(import, export) €/kWh per local minute of day, from the Tariff model itself."""
    return (np.asarray(tariff.import_prices(0.0, 1440, 1.0), dtype=float),
            np.asarray(tariff.export_prices(0.0, 1440, 1.0), dtype=float))


def prices_at(tariff: Tariff, local_minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(import, export) €/kWh in force at each local minute of day."""
    imp, exp = price_table_per_minute(tariff)
    idx = np.floor(local_minutes).astype(int) % 1440
    return imp[idx], exp[idx]
