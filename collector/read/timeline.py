"""Where a replay must start and which record is in force at a time, from raw lines only.

An *entry* is ``(pos, ts_ms, clock_ms, ob_ts_ms, kind, from_ts_ms)`` for one book record of an
instrument: ``pos`` = file index << 32 | line number in the replay-ordered file list; ``kind`` is
:data:`CHANGE`, :data:`SNAPSHOT` or :data:`GAP` (a snapshot or a gap is a *reset*: what came
before no longer matters); ``from_ts_ms`` a gap's. :func:`locate` reads files newest first,
collecting entries until each instrument has a reset before the record the question is about,
so a replay starts at the last snapshot, not at the start of the day.

The time of a record on each clock (what "in force at t" compares):

* ``ts_ms`` (receive time): its ``ts_ms``; for a gap the millisecond after its ``from_ts_ms``
  (the last moment the book was known good: it is unknown from then on, although the gap is
  written when the book is back, possibly after changes that were already suspect).
* ``ob_ts_ms`` (venue time): its ``ob_ts_ms``; a gap takes the millisecond after the venue time
  of the last record received by its ``from_ts_ms`` (without one: of the record before it);
  another record without a venue time its ``ts_ms``.

A gap's ``from_ts_ms`` is never before the instrument's last snapshot (the book was good then at
least), so a gap after a snapshot cannot reach back past it.

The record in force at ``t`` is the last one, in file order, whose time is ``<= t``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from collector.read.changes import BOOK_TYPES, id_prefilter, line_key
from collector.read.datafiles import DataFile
from collector.store.files import file_lines

__all__ = ["CLOCKS", "Entry", "Plan", "at_positions", "locate", "next_gaps", "scan_entries"]

CLOCKS = ("ts_ms", "ob_ts_ms")
CHANGE, SNAPSHOT, GAP = 0, 1, 2
_KIND = {"book_change": CHANGE, "book_snapshot": SNAPSHOT, "gap": GAP}
Entry = tuple[int, int, int, "int | None", int, "int | None"]
VENUE = ""  # entries of venue-wide gaps (no instrument_id): they reset every instrument


@dataclass
class Plan:
    """Where the forward pass starts (``first_file``), the position each instrument's replay
    starts at (``begin``: its lines before are skipped; instruments absent start at the first
    file) and, for an as-of question, the position of the record in force (``at``)."""

    first_file: int
    begin: dict[str, int] = field(default_factory=dict)
    at: dict[str, int] = field(default_factory=dict)


def scan_entries(df: DataFile, fidx: int, ids: set[str] | None) -> dict[str, list[Entry]]:
    """Entries of one file by instrument (venue-wide gaps under :data:`VENUE`), in file order."""
    out: dict[str, list[Entry]] = {}
    base = fidx << 32
    maybe = id_prefilter(ids)
    for n, line in enumerate(file_lines(df.path), 1):
        if maybe is not None and not maybe(line):
            continue
        k = line_key(line)
        if k is None or k[0] not in BOOK_TYPES:
            continue
        rt, iid, ts, ob, frm = k
        if iid is None:
            if rt != "gap":
                continue
            iid = VENUE
        elif ids is not None and iid not in ids:
            continue
        clock = frm + 1 if rt == "gap" and frm is not None else ts
        out.setdefault(iid, []).append((base | n, ts, clock, ob, _KIND[rt], frm if rt == "gap" else None))
    return out


def _clocks(entries: Sequence[Entry], clock: str) -> tuple[list[int], list[bool]]:
    """Each entry's time on ``clock``, and which of them (gaps on venue time) took a time of
    their own because the entries do not reach back far enough (older files can change them)."""
    if clock == "ts_ms":
        return [e[2] for e in entries], [False] * len(entries)
    out: list[int] = []
    weak: list[bool] = []
    for i, e in enumerate(entries):
        w = False
        if e[3] is not None:
            c = e[3]
        elif e[4] == GAP:
            j = i - 1
            if e[5] is not None:  # the last record received by from_ts_ms
                while j >= 0 and entries[j][1] > e[5]:
                    j -= 1
            if j >= 0:
                c = out[j] + 1
            else:
                c, w = e[2], True
        else:
            c = e[1]
        out.append(c)
        weak.append(w)
    return out, weak


def _in_force(entries: Sequence[Entry], clock: str, t: int) -> tuple[int, bool]:
    """Index of the last entry whose time is <= t (-1: none), and whether older entries could
    still change that answer (an entry from k on has a time of its own)."""
    cs, weak = _clocks(entries, clock)
    k = -1
    for i in range(len(cs) - 1, -1, -1):
        if cs[i] <= t:
            k = i
            break
    return k, any(weak[max(k, 0) :])


def _last_before_start(entries: Sequence[Entry], start: int) -> int:
    """Index of the last entry before the first with ``ts_ms >= start`` (-1: none)."""
    for i, e in enumerate(entries):
        if e[1] >= start:
            return i - 1
    return len(entries) - 1


def _last_reset(entries: Sequence[Entry], k: int) -> int:
    for i in range(k, -1, -1):
        if entries[i][4] != CHANGE:
            return i
    return -1


def _merged(own: list[list[Entry]], venue: list[list[Entry]]) -> list[Entry]:
    """An instrument's entries (chunks newest first) with the venue-wide gaps, in file order."""
    out = [e for chunk in reversed(own) for e in chunk]
    if venue:
        out += [e for chunk in venue for e in chunk]
        out.sort()
    return out


