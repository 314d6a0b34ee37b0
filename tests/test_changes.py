"""Changes-only writing (writer.record = "changes"): the same polls recorded both ways read back
identically through every reader, each file starts every instrument with a full book, and the
markers round-trip (property tests)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import read
from collector.model.records import BookRecord
from collector.read.records import book_times
from collector.store.book_log import BookLog
from collector.store.changes import Expander, encode_changes
from collector.store.compact import compact_day
from collector.store.files import iter_jsonl_lines
from collector.store.writer import StreamWriter
from tests.datagen import generate

DAY = "2026-01-10"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One simulated run recorded twice: every poll in full, and as changes."""
    kw = dict(duration_s=3600.0, markets={"polymarket": 6, "limitless": 4}, repeat_prob=0.7, seed=31)
    full = generate(tmp_path_factory.mktemp("every_poll"), record="every_poll", **kw)
    chg = generate(tmp_path_factory.mktemp("changes"), record="changes", **kw)
    return full, chg


def _files(d: Path, venue: str) -> list[Path]:
    return sorted((d / venue / "orderbooks").rglob("*.jsonl*"))


def _size(d: Path, venue: str) -> int:
    return sum(p.stat().st_size for p in _files(d, venue))


def test_same_polls_written_smaller(both):
    full, chg = both
    for v in full.venues:
        assert full.books[v] == chg.books[v]  # the same polls (ground truth: full records)
        assert _size(chg.data_dir, v) < 0.75 * _size(full.data_dir, v), v  # (Polymarket files are zstd)
        markers = 0
        for p in _files(chg.data_dir, v):
            seen: set[str] = set()
            for line in iter_jsonl_lines(p):
                rec = orjson.loads(line)
                rt = rec.get("record_type")
                if rt == "orderbook":
                    seen.add(rec["instrument_id"])
                elif rt == "unchanged":  # never an instrument's first record in a file
                    assert rec["instrument_id"] in seen, (p.name, rec)
                    markers += 1
        assert markers > len(full.books[v]) // 3, (v, markers)
        assert not any(b'"unchanged"' in line for p in _files(full.data_dir, v) for line in iter_jsonl_lines(p))


def test_iter_books_and_frames_read_the_same(both):
    full, chg = both
    a = read.load_books(full.data_dir, gaps=True)
    b = read.load_books(chg.data_dir, gaps=True)
    assert len(a) == sum(len(x) for x in full.books.values()) + sum(len(x) for x in full.gaps.values())
    assert a == b
    assert read.load_books(full.data_dir, exact=True) == read.load_books(chg.data_dir, exact=True)
    lo, hi = full.start_ms + 600_000, full.start_ms + 1_500_000  # a range inside files: books before it
    assert read.load_books(full.data_dir, "polymarket", start=lo, end=hi) == read.load_books(chg.data_dir, "polymarket", start=lo, end=hi)
    assert read.to_polars(a).equals(read.to_polars(b))


def test_as_of_at_every_poll_instant(both):
    full, chg = both
    by_iid: dict[str, list[int]] = defaultdict(list)
    for r in map(orjson.loads, full.books["polymarket"]):
        by_iid[r["instrument_id"]].append(r["ts_ms"])
    iids = sorted(by_iid)
    # every poll instant of one instrument (and 1 ms before it), every instrument asked each time
    times = sorted(by_iid[iids[0]])[::7]
    for t in times:
        for q in (t, t - 1):
            a = read.books_at(full.data_dir, "polymarket", iids, q, lookback="2h")
            assert a == read.books_at(chg.data_dir, "polymarket", iids, q, lookback="2h"), q
    ta, ga = book_times(full.data_dir, "polymarket")
    tb, gb = book_times(chg.data_dir, "polymarket")
    assert ta == tb and ga == gb  # coverage counts every poll either way


