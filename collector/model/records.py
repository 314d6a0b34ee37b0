"""Instruments and the records we write. Field meanings are documented in docs/schema.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from collector.model.caches import trim_oldest
from collector.model.decimals import mid_text, spread_text
from collector.model.details import (
    DETAILS_BY_VENUE,
    META_BY_VENUE,
    LimitlessDetails,
    LimitlessMeta,
    PolymarketDetails,
    PolymarketMeta,
)

SCHEMA_VERSION = 1

Level = tuple[str, str]  # (price, size) as canonical decimal text


class Instrument(BaseModel):
    """One pollable book: a Polymarket outcome token, or a Limitless market slug (its YES book)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    venue: str
    poll_key: str
    instrument_id: str = ""
    market_id: str
    outcome: str | None = None
    title: str = ""
    slug: str = ""
    expires_at_ms: int | None = None
    tick_size: str | None = None
    # Discovery metadata (what selection rules look at).
    event_slug: str | None = None
    series_slug: str | None = None
    recurrence: str | None = None
    tags: tuple[str, ...] = ()
    volume_24h: float | None = None
    liquidity: float | None = None
    starts_at_ms: int | None = None
    # Limitless sizes are integers in 10^-size_decimals units; None when sizes are in shares.
    size_decimals: int | None = None
    # Venue ids and flags (collector.model.details); a plain dict (kept as is) for other venues.
    meta: dict[str, Any] | PolymarketMeta | LimitlessMeta = Field(default={}, union_mode="left_to_right")
    # Typed venue metadata (collector.model.details); None in snapshots written before it existed.
    details: PolymarketDetails | LimitlessDetails | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("instrument_id"):
            data = {**data, "instrument_id": f"{data.get('venue')}:{data.get('poll_key')}"}
        d = data.get("details") if isinstance(data, dict) else None
        if isinstance(d, dict) and data.get("venue") in DETAILS_BY_VENUE:
            # The venue decides the class (all fields optional: a dict alone would fit either).
            data = {**data, "details": DETAILS_BY_VENUE[data["venue"]].model_validate(d)}
        m = data.get("meta") if isinstance(data, dict) else None
        if isinstance(m, dict) and data.get("venue") in META_BY_VENUE:
            data = {**data, "meta": META_BY_VENUE[data["venue"]].model_validate(m)}
        return data

    @field_serializer("details")
    def _details_out(self, d: PolymarketDetails | LimitlessDetails | None) -> dict[str, Any] | None:
        return None if d is None else d.record()

    @field_serializer("meta")
    def _meta_out(self, m: dict[str, Any] | PolymarketMeta | LimitlessMeta) -> dict[str, Any]:
        return m if type(m) is dict else m.record()

    @model_validator(mode="after")
    def _check_id(self) -> "Instrument":
        if self.instrument_id != f"{self.venue}:{self.poll_key}":
            raise ValueError("instrument_id must be '<venue>:<poll_key>'")
        return self

    def flat(self) -> dict[str, Any]:
        """JSON-ready dict of every field (used by snapshots and market records)."""
        return self.model_dump(mode="json")


_EMPTY_LEVELS = orjson.Fragment(b"[]")


def levels_json(levels: list[Level]) -> orjson.Fragment:
    """``[[price,size],...]`` of canonical levels, as written (numbers, not strings)."""
    if not levels:
        return _EMPTY_LEVELS
    try:  # [[p,s],[p,s]] from C-level joins (levels are (str, str) pairs)
        return orjson.Fragment("[[" + "],[".join(map(",".join, levels)) + "]]")
    except TypeError:  # a level that is not all str: format each
        return orjson.Fragment("[" + ",".join([f"[{p},{s}]" for p, s in levels]) + "]")


def _num(text: str | None) -> orjson.Fragment | None:
    if text is None:
        return None
    # orjson.Fragment takes exact str or bytes only (not DecText or other subclasses)
    return orjson.Fragment(text if type(text) is str else text.encode())


# (best bid, best ask) -> (mid, spread) fragments. The top of book repeats from poll to poll, so
# a dict hit replaces two Decimal computations. Trimmed when it grows past the bound: a few
# thousand pairs are live at a time (about one per instrument), and new pairs keep arriving
# (~100/s for 2,000 changing books), so a small bound keeps memory flat (~350 B per entry); the
# oldest quarter goes when it is full.
_MID_SPREAD: dict[tuple[str, str], tuple[orjson.Fragment, orjson.Fragment]] = {}
_MID_SPREAD_MAX = 8192


