"""Which files to read: the data files of a venue and stream that may hold a time range.

A compacted day (:data:`~collector.store.layout.PARQUET_BOOKS`) is read from its Parquet and the
JSONL left of that day is ignored, so nothing is read twice. A rotated file of period ``[S, E)``
holds records with ``S - SLACK_MS <= ts_ms < E + SLACK_MS`` (capture time vs write time); days
and files that cannot hold records of the range are not opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.read.times import opt_time
from collector.store import layout
from collector.store.files import jsonl_files
from collector.store.layout import (
    BOOK_STREAM,
    PARQUET_BOOKS,
    PARQUET_GAPS,
    date_partitions,
)

__all__ = ["SLACK_MS", "DataFile", "data_files", "list_venues"]

SLACK_MS = 60_000  # a record may sit in the file of a neighbouring period by this much


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file to read. Its records have ``lo_ms <= ts_ms < hi_ms`` (bounds with slack)."""

    path: Path
    venue: str
    stream: str  # "orderbooks", "poll_stats", ... or "orderbooks_parquet" / "gaps_parquet"
    date: str
    kind: str  # "jsonl" | "zst" | "parquet"
    lo_ms: int
    hi_ms: int

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def list_venues(data_dir: str | os.PathLike[str]) -> list[str]:
    """Venues that have data under ``data_dir`` (a directory with a known stream in it)."""
    root = Path(data_dir)
    known = layout.VENUE_DIRS
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / s).is_dir() for s in known))
    except OSError:
        return []


def _day_in_range(date: str, start_ms: int | None, end_ms: int | None) -> bool:
    try:
        d0, d1 = layout.day_bounds(date)
    except ValueError:
        return False
    if start_ms is not None and d1 + SLACK_MS <= start_ms:
        return False
    if end_ms is not None and d0 - SLACK_MS >= end_ms:
        return False
    return True


def _partition_files(venue: str, stream: str, date: str, part: Path) -> list[DataFile]:
    d0, d1 = layout.day_bounds(date)
    paths = jsonl_files(part)
    starts = [layout.period_start_ms(p.name) for p in paths]
    distinct = sorted({s for s in starts if s is not None})
    out = []
    for p, s in zip(paths, starts):
        if s is None:
            lo, hi = d0 - SLACK_MS, d1 + SLACK_MS
        else:
            later = [x for x in distinct if x > s]
            lo, hi = s - SLACK_MS, (later[0] if later else max(d1, s + 1)) + SLACK_MS
        kind = "zst" if layout.is_compressed(p.name) else "jsonl"
        out.append(DataFile(p, venue, stream, date, kind, lo, hi))
    return out


def data_files(
    data_dir: str | os.PathLike[str],
    venue: str,
    stream: str = BOOK_STREAM,
    start: Any = None,
    end: Any = None,
    *,
    parquet: bool = True,
) -> list[DataFile]:
    """The files of ``(venue, stream)`` that may hold records with ``start <= ts_ms < end``.

    For ``orderbooks`` a day compacted to Parquet is returned as its Parquet file(s) instead of
    its JSONL (unless ``parquet=False``). Sorted by ``(lo_ms, path)``.
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    out: list[DataFile] = []
    pq_days: dict[str, Path] = {}
    if parquet and stream == BOOK_STREAM:
        for date, part in date_partitions(layout.stream_dir(data_dir, venue, PARQUET_BOOKS)).items():
            if (part / layout.BOOKS_PARQUET_NAME).is_file():
                pq_days[date] = part
    dates = set(date_partitions(layout.stream_dir(data_dir, venue, stream))) | set(pq_days)
    for date in sorted(dates):
        if not _day_in_range(date, start_ms, end_ms):
            continue
        d0, d1 = layout.day_bounds(date)
        if date in pq_days:
            lo, hi = d0 - SLACK_MS, d1 + SLACK_MS
            out.append(DataFile(pq_days[date] / layout.BOOKS_PARQUET_NAME, venue, PARQUET_BOOKS, date, "parquet", lo, hi))
            g = layout.parquet_path(data_dir, venue, date, gaps=True)
            if g.is_file():
                out.append(DataFile(g, venue, PARQUET_GAPS, date, "parquet", lo, hi))
            continue
        for f in _partition_files(venue, stream, date, layout.partition_dir(data_dir, venue, stream, date)):
            if start_ms is not None and f.hi_ms <= start_ms:
                continue
            if end_ms is not None and f.lo_ms >= end_ms:
                continue
            out.append(f)
    out.sort(key=lambda f: (f.lo_ms, str(f.path)))
    return out
