"""OpenDSS reader: the bundled IEEE European LV feeder, and one-line errors naming file:line."""
import math
import os

import numpy as np
import pytest

from simulators.grid3ph_networks import BUNDLED_DSS, load_network3ph, make_engine3ph
from simulators.opendss import DSSError, read_dss

from tests.helpers.opendss_ref import compile_master, dss, needs_dss


def test_reads_ieee_eu_lv():
    fd = read_dss(BUNDLED_DSS["ieee_eu_lv"])
    assert fd.base_freq == 50.0
    assert len(fd.buses()) == 907 and len(fd.lines) == 905 and len(fd.loads) == 55
    assert len(fd.loadshapes) == 55 and all(len(s.mult) == 1440 for s in fd.loadshapes.values())
    assert all(not s.useactual for s in fd.loadshapes.values())        # BatchEdit useactual=no
    assert fd.loadshapes["shape_1"].interval_h == pytest.approx(1 / 60)
    ld = fd.loads[0]
    assert (ld.bus, ld.nodes, ld.kv, ld.kw) == ("34", (1,), 0.23, 1.0)
    assert ld.kvar == pytest.approx(math.tan(math.acos(0.95)))          # PF=0.95
    tr = fd.transformers[0]
    assert tr.conns == ("delta", "wye") and tr.kvs == (11.0, 0.416) and tr.x_pu == 0.04
    assert tr.r_pu == pytest.approx(0.004)                               # default %R 0.2 per winding
    src = fd.source
    assert (src.bus, src.basekv, src.pu) == ("sourcebus", 11.0, 1.05)
    # ISC3 = 3000 A at 11 kV: |Z1| = V_ln / Isc3
    assert abs(src.z1) == pytest.approx(11e3 / math.sqrt(3) / 3000, rel=1e-12)
    # ISC1 = 5 A: |2 Z1 + Z0| = 3 V_ln / Isc1
    assert abs(2 * src.z1 + src.z0) == pytest.approx(3 * 11e3 / math.sqrt(3) / 5, rel=1e-12)
    # LineCode 4c_70 R1=0.446 R0=1.505 ohm/km, LINE1 1.098 m: Zs = (2 R1 + R0)/3 * length
    ln = fd.lines[0]
    assert ln.z[0, 0].real == pytest.approx((2 * 0.446 + 1.505) / 3 * 1.098e-3)
    assert ln.z[0, 1].real == pytest.approx((1.505 - 0.446) / 3 * 1.098e-3)
    kw, kvar = fd.load_kw(0)
    assert kw[0] == pytest.approx(0.036) and kvar[0] == pytest.approx(0.036 * math.tan(math.acos(0.95)))


def _write(tmp_path, text, extra=None):
    (tmp_path / "Master.dss").write_text(text)
    for name, body in (extra or {}).items():
        (tmp_path / name).write_text(body)
    return str(tmp_path / "Master.dss")


BASE = ("New Circuit.t basekv=11 pu=1 isc3=3000 isc1=5\n"
        "New LineCode.c nphases=3 R1=0.4 X1=0.07 R0=1.5 X0=0.08 C1=0 C0=0 Units=km\n")


