"""Expand a scenario's districts into concrete, seeded household specifications."""

from __future__ import annotations

import numpy as np

from cosim.scenario import DEVICES, TRAITS, District, Scenario
from simulators.devices.params import DeviceSet, HouseholdSpec
from simulators.devices.common import id_key

# Independent random streams per purpose: adding a purpose never changes another's draws.
STREAM_POPULATION = 1
STREAM_PHASES = 2
STREAM_OWNERSHIP = 3
# Each household's own draws, one stream per (district name, household, purpose): a variant of a scenario
# that changes a share or a size keeps every other draw, so sweep runs compare the same households; every
# stream is keyed by the district's name, never its position, so adding, removing or reordering a district
# leaves the other districts' homes as they were.
WATER_HEATER, BASE, PV_SIZE, PV_ROOF, BATTERY, HEAT_PUMP, PERSONS, APPLIANCES = range(8)

# Household sizes 1, 2, 3, 4, 5+ persons: Destatis, Mikrozensus 2018 (press release "Jede fünfte Person lebte
# 2018 in einem Einpersonenhaushalt", 2019): 42 / 34 / 12 / 9 / 3 % of the 41.4 million private households.
HOUSEHOLD_SIZE_SHARES = (0.42, 0.34, 0.12, 0.09, 0.03)
# Mean annual electricity per household of 1, 2, 3, 4, 5+ persons: BDEW, "Stromverbrauch im Haushalt" (2021):
# 1,900 / 2,890 / 3,720 / 4,085 / 5,430 kWh/a. Means over all German households (flats and houses, with and
# without electric water heating; heat pumps and EVs are not household electricity there).
ANNUAL_KWH_BY_SIZE = (1900.0, 2890.0, 3720.0, 4085.0, 5430.0)
# Spread within a size: lognormal (mean = the table's), sigma 0.38. Fitted to the Stromspiegel für Deutschland
# 2022/23 (co2online et al.) consumption classes of houses without electric water heating, reading the upper
# bound of class A and the lower bound of class G as the 10th and 90th percentiles (an assumption: the
# classes' percentiles are not published with them): 1 person 1,400 / 4,500 kWh -> sigma = ln(4500/1400) /
# (2 * 1.2816) = 0.46; 2 persons 2,000 / 4,300 kWh -> 0.30; their mean, for every size.
ANNUAL_KWH_SIGMA = 0.38
# The BDEW means include the homes that heat water electrically (about a quarter of German homes: Destatis
# Mikrozensus 2018 Zusatzerhebung Wohnen / BDEW, cf. Ownership.instant_water_heater), whose water heater
# comes on top of a home's annual_kwh (simulators.devices.baseload.water_heater_kwh): a home's annual_kwh
# (without water heating) is drawn around mean - 0.25 × its size's water-heater energy, so the homes of a
# size average the BDEW mean at the national share.
WATER_HEATER_SHARE_DE = 0.25
ANNUAL_KWH_Z_MAX = 3.0  # modelling choice: draws beyond 3 sigma are clipped (no 1-in-700 outliers)


# Washing cycles per household and year by size (1, 2, 3, 4, 5+ persons): Öko-Institut, as reported by
# "die umweltberatung" (bewusst-haushalten.at, "Und wie wäschst du?"): 164 (1 person), 140 (2), 211 (4);
# 3 persons: the mean of 2 and 4 (interpolated, modelling choice); 5+: the 4-person figure (no published value).
# Destatis-weighted mean 163/a = 3.1 a week (a representative Panasonic survey of 1,000 Germans: 3.5 loads a week).
WASHES_PER_YEAR = (164.0, 140.0, 175.5, 211.0, 211.0)


def household_appliances(apps, persons: int, rng: np.random.Generator) -> list:
    """The home's shiftable appliances: a washing machine's cycles per week from its household size (unless the
    scenario sets them), and each appliance's cycle days phased by a seeded offset (unless the scenario sets it)."""
    out = []
    for a in apps:
        offset = round(float(rng.uniform(0.0, 7.0)), 3) % 7.0  # drawn always: the next appliance's draw stays
        upd = {} if "day_offset" in a.model_fields_set else {"day_offset": offset}
        if a.name == "washing_machine" and "cycles_per_week" not in a.model_fields_set:
            upd["cycles_per_week"] = round(WASHES_PER_YEAR[persons - 1] * 7.0 / 365.25, 3)
        out.append(a.model_copy(update=upd))
    return out


