"""Upgrades: files of the earlier record shapes read as before; records of a newer schema_version
stop the readers and compaction with a clear error instead of being read as if they were ours.

The old shapes are written here by hand, as the first releases wrote them: every poll a full
``orderbook`` (no ``unchanged`` markers), no ``hash_ok`` (added with hash checking), a book
without ``ob_ts_ms`` / ``hash`` / ``tick_size``, a record without ``schema_version``, and a
rotated file name without the ``<opened>-<pid>-<random>`` part."""

from __future__ import annotations

import calendar

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector import read
from collector.model.errors import SchemaVersionError
from collector.model.records import SCHEMA_VERSION
from collector.store import compact as cm
from collector.store import layout

DAY = "2026-01-10"
T0 = calendar.timegm((2026, 1, 10, 10, 0, 0)) * 1000
LATER = T0 + 3 * 86_400_000
IID = "polymarket:1043"


def old_book(ts: int, bid: float, **drop: bool) -> dict:
    rec = {
        "record_type": "orderbook", "schema_version": 1, "venue": "polymarket", "instrument_id": IID,
        "poll_key": "1043", "market_id": "0xabc", "outcome": "Yes", "ts_ms": ts, "ob_ts_ms": ts - 200,
        "bids": [[bid, 100], [bid - 0.01, 50]], "asks": [[bid + 0.02, 80]], "best_bid": bid,
        "best_ask": round(bid + 0.02, 3), "mid": round(bid + 0.01, 3), "spread": 0.02,
        "hash": f"h{ts}", "tick_size": 0.01, "latency_ms": 40.5, "source": "rest",
    }
    for k in drop:
        rec.pop(k)
    return rec


def write(path, recs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))


@pytest.fixture
def old_day(tmp_path):
    d = tmp_path / "data"
    part = layout.partition_dir(d, "polymarket", layout.BOOK_STREAM, DAY)
    recs = [
        old_book(T0, 0.41),
        old_book(T0 + 1000, 0.41),  # the same book again, in full: no unchanged markers then
        old_book(T0 + 2000, 0.42, ob_ts_ms=True, hash=True, tick_size=True),
        {k: v for k, v in old_book(T0 + 3000, 0.43).items() if k != "schema_version"},
        {"record_type": "gap", "schema_version": 1, "venue": "polymarket", "instrument_id": IID,
         "ts_ms": T0 + 9000, "from_ts_ms": T0 + 3000, "to_ts_ms": T0 + 9000, "reason": "failures"},
        old_book(T0 + 9000, 0.44),
    ]
    write(part / "orderbooks.20260110T1000Z.jsonl", recs[:3])  # an early name: no <uniq>
    write(part / "orderbooks.20260110T1000Z.100000000-1-a1b2c3.jsonl", recs[3:])
    return d, recs


def norm(r: dict) -> dict:
    return {k: v for k, v in r.items() if v is not None}


def test_old_shapes_read_as_written(old_day):
    d, recs = old_day
    got = list(read.iter_books(d, "polymarket", gaps=True))
    assert [norm(r) for r in got] == [norm(r) for r in recs]
    assert "hash_ok" not in got[0] and "ob_ts_ms" not in got[2] and "schema_version" not in got[3]
    b = read.book_at(d, "polymarket", IID, T0 + 2500)
    assert b["best_bid"] == 0.42 and b["ts_ms"] == T0 + 2000


def test_old_shapes_compact_and_read_back_the_same(old_day):
    d, recs = old_day
    rep = cm.compact_day(d, "polymarket", DAY, keep_jsonl=False, now_ms=LATER)
    assert rep.ok and rep.status == "compacted" and rep.books == 5 and rep.gaps == 1 and not rep.kept_jsonl
    got = list(read.iter_books(d, "polymarket", gaps=True))
    assert [r["ts_ms"] for r in got] == [r["ts_ms"] for r in recs]
    assert [norm(r) for r in got] == [norm(r) for r in recs]  # the repeated book too (a change row)
    assert got[1]["bids"] == recs[1]["bids"] and got[1]["hash"] == recs[1]["hash"]


def test_a_newer_schema_version_is_a_clear_error_in_jsonl(old_day):
    d, recs = old_day
    part = layout.partition_dir(d, "polymarket", layout.BOOK_STREAM, DAY)
    newer = {**old_book(T0 + 20_000, 0.45), "schema_version": SCHEMA_VERSION + 1}
    write(part / "orderbooks.20260110T1000Z.100500000-2-d4e5f6.jsonl", [newer])
    with pytest.raises(SchemaVersionError) as e:
        list(read.iter_books(d, "polymarket"))
    msg = str(e.value)
    assert f"schema_version {SCHEMA_VERSION + 1}" in msg and f"<= {SCHEMA_VERSION}" in msg
    assert "100500000-2-d4e5f6.jsonl" in msg and "Upgrade the collector" in msg
    # a range that does not reach the newer record still reads
    assert len(list(read.iter_books(d, "polymarket", end=T0 + 10_000))) == 5
    # compaction refuses the day and leaves its JSONL alone
    before = sorted(p.name for p in part.iterdir())
    rep = cm.compact_day(d, "polymarket", DAY, now_ms=LATER)
    assert not rep.ok and rep.status == "failed" and "SchemaVersionError" in rep.error
    assert sorted(p.name for p in part.iterdir()) == before
    assert not layout.parquet_path(d, "polymarket", DAY).exists()


def test_a_newer_schema_version_is_a_clear_error_in_parquet(old_day):
    d, _ = old_day
    assert cm.compact_day(d, "polymarket", DAY, now_ms=LATER).ok
    path = layout.parquet_path(d, "polymarket", DAY)
    t = pq.read_table(path)
    i = t.schema.get_field_index("schema_version")
    t = t.set_column(i, "schema_version", pa.array([SCHEMA_VERSION + 1] * t.num_rows, pa.int64()))
    pq.write_table(t, path)
    with pytest.raises(SchemaVersionError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        list(read.iter_books(d, "polymarket"))


def test_a_newer_schema_version_in_book_changes_stops_the_replay(tmp_path):
    d = tmp_path / "data"
    part = layout.partition_dir(d, "polymarket", layout.BOOK_CHANGES_STREAM, DAY)
    snap = {"record_type": "book_snapshot", "schema_version": SCHEMA_VERSION + 1, "venue": "polymarket",
            "instrument_id": IID, "ts_ms": T0, "bids": [[0.41, 100]], "asks": [[0.43, 80]], "hash": "h"}
    write(part / "book_changes.20260110T1000Z.100000000-1-a1b2c3.jsonl", [snap])
    with pytest.raises(SchemaVersionError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        list(read.replay(d, "polymarket", [IID], start=T0 - 1000, end=T0 + 1000))
    with pytest.raises(SchemaVersionError):
        list(read.iter_changes(d, "polymarket"))
