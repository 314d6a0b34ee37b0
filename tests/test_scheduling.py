"""The poller's scheduling pieces: backoff, cooldown, rate budget, AIMD, due queue, rolling stats
(collector.poller.{backoff,cooldown,aimd,due,stats} and collector.venues.pacing.RateBudget).

Everything runs on a fake clock (plain floats passed as ``now``).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.config.settings import (
    LimitlessSettings,
    PollerSettings,
    PolymarketSettings,
)
from collector.poller.aimd import Aimd
from collector.poller.backoff import BackoffPolicy
from collector.poller.cooldown import CooldownEnd, VenueCooldown
from collector.poller.due import DueQueue, advance_due
from collector.poller.stats import (
    IntervalTracker,
    LatencyWindow,
    RollingWindow,
    percentile_sorted,
)
from collector.venues.pacing import RateBudget

ids = st.text(min_size=1, max_size=40)
policies = st.builds(
    BackoffPolicy,
    base=st.floats(0.01, 10),
    factor=st.floats(1, 4),
    cap=st.floats(0.5, 600),
    jitter=st.floats(0, 1),
)

# =============================================================================================
# Backoff
# =============================================================================================


def test_backoff_default_curve():
    p = BackoffPolicy()
    assert [p.delay("polymarket:1", k) for k in range(10)] == [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    # comparable to the original min(60, 2**min(failures, 6)): same cap, reached one step later
    original = [min(60, 2 ** min(k, 6)) for k in range(1, 10)]
    ours = [p.delay("x", k) for k in range(1, 10)]
    assert all(o <= orig for o, orig in zip(ours, original))
    assert ours[-1] == original[-1] == 60


def test_backoff_huge_failure_count_does_not_overflow():
    p = BackoffPolicy(base=1, factor=2, cap=60, jitter=0.3)
    assert 42 <= p.delay("x", 10**9) <= 60
    assert BackoffPolicy().delay("x", 10**9) == 60
    assert BackoffPolicy(base=0.001, factor=1.0001, cap=60).delay("x", 10**9) == 60


def test_backoff_edge_shapes():
    assert [BackoffPolicy(base=5, factor=1, cap=60).delay("x", k) for k in (1, 2, 50)] == [5, 5, 5]
    assert [BackoffPolicy(base=100, factor=2, cap=60).delay("x", k) for k in (1, 2, 50)] == [60, 60, 60]
    assert BackoffPolicy().delay("x", -3) == 0
    for bad in (dict(base=0), dict(factor=0.5), dict(cap=0), dict(jitter=1.5), dict(jitter=-0.1)):
        with pytest.raises(ValueError):
            BackoffPolicy(**bad)


@given(policies, ids, st.integers(1, 200))
def test_backoff_monotone_capped_in_band(p, iid, k):
    d0, d1 = p.delay(iid, k), p.delay(iid, k + 1)
    assert d0 <= d1  # monotone non-decreasing in failures
    assert 0 < d0 <= p.cap
    assert d0 <= p.step(k)
    assert d0 >= (1 - p.jitter) * p.step(k) * (1 - 1e-12)


@given(policies, ids, st.integers(1, 60))
def test_backoff_deterministic(p, iid, k):
    clone = BackoffPolicy(p.base, p.factor, p.cap, p.jitter)
    assert p.delay(iid, k) == clone.delay(iid, k) == p.delay(iid, k)


def test_backoff_jitter_stable_across_processes():
    """Seeded by a stable hash, not Python's per-process salted hash()."""
    code = (
        "from collector.poller.backoff import BackoffPolicy as B;"
        "p=B(jitter=0.7);print(repr([p.delay(f'polymarket:{i}', k) for i in range(5) for k in (1,3,9)]))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "12345")
    }
    assert len(outs) == 1
    p = BackoffPolicy(jitter=0.7)
    assert outs.pop().strip() == repr([p.delay(f"polymarket:{i}", k) for i in range(5) for k in (1, 3, 9)])


def test_backoff_jitter_spreads_instruments_at_cap():
    p = BackoffPolicy(jitter=0.5)
    capped = {p.delay(f"limitless:m{i}", 50) for i in range(200)}
    assert len(capped) > 150  # distinct per instrument: no thundering herd at the cap
    assert min(capped) >= 32 and max(capped) <= 60
    assert p.delay("a", 50) == p.delay("a", 7)  # settled: a fixed value per id once capped
    assert BackoffPolicy(jitter=0).delay("a", 50) == 60


