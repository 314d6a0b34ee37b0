"""Reading recorded data: order books, gaps, markets, stats, trades. Plain dicts (typed rows for
trades and replayed books), or frames on request.

This is the public API (docs/reading-data.md); the modules of this package are plumbing:
:mod:`~collector.read.times`, :mod:`~collector.read.datafiles` (which files),
:mod:`~collector.read.scan` (one file), :mod:`~collector.read.records` (the merge),
:mod:`~collector.read.asof`, :mod:`~collector.read.catalog`, :mod:`~collector.read.frames`,
:mod:`~collector.read.progress`; for stream capture (``book_changes``)
:mod:`~collector.read.changes` (files, order, exact-text lines), :mod:`~collector.read.book`
(a book and its replay state), :mod:`~collector.read.timeline` (where a replay starts),
:mod:`~collector.read.replay` (replay, as-of, merge with REST) and
:mod:`~collector.read.reconcile` (REST samples against the stream); for trades
:mod:`~collector.read.trades` (de-duplicated, in venue time) and :mod:`~collector.read.trade_books`
(each trade with the book before it).

Quick start::

    from collector import read
    for book in read.iter_books("data", "polymarket", instruments=["polymarket:1043..."],
                                start="2026-01-10T23:00Z", end="2026-01-11"):
        print(book["ts_ms"], book["best_bid"], book["best_ask"])

    book = read.book_at("data", "polymarket", "polymarket:1043...", "2026-01-10T23:30Z")
    df = read.to_polars(read.load_books("data", "limitless", start=..., end=...))
    cat = read.market_catalog("data", "polymarket")     # instrument_id -> metadata + lifecycle

    for b in read.replay("data", "polymarket", ["polymarket:1043..."], start=..., end=...):
        print(b.ts_ms, b.status, b.bids[:3])             # the stream-replayed book, exact text
    rep = read.reconcile("data", "polymarket", start=..., end=...)  # REST samples vs the stream

    for tr in read.iter_trades("data", "polymarket", start=..., end=...):  # de-duplicated, venue time
        print(tr.t_ms, tr.price, tr.size, tr.side)                          # exact decimal text
    for tb in read.trades_with_books("data", "polymarket", start=..., end=...):
        print(tb.trade.price, tb.book and tb.book["best_bid"])           # the book just before it

What it handles for you (see docs/reading-data.md):

* **Layout** (:mod:`collector.store.layout`): ``<data_dir>/<venue>/<stream>/date=YYYY-MM-DD/<stream>.<period>.<uniq>.jsonl[.zst]``
  and, after ``collector compact``, ``<venue>/orderbooks_parquet/date=D/orderbooks.parquet`` (+
  ``<venue>/gaps_parquet/date=D/gaps.parquet``). A compacted day is read from its Parquet and the
  JSONL left of that day (``keep_jsonl``) is ignored, so nothing is read twice.
* **Order**: records come out ordered by ``ts_ms`` (ties: file order, then line order), merged
  across venues, rotated files and overlapping files (two processes, a restart). Lines inside one
  file may be out of order by up to :data:`REORDER_MS` (concurrent requests); they are reordered.
* **Time ranges**: ``start <= ts_ms < end``; days (``date=`` partitions) and rotated files that
  cannot hold records of the range are not opened. A file of period ``[S, E)`` holds records with
  ``S - SLACK_MS <= ts_ms < E + SLACK_MS`` (capture time vs write time).
* **Changes**: an ``unchanged`` record (writer.record = "changes") comes back as the full
  ``orderbook`` record it stands for (collector.store.changes), from JSONL and Parquet alike, so
  every answer is the one ``every_poll`` would give.
* **Damage**: a torn last line (crash) is skipped, as is any line that is not valid JSON; when both
  ``X.jsonl`` and ``X.jsonl.zst`` exist (crash during compression) the complete ``.zst`` is read.
* **Numbers**: floats by default; ``exact=True`` gives :class:`decimal.Decimal` for every JSON
  number with a fraction (exactly the text on disk). From Parquet, ``exact=True`` rebuilds the
  decimal from the double's shortest repr, exact for values of up to 15 significant digits (every
  venue price and size).
* **Stream capture** (``book_changes``): records in write order (:func:`iter_changes`), books
  rebuilt in file order from the last snapshot before the question (:func:`replay`,
  :func:`stream_books_at`), as :class:`BookState` with exact decimal text and a trust status.
* **Parquet rows** read back as the same dicts, with two differences: prices and sizes are floats
  (``3100`` reads ``3100.0``) and optional fields that were absent are absent, null ones too.

Times (``start``, ``end``, ``t``) accept epoch ms (int), :class:`datetime.datetime` (naive = UTC),
``datetime.date`` or ISO text (``"2026-01-10"``, ``"2026-01-10T23:30Z"``).
"""

from collector.read.asof import book_at, books_at
from collector.read.book import BookState
from collector.read.catalog import catalog_markets, market_catalog
from collector.read.changes import iter_changes
from collector.read.frames import to_arrow, to_pandas, to_polars
from collector.read.progress import ReadStats
from collector.read.reconcile import (
    Comparison,
    ReconcileReport,
    iter_reconcile,
    reconcile,
)
from collector.read.records import iter_books, iter_records, load_books
from collector.read.replay import merge_books, replay, stream_book_at, stream_books_at
from collector.read.scan import REORDER_MS
from collector.read.times import parse_time
from collector.read.trade_books import (
    TradeBook,
    load_trades_with_books,
    trades_with_books,
)
from collector.read.trades import (
    Trade,
    TradeGap,
    iter_trade_gaps,
    iter_trades,
    load_trades,
)
from collector.store.files import gc_paused

__all__ = [
    "REORDER_MS",
    "BookState",
    "Comparison",
    "ReadStats",
    "ReconcileReport",
    "Trade",
    "TradeBook",
    "TradeGap",
    "book_at",
    "books_at",
    "catalog_markets",
    "gc_paused",
    "iter_books",
    "iter_changes",
    "iter_reconcile",
    "iter_records",
    "iter_trade_gaps",
    "iter_trades",
    "load_books",
    "load_trades",
    "load_trades_with_books",
    "market_catalog",
    "merge_books",
    "parse_time",
    "reconcile",
    "replay",
    "stream_book_at",
    "stream_books_at",
    "to_arrow",
    "to_pandas",
    "to_polars",
    "trades_with_books",
]
