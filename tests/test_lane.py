"""collector.poller.lane.Lane on a fake clock: a fake client, a fake pool and fake writers.

No threads, no simulator, no files: ``now`` is a plain float passed in, the pool only records the
jobs it is given, and the test plays the fetch thread by building each :class:`Done` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from collector.config.settings import PollerSettings, PolymarketSettings, WriterSettings
from collector.model.errors import RateLimited, ServerError
from collector.model.records import BookRecord, Instrument
from collector.poller.lane import Done, Lane
from collector.venues.base import FetchResult
from tests.reliability import schema

V = "polymarket"
WALL = 1_768_000_000_000  # capture times stamped by the fake client

# Today's poll_stats keys, in order: readers and tests/reliability/schema.py depend on them.
POLL_STATS_KEYS = [
    "record_type", "schema_version", "ts_ms", "venue", "active_instruments", "requests", "requests_ok",
    "requests_failed", "submitted", "ok", "failed", "books_written", "books_changed", "books_unchanged", "gaps", "http_4xx", "http_5xx", "http_429",
    "timeouts", "held_back", "errors", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    "cooldown_remaining_s", "cooldown_reason", "workers", "inflight_cap", "inflight", "target_interval_s",
    "achieved_interval_mean_s", "achieved_interval_p50_s", "achieved_interval_p99_s", "book_age_p50_s",
    "book_age_p99_s", "stale_instruments", "expired_dropped", "hash_mismatch", "snapshot_error", "writer_error",
    "records_dropped", "stream", "trades",
]  # fmt: skip


@dataclass
class _Stats:
    last_error: str | None = None
    failing: bool = False
    records_dropped: int = 0


@dataclass
class _Writer:
    lines: list[bytes] = field(default_factory=list)
    stats: _Stats = field(default_factory=_Stats)
    serial: int = 0

    def write(self, line: bytes) -> bool:
        self.lines.append(line)
        return True

    def records(self, record_type: str | None = None) -> list[dict[str, Any]]:
        recs = [orjson.loads(x) for x in self.lines]
        return [r for r in recs if record_type is None or r["record_type"] == record_type]


class _Writers:
    settings = WriterSettings(record="every_poll")  # these tests look at scheduling: every book in full

    def __init__(self) -> None:
        self.by_kind: dict[str, _Writer] = {}

    def get(self, venue: str, kind: str) -> _Writer:
        return self.by_kind.setdefault(kind, _Writer())


class _Pool:
    def __init__(self) -> None:
        self.jobs: list[list[str]] = []

    def submit(self, fn, lane, keys) -> None:
        self.jobs.append(list(keys))


class _Client:
    name = V
    shared_spacing = None

    def __init__(self, batch_size: int = 1) -> None:
        self.batch_size = batch_size

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
        return BookRecord(venue=V, instrument_id=inst.instrument_id, poll_key=inst.poll_key, market_id=inst.market_id,
                          outcome=None, ts_ms=ts_ms, bids=[("0.4", "1")], asks=[("0.5", "2")], latency_ms=latency_ms)


def _inst(key: str, expires_at_ms: int | None = None) -> Instrument:
    return Instrument(venue=V, poll_key=key, market_id=f"m-{key}", slug=key, expires_at_ms=expires_at_ms)


def _lane(keys=("a", "b", "c"), *, batch_size: int = 1, **venue: Any) -> tuple[Lane, _Pool, _Writers]:
    vs = PolymarketSettings(**{"interval_s": 1.0, "batch_linger_s": 0.0, "inflight_start": 16, **venue})
    ps = PollerSettings(backoff_jitter=0.0)
    pool, writers = _Pool(), _Writers()
    lane = Lane(V, _Client(batch_size), vs, ps, pool, writers)
    lane.set_instruments([_inst(k) for k in keys], WALL, 0.0)
    return lane, pool, writers


def _fetch(lane: Lane, pool: _Pool, now: float) -> list[list[str]]:
    """submit_due at ``now``; the jobs it handed to the pool."""
    before = len(pool.jobs)
    lane.submit_due(now, fetch=None)
    return pool.jobs[before:]


def _ok(lane: Lane, keys: list[str], started: float, now: float, ts_ms: int = WALL) -> None:
    res = FetchResult(books={k: {} for k in keys}, errors={}, ts_ms=ts_ms, latency_ms=(now - started) * 1000)
    lane.complete(Done(lane, keys, res, None, started), now)


def _fail(lane: Lane, keys: list[str], err: BaseException, started: float, now: float) -> None:
    lane.complete(Done(lane, keys, None, err, started), now)


def test_instruments_stay_on_the_interval_grid():
    lane, pool, w = _lane()
    assert _fetch(lane, pool, 0.0) == [["a"], ["b"], ["c"]]
    for job in pool.jobs:
        _ok(lane, job, 0.0, 0.3)  # fetch latency does not move the grid
    assert [lane.state[k].due for k in "abc"] == [1.0, 1.0, 1.0]
    assert _fetch(lane, pool, 0.5) == []  # nobody is due yet
    assert _fetch(lane, pool, 1.0) == [["a"], ["b"], ["c"]]
    for job in pool.jobs[3:]:
        _ok(lane, job, 1.0, 2.4)  # late: the missed slot at 2.0 is dropped, not burst to catch up
    assert [lane.state[k].due for k in "abc"] == [2.4, 2.4, 2.4]
    assert len(w.by_kind["orderbooks"].records("orderbook")) == 6
    assert lane.inflight == 0


def test_backoff_after_failures_then_a_gap_record_on_recovery():
    lane, pool, w = _lane(keys=("a",))
    _fetch(lane, pool, 0.0)
    _ok(lane, ["a"], 0.0, 0.1, ts_ms=WALL)
    now = 1.0
    for k in (1, 2, 3):
        assert _fetch(lane, pool, now) == [["a"]]
        _fail(lane, ["a"], ServerError("HTTP 502", status=502, venue=V), now, now + 0.1)
        st = lane.state["a"]
        assert st.failures == k and st.last_error == "server_error"
        assert st.due == pytest.approx(now + 0.1 + lane.backoff.delay("polymarket:a", k))
        assert _fetch(lane, pool, st.due - 0.01) == []  # backing off
        now = st.due
    assert _fetch(lane, pool, now) == [["a"]]
    _ok(lane, ["a"], now, now + 0.1, ts_ms=WALL + 9000)
    (gap,) = w.by_kind["orderbooks"].records("gap")
    assert gap == {"record_type": "gap", "schema_version": 1, "venue": V, "instrument_id": "polymarket:a",
                   "ts_ms": WALL + 9000, "from_ts_ms": WALL, "to_ts_ms": WALL + 9000, "reason": "server_error",
                   "failures": 3}
    assert schema.validate(gap) == []
    assert lane.state["a"].failures == 0
    # the first failure of a run is sampled into poll_errors, with today's keys
    errs = w.by_kind["poll_errors"].records()
    assert [e["consecutive_failures"] for e in errs] == [1]
    assert list(errs[0]) == ["record_type", "schema_version", "ts_ms", "venue", "market_id", "slug", "instrument_id",
                             "http_status", "latency_ms", "error_type", "consecutive_failures", "message"]
    assert errs[0]["http_status"] == 502 and errs[0]["error_type"] == "server_error"
    assert errs[0]["latency_ms"] == 100.0 and errs[0]["message"] == "HTTP 502"
    assert schema.validate(errs[0]) == []


def test_429_with_retry_after_cools_the_venue_and_keys_keep_their_turn():
    lane, pool, w = _lane(keys=("a", "b"), inflight_start=4)
    assert _fetch(lane, pool, 0.0) == [["a"], ["b"]]
    cap = lane.aimd.cap
    _fail(lane, ["a"], RateLimited("HTTP 429", status=429, venue=V, retry_after_s=5.0), 0.0, 1.0)
    assert lane.cooldown.remaining(1.0) == pytest.approx(5.0)
    assert not lane.gate.is_open(3.0) and lane.gate.is_open(6.0)  # fetch threads hold off too
    assert lane.aimd.cap == cap // 2
    st = lane.state["a"]
    assert st.failures == 0 and st.due == 0.0 and not st.inflight  # not the instrument's fault
    assert "a" in lane.queue and lane.queue.due_at("a") == 0.0
    _ok(lane, ["b"], 0.0, 1.0)
    assert _fetch(lane, pool, 5.9) == []  # still cooling down
    assert lane.next_wake(5.9) == pytest.approx(6.0)
    assert _fetch(lane, pool, 6.0) == [["a"], ["b"]]  # "a" is first: it kept its turn
    (gap,) = w.by_kind["orderbooks"].records("gap")
    assert gap["instrument_id"] is None and gap["reason"] == "cooldown:rate_limited" and "failures" not in gap
    assert gap["to_ts_ms"] - gap["from_ts_ms"] == 5000
    assert schema.validate(gap) == []
    assert w.by_kind["poll_errors"].lines == []
    c = lane.c
    assert (c.requests, c.requests_failed, c.http_429, c.polls_failed, c.errors) == (4, 1, 1, 0, {})


def test_a_held_done_costs_nothing():
    lane, pool, w = _lane(keys=("a",))
    assert _fetch(lane, pool, 0.0) == [["a"]]
    lane.complete(Done(lane, ["a"], None, None, 0.0, held=True), 0.2)
    st = lane.state["a"]
    assert lane.inflight == 0 and not st.inflight and st.failures == 0 and st.due == 0.0
    assert lane.c.held_back == 1 and lane.c.polls_failed == 0 and lane.c.requests_failed == 0
    assert not lane.cooldown.active(0.2) and lane.cooldown.window_counts(0.2) == (0, 0)
    assert w.by_kind["poll_errors"].lines == [] and w.by_kind["orderbooks"].lines == []
    assert _fetch(lane, pool, 0.2) == [["a"]]  # its turn is still now


@pytest.mark.parametrize(("inflight_start", "workers", "want"), [(4, 2, 2), (3, 8, 3), (16, 16, 16)])
def test_inflight_never_exceeds_aimd_cap_or_workers(inflight_start, workers, want):
    keys = [f"k{i}" for i in range(40)]
    lane, pool, _ = _lane(keys=keys, inflight_start=inflight_start, max_workers=workers, inflight_ceiling=workers)
    assert min(lane.aimd.cap, workers) == want
    now, outstanding = 0.0, []
    for _ in range(30):
        outstanding += _fetch(lane, pool, now)
        assert lane.inflight == len(outstanding) <= want
        now += 0.05
        if outstanding:
            _ok(lane, outstanding.pop(0), now - 0.05, now)
    assert max(len(j) for j in pool.jobs) == 1 and len(pool.jobs) >= want


def test_batches_fill_up_to_the_batch_size():
    lane, pool, _ = _lane(keys=("a", "b", "c", "d", "e"), batch_size=2)
    assert _fetch(lane, pool, 0.0) == [["a", "b"], ["c", "d"], ["e"]]
    assert lane.c.requests == 3 and lane.c.polls_submitted == 5


def test_membership_changes_via_set_instruments_and_prune_expired():
    lane, pool, w = _lane(keys=("a", "b"))
    assert _fetch(lane, pool, 0.0) == [["a"], ["b"]]
    lane.set_instruments([_inst("b"), _inst("c"), _inst("old", expires_at_ms=WALL - 1)], WALL - 10, 0.5)
    assert set(lane.state) == {"b", "c", "old"} and "a" not in lane.queue
    _ok(lane, ["a", "b"], 0.0, 0.6)  # "a" left while in flight: ignored
    assert [r["instrument_id"] for r in w.by_kind["orderbooks"].records()] == ["polymarket:b"]
    assert lane.state["c"].due == 0.5 and "c" in lane.queue
    lane.prune_expired(WALL)
    assert set(lane.state) == {"b", "c"} and "old" not in lane.queue and lane.c.expired_dropped == 1
    # a snapshot written after the expiry that still lists it keeps it
    lane.set_instruments([_inst("late", expires_at_ms=WALL - 1)], WALL, 1.0)
    lane.prune_expired(WALL)
    assert set(lane.state) == {"late"} and lane.c.expired_dropped == 1
    # each goes once the clock passes its own expiry (the earliest one is remembered per snapshot)
    lane.set_instruments([_inst("x", expires_at_ms=WALL + 100), _inst("y", expires_at_ms=WALL + 200), _inst("z")],
                         WALL, 2.0)
    lane.prune_expired(WALL + 50)
    assert set(lane.state) == {"x", "y", "z"}
    lane.prune_expired(WALL + 150)
    assert set(lane.state) == {"y", "z"}
    lane.prune_expired(WALL + 250)
    assert set(lane.state) == {"z"} and lane.c.expired_dropped == 3


def test_poll_stats_typed_counters_and_totals():
    lane, pool, w = _lane(keys=("a", "b", "c"))
    _fetch(lane, pool, 0.0)
    _ok(lane, ["a"], 0.0, 0.2)
    _fail(lane, ["b"], ServerError("HTTP 500", status=500, venue=V), 0.0, 0.2)
    res = FetchResult(books={}, errors={}, ts_ms=WALL, latency_ms=10.0)  # "c" missing from the reply
    lane.complete(Done(lane, ["c"], res, None, 0.0), 0.2)
    rec = lane.write_stats(0.5)
    assert list(rec) == POLL_STATS_KEYS
    assert schema.validate(rec) == []
    assert w.by_kind["poll_stats"].records() == [rec]  # the heartbeat gets what was written
    want = {"requests": 3, "requests_ok": 2, "requests_failed": 1, "submitted": 3, "ok": 1, "failed": 2,
            "books_written": 1, "gaps": 0, "http_5xx": 1, "http_4xx": 0, "http_429": 0, "timeouts": 0,
            "held_back": 0, "errors": {"server_error": 1, "not_found": 1}, "active_instruments": 3,
            "inflight": 0, "workers": 16, "target_interval_s": 1.0, "cooldown_reason": None}
    assert {k: rec[k] for k in want} == want
    assert lane.c.requests == 0 and lane.c.errors == {}  # the next period starts from zero
    _fetch(lane, pool, 1.0)
    _fail(lane, ["a"], ServerError("HTTP 500", status=500, venue=V), 1.0, 1.1)
    second = lane.write_stats(2.0)
    assert second["errors"] == {"server_error": 1} and second["requests"] == 1
    t = lane.total
    assert (t.requests, t.polls_ok, t.polls_failed, t.books_written) == (4, 1, 3, 1)
    assert t.errors == {"server_error": 2, "not_found": 1}
    assert rec["errors"] == {"server_error": 1, "not_found": 1}  # a written record never changes afterwards
