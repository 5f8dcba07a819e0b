"""The example of using the population simulators in one's own mosaik world runs as a user runs it."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_own_mosaik_world_with_a_per_device_thermostat_through_transforms():
    proc = subprocess.run([sys.executable, "examples/own_mosaik_world.py", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("d1.")]
    assert len(rows) == 5
    for hid, text in rows:
        v = json.loads(text)
        # the third-party thermostat holds 21 °C (the households' own rule would swing over 20..22 °C)
        assert 20.9 <= v["T_in_min"] and v["T_in_max"] <= 21.1, (hid, v)
        assert 0.2 < v["duty"] < 0.95, (hid, v)
