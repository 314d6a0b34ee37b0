"""Frames: records as a pyarrow Table (the Parquet layout), a polars or a pandas DataFrame.

pyarrow, polars and pandas are imported on first use only.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from collector.read.book import BookState
from collector.read.changes import CHANGE_TYPES
from collector.read.trade_books import TradeBook
from collector.read.trades import Trade, TradeGap

__all__ = ["to_arrow", "to_pandas", "to_polars"]


def _book_rows_to_arrow(records: Iterable[dict]) -> Any:
    from collector.store.parquet import records_to_table

    return records_to_table(list(records))


def to_arrow(records: Iterable[Any]) -> Any:
    """A pyarrow Table of book records, in the Parquet layout (levels as list columns
    ``bid_prices``, ``bid_sizes``, ``ask_prices``, ``ask_sizes``; Decimals become doubles).

    ``book_changes`` records (:func:`~collector.read.iter_changes`) and replayed books
    (:class:`~collector.read.BookState`) get the same level columns, one row each, the columns
    of every record type present (absent fields null). Trades (:func:`~collector.read.iter_trades`)
    get one column per field, numbers as doubles, and ``t_ms``; trades with books
    (:func:`~collector.read.trades_with_books`) add ``book_ts_ms``, ``book_ob_ts_ms``,
    ``best_bid`` and ``best_ask``. Other records (gaps, stats, markets)
    become a table of their own fields."""
    import pyarrow as pa

    records = list(records)
    if records and all(type(r) in (Trade, TradeGap) for r in records):
        return _trade_table(records)
    if records and all(type(r) is TradeBook for r in records):
        return _trade_book_table(records)
    if records and all(type(r) is BookState for r in records):
        return _columns([_state_row(b) for b in records])
    if records and all(r.get("record_type") == "orderbook" for r in records):
        return _book_rows_to_arrow(records)
    if records and all(r.get("record_type") in CHANGE_TYPES for r in records):
        return _columns([_split_levels(r) for r in records])
    return pa.Table.from_pylist([_plain(r) for r in records])


_PRICE_KEYS = frozenset({"best_bid", "best_ask", "tick_size", "last_trade_price", "price", "size", "fee_rate_bps"})


def _num(v: Any) -> Any:
    return None if v is None or isinstance(v, bool) else float(v)  # text, Decimal, int: a double


def _plain(r: dict) -> dict:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()}


def _levels(row: dict, lv: Any, prefix: str) -> None:
    ok = isinstance(lv, (list, tuple))
    row[f"{prefix}_prices"] = [_num(p) for p, _ in lv] if ok else None
    row[f"{prefix}_sizes"] = [_num(x) for _, x in lv] if ok else None


def _split_levels(r: dict) -> dict:
    row = {k: (_num(v) if k in _PRICE_KEYS else float(v) if isinstance(v, Decimal) else v)
           for k, v in r.items() if k not in ("bids", "asks")}
    _levels(row, r.get("bids"), "bid")
    _levels(row, r.get("asks"), "ask")
    return row


def _state_row(b: BookState) -> dict:
    row = {"source": b.source, "venue": b.venue, "instrument_id": b.instrument_id, "ts_ms": b.ts_ms,
           "ob_ts_ms": b.ob_ts_ms, "record_type": b.record_type, "status": b.status, "conn": b.conn, "seq": b.seq,
           "best_bid": _num(b.best_bid), "best_ask": _num(b.best_ask), "hash": b.hash, "tick_size": _num(b.tick_size)}
    _levels(row, b.bids, "bid")
    _levels(row, b.asks, "ask")
    return row


def _trade_table(rows: list[Any]) -> Any:
    """Trades (or trade gaps), one column per field plus ``t_ms`` for trades; prices, sizes and
    fees as doubles (the Parquet layout of collector/store/compact_trades.py)."""
    import pyarrow as pa

    if type(rows[0]) is TradeGap:
        return pa.Table.from_pylist([{f: getattr(g, f) for f in TradeGap.__slots__} for g in rows])
    from collector.store.parquet import TRADE_FIELDS

    cols = {f: [getattr(t, f) for t in rows] for f in Trade.__slots__}
    for f in ("price", "size", "fee_rate_bps", "fee"):
        cols[f] = [_num(v) for v in cols[f]]
    cols["t_ms"] = [t.t_ms for t in rows]
    types = dict(TRADE_FIELDS)
    return pa.table({k: pa.array(v, types.get(k, pa.int64())) for k, v in cols.items()})


def _trade_book_table(rows: list[TradeBook]) -> Any:
    """The trades' columns, then the book's time and top of book (null without a book)."""
    import pyarrow as pa

    t = _trade_table([r.trade for r in rows])
    books = [r.book for r in rows]

    def get(b: Any, name: str) -> Any:
        if b is None:
            return None
        return getattr(b, name) if type(b) is BookState else b.get(name)

    for name in ("ts_ms", "ob_ts_ms"):
        t = t.append_column(f"book_{name}", pa.array([get(b, name) for b in books], pa.int64()))
    for name in ("best_bid", "best_ask"):
        t = t.append_column(name, pa.array([_num(get(b, name)) for b in books], pa.float64()))
    return t


def _columns(rows: list[dict]) -> Any:
    """A table with the union of the rows' keys (first seen first), each column typed from all its values."""
    import pyarrow as pa

    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: [r.get(k) for r in rows] for k in keys})


def to_polars(records: Iterable[Any]) -> Any:
    """A polars DataFrame (see :func:`to_arrow` for the layout). ImportError without polars."""
    try:
        import polars as pl
    except ImportError:
        raise ImportError("to_polars needs polars: pip install polars") from None
    return pl.from_arrow(to_arrow(records))


def to_pandas(records: Iterable[Any]) -> Any:
    """A pandas DataFrame (see :func:`to_arrow` for the layout). ImportError without pandas."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install pandas") from None
    return to_arrow(records).to_pandas()
