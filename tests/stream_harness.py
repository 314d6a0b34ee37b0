"""A StreamLane driven by hand: real books, records and files; no sockets, no threads.

``feed(...)`` hands messages to the lane exactly as a connection thread would (FeedMessage with
a connection id and sequence number); ``FakeRest`` stands in for the poller Lane's REST side.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson

from collector.config.streams import LimitlessStreamSettings, PolymarketStreamSettings
from collector.model.records import Instrument
from collector.store.writer_set import WriterSet
from collector.stream.events import FeedDown, FeedMessage, FeedUp
from collector.stream.lane import StreamLane
from collector.stream.limitless import LimitlessFeed
from collector.stream.polymarket import PolymarketFeed


class FakeRest:
    def __init__(self) -> None:
        self.expedited: list[str] = []

    def expedite(self, key: str, now: float) -> None:
        self.expedited.append(key)


class NoSocket:
    """Stands in for a connection thread: records what the lane asked of it."""

    def __init__(self, target: Any, index: int, out: Any, s: Any, keys: Any = ()) -> None:
        self.keys: set[str] = set(keys)
        self.started = False
        self.connected = False
        self.seq = 0
        self.reconnects = 0
        self.last_rx = time.monotonic()
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.backlog = threading.Semaphore(1 << 30)
        self.blocked_s = 0.0

    def start(self) -> None:
        self.started = True

    def subscribe(self, keys: Any) -> None:
        self.asked.append(("sub", tuple(keys)))

    def unsubscribe(self, keys: Any) -> None:
        self.asked.append(("unsub", tuple(keys)))

    def stop(self) -> None:
        pass

    def join(self, timeout: float) -> None:
        pass


class Harness:
    def __init__(self, data_dir: Path, venue: str = "polymarket", **settings: Any) -> None:
        cls, feed_cls = {"polymarket": (PolymarketStreamSettings, PolymarketFeed),
                         "limitless": (LimitlessStreamSettings, LimitlessFeed)}[venue]
        self.s = cls(**settings)
        feed = feed_cls(self.s)
        feed.connection_cls = NoSocket
        self.rest = FakeRest()
        self.data_dir = Path(data_dir)
        self.writers = WriterSet(self.data_dir)
        self.lane = StreamLane(venue, self.s, feed, self.rest, self.writers, None)
        self.venue = venue
        self.seq = 0
        self.gen = 0
        self.ts = 1_790_000_000_000

    def instruments(self, keys: Any, **kw: Any) -> None:
        insts = [Instrument(venue=self.venue, poll_key=k, market_id=kw.get("market_id", "m"), **{
            k2: v for k2, v in kw.items() if k2 != "market_id"}) for k in keys]
        self.lane.set_instruments(insts, time.monotonic())

    def up(self, index: int = 0) -> str:
        self.gen += 1
        self.seq = 0
        conn = f"c{index}-{self.gen}"
        self.lane.conns[index].connected = True
        self.lane.on_event(FeedUp(self.lane, index, conn, self.ts), time.monotonic())
        return conn

    def down(self, index: int = 0, reason: str = "closed") -> None:
        self.lane.conns[index].connected = False
        self.lane.on_event(FeedDown(self.lane, index, self.lane.conn_ids[index], self.ts, reason), time.monotonic())

    def feed(self, data: Any, index: int = 0, event: str = "", mono: float | None = None) -> None:
        self.seq += 1
        self.ts += 1
        if isinstance(data, (bytes, str)):
            data = orjson.loads(data)
        ev = FeedMessage(self.lane, index, self.lane.conn_ids[index], self.seq, self.ts,
                         time.monotonic() if mono is None else mono, data, event)
        self.lane.on_event(ev, ev.mono)

    def records(self) -> list[dict[str, Any]]:
        self.writers.flush(fsync=False)
        out = []
        for p in sorted(self.data_dir.rglob("*.jsonl")):
            out += [orjson.loads(line) for line in p.read_bytes().splitlines() if line]
        return out
