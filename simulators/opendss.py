"""Reader for the OpenDSS subset used by LV feeders (e.g. the IEEE European LV test feeder).

``read_dss(path)`` parses a ``Master.dss`` (following ``Redirect``/``Compile``) into a
:class:`Feeder`, a plain network description that :mod:`simulators.grid3ph_engine` solves.

Supported (anything else is an :class:`DSSError` naming ``file:line`` and the element/property):

* commands ``Clear``, ``New``, ``Edit``, ``~``/``More``, ``Redirect``, ``Compile``, ``Set``
  (``DefaultBaseFrequency``, ``voltagebases``; run-control options such as ``mode``, ``number``,
  ``stepsize`` are accepted and ignored; ``loadmult`` only 1 and ``year`` only 0/1, as they scale the
  loads), ``BatchEdit <class>.<regex> prop=value``,
  ``Calcvoltagebases``, ``Buscoords``, ``Solve`` (ignored: the engine decides when to solve);
* ``Circuit`` / ``Vsource`` (``bus1``, ``basekV``, ``pu``, ``angle``, ``phases=3``, ``ISC3``/``ISC1``
  or ``MVAsc3``/``MVAsc1`` or ``R1 X1 R0 X0`` or ``Z1``/``Z0``, ``X1R1``, ``X0R0``, ``basefreq``: X
  given at it, scaled to the circuit's frequency as VSource.pas does);
* ``LineCode`` (``nphases``, ``R1 X1 R0 X0 C1 C0`` or ``Rmatrix Xmatrix Cmatrix``, ``units``,
  ``normamps``, ``emergamps``, ``basefreq`` only equal to the circuit's frequency, ``like``: every
  property of that LineCode, later ones override);
* ``Line`` (``bus1``, ``bus2``, ``phases``, ``linecode``, ``length``, ``units``, the impedance
  properties of a LineCode, ``normamps``, ``enabled``);
* ``Transformer`` with two windings (``buses``, ``conns``, ``kVs``, ``kVAs``, ``taps``, ``XHL``,
  ``%Rs``/``%R``/``%loadloss``, ``phases``, ``LeadLag``, ``sub``, ``enabled``; ``%noloadloss``/``%imag``
  only 0);
* ``Load`` (``bus1``, ``phases``, ``kV``, ``kW``, ``kvar``/``PF``, ``kVA``, ``model=1``, ``conn=wye``,
  ``Vminpu``, ``Vmaxpu``, ``Vlowpu``, ``yearly`` (default: ``daily``), ``daily``, ``duty``, ``status``
  ``Variable``/``Exempt``, or ``Fixed``: no load shape applies; ``enabled``);
* ``LoadShape`` (``npts``, ``interval``/``minterval``/``sinterval``, ``mult`` inline or
  ``(file=...)``, ``qmult``, ``useactual``);
* ``Monitor`` and ``EnergyMeter`` are read and ignored (they measure, they do not change the
  power flow).

Units follow the OpenDSS manual ("OpenDSS Manual", EPRI, 2019 / docs at opendss.epri.com): line
impedances per ``units`` length unit, ``Length`` in its own ``units``; default line ``normamps``
400 A; Load ``Vminpu`` 0.95, ``Vmaxpu`` 1.05, ``Vlowpu`` 0.50, ``PF`` 0.88; Transformer ``XHL`` 7 %,
``%R`` 0.2 % per winding, LeadLag ``Lag`` (ANSI, Dy1); Vsource ``basekV`` 115, ``pu`` 1, ``ISC3``
10000 A, ``ISC1`` 10500 A, ``X1R1`` 4, ``X0R0`` 3 (all OpenDSS defaults).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from simulators.opendss_model import DELTA_LV, Feeder, Line, Load, LoadShape, Source, Transformer, \
    delta_lv_feeding

__all__ = ["DSSError", "Feeder", "Source", "Line", "Transformer", "Load", "LoadShape", "read_dss",
           "parse_bus"]

_SQRT3 = math.sqrt(3.0)


class DSSError(ValueError):
    """Unsupported or malformed OpenDSS input (message starts with ``file:line:``)."""


# --------------------------------------------------------------------------- tokenizer
_LEN_M = {"m": 1.0, "km": 1000.0, "ft": 0.3048, "kft": 304.8, "mi": 1609.344, "cm": 0.01,
          "in": 0.0254, "none": None}


def parse_bus(spec: str, nphases: int) -> tuple[str, tuple[int, ...]]:
    """``"34.1"`` -> ``("34", (1,))``; ``"b"`` with 3 phases -> ``("b", (1, 2, 3))``."""
    parts = spec.strip().split(".")
    name = parts[0].lower()
    if len(parts) == 1:
        return name, tuple(range(1, nphases + 1))
    try:
        nodes = tuple(int(p) for p in parts[1:])
    except ValueError:
        raise ValueError(f"bad bus specification {spec!r}") from None
    return name, nodes


def _strip_comment(line: str) -> str:
    out, quote = [], None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "!" or line.startswith("//", i):
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


_CLOSE = {"[": "]", "(": ")", "{": "}", '"': '"', "'": "'"}


def _tokens(text: str) -> list[tuple[str | None, str]]:
    """Split ``a=b c=[1 2] d`` into ``[(a, b), (c, "1 2"), (None, d)]`` (brackets/quotes stripped)."""
    out: list[tuple[str | None, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        key = None
        m = re.match(r"([^\s=,\[\](){}\"']+)\s*=\s*", text[i:])
        if m:
            key = m.group(1).lower()
            i += m.end()
        if i < n and text[i] in _CLOSE:
            opener, closer = text[i], _CLOSE[text[i]]
            depth, j = 1, i + 1
            while j < n:
                if text[j] == closer:
                    depth -= 1
                    if depth == 0:
                        break
                elif text[j] == opener and opener != closer:
                    depth += 1
                j += 1
            if j >= n:
                raise ValueError(f"unbalanced {opener!r} in {text!r}")
            val = text[i + 1:j]
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t,":
                j += 1
            val = text[i:j]
            i = j
        out.append((key, val))
    return out


def _numbers(val: str) -> list[float]:
    try:
        out = [float(x) for x in re.split(r"[\s,|]+", val.strip()) if x]
    except ValueError:
        raise ValueError(f"{val!r} is not a list of numbers") from None
    if not all(math.isfinite(x) for x in out):
        raise ValueError(f"{val!r} holds a number that is not finite")
    return out


def _matrix(val: str, label: str) -> np.ndarray:
    """Lower-triangular (``a | b c | d e f``) or full matrix text -> full symmetric array."""
    rows = [r for r in val.split("|")]
    data = [_numbers(r) for r in rows]
    n = len(data)
    m = np.zeros((n, n))
    for i, r in enumerate(data):
        if len(r) == i + 1:
            m[i, :i + 1] = r
            m[:i + 1, i] = r
        elif len(r) == n:
            m[i, :] = r
        else:
            raise ValueError(f"{label}: row {i + 1} has {len(r)} values for a {n}x{n} matrix")
    return m


def _bool(val: str) -> bool:
    v = val.strip().lower()
    if v in ("y", "yes", "t", "true", "1"):
        return True
    if v in ("n", "no", "f", "false", "0"):
        return False
    raise ValueError(f"expected yes/no, got {val!r}")


# --------------------------------------------------------------------------- element models
_PROPS = {
    "vsource": {"bus1", "basekv", "pu", "angle", "phases", "isc3", "isc1", "mvasc3", "mvasc1",
                "r1", "x1", "r0", "x0", "z1", "z0", "x1r1", "x0r0", "frequency", "basefreq"},
    "linecode": {"nphases", "r1", "x1", "r0", "x0", "c1", "c0", "b1", "b0", "rmatrix", "xmatrix",
                 "cmatrix", "units", "normamps", "emergamps", "basefreq", "like"},
    "line": {"bus1", "bus2", "phases", "linecode", "length", "units", "r1", "x1", "r0", "x0", "c1",
             "c0", "b1", "b0", "rmatrix", "xmatrix", "cmatrix", "normamps", "emergamps", "enabled",
             "basefreq"},
    "transformer": {"phases", "windings", "buses", "conns", "kvs", "kvas", "taps", "xhl", "%rs",
                    "%r", "%loadloss", "%noloadloss", "%imag", "leadlag", "sub", "ppm_antifloat",
                    "normhkva", "emerghkva", "enabled"},
    "load": {"bus1", "phases", "kv", "kw", "kvar", "pf", "kva", "model", "conn", "vminpu",
             "vmaxpu", "vlowpu", "yearly", "daily", "duty", "status", "enabled"},
    "loadshape": {"npts", "interval", "minterval", "sinterval", "mult", "qmult", "useactual"},
}
_IGNORED_CLASSES = {"monitor", "energymeter"}
_SET_USED = {"defaultbasefrequency", "voltagebases"}
# options that scale every load in OpenDSS: accepted only at their neutral values (loadmult 1; year 0
# or 1, whose default growth factor 1.025^(year-1) is 1)
_SET_SCALING = {"loadmult": lambda v: v == 1.0, "year": lambda v: v in (0.0, 1.0)}
_SET_IGNORED = {"mode", "number", "stepsize", "h", "year", "hour", "sec", "time", "overloadreport",
                "voltexcept", "demand", "diverbose", "casename", "maxiterations", "tolerance",
                "loadmult", "algorithm", "controlmode", "datapath", "editor", "markercode",
                "nodewidth", "normvminpu", "normvmaxpu", "emergvminpu", "emergvmaxpu"}


class _Reader:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, str]]] = {c: {} for c in _PROPS}
        self.where: dict[tuple[str, str], str] = {}
        self.order: dict[str, list[str]] = {c: [] for c in _PROPS}
        self.circuit = "circuit"
        self.settings: dict[str, str] = {}
        self.last: tuple[str, str] | None = None

    # ---- file handling
    def read_file(self, path: str, stack: tuple[str, ...] = ()) -> None:
        path = os.path.abspath(path)
        if path in stack:
            raise DSSError(f"{stack[-1]}: Redirect loop into {path}")
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            where = stack[-1] if stack else path
            raise DSSError(f"{where}: cannot read {path}: {exc.strerror}") from None
        in_block = False
        for lineno, raw in enumerate(lines, 1):
            where = f"{path}:{lineno}"
            text = raw.strip()
            if in_block:
                if "*/" in text:
                    in_block = False
                continue
            if text.startswith("/*"):
                in_block = "*/" not in text
                continue
            text = _strip_comment(text)
            if not text:
                continue
            try:
                self.command(text, os.path.dirname(path), where, stack + (where,))
            except DSSError:
                raise
            except ValueError as exc:
                raise DSSError(f"{where}: {exc}") from None

    def command(self, text: str, base: str, where: str, stack: tuple[str, ...]) -> None:
        verb, _, rest = text.partition(" ")
        v = verb.lower()
        rest = rest.strip()
        if v == "clear":
            self.__init__()
        elif v in ("redirect", "compile"):
            target = rest.strip().strip("\"'")
            self.read_file(os.path.join(base, target), stack)
        elif v == "new":
            self.define(rest, base, where, new=True)
        elif v == "edit":
            self.define(rest, base, where, new=False)
        elif v in ("~", "more"):
            if self.last is None:
                raise ValueError("'~' (more) without a preceding New/Edit")
            self.props(self.last[0], self.last[1], rest, base, where)
        elif v == "set":
            for key, val in _tokens(rest):
                if key is None:
                    raise ValueError(f"Set needs option=value, got {val!r}")
                if key in _SET_USED:
                    self.settings[key] = val
                elif key in _SET_SCALING and not _SET_SCALING[key](_f({key: val}, key, 0.0)):
                    # OpenDSS multiplies the loads by these (Load.pas SetNominalLoad); not modelled
                    raise ValueError(f"Set {key}={val}: only {'1' if key == 'loadmult' else '0 or 1'} is "
                                     f"supported (it scales the loads in OpenDSS; scale kW instead)")
                elif key not in _SET_IGNORED:
                    raise ValueError(f"unsupported option 'Set {key}' (supported: "
                                     f"{', '.join(sorted(_SET_USED | _SET_IGNORED))})")
        elif v == "batchedit":
            target, _, props = rest.partition(" ")
            # <class>.<regex>: the regular expression is everything after the first dot ("Load..*"
            # is ".*"), searched anywhere in the name, case-insensitively (OpenDSS's TRegExpr:
            # "Load.c" edits every load whose name contains a c, "Load..c" those with one after a
            # character)
            cls, sep, pattern = target.partition(".")
            cls = cls.lower()
            if not sep or not pattern or cls not in self.objects:
                raise ValueError(f"unsupported BatchEdit target {target!r} (use <class>.<regex>, e.g. "
                                 f"Load..*, with class in {', '.join(sorted(self.objects))})")
            try:
                rx = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"BatchEdit pattern {pattern!r}: {exc}") from None
            for name in self.order[cls]:
                if rx.search(name):
                    self.props(cls, name, props, base, where)
        elif v in ("calcvoltagebases", "calcv", "buscoords", "solve"):
            pass
        else:
            raise ValueError(f"unsupported command {verb!r} (supported: Clear, New, Edit, ~, "
                             "Redirect, Compile, Set, BatchEdit, Calcvoltagebases, Buscoords, Solve)")

    def define(self, rest: str, base: str, where: str, new: bool) -> None:
        toks = _tokens(rest)
        if not toks or toks[0][0] not in (None, "object"):
            raise ValueError(f"expected <class>.<name> after {'New' if new else 'Edit'}")
        full = toks[0][1]
        cls, dot, name = full.partition(".")
        cls, name = cls.lower(), name.lower()
        if not dot or not name:
            raise ValueError(f"expected <class>.<name>, got {full!r}")
        if cls == "circuit":
            self.circuit = name
            cls, name = "vsource", "source"
            if new:
                self.objects["vsource"][name] = {"bus1": "sourcebus"}
                self.order["vsource"] = [name]
        if cls in _IGNORED_CLASSES:
            self.last = None
            return
        if cls not in self.objects:
            raise ValueError(f"unsupported element class {cls!r} in {full!r} (supported: "
                             f"{', '.join(sorted(set(self.objects) | {'circuit'}))}; "
                             f"ignored: {', '.join(sorted(_IGNORED_CLASSES))})")
        table = self.objects[cls]
        if new and full.lower().split(".")[0] != "circuit":
            if name in table:
                raise ValueError(f"{cls}.{name} is defined twice")
            table[name] = {}
            self.order[cls].append(name)
            self.where[(cls, name)] = where
        elif not new and name not in table:
            raise ValueError(f"Edit of undefined element {cls}.{name}")
        self.last = (cls, name)
        parts = rest.split(None, 1)
        self.props(cls, name, parts[1] if len(parts) > 1 else "", base, where)

    def props(self, cls: str, name: str, text: str, base: str, where: str) -> None:
        table = self.objects[cls][name]
        tokens = _tokens(text)
        if cls == "load":   # kW/kvar/PF/kVA act in the order given (Load.pas): one edit at a time
            try:
                table["_pq"] = _load_pq(table.get("_pq"), tokens)  # type: ignore[assignment]
            except ValueError as exc:
                raise ValueError(f"Load.{name}: {exc}") from None
        for key, val in tokens:
            if key is None:
                raise ValueError(f"{cls}.{name}: positional value {val!r} is not supported; "
                                 "write property=value")
            if key not in _PROPS[cls]:
                raise ValueError(f"{cls}.{name}: unsupported property {key!r} (supported: "
                                 f"{', '.join(sorted(_PROPS[cls]))})")
            if key == "like":   # copy every property of the other element as defined so far
                other = self.objects[cls].get(val.strip().lower())
                if other is None or other is table:
                    raise ValueError(f"{cls}.{name}: like={val!r} is not a defined {cls}")
                table.update({k: v for k, v in other.items() if k != "like"})
                continue
            if key in ("mult", "qmult") and val.strip().lower().startswith("file="):
                fname = val.strip()[5:].strip().strip("\"'")
                fpath = os.path.join(base, fname)
                try:
                    vals = np.loadtxt(fpath, dtype=np.float64, ndmin=2)[:, 0]
                except OSError:
                    raise ValueError(f"{cls}.{name}: {key} file {fpath} not found") from None
                except ValueError as exc:
                    raise ValueError(f"{cls}.{name}: {key} file {fpath}: {exc}") from None
                table[key] = vals  # type: ignore[assignment]
            else:
                table[key] = val
            if cls == "transformer" and key == "%r":   # %R sets both windings
                table["%rs"] = f"{val} {val}"
            if cls == "transformer" and key == "%loadloss":
                table["%rs"] = f"{float(val) / 2} {float(val) / 2}"
            self.where.setdefault((cls, name), where)


# --------------------------------------------------------------------------- builders
def _load_pq(state: dict | None, tokens: list[tuple[str | None, str]]) -> dict:
    """A Load's kW, kvar and PF after one New/Edit/~/BatchEdit, as OpenDSS Load.pas computes them:
    ``kW`` makes the spec kW+PF, ``kvar`` kW+kvar, ``kVA`` kVA+PF, ``PF`` only sets the PF; at the
    end of the edit RecalcElementData derives the rest (kW+kvar also sets the PF, so a later
    ``Edit kW=`` keeps the power factor, not the kvar). New loads start at kW 10, PF 0.88."""
    st = dict(state) if state else {"kw": 10.0, "kvar": 0.0, "pf": 0.88, "kva": 0.0, "spec": "kw_pf"}
    for key, val in tokens:
        if key in ("kw", "kvar", "kva"):
            st[key] = _f({key: val}, key, 0.0)
            st["spec"] = {"kw": "kw_pf", "kvar": "kw_kvar", "kva": "kva_pf"}[key]
            if key == "kvar":
                st["pf_set"] = False
        elif key == "pf":
            pf = _f({key: val}, key, 0.0)
            if not -1.0 <= pf <= 1.0 or pf == 0:
                raise ValueError(f"PF must be in [-1, 1] and not 0, got {pf:g}")
            st["pf"], st["pf_set"] = pf, True
    if st["spec"] == "kw_kvar":
        kva = math.hypot(st["kw"], st["kvar"])
        if kva > 0:
            st["pf"] = st["kw"] / kva * (math.copysign(1.0, st["kw"] * st["kvar"]) if st["kvar"] else 1.0)
        return st
    if st["spec"] == "kva_pf":
        st["kw"] = st["kva"] * abs(st["pf"])
    st["kvar"] = st["kw"] * math.sqrt(1.0 / st["pf"] ** 2 - 1.0) * (-1.0 if st["pf"] < 0 else 1.0)
    return st


def _f(props: dict, key: str, default: float) -> float:
    """``props[key]`` as a finite number (``default`` when absent)."""
    if key not in props:
        return default
    try:
        v = float(props[key])
    except (TypeError, ValueError):
        raise ValueError(f"{key}={props[key]!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{key}={props[key]!r} is not a finite number")
    return v


def _pos(props: dict, key: str, default: float) -> float:
    """:func:`_f`, which must be > 0 (a zero voltage, rating, length or short-circuit level)."""
    v = _f(props, key, default)
    if not v > 0:
        raise ValueError(f"{key} must be positive, got {v:g}")
    return v


def _phases(props: dict, key: str, default: int) -> int:
    v = _f(props, key, default)
    if v != int(v) or not 1 <= v <= 3:
        raise ValueError(f"{key} must be 1, 2 or 3, got {v:g}")
    return int(v)


def _seq_matrix(z1: complex, z0: complex, n: int) -> np.ndarray:
    """Phase-domain matrix of a transposed n-phase element from sequence values: Zs=(2Z1+Z0)/3,
    Zm=(Z0-Z1)/3 (OpenDSS LineCode / Vsource convention); one phase: Z1."""
    if n == 1:
        return np.array([[z1]])
    zs, zm = (2 * z1 + z0) / 3.0, (z0 - z1) / 3.0
    return np.full((n, n), zm) + np.eye(n) * (zs - zm)


def _impedance(p: dict, n: int, freq: float, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(Z per unit length [ohm], shunt B per unit length [S]) from a property dict, or None.

    Impedances must be given at the circuit's frequency: for another ``basefreq`` OpenDSS rescales X
    and applies its earth-return corrections (Rg, Xg; Line.pas), which are not modelled here."""
    if _f(p, "basefreq", freq) != freq:
        raise ValueError(f"{label}: basefreq={p['basefreq']} differs from the circuit's {freq:g} Hz "
                         "(impedances at another frequency are not supported)")
    w = 2 * math.pi * freq
    if "rmatrix" in p or "xmatrix" in p:
        r = _matrix(p.get("rmatrix", "0"), f"{label} rmatrix")
        x = _matrix(p.get("xmatrix", "0"), f"{label} xmatrix")
        if r.shape != x.shape or r.shape[0] != n:
            raise ValueError(f"{label}: rmatrix/xmatrix must be {n}x{n}")
        c = _matrix(p["cmatrix"], f"{label} cmatrix") if "cmatrix" in p else np.zeros((n, n))
        return r + 1j * x, w * c * 1e-9
    keys = ("r1", "x1", "r0", "x0", "c1", "c0", "b1", "b0")
    if not any(k in p for k in keys):
        return None
    need = ("r1", "x1") if n == 1 else ("r1", "x1", "r0", "x0")
    missing = [k.upper() for k in need if k not in p]
    if "c1" not in p and "b1" not in p:
        missing.append("C1 (or B1)")
    if n > 1 and "c0" not in p and "b0" not in p:
        missing.append("C0 (or B0)")
    if missing:
        raise ValueError(f"{label}: give {', '.join(missing)} explicitly (OpenDSS defaults are per "
                         "kft and not applied here)")
    r1, x1 = _f(p, "r1", 0.0), _f(p, "x1", 0.0)
    r0, x0 = _f(p, "r0", r1), _f(p, "x0", x1)
    c1 = _f(p, "c1", 0.0) if "c1" in p else _f(p, "b1", 0.0) / (w * 1e-3)   # nF; B in uS
    c0 = (_f(p, "c0", 0.0) if "c0" in p else _f(p, "b0", 0.0) / (w * 1e-3)) if n > 1 else c1
    z = _seq_matrix(complex(r1, x1), complex(r0, x0), n)
    b = _seq_matrix(complex(w * c1 * 1e-9), complex(w * c0 * 1e-9), n).real
    return z, b


