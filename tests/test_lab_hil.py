"""lab_hil end to end: emulated Modbus meters and a battery gateway swapped in for simulated homes, in
real time, with a device going away and coming back, another answering exception codes, and the
device server read by an independent Modbus client (pyModbusTCP) while the run goes on."""

import struct
import threading
import time

import h5py
import numpy as np
import pytest
import yaml
from pyModbusTCP.client import ModbusClient

from cosim.runner import run_scenario
from cosim.scenario import load_scenario, parse_scenario
from hil.testing import ThreadedEmulators
from tests.conftest import free_port


def lab_scenario(ports: dict[str, int], seconds: int, served: str) -> dict:
    _, text = load_scenario("lab_hil")
    data = yaml.safe_load(text)
    data["duration"] = f"{seconds}s"
    hil = data["hil"]
    hil["meters"][0]["port"], hil["meters"][1]["port"] = ports["m0"], ports["m1"]
    hil["gateways"][0]["port"] = ports["gw"]
    hil["device_server"] = {"host": "127.0.0.1", "port": ports["ds"], "devices": {served: {"unit": 1, "map": "sdm630"}}}
    data["record"] = {"flush_every": 5}
    return data


def read_sdm630(port: int, address: int) -> float | None:
    client = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=1.0, auto_open=True)
    try:
        regs = client.read_input_registers(address, 2)
        return None if not regs else struct.unpack(">f", struct.pack(">HH", *regs))[0]
    finally:
        client.close()


@pytest.fixture
def ports():
    return {k: free_port() for k in ("m0", "m1", "gw", "ds")}


