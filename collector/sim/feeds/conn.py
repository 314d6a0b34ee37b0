"""One client connection's outbound side, the same for both feeds: a send queue drained by
its own writer task, the per-connection faults applied on the way in, and the counters.

A feed never awaits a client: it ``push``es and moves on. The writer awaits the transport,
which blocks once the client stops reading (uvicorn holds sends while the socket's buffer is
full), so an unread connection's queue grows; past ``ws_send_queue_max`` it is dropped, as
real servers drop slow consumers. Drops, duplicates and swaps hit change messages only (the
messages a client replays into its book), drawn per message and connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from typing import Any

import orjson

# How long a message held back for a swap waits for the one that should overtake it.
HOLD_S = 0.25
# Messages handed to the transport at once (one socket write when the transport allows it).
BATCH = 256
FAULTS = ("dropped", "duplicated", "reordered", "bad_hash", "stall_suppressed", "stalled_connections",
          "disconnects", "slow_consumers", "trade_duplicated", "trade_reordered", "trade_missing")


class FeedStats:
    """Counters of one feed, shown by ``/_sim/feeds``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # In place: connections hold on to these dicts.
        if hasattr(self, "sent"):
            self.sent.clear()
            self.faults.update(dict.fromkeys(FAULTS, 0))
        else:
            self.sent: dict[str, int] = {}
            self.faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.connections_total = 0
        self.bad_requests = 0


class Feed:
    """What a connection needs from its feed: the venue's live fault config, the counters and
    the fault RNG."""

    venue = ""

    def __init__(self, faults: Any, rng: random.Random) -> None:
        self.faults = faults  # collector.sim.faults.FaultEngine (a reset replaces cfg[venue])
        self.rng = rng
        self.stats = FeedStats()
        self.conns: dict[int, Conn] = {}
        self.next_id = 0

    @property
    def cfg(self) -> dict[str, Any]:
        return self.faults.cfg[self.venue]

    def new_id(self) -> int:
        self.next_id += 1
        self.stats.connections_total += 1
        return self.next_id

    def pick(self, how: bool | int) -> list[Conn]:
        """The open connections a one-shot fault hits: all (True) or ``how`` at random."""
        live = [c for c in self.conns.values() if not c.closed]
        if how is True or how >= len(live):
            return live
        return self.rng.sample(live, how)

    def disconnect(self, how: bool | int) -> int:
        hit = self.pick(how)
        for c in hit:
            self.stats.faults["disconnects"] += 1
            c.kill()
        return len(hit)

    def stall(self, how: bool | int) -> int:
        hit = [c for c in self.pick(how) if not c.stalled]
        for c in hit:
            c.stall()
        return len(hit)

    def conn_status(self) -> dict[str, Any]:
        cs = list(self.conns.values())
        return {
            "connections": len(cs),
            "connections_total": self.stats.connections_total,
            "stalled": sum(c.stalled for c in cs),
            "queued": sum(len(c.q) + c.transport_backlog() for c in cs),
            "sent": dict(self.stats.sent),
            "faults": dict(self.stats.faults),
            "bad_requests": self.stats.bad_requests,
        }