@pytest.mark.parametrize("line, needle", [
    ("New Capacitor.c1 bus1=a kvar=10", "unsupported element class 'capacitor'"),
    ("New Line.l1 bus1=sourcebus bus2=b linecode=c length=1 switch=yes", "unsupported property 'switch'"),
    ("New Line.l1 bus1=sourcebus bus2=b linecode=nope length=1", "unknown linecode 'nope'"),
    ("New Line.l1 bus1=sourcebus bus2=b linecode=c length=1 units=furlong", "unsupported units 'furlong'"),
    ("New Load.x bus1=b.1 phases=1 kv=0.23 kw=1 model=2", "only model=1"),
    ("Set mode=snap algorithm=newton foo=1", "unsupported option 'Set foo'"),
    ("Plot circuit", "unsupported command 'Plot'"),
    ("Redirect missing.dss", "cannot read"),
    ("New Line.l1 bus1=sourcebus bus2=b linecode=c length=1 R1=0.1", "give X1, R0, X0, C1 (or B1), C0 (or B0)"),
    ("New Loadshape.s npts=3 mult=(file=nofile.txt)", "file"),
    # zero, missing or non-numeric values: one line naming the element, not a ZeroDivisionError
    # traceback or numpy's bare "Singular matrix"
    ("New Transformer.t2 buses=[sourcebus x] conns=[delta wye] kvs=[11 0.416] kvas=[0 0]",
     "Transformer.t2: kVs, kVAs and taps must be positive"),
    ("New Transformer.t2 buses=[sourcebus x] xhl=0 %r=0", "Transformer.t2: zero impedance"),
    ("New Transformer.t2 buses=[sourcebus x] conns=[delta delta] kvs=[11 0.416]\n"
     "New Load.lx bus1=x.1 phases=1 kv=0.24 kw=1",  # refused where it feeds a load (test_grid3ph.py)
     "Transformer.t2: a delta LV winding is not supported"),
    ("New Line.l1 bus1=sourcebus bus2=b linecode=c length=0", "Line.l1: length must be positive, got 0"),
    ("New Line.l1 bus1=sourcebus bus2=b length=1 R1=0 X1=0 R0=0 X0=0 C1=0 C0=0",
     "Line.l1: its impedance matrix is singular"),
    ("New Load.x bus1=b.1 phases=1 kv=0 kw=1", "Load.x: kv must be positive, got 0"),
    ("New Load.x bus1=b.1 phases=0 kv=0.23 kw=1", "Load.x: phases must be 1, 2 or 3, got 0"),
    ("New Load.x bus1=b.1 phases=1 kv=0.23 kw=abc", "Load.x: kw='abc' is not a number"),
    ("New Loadshape.s npts=0 mult=[]", "LoadShape.s: npts and mult need at least one point"),
])
def test_unsupported_input_one_line_with_file_and_line(tmp_path, line, needle):
    path = _write(tmp_path, BASE + "! comment\n" + line + "\n")
    with pytest.raises(DSSError) as exc:
        read_dss(path)
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg
    assert msg.startswith(f"{os.path.abspath(path)}:4:")


def test_error_in_redirected_file_names_that_file(tmp_path):
    path = _write(tmp_path, BASE + "Redirect Loads.txt\n",
                  {"Loads.txt": "New Load.a bus1=b.1 phases=1 kv=0.23 kw=1\nNew Load.b bus1=b.1 kw=1 foo=2\n"})
    with pytest.raises(DSSError, match=r"Loads\.txt:2: load\.b: unsupported property 'foo'"):
        read_dss(path)


def test_inline_mult_edit_more_and_comments(tmp_path):
    path = _write(tmp_path, BASE + (
        "/* block\n comment */\n"
        "New Line.l1 bus1=SourceBus bus2=B linecode=c length=100 units=m  // trailing\n"
        "New Loadshape.s npts=3 interval=1 mult=[0.5 1, 2]\n"
        "New Load.a bus1=b.2 phases=1 kv=0.23 kw=2 pf=0.9 yearly=s\n"
        "Edit Load.a kw=4\n~ kvar=1\n"))
    fd = read_dss(path)
    assert [b for b in fd.buses()] == ["sourcebus", "b"]
    np.testing.assert_allclose(fd.loadshapes["s"].mult, [0.5, 1.0, 2.0])
    ld = fd.loads[0]
    assert (ld.nodes, ld.kw, ld.kvar) == ((2,), 4.0, 1.0)
    kw, kvar = fd.load_kw(2)
    assert (kw[0], kvar[0]) == (8.0, 2.0)
    assert fd.lines[0].z[0, 0].real == pytest.approx((2 * 0.4 + 1.5) / 3 * 0.1)


