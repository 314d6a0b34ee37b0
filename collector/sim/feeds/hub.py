"""Every feed behind one ASGI entry, one book timer, the control actions and ``/_sim/feeds``.

The ASGI app routes ``/socket.io/`` to the Limitless Socket.IO server, the WebSocket at
``/ws/market`` to the Polymarket feed, the one at ``/kalshi/trade-api/ws/v2`` to the Kalshi
feed and everything else (REST, ``/_sim/*``) to the Starlette app, so one port serves all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from collector.sim.feeds.conn import Feed
from collector.sim.feeds.kalshi_ws import PATH as KAL_PATH
from collector.sim.feeds.kalshi_ws import KalWsFeed
from collector.sim.feeds.limitless_sio import LimFeed
from collector.sim.feeds.polymarket_ws import PATH, PolyFeed
from collector.sim.feeds.timer import BookTimer
from collector.sim.state import SimState

# How often the periodic faults (ws_disconnect_every_s) are looked at.
CHAOS_TICK_S = 0.05


class FeedHub:
    def __init__(self, state: SimState, faults: Any, ping_interval: float = 25.0, ping_timeout: float = 20.0,
                 flush_ms: float = 5.0) -> None:
        rng = random.Random(f"{state.seed}:feeds")
        self.faults = faults
        self.timer = BookTimer(flush_ms)
        self.polymarket = PolyFeed(state.polymarket, faults, self.timer, rng)
        self.limitless = LimFeed(state.limitless, faults, self.timer, rng, ping_interval, ping_timeout)
        self.kalshi = KalWsFeed(state.kalshi, faults, self.timer, rng)
        self.feeds: dict[str, Feed] = {"polymarket": self.polymarket, "limitless": self.limitless, "kalshi": self.kalshi}
        self.next_drop: dict[str, float] = {}
        self.task: asyncio.Task | None = None
        self.since = time.time()

    def app(self, rest: Any) -> Any:
        poly, kal = self.polymarket.asgi, self.kalshi.asgi

        async def inner(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket" and scope["path"] == PATH:
                await poly(scope, receive, send)
            elif scope["type"] == "websocket" and scope["path"] == KAL_PATH:
                await kal(scope, receive, send)
            else:
                await rest(scope, receive, send)

        return self.limitless.app(inner)

    async def start(self) -> None:
        self.timer.start(asyncio.get_running_loop())
        self.task = asyncio.create_task(self._chaos())

    async def stop(self) -> None:
        self.timer.stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for f in self.feeds.values():
            for c in list(f.conns.values()):
                c.finish()

    async def _chaos(self) -> None:
        while True:
            await asyncio.sleep(CHAOS_TICK_S)
            now = time.monotonic()
            for name, f in self.feeds.items():
                every = f.cfg["ws_disconnect_every_s"]
                if every <= 0:
                    self.next_drop.pop(name, None)
                    continue
                due = self.next_drop.setdefault(name, now + every)
                if now >= due:
                    f.disconnect(True)
                    self.next_drop[name] = now + every

    def act(self, body: dict[str, Any]) -> dict[str, int]:
        """The one-shot feed faults of a ``POST /_sim/control`` body (validated already)."""
        venue = body.get("venue")
        out: dict[str, int] = {}
        for name, f in self.feeds.items():
            if venue not in (None, name):
                continue
            if "ws_disconnect_every_s" in body:
                self.next_drop.pop(name, None)  # a new period starts now
            for key, fn in (("ws_disconnect", f.disconnect), ("ws_stall", f.stall)):
                how = body.get(key)
                if how is True or (type(how) is int and how > 0):
                    out[f"{name}.{key}"] = fn(how)
        return out

    def status(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "now": time.time(),
            "polymarket": self.polymarket.status(),
            "limitless": self.limitless.status(),
            "kalshi": self.kalshi.status(),
            "clock": self.timer.stats(),
        }

    def reset_stats(self) -> None:
        for f in self.feeds.values():
            f.stats.reset()
        self.timer.reset_stats()
        self.since = time.time()

