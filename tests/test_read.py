"""collector.read over a realistic recording (tests/datagen.py): order, ranges, filters, damage,
as-of lookups, exact decimals, the market catalog and frames."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import sys
from decimal import Decimal

import orjson
import pytest

from collector import read
from collector.read.datafiles import SLACK_MS, data_files, list_venues
from collector.read.progress import Progress
from collector.read.times import duration_ms
from collector.store.files import file_lines
from collector.store.layout import DAY_MS, utc_day
from tests.datagen import copy_of, iso, shared

MIN = 60_000


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return shared(tmp_path_factory)


def truth(gen, venues=None, start=None, end=None, ids=None, gaps=False):
    """Ground truth in the reader's order (by ts_ms, stable in write order)."""
    with read.gc_paused():
        return _truth(gen, venues, start, end, ids, gaps)


def _truth(gen, venues, start, end, ids, gaps):
    out = []
    for v in venues or gen.venues:
        lines = gen.books[v] + (gen.gaps[v] if gaps else [])
        for x in lines:
            r = orjson.loads(x)
            if start is not None and r["ts_ms"] < start:
                continue
            if end is not None and r["ts_ms"] >= end:
                continue
            if ids is not None and r["instrument_id"] not in ids and r["instrument_id"] is not None:
                continue
            out.append(r)
    return sorted(out, key=lambda r: r["ts_ms"])


def key(r):
    return (r["ts_ms"], r.get("instrument_id") or "", r.get("hash") or "", r["record_type"])


def test_every_book_once_in_ts_order(gen):
    st = read.ReadStats()
    books = read.load_books(gen.data_dir, stats=st)
    want = truth(gen)
    assert len(books) == gen.n_books > 40_000
    ts = [b["ts_ms"] for b in books]
    assert ts == sorted(ts)
    assert sorted(books, key=key) == sorted(want, key=key)  # same records, values included
    # the recording has what the reader must cope with
    assert st.by_kind["zst"] > 5 and st.by_kind["jsonl"] > 5
    assert gen.torn_lines == 2 and gen.duplicate_pairs == 2
    assert st.bad_lines == 0  # torn last lines are skipped silently, not counted as bad


def test_lines_inside_a_file_are_out_of_order_and_get_reordered(gen):
    f = data_files(gen.data_dir, "polymarket")[3]
    ts = [orjson.loads(x)["ts_ms"] for x in file_lines(f.path)]
    assert ts != sorted(ts)  # the raw file is not sorted ...
    out = [r["ts_ms"] for r in read.iter_records(gen.data_dir, "polymarket", files=[f])]
    assert out == sorted(ts)  # ... the reader's output is


def test_records_cross_period_boundaries(gen):
    """Capture time vs write time: some records sit in the file of the next period."""
    files = [f for f in data_files(gen.data_dir, "polymarket") if f.kind != "parquet"]
    early = 0
    for f in files:
        start = f.lo_ms + SLACK_MS
        early += sum(1 for x in file_lines(f.path) if orjson.loads(x)["ts_ms"] < start)
    assert early > 0


def test_zst_preferred_when_both_exist(gen):
    for v in gen.venues:
        paths = [f.path.name for f in data_files(gen.data_dir, v)]
        bases = [p.removesuffix(".zst") for p in paths]
        assert len(bases) == len(set(bases))
        on_disk = {p.name for p in (gen.data_dir / v / "orderbooks").rglob("*.jsonl")}
        pairs = [p for p in on_disk if p + ".zst" in paths]
        assert pairs  # a crash during compression left X.jsonl next to X.jsonl.zst


def test_time_range_skips_days_and_files(gen):
    start = gen.start_ms + 95 * MIN  # 00:35 on the second day
    end = start + 10 * MIN
    files = data_files(gen.data_dir, "polymarket", start=start, end=end)
    assert {f.date for f in files} == {"2026-01-11"}
    assert len(files) <= 3  # the period of the range and its neighbours only
    got = read.load_books(gen.data_dir, "polymarket", start=start, end=end)
    assert sorted(got, key=key) == sorted(truth(gen, ["polymarket"], start, end), key=key)
    assert all(start <= b["ts_ms"] < end for b in got)
    # ISO text and datetimes are the same range
    got2 = read.load_books(gen.data_dir, "polymarket", start=iso(start), end=dt.datetime.fromtimestamp(end / 1000, dt.timezone.utc))
    assert got2 == got


