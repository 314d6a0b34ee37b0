"""A Polymarket book reply, on the fetch thread: split into its books without decoding the levels,
each book's venue hash checked on the bytes as served, and a content key for change detection.

``POST /books`` answers ~100 books of ~2-3 kB each. Decoding every level into dicts and
re-serializing each book to check its hash was most of the poller's CPU, and most polls find the
book as it was. Here msgspec cuts the reply into one raw item per book and reads only the scalar
fields; the level arrays stay bytes. The lane compares those bytes with the instrument's last
book and, when equal, writes an ``unchanged`` record without normalizing anything. A changed book
is parsed (orjson) and normalized in full by collector.venues.polymarket_book.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import msgspec
import orjson

from collector.model import errors
from collector.model.records import BookRecord, Instrument, levels_json
from collector.venues import polyhash
from collector.venues.base import PolledBook
from collector.venues.http import parse_json
from collector.venues.polyhash import ExactReply
from collector.venues.polymarket_book import (
    VENUE,
    assemble,
    book_record,
    ob_ts,
    struct_levels,
)

__all__ = ["Head", "Repeats", "body_of", "head", "items", "polled", "record"]

_sha1 = hashlib.sha1
_NULL = msgspec.Raw(b"null")


class Head(msgspec.Struct, gc=False):  # scalars and bytes only: nothing for the GC to track
    """The fields of a book item the poller needs before deciding to normalize it."""

    asset_id: Any = None
    timestamp: Any = None
    hash: Any = None
    tick_size: Any = None
    min_order_size: Any = None
    neg_risk: Any = None
    last_trade_price: Any = None
    bids: msgspec.Raw = _NULL
    asks: msgspec.Raw = _NULL


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_HEAD = msgspec.json.Decoder(Head)


def items(content: bytes, what: str) -> list[msgspec.Raw]:
    """The items of a JSON array reply; BadPayload for an HTML page, junk or another shape."""
    try:
        return _ITEMS.decode(content)
    except msgspec.ValidationError:
        data = parse_json(content, VENUE)  # valid JSON of another shape: say which
        raise errors.BadPayload(f"{what}: expected an array, got {type(data).__name__}", venue=VENUE) from None
    except msgspec.DecodeError:
        parse_json(content, VENUE)  # raises the same BadPayload as every other reply
        raise errors.BadPayload(f"{what}: malformed JSON", venue=VENUE) from None


def head(item: Any) -> Head | None:
    """The scalar fields of one item; None when it is not a JSON object."""
    try:
        return _HEAD.decode(item)
    except msgspec.DecodeError:  # ValidationError too: not an object
        return None


def polled(item: Any, hd: Head, verify: bool, exact: ExactReply | None, index: int | None) -> PolledBook:
    """One book as the lane gets it: raw item, content key, per-poll fields, hash verdict."""
    h = hd.hash if type(hd.hash) is str and hd.hash else None
    ok: bool | None = None
    raw = item if type(item) is bytes else bytes(item)
    if verify and h is not None:
        # The venue hashes the body as it serves it with "hash":"": redo exactly that on the bytes.
        blank = raw.replace(b'"hash":"' + h.encode() + b'"', b'"hash":""', 1)
        ok = blank != raw and _sha1(blank).hexdigest() == h
        if not ok:  # served in another layout (spaces, key order)? the general check decides
            ok = polyhash.check(_parse(raw), exact, index)
    # Copies (bytes) so the key does not keep the whole reply alive.
    content = (bytes(hd.bids), bytes(hd.asks), hd.tick_size, hd.min_order_size, hd.neg_risk, hd.last_trade_price)
    return PolledBook(raw, content, ob_ts(hd.timestamp), h, ok)


_AID = b'"asset_id":"'


class Repeats:
    """Each token's last book as served, shared by the fetch threads: a reply item byte for byte
    the same as the last one (an unchanged book: ``timestamp`` and ``hash`` move only with the
    book) *is* that book, hash verdict included, so it is neither decoded nor hashed again.

    Looked up by the asset id found where the venue puts it (the second key); that is only a
    lookup key: a hit needs every byte equal to a body whose head was decoded in full."""

    __slots__ = ("_last", "_lock", "limit")

    def __init__(self, lock: Any, limit: int = 65_536) -> None:
        self._last: dict[bytes, tuple[bytes, PolledBook, str]] = {}
        self._lock = lock
        self.limit = limit

    def get(self, raw: bytes) -> tuple[str, PolledBook] | None:
        """(asset id, a fresh PolledBook) when ``raw`` repeats its token's last book, else None."""
        j = raw.find(_AID, 0, 160)
        if j < 0:
            return None
        j += 12
        k = raw.find(b'"', j, j + 120)
        last = self._last.get(raw[j:k]) if k > 0 else None
        if last is None or last[0] != raw:
            return None
        b = last[1]
        # The cached bytes and content key: the repeat's own copies are dropped at once.
        return last[2], PolledBook(last[0], b.content, b.ob_ts_ms, b.hash, b.hash_ok)

    def put(self, aid: str, book: PolledBook) -> None:
        """Remember a book just decoded (not one whose hash failed: that is counted every poll)."""
        if book.hash_ok is False or type(book.body) is not bytes:
            return
        last = self._last
        last[aid.encode()] = (book.body, book, aid)
        if len(last) > self.limit:
            with self._lock:  # one thread trims; the others' get/put stay atomic under the GIL
                for k in list(itertools.islice(last, max(1, len(last) // 4))):
                    last.pop(k, None)


class _Level(msgspec.Struct, gc=False):
    price: Any
    size: Any


_LEVELS = msgspec.json.Decoder(list[_Level])
SIDES_MAX = 65_536  # instruments whose last levels are kept (least recently polled dropped first)


def record(inst: Instrument, book: PolledBook, ts_ms: int, latency_ms: float,
           sides: dict[str, tuple]) -> BookRecord:
    """A polled book -> BookRecord without parsing the whole body: a side whose bytes are those
    of the instrument's last book keeps its levels and their JSON (``sides``: poll key -> last
    (bids bytes, bids, bids JSON, asks bytes, asks, asks JSON)); only a changed side is decoded
    and normalized."""
    if type(book.body) is dict:  # parsed already (e.g. the asset id did not match the request)
        return book_record(inst, book.body, book.hash_ok, ts_ms, latency_ms)
    bids_raw, asks_raw, tick, mos, nr, ltp = book.content
    key = inst.poll_key
    prev = sides.pop(key, None)  # re-inserted below: the dict stays in least-recent-first order
    if prev is not None and prev[0] == bids_raw:
        bids, bj = prev[1], prev[2]
    else:
        bids = _side(bids_raw, "bids", True, prev[1] if prev is not None else None)
        bj = levels_json(bids)
    if prev is not None and prev[3] == asks_raw:
        asks, aj = prev[4], prev[5]
    else:
        asks = _side(asks_raw, "asks", False, prev[4] if prev is not None else None)
        aj = levels_json(asks)
    rec = assemble(inst, bids, asks, ltp, mos, nr, tick, book.ob_ts_ms, book.hash, book.hash_ok, ts_ms, latency_ms)
    rec.bids_json, rec.asks_json = bj, aj
    sides[key] = (bids_raw, bids, bj, asks_raw, asks, aj)
    if len(sides) > SIDES_MAX:
        del sides[next(iter(sides))]
    return rec


def _side(raw: bytes, name: str, descending: bool, prev: list | None) -> list:
    try:
        side = _LEVELS.decode(raw)
    except msgspec.ValidationError:
        raise errors.BadPayload(f"book {name} is not a list of levels", venue=VENUE) from None
    except msgspec.DecodeError as e:
        raise errors.BadPayload(f"book {name}: {e}", venue=VENUE) from None
    return struct_levels(side, name, descending, prev)


def body_of(book: PolledBook) -> dict[str, Any]:
    """The parsed body of a polled book (parsed once, then kept in ``book.body``)."""
    body = book.body
    if type(body) is not dict:
        body = book.body = _parse(body)
    return body


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.BadPayload(f"book item: {e}", venue=VENUE) from None
    if type(body) is not dict:
        raise errors.BadPayload("book is not an object", venue=VENUE)
    return body
