"""One typed class per record type owns its keys; the docs, the record validator and the Parquet
schema are checked against those classes, so a new field is added in one place and the rest fail
loudly until they follow."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from collector.model.records import (
    BookRecord,
    GapRecord,
    Instrument,
    MarketRecord,
    PollErrorRecord,
    PollStats,
    UnchangedRecord,
)
from collector.model.stream_records import (
    BookChangeRecord,
    BookSnapshotRecord,
    LastTradeRecord,
)
from collector.model.trade_records import TradeRecord
from collector.store.parquet import LEVEL_COLUMNS, book_schema, gap_schema
from tests.reliability import schema as validator

DOC = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()


def _book(**kw) -> BookRecord:
    base = dict(venue="polymarket", instrument_id="polymarket:1", poll_key="1", market_id="0xm", outcome="Yes",
                ts_ms=1_790_000_000_000, bids=[("0.4", "10")], asks=[("0.6", "5")], latency_ms=12.5,
                ob_ts_ms=1_789_999_999_000, hash="ab" * 20, hash_ok=True, tick_size="0.01")
    base.update(kw)
    return BookRecord(**base)


def _stats() -> PollStats:
    vals = {}
    for name, f in PollStats.__dataclass_fields__.items():
        t = str(f.type)
        vals[name] = ({} if "dict" in t else "x" if t.startswith("str") else 1.5 if "float" in t else 1)
    vals["venue"] = "polymarket"
    vals["ts_ms"] = 1_790_000_000_000
    return PollStats(**vals)


INST = Instrument(venue="polymarket", poll_key="1", market_id="0xm", outcome="Yes", title="t", slug="s")
SAMPLES = {
    "orderbook": [_book(), _book(ob_ts_ms=None, hash=None, hash_ok=None, tick_size=None, asks=[])],
    "unchanged": [UnchangedRecord("polymarket", "polymarket:1", 1_790_000_000_000, 12.5, 1_789_999_999_000, "ab" * 20, True),
                  UnchangedRecord("limitless", "limitless:s", 1_790_000_000_000, 30.0)],
    "gap": [GapRecord("polymarket", "polymarket:1", 1_790_000_000_000, 1_790_000_005_000, "timeout", 3),
            GapRecord("limitless", None, None, 1_790_000_005_000, "cooldown:x")],
    "poll_error": [PollErrorRecord(1_790_000_000_000, "polymarket", "0xm", "s", "polymarket:1", 503, 12.0,
                                   "server_error", 1, "boom")],
    "poll_stats": [_stats()],
    "market": [MarketRecord("added", "rule:all", 1_790_000_000_000, INST)],
    "book_snapshot": [
        BookSnapshotRecord("polymarket", "polymarket:1", 1_790_000_000_000, 1_789_999_999_990, "c1", 1, "subscribe",
                           [("0.4", "10"), ("0.39", "5")], [("0.6", "5")], "ab" * 20, True, "0.01", "0.5"),
        BookSnapshotRecord("limitless", "limitless:s", 1_790_000_000_000, None, "c2", 3, "update", [], [],
                           source="rest"),
    ],
    "book_change": [
        BookChangeRecord("polymarket", "polymarket:1", 1_790_000_000_000, 1_789_999_999_990, "c1", 2,
                         [("0.4", "0")], [("0.61", "3")], "0.39", "0.6", "ab" * 20, True),
        BookChangeRecord("polymarket", "polymarket:1", 1_790_000_000_000, None, "c1", 3, [], [], None, None,
                         tick_size="0.001", synced=False),
    ],
    "last_trade": [
        LastTradeRecord("polymarket", "polymarket:1", 1_790_000_000_000, 1_789_999_999_990, "c1", 4, "0.5", "10",
                        "BUY", "0"),
        LastTradeRecord("polymarket", "polymarket:1", 1_790_000_000_000, None, "c1", 5, "0.5", None, None),
    ],
    "trade": [
        TradeRecord("kalshi", "kalshi:KX-1", 1_790_000_000_000, 1_789_999_999_990, "6e92", "0.1", "9.4", "buy",
                    trade_id="6e92", source="rest"),
        TradeRecord("polymarket", "polymarket:1", 1_790_000_000_000, None, "~0xab|1|0.5|10", "0.5", "10", None,
                    tx_hash="0xab", fee_rate_bps="0", fee="0.01"),
    ],
}
VALIDATOR = {
    "orderbook": (validator.ORDERBOOK_REQUIRED, validator.ORDERBOOK_OPTIONAL),
    "unchanged": (validator.UNCHANGED_REQUIRED, validator.UNCHANGED_OPTIONAL),
    "gap": (validator.GAP_REQUIRED, validator.GAP_OPTIONAL),
    "poll_error": (validator.POLL_ERROR_REQUIRED, {}),
    "poll_stats": (validator.POLL_STATS_REQUIRED, {}),
    "market": (validator.MARKET_REQUIRED, {}),
    "book_snapshot": (validator.BOOK_SNAPSHOT_REQUIRED, {}),
    "book_change": (validator.BOOK_CHANGE_REQUIRED, validator.BOOK_CHANGE_OPTIONAL),
    "last_trade": (validator.LAST_TRADE_REQUIRED, {}),
    "trade": (validator.TRADE_REQUIRED, {}),
}
DOC_SECTION = {"orderbook": "## `orderbook`", "unchanged": "## `unchanged`", "gap": "## `gap`", "poll_error": "## `poll_error`",
               "poll_stats": "## `poll_stats`", "market": "## Market records (`market`)",
               "book_snapshot": "## `book_snapshot`", "book_change": "## `book_change`",
               "last_trade": "## `last_trade`", "trade": "## Trades (`trades/`)"}


def _keys(rt: str) -> set[str]:
    return set().union(*(orjson.loads(r.to_json()).keys() for r in SAMPLES[rt]))


def _documented(rt: str) -> set[str]:
    start = DOC.index(DOC_SECTION[rt])
    nxt = DOC.find("\n## ", start + 1)
    body = DOC[start: nxt if nxt > 0 else None]
    names = set()
    for row in re.findall(r"^\| ([^|]+) \|", body, flags=re.M):
        names |= set(re.findall(r"`([a-z0-9_]+)`", row))
    return names


@pytest.mark.parametrize("rt", sorted(SAMPLES))
def test_every_key_a_class_writes_is_documented(rt):
    assert _keys(rt) - _documented(rt) == set()


@pytest.mark.parametrize("rt", sorted(SAMPLES))
def test_the_record_validator_knows_exactly_the_class_keys(rt):
    required, optional = VALIDATOR[rt]
    keys = _keys(rt)
    assert set(required) <= keys, set(required) - keys
    assert keys <= set(required) | set(optional), keys - set(required) - set(optional)
    for r in SAMPLES[rt]:
        assert validator.validate(orjson.loads(r.to_json())) == [], r


def test_a_stream_gap_is_valid_in_book_changes_only():
    """In book_changes/ a gap always names its instrument and never counts failures."""
    gap = orjson.loads(GapRecord("polymarket", "polymarket:1", None, 1_790_000_005_000, "ws_silence").to_json())
    assert validator.validate(gap, stream="book_changes") == []
    assert validator.validate(gap) != []  # in orderbooks/ an instrument gap has failures
    venue_wide = orjson.loads(SAMPLES["gap"][1].to_json())
    assert validator.validate(venue_wide, stream="book_changes") != []


def test_seq_0_is_only_a_rest_snapshot_taken_before_the_connections_first_message():
    rest = BookSnapshotRecord("limitless", "limitless:m", 1_790_000_000_000, None, "c1", 0, "subscribe",
                              [("0.4", "10")], [("0.6", "5")], source="rest")
    assert validator.validate(orjson.loads(rest.to_json())) == []
    ws = BookSnapshotRecord("limitless", "limitless:m", 1_790_000_000_000, None, "c1", 0, "subscribe",
                            [("0.4", "10")], [("0.6", "5")])
    change = BookChangeRecord("polymarket", "polymarket:1", 1_790_000_000_000, None, "c1", 0, [("0.4", "1")], [],
                              "0.4", None)
    for r in (ws, change):
        assert any("seq 0" in p for p in validator.validate(orjson.loads(r.to_json()))), r


def test_a_trades_gap_says_whether_it_was_backfilled_and_is_documented():
    gap = orjson.loads(GapRecord("kalshi", None, 1_789_999_000_000, 1_790_000_005_000, "restart", backfilled=True).to_json())
    assert validator.validate(gap, stream="trades") == []
    assert validator.validate({k: v for k, v in gap.items() if k != "backfilled"}, stream="trades") != []
    assert set(gap) - _documented("trade") - {"record_type", "schema_version", "venue"} == set()


@pytest.mark.parametrize("rt, schema", [("orderbook", book_schema), ("gap", gap_schema)])
def test_the_parquet_schema_has_a_column_for_every_key(rt, schema):
    cols = set(schema().names)
    keys = _keys(rt) - {"bids", "asks"}
    assert keys <= cols, keys - cols
    if rt == "orderbook":
        assert set(LEVEL_COLUMNS) <= cols


def test_poll_stats_readers_read_keys_the_class_writes():
    """ops and the venue-health check read poll_stats back from files (dicts): every key they read
    must be a PollStats field, or a rename would silently read 0."""
    from collector.ops.stats import COUNTERS

    fields = set(PollStats.__dataclass_fields__)
    src = (Path(__file__).resolve().parents[1] / "flows" / "venue_health.py").read_text()
    read_by_health = set(re.findall(r'v(?:\.get\(|\[)"([a-z_0-9]+)"', src))
    assert set(COUNTERS) <= fields, set(COUNTERS) - fields
    assert read_by_health and read_by_health <= fields, read_by_health - fields
