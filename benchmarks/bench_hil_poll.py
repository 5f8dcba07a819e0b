"""HIL polling benchmark: N emulated meters polled at a fixed interval by the meter adapter.

    python benchmarks/bench_hil_poll.py [--meters 20] [--interval 1.0] [--seconds 30] [--subprocess]

Starts ``--meters`` lab emulators on 127.0.0.1 (SDM630 / EM24 / SunSpec meter in turn), either
all in one background asyncio loop of this process (default) or each as its own
``python -m hil.emulator`` process (``--subprocess``: separate GILs, like real devices), polls
them with one :class:`hil.meter_adapter.MeterPoller` (one task per device), and reports the
request latency (one coalesced read per poll) p50/p99/max, samples per device vs expected, the
worst sample age seen by ``snapshot()``, and the cost of ``snapshot()`` (what mosaik's
``get_data`` pays per step).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from hil.meter_adapter import MeterPoller
from hil.realtime import _percentile
from hil.testing import ThreadedEmulators

KINDS = [("sdm630", "sdm630"), ("em24", "em24"), ("sunspec-meter", "sunspec_meter")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--subprocess", action="store_true", help="one emulator process per meter")
    args = ap.parse_args(argv)

    procs: list[subprocess.Popen] = []
    lab = None
    devices = []
    try:
        if args.subprocess:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            for i in range(args.meters):
                kind, _ = KINDS[i % len(KINDS)]
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "hil.emulator", kind, "--port", "0", "--seed", str(i)],
                    stdout=subprocess.PIPE, text=True, env=env))
            for i, p in enumerate(procs):
                line = p.stdout.readline()
                port = int(line.split("127.0.0.1:")[1].split()[0])
                devices.append(dict(id=f"m{i:02d}", port=port, map=KINDS[i % len(KINDS)][1],
                                    interval=args.interval, timeout=1.0))
        else:
            lab = ThreadedEmulators()
            for i in range(args.meters):
                kind, m = KINDS[i % len(KINDS)]
                emu = lab.start(kind, seed=i)
                devices.append(dict(id=f"m{i:02d}", port=emu.port, map=m, interval=args.interval, timeout=1.0))

        poller = MeterPoller(devices).start()
        t_end = time.monotonic() + args.seconds
        worst_age, snap_cost, bad_quality = 0.0, [], 0
        while time.monotonic() < t_end:
            time.sleep(0.1)
            t0 = time.perf_counter()
            snap = poller.snapshot()
            snap_cost.append(time.perf_counter() - t0)
            if time.monotonic() > t_end - args.seconds + 2 * args.interval:  # after warm-up
                worst_age = max(worst_age, max(v["age"] for v in snap.values()))
                bad_quality += sum(1 for v in snap.values() if v["quality"] != 0)
        lat = sorted(x * 1000 for x in poller.latencies())
        stats = poller.stats()
        poller.stop()
    finally:
        if lab is not None:
            lab.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    ok = [s.get("ok", 0) for s in stats.values()]
    expected = args.seconds / args.interval
    mode = "one process per emulator" if args.subprocess else "emulators in-process (one loop)"
    print(f"{args.meters} meters, interval {args.interval} s, {args.seconds:.0f} s, {mode}")
    print(f"poll latency (one coalesced read): n={len(lat)} p50={_percentile(lat, 50):.2f} ms "
          f"p99={_percentile(lat, 99):.2f} ms max={lat[-1]:.2f} ms")
    print(f"samples per meter: min {min(ok)} max {max(ok)} (expected ~{expected:.0f}); "
          f"exceptions {sum(s.get('exception', 0) for s in stats.values())}, "
          f"link failures {sum(s.get('link_fail', 0) for s in stats.values())}")
    print(f"worst sample age after warm-up: {worst_age:.3f} s; non-ok quality observations: {bad_quality}")
    snap_cost.sort()
    print(f"snapshot() cost (per mosaik step): p50={_percentile(snap_cost, 50) * 1e6:.0f} us "
          f"p99={_percentile(snap_cost, 99) * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
