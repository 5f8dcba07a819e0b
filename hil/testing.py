"""Helpers for tests, benchmarks and lab scripts: emulators hosted in a background thread,
a throw-away TLS certificate for 127.0.0.1 and a linked pseudo-terminal pair for serial RTU."""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path
from typing import Any, Callable

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

    def start(self, kind: str, port: int = 0, setup: Callable[[Emulator], None] | None = None,
              **kwargs: Any) -> Emulator:
        """Start an emulator; ``setup(emulator)`` runs before it serves (e.g. to set its registers)."""
        async def _start():
            emu = Emulator(kind, port=port, **kwargs)
            if setup is not None:
                setup(emu)
            return await emu.start()

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
    """Self-signed certificate + key (PEM, EC P-256, valid 2 days) for IP 127.0.0.1 and localhost,
    made with the ``cryptography`` package (test extra); returns (cert path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    d = Path(directory)
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SerialPair:
    """Two linked pseudo-terminals, like ``socat PTY,raw PTY,raw``: bytes written to one end's
    device (``.a`` / ``.b``, e.g. ``/dev/pts/5``) come out of the other's. A thread copies between
    the two pty masters; use as a context manager. For serial RTU tests without hardware."""

    def __init__(self):
        self._fds: list[int] = []
        masters, names = [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fds += [master, slave]  # the slave stays open: no EIO on the master meanwhile
            masters.append(master)
            names.append(os.ttyname(slave))
        self.a, self.b = names
        self._masters = masters
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._copy, name="serial-pair", daemon=True)

    def _copy(self) -> None:
        m1, m2 = self._masters
        other = {m1: m2, m2: m1}
        while True:
            ready, _, _ = select.select([m1, m2, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(other[fd], data)

    def __enter__(self) -> SerialPair:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        for fd in [*self._fds, self._stop_r, self._stop_w]:
            os.close(fd)
