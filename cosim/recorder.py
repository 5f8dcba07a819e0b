"""The HDF5 recorder as a mosaik simulator (always in-process: it owns the results file).

One entity receives every recorded population attribute (``any_inputs``) and, through the ``events``
input, discrete event records (messages, flexibility orders, ...). Rows are written at the recording
interval; event inputs trigger extra steps (hybrid simulator) so no event is missed. Records of the
``echo`` streams (the real devices' link events) are also printed, one line each, on stderr.
"""

from __future__ import annotations

import datetime as dt
import sys

import mosaik_api_v3
from tqdm import tqdm

from cosim.aggregate import Aggregator, extra_series
from cosim.results import ResultsWriter
from simulators.vocabulary import UNITS

META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Recorder": {
            "public": True,
            "any_inputs": True,
            "params": ["path", "attrs", "series", "populations", "event_sources", "flush_every", "echo",
                       "aggregate_ms"],
            "attrs": ["events"],
            "trigger": ["events"],
        }
    },
}

# Writers of this process that are still open: the runner closes them on every exit path.
OPEN_WRITERS: set[ResultsWriter] = set()
# Live views of this process (cosim.live.LiveFeed): handed every row and event batch, never waited for.
LIVE_FEEDS: list = []


class RecorderSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.writer: ResultsWriter | None = None
        self.populations: dict[str, str] = {}
        self.event_sources: dict[str, str] = {}
        self.step_size = 60_000
        self.next_row = 0
        self.bar = None
        self.echo: set[str] = set()
        self.agg: Aggregator | None = None

    def init(self, sid, time_resolution=0.001, start="", step_size=60_000, until=None, progress=False, timezone=None):
        self.start_iso, self.step_size = start, int(step_size)
        self.until = int(until) if until else None
        self.t0 = dt.datetime.fromisoformat(start) if start else None
        for feed in LIVE_FEEDS:  # the rows' clock: the simulation's start (a warm-up before the window)
            feed.clock(start, timezone)
        if progress and until:
            self.bar = tqdm(total=int(until) // self.step_size, unit="step", desc="simulating",
                            dynamic_ncols=True, mininterval=0.5,
                            disable=None)  # None: no bar frames in a log that is not a terminal
        return self.meta

    def create(self, num, model, path, attrs, series, populations, event_sources=None, flush_every=60, echo=(),
               aggregate_ms=None):
        """*event_sources*: full entity id -> name of the event stream its ``events`` go to; *echo*:
        the streams whose records are printed (their ``msg``); *aggregate_ms*: one row per interval
        (cosim.aggregate) instead of one per recorded step."""
        if num != 1 or self.writer is not None:
            raise ValueError("exactly one Recorder entity per simulator")
        self.populations = dict(populations)
        self.echo = set(echo)
        self.event_sources = dict(event_sources or {})
        series = [(p, a, UNITS.get(a, "")) for p, a in series]
        if aggregate_ms:
            self.agg = Aggregator(aggregate_ms)
            attrs, series = {**attrs, "aggregate_ms": int(aggregate_ms)}, series + extra_series(series)
        self.writer = ResultsWriter(
            path, attrs, series,
            sorted(set(self.event_sources.values())), self.start_iso, self.step_size, flush_every,
        )
        OPEN_WRITERS.add(self.writer)
        return [{"eid": "recorder", "type": model}]

    def step(self, time, inputs, max_advance):
        data = inputs.get("recorder", {})
        for src, events in (data.get("events") or {}).items():
            stream = self.event_sources.get(src)
            if stream is not None and events:
                for agent_events in events.values():
                    if stream in self.echo:
                        agent_events = [{"t": int(time), **e} for e in agent_events]
                        self._print(time, agent_events)
                    self.writer.add_events(stream, agent_events)
                    for feed in LIVE_FEEDS:
                        feed.events(stream, agent_events)
        if time >= self.next_row:
            values = {}
            for attr, by_src in data.items():
                if attr == "events":
                    continue
                for src, value in by_src.items():
                    key = (self.populations.get(src, src), attr)
                    if key in values and isinstance(value, dict):  # e.g. simulated + HIL meters
                        values[key] = {**values[key], **value}
                    else:
                        values[key] = value
            if self.agg is None:
                self.writer.append(time, values)
            else:
                for row in (self.agg.add(time, values),
                            self.agg.close() if self.until and time + self.step_size >= self.until else None):
                    if row is not None:
                        self.writer.append(*row)
            for feed in LIVE_FEEDS:
                feed.row(time, values)
            self.next_row = time + self.step_size
            if self.bar is not None:
                self.bar.update(1)
        return self.next_row

    def _print(self, time: int, events: list[dict]) -> None:
        """One line per record on stderr (beside the progress bar), stamped with the simulated time."""
        when = (self.t0 + dt.timedelta(milliseconds=time)).strftime("%H:%M:%S") if self.t0 else f"{time} ms"
        for e in events:
            level = "warning" if e.get("kind") in ("drop", "exception") else "note"
            tqdm.write(f"{level}: {when} {e.get('msg', e)}", file=sys.stderr)

    def finalize(self):
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None and not self.writer.closed:
            self.writer.close("completed")
            OPEN_WRITERS.discard(self.writer)
