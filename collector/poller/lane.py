"""One venue's polling state and decisions: which instruments to fetch next, and what a finished
fetch means (books, gaps, poll errors, backoff, cooldown, AIMD), plus its poll_stats record.

A Lane is only touched by the poller's loop thread; it hands batches to its fetch pool and gets
them back as :class:`Done`. The policies it combines live in their own modules (backoff, cooldown,
aimd, due, stats; pacing in collector.venues.pacing); the records in collector.model.records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.config.settings import PollerSettings, VenueSettings
from collector.model.clock import now_ms
from collector.model.errors import BadPayload, NotFound, RateLimited, VenueError
from collector.model.records import (
    GapRecord,
    Instrument,
    PollErrorRecord,
    PollStats,
)
from collector.poller.aimd import Aimd
from collector.poller.backoff import BackoffPolicy
from collector.poller.cooldown import VenueCooldown
from collector.poller.counters import LaneCounters
from collector.poller.due import DueQueue, advance_due
from collector.poller.fetch import FetchPool, as_venue_error
from collector.poller.stats import IntervalTracker, LatencyWindow
from collector.poller.stats import pct as _pct
from collector.poller.stats import round3 as _round
from collector.store import layout
from collector.store.book_log import BookLog
from collector.store.writer_set import WriterSet
from collector.venues import VenueClient
from collector.venues.base import FetchResult, PolledBook
from collector.venues.pacing import RateBudget, SendGate

log = logging.getLogger(__name__)

_MSG_MAX = 300


@dataclass(slots=True)
class Done:
    """A finished fetch, handed from a worker thread to the loop thread."""

    lane: "Lane"
    keys: Sequence[str]
    result: FetchResult | None
    error: BaseException | None
    started: float  # monotonic: when the request was sent (or found the venue held)
    held: bool = False  # not sent: the venue was held (429 / cooldown) when a thread got to it


@dataclass(slots=True)
class InstState:
    inst: Instrument
    due: float  # monotonic time this instrument was (or is) scheduled for
    added: float  # monotonic time it joined the active set
    failures: int = 0
    last_ok: float | None = None  # monotonic
    last_ok_ts_ms: int | None = None  # capture time of the last good book
    last_error: str | None = None
    inflight: bool = False


class Lane:
    """One venue's instruments, schedule and limits, and the records its fetches produce.

    ``submit_due`` hands due batches to the pool while the venue is not cooling down, the budget
    allows and fewer than ``min(aimd cap, workers)`` requests are in flight; ``complete`` takes a
    finished :class:`Done` back; ``write_stats`` closes a poll_stats period.
    """

    def __init__(
        self,
        name: str,
        client: VenueClient,
        vs: VenueSettings,
        ps: PollerSettings,
        pool: FetchPool,
        writers: WriterSet,
    ):
        self.name = name
        self.client = client
        self.vs = vs
        self.ps = ps
        self.pool = pool
        self.interval = vs.interval_s
        self.batch_size = max(1, int(getattr(client, "batch_size", 1)))
        self.linger = vs.batch_linger_s if self.batch_size > 1 else 0.0
        self.queue = DueQueue()
        self.state: dict[str, InstState] = {}
        self.backoff = BackoffPolicy.from_settings(ps)
        shared = client.shared_spacing
        self.budget = RateBudget.from_settings(vs, shared)
        self.gate = SendGate(shared)  # checked by the fetch thread at send time
        self.cooldown = VenueCooldown.from_settings(vs, ps)
        self.aimd = Aimd.from_settings(vs, ps)
        self.latency = LatencyWindow(maxlen=2000, max_age_s=60.0)
        self.intervals = IntervalTracker(window_s=ps.stats_interval_s)
        self.inflight = 0
        self.snapshot_asof_ms: int | None = None
        self._next_expiry: float | None = None
        self.snapshot_error: str | None = None
        self.books = writers.get(name, layout.BOOK_STREAM)
        self.log = BookLog(self.books, name, every_poll=writers.settings.record == "every_poll")
        self.stats_out = writers.get(name, layout.POLL_STATS_STREAM)
        self.errors_out = writers.get(name, layout.POLL_ERRORS_STREAM)
        self.c = LaneCounters()  # since the last stats record
        self.total = LaneCounters()  # since start
        # The venue's stream capture (collector.stream.StreamLane) when it has one: it sets the
        # REST cadence of the books it keeps, vouches for their age and sees every REST book.
        self.stream: Any = None
        self.trades: Any = None  # its trade capture (collector.trades.TradesLane), when on

    # -- membership -------------------------------------------------------------------------
    def set_instruments(self, insts: Sequence[Instrument], asof_ms: int, now: float) -> None:
        self.snapshot_asof_ms, self._next_expiry = asof_ms, None
        new = {i.poll_key: i for i in insts}
        for key in [k for k in self.state if k not in new]:
            self._drop(key)
        for key, inst in new.items():
            st = self.state.get(key)
            if st is None:
                self.state[key] = InstState(inst=inst, due=now, added=now)
                self.queue.reschedule(key, now)
            elif st.inst != inst:  # new metadata (tick size, outcome...): the next book in full
                st.inst = inst
                self.log.forget(inst.instrument_id)

    def expedite(self, key: str, now: float) -> None:
        """Poll ``key`` as soon as possible (the stream lost or doubts its book)."""
        st = self.state.get(key)
        if st is not None and not st.inflight and st.due > now:
            st.due = now
            self.queue.reschedule(key, now)

    def prune_expired(self, wall_ms: int) -> None:
        """Drop instruments past expiry, unless a snapshot written after it still lists them."""
        asof = self.snapshot_asof_ms or 0
        if self._next_expiry is None:  # the earliest expiry that can drop one (once per snapshot)
            self._next_expiry = min((e for st in self.state.values() if (e := st.inst.expires_at_ms) is not None
                                     and asof <= e), default=float("inf"))
        if wall_ms <= self._next_expiry:
            return
        for key in [k for k, st in self.state.items() if (e := st.inst.expires_at_ms) is not None and asof <= e < wall_ms]:
            self._drop(key)
            self.c.expired_dropped += 1
        self._next_expiry = None

    def _drop(self, key: str) -> None:
        st = self.state.pop(key, None)
        if st is not None:
            self.log.forget(st.inst.instrument_id)
        self.queue.remove(key)
        self.intervals.forget(key)

    # -- scheduling ---------------------------------------------------------------------------
    def submit_due(self, now: float, fetch: Callable[["Lane", Sequence[str]], None]) -> None:
        if self.cooldown.active(now):
            return
        self._maybe_close_cooldown_gap(now)
        # Never more jobs than fetch threads: a queued job would be sent later, after the checks
        # below stopped being true (load_settings also rejects inflight_ceiling > max_workers).
        cap = min(self.aimd.cap, self.vs.max_workers)
        while self.inflight < cap:
            due = self.queue.next_due()
            if due is None or due > now - self.linger:
                return
            if not self.budget.try_acquire(now):
                return
            keys = self.queue.pop_due(now, self.batch_size)
            if not keys:
                return
            for k in keys:
                self.state[k].inflight = True
            self.inflight += 1
            self.c.requests += 1
            self.c.polls_submitted += len(keys)
            self.pool.submit(fetch, self, keys)

    def next_wake(self, now: float) -> float:
        """Earliest monotonic time at which submit_due could do something new."""
        if self.cooldown.active(now):
            return now + self.cooldown.remaining(now)
        if self.inflight >= min(self.aimd.cap, self.vs.max_workers):
            return now + 0.1  # a completion will wake the loop first
        due = self.queue.next_due()
        if due is None:
            return now + 0.1
        return max(due + self.linger, self.budget.next_allowed(now))

    # -- completions --------------------------------------------------------------------------
    def cooldown_for(self, err: RateLimited) -> float:
        """Seconds a 429 pauses the venue: its Retry-After, else the configured default."""
        return self.cooldown.rate_limit_pause_s(err.retry_after_s, self.vs.cooldown_429_s)

    def complete(self, done: Done, now: float) -> None:
        self.inflight -= 1
        if done.held:  # never sent: the instruments keep their turn for after the pause
            self.c.held_back += 1
            for key in done.keys:
                st = self.state.get(key)
                if st is not None:
                    st.inflight = False
                    self.queue.reschedule(key, st.due)
            return
        if done.error is not None:
            self._request_failed(done.keys, as_venue_error(done.error), now, done.started)
            return
        res = done.result
        self.latency.add(now, res.latency_ms)
        self.cooldown.record(now, True)
        self.c.requests_ok += 1
        normalize = self.client.normalize
        log_ = self.log
        ts_ms, latency_ms = res.ts_ms, res.latency_ms
        # The stream compares every REST book with its own: it needs them normalized.
        quick = self.stream is None
        for key in done.keys:
            st = self.state.get(key)
            if st is None:  # left the active set while in flight
                continue
            st.inflight = False
            raw = res.books.get(key)
            if raw is None:
                self._instrument_failed(key, st, res.errors.get(key) or NotFound("missing from reply"), now, latency_ms)
                continue
            content = None
            if type(raw) is PolledBook:
                content = raw.content
                # The same book as last time: a marker, without normalizing (after a gap: in full).
                if quick and not st.failures and log_.repeat(st.inst.instrument_id, content, ts_ms, latency_ms,
                                                             raw.ob_ts_ms, raw.hash, raw.hash_ok):
                    self._instrument_ok(key, st, ts_ms, raw.hash_ok, now)
                    continue
            try:
                rec = normalize(st.inst, raw, ts_ms, latency_ms)
                line = rec.to_json()
            except BadPayload as e:
                self._instrument_failed(key, st, e, now, latency_ms)
                continue
            except Exception as e:  # a normalizer/serializer bug must cost one book, not the loop
                self._instrument_failed(key, st, BadPayload(f"{type(e).__name__}: {e}"), now, latency_ms)
                continue
            if st.failures:
                self._write_gap(st.inst.instrument_id, st.last_ok_ts_ms, ts_ms, st.last_error or "unknown", st.failures)
            log_.book(rec, line, content)
            self._instrument_ok(key, st, ts_ms, rec.hash_ok, now)
            if self.stream is not None:
                self.stream.on_rest_book(key, rec, raw, done.started, now)

    def _instrument_ok(self, key: str, st: InstState, ts_ms: int, hash_ok: bool | None, now: float) -> None:
        self.intervals.record(key, now)
        st.failures = 0
        st.last_ok = now
        st.last_ok_ts_ms = ts_ms
        self.c.polls_ok += 1
        if hash_ok is False:  # kept and flagged in the record; counted for poll_stats
            self.c.hash_mismatch += 1
        # Keep the instrument on its interval grid; under overload this keeps the longest-waiting
        # instruments first in line (round robin) without bursting to catch up on missed slots.
        interval = self.interval if self.stream is None else self.stream.interval(key, self.interval, now)
        st.due = advance_due(st.due, interval, now)
        self.queue.reschedule(key, st.due)

    def _instrument_failed(self, key: str, st: InstState, err: VenueError, now: float, latency_ms: float) -> None:
        st.inflight = False
        st.failures += 1
        st.last_error = err.kind
        self.c.polls_failed += 1
        self.c.error(err.kind)
        if st.failures == 1 or st.failures % self.ps.error_sample_every == 0:
            self._write_error(st, err, latency_ms)
        # The backoff alone, not at least an interval: with a 1.5 s interval (Limitless) one blip
        # would otherwise leave a 3 s hole; a failing instrument still slows down exponentially.
        st.due = now + self.backoff.delay(st.inst.instrument_id, st.failures)
        self.queue.reschedule(key, st.due)

    def _request_failed(self, keys: Sequence[str], err: VenueError, now: float, started: float) -> None:
        latency_ms = (now - started) * 1000
        self.c.requests_failed += 1
        self._count_http(err)
        if isinstance(err, RateLimited):
            # The venue's limit, not the instruments' fault: cool the venue, keep their turn.
            self.cooldown.on_rate_limited(now, err.retry_after_s, self.vs.cooldown_429_s)
            self.gate.hold(self.cooldown.until)
            self.aimd.on_rate_limited(now, sent_at=started)
            for key in keys:
                st = self.state.get(key)
                if st is not None:
                    st.inflight = False
                    self.queue.reschedule(key, st.due)
            return
        was_active = self.cooldown.active(now)
        if not isinstance(err, NotFound):  # a closed market is its instrument's problem, not the venue's
            self.cooldown.record(now, False)
        if not was_active and self.cooldown.active(now):
            self.gate.hold(self.cooldown.until)
            log.warning("%s: cooling down %.1fs after repeated failures (%s)", self.name, self.cooldown.remaining(now), err)
        for key in keys:
            st = self.state.get(key)
            if st is not None:
                self._instrument_failed(key, st, err, now, latency_ms)

    def _count_http(self, err: VenueError) -> None:
        s = err.status
        if s == 429:
            self.c.http_429 += 1
        elif s is not None and 400 <= s < 500:
            self.c.http_4xx += 1
        elif s is not None and s >= 500:
            self.c.http_5xx += 1
        if err.kind == "timeout":
            self.c.timeouts += 1

    def _maybe_close_cooldown_gap(self, now: float) -> None:
        wall = now_ms()
        while (end := self.cooldown.ended(now)) is not None:
            # Wall times derived from the cooldown's own monotonic start and end.
            from_ms = wall - round((now - end.started_at) * 1000)
            to_ms = wall - round((now - end.ended_at) * 1000)
            self._write_gap(None, from_ms, to_ms, f"cooldown:{end.reason}", None)

    # -- records ------------------------------------------------------------------------------
    def _write_gap(self, instrument_id: str | None, from_ms: int | None, to_ms: int, reason: str, failures: int | None) -> None:
        self.books.write(GapRecord(self.name, instrument_id, from_ms, to_ms, reason, failures).to_json())
        self.c.gaps += 1

    def _write_error(self, st: InstState, err: VenueError, latency_ms: float) -> None:
        inst = st.inst
        rec = PollErrorRecord(
            ts_ms=now_ms(),
            venue=self.name,
            market_id=inst.market_id,
            slug=inst.slug,
            instrument_id=inst.instrument_id,
            http_status=err.status,
            latency_ms=round(latency_ms, 3),
            error_type=err.kind,
            consecutive_failures=st.failures,
            message=str(err)[:_MSG_MAX],
        )
        self.errors_out.write(rec.to_json())

    def write_stats(self, now: float) -> dict[str, Any]:
        """Write the poll_stats record, run AIMD's periodic check, start the next period's counts.
        Returns the record as a dict (for the heartbeat)."""
        ages = sorted(now - self._fresh(key, st, now) for key, st in self.state.items())
        p50, p95, p99 = self.latency.percentiles((50, 95, 99), now)
        iv = self.intervals.summary(now)
        c = self.c
        attempted = c.polls_ok + c.polls_failed
        # Venue health for AIMD: books missing because their market closed are not congestion.
        fail_rate = (c.polls_failed - c.errors.get("not_found", 0)) / attempted if attempted else 0.0
        self.aimd.evaluate(now, fail_rate, p95)
        stale_after = 5 * self.interval
        changed, full, unchanged = self.log.counts()
        c.books_written, c.books_changed, c.books_unchanged = full + unchanged, changed, unchanged
        stats = PollStats(
            ts_ms=now_ms(), venue=self.name, active_instruments=len(self.state),
            requests=c.requests, requests_ok=c.requests_ok, requests_failed=c.requests_failed,
            submitted=c.polls_submitted, ok=c.polls_ok, failed=c.polls_failed,
            books_written=c.books_written, books_changed=changed, books_unchanged=unchanged, gaps=c.gaps,
            http_4xx=c.http_4xx, http_5xx=c.http_5xx, http_429=c.http_429, timeouts=c.timeouts,
            held_back=c.held_back, errors=dict(c.errors),
            latency_p50_ms=_round(p50), latency_p95_ms=_round(p95), latency_p99_ms=_round(p99),
            cooldown_remaining_s=round(self.cooldown.remaining(now), 3),
            cooldown_reason=self.cooldown.reason if self.cooldown.active(now) else None,
            workers=self.vs.max_workers, inflight_cap=self.aimd.cap, inflight=self.inflight,
            target_interval_s=self.interval,
            achieved_interval_mean_s=_round(iv.mean), achieved_interval_p50_s=_round(iv.p50),
            achieved_interval_p99_s=_round(iv.p99),
            book_age_p50_s=_round(_pct(ages, 0.50)), book_age_p99_s=_round(_pct(ages, 0.99)),
            stale_instruments=sum(1 for a in ages if a > stale_after),
            expired_dropped=c.expired_dropped, hash_mismatch=c.hash_mismatch,
            snapshot_error=self.snapshot_error,
            writer_error=self.books.stats.last_error if self.books.stats.failing else None,
            records_dropped=self.books.stats.records_dropped,
            stream=None if self.stream is None else self.stream.stats(now),
            trades=None if self.trades is None else self.trades.stats(now),
        )  # fmt: skip
        self.stats_out.write(stats.to_json())
        self.total.add(c)
        self.c = LaneCounters()
        return stats.to_dict()

    def _fresh(self, key: str, st: InstState, now: float) -> float:
        """When this book was last known current: its last REST book, or the stream's word."""
        t = st.last_ok if st.last_ok is not None else st.added
        if self.stream is not None:
            s = self.stream.fresh(key, now)
            if s is not None and s > t:
                return s
        return t