def test_backoff_from_settings():
    s = PollerSettings(backoff_base_s=0.5, backoff_factor=3, backoff_cap_s=10, backoff_jitter=0)
    p = BackoffPolicy.from_settings(s)
    assert [p.delay("x", k) for k in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10]
    ps = PollerSettings()
    d = BackoffPolicy.from_settings(ps)
    assert (d.base, d.factor, d.cap, d.jitter) == (
        ps.backoff_base_s,
        ps.backoff_factor,
        ps.backoff_cap_s,
        ps.backoff_jitter,
    )


# =============================================================================================
# VenueCooldown
# =============================================================================================


def _cd(**kw) -> VenueCooldown:
    base = dict(failure_fraction=0.5, failure_min_requests=10, failure_window_s=10, failure_cooldown_s=15)
    base.update(kw)
    return VenueCooldown(30.0, **base)


def test_cooldown_honours_retry_after_exactly():
    c = _cd()
    assert not c.active(100) and c.remaining(100) == 0 and c.reason is None
    assert c.on_rate_limited(100.0, 7.5)
    assert c.active(100) and c.remaining(100) == 7.5 and c.remaining(105) == 2.5
    assert c.active(107.49) and not c.active(107.5)
    assert c.reason == "rate_limited" and c.until == 107.5


def test_cooldown_default_when_no_retry_after():
    c = _cd()
    c.on_rate_limited(10.0, None)
    assert c.remaining(10.0) == 30.0
    c2 = _cd()
    c2.on_rate_limited(10.0, default_s=4.0)
    assert c2.remaining(10.0) == 4.0
    c3 = _cd()
    c3.on_rate_limited(10.0, float("nan"))  # junk Retry-After is treated as absent
    assert c3.remaining(10.0) == 30.0


def test_cooldown_never_shortened():
    c = _cd()
    c.on_rate_limited(100, 60)
    assert not c.on_rate_limited(110, 5)  # would end at 115 < 160
    assert c.until == 160
    assert not c.on_rate_limited(110, 50)  # equal end: no change
    assert c.on_rate_limited(150, 30)  # extends to 180
    assert c.until == 180
    assert c.ended(179.9) is None
    assert c.ended(180) == CooldownEnd(100, 180, "rate_limited")  # one pause, start kept


def test_cooldown_zero_length_is_no_cooldown():
    c = VenueCooldown(0.0, failure_cooldown_s=0)
    assert not c.on_rate_limited(5.0)
    assert not c.on_rate_limited(5.0, 0)
    assert not c.active(5.0) and c.ended(6.0) is None
    for _ in range(20):
        c.record(5.0, False)
    assert not c.active(5.0) and c.ended(6.0) is None


def test_cooldown_failure_fraction_and_min_requests_guard():
    c = _cd()
    for i in range(9):
        assert not c.record(100 + i * 0.1, False)  # 9/9 failed, but fewer than 10 outcomes
    assert not c.active(101)
    assert c.record(101.0, False)
    assert c.active(101.0) and c.reason == "failures" and c.remaining(101.0) == 15
    assert c.ended(116.0) == CooldownEnd(101.0, 116.0, "failures")
    assert c.ended(116.0) is None
    assert c.window_counts(116.0) == (0, 0)  # window reset on trigger


def test_cooldown_failure_fraction_threshold():
    c = _cd()
    for i in range(6):
        c.record(1.0 + i, True)
    for i in range(4):
        assert not c.record(7.0 + i * 0.1, False)  # 4/10 < 0.5
    assert c.window_counts(7.5) == (10, 4)
    assert not c.active(7.5)
    assert not c.record(7.5, False)  # 5/11 < 0.5
    assert c.record(7.6, False)  # 6/12 >= 0.5
    assert c.reason == "failures" and c.remaining(7.6) == pytest.approx(15)


def test_cooldown_fraction_exact_threshold():
    c = _cd(failure_fraction=0.3)
    for i in range(7):
        c.record(1.0, True)
    c.record(1.0, False)
    c.record(1.0, False)
    assert not c.active(1.0)
    assert c.record(1.0, False)  # exactly 3/10 >= 0.3 (no float slip)