def _mid_spread(bb: str, ba: str) -> tuple[orjson.Fragment, orjson.Fragment]:
    key = (bb, ba)
    v = _MID_SPREAD.get(key)
    if v is None:
        v = (orjson.Fragment(mid_text(bb, ba)), orjson.Fragment(spread_text(bb, ba)))
        if len(_MID_SPREAD) >= _MID_SPREAD_MAX:
            trim_oldest(_MID_SPREAD)
        _MID_SPREAD[key] = v
    return v


@dataclass(slots=True)
class BookRecord:
    """A normalized order book. ``bids`` best-first descending, ``asks`` best-first ascending."""

    venue: str
    instrument_id: str
    poll_key: str
    market_id: str
    outcome: str | None
    ts_ms: int
    bids: list[Level]
    asks: list[Level]
    latency_ms: float
    ob_ts_ms: int | None = None
    hash: str | None = None
    # Whether ``hash`` reproduces from the body as served (Polymarket): written next to ``hash``
    # whenever there is one; None = not checked. See docs/schema.md.
    hash_ok: bool | None = None
    tick_size: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The JSON of ``bids`` / ``asks`` when the maker has it already (a side repeated from the last
    # poll); None = made from the levels by to_json.
    bids_json: orjson.Fragment | None = None
    asks_json: orjson.Fragment | None = None

    @property
    def best_bid(self) -> str | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> str | None:
        return self.asks[0][0] if self.asks else None

    def to_json(self) -> bytes:
        bb, ba = self.best_bid, self.best_ask
        both = bb is not None and ba is not None
        rec: dict[str, Any] = {
            "record_type": "orderbook",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "poll_key": self.poll_key,
            "market_id": self.market_id,
            "outcome": self.outcome,
            "ts_ms": self.ts_ms,
        }
        if self.ob_ts_ms is not None:
            rec["ob_ts_ms"] = self.ob_ts_ms
        rec["bids"] = self.bids_json or levels_json(self.bids)
        rec["asks"] = self.asks_json or levels_json(self.asks)
        rec["best_bid"] = _num(bb)
        rec["best_ask"] = _num(ba)
        if both:
            rec["mid"], rec["spread"] = _mid_spread(bb, ba)
        else:
            rec["mid"] = rec["spread"] = None
        if self.hash is not None:
            rec["hash"] = self.hash
            rec["hash_ok"] = self.hash_ok
        if self.tick_size is not None:
            rec["tick_size"] = _num(self.tick_size)
        rec["latency_ms"] = round(self.latency_ms, 3)
        rec["source"] = "rest"
        for k, v in self.extra.items():
            rec[k] = _num(v) if isinstance(v, DecText) else v
        return orjson.dumps(rec)


    def content(self) -> tuple:
        """What makes two books of one instrument the same book: everything but the fields that
        move with every poll (:data:`POLL_FIELDS`)."""
        return (self.bids, self.asks, self.tick_size, self.extra, self.outcome, self.market_id)


# Fields of an orderbook record that move with every poll (capture, venue time, the venue's hash,
# which covers the timestamp, and our latency): an ``unchanged`` record carries exactly these.
POLL_FIELDS = ("ts_ms", "ob_ts_ms", "hash", "hash_ok", "latency_ms")


@dataclass(slots=True)
class UnchangedRecord:
    """A poll whose book is the same as the instrument's last ``orderbook`` record in the same
    file (writer.record = "changes"): only the per-poll fields. Readers expand it back into the
    full record (collector.store.changes.expand); see docs/schema.md."""

    venue: str
    instrument_id: str
    ts_ms: int
    latency_ms: float
    ob_ts_ms: int | None = None
    hash: str | None = None
    hash_ok: bool | None = None

    def to_json(self) -> bytes:
        rec: dict[str, Any] = {
            "record_type": "unchanged",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "ts_ms": self.ts_ms,
        }
        if self.ob_ts_ms is not None:
            rec["ob_ts_ms"] = self.ob_ts_ms
        if self.hash is not None:
            rec["hash"] = self.hash
            rec["hash_ok"] = self.hash_ok
        rec["latency_ms"] = round(self.latency_ms, 3)
        return orjson.dumps(rec)


class DecText(str):
    """Marks an ``extra`` value that is decimal text and must be written as a JSON number."""

    __slots__ = ()


@dataclass(slots=True)
class GapRecord:
    """A span without books, written to the orderbooks stream.

    An instrument gap (``instrument_id`` set, ``failures`` counted) spans its last good book to the
    first good one after a run of failures; a venue gap (``instrument_id`` None, ``failures`` None,
    reason ``cooldown:<reason>``) spans a cooldown. ``failures`` is written only when it is set,
    which is how readers tell the two apart. In the ``trades`` stream ``backfilled`` is always set:
    whether the venue's trades endpoint was read over the whole span afterwards."""

    venue: str
    instrument_id: str | None
    from_ts_ms: int | None  # None: no good book before (it failed from the start)
    to_ts_ms: int
    reason: str
    failures: int | None = None
    backfilled: bool | None = None

    def to_json(self) -> bytes:
        rec: dict[str, Any] = {
            "record_type": "gap",
            "schema_version": SCHEMA_VERSION,
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "ts_ms": self.to_ts_ms,
            "from_ts_ms": self.from_ts_ms,
            "to_ts_ms": self.to_ts_ms,
            "reason": self.reason,
        }
        if self.failures is not None:
            rec["failures"] = self.failures
        if self.backfilled is not None:
            rec["backfilled"] = self.backfilled
        return orjson.dumps(rec)


@dataclass(slots=True)
class PollErrorRecord:
    """One failed poll of one instrument (sampled: the first failure of a run, then every Nth)."""

    ts_ms: int
    venue: str
    market_id: str
    slug: str
    instrument_id: str
    http_status: int | None
    latency_ms: float
    error_type: str  # the VenueError kind
    consecutive_failures: int
    message: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "record_type": "poll_error",
                "schema_version": SCHEMA_VERSION,
                "ts_ms": self.ts_ms,
                "venue": self.venue,
                "market_id": self.market_id,
                "slug": self.slug,
                "instrument_id": self.instrument_id,
                "http_status": self.http_status,
                "latency_ms": self.latency_ms,
                "error_type": self.error_type,
                "consecutive_failures": self.consecutive_failures,
                "message": self.message,
            }
        )