def test_range_across_midnight(gen):
    start, end = gen.start_ms + 55 * MIN, gen.start_ms + 65 * MIN
    got = read.load_books(gen.data_dir, ["polymarket", "limitless"], start=start, end=end)
    assert {utc_day(b["ts_ms"]) for b in got} == {"2026-01-10", "2026-01-11"}
    assert sorted(got, key=key) == sorted(truth(gen, None, start, end), key=key)


def test_instrument_filter_by_id_and_poll_key(gen):
    insts = gen.instruments["polymarket"][:2]
    ids = {i.instrument_id for i in insts}
    a = read.load_books(gen.data_dir, "polymarket", instruments=[i.instrument_id for i in insts])
    b = read.load_books(gen.data_dir, "polymarket", instruments=[i.poll_key for i in insts])
    assert a == b and {r["instrument_id"] for r in a} == ids
    assert sorted(a, key=key) == sorted(truth(gen, ["polymarket"], ids=ids), key=key)


def test_gaps_with_books(gen):
    inst = gen.instruments["polymarket"][0].instrument_id
    recs = list(read.iter_books(gen.data_dir, "polymarket", instruments=[inst], gaps=True))
    gaps = [r for r in recs if r["record_type"] == "gap"]
    assert any(g["instrument_id"] == inst for g in gaps)
    assert any(g["instrument_id"] is None for g in gaps)  # venue-wide cooldown gap
    for g in gaps:
        if g["instrument_id"]:
            assert g["failures"] >= 1 and g["from_ts_ms"] < g["to_ts_ms"]
    all_gaps = list(read.iter_records(gen.data_dir, "polymarket", record_types={"gap"}))
    assert len(all_gaps) == len(gen.gaps["polymarket"])


