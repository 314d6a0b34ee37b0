"""Trades joined to the book in force just before each one (an as-of join on the poller's books).

The rule (docs/reading-data.md, "Trades and books"): a trade's book is the latest recorded book
of its instrument whose time is strictly before the trade's time, where each side's time is its
venue clock when it has one (``ob_ts_ms``) and its capture clock (``ts_ms``) otherwise. Both
clocks are on one time line within a second or so (NTP on our side, the venue's own clock), and
a backfilled trade's capture time is late by the backfill's delay, so the venue clock is the
only usable one for it. Ties on the book time: the last recorded. ``unchanged`` records count
as the books they repeat (:func:`collector.read.iter_books` expands them).

A trade gets no book (None) when a book gap of its instrument, or a venue-wide one, lies
between the book's capture and the trade (``gap.from_ts_ms < trade time`` and
``gap.to_ts_ms > book.ts_ms``): the book may have changed unseen, so it is not the one in force.
Books older than ``lookback`` are not used either.

``books="book_changes"`` joins stream capture's replayed books (:func:`collector.read.replay`,
:class:`~collector.read.BookState`) instead, by the same rule and with the stream's gap records;
a replayed book that is unknown (status ``gap`` or ``no_snapshot``) is None too.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from collector.read.book import GAP, NO_SNAPSHOT, BookState
from collector.read.datafiles import SLACK_MS
from collector.read.records import iter_books, iter_records
from collector.read.replay import replay
from collector.read.scan import expand_instruments
from collector.read.times import duration_ms, opt_time
from collector.read.trades import DEFAULT_LAG_MS, Trade, iter_trades
from collector.store.layout import BOOK_CHANGES_STREAM, BOOK_STREAM, DAY_MS

__all__ = ["TradeBook", "book_time", "load_trades_with_books", "trades_with_books"]

# A book's venue time may lag its capture time by this much: books are read this far past a trade.
BOOK_AHEAD_MS = SLACK_MS


@dataclass(frozen=True, slots=True)
class TradeBook:
    """A trade and the book in force just before it (None: no book, or not a trustworthy one)."""

    trade: Trade
    # an orderbook record as collector.read.iter_books returns it, or with books="book_changes"
    # the replayed book
    book: dict | BookState | None


def book_time(book: dict | BookState) -> int:
    """The time a book is ordered by in the join: its venue time, else its capture time."""
    if type(book) is BookState:
        return book.ts_ms if book.ob_ts_ms is None else book.ob_ts_ms
    ob = book.get("ob_ts_ms")
    return ob if type(ob) is int else book["ts_ms"]


def _ts(book: dict | BookState) -> int:
    return book.ts_ms if type(book) is BookState else book["ts_ms"]


def _iid(book: dict | BookState) -> str:
    return book.instrument_id if type(book) is BookState else book["instrument_id"]


class _Books:
    """The books of one instrument read so far, sorted by (book time, ts_ms, read order)."""

    __slots__ = ("keys", "books")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int, int]] = []
        self.books: list[Any] = []

    def add(self, key: tuple[int, int, int], book: Any) -> None:
        i = bisect.bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.books.insert(i, book)

    def before(self, t: int) -> Any:
        i = bisect.bisect_left(self.keys, (t,)) - 1
        return self.books[i] if i >= 0 else None

    def prune(self, t: int) -> None:
        """Keep the last book before ``t - BOOK_AHEAD_MS`` and everything after (later trades are
        at or after ``t``; a book read later lies at most BOOK_AHEAD_MS before the ones read)."""
        i = bisect.bisect_left(self.keys, (t - 2 * BOOK_AHEAD_MS,)) - 1
        if i > 0:
            del self.keys[:i], self.books[:i]


def _book_gaps(data_dir: Any, venue: str, stream: str, ids: set[str] | None, lo: int | None, hi: int | None
               ) -> tuple[dict[str, list[tuple[int, int]]], list[tuple[int, int]]]:
    """Book gaps as ``({instrument: [(from, to)]}, [venue-wide (from, to)])``; ``from`` None = -inf."""
    per: dict[str, list[tuple[int, int]]] = {}
    wide: list[tuple[int, int]] = []
    for g in iter_records(data_dir, venue, stream, lo, hi, instruments=ids, record_types={"gap"}):
        to, frm = g.get("to_ts_ms"), g.get("from_ts_ms")
        if type(to) is not int:
            continue
        span = (frm if type(frm) is int else -(1 << 62), to)
        iid = g.get("instrument_id")
        if iid is None:
            wide.append(span)
        else:
            per.setdefault(iid, []).append(span)
    return per, wide


def _gap_between(spans: Iterable[tuple[int, int]], book_ts: int, t: int) -> bool:
    return any(frm < t and to > book_ts for frm, to in spans)


def trades_with_books(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    lookback: Any = DAY_MS,
    lag: Any = DEFAULT_LAG_MS,
    floats: bool = False,
    exact: bool = False,
    books: str = BOOK_STREAM,
) -> Iterator[TradeBook]:
    """Every trade of :func:`~collector.read.iter_trades` (same arguments) with its book (module doc).

    ``lookback``: how old a book may be (default one day). ``exact``: the books' numbers as
    Decimal (as :func:`~collector.read.iter_books`); ``floats``: the trades' as floats.
    ``books``: ``"orderbooks"`` (the poller's) or ``"book_changes"`` (stream capture's replay).
    Streams: books are read once, in capture order, alongside the trades.
    """
    if books not in (BOOK_STREAM, BOOK_CHANGES_STREAM):
        raise ValueError(f"books must be {BOOK_STREAM!r} or {BOOK_CHANGES_STREAM!r}, got {books!r}")
    start_ms, end_ms = opt_time(start), opt_time(end)
    back = duration_ms(lookback)
    ids = expand_instruments(instruments, [venue])
    b_lo = None if start_ms is None else start_ms - back
    b_hi = None if end_ms is None else end_ms + BOOK_AHEAD_MS
    gaps, wide = _book_gaps(data_dir, venue, books, ids, b_lo, None if end_ms is None else end_ms + back)
    src: Iterator[Any] = (iter_books(data_dir, venue, ids, b_lo, b_hi, exact=exact) if books == BOOK_STREAM
                          else replay(data_dir, venue, ids, b_lo, b_hi, lookback=back))
    nxt = next(src, None)
    hist: dict[str, _Books] = {}
    n = 0
    for tr in iter_trades(data_dir, venue, ids, start_ms, end_ms, floats=floats, lag=lag):
        t = tr.t_ms
        while nxt is not None and _ts(nxt) < t + BOOK_AHEAD_MS:
            n += 1
            h = hist.setdefault(_iid(nxt), _Books())
            h.add((book_time(nxt), _ts(nxt), n), nxt)
            h.prune(t)  # instruments without trades keep one book, not the day's
            nxt = next(src, None)
        h = hist.get(tr.instrument_id)
        book = h.before(t) if h is not None else None
        if book is not None:
            bts = _ts(book)
            if book_time(book) < t - back or _gap_between(gaps.get(tr.instrument_id, ()), bts, t) \
                    or _gap_between(wide, bts, t) or (type(book) is BookState and book.status in (GAP, NO_SNAPSHOT)):
                book = None
        yield TradeBook(tr, book)


def load_trades_with_books(*args: Any, **kwargs: Any) -> list[TradeBook]:
    """:func:`trades_with_books` as a list."""
    return list(trades_with_books(*args, **kwargs))
