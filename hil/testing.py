"""Helpers for tests, benchmarks and lab scripts: emulators hosted in a background thread,
and a throw-away TLS certificate for 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .aio import BackgroundLoop
from .emulator import Emulator


class ThreadedEmulators:
    """Emulators running in one background asyncio loop, driven from synchronous code::

        with ThreadedEmulators() as lab:
            emu = lab.start("sdm630", seed=1)     # port picked freely on 127.0.0.1
            ...
            lab.stop(emu); lab.start("sdm630", port=emu.port)   # device returns on the same port
    """

    def __init__(self):
        self.loop = BackgroundLoop("hil-emulators").start()
        self.emulators: list[Emulator] = []

    def start(self, kind: str, port: int = 0, **kwargs: Any) -> Emulator:
        async def _start():
            return await Emulator(kind, port=port, **kwargs).start()

        emu = self.loop.run(_start(), timeout=10)
        self.emulators.append(emu)
        return emu

    def stop(self, emu: Emulator) -> None:
        self.loop.run(emu.stop(), timeout=10)
        if emu in self.emulators:
            self.emulators.remove(emu)

    def close(self) -> None:
        for emu in list(self.emulators):
            try:
                self.stop(emu)
            except Exception:  # noqa: BLE001
                pass
        self.loop.stop()

    def __enter__(self) -> ThreadedEmulators:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_test_certificate(directory: str | Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """Self-signed certificate + key (PEM) valid for IP 127.0.0.1 and localhost, via the
    ``openssl`` CLI. Raises RuntimeError if openssl is missing."""
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl not found")
    d = Path(directory)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={cn}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
