"""The Parquet layout of compacted days: schemas, records -> Arrow tables, and Parquet rows -> records.

Book files hold every scalar field of the records (``ts_ms``, ``ob_ts_ms``, ``best_bid``, ``mid``,
``hash``, ``latency_ms``, venue extras, ...) and the levels as four list columns
:data:`LEVEL_COLUMNS` (``list<double>``, best first). Numbers are doubles, ints int64, flags
bool; a field of an unknown shape (object, list, mixed types) is stored as JSON text and named in
the schema metadata key :data:`JSON_COLUMNS_KEY`. Gap files hold the gap fields.
:func:`parquet_rows_to_dicts` rebuilds the JSONL-shaped dicts (compaction verifies with it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

__all__ = [
    "BOOK_ALWAYS",
    "BOOK_FIELDS",
    "BOOK_FIXED",
    "FieldTypes",
    "GAP_ALWAYS",
    "GAP_FIELDS",
    "GAP_FIXED",
    "TRADE_FIELDS",
    "TRADE_FIXED",
    "JSON_COLUMNS_KEY",
    "KNOWN_EXTRAS",
    "LEVEL_COLUMNS",
    "book_schema",
    "gap_schema",
    "parquet_rows_to_dicts",
    "records_to_table",
    "schema_json_columns",
    "trade_schema",
    "writer_options",
]

# Parquet book columns: the level lists that replace ``bids`` / ``asks``.
LEVEL_COLUMNS = ("bid_prices", "bid_sizes", "ask_prices", "ask_sizes")
# Book fields the writer always writes (kept as None when null; other null fields are dropped).
BOOK_ALWAYS = ("outcome", "best_bid", "best_ask", "mid", "spread")
GAP_ALWAYS = ("instrument_id", "from_ts_ms")
JSON_COLUMNS_KEY = b"collector.json_columns"  # Parquet metadata: columns stored as JSON text

_F64 = pa.float64()
_LIST = pa.list_(_F64)
BOOK_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_type", pa.string()),
    ("schema_version", pa.int64()),
    ("venue", pa.string()),
    ("instrument_id", pa.string()),
    ("poll_key", pa.string()),
    ("market_id", pa.string()),
    ("outcome", pa.string()),
    ("ts_ms", pa.int64()),
    ("ob_ts_ms", pa.int64()),
    ("bid_prices", _LIST),
    ("bid_sizes", _LIST),
    ("ask_prices", _LIST),
    ("ask_sizes", _LIST),
    ("best_bid", _F64),
    ("best_ask", _F64),
    ("mid", _F64),
    ("spread", _F64),
    ("hash", pa.string()),
    ("hash_ok", pa.bool_()),
    ("tick_size", _F64),
    ("latency_ms", _F64),
    ("source", pa.string()),
]
# Venue extras of docs/schema.md with their types; other fields are inferred from the data.
KNOWN_EXTRAS: dict[str, pa.DataType] = {
    "last_trade_price": _F64,
    "min_order_size": _F64,
    "neg_risk": pa.bool_(),
    "size_decimals": pa.int64(),
    "token_id": pa.string(),
    "adjusted_midpoint": _F64,
    "midpoint": _F64,
}
GAP_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_type", pa.string()),
    ("schema_version", pa.int64()),
    ("venue", pa.string()),
    ("instrument_id", pa.string()),
    ("ts_ms", pa.int64()),
    ("from_ts_ms", pa.int64()),
    ("to_ts_ms", pa.int64()),
    ("reason", pa.string()),
    ("failures", pa.int64()),
]
# Trade files (collector/store/compact_trades.py): the trade record's fields, numbers as doubles
# like the books' (exact text comes back from the double's shortest repr).
TRADE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_type", pa.string()),
    ("schema_version", pa.int64()),
    ("venue", pa.string()),
    ("instrument_id", pa.string()),
    ("ts_ms", pa.int64()),
    ("ob_ts_ms", pa.int64()),
    ("key", pa.string()),
    ("price", _F64),
    ("size", _F64),
    ("side", pa.string()),
    ("trade_id", pa.string()),
    ("tx_hash", pa.string()),
    ("fee_rate_bps", _F64),
    ("fee", _F64),
    ("source", pa.string()),
]
BOOK_FIXED = {n for n, _ in BOOK_FIELDS} | {"bids", "asks"}  # fields whose type is fixed
GAP_FIXED = {n for n, _ in GAP_FIELDS}
TRADE_FIXED = {n for n, _ in TRADE_FIELDS}


class FieldTypes:
    """Python types seen per field (to type the fields the schema does not know)."""

    def __init__(self, fixed: set[str]) -> None:
        self.fixed = fixed
        self.seen: dict[str, set[type]] = {}

    def add(self, rec: dict) -> None:
        for k, v in rec.items():
            if k not in self.fixed:
                s = self.seen.get(k)
                if s is None:
                    s = self.seen[k] = set()
                s.add(type(v))


def _infer(types: set[type]) -> tuple[pa.DataType, bool]:
    """(arrow type, stored as JSON text) for the Python types of one extra field."""
    t = types - {type(None)}
    if not t:
        return pa.string(), False
    if t == {bool}:
        return pa.bool_(), False
    if t == {int}:
        return pa.int64(), False
    if t <= {int, float, Decimal}:
        return _F64, False
    if t == {str}:
        return pa.string(), False
    return pa.string(), True


def _schema(fixed: list[tuple[str, pa.DataType]], extras: dict[str, set[type]], known: dict[str, pa.DataType]) -> pa.Schema:
    fields = [pa.field(n, t) for n, t in fixed]
    json_cols = []
    for k in extras:  # first-seen order
        if k in known:
            t = known[k]
            if _infer(extras[k])[1]:  # a known extra with an unexpected shape: keep it as JSON text
                t = pa.string()
                json_cols.append(k)
        else:
            t, as_json = _infer(extras[k])
            if as_json:
                json_cols.append(k)
        fields.append(pa.field(k, t))
    return pa.schema(fields, metadata={JSON_COLUMNS_KEY: orjson.dumps(json_cols)})


def book_schema(extras: dict[str, set[type]] | None = None) -> pa.Schema:
    """The Parquet schema of books: :data:`BOOK_FIELDS` then the extras (name -> Python types seen)."""
    return _schema(BOOK_FIELDS, extras or {}, KNOWN_EXTRAS)


def gap_schema(extras: dict[str, set[type]] | None = None) -> pa.Schema:
    return _schema(GAP_FIELDS, extras or {}, {})


def trade_schema(extras: dict[str, set[type]] | None = None) -> pa.Schema:
    """:data:`TRADE_FIELDS` then the fields a newer recorder added (typed from the data)."""
    return _schema(TRADE_FIELDS, extras or {}, {})


def schema_json_columns(schema: pa.Schema) -> set[str]:
    """The columns a Parquet schema stores as JSON text (schema metadata :data:`JSON_COLUMNS_KEY`)."""
    raw = (schema.metadata or {}).get(JSON_COLUMNS_KEY)
    return set(orjson.loads(raw)) if raw else set()


def _num(v: Any) -> Any:
    """Decimal -> float, also inside level lists (exact records given to records_to_table)."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list):
        return [_num(x) for x in v]
    return v


