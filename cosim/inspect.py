"""Human-readable summary of a results file (`cosim inspect`)."""

from __future__ import annotations

import json

from cosim.h5repair import unclosed_note
from cosim.results import list_datasets, read_attrs

PROVENANCE_KEYS = ("status", "error", "seed", "start", "step_ms", "steps", "started_at", "finished_at", "host",
                   "pid", "git_commit", "command")


def describe_results(path: str) -> str:
    attrs = read_attrs(path)
    lines = [f"{path}"]
    for key in PROVENANCE_KEYS:
        if key in attrs and str(attrs[key]) != "":
            lines.append(f"  {key:<12} {attrs[key]}")
    if "versions" in attrs:
        versions = json.loads(attrs["versions"])
        lines.append("  versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    scenario = str(attrs.get("scenario", ""))
    lines.append(f"  scenario     {len(scenario.splitlines())} lines of YAML (re-run: cosim run {path})")
    lines.append("datasets:")
    for name, shape, dtype, unit in list_datasets(path):
        lines.append(f"  {name:<33} {str(shape):<14} {dtype}  {unit}")
    note = unclosed_note(path, attrs)
    return "\n".join(lines + ([note] if note else []))
