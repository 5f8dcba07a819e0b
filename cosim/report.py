"""Self-contained HTML report of a run (`cosim report`): KPI tables, value flows, plots.

One HTML file with inline CSS and PNG plots embedded as ``data:`` URIs: no external link, no script,
it opens offline and can be mailed. With a baseline, KPIs are shown side by side with their change
and the business-model value flows (:mod:`cosim.business`) are included.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from cosim.business import value_flows
from cosim.errors import InputError
from cosim.kpi import BETTER, GROUP_KPIS, HOUSEHOLD_KPIS, KEY_KPIS, compute_kpis, lookup
from cosim.kpi_text import fmt, is_money
from cosim.output_path import check_output
from cosim.results import Results
from cosim.device_health import device_health
from cosim.lab_plots import LAB_PLOTS
from cosim.plots import all_plots

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1000px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fafafa}.pos{color:#1a7f37}.neg{color:#b3261e}
.meta{color:#555;font-size:.9em}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.8em}
.note{color:#666;font-size:.85em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _table(headers: list[str], rows: list[list], left: tuple[int, ...] = (0,)) -> str:
    out = ["<table>"]
    if any(headers):  # a key-value table (the run's provenance) has no header row
        out += ["<thead><tr>"] + [f'<th class="{"l" if i in left else ""}">{_e(h)}</th>'
                                  for i, h in enumerate(headers)] + ["</tr></thead>"]
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>")
        for i, c in enumerate(r):
            cls = "l" if i in left else ""
            if isinstance(c, tuple):  # (text, css class)
                c, extra = c
                cls = f"{cls} {extra}".strip()
            out.append(f'<td class="{cls}">{_e(c if isinstance(c, str) else fmt(c, is_money(headers, r, i)))}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _delta(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a - b
    return None


def _kpi_section(k: dict, kb: dict | None) -> str:
    rows = []
    for key, label, unit in KEY_KPIS:
        v = lookup(k, key)
        vb = lookup(kb, key) if kb else None
        if v is None and vb is None:
            continue
        row = [label, unit, v]
        if kb is not None:
            d = _delta(v, vb)
            better = BETTER.get(key, 0) * (d or 0)
            colour = "pos" if better > 0 else "neg" if better < 0 else ""
            row += [vb, (d, colour) if d is not None else "n/a"]  # formatted by _table, as its row
        rows.append(row)
    headers = ["KPI", "unit", "controlled" if kb else "value"] + (["baseline", "change"] if kb else [])
    parts = [_table(headers, rows, left=(0, 1))]
    if kb is not None:
        parts.append('<p class="note">change = controlled − baseline (green: better, red: worse; '
                     'uncoloured where neither way is better, e.g. PV produced or energy exported).</p>')
    # per district
    dists = k.get("districts") or {}
    if len(dists) > 1 or (dists and k.get("households") and len(k["households"]) > 1):
        parts.append("<h3>Per district</h3>")
        parts.append(_table(["KPI", "unit"] + list(dists),
                            [[lab, u] + [dists[d].get(key) for d in dists] for key, lab, u in GROUP_KPIS], left=(0, 1)))
    hh = k.get("households") or {}
    if 1 < len(hh) <= 30:
        cols = [("district", "district"), *HOUSEHOLD_KPIS]
        parts.append("<h3>Per household</h3>")
        parts.append(_table(["household"] + [c for _, c in cols],
                            [[h] + [v.get(key) for key, _ in cols] for h, v in hh.items()], left=(0, 1)))
    return "\n".join(parts)


def _value_section(ledger: dict) -> str:
    actors = [a for a, v in ledger["actors"].items() if v["paid_eur"] or v["received_eur"] or v["avoided_cost_eur"]]

    def money(x):
        return (f"{x:.2f}", "pos" if x > 0 else "neg" if x < 0 else "")

    parts = [f'<p class="meta">Use case {_e(ledger["use_case"])}; business models '
             f'{_e(" ".join(ledger["business_models"]))}. Amounts are the change the controller causes '
             "against the baseline, in €; positive = the actor gains.</p>",
             "<h3>Per actor</h3>",
             _table(["actor", "paid", "received", "net", "avoided cost", "value"],
                    [[a, f"{v['paid_eur']:.2f}", f"{v['received_eur']:.2f}", money(v["net_eur"]),
                      f"{v['avoided_cost_eur']:.2f}", money(v["value_eur"])]
                     for a in actors for v in [ledger["actors"][a]]]),
             f'<p class="note">Balance over all actors: {ledger["balance_eur"]:.2f} €.</p>']
    models = list(ledger["by_model"])
    if models:
        parts += ["<h3>Per business model and actor (net €)</h3>",
                  _table(["actor"] + models,
                         [[a] + [money(ledger["by_model"][m][a]) if a in ledger["by_model"][m] else ""
                                 for m in models] for a in actors])]
    parts += ["<h3>Transfers</h3>",
              _table(["model", "payer", "payee", "€", "basis"],
                     [[t["model"], t["payer"], t["payee"], f"{t['amount_eur']:.2f}", t["basis"]]
                      for t in ledger["transfers"]], left=(0, 1, 2, 4))]
    if ledger["avoided_costs"]:
        parts.append("<p class='note'>Avoided costs: " + "; ".join(
            f"{_e(a['model'])} {_e(a['actor'])} {a['amount_eur']:.2f} € ({_e(a['basis'])})"
            for a in ledger["avoided_costs"]) + "</p>")
    if ledger["skipped"]:
        parts.append("<p class='note'>Not evaluated: " + "; ".join(
            f"{_e(s['model'])}: {_e(s['reason'])}" for s in ledger["skipped"]) + "</p>")
    for w in ledger.get("warnings", []):
        parts.append(f"<p class='note'>Warning: {_e(w)}</p>")
    return "\n".join(parts)


def build_report(path: str | Path, baseline: str | Path | None = None) -> str:
    """The HTML text of the report of *path* (optionally against *baseline*)."""
    with Results(path) as run:
        base = Results(baseline) if baseline else None
        try:
            k = compute_kpis(run)
            kb = compute_kpis(base) if base else None
            # a baseline that is not this run's (other households, another time axis) is refused, as by
            # cosim value: its KPI changes would compare different things
            ledger = value_flows(run, base) if base is not None else None
            # a run still in its warm-up (or stopped there) has no rows in the window: nothing to plot
            plots = all_plots(run, base) + [(t, png) for t, fn in LAB_PLOTS if (png := fn(run))] if run.T else []
            devices = device_health(run)
            scenario_text = run.scenario_text
            attrs = run.attrs
        finally:
            if base is not None:
                base.close()
    r = k["run"]
    title = f"Report: {r.get('name') or Path(path).stem}"
    meta = [("results", str(path)), ("baseline", str(baseline) if baseline else "none"),
            ("status", r.get("status")), ("use case", r.get("use_case")), ("start", r.get("start")),
            ("evaluated window", f"{r.get('duration_h')} h, {r.get('rows')} rows of {r.get('record_s')} s"),
            ("seed", r.get("seed")), ("git commit", attrs.get("git_commit", "")),
            ("bill from", r.get("bill_source", "n/a")), ("populations", ", ".join(r.get("populations", []))),
            ("event streams", ", ".join(r.get("events", [])) or "none")]
    if r.get("error"):
        meta.append(("error", r["error"]))
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="meta">generated {dt.datetime.now().astimezone().isoformat(timespec="seconds")} '
            "by cosim report</p>",
            _table(["", ""], [[a, str(b)] for a, b in meta], left=(0, 1)),
            "<h2>Key performance indicators</h2>", _kpi_section(k, kb)]
    if ledger is not None:
        body += ["<h2>Business-model value flows</h2>", _value_section(ledger)]
    else:
        body += ["<h2>Business-model value flows</h2>",
                 "<p class='note'>No baseline given (<code>--baseline BASE.h5</code>): value flows are "
                 "computed against the same scenario run without controller.</p>"]
    if devices:
        body += ["<h2>Real devices</h2>",
                 _table(["role", "device", "address", "outages", "stale s", "exception episodes", "error s"],
                        [[h.role, h.device, h.addr, h.outages, f"{h.stale_s:.0f}", h.exceptions, f"{h.error_s:.0f}"]
                         for h in devices], left=(0, 1, 2)),
                 '<p class="note">Outages and exception episodes from <code>/events/devices</code>; stale / error '
                 "seconds from the recorded <code>quality</code> (1 stale, 2 error).</p>"]
    body.append("<h2>Plots</h2>")
    if not plots:
        body.append("<p class='note'>No plottable data in the evaluated window.</p>")
    for t, png in plots:
        data = base64.b64encode(png).decode("ascii")
        body.append(f'<figure><img alt="{_e(t)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_e(t)}</figcaption></figure>")
    if k.get("not_available"):
        body += ["<h2>Not available in this run</h2>", "<ul>"] + \
                [f"<li><b>{_e(a)}</b>: {_e(b)}</li>" for a, b in k["not_available"].items()] + ["</ul>"]
    if scenario_text:
        body += ["<h2>Scenario</h2>", f"<details><summary>YAML as run</summary><pre>{_e(scenario_text)}</pre>"
                 "</details>"]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _is_html(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(15).lower().startswith(b"<!doctype html")


def write_report(path: str | Path, out: str | Path, baseline: str | Path | None = None) -> Path:
    """Write the report of *path* to *out*: an existing file there is replaced only if it is an HTML file
    (never a results file or another input), refused in one line before anything is read otherwise."""
    out = Path(out)
    if out.resolve() in {Path(p).resolve() for p in (path, baseline) if p}:
        raise InputError(f"{out}: is an input of the report; refusing to overwrite it")
    check_output(out, _is_html, "an HTML file", "report.html")
    text = build_report(path, baseline)
    out.write_text(text, encoding="utf-8")
    return out
