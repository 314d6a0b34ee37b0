"""Wall-clock jumps: forward, back, and forward across midnight, under a running poller.

The jumping clock is injected twice: as the Poller's ``clock`` (file rotation and names) and as
this process's ``time.time``/``time.time_ns`` (capture times, gap times, expiry), exactly what an
NTP step or a VM resume does to a live process. Monotonic time is left alone. Expected:

* scheduling is unaffected (it runs on monotonic time): per-instrument intervals stay ~1 s in the
  simulator's own request log (its clock is not touched) and in poll_stats, no burst, no stall;
* rotation follows the injected clock's UTC: one file per (period of the clock) visited, date
  partition = UTC date of that period, every record's ts_ms inside its file's period, a jump back
  opens a new file (never appends to an old one);
* nothing lost, nothing duplicated; the reader returns every record in ts_ms order.

(tests/test_poller.py::test_rotation_at_forced_clock_boundaries covers a fast-running clock.)
"""

from __future__ import annotations

import calendar
import time
from collections import Counter

import orjson

from collector import read
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.store.layout import period_bounds
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema

POLY, LIM = H.POLY, H.LIM
REAL_TIME, REAL_TIME_NS = time.time, time.time_ns


class JumpingClock:
    """Real time plus an offset that the test changes (one float: assignments are atomic)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.visited: list[float] = []  # the values handed out (the first 200k)

    def __call__(self) -> float:
        t = REAL_TIME() + self.offset
        if len(self.visited) < 200_000:
            self.visited.append(t)
        return t

    def ns(self) -> int:
        return REAL_TIME_NS() + int(self.offset * 1e9)


def test_wall_clock_jumps_forward_and_back(tmp_path, monkeypatch):
    clock = JumpingClock()
    with run_sim("--markets", "8", "--seed", "71") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, WRITER__ROTATE_MINUTES="10")
        ids = {v: H.instrument_ids(tmp_path, v, sim) for v in (POLY, LIM)}
        now = REAL_TIME()
        # the last UTC midnight: the third jump goes back to 3 s before it and crosses it. (Backwards:
        # a forward jump of hours would legitimately expire instruments, which the poller drops.)
        midnight = calendar.timegm(time.gmtime(now)[:3] + (0, 0, 0))
        jumps = [("forward 25 min", 25 * 60.0), ("back 45 min", -45 * 60.0), ("to 3 s before the last midnight", None)]
        monkeypatch.setattr(time, "time", clock)
        monkeypatch.setattr(time, "time_ns", clock.ns)
        poller = Poller(settings, clock=clock)
        marks: list[tuple[str, float]] = []  # (label, real time of the jump)
        with h.poller_thread(poller):
            t_start = REAL_TIME()
            time.sleep(2.0)
            for label, delta in jumps:
                if delta is None:
                    clock.offset = (midnight - 3) - REAL_TIME()
                else:
                    clock.offset += delta
                marks.append((label, REAL_TIME()))
                time.sleep(2.0)
            time.sleep(2.0)  # 4 s after the last jump: past midnight on the jumped clock
            t_end = REAL_TIME()
        log = h.sim_times(sim)
    monkeypatch.setattr(time, "time", REAL_TIME)
    monkeypatch.setattr(time, "time_ns", REAL_TIME_NS)

    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)

    # 1. scheduling on monotonic time: the simulator's (untouched) clock sees a steady rate
    lim = [e for e in log if e["venue"] == LIM and e["endpoint"] == "limitless.orderbook"]
    for slug in {e["path"] for e in lim}:
        ts = [e["t"] for e in lim if e["path"] == slug]
        steps = [b - a for a, b in zip(ts, ts[1:])]
        assert steps and max(steps) < 1.6 and min(steps) > 0.5, (slug, [round(s, 2) for s in steps])
    poly = sorted(e["t"] for e in log if e["venue"] == POLY and e["endpoint"] == "clob.books")
    per_s = Counter(int(t - t_start) for t in poly if t_start + 1 <= t < t_end - 1)
    rates = [per_s.get(k, 0) for k in range(1, int(t_end - t_start) - 1)]
    assert min(rates) >= 1 and max(rates) <= 2 * max(1, sorted(rates)[len(rates) // 2]) + 1, rates
    for v in (POLY, LIM):
        ivs = [r["achieved_interval_p50_s"] for r in ds.stats(v) if r["achieved_interval_p50_s"] is not None]
        assert ivs and all(0.8 <= x <= 1.3 for x in ivs), (v, ivs)
        assert all(r["book_age_p99_s"] is None or r["book_age_p99_s"] < 2.5 for r in ds.stats(v)[2:]), v
        # every instrument about once a second in real time: count books per real second window
        n = len(ds.books(v))
        expected = len(ids[v]) * (t_end - t_start)
        assert n >= 0.9 * expected - 2 * len(ids[v]), (v, n, expected)
        H.check_totals(ds, v)

    # 2. rotation follows the injected clock: the periods visited are exactly the files' periods
    for v in (POLY, LIM):
        files = [f for f in ds.files if f.venue == v and f.stream == "orderbooks"]
        periods = {f.path.name.split(".")[1] for f in files}
        # A fetch in flight when the clock jumps completes after it: its books carry the pre-jump
        # capture time but land in the post-jump file (ordering is by ts_ms, not by file). That is
        # at most the requests in flight at each of the 3 jumps, never a stream of misplaced books.
        outside = []
        for f in files:
            start = calendar.timegm(time.strptime(f.path.name.split(".")[1], "%Y%m%dT%H%MZ"))
            lo, hi = period_bounds(start, 10)
            outside += [(f.path.name, b["ts_ms"]) for b in schema_books(f)
                        if not lo * 1000 - 3000 <= b["ts_ms"] < hi * 1000 + 3000]
        assert len(outside) <= 3 * 4 * 100, (v, len(outside), outside[:3])  # 3 jumps x 4 in flight x 100
        visited = {time.strftime("%Y%m%dT%H%MZ", time.gmtime(period_bounds(t, 10)[0])) for t in clock.visited[100:]}
        assert periods <= visited, periods - visited
        assert len(periods) >= 4, periods  # now, +25 min, -20 min, 23:59:57 and 00:00 (distinct unless adjacent)
        dates = {f.path.parent.name for f in files}
        day_before = time.strftime("date=%Y-%m-%d", time.gmtime(midnight - 1))
        day_of = time.strftime("date=%Y-%m-%d", time.gmtime(midnight))
        assert {day_before, day_of} <= dates, dates
        assert time.strftime("%Y%m%dT%H%MZ", time.gmtime(midnight)) in periods
        assert time.strftime("%Y%m%dT%H%MZ", time.gmtime(midnight - 600)) in periods
        # the jump back wrote a new file for an earlier period: more files than periods is fine,
        # one file appended by two periods is not (checked above: ts within the file's period)

    # 3. the reader sees everything exactly once, in ts_ms order
    for v in (POLY, LIM):
        got = list(read.iter_books(tmp_path, v, gaps=True))
        assert len(got) == len(ds.of(v, "orderbooks")), v
        assert [r["ts_ms"] for r in got] == sorted(r["ts_ms"] for r in got)
    H.report("clock_jumps", jumps=[label for label, _ in marks],
             files=len([f for f in ds.files if f.stream == "orderbooks"]),
             poly_rate_per_s=rates)


def schema_books(f: schema.FileInfo):
    for line in f.path.read_bytes().split(b"\n")[:-1]:
        rec = orjson.loads(line)
        if rec["record_type"] == "orderbook":
            yield rec
