"""The dashboard in a real browser (Debian's chromium driven by playwright): a lab run with emulated
devices; the page shows readings that change, "stale" within 2 s of the meter's emulator being
killed, and "ok" again once it is restarted."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hil.testing import ThreadedEmulators
from tests.conftest import free_port
from tests.test_lab_hil import lab_scenario

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and os.path.exists(p)), None)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
if CHROMIUM is None:
    pytest.skip("chromium not found (Debian: apt-get install chromium; or set CHROMIUM=/path)",
                allow_module_level=True)


def wait_for(check, timeout: float, poll: float = 0.05):
    """Poll *check* until it returns a true value; (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        v = check()
        if v or time.monotonic() - t0 > timeout:
            return v, time.monotonic() - t0
        time.sleep(poll)


def test_dashboard_shows_readings_stale_within_2s_and_ok_again(tmp_path):
    ports = {k: free_port() for k in ("m0", "m1", "gw", "ds", "web")}
    data = lab_scenario(ports, 60, "d1.h004")
    scenario = tmp_path / "lab.yaml"
    scenario.write_text(yaml.safe_dump(data))
    with ThreadedEmulators() as lab:
        meter = lab.start("sdm630", port=ports["m0"], seed=1)
        lab.start("sunspec-meter", port=ports["m1"], seed=2)
        lab.start("sunspec-battery", port=ports["gw"], seed=3)
        run = subprocess.Popen([sys.executable, "-m", "cosim.cli", "run", str(scenario), "--out", str(tmp_path / "r.h5"),
                                "--quiet", "--dashboard", str(ports["web"])],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = run.stdout.readline()
            assert line.strip() == f"dashboard: http://127.0.0.1:{ports['web']}/", line
            with playwright.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(line.split()[1])
                row = "tr[data-device='meter home.h001']"
                page.wait_for_selector(f"{row} td.quality", timeout=30_000)

                def cell(i: int) -> str:
                    return page.locator(f"{row} td").nth(i).inner_text()

                assert wait_for(lambda: cell(8) == "ok", 15)[0], cell(8)
                first = cell(2)
                changed, _ = wait_for(lambda: cell(2) != first, 10)
                assert changed, f"P of home.h001 stayed {first}"
                lab.stop(meter)
                stale, waited = wait_for(lambda: cell(8) == "stale", 2.0)
                assert stale, f"'stale' not shown within 2 s of the meter going away ({waited:.2f} s: {cell(8)!r})"
                assert "q-stale" in page.locator(f"{row} td.quality").get_attribute("class")
                lab.start("sdm630", port=ports["m0"], seed=1)
                ok, waited = wait_for(lambda: cell(8) == "ok", 10)
                assert ok, f"still {cell(8)!r} {waited:.2f} s after the meter came back"
                events = page.locator("li.warn").all_inner_texts()
                assert any(f"meter home.h001 (127.0.0.1:{ports['m0']}): no answer" in e for e in events), events
                browser.close()
        finally:
            run.send_signal(signal.SIGINT)  # the run stops cleanly and takes its dashboard process along
            try:
                run.wait(20)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait(5)
