"""Reading many files as one stream: records of a stream ordered by ``ts_ms`` (k-way merge), and
:func:`book_times`, the fast path for coverage-like questions."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from collector.read.datafiles import DataFile, data_files, list_venues
from collector.read.progress import Progress, ReadStats
from collector.read.scan import (
    REORDER_MS,
    expand_instruments,
    jsonl_records,
    loader,
    parquet_records,
    reorder,
)
from collector.read.times import opt_time
from collector.store.changes import BOOK, BOOK_PREFIX, MARKER, MARKER_PREFIX
from collector.store.files import IID_RE, TS_RE, file_lines, gc_paused
from collector.store.layout import BOOK_STREAM, PARQUET_GAPS

__all__ = ["book_times", "iter_books", "iter_records", "load_books"]


def iter_records(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    stream: str = BOOK_STREAM,
    start: Any = None,
    end: Any = None,
    *,
    instruments: Iterable[str] | str | None = None,
    record_types: Iterable[str] | None = None,
    venue_gaps: bool = True,
    exact: bool = False,
    parquet: bool = True,
    progress: bool = False,
    stats: ReadStats | None = None,
    files: Sequence[DataFile] | None = None,
) -> Iterator[dict]:
    """Every record of ``stream`` with ``start <= ts_ms < end``, ordered by ``ts_ms``.

    ``venue``: one, several, or None for every venue under ``data_dir``. ``instruments``: ids or
    poll keys; with them, venue-wide gap records (``instrument_id`` null) are kept when
    ``venue_gaps``. ``record_types``: e.g. ``{"orderbook"}``. ``progress``: a bar on stderr when it
    is a terminal. ``files``: read exactly these (from :func:`data_files`).
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    ids = expand_instruments(instruments, venues)
    types = set(record_types) if record_types is not None else None
    if files is None:
        files = [f for v in venues for f in data_files(data_dir, v, stream, start_ms, end_ms, parquet=parquet)]
    files = sorted(files, key=lambda f: (f.lo_ms, str(f.path)))
    loads = loader(exact)
    bar = Progress(sum(f.size for f in files), f"{stream}") if progress else None

    def source(i: int, df: DataFile) -> Iterator[tuple[int, int, dict]]:
        if df.kind == "parquet":
            it = parquet_records(df, i, start_ms, end_ms, ids, types, venue_gaps, exact, stats)
        else:
            it = reorder(jsonl_records(df, i, start_ms, end_ms, ids, types, venue_gaps, loads, stats), REORDER_MS)
        yield from it
        if stats is not None:
            stats.files += 1
            stats.bytes += df.size
            stats.by_kind[df.kind] = stats.by_kind.get(df.kind, 0) + 1
        if bar is not None:
            bar.add(df.size)

    # k-way merge; a file is opened only when the merge reaches its lo_ms (few open at once).
    heap: list[tuple[int, int, dict, Iterator]] = []
    pending = list(enumerate(files))
    pending.reverse()  # pop() from the end = smallest lo_ms first

    def open_next() -> None:
        i, df = pending.pop()
        it = source(i, df)
        first = next(it, None)
        if first is not None:
            heapq.heappush(heap, (first[0], first[1], first[2], it))

    try:
        while heap or pending:
            while pending and (not heap or pending[-1][1].lo_ms <= heap[0][0]):
                open_next()
            if not heap:
                continue
            ts, seq, rec, it = heap[0]
            nxt = next(it, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], nxt[1], nxt[2], it))
            if stats is not None:
                stats.records += 1
            yield rec
    finally:
        if bar is not None:
            bar.close()


def iter_books(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    gaps: bool = False,
    exact: bool = False,
    progress: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[dict]:
    """Order books (and gap records when ``gaps``) ordered by ``ts_ms``; see :func:`iter_records`."""
    types = {"orderbook", "gap"} if gaps else {"orderbook"}
    return iter_records(
        data_dir,
        venue,
        BOOK_STREAM,
        start,
        end,
        instruments=instruments,
        record_types=types,
        exact=exact,
        progress=progress,
        stats=stats,
    )


def load_books(*args: Any, **kwargs: Any) -> list[dict]:
    """:func:`iter_books` as a list (with the garbage collector paused while loading)."""
    with gc_paused():
        return list(iter_books(*args, **kwargs))


def book_times(
    data_dir: str | os.PathLike[str], venue: str, start: Any = None, end: Any = None, *, progress: bool = False
) -> tuple[dict[str, list[int]], list[dict]]:
    """``({instrument_id: sorted ts_ms of its books}, [gap records])`` with ``start <= ts_ms < end``.

    A fast path for coverage-like questions: book lines written by the collector are not fully
    parsed (two regex matches instead), and Parquet days read two columns only.
    """
    import pyarrow.parquet as pq

    start_ms, end_ms = opt_time(start), opt_time(end)
    files = data_files(data_dir, venue, BOOK_STREAM, start_ms, end_ms)
    times: dict[str, list[int]] = {}
    gaps: list[dict] = []
    bar = Progress(sum(f.size for f in files), BOOK_STREAM) if progress else None

    def keep(ts: int) -> bool:
        return (start_ms is None or ts >= start_ms) and (end_ms is None or ts < end_ms)

    book_prefix = (BOOK_PREFIX, MARKER_PREFIX)  # an unchanged record is a book at its ts_ms too
    iid_re, ts_re = IID_RE.search, TS_RE.search
    for i, df in enumerate(files):
        if df.kind == "parquet":
            if df.stream == PARQUET_GAPS:
                gaps.extend(r for _t, _s, r in parquet_records(df, i, start_ms, end_ms, None, None, True, False, None))
                continue
            filters = [f for f in (("ts_ms", ">=", start_ms), ("ts_ms", "<", end_ms)) if f[2] is not None]
            t = pq.read_table(df.path, columns=["instrument_id", "ts_ms"], filters=filters or None)
            for iid, ts in zip(t.column(0).to_pylist(), t.column(1).to_pylist()):
                times.setdefault(iid, []).append(ts)
        else:
            with gc_paused():
                for line in file_lines(df.path):
                    if line.startswith(book_prefix):
                        m1, m2 = iid_re(line), ts_re(line)
                        if m1 is not None and m2 is not None:
                            ts = int(m2.group(1))
                            if keep(ts):
                                times.setdefault(m1.group(1).decode("utf-8", "replace"), []).append(ts)
                            continue
                    elif b'"gap"' not in line and b'"orderbook"' not in line and b'"unchanged"' not in line:
                        continue
                    try:
                        rec = orjson.loads(line)
                    except ValueError:
                        continue
                    if type(rec) is not dict or type(rec.get("ts_ms")) is not int or not keep(rec["ts_ms"]):
                        continue
                    if rec.get("record_type") in (BOOK, MARKER) and isinstance(rec.get("instrument_id"), str):
                        times.setdefault(rec["instrument_id"], []).append(rec["ts_ms"])
                    elif rec.get("record_type") == "gap":
                        gaps.append(rec)
        if bar is not None:
            bar.add(df.size)
    if bar is not None:
        bar.close()
    for v in times.values():
        v.sort()
    gaps.sort(key=lambda r: r["ts_ms"])
    return times, gaps
