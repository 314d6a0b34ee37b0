"""The simulated Kalshi: events in listing order, the reads ``/events`` and the book endpoints
serve, and the ``/_sim/markets`` lifecycle actions (add, close, expire, update, churn)."""

from __future__ import annotations

import math
import time
from typing import Any

from collector.sim.clock import SimClock, SimError
from collector.sim.kalshi.catalog import KAL_CRYPTO, KalFactory
from collector.sim.kalshi.market import KalEvent, KalMarket
from collector.sim.venue import VenueSim

# Query word -> the market field values it stands for (the two vocabularies differ).
STATUS_FILTER = {
    "unopened": ("initialized",),
    "open": ("active",),
    "closed": ("closed", "determined", "disputed", "amended"),
    "settled": ("finalized",),
}


class KalshiSim(VenueSim):
    name = "kalshi"

    def __init__(self, clock: SimClock, n_markets: int) -> None:
        super().__init__(clock)
        self.events: list[KalEvent] = []
        self.tickers: dict[str, KalMarket] = {}
        self.factory = KalFactory(clock.seed, clock.epoch)
        for ev in self.factory.build(n_markets):
            self._register(ev)

    def _register(self, ev: KalEvent) -> None:
        self.events.append(ev)
        for m in ev.markets:
            self.tickers[m.ticker] = m
            self.notify("added", m)

    # ---------------- reads

    def list_events(self, status: str | None, series: str | None, combos: bool) -> list[KalEvent]:
        want = STATUS_FILTER.get(status) if status else None
        out = []
        for ev in self.events:
            if ev.combo != combos or (series and ev.series != series):
                continue
            if want is not None and not any(m.status in want for m in ev.markets):
                continue
            out.append(ev)
        return out

    def book(self, ticker: str, now: int) -> bytes | None:
        m = self.tickers.get(ticker)
        return None if m is None else m.book_bytes(self.clock, now)

    # ---------------- lifecycle

    def info(self) -> list[dict[str, Any]]:
        return [m.info() for ev in self.events for m in ev.markets]

    def size(self) -> int:
        return len(self.tickers)

    def summary(self) -> str:
        return f"{len(self.events)} events/{len(self.tickers)} markets"

    def add_one(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        rng, f = self.clock.life_rng, self.factory
        kind = spec.get("kind", "crypto")
        now = time.time()
        saved, f.epoch = f.epoch, now  # opened now: generated around now
        try:
            if kind == "crypto":
                series = spec.get("series", "KXBTCD")
                c = next((c for c in KAL_CRYPTO if c[0] == series), None)
                if c is None:
                    raise SimError("unknown crypto series")
                close_s = now + float(spec["end_in_s"]) if "end_in_s" in spec else (math.floor(now / 3600) + 1) * 3600
                ev = f.make_crypto(rng, c, close_s)
                for m in ev.markets:
                    m.status = "active"
            elif kind in ("fed", "game", "weather", "longdated", "combo"):
                ev = getattr(f, "make_" + kind)(rng)
            else:
                raise SimError("kind must be one of crypto, fed, game, weather, longdated, combo")
        finally:
            f.epoch = saved
        if ev.ticker in {e.ticker for e in self.events}:
            ev.ticker += f"X{f.n}"
            for m in ev.markets:
                m.ticker = ev.ticker + m.ticker[m.ticker.rindex("-"):]
        self._register(ev)
        return [m.info() for m in ev.markets]

    def select(self, spec: dict[str, Any]) -> list[KalMarket]:
        if "ticker" in spec:
            m = self.tickers.get(str(spec["ticker"]))
            return [m] if m else []
        if "event" in spec:
            return [m for ev in self.events if ev.ticker == spec["event"] for m in ev.markets]
        pool = [m for m in self.tickers.values() if m.live and m.legs is None]
        if "series" in spec:
            pool = [m for m in pool if m.event.series == spec["series"]]
        return self.clock.pick(pool, spec)

    def close(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in self.select(spec):
            m.status = "determined" if spec.get("determined", True) else "closed"
            m.result = "yes" if self.clock.life_rng.random() < 0.5 else "no"
            book, m.book = m.book, None
            self.notify("closed", m, book=book)
            out.append(m.info())
        return out

    def expire(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        out = []
        for m in self.select(spec):
            m.close_ms = min(m.close_ms, now)
            m.status = "closed"
            self.notify("expired", m)
            out.append(m.info())
        return out

    def update(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in self.select(spec):
            if "status" in spec:
                m.status = str(spec["status"])
            if "illiquid" in spec:
                m.illiquid, m.book = bool(spec["illiquid"]), None
            self.notify("updated", m)
            out.append(m.info())
        return out

    def churn(self, now: float) -> tuple[list, list]:
        """Close what reached its close time (opening the next hour of a recurring series),
        open the events that start trading within 3 h, close one random market, add one event."""
        closed: list = []
        added: list = []
        t = int(now * 1000)
        for ev in list(self.events):
            for m in ev.markets:
                if m.live and m.close_ms <= t:
                    closed += self.close({"ticker": m.ticker})
                elif m.status == "initialized" and m.close_ms - t <= 3 * 3_600_000:
                    m.status = "active"
            if ev.recurring and ev.markets and ev.markets[0].close_ms <= t and not ev.open:
                self.events.remove(ev)
                for m in ev.markets:
                    self.tickers.pop(m.ticker, None)
                spec = next(c for c in KAL_CRYPTO if c[0] == ev.series)
                latest = max((e.markets[0].close_ms for e in self.events if e.series == ev.series), default=t)
                saved, self.factory.epoch = self.factory.epoch, now
                try:
                    nxt = self.factory.make_crypto(self.clock.life_rng, spec, latest / 1000 + 3600)
                finally:
                    self.factory.epoch = saved
                self._register(nxt)
                added += [m.info() for m in nxt.markets]
        closed += self.close({"count": 1})
        added += self.add({"kind": self.clock.life_rng.choice(("fed", "game", "weather", "combo"))})
        return closed, added