@dataclass(slots=True)
class PollStats:
    """A venue's poll_stats record: counts since the previous record plus current gauges.

    Field order is the JSON key order (after ``record_type`` and ``schema_version``); the names
    are the record's keys, documented in docs/schema.md.
    """

    ts_ms: int
    venue: str
    active_instruments: int
    requests: int
    requests_ok: int
    requests_failed: int
    submitted: int
    ok: int
    failed: int
    books_written: int
    books_changed: int
    books_unchanged: int
    gaps: int
    http_4xx: int
    http_5xx: int
    http_429: int
    timeouts: int
    held_back: int
    errors: dict[str, int]  # VenueError kind -> failed polls
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    cooldown_remaining_s: float
    cooldown_reason: str | None
    workers: int
    inflight_cap: int
    inflight: int
    target_interval_s: float
    achieved_interval_mean_s: float | None
    achieved_interval_p50_s: float | None
    achieved_interval_p99_s: float | None
    book_age_p50_s: float | None
    book_age_p99_s: float | None
    stale_instruments: int
    expired_dropped: int
    hash_mismatch: int
    snapshot_error: str | None
    writer_error: str | None
    records_dropped: int
    stream: dict[str, Any] | None = None  # the venue's stream capture this period (collector.stream.stats)
    trades: dict[str, Any] | None = None  # its trade capture this period (collector.trades.lane)

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict (the heartbeat carries it too), keys in record order."""
        rec: dict[str, Any] = {"record_type": "poll_stats", "schema_version": SCHEMA_VERSION}
        for name in _POLL_STATS_FIELDS:
            rec[name] = getattr(self, name)
        return rec

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


_POLL_STATS_FIELDS = tuple(PollStats.__dataclass_fields__)


@dataclass(slots=True)
class MarketRecord:
    """A change of the active set (discovery): the envelope, then every Instrument field."""

    event: str  # "added" | "removed"
    reason: str  # "rule:<name>" | "closed_or_gone" | "expired"
    ts_ms: int  # the discovery run
    instrument: Instrument

    def to_dict(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "record_type": "market",
            "schema_version": SCHEMA_VERSION,
            "event": self.event,
            "reason": self.reason,
            "ts_ms": self.ts_ms,
        }
        rec.update(self.instrument.flat())
        return rec

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
