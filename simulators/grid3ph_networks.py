"""Networks for the unbalanced engine: OpenDSS feeders and pandapower nets as :class:`Network3ph`.

``load_network3ph(spec)`` accepts

* ``"ieee_eu_lv"``: the IEEE PES European LV test feeder (907 buses, 55 single-phase loads, 100
  one-minute load profiles; OpenDSS files bundled in ``simulators/networks/ieee_eu_lv/``);
* ``"opendss:PATH/Master.dss"``: any feeder in the OpenDSS subset of :mod:`simulators.opendss`;
* any pandapower spec of :func:`simulators.grid_networks.load_network` (bundled kerber/dickert
  networks, ``simbench:``, JSON), converted by :func:`from_pandapower`.

It returns a :class:`Network3phSpec`: the nodal model plus the *load points* households can take
(OpenDSS: the file's loads, with their phases and voltage-dependent load model; pandapower: the
original load buses, phase chosen by the caller).

pandapower nets carry positive-sequence data only unless they have the ``runpp_3ph`` columns.
Missing zero-sequence line data are taken from the 4-core cable codes of the IEEE European LV
test feeder (LineCode.txt, ``4c_185``: R0/R1 = 0.58/0.166 = 3.49, X0/X1 = 0.078/0.068 = 1.15;
C0 = C1 as in all its codes); a missing source short-circuit power means an ideal slack, as in
``runpp`` (modelled as 1e6 MVA, R/X 0.1).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from simulators.grid3ph_engine import Engine3ph, Network3ph, from_feeder
from simulators.grid_networks import element_names, load_buses, load_network, strip_injections
from simulators.opendss import Feeder, Line, Load, Source, Transformer, read_dss
from simulators.opendss_model import DELTA_LV, delta_lv_feeding

__all__ = ["BUNDLED_DSS", "Network3phSpec", "LoadPoint", "load_network3ph", "from_pandapower",
           "feeder_from_pandapower", "is_opendss", "make_engine3ph"]

_HERE = os.path.dirname(os.path.abspath(__file__))
#: bundled OpenDSS feeders: name -> Master.dss
BUNDLED_DSS = {"ieee_eu_lv": os.path.join(_HERE, "networks", "ieee_eu_lv", "Master.dss")}

#: zero-sequence ratios for lines without r0/x0/c0 (IEEE European LV feeder, LineCode 4c_185)
R0_R1, X0_X1 = 0.58 / 0.166, 0.078 / 0.068
#: short-circuit power of an "ideal" slack (MVA) and its R/X
_IDEAL_SC_MVA, _IDEAL_RX = 1e6, 0.1


@dataclass
class LoadPoint:
    """A place a household can connect: bus and phases, with an optional OpenDSS load model."""
    name: str
    bus: str
    phases: tuple[int, ...]                # (1,) ... or (1, 2, 3)
    vminpu: float = 0.0
    vmaxpu: float = math.inf
    vlowpu: float = 0.0
    vbase_v: float = 0.0                   # load base voltage (V, line-to-neutral); 0 = node base
    load: Load | None = None


@dataclass
class Network3phSpec:
    spec: str
    feeder: Feeder
    net: Network3ph
    points: list[LoadPoint]                # in file / load order
    fixed_phases: bool                     # True: the file fixes each load's phase
    lv_buses: np.ndarray                   # bool per bus: monitored (base < 1 kV)
    aliases: dict[str, str] = field(default_factory=dict)  # pandapower index / "bus<i>" -> bus name


def is_opendss(spec: str) -> bool:
    return isinstance(spec, str) and (spec.strip() in BUNDLED_DSS or spec.strip().startswith("opendss:"))


def _dss_path(spec: str) -> str:
    spec = spec.strip()
    if spec in BUNDLED_DSS:
        return BUNDLED_DSS[spec]
    path = spec.split(":", 1)[1].strip()
    if not path:
        raise ValueError("network 'opendss:' needs a path, e.g. opendss:grids/Master.dss")
    return path


def feeder_from_pandapower(net, name: str = "pandapower", household_buses=None) -> tuple[Feeder, list[str]]:
    """OpenDSS-like description of a pandapower net (loads/sgens ignored). Returns the feeder and
    the pandapower bus names (feeder buses are these names). ``household_buses`` (pandapower bus
    indices; default the net's load buses): where households connect, which no delta secondary may feed."""
    if len(net.switch):
        raise ValueError(f"network {name!r} has switches; the unbalanced engine supports nets "
                         "without switches")
    for table in ("trafo3w", "impedance", "gen", "dcline", "xward", "ward", "shunt"):
        if table in net and len(net[table]) and net[table].in_service.astype(bool).any():
            raise ValueError(f"network {name!r} has {table} elements, not supported by the "
                             "unbalanced engine")
    eg = net.ext_grid[net.ext_grid.in_service.astype(bool)]
    if len(eg) != 1:
        raise ValueError(f"network {name!r} needs exactly one in-service ext_grid, has {len(eg)}")
    bus_names = element_names(net.bus, "bus")
    bname = dict(zip(net.bus.index.tolist(), bus_names))
    fd = Feeder(name=name, base_freq=float(getattr(net, "f_hz", 50.0) or 50.0))
    # p.u. of the buses' rated voltages (vn_kv), as pandapower's, not of the transformer windings'
    fd.voltagebases = sorted({float(v) for v in net.bus.vn_kv})
    e = eg.iloc[0]
    vn = float(net.bus.at[int(e.bus), "vn_kv"])

    def col(row, key, default):
        v = row.get(key, default) if hasattr(row, "get") else default
        return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    s_sc = col(e, "s_sc_max_mva", _IDEAL_SC_MVA)
    rx = col(e, "rx_max", _IDEAL_RX)
    z1m = vn ** 2 / s_sc
    x1 = z1m / math.sqrt(1 + rx ** 2)
    z1 = complex(rx * x1, x1)
    # without pandapower's zero-sequence data the source's Z0 = Z1 (x0x 1, r0x0 = rx): an assumption, no source
    x0x, r0x0 = col(e, "x0x_max", 1.0), col(e, "r0x0_max", rx)
    z0 = complex(r0x0 * x0x * x1, x0x * x1)
    fd.source = Source(bname[int(e.bus)], (1, 2, 3), vn, float(e.vm_pu), float(e.va_degree), z1, z0)
    w = 2 * math.pi * fd.base_freq
    for idx, ln in net.line.iterrows():
        if not bool(ln.in_service):
            continue
        par = float(ln.parallel)
        L = float(ln.length_km) / par
        r1, x1l, c1 = float(ln.r_ohm_per_km), float(ln.x_ohm_per_km), float(ln.c_nf_per_km)
        r0 = col(ln, "r0_ohm_per_km", r1 * R0_R1)
        x0 = col(ln, "x0_ohm_per_km", x1l * X0_X1)
        c0 = col(ln, "c0_nf_per_km", c1)
        zs, zm = (2 * complex(r1, x1l) + complex(r0, x0)) / 3, (complex(r0, x0) - complex(r1, x1l)) / 3
        bs, bm = w * (2 * c1 + c0) / 3 * 1e-9, w * (c0 - c1) / 3 * 1e-9
        z = (np.full((3, 3), zm) + np.eye(3) * (zs - zm)) * L
        b = (np.full((3, 3), bm) + np.eye(3) * (bs - bm)) * L * par * par  # per circuit x parallel
        fd.lines.append(Line(f"line{idx}", bname[int(ln.from_bus)], (1, 2, 3), bname[int(ln.to_bus)],
                             (1, 2, 3), z, b, float(ln.max_i_ka) * 1e3 * float(ln.df) * par))
    delta_vg = {}  # feeder name -> (index, vector group) of the transformers with a delta secondary
    for idx, tr in net.trafo.iterrows():
        if not bool(tr.in_service):
            continue
        vg = str(tr.get("vector_group", "Dyn") or "Dyn").lower()
        conns = ("delta" if vg.startswith("d") else "wye",
                 "delta" if vg[1:].lstrip("n").startswith("d") else "wye")
        if conns[1] == "delta":
            delta_vg[f"trafo{idx}"] = (idx, tr.get("vector_group"))
        shift = float(tr.shift_degree) % 360.0
        table = {30.0: (False, False), 150.0: (False, True), 330.0: (True, False),
                 210.0: (True, True), 0.0: (False, False), 180.0: (False, True)}
        if shift not in table or (shift in (0.0, 180.0)) != (conns[0] == conns[1]):
            raise ValueError(f"transformer {idx} of {name!r}: vector group {tr.get('vector_group')!r} "
                             f"with shift {shift} deg is not supported")
        lead, reverse = table[shift]
        if float(tr.parallel) != 1 or float(tr.df) != 1:
            raise ValueError(f"transformer {idx} of {name!r}: parallel units and df != 1 are not "
                             "supported")
        tap = 1.0
        if not math.isnan(float(tr.tap_pos if tr.tap_pos is not None else math.nan)) and \
                not math.isnan(float(tr.tap_step_percent)):
            tap = 1 + (float(tr.tap_pos) - float(tr.tap_neutral)) * float(tr.tap_step_percent) / 100
        taps = (tap, 1.0) if str(tr.tap_side).lower() == "hv" else (1.0, tap) \
            if str(tr.tap_side).lower() == "lv" else (1.0, 1.0)
        vk, vkr = float(tr.vk_percent) / 100, float(tr.vkr_percent) / 100
        pfe = float(tr.pfe_kw) / (float(tr.sn_mva) * 1e3)
        i0 = float(tr.i0_percent) / 100
        mag = complex(pfe, -math.sqrt(max(i0 ** 2 - pfe ** 2, 0.0)))
        fd.transformers.append(Transformer(
            f"trafo{idx}", (bname[int(tr.hv_bus)], bname[int(tr.lv_bus)]), ((1, 2, 3), (1, 2, 3)),
            conns, (float(tr.vn_hv_kv), float(tr.vn_lv_kv)), float(tr.sn_mva) * 1e3,
            taps, vkr, math.sqrt(max(vk ** 2 - vkr ** 2, 0.0)), lead, 0.0, reverse, mag))
    if delta_vg:
        hh = load_buses(net) if household_buses is None else household_buses
        bad = delta_lv_feeding(fd, [bname[int(b)] for b in hh])
        if bad is not None:
            idx, vg = delta_vg[bad.name]
            raise ValueError(f"transformer {idx} of {name!r} (vector group {vg!r}): {DELTA_LV}")
    return fd, bus_names


def from_pandapower(net, name: str = "pandapower") -> Network3ph:
    return from_feeder(feeder_from_pandapower(net, name)[0])


def load_network3ph(spec: str) -> Network3phSpec:
    """See the module docstring. Raises ValueError (one line) for bad specs or files."""
    if is_opendss(spec):
        fd = read_dss(_dss_path(spec))
        if not fd.loads:
            raise ValueError(f"network {spec!r}: the OpenDSS feeder has no loads to attach "
                             "households to")
        net = from_feeder(fd)
        bidx = {b: k for k, b in enumerate(net.buses)}
        points = [LoadPoint(ld.name, ld.bus, ld.nodes, ld.vminpu, ld.vmaxpu, ld.vlowpu,
                            ld.vbase_ln_kv * 1e3, ld) for ld in fd.loads if ld.enabled]
        for p in points:
            if p.bus not in bidx:
                raise ValueError(f"network {spec!r}: load {p.name} on unknown bus {p.bus}")
        fixed = True
    else:
        pnet = load_network(spec)
        buses = load_buses(pnet)
        strip_injections(pnet)
        fd, names = feeder_from_pandapower(pnet, spec, buses)
        net = from_feeder(fd)
        pos = {int(b): k for k, b in enumerate(pnet.bus.index)}
        points = [LoadPoint(names[pos[b]], names[pos[b]], (1, 2, 3)) for b in buses]
        fixed = False
        aliases = {**{str(i): names[k] for i, k in pos.items()}, **{f"bus{i}": names[k] for i, k in pos.items()}}
    lv = net.bus_vbase * math.sqrt(3.0) < 1000.0
    return Network3phSpec(spec, fd, net, points, fixed, lv if lv.any() else np.ones_like(lv),
                          {} if fixed else aliases)


def make_engine3ph(ns: Network3phSpec, connections: list[tuple[LoadPoint, tuple[int, ...]]],
                   **options) -> Engine3ph:
    """Engine with one point per (load point, phase) of ``connections``, in that order; a point
    carrying an OpenDSS load model keeps its voltage-dependent band (``Vminpu``/``Vmaxpu``)."""
    idx = ns.net.node_index()
    nodes, vmin, vmax, vlow, vbase = [], [], [], [], []
    bvb = dict(zip(ns.net.buses, ns.net.bus_vbase))
    for lp, phases in connections:
        for ph in phases:
            if (lp.bus, ph) not in idx:
                raise ValueError(f"bus {lp.bus!r} has no phase {ph} in network {ns.spec!r}")
            nodes.append(idx[(lp.bus, ph)])
            vmin.append(lp.vminpu)
            vmax.append(lp.vmaxpu)
            vlow.append(lp.vlowpu)
            vbase.append(lp.vbase_v / bvb[lp.bus] if lp.vbase_v else 1.0)
    return Engine3ph(ns.net, nodes, vmin_pu=vmin, vmax_pu=vmax, vlow_pu=vlow, vbase_pu=vbase,
                     **options)
