"""Compare the key KPIs of several runs side by side (`cosim compare A.h5 B.h5 ...`)."""

from __future__ import annotations

from pathlib import Path

from cosim.kpi import KEY_KPIS, compute_kpis, flat_kpis, text_table


def run_labels(paths: list[str]) -> list[str]:
    """Short unique column labels: file stems, with the parent folder when stems repeat."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(p).parent.name}/{Path(p).stem}" if stems.count(Path(p).stem) > 1 else Path(p).stem
            for p in paths]


def compare(paths: list[str]) -> dict:
    """{"runs": [labels], "files": [...], "kpis": {dotted key: [value per run]}, "labels": {key: (label, unit)}}.

    Rows where no run has a value are left out."""
    flats = [flat_kpis(compute_kpis(p)) for p in paths]
    kpis = {}
    for key, _, _ in KEY_KPIS:
        vals = [f.get(key) for f in flats]
        if any(v is not None for v in vals):
            kpis[key] = vals
    return {"runs": run_labels(paths), "files": list(paths), "kpis": kpis,
            "labels": {k: (lab, u) for k, lab, u in KEY_KPIS if k in kpis}}


def compare_text(result: dict) -> str:
    rows = [[result["labels"][k][0], result["labels"][k][1]] + vals for k, vals in result["kpis"].items()]
    return text_table(["KPI", "unit"] + result["runs"], rows, left=(0, 1))
