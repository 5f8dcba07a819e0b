"""The meter adapter reads an emulated meter over every transport it offers: Modbus/TCP,
RTU over TCP, Modbus/TCP over TLS (a certificate generated here) and serial RTU (over a linked
pseudo-terminal pair)."""

import ssl
import time

import pytest

from hil.meter_adapter import MeterPoller
from hil.testing import SerialPair, ThreadedEmulators, make_test_certificate
from tests.conftest import wait_until


@pytest.fixture
def lab():
    with ThreadedEmulators() as lab:
        yield lab


def _read_once(dev: dict, emu) -> dict:
    """Poll until a good sample arrives; the emulator holds still (tick 60 s) so values match."""
    poller = MeterPoller([dict(id="m", interval=0.2, timeout=1.0, **dev)]).start()
    try:
        wait_until(lambda: poller.snapshot()["m"]["quality"] == 0, 8)
        snap = poller.snapshot()["m"]
    finally:
        poller.stop()
    assert snap["P"] == pytest.approx(emu.server.get_attr("dev", "P"))
    assert snap["E_imp"] == pytest.approx(emu.server.get_attr("dev", "E_imp"))
    return snap


def test_tcp(lab):
    emu = lab.start("sdm630", seed=11, tick=60.0)
    _read_once(dict(port=emu.port, unit=1), emu)


def test_rtu_over_tcp(lab):
    emu = lab.start("sdm630", seed=12, unit=7, tick=60.0, framer="rtu")
    _read_once(dict(port=emu.port, unit=7, transport="rtu-tcp"), emu)
    # a Modbus/TCP client gets no answer from an RTU-framed device
    poller = MeterPoller([dict(id="m", port=emu.port, unit=7, interval=0.2, timeout=0.3)]).start()
    try:
        time.sleep(1.0)
        assert poller.snapshot()["m"]["quality"] != 0
    finally:
        poller.stop()


def test_tls(lab, tmp_path):
    cert, key = make_test_certificate(tmp_path)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    emu = lab.start("sdm630", seed=13, tick=60.0, sslctx=sctx)
    _read_once(dict(port=emu.port, transport="tls", cafile=str(cert)), emu)


def test_tls_refuses_an_unknown_certificate(lab, tmp_path):
    cert, key = make_test_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = make_test_certificate(tmp_path / "other", cn="someone-else")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    emu = lab.start("sdm630", seed=14, tick=60.0, sslctx=sctx)
    poller = MeterPoller([dict(id="m", port=emu.port, transport="tls", cafile=str(other),
                               interval=0.2, timeout=0.5)]).start()
    try:
        time.sleep(1.0)
        snap = poller.snapshot()["m"]
        assert snap["quality"] == 1 and "P" not in snap
    finally:
        poller.stop()


def test_serial_rtu_over_a_pty_pair(lab):
    with SerialPair() as pair:
        emu = lab.start("sdm630", seed=15, unit=3, tick=60.0,
                        serial={"port": pair.a, "baudrate": 115200})
        _read_once(dict(transport="rtu-serial", serial_port=pair.b, baudrate=115200, unit=3), emu)
        lab.stop(emu)


@pytest.mark.parametrize("files", [{"cafile": "missing-ca.pem"}, {"certfile": "missing-cert.pem"},
                                   {"cafile": "garbage.pem"}])
def test_tls_files_that_cannot_be_loaded_are_bad_input_in_one_line(tmp_path, capsys, files):
    """A TLS device whose CA / client certificate cannot be loaded is refused when the scenario is read:
    one line naming the device and the file, exit 2 (it was a 'poller crashed' traceback in the middle
    of a run that went on, the device stale, exit 0)."""
    import yaml

    from cosim.cli import main
    from tests.conftest import ROOT

    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    files = {k: str(tmp_path / v) for k, v in files.items()}
    data = yaml.safe_load((ROOT / "scenarios" / "lab_hil.yaml").read_text())
    data["hil"]["meters"][0].update(transport="tls", **files)
    path = tmp_path / "tls.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--until", "1s", "--quiet", "--out", str(tmp_path / "tls.h5")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "hil.meters[0]" in err[0] and next(iter(files.values())) in err[0], err