SHAPES_DSS = """Clear
Set DefaultBaseFrequency=50
New Circuit.t basekv=11 pu=1 isc3=3000 isc1=5 basefreq=60
New Transformer.tr buses=[sourcebus lv] conns=[delta wye] kvs=[11 0.416] kvas=[250 250] xhl=4
New Transformer.spare buses=[sourcebus lv] conns=[delta wye] kvs=[11 0.416] kvas=[250 250] xhl=4
Edit Transformer.spare enabled=no
New LineCode.c nphases=3 R1=0.4 X1=0.3 R0=1.5 X0=0.4 C1=0 C0=0 Units=km
New Line.l1 bus1=lv bus2=b linecode=c length=300 units=m
New Loadshape.s npts=3 interval=1 mult=[0.5 2 1]
New Load.fixed bus1=b.1 phases=1 kv=0.23 kw=8 pf=0.95 yearly=s status=fixed
New Load.daily bus1=b.2 phases=1 kv=0.23 kw=6 pf=0.95 daily=s
New Load.exempt bus1=b.3 phases=1 kv=0.23 kw=4 pf=0.95 yearly=s status=exempt
Set voltagebases=[11 0.416]
Calcvoltagebases
Set tolerance=1e-10
Solve
"""


@needs_dss
def test_status_daily_enabled_and_source_basefreq_as_opendss(tmp_path):
    """Properties OpenDSS gives a meaning the reader used to drop: a Fixed load takes no load shape
    multiplier; a load with only Daily= follows it in yearly mode too (Load.pas: "Yearly defaults to
    Daily when Daily is defined"); a transformer with enabled=no is out of the circuit (it used to be
    in parallel, 2e-3 p.u. off); the source's impedances are at its basefreq (X scaled by 50/60).
    Voltages as OpenDSS's in its yearly mode at multiplier 2 (hour 2)."""
    (tmp_path / "Master.dss").write_text(SHAPES_DSS)
    master = str(tmp_path / "Master.dss")
    fd = read_dss(master)
    kw, _ = fd.load_kw(1)
    np.testing.assert_allclose(kw, [8.0, 12.0, 8.0])
    c = compile_master(master)
    dss.DSS.Text.Command = "set mode=yearly number=1 stepsize=1h"
    c.Solution.Solve()
    c.Solution.Solve()                                   # hour 2: multiplier index 1
    ns = load_network3ph(f"opendss:{master}")
    assert ns.net.trafo_names == ["tr"]
    eng = make_engine3ph(ns, [(p, p.phases) for p in ns.points])
    r = eng.solve(*fd.load_kw(1))
    bi = {b: k for k, b in enumerate(ns.net.buses)}
    o = np.array([(bi[n.rsplit(".", 1)[0]], int(n.rsplit(".", 1)[1]) - 1) for n in c.AllNodeNames])
    assert np.abs(r.vm_pu[o[:, 0], o[:, 1]] - np.array(c.AllBusVmagPu)).max() <= 1e-5


@pytest.mark.parametrize("line, needle", [
    ("New LineCode.x nphases=3 R1=0.4 X1=0.07 R0=1.5 X0=0.08 C1=0 C0=0 Units=km basefreq=60",
     "basefreq=60 differs from the circuit's 50 Hz"),
    ("New Load.x bus1=b.1 phases=1 kv=0.23 kw=1 status=off", "status must be Variable, Fixed or Exempt"),
    ("Edit Vsource.source frequency=60", "frequency=60 differs from the circuit's 50 Hz"),
    # OpenDSS scales every load by these (0.5 and 1.025): they were ignored
    ("Set loadmult=0.5", "Set loadmult=0.5: only 1 is supported"),
    ("Set year=2", "Set year=2: only 0 or 1 is supported"),
    # a neutral on its own node floats in OpenDSS; it was silently taken as earthed
    ("New Load.x bus1=b.1.4 phases=1 kv=0.23 kw=1", "its neutral must be node 0 or left out"),
    ("New Transformer.t2 buses=[sourcebus x.1.2.3.4]", "only buses on nodes 1.2.3 (or 1.2.3.0)"),
])
def test_options_and_nodes_refused_in_one_line(tmp_path, line, needle):
    path = _write(tmp_path, "Set DefaultBaseFrequency=50\n" + BASE + line + "\n")
    with pytest.raises(DSSError) as exc:
        read_dss(path)
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg and msg.startswith(os.path.abspath(path) + ":")


