"""collector.ops: status, tail, stats and coverage over generated and live-written data."""

from __future__ import annotations

import io
import threading
import time
from types import SimpleNamespace

import orjson
import pytest

from collector import read
from collector.discovery.markets_log import (
    append_market_records,
    market_record,
    market_records_path,
)
from collector.model.records import Instrument
from collector.ops.coverage import cli_coverage, coverage
from collector.ops.stats import format_stats, stats_summary
from collector.ops.status import cli_status, format_status, venue_status
from collector.ops.table import fmt_age, fmt_bytes, format_table
from collector.ops.tail import format_tail_line, tail
from collector.store.layout import day_bounds, snapshot_path
from collector.store.snapshot import Snapshot, write_snapshot
from collector.store.writer import StreamWriter
from tests.datagen import DEFAULT_START_MS, shared

MIN = 60_000


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return shared(tmp_path_factory)


# --------------------------------------------------------------------------- tables


def test_format_table_aligns_numbers_right():
    out = format_table(["name", "n", "pct"], [["a", "1,234", "5.0%"], ["bbbb", "7", "-"]])
    lines = out.splitlines()
    assert lines[0] == "name      n   pct"
    assert lines[2] == "a     1,234  5.0%"
    assert lines[3] == "bbbb      7     -"
    assert fmt_age(0.42) == "0.4s" and fmt_age(600) == "10m" and fmt_age(3 * 86400) == "3.0d"
    assert fmt_bytes(20_100_000) == "20.1 MB"


# --------------------------------------------------------------------------- status


def test_status(gen):
    now = gen.end_ms + 5_000
    st = venue_status(gen.data_dir, "polymarket", now_ms=now)
    snap_n = len(read.market_catalog(gen.data_dir, "polymarket"))
    assert 0 < st["active_instruments"] <= snap_n
    last = max(orjson.loads(x)["ts_ms"] for x in gen.books["polymarket"])
    assert (now - last) / 1000 <= st["last_book_age_s"] <= (now - last) / 1000 + 2.0
    assert st["stats"]["record_type"] == "poll_stats" and st["stats_age_s"] <= 15
    assert st["files_today"] > 10  # date=2026-01-11: 4 streams, 10-minute files
    assert st["disk_bytes"] > 1_000_000
    text = format_status([st, venue_status(gen.data_dir, "limitless", now_ms=now)], gen.data_dir)
    assert "polymarket" in text and "limitless" in text and "last book" in text


def test_status_of_an_empty_venue(tmp_path):
    st = venue_status(tmp_path, "limitless", now_ms=0)
    assert st["active_instruments"] is None and "no snapshot" in st["snapshot_error"]
    text = format_status([st], tmp_path)
    assert "no order book recorded yet" in text and "snapshot" in text


def test_cli_status(gen, monkeypatch, capsys):
    from collector.cli.main import main

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(gen.data_dir))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "polymarket" in out and "limitless" in out


# --------------------------------------------------------------------------- tail


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _book(i: int, iid: str = "polymarket:1") -> bytes:
    return orjson.dumps(
        {
            "record_type": "orderbook", "schema_version": 1, "venue": "polymarket", "instrument_id": iid,
            "poll_key": iid.split(":")[1], "market_id": "m", "outcome": "Yes", "ts_ms": DEFAULT_START_MS + i * 100,
            "bids": [[0.41, 100 + i]], "asks": [[0.43, 50]], "best_bid": 0.41, "best_ask": 0.43, "mid": 0.42,
            "spread": 0.02, "latency_ms": 12.5, "source": "rest",
        }
    )


def test_tail_follows_rotation_and_compression(tmp_path):
    clock = Clock(DEFAULT_START_MS / 1000)
    w = StreamWriter(tmp_path, "polymarket", "orderbooks", rotate_minutes=1, compress_closed=True, clock=clock, fsync_interval_s=1e6)
    w.write(_book(-1))  # written before tail starts: not printed
    w.flush(fsync=False)
    buf = io.StringIO()
    stop = threading.Event()
    following = threading.Event()

    def stopped() -> bool:  # tail asks first after it took the files present as read
        following.set()
        return stop.is_set()

    th = threading.Thread(
        target=tail, args=(tmp_path, ["polymarket"]), kwargs=dict(raw=True, out=buf, poll_s=0.005, stop=stopped)
    )
    th.start()
    try:
        # Writing before tail has taken the current files as read would make those lines "old".
        assert following.wait(10), "tail did not start"
        written = []
        for i in range(1800):  # 3 minutes of 10 books/s: 3 rotations, each compressing the old file
            clock.t = DEFAULT_START_MS / 1000 + i * 0.1
            line = _book(i, f"polymarket:{i % 3}")
            assert w.write(line)
            written.append(line)
            if i % 97 == 0:
                w.flush(fsync=False)  # the follower sees partial files, and often a torn last line
                time.sleep(0.002)
        w.close()
        deadline = time.monotonic() + 10
        while buf.getvalue().count("\n") < len(written) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        th.join(5)
    got = [x.encode() for x in buf.getvalue().splitlines()]
    assert got == written
    assert len(list(tmp_path.rglob("*.jsonl.zst"))) >= 2  # the follower finished those from the .zst


