"""A results file whose writer was killed: tell it from a live one, and repair it (``cosim inspect --repair``).

A run writes its file in SWMR mode; HDF5 marks the superblock "open for write" until the file is
closed. A writer killed with SIGKILL never clears the mark, so a plain ``h5py.File(p, "r")`` then fails
with "file is already open for write" (SWMR readers and ``cosim`` commands still read it). The repair
copies every group, dataset and attribute into a new file with h5py and replaces the old one
atomically, with ``status: failed``; this is what ``h5clear -s`` (Debian package hdf5-tools) does to
the flag, without needing the tool. A file whose writer is still running is never touched.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import h5py

from cosim.errors import InputError
from cosim.h5open import H5_ERRORS, open_results, reason, superblock

KILLED = "the run stopped without closing the file (writer killed); repaired by cosim inspect --repair"


def writer_state(attrs) -> str:
    """'closed', 'alive' (pid N runs on this host), 'gone' (it does not), or 'unknown' (another host)."""
    if str(attrs.get("status", "")) != "running":
        return "closed"
    pid, host = attrs.get("pid"), str(attrs.get("host", ""))
    if pid is None or host != socket.gethostname():
        return "unknown"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


def unclosed_note(path: str | Path, attrs) -> str | None:
    """One line for ``cosim inspect`` about a file no run has closed (None for a closed file)."""
    state = writer_state(attrs)
    if state == "closed" or not superblock(Path(path)).open_for_write:
        return None
    who = f"pid {attrs.get('pid', '?')} on {attrs.get('host', '?')}"
    if state == "alive":
        return f"note: a run ({who}) is writing this file; rows appear as it flushes"
    if state == "gone":
        return (f"note: no run closed this file: its writer ({who}) was killed; the rows shown are those it "
                f"flushed; `cosim inspect --repair {path}` closes it with status failed")
    return (f"note: no run closed this file: a run ({who}) is writing it, or was killed; then "
            f"`h5clear -s {path}` (Debian package hdf5-tools) clears HDF5's open-for-write flag")


def repair_copy(path: Path) -> Path:
    """Where :func:`write_closed_copy` writes the copy of *path* (then moved over it)."""
    return path.with_name(path.name + ".repair")


def write_closed_copy(src: h5py.File, path: Path, status: str | None = None, error: str = "") -> int:
    """Copy every group, dataset and attribute of *src*, the open results file at *path*, into a closed
    file at :func:`repair_copy` (stamped with *status*, *error* and its rows as ``steps`` when *status* is
    given); return its rows. A copy that cannot be written (no space) is removed: InputError."""
    tmp = repair_copy(path)
    rows = src["time"].shape[0] if "time" in src else 0
    try:
        with h5py.File(tmp, "w", libver="latest") as dst:
            for name in src:
                src.copy(src[name], dst, name=name)
            dst.attrs.update(dict(src.attrs))
            if status is not None:
                dst.attrs.update(status=status, error=error, steps=rows)
    except H5_ERRORS as exc:  # e.g. no space for the copy: the file stays as it was
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: not repaired: writing its copy {tmp.name} failed ({reason(exc)})") from None
    return rows


def repair(path: str | Path) -> str:
    """Rewrite a killed writer's file as a closed one with ``status: failed``; return one line."""
    p = Path(path)
    with open_results(p) as src:
        attrs = dict(src.attrs)
        state = writer_state(attrs)
        if state == "alive":
            raise InputError(f"{p}: still being written by pid {attrs.get('pid')}; not repaired")
        if state == "unknown":
            raise InputError(f"{p}: written on {attrs.get('host', 'an unknown host')}, so whether its writer "
                             "still runs cannot be told here; not repaired (h5clear -s FILE clears the flag)")
        if state == "closed" and not superblock(p).open_for_write:
            return f"{p}: closed by its run (status {attrs.get('status')}); nothing to repair"
        status, error = (None, "") if state == "closed" else ("failed", KILLED)  # closed: only its flag
        rows = write_closed_copy(src, p, status, error)
    os.replace(repair_copy(p), p)
    return f"{p}: repaired: {rows} rows kept, status failed (its writer was killed)"
