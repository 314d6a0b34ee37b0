"""Reading the ``trades`` stream: trades de-duplicated by ``(venue, key)`` and ordered by venue time.

The same trade can be on disk twice (the feed, then a REST backfill after a reconnect, or the
poll's overlap), and a backfill writes trades after later ones. :func:`iter_trades` reads the
files in capture order (``ts_ms``), keeps the first copy of each key (the earliest received, ties
in file then line order), then reorders by :attr:`Trade.t_ms` (``ob_ts_ms``, else ``ts_ms``;
ties by key). A compacted day (``trades_parquet/date=D/trades.parquet``) is read from its
Parquet and the JSONL of that day is ignored for trades; its gap records are read from the
JSONL, which compaction keeps (collector/store/compact_trades.py).

Prices and sizes are exact decimal text (``floats=True``: floats). From Parquet the text is
rebuilt from the double's shortest repr: the canonical text the recorder writes, for up to 15
significant digits.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from collector.model.decimals import fmt
from collector.model.versions import check_schema_version
from collector.read.datafiles import SLACK_MS, DataFile, data_files, list_venues
from collector.read.records import iter_records
from collector.read.scan import expand_instruments
from collector.read.times import duration_ms, opt_time
from collector.store import layout
from collector.store.files import gc_paused
from collector.store.layout import PARQUET_TRADES, TRADES_STREAM

__all__ = ["DEFAULT_LAG_MS", "Trade", "TradeGap", "iter_trade_gaps", "iter_trades", "load_trades", "trade_files"]

# How long after its venue time a trade may be recorded: a backfill looks back one hour by
# default (trades.<venue>.max_backfill_s). Files are read this far past ``end``, and the
# reordering holds trades this long.
DEFAULT_LAG_MS = 2 * 3_600_000
_NUMS = ("price", "size", "fee_rate_bps", "fee")


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as read back (docs/schema.md "trades"): exact decimal text, or floats on request."""

    venue: str
    instrument_id: str
    ts_ms: int  # capture time
    ob_ts_ms: int | None  # the venue's time of the trade
    key: str  # de-duplication identity
    price: str | float
    size: str | float
    side: str | None = None  # "buy" / "sell": the aggressor
    trade_id: str | None = None
    tx_hash: str | None = None
    fee_rate_bps: str | float | None = None
    fee: str | float | None = None
    source: str = "ws"  # "ws" | "rest"

    @property
    def t_ms(self) -> int:
        """The time the reader orders by: the venue's, else the capture time."""
        return self.ts_ms if self.ob_ts_ms is None else self.ob_ts_ms


@dataclass(frozen=True, slots=True)
class TradeGap:
    """A span the recorder did not watch live (docs/schema.md, trades ``gap``). ``backfilled``:
    the venue's trades endpoint was read over the whole span afterwards, so its trades are in the
    stream; otherwise trades of the span may be missing (not recorded, unlike a quiet span)."""

    venue: str
    instrument_id: str | None  # None: every instrument of the venue
    ts_ms: int
    from_ts_ms: int | None  # None: since the start
    to_ts_ms: int
    reason: str  # feed_start | feed_down | restart | trades_backlog | write_failed | ...
    backfilled: bool = False

    @property
    def missing(self) -> bool:
        """Trades of the span may be missing."""
        return not self.backfilled

    def covers(self, t_ms: int) -> bool:
        return (self.from_ts_ms is None or self.from_ts_ms <= t_ms) and t_ms <= self.to_ts_ms


def _text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    if type(v) is Decimal:
        return format(v, "f")  # the text on disk (the writer never uses an exponent)
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return fmt(Decimal(repr(v)))  # a Parquet double: its shortest repr, canonical
    raise ValueError(f"not a number: {v!r}")


def _num(v: Any, floats: bool) -> str | float | None:
    if v is None:
        return None
    return float(v) if floats else _text(v)


def _trade(rec: dict, floats: bool) -> Trade | None:
    """A Trade from a record (JSONL dict or Parquet row), None when a required field is unusable."""
    iid, ts, key, ob = rec.get("instrument_id"), rec.get("ts_ms"), rec.get("key"), rec.get("ob_ts_ms")
    if type(iid) is not str or type(ts) is not int or type(key) is not str or (ob is not None and type(ob) is not int):
        return None
    try:
        p, s = _num(rec.get("price"), floats), _num(rec.get("size"), floats)
        fr, fee = _num(rec.get("fee_rate_bps"), floats), _num(rec.get("fee"), floats)
    except (ValueError, TypeError):
        return None
    if p is None or s is None:
        return None
    return Trade(rec.get("venue") or iid.partition(":")[0], iid, ts, ob, key, p, s, rec.get("side"), rec.get("trade_id"),
                 rec.get("tx_hash"), fr, fee, rec.get("source") or "ws")


def trade_files(
    data_dir: str | os.PathLike[str], venue: str, start_ms: int | None, end_ms: int | None
) -> tuple[list[DataFile], list[DataFile]]:
    """``(Parquet files of compacted days, JSONL files of the others)`` that may hold captures
    with ``start_ms <= ts_ms < end_ms``."""
    pq_days = {d: p / layout.TRADES_PARQUET_NAME
               for d, p in layout.date_partitions(layout.stream_dir(data_dir, venue, PARQUET_TRADES)).items()
               if (p / layout.TRADES_PARQUET_NAME).is_file()}
    pqs = []
    for date, path in pq_days.items():
        try:
            d0, d1 = layout.day_bounds(date)
        except ValueError:
            continue
        lo, hi = d0 - SLACK_MS, d1 + SLACK_MS
        if (start_ms is None or hi > start_ms) and (end_ms is None or lo < end_ms):
            pqs.append(DataFile(path, venue, PARQUET_TRADES, date, "parquet", lo, hi))
    jsonl = [f for f in data_files(data_dir, venue, TRADES_STREAM, start_ms, end_ms) if f.date not in pq_days]
    return pqs, jsonl


