"""Reading trades (collector/read/trades.py) and compacting them (collector/store/compact_trades.py).

On a generated recording (tests/datagen.py + tests/datagen_trades.py): de-duplication by key,
venue-time order across a backfill written late and a day boundary, exact text, ranges and
instruments, gaps; the compacted Parquet reads back identical to the JSONL and fails
verification when altered; days with trades only or books only; newer schema versions refused;
and a hypothesis property: any mix of duplicates, clocks and file splits reads back as the model.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import read
from collector.model.errors import SchemaVersionError
from collector.model.trade_records import TradeRecord
from collector.store import layout, verified
from collector.store.compact import compact_day
from collector.store.compact_trades import verify_trades
from collector.store.files import jsonl_files
from collector.store.verify import VerificationError
from tests.datagen import copy_of, shared
from tests.datagen_trades import (
    BACKFILL_AT,
    LOST,
    MIDNIGHT_MS,
    OUTAGE,
    add_trades,
    long_lived,
)

FIELDS = [f.name for f in dataclasses.fields(TradeRecord)]
LATER = MIDNIGHT_MS + 5 * 86_400_000


def _row(t) -> tuple:
    return tuple(getattr(t, f) for f in FIELDS)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    g = copy_of(shared(tmp_path_factory), tmp_path_factory.mktemp("trades") / "data")
    ids = {"polymarket": long_lived(g, "polymarket", 3), "limitless": long_lived(g, "limitless", 2)}
    return g, add_trades(g.data_dir, ids)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_recording_has_what_the_reader_must_handle(rec):
    _g, tr = rec
    w = tr.written["polymarket"]
    assert tr.duplicates("polymarket") > 5 and tr.duplicates("limitless") > 5
    assert any(r.ts_ms >= BACKFILL_AT and r.ob_ts_ms < OUTAGE[1] and r.source == "rest" for r in w)  # backfilled
    # written after later trades: the write order is not the venue-time order
    assert any(_t < prev for prev, _t in zip([r.ob_ts_ms for r in w], [r.ob_ts_ms for r in w][1:]))
    # a trade of the day before repeated on the next day (the backfill's overlap across midnight)
    firsts = {}
    for r in w:
        firsts.setdefault(r.key, r)
    assert any(r.ts_ms >= MIDNIGHT_MS > firsts[r.key].ts_ms for r in w if firsts[r.key] is not r)
    assert any("." in r.size and len(r.size.split(".")[1]) >= 4 for r in tr.written["limitless"])  # fractional sizes
    assert any(p.name.endswith(".zst") for p in (tr.data_dir / "polymarket" / "trades").rglob("*"))
    assert {d.name for d in (tr.data_dir / "polymarket" / "trades").iterdir()} == {"date=2026-01-10", "date=2026-01-11"}


def test_deduplicated_and_in_venue_time(rec):
    _g, tr = rec
    for v in ("polymarket", "limitless"):
        got = read.load_trades(tr.data_dir, v)
        assert [_row(t) for t in got] == [_row(t) for t in tr.unique(v)]
        assert len({t.key for t in got}) == len(got)
        assert all((a.t_ms, a.key) < (b.t_ms, b.key) for a, b in zip(got, got[1:]))
    both = read.load_trades(tr.data_dir)  # every venue: one order
    assert len(both) == len(tr.unique("polymarket")) + len(tr.unique("limitless"))
    assert [(t.t_ms, t.key) for t in both] == sorted((t.t_ms, t.key) for t in both)


def test_range_instruments_floats(rec):
    _g, tr = rec
    iid = tr.instruments["polymarket"][0]
    lo, hi = OUTAGE[0] - 60_000, OUTAGE[1] + 60_000
    want = [t for t in tr.unique("polymarket") if t.instrument_id == iid and lo <= t.ob_ts_ms < hi]
    got = read.load_trades(tr.data_dir, "polymarket", [iid.partition(":")[2]], lo, hi)  # by poll key
    assert [_row(t) for t in got] == [_row(t) for t in want] and want
    assert not any(LOST[0] <= t.t_ms < LOST[1] for t in got)  # the lost span: the gap below says so
    fl = read.load_trades(tr.data_dir, "polymarket", [iid], lo, hi, floats=True)
    assert [t.price for t in fl] == [float(t.price) for t in want] and type(fl[0].size) is float
    assert read.load_trades(tr.data_dir, "polymarket", start="2026-01-11T00:00Z", end="2026-01-11T00:00Z") == []


def test_gaps_tell_missing_from_quiet(rec):
    _g, tr = rec
    gaps = list(read.iter_trade_gaps(tr.data_dir, "polymarket", start=MIDNIGHT_MS - 3_600_000))
    assert [(g.instrument_id, g.from_ts_ms, g.to_ts_ms, g.reason, g.missing) for g in gaps] == [
        (None, *LOST, "trades_backlog", True), (None, LOST[1], OUTAGE[1], "feed_down", False)]
    assert gaps[0].covers(LOST[0] + 1) and not gaps[0].covers(LOST[1] + 1)
    iid = tr.instruments["polymarket"][0]
    assert len(list(read.iter_trade_gaps(tr.data_dir, "polymarket", [iid]))) == 2  # venue-wide ones are kept
    assert [g.reason for g in read.iter_trade_gaps(tr.data_dir, "polymarket", start=LOST[1] + 1)] == ["feed_down"]
    assert list(read.iter_trade_gaps(tr.data_dir, "polymarket", start=OUTAGE[1] + 1)) == []
    assert list(read.iter_trade_gaps(tr.data_dir, "limitless")) == []


def test_compaction_round_trip(rec, tmp_path):
    _g, tr = rec
    d = _copy(tr.data_dir, tmp_path / "data")
    before = {v: [_row(t) for t in read.load_trades(d, v)] for v in ("polymarket", "limitless")}
    for v in ("polymarket", "limitless"):
        for day in ("2026-01-10", "2026-01-11"):
            rep = compact_day(d, v, day, now_ms=LATER)
            assert rep.ok and rep.trades.status == "compacted" and rep.trades.verified, rep.summary_line()
            assert "trades: compacted" in rep.summary_line()
            assert verified.check_trades(d, v, day) is None and verified.check(d, v, day) is None
            assert jsonl_files(layout.partition_dir(d, v, layout.TRADES_STREAM, day))  # trade JSONL kept
            pf = pq.ParquetFile(layout.trades_parquet_path(d, v, day))
            assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
            assert pf.schema_arrow.field("price").type == pa.float64()
        assert [_row(t) for t in read.load_trades(d, v)] == before[v]  # the Parquet reads back as the JSONL
    # the Parquet alone (trade JSONL gone) gives the same; a day's file holds that day's captures
    shutil.rmtree(d / "polymarket" / "trades")
    assert [_row(t) for t in read.load_trades(d, "polymarket")] == before["polymarket"]
    rows = pq.read_table(layout.trades_parquet_path(d, "polymarket", "2026-01-10")).to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["ob_ts_ms"], r["key"])) and len({r["key"] for r in rows}) == len(rows)
    assert all(r["ts_ms"] < MIDNIGHT_MS + 60_000 for r in rows)
    # compacting again (JSONL gone): "already", nothing rewritten
    rep = compact_day(d, "polymarket", "2026-01-10", now_ms=LATER)
    assert rep.ok and rep.trades.status == "already"


def test_verification_fails_when_the_parquet_is_altered(rec, tmp_path, monkeypatch):
    _g, tr = rec
    d = _copy(tr.data_dir, tmp_path / "data")
    day = "2026-01-11"
    assert compact_day(d, "limitless", day, keep_jsonl=True, now_ms=LATER).ok
    path = layout.trades_parquet_path(d, "limitless", day)
    files = jsonl_files(layout.partition_dir(d, "limitless", layout.TRADES_STREAM, day))
    assert verify_trades(files, path) > 0
    t = pq.read_table(path)
    bad = tmp_path / "bad.parquet"
    for col, fn in (("price", lambda v: v + 0.001), ("key", lambda v: v + "x")):
        vals = t.column(col).to_pylist()
        vals[3] = fn(vals[3])
        pq.write_table(t.set_column(t.schema.get_field_index(col), col, pa.array(vals, t.schema.field(col).type)), bad)
        with pytest.raises(VerificationError, match="differs"):
            verify_trades(files, bad)
    pq.write_table(t.slice(1), bad)
    with pytest.raises(VerificationError, match="rows"):
        verify_trades(files, bad)
    shutil.copy(bad, path)  # altered after publishing: the manifest says so
    assert "changed since it was verified" in verified.check_trades(d, "limitless", day)
    # a compaction whose Parquet comes out wrong publishes nothing and says why
    import collector.store.compact_trades as ct

    real = ct.records_to_table
    monkeypatch.setattr(ct, "records_to_table", lambda recs, *a, **k: real(recs[:-1], *a, **k))
    path.unlink()
    rep = compact_day(d, "limitless", day, keep_jsonl=True, now_ms=LATER)
    assert not rep.ok and rep.trades.status == "failed" and "VerificationError" in rep.trades.error
    assert not path.exists() and "failed" in verified.check_trades(d, "limitless", day)
    assert rep.status == "compacted"  # the books of the day are not held back by their trades


def test_days_with_trades_only_or_books_only(tmp_path):
    d = tmp_path / "data"
    add_trades(d, {"kalshi": ["kalshi:KX-1"]}, start_ms=MIDNIGHT_MS - 1_800_000, duration_s=1200)  # no books at all
    rep = compact_day(d, "kalshi", "2026-01-10", now_ms=LATER)
    assert rep.ok and rep.status == "nothing" and rep.trades.status == "compacted" and rep.trades.trades > 10
    assert len(read.load_trades(d, "kalshi")) == rep.trades.trades
    assert [tb.book for tb in read.trades_with_books(d, "kalshi")] == [None] * rep.trades.trades
    g = tmp_path / "books"
    from tests.datagen import generate

    generate(g, venues=("limitless",), duration_s=600, markets={"limitless": 2}, crash=False)
    rep = compact_day(g, "limitless", "2026-01-10", now_ms=LATER)
    assert rep.ok and rep.status == "compacted" and rep.trades.status == "nothing"
    assert "trades" not in rep.summary_line() and read.load_trades(g, "limitless") == []


def test_newer_schema_versions_are_refused(tmp_path):
    d = tmp_path / "data"
    add_trades(d, {"kalshi": ["kalshi:KX-1"]}, start_ms=MIDNIGHT_MS - 1_800_000, duration_s=600)
    part = layout.partition_dir(d, "kalshi", layout.TRADES_STREAM, "2026-01-10")
    f = jsonl_files(part)[-1]
    newer = TradeRecord("kalshi", "kalshi:KX-1", MIDNIGHT_MS - 1_000_000, None, "new", "0.5", "1")
    with open(f, "ab") as fh:
        fh.write(newer.to_json().replace(b'"schema_version":1', b'"schema_version":99') + b"\n")
    with pytest.raises(SchemaVersionError):
        read.load_trades(d, "kalshi")
    rep = compact_day(d, "kalshi", "2026-01-10", now_ms=LATER)
    assert rep.trades.status == "failed" and "schema_version" in rep.trades.error
    # a Parquet of a newer version too
    good = tmp_path / "good"
    add_trades(good, {"kalshi": ["kalshi:KX-1"]}, start_ms=MIDNIGHT_MS - 1_800_000, duration_s=600)
    assert compact_day(good, "kalshi", "2026-01-10", now_ms=LATER).ok
    p = layout.trades_parquet_path(good, "kalshi", "2026-01-10")
    t = pq.read_table(p)
    pq.write_table(t.set_column(t.schema.get_field_index("schema_version"), "schema_version",
                                pa.array([99] * t.num_rows, pa.int64())), p)
    with pytest.raises(SchemaVersionError):
        read.load_trades(good, "kalshi")


# --------------------------------------------------------------------------- property

DAY0 = MIDNIGHT_MS - 86_400_000
_dec = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("9999"), places=6, allow_nan=False)
# a trade (its key fixes what the venue says of it) and its copies (when each was received, how)
_content = st.tuples(
    st.one_of(st.none(), st.integers(0, 2 * 86_400_000 - 1)),  # venue time (None: unknown)
    st.sampled_from(["polymarket:a", "polymarket:b"]), _dec, _dec,
)
_copies = st.lists(st.tuples(st.integers(0, 3_600_000), st.sampled_from(["ws", "rest"])), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([f"k{i}" for i in range(8)]), st.tuples(_content, _copies, st.integers(0, 86_400_000)),
                       max_size=8),
       st.integers(1, 4), st.booleans(), st.randoms(use_true_random=False))
def test_property_reader_is_the_model(trades, nfiles, compact, rnd):
    from collector.model.decimals import fmt

    recs = []
    for key, ((ob, iid, p, s), copies, cap) in trades.items():
        base = DAY0 + (cap if ob is None else ob)  # received after the venue time (up to an hour late)
        for delay, src in copies:
            recs.append(TradeRecord("polymarket", iid, base + delay, None if ob is None else DAY0 + ob, key,
                                    fmt(p), fmt(s), source=src))
    rnd.shuffle(recs)  # split across several files (writers) of their day at random...
    files = [rnd.randrange(nfiles) for _ in recs]
    order = sorted(range(len(recs)), key=lambda i: recs[i].ts_ms)  # ...each written in capture order
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for i in order:
            r = recs[i]
            date = layout.utc_day(r.ts_ms)
            part = layout.partition_dir(d, "polymarket", layout.TRADES_STREAM, date)
            part.mkdir(parents=True, exist_ok=True)
            with open(part / f"trades.{date.replace('-', '')}T0000Z.000000000-{files[i]}-aa.jsonl", "ab") as f:
                f.write(r.to_json() + b"\n")
        if compact and recs:
            for date in sorted(p.name[5:] for p in (d / "polymarket" / "trades").iterdir()):
                assert compact_day(d, "polymarket", date, now_ms=LATER).ok
        first = {}
        for r in sorted(recs, key=lambda r: r.ts_ms):
            first.setdefault(r.key, r)  # without a venue time a trade is at its first capture
        want = sorted(((r.ts_ms if r.ob_ts_ms is None else r.ob_ts_ms), k) for k, r in first.items())
        got = read.load_trades(d, "polymarket", lag=86_400_000 * 3)
        assert [(t.t_ms, t.key) for t in got] == want
        for t in got:  # the first received copy, with its exact text
            first = min(r.ts_ms for r in recs if r.key == t.key)
            assert (t.ts_ms, t.price, t.size, t.instrument_id) == (first, *next(
                (r.price, r.size, r.instrument_id) for r in recs if r.key == t.key))


def test_rows_are_typed_and_frames_work(rec):
    _g, tr = rec
    got = read.load_trades(tr.data_dir, "limitless")[:5]
    assert all(type(t) is read.Trade and type(t.price) is str for t in got)
    df = read.to_polars(got)
    assert df.columns[:7] == ["venue", "instrument_id", "ts_ms", "ob_ts_ms", "key", "price", "size"]
    assert df["price"].to_list() == [float(t.price) for t in got] and df["t_ms"].to_list() == [t.t_ms for t in got]
    gaps = list(read.iter_trade_gaps(tr.data_dir, "polymarket"))
    assert read.to_arrow(gaps).num_rows == 2
    assert orjson.loads(TradeRecord(**{f: getattr(got[0], f) for f in FIELDS}).to_json())["price"] == float(got[0].price)


def test_trades_with_books_to_frames(rec):
    _g, tr = rec
    got = read.load_trades_with_books(tr.data_dir, "polymarket", start=MIDNIGHT_MS - 600_000, end=MIDNIGHT_MS)
    df = read.to_polars(got)
    assert df.height == len(got) and {"book_ts_ms", "book_ob_ts_ms", "best_bid", "best_ask", "price"} <= set(df.columns)
    assert df["book_ts_ms"].to_list() == [None if tb.book is None else tb.book["ts_ms"] for tb in got]
    assert df["book_ts_ms"].null_count() < df.height