def test_a_success_never_starts_a_cooldown_the_next_failure_does():
    c = _cd()
    for _ in range(9):
        c.record(1.0, False)
    assert not c.record(1.0, True)  # 9/10 failed, but a success must not pause the venue
    assert not c.active(1.0)
    assert c.record(1.0, False)  # 10/11 failed: the failure starts it
    assert c.active(1.0)


def test_cooldown_failures_slide_out_of_window():
    c = _cd()
    for i in range(9):
        c.record(float(i), False)  # t = 0..8
    c.record(20.0, False)  # t=0..8 expired (window 10 s): 1 outcome only
    assert not c.active(20.0)
    assert c.window_counts(20.0) == (1, 1)
    c.record(10.0 + 20, True)
    assert c.window_counts(30.0) == (1, 0)


def test_cooldown_ignores_outcomes_while_active():
    c = _cd()
    c.on_rate_limited(0.0, 5.0)
    for _ in range(50):
        assert not c.record(1.0, False)
    assert c.window_counts(1.0) == (0, 0)
    assert c.until == 5.0 and c.reason == "rate_limited"


def test_cooldown_ended_reported_once_and_not_early():
    c = _cd()
    assert c.ended(0.0) is None
    c.on_rate_limited(10.0, 2.0)
    assert c.ended(11.0) is None
    e = c.ended(50.0)
    assert e == CooldownEnd(started_at=10.0, ended_at=12.0, reason="rate_limited")
    assert c.ended(50.0) is None and c.ended(1e9) is None


def test_cooldown_back_to_back_both_reported():
    c = _cd()
    c.on_rate_limited(0.0, 1.0)
    c.on_rate_limited(5.0, 1.0)  # the first ended at 1.0 but nobody asked yet
    assert c.ended(5.5) == CooldownEnd(0.0, 1.0, "rate_limited")
    assert c.ended(5.5) is None
    assert c.ended(6.0) == CooldownEnd(5.0, 6.0, "rate_limited")
    assert c.ended(7.0) is None


def test_cooldown_extension_switches_reason():
    c = _cd(failure_min_requests=1, failure_fraction=1.0)
    c.record(0.0, False)  # failure cooldown until 15
    assert c.reason == "failures"
    c.on_rate_limited(1.0, 100.0)
    assert c.reason == "rate_limited"
    assert c.ended(101.0) == CooldownEnd(0.0, 101.0, "rate_limited")


events = st.lists(
    st.tuples(
        st.floats(0, 5),  # time step
        st.sampled_from(["429", "429ra", "ok", "fail", "ended"]),
        st.floats(0, 40),  # retry-after
    ),
    max_size=120,
)


@given(events)
@settings(max_examples=200)
def test_cooldown_property(evs):
    c = _cd(failure_min_requests=3, failure_window_s=4, failure_cooldown_s=6)
    now = 0.0
    until = -math.inf
    starts = 0
    reported: list[CooldownEnd] = []
    for dt, kind, ra in evs:
        now += dt
        was_active = c.active(now)
        if kind in ("429", "429ra"):
            grew = c.on_rate_limited(now, ra if kind == "429ra" else None)
            expect_end = now + (ra if kind == "429ra" else 30.0)
            assert grew == (expect_end > max(until, now))
            if grew:
                assert c.until == expect_end
        elif kind in ("ok", "fail"):
            c.record(now, kind == "ok")
        else:
            while (e := c.ended(now)) is not None:
                reported.append(e)
        assert c.until >= until  # never shortened
        if c.until > until and not was_active:
            starts += 1
        until = c.until
        assert c.remaining(now) == max(0.0, until - now)
    while (e := c.ended(now + 1e6)) is not None:
        reported.append(e)
    assert len(reported) == starts  # every cooldown reported exactly once
    for a, b in zip(reported, reported[1:]):
        assert a.started_at < a.ended_at <= b.started_at  # disjoint, in order


def test_cooldown_from_settings():
    ps = PollerSettings(
        failure_cooldown_fraction=0.4,
        failure_cooldown_min_requests=7,
        failure_cooldown_window_s=5,
        failure_cooldown_s=20,
    )
    c = VenueCooldown.from_settings(LimitlessSettings(cooldown_429_s=12), ps)
    assert c.default_s == 12
    assert (c.failure_fraction, c.failure_min_requests, c.failure_window_s, c.failure_cooldown_s) == (
        0.4,
        7,
        5,
        20,
    )


