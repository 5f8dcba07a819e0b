"""Unbalanced engine against independent engines: OpenDSS (dss-python) on the IEEE European LV
feeder, pandapower runpp_3ph on kerber networks with random unbalanced loads."""
import math
import warnings

import numpy as np
import pandapower as pp
import pytest

from simulators.grid3ph_engine import Engine3ph, vuf_percent
from simulators.grid3ph_networks import (BUNDLED_DSS, from_pandapower, load_network3ph,
                                         make_engine3ph)
from simulators.grid_networks import element_names, load_buses, load_network, strip_injections

from tests.helpers.opendss_ref import compile_master, needs_dss, yearly_voltages

MASTER = BUNDLED_DSS["ieee_eu_lv"]


@pytest.fixture(scope="module")
def ieee():
    ns = load_network3ph("ieee_eu_lv")
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    return ns, eng


def _node_order(ns, names):
    bi = {b: k for k, b in enumerate(ns.net.buses)}
    return np.array([(bi[n.rsplit(".", 1)[0]], int(n.rsplit(".", 1)[1]) - 1) for n in names])


@needs_dss
def test_snapshot_equals_opendss(ieee):
    ns, eng = ieee
    c = compile_master(MASTER)           # Master.dss ends with a snapshot solve at base kW
    kw = np.array([ld.kw for ld in ns.feeder.loads])
    kvar = np.array([ld.kvar for ld in ns.feeder.loads])
    eng.reset()
    r = eng.solve(kw, kvar)
    assert r.converged
    o = _node_order(ns, c.AllNodeNames)
    ref = np.array(c.AllBusVmagPu)
    assert np.abs(r.vm_pu[o[:, 0], o[:, 1]] - ref).max() <= 1e-5
    # currents of every line, per phase (A), and total losses
    c.Lines.First
    i_ref = []
    while True:
        i_ref.append(np.asarray(c.ActiveCktElement.CurrentsMagAng)[:6:2])
        if not c.Lines.Next:
            break
    np.testing.assert_allclose(r.line_i_ka * 1e3, np.array(i_ref), atol=1e-3)
    assert r.losses_mw * 1e6 == pytest.approx(c.Losses[0], rel=1e-5)
    # transformer: HV power into the unit
    c.SetActiveElement("Transformer.TR1")
    p_hv = sum(c.ActiveCktElement.Powers[0:8:2])  # kW, 4 conductors of the HV terminal
    assert r.p_trafo_mw[0] * 1e3 == pytest.approx(p_hv, rel=1e-5)


@needs_dss
def test_full_day_equals_opendss(ieee):
    """1440 one-minute steps in OpenDSS yearly mode vs the engine: max |dV| <= 1e-4 p.u.; every 20th
    step also the other published quantities: line currents per phase, losses, transformer loading
    and the VUF against OpenDSS's own sequence voltages (measured: 5 mA, 0.03 W, 4e-4 and 3e-5
    percentage points)."""
    ns, eng = ieee
    names, ref, sampled = yearly_voltages(MASTER, 1440, every=20, buses=ns.net.buses)
    o = _node_order(ns, names)
    eng.reset()
    worst, vuf_max = 0.0, 0.0
    irated = 800e3 / (math.sqrt(3) * np.array([11e3, 416.0]))      # TR1: 800 kVA, 11/0.416 kV
    for k in range(1440):
        kw, kvar = ns.feeder.load_kw(k)
        r = eng.solve(kw, kvar)
        assert r.converged
        worst = max(worst, float(np.abs(r.vm_pu[o[:, 0], o[:, 1]] - ref[k]).max()))
        vuf_max = max(vuf_max, float(np.nanmax(r.vuf_pct)))
        if k in sampled:
            s = sampled[k]
            np.testing.assert_allclose(r.line_i_ka * 1e3, s["line_amps"].max(axis=1), atol=0.02)
            assert abs(r.losses_mw * 1e6 - s["losses_w"]) <= 0.1
            loading = (s["trafo_amps"][0] / irated[:, None]).max() * 100.0
            assert abs(r.trafo_loading[0] - loading) <= 2e-3
            three = np.isfinite(s["vuf"])
            assert three.sum() > 800 and np.array_equal(three, np.isfinite(r.vuf_pct))
            assert np.abs(r.vuf_pct[three] - s["vuf"][three]).max() <= 1e-4
    assert worst <= 1e-4
    assert 0.0 < vuf_max < 100.0