def test_lab_hil_readings_setpoints_faults_and_device_server(ports, tmp_path):
    seconds, served = 12, "d1.h004"
    data = lab_scenario(ports, seconds, served)
    scn = parse_scenario(data)
    out = tmp_path / "lab.h5"
    reads: list[float] = []
    volts: list[float] = []
    phase_v: list[list] = []
    phase_p: list[list] = []
    with ThreadedEmulators() as lab:
        m0 = lab.start("sdm630", port=ports["m0"], seed=1)
        m1 = lab.start("sunspec-meter", port=ports["m1"], seed=2)
        lab.start("sunspec-battery", port=ports["gw"], seed=3)

        def script():
            time.sleep(4.0)
            lab.stop(m0)                      # home.h001's meter goes away ...
            m1.fail(4)                        # ... and d1.h001's answers with exception 4
            time.sleep(3.0)
            lab.start("sdm630", port=ports["m0"], seed=1)   # ... and comes back on the same port
            m1.fail(None)
            time.sleep(1.5)
            reads.append(read_sdm630(ports["ds"], 0x34))     # total power, W
            volts.append(read_sdm630(ports["ds"], 0x2A))     # mean phase voltage, V
            phase_v.append([read_sdm630(ports["ds"], a) for a in (0x00, 0x02, 0x04)])  # V_L1..3
            phase_p.append([read_sdm630(ports["ds"], a) for a in (0x0C, 0x0E, 0x10)])  # P_L1..3, W

        t = threading.Thread(target=script)
        t.start()
        result = run_scenario(scn, yaml.safe_dump(data), out=out, progress=False)
        t.join()
    assert result.steps == seconds and result.lateness is not None
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["time"][()], np.arange(seconds) * 1000)  # no step lost
        ids = [i.decode() for i in f["meters/_ids/P"][()]]
        q_ids = [i.decode() for i in f["meters/_ids/quality"][()]]
        h, d = ids.index("home.h001"), ids.index("d1.h001")
        p = f["meters/P"][()]
        quality = f["meters/quality"][()]
        # real readings arrive under the swapped ids, beside the simulated meters
        assert np.isfinite(p[1:, h]).all() and np.isfinite(p[1:, d]).all()
        assert 0.05 < abs(p[2, h]) < 20
        assert "home.h001" not in [i.decode() for i in f["households/_ids/P"][()]]
        qh = quality[:, q_ids.index("home.h001")]
        qd = quality[:, q_ids.index("d1.h001")]
        # stale while away; fresh again within 2 s of its return: the gap between the last good
        # row before the 3 s outage and the first good row after it is at most 3 + 2 s (+1 s rows)
        assert (qh == 1).any(), qh
        first_stale = int(np.argmax(qh == 1))
        back = first_stale + int(np.argmax(qh[first_stale:] == 0))
        assert qh[back:].max() == 0, qh
        assert back - (first_stale - 1) <= 3 + 2 + 1, qh
        assert (qd == 2).any() and qd[-1] == 0, qd
        # the controller's set point reaches the emulated battery and is read back. A row is the
        # real-time truth of its snapshot: one taken between a write and its read-back says 0 (seen
        # in the last row on a loaded machine), so no single row is asserted, the run as a whole is
        ack = f["gateways/setpoint_ack"][()][:, 0]
        sent = np.isfinite(f["controller/P_bat_set"][()][:, 0])
        assert sent[:-1].any(), f["controller/P_bat_set"][()][:, 0]
        first = int(np.argmax(sent)) + 1
        assert np.mean(ack[first:] == 1) >= 0.75 and (ack[-3:] == 1).any(), \
            (ack, f["controller/P_bat_set"][()][:, 0], f["gateways/P_bat"][()][:, 0])
        p_bat, p_set = f["gateways/P_bat"][()][:, 0], f["controller/P_bat_set"][()][:, 0]
        assert abs(p_bat[-1] - p_set[-2]) < 0.05 or abs(p_bat[-1] - p_set[-1]) < 0.05
        # the device server served the simulated household's power to an independent client
        served_col = [i.decode() for i in f["households/_ids/P"][()]].index(served)
        recorded = f["households/P"][()][:, served_col]
        # ... and the voltage of its bus: the mean of the bus's phase voltages of some row (0.4 kV
        # network: 400/sqrt(3) V per p.u.), not the map's 230 V (which it served before)
        keys = [[i.decode() for i in f[f"grid/_ids/vm_pu_{ph}"][()]] for ph in "abc"]
        common = sorted(set(keys[0]) & set(keys[1]) & set(keys[2]))
        phase_pu = np.array([f[f"grid/vm_pu_{ph}"][()][:, [keys[k].index(b) for b in common]]
                             for k, ph in enumerate("abc")])  # phase, row, bus
        mean_pu = phase_pu.mean(axis=0)
        phase_kw = np.array([f[f"households/P_{ph}"][()][:, served_col] for ph in "abc"]).T  # row, phase
    assert reads and reads[0] is not None
    assert np.min(np.abs(recorded - reads[0] / 1000.0)) < 1e-3
    assert volts and volts[0] is not None and volts[0] != 230.0
    assert np.nanmin(np.abs(mean_pu * 400.0 / np.sqrt(3.0) - volts[0])) < 0.01, volts
    # under the three-phase grid each phase as the simulation has it: the bus's phase voltages of one
    # row, and the household's per-phase powers of one row (before: all on L1, every phase at 230 V)
    v3 = np.array(phase_v[0])
    assert np.nanmin(np.abs(phase_pu * 400.0 / np.sqrt(3.0) - v3[:, None, None]).max(axis=0)) < 0.01, v3
    p3 = np.array(phase_p[0]) / 1000.0
    assert np.min(np.abs(phase_kw - p3).max(axis=1)) < 1e-3, (p3, phase_kw)


def test_a_device_server_port_in_use_is_one_line_exit_2(ports, tmp_path, capsys):
    """The device server cannot listen (its port is taken): one line naming it, exit 2 (before: a
    traceback and exit 1)."""
    import socket

    from cosim.cli import main

    data = lab_scenario(ports, 5, "d1.h004")
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    with socket.socket() as taken, ThreadedEmulators() as lab:
        taken.bind(("127.0.0.1", ports["ds"]))
        taken.listen()
        lab.start("sdm630", port=ports["m0"], seed=1)
        lab.start("sunspec-meter", port=ports["m1"], seed=2)
        lab.start("sunspec-battery", port=ports["gw"], seed=3)
        assert main(["run", str(path), "--out", str(tmp_path / "lab.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: device_server: cannot listen on 127.0.0.1:{ports['ds']}"), err
