"""LV network loading for the grid simulator.

``load_network(spec)`` accepts

* a bundled name (see :data:`BUNDLED`), e.g. ``"kerber_vorstadt_1"`` (294 buses, 146 loads),
  ``"cigre_lv"``, ``"kerber_dorf"``, ``"dickert_lv"``;
* ``"simbench:<code>"`` (e.g. ``"simbench:1-LV-rural1--0-sw"``) when the optional ``simbench``
  package is installed;
* a path to a pandapower JSON file (``pandapower.to_json`` output).

Bundled networks are built with Python's ``random`` seeded (pandapower's kerber factories draw
cable types from it), so a name always gives the same network. Building one takes 1-4 s (pandapower's
element-by-element ``create_*``), so the built net is kept in a per-user disk cache (a pickle, 15 ms to
load) keyed by name, pandapower version, build seed and Python version: ``$LVFLEX_CACHE_DIR``, else
``$XDG_CACHE_HOME/lvflex-cosim``, else ``~/.cache/lvflex-cosim``. An unreadable entry is rebuilt; an
unwritable cache directory only costs the build time.

The loaded net still carries its original ``load``/``sgen`` elements (the example consumption of the
network's authors). :func:`load_buses` reads the load buses from them (household bus candidates),
and :func:`strip_injections` removes them, together with ``storage`` and the asymmetric
loads/sgens: in the co-simulation every injection comes from the households mapped onto the buses,
so the original demo loads must not be counted twice. The grid simulator calls both, in that order.
"""
from __future__ import annotations

import copy
import os
import pickle
import random
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandapower as pp
import pandapower.networks as pn

__all__ = [
    "BUNDLED",
    "bundled_names",
    "load_network",
    "load_buses",
    "default_mapping",
    "strip_injections",
    "element_names",
]


def _dickert(feeders_range: str) -> Callable[[], pp.pandapowerNet]:
    def make() -> pp.pandapowerNet:
        return pn.create_dickert_lv_network(feeders_range=feeders_range, linetype="cable",
                                            customer="multiple", case="average")
    return make


#: bundled network name -> factory (pandapower.networks)
BUNDLED: dict[str, Callable[[], pp.pandapowerNet]] = {
    "kerber_vorstadt_1": pn.create_kerber_vorstadtnetz_kabel_1,   # 294 buses, 146 loads
    "kerber_vorstadt_2": pn.create_kerber_vorstadtnetz_kabel_2,   # 290 buses, 144 loads
    "kerber_dorf": pn.create_kerber_dorfnetz,                     # 116 buses, 57 loads
    "kerber_land_kabel_1": pn.create_kerber_landnetz_kabel_1,     # 18 buses, 8 loads
    "kerber_land_kabel_2": pn.create_kerber_landnetz_kabel_2,
    "kerber_land_freileitung_1": pn.create_kerber_landnetz_freileitung_1,  # 15 buses, 13 loads
    "kerber_land_freileitung_2": pn.create_kerber_landnetz_freileitung_2,
    "cigre_lv": pn.create_cigre_network_lv,                       # 44 buses, 15 loads, 3 trafos
    "dickert_lv_short": _dickert("short"),                        # 14 buses, 12 loads
    "dickert_lv": _dickert("middle"),                             # 62 buses, 60 loads
    "dickert_lv_middle": _dickert("middle"),
    "dickert_lv_long": _dickert("long"),                          # 122 buses, 120 loads
}


def bundled_names() -> list[str]:
    return sorted(BUNDLED)


def _load_simbench(code: str) -> pp.pandapowerNet:
    try:
        import simbench  # type: ignore[import-not-found]
    except ImportError as exc:  # optional dependency
        raise ValueError(
            f"network 'simbench:{code}' needs the optional 'simbench' package, which is not "
            "installed (pip install simbench)") from exc
    try:
        return simbench.get_simbench_net(code)
    except Exception as exc:  # simbench raises various errors for bad codes
        raise ValueError(f"simbench could not build network code {code!r}: {exc}") from exc


_CACHE: dict[str, pp.pandapowerNet] = {}

#: seed of Python's global ``random`` while a bundled network is built (see _build_seeded)
BUILD_SEED = 0


def _build_seeded(factory: Callable[[], pp.pandapowerNet]) -> pp.pandapowerNet:
    """Build a bundled network reproducibly.

    pandapower's kerber factories draw branch-out cable types (NAYY 4x50 / NYY 4x35) from Python's
    *unseeded global* ``random`` module, so two calls give different impedances (voltages differed
    by ~1e-6 p.u. between runs). We seed it with :data:`BUILD_SEED` during the build and restore
    the caller's random state afterwards.
    """
    state = random.getstate()
    try:
        random.seed(BUILD_SEED)
        return factory()
    finally:
        random.setstate(state)


