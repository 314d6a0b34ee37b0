"""Books rebuilt from stream capture: the book after every ``book_changes`` record, the book in
force at a time, and one time line of stream and REST books.

Replay applies each instrument's records in file order (:mod:`collector.read.changes`) to a
:class:`~collector.read.book.LiveBook`. A replay from ``start`` and an as-of lookup begin at the
instrument's last snapshot before the question (:func:`~collector.read.timeline.locate`), within
``lookback``; with no snapshot in that window the book is unknown (``no_snapshot``) until one.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from collector.model.versions import check_schema_version
from collector.read.book import BookState, LiveBook, rest_state
from collector.read.changes import (
    BOOK_TYPES,
    change_files,
    id_prefilter,
    line_key,
    text_record,
)
from collector.read.datafiles import SLACK_MS, DataFile
from collector.read.progress import ReadStats
from collector.read.records import iter_books
from collector.read.scan import expand_instruments
from collector.read.timeline import CLOCKS, Plan, locate
from collector.read.times import duration_ms, opt_time, parse_time
from collector.store.files import file_lines
from collector.store.layout import DAY_MS

__all__ = ["forward", "merge_books", "records", "replay", "stream_book_at", "stream_books_at"]


def records(
    files: Sequence[DataFile],
    plan: Plan,
    ids: set[str] | None,
    *,
    last_file: int | None = None,
    stats: ReadStats | None = None,
) -> Iterator[tuple[int, str | None, dict]]:
    """``(pos, instrument_id, record)`` of each book record of ``ids`` (None: all) from
    ``plan.first_file`` to ``last_file`` (inclusive; default the last), skipping each
    instrument's lines before ``plan.begin``; instrument_id None for a venue-wide gap."""
    begin = plan.begin
    stop = len(files) - 1 if last_file is None else last_file
    maybe = id_prefilter(ids)
    for fi in range(plan.first_file, stop + 1):
        df = files[fi]
        base = fi << 32
        n = 0
        for n, line in enumerate(file_lines(df.path), 1):  # noqa: B007 - n counts lines
            if maybe is not None and not maybe(line):
                continue
            key = line_key(line)  # raw: no parse for the lines skipped
            if key is None or key[0] not in BOOK_TYPES:
                continue
            iid = key[1]
            pos = base | n
            if iid is None:
                if key[0] != "gap":
                    continue
            elif (ids is not None and iid not in ids) or pos < begin.get(iid, 0):
                continue
            rec = text_record(line)
            if rec is None or type(rec.get("ts_ms")) is not int or rec.get("record_type") != key[0]:
                continue
            check_schema_version(rec, f"{df.path} line {n}")  # a newer collector's record: not guessed at
            if stats is not None:
                stats.records += 1
            yield pos, iid, rec
        if stats is not None:
            stats.files += 1
            stats.lines += n
            stats.bytes += df.size
            stats.by_kind[df.kind] = stats.by_kind.get(df.kind, 0) + 1


def forward(
    files: Sequence[DataFile],
    plan: Plan,
    venue: str,
    ids: set[str] | None,
    *,
    last_file: int | None = None,
    stats: ReadStats | None = None,
) -> Iterator[tuple[int, LiveBook]]:
    """``(pos, book)`` after each record of :func:`records`: ``book`` is the instrument's live
    state, valid until the next item (``book.state()`` keeps it). A venue-wide gap makes every
    book unknown: every book seen (and every one of ``ids``) is yielded."""
    books: dict[str, LiveBook] = {}
    for pos, iid, rec in records(files, plan, ids, last_file=last_file, stats=stats):
        for who in (iid,) if iid is not None else sorted(set(books) | (ids or set())):
            b = books.get(who)
            if b is None:
                b = books[who] = LiveBook(venue, who)
            b.apply(rec)
            yield pos, b


