"""As-of lookups: the last book of an instrument at or before a time."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from collector.read.datafiles import data_files
from collector.read.scan import (
    expand_instruments,
    jsonl_records,
    loader,
    parquet_records,
)
from collector.read.times import duration_ms, parse_time
from collector.store.layout import BOOK_STREAM, DAY_MS

__all__ = ["book_at", "books_at"]


def books_at(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str,
    t: Any,
    *,
    lookback: Any = DAY_MS,
    exact: bool = False,
) -> dict[str, dict]:
    """As-of lookup: for each instrument the last book with ``ts_ms <= t`` (ties: the last written).

    Searches at most ``lookback`` (ms, timedelta or ``"6h"``; default one day) before ``t``; instruments without a book
    in that window are absent from the result. Reads files newest first and stops as soon as no
    older file can hold a later book.
    """
    t_ms = parse_time(t)
    start_ms = t_ms - duration_ms(lookback)
    ids = expand_instruments(instruments, [venue]) or set()
    if not ids:
        return {}
    files = data_files(data_dir, venue, BOOK_STREAM, start_ms, t_ms + 1)
    best: dict[str, tuple[int, int, dict]] = {}
    for i in sorted(range(len(files)), key=lambda k: files[k].hi_ms, reverse=True):
        df = files[i]
        if len(best) == len(ids) and all(b[0] >= df.hi_ms for b in best.values()):
            break  # this file and every older one hold nothing later than what we have
        it = (
            parquet_records(df, i, start_ms, t_ms + 1, ids, {"orderbook"}, False, exact, None)
            if df.kind == "parquet"
            else jsonl_records(df, i, start_ms, t_ms + 1, ids, {"orderbook"}, False, loader(exact), None)
        )
        for ts, seq, rec in it:
            key = rec["instrument_id"]
            cur = best.get(key)
            if cur is None or (ts, seq) > (cur[0], cur[1]):
                best[key] = (ts, seq, rec)
    return {k: v[2] for k, v in best.items()}


def book_at(
    data_dir: str | os.PathLike[str], venue: str, instrument: str, t: Any, *, lookback: Any = DAY_MS, exact: bool = False
) -> dict | None:
    """The book of one instrument at time ``t`` (last book with ``ts_ms <= t``), or None."""
    res = books_at(data_dir, venue, [instrument], t, lookback=lookback, exact=exact)
    return next(iter(res.values()), None)
