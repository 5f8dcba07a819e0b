"""lvflex-cosim: co-simulation of multi-agent flexibility management in LV grids (mosaik 3.6).

Public API (README "Python API")::

    import cosim
    res = cosim.run("uc1_home", until="6h")
    res.frame("households", "P")      # pandas DataFrame, tz-aware index, one column per device
    res.events("flex")                 # pandas DataFrame, one row per event
    res.kpis()                         # nested dict (as `cosim kpis --json`)

Bad input raises ``cosim.InputError`` (one-line messages: files, reads of a results file such as a series
it does not have or a closed ``Results``; ``cosim.ScenarioError``, its subclass, for scenarios), a failed
run ``cosim.RunFailed``.
"""

from __future__ import annotations

from importlib import import_module, metadata

try:
    __version__ = metadata.version("lvflex-cosim")
except metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

_PUBLIC = {
    "run": "cosim.api", "load_scenario": "cosim.api", "Results": "cosim.api",
    "compute_kpis": "cosim.kpi", "Scenario": "cosim.scenario", "ScenarioError": "cosim.scenario",
    "InputError": "cosim.errors",
    "RunFailed": "cosim.runner", "RunInterrupted": "cosim.runner",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    """Import the public names lazily: ``import cosim`` stays cheap for the CLI and the simulators."""
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cosim' has no attribute {name!r}")
