"""Plain-text tables of KPIs (`cosim kpis`, `compare`, `value`, `sweep`)."""

from __future__ import annotations

from typing import Any

from cosim.kpi import GROUP_KPIS, HOUSEHOLD_KPIS, KEY_KPIS, lookup


def fmt(v: Any, money: bool = False) -> str:
    """A KPI value for a table: three significant digits or so, an amount of money (*money*) in cents."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v}"
    if isinstance(v, float):
        a = abs(v)
        if money:
            return f"{round(v, 2) + 0.0:,.2f}"  # + 0.0: an amount below half a cent is 0.00, not -0.00
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:.3f}"
        return f"{v:.3g}"
    return str(v)


def is_money(headers: list[str], row: list, i: int) -> bool:
    """Whether cell *i* of a table's *row* is an amount of money: its row's "unit" is €, or its column's
    header ends in €."""
    return str(headers[i]).endswith("€") or ("unit" in headers and row[headers.index("unit")] == "€")


def text_table(headers: list[str], rows: list[list[Any]], left: tuple[int, ...] = (0,)) -> str:
    """Plain-text table; columns in *left* are left-aligned, the others right-aligned. Amounts of money (a
    row whose "unit" is €, a column whose header ends in €) are shown in cents."""
    cells = [[str(h) for h in headers]] + [
        [c if isinstance(c, str) else fmt(c, is_money(headers, r, i)) for i, c in enumerate(r)] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        parts = [r[i].ljust(widths[i]) if i in left else r[i].rjust(widths[i]) for i in range(len(r))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def kpi_text(kpis: dict, households: bool | None = None) -> str:
    """Human-readable KPI report of one run."""
    run = kpis["run"]
    if "substations" in kpis:
        from cosim.substation_view import view_text

        return view_text(kpis)
    out = [f"{run['file']}: {run.get('name')} ({run.get('use_case')}), status {run.get('status')}, "
           f"{run.get('duration_h')} h, {run.get('rows')} rows of {run.get('record_s')} s"
           + (f", bill from {run['bill_source']}" if run.get("bill_source") else "")]
    # energy: total and districts side by side
    if kpis.get("total"):
        cols = ["total"] + list(kpis["districts"])
        data = [kpis["total"]] + [kpis["districts"][d] for d in kpis["districts"]]
        out += ["", "Energy (total and per district)",
                text_table(["KPI", "unit"] + cols, [[lab, u] + [d.get(k) for d in data] for k, lab, u in GROUP_KPIS],
                           left=(0, 1))]
    hh = kpis.get("households") or {}
    if hh and (households or (households is None and len(hh) <= 12)):
        out += ["", "Households",
                text_table(["household"] + [c for _, c in HOUSEHOLD_KPIS],
                           [[h] + [v.get(k) for k, _ in HOUSEHOLD_KPIS] for h, v in hh.items()])]
    rest = [(k, lab, u) for k, lab, u in KEY_KPIS if not k.startswith("total.")]
    rows = [[lab, u, lookup(kpis, k)] for k, lab, u in rest if lookup(kpis, k) is not None]
    if rows:
        out += ["", "Grid, flexibility, MAS, telecom, real time", text_table(["KPI", "unit", "value"], rows, left=(0, 1))]
    if kpis.get("not_available"):
        out += ["", "Not available:"] + [f"  {k}: {v}" for k, v in kpis["not_available"].items()]
    return "\n".join(out)
