"""Frames: records as a pyarrow Table (the Parquet layout), a polars or a pandas DataFrame.

pyarrow, polars and pandas are imported on first use only.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

__all__ = ["to_arrow", "to_pandas", "to_polars"]


def _book_rows_to_arrow(records: Iterable[dict]) -> Any:
    from collector.store.parquet import records_to_table

    return records_to_table(list(records))


def to_arrow(records: Iterable[dict]) -> Any:
    """A pyarrow Table of book records, in the Parquet layout (levels as list columns
    ``bid_prices``, ``bid_sizes``, ``ask_prices``, ``ask_sizes``; Decimals become doubles).

    Non-book records (gaps, stats, markets) become a table of their own fields."""
    import pyarrow as pa

    records = list(records)
    if records and all(r.get("record_type") == "orderbook" for r in records):
        return _book_rows_to_arrow(records)
    return pa.Table.from_pylist([_plain(r) for r in records])


def _plain(r: dict) -> dict:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()}


def to_polars(records: Iterable[dict]) -> Any:
    """A polars DataFrame (see :func:`to_arrow` for the layout). ImportError without polars."""
    try:
        import polars as pl
    except ImportError:
        raise ImportError("to_polars needs polars: pip install polars") from None
    return pl.from_arrow(to_arrow(records))


def to_pandas(records: Iterable[dict]) -> Any:
    """A pandas DataFrame (see :func:`to_arrow` for the layout). ImportError without pandas."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install pandas") from None
    return to_arrow(records).to_pandas()
