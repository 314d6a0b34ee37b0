"""The ``trade`` record of the ``trades`` stream: one trade a venue published, with both clocks.
Field meanings: docs/schema.md ("trades").

``key`` is the trade's identity, the same whichever way it reached us (the feed, a REST poll, a
backfill after a gap): readers and the recorder drop a record whose (venue, key) was already seen.
It is the venue's trade id when it sends one, else built from what the venue sends for the trade
(see :func:`trade_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from collector.model.records import SCHEMA_VERSION, _num

SIDES = ("buy", "sell")  # the aggressor (taker) on this instrument's book: bought its asks / sold into its bids
SOURCES = ("ws", "rest")  # the feed, or the venue's public trades endpoint (a paced poll or a gap's backfill)


@dataclass(slots=True)
class TradeRecord:
    """One trade. Price and size are exact decimal text (sizes in shares / contracts, scaled)."""

    venue: str
    instrument_id: str
    ts_ms: int  # when we received it (wall clock)
    ob_ts_ms: int | None  # the venue's time of the trade (ms; a venue that sends seconds: * 1000)
    key: str  # identity for de-duplication (trade id, or built by trade_key)
    price: str
    size: str
    side: str | None = None  # one of SIDES, when the venue says who took
    trade_id: str | None = None  # the venue's trade id
    tx_hash: str | None = None  # the on-chain transaction hash (Polymarket)
    fee_rate_bps: str | None = None
    fee: str | None = None  # the fee amount, when the venue sends it
    source: str = "ws"  # one of SOURCES

    def to_json(self) -> bytes:
        rec: dict[str, Any] = {
            "record_type": "trade",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "ts_ms": self.ts_ms,
            "ob_ts_ms": self.ob_ts_ms,
            "key": self.key,
            "price": _num(self.price),
            "size": _num(self.size),
            "side": self.side,
            "trade_id": self.trade_id,
            "tx_hash": self.tx_hash,
            "fee_rate_bps": _num(self.fee_rate_bps),
            "fee": _num(self.fee),
            "source": self.source,
        }
        return orjson.dumps(rec)


def trade_key(trade_id: str | None, *parts: str | None) -> str:
    """The venue's trade id, or ``"~"`` + the given parts joined by ``|`` (a venue without ids:
    e.g. Polymarket's transaction hash, token, price and size, which its feed and its REST tape
    both send, in the canonical decimal text)."""
    if trade_id:
        return trade_id
    return "~" + "|".join(p or "" for p in parts)