def test_compacted_day_is_the_same_parquet_and_reads_the_same(both):
    full, chg = both
    later = full.end_ms + 3 * 86_400_000
    for g in both:
        for v in g.venues:
            rep = compact_day(g.data_dir, v, DAY, keep_jsonl=True, now_ms=later)
            assert rep.ok and rep.verified, rep
    for v in full.venues:
        pa_full = pq.read_table(full.data_dir / v / "orderbooks_parquet" / f"date={DAY}" / "orderbooks.parquet")
        pa_chg = pq.read_table(chg.data_dir / v / "orderbooks_parquet" / f"date={DAY}" / "orderbooks.parquet")
        assert pa_full.equals(pa_chg), v  # stored as changes whatever the writer did
        kinds = pa_chg.column("record_type").to_pylist()
        assert kinds.count("unchanged") > len(kinds) // 3
    end_day = full.start_ms + 3_600_000 - 1
    assert read.load_books(full.data_dir, end=end_day) == read.load_books(chg.data_dir, end=end_day)
    # from Parquet: the books as with every poll in full (levels and prices as floats)
    jsonl = [r for r in read.load_books(full.data_dir, "limitless", end=end_day)]
    assert len(jsonl) == len([r for r in map(orjson.loads, full.books["limitless"]) if r["ts_ms"] < end_day])
    iid = jsonl[0]["instrument_id"]
    mid = full.start_ms + 1_800_000
    a = read.book_at(full.data_dir, "limitless", iid, mid)
    assert a is not None and a == read.book_at(chg.data_dir, "limitless", iid, mid)


# --------------------------------------------------------------------------- properties