def household_size(rng: np.random.Generator) -> int:
    """Persons of one home (5 = five or more), Destatis shares."""
    return int(np.searchsorted(np.cumsum(HOUSEHOLD_SIZE_SHARES), rng.random() * sum(HOUSEHOLD_SIZE_SHARES),
                               side="right")) + 1


def annual_kwh(persons: int, rng: np.random.Generator, spread: bool = True) -> float:
    """Annual kWh (without water heating) of a home of *persons*: the size's mean less the national share of
    water heating, times a lognormal factor of mean 1 (none without *spread*)."""
    from simulators.devices.baseload import water_heater_kwh

    mean = ANNUAL_KWH_BY_SIZE[persons - 1] - WATER_HEATER_SHARE_DE * water_heater_kwh(persons)
    if not spread:
        return round(mean, 1)
    z = float(np.clip(rng.standard_normal(), -ANNUAL_KWH_Z_MAX, ANNUAL_KWH_Z_MAX))
    return round(mean * np.exp(ANNUAL_KWH_SIGMA * z - ANNUAL_KWH_SIGMA**2 / 2), 1)


def base_load(base, var: float, r_persons, r_base):
    """A home's base-load parameters: its household size (``base.persons`` when the scenario sets it, else
    drawn) and annual kWh (``base.annual_kwh`` when the scenario sets it, scaled by the district's variety as
    before; else from the size's mean, with the within-size spread when variety > 0)."""
    persons = base.persons if base.persons is not None else household_size(r_persons)
    if "annual_kwh" in base.model_fields_set:
        return _scaled(base, r_base, var, ("annual_kwh",)).model_copy(update={"persons": persons})
    return base.model_copy(update={"persons": persons, "annual_kwh": annual_kwh(persons, r_base, var > 0)})


def household_rng(seed: int, district: str, index: int, purpose: int) -> np.random.Generator:
    """The generator of one household's draws for one purpose (``index`` from 1, as in its id), keyed by the
    district's name."""
    return np.random.default_rng(np.random.SeedSequence([seed, STREAM_POPULATION],
                                                         spawn_key=(id_key(district), index, purpose)))


def district_rng(seed: int, district: str) -> np.random.Generator:
    """The generator of a district's ownership draws, keyed by its name."""
    return np.random.default_rng(np.random.SeedSequence([seed, STREAM_OWNERSHIP], spawn_key=(id_key(district),)))


def household_phase(seed: int, hid: str) -> int:
    """L1/L2/L3 of a household, uniform, from its own stream keyed by its id."""
    return int(np.random.default_rng(np.random.SeedSequence([seed, STREAM_PHASES],
                                                            spawn_key=(id_key(hid),))).integers(1, 4))


def household_id(district: str, index: int) -> str:
    return f"{district}.h{index:03d}"


def district_of(hid: str) -> str:
    """The district of a household id (the prefix before the first '.')."""
    return hid.split(".", 1)[0] if "." in hid else "(none)"


def _top(score: np.ndarray, share: float, among: np.ndarray | None = None) -> np.ndarray:
    """Owners: the round(share * n) households (of ``among``, default all) with the highest score.

    Ranking a latent score keeps the scenario's share exact while the scores carry the correlations.
    """
    n = len(score)
    k = int(round(share * n))
    pool = np.arange(n) if among is None else np.flatnonzero(among)
    mask = np.zeros(n, dtype=bool)
    if k:
        mask[pool[np.argsort(-score[pool], kind="stable")[:k]]] = True
    return mask