def cache_dir() -> Path:
    """Directory of the built-network cache (see the module docstring)."""
    if os.environ.get("LVFLEX_CACHE_DIR"):
        return Path(os.environ["LVFLEX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lvflex-cosim"


def _cache_file(name: str) -> Path:
    py = f"{sys.version_info.major}{sys.version_info.minor}"
    return cache_dir() / "networks" / f"{name}-pp{pp.__version__}-seed{BUILD_SEED}-py{py}.pkl"


def _cached_build(name: str) -> pp.pandapowerNet:
    """The bundled net ``name`` from the disk cache, built (and stored) when absent or unreadable."""
    path = _cache_file(name)
    try:
        with open(path, "rb") as f:
            net = pickle.load(f)
        if isinstance(net, pp.pandapowerNet):
            return net
    except Exception:  # absent, truncated, or written by an incompatible version: rebuild
        pass
    net = _build_seeded(BUNDLED[name])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            pickle.dump(net, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(f.name, path)  # atomic: concurrent runs never read a half-written entry
    except OSError:
        pass  # read-only home or full disk: the build still serves this process
    return net


def load_network(spec: str) -> pp.pandapowerNet:
    """Return a fresh pandapower net for ``spec`` (bundled name, ``simbench:<code>`` or JSON path).

    Bundled networks are built once per process and deep-copied on every call (callers own and
    may modify the returned net).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"network spec must be a non-empty string, got {spec!r}; "
                         f"valid names: {', '.join(bundled_names())}, 'simbench:<code>' "
                         "or a path to a pandapower JSON file")
    spec = spec.strip()
    if spec in BUNDLED:
        if spec not in _CACHE:  # a deep copy takes ~5 ms
            _CACHE[spec] = _cached_build(spec)
        return copy.deepcopy(_CACHE[spec])
    if spec.startswith("simbench:"):
        return _load_simbench(spec.split(":", 1)[1])
    if spec.lower().endswith(".json") or os.path.sep in spec or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise ValueError(f"network file {spec!r} does not exist")
        try:
            net = pp.from_json(spec)
        except Exception as exc:
            raise ValueError(f"could not read pandapower JSON network {spec!r}: {exc}") from exc
        if len(net.bus) == 0 or len(net.ext_grid) + len(net.gen) == 0:
            raise ValueError(f"network {spec!r} has no buses or no slack (ext_grid/gen)")
        return net
    raise ValueError(f"unknown network {spec!r}; valid names: {', '.join(bundled_names())}, "
                     "'simbench:<code>' or a path to a pandapower JSON file")


def load_buses(net: pp.pandapowerNet) -> list[int]:
    """Buses of the net's (in-service) original loads, in ``net.load`` order, without duplicates.

    Falls back to all in-service buses below 1 kV when the net has no loads.
    """
    loads = net.load[net.load.in_service.astype(bool)] if len(net.load) else net.load
    buses: list[int] = []
    seen: set[int] = set()
    for b in loads.bus.tolist():
        b = int(b)
        if b not in seen:
            seen.add(b)
            buses.append(b)
    if not buses:
        lv = net.bus[(net.bus.vn_kv < 1.0) & net.bus.in_service.astype(bool)]
        buses = [int(b) for b in lv.index]
    if not buses:
        raise ValueError("network has neither loads nor LV buses to attach households to")
    return buses


def default_mapping(household_ids: Iterable[str], net: pp.pandapowerNet,
                    buses: Sequence[int] | None = None) -> dict[str, int]:
    """Round-robin ``household_ids`` (in the given order) onto ``buses`` (default: load buses)."""
    buses = list(load_buses(net) if buses is None else buses)
    return {hid: buses[k % len(buses)] for k, hid in enumerate(household_ids)}


def strip_injections(net: pp.pandapowerNet) -> pp.pandapowerNet:
    """Remove the original loads, sgens, storages and asymmetric loads/sgens (in place).

    The households' injections replace them. Returns ``net`` for chaining.
    """
    for table in ("load", "sgen", "storage", "asymmetric_load", "asymmetric_sgen"):
        if table in net and len(net[table]):
            net[table] = net[table].iloc[0:0]
            res = "res_" + table
            if res in net and len(net[res]):
                net[res] = net[res].iloc[0:0]
    return net


def element_names(table, prefix: str) -> list[str]:
    """Output names for the rows of a pandapower element table.

    A row keeps its pandapower ``name`` when that name is a non-empty string used by no other row;
    otherwise it is ``f"{prefix}{index}"``. If the result still collides (a real name equal to a
    generated one), every row gets the generated name.
    """
    idx = [int(i) for i in table.index]
    if "name" in table:
        raw = [n if isinstance(n, str) and n.strip() else None for n in table["name"].tolist()]
    else:
        raw = [None] * len(idx)
    counts: dict[str, int] = {}
    for n in raw:
        if n is not None:
            counts[n] = counts.get(n, 0) + 1
    names = [n if n is not None and counts[n] == 1 else f"{prefix}{i}" for n, i in zip(raw, idx)]
    if len(set(names)) != len(names):
        names = [f"{prefix}{i}" for i in idx]
    return names