# =============================================================================================
# RateBudget
# =============================================================================================


def _check_budget(starts: list[float], n: int, window: float, spacing: float) -> None:
    for i, s in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t < s + window)
        assert in_window <= n, (s, in_window)
    for a, b in zip(starts, starts[1:]):
        assert b >= a + spacing


@given(
    st.integers(1, 8),
    st.floats(0.1, 5),
    st.floats(0, 1),
    st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
@settings(max_examples=200)
def test_rate_budget_never_exceeds(n, window, spacing, steps):
    b = RateBudget(n, window, spacing)
    now = 0.0
    starts = []
    for dt in steps:
        now += dt
        allowed = b.next_allowed(now) == now
        got = b.try_acquire(now)
        assert got == allowed  # next_allowed and try_acquire agree
        if got:
            starts.append(now)
    _check_budget(starts, n, window, spacing)


@given(st.integers(1, 8), st.floats(0.1, 5), st.floats(0, 1), st.lists(st.floats(0, 3), max_size=80))
def test_rate_budget_next_allowed_is_acquirable(n, window, spacing, waits):
    b = RateBudget(n, window, spacing)
    now = 0.0
    starts = []
    for w in waits:
        t = b.next_allowed(now)
        assert t >= now
        assert b.try_acquire(t)
        starts.append(t)
        now = t + w * 0.1
    _check_budget(starts, n, window, spacing)


def _saturate(b: RateBudget, horizon: float) -> list[float]:
    now, starts = 0.0, []
    while True:
        now = b.next_allowed(now)
        if now >= horizon:
            return starts
        assert b.try_acquire(now)
        starts.append(now)


def test_rate_budget_spacing_only_gives_documented_rate():
    # Limitless: at least 300 ms between calls -> 3.33 requests/s
    starts = _saturate(RateBudget(10**6, 10.0, 0.3), 99.95)
    assert len(starts) == 334  # 0.0, 0.3, ..., 99.9
    assert len(starts) / 100 == pytest.approx(1 / 0.3, rel=0.01)
    _check_budget(starts, 10**6, 10.0, 0.3)


def test_rate_budget_from_settings_mirrors_fields():
    for v in (LimitlessSettings(), PolymarketSettings()):
        b = RateBudget.from_settings(v)
        assert (b.requests, b.window_s, b.min_spacing_s) == (v.rate_requests, v.rate_window_s, v.min_spacing_s)


def test_rate_budget_limitless_documented_limits():
    # 30 per 10 s together with 300 ms spacing: the window is the binding limit, 3/s
    b = RateBudget.from_settings(LimitlessSettings(rate_requests=30, rate_window_s=10, min_spacing_s=0.3))
    starts = _saturate(b, 99.5)
    assert len(starts) == 300
    _check_budget(starts, 30, 10.0, 0.3)


def test_rate_budget_polymarket_books_limit():
    b = RateBudget.from_settings(PolymarketSettings(rate_requests=500, rate_window_s=10, min_spacing_s=0))
    starts = _saturate(b, 59.5)
    assert len(starts) == 3000  # /books 500 per 10 s -> 50/s
    _check_budget(starts, 500, 10.0, 0.0)


def test_rate_budget_window_edges():
    b = RateBudget(2, 10.0)
    assert b.try_acquire(0.0) and b.try_acquire(1.0)
    assert not b.try_acquire(9.99)
    assert b.next_allowed(5.0) == 10.0
    assert b.available(5.0) == 0 and b.used(5.0) == 2
    assert b.try_acquire(10.0)  # the start at 0.0 no longer counts
    assert b.available(10.0) == 0
    assert b.available(11.0) == 1
    s = RateBudget(100, 1.0, 0.25)
    assert s.try_acquire(0.0) and not s.try_acquire(0.2) and s.next_allowed(0.2) == 0.25
    assert s.try_acquire(0.25)
    with pytest.raises(ValueError):
        RateBudget(0, 1.0)


# =============================================================================================
# Aimd
# =============================================================================================


def test_aimd_halving_and_floor():
    a = Aimd(32, 32)
    caps = []
    for t in range(7):
        a.on_rate_limited(float(t))
        caps.append(a.cap)
    assert caps == [16, 8, 4, 2, 1, 1, 1]
    assert Aimd(3, 8).on_rate_limited(0.0) == -2  # 3 // 2 = 1


def test_aimd_start_clamped_and_ceiling():
    assert Aimd(50, 8).cap == 8
    assert Aimd(0, 8).cap == 1
    with pytest.raises(ValueError):
        Aimd(1, 0)


def test_aimd_one_halving_per_congestion_episode():
    a = Aimd(16, 32)
    assert a.on_rate_limited(10.0, sent_at=9.5) == -8
    assert a.on_rate_limited(10.1, sent_at=9.8) == 0  # was in flight when we halved
    assert a.on_rate_limited(10.2, sent_at=9.9) == 0
    assert a.cap == 8
    assert a.on_rate_limited(12.0, sent_at=10.5) == -4  # sent after the cut: a new signal
    assert a.cap == 4


def test_aimd_decrease_on_failures_or_latency():
    a = Aimd(4, 8, failure_rate=0.2, p95_latency_ms=1500)
    assert a.evaluate(0, 0.2, 100) == -1 and a.cap == 3  # failure rate at threshold
    assert a.evaluate(10, 0.0, 1500) == -1 and a.cap == 2  # p95 at threshold
    assert a.evaluate(20, 0.19, 1499) == 0 and a.cap == 2
    assert a.evaluate(30, 0.9, None) == -1 and a.cap == 1  # all failed, no latency samples
    assert a.evaluate(40, 0.9, 9999) == 0 and a.cap == 1  # floor


def test_aimd_increase_only_after_stable_window():
    a = Aimd(4, 6, stable_window_s=900)
    assert a.evaluate(0, 0.0, 100) == 0  # window starts now
    assert a.evaluate(899, 0.0, 100) == 0
    assert a.evaluate(900, 0.0, 100) == 1 and a.cap == 5
    assert a.evaluate(901, 0.0, 100) == 0  # once per window
    assert a.evaluate(1799, 0.0, 100) == 0
    assert a.evaluate(1800, 0.0, 100) == 1 and a.cap == 6
    assert a.evaluate(2700, 0.0, 100) == 0 and a.cap == 6  # ceiling
    assert a.evaluate(2710, 0.5, 100) == -1 and a.cap == 5
    assert a.evaluate(3600, 0.0, 100) == 0  # only 890 s since the decrease
    assert a.evaluate(3610, 0.0, 100) == 1 and a.cap == 6


def test_aimd_halving_restarts_stable_window_and_no_data_blocks_increase():
    a = Aimd(4, 8, stable_window_s=100)
    a.evaluate(0, 0, 10)
    a.on_rate_limited(50)
    assert a.cap == 2
    assert a.evaluate(140, 0, 10) == 0
    assert a.evaluate(150, 0, 10) == 1
    assert a.evaluate(300, 0, None) == 0  # no samples: no evidence for +1
    assert a.evaluate(301, 0, 10) == 1


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.lists(
        st.tuples(st.floats(0, 400), st.sampled_from(["429", "eval"]), st.floats(0, 0.5), st.floats(0, 3000)),
        max_size=150,
    ),
)
def test_aimd_property(start, ceiling, evs):
    a = Aimd(start, ceiling, failure_rate=0.2, p95_latency_ms=1500, stable_window_s=900)
    now = 0.0
    last_bad_or_inc: float | None = None
    for dt, kind, fr, p95 in evs:
        now += dt
        before = a.cap
        if kind == "429":
            d = a.on_rate_limited(now)
            assert a.cap == max(1, before // 2) and d == a.cap - before
            last_bad_or_inc = now
        else:
            d = a.evaluate(now, fr, p95)
            bad = fr >= 0.2 or p95 >= 1500
            if d == 1:
                assert not bad and last_bad_or_inc is not None
                assert now - last_bad_or_inc >= 900
            if bad:
                assert d == (-1 if before > 1 else 0)
            if last_bad_or_inc is None or bad or d == 1:
                last_bad_or_inc = now
        assert 1 <= a.cap <= max(1, ceiling)


def test_aimd_from_settings():
    ps = PollerSettings(aimd_failure_rate=0.3, aimd_p95_latency_ms=900, aimd_stable_window_s=60)
    a = Aimd.from_settings(LimitlessSettings(inflight_start=1, inflight_ceiling=2), ps)
    assert (a.cap, a.ceiling, a.failure_rate, a.p95_latency_ms, a.stable_window_s) == (1, 2, 0.3, 900, 60)
    for v in (LimitlessSettings(), PolymarketSettings()):
        d = Aimd.from_settings(v, PollerSettings())
        assert (d.cap, d.ceiling) == (v.inflight_start, v.inflight_ceiling)


# =============================================================================================
# DueQueue
# =============================================================================================


def test_due_queue_oldest_first_and_limit():
    q = DueQueue()
    for key, due in [("c", 3.0), ("a", 1.0), ("d", 9.0), ("b", 2.0), ("a2", 1.0)]:
        assert q.add(key, due)
    assert len(q) == 5 and "a" in q and q.next_due() == 1.0
    assert q.pop_due(2.5, 10) == ["a", "a2", "b"]  # ties in scheduling order
    assert "a" not in q and len(q) == 2
    assert q.pop_due(2.5, 10) == []
    assert q.pop_due(100, 1) == ["c"]
    assert q.pop_due(100, 0) == []
    assert q.pop_due(100, 5) == ["d"]
    assert q.next_due() is None and not q


def test_due_queue_add_reschedule_remove():
    q = DueQueue()
    assert q.add("x", 5.0)
    assert not q.add("x", 1.0)  # already queued: keeps its due time
    assert q.due_at("x") == 5.0
    q.reschedule("x", 1.0)
    assert q.due_at("x") == 1.0 and len(q) == 1
    q.reschedule("y", 0.5)  # upsert
    assert q.next_due() == 0.5
    assert q.remove("y") and not q.remove("y")
    assert q.next_due() == 1.0  # stale entry skipped
    q.reschedule("x", 7.0)
    assert q.pop_due(6.0, 10) == []  # the old 1.0 entry is dead
    assert q.pop_due(7.0, 10) == ["x"]
    assert q.due_at("x") is None
    with pytest.raises(ValueError):
        q.add("z", float("nan"))


def test_due_queue_heap_stays_compact():
    q = DueQueue()
    for i in range(1000):
        q.add(i, float(i))
    for r in range(50):
        for i in range(1000):
            q.reschedule(i, float(i + r))
    assert len(q) == 1000
    assert len(q._heap) <= 2 * 1000 + 1
    for i in range(900):
        q.remove(i)
    assert len(q._heap) <= 2 * 100 + 64 + 1
    assert q.pop_due(1e9, 1000) == list(range(900, 1000))


queue_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "resched", "remove", "pop", "next"]),
        st.integers(0, 15),
        st.floats(0, 20, allow_nan=False),
        st.integers(0, 6),
    ),
    max_size=200,
)


