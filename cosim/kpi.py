"""Key performance indicators of a results file (`cosim kpis`).

:func:`compute_kpis` reads a results file (docs/architecture.md layout) and returns a nested,
JSON-safe dict. Populations are discovered at read time: a KPI whose data is not in the file is
``None`` and its group is listed under ``not_available`` with the reason.

Definitions (energies in kWh, powers in kW, load convention: + import):

* energy bill (€) = Σ import_kWh(t) × ToU import price(t) − Σ export_kWh(t) × feed-in(t), under the
  scenario's ``economics.tariff``. Import/export come from the meter registers ``E_imp``/``E_exp``
  (differences between readings, priced at the start of each reading interval; the open interval
  after the last reading from the reading at the window's end when the file has one, a cool-down,
  else estimated from the meter's last power reading) — what a supplier bills;
  without meters, from the household power ``P``. ``bill_source`` says which.
* PV produced = ∫ pv, pv = max(−P_pv, 0); consumption = ∫ L, the loads' energy (base load, appliances,
  heat pump, EV), L = max(P + pv − P_bat, 0) per interval with ``P_bat`` the stationary battery's terminal
  power (+ charging; ``gateways/P_bat`` for a real home that has only a meter; 0 without one), so
  consumption = import − export + PV − the battery's net charge. Self-consumption ratio = 1 − export / PV
  produced (the PV energy not exported, directly or after the battery held it: the self-consumed PV / PV
  of Luthander et al., "Photovoltaic self-consumption in buildings: a review", Applied Energy 142 (2015)
  80–94, when what is exported is PV); self-sufficiency = 1 − import / consumption (the loads' energy not
  imported: energy the battery took from the grid counts as imported; Luthander et al.'s self-consumed PV
  / consumption is larger by the battery's net charge, its losses included), both clipped to [0, 1], with
  import and export per interval from ``P``. Without a battery these are ∫ min(pv, L) / ∫ pv and ∫ min(pv,
  L) / ∫ L. Before 2026-12-07 consumption was import + ∫ clip(pv − export, 0, pv), which counted a
  battery's charge as consumed also when the battery exported it later (a battery's home on uc2_district:
  20.95 instead of 9.29 kWh, the sum of its loads). Per household from its own series; for a district /
  the total from the summed series (community view: a neighbour's surplus counts as used on site).
  ``shared_kwh`` = energy exported by some households and imported by others of the district in the same
  interval.
* peak = max P (recording resolution); ``peak_15min_kw`` = max of 15-min mean P; peak-to-average
  ratio = peak / mean P (``None`` when the mean is ≤ 0, a net exporter).
* battery equivalent full cycles = Σ|Δsoc| / 2 (soc in 0..1 of the nominal capacity).
* comfort violation (K·h) = ∫ (max(t_min − T_in, 0) + max(T_in − t_max, 0)) dt with the household's
  heat-pump band from the scenario.
* grid: losses (kWh) = ∫ losses; loading percentiles are over time of the highest-loaded
  transformer / line at each instant; congestion minutes = time with a transformer or line above its
  limit (scenario ``grid.trafo_limit_pct`` / ``line_limit_pct``); voltage-violation minutes = time
  with any bus outside 1 ± ``grid.v_band`` p.u. at a recorded step; ``v_violation_10min_min`` = the
  minutes of 10-min blocks whose mean voltage is outside it at some bus (phase), as EN 50160 judges;
  ``overload_kwh`` = transformer energy above its limit, apparent (kVAh: loading above the limit × the
  rated kVA the grid simulator recorded in the file; about kWh at a power factor near 1);
  ``reinforcement_kva`` = the rating increase that keeps the largest loading at the limit, S·(L − l)/l.
* flexibility: ``lfa`` population ``flex_requested/offered/ordered/delivered`` (kW) integrated to
  kWh; USEF event records (``/events/flex``) counted and summed (ordered/delivered kWh, payments);
  ``delivered_kwh`` is the settlements' delivered energy of the slots in the window when they have it
  per slot (the live ``flex_delivered`` series is one slot late and misses each slot's first minute).
* MAS: gap to the centralised optimum (fraction; a ``%`` or unit-less ``lfa/gap`` series is divided
  by 100) per LFA: mean, max and last reported value.
* telecom: ``/events/messages`` (per-message records) or the ``telecom`` population counters.
* real-time: ``realtime/lateness_ms`` percentiles.

An aggregated file (``record.aggregate``, :mod:`cosim.aggregate`) gives the same energies, costs and
violation minutes; what interval means cannot give is ``None`` with its reason (README "A year").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosim.economics import prices_at
from cosim.objective import heat_pump_params, objective_id, objective_kpis, terminal_kpis
from cosim.population import district_of
from cosim.results import Results, finite
from cosim.kpi_unbalance import monitored_voltages, ten_minute_violation_min, unbalance_kpis

QUARTER_MS = 900_000
MONTH_MS = int(30.4375 * 86_400_000)
PCTS = (50, 95, 99)


# ---------------------------------------------------------------------------- helpers


def _f(v: Any, nd: int = 4) -> float | None:
    """JSON-safe rounded float (None for NaN/inf/None)."""
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return round(x, nd)


def percentiles(x: np.ndarray) -> dict[str, float | None]:
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {f"p{p}": None for p in PCTS} | {"max": None}
    out = {f"p{p}": _f(np.percentile(x, p)) for p in PCTS}
    out["max"] = _f(x.max())
    return out


def quarter_means(res: Results, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """15-min means of P (T, N) -> (quarters, N) and the start ms of each quarter: the clock's quarter-hours
    (:00, :15, :30, :45, as a meter bills them; in every zone whose offset is a multiple of 15 min), also
    when the run starts between them (a quarter cut by the window's edge is the mean of its rows in it)."""
    if res.T == 0:
        return np.zeros((0,) + P.shape[1:]), np.zeros(0)
    off = round(res.start.timestamp() * 1000) % QUARTER_MS if res.start is not None else 0
    q = (res.t_ms + off) // QUARTER_MS
    uq, inv = np.unique(q, return_inverse=True)
    w = res.dt_h
    num = np.zeros((len(uq),) + P.shape[1:])
    den = np.zeros(len(uq))
    np.add.at(num, inv, finite(P) * (w if P.ndim == 1 else w[:, None]))
    np.add.at(den, inv, w)
    den[den == 0] = np.nan
    return num / (den if P.ndim == 1 else den[:, None]), uq * QUARTER_MS - off


def monthly_peak_charge_kw_months(res: Results, P: np.ndarray) -> np.ndarray:
    """Σ over month blocks (30.44 d from the start of the evaluated window) of peak 15-min import (kW)
    × the block's length in the window (months).

    The quantity a capacity tariff (€/kW-month) is applied to; one value per column of P."""
    qm, q_t = quarter_means(res, P)
    if qm.shape[0] == 0:
        return np.zeros(P.shape[1] if P.ndim > 1 else 1)
    t0 = res.window_ms[0] if res.window_ms is not None else int(res.t_ms[0])
    # a quarter cut by the window's start begins before it: its rows are the window's, so block 0
    blocks = np.maximum((q_t - t0) // MONTH_MS, 0)
    out = np.zeros(qm.shape[1] if qm.ndim > 1 else 1)
    total_ms = res.duration_h * 3_600_000.0
    for b in np.unique(blocks):
        sel = blocks == b
        length = min(MONTH_MS, total_ms - b * MONTH_MS) / MONTH_MS
        out += np.maximum(np.max(qm[sel], axis=0), 0.0) * length
    return out


# ---------------------------------------------------------------------------- energy data


@dataclass
class Energy:
    """Per-household power and billing data, the basis of the household KPIs and value flows."""

    ids: list[str]
    P: np.ndarray          # (T, N) kW net household power
    pv: np.ndarray         # (T, N) kW PV generation (≥ 0)
    bat: np.ndarray        # (T, N) kW stationary battery's terminal power, + charging (0 without one)
    has_pv: np.ndarray     # (N,) bool
    import_kwh: np.ndarray  # (N,) billed
    export_kwh: np.ndarray
    import_cost: np.ndarray  # (N,) €
    feed_in: np.ndarray      # (N,) €
    bill_source: str


def _meter_billing(res: Results, ids: list[str], tariff):
    """Import/export kWh and € per id from meter registers, or None when they do not cover *ids*."""
    e_imp, e_exp = res.series("meters", "E_imp"), res.series("meters", "E_exp")
    if e_imp is None or e_exp is None or not set(ids) <= set(e_imp.ids) or not set(ids) <= set(e_exp.ids):
        return None
    interval = res.step_ms
    if res.scenario is not None and res.scenario.meters is not None:
        interval = int(res.scenario.meters.interval)
    rows = np.nonzero(res.t_ms % interval == 0)[0]
    if len(rows) < 1:
        return None
    p_meter = res.series("meters", "P")
    end_ms = res.t_ms[-1] + res.record_ms
    out = []
    for series in (e_imp, e_exp):
        E = series.aligned(ids)[rows]
        # registers are monotonic: carry a missing reading forward, start at the first reading
        for j in range(E.shape[1]):
            col = E[:, j]
            good = np.isfinite(col)
            if not good.any():
                E[:, j] = 0.0
                continue
            idx = np.where(good, np.arange(len(col)), 0)
            np.maximum.accumulate(idx, out=idx)
            col = col[idx]
            col[: np.argmax(good)] = col[np.argmax(good)]
            E[:, j] = col
        dE = np.diff(E, axis=0) / 1000.0  # kWh of [t_k, t_{k+1})
        out.append((E, dE))
    t_start = res.t_ms[rows]
    imp_p, exp_p = prices_at(tariff, res.local_minutes(t_start))
    (E_i, dE_i), (E_e, dE_e) = out
    import_kwh, export_kwh = dE_i.sum(axis=0), dE_e.sum(axis=0)
    import_cost = (dE_i * imp_p[:-1, None]).sum(axis=0)
    feed_in = (dE_e * exp_p[:-1, None]).sum(axis=0)
    # the open interval after the last reading: from the reading at its end when the file has one (a
    # cool-down after the window), else estimated from the meter's last power reading
    tail_h = (end_ms - t_start[-1]) / 3_600_000.0
    closing = _closing_reading(res, ids, end_ms)
    if closing is not None and tail_h > 0:
        for k, (E, _) in enumerate(out):
            d = np.maximum(closing[k] - E[-1], 0.0) / 1000.0
            if k == 0:
                import_kwh, import_cost = import_kwh + d, import_cost + d * imp_p[-1]
            else:
                export_kwh, feed_in = export_kwh + d, feed_in + d * exp_p[-1]
    elif p_meter is not None and tail_h > 0:
        p_last = finite(p_meter.aligned(ids)[rows[-1]])
        import_kwh = import_kwh + np.maximum(p_last, 0) * tail_h
        export_kwh = export_kwh + np.maximum(-p_last, 0) * tail_h
        import_cost = import_cost + np.maximum(p_last, 0) * tail_h * imp_p[-1]
        feed_in = feed_in + np.maximum(-p_last, 0) * tail_h * exp_p[-1]
    return import_kwh, export_kwh, import_cost, feed_in


def _closing_reading(res: Results, ids: list[str], end_ms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The (E_imp, E_exp) register readings (Wh) at *end_ms*, when the file has a row there for every id."""
    i = int(np.searchsorted(res.t_all, end_ms))
    if i >= len(res.t_all) or res.t_all[i] != end_ms:
        return None
    got = []
    for attr in ("E_imp", "E_exp"):
        s = res.full_series("meters", attr)
        row = s.aligned(ids)[i] if s is not None else np.full(len(ids), np.nan)
        if not np.isfinite(row).all():
            return None
        got.append(row)
    return got[0], got[1]


def energy_data(res: Results) -> Energy | None:
    """Household energy data (None when neither households nor meters recorded P)."""
    tariff = res.economics().tariff
    hh, mt = res.series("households", "P"), res.series("meters", "P")
    if hh is None and mt is None:
        return None
    # households' own power; homes that only have a meter (real HIL homes) from their meter
    ids = list(hh.ids) if hh is not None else []
    extra = [i for i in (mt.ids if mt is not None else []) if i not in set(ids)]
    parts = ([hh.values] if hh is not None else []) + ([mt.aligned(extra)] if extra else [])
    ids += extra
    P = finite(np.hstack(parts))
    pv_s = res.series("households", "P_pv")
    if pv_s is not None:
        pv_raw = pv_s.aligned(ids)
        has_pv = np.isfinite(pv_raw).any(axis=0)
        pv = np.maximum(-finite(pv_raw), 0.0)
    else:
        has_pv = np.zeros(len(ids), dtype=bool)
        pv = np.zeros_like(P)
    bat = np.zeros_like(P)
    for population in ("households", "gateways"):  # a real home with only a meter: its gateway's read-back
        s = res.series(population, "P_bat")
        if s is not None:
            bat = np.where(np.isfinite(b := s.aligned(ids)), b, bat)
    billing = _meter_billing(res, ids, tariff)
    if billing is not None:
        imp_kwh, exp_kwh, cost, feed = billing
        source = "meters"
    else:
        dt_h = res.dt_h[:, None]
        imp_p, exp_p = prices_at(tariff, res.local_minutes(res.t_ms))
        imp_e, exp_e = np.maximum(P, 0) * dt_h, np.maximum(-P, 0) * dt_h
        imp_kwh, exp_kwh = imp_e.sum(axis=0), exp_e.sum(axis=0)
        cost, feed = (imp_e * imp_p[:, None]).sum(axis=0), (exp_e * exp_p[:, None]).sum(axis=0)
        source = "households"
    return Energy(ids, P, pv, bat, has_pv, imp_kwh, exp_kwh, cost, feed, source)


def _balance(P: np.ndarray, pv: np.ndarray, bat: np.ndarray, dt_h: np.ndarray) -> dict[str, np.ndarray]:
    """Energy balance per column (kWh, the module's definitions): PV produced, import, export, consumption
    (the loads' energy)."""
    d = dt_h if P.ndim == 1 else dt_h[:, None]
    return {
        "pv": (pv * d).sum(axis=0),
        "imp": (np.maximum(P, 0.0) * d).sum(axis=0),
        "exp": (np.maximum(-P, 0.0) * d).sum(axis=0),
        "consumption": (np.maximum(P + pv - bat, 0.0) * d).sum(axis=0),
        "mean": (P * d).sum(axis=0) / max(float(dt_h.sum()), 1e-12),
        "peak": P.max(axis=0) if P.shape[0] else np.zeros(P.shape[1:]),
    }


def _ratio(a: float, b: float) -> float | None:
    return _f(a / b) if b > 1e-9 else None


def _share_kept(out: float, whole: float) -> float | None:
    """1 − out / whole in [0, 1]: self-consumption (export of PV) and self-sufficiency (import of consumption)."""
    return _f(min(max(1.0 - out / whole, 0.0), 1.0)) if whole > 1e-9 else None


def _par(peak: float, mean: float) -> float | None:
    return _f(peak / mean, 3) if mean > 1e-9 else None


# ---------------------------------------------------------------------------- KPI groups


def comfort_kh(res: Results, ids: list[str], specs: dict) -> np.ndarray | None:
    """K·h outside the heat-pump comfort band per household (NaN without a heat pump); None without T_in."""
    tin_s = res.series("households", "T_in")
    if tin_s is None:
        return None
    comfort = np.full(len(ids), np.nan)
    T = tin_s.aligned(ids)
    for j, hid in enumerate(ids):
        if not np.isfinite(T[:, j]).any():
            continue
        hp = heat_pump_params(res, specs, hid)
        v = np.maximum(hp.t_min - T[:, j], 0) + np.maximum(T[:, j] - hp.t_max, 0)
        comfort[j] = float(np.nansum(v * res.dt_h))
    return comfort


def _household_kpis(res: Results, en: Energy, na: dict) -> tuple[dict, dict, dict]:
    ids, dt_h = en.ids, res.dt_h
    specs = res.household_specs()
    bal = _balance(en.P, en.pv, en.bat, dt_h)
    qm, _ = quarter_means(res, en.P)
    peak15 = qm.max(axis=0) if qm.shape[0] else np.zeros(len(ids))

    # battery cycles
    efc = np.full(len(ids), np.nan)
    soc_s = res.full_series("households", "soc")
    if soc_s is not None:
        # soc is an end-of-step state: the window's first step starts from the row before it (or, without a
        # warm-up, from the battery's initial state)
        i0, i1 = res.rows.start, res.rows.stop
        soc = soc_s.aligned(ids)[max(i0 - 1, 0):i1]
        if i0 == 0:
            init = [specs[h].devices.battery.soc_init if h in specs and specs[h].devices.battery else np.nan
                    for h in ids]
            soc = np.vstack([np.asarray(init, dtype=float), soc])
        has = np.isfinite(soc[1:]).any(axis=0)
        d = np.abs(np.diff(soc, axis=0))
        efc = np.where(has, np.nansum(d, axis=0) / 2.0, np.nan)
    else:
        pb = res.series("households", "P_bat")
        if pb is not None:
            Pb = pb.aligned(ids)
            for j, hid in enumerate(ids):
                spec = specs.get(hid)
                cap = spec.devices.battery.capacity_kwh if spec and spec.devices.battery else None
                if cap and np.isfinite(Pb[:, j]).any():
                    efc[j] = float(np.nansum(np.abs(Pb[:, j]) * dt_h)) / (2.0 * cap)
        else:
            na["battery_efc"] = "no households/soc or households/P_bat in the results"

    comfort = comfort_kh(res, ids, specs)
    if comfort is None:
        comfort = np.full(len(ids), np.nan)
        na["comfort_violation_kh"] = "no households/T_in in the results (no heat pumps recorded)"

    households = {}
    for j, hid in enumerate(ids):
        households[hid] = {
            "district": district_of(hid),
            "import_kwh": _f(en.import_kwh[j], 3),
            "export_kwh": _f(en.export_kwh[j], 3),
            "pv_kwh": _f(bal["pv"][j], 3) if en.has_pv[j] else None,
            "consumption_kwh": _f(bal["consumption"][j], 3),
            "bill_eur": _f(en.import_cost[j] - en.feed_in[j], 4),
            "import_cost_eur": _f(en.import_cost[j], 4),
            "feed_in_eur": _f(en.feed_in[j], 4),
            "self_consumption": _share_kept(bal["exp"][j], bal["pv"][j]) if en.has_pv[j] else None,
            "self_sufficiency": _share_kept(bal["imp"][j], bal["consumption"][j]),
            "peak_kw": _f(bal["peak"][j], 3),
            "peak_15min_kw": _f(peak15[j], 3),
            "mean_kw": _f(bal["mean"][j], 4),
            "par": _par(float(bal["peak"][j]), float(bal["mean"][j])),
            "battery_efc": _f(efc[j], 4),
            "comfort_violation_kh": _f(comfort[j], 4),
        }

    def group(cols: np.ndarray) -> dict:
        P = en.P[:, cols].sum(axis=1)
        b = _balance(P, en.pv[:, cols].sum(axis=1), en.bat[:, cols].sum(axis=1), dt_h)
        qmg, _ = quarter_means(res, P)
        imp_each = np.maximum(en.P[:, cols], 0).sum(axis=1)
        exp_each = np.maximum(-en.P[:, cols], 0).sum(axis=1)
        shared = float((np.minimum(imp_each, exp_each) * dt_h).sum())
        e = efc[cols]
        c = comfort[cols]
        any_pv = bool(en.has_pv[cols].any())
        return {
            "households": int(len(cols)),
            "import_kwh": _f(en.import_kwh[cols].sum(), 3),
            "export_kwh": _f(en.export_kwh[cols].sum(), 3),
            "pv_kwh": _f(b["pv"], 3) if any_pv else None,
            "consumption_kwh": _f(b["consumption"], 3),
            "net_import_kwh": _f(b["imp"], 3),
            "net_export_kwh": _f(b["exp"], 3),
            "shared_kwh": _f(shared, 3),
            "bill_eur": _f((en.import_cost[cols] - en.feed_in[cols]).sum(), 4),
            "import_cost_eur": _f(en.import_cost[cols].sum(), 4),
            "feed_in_eur": _f(en.feed_in[cols].sum(), 4),
            "self_consumption": _share_kept(float(b["exp"]), float(b["pv"])) if any_pv else None,
            "self_sufficiency": _share_kept(float(b["imp"]), float(b["consumption"])),
            "peak_kw": _f(b["peak"], 3),
            "peak_15min_kw": _f(qmg.max() if qmg.size else None, 3),
            "mean_kw": _f(b["mean"], 4),
            "par": _par(float(b["peak"]), float(b["mean"])),
            "batteries": int(np.isfinite(e).sum()),
            "battery_efc": _f(np.nanmean(e), 4) if np.isfinite(e).any() else None,
            "heat_pumps": int(np.isfinite(c).sum()),
            "comfort_violation_kh": _f(np.nansum(c), 4) if np.isfinite(c).any() else None,
        }

    districts = {}
    names = sorted({district_of(h) for h in ids})
    for name in names:
        cols = np.array([j for j, h in enumerate(ids) if district_of(h) == name], dtype=int)
        districts[name] = group(cols)
    total = group(np.arange(len(ids)))
    return households, districts, total


def _add_cost_kpis(res: Results, en: Energy, out: dict) -> None:
    """The realised objective, the terminal adjustment and their sum (cosim/objective.py) per district and total."""

    comfort = comfort_kh(res, en.ids, res.household_specs())
    objective = objective_kpis(res, en, comfort if comfort is not None else np.full(len(en.ids), np.nan), district_of)
    terminal = terminal_kpis(res, en.ids, district_of)
    for key, target in [("total", out["total"])] + list(out["districts"].items()):
        o, t = objective.get(key, {}), terminal.get(key, {})
        target.update({k: _f(v, 4) if isinstance(v, float) else [_f(x, 4) for x in v] if isinstance(v, list) else v
                       for k, v in (o | t).items()})
        if "objective_eur" in o and "terminal_adjustment_eur" in t:
            target["cost_eur"] = _f(o["objective_eur"] + t["terminal_adjustment_eur"], 4)
            target["cost_eur_range"] = [_f(o["objective_eur"] + x, 4) for x in t["terminal_adjustment_range_eur"]]
        if "stored_start_kwh" in t:
            # energy the window drew from storage is bought back later, energy it left there is not:
            # in grid kWh (objective.py), the import the window implies
            drawn = t["stored_start_kwh"] - t["stored_end_kwh"]
            target["stored_drawn_kwh"] = _f(drawn, 3)
            if target.get("import_kwh") is not None:
                target["import_adjusted_kwh"] = _f(target["import_kwh"] + drawn, 3)
    run = out["run"]
    run["window_h"] = _f(res.duration_h, 4)
    if res.window_ms is not None:
        run["window_ms"] = list(res.window_ms)


def grid_limits(res: Results) -> tuple[float, float, float]:
    """(trafo limit %, line limit %, v band p.u.) from the scenario (defaults 100, 100, 0.1)."""
    g = res.scenario.grid if res.scenario is not None else None
    if g is None:
        return 100.0, 100.0, 0.1
    return float(g.trafo_limit_pct), float(g.line_limit_pct), float(g.v_band)


def trafo_overload(res: Results) -> tuple[float, float] | None:
    """(overload energy kVAh above the limit, reinforcement kVA) over all transformers. The energy is the
    loading above the limit times the transformer's rated kVA (recorded by the grid simulator), i.e.
    the apparent power of the worst terminal (three-phase: worst phase ×3) above the limit, integrated.
    The reinforcement is the rating increase that keeps the largest loading L at the limit l:
    S·(L − l)/l (a 630 kVA transformer at 53 % with a 48 % limit needs 66 kVA more rating, not the
    32 kVA above the limit). None without loadings or ratings."""
    tl = res.series("grid", "trafo_loading")
    kva = res.trafo_kva()
    if tl is None or kva is None:
        return None
    limit, _, _ = grid_limits(res)
    rating = np.array([kva.get(i, np.nan) for i in tl.ids])
    excess = finite(np.maximum(tl.values - limit, 0.0) * rating[None, :])  # % × kVA
    energy = float((excess / 100.0 * res.dt_h[:, None]).sum())
    return energy, float(excess.max()) / limit if excess.size else 0.0


def _grid_kpis(res: Results, na: dict) -> dict | None:
    if not res.has("grid"):
        na["grid"] = "no /grid population in the results (scenario without grid)"
        return None
    trafo_limit, line_limit, band = grid_limits(res)
    dt_min = res.dt_h * 60.0
    out: dict[str, Any] = {"trafo_limit_pct": trafo_limit, "line_limit_pct": line_limit, "v_band_pu": band}
    losses = res.series("grid", "losses")
    out["losses_kwh"] = _f(np.nansum(losses.values.sum(axis=1) * res.dt_h), 3) if losses is not None else None
    # an aggregated file (cosim.aggregate): loadings and voltages are interval maxima / minima, and the
    # minutes over a limit come from the grid's congestion / v_violation flags (interval means = the
    # fraction of the interval flagged); trafo and line overload minutes separately are not in it
    agg = res.aggregate_ms is not None
    # steps whose power flow did not converge have no voltages or loadings: they are not counted as
    # violations (the grid flags them as both), but reported as nonconverged_steps: the share of such
    # steps (0 or 1 per step, a fraction of an aggregated file's interval) is taken off the flags
    conv = res.series("grid", "converged")
    nonconv = 1.0 - finite(conv.values).min(axis=1) if conv is not None else 0.0
    tl = res.extreme("grid", "trafo_loading", "max")
    ll = res.extreme("grid", "line_loading", "max") or res.extreme("grid", "max_line_loading", "max")
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # a non-converged step: all NaN
        t_max = np.nanmax(tl.values, axis=1) if tl is not None else None
        l_max = np.nanmax(ll.values, axis=1) if ll is not None else None
    out["trafo_loading_pct"] = percentiles(t_max) if t_max is not None else None
    out["line_loading_pct"] = percentiles(l_max) if l_max is not None else None
    over_t = (t_max > trafo_limit) if t_max is not None else np.zeros(res.T, bool)
    over_l = (l_max > line_limit) if l_max is not None else np.zeros(res.T, bool)
    if (tl is None and ll is None) or agg:
        flag = res.series("grid", "congestion")
        cong = finite(flag.values).max(axis=1) if flag is not None else None
        cong = cong if cong is None else np.maximum(cong - nonconv, 0.0) if agg else cong - nonconv > 0.5
    else:
        cong = over_t | over_l
    if agg and (tl is not None or ll is not None):
        na["grid.trafo_overload_min"] = na["grid.line_overload_min"] = (
            f"aggregated file ({res.aggregate_ms // 60_000} min means): only congestion_min (trafo or line) is exact")
    out["trafo_overload_min"] = _f((dt_min * over_t).sum(), 2) if tl is not None and not agg else None
    out["line_overload_min"] = _f((dt_min * over_l).sum(), 2) if ll is not None and not agg else None
    out["congestion_min"] = _f((dt_min * cong).sum(), 2) if cong is not None else None
    # the grid's v_min / v_max are over its LV buses (as its v_violation flag); vm_pu also has the MV bus
    vm_lo, vm_hi = res.extreme("grid", "v_min", "min"), res.extreme("grid", "v_max", "max")
    if vm_lo is not None and vm_hi is not None:
        vm_lo, vm_hi = vm_lo.values, vm_hi.values
    else:  # per-bus voltages: the LV buses' columns
        vm_lo, vm_hi = res.extreme("grid", "vm_pu", "min"), res.extreme("grid", "vm_pu", "max")
        if vm_lo is not None and vm_hi is not None:
            vm_lo, vm_hi = monitored_voltages(res, vm_lo), monitored_voltages(res, vm_hi)
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # a non-converged step: all NaN
        if vm_lo is not None and vm_hi is not None:
            vmin, vmax = np.nanmin(vm_lo, axis=1), np.nanmax(vm_hi, axis=1)
        else:
            vmin = vmax = None
    flag = res.series("grid", "v_violation")
    if agg and flag is not None:
        out["v_violation_min"] = _f((dt_min * np.maximum(finite(flag.values).max(axis=1) - nonconv, 0.0)).sum(), 2)
    if vmin is not None and vmax is not None:
        if not agg or flag is None:
            viol = (vmin < 1.0 - band) | (vmax > 1.0 + band)
            out["v_violation_min"] = _f((dt_min * viol).sum(), 2)
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # no step converged: None
            out["v_min_pu"] = _f(np.nanmin(vmin), 4)
            out["v_max_pu"] = _f(np.nanmax(vmax), 4)
    else:
        if not agg:
            out["v_violation_min"] = (_f((dt_min * (finite(flag.values).max(axis=1) - nonconv > 0.5)).sum(), 2)
                                      if flag else None)
        out["v_min_pu"] = out["v_max_pu"] = None
    out["v_violation_10min_min"] = ten_minute_violation_min(res, band)
    if out["v_violation_10min_min"] is None:
        na["grid.v_violation_10min_min"] = ("no per-bus voltages (vm_pu or vm_pu_a/b/c) recorded" if not agg
                                            else "aggregated file: its interval means are not 10-min means")
    pt = res.series("grid", "P_trafo")
    if pt is not None:
        tot = finite(pt.values).sum(axis=1)
        out["trafo_peak_kw"] = _f(tot.max(), 3)
        out["trafo_energy_kwh"] = _f((tot * res.dt_h).sum(), 3)
    ov = trafo_overload(res)
    if ov is None and tl is not None:
        na["grid.overload_kwh"] = na["grid.reinforcement_kva"] = (
            "no transformer ratings in the file (attribute trafo_kva, recorded since 2026-12-05): run again")
    out["overload_kwh"] = _f(ov[0], 3) if ov else None
    out["reinforcement_kva"] = _f(ov[1], 3) if ov else None
    out["unbalance"] = unbalance_kpis(res, band)
    if conv is not None and agg:  # interval means: the fraction of the interval's steps that converged
        steps = res.dt_h * 3_600_000.0 / res.step_ms
        out["nonconverged_steps"] = int(round(float((nonconv * steps).sum())))
    else:
        out["nonconverged_steps"] = int((finite(conv.values).min(axis=1) < 0.5).sum()) if conv is not None else None
    return out


def _delivered_by_slot(settlements: list[dict]) -> dict[tuple, float]:
    """kWh delivered per (settling agent, LFA, slot start) by *settlements* that give it per slot.

    Orders stacked on one slot of one LFA are each settled from their own baseline, a later one's below an
    earlier one's (the plan its offer came from holds the earlier order) or equal to it, against the same
    meters: the LFA delivered the largest of them in that slot (the energy below the highest baseline),
    not their sum.

    A slot of an order in which nothing was ordered (the DSO took an offer in only some of its request's
    slots) delivers nothing: the meters below the baseline there are the aggregator's re-plans, not
    flexibility the DSO bought (files with ``ordered_slots``, since 2026-12-07)."""
    out: dict[tuple, float] = {}
    for rec in settlements:
        t0, slot = int(rec["t0"]), int(rec["slot_ms"])
        ordered = rec.get("ordered_slots") or [None] * len(rec["delivered_slots"])
        for j, (v, o) in enumerate(zip(rec["delivered_slots"], ordered)):
            if v is not None and (o is None or o > 0):
                key = (rec.get("agent", "dso"), rec.get("lfa"), t0 + j * slot)
                out[key] = max(out.get(key, 0.0), float(v))
    return out


def _settlements_once(records: list[dict]) -> list[dict]:
    """The settlement records among *records*, one per order."""
    seen: dict = {}
    for rec in records:
        if rec.get("kind") == "settlement":
            seen.setdefault(rec.get("order", id(rec)), rec)
    return list(seen.values())


def _settled_in_window(res: Results, records: list[dict]) -> dict[tuple, float]:
    """kWh per (settling agent, LFA, slot start) the settlements among *records* (all of ``/events/flex``)
    found delivered in the slots that start in the window (an order may begin before it or end after
    it), for settlements that give it per slot (stacked orders: :func:`_delivered_by_slot`)."""
    w = res.window_ms or (-math.inf, math.inf)
    per_slot = _delivered_by_slot([r for r in _settlements_once(records) if "delivered_slots" in r])
    return {key: e for key, e in per_slot.items() if w[0] <= key[2] < w[1]}


SLOT_TERMS = ("ordered_slots", "delivered_slots", "price", "penalty_rate")  # a settlement's terms per slot


def _has_slot_terms(rec: dict) -> bool:
    """A settlement recorded with its terms per slot (simulators/mas/dso.py, since 2026-12-07)."""
    return all(k in rec for k in SLOT_TERMS)


def _settlement_in_window(res: Results, rec: dict) -> tuple[float, float, float]:
    """(ordered kWh, payment €, penalty €) of settlement *rec* (with :func:`_has_slot_terms`) in the
    window's slots (simulators/mas/dso.py: paid min(delivered, ordered) × price, penalised the shortfall ×
    rate; a slot without meter data delivered 0)."""
    w = res.window_ms or (-math.inf, math.inf)
    t0, slot = int(rec["t0"]), int(rec["slot_ms"])
    inside = [w[0] <= t0 + j * slot < w[1] for j in range(len(rec["ordered_slots"]))]
    o = np.array([x for x, i in zip(rec["ordered_slots"], inside) if i], dtype=float)
    d = np.array([x or 0.0 for x, i in zip(rec["delivered_slots"], inside) if i], dtype=float)
    return (float(o.sum()), float(rec["price"]) * float(np.minimum(d, o).sum()),
            float(rec["penalty_rate"]) * float(np.maximum(o - d, 0.0).sum()))


def _flex_kpis(res: Results, na: dict) -> dict | None:
    out: dict[str, Any] = {}
    found = False
    per_lfa: dict[str, dict] = {}
    for pop in ("lfa", "dso"):
        for key in ("flex_requested", "flex_offered", "flex_ordered", "flex_delivered"):
            s = res.series(pop, key)
            if s is None:
                continue
            found = True
            name = key.split("_", 1)[1] + "_kwh"
            e = np.nansum(s.values * res.dt_h[:, None], axis=0)
            for j, ag in enumerate(s.ids):
                per_lfa.setdefault(ag, {})[name] = _f(e[j], 3)
            if pop == "lfa" or name not in out:
                out[name] = _f(e.sum(), 3)
    if per_lfa:
        out["agents"] = per_lfa
    every = res.records("flex", window=False)  # read once: the window's events and the settled slots
    # an offer is about its request's slots: in the window with its request (it may be sent before)
    req_t0 = {r["req"]: r["t0"] for r in every or [] if r.get("kind") == "flex_request" and "t0" in r}
    ev = None if every is None else [rec for rec in every if res.in_window(
        rec if "t0" in rec or rec.get("req") not in req_t0 else {**rec, "t0": req_t0[rec["req"]]})]
    if ev is not None:
        found = True
        keyf = {"flex_request": "req", "flex_offer": "offer", "flex_order": "order", "settlement": "order"}
        seen = {k: set() for k in keyf}
        ordered = payment = penalty = 0.0
        partial = 0
        in_window = _settled_in_window(res, every)
        delivered = sum(in_window.values())  # + below, settlements without slots
        # settlements with their terms per slot count the window's slots, whenever their order began
        for rec in _settlements_once(every):
            if _has_slot_terms(rec):
                o, pay, pen = _settlement_in_window(res, rec)
                ordered, payment, penalty = ordered + o, payment + pay, penalty + pen
        whole_orders = 0
        for rec in ev:
            kind = rec.get("kind") or rec.get("type")
            if kind not in keyf:
                continue
            ident = rec.get(keyf[kind], id(rec))
            if ident in seen[kind]:
                continue
            seen[kind].add(ident)
            if kind == "settlement":
                if not _has_slot_terms(rec):  # a file before the terms per slot: whole orders
                    whole_orders += 1
                    ordered += float(rec.get("ordered_kwh") or 0)
                    payment += float(rec.get("payment") or 0)
                    penalty += float(rec.get("penalty") or 0)
                delivered += 0.0 if "delivered_slots" in rec else float(rec.get("delivered_kwh") or 0)
                partial += bool(rec.get("partial"))
        if whole_orders:
            na["settlements"] = (f"{whole_orders} settlement(s) recorded without their terms per slot (files before "
                                 "2026-12-07): their ordered energy, payment and penalty count whole orders that "
                                 "start in the window")
        out["requests"] = len(seen["flex_request"])
        out["offers"] = len(seen["flex_offer"])
        out["orders"] = len(seen["flex_order"])
        out["settlements"] = len(seen["settlement"])
        out["settlements_partial"] = partial  # settled when the run stopped, before their end or readings
        out["settled_ordered_kwh"] = _f(ordered, 3)
        out["settled_delivered_kwh"] = _f(delivered, 3)
        out["settlement_payment_eur"] = _f(payment, 4)
        out["settlement_penalty_eur"] = _f(penalty, 4)
        if in_window:  # the settled energy, not the live flex_delivered series (one slot late, see dso.py)
            out["delivered_kwh"] = _f(sum(in_window.values()), 3)
            by_agent: dict[str, float] = {}
            for (settler, lfa, _t), e in in_window.items():  # the DSO that settled, the LFA that delivered
                for ag in {settler, lfa} - {None}:
                    by_agent[ag] = by_agent.get(ag, 0.0) + e
            for ag, e in by_agent.items():
                per_lfa.setdefault(ag, {})["delivered_kwh"] = _f(e, 3)
            out["agents"] = per_lfa
    if not found:
        na["flexibility"] = "no lfa/dso flexibility series and no /events/flex in the results"
        return None
    return out


def _mas_kpis(res: Results, na: dict) -> dict | None:
    """MAS gap per negotiation (%, the dispatched plan against that negotiation's central optimum;
    simulators/mas/host.py) from the ``negotiation`` events: a mean over negotiations, not over time."""
    if not res.has("lfa"):
        na["mas"] = "no lfa population in the results (run without MAS controller)"
        return None
    out: dict[str, Any] = {"agents": {}}
    negs = [e for e in (res.records("flex") or []) if e.get("kind") == "negotiation"]
    rounds = res.series("lfa", "rounds")
    ids = sorted({e.get("agent") for e in negs} | set(rounds.ids if rounds else []))

    def summary(items: list[dict]) -> dict:
        g = np.array([e["gap_central_pct"] for e in items if e.get("gap_central_pct") is not None], dtype=float)
        r = np.array([e.get("rounds", np.nan) for e in items], dtype=float)
        status = [e.get("status") for e in items]
        return {"negotiations": len(items),
                "negotiations_partial": status.count("partial"),
                "negotiations_failed": status.count("failed"),
                "gap_mean_pct": _f(g.mean(), 4) if g.size else None,
                "gap_max_pct": _f(g.max(), 4) if g.size else None,
                "rounds_mean": _f(np.nanmean(r), 2) if np.isfinite(r).any() else None,
                "rounds_max": _f(np.nanmax(r), 0) if np.isfinite(r).any() else None}

    for ag in ids:
        out["agents"][ag] = summary([e for e in negs if e.get("agent") == ag])
    out.update(summary(negs))
    if out["gap_mean_pct"] is None:
        na["mas.gap"] = "no negotiation with a central reference in the window (control.reference: false?)"
    return out


def _telecom_kpis(res: Results, na: dict) -> dict | None:
    msgs = res.records("messages")
    if msgs is not None:
        lat = np.array([m["latency_ms"] for m in msgs if m.get("latency_ms") is not None], dtype=float)
        lost = sum(1 for m in msgs if m.get("lost"))
        delivered = sum(1 for m in msgs if m.get("delivered") is not None and not m.get("lost"))
        kinds: dict[str, int] = {}
        for m in msgs:
            k = str(m.get("kind", "?"))
            kinds[k] = kinds.get(k, 0) + 1
        n = len(msgs)
        return {
            "source": "events/messages",
            "messages_sent": n,
            "messages_delivered": delivered,
            "messages_lost": lost,
            "loss_rate": _ratio(lost, n) if n else None,
            "bytes_sent": int(sum(int(m.get("bytes") or 0) for m in msgs)),
            "latency_ms": percentiles(lat),
            "latency_mean_ms": _f(lat.mean(), 2) if lat.size else None,
            "by_kind": kinds,
        }
    if res.has("telecom"):
        def last_sum(attr):
            s = res.full_series("telecom", attr)
            if s is None or not s.ids:
                return None
            # cumulative counters since the simulation's start: each agent's last finite value in the window
            # less its last one before it (the warm-up's messages are not the window's)
            tot = 0.0
            for j in range(s.values.shape[1]):
                v = s.values[: res.rows.stop, j]
                ok = np.isfinite(v)
                inside, before = ok[res.rows.start:], ok[: res.rows.start]
                if inside.any():
                    end = float(v[res.rows.start:][inside][-1])
                    tot += end - (float(v[: res.rows.start][before][-1]) if before.any() else 0.0)
            return tot

        sent, deliv, lost, b = (last_sum(a) for a in ("sent", "delivered", "lost", "bytes_sent"))
        lat = res.series("telecom", "latency_ms")
        return {
            "source": "telecom population",
            "messages_sent": _f(sent, 0),
            "messages_delivered": _f(deliv, 0),
            "messages_lost": _f(lost, 0),
            "loss_rate": _ratio(lost, sent) if sent else None,
            "bytes_sent": _f(b, 0),
            "latency_ms": percentiles(lat.values) if lat is not None else None,
            "latency_mean_ms": None,
        }
    na["telecom"] = "no /events/messages and no telecom population in the results"
    return None


def _realtime_kpis(res: Results, na: dict) -> dict | None:
    from hil.realtime import recorded_lateness_stats

    s = res.series("realtime", "lateness_ms")
    if s is None:
        na["realtime"] = "no realtime/lateness_ms in the results (not a real-time run)"
        return None
    scn = res.scenario
    st = recorded_lateness_stats(s.values.ravel(), scn.realtime.threshold_ms if scn and scn.realtime else 100.0)
    return {"lateness_ms": {"p50": _f(st["p50_ms"]), "p99": _f(st["p99_ms"]), "max": _f(st["max_ms"])},
            "late_steps": st["late"], "threshold_ms": st["threshold_ms"], "samples": st["n"]}


def use_case(res: Results) -> str:
    """uc3 (several districts or a DSO agent), uc2 (a district of several homes), uc1 (one home, also
    when a home agent and its aggregator plan it, as in the bundled ``uc1_home``)."""
    scn = res.scenario
    n_d = len(scn.districts) if scn is not None else 1
    if res.has("dso") or n_d > 1:
        return "uc3"
    n_h = sum(d.households for d in scn.districts) if scn is not None else 0
    if not n_h:
        s = res.series("households", "P")
        n_h = len(s.ids) if s is not None else 1
    return "uc2" if n_h > 1 else "uc1"


def compute_kpis(path_or_results: str | Path | Results) -> dict:
    """All KPIs of a results file as a nested JSON-safe dict (see the module docstring)."""
    own = not isinstance(path_or_results, Results)
    res = Results(path_or_results) if own else path_or_results
    try:
        if res.attrs.get("view") == "substations":  # the view over many substations' files
            from cosim.substation_view import view_kpis

            return view_kpis(res)
        from cosim.h5repair import writer_state

        na: dict[str, str] = {}
        scn = res.scenario
        run = {
            "file": res.path,
            "name": scn.name if scn else None,
            # a file still 'running' whose writer is gone is a partial run, not a live one
            "status": "partial (its writer stopped without closing it)" if writer_state(res.attrs) == "gone"
            else res.status,
            "error": res.attrs.get("error") or None,
            "seed": res.attrs.get("seed"),
            "start": res.window_start.isoformat() if res.start else None,
            "duration_h": _f(res.duration_h, 4),
            "rows": res.T,
            "record_s": _f(res.record_ms / 1000.0, 3),
            "use_case": use_case(res),
            "control_mode": scn.control.mode if scn is not None and scn.control is not None else None,
            "tie_break": scn.control.tie_break if scn is not None and scn.control is not None else None,
            "objective_id": objective_id(scn),
            "populations": res.populations(),
            "events": res.event_streams(),
        }
        if scn is None:
            na["scenario"] = "the recorded scenario could not be parsed: default tariff and limits used"
        out: dict[str, Any] = {"run": run}
        en = energy_data(res) if res.T else None
        if en is None:
            if res.T:
                na["households"] = "no households/P or meters/P in the results"
            out["households"], out["districts"], out["total"] = {}, {}, None
        else:
            run["bill_source"] = en.bill_source
            out["households"], out["districts"], out["total"] = _household_kpis(res, en, na)
            _add_cost_kpis(res, en, out)
        groups = {"grid": _grid_kpis, "flexibility": _flex_kpis, "mas": _mas_kpis, "telecom": _telecom_kpis,
                  "realtime": _realtime_kpis}
        if not res.T:  # a run still in (or stopped in) its warm-up
            na["window"] = (f"no rows in the evaluated window yet ({len(res.t_all)} rows before it, "
                            f"status {res.status})")
        for name, kpis_of in groups.items():
            out[name] = kpis_of(res, na) if res.T else None
        out["not_available"] = na
        return out
    finally:
        if own:
            res.close()


# ---------------------------------------------------------------------------- flat view and tables

# (dotted key, label, unit) of the KPIs shown in tables, compare and sweep summaries
KEY_KPIS: list[tuple[str, str, str]] = [
    ("total.cost_eur", "cost (objective + terminal adjustment)", "€"),
    ("total.objective_eur", "optimised objective", "€"),
    ("total.terminal_adjustment_eur", "terminal adjustment (stored energy drawn)", "€"),
    ("total.bill_eur", "sum of energy bills", "€"),
    ("total.import_kwh", "import", "kWh"),
    ("total.export_kwh", "export", "kWh"),
    ("total.pv_kwh", "PV produced", "kWh"),
    ("total.consumption_kwh", "consumption", "kWh"),
    ("total.import_adjusted_kwh", "import incl. stored energy drawn", "kWh"),
    ("total.self_consumption", "self-consumption", "1"),
    ("total.self_sufficiency", "self-sufficiency", "1"),
    ("total.shared_kwh", "shared between neighbours", "kWh"),
    ("total.peak_kw", "peak", "kW"),
    ("total.peak_15min_kw", "peak 15-min", "kW"),
    ("total.par", "peak-to-average", "1"),
    ("total.battery_efc", "battery cycles (mean)", "EFC"),
    ("total.comfort_violation_kh", "comfort violation", "K·h"),
    ("grid.losses_kwh", "grid losses", "kWh"),
    ("grid.trafo_loading_pct.p50", "trafo loading p50", "%"),
    ("grid.trafo_loading_pct.p95", "trafo loading p95", "%"),
    ("grid.trafo_loading_pct.p99", "trafo loading p99", "%"),
    ("grid.trafo_loading_pct.max", "trafo loading max", "%"),
    ("grid.line_loading_pct.p95", "line loading p95", "%"),
    ("grid.line_loading_pct.max", "line loading max", "%"),
    ("grid.congestion_min", "congestion", "min"),
    ("grid.v_violation_min", "voltage violation", "min"),
    ("grid.v_violation_10min_min", "voltage violation (10-min means, EN 50160)", "min"),
    ("grid.v_min_pu", "min voltage", "p.u."),
    ("grid.v_max_pu", "max voltage", "p.u."),
    ("grid.overload_kwh", "trafo overload energy (apparent)", "kVAh"),
    ("grid.unbalance.vuf_10min_p95_pct", "voltage unbalance p95 of 10-min values (EN 50160: 2 %)", "%"),
    ("flexibility.requested_kwh", "flex requested", "kWh"),
    ("flexibility.offered_kwh", "flex offered", "kWh"),
    ("flexibility.ordered_kwh", "flex ordered", "kWh"),
    ("flexibility.delivered_kwh", "flex delivered", "kWh"),
    ("mas.gap_mean_pct", "MAS planned gap to optimum (mean per negotiation)", "%"),
    ("mas.gap_max_pct", "MAS planned gap to optimum (max)", "%"),
    ("mas.negotiations_partial", "negotiations with missing replies", "1"),
    ("mas.negotiations_failed", "negotiations without reference", "1"),
    ("telecom.messages_sent", "messages sent", "1"),
    ("telecom.bytes_sent", "bytes sent", "B"),
    ("telecom.loss_rate", "message loss rate", "1"),
    ("telecom.latency_ms.p50", "latency p50", "ms"),
    ("telecom.latency_ms.p99", "latency p99", "ms"),
    ("realtime.lateness_ms.p50", "RT lateness p50", "ms"),
    ("realtime.lateness_ms.p99", "RT lateness p99", "ms"),
    ("realtime.lateness_ms.max", "RT lateness max", "ms"),
]

# the direction in which a KPI of KEY_KPIS is better (-1 lower, +1 higher), for colouring changes; a KPI
# that is neither (energy produced, exported or consumed, flexibility traded, messages) is not listed
LOWER, HIGHER = -1, 1
BETTER: dict[str, int] = {
    **dict.fromkeys(["total.cost_eur", "total.objective_eur", "total.bill_eur", "total.import_kwh",
                     "total.import_adjusted_kwh", "total.peak_kw", "total.peak_15min_kw", "total.par",
                     "total.comfort_violation_kh", "grid.losses_kwh", "grid.trafo_loading_pct.p50",
                     "grid.trafo_loading_pct.p95", "grid.trafo_loading_pct.p99", "grid.trafo_loading_pct.max",
                     "grid.line_loading_pct.p95", "grid.line_loading_pct.max", "grid.congestion_min",
                     "grid.v_violation_min", "grid.v_violation_10min_min", "grid.v_max_pu", "grid.overload_kwh",
                     "grid.unbalance.vuf_10min_p95_pct", "mas.gap_mean_pct", "mas.gap_max_pct",
                     "mas.negotiations_partial", "mas.negotiations_failed", "telecom.loss_rate",
                     "telecom.latency_ms.p50", "telecom.latency_ms.p99", "realtime.lateness_ms.p50",
                     "realtime.lateness_ms.p99", "realtime.lateness_ms.max"], LOWER),
    **dict.fromkeys(["total.self_consumption", "total.self_sufficiency", "total.shared_kwh", "grid.v_min_pu",
                     "flexibility.delivered_kwh"], HIGHER),
}

# (key, label, unit) of a district's / the total's KPIs: the "total." rows of KEY_KPIS
GROUP_KPIS = [("households", "households", "")] + [
    (k.split(".", 1)[1], label, unit) for k, label, unit in KEY_KPIS if k.startswith("total.")]
# (key, column header) of the per-household tables
HOUSEHOLD_KPIS = [("import_kwh", "import kWh"), ("export_kwh", "export kWh"), ("bill_eur", "bill €"),
                  ("pv_kwh", "PV kWh"), ("self_consumption", "SC"), ("self_sufficiency", "SS"),
                  ("peak_kw", "peak kW"), ("par", "PAR"), ("battery_efc", "EFC"),
                  ("comfort_violation_kh", "comfort K·h")]


def lookup(kpis: dict, dotted: str) -> Any:
    cur: Any = kpis
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def flat_kpis(kpis: dict) -> dict[str, Any]:
    """{dotted key: value} of KEY_KPIS (None when not available)."""
    return {k: lookup(kpis, k) for k, _, _ in KEY_KPIS}