@pytest.mark.parametrize("line, needle", [
    ("New Load.x bus1=bb.1 phases=1 kv=0.23 kw=1", "Load.x: bus 'bb' is not connected to the source"),
    ("New Load.x bus1=b.4 phases=1 kv=0.23 kw=1", "Load.x: bus b uses node 4"),
])
def test_misspelled_bus_or_node_names_the_element_and_its_line(tmp_path, line, needle):
    """Found when the network is built, after reading: still one line naming file:line of the
    element (a misspelled bus used to give only the Master.dss path and the bus)."""
    path = _write(tmp_path, BASE + "New Line.l1 bus1=sourcebus bus2=b linecode=c length=1\n" + line + "\n")
    with pytest.raises(ValueError) as exc:
        load_network3ph(f"opendss:{path}")
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg and msg.startswith(f"{os.path.abspath(path)}:4: ")


def test_linecode_like_copies_the_other_codes_properties(tmp_path):
    """like= copies every property of the named LineCode (OpenDSS); it used to be dropped, so a code
    like=c with its own impedances lost c's Units=km and its lines were 1000x too long."""
    path = _write(tmp_path, BASE + (
        "New LineCode.c2 like=c R1=0.2 X1=0.07 R0=1.5 X0=0.08 C1=0 C0=0 normamps=150\n"
        "New LineCode.c3 like=c R1=0.2\n"                                   # the rest from c
        "New Line.l2 bus1=b bus2=b2 linecode=c3 length=100 units=m\n"
        "New Line.l1 bus1=sourcebus bus2=b linecode=c2 length=100 units=m\n"))
    fd = read_dss(path)
    for ln in fd.lines:                                                   # c's Units=km: 0.1 km
        assert ln.z[0, 0].real == pytest.approx((2 * 0.2 + 1.5) / 3 * 0.1)
        assert ln.z[0, 0].imag == pytest.approx((2 * 0.07 + 0.08) / 3 * 0.1)
    assert {ln.name: ln.normamps for ln in fd.lines} == {"l1": 150, "l2": 400}
    bad = _write(tmp_path, BASE + "New LineCode.c4 like=nope\n")
    with pytest.raises(DSSError, match=r"Master\.dss:3: linecode\.c4: like='nope' is not a defined linecode"):
        read_dss(bad)


def test_kva_with_leading_pf_is_a_load(tmp_path):
    """kVA with a negative (leading) PF: kW = kVA |PF| and kvar negative (Load.pas, kVA_PF); the
    reader made kW negative, a 8 kW generator instead of a load. Set year=1 and loadmult=1 are
    neutral and accepted."""
    path = _write(tmp_path, BASE + "Set year=1 loadmult=1\nNew Load.x bus1=b.1 phases=1 kv=0.23 kva=10 pf=-0.8\n")
    ld = read_dss(path).loads[0]
    assert (ld.kw, ld.kvar) == (pytest.approx(8.0), pytest.approx(-6.0))


ORDER_DSS = """Clear
Set DefaultBaseFrequency=50
New Circuit.t basekv=11 pu=1 isc3=3000 isc1=5
New Transformer.tr buses=[sourcebus b] conns=[delta wye] kvs=[11 0.416] kvas=[250 250] xhl=4
New Load.a bus1=b.1 phases=1 kv=0.23 kw=4 kvar=1
Edit Load.a kw=8
New Load.b bus1=b.2 phases=1 kv=0.23 kvar=1 kw=4
New Load.c bus1=b.3 phases=1 kv=0.23 kw=3 pf=0.9
~ kvar=0.5
BatchEdit Load.^c$ kw=6
New Load.d bus1=b.1 phases=1 kv=0.23 kw=-5 pf=0.95
New Load.e bus1=b.2 phases=1 kv=0.23 kva=10 pf=-0.8
New Load.f bus1=b.3 phases=1 kv=0.23
Set voltagebases=[11 0.416]
Calcvoltagebases
Solve
"""


