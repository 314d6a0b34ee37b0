"""Reconciliation: every REST ``orderbook`` sample against the stream-replayed book of the same
venue moment.

The moment (``clock="auto"``): a sample with a venue time (``ob_ts_ms``, Polymarket) is matched
on venue time: the replayed book after the last stream record with ``ob_ts_ms <= `` the sample's
(so the record of that very venue book when the stream has it); a sample without one
(Limitless) is matched on receive time: the replayed book in force at the sample's ``ts_ms``.
``clock="ts_ms"`` matches every sample on receive time. The REST and stream paths race by their
latencies (a REST book carries no sequence number), so a receive-time sample also agrees when a
trusted stream book within ``tolerance`` of its receive time equals it (that book is then the
comparison's ``stream``); venue-time matching is exact.

Outcomes: ``agree`` (levels equal, and hashes equal when both have one), ``disagree`` (with the
first difference), or not comparable: ``gap`` (the stream book is unknown after a gap),
``untrusted`` (unsynced since its last snapshot), ``no_stream`` (no stream book yet).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from collector.read.book import (
    GAP,
    NO_SNAPSHOT,
    TRUSTED,
    UNTRUSTED,
    BookState,
    Level,
    LiveBook,
)
from collector.read.changes import change_files
from collector.read.datafiles import SLACK_MS, DataFile
from collector.read.replay import records, rest_books, stream_books_at
from collector.read.scan import expand_instruments
from collector.read.timeline import (
    CLOCKS,
    VENUE,
    Entry,
    at_positions,
    locate,
    next_gaps,
    scan_entries,
)
from collector.read.times import duration_ms, opt_time
from collector.store.layout import DAY_MS

__all__ = ["OUTCOMES", "Comparison", "ReconcileReport", "first_difference", "iter_reconcile", "reconcile"]

AGREE, DISAGREE, NO_STREAM = "agree", "disagree", "no_stream"
OUTCOMES = (AGREE, DISAGREE, GAP, UNTRUSTED, NO_STREAM)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One REST sample and the stream book it was compared with (None: no stream record)."""

    rest: BookState
    stream: BookState | None
    clock: str  # the clock the moment was matched on: "ob_ts_ms" or "ts_ms"
    outcome: str  # one of OUTCOMES
    diff: str | None = None  # the first difference, for "disagree"

    @property
    def instrument_id(self) -> str:
        return self.rest.instrument_id


@dataclass
class ReconcileReport:
    """Counts over every REST sample, and the disagreements (the first ``max_disagreements``)."""

    samples: int = 0
    compared: int = 0  # agreed + disagreed
    agreed: int = 0
    disagreed: int = 0
    not_comparable: dict[str, int] = field(default_factory=lambda: {GAP: 0, UNTRUSTED: 0, NO_STREAM: 0})
    disagreements: list[Comparison] = field(default_factory=list)
    by_instrument: dict[str, dict[str, int]] = field(default_factory=dict)  # iid -> outcome -> samples

    def add(self, c: Comparison, max_disagreements: int) -> None:
        self.samples += 1
        per = self.by_instrument.setdefault(c.instrument_id, dict.fromkeys(OUTCOMES, 0))
        per[c.outcome] += 1
        if c.outcome == AGREE:
            self.compared += 1
            self.agreed += 1
        elif c.outcome == DISAGREE:
            self.compared += 1
            self.disagreed += 1
            if len(self.disagreements) < max_disagreements:
                self.disagreements.append(c)
        else:
            self.not_comparable[c.outcome] += 1