def locate(
    files: Sequence[DataFile],
    ids: set[str] | None,
    *,
    start: int | None = None,
    t: int | None = None,
    clock: str = "ts_ms",
    upto: int | None = None,
) -> Plan:
    """Plan a forward pass over ``files`` (replay order), reading ``files[:upto + 1]`` backwards.

    ``start``: for a replay from ``start`` on: each instrument's replay begins at its last reset
    before its first record with ``ts_ms >= start``. ``t``: for the books in force at ``t`` on
    ``clock``: ``Plan.at`` is the position of that record, ``begin`` its last reset before; a
    gap written after ``upto`` that reaches back to ``t`` counts (:func:`next_gaps`).
    With ``ids`` None every instrument is wanted, so every file is read (no early stop).
    """
    if (start is None) == (t is None):
        raise ValueError("locate needs exactly one of start and t")
    n = len(files) if upto is None else upto + 1
    # as-of: every file read counts at once; replay: files before `ready` hold only records
    # before start, so from there on each first in-range record is known
    ready = n if start is None else next((i for i in range(n) if files[i].hi_ms > start), n)
    chunks: dict[str, list[list[Entry]]] = {}
    venue: list[list[Entry]] = []
    # iid -> (reset pos, pos of record k, the entries read when k is the last of them)
    done: dict[str, tuple[int, int, list[Entry] | None]] = {}
    plan = Plan(first_file=ready if start is not None else n)

    def settle(iid: str, final: bool) -> None:
        entries = _merged(chunks.get(iid, []), venue)
        if start is not None:
            k, unsure = _last_before_start(entries, start), False
        else:
            k, unsure = _in_force(entries, clock, t)  # type: ignore[arg-type]
        r = _last_reset(entries, k) if k >= 0 else -1
        if k >= 0 and (r >= 0 or final) and (not unsure or final):
            if r < 0 and start is not None:
                plan.begin[iid] = entries[k][0] + 1  # nothing before the range can be rebuilt: skip it
                return
            # no reset within the files read (r < 0): the as-of answer is record k, book unknown
            # no reset after k: a gap written later may still cover t (next_gaps)
            last = entries if start is None and _last_reset(entries, len(entries) - 1) <= k else None
            done[iid] = (entries[r if r >= 0 else k][0], entries[k][0], last)
            chunks.pop(iid, None)

    for fi in range(n - 1, -1, -1):
        df = files[fi]
        if start is not None and df.lo_ms >= start:
            continue  # only records at or after start: nothing to learn
        found = scan_entries(df, fi, ids)
        v = found.pop(VENUE, None)
        if v:
            venue.insert(0, v)
        for iid, es in found.items():
            if iid not in done:
                chunks.setdefault(iid, []).append(es)
        if start is not None and fi > ready:
            continue
        for iid in list(chunks) if (v or fi == ready) else list(found):
            if iid not in done:
                settle(iid, False)
        if ids is not None and all(i in done for i in ids):
            break
    for iid in list(chunks):
        if iid not in done:
            settle(iid, True)
    if t is not None and n < len(files):
        tail = {iid for iid, d in done.items() if d[2] is not None}
        for iid, more in next_gaps(files, n, tail).items():
            es = [*done[iid][2], *more]  # type: ignore[misc]
            if _in_force(es, clock, t)[0] == len(es) - 1:  # the gap reaches back to t
                done[iid] = (more[-1][0], more[-1][0], None)
    for iid, (b, k, _last) in done.items():
        plan.begin[iid] = b
        if t is not None:
            plan.at[iid] = k
        plan.first_file = min(plan.first_file, b >> 32)
    return plan


def next_gaps(files: Sequence[DataFile], first: int, ids: set[str]) -> dict[str, list[Entry]]:
    """For each instrument whose first reset from ``files[first:]`` on is a gap: its first entry
    there (when not the gap itself) and the gap, to append to its entries read before.

    A gap is written when the book is back, and counts from its ``from_ts_ms``: it can cover a
    time long before it, past the changes that were already suspect. The first entry stands for
    the changes skipped in between: a gap from after it cannot reach back before the files read.
    """
    firsts: dict[str, Entry] = {}
    out: dict[str, list[Entry]] = {}
    todo = set(ids)
    for fi in range(first, len(files)):
        if not todo:
            break
        found = scan_entries(files[fi], fi, todo)
        venue = found.pop(VENUE, [])
        for iid in list(todo):
            es = sorted(found.get(iid, []) + venue) if venue else found.get(iid, [])
            if not es:
                continue
            firsts.setdefault(iid, es[0])
            r = next((e for e in es if e[4] != CHANGE), None)
            if r is not None:
                todo.discard(iid)
                if r[4] == GAP:
                    out[iid] = [firsts[iid], r] if firsts[iid] is not r else [r]
    return out


def at_positions(entries: Sequence[Entry], clock: str, times: Iterable[int]) -> list[int | None]:
    """For each time, the position of the record in force (last with time <= t), or None."""
    cs, _weak = _clocks(entries, clock)
    # suffix minima are non-decreasing: the last index with time <= t is the last index whose
    # suffix minimum is <= t, found by bisection even where the clock steps back
    suf = cs[:]
    for i in range(len(suf) - 2, -1, -1):
        if suf[i + 1] < suf[i]:
            suf[i] = suf[i + 1]
    out: list[int | None] = []
    for t in times:
        i = bisect_right(suf, t) - 1
        out.append(entries[i][0] if i >= 0 else None)
    return out