def _level_arrays(levels: list) -> tuple[pa.Array, pa.Array]:
    """``[[[p, s], ...], ...]`` (one list per record) -> (prices, sizes) as ``list<double>``."""
    try:
        nested = pa.array(levels, pa.list_(pa.list_(_F64)))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # Decimals (exact records)
        nested = pa.array(_num(levels), pa.list_(pa.list_(_F64)))
    pairs = nested.flatten()  # one [p, s] per level
    if len(pairs) and not pc.all(pc.equal(pc.list_value_length(pairs), 2)).as_py():
        raise ValueError("a level is not a [price, size] pair")
    offsets = nested.offsets
    mask = nested.is_null() if nested.null_count else None  # unchanged rows: no levels (null, not [])
    prices = pa.ListArray.from_arrays(offsets, pc.list_element(pairs, 0), mask=mask)
    sizes = pa.ListArray.from_arrays(offsets, pc.list_element(pairs, 1), mask=mask)
    return prices, sizes


def _side(rec: dict, name: str) -> list | None:
    if rec.get("record_type") == "unchanged":
        return None
    return rec.get(name) or []


def records_to_table(records: list[dict], schema: pa.Schema | None = None, *, gaps: bool = False) -> pa.Table:
    """Book (or gap) records -> an Arrow table in the Parquet layout. Decimals become doubles.

    ``schema``: the target schema (default: :func:`book_schema` / :func:`gap_schema` of the fields
    seen in ``records``). Fields of the records that the schema lacks are dropped. ``gaps``: no
    level columns (gap and trade tables).
    """
    if schema is None:
        tr = FieldTypes(GAP_FIXED if gaps else BOOK_FIXED)
        for r in records:
            tr.add(r)
        schema = gap_schema(tr.seen) if gaps else book_schema(tr.seen)
    jcols = schema_json_columns(schema)
    level_cols = () if gaps else LEVEL_COLUMNS
    plain = pa.schema([f for f in schema if f.name not in jcols and f.name not in level_cols])
    try:
        base = pa.Table.from_pylist(records, schema=plain)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # Decimals (exact records)
        base = pa.Table.from_pylist([{k: _num(v) for k, v in r.items()} for r in records], schema=plain)
    extra: dict[str, pa.Array] = {}
    if not gaps:
        # an unchanged record has no levels at all (None), an empty side has [] (or null in JSON)
        extra["bid_prices"], extra["bid_sizes"] = _level_arrays([_side(r, "bids") for r in records])
        extra["ask_prices"], extra["ask_sizes"] = _level_arrays([_side(r, "asks") for r in records])
    for n in jcols:
        vals = [r.get(n) for r in records]
        extra[n] = pa.array([None if v is None else orjson.dumps(v, default=_num).decode() for v in vals], pa.string())
    arrays = [extra[f.name] if f.name in extra else base.column(f.name) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_rows_to_dicts(
    table: Any, *, gaps: bool = False, exact: bool = False, json_columns: set[str] | None = None
) -> Iterator[dict]:
    """Rebuild JSONL-shaped dicts from a Parquet table of books (or of gaps).

    Levels are rebuilt as ``bids``/``asks`` lists of ``[price, size]``; null fields are dropped
    except those the writer always writes (:data:`BOOK_ALWAYS`, :data:`GAP_ALWAYS`).
    """
    if json_columns is None:
        json_columns = schema_json_columns(table.schema)
    names = table.column_names
    always = set(GAP_ALWAYS if gaps else BOOK_ALWAYS)
    lvl = not gaps and all(c in names for c in LEVEL_COLUMNS)
    dec = _to_decimal if exact else None
    keys: list[str] = []
    cols: list[list] = []
    nullable: list[str] = []

    def levels(prices: str, sizes: str) -> list:
        ps, ss = table.column(prices).to_pylist(), table.column(sizes).to_pylist()
        if dec is None:
            return [None if a is None else [[p, q] for p, q in zip(a, b)] for a, b in zip(ps, ss)]
        return [None if a is None else [[dec(p), dec(q)] for p, q in zip(a, b)] for a, b in zip(ps, ss)]

    for n in names:
        if n in LEVEL_COLUMNS:
            continue
        col = table.column(n)
        vals = col.to_pylist()
        if n in json_columns:
            vals = [None if v is None else (json.loads(v, parse_float=Decimal) if exact else orjson.loads(v)) for v in vals]
        elif dec is not None and _pa_is_float(col.type):
            vals = [None if v is None else dec(v) for v in vals]
        keys.append(n)
        cols.append(vals)
        if col.null_count and n not in always:
            nullable.append(n)
        if lvl and n == ("ob_ts_ms" if "ob_ts_ms" in names else "ts_ms"):  # the JSONL field order
            keys += ["bids", "asks"]
            cols += [levels("bid_prices", "bid_sizes"), levels("ask_prices", "ask_sizes")]
    if lvl and "bids" not in keys:
        keys += ["bids", "asks"]
        cols += [levels("bid_prices", "bid_sizes"), levels("ask_prices", "ask_sizes")]
    for vals in zip(*cols):
        rec = dict(zip(keys, vals))
        for n in nullable:
            if rec[n] is None:
                del rec[n]
        yield rec


def _pa_is_float(t: Any) -> bool:
    return bool(pat.is_floating(t))


def _to_decimal(x: float) -> Decimal:
    return Decimal(repr(x))


# Column encodings (bench/parquet_bench.py). Dictionaries for every column whose values repeat
# (ids, labels, flags, a batch's latency) but the level lists: consecutive books of an instrument
# share most levels, runs that zstd finds in plain doubles and not in bit-packed dictionary
# indices. Times grow by about a second a row within an instrument, and a hash is 40 hex digits
# of entropy per change, then the same text for every unchanged poll (a repeat costs a prefix
# length): dictionaries of either overflow and fall back to plain.
PLAIN_COLUMNS = frozenset(LEVEL_COLUMNS)
COLUMN_ENCODING = {"ts_ms": "DELTA_BINARY_PACKED", "ob_ts_ms": "DELTA_BINARY_PACKED", "hash": "DELTA_BYTE_ARRAY"}



def writer_options(schema: pa.Schema, level: int = 12) -> dict[str, Any]:
    """``pq.ParquetWriter`` options of a compacted book file (collector/store/compact.py, bench/parquet_bench.py)."""
    import pyarrow.parquet as pq

    names = set(schema.names)
    encoded = {k: v for k, v in COLUMN_ENCODING.items() if k in names}
    return {
        "compression": "zstd",
        "compression_level": level,
        "use_dictionary": [n for n in schema.names if n not in encoded and n not in PLAIN_COLUMNS],
        "column_encoding": encoded,
        "write_statistics": True,
        "sorting_columns": [
            pq.SortingColumn(schema.get_field_index("instrument_id")),
            pq.SortingColumn(schema.get_field_index("ts_ms")),
        ],
    }
