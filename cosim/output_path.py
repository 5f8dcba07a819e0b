"""Check where a run will write its results before anything is started (one line, exit 2, if it can't).

Rule for an existing file: a cosim results file (HDF5 with the run's recorded scenario) is replaced, as
re-running a scenario is meant to; anything else, including a damaged file, is never overwritten.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cosim.errors import InputError
from cosim.h5open import open_results

# Linux limits (limits.h): NAME_MAX 255 bytes per path component, PATH_MAX 4096 bytes per path
NAME_MAX, PATH_MAX = 255, 4096


def check_length(text: str, where: str) -> None:
    """Refuse a path longer than the operating system accepts (names in bytes, UTF-8)."""
    if len(os.fsencode(text)) >= PATH_MAX:
        raise InputError(f"{where}: path of {len(os.fsencode(text))} bytes, longer than the {PATH_MAX - 1} "
                         "the system accepts")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(f"{where}: file or directory name of {len(os.fsencode(part))} bytes, longer "
                             f"than the {NAME_MAX} the system accepts ({part[:20]}...)")


def _is_results_file(path: Path) -> bool:
    """Whether *path* is a cosim results file; InputError if a run on this host is writing it (replacing it
    would end that run at its next write, its rows lost)."""
    from cosim.h5repair import writer_state

    try:
        with open_results(path) as f:
            attrs = dict(f.attrs)
    except InputError:
        return False
    if "scenario" in attrs and writer_state(attrs) == "alive" and str(attrs.get("pid")) != str(os.getpid()):
        raise InputError(f"{path}: a run (pid {attrs.get('pid')}) is writing it; refusing to replace it "
                         "(wait for that run or choose another output)")
    return "scenario" in attrs


def check_output(path: Path, replaceable=_is_results_file, kind: str = "a cosim results file",
                 example: str = "run.h5") -> None:
    """Raise :class:`InputError` unless a file can be written at *path* (directories are made): an existing
    file is replaced only if *replaceable* says it is *kind* (a results file; a report: an HTML file)."""
    check_length(str(path), str(path))
    if path.is_dir():
        raise InputError(f"{path}: is a directory; the output must name a file, e.g. {path / example}")
    if path.exists():
        if not path.is_file() or not replaceable(path):
            raise InputError(f"{path}: exists and is not {kind}; refusing to overwrite it "
                             "(remove it or choose another output)")
        if not os.access(path, os.W_OK):
            raise InputError(f"{path}: exists and is not writable")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb"):  # a probe: some file systems (/proc, read-only mounts) refuse new files
            pass
        path.unlink()
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise InputError(f"{path}: cannot write the file there ({reason})") from None