def _unit(p: dict, label: str) -> float | None:
    u = p.get("units", "none").lower()
    if u not in _LEN_M:
        raise ValueError(f"{label}: unsupported units {u!r} (supported: {', '.join(_LEN_M)})")
    return _LEN_M[u]


def _build(r: _Reader, path: str) -> Feeder:
    freq = float(r.settings.get("defaultbasefrequency", 60.0))
    fd = Feeder(name=r.circuit, base_freq=freq, path=path)
    labels = {"vsource": "Vsource", "line": "Line", "transformer": "Transformer", "load": "Load"}
    fd.where = {f"{labels[cls]}.{name}": w for (cls, name), w in r.where.items() if cls in labels}
    if "voltagebases" in r.settings:
        fd.voltagebases = _numbers(r.settings["voltagebases"])

    def ctx(cls: str, name: str) -> str:
        return r.where.get((cls, name), path)

    def fail(cls: str, name: str, label: str, exc: ValueError) -> DSSError:
        msg = str(exc)
        return DSSError(f"{ctx(cls, name)}: {msg if msg.startswith(label + ':') else f'{label}: {msg}'}")

    # Vsource
    vs = r.objects["vsource"]
    if len(vs) != 1:
        raise DSSError(f"{path}: exactly one Vsource (New Circuit) is supported, found {len(vs)}")
    name, p = next(iter(vs.items()))
    try:
        nph = _phases(p, "phases", 3)
        if nph != 3:
            raise ValueError("Vsource: only phases=3 is supported")
        bus, nodes = parse_bus(p.get("bus1", "sourcebus"), 3)
        # OpenDSS's Vsource defaults (Vsource.pas): basekv 115, MVAsc3 2000 and MVAsc1 2100 with X1/R1 4 and
        # X0/R0 3, i.e. Z1 = 1.6038 + j6.4151 and Z0 = 1.7899 + j5.3699 ohm
        kv, pu = _pos(p, "basekv", 115.0), _pos(p, "pu", 1.0)
        x1r1, x0r0 = _pos(p, "x1r1", 4.0), _f(p, "x0r0", 3.0)
        if "z1" in p or "r1" in p or "x1" in p:
            z1v = _numbers(p["z1"]) if "z1" in p else [_f(p, "r1", 1.6038), _f(p, "x1", 6.4151)]
            z0v = _numbers(p["z0"]) if "z0" in p else [_f(p, "r0", 1.7899), _f(p, "x0", 5.3699)]
            z1, z0 = complex(*z1v), complex(*z0v)
        else:
            # VSource.pas: MVAsc3 = sqrt3*kV*Isc3/1000, MVAsc1 = sqrt3*kV*Isc1/1000,
            # |Z1| = kV^2/MVAsc3 at X1/R1; R0 from |2Z1+Z0| = 3*Vln/Isc1 at X0/R0
            mva3 = _pos(p, "mvasc3", _SQRT3 * kv * _pos(p, "isc3", 10000.0) / 1000.0)
            mva1 = _pos(p, "mvasc1", _SQRT3 * kv * _pos(p, "isc1", 10500.0) / 1000.0)
            x1 = kv ** 2 / mva3 / math.sqrt(1.0 + 1.0 / x1r1 ** 2)
            r1 = x1 / x1r1
            isc1 = mva1 * 1000.0 / (_SQRT3 * kv)
            a = 1.0 + x0r0 ** 2
            b = 4.0 * (r1 + x1 * x0r0)
            c = 4.0 * (r1 ** 2 + x1 ** 2) - (3.0 * kv * 1000.0 / _SQRT3 / isc1) ** 2
            if b * b - 4 * a * c < 0 or (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a) < 0:
                raise ValueError("the single-phase short-circuit level (ISC1/MVAsc1) is too high for "
                                 "the three-phase one (a negative R0 would follow)")
            r0 = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
            z1, z0 = complex(r1, x1), complex(r0, r0 * x0r0)
        # impedances are at the source's basefreq, solved at the circuit's (VSource.pas)
        base = _pos(p, "basefreq", freq)
        if _f(p, "frequency", freq) != freq:
            raise ValueError(f"frequency={p['frequency']} differs from the circuit's {freq:g} Hz "
                             "(only fundamental-frequency power flow is supported)")
        z1, z0 = complex(z1.real, z1.imag * freq / base), complex(z0.real, z0.imag * freq / base)
        fd.source = Source(bus, nodes, kv, pu, _f(p, "angle", 0.0), z1, z0)
    except ValueError as exc:
        raise fail("vsource", name, f"Vsource.{name}", exc) from None

    # line codes
    codes: dict[str, tuple[int, tuple[np.ndarray, np.ndarray], float | None, float]] = {}
    for name, p in r.objects["linecode"].items():
        label = f"LineCode.{name}"
        try:
            n = _phases(p, "nphases", 3)
            zb = _impedance(p, n, freq, label)
            if zb is None:
                raise ValueError(f"{label}: no impedance given (R1/X1/R0/X0 or Rmatrix/Xmatrix)")
            codes[name] = (n, zb, _unit(p, label), _pos(p, "normamps", 400.0))
        except ValueError as exc:
            raise fail("linecode", name, label, exc) from None

    for name, p in r.objects["line"].items():
        label = f"Line.{name}"
        try:
            if "linecode" in p:
                code = p["linecode"].lower()
                if code not in codes:
                    raise ValueError(f"{label}: unknown linecode {p['linecode']!r}")
                n, (z, b), cunit, amps = codes[code]
            else:
                n, cunit, amps = _phases(p, "phases", 3), _unit(p, label), 400.0
                zb = _impedance(p, n, freq, label)
                if zb is None:
                    raise ValueError(f"{label}: give a linecode or its impedances (R1 X1 R0 X0 C1 C0 "
                                     "or Rmatrix Xmatrix Cmatrix)")
                z, b = zb
            own = _impedance(p, n, freq, label) if "linecode" in p else None
            if own is not None:
                z, b = own
                cunit = _unit(p, label) if "units" in p else cunit
            n_line = _phases(p, "phases", n)
            if n_line != n:
                raise ValueError(f"{label}: phases={n_line} differs from its linecode ({n})")
            length = _pos(p, "length", 1.0)
            lunit = _unit(p, label)
            if cunit is None or lunit is None or "linecode" not in p:
                scale = length  # same (or no) unit: impedance per unit of 'length'
            else:
                scale = length * lunit / cunit
            b1, n1 = parse_bus(p["bus1"], n) if "bus1" in p else (None, ())
            b2, n2 = parse_bus(p["bus2"], n) if "bus2" in p else (None, ())
            if b1 is None or b2 is None:
                raise ValueError(f"{label}: bus1 and bus2 are required")
            if len(n1) != n or len(n2) != n or 0 in n1 or 0 in n2:
                raise ValueError(f"{label}: buses must name {n} non-ground phase nodes")
            enabled = _bool(p.get("enabled", "yes"))
            if np.linalg.matrix_rank(z * scale) < n:
                raise ValueError(f"{label}: its impedance matrix is singular (zero impedance; switches "
                                 "and jumpers are not supported)")
            fd.lines.append(Line(name, b1, n1, b2, n2, z * scale, b * scale,
                                 _pos(p, "normamps", amps), enabled))
        except ValueError as exc:
            raise fail("line", name, label, exc) from None

    for name, p in r.objects["transformer"].items():
        label = f"Transformer.{name}"
        try:
            if int(_f(p, "windings", 2)) != 2:
                raise ValueError(f"{label}: only windings=2 is supported")
            nph = _phases(p, "phases", 3)
            if nph != 3:
                raise ValueError(f"{label}: only phases=3 is supported")
            for key in ("%noloadloss", "%imag"):
                if float(p.get(key, 0.0)) != 0.0:
                    raise ValueError(f"{label}: {key} other than 0 is not supported")
            buses = [t for t in re.split(r"[\s,]+", p.get("buses", "").strip()) if t]
            if len(buses) != 2:
                raise ValueError(f"{label}: buses=[HV LV] (two buses) is required")
            (hb, hn), (lb, ln) = parse_bus(buses[0], 3), parse_bus(buses[1], 3)
            if any(n[:3] != (1, 2, 3) or any(k != 0 for k in n[3:]) for n in (hn, ln)):
                # a winding's neutral on node 4 floats in OpenDSS unless grounded elsewhere; here
                # every neutral is earthed, so only 1.2.3 (neutral earthed, or .0) is accepted
                raise ValueError(f"{label}: only buses on nodes 1.2.3 (or 1.2.3.0) are supported, got "
                                 f"{buses[0]!r}, {buses[1]!r} (a separate neutral node is not modelled)")
            conns = [c.lower() for c in re.split(r"[\s,]+", p.get("conns", "wye wye").strip()) if c]
            conns = ["delta" if c.startswith("d") else "wye" if c.startswith(("w", "y")) else c
                     for c in conns]
            if len(conns) != 2 or any(c not in ("wye", "delta") for c in conns):
                raise ValueError(f"{label}: conns must be two of wye/delta, got {p.get('conns')!r}")
            kvs = _numbers(p.get("kvs", "12.47 12.47"))
            kvas = _numbers(p.get("kvas", "1000 1000"))
            taps = _numbers(p.get("taps", "1 1"))
            rs = _numbers(p.get("%rs", "0.2 0.2"))
            if len(kvs) != 2 or len(kvas) != 2 or len(taps) != 2 or len(rs) != 2:
                raise ValueError(f"{label}: kVs, kVAs, taps and %Rs need two values")
            if kvas[0] != kvas[1]:
                raise ValueError(f"{label}: different winding kVAs are not supported")
            if min(kvs + kvas + taps) <= 0:
                raise ValueError(f"{label}: kVs, kVAs and taps must be positive")
            if rs[0] + rs[1] == 0 and _f(p, "xhl", 7.0) == 0:
                raise ValueError(f"{label}: zero impedance (%R and XHL both 0) is not supported")
            leadlag = p.get("leadlag", "lag").lower()
            if leadlag not in ("lag", "ansi", "lead", "euro"):
                raise ValueError(f"{label}: LeadLag must be Lag/ANSI/Lead/Euro, got {leadlag!r}")
            fd.transformers.append(Transformer(
                name, (hb, lb), ((1, 2, 3), (1, 2, 3)), (conns[0], conns[1]), (kvs[0], kvs[1]),
                kvas[0], (taps[0], taps[1]), (rs[0] + rs[1]) / 100.0, _f(p, "xhl", 7.0) / 100.0,
                leadlag in ("lead", "euro"), _f(p, "ppm_antifloat", 1.0),
                enabled=_bool(p.get("enabled", "yes"))))
        except ValueError as exc:
            raise fail("transformer", name, label, exc) from None

    for name, p in r.objects["loadshape"].items():
        label = f"LoadShape.{name}"
        try:
            if "mult" not in p:
                raise ValueError(f"{label}: mult is required")
            mult = p["mult"] if isinstance(p["mult"], np.ndarray) else np.array(_numbers(p["mult"]))
            qm = p.get("qmult")
            qmult = None if qm is None else (qm if isinstance(qm, np.ndarray) else np.array(_numbers(qm)))
            npts = int(_f(p, "npts", len(mult)))
            if npts < 1 or not len(mult):
                raise ValueError(f"{label}: npts and mult need at least one point")
            if npts > len(mult):
                raise ValueError(f"{label}: npts={npts} but only {len(mult)} multipliers")
            if "sinterval" in p:
                ih = _f(p, "sinterval", 0.0) / 3600.0
            elif "minterval" in p:
                ih = _f(p, "minterval", 0.0) / 60.0
            else:
                ih = _f(p, "interval", 1.0)
            if ih <= 0:
                raise ValueError(f"{label}: variable-interval shapes (interval=0) are not supported")
            fd.loadshapes[name] = LoadShape(name, mult[:npts], None if qmult is None else qmult[:npts],
                                            ih, _bool(p.get("useactual", "no")))
        except ValueError as exc:
            raise fail("loadshape", name, label, exc) from None

    for name, p in r.objects["load"].items():
        label = f"Load.{name}"
        try:
            nph = _phases(p, "phases", 3)
            if "bus1" not in p:
                raise ValueError(f"{label}: bus1 is required")
            bus, nodes = parse_bus(p["bus1"], nph)
            if any(k != 0 for k in nodes[nph:]):
                raise ValueError(f"{label}: bus1 {p['bus1']!r}: its neutral must be node 0 or left out "
                                 "(a separate neutral node is not modelled: every neutral is earthed)")
            nodes = nodes[:nph]
            if len(nodes) != nph or len(set(nodes)) != nph or 0 in nodes:
                raise ValueError(f"{label}: bus1 {p['bus1']!r} must name {nph} distinct phase nodes")
            if int(_f(p, "model", 1)) != 1:
                raise ValueError(f"{label}: only model=1 (constant P and Q) is supported")
            if p.get("conn", "wye").lower() not in ("wye", "y", "ln"):
                raise ValueError(f"{label}: only conn=wye is supported")
            pq = p.get("_pq") or _load_pq(None, [])
            kw, kvar = pq["kw"], pq["kvar"]
            pfs = {"pf": pq["pf"], "pf_specified": bool(pq.get("pf_set"))}
            shapes = {}
            for key in ("yearly", "daily", "duty"):
                if key in p:
                    s = p[key].lower()
                    if s not in fd.loadshapes:
                        raise ValueError(f"{label}: {key}={p[key]!r} is not a defined LoadShape")
                    shapes[key] = s
            # Load.pas: "Yearly: defaults to no variation or Daily when Daily is defined"
            if "yearly" not in shapes and "daily" in shapes:
                shapes["yearly"] = shapes["daily"]
            status = p.get("status", "variable").strip().lower()
            if not status or not any(word.startswith(status) for word in ("variable", "fixed", "exempt")):
                raise ValueError(f"{label}: status must be Variable, Fixed or Exempt, got {p['status']!r}")
            # OpenDSS's Load defaults (Load.pas): kV 12.47, Vminpu 0.95, Vmaxpu 1.05, VLowpu 0.50
            fd.loads.append(Load(name, bus, nodes, _pos(p, "kv", 12.47), kw, kvar,
                                 _f(p, "vminpu", 0.95), _f(p, "vmaxpu", 1.05), _f(p, "vlowpu", 0.5),
                                 enabled=_bool(p.get("enabled", "yes")), fixed=status.startswith("f"),
                                 **pfs, **shapes))
        except ValueError as exc:
            raise fail("load", name, label, exc) from None
    tr = delta_lv_feeding(fd, {ld.bus for ld in fd.loads})  # a delta secondary feeding loads (DELTA_LV)
    if tr is not None:
        raise fail("transformer", tr.name, f"Transformer.{tr.name}", ValueError(DELTA_LV))
    return fd


def read_dss(path: str) -> Feeder:
    """Read an OpenDSS master file into a :class:`Feeder` (raises :class:`DSSError`)."""
    if not os.path.isfile(path):
        raise DSSError(f"{path}: OpenDSS file not found")
    r = _Reader()
    r.read_file(path)
    return _build(r, os.path.abspath(path))