def _pp_unbalanced(name, seed):
    net = load_network(name)
    buses = load_buses(net)
    strip_injections(net)
    # runpp_3ph data; the engine reads the same columns (zero sequence = the cited ratios)
    net.ext_grid["s_sc_max_mva"] = 1e8           # ideal source: runpp_3ph's positive sequence is
    net.ext_grid["rx_max"] = 0.1                 # an ideal slack, the engine's a Thevenin source
    net.ext_grid["x0x_max"] = 1.0
    net.ext_grid["r0x0_max"] = 0.1
    net.line["r0_ohm_per_km"] = net.line.r_ohm_per_km * 3.49
    net.line["x0_ohm_per_km"] = net.line.x_ohm_per_km * 1.15
    net.line["c0_nf_per_km"] = net.line.c_nf_per_km
    net.trafo["vector_group"] = "Dyn"            # shift_degree stays 150 (Dyn5)
    net.trafo["vk0_percent"] = net.trafo.vk_percent
    net.trafo["vkr0_percent"] = net.trafo.vkr_percent
    net.trafo["mag0_percent"] = 1e10             # bank of single-phase units: Z0 = Z1
    net.trafo["mag0_rx"] = 0.0
    net.trafo["si0_hv_partial"] = 0.9
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.0, 8.0, (len(buses), 3))
    P[rng.random((len(buses), 3)) < 0.4] = 0.0  # many single/two-phase connections
    Q = P * rng.uniform(-0.3, 0.5, P.shape)
    for b, p, q in zip(buses, P, Q):
        pp.create_asymmetric_load(net, b, p_a_mw=p[0] / 1e3, p_b_mw=p[1] / 1e3, p_c_mw=p[2] / 1e3,
                                  q_a_mvar=q[0] / 1e3, q_b_mvar=q[1] / 1e3, q_c_mvar=q[2] / 1e3)
    return net, buses, P, Q


@pytest.mark.parametrize("name, seed, lv_kv, lv_tap", [("kerber_land_kabel_1", 1, None, 0), ("kerber_dorf", 2, None, 0),
                                                        ("kerber_dorf", 3, 0.42, 0), ("kerber_dorf", 4, None, 2)])
def test_equals_pandapower_runpp_3ph(name, seed, lv_kv, lv_tap):
    """lv_kv: a 0.42 kV LV winding on 0.4 kV buses; p.u. are of the buses' vn_kv, as pandapower's.
    lv_tap: an LV tap changer at +2 x 2.5 % (its impedance on the tapped voltage; was 2e-3 p.u. off)."""
    from pandapower.pf.runpp_3ph import runpp_3ph
    net, buses, P, Q = _pp_unbalanced(name, seed)
    if lv_kv:
        net.trafo["vn_lv_kv"] = lv_kv
    if lv_tap:
        net.trafo["tap_side"], net.trafo["tap_neutral"], net.trafo["tap_step_percent"] = "lv", 0, 2.5
        net.trafo["tap_pos"] = lv_tap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runpp_3ph(net, numba=False, tolerance_mva=1e-10, max_iteration=100)
    n3 = from_pandapower(net, name)
    idx, names = n3.node_index(), element_names(net.bus, "bus")
    pos = {int(b): k for k, b in enumerate(net.bus.index)}
    eng = Engine3ph(n3, [idx[(names[pos[b]], ph)] for b in buses for ph in (1, 2, 3)])
    r = eng.solve(P.ravel(), Q.ravel())
    assert r.converged
    bi = [n3.buses.index(names[pos[b]]) for b in net.bus.index]
    ref = net.res_bus_3ph[["vm_a_pu", "vm_b_pu", "vm_c_pu"]].values
    assert np.abs(r.vm_pu[bi] - ref).max() <= 1e-6
    assert ref.min() < 0.97                       # the case is loaded and unbalanced
    assert np.nanmax(r.vuf_pct) > 0.5
    res = net.res_line_3ph
    i_ref = np.maximum(res[["i_a_from_ka", "i_b_from_ka", "i_c_from_ka"]].values,
                       res[["i_a_to_ka", "i_b_to_ka", "i_c_to_ka"]].values)
    np.testing.assert_allclose(r.line_i_ka, i_ref, atol=1e-6)
    np.testing.assert_allclose(r.trafo_loading, net.res_trafo_3ph.loading_percent.values, rtol=1e-5)


