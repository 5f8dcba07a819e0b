"""Lab-device emulator: a :class:`~hil.device_server.DeviceServer` driven by a physics model.

Kinds:

* ``sdm630``, ``em24``, ``sunspec-meter`` - a household connection point: seeded, time-varying load
  (daily shape + AR(1) noise + appliance events, optional PV), per-phase values, integrating
  import/export energy registers;
* ``sunspec-battery`` - a battery behind a SunSpec 802/704 interface: SoC follows the written
  active-power set point (``WSet`` when ``WSetEna`` = 1, limited by the charge/discharge rates, the
  limit ``WMaxLimPct`` when ``WMaxLimPctEna`` = 1, and the SoC window; none while 802 ``SetOp`` = 2
  DISCONNECT); with ``WSetEnaRvrt`` = 1 and ``WSetRvrtTms`` > 0 every write to the WSet group
  restarts the reversion timer (wall-clock seconds), and when it expires without a fresh write
  the set point reverts to ``WSetRvrt`` (0 W: the safe set point) - done by the device server
  from the map's ``setpoints`` spec, so a served simulated battery reverts the same way (the limit
  likewise with ``WMaxLimPctEnaRvrt``, ``WMaxLimPctRvrtTms`` and ``WMaxLimPctRvrt``).

A ``map`` override must tag the quantities its kind's model needs (:func:`kinds_fitting`).

Its numbers (appliance table, sizes, power factors, noise, cloud and voltage time constants, the battery's
5 kW / 10 kWh / 95 % and its cell voltage curve) are modelling choices for exercising a lab's Modbus
path, not study inputs: a study's households are simulators.household's, whose parameters are sourced.

The model advances in fixed device-time steps (``model_dt``), so the trajectory of a meter is a
deterministic function of ``seed`` and device time (wall time x ``time_scale``).

Asyncio API::

    async with Emulator("sdm630", port=0, unit=1, seed=7) as emu:
        print(emu.port)          # the bound port (0 = a free one was picked)
        emu.fail(4)              # answer every request with exception 4 (tests), emu.fail(None) heals

CLI (wired to ``cosim emulate``)::

    python -m hil.emulator sdm630 --port 5020 [--unit 1] [--seed 0] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import signal
import ssl
import sys
import time
from typing import Any

from .aio import cancel_and_wait
from .client import quiet_pymodbus
from .device_server import DeviceServer, battery_readings, finite_quantity, phase_voltages, power_triangle, soc_window
from .registers import RegisterMap, load_map

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "sdm630": "sdm630",
    "em24": "em24",
    "sunspec-meter": "sunspec_meter",
    "sunspec-battery": "sunspec_battery",
}
DEVICE_ID = "dev"
# what a kind's model needs of a map (quantities): a meter's power, a battery's power, SoC and set point
NEEDS = {kind: {"P_bat", "soc", "wset_ena", "wset"} if kind == "sunspec-battery" else {"P"} for kind in KINDS}


def kinds_fitting(regmap: RegisterMap) -> list[str]:
    """The emulator kinds whose model can drive *regmap* (it tags the quantities the model needs)."""
    tagged = {p.quantity for p in regmap.all_points}
    return [kind for kind in KINDS if NEEDS[kind] <= tagged]


def _g(h: float, mu: float, sd: float) -> float:
    """Gaussian bump on the 24-h circle."""
    d = (h - mu + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / sd) ** 2)


# ----------------------------------------------------------------------------------------------
# physics models
# ----------------------------------------------------------------------------------------------
class HouseholdMeterModel:
    """Seeded household connection point (load convention: P > 0 import).

    Quantities (canonical units): P, Q [W, var], S [VA], PF, per phase P_Lk/Q_Lk/S_Lk/PF_Lk/
    I_Lk/V_Lk, V_avg, V_Lkl, V_LL_avg, I_sum, I_avg, f [Hz], E_imp/E_exp [Wh], reactive energy
    Eq_Q1..Eq_Q4 by quadrant and Eq_imp = Q1 + Q2, Eq_exp = Q3 + Q4 [varh], E_total,
    P_demand/P_demand_max [W] (15-min block demand).
    """

    APPLIANCES = (  # (W, min s, max s, weight)
        (2000.0, 90, 240, 3.0),    # kettle
        (1100.0, 120, 420, 2.0),   # microwave
        (2200.0, 1200, 2700, 1.0),  # oven / hob
        (1900.0, 900, 2400, 1.0),  # washing machine heating
        (700.0, 600, 1800, 1.5),   # dishwasher pump/dryer
    )

    def __init__(self, seed: int, t_day_s: float, pv_kwp: float = 0.0):
        self.rng = random.Random(seed)
        r = self.rng
        self.t = float(t_day_s)  # seconds since local midnight of day 0
        self.size = r.uniform(0.7, 1.4)
        w = [r.uniform(0.8, 1.2) for _ in range(3)]
        self.split = [x / sum(w) for x in w]
        self.pf_load = r.uniform(0.92, 0.98)
        self.pv_kwp = float(pv_kwp)
        self.E_imp = r.uniform(1_000, 8_000) * 1000.0
        self.E_exp = r.uniform(300, 3_000) * 1000.0 if pv_kwp > 0 else 0.0
        self.Eq = [self.E_imp * 0.25, 0.0, 0.0, 0.0]  # varh in quadrants Q1..Q4
        self.noise = 0.0
        self.cloud = 1.0
        self.dv = [0.0, 0.0, 0.0]
        self.df = 0.0
        self.events: list[tuple[float, float]] = []  # (end time, W)
        self.demand_acc = 0.0
        self.demand_n = 0.0
        self.demand_block = int(self.t // 900)
        self.P_demand = 0.0
        self.P_demand_max = 0.0
        self.P = self.Q = 0.0
        self._evaluate()

    def shape(self, h: float) -> float:
        return self.size * (180.0 + 700.0 * _g(h, 7.3, 0.9) + 350.0 * _g(h, 12.5, 1.5)
                            + 1100.0 * _g(h, 19.2, 1.7) + 250.0 * _g(h, 22.5, 1.0))

    def step(self, dt: float) -> None:
        r = self.rng
        self.t += dt
        h = (self.t / 3600.0) % 24.0
        shape = self.shape(h)
        a = math.exp(-dt / 120.0)
        self.noise = a * self.noise + 0.12 * shape * math.sqrt(1 - a * a) * r.gauss(0.0, 1.0)
        ac = math.exp(-dt / 600.0)
        self.cloud = min(1.0, max(0.2, ac * self.cloud + (1 - ac) * 0.8 + 0.05 * math.sqrt(1 - ac * ac) * r.gauss(0, 1)))
        av = math.exp(-dt / 30.0)
        self.dv = [av * v + 1.5 * math.sqrt(1 - av * av) * r.gauss(0, 1) for v in self.dv]
        self.df = av * self.df + 0.015 * math.sqrt(1 - av * av) * r.gauss(0, 1)
        # appliance events: Poisson, rate ~ 1.5/h scaled by the daily shape
        rate = 1.5 * shape / 1000.0 / 3600.0
        if r.random() < rate * dt:
            tot = sum(x[3] for x in self.APPLIANCES)
            u, acc = r.random() * tot, 0.0
            for w_, lo, hi, wt in self.APPLIANCES:
                acc += wt
                if u <= acc:
                    self.events.append((self.t + r.uniform(lo, hi), w_ * r.uniform(0.9, 1.1)))
                    break
        self.events = [e for e in self.events if e[0] > self.t]
        self._evaluate(shape)
        # integrate
        self.E_imp += max(self.P, 0.0) * dt / 3600.0
        self.E_exp += max(-self.P, 0.0) * dt / 3600.0
        # reactive energy by quadrant (SunSpec 20x TotVArhImpQ1 .. TotVArhExpQ4, load convention):
        # Q1 imports W and var, Q2 exports W and imports var, Q3 exports both, Q4 imports W, exports var
        self.Eq[(0 if self.P >= 0 else 1) if self.Q >= 0 else (2 if self.P < 0 else 3)] += abs(self.Q) * dt / 3600.0
        block = int(self.t // 900)
        if block != self.demand_block:
            if self.demand_n > 0:
                self.P_demand = self.demand_acc / self.demand_n
                self.P_demand_max = max(self.P_demand_max, self.P_demand)
            self.demand_acc = self.demand_n = 0.0
            self.demand_block = block
        self.demand_acc += self.P * dt
        self.demand_n += dt

    def _evaluate(self, shape: float | None = None) -> None:
        h = (self.t / 3600.0) % 24.0
        shape = self.shape(h) if shape is None else shape
        load = max(40.0, shape + self.noise) + sum(e[1] for e in self.events)
        pv = 0.0
        if self.pv_kwp > 0:
            pv = self.pv_kwp * 1000.0 * max(0.0, math.sin(math.pi * (h - 6.0) / 14.0)) ** 1.2 * self.cloud
        self.P = load - pv
        self.Q = load * math.tan(math.acos(self.pf_load))

    def quantities(self) -> dict[str, float]:
        P, Q = self.P, self.Q
        q: dict[str, float] = {"P": P, "Q": Q}
        q["S"], q["PF"] = power_triangle(P, Q)
        V = [230.0 + d for d in self.dv]
        I_tot = 0.0
        for k in range(3):
            pk, qk = P * self.split[k], Q * self.split[k]
            sk, pfk = power_triangle(pk, qk)
            ik = sk / V[k]
            I_tot += ik
            n = f"_L{k + 1}"
            q.update({"P" + n: pk, "Q" + n: qk, "S" + n: sk, "I" + n: ik, "PF" + n: pfk})
        q.update(phase_voltages(V))
        q.update({
            "I_sum": I_tot, "I_avg": I_tot / 3.0, "f": 50.0 + self.df,
            "E_imp": self.E_imp, "E_exp": self.E_exp, "Eq_imp": self.Eq[0] + self.Eq[1],
            "Eq_exp": self.Eq[2] + self.Eq[3], **{f"Eq_Q{k + 1}": e for k, e in enumerate(self.Eq)},
            "E_total": self.E_imp + self.E_exp,
            "P_demand": self.P_demand, "P_demand_max": self.P_demand_max,
        })
        return q


class BatteryModel:
    """SoC dynamics behind the SunSpec 802/704 points (SunSpec sign: W > 0 discharging).

    Follows the 704 active-power set point (``WSet``, or ``WSetPct`` of WMax = ``WDisChaRteMax``),
    limited by the charge/discharge rates, the 704 limit ``WMaxLimPct`` (on injection, W > 0: the
    function limits active power generation) and the SoC window; no power is exchanged while the
    802 ``SetOp`` is DISCONNECT or the inverter is not started (``SetInvState``). The set points are
    whatever the registers hold: their reversion is done by the device server from the map's
    ``setpoints`` specs (shared with served simulated devices).
    """

    def __init__(self, server: DeviceServer, device_id: str, seed: int, soc_init: float = 0.5,
                 efficiency: float = 0.95):
        self.server = server
        self.dev = device_id
        self.rng = random.Random(seed)
        self.soc = float(soc_init)
        self.eff = float(efficiency)
        self.hb_t = 0.0
        self.hb = 0
        self.throughput_wh = 0.0
        self.P = 0.0
        self._publish()

    def q(self, name: str, default: float = 0.0) -> float:
        return finite_quantity(self.server.image(self.dev), name, default)

    @property
    def connected(self) -> bool:
        """802 SetOp: 1 CONNECT, 2 DISCONNECT."""
        return self.q("set_op", 1) != 2

    def step(self, dt: float) -> None:
        wmax = self.q("w_dis_max", 5000.0)
        if self.q("wset_ena") >= 1:
            if self.q("wset_mod", 1) == 0:  # SunSpec 704 WSetMod: 0 = % of WMax, 1 = watts
                target = self.q("wset_pct") * wmax
            else:
                target = self.q("wset")
        else:
            target = 0.0
        cap = wmax
        if self.q("wmax_lim_ena") >= 1:
            cap = min(cap, self.q("wmax_lim_pct", 1.0) * wmax)
        target = min(max(target, -self.q("w_cha_max", 5000.0)), cap)
        lo, hi = soc_window(self.q)
        if not self.connected or self.q("set_inv_state", 3) != 3:  # 3 = INVERTER_STARTED
            target = 0.0
        elif (target > 0 and self.soc <= lo) or (target < 0 and self.soc >= hi):
            target = 0.0
        wh = max(self.q("wh_rtg", 10000.0), 1.0)
        if target < 0:
            self.soc += self.eff * (-target) * dt / 3600.0 / wh
        else:
            self.soc -= target * dt / 3600.0 / (self.eff * wh)
        self.soc = min(max(self.soc, 0.0), 1.0)
        self.throughput_wh += abs(target) * dt / 3600.0
        noise = 0.0 if target == 0 else self.rng.gauss(0.0, 0.002 * abs(target))
        self.P = min(target + noise, cap)  # metering noise, never above the limit
        self.hb_t += dt
        while self.hb_t >= 1.0:
            self.hb_t -= 1.0
            self.hb = (self.hb + 1) % 65536
        self._publish()

    def _publish(self) -> None:
        lo, hi = soc_window(self.q)
        self.server.set_quantities(self.dev, {
            "P_bat": self.P, "soc": self.soc,
            **battery_readings(self.P, self.soc, lo, hi, self.q("wh_rtg", 10_000.0), self.q("v_max", 58.4)),
            "state": 3 if self.connected else 1,  # 802 State: CONNECTED | DISCONNECTED
            "alm_rst": 0,  # 802 AlmRst: an alarm reset is done at once (this battery latches no alarms)
            "hb": self.hb,
            "ncyc": int(self.throughput_wh / (2 * max(self.q("wh_rtg", 1e4), 1.0))),
        })


# ----------------------------------------------------------------------------------------------
# emulator
# ----------------------------------------------------------------------------------------------
class Emulator:
    """One emulated lab device on its own port.

    :param kind: ``sdm630`` | ``em24`` | ``sunspec-meter`` | ``sunspec-battery``
    :param host: interface (default 127.0.0.1)
    :param port: TCP port (0 = pick a free one; read ``.port`` after start)
    :param unit: Modbus unit id
    :param seed: seed of the load / noise model
    :param map: override the register map (name, path or RegisterMap with the same quantities)
    :param tick: seconds between register refreshes (wall time)
    :param model_dt: fixed device-time step of the model (s)
    :param time_scale: device seconds per wall second (accelerate the daily shape in tests)
    :param start_tod: device time of day at start, seconds after midnight (default: local now)
    :param pv_kwp: PV peak power at the meter's connection point (meters)
    :param soc_init: initial state of charge 0..1 (battery)
    :param framer: ``socket`` (Modbus TCP) | ``rtu`` (RTU over TCP)
    :param sslctx: server SSLContext for Modbus/TCP over TLS
    :param serial: serve RTU on a serial port instead: ``{"port": "/dev/ttyUSB0", "baudrate": 9600}``
    :param idle_timeout: close TCP connections idle this long, s (None: never)
    :param max_connections: TCP connections served at once (None: no limit)
    """

    def __init__(
        self,
        kind: str,
        host: str = "127.0.0.1",
        port: int = 0,
        unit: int = 1,
        seed: int = 0,
        *,
        map: Any = None,  # noqa: A002 - the register map
        tick: float = 0.1,
        model_dt: float = 0.1,
        time_scale: float = 1.0,
        start_tod: float | None = None,
        pv_kwp: float = 0.0,
        soc_init: float = 0.5,
        framer: str = "socket",
        sslctx: ssl.SSLContext | None = None,
        serial: dict | None = None,
        idle_timeout: float | None = 60.0,
        max_connections: int | None = 64,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown emulator kind {kind!r}; known: {', '.join(KINDS)}")
        if not 0.0 <= soc_init <= 1.0:
            raise ValueError(f"the initial SoC must be in 0..1, got {soc_init:g}")
        if not 0.0 < time_scale < math.inf:
            raise ValueError(f"the time scale must be > 0 device seconds per wall second, got {time_scale:g}")
        regmap = load_map(map or KINDS[kind])
        if kind not in (fits := kinds_fitting(regmap)):
            raise ValueError(f"map {regmap.name} does not fit {kind}; it fits "
                             + (", ".join(fits) or "no emulator kind"))
        self.kind = kind
        self.unit = int(unit)
        self.seed = int(seed)
        self.tick = float(tick)
        self.model_dt = float(model_dt)
        self.time_scale = float(time_scale)
        self.server = DeviceServer({DEVICE_ID: (self.unit, regmap)}, host, port,
                                   framer=framer, sslctx=sslctx, serial=serial,
                                   idle_timeout=idle_timeout, max_connections=max_connections)
        if start_tod is None:
            lt = time.localtime()
            start_tod = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec
        self.start_tod = float(start_tod)
        if kind == "sunspec-battery":
            self.model: Any = BatteryModel(self.server, DEVICE_ID, self.seed, soc_init)
        else:
            self.model = HouseholdMeterModel(self.seed, self.start_tod, pv_kwp)
            self.server.set_quantities(DEVICE_ID, self.model.quantities())
        self._task: asyncio.Task | None = None
        self.device_time = 0.0

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def fail(self, code: int | None) -> None:
        """Answer every request with Modbus exception ``code`` (None: behave again)."""
        if code is None:
            self.server.fail_mode.pop(DEVICE_ID, None)
        else:
            self.server.fail_mode[DEVICE_ID] = int(code)

    def get(self, point: str) -> float | str:
        return self.server.get_point(DEVICE_ID, point)

    def quantity(self, q: str) -> float | None:
        return self.server.get_quantity(DEVICE_ID, q)

    async def start(self) -> Emulator:
        await self.server.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"emulator-{self.kind}")
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.server.stop()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _run(self) -> None:
        t_wall0 = time.monotonic()
        advanced = 0.0
        while True:
            target = (time.monotonic() - t_wall0) * self.time_scale
            try:
                if isinstance(self.model, BatteryModel):
                    dt = target - advanced
                    if dt > 0:
                        self.model.step(dt)
                        advanced = target
                else:
                    n = 0
                    while advanced + self.model_dt <= target:
                        self.model.step(self.model_dt)
                        advanced += self.model_dt
                        n += 1
                    if n:
                        self.server.set_quantities(DEVICE_ID, self.model.quantities())
            except Exception:  # noqa: BLE001 - keep the device alive
                log.exception("emulator %s: model step failed", self.kind)
            self.device_time = advanced
            await asyncio.sleep(self.tick)


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap = parser_class(prog="cosim emulate", description="Emulate a Modbus lab device.")
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--port", type=int, default=5020, help="TCP port (0 = any free port; default 5020)")
    ap.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    ap.add_argument("--map", default=None, help="register map override (bundled name or YAML path) that fits the kind")
    ap.add_argument("--pv-kwp", type=float, default=0.0, help="PV at the meter (kWp)")
    ap.add_argument("--soc", type=float, default=0.5, help="initial SoC 0..1 (battery)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="device seconds per wall second")
    ap.add_argument("--rtu", action="store_true", help="RTU framing over TCP (serial gateway style)")
    ap.add_argument("--tls-cert", default=None, help="serve Modbus/TCP over TLS with this certificate (PEM)")
    ap.add_argument("--tls-key", default=None, help="private key of --tls-cert")
    ap.add_argument("--serial", default=None, metavar="DEVICE",
                    help="serve Modbus RTU on this serial port (e.g. /dev/ttyUSB0) instead of TCP")
    ap.add_argument("--baudrate", type=int, default=9600, help="serial baud rate (default 9600, 8N1)")
    ap.add_argument("--idle-timeout", type=float, default=60.0,
                    help="close TCP connections without a request for this many s (default 60; 0 = never)")
    ap.add_argument("--max-connections", type=int, default=64,
                    help="TCP connections served at once, more are closed (default 64; 0 = no limit)")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


async def _serve(args: argparse.Namespace) -> None:
    sslctx = None
    if args.tls_cert:
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            sslctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {exc}") from None
    emu = Emulator(args.kind, host=args.host, port=args.port, unit=args.unit, seed=args.seed,
                   map=args.map, pv_kwp=args.pv_kwp, soc_init=args.soc, time_scale=args.time_scale,
                   framer="rtu" if args.rtu else "socket", sslctx=sslctx,
                   serial={"port": args.serial, "baudrate": args.baudrate} if args.serial else None,
                   idle_timeout=args.idle_timeout or None, max_connections=args.max_connections or None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
            pass
    await emu.start()
    proto = "modbus+tls" if sslctx else ("modbus-rtu-over-tcp" if args.rtu else "modbus-tcp")
    where = f"modbus-rtu on {args.serial}" if args.serial else f"{proto}://{emu.host}:{emu.port}"
    print(f"emulating {args.kind} (unit {args.unit}, seed {args.seed}) on {where} - Ctrl-C to stop", flush=True)
    try:
        if args.duration is not None:
            await asyncio.wait_for(stop.wait(), args.duration)
        else:
            await stop.wait()
    except asyncio.TimeoutError:
        pass
    finally:
        await emu.stop()
        print("emulator stopped", flush=True)


def main(argv: list[str] | None = None, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """``cosim emulate``; *parser_class*: the caller's ArgumentParser (cosim's reports bad options in one line)."""
    args = build_parser(parser_class).parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"error: cosim emulate: --port: {args.port} is not a TCP port (0-65535; 0 = a free one)", file=sys.stderr)
        return 2
    if not 0.0 <= args.pv_kwp < math.inf:
        print(f"error: cosim emulate: --pv-kwp: expected a finite number >= 0 (kWp), got {args.pv_kwp:g}",
              file=sys.stderr)
        return 2
    if args.duration is not None and not 0.0 < args.duration < math.inf:
        print(f"error: cosim emulate: --duration: expected a number of seconds > 0, got {args.duration:g}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_pymodbus()
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError, ssl.SSLError) as exc:  # bad option values / files
        print(f"error: cosim emulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cosim emulate: cannot start the emulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
