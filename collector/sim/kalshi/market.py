"""One simulated Kalshi event and its markets: the objects ``/events`` (markets nested) serves,
the ``orderbook_fp`` bodies of the book endpoints, and the ``/_sim/markets`` summary.

Quirks as the venue has them: books hold bids only, per leg, ascending (best last), as dollar
strings with four decimals and fractional contract counts; an illiquid market has an empty YES
side; the market ``status`` speaks the field vocabulary (``active``, ``initialized``...) while
the query speaks ``open``; combo markets carry ``mve_*`` and are ``is_provisional``.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.sim.clock import LazyBook, SimClock
from collector.sim.names import iso

GRIDS = {  # price_level_structure -> (price_ranges, ticks per dollar of the book's walk)
    "linear_cent": ([("0.0000", "1.0000", "0.0100")], 100),
    "deci_cent": ([("0.0000", "1.0000", "0.0010")], 1000),
    "tapered_deci_cent": ([("0.0000", "0.1000", "0.0010"), ("0.1000", "0.9000", "0.0100"),
                           ("0.9000", "1.0000", "0.0010")], 100),
}
EMPTY = b'{"no_dollars":[],"yes_dollars":[]}'


def _levels(levels: list[tuple[int, int]], n: int) -> bytes:
    return b"[" + b",".join(b'["%.4f","%d.%02d"]' % (p / n, s // 100, s % 100) for p, s in levels) + b"]"


class KalBook(LazyBook):
    """The walk's YES bids and asks, served as YES bids and NO bids (NO bid = 1 - YES ask)."""

    __slots__ = ("market", "cache")

    def __init__(self, clock: SimClock, market: KalMarket) -> None:
        super().__init__(clock, f"kal:{market.ticker}", GRIDS[market.grid][1])
        self.market = market
        self.cache = b""

    def get(self, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            n, w = self.walk.n, self.walk
            yes = [] if self.market.illiquid else [(p, s) for p, s in reversed(w.bids)]
            no = [(n - p, s) for p, s in reversed(w.asks)]
            self.cache = b'{"no_dollars":' + _levels(no, n) + b',"yes_dollars":' + _levels(yes, n) + b"}"
            self.dirty = False
        return self.cache

    def quotes(self, now: int) -> tuple[str, str, str, str]:
        """Top of book as /events shows it: yes bid, yes ask, their sizes ("0.0000"/"1.0000" when empty)."""
        self.get(now)
        w, n = self.walk, self.walk.n
        bid = (0, 0) if self.market.illiquid or not w.bids else tuple(w.bids[0])
        ask = (n, 0) if not w.asks else tuple(w.asks[0])
        return (f"{bid[0] / n:.4f}", f"{ask[0] / n:.4f}", f"{bid[1] / 100:.2f}", f"{ask[1] / 100:.2f}")


class KalEvent:
    __slots__ = ("ticker", "series", "title", "sub_title", "category", "markets", "exclusive", "combo",
                 "recurring", "asset", "created_ms")

    def __init__(self, ticker: str, series: str, title: str, sub_title: str, category: str,
                 exclusive: bool = False, combo: bool = False) -> None:
        self.ticker, self.series, self.title, self.sub_title = ticker, series, title, sub_title
        self.category, self.exclusive, self.combo = category, exclusive, combo
        self.markets: list[KalMarket] = []
        self.recurring = False
        self.asset = ""
        self.created_ms = 0

    @property
    def open(self) -> bool:
        """What ``status=open`` matches: any market trading (nested markets are not filtered)."""
        return any(m.status == "active" for m in self.markets)

    def to_dict(self, now: int, nested: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "available_on_brokers": True, "category": self.category, "collateral_return_type": "",
            "event_ticker": self.ticker, "last_updated_ts": iso(self.created_ms / 1000, ms=True),
            "mutually_exclusive": self.exclusive, "series_ticker": self.series,
            "settlement_sources": [{"name": "CF Benchmarks" if self.recurring else "The Guardian",
                                    "url": "https://www.cfbenchmarks.com" if self.recurring else "https://www.theguardian.com"}],
            "strike_period": "hour" if self.recurring else "", "sub_title": self.sub_title, "title": self.title,
        }
        if nested:
            d["markets"] = [m.to_dict(now) for m in self.markets]
        return d


class KalMarket:
    __slots__ = ("ticker", "event", "title", "yes_sub", "no_sub", "status", "open_ms", "close_ms", "grid",
                 "illiquid", "volume", "volume_24h", "open_interest", "book", "rules", "strike", "legs", "result")

    def __init__(self, ticker: str, event: KalEvent, title: str, yes_sub: str, no_sub: str, open_ms: int,
                 close_ms: int, grid: str = "linear_cent") -> None:
        self.ticker, self.event, self.title, self.yes_sub, self.no_sub = ticker, event, title, yes_sub, no_sub
        self.status = "active"
        self.open_ms, self.close_ms, self.grid = open_ms, close_ms, grid
        self.illiquid = False
        self.volume = self.volume_24h = self.open_interest = 0  # in 1/100 contracts
        self.book: KalBook | None = None  # made on first read
        self.rules = ""
        self.strike: dict[str, Any] = {}
        self.legs: list[dict[str, str]] | None = None
        self.result = ""

    @property
    def live(self) -> bool:
        return self.status == "active"

    def book_bytes(self, clock: SimClock, now: int) -> bytes:
        """The ``orderbook_fp`` body; a market that is not trading has empty sides."""
        if not self.live:
            return EMPTY
        if self.book is None:
            self.book = KalBook(clock, self)
        return self.book.get(now)

    def to_dict(self, now: int) -> dict[str, Any]:
        b = self.book
        yb, ya, ybs, yas = b.quotes(now) if b is not None and self.live else ("0.0000", "1.0000", "0.00", "0.00")
        ranges, _ = GRIDS[self.grid]
        d: dict[str, Any] = {
            "can_close_early": True, "close_time": iso(self.close_ms / 1000),
            "created_time": iso(self.open_ms / 1000 - 600, ms=True), "event_ticker": self.event.ticker,
            "expected_expiration_time": iso(self.close_ms / 1000 + 300), "expiration_time": iso(self.close_ms / 1000 + 7 * 86400),
            "expiration_value": "", "fractional_trading_enabled": True, "last_price_dollars": yb,
            "latest_expiration_time": iso(self.close_ms / 1000 + 7 * 86400), "liquidity_dollars": "0.0000",
            "market_type": "binary", "no_ask_dollars": f"{1 - float(yb):.4f}", "no_bid_dollars": f"{1 - float(ya):.4f}",
            "no_sub_title": self.no_sub, "notional_value_dollars": "1.0000",
            "open_interest_fp": f"{self.open_interest / 100:.2f}", "open_time": iso(self.open_ms / 1000),
            "price_level_structure": self.grid,
            "price_ranges": [{"end": e, "start": s, "step": st} for s, e, st in ranges],
            "response_price_units": "usd_cent", "result": self.result, "rules_primary": self.rules,
            "rules_secondary": "", "settlement_timer_seconds": 5 if self.legs else 1800, "status": self.status,
            "ticker": self.ticker, "title": self.title, "updated_time": iso(self.open_ms / 1000, ms=True),
            "volume_24h_fp": f"{self.volume_24h / 100:.2f}", "volume_fp": f"{self.volume / 100:.2f}",
            "yes_ask_dollars": ya, "yes_ask_size_fp": yas, "yes_bid_dollars": yb, "yes_bid_size_fp": ybs,
            "yes_sub_title": self.yes_sub, **self.strike,
        }
        if self.legs is not None:
            d.update(is_provisional=True, mve_collection_ticker=self.event.series + "-R", mve_selected_legs=self.legs)
        return d

    def info(self) -> dict[str, Any]:
        return {"ticker": self.ticker, "event": self.event.ticker, "series": self.event.series, "status": self.status,
                "combo": self.legs is not None, "has_book": self.live, "close_ms": self.close_ms,
                "grid": self.grid, "illiquid": self.illiquid}


def render_batch(items: list[tuple[str, bytes]]) -> bytes:
    """``{"orderbooks": [{"orderbook_fp": ..., "ticker": ...}]}`` from (ticker, body) pairs."""
    return b'{"orderbooks":[' + b",".join(b'{"orderbook_fp":' + ob + b',"ticker":' + orjson.dumps(t) + b"}"
                                          for t, ob in items) + b"]}"