@given(queue_ops)
@settings(max_examples=300)
def test_due_queue_matches_reference(ops):
    q = DueQueue()
    ref: dict[int, tuple[float, int]] = {}
    seq = 0
    for op, key, t, limit in ops:
        if op == "add":
            added = q.add(key, t)
            assert added == (key not in ref)
            if added:
                seq += 1
                ref[key] = (t, seq)
        elif op == "resched":
            q.reschedule(key, t)
            seq += 1
            ref[key] = (t, seq)
        elif op == "remove":
            assert q.remove(key) == (ref.pop(key, None) is not None)
        elif op == "pop":
            expect = sorted((v for v in ref.items() if v[1][0] <= t), key=lambda kv: kv[1])[:limit]
            assert q.pop_due(t, limit) == [k for k, _ in expect]
            for k, _ in expect:
                del ref[k]
        else:
            assert q.next_due() == (min(d for d, _ in ref.values()) if ref else None)
        assert len(q) == len(ref)
        assert all((k in q) == (k in ref) for k in range(16))


@given(
    st.integers(1, 60),
    st.integers(1, 20),
    st.lists(st.floats(0, 20), min_size=1, max_size=60),
    st.lists(st.floats(0, 2), min_size=1, max_size=120),
    st.floats(0, 1),
)
@settings(max_examples=200)
def test_due_queue_no_starvation_under_overload(n, limit, initial, steps, interval_frac):
    """Capacity below demand: every instrument is served within ceil(n/limit) pops."""
    q = DueQueue()
    for i in range(n):
        q.add(i, -initial[i % len(initial)])  # all overdue, in arbitrary order
    bound = math.ceil(n / limit)
    last_served = {i: -1 for i in range(n)}  # pop index
    now = 0.0
    for pop_no, dt in enumerate(steps):
        got = q.pop_due(now, limit)
        assert len(got) == min(limit, n)  # everyone is due: the queue is saturated
        assert len(set(got)) == len(got)
        for k in got:
            last_served[k] = pop_no
        for k, served in last_served.items():
            assert pop_no - served < bound + (0 if served >= 0 else 1), (k, served, pop_no)
        # finished polls come back due one interval later; the clock moves at least that much
        interval = dt * interval_frac
        for k in got:
            q.reschedule(k, now + interval)
        now += dt