def test_vuf_of_known_phasors():
    a = np.exp(2j * math.pi / 3)
    V = np.array([[1, a * a, a], [1.0, 0.9 * a * a, a]])
    v1 = (1 + a * 0.9 * a * a + a * a * a) / 3
    v2 = (1 + a * a * 0.9 * a * a + a * a) / 3
    np.testing.assert_allclose(vuf_percent(V), [0.0, abs(v2) / abs(v1) * 100], atol=1e-12)


def test_non_convergence_is_flagged_not_raised(ieee):
    ns, eng = ieee
    kw = np.full(len(ns.points), 1e4)                       # 10 MW per house: no solution
    r = eng.solve(kw, kw * 0.3)
    assert not r.converged and np.isnan(r.vm_pu).all() and math.isnan(r.losses_mw)
    ok = eng.solve(np.ones(len(ns.points)), np.zeros(len(ns.points)))
    assert ok.converged                                      # and the next step solves again


def _nodal_residual(eng, r, p, q) -> tuple[float, float]:
    """(max |Y v - J_source - J_loads(v)|, max |J_loads|) of a result: Kirchhoff's current law with
    the constant-power injections -conj(S/v) at the engine's points, in scaled units."""
    net = eng.net
    v = (r.vm_pu * np.exp(1j * np.radians(r.va_degree)))[net.node_bus, net.node_phase - 1]
    s = (p + 1j * q) * 1e3 / 1e6                                         # VA / S_BASE
    j_loads = np.zeros(net.n, dtype=complex)
    np.add.at(j_loads, eng.points, -np.conj(s / v[eng.points]))
    return np.abs(net.Y @ v - net.J_src - j_loads).max(), np.abs(j_loads).max()


def _kerber_engine():
    ns = load_network3ph("kerber_vorstadt_1")
    return ns, make_engine3ph(ns, [(p, (1, 2, 3)) for p in ns.points])


def test_node_voltages_satisfy_the_nodal_equations():
    """Every node voltage, of load nodes and of the others, solves Y v = J_source + J_loads(v)."""
    ns, eng = _kerber_engine()
    rng = np.random.default_rng(4)
    m = len(eng.points)
    p = np.where(rng.random(m) < 0.5, 0.0, rng.uniform(-4.0, 8.0, m))   # kW, many phases unloaded
    q = p * rng.uniform(-0.3, 0.3, m)
    r = eng.solve(p, q)
    assert r.converged and r.vm_pu[ns.lv_buses].min() < 0.97
    residual, j_max = _nodal_residual(eng, r, p, q)
    assert residual < 1e-6 * j_max                                       # rounding: ~1e-8 of it


def test_growing_active_set_solves_the_nodal_equations_and_idle_nodes_change_nothing():
    """The engine iterates only on the load nodes that have carried power so far. As phases take
    power for the first time (L1 only, then L2, then all three) each step still solves the nodal
    equations at every node; and the voltages do not depend on which idle nodes the set holds: an
    engine whose set holds every node gives the same result, from the same starting point, up to
    rounding (a wrong row or column of the gathered blocks would be off by percents)."""
    ns, eng = _kerber_engine()
    rng = np.random.default_rng(7)
    m = len(eng.points)
    phase = np.arange(m) % 3                                  # points are (a, b, c) per household
    kw = rng.uniform(-3.0, 7.0, m)
    sizes = []
    for phases in ((0,), (0, 1), (0, 1, 2)):
        p = np.where(np.isin(phase, phases) & (rng.random(m) < 0.7), kw, 0.0)
        q = 0.2 * p
        r = eng.solve(p, q)
        residual, j_max = _nodal_residual(eng, r, p, q)
        assert r.converged and residual < 1e-6 * j_max
        sizes.append(len(eng.active.nodes))
    assert sizes[0] < sizes[1] < sizes[2] <= len(eng.lnodes)
    p = np.where(phase == 1, kw, 0.0)                         # L2 only: every other node idle
    q = -0.1 * p
    _, full = _kerber_engine()
    full.solve(np.ones(m), np.zeros(m))                       # every load node in the set
    _, lean = _kerber_engine()
    results = []
    for engine in (full, lean):
        engine.reset()
        results.append(engine.solve(p, q))
    assert len(full.active.nodes) == len(full.lnodes) and len(lean.active.nodes) < len(full.lnodes) / 2
    a, b = results
    assert a.iterations == b.iterations
    for field in ("vm_pu", "va_degree", "line_loading", "trafo_loading", "p_trafo_mw"):
        x, y = getattr(a, field), getattr(b, field)
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        assert np.nanmax(np.abs(x - y)) < 1e-12 * max(1.0, np.nanmax(np.abs(x))), field
    assert abs(a.losses_mw - b.losses_mw) < 1e-12


