"""Technology parameter table of the telecom simulator.

Every message crosses the *access network* of its sender (uplink hop) and the access network of its
receiver (downlink hop); see :mod:`simulators.telecom_model` for the path rules. The parameters below
describe **one access hop, one way, at application level** (endpoint <-> head end / core network,
backhaul included). One hop takes

    queueing (FIFO on the shared medium of its domain)
  + transmission  (bytes + overhead_bytes) * 8 / bandwidth_bps       (occupies the medium)
  + latency_ms + jitter,  jitter ~ LogNormal(ln(jitter_median_ms), jitter_sigma)   (does not)

and is lost with probability ``loss`` (independently per hop and attempt). ``loss`` is the *residual*
application-level loss after the link layer's own ARQ; with ``max_retries > 0`` the sender
retransmits a lost hop after ``rto_ms`` (measured from the end of the lost transmission) and the
retransmission queues for the medium again.  Mean one-way hop latency without load:
``latency_ms + jitter_median_ms * exp(jitter_sigma**2 / 2) + tx``.

Fields
------
latency_ms        fixed propagation + processing + scheduling part (ms)
jitter_median_ms  median of the lognormal random part (ms); 0 disables jitter
jitter_sigma      log-space standard deviation of the random part (dimensionless)
loss              loss probability per hop attempt (0..1)
bandwidth_bps     capacity of the shared medium of one domain (bit/s); 0 = unlimited (no queueing)
overhead_bytes    per-message protocol overhead added to the payload (bytes)
scope             default sharing domain of an endpoint: "district" (one medium per technology and
                  district: PLC segment behind one concentrator, one cellular cell), "home" (one
                  medium per household: HAN), "endpoint" (a dedicated line per endpoint: DSL/fibre)
duplex            "half": one medium for both directions (PLC, Zigbee); "full": separate up/down
direct            True if two endpoints in the same domain talk over the medium in ONE hop (PLC
                  service node <-> base node/concentrator, Zigbee in a home); False if traffic always
                  goes up to the core and down again (cellular, DSL)
max_retries       retransmissions of a lost hop (0 = none)
rto_ms            retransmission timeout (ms)

Default values and sources (ranges from the literature; the defaults sit inside them)
------------------------------------------------------------------------------------
plc (PRIME 1.3.6/1.4 or G3-PLC, CENELEC-A band)
    PHY rates 5.4–128 kbit/s (PRIME; 1 Mbit/s only in multi-channel v1.4 modes), G3-PLC 4–~46 kbit/s in
    CENELEC-A (300 kbit/s max in FCC band) [ITU-T G.9904, G.9903; PRIME Alliance; Sendin et al.,
    Energies 7 (2014) 2377]. The *effective* application throughput of a subnetwork is far lower
    (CSMA/CA, beacons, control traffic, repeaters/"switch" nodes, robust modulations): a few to a few
    tens of kbit/s shared by all meters behind one concentrator -> 20 kbit/s, half duplex, one domain
    per district. Application round-trip times of hundreds of ms to several seconds are reported
    for IP/DLMS over PRIME in the field and in simulation [Sendin et al., "Adaptation of PLC-based
    smart metering deployments to the requirements of smart grids", Energies 8 (2015) 13481 — ARQ
    timeout 1 s; Seijo et al., SimPRIME field validation, 2020]. Default one-way mean ≈ 150 +
    206 + tx(≈100 ms for 200 B) ≈ 0.45 s, p95 ≈ 0.8 s. Residual loss 1–5 % -> 2 %. Overhead ≈ 60 B
    (MAC + convergence/6LoWPAN + UDP).
lte (LTE/4G, cat-1 and above)
    3GPP user-plane target < 5 ms one way in unloaded conditions [3GPP TR 36.913 / TR 25.913];
    operating networks: ≈ 12 ms one-way radio + core plus 10–30 ms scheduling [ITU-T SG11 workshop
    "One-way delays in operating LTE networks", Brand & Pomy, 2014]; typical pings 20–60 ms ->
    latency 15 ms + jitter median 10 ms (sigma 0.5): mean ≈ 26 ms one way. Residual loss after
    HARQ/RLC ≈ 1e-3 -> 0.2 % (twice it: a margin for meters at the cell edge, modelling choice).
    Capacity share of a cell available to this traffic: 5 Mbit/s
    (cell peak 75 Mbit/s UL, 300 DL; many other users). Overhead ≈ 60 B (IP + UDP/TCP + PDCP/RLC/MAC).
nbiot (NB-IoT, 3GPP Rel-13, CE level 0/1)
    Peak ≈ 20–60 kbit/s UL/DL, in practice a few kbit/s per device; latency target < 10 s [3GPP TR
    45.820]; field measurements 0.3–10 s depending on coverage class with high variability
    [Martinez et al., "Exploring the performance boundaries of NB-IoT", IEEE IoT J. 2019; Basu et
    al., "Experimental performance evaluation of NB-IoT", 2019; Ugwuanyi et al., Electronics 10
    (2021) 2224: 837 ms measured latency] -> latency 600 ms + jitter median 600 ms (sigma 0.7):
    mean ≈ 1.4 s one way, p95 ≈ 2.5 s. 20 kbit/s shared per cell, loss 1 %.
dsl (ADSL/VDSL fixed line) and fibre (FTTH)
    Dedicated line per endpoint (no sharing at the access). Typical idle RTT to the ISP / nearby
    server: DSL 10–30 ms, fibre 2–12 ms [FCC Measuring Broadband America reports; ITU-T G.1010]
    -> dsl: 8 ms + jitter 2 ms median, 10 Mbit/s up, loss 0.05 %; fibre: 2 ms + 0.5 ms, 100 Mbit/s,
    loss 0.01 %.
han (Zigbee / IEEE 802.15.4 home area network, 2.4 GHz)
    250 kbit/s PHY, CSMA/CA, one medium per home (half duplex); measured end-to-end latencies of
    ZigBee Pro / ZigBee IP tens of ms per request, packet delivery 95–100 % indoors
    [IEEE 802.15.4-2006; Franceschinis et al., "On the performance of ZigBee Pro and ZigBee IP in
    IEEE 802.15.4 networks", WiMob 2013; Sherazi et al., J. Comput. Netw. Commun. 2016] -> 10 ms +
    jitter median 10 ms (sigma 0.6), loss 1 %, overhead 31 B (MAC 11–25 B + NWK/APS).
modelling choices without a source (the ranges above do not give them)
    the jitter spreads (sigma of the log-normal), LTE's 5 Mbit/s capacity share, NB-IoT's 1 % loss, the
    60 B overhead of nbiot, dsl and fibre (taken from PLC and LTE), and the retransmission timeouts other
    than PLC's 1 s (retransmissions are off by default: max_retries 0).
ideal (telecom disabled)
    0.5 ms per hop, nothing else: two ideal endpoints see exactly 1 ms = 1 tick at
    ``time_resolution = 0.001``, the minimum latency of the simulator.

Scenarios override any field per technology (``overrides={"plc": {"loss": 0.05}}``) or define a new
technology from an existing one (``overrides={"plc_bad": {"base": "plc", "loss": 0.2}}``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

SCOPES = ("district", "home", "endpoint")
DUPLEX = ("half", "full")


@dataclass(frozen=True)
class Tech:
    """Parameters of one access technology (one hop, one way); see the module docstring."""

    name: str
    latency_ms: float
    jitter_median_ms: float = 0.0
    jitter_sigma: float = 0.0
    loss: float = 0.0
    bandwidth_bps: float = 0.0
    overhead_bytes: int = 0
    scope: str = "district"
    duplex: str = "full"
    direct: bool = False
    max_retries: int = 0
    rto_ms: float = 1000.0

    def __post_init__(self) -> None:
        problems = []
        if self.latency_ms < 0 or self.jitter_median_ms < 0 or self.jitter_sigma < 0:
            problems.append("latency_ms, jitter_median_ms, jitter_sigma must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            problems.append("loss must be in [0, 1]")
        if self.bandwidth_bps < 0 or self.overhead_bytes < 0:
            problems.append("bandwidth_bps and overhead_bytes must be >= 0")
        if self.scope not in SCOPES:
            problems.append(f"scope must be one of {SCOPES}")
        if self.duplex not in DUPLEX:
            problems.append(f"duplex must be one of {DUPLEX}")
        if int(self.max_retries) != self.max_retries or self.max_retries < 0:
            problems.append("max_retries must be an integer >= 0")
        if self.rto_ms < 0:
            problems.append("rto_ms must be >= 0")
        if problems:
            raise ValueError(f"technology {self.name!r}: " + "; ".join(problems))

    @property
    def mean_jitter_ms(self) -> float:
        import math

        return self.jitter_median_ms * math.exp(self.jitter_sigma ** 2 / 2.0)

    def tx_ms(self, nbytes: int) -> float:
        """Transmission time (ms) of a payload of *nbytes* on this medium."""
        if self.bandwidth_bps <= 0:
            return 0.0
        return (nbytes + self.overhead_bytes) * 8.0 * 1000.0 / self.bandwidth_bps

    def mean_hop_ms(self, nbytes: int) -> float:
        """Mean one-way latency of one hop on an idle medium (no loss, no queueing)."""
        return self.latency_ms + self.mean_jitter_ms + self.tx_ms(nbytes)


DEFAULT_TECH: dict[str, Tech] = {
    t.name: t
    for t in (
        Tech("ideal", latency_ms=0.5, scope="endpoint"),
        Tech("plc", latency_ms=150.0, jitter_median_ms=150.0, jitter_sigma=0.8, loss=0.02,
             bandwidth_bps=20_000.0, overhead_bytes=60, scope="district", duplex="half",
             direct=True, max_retries=0, rto_ms=1000.0),
        Tech("lte", latency_ms=15.0, jitter_median_ms=10.0, jitter_sigma=0.5, loss=0.002,
             bandwidth_bps=5_000_000.0, overhead_bytes=60, scope="district", duplex="full",
             direct=False, max_retries=0, rto_ms=200.0),
        Tech("nbiot", latency_ms=600.0, jitter_median_ms=600.0, jitter_sigma=0.7, loss=0.01,
             bandwidth_bps=20_000.0, overhead_bytes=60, scope="district", duplex="full",
             direct=False, max_retries=0, rto_ms=5000.0),
        Tech("dsl", latency_ms=8.0, jitter_median_ms=2.0, jitter_sigma=0.5, loss=0.0005,
             bandwidth_bps=10_000_000.0, overhead_bytes=60, scope="endpoint", duplex="full",
             direct=False, max_retries=0, rto_ms=200.0),
        Tech("fibre", latency_ms=2.0, jitter_median_ms=0.5, jitter_sigma=0.5, loss=0.0001,
             bandwidth_bps=100_000_000.0, overhead_bytes=60, scope="endpoint", duplex="full",
             direct=False, max_retries=0, rto_ms=200.0),
        Tech("han", latency_ms=10.0, jitter_median_ms=10.0, jitter_sigma=0.6, loss=0.01,
             bandwidth_bps=250_000.0, overhead_bytes=31, scope="home", duplex="half",
             direct=True, max_retries=0, rto_ms=100.0),
    )
}
ALIASES = {"fiber": "fibre", "4g": "lte", "zigbee": "han", "nb-iot": "nbiot", "prime": "plc",
           "g3": "plc", "g3-plc": "plc", "none": "ideal", "disabled": "ideal"}
TECH_FIELDS = tuple(f.name for f in fields(Tech) if f.name != "name")


def canonical(name: str) -> str:
    key = str(name).strip().lower()
    return ALIASES.get(key, key)


def build_table(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Tech]:
    """Default table with scenario *overrides* applied (``{tech: {field: value}}``).

    An override for an unknown technology name defines a new technology; it inherits from
    ``base`` (default ``"ideal"``). Unknown fields raise ``ValueError``.
    """
    table = dict(DEFAULT_TECH)
    for raw_name, params in (overrides or {}).items():
        params = dict(params or {})
        name = canonical(raw_name)
        base = canonical(params.pop("base", name if name in table else "ideal"))
        if base not in table:
            raise ValueError(f"technology {raw_name!r}: unknown base {base!r}")
        unknown = set(params) - set(TECH_FIELDS)
        if unknown:
            raise ValueError(f"technology {raw_name!r}: unknown parameter(s) {sorted(unknown)}; "
                             f"known: {list(TECH_FIELDS)}")
        for key in ("latency_ms", "jitter_median_ms", "jitter_sigma", "loss", "bandwidth_bps",
                    "rto_ms"):
            if key in params:
                params[key] = float(params[key])
        for key in ("overhead_bytes", "max_retries"):
            if key in params:
                params[key] = int(params[key])
        if "direct" in params:
            params["direct"] = bool(params["direct"])
        table[name] = replace(table[base], name=name, **params)
    return table
