"""OpenDSS (dss-python) as the independent reference of the unbalanced grid tests."""
import numpy as np
import pytest

try:
    import dss as _dss  # dss-python: the OpenDSS engine of DSS-Extensions
    _ERR = None
except ImportError as exc:  # pragma: no cover - dss-python is in the test extra
    _dss, _ERR = None, str(exc)

dss = _dss
needs_dss = pytest.mark.skipif(_dss is None, reason=f"dss-python cannot be imported: {_ERR}")


def compile_master(master: str):
    """Fresh OpenDSS circuit from ``master`` (which ends with a snapshot solve); the circuit."""
    d = _dss.DSS
    d.Text.Command = "clear"
    d.Text.Command = f'redirect "{master}"'
    return d.ActiveCircuit


def yearly_voltages(master: str, steps: int, every: int = 0, buses: list[str] | None = None):
    """Node names and, per step of OpenDSS's yearly mode (1 min), every node's |V| in p.u.; with
    ``every``, also ``{step: {"line_amps", "losses_w", "trafo_amps", "vuf"}}`` every ``every`` steps
    (see :func:`element_currents`; VUF per bus of ``buses``)."""
    c = compile_master(master)
    _dss.DSS.Text.Command = "set mode=yearly number=1 stepsize=1m"
    names = list(c.AllNodeNames)
    out = np.empty((steps, len(names)))
    sampled = {}
    for k in range(steps):
        c.Solution.Solve()
        out[k] = c.AllBusVmagPu
        if every and k % every == 0:
            sampled[k] = {"line_amps": element_currents(c, "Lines"), "losses_w": c.Losses[0],
                          "trafo_amps": element_currents(c, "Transformers"),
                          "vuf": bus_vuf(c, buses or [])}
    return (names, out, sampled) if every else (names, out)


def element_currents(c, cls: str) -> np.ndarray:
    """Per element of ``cls`` (Lines/Transformers collection of ``c``): (n, 2, 3) phase current
    magnitudes (A) at terminal 1 and 2 (conductors 1-3 of each terminal)."""
    coll = getattr(c, cls)
    out = []
    ok = coll.First
    while ok:
        cur = np.asarray(c.ActiveCktElement.CurrentsMagAng)[::2]
        k = len(cur) // 2                        # conductors per terminal (3, or 4 with a neutral)
        out.append([cur[:3], cur[k:k + 3]])
        ok = coll.Next
    return np.array(out)


def bus_vuf(c, names: list[str]) -> np.ndarray:
    """OpenDSS's own sequence voltages per bus: |V2|/|V1| in % (NaN for buses without 3 phases)."""
    out = np.full(len(names), np.nan)
    for k, b in enumerate(names):
        c.SetActiveBus(b)
        if c.ActiveBus.NumNodes == 3:
            v0, v1, v2 = c.ActiveBus.SeqVoltages
            out[k] = v2 / v1 * 100.0
    return out