def _same(a: Level | None, b: Level | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    return Decimal(a[0]) == Decimal(b[0]) and Decimal(a[1]) == Decimal(b[1])  # e.g. "1.50" vs "1.5"


def _show(lv: Level | None) -> str:
    return "none" if lv is None else f"{lv[0]} x {lv[1]}"


def first_difference(stream: BookState, rest: BookState, depth: int | None = None) -> str | None:
    """The first level (best first, bids then asks) where the books differ, then the hash when
    both have one and ``depth`` is None; None when they agree. Levels compare by value."""
    for side in ("bids", "asks"):
        a, b = getattr(stream, side), getattr(rest, side)
        if depth is not None:
            a, b = a[:depth], b[:depth]
        for i in range(max(len(a), len(b))):
            la = a[i] if i < len(a) else None
            lb = b[i] if i < len(b) else None
            if not _same(la, lb):
                return f"{side}[{i}]: stream {_show(la)}, rest {_show(lb)}"
    if depth is None and stream.hash is not None and rest.hash is not None and stream.hash != rest.hash:
        return f"hash: stream {stream.hash}, rest {rest.hash}"
    return None


def _compare(rest: BookState, stream: BookState | None, clock: str, depth: int | None) -> Comparison:
    if stream is None or stream.status == NO_SNAPSHOT:
        return Comparison(rest, stream, clock, NO_STREAM)
    if stream.status in (GAP, UNTRUSTED):
        return Comparison(rest, stream, clock, stream.status)
    diff = first_difference(stream, rest, depth)
    return Comparison(rest, stream, clock, AGREE if diff is None else DISAGREE, diff)


def _entries(files: Sequence[DataFile], first: int, upto: int, ids: set[str]) -> dict[str, list[Entry]]:
    """Each instrument's entries in ``files[first:upto + 1]`` with the venue-wide gaps, plus its
    next entry after them when that is a gap: written when it closed, it may cover a sample."""
    entries: dict[str, list[Entry]] = {}
    venue_gaps: list[Entry] = []
    for fi in range(first, upto + 1):
        for iid, es in scan_entries(files[fi], fi, ids).items():
            (venue_gaps if iid == VENUE else entries.setdefault(iid, [])).extend(es)
    if venue_gaps:
        for iid in ids:
            entries[iid] = sorted(entries.get(iid, []) + venue_gaps)
    for iid, more in next_gaps(files, upto + 1, ids).items():
        entries.setdefault(iid, []).extend(more)
    return entries


class _Open:
    """A sample the replay has reached: its comparison at its moment (``exact``) and, for a
    receive-time one, a trusted book within its window that equals it (``match``)."""

    __slots__ = ("n", "s", "c", "pos", "hi", "exact", "match")

    def __init__(self, n: int, s: BookState, c: str, pos: int, hi: int) -> None:
        self.n, self.s, self.c, self.pos, self.hi = n, s, c, pos, hi
        self.exact: Comparison | None = None
        self.match: BookState | None = None

    def meet(self, book: LiveBook | None, depth: int | None) -> None:
        if self.match is not None or book is None or book.status != TRUSTED:
            return
        if depth is None and (len(book.bids.lv) != len(self.s.bids) or len(book.asks.lv) != len(self.s.asks)):
            return  # cheap: most books met in a window differ in length
        st = book.state()
        if first_difference(st, self.s, depth) is None:
            self.match = st

    def result(self) -> Comparison:
        ex = self.exact
        assert ex is not None
        if ex.outcome == DISAGREE and self.match is not None:
            return Comparison(self.s, self.match, self.c, AGREE)
        return ex


def _window(
    data_dir: str | os.PathLike[str],
    venue: str,
    samples: list[BookState],
    w0: int,
    w1: int,
    clock: str,
    depth: int | None,
    lookback: int,
    tol: int,
) -> list[Comparison]:
    """The comparisons of the REST samples of one window ``[w0, w1)``."""
    ids = {s.instrument_id for s in samples}
    # stream records of a sample's venue moment may arrive up to SLACK_MS after its receive time
    lo, hi = w0 - SLACK_MS - tol, w1 + SLACK_MS + tol
    files = change_files(data_dir, venue, lo - lookback, hi + lookback)
    upto = max((i for i, f in enumerate(files) if f.lo_ms < hi), default=-1)
    plan = locate(files, ids, start=lo, upto=upto)
    entries = _entries(files, plan.first_file, upto, ids)
    # iid -> (first position of its window, sample), largest first; a receive-time sample's
    # window is [ts_ms - tol, ts_ms + tol], a venue-time sample's its moment alone
    pending: dict[str, list[tuple[int, _Open]]] = {}
    out: list[tuple[int, Comparison]] = []
    by_iid: dict[str, list[tuple[int, BookState]]] = {}
    for n, s in enumerate(samples):
        by_iid.setdefault(s.instrument_id, []).append((n, s))
    late: list[tuple[int, BookState, str]] = []  # in force before the replay's start: looked up alone
    for iid, group in by_iid.items():
        es = entries.get(iid, [])
        begin = plan.begin.get(iid, plan.first_file << 32)
        for c in CLOCKS:
            chosen = [(n, s) for n, s in group if _clock_of(s, clock) == c]
            if not chosen:
                continue
            times = [s.ob_ts_ms if c == "ob_ts_ms" else s.ts_ms for _, s in chosen]
            w = tol if c == "ts_ms" else 0
            at = at_positions(es, c, times)
            firsts = at_positions(es, c, [t - w for t in times]) if w else at
            lasts = at_positions(es, c, [t + w for t in times]) if w else at
            for (n, s), pos, p0, p1 in zip(chosen, at, firsts, lasts):  # type: ignore[arg-type]
                if pos is None:
                    out.append((n, _compare(s, None, c, depth)))
                elif pos < begin:
                    late.append((n, s, c))
                else:
                    p0 = max(es[0][0] if p0 is None else p0, begin)  # None: the window starts before the first
                    pending.setdefault(iid, []).append((p0, _Open(n, s, c, pos, p1)))  # type: ignore[arg-type]
    for q in pending.values():
        q.sort(key=lambda x: x[0], reverse=True)  # pop() gives the smallest position
    books: dict[str, LiveBook] = {}
    opened: dict[str, list[_Open]] = {}

    def meet(iid: str, before: int | None) -> None:
        """Before the record at ``before`` changes the book: the samples whose window has begun
        meet the book in force now; those whose window it ends are compared."""
        q, now = pending[iid], opened.setdefault(iid, [])
        while q and (before is None or q[-1][0] < before):
            now.append(q.pop()[1])
        if not now:
            return
        b = books.get(iid)
        st = None
        keep = []
        for o in now:
            if o.exact is None and (before is None or o.pos < before):
                if st is None and b is not None:
                    st = b.state()
                o.exact = _compare(o.s, st, o.c, depth)
            if o.c == "ts_ms" and tol:
                o.meet(b, depth)
            if before is None or o.hi < before:
                out.append((o.n, o.result()))
            else:
                keep.append(o)
        opened[iid] = keep

    if pending:
        last = max(o.hi for q in pending.values() for _, o in q) >> 32
        for pos, iid, rec in records(files, plan, set(pending), last_file=last):
            for who in (iid,) if iid is not None else list(pending):
                if (pending.get(who) and pending[who][-1][0] < pos) or opened.get(who):
                    meet(who, pos)
                b = books.get(who)
                if b is None:
                    b = books[who] = LiveBook(venue, who)
                b.apply(rec)
    for iid in pending:
        meet(iid, None)
    for n, s, c in late:
        st = stream_books_at(data_dir, venue, [s.instrument_id], s.ob_ts_ms if c == "ob_ts_ms" else s.ts_ms,
                             clock=c, lookback=lookback)
        out.append((n, _compare(s, st.get(s.instrument_id), c, depth)))
    out.sort(key=lambda x: x[0])
    return [c for _, c in out]


def _clock_of(s: BookState, clock: str) -> str:
    """The clock a sample is matched on: venue time when it has one (unless ``ts_ms`` is forced)."""
    if clock == "ts_ms" or s.ob_ts_ms is None:
        return "ts_ms"
    return "ob_ts_ms"


def iter_reconcile(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    clock: str = "auto",
    depth: int | None = None,
    lookback: Any = DAY_MS,
    window: Any = "1h",
    tolerance: Any = "2s",
) -> Iterator[Comparison]:
    """A :class:`Comparison` for each REST sample with ``start <= ts_ms < end``, in REST order.

    ``depth``: compare the best ``depth`` levels of each side only (hashes are then not compared).
    The samples are taken ``window`` at a time (one window's samples are held in memory), each
    window's stream replay starting at the last snapshot before it (within ``lookback``).
    ``clock``: ``"auto"`` (venue time when the sample has one) or ``"ts_ms"`` (receive time).
    ``tolerance``: how far from its receive time a receive-time sample may meet its stream book.
    """
    if clock not in ("auto", "ts_ms"):
        raise ValueError(f"clock must be 'auto' or 'ts_ms', got {clock!r}")
    start_ms, end_ms = opt_time(start), opt_time(end)
    step, back, tol = duration_ms(window), duration_ms(lookback), duration_ms(tolerance)
    if step <= 0:
        raise ValueError("window must be positive")
    if tol < 0:
        raise ValueError("tolerance must not be negative")
    ids = expand_instruments(instruments, [venue])
    # one pass over the REST samples (ordered by ts_ms); windows without a sample are skipped
    w0: int | None = None
    batch: list[BookState] = []
    for s in rest_books(data_dir, venue, ids, start_ms, end_ms):
        if w0 is not None and s.ts_ms >= w0 + step:
            yield from _window(data_dir, venue, batch, w0, w0 + step, clock, depth, back, tol)
            batch = []
            w0 = None
        if w0 is None:
            w0 = s.ts_ms if start_ms is None else start_ms + (s.ts_ms - start_ms) // step * step
        batch.append(s)
    if batch:
        yield from _window(data_dir, venue, batch, w0, w0 + step, clock, depth, back, tol)  # type: ignore[arg-type]


def reconcile(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    clock: str = "auto",
    depth: int | None = None,
    lookback: Any = DAY_MS,
    window: Any = "1h",
    tolerance: Any = "2s",
    max_disagreements: int = 1000,
) -> ReconcileReport:
    """:func:`iter_reconcile` summed up: counts per outcome (overall and per instrument) and the
    first ``max_disagreements`` disagreements."""
    rep = ReconcileReport()
    for c in iter_reconcile(data_dir, venue, instruments, start, end, clock=clock, depth=depth,
                            lookback=lookback, window=window, tolerance=tolerance):
        rep.add(c, max_disagreements)
    return rep