def replay(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    lookback: Any = DAY_MS,
    stats: ReadStats | None = None,
) -> Iterator[BookState]:
    """The book after each ``book_snapshot``, ``book_change`` and ``gap`` record with
    ``start <= ts_ms < end``, in file order (``last_trade`` records change no book).

    The books at ``start`` are rebuilt from each instrument's last snapshot before it, looking
    back at most ``lookback`` (ms, timedelta or ``"6h"``). With ``instruments`` None every
    instrument is replayed and the whole lookback is scanned (raw lines, no parsing); naming the
    instruments stops at their snapshots.
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    ids = expand_instruments(instruments, [venue])
    lo = None if start_ms is None else start_ms - duration_ms(lookback)
    files = change_files(data_dir, venue, lo, end_ms)
    plan = Plan(0) if start_ms is None else locate(files, ids, start=start_ms)
    for _pos, b in forward(files, plan, venue, ids, stats=stats):
        ts = b._last["ts_ms"]
        if (start_ms is None or ts >= start_ms) and (end_ms is None or ts < end_ms):
            yield b.state()


def stream_books_at(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str,
    t: Any,
    *,
    clock: str = "ts_ms",
    lookback: Any = DAY_MS,
) -> dict[str, BookState]:
    """The replayed book of each instrument in force at ``t``: the book after its last record,
    in file order, whose ``clock`` is ``<= t``.

    ``clock="ts_ms"`` (receive time, the default) or ``"ob_ts_ms"`` (venue time; records are
    assumed to arrive within a minute of their venue time). A gap counts from its
    ``from_ts_ms`` (:mod:`collector.read.timeline`), so a book is unknown during a disconnect or
    a repaired span even though the gap record is written at its end (read up to ``lookback``
    after ``t``). Replays
    from the last snapshot before that record, within ``lookback``. An unknown book is returned
    with ``status`` ``gap`` or ``no_snapshot``; instruments with no record in the window are absent.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    t_ms = parse_time(t)
    ids = expand_instruments(instruments, [venue]) or set()
    if not ids:
        return {}
    back = duration_ms(lookback)
    skew = SLACK_MS if clock == "ob_ts_ms" else 0
    # files after t + skew are read only for a gap that reaches back to t (written when it closed)
    files = change_files(data_dir, venue, t_ms - back, t_ms + 1 + skew + back)
    upto = max((i for i, f in enumerate(files) if f.lo_ms < t_ms + 1 + skew), default=-1)
    plan = locate(files, ids, t=t_ms, clock=clock, upto=upto)
    if not plan.at:
        return {}
    at = plan.at
    out: dict[str, BookState] = {}
    for pos, b in forward(files, plan, venue, set(at), last_file=max(at.values()) >> 32):
        if pos <= at.get(b.instrument_id, -1):  # the last applied up to `at` (it may not parse)
            out[b.instrument_id] = b.state()
    return out


def stream_book_at(
    data_dir: str | os.PathLike[str], venue: str, instrument: str, t: Any, *, clock: str = "ts_ms", lookback: Any = DAY_MS
) -> BookState | None:
    """The replayed book of one instrument in force at ``t`` (see :func:`stream_books_at`), or None."""
    res = stream_books_at(data_dir, venue, [instrument], t, clock=clock, lookback=lookback)
    return next(iter(res.values()), None)


def rest_books(
    data_dir: str | os.PathLike[str], venue: str, instruments: Iterable[str] | str | None, start: Any, end: Any
) -> Iterator[BookState]:
    """Polled ``orderbook`` records as :class:`BookState` (``source="rest"``), ordered by ``ts_ms``."""
    for rec in iter_books(data_dir, venue, instruments, start, end, exact=True):
        yield rest_state(rec)


def merge_books(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    lookback: Any = DAY_MS,
) -> Iterator[BookState]:
    """Stream-replayed and REST books in one sequence ordered by ``ts_ms`` (receive time), each
    tagged by ``source`` (``"stream"`` / ``"rest"``); on equal ``ts_ms`` the stream book first.
    Stream books keep their file order among themselves."""
    stream = replay(data_dir, venue, instruments, start, end, lookback=lookback)
    rest = rest_books(data_dir, venue, instruments, start, end)
    # heapq.merge takes items from the front of each input only: each source keeps its order
    return heapq.merge(stream, rest, key=lambda b: b.ts_ms)