def owners(district: District, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Device ownership masks of a district: Gaussian copula over TRAITS, exact shares.

    Each household draws latent scores z ~ N(0, R) (R from ``district.ownership``); a device goes to
    the households with the highest score for it, a battery (``battery_needs_pv``) to the PV homes
    with the highest battery score. Also returns the ``new_building`` score (rank = newer).
    """
    n, sh, own = district.households, district.shares, district.ownership
    z = rng.multivariate_normal(np.zeros(len(TRAITS)), own.matrix(), size=n, method="cholesky")
    col = {t: z[:, i] for i, t in enumerate(TRAITS)}
    out = {"new_building": col["new_building"]}
    for dev in DEVICES:
        among = out["pv"] if dev == "battery" and own.battery_needs_pv else None
        out[dev] = _top(col[dev], getattr(sh, dev), among)
    return out


def _scaled(model, rng: np.random.Generator, variety: float, fields: tuple[str, ...]):
    """Copy of a parameter model with the given size fields scaled by a seeded factor."""
    factor = float(np.clip(rng.normal(1.0, variety), 1 - 2 * variety, 1 + 2 * variety)) if variety else 1.0
    return model.model_copy(update={f: round(getattr(model, f) * factor, 3) for f in fields})


# PV orientation when a district spreads it (``pv_orientation: spread``). Killinger et al. (2018), "On
# the search for representative characteristics of PV systems", Solar Energy 173:1087–1106, analysed
# the metadata of German rooftop systems: azimuths centred on south with most within ±45°, few
# facing north of east/west; tilts mostly 20–40°, plus a group of low-tilt (flat-roof) systems.
PV_FLAT_SHARE = 0.10  # share on flat roofs (low-tilt racks), Killinger et al. 2018 low-tilt group, rounded
# The tilts below are assumptions chosen to reproduce that description (mean ± sd 24–40°), not fitted values
PV_FLAT_TILT = (5.0, 15.0)  # degrees, uniform: racked modules on flat roofs
PV_TILT_MEAN, PV_TILT_SD, PV_TILT_RANGE = 32.0, 8.0, (15.0, 45.0)  # pitched roofs, degrees (clipped)
PV_AZ_SD, PV_AZ_RANGE = 45.0, (90.0, 270.0)  # degrees around south (180), clipped to east..west


def pv_orientation(rng: np.random.Generator) -> dict[str, float]:
    """Seeded tilt and azimuth of one roof from the distribution above."""
    u, a, b = rng.random(), rng.standard_normal(), rng.standard_normal()
    az = float(np.clip(180.0 + PV_AZ_SD * a, *PV_AZ_RANGE))
    if u < PV_FLAT_SHARE:
        tilt = PV_FLAT_TILT[0] + (PV_FLAT_TILT[1] - PV_FLAT_TILT[0]) * u / PV_FLAT_SHARE
    else:
        tilt = float(np.clip(PV_TILT_MEAN + PV_TILT_SD * b, *PV_TILT_RANGE))
    return {"tilt": round(tilt, 1), "azimuth": round(az, 1)}


def _pv(district: District, rng, roof_rng):
    pv = _scaled(district.devices.pv, rng, district.variety, ("kwp",))
    return pv if district.pv_orientation == "fixed" else pv.model_copy(update=pv_orientation(roof_rng))


def district_households(district: District, rng: np.random.Generator, seed: int) -> list[HouseholdSpec]:
    """The households of a district: ownership from *rng*, each household's sizes from its own streams
    (:func:`household_rng`, keyed by the district's name)."""
    n, dev, var = district.households, district.devices, district.variety
    own = owners(district, rng)
    specs = []
    for i in range(n):
        def r(purpose, _i=i + 1):
            return household_rng(seed, district.name, _i, purpose)
        u_wh = r(WATER_HEATER).random()  # heat-pump homes heat water with the heat pump
        wh = (dev.base.instant_water_heater or u_wh < district.ownership.instant_water_heater) and not own["heat_pump"][i]
        base = base_load(dev.base, var, r(PERSONS), r(BASE)).model_copy(update={"instant_water_heater": wh})
        devices = DeviceSet(
            base=base,
            pv=_pv(district, r(PV_SIZE), r(PV_ROOF)) if own["pv"][i] else None,
            battery=_scaled(dev.battery, r(BATTERY), var, ("capacity_kwh",)) if own["battery"][i] else None,
            ev=dev.ev if own["ev"][i] else None,
            heat_pump=_scaled(dev.heat_pump, r(HEAT_PUMP), var, ("ua_kw_per_k",)) if own["heat_pump"][i] else None,
            appliances=(household_appliances(dev.appliances, base.persons, r(APPLIANCES))
                        if own["appliances"][i] else []),
        )
        specs.append(HouseholdSpec(id=household_id(district.name, i + 1), devices=devices))
    return specs


def build_population(scn: Scenario) -> list[HouseholdSpec]:
    """All households of the scenario, identical for identical (scenario, seed)."""
    out: list[HouseholdSpec] = []
    for district in scn.districts:
        out.extend(district_households(district, district_rng(scn.seed, district.name), scn.seed))
    if scn.grid is not None and scn.grid.engine == "fast3ph":  # households on L1/L2/L3
        given = scn.grid.phases if isinstance(scn.grid.phases, dict) else {}
        unknown = sorted(set(given) - {h.id for h in out})
        if unknown:
            raise ValueError(f"grid.phases: unknown household id(s) {', '.join(unknown[:5])}")
        out = [h.model_copy(update={"phase": int(given.get(h.id, household_phase(scn.seed, h.id)))}) for h in out]
    return out
