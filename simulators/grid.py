"""LV grid simulator (mosaik-api-v3, time-based): households' P/Q in, grid state out.

Model ``Grid`` (one entity = one LV network):

params
    ``network``          bundled name (``simulators.grid_networks.bundled_names()``), ``simbench:<code>``
                         or a pandapower JSON path
    ``households``       list of household ids fed into this grid, mapped round-robin onto the
                         network's original load buses (``grid_networks.default_mapping``), unless
    ``mapping``          ``{household_id: bus}`` gives the bus explicitly (pandapower bus index, or a
                         bus name, or ``"bus<i>"``). Ids in ``mapping`` but not in ``households`` are
                         added; at least one of the two is required.
    ``engine``           ``"fast"`` (default, ``grid_engine.FastEngine``), ``"runpp"`` (pandapower
                         runpp with recycle) or ``"runpp_norecycle"``
    ``line_limit_pct``   congestion threshold for lines (default 100 %)
    ``trafo_limit_pct``  congestion threshold for transformers (default 100 %)
    ``v_band``           allowed voltage deviation from 1 p.u. (default 0.1, EN 50160 ±10 %)
    ``engine_options``   dict passed to the engine (e.g. ``{"method": "nr"}``)

The network's original loads/sgens/storages are removed (``grid_networks.strip_injections``): the
households are the only injections. Several households on one bus are summed.

Inputs (kW / kvar, load convention): ``P``, ``Q`` as mosaik delivers them,
``{attr: {source_full_id: {household_id: value}}}``; all sources are merged. A household without a
value this step (absent, ``None`` or NaN) keeps its last value (0 initially).

Outputs (plain ``dict[str, float]``):
    ``P``, ``Q``           the merged household injections used in the power flow (kW, kvar)
    ``vm_pu``              per bus (pandapower bus name when unique, else ``bus<i>``)
    ``line_loading``       per line, % (pandapower definition)
    ``trafo_loading``      per transformer, % (current based, pandapower definition)
    ``P_trafo``            per transformer, kW at the HV side (positive = flow MV -> LV)
    ``losses``             ``{"grid": kW}`` active losses of all branches (lines, transformers incl.
                           iron losses)
    ``congestion``         ``{"grid": 1}`` if any line > ``line_limit_pct`` or transformer >
                           ``trafo_limit_pct``, else 0
    ``v_violation``        ``{"grid": 1}`` if any monitored bus is outside ``1 ± v_band``
    ``converged``          ``{"grid": 0/1}``
    ``v_min``, ``v_max``   ``{"grid": p.u.}`` over the monitored buses
    ``max_line_loading``   ``{"grid": %}``
    ``V``                  per household, V: the line-to-neutral voltage at its bus (what its meter
                           reads; served to Modbus clients by the device server, not recorded)
Monitored buses are the LV buses (``vn_kv < 1``) when the net has any, else all buses.
When the power flow does not converge (loads beyond what the grid can carry) every electrical value
is NaN, ``converged`` is 0 and ``congestion`` and ``v_violation`` are set to 1.

Model ``Grid3ph`` (``engine: fast3ph``) is the unbalanced grid of :mod:`simulators.grid3ph`
(households on phases, per-phase voltages, OpenDSS networks); same simulator, same stepping.

Init params: ``start`` (ISO-8601, informative), ``step_size`` (ticks, default 60 000 = 1 min at
``time_resolution=0.001``).
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable, Mapping

import mosaik_api_v3
import numpy as np

from simulators.grid3ph import IN_ATTRS_3PH, METER_ATTRS, METER_ATTRS_1PH, OUT_ATTRS_3PH, PARAMS_3PH, GridModel3ph
from simulators.grid_engine import PFResult, make_engine
from simulators.grid_networks import (default_mapping, element_names, load_buses, load_network,
                                      strip_injections)

__all__ = ["GridModel", "GridSim", "META"]

IN_ATTRS = ["P", "Q"]
OUT_ATTRS = ["vm_pu", "line_loading", "trafo_loading", "P_trafo", "losses", "congestion",
             "v_violation", "converged", "v_min", "v_max", "max_line_loading"]
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Grid": {
            "public": True,
            "params": ["network", "households", "mapping", "engine", "line_limit_pct",
                       "trafo_limit_pct", "v_band", "engine_options"],
            "attrs": IN_ATTRS + OUT_ATTRS + METER_ATTRS_1PH,
            "outputs": OUT_ATTRS,  # the inputs are the households' own P and Q, recorded there
        },
        "Grid3ph": {
            "public": True,
            "params": PARAMS_3PH,
            "attrs": IN_ATTRS_3PH + OUT_ATTRS_3PH + METER_ATTRS,
            "outputs": OUT_ATTRS_3PH,
        },
    },
}
ENGINE_NAMES = ("fast", "runpp", "runpp_norecycle")
_BUS_RE = re.compile(r"^bus(\d+)$")


def _resolve_bus(net, value: Any, hid: str, spec: str) -> int:
    """Bus index for a mapping value: int index, numeric string, unique bus name or 'bus<i>'."""
    idx: int | None = None
    if isinstance(value, (bool, np.bool_)):
        idx = None
    elif isinstance(value, (int, np.integer)):
        idx = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        idx = int(value)
    elif isinstance(value, str):
        s = value.strip()
        names = net.bus["name"] if "name" in net.bus else None
        if names is not None and (names == s).sum() == 1:
            idx = int(net.bus.index[(names == s).values][0])
        elif s.lstrip("-").isdigit():
            idx = int(s)
        elif _BUS_RE.match(s):
            idx = int(_BUS_RE.match(s).group(1))
    if idx is None or idx not in net.bus.index:
        raise ValueError(f"household {hid!r} is mapped to bus {value!r}, which does not exist in "
                         f"network {spec!r} (bus indices {int(net.bus.index.min())}.."
                         f"{int(net.bus.index.max())})")
    if not bool(net.bus.at[idx, "in_service"]):
        raise ValueError(f"household {hid!r} is mapped to bus {value!r}, which is out of service")
    return idx


class GridModel:
    """One LV grid: household injections -> power flow -> JSON-safe outputs (usable without mosaik)."""

    def __init__(self, network: str, households: Iterable[str] | None = None,
                 mapping: Mapping[str, Any] | None = None, engine: str = "fast",
                 line_limit_pct: float = 100.0, trafo_limit_pct: float = 100.0,
                 v_band: float = 0.1, engine_options: Mapping[str, Any] | None = None):  # EN 50160: ±10 %
        if households is None and not mapping:
            raise ValueError("Grid needs 'households' (list of ids) or 'mapping' ({id: bus})")
        for label, val in (("line_limit_pct", line_limit_pct), ("trafo_limit_pct", trafo_limit_pct)):
            if not (isinstance(val, (int, float)) and val > 0):
                raise ValueError(f"{label} must be a positive number, got {val!r}")
        if not (isinstance(v_band, (int, float)) and 0 < v_band < 1):
            raise ValueError(f"v_band must be in (0, 1), got {v_band!r}")
        self.spec = network
        net = load_network(network)
        candidate_buses = load_buses(net)   # original load buses, before they are stripped
        strip_injections(net)
        self.net = net

        ids = list(households or [])
        if len(set(ids)) != len(ids):
            dup = sorted({h for h in ids if ids.count(h) > 1})
            raise ValueError(f"duplicate household ids: {dup}")
        mapping = dict(mapping or {})
        known = set(ids)
        ids += [h for h in mapping if h not in known]
        auto = default_mapping([h for h in ids if h not in mapping], net, candidate_buses)
        self.hh_bus: dict[str, int] = {}
        for hid in ids:
            if not isinstance(hid, str):
                raise ValueError(f"household ids must be strings, got {hid!r}")
            self.hh_bus[hid] = (_resolve_bus(net, mapping[hid], hid, network) if hid in mapping
                                else auto[hid])
        slack = {int(b) for b in net.ext_grid.bus[net.ext_grid.in_service.astype(bool)]}
        for hid, b in self.hh_bus.items():
            if b in slack:
                raise ValueError(f"household {hid!r} is mapped to bus {b}, the slack (ext_grid) bus "
                                 f"of network {network!r}; map it to an LV bus")
        self.ids = ids
        self.index = {h: k for k, h in enumerate(ids)}
        self.buses = sorted(set(self.hh_bus.values()))
        bus_pos = {b: k for k, b in enumerate(self.buses)}
        self._hh_pos = np.array([bus_pos[self.hh_bus[h]] for h in ids], dtype=np.int64)
        # each household's bus row in net.bus and its line-to-neutral base voltage (V)
        self._hh_row = net.bus.index.get_indexer([self.hh_bus[h] for h in ids])
        self._hh_vbase = net.bus.vn_kv.values[self._hh_row] * 1e3 / np.sqrt(3.0)
        self.P = np.zeros(len(ids))
        self.Q = np.zeros(len(ids))

        if engine not in ENGINE_NAMES:
            raise ValueError(f"unknown grid engine {engine!r}; valid: {', '.join(ENGINE_NAMES)}")
        self.engine_name = engine
        try:
            self.engine = make_engine(engine, net, self.buses, **dict(engine_options or {}))
        except ValueError as exc:
            raise ValueError(f"network {network!r}: {exc}") from exc
        self.line_limit = float(line_limit_pct)
        self.trafo_limit = float(trafo_limit_pct)
        self.v_band = float(v_band)
        self.bus_names = element_names(net.bus, "bus")
        self.line_names = element_names(net.line, "line")
        self.trafo_names = element_names(net.trafo, "trafo")
        # rated apparent power per transformer (kVA), the base of trafo_loading
        self.trafo_kva = dict(zip(self.trafo_names, (net.trafo.sn_mva * net.trafo.parallel * 1e3).tolist()))
        lv = net.bus.vn_kv.values < 1.0
        self._monitored = lv if lv.any() else np.ones(len(net.bus), dtype=bool)
        self.monitored_buses = [b for b, m in zip(self.bus_names, self._monitored) if m]
        self.result: PFResult | None = None
        self._cache: dict[str, dict[str, float]] = {}

    # ----------------------------------------------------------------- inputs
    def set_inputs(self, attr_inputs: Mapping[str, Mapping[str, Any]] | None) -> None:
        """Merge mosaik inputs ``{attr: {src: {hid: value}}}`` into the P/Q state (copies values)."""
        if not attr_inputs:
            return
        for attr, target in (("P", self.P), ("Q", self.Q)):
            sources = attr_inputs.get(attr)
            if not sources:
                continue
            for src, values in sources.items():
                if values is None:
                    continue
                if not isinstance(values, Mapping):
                    raise ValueError(
                        f"grid input {attr} from {src} must be a mapping household_id -> kW, got "
                        f"{type(values).__name__}; connect per-device simulators with "
                        f"transform=lambda v: {{'<household id>': v}}")
                for hid, v in values.items():
                    k = self.index.get(hid)
                    if k is None:
                        raise ValueError(f"unknown household id {hid!r} in grid input {attr} from "
                                         f"{src}: not in this grid's households/mapping")
                    if v is None:
                        continue
                    try:
                        fv = float(v)
                    except (TypeError, ValueError):
                        raise ValueError(f"grid input {attr}[{hid!r}] from {src} is not a number: "
                                         f"{v!r}") from None
                    if math.isfinite(fv):
                        target[k] = fv

    def set_power(self, P: Mapping[str, float] | None = None, Q: Mapping[str, float] | None = None) -> None:
        """Convenience for direct use: ``P``/``Q`` as one ``{household_id: kW}`` mapping each."""
        self.set_inputs({"P": {"direct": P or {}}, "Q": {"direct": Q or {}}})

    # ----------------------------------------------------------------- solve
    def solve(self) -> PFResult:
        nb = len(self.buses)
        p_mw = np.bincount(self._hh_pos, weights=self.P, minlength=nb) / 1000.0
        q_mvar = np.bincount(self._hh_pos, weights=self.Q, minlength=nb) / 1000.0
        self.result = self.engine.solve(p_mw, q_mvar)
        self._cache = {}
        return self.result

    # ----------------------------------------------------------------- outputs
    def output(self, attr: str) -> dict[str, float]:
        if attr in self._cache:
            return self._cache[attr]
        r = self.result
        if attr == "P":
            val = dict(zip(self.ids, self.P.tolist()))
        elif attr == "Q":
            val = dict(zip(self.ids, self.Q.tolist()))
        elif r is None:
            raise ValueError(f"grid output {attr!r} requested before the first step")
        elif attr == "vm_pu":
            val = dict(zip(self.bus_names, r.vm_pu.tolist()))
        elif attr == "V":
            val = dict(zip(self.ids, (r.vm_pu[self._hh_row] * self._hh_vbase).tolist()))
        elif attr == "line_loading":
            val = dict(zip(self.line_names, r.line_loading.tolist()))
        elif attr == "trafo_loading":
            val = dict(zip(self.trafo_names, r.trafo_loading.tolist()))
        elif attr == "P_trafo":
            val = dict(zip(self.trafo_names, (r.p_trafo_mw * 1000.0).tolist()))
        elif attr == "losses":
            val = {"grid": float(r.losses_mw * 1000.0)}
        elif attr == "converged":
            val = {"grid": 1.0 if r.converged else 0.0}
        elif attr == "congestion":
            if not r.converged:
                flag = 1.0
            else:
                over = (np.any(r.line_loading > self.line_limit) if len(r.line_loading) else False) or \
                       (np.any(r.trafo_loading > self.trafo_limit) if len(r.trafo_loading) else False)
                flag = 1.0 if over else 0.0
            val = {"grid": flag}
        elif attr == "v_violation":
            if not r.converged:
                flag = 1.0
            else:
                vm = r.vm_pu[self._monitored]
                vm = vm[np.isfinite(vm)]
                flag = 1.0 if np.any(np.abs(vm - 1.0) > self.v_band) else 0.0
            val = {"grid": flag}
        elif attr in ("v_min", "v_max"):
            vm = r.vm_pu[self._monitored]
            vm = vm[np.isfinite(vm)]
            if not r.converged or vm.size == 0:
                v = float("nan")
            else:
                v = float(vm.min() if attr == "v_min" else vm.max())
            val = {"grid": v}
        elif attr == "max_line_loading":
            ll = r.line_loading[np.isfinite(r.line_loading)]  # out-of-service lines are NaN
            v = float(np.max(ll)) if r.converged and ll.size else (0.0 if r.converged else float("nan"))
            val = {"grid": v}
        else:
            raise ValueError(f"unknown grid attribute {attr!r}; valid: {IN_ATTRS + OUT_ATTRS + METER_ATTRS_1PH}")
        self._cache[attr] = val
        return val


class GridSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.models: dict[str, GridModel | GridModel3ph] = {}
        self.step_size = 60_000
        self.start: str | None = None
        self.time_resolution = 0.001

    def init(self, sid, time_resolution: float = 0.001, start: str | None = None,
             step_size: int = 60_000, **sim_params):
        if sim_params:
            raise ValueError(f"GridSim: unknown init params {sorted(sim_params)}")
        if not (isinstance(step_size, int) and step_size > 0):
            raise ValueError(f"step_size must be a positive int (ticks), got {step_size!r}")
        if start is not None:
            datetime.fromisoformat(start)  # validate early
        self.sid = sid
        self.time_resolution = time_resolution
        self.step_size = step_size
        self.start = start
        return self.meta

    def create(self, num: int, model: str, **params):
        if model not in ("Grid", "Grid3ph"):
            raise ValueError(f"GridSim has no model {model!r} (only 'Grid' and 'Grid3ph')")
        if "network" not in params:
            raise ValueError(f"{model} needs a 'network' param")
        cls = GridModel if model == "Grid" else GridModel3ph
        out = []
        for _ in range(num):
            eid = f"Grid-{len(self.models)}"
            self.models[eid] = m = cls(**params)
            out.append({"eid": eid, "type": model,
                        "extra_info": {"trafo_kva": m.trafo_kva, "monitored_buses": m.monitored_buses}})
        return out

    def step(self, time, inputs, max_advance):
        time_h = time * self.time_resolution / 3600.0
        for eid, model in self.models.items():
            model.set_inputs(inputs.get(eid))
            if isinstance(model, GridModel):
                model.solve()
            else:
                model.solve(time_h)
        return time + self.step_size

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            model = self.models[eid]
            data[eid] = {attr: model.output(attr) for attr in attrs}
        return data


if __name__ == "__main__":
    from simulators.start import start_simulation

    start_simulation(GridSim())
