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


def yearly_voltages(master: str, steps: int):
    """Node names and, per step of OpenDSS's yearly mode (1 min), every node's |V| in p.u."""
    c = compile_master(master)
    _dss.DSS.Text.Command = "set mode=yearly number=1 stepsize=1m"
    names = list(c.AllNodeNames)
    out = np.empty((steps, len(names)))
    for k in range(steps):
        c.Solution.Solve()
        out[k] = c.AllBusVmagPu
    return names, out