class Conn:
    """Subclasses say how to send one payload, how long the transport's own queue is and how
    to drop the connection."""

    def __init__(self, feed: Feed, cid: int) -> None:
        self.feed = feed
        self.stats = feed.stats
        self.rng = feed.rng
        self.id = cid
        self.q: deque[tuple[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.held: tuple[str, Any] | None = None
        self.held_trade: tuple[str, Any] | None = None  # a trade message waiting for the next one
        self.stalled = False
        self.closed = False
        self.task: asyncio.Task | None = None

    # ---------------- what a transport provides

    async def send(self, payload: Any) -> None:
        raise NotImplementedError

    async def send_many(self, payloads: list[Any]) -> None:
        """Send in order; a transport that can write them at once overrides this."""
        for p in payloads:
            await self.send(p)

    def transport_backlog(self) -> int:
        return 0

    def abort(self) -> None:
        """Drop the connection now, without a goodbye (what a network fault looks like)."""
        raise NotImplementedError

    def on_stall(self) -> None:
        """Silence whatever the transport sends by itself, where it can be silenced."""

    # ---------------- the feed's side

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._writer())

    def push(self, tag: str, payload: Any, change: bool = False) -> None:
        if self.closed:
            return
        if self.stalled:
            self.stats.faults["stall_suppressed"] += 1
            return
        copies = 1
        if change:
            cfg, rng, faults = self.feed.cfg, self.rng, self.stats.faults
            drop, dup, swap = cfg["ws_drop_rate"], cfg["ws_dup_rate"], cfg["ws_reorder_rate"]
            if drop > 0 and rng.random() < drop:
                faults["dropped"] += 1
                return
            if dup > 0 and rng.random() < dup:
                faults["duplicated"] += 1
                copies = 2
            if swap > 0 and self.held is None and rng.random() < swap:
                faults["reordered"] += 1
                self.held = (tag, payload)  # goes out right after the next message
                if copies == 2:
                    self._enqueue(tag, payload)
                return
        for _ in range(copies):
            self._enqueue(tag, payload)

    def push_trade(self, tag: str, payload: str, fields: tuple[str, ...] = ()) -> None:
        """A trade message, through the trade faults (ws_trade_*): one of ``fields`` left out,
        sent twice, or held back until this connection's next trade message (or HOLD_S)."""
        if self.closed:
            return
        if self.stalled:
            self.stats.faults["stall_suppressed"] += 1
            return
        cfg, rng, faults = self.feed.cfg, self.rng, self.stats.faults
        miss, dup, swap = cfg["ws_trade_missing_rate"], cfg["ws_trade_dup_rate"], cfg["ws_trade_reorder_rate"]
        if miss > 0 and fields and rng.random() < miss:
            payload = drop_field(payload, rng.choice(fields))
            faults["trade_missing"] += 1
        copies = 1
        if dup > 0 and rng.random() < dup:
            faults["trade_duplicated"] += 1
            copies = 2
        if swap > 0 and self.held_trade is None and rng.random() < swap:
            faults["trade_reordered"] += 1
            self.held_trade = (tag, payload)
            if copies == 2:
                self._enqueue(tag, payload)
            return
        held, self.held_trade = self.held_trade, None
        for _ in range(copies):
            self._enqueue(tag, payload)
        if held is not None:
            self._enqueue(*held)

    def _enqueue(self, tag: str, payload: Any) -> None:
        q = self.q
        q.append((tag, payload))
        if self.held is not None:
            q.append(self.held)
            self.held = None
        if len(q) + self.transport_backlog() > self.feed.cfg["ws_send_queue_max"]:
            self.stats.faults["slow_consumers"] += 1
            self.kill()
            return
        self.wake.set()

    def stall(self) -> None:
        if not self.stalled and not self.closed:
            self.stalled = True
            self.stats.faults["stalled_connections"] += 1
            self.q.clear()
            self.held = self.held_trade = None
            self.on_stall()

    def kill(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.q.clear()
        self.wake.set()
        with contextlib.suppress(Exception):
            self.abort()

    def finish(self) -> None:
        """The connection ended (either side): stop the writer."""
        self.closed = True
        self.wake.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _writer(self) -> None:
        q, sent = self.q, self.stats.sent
        try:
            while not self.closed:
                if not q:
                    self.wake.clear()
                    if self.held is None and self.held_trade is None:
                        await self.wake.wait()
                        continue
                    try:
                        await asyncio.wait_for(self.wake.wait(), HOLD_S)
                    except asyncio.TimeoutError:
                        if not q:  # nothing overtook what was held back: let it go
                            for h in (self.held, self.held_trade):
                                if h is not None:
                                    q.append(h)
                            self.held = self.held_trade = None
                    continue
                batch = [q.popleft() for _ in range(min(len(q), BATCH))]
                await self.send_many([payload for _, payload in batch])
                for tag, _ in batch:
                    sent[tag] = sent.get(tag, 0) + 1
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - a failed send means the client is gone
            self.kill()


def drop_field(payload: str, key: str) -> str:
    """``payload`` (a JSON object, or an envelope whose ``msg`` is one) without ``key``."""
    d = orjson.loads(payload)
    inner = d.get("msg") if isinstance(d.get("msg"), dict) else d
    inner.pop(key, None)
    return orjson.dumps(d).decode()