def test_points_sharing_a_node_draw_the_sum_of_their_powers():
    """Two households on one phase of one bus inject the sum of their currents: the same voltages as
    one point with the summed power, and the nodal equations hold (the engine's per-node sums)."""
    ns = load_network3ph("kerber_vorstadt_1")
    single = make_engine3ph(ns, [(p, (1,)) for p in ns.points])
    shared = make_engine3ph(ns, [(p, (1,)) for p in ns.points] * 2)
    rng = np.random.default_rng(11)
    m = len(single.points)
    p1, p2 = rng.uniform(-2.0, 5.0, m), rng.uniform(0.0, 4.0, m)
    q1, q2 = 0.1 * p1, -0.2 * p2
    a = single.solve(p1 + p2, q1 + q2)
    b = shared.solve(np.r_[p1, p2], np.r_[q1, q2])
    assert shared.active.one_each is False and single.active.one_each is True
    assert np.nanmax(np.abs(a.vm_pu - b.vm_pu)) < 1e-9 and abs(a.losses_mw - b.losses_mw) < 1e-9
    residual, j_max = _nodal_residual(shared, b, np.r_[p1, p2], np.r_[q1, q2])
    assert residual < 1e-6 * j_max


LOAD_BANDS_DSS = """Clear
Set DefaultBaseFrequency=50
New Circuit.t basekv=11 pu=1 isc3=3000 isc1=5
New Transformer.tr buses=[sourcebus lv] conns=[delta wye] kvs=[11 0.416] kvas=[250 250] xhl=4
New LineCode.c nphases=3 R1=0.4 X1=0.3 R0=1.5 X0=0.4 C1=0 C0=0 Units=km
New Line.l1 bus1=lv bus2=b linecode=c length=300 units=m
New Load.a bus1=b.1 phases=1 kv=0.23 kw=40 pf=0.95
New Load.b bus1=b.2 phases=1 kv=0.23 kw=10 pf=0.95
New Load.c bus1=b.3 phases=1 kv=0.23 kw=-6 pf=1
Set voltagebases=[11 0.416]
Calcvoltagebases
Set tolerance=1e-10 maxiterations=100
Solve
"""


@needs_dss
def test_delta_lv_winding_refused_where_opendss_floats(tmp_path):
    """A delta LV winding leaves the phase-to-earth loads without an earthed neutral: the engine did not
    converge (NaN at every step), and OpenDSS is no reference, its voltages floating far outside any
    band. Refused in one line from OpenDSS files and from pandapower's vector groups."""
    master = tmp_path / "Master.dss"
    master.write_text(LOAD_BANDS_DSS.replace("conns=[delta wye]", "conns=[delta delta]"))
    c = compile_master(str(master))
    lv = [v for v, name in zip(c.AllBusVmagPu, c.AllNodeNames) if name.startswith("b.")]
    assert min(lv) < 0.5 and max(lv) > 1.4  # floating (0.23 / 1.50 / 1.82 p.u. when written)
    with pytest.raises(ValueError, match=r"Master\.dss:4: .*Transformer\.tr: a delta LV winding is not supported"):
        load_network3ph(f"opendss:{master}")
    net = load_network("kerber_dorf")
    net.trafo["vector_group"], net.trafo["shift_degree"] = "Dd0", 0.0
    with pytest.raises(ValueError, match=r"transformer 0 of 'kerber_dorf' \(vector group 'Dd0'\): a delta LV"):
        from_pandapower(net, "kerber_dorf")


