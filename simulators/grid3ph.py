"""Unbalanced LV grid model (``engine: fast3ph``): households on phases, per-phase grid state.

Model ``Grid3ph`` of :mod:`simulators.grid` (``GridSim``); one entity = one LV network.

params
    ``network``          ``ieee_eu_lv``, ``opendss:PATH/Master.dss`` or any pandapower spec of
                         the balanced grid (converted by ``grid3ph_networks.from_pandapower``)
    ``households``       household ids, mapped round-robin onto the network's load points (the
                         OpenDSS file's loads, or the pandapower net's load buses), unless
    ``mapping``          ``{household_id: load name or bus name}`` places them explicitly (for
                         pandapower networks also the bus index, as for ``Grid``)
    ``phases``           ``{household_id: 1|2|3}`` phase (L1/L2/L3) of a household's single-phase
                         connection; households not listed take the phase of their OpenDSS load,
                         else a phase drawn with ``seed`` (uniform over L1-L3)
    ``seed``             seed of that draw
    ``network_loads``    True: the OpenDSS file's loads are injections too, following their
                         ``Yearly`` load shapes (multiplier index = simulated time / shape interval)
                         with the file's load model (OpenDSS model 1: constant P+jQ within
                         ``Vminpu..Vmaxpu``, constant impedance above it and below ``Vlowpu``,
                         a current linear in |V| between ``Vlowpu`` and ``Vminpu``)
    ``line_limit_pct``, ``trafo_limit_pct``, ``v_band``, ``engine_options`` as for ``Grid``

Inputs (kW / kvar, load convention, merged over sources like ``Grid``): ``P``, ``Q`` per household
(put on its phase) and, where a source has them, ``P_a``, ``P_b``, ``P_c``, ``Q_a``, ``Q_b``,
``Q_c`` (per phase; they replace ``P``/``Q`` for that household from then on). Households are
constant-power injections.

Outputs (plain ``dict[str, float]``):
    ``P``, ``Q``                  per household, as used (sum over phases)
    ``vm_pu_a/_b/_c``             per bus (OpenDSS bus name / pandapower bus name) and phase, p.u.
                                  of the line-to-neutral base; buses without that phase are absent
    ``vuf``                       per three-phase LV bus, |V2|/|V1| in %
    ``line_loading``              per line, worst phase, % of the rated current (normamps/max_i_ka)
    ``trafo_loading``             per transformer, worst terminal current, % of rated
    ``P_trafo``                   per transformer, kW into its HV terminals
    ``losses``                    ``{"grid": kW}`` (source power minus load power)
    ``congestion``, ``v_violation``, ``converged``, ``v_min``, ``v_max``, ``max_line_loading``
                                  as for ``Grid``, over all phases of the monitored (LV) buses
    ``vuf_max``                   ``{"grid": %}`` over the monitored buses
Non-convergence: electrical values NaN, ``converged`` 0, ``congestion``/``v_violation`` 1.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from simulators.floats import Floats
from simulators.grid3ph_engine import Result3ph
from simulators.grid3ph_networks import LoadPoint, load_network3ph, make_engine3ph
from simulators.vocabulary import PHASE_POWERS, PHASE_VOLTAGES

__all__ = ["GridModel3ph", "IN_ATTRS_3PH", "METER_ATTRS", "METER_ATTRS_1PH", "OUT_ATTRS_3PH", "PHASE_ATTRS"]

PHASE_ATTRS = list(PHASE_POWERS)
IN_ATTRS_3PH = ["P", "Q"] + PHASE_ATTRS
OUT_ATTRS_3PH = ["vm_pu_a", "vm_pu_b", "vm_pu_c", "vuf", "line_loading", "trafo_loading", "P_trafo",
                 "losses", "congestion", "v_violation", "converged", "v_min", "v_max",
                 "max_line_loading", "vuf_max"]
PARAMS_3PH = ["network", "households", "mapping", "phases", "seed", "network_loads",
              "line_limit_pct", "trafo_limit_pct", "v_band", "engine_options"]
# per household, for the device server (its meter's V and per-phase V); not recorded (the buses' vm_pu_* are);
# the balanced grid has V only
METER_ATTRS_1PH = ["V"]
METER_ATTRS = [*METER_ATTRS_1PH, *PHASE_VOLTAGES]


def _merge(attr_inputs: Mapping[str, Mapping[str, Any]] | None, targets: Mapping[str, np.ndarray],
           index: Mapping[str, int], orders: dict | None = None) -> None:
    """Write mosaik inputs ``{attr: {src: {hid: value}}}`` into ``targets[attr][household]``.

    ``orders`` (optional, kept by the caller) remembers each (attr, src)'s key order once checked:
    a mapping with the same keys in the same order and only numbers is then written in one
    vectorised assignment (146 households x 8 attributes: ~1.5 ms -> ~0.2 ms per step); anything
    else goes through the per-item checks."""
    for attr, target in targets.items():
        for src, values in ((attr_inputs or {}).get(attr) or {}).items():
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"grid input {attr} from {src} must be a mapping household_id -> kW, "
                                 f"got {type(values).__name__}")
            known = orders.get((attr, src)) if orders is not None else None
            if known is not None and known[0] == tuple(values):
                arr = getattr(values, "array", None)  # a Floats' own values
                try:
                    if arr is None:
                        arr = np.fromiter(values.values(), dtype=np.float64, count=len(values))
                except (TypeError, ValueError):  # None or a non-number: per-item path below
                    pass
                else:
                    ok = np.isfinite(arr)
                    target[known[1][ok]] = arr[ok]
                    continue
            for hid, v in values.items():
                k = index.get(hid)
                if k is None:
                    raise ValueError(f"unknown household id {hid!r} in grid input {attr} from {src}: "
                                     "not in this grid's households/mapping")
                if v is None:
                    continue
                try:
                    fv = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"grid input {attr}[{hid!r}] from {src} is not a number: {v!r}") from None
                if math.isfinite(fv):
                    target[k] = fv
            if orders is not None:
                orders[(attr, src)] = (tuple(values), np.fromiter((index[h] for h in values), dtype=np.int64,
                                                                   count=len(values)))


class GridModel3ph:
    """One unbalanced LV grid (usable without mosaik)."""

    def __init__(self, network: str, households: Iterable[str] | None = None,
                 mapping: Mapping[str, Any] | None = None, phases: Mapping[str, int] | None = None,
                 seed: int = 0, network_loads: bool = False, line_limit_pct: float = 100.0,
                 trafo_limit_pct: float = 100.0, v_band: float = 0.1,  # EN 50160: ±10 % of the nominal voltage
                 engine_options: Mapping[str, Any] | None = None):
        if households is None and not mapping and not network_loads:
            raise ValueError("Grid3ph needs 'households', 'mapping' or network_loads=True")
        for label, val in (("line_limit_pct", line_limit_pct), ("trafo_limit_pct", trafo_limit_pct)):
            if not (isinstance(val, (int, float)) and val > 0):
                raise ValueError(f"{label} must be a positive number, got {val!r}")
        if not (isinstance(v_band, (int, float)) and 0 < v_band < 1):
            raise ValueError(f"v_band must be in (0, 1), got {v_band!r}")
        ns = load_network3ph(network)
        if network_loads and not ns.fixed_phases:
            raise ValueError(f"network_loads needs an OpenDSS network with loads, not {network!r}")
        self.spec, self.ns = network, ns
        ids = list(households or [])
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate household ids: {sorted({h for h in ids if ids.count(h) > 1})}")
        mapping = dict(mapping or {})
        ids += [h for h in mapping if h not in set(ids)]
        for hid in ids:
            if not isinstance(hid, str):
                raise ValueError(f"household ids must be strings, got {hid!r}")
        by_name = {p.name: p for p in ns.points}
        by_bus: dict[str, LoadPoint] = {}
        for p in ns.points:
            by_bus.setdefault(p.bus, p)
        auto = [h for h in ids if h not in mapping]
        self.hh_point: dict[str, LoadPoint] = {}
        for k, hid in enumerate(auto):
            self.hh_point[hid] = ns.points[k % len(ns.points)]
        bus_names = set(ns.net.buses)
        for hid, where in mapping.items():
            key = str(where).strip().lower() if ns.fixed_phases else str(where).strip()
            key = ns.aliases.get(key, key)          # pandapower bus index or "bus<i>"
            if key in by_name:
                self.hh_point[hid] = by_name[key]
            elif key in bus_names:
                self.hh_point[hid] = by_bus.get(key) or LoadPoint(key, key, (1, 2, 3))
            else:
                raise ValueError(f"household {hid!r} is mapped to {where!r}, which is neither a load nor "
                                 f"a bus of network {network!r}")
        rng = np.random.default_rng(seed)
        drawn = rng.integers(1, 4, size=len(ids))          # uniform L1/L2/L3, in household order
        self.phase: dict[str, int] = {}
        for k, hid in enumerate(ids):
            given = (phases or {}).get(hid)
            lp = self.hh_point[hid]
            if given is not None:
                if given not in (1, 2, 3):
                    raise ValueError(f"phase of household {hid!r} must be 1, 2 or 3, got {given!r}")
                self.phase[hid] = int(given)
            elif len(lp.phases) == 1:
                self.phase[hid] = lp.phases[0]
            else:
                self.phase[hid] = int(drawn[k])
        unknown = sorted(set(phases or {}) - set(ids))
        if unknown:
            raise ValueError(f"phases given for unknown households: {unknown[:5]}")
        self.ids = ids
        self.index = {h: k for k, h in enumerate(ids)}
        n = len(ids)
        self.P, self.Q = np.zeros(n), np.zeros(n)
        self.Pph = np.full((n, 3), np.nan)          # per-phase inputs (NaN: not given)
        self.Qph = np.full((n, 3), np.nan)
        # where each input attribute is merged to (per-phase attributes: columns of Pph/Qph)
        self._targets = {"P": self.P, "Q": self.Q}
        for a in PHASE_ATTRS:
            self._targets[a] = (self.Pph if a[0] == "P" else self.Qph)[:, "abc".index(a[-1])]
        self._ph = np.array([self.phase[h] - 1 for h in ids], dtype=np.int64)
        self._rows = np.arange(n)
        # engine points: 3 per household (a, b, c at its bus), then the file's loads' phases
        conns = [(LoadPoint(h, self.hh_point[h].bus, (1, 2, 3)), (1, 2, 3)) for h in ids]
        self.file_loads = list(ns.points) if network_loads else []
        for p in self.file_loads:
            conns.append((p, p.phases))
        load_pos = {ld.name: i for i, ld in enumerate(ns.feeder.loads)}
        self._file_sel = np.array([load_pos[p.name] for p in self.file_loads], dtype=np.int64)
        intervals = {ns.feeder.loadshapes[ld.yearly].interval_h
                     for ld in ns.feeder.loads if ld.yearly is not None}
        if network_loads and len(intervals) > 1:
            raise ValueError(f"network {network!r}: load shapes with different intervals are not "
                             "supported with network_loads")
        self._shape_interval_h = intervals.pop() if intervals else 1.0
        self._file_div = np.array([len(p.phases) for p in self.file_loads for _ in p.phases], dtype=float)
        self._file_owner = np.array([k for k, p in enumerate(self.file_loads) for _ in p.phases],
                                    dtype=np.int64)
        try:
            self.engine = make_engine3ph(ns, conns, **dict(engine_options or {}))
        except TypeError as exc:
            raise ValueError(f"engine_options: {exc}") from None
        self.line_limit, self.trafo_limit, self.v_band = float(line_limit_pct), float(trafo_limit_pct), \
            float(v_band)
        self._monitored = ns.lv_buses
        self._three = self._monitored & self.engine._has.all(axis=1)
        buses = np.asarray(self.ns.net.buses, dtype=object)
        self.monitored_buses = buses[self._monitored].tolist()
        # output keys: buses carrying each phase, and buses with all three (VUF)
        self._phase_rows = [np.flatnonzero(self.engine._has[:, k]) for k in range(3)]
        self._phase_keys = [buses[rows].tolist() for rows in self._phase_rows]
        self._three_rows = np.flatnonzero(self._three)
        self._three_keys = buses[self._three_rows].tolist()
        # each household's bus row and its line-to-neutral base voltage (V), for its meter's V
        row = {b: k for k, b in enumerate(self.ns.net.buses)}
        self._hh_row = np.array([row[self.hh_point[h].bus] for h in ids], dtype=np.int64)
        self._hh_vbase = self.engine.net.bus_vbase[self._hh_row]
        self._orders: dict = {}  # input key orders seen (see _merge)
        self.result: Result3ph | None = None
        self._pq: tuple[np.ndarray, np.ndarray] | None = None  # per_phase() of the last solve
        self._vm_mon: np.ndarray | None = None                 # its finite monitored voltages
        self._cache: dict[str, dict[str, float]] = {}
        # rated apparent power per transformer (kVA), the base of trafo_loading
        self.trafo_kva = {tr.name: float(tr.kva) for tr in ns.feeder.transformers}
        self._time_h = 0.0

    # ----------------------------------------------------------------- inputs
    def set_inputs(self, attr_inputs: Mapping[str, Mapping[str, Any]] | None) -> None:
        _merge(attr_inputs, self._targets, self.index, self._orders)

    def set_power(self, P=None, Q=None, **phase_values) -> None:
        """Direct use: ``P``/``Q`` (and ``P_a`` ...) as ``{household_id: kW}`` mappings."""
        self.set_inputs({a: {"direct": v or {}} for a, v in (("P", P), ("Q", Q), *phase_values.items())})

    def per_phase(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) P and Q per household and phase: per-phase inputs where given, else P/Q on the
        household's phase (phases a household's per-phase inputs leave out: 0)."""
        out = []
        for flat, given in ((self.P, self.Pph), (self.Q, self.Qph)):
            on_phase = np.zeros((len(self.ids), 3))
            on_phase[self._rows, self._ph] = flat
            nan = np.isnan(given)                   # merged inputs are finite; NaN = not given
            out.append(np.where(nan.all(axis=1, keepdims=True), on_phase, np.where(nan, 0.0, given)))
        return out[0], out[1]

    # ----------------------------------------------------------------- solve
    def solve(self, time_h: float = 0.0) -> Result3ph:
        self._pq = self.per_phase()
        p, q = self._pq[0].ravel(), self._pq[1].ravel()
        if self.file_loads:
            # Yearly shapes: multiplier index = time / interval (OpenDSS LoadShape rule)
            kw, kvar = self.ns.feeder.load_kw(int(round(time_h / self._shape_interval_h)))
            sel = self._file_sel[self._file_owner]
            p = np.r_[p, kw[sel] / self._file_div]
            q = np.r_[q, kvar[sel] / self._file_div]
        self.result = self.engine.solve(p, q)
        self._vm_mon = None
        self._cache = {}
        return self.result

    # ----------------------------------------------------------------- outputs
    def output(self, attr: str) -> dict[str, float]:
        """Output mapping of ``attr`` for the last solve, computed once per solve."""
        val = self._cache.get(attr)
        if val is None:
            val = self._cache[attr] = self._output(attr)
        return val

    def _output(self, attr: str) -> dict[str, float]:
        r = self.result
        if attr in ("P", "Q") or attr in PHASE_ATTRS:
            # as used in the last solve; before the first one, the inputs so far
            p, q = self._pq if self._pq is not None else self.per_phase()
            pq = p if attr[0] == "P" else q
            arr = pq.sum(axis=1) if len(attr) == 1 else pq[:, "abc".index(attr[-1])]
            val = Floats(self.ids, arr)
        elif r is None:
            raise ValueError(f"grid output {attr!r} requested before the first step")
        elif attr.startswith("vm_pu_"):
            k = "abc".index(attr[-1])
            val = Floats(self._phase_keys[k], r.vm_pu[self._phase_rows[k], k])
        elif attr == "V":  # the mean of its bus's phase voltages, as a meter's V (PhV of SunSpec 203)
            vm = r.vm_pu[self._hh_row]
            n = np.isfinite(vm).sum(axis=1)
            mean = np.where(n > 0, np.nansum(vm, axis=1) / np.maximum(n, 1), math.nan)  # NaN: not converged
            val = Floats(self.ids, mean * self._hh_vbase)
        elif attr in PHASE_VOLTAGES:  # NaN where its bus has no such phase
            k = "abc".index(attr[-1])
            val = Floats(self.ids, r.vm_pu[self._hh_row, k] * self._hh_vbase)
        elif attr == "vuf":
            val = Floats(self._three_keys, r.vuf_pct[self._three_rows])
        elif attr == "line_loading":
            val = Floats(self.ns.net.line_names, r.line_loading)
        elif attr == "trafo_loading":
            val = Floats(self.ns.net.trafo_names, r.trafo_loading)
        elif attr == "P_trafo":
            val = Floats(self.ns.net.trafo_names, r.p_trafo_mw * 1000.0)
        elif attr == "losses":
            val = {"grid": float(r.losses_mw * 1000.0)}
        elif attr == "converged":
            val = {"grid": 1.0 if r.converged else 0.0}
        elif attr == "congestion":
            over = (r.line_loading > self.line_limit).any() or (r.trafo_loading > self.trafo_limit).any()
            val = {"grid": 1.0 if (not r.converged or over) else 0.0}
        elif attr in ("v_violation", "v_min", "v_max"):
            if self._vm_mon is None:
                vm = r.vm_pu[self._monitored]
                self._vm_mon = vm[np.isfinite(vm)]
            vm = self._vm_mon
            if attr == "v_violation":
                bad = not r.converged or bool(np.any(np.abs(vm - 1.0) > self.v_band))
                val = {"grid": 1.0 if bad else 0.0}
            else:
                ok = r.converged and vm.size
                val = {"grid": float(vm.min() if attr == "v_min" else vm.max()) if ok else math.nan}
        elif attr == "max_line_loading":
            ll = r.line_loading[np.isfinite(r.line_loading)]
            val = {"grid": float(ll.max()) if r.converged and ll.size else (0.0 if r.converged else math.nan)}
        elif attr == "vuf_max":
            v = r.vuf_pct[self._three]
            val = {"grid": float(np.nanmax(v)) if r.converged and v.size else math.nan}
        else:
            raise ValueError(f"unknown grid attribute {attr!r}; valid: {IN_ATTRS_3PH + OUT_ATTRS_3PH + METER_ATTRS}")
        return val
