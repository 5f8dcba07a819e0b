"""The device server read by mbpoll, an independent Modbus client (skipped where mbpoll is missing)."""

import asyncio
import re
import shutil

import pytest

from hil.device_server import DeviceServer

pytestmark = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (apt install mbpoll)")


async def _poll(port: int, ref: int, fmt: str) -> float:
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-a", "1", "-r", str(ref), "-c", "1", "-t", fmt, "-B", "-1", "-0", "-p", str(port), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    match = re.search(rf"\[{ref}\]:\s+(-?[\d.]+)", out.decode())
    assert match, (out.decode(), err.decode())
    return float(match.group(1))


def test_sdm630_floats_big_endian_words():
    async def main():
        async with DeviceServer({"d1.h004": {"unit": 1, "map": "sdm630"}}, port=0) as server:
            server.update("d1.h004", {"P": -1.2345, "E_imp": 4321.0})
            p_w = await _poll(server.port, 0x34, "3:float")
            e_kwh = await _poll(server.port, 0x48, "3:float")
        return p_w, e_kwh

    p_w, e_kwh = asyncio.run(main())
    assert p_w == pytest.approx(-1234.5, abs=0.01)
    assert e_kwh == pytest.approx(4.321, abs=1e-4)