@needs_dss
def test_delta_winding_without_loads_behind_it_is_kept_and_equals_opendss(tmp_path):
    """Only a delta winding that feeds loads is refused: an MV/MV transformer with a delta secondary
    (Dd here; as a 110/20 kV YNd5) ahead of the Dyn LV transformer has no load in its zone, whose
    voltages the Dyn's earthed LV side does not need. It was read and solved as OpenDSS does (to
    1e-5 p.u.) before the delta-LV refusal, which then refused it. The same delta winding with a load
    in its zone (at the end of a line): refused, naming the transformer."""
    master = tmp_path / "Master.dss"
    mv = "New Transformer.mv buses=[sourcebus mv] conns=[delta delta] kvs=[11 11] kvas=[1000 1000] xhl=4\n"
    master.write_text(LOAD_BANDS_DSS.replace("New Transformer.tr buses=[sourcebus lv]",
                                             mv + "New Transformer.tr buses=[mv lv]"))
    c = compile_master(str(master))
    ns = load_network3ph(f"opendss:{master}")
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    r = eng.solve([ld.kw for ld in ns.feeder.loads], [ld.kvar for ld in ns.feeder.loads])
    o = _node_order(ns, c.AllNodeNames)
    assert r.converged and np.abs(r.vm_pu[o[:, 0], o[:, 1]] - np.array(c.AllBusVmagPu)).max() <= 1e-5
    master.write_text(master.read_text().replace(
        "New Load.c", "New Line.l2 bus1=mv bus2=m2 linecode=c length=100 units=m\n"
        "New Load.m bus1=m2.1 phases=1 kv=6.35 kw=5 pf=0.95\nNew Load.c"))
    with pytest.raises(ValueError, match=r"Master\.dss:4: .*Transformer\.mv: a delta LV winding is not supported"):
        load_network3ph(f"opendss:{master}")


def test_pandapower_delta_secondary_without_households_behind_it_is_kept():
    """kerber_dorf fed through an extra 20/20 kV Dd0 transformer: no household bus in its secondary's
    zone, so it is built (and solves as the net without it, to the extra transformer's drop)."""
    net = load_network("kerber_dorf")
    eg = int(net.ext_grid.bus.iloc[0])
    mv0 = pp.create_bus(net, vn_kv=float(net.bus.at[eg, "vn_kv"]), name="mv0")
    net.ext_grid.at[net.ext_grid.index[0], "bus"] = mv0
    pp.create_transformer_from_parameters(net, mv0, eg, sn_mva=10.0, vn_hv_kv=float(net.bus.at[eg, "vn_kv"]),
                                          vn_lv_kv=float(net.bus.at[eg, "vn_kv"]), vkr_percent=0.1,
                                          vk_percent=1.0, pfe_kw=0.0, i0_percent=0.0, vector_group="Dd0",
                                          shift_degree=0.0)
    base = from_pandapower(load_network("kerber_dorf"), "kerber_dorf")
    chained = from_pandapower(net, "kerber_dorf_dd")
    buses = [b for b in load_buses(load_network("kerber_dorf"))][:4]
    names = element_names(load_network("kerber_dorf").bus, "bus")
    pos = {int(b): k for k, b in enumerate(load_network("kerber_dorf").bus.index)}
    nodes = [(names[pos[b]], ph) for b in buses for ph in (1, 2, 3)]
    kw = np.tile([6.0, 2.0, 0.5], len(buses))
    res = []
    for nw in (base, chained):
        idx = nw.node_index()
        r = Engine3ph(nw, [idx[n] for n in nodes]).solve(kw)
        bi = {b: k for k, b in enumerate(nw.buses)}
        res.append(np.array([r.vm_pu[bi[b], ph - 1] for b, ph in nodes]))
        assert r.converged
    assert np.abs(res[0] - res[1]).max() < 2e-3


@needs_dss
def test_voltage_base_is_the_nearest_voltagebases_entry_as_in_opendss(tmp_path):
    """A 0.42 kV transformer winding under voltagebases=[11 0.4]: OpenDSS's Calcvoltagebases gives the
    LV buses a 0.4 kV base, so p.u. values (and the v_band checks on them) are of 230.9 V; they were
    of the winding's 242.5 V, 5 % lower than OpenDSS's."""
    master = tmp_path / "Master.dss"
    master.write_text(LOAD_BANDS_DSS.replace("kvs=[11 0.416]", "kvs=[11 0.42]")
                      .replace("voltagebases=[11 0.416]", "voltagebases=[11 0.4]"))
    c = compile_master(str(master))
    ns = load_network3ph(f"opendss:{master}")
    np.testing.assert_allclose(ns.net.bus_vbase, [11e3 / math.sqrt(3), 400 / math.sqrt(3),
                                                  400 / math.sqrt(3)])
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    r = eng.solve([ld.kw for ld in ns.feeder.loads], [ld.kvar for ld in ns.feeder.loads])
    o = _node_order(ns, c.AllNodeNames)
    assert np.abs(r.vm_pu[o[:, 0], o[:, 1]] - np.array(c.AllBusVmagPu)).max() <= 1e-5
    # a voltagebases list without the LV level: refused (p.u. of 11 kV would hide every LV violation)
    master.write_text(LOAD_BANDS_DSS.replace("voltagebases=[11 0.416]", "voltagebases=[11]"))
    with pytest.raises(ValueError, match=r"Master\.dss: Set voltagebases=\[11\.0\] has no entry near bus 'lv'"):
        load_network3ph(f"opendss:{master}")


