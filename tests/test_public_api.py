"""collector.read's public API is exactly the names docs/reading-data.md uses (plus ReadStats, the
type of the readers' ``stats=`` argument, and the types the stream readers return: BookState,
Comparison, ReconcileReport, and the trade rows Trade, TradeGap, TradeBook); everything else in the package is plumbing."""

import collector.read as read

PUBLIC = [
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


def test_all_is_pinned():
    assert sorted(read.__all__) == sorted(PUBLIC) and len(read.__all__) == len(set(read.__all__))


def test_every_public_name_is_importable():
    ns: dict = {}
    exec(f"from collector.read import {', '.join(PUBLIC)}", ns)
    for name in PUBLIC:
        assert ns[name] is getattr(read, name)


def test_star_import_gives_exactly_the_public_api():
    ns: dict = {}
    exec("from collector.read import *", ns)
    assert sorted(k for k in ns if not k.startswith("__")) == sorted(PUBLIC)