def test_as_of_matches_brute_force(gen):
    rng = random.Random(3)
    books = truth(gen, ["polymarket"])
    insts = [i.instrument_id for i in gen.instruments["polymarket"]]
    for _ in range(8):
        t = rng.randrange(gen.start_ms - MIN, gen.end_ms + MIN)
        want = {}
        for b in books:  # last book with ts_ms <= t, per instrument (ground-truth order)
            if b["ts_ms"] <= t and b["ts_ms"] > t - DAY_MS:
                want[b["instrument_id"]] = b
        got = read.books_at(gen.data_dir, "polymarket", insts, t)
        assert {k: v["ts_ms"] for k, v in got.items()} == {k: v["ts_ms"] for k, v in want.items()}
        assert got == want
    one = insts[0]
    t = books[len(books) // 2]["ts_ms"]
    b = read.book_at(gen.data_dir, "polymarket", one, t)
    assert b["ts_ms"] <= t and b["instrument_id"] == one
    assert read.book_at(gen.data_dir, "polymarket", one, gen.start_ms - 1) is None
    assert read.book_at(gen.data_dir, "polymarket", one, t, lookback=0) in (None, b)
    # lookback: ms, timedelta or text; a book older than the lookback is not returned
    later = b["ts_ms"] + 5 * MIN
    assert read.book_at(gen.data_dir, "polymarket", one, later, lookback="1m") is None or b["ts_ms"] < later
    assert read.book_at(gen.data_dir, "polymarket", one, later, lookback=dt.timedelta(hours=1))["ts_ms"] > later - 60 * MIN
    assert duration_ms("90s") == 90_000 and duration_ms(dt.timedelta(minutes=2)) == 120_000
    with pytest.raises(ValueError):
        duration_ms("soon")


def test_exact_decimals(gen):
    start, end = gen.start_ms + 20 * MIN, gen.start_ms + 21 * MIN
    got = read.load_books(gen.data_dir, "limitless", start=start, end=end, exact=True)
    want = sorted(
        (json.loads(x, parse_float=Decimal) for x in gen.books["limitless"]), key=lambda r: r["ts_ms"]
    )
    want = [r for r in want if start <= r["ts_ms"] < end]
    assert got and sorted(got, key=key) == sorted(want, key=key)
    b = got[0]
    assert isinstance(b["bids"][0][0], Decimal) and isinstance(b["mid"], Decimal)
    # the decimal is the text on disk, e.g. Limitless sizes with 6 decimals
    assert any(len(str(s).split(".")[-1]) == 6 for r in got for _p, s in r["bids"] if "." in str(s))


def test_bad_line_in_the_middle_is_skipped(gen, tmp_path):
    g = copy_of(gen, tmp_path / "d")
    f = next(f for f in data_files(g.data_dir, "limitless") if f.kind == "jsonl")
    lines = f.path.read_bytes().split(b"\n")
    lines.insert(5, b'{"record_type":"orderbook","ts_ms":')  # complete line, invalid JSON
    lines.insert(9, b"\x00\x00\x00")
    f.path.write_bytes(b"\n".join(lines))
    st = read.ReadStats()
    got = read.load_books(g.data_dir, "limitless", stats=st)
    assert len(got) == len(gen.books["limitless"])
    assert st.bad_lines == 1  # the NUL line has no "orderbook" token: filtered before parsing
    st = read.ReadStats()
    recs = list(read.iter_records(g.data_dir, "limitless", files=[f], stats=st))
    assert st.bad_lines == 2 and len(recs) == st.lines - 2


def test_torn_zst_and_unterminated_lines(tmp_path):
    """A torn line inside a .zst (a crashed file compressed later) and a half-written line."""
    import zstandard

    d = tmp_path / "polymarket" / "orderbooks" / "date=2026-01-10"
    d.mkdir(parents=True)
    recs = [{"record_type": "orderbook", "instrument_id": "polymarket:1", "ts_ms": 1768089000000 + i, "bids": [], "asks": []} for i in range(5)]
    body = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    (d / "orderbooks.20260110T2350Z.a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body + b'{"record_type":"orderb'))
    (d / "orderbooks.20260110T2350Z.b.jsonl").write_bytes(body[: len(body) // 2 + 7])
    got = read.load_books(tmp_path, "polymarket")
    n_b = body[: len(body) // 2 + 7].count(b"\n")
    assert len(got) == 5 + n_b
    assert [r["ts_ms"] for r in got] == sorted(r["ts_ms"] for r in got)


def test_hidden_temp_files_ignored(tmp_path):
    d = tmp_path / "limitless" / "orderbooks" / "date=2026-01-10"
    d.mkdir(parents=True)
    line = orjson.dumps({"record_type": "orderbook", "instrument_id": "limitless:x", "ts_ms": 1768086000000}) + b"\n"
    (d / "orderbooks.20260110T2350Z.a.jsonl").write_bytes(line)
    (d / ".orderbooks.20260110T2350Z.a.jsonl.zst.123-abc.tmp").write_bytes(b"junk")
    assert len(read.load_books(tmp_path, "limitless")) == 1


def test_market_catalog_lifecycle(gen):
    cat = read.market_catalog(gen.data_dir)
    ever = {i.instrument_id: i for v in gen.venues for i in gen.instruments[v]}
    assert set(gen.lifecycle) <= set(cat) <= set(ever)
    for iid, (added, removed) in gen.lifecycle.items():
        e = cat[iid]
        assert e["added_ms"] == added
        assert e["removed_ms"] == removed
        assert e["active"] == (removed is None)
        assert e["title"] == ever[iid].title and e["expires_at_ms"] == ever[iid].expires_at_ms
        if removed is not None:
            assert e["removed_reason"] == "expired"
    markets = read.catalog_markets(read.market_catalog(gen.data_dir, "polymarket"))
    assert all(set(m["instruments"]) == {"Up", "Down"} for m in markets.values())


def test_catalog_repeated_records_and_snapshot_only(tmp_path):
    from collector.discovery.markets_log import (
        append_market_records,
        market_record,
        market_records_path,
    )
    from collector.model.records import Instrument
    from collector.store.layout import snapshot_path
    from collector.store.snapshot import Snapshot, write_snapshot

    a = Instrument(venue="limitless", poll_key="a", market_id="a", title="A", expires_at_ms=None)
    b = Instrument(venue="limitless", poll_key="b", market_id="b", title="B")
    t0 = 1768086000000
    p = market_records_path(tmp_path, "limitless", t0, pid=1)
    append_market_records(p, [market_record(a, "added", "rule:x", t0)])
    append_market_records(p, [market_record(a, "added", "rule:x", t0)])  # at-least-once repeat
    append_market_records(market_records_path(tmp_path, "limitless", t0 + 60_000, pid=1), [market_record(a, "removed", "closed_or_gone", t0 + 60_000)])
    append_market_records(market_records_path(tmp_path, "limitless", t0 + 120_000, pid=1), [market_record(a, "added", "rule:x", t0 + 120_000)])
    write_snapshot(snapshot_path(tmp_path, "limitless"), Snapshot(venue="limitless", asof_ms=t0 + 180_000, instruments=[a, b]))
    cat = read.market_catalog(tmp_path, "limitless")
    assert cat["limitless:a"]["intervals"] == [[t0, t0 + 60_000], [t0 + 120_000, None]]
    assert cat["limitless:a"]["active"] and cat["limitless:a"]["removed_ms"] is None
    assert cat["limitless:b"]["intervals"] == [[t0 + 180_000, None]]  # known from the snapshot only


def test_to_polars_and_to_arrow(gen):
    import polars as pl

    books = read.load_books(gen.data_dir, "polymarket", start=gen.start_ms, end=gen.start_ms + 5 * MIN)
    df = read.to_polars(books)
    assert df.height == len(books)
    assert df.schema["bid_prices"] == pl.List(pl.Float64) and df.schema["ts_ms"] == pl.Int64
    assert df["best_bid"].to_list() == [b["best_bid"] for b in books]
    assert df["bid_prices"][0].to_list() == [p for p, _s in books[0]["bids"]]
    exact = read.load_books(gen.data_dir, "polymarket", start=gen.start_ms, end=gen.start_ms + 5 * MIN, exact=True)
    assert read.to_arrow(exact).equals(read.to_arrow(books))  # Decimals become the same doubles
    stats = list(read.iter_records(gen.data_dir, "polymarket", "poll_stats", gen.start_ms, gen.start_ms + 5 * MIN))
    assert read.to_polars(stats).height == len(stats)


def test_to_pandas_without_pandas_is_a_clear_import_error(gen, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        read.to_pandas([])


def test_to_polars_without_polars(monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ImportError, match="pip install polars"):
        read.to_polars([])


def test_to_pandas_when_installed(gen):
    pytest.importorskip("pandas")
    books = read.load_books(gen.data_dir, "limitless", start=gen.start_ms, end=gen.start_ms + MIN)
    assert len(read.to_pandas(books)) == len(books)


def test_parse_time():
    assert read.parse_time(1768086000000) == 1768086000000
    assert read.parse_time("2026-01-11") == 1768089600000
    assert read.parse_time("2026-01-11T00:00:00Z") == 1768089600000
    assert read.parse_time("2026-01-11T01:00:00+01:00") == 1768089600000
    assert read.parse_time(dt.date(2026, 1, 11)) == 1768089600000
    assert read.parse_time(dt.datetime(2026, 1, 11)) == 1768089600000
    assert read.parse_time("90s", now_ms=100_000) == 10_000
    assert read.parse_time("2h", now_ms=10 * 3_600_000) == 8 * 3_600_000
    with pytest.raises(ValueError):
        read.parse_time("yesterday")


def test_progress_bar_only_on_a_terminal():
    buf = io.StringIO()
    p = Progress(2_000_000, "x", stream=buf)
    p.add(1_000_000)
    p.close()
    assert buf.getvalue() == ""  # not a TTY
    p = Progress(2_000_000, "x", stream=buf, force=True)
    p.add(1_000_000)
    p.close()
    assert "50.0%" in buf.getvalue() or "100.0%" in buf.getvalue()


def test_list_venues_and_empty_dirs(tmp_path, gen):
    assert list_venues(gen.data_dir) == ["limitless", "polymarket"]
    assert list_venues(tmp_path / "missing") == []
    assert read.load_books(tmp_path, "polymarket") == []
    assert read.books_at(tmp_path, "polymarket", ["x"], 0) == {}
    assert read.market_catalog(tmp_path, "polymarket") == {}


def test_reading_is_fast_enough(gen):
    import time

    t = time.perf_counter()
    n = len(read.load_books(gen.data_dir))
    rate = n / (time.perf_counter() - t)
    assert rate > 20_000, rate  # ~100k/s on a laptop; generous for CI
