"""A book at one moment, from either source: :class:`BookState` (what the readers hand out) and
:class:`LiveBook`, the replay state of one instrument that applies ``book_changes`` records.

Prices and sizes stay the exact decimal text of the files. A side is kept as its levels sorted by
value (:class:`decimal.Decimal` keys), so a change costs a bisect and only the side it touched
is copied into a new tuple.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from collector.model.decimals import fmt

__all__ = [
    "GAP",
    "NO_SNAPSHOT",
    "STATUSES",
    "TRUSTED",
    "UNTRUSTED",
    "BookState",
    "Level",
    "LiveBook",
    "rest_state",
]

Level = tuple[str, str]  # (price, size), exact decimal text

TRUSTED = "trusted"  # the venue's book, as far as the stream can tell
UNTRUSTED = "untrusted"  # known, but a change came while unsynced (or failed its hash) since the last snapshot
GAP = "gap"  # unknown: a gap record since the last snapshot
NO_SNAPSHOT = "no_snapshot"  # unknown: no snapshot yet (in the data read)
STATUSES = (TRUSTED, UNTRUSTED, GAP, NO_SNAPSHOT)


@dataclass(frozen=True, slots=True)
class BookState:
    """One instrument's book after one record: a replayed ``book_changes`` record
    (``source="stream"``) or a polled ``orderbook`` (``source="rest"``).

    ``ts_ms`` / ``ob_ts_ms`` / ``conn`` / ``seq`` / ``record_type`` are those of the record that
    produced it. ``bids`` (descending) and ``asks`` (ascending) are best-first ``(price, size)``
    text pairs, empty when the book is unknown (``status`` ``gap`` or ``no_snapshot``).
    """

    source: str
    venue: str
    instrument_id: str
    ts_ms: int
    ob_ts_ms: int | None
    status: str  # one of STATUSES
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    hash: str | None = None
    record_type: str = ""
    conn: str | None = None
    seq: int | None = None
    tick_size: str | None = None

    @property
    def known(self) -> bool:
        """The levels are the book (trusted or not), not a placeholder."""
        return self.status == TRUSTED or self.status == UNTRUSTED

    @property
    def trusted(self) -> bool:
        return self.status == TRUSTED

    @property
    def best_bid(self) -> str | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> str | None:
        return self.asks[0][0] if self.asks else None


# Price text -> (key of an ask, key of a bid). Prices repeat (a venue's ticks), so the Decimals
# are made once; cleared when it grows past the bound.
_KEYS: dict[str, tuple[Decimal, Decimal]] = {}
_KEYS_MAX = 1 << 16


def _keys(p: str) -> tuple[Decimal, Decimal]:
    k = _KEYS.get(p)
    if k is None:
        d = Decimal(p)
        k = (d, -d)
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[p] = k
    return k


def _is_zero(s: str) -> bool:
    if "e" in s or "E" in s:
        return Decimal(s) == 0
    return not s.strip("0.")


class _Side:
    """One side: levels best first with their sort keys (bids negated, so both ascend). The
    tuple handed out is made when asked for, once per change of the side."""

    __slots__ = ("which", "keys", "lv", "_tuple")

    def __init__(self, which: int) -> None:
        self.which = which  # index into _keys(): 0 asks (ascending), 1 bids (descending)
        self.clear()

    def clear(self) -> None:
        self.keys: list[Decimal] = []
        self.lv: list[Level] = []
        self._tuple: tuple[Level, ...] | None = ()

    @property
    def levels(self) -> tuple[Level, ...]:
        t = self._tuple
        if t is None:
            t = self._tuple = tuple(self.lv)
        return t

    def replace(self, levels: list[Level]) -> None:
        w = self.which
        keys = [_keys(p)[w] for p, _ in levels]
        if all(a < b for a, b in zip(keys, keys[1:])):
            self.keys, self.lv, self._tuple = keys, list(levels), None
            return
        # not best first, or a price twice: set one by one (the last one wins, as in a change)
        self.clear()
        self.set(levels, zero_removes=False)

    def set(self, changes: list[Level], *, zero_removes: bool = True) -> None:
        w, keys, lv = self.which, self.keys, self.lv
        for p, s in changes:
            k = _keys(p)[w]
            i = bisect_left(keys, k)
            here = i < len(keys) and keys[i] == k
            if zero_removes and _is_zero(s):
                if here:
                    del keys[i], lv[i]
            elif here:
                lv[i] = (p, s)
            else:
                keys.insert(i, k)
                lv.insert(i, (p, s))
        self._tuple = None


class LiveBook:
    """The replay state of one instrument: apply its ``book_changes`` records in file order.

    A ``book_snapshot`` replaces the book, its hash and tick size (trusted unless its
    ``hash_ok`` is false); a ``book_change`` sets the levels it lists, size 0 removing one, and
    makes the book untrusted until the next snapshot when it says ``synced: false`` or
    ``hash_ok: false``; a ``gap`` makes it unknown until the next snapshot, and changes do
    nothing to an unknown book. :meth:`state` is the book after the last record applied.
    """

    __slots__ = ("venue", "instrument_id", "bids", "asks", "status", "hash", "tick_size", "_last")

    def __init__(self, venue: str, instrument_id: str) -> None:
        self.venue = venue
        self.instrument_id = instrument_id
        self.bids = _Side(1)
        self.asks = _Side(0)
        self.status = NO_SNAPSHOT
        self.hash: str | None = None
        self.tick_size: str | None = None
        self._last: dict[str, Any] = {}

    def apply(self, rec: dict[str, Any]) -> bool:
        """Apply ``rec`` (a :func:`~collector.read.changes.text_record`); False when it changes no
        book (``last_trade``, unknown types) and was ignored."""
        rt = rec.get("record_type")
        if rt == "book_snapshot":
            self.bids.replace(rec.get("bids") or [])
            self.asks.replace(rec.get("asks") or [])
            self.status = UNTRUSTED if rec.get("hash_ok") is False else TRUSTED
            self.hash = rec.get("hash")
            self.tick_size = rec.get("tick_size")  # a snapshot is the whole state: no earlier tick
        elif rt == "book_change":
            if self.status == TRUSTED or self.status == UNTRUSTED:
                if rec.get("tick_size") is not None:
                    self.tick_size = rec["tick_size"]
                bids, asks = rec.get("bids"), rec.get("asks")
                if bids:
                    self.bids.set(bids)
                if asks:
                    self.asks.set(asks)
                if rec.get("synced") is False or rec.get("hash_ok") is False:
                    self.status = UNTRUSTED
                # a change without a hash that moved no level (tick size) leaves the book's hash
                if rec.get("hash") is not None or bids or asks:
                    self.hash = rec.get("hash")
        elif rt == "gap":
            self.bids.clear()
            self.asks.clear()
            self.status = GAP
            self.hash = self.tick_size = None
        else:
            return False
        self._last = rec
        return True

    def state(self) -> BookState:
        rec = self._last
        known = self.status == TRUSTED or self.status == UNTRUSTED
        ob, seq, conn = rec.get("ob_ts_ms"), rec.get("seq"), rec.get("conn")
        return BookState(
            "stream",
            self.venue,
            self.instrument_id,
            rec["ts_ms"],
            ob if type(ob) is int else None,
            self.status,
            self.bids.levels if known else (),
            self.asks.levels if known else (),
            self.hash if known else None,
            rec.get("record_type", ""),
            conn if isinstance(conn, str) else None,
            seq if type(seq) is int else None,
            self.tick_size if known else None,
        )


def _text(v: Any) -> str:
    """Exact text of a number read with ``exact=True`` (Decimal, or int for whole numbers)."""
    if isinstance(v, Decimal):
        return fmt(v)
    if type(v) is int:
        return str(v)
    if type(v) is float:  # only from a reader without exact=True: its shortest repr
        return fmt(Decimal(repr(v)))
    return str(v)


def rest_state(rec: dict[str, Any]) -> BookState:
    """A polled ``orderbook`` record (read with ``exact=True``) as a :class:`BookState`: trusted
    unless its ``hash_ok`` is false (the body did not match its hash)."""
    ob = rec.get("ob_ts_ms")
    tick = rec.get("tick_size")
    return BookState(
        "rest",
        rec.get("venue") or "",
        rec["instrument_id"],
        rec["ts_ms"],
        ob if type(ob) is int else None,
        UNTRUSTED if rec.get("hash_ok") is False else TRUSTED,
        tuple((_text(p), _text(s)) for p, s in rec.get("bids") or ()),
        tuple((_text(p), _text(s)) for p, s in rec.get("asks") or ()),
        rec.get("hash"),
        "orderbook",
        None,
        None,
        None if tick is None else _text(tick),
    )
