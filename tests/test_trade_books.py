"""trades_with_books: each trade with the book in force just before it (collector/read/trade_books.py).

Hand-made days where every answer is known: venue clock on both sides, capture clock on the
book side, a trade exactly at a book's time, before any book, inside an instrument gap and just
after a venue-wide cooldown, an ``unchanged`` marker, a backfilled trade captured late, and the
same answers once the day is compacted. Then the generated recording against a brute force.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collector import read
from collector.read.trade_books import book_time
from collector.store import layout
from collector.store.compact import compact_day
from tests.datagen import copy_of, shared
from tests.datagen_trades import add_trades, long_lived

DAY = "2026-01-10"
T0 = layout.day_bounds(DAY)[0] + 10 * 3_600_000  # 10:00 UTC
A, B = "polymarket:111", "limitless:bee"


def _write(data_dir: Path, venue: str, stream: str, recs: list[dict]) -> None:
    part = layout.partition_dir(data_dir, venue, stream, DAY)
    part.mkdir(parents=True, exist_ok=True)
    with open(part / f"{stream}.20260110T0000Z.000000000-1-aa.jsonl", "ab") as f:
        for r in recs:
            f.write(orjson.dumps({"schema_version": 1, **r}) + b"\n")


def _book(venue: str, iid: str, ts: int, ob: int | None, bid: float) -> dict:
    return {"record_type": "orderbook", "venue": venue, "instrument_id": iid, "ts_ms": T0 + ts,
            "ob_ts_ms": None if ob is None else T0 + ob, "bids": [[bid, 10]], "asks": [[bid + 0.1, 5]],
            "best_bid": bid, "best_ask": bid + 0.1, "mid": bid + 0.05, "spread": 0.1}


def _trade(venue: str, iid: str, key: str, ts: int, ob: int | None) -> dict:
    return {"record_type": "trade", "venue": venue, "instrument_id": iid, "ts_ms": T0 + ts,
            "ob_ts_ms": None if ob is None else T0 + ob, "key": key, "price": 0.5, "size": 1.25, "side": "buy",
            "source": "ws"}


def _gap(venue: str, iid: str | None, frm: int, to: int) -> dict:
    g = {"record_type": "gap", "venue": venue, "instrument_id": iid, "ts_ms": T0 + to, "from_ts_ms": T0 + frm,
         "to_ts_ms": T0 + to, "reason": "timeout" if iid else "cooldown:rate_limited"}
    return {**g, "failures": 3} if iid else g


# expected book (its ts offset, or None) per trade key
EXPECT_A = {"before-any": None, "at-unchanged": 1000, "after-unchanged": 1500, "at-b2-venue-time": 1500,
            "after-b2": 2000, "late-capture": 2000, "at-gap-start": 3000, "in-gap": None, "after-gap": 6000,
            "in-cooldown": None, "after-cooldown-no-book": None, "after-b5": 8100}
EXPECT_B = {"b-at-book": 1000, "b-after": 2000, "b-venue-vs-capture": 1000}


@pytest.fixture()
def day(tmp_path):
    d = tmp_path / "data"
    # A: venue clock on both sides. b1 (ts 1000, ob 900), an unchanged poll of it (1500, 1450),
    # b2 (2000, 1900), b3 (3000, 2950), an instrument gap 3000 -> 6000, b4 (6000, 5990), a
    # venue-wide cooldown 7000 -> 8000, b5 (8100, 8090).
    marker = {"record_type": "unchanged", "venue": "polymarket", "instrument_id": A, "ts_ms": T0 + 1500,
              "ob_ts_ms": T0 + 1450}
    _write(d, "polymarket", "orderbooks", [
        _book("polymarket", A, 1000, 900, 0.40), marker, _book("polymarket", A, 2000, 1900, 0.41),
        _book("polymarket", A, 3000, 2950, 0.42), _gap("polymarket", A, 3000, 6000),
        _book("polymarket", A, 6000, 5990, 0.43), _gap("polymarket", None, 7000, 8000),
        _book("polymarket", A, 8100, 8090, 0.44),
    ])
    _write(d, "polymarket", "trades", [
        _trade("polymarket", A, "before-any", 600, 500),
        _trade("polymarket", A, "at-unchanged", 1470, 1450),  # == the marker's venue time: the book before
        _trade("polymarket", A, "after-unchanged", 1500, 1460),
        _trade("polymarket", A, "at-b2-venue-time", 1950, 1900),
        _trade("polymarket", A, "after-b2", 1960, 1901),
        _trade("polymarket", A, "at-gap-start", 3050, 3000),  # the gap starts with the trade: b3 was in force
        _trade("polymarket", A, "in-gap", 4050, 4000),
        _trade("polymarket", A, "after-gap", 6600, 6500),
        _trade("polymarket", A, "in-cooldown", 7600, 7500),
        _trade("polymarket", A, "after-cooldown-no-book", 8060, 8050),
        _trade("polymarket", A, "after-b5", 8600, 8500),
        # a backfill written late: by capture time it would get b3 or later, by venue time b2
        _trade("polymarket", A, "late-capture", 9000, 2500),
    ])
    # B: books without a venue time (capture clock), trades with and without one.
    _write(d, "limitless", "orderbooks", [_book("limitless", B, 1000, None, 0.2), _book("limitless", B, 2000, None, 0.3)])
    _write(d, "limitless", "trades", [
        _trade("limitless", B, "b-at-book", 2000, None),  # capture time == the book's: the one before
        _trade("limitless", B, "b-after", 2500, None),
        _trade("limitless", B, "b-venue-vs-capture", 9000, 1500),  # venue time against the book's capture time
    ])
    return d


def _answers(d: Path, venue: str, **kw) -> dict[str, int | None]:
    return {tb.trade.key: (None if tb.book is None else tb.book["ts_ms"] - T0)
            for tb in read.trades_with_books(d, venue, **kw)}


def test_asof_rule_venue_clock_gaps_and_markers(day):
    assert _answers(day, "polymarket") == EXPECT_A
    got = list(read.trades_with_books(day, "polymarket", instruments=["111"]))  # a poll key works too
    assert [tb.trade.key for tb in got] == sorted(EXPECT_A, key=lambda k: next(
        t.t_ms for t in read.iter_trades(day, "polymarket") if t.key == k))
    after_unchanged = next(tb for tb in got if tb.trade.key == "after-unchanged")
    assert after_unchanged.book["bids"] == [[0.4, 10]] and after_unchanged.book["record_type"] == "orderbook"


def test_asof_rule_capture_clock(day):
    assert _answers(day, "limitless") == EXPECT_B


def test_lookback_and_range(day):
    # a book older than the lookback is not the one in force
    short = _answers(day, "polymarket", lookback=450)
    assert short["late-capture"] is None and short["after-gap"] is None  # 600 and 510 ms old
    assert short["after-b2"] == 2000 and short["after-b5"] == 8100  # 1 and 410 ms old
    part = _answers(day, "polymarket", start=T0 + 3000, end=T0 + 7000)
    assert part == {k: v for k, v in EXPECT_A.items() if k in ("at-gap-start", "in-gap", "after-gap")}


def test_same_answers_from_compacted_books(day):
    for v in ("polymarket", "limitless"):
        rep = compact_day(day, v, DAY, now_ms=T0 + 3 * 86_400_000)
        assert rep.ok and rep.trades is not None and rep.trades.status == "compacted", rep.summary_line()
        assert not layout.partition_dir(day, v, layout.BOOK_STREAM, DAY).exists()  # book JSONL deleted
        assert layout.partition_dir(day, v, layout.TRADES_STREAM, DAY).exists()  # trade JSONL kept
    assert _answers(day, "polymarket") == EXPECT_A
    assert _answers(day, "limitless") == EXPECT_B


# --------------------------------------------------------------------------- a generated recording


def _brute(books: list[dict], gaps: list[dict], tr: read.Trade, lookback: int) -> dict | None:
    t = tr.t_ms
    cand = [(book_time(b), b["ts_ms"], i, b) for i, b in enumerate(books)
            if b["instrument_id"] == tr.instrument_id and book_time(b) < t]
    if not cand:
        return None
    b = max(cand, key=lambda x: x[:3])[3]
    for g in gaps:
        if g["instrument_id"] in (None, tr.instrument_id) and (g["from_ts_ms"] or -1) < t and g["to_ts_ms"] > b["ts_ms"]:
            return None
    return None if book_time(b) < t - lookback else b


def test_generated_recording_against_brute_force(tmp_path_factory):
    g = copy_of(shared(tmp_path_factory), tmp_path_factory.mktemp("tb") / "data")
    ids = {"polymarket": long_lived(g, "polymarket", 2), "limitless": long_lived(g, "limitless", 1)}
    add_trades(g.data_dir, ids)
    for v, iids in ids.items():
        books = read.load_books(g.data_dir, v, instruments=iids)
        gaps = [r for r in read.iter_books(g.data_dir, v, instruments=iids, gaps=True) if r["record_type"] == "gap"]
        got = read.load_trades_with_books(g.data_dir, v, instruments=iids)
        assert len(got) == len(read.load_trades(g.data_dir, v, instruments=iids)) > 100
        nones = 0
        for tb in got:
            want = _brute(books, gaps, tb.trade, 86_400_000)
            assert (tb.book is None) == (want is None), tb.trade
            if want is not None:
                assert (tb.book["ts_ms"], tb.book["hash"] if v == "polymarket" else 0) == (
                    want["ts_ms"], want["hash"] if v == "polymarket" else 0)
            nones += tb.book is None
        assert nones < len(got) // 2
        if v == "polymarket":  # the venue-wide cooldown and the feed outage: some trades without a book
            assert nones >= 1


def test_stream_capture_books_against_brute_force(tmp_path_factory):
    from collector.read.book import GAP, NO_SNAPSHOT, BookState
    from tests.test_read_replay_recording import add_stream_capture

    g = copy_of(shared(tmp_path_factory), tmp_path_factory.mktemp("tbs") / "data")
    cap = add_stream_capture(g.data_dir)
    add_trades(g.data_dir, cap.instruments, mean_gap_s=10)
    for v, iids in cap.instruments.items():
        states = list(read.replay(g.data_dir, v, iids))
        gaps = [r for r in read.iter_records(g.data_dir, v, "book_changes", record_types={"gap"})]
        got = read.load_trades_with_books(g.data_dir, v, iids, books="book_changes")
        assert len(got) > 100
        n_book = 0
        for tb in got:
            t = tb.trade.t_ms
            cand = [(book_time(b), b.ts_ms, i, b) for i, b in enumerate(states)
                    if b.instrument_id == tb.trade.instrument_id and book_time(b) < t]
            want = max(cand, key=lambda x: x[:3])[3] if cand else None
            if want is not None and (want.status in (GAP, NO_SNAPSHOT) or any(
                    x["instrument_id"] in (None, want.instrument_id) and (x["from_ts_ms"] or -1) < t
                    and x["to_ts_ms"] > want.ts_ms for x in gaps)):
                want = None
            assert (tb.book is None) == (want is None), tb.trade
            if want is not None:
                assert type(tb.book) is BookState and tb.book == want
                n_book += 1
        assert n_book > 20
    with pytest.raises(ValueError, match="books must be"):
        next(read.trades_with_books(g.data_dir, "polymarket", books="trades"))