_level = st.tuples(st.sampled_from(["0.1", "0.25", "0.5", "0.75"]), st.sampled_from(["1", "10", "250.5"]))
_book = st.tuples(st.lists(_level, max_size=3), st.lists(_level, max_size=3), st.sampled_from([None, "0.01"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), _book, st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_encode_then_expand_gives_the_records_back(polls):
    """Full records (sorted by instrument, ts) -> changes -> expanded: the same records."""
    recs = []
    t = 1_000
    for iid, (bids, asks, tick), has_hash, has_ob in sorted(polls, key=lambda p: p[0]):
        t += 1000
        r = {"record_type": "orderbook", "schema_version": 1, "venue": "polymarket", "instrument_id": f"polymarket:{iid}",
             "ts_ms": t, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks], "tick_size": tick,
             "latency_ms": t / 7}
        if has_ob:
            r["ob_ts_ms"] = t - 3
        if has_hash:
            r["hash"], r["hash_ok"] = f"{t:040x}", True
        recs.append(r)
    enc = list(encode_changes(recs))
    assert len(enc) == len(recs)
    exp = Expander()
    back = []
    for r in enc:
        if r["record_type"] == "unchanged":
            assert set(r) - {"ob_ts_ms", "hash", "hash_ok"} == {"record_type", "schema_version", "venue", "instrument_id", "ts_ms", "latency_ms"}
            r = exp.expand(r)
        else:
            exp.remember(r)
        back.append(r)
    assert back == recs


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _rec(iid: str, ts: int, bids=(("0.5", "10"),), hash_ok: bool | None = True) -> BookRecord:
    return BookRecord("polymarket", f"polymarket:{iid}", iid, "0xm", "Yes", ts, list(bids), [("0.6", "5")], 10.0,
                      ob_ts_ms=ts - 1, hash=f"{ts:040x}", hash_ok=hash_ok, tick_size="0.01")


def test_book_log_markers_stay_in_the_file_of_their_book(tmp_path):
    clock = _Clock(1_790_000_000.0)  # rotation every minute
    w = StreamWriter(tmp_path, "polymarket", "orderbooks", rotate_minutes=1, clock=clock)
    log = BookLog(w, "polymarket")
    ts = int(clock.t * 1000)
    for i in range(5):  # one book, then the same book four times
        assert log.book(_rec("a", ts + i * 1000), None)
    assert log.counts() == (1, 1, 4)
    assert log.book(_rec("a", ts + 4000), None)  # the same ts again: written in full, never a marker
    clock.t += 60  # the next minute: a new file, whose first book of "a" is full again
    assert log.book(_rec("a", ts + 61_000), None)
    assert log.book(_rec("a", ts + 62_000, hash_ok=False), None)  # a failed hash check: in full
    assert log.book(_rec("a", ts + 63_000, bids=(("0.5", "11"),)), None)  # a change
    assert log.book(_rec("a", ts + 64_000, bids=(("0.5", "11"),)), None)
    log.forget("polymarket:a")
    assert log.book(_rec("a", ts + 65_000, bids=(("0.5", "11"),)), None)
    w.close()
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert len(files) == 2
    kinds = [[orjson.loads(x)["record_type"] for x in iter_jsonl_lines(p)] for p in files]
    assert kinds[0] == ["orderbook", "unchanged", "unchanged", "unchanged", "unchanged", "orderbook"]
    assert kinds[1] == ["orderbook", "orderbook", "orderbook", "unchanged", "orderbook"]


def test_book_log_every_poll_writes_everything_in_full(tmp_path):
    w = StreamWriter(tmp_path, "polymarket", "orderbooks")
    log = BookLog(w, "polymarket", every_poll=True)
    for i in range(3):
        log.book(_rec("a", 1_790_000_000_000 + i * 1000), None)
    w.close()
    lines = [orjson.loads(x) for p in tmp_path.rglob("*.jsonl") for x in iter_jsonl_lines(p)]
    assert [r["record_type"] for r in lines] == ["orderbook"] * 3
    assert log.counts() == (1, 3, 0)  # one change (the first book), three written in full


def test_lane_records_an_unchanged_polymarket_book_without_normalizing_it(tmp_path):
    """The second poll of the same books: unchanged records, and normalize is never called."""
    import time as _time

    from collector.config.settings import (
        PollerSettings,
        PolymarketSettings,
        WriterSettings,
    )
    from collector.model.records import Instrument
    from collector.poller.fetch import FetchPool
    from collector.poller.lane import Done, Lane
    from collector.store.writer_set import WriterSet
    from collector.venues.polymarket import PolymarketClient
    from tests.http_stub import Reply, Stub
    from tests.test_polymarket_reply import _body

    keys = ["11", "22"]
    books = [{**_body([{"price": "0.4", "size": "3"}], [{"price": "0.6", "size": "1"}], 1), "asset_id": k} for k in keys]

    def reply_at(ts: int) -> bytes:  # the venue re-stamps and re-hashes every answer
        out = []
        for b in books:
            b = {**b, "timestamp": str(ts), "hash": ""}
            b["hash"] = hashlib.sha1(orjson.dumps(b)).hexdigest()
            out.append(b)
        return orjson.dumps(out)

    server = Stub()  # a real HTTP server on loopback
    s = PolymarketSettings(clob_url=server.url)
    client = PolymarketClient(s)
    calls = []
    real = client.normalize
    client.normalize = lambda *a: calls.append(a[0].poll_key) or real(*a)  # a spy on the real client
    ws = WriterSet(tmp_path, WriterSettings())
    lane = Lane("polymarket", client, s, PollerSettings(), FetchPool(1, "t"), ws)
    lane.set_instruments([Instrument(venue="polymarket", poll_key=k, market_id="m") for k in keys], 0, _time.monotonic())
    try:
        for n, ts in enumerate((1_790_000_000_000, 1_790_000_001_000)):
            server.route("POST", "/books", Reply(200, reply_at(ts)))
            res = client.fetch_books(keys)
            for k in keys:
                lane.state[k].inflight = True
            lane.inflight += 1
            lane.complete(Done(lane, keys, res, None, _time.monotonic()), _time.monotonic())
            assert sorted(calls) == keys  # normalized the first time only
    finally:
        server.close()
    ws.close()
    client.close()
    lines = [orjson.loads(x) for p in sorted(tmp_path.rglob("*.jsonl")) for x in iter_jsonl_lines(p)]
    assert [r["record_type"] for r in lines] == ["orderbook", "orderbook", "unchanged", "unchanged"]
    assert all(r["hash_ok"] is True for r in lines) and lines[2]["ob_ts_ms"] == 1_790_000_001_000
    assert read.load_books(tmp_path)[-1]["bids"] == [[0.4, 3]]
