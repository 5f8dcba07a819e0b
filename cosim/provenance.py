"""Provenance of a run: what produced a results file, so it can be reproduced."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("lvflex-cosim", "mosaik", "mosaik-api-v3", "pandapower", "pymodbus", "numpy", "scipy", "h5py",
            "simpy", "pydantic")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """Commit of the project checkout (with '+dirty' if modified), or '' outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(scenario_yaml: str, seed: int) -> dict[str, str | int]:
    return {
        "scenario": scenario_yaml,
        "seed": seed,
        "versions": json.dumps(package_versions()),
        "git_commit": git_commit(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),  # with host: tells a live writer from a killed one (cosim inspect)
        "command": " ".join(sys.argv),
    }