@needs_dss
def test_load_model_1_below_vminpu_and_above_vmaxpu_equals_opendss(tmp_path):
    """OpenDSS load model 1 outside its band: load a (40 kW on L1 at the end of 300 m) sits at 0.86
    of its base, between Vlowpu 0.50 and Vminpu 0.95, where OpenDSS draws a current linear in |V|
    (Load.pas InterpolateY95_YLow), not the constant impedance at Vminpu (that model was 1.7e-3 p.u.
    off); load c exports and sits above Vmaxpu 1.05 (constant impedance). Voltages, each load's
    power and the losses as OpenDSS's (solved to its tolerance 1e-10)."""
    master = tmp_path / "Master.dss"
    master.write_text(LOAD_BANDS_DSS)
    c = compile_master(str(master))
    assert c.Solution.Converged
    ns = load_network3ph(f"opendss:{master}")
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    r = eng.solve([ld.kw for ld in ns.feeder.loads], [ld.kvar for ld in ns.feeder.loads])
    assert r.converged
    o = _node_order(ns, c.AllNodeNames)
    vm = r.vm_pu[o[:, 0], o[:, 1]]
    base = 416 / math.sqrt(3) / 230                     # node base / load base
    assert vm[c.AllNodeNames.index("b.1")] * base < 0.95 and vm[c.AllNodeNames.index("b.3")] * base > 1.05
    assert np.abs(vm - np.array(c.AllBusVmagPu)).max() <= 1e-8
    p_ref = []
    for name in ("a", "b", "c"):
        c.SetActiveElement(f"Load.{name}")
        p_ref.append(c.ActiveCktElement.Powers[0])
    np.testing.assert_allclose(r.p_point_kw, p_ref, rtol=1e-8)
    assert r.losses_mw * 1e6 == pytest.approx(c.Losses[0], rel=1e-8)


@needs_dss
@pytest.mark.parametrize("conns, leadlag, ppm, taps", [
    ("delta wye", "lag", 1.0, "1 1"), ("delta wye", "lead", 1.0, "1 1"), ("wye wye", "lag", 1.0, "1 1"),
    ("delta wye", "lag", 25.0, "1 1"), ("delta wye", "lag", 0.0, "1 1"), ("delta wye", "lag", 1.0, "1.025 1"),
    ("delta wye", "lag", 1.0, "1 0.975"), ("delta wye", "lag", 1.0, "0.95 1.05")])
def test_transformer_primitive_equals_opendss_yprim(tmp_path, conns, leadlag, ppm, taps):
    """The transformer's 6x6 primitive admittance as OpenDSS's own Yprim (neutral conductors, which
    are earthed, left out), ppm_antifloat included: OpenDSS puts -j ppm 1e-6/(2 Zbase) on each
    winding terminal; the engine scaled every terminal's self susceptance by (1 + ppm 1e-6), which
    is 1e-6 of it off (1.2e-6 p.u. in the voltages of a small feeder). With an LV tap the per-unit
    impedance is on the tapped LV voltage (it was on the rated one: 2e-4 p.u. off OpenDSS)."""
    from simulators.grid3ph_engine import _trafo_prim
    master = tmp_path / "Master.dss"
    master.write_text(LOAD_BANDS_DSS.replace(
        "conns=[delta wye] kvs=[11 0.416] kvas=[250 250] xhl=4",
        f"conns=[{conns}] kvs=[11 0.416] kvas=[250 250] xhl=4 %loadloss=1.2 leadlag={leadlag} "
        f"ppm_antifloat={ppm} taps=[{taps}]"))
    c = compile_master(str(master))
    c.SetActiveElement("Transformer.tr")
    y = np.asarray(c.ActiveCktElement.Yprim).reshape(-1, 2)
    y = (y[:, 0] + 1j * y[:, 1]).reshape(8, 8)[np.ix_([0, 1, 2, 4, 5, 6], [0, 1, 2, 4, 5, 6])]
    tr = load_network3ph(f"opendss:{master}").feeder.transformers[0]
    ours = _trafo_prim(tr.conns, tr.kvs, tr.kva, tr.taps, complex(tr.r_pu, tr.x_pu), tr.lead,
                       tr.ppm_antifloat)
    assert np.abs(ours - y).max() <= 1e-12 * np.abs(y).max()
