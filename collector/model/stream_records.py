"""The records of stream capture (the ``book_changes`` stream). Field meanings: docs/schema.md.

A reader replays one instrument by applying its records in file order: a ``book_snapshot``
replaces the whole book, a ``book_change`` sets the levels it lists (size 0 removes the level).
``conn`` + ``seq`` are our own per-connection message numbers: every record of one venue message
carries the same pair, and ``seq`` starts again at 1 on every new connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from collector.model.records import SCHEMA_VERSION, Level, _num, levels_json

# Why a book_snapshot was written.
SNAPSHOT_SUBSCRIBE = "subscribe"  # the venue's book after a (re)subscription
SNAPSHOT_VENUE_BOOK = "venue_book"  # a full book the venue pushed on its own (Polymarket, after trades)
SNAPSHOT_RESYNC = "resync"  # our book after swapping in a REST book and replaying what came after it
SNAPSHOT_UPDATE = "update"  # a venue message treated as a full replacement (Limitless orderbookUpdate)
SNAPSHOT_REASONS = (SNAPSHOT_SUBSCRIBE, SNAPSHOT_VENUE_BOOK, SNAPSHOT_RESYNC, SNAPSHOT_UPDATE)


@dataclass(slots=True)
class BookSnapshotRecord:
    """A whole book as of one stream message (or resync). Levels best-first, exact decimal text."""

    venue: str
    instrument_id: str
    ts_ms: int  # receive time (wall clock) of the message
    ob_ts_ms: int | None  # the venue's time of this book
    conn: str
    seq: int
    reason: str  # one of SNAPSHOT_REASONS
    bids: list[Level]
    asks: list[Level]
    hash: str | None = None  # the venue's hash of this book (Polymarket)
    hash_ok: bool | None = None  # our recompute equals ``hash``; None = not checked
    tick_size: str | None = None
    last_trade_price: str | None = None
    source: str = "ws"  # "ws", or "rest" when a REST book was swapped in (resync)

    def to_json(self) -> bytes:
        rec: dict[str, Any] = {
            "record_type": "book_snapshot",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "ts_ms": self.ts_ms,
            "ob_ts_ms": self.ob_ts_ms,
            "conn": self.conn,
            "seq": self.seq,
            "reason": self.reason,
            "bids": levels_json(self.bids),
            "asks": levels_json(self.asks),
            "best_bid": _num(self.bids[0][0] if self.bids else None),
            "best_ask": _num(self.asks[0][0] if self.asks else None),
            "hash": self.hash,
            "hash_ok": self.hash_ok,
            "tick_size": _num(self.tick_size),
            "last_trade_price": _num(self.last_trade_price),
            "source": self.source,
        }
        return orjson.dumps(rec)


@dataclass(slots=True)
class BookChangeRecord:
    """The levels one venue message changed in one book. Size ``0`` removes a level.

    ``bids`` / ``asks`` hold only the changed levels (best-first). ``best_bid`` / ``best_ask`` are
    our book's after applying them; ``hash`` is the venue's for the book after the change.
    ``synced`` is False while the book awaits a resync: the change is kept, the book it applies
    to is not trusted until the next ``book_snapshot``.
    """

    venue: str
    instrument_id: str
    ts_ms: int
    ob_ts_ms: int | None
    conn: str
    seq: int
    bids: list[Level]
    asks: list[Level]
    best_bid: str | None
    best_ask: str | None
    hash: str | None = None
    hash_ok: bool | None = None
    tick_size: str | None = None  # set by a tick_size_change (then bids and asks are empty)
    synced: bool = True

    def to_json(self) -> bytes:
        rec: dict[str, Any] = {
            "record_type": "book_change",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "ts_ms": self.ts_ms,
            "ob_ts_ms": self.ob_ts_ms,
            "conn": self.conn,
            "seq": self.seq,
            "bids": levels_json(self.bids),
            "asks": levels_json(self.asks),
            "best_bid": _num(self.best_bid),
            "best_ask": _num(self.best_ask),
            "hash": self.hash,
            "hash_ok": self.hash_ok,
            "synced": self.synced,
        }
        if self.tick_size is not None:
            rec["tick_size"] = _num(self.tick_size)
        return orjson.dumps(rec)


@dataclass(slots=True)
class LastTradeRecord:
    """The venue's last-trade event for one instrument (Polymarket ``last_trade_price``)."""

    venue: str
    instrument_id: str
    ts_ms: int
    ob_ts_ms: int | None
    conn: str
    seq: int
    price: str
    size: str | None
    side: str | None  # the venue's side of the aggressor ("BUY" / "SELL"), when sent
    fee_rate_bps: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "record_type": "last_trade",
                "schema_version": SCHEMA_VERSION,
                "venue": self.venue,
                "instrument_id": self.instrument_id,
                "ts_ms": self.ts_ms,
                "ob_ts_ms": self.ob_ts_ms,
                "conn": self.conn,
                "seq": self.seq,
                "price": _num(self.price),
                "size": _num(self.size),
                "side": self.side,
                "fee_rate_bps": _num(self.fee_rate_bps),
            }
        )