def test_advance_due():
    assert advance_due(10.0, 1.0, 10.2) == 11.0  # on time: stay on the grid
    assert advance_due(10.0, 1.0, 13.7) == 13.7  # late: no burst to catch up
    assert advance_due(10.0, 1.0, 11.0) == 11.0


# =============================================================================================
# Rolling stats
# =============================================================================================


def _nearest_rank(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


@given(st.lists(st.floats(0, 1e4), min_size=1, max_size=300), st.floats(0, 100))
def test_percentile_against_sorted_reference(xs, p):
    s = sorted(xs)
    r = percentile_sorted(s, p)
    assert r == _nearest_rank(xs, p)
    n = len(xs)
    assert sum(1 for x in xs if x <= r) >= p / 100 * n - 1e-9
    if p > 0:
        assert sum(1 for x in xs if x < r) < p / 100 * n + 1e-9


def test_percentile_known_values():
    xs = list(range(1, 101))
    assert [percentile_sorted(xs, p) for p in (0, 1, 50, 95, 99, 100)] == [1, 1, 50, 95, 99, 100]
    assert percentile_sorted([], 50) is None
    assert percentile_sorted([7.0], 99) == 7.0


@given(st.lists(st.floats(0, 1e4), max_size=400), st.integers(1, 100))
def test_rolling_window_bounded_by_count(xs, maxlen):
    w = LatencyWindow(maxlen=maxlen)
    for i, x in enumerate(xs):
        w.add(float(i), x)
    kept = xs[-maxlen:] if xs else []
    assert len(w) == len(kept)
    s = w.summary()
    if not kept:
        assert s.count == 0 and s.p95 is None and s.mean is None
        return
    assert s.count == len(kept)
    assert (s.p50, s.p95, s.p99) == tuple(_nearest_rank(kept, p) for p in (50, 95, 99))
    assert s.max == max(kept)
    assert s.mean == pytest.approx(sum(kept) / len(kept))
    assert w.percentiles((50, 95, 99)) == (s.p50, s.p95, s.p99)
    assert w.percentile(95) == s.p95


def test_rolling_window_age_limit():
    w = RollingWindow(maxlen=1000, max_age_s=10.0)
    for t in range(30):
        w.add(float(t), float(t))
    assert w.values(29.0) == [float(t) for t in range(20, 30)]  # (19, 29]
    assert w.summary(100.0).count == 0
    w.add(100.0, 5.0)
    w.clear()
    assert len(w) == 0


def test_interval_tracker():
    it = IntervalTracker(window_s=10.0, maxlen=100)
    assert it.record("a", 0.0) is None
    assert it.record("b", 0.5) is None
    assert it.record("a", 1.0) == 1.0
    assert it.record("a", 2.5) == 1.5
    assert it.record("b", 3.5) == 3.0
    s = it.summary(4.0)
    assert s.count == 3 and s.p50 == 1.5 and s.max == 3.0 and s.mean == pytest.approx(5.5 / 3)
    assert len(it) == 2 and it.last_success("a") == 2.5
    it.forget("a")
    assert it.record("a", 50.0) is None  # an absence is not an interval
    assert it.summary(50.0).count == 0  # older samples aged out of the 10 s window


def test_interval_tracker_bounded_memory():
    it = IntervalTracker(window_s=None, maxlen=50)
    for t in range(1000):
        it.record(t % 7, float(t))
    s = it.summary()
    assert s.count == 50 and s.p50 == 7.0 and s.p99 == 7.0