@needs_dss
def test_load_kw_kvar_pf_in_the_order_given_as_opendss(tmp_path):
    """kW, kvar, PF and kVA act in the order given, edit by edit, as in OpenDSS: editing kW after
    kW+kvar keeps the power factor (a: 2 kvar, the reader kept 1), kvar before kW is overridden by
    the default PF 0.88 (b), BatchEdit kW= keeps the PF (c), a negative kW at PF 0.95 has negative
    kvar (d: it had positive), kVA with a leading PF (e), and the defaults (f: 10 kW at PF 0.88)."""
    (tmp_path / "Master.dss").write_text(ORDER_DSS)
    c = compile_master(str(tmp_path / "Master.dss"))
    ref = {}
    ok = c.Loads.First
    while ok:
        ref[c.Loads.Name] = (c.Loads.kW, c.Loads.kvar)
        ok = c.Loads.Next
    got = {ld.name: (ld.kw, ld.kvar) for ld in read_dss(str(tmp_path / "Master.dss")).loads}
    assert got.keys() == ref.keys()
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)


@needs_dss
@pytest.mark.parametrize("target", ["Load..*", "Load.c", "Load..c", "Load.^c$", "Load.C$"])
def test_batchedit_selects_the_loads_opendss_does(tmp_path, target):
    """BatchEdit <class>.<regex>: the regex is all after the first dot, searched in the name,
    case-insensitively (Load..c is ".c": cc, ac, xcy but not c); the reader took the part after ".."
    and matched it at the start (Load..c edited c and cc, Load.c was refused)."""
    text = "Clear\nNew Circuit.t basekv=11\n" + "".join(
        f"New Load.{n} bus1=b.1 phases=1 kv=0.23 kw=1\n" for n in ("c", "cc", "ac", "xcy")) + \
        f"BatchEdit {target} kw=7\n"
    (tmp_path / "Master.dss").write_text(text)
    c = compile_master(str(tmp_path / "Master.dss"))
    ref = set()
    ok = c.Loads.First
    while ok:
        if c.Loads.kW == 7:
            ref.add(c.Loads.Name)
        ok = c.Loads.Next
    assert ref and {ld.name for ld in read_dss(str(tmp_path / "Master.dss")).loads if ld.kw == 7} == ref


USEACTUAL_DSS = """Clear
Set DefaultBaseFrequency=50
New Circuit.t basekv=0.4 isc3=100000 isc1=100000
New Loadshape.s npts=3 interval=1 mult=[0.5 2 1] useactual=yes
New Loadshape.q npts=3 interval=1 mult=[0.5 2 1] qmult=[0.1 0.3 0.2] useactual=yes
New Load.pf bus1=sourcebus.1 phases=1 kv=0.23 kw=1 pf=0.95 yearly=s
New Load.kvar bus1=sourcebus.1 phases=1 kv=0.23 kw=1 kvar=0.2 yearly=s
New Load.none bus1=sourcebus.1 phases=1 kv=0.23 kw=1 yearly=s
New Load.qm bus1=sourcebus.1 phases=1 kv=0.23 kw=1 pf=0.95 yearly=q
New Load.lead bus1=sourcebus.1 phases=1 kv=0.23 kw=1 pf=-0.9 yearly=s
"""


@needs_dss
def test_useactual_shape_reactive_power_as_opendss(tmp_path):
    """A useactual shape gives the kW; the kvar is its qmult, else from the load's PF if the PF was
    given, else 0 (Load.pas SetNominalLoad). The reader scaled the base kvar/kW ratio: 0.4 kvar for
    kvar=0.2 and 1.08 kvar for a load without PF, where OpenDSS has 0."""
    (tmp_path / "Master.dss").write_text(USEACTUAL_DSS)
    c = compile_master(str(tmp_path / "Master.dss"))
    dss.DSS.Text.Command = "set mode=yearly number=1 stepsize=1h"
    c.Solution.Solve()
    c.Solution.Solve()                                   # hour 2: multiplier index 1
    ref = {}
    ok = c.Loads.First
    while ok:
        ref[c.Loads.Name] = c.ActiveCktElement.Powers[:2]
        ok = c.Loads.Next
    fd = read_dss(str(tmp_path / "Master.dss"))
    kw, kvar = fd.load_kw(1)
    for ld, p, q in zip(fd.loads, kw, kvar):
        np.testing.assert_allclose([p, q], ref[ld.name], atol=1e-5, err_msg=ld.name)  # OpenDSS tolerance
