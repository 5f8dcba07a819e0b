"""Human-readable summary of a results file (`cosim inspect`)."""

from __future__ import annotations

import json

import h5py

from cosim.h5open import open_results
from cosim.h5repair import unclosed_note

PROVENANCE_KEYS = ("status", "error", "seed", "start", "step_ms", "steps", "started_at", "finished_at", "host",
                   "pid", "git_commit", "command")


def describe_results(path: str) -> str:
    lines = [f"{path}"]
    with open_results(path) as f:
        for key in PROVENANCE_KEYS:
            if key in f.attrs and str(f.attrs[key]) != "":
                lines.append(f"  {key:<12} {f.attrs[key]}")
        if "versions" in f.attrs:
            versions = json.loads(f.attrs["versions"])
            lines.append("  versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        scenario = f.attrs.get("scenario", "")
        lines.append(f"  scenario     {len(scenario.splitlines())} lines of YAML (re-run: cosim run {path})")
        lines.append("datasets:")

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "/_ids/" not in f"/{name}/":
                unit = obj.attrs.get("unit", "")
                lines.append(f"  /{name:<32} {str(obj.shape):<14} {obj.dtype}  {unit}")

        f.visititems(visit)
        note = unclosed_note(path, f.attrs)
    return "\n".join(lines + ([note] if note else []))
