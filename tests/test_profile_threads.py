"""benchmarks/profile_threads.py: CPU by thread, with the HiGHS share of each, and the clocks restored."""
import sys
from concurrent.futures import ThreadPoolExecutor

from cosim.durations import parse_duration_ms
from simulators.mas import lp

sys.path.insert(0, "benchmarks")
import profile_threads as pt  # noqa: E402


def test_cpu_by_thread_of_a_run_with_answer_threads(capsys):
    module, submit = lp._hc, ThreadPoolExecutor.submit
    r = pt.profile("uc3_substation", parse_duration_ms("1h"))
    assert (lp._hc, ThreadPoolExecutor.submit) == (module, submit)
    cpu, highs = r["cpu"], r["highs"]
    assert cpu["simulation"] > 0 and cpu["home-answers"] > 0 and 0 < highs["home-answers"] <= cpu["home-answers"]
    assert 0 < highs["simulation"] < cpu["simulation"] <= r["wall"] * 1.05
    pt.report("uc3_substation", r)
    out = capsys.readouterr().out
    assert "home-answers threads" in out and "simulation thread idle" in out
