"""Compare the key KPIs of several runs side by side (`cosim compare A.h5 B.h5 ...`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cosim.kpi import KEY_KPIS, compute_kpis, flat_kpis
from cosim.kpi_text import text_table


def run_labels(paths: list[str]) -> list[str]:
    """Short unique column labels: file stems, with the parent folder when stems repeat."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(p).parent.name}/{Path(p).stem}" if stems.count(Path(p).stem) > 1 else Path(p).stem
            for p in paths]


# runs whose stored energy changed by more than this share of their window's import energy differ in
# end state enough that only ``cost_eur`` (objective + terminal adjustment) compares them fairly
END_STATE_TOL = 0.01
# runs whose comfort penalties differ by more than this share of their cost difference: the penalty, a weight
# that keeps the heat pumps' soft comfort band (simulators/mas/tariff.py), and not money, ranks them
COMFORT_SHARE = 0.1


def compare(paths: list[str]) -> dict:
    """{"runs": [labels], "files": [...], "kpis": {dotted key: [value per run]}, "labels": {key: (label, unit)},
    "realised_gap_pct": [per run or None], "warnings": [...]}.

    Rows where no run has a value are left out. With a ``central`` run among them, every other run's
    realised gap is its cost (objective + terminal adjustment, same window) against the central run's."""
    full = [compute_kpis(p) for p in paths]
    flats = [flat_kpis(k) for k in full]
    kpis = {}
    for key, _, _ in KEY_KPIS:
        vals = [f.get(key) for f in flats]
        if any(v is not None for v in vals):
            kpis[key] = vals
    labels = run_labels(paths)
    gaps, warnings = realised_gaps(full, labels)
    return {"runs": labels, "files": list(paths), "kpis": kpis,
            "labels": {k: (lab, u) for k, lab, u in KEY_KPIS if k in kpis},
            "realised_gap_pct": gaps, "warnings": warnings}


def _mode(k: dict) -> str | None:
    return (k.get("run") or {}).get("control_mode")


def realised_gaps(full: list[dict], labels: list[str]) -> tuple[list[float | None], list[str]]:
    """Realised gap (%) of each run's cost to the central run's, and warnings on unfair comparisons."""
    warnings = []
    runs = [k.get("run") or {} for k in full]
    ref = [(r.get("start"), r.get("window_h"), r.get("seed"), r.get("name")) for r in runs]
    if len(set(ref)) > 1:
        warnings.append("the runs differ in scenario, seed or evaluated window: "
                        + "; ".join(f"{lab}: {r[3]} seed {r[2]}, {r[1]} h from {r[0]}" for lab, r in zip(labels, ref)))
    rec = [r.get("record_s") for r in runs]
    if len(set(rec)) > 1:
        warnings.append("the runs are recorded at different intervals ("
                        + ", ".join(f"{lab} {s:g} s" if s is not None else f"{lab} n/a" for lab, s in zip(labels, rec))
                        + "; an aggregated file holds interval means): peak, peak-to-average and loadings differ "
                        "by the recording, not only by the runs")
    ids = [r.get("objective_id") for r in runs]
    if len(set(ids)) > 1:
        warnings.append("the runs value their cost differently (economics, objective weights, slot or terminal "
                        "price; objective_id " + ", ".join(f"{lab} {i}" for lab, i in zip(labels, ids))
                        + "): their costs and gaps do not compare")
    totals = [k.get("total") or {} for k in full]
    drawn = [(t.get("stored_start_kwh") or 0.0) - (t.get("stored_end_kwh") or 0.0) for t in totals]
    imports = [t.get("import_kwh") or 0.0 for t in totals]
    base = max(imports) if imports else 0.0
    if base > 0 and max(drawn) - min(drawn) > END_STATE_TOL * base:
        warnings.append("end states differ: stored energy drawn in the window "
                        + ", ".join(f"{lab} {d:+.1f} kWh" for lab, d in zip(labels, drawn))
                        + f" (> {100 * END_STATE_TOL:g} % of {base:.0f} kWh imported): compare cost_eur and "
                        "import_adjusted_kwh, which count it, not the objective, bills, import, consumption or "
                        "self-sufficiency alone")
    ranges = [t.get("cost_eur_range") for t in totals]
    if len(full) > 1 and all(ranges):
        order = {tuple(np.argsort([r[e] for r in ranges], kind="stable")) for e in (0, 1)}
        if len(order) > 1:
            warnings.append("the ranking of the runs' cost_eur changes with the terminal price (lowest vs highest "
                            "import price of the day: " + ", ".join(f"{lab} {r[0]:.2f}..{r[1]:.2f} EUR" for lab, r
                                                                   in zip(labels, ranges))
                            + "): the stored energy decides it; compare on a longer window or with a justified "
                            "evaluation.terminal_price")
    comfort, costs = [t.get("objective_comfort_eur") for t in totals], [t.get("cost_eur") for t in totals]
    if len(full) > 1 and None not in comfort + costs:
        d_comfort, d_cost = max(comfort) - min(comfort), max(costs) - min(costs)
        if d_comfort > 0.01 and d_comfort > COMFORT_SHARE * d_cost:
            warnings.append("the comfort penalty (" + ", ".join(f"{lab} {c:.2f}" for lab, c in zip(labels, comfort))
                            + f" EUR) differs by {d_comfort:.2f} EUR, {d_comfort / max(d_cost, 1e-9):.0%} of the "
                            "runs' cost difference: a weight per K·h outside the heat-pump band "
                            "(economics.tariff.comfort_penalty), not money; read comfort_violation_kh beside cost_eur")
    central = [i for i, k in enumerate(full) if _mode(k) == "central"]
    untied = [lab for lab, r in zip(labels, runs) if r.get("tie_break") == 0.0 and r.get("control_mode") != "none"]
    if central and len(full) > 1 and untied:
        warnings.append("planned without control.tie_break: " + ", ".join(untied)
                        + ". The solver's pivoting then decides among equally cheap plans, and the realised cost "
                        "depends on it (on uc2_district the central run realised 2.1 % more; README, \"Study "
                        "numbers\"): set control.tie_break (e.g. 1e-4) in both runs")
    gaps: list[float | None] = [None] * len(full)
    if central:
        c = totals[central[0]].get("cost_eur")
        if c is not None and abs(c) > 1e-9:
            for i, t in enumerate(totals):
                if i != central[0] and t.get("cost_eur") is not None:
                    gaps[i] = round((t["cost_eur"] - c) / abs(c) * 100.0, 4)
    return gaps, warnings


def compare_text(result: dict) -> str:
    rows = [[result["labels"][k][0], result["labels"][k][1]] + vals for k, vals in result["kpis"].items()]
    if any(g is not None for g in result.get("realised_gap_pct", [])):
        rows.append(["realised gap to the central run (cost)", "%"] + result["realised_gap_pct"])
    out = text_table(["KPI", "unit"] + result["runs"], rows, left=(0, 1))
    return "\n".join([out] + [f"warning: {w}" for w in result.get("warnings", [])])
