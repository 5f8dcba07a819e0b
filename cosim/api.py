"""The public Python API (README "Python API"): load a scenario, run it, read its results.

    import cosim
    scn = cosim.load_scenario("uc2_district", duration="6h", **{"districts[0].households": 20})
    res = cosim.run(scn, out="results/small.h5")
    P = res.frame("households", "P")          # pandas, tz-aware index, one column per household
    k = res.kpis()

Overrides are dotted paths into the scenario, the same as in sweeps; top-level fields can be passed
as keyword arguments (``seed=3``), others with ``**{"control.mode": "central"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosim.errors import InputError
from cosim import results
from cosim.kpi import compute_kpis
from cosim.results import read_scenario_text
from cosim.scenario import Scenario, load_scenario_text, scenario_from_text


class Results(results.Results):
    """A results file (:class:`cosim.results.Results`: ``frame``, ``events``, ...) with its KPIs."""

    def kpis(self) -> dict:
        """Every KPI of the evaluated window, as ``cosim kpis --json`` (:func:`cosim.kpi.compute_kpis`)."""
        return compute_kpis(self)


def scenario_source(ref: str | Path) -> tuple[str, str]:
    """(YAML text, source label) of a scenario path, bundled name, or results file (its recorded scenario)."""
    ref = str(ref)
    if ref.endswith((".h5", ".hdf5")) and Path(ref).exists():
        return read_scenario_text(ref), ref
    return load_scenario_text(ref)


def load(ref: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Scenario, str]:
    """The validated scenario and its effective YAML text (recorded in the results as provenance)."""
    text, source = scenario_source(ref)
    return scenario_from_text(text, source, overrides)


def load_scenario(ref: str | Path, **overrides: Any) -> Scenario:
    """A validated :class:`~cosim.scenario.Scenario` from a path, bundled name or results file.

    Raises :class:`~cosim.scenario.ScenarioError` (one line per problem) on bad input."""
    scn, text = load(ref, overrides)
    scn._text = text
    return scn


def run(scenario: str | Path | Scenario, *, until: str | None = None, seed: int | None = None,
        out: str | Path | None = None, progress: bool = False, **overrides: Any) -> Results:
    """Run a scenario (path, bundled name, results file, or a :func:`load_scenario` result) and return
    its :class:`Results` (evaluated window).

    *until* is the evaluated period (``"6h"``), *seed* replaces the scenario's seed, *out* the output
    path; *overrides* are dotted paths as in sweeps. A failed simulator raises
    :class:`~cosim.runner.RunFailed`, Ctrl-C :class:`~cosim.runner.RunInterrupted`; the file keeps
    every completed step either way."""
    from cosim.runner import run_scenario

    from cosim.durations import parse_duration_ms
    from cosim.scenario import ScenarioError, _seed

    if until is not None:  # refused as the argument it is, not as the scenario file's duration or seed
        try:
            if not isinstance(until, str):
                raise ValueError(f"expected a duration with a unit like '6h', got {until!r}")
            parse_duration_ms(until)
        except ValueError as exc:
            raise ScenarioError([f"until: {exc}"]) from None
        overrides["duration"] = until
    if seed is not None:
        try:
            _seed(seed)
        except ValueError as exc:
            raise ScenarioError([f"seed: {exc}"]) from None
        overrides["seed"] = seed
    if isinstance(scenario, Scenario):
        text = getattr(scenario, "_text", "")
        if not text:
            raise InputError("cosim.run: pass a scenario name/path, or a Scenario from cosim.load_scenario()")
        scn, text = scenario_from_text(text, scenario.name, overrides)
    else:
        scn, text = load(scenario, overrides)
    if scn.substations:  # many substations: parallel runs on a local dask cluster, one results view
        from cosim.substations import run_substations

        return Results(run_substations(scn, text, out=out, progress=progress).path)
    result = run_scenario(scn, text, out=out, progress=progress)
    return Results(result.path)