def test_tail_filter_lines_and_table(gen):
    inst = gen.instruments["limitless"][0]
    buf = io.StringIO()
    n = tail(gen.data_dir, ["limitless"], instruments=[inst.poll_key], lines=5, out=buf, stop=lambda: True)
    assert n == 5
    rows = buf.getvalue().splitlines()
    assert rows[0].startswith("time (UTC)") and len(rows) == 6
    assert all(inst.poll_key[:10] in r for r in rows[1:])
    want = sorted((orjson.loads(x) for x in gen.books["limitless"]), key=lambda r: r["ts_ms"])
    want = [r for r in want if r["instrument_id"] == inst.instrument_id][-5:]
    t = time.strftime("%H:%M:%S", time.gmtime(want[-1]["ts_ms"] // 1000))
    assert rows[-1].startswith(t)
    gap = {"record_type": "gap", "venue": "polymarket", "instrument_id": None, "ts_ms": 5000, "from_ts_ms": 0, "to_ts_ms": 5000, "reason": "cooldown:rate_limited"}
    assert "GAP 5.0s cooldown:rate_limited" in format_tail_line(gap)


def test_cli_tail_until_ctrl_c(gen, monkeypatch, capsys):
    from collector.cli.main import main

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(gen.data_dir))

    def interrupt(_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)
    assert main(["tail", "--venue", "polymarket", "--raw", "--lines", "3"]) == 130
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(orjson.loads(x)["venue"] == "polymarket" for x in out)


# --------------------------------------------------------------------------- stats


def test_stats_summary(gen):
    s = stats_summary(gen.data_dir, ["polymarket"], gen.start_ms, gen.end_ms)["polymarket"]
    recs = gen.stats["polymarket"]
    assert s["records"] == len(recs)
    for k in ("ok", "failed", "books_written", "requests", "http_5xx", "timeouts"):
        assert s[k] == sum(r[k] for r in recs), k
    errors = {}
    for r in recs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    assert s["errors"] == dict(sorted(errors.items(), key=lambda x: -x[1]))
    assert s["cooldown_episodes"] == 1 and s["cooldown_s"] == 25.0
    assert s["instrument_gaps"] == len(gen.gaps["polymarket"]) - 1
    assert abs(s["covered_s"] - 7200) <= 20
    assert s["books_per_s"] == pytest.approx(s["books_written"] / s["covered_s"], rel=1e-3)
    assert s["fail_rate"] == pytest.approx(s["failed"] / (s["ok"] + s["failed"]), rel=1e-3)
    assert s["target_interval_s"] == 2.0 and s["cooldown_intervals"] >= 2
    assert s["bucket_s"] == 300 and len(s["buckets"]) == 24
    assert sum(b["books_written"] for b in s["buckets"]) == s["books_written"]
    text = format_stats({"polymarket": s}, gen.start_ms, gen.end_ms)
    assert "errors by kind" in text and "per 5m" in text


def test_cli_stats_json(gen, monkeypatch, capsys):
    from collector.cli.main import main

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(gen.data_dir))
    assert main(["stats", "--since", "2026-01-10T23:30Z", "--until", "2026-01-11T00:30Z", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert set(doc["venues"]) == {"polymarket", "limitless"}
    assert doc["venues"]["limitless"]["records"] == pytest.approx(360, abs=2)
    assert main(["stats", "--since", "2026-01-10T23:30Z", "--until", "2026-01-11T00:30Z"]) == 0
    assert "poll_stats 2026-01-10T23:30:00Z" in capsys.readouterr().out


# --------------------------------------------------------------------------- coverage


def test_coverage_exact_small_case(tmp_path):
    t0 = 1768086000000 + 10 * 3_600_000  # 2026-01-11T09:00Z
    a = Instrument(venue="limitless", poll_key="a", market_id="a", title="A", expires_at_ms=t0 + 50_000)
    b = Instrument(venue="limitless", poll_key="b", market_id="b", title="B")
    append_market_records(market_records_path(tmp_path, "limitless", t0, pid=1), [market_record(a, "added", "rule:x", t0), market_record(b, "added", "rule:x", t0)])
    append_market_records(market_records_path(tmp_path, "limitless", t0 + 60_000, pid=1), [market_record(a, "removed", "expired", t0 + 60_000)])
    write_snapshot(snapshot_path(tmp_path, "limitless"), Snapshot(venue="limitless", asof_ms=t0 + 60_000, instruments=[b]))
    clock = Clock(t0 / 1000)
    w = StreamWriter(tmp_path, "limitless", "orderbooks", clock=clock)
    # a: books at 0,1,2 s then 30..59 s; b: one book at 0 s
    for s in [0, 1, 2] + list(range(30, 60)):
        clock.t = t0 / 1000 + s
        w.write(orjson.dumps({"record_type": "orderbook", "instrument_id": "limitless:a", "venue": "limitless", "ts_ms": t0 + s * 1000}))
    w.write(orjson.dumps({"record_type": "gap", "instrument_id": "limitless:a", "venue": "limitless", "ts_ms": t0 + 30_000, "from_ts_ms": t0 + 2000, "to_ts_ms": t0 + 30_000, "reason": "timeout", "failures": 9}))
    w.write(orjson.dumps({"record_type": "orderbook", "instrument_id": "limitless:b", "venue": "limitless", "ts_ms": t0}))
    w.close()
    res = coverage(tmp_path, "limitless", "2026-01-11", fresh_s=2, now_ms=t0 + 100_000)
    rows = {r["instrument_id"]: r for r in res["rows"]}
    ra = rows["limitless:a"]
    # active [0, 50) (expired at 50 s, removed at 60 s); fresh [0, 4) + [30, 61) -> within active: 4 + 20
    assert ra["active_s"] == 50 and ra["fresh_s"] == 24 and ra["coverage"] == pytest.approx(0.48)
    assert ra["books"] == 33 and ra["gaps"] == 1 and ra["fresh_outside_active_s"] == 11
    rb = rows["limitless:b"]
    assert rb["active_s"] == 100 and rb["fresh_s"] == 2  # still active: counted up to now
    s = res["summary"]
    assert s["instruments"] == 2 and s["active_s"] == 150 and s["fresh_s"] == 26 and s["gaps"] == 1
    assert res["rows"][0]["instrument_id"] == "limitless:b"  # worst first


def test_coverage_matches_brute_force(gen):
    fresh_s = 4.0
    date = "2026-01-11"
    d0, d1 = day_bounds(date)
    res = coverage(gen.data_dir, "polymarket", date, fresh_s, now_ms=gen.end_ms + 1)
    times: dict[str, list[int]] = {}
    for x in gen.books["polymarket"]:
        r = orjson.loads(x)
        times.setdefault(r["instrument_id"], []).append(r["ts_ms"])
    exp = {i.instrument_id: i.expires_at_ms for i in gen.instruments["polymarket"]}
    hi = gen.end_ms + 1
    rows = {r["instrument_id"]: r for r in res["rows"]}
    assert set(rows) == {i for i, (a, b) in gen.lifecycle.items() if i.startswith("polymarket:") and a < hi and (b is None or b > d0)}
    step = 250  # ms grid
    for iid, row in rows.items():
        added, removed = gen.lifecycle[iid]
        lo, end = max(added, d0), min(removed or hi, hi, exp[iid])
        assert row["active_s"] == pytest.approx(max(0, end - lo) / 1000)
        ts = sorted(times.get(iid, []))
        import bisect

        fresh = 0
        for t in range(lo, end, step):
            k = bisect.bisect_right(ts, t)
            if k and t - ts[k - 1] < fresh_s * 1000:
                fresh += step
        assert row["fresh_s"] == pytest.approx(fresh / 1000, abs=0.02 * row["active_s"] + 1)
        assert 0.9 < row["coverage"] <= 1.0
    assert res["summary"]["venue_gaps"] == 0  # the cooldown was on the first day
    first = coverage(gen.data_dir, "polymarket", "2026-01-10", fresh_s, now_ms=gen.end_ms)
    assert first["summary"]["venue_gaps"] == 1 and first["summary"]["venue_gap_s"] == 25.0


def test_cli_coverage(gen, monkeypatch, capsys):
    from collector.cli.main import main

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(gen.data_dir))
    assert main(["coverage", "--date", "2026-01-10", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert [r["summary"]["venue"] for r in doc] == ["polymarket", "limitless"]
    assert doc[0]["summary"]["fresh_window_s"] == 2.0  # 2 x the default 1 s interval
    assert main(["coverage", "--date", "2026-01-10", "--venue", "limitless", "--fresh-s", "6"]) == 0
    out = capsys.readouterr().out
    assert "limitless 2026-01-10 (a book is fresh 6s; worst first)" in out and "coverage" in out
    assert main(["coverage", "--date", "10/01/2026"]) == 2


def test_coverage_reads_parquet_days(gen, tmp_path):
    from collector.store.compact import compact_day
    from tests.datagen import copy_of

    g = copy_of(gen, tmp_path / "d")
    before = coverage(g.data_dir, "limitless", "2026-01-10", 6.0, now_ms=gen.end_ms)
    assert compact_day(g.data_dir, "limitless", "2026-01-10", now_ms=gen.end_ms + 3 * 86_400_000).ok
    after = coverage(g.data_dir, "limitless", "2026-01-10", 6.0, now_ms=gen.end_ms)
    assert after == before


def test_cli_entry_points_take_settings_and_args(gen, capsys):
    s = SimpleNamespace(data_dir=gen.data_dir, venues=["limitless"], venue=lambda v: SimpleNamespace(interval_s=3.0))
    assert cli_status(s, SimpleNamespace()) == 0
    assert cli_coverage(s, SimpleNamespace(date="2026-01-11", venue=None, fresh_s=None, json=False)) == 0
    assert "fresh 6s" in capsys.readouterr().out
