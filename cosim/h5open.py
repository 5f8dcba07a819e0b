"""Open a results file for reading, refusing a damaged one at once (one line, never a hang).

Results files are written in SWMR mode so they can be read while a run goes on. Opening *every* file as
a SWMR reader, as the readers used to, skips HDF5's end-of-file check: a truncated copy then made
``cosim inspect`` retry its metadata reads for more than 600 s (issue 15). So a file is opened plainly
first (HDF5 then refuses a truncated or damaged file in milliseconds) and only a file whose superblock
says it is open for writing (a run still writing it, or a writer that was killed) is opened as a SWMR
reader, after the end-of-file check HDF5 would skip has been done here.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py

from cosim.errors import InputError

# HDF5 File Format Specification 3.0, section II.A "Superblock": the signature is at 0, 512, 1024, ...
SIGNATURE = b"\x89HDF\r\n\x1a\n"
OPEN_FOR_WRITE = "already open for write"  # HDF5's message when the superblock's write flags are set


@dataclass(frozen=True)
class Superblock:
    base: int
    eof: int  # end-of-file address, relative to base
    open_for_write: bool  # consistency flags: bit 0 open for write, bit 2 SWMR writer


def superblock(path: Path) -> Superblock:
    """The facts of a version 2/3 superblock (libver="latest"); all zero for older layouts or no HDF5.

    Layout (spec II.A, versions 2 and 3): signature (8), version (1), size of offsets (1), size of
    lengths (1), consistency flags (1), base address, extension address, end-of-file address, root
    group address (size-of-offsets bytes each, little-endian), checksum (4)."""
    with open(path, "rb") as fh:
        offset, size = 0, path.stat().st_size
        while offset + 48 <= size:
            fh.seek(offset)
            head = fh.read(12)
            if head[:8] == SIGNATURE:
                fmt = {4: "<I", 8: "<Q"}.get(head[9])
                if head[8] < 2 or fmt is None:
                    break
                n = head[9]
                fields = fh.read(3 * n)
                base, eof = struct.unpack(fmt, fields[:n])[0], struct.unpack(fmt, fields[2 * n:3 * n])[0]
                return Superblock(base, eof, bool(head[11] & 0b101))
            offset = 512 if offset == 0 else offset * 2
    return Superblock(0, 0, False)


def _check_length(path: Path, settle_s: float = 0.5) -> None:
    """Refuse a file shorter than its superblock says (a live writer may need a moment to catch up)."""
    deadline = time.monotonic() + settle_s
    while True:
        sb, size = superblock(path), path.stat().st_size
        if size >= sb.base + sb.eof:
            return
        if time.monotonic() >= deadline:
            raise InputError(f"{path}: truncated results file ({size} of {sb.base + sb.eof} bytes)")
        time.sleep(0.05)


def open_results(path: str | Path) -> h5py.File:
    """The results file at *path*, open for reading; :class:`InputError` (one line) if it cannot be read."""
    p = Path(path)
    try:
        if not p.exists():
            raise InputError(f"{path}: no such file")
        if not p.is_file():
            raise InputError(f"{path}: not a file")
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise InputError(f"{str(path)[:80]}...: {exc.strerror}") from None
    try:
        if not h5py.is_hdf5(str(p)):
            raise InputError(f"{path}: not an HDF5 results file")
        return _checked(h5py.File(p, "r", libver="latest"))
    except H5_ERRORS as exc:
        # a writer has it open (HDF5 says so, or the superblock's write flags do: while a live writer
        # extends the file, HDF5 may first see it shorter than its stored end and call it truncated)
        if OPEN_FOR_WRITE not in str(exc) and not superblock(p).open_for_write:
            raise InputError(f"{path}: damaged or truncated results file ({reason(exc)})") from None
    _check_length(p)
    try:  # without HDF5's file lock: a reader held open (a notebook) must not stop the writer's final stamp
        return _checked(h5py.File(p, "r", libver="latest", swmr=True, locking=False))
    except H5_ERRORS as exc:
        raise InputError(f"{path}: damaged results file ({reason(exc)})") from None


# what h5py raises for unreadable metadata or data (checksums, decoding, truncation)
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def _read_attrs(name, obj) -> None:
    for key in obj.attrs:
        obj.attrs[key]


def _walk(f: h5py.File) -> None:
    _read_attrs("/", f)
    f.visititems(_read_attrs)


PROBE_TIMEOUT_S = 10.0
# the walk runs in a forked child only inside the command line's commands (cosim.cli.main, see probing): they
# promise one line for a damaged file; elsewhere (the Python API, sweep and substation workers, tests) it
# would cost 25-35 ms per open and fork processes that may have busy threads
_PROBE = False


@contextmanager
def probing():
    """Within this block, :func:`open_results` walks a file's metadata in a forked child first."""
    global _PROBE
    before, _PROBE = _PROBE, True
    try:
        yield
    finally:
        _PROBE = before


def _crash_in_walk(f: h5py.File) -> str | None:
    """The signal that ended :func:`_walk` of *f* in a forked child, or None (it finished, or not within
    :func:`probing`, or fork is not available, or it did not finish within PROBE_TIMEOUT_S: the walk is then
    left to this process).

    Some damaged metadata crashes HDF5 itself (a version-2 B-tree header overwritten with 0xff: SIGSEGV in
    H5Ovisit), which no Python code can catch; the child dies instead of the command."""
    if not _PROBE or not hasattr(os, "fork"):
        return None
    pid = os.fork()
    if pid == 0:  # the child: walk the parent's open file (read-only, its own copy of HDF5's caches)
        code = 1
        try:
            _walk(f)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.002)


def _checked(f: h5py.File) -> h5py.File:
    """*f* after reading every object header and attribute once (damaged metadata fails here, fast)."""
    try:
        if (crash := _crash_in_walk(f)) is not None:
            raise OSError(f"HDF5 crashed reading its objects: {crash}")
        _walk(f)
    except BaseException:
        f.close()
        raise
    return f


def reason(exc: BaseException) -> str:
    """HDF5's own words from an h5py error, on one line: 'Unable to ... (truncated file: ...)' -> 'truncated
    file: ...'; a failed system call -> 'file write failed: No space left on device'."""
    text = str(exc).strip("'\"")
    text = text[text.find("(") + 1:text.rfind(")")] if "(" in text else text
    if (m := re.search(r"error message = '([^']*)'", text)) is not None:
        text = f"{text.split(':', 1)[0]}: {m.group(1)}"
    return " ".join(text.split())


def raised_in_h5py(exc: BaseException) -> str | None:
    """The file an error raised inside h5py was reading ('?' if unknown); None if h5py did not raise it.

    Raw data (compressed chunks) is only read when used; a chunk damaged on disk then fails deep in
    an analysis, and the command line turns that into one line instead of a traceback."""
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    in_h5py = [f for f in frames if str(f.f_globals.get("__name__", "")).startswith("h5py")]
    if not isinstance(exc, H5_ERRORS) or not frames or frames[-1] not in in_h5py:
        return None
    names = (_filename(f.f_locals.get("self")) for f in reversed(in_h5py))
    return next((n for n in names if n), "?")


def _filename(obj) -> str | None:
    """The file name of an h5py object (Dataset, Group, AttributeManager, ...), None for anything else."""
    try:
        return h5py.h5f.get_name(getattr(obj, "id", None) or obj._id).decode()
    except Exception:  # noqa: BLE001 - not an h5py object
        return None