def _parquet_trades(df: DataFile, lo: int | None, hi: int | None, ids: set[str] | None, floats: bool) -> list[Trade]:
    """A compacted day's trades with ``lo <= ts_ms < hi``, in capture order (ties: file order)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    filters = [f for f in (("ts_ms", ">=", lo), ("ts_ms", "<", hi)) if f[2] is not None]
    if ids is not None:
        filters.append(("instrument_id", "in", sorted(ids)))
    table = pq.read_table(df.path, filters=filters or None)
    if "schema_version" in table.column_names and table.num_rows:
        check_schema_version({"record_type": "trade", "schema_version": pc.max(table.column("schema_version")).as_py()},
                             df.path)
    table = table.take(pc.sort_indices(table, sort_keys=[("ts_ms", "ascending")]))  # stable
    names = table.column_names
    cols = [table.column(n).to_pylist() for n in names]
    out = []
    for vals in zip(*cols):
        t = _trade(dict(zip(names, vals)), floats)
        if t is not None:
            out.append(t)
    return out


def _captured(data_dir: Any, venues: Sequence[str], lo: int | None, hi: int | None, ids: set[str] | None,
              floats: bool) -> Iterator[Trade]:
    """Every trade record with ``lo <= ts_ms < hi``, in capture order, duplicates included."""
    sources: list[Iterable[Trade]] = []
    for v in venues:
        pqs, jsonl = trade_files(data_dir, v, lo, hi)
        for df in pqs:
            sources.append(_parquet_trades(df, lo, hi, ids, floats))
        if jsonl:
            recs = iter_records(data_dir, v, TRADES_STREAM, lo, hi, instruments=ids, record_types={"trade"},
                                exact=True, files=jsonl)
            sources.append(t for t in (_trade(r, floats) for r in recs) if t is not None)
    # stable: equal ts_ms keep the order of the sources (a compacted day before the JSONL)
    return heapq.merge(*sources, key=lambda t: t.ts_ms)


def iter_trades(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    floats: bool = False,
    lag: Any = DEFAULT_LAG_MS,
) -> Iterator[Trade]:
    """Trades with ``start <= t_ms < end``, each ``(venue, key)`` once, ordered by ``(t_ms, key)``.

    ``venue``: one, several or None (every venue). ``instruments``: ids or poll keys. ``lag``:
    how long after its venue time a trade may have been recorded (default 2 h; ms, timedelta or
    ``"3h"``); a trade recorded later than that comes out late in the order, or not at all when
    it lies at the edge of the range. The first copy received of a key is the one returned.
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    lag_ms = duration_ms(lag)
    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    ids = expand_instruments(instruments, venues)
    lo = None if start_ms is None else start_ms - SLACK_MS  # a venue clock ahead of ours
    hi = None if end_ms is None else end_ms + lag_ms
    seen: set[tuple[str, str]] = set()
    heap: list[tuple[int, str, int, Trade]] = []
    n = 0
    for tr in _captured(data_dir, venues, lo, hi, ids, floats):
        k = (tr.venue, tr.key)
        if k in seen:
            continue
        seen.add(k)
        t = tr.t_ms
        if (start_ms is not None and t < start_ms) or (end_ms is not None and t >= end_ms):
            continue
        n += 1
        heapq.heappush(heap, (t, tr.key, n, tr))
        limit = tr.ts_ms - lag_ms  # every later record has ts_ms >= this one's, so t_ms >= limit
        while heap and heap[0][0] < limit:
            yield heapq.heappop(heap)[3]
    while heap:
        yield heapq.heappop(heap)[3]


def load_trades(*args: Any, **kwargs: Any) -> list[Trade]:
    """:func:`iter_trades` as a list (with the garbage collector paused while loading)."""
    with gc_paused():
        return list(iter_trades(*args, **kwargs))


def iter_trade_gaps(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    lag: Any = DEFAULT_LAG_MS,
) -> Iterator[TradeGap]:
    """The trades stream's gap records overlapping ``[start, end)``, ordered by ``ts_ms``.

    With ``instruments``, venue-wide gaps (``instrument_id`` None) are kept too. A gap is written
    when it ends: records written up to ``lag`` after ``end`` are read. Backfilled gaps are
    included (``TradeGap.missing`` is False for them).
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    hi = None if end_ms is None else end_ms + duration_ms(lag)
    recs = iter_records(data_dir, venue, TRADES_STREAM, start_ms, hi, instruments=instruments, record_types={"gap"},
                        parquet=False)
    for r in recs:
        to, frm = r.get("to_ts_ms"), r.get("from_ts_ms")
        if type(to) is not int or (frm is not None and type(frm) is not int):
            continue
        if end_ms is not None and frm is not None and frm >= end_ms:
            continue
        if start_ms is not None and to < start_ms:
            continue
        yield TradeGap(r.get("venue") or "", r.get("instrument_id"), r["ts_ms"], frm, to, str(r.get("reason")),
                       r.get("backfilled") is True)
