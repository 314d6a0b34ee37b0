"""Venue faults against the real simulator, asserted on the data.

Every ``test_venue_fault`` case: warm up healthy, inject a fault on each venue (Polymarket and
Limitless, different kinds at once), remove them, wait until every instrument has a book again
(the recovery time, bounded), run 2.5 s more, stop; then scan every file (schema, no duplicate
(instrument_id, ts_ms) within a file, sorted levels) and check per venue and period:

* before the fault and after recovery: coverage >= 0.95;
* during the fault: the case's own floor (e.g. ~30 % bad answers must not cost more than half);
* books on disk == ``books_written`` summed over poll_stats (nothing lost on the way to disk);
* every instrument gap is bracketed by books on disk, every instrument that failed and came back
  has a gap record, the failures are visible as poll_errors of the expected kinds and in the
  poll_stats counters, cooldowns as venue-wide gap records.

A venue down for tens of seconds (the other venue at full coverage meanwhile), markets vanishing
and appearing mid-run, and BUG-COOLDOWN-ON-SUCCESS have their own tests below.

Already proven elsewhere (tests/test_poller.py), not repeated here: Retry-After is honoured to the
request (``test_cooldown_honours_retry_after``), closed markets back off per instrument without a
venue cooldown (``test_backoff_on_failing_instruments``), a short outage leaves the other venue's
request rate intact (``test_one_venue_down_other_keeps_rate``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from collector.discovery.run import run_discovery
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema

POLY, LIM = H.POLY, H.LIM

# Polymarket in batches of 2 (12 instruments -> ~6 requests/s) so that a fault rate shows up
# within seconds; Limitless polls its 2 books one request each (~2 requests/s).
BASE_ENV = {"POLYMARKET__BOOKS_BATCH_SIZE": "2"}


@dataclass
class Fault:
    """One venue's fault in a case."""

    control: dict[str, Any]  # sim.control(venue=..., **control) while the fault is on
    during_floor: float = 0.0  # coverage floor while the fault is on
    errors: set[str] = field(default_factory=set)  # poll_error kinds that must appear
    allowed: set[str] = field(default_factory=set)  # poll_error kinds allowed besides `errors`
    counters: tuple[str, ...] = ()  # poll_stats counters that must be > 0
    cooldown_gap: bool = False  # a venue-wide cooldown gap must be written


@dataclass
class Case:
    id: str
    faults: dict[str, Fault]  # venue -> its fault (both venues at once: isolation between venues
    # is proven by test_venue_down_for_tens_of_seconds and tests/test_poller.py)
    fault_s: float = 4.0
    env: dict[str, str] = field(default_factory=dict)
    recover_s: float = 8.0  # bound on the time from fault off to every instrument's next book


CASES = [
    Case("5xx_burst_and_429_storm_without_retry_after", {
        POLY: Fault({"error_rate": 1.0}, errors={"server_error"}, counters=("http_5xx",), cooldown_gap=True),
        LIM: Fault({"throttle_for_s": 3.0, "retry_after_s": None}, counters=("http_429",), cooldown_gap=True),
    }, fault_s=3.0),
    Case("timeouts_malformed_json_html_pages", {
        POLY: Fault({"timeout_rate": 0.15, "timeout_s": 5, "malformed_rate": 0.1, "html_rate": 0.05}, during_floor=0.5,
                    errors={"timeout", "bad_payload"}, allowed={"server_error", "client_error"}, counters=("timeouts",)),
        LIM: Fault({"malformed_rate": 0.25, "html_rate": 0.1}, during_floor=0.4, errors={"bad_payload"},
                   allowed={"server_error", "client_error"}),
    }, env={"POLYMARKET__READ_TIMEOUT_S": "0.5"}),
    Case("429_storm_with_retry_after", {
        POLY: Fault({"throttle_rate": 0.5, "retry_after_s": 1}, during_floor=0.2, counters=("http_429",),
                    cooldown_gap=True),
        LIM: Fault({"throttle_rate": 0.4, "retry_after_s": 1}, during_floor=0.2, counters=("http_429",),
                   cooldown_gap=True),
    }),
]


def _ids(data, venues, sim) -> dict[str, list[str]]:
    return {v: H.instrument_ids(data, v, sim) for v in venues}


def _wait_recovered(data, venues, ids, t_off: float, bound_s: float) -> float | None:
    """Wall time when every instrument of ``venues`` has a book captured after ``t_off``."""
    def done() -> bool:
        for v in venues:
            seen = {b["instrument_id"] for b in h.books(data, v) if b["ts_ms"] >= t_off * 1000}
            if not set(ids[v]) <= seen:
                return False
        return True

    return time.time() if h.wait_for(done, bound_s, step=0.2) else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_venue_fault(case: Case, tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "41") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **{**BASE_ENV, **case.env})
        ids = _ids(tmp_path, (POLY, LIM), sim)
        m = H.Marks()
        poller = Poller(settings)
        with h.poller_thread(poller):
            m("start")
            time.sleep(1.5)
            for v, f in case.faults.items():
                sim.control(venue=v, **f.control)
            m("on")
            time.sleep(case.fault_s)
            sim.control(reset=True)
            m("off")
            t_rec = _wait_recovered(tmp_path, list(case.faults), ids, m["off"], case.recover_s * H.SLACK)
            m("recovered")
            time.sleep(2.5)
            m("end")
        faults = [e for e in sim.requests(limit=5000)["recent"] if e["fault"]]

    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    assert t_rec is not None, f"not every instrument had a book within {case.recover_s} s of the fault's end"
    figures: dict[str, Any] = {"recovery_s": t_rec - m["off"]}
    for v in (POLY, LIM):
        H.check_totals(ds, v)
        H.check_gaps(ds, v)
        f = case.faults.get(v)
        if f is None:
            whole = H.cov(ds, v, ids[v], m["start"] + 1, m["end"])
            figures[f"{v}_whole"] = whole
            assert whole.ratio >= 0.97, (v, whole)
            assert not ds.errors(v), ds.errors(v)[:3]
            continue
        injected = sum(1 for e in faults if e["venue"] == v)
        assert injected, f"{v}: the simulator injected nothing: the case proved nothing"
        before = H.cov(ds, v, ids[v], m["start"] + 1, m["on"])
        during = H.cov(ds, v, ids[v], m["on"], m["off"])
        after = H.cov(ds, v, ids[v], t_rec, m["end"])
        figures.update({f"{v}_faults": injected, f"{v}_before": before, f"{v}_during": during, f"{v}_after": after})
        assert before.ratio >= 0.95, (v, before)
        assert after.ratio >= 0.95, (v, after)
        assert during.ratio >= f.during_floor, (v, during)
        kinds = {e["error_type"] for e in ds.errors(v)}
        assert f.errors <= kinds <= f.errors | f.allowed, (v, kinds)
        st = ds.stats(v)
        for counter in f.counters:
            assert sum(r[counter] for r in st) > 0, (v, counter)
        if f.cooldown_gap:
            assert [g for g in ds.gaps(v) if g["instrument_id"] is None], f"{v}: no cooldown gap record"
        # a failed instrument that came back says so in the data: a gap record when it resumed
        failed = {e["instrument_id"] for e in ds.errors(v)}
        gapped = {g["instrument_id"] for g in ds.gaps(v)}
        assert failed <= gapped, (v, failed - gapped)
    H.report(case.id, **figures)


def test_venue_down_for_tens_of_seconds(tmp_path, monkeypatch):
    """Polymarket answers 503 to everything for RELIABILITY_DOWN_S (default 20 s): the poller keeps
    Limitless at full coverage, records the outage as gaps and recovers within failure cooldown +
    backoff cap + slack of the venue's return. The minutes-long variant with production backoff
    is ``test_venue_down_for_minutes_with_production_backoff`` (soak)."""
    _venue_down(tmp_path, monkeypatch, H.DOWN_S, {}, recover_bound_s=3 + 2 + 4)


@pytest.mark.soak
def test_venue_down_for_minutes_with_production_backoff(tmp_path, monkeypatch):
    """RELIABILITY_LONG_DOWN_S (default 180 s) of outage with the production defaults (backoff cap
    60 s, failure cooldown 15 s): recovery within cap + cooldown + slack."""
    prod = {"POLLER__BACKOFF_BASE_S": "1", "POLLER__BACKOFF_CAP_S": "60", "POLLER__FAILURE_COOLDOWN_S": "15"}
    _venue_down(tmp_path, monkeypatch, H.LONG_DOWN_S, prod, recover_bound_s=60 + 15 + 10)


def _venue_down(tmp_path, monkeypatch, down_s: float, env: dict[str, str], recover_bound_s: float) -> None:
    with run_sim("--markets", "8", "--seed", "42") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **{**BASE_ENV, **env})
        ids = _ids(tmp_path, (POLY, LIM), sim)
        m = H.Marks()
        with h.poller_thread(Poller(settings)):
            m("start")
            time.sleep(2.0)
            sim.control(venue=POLY, down=True)
            m("on")
            time.sleep(down_s)
            sim.control(venue=POLY, down=False)
            m("off")
            t_rec = _wait_recovered(tmp_path, (POLY,), ids, m["off"], recover_bound_s * H.SLACK)
            time.sleep(3.0)
            m("end")
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    assert t_rec is not None, f"Polymarket did not recover within {recover_bound_s} s"
    lim = H.cov(ds, LIM, ids[LIM], m["start"] + 1, m["end"])
    before = H.cov(ds, POLY, ids[POLY], m["start"] + 1, m["on"])
    # once back, it stays back: no further cooldown after the first books (a success never starts
    # one: test_success_after_a_failure_blip_starts_no_cooldown)
    after = H.cov(ds, POLY, ids[POLY], t_rec, m["end"])
    H.report("venue_down", down_s=down_s, recovery_s=t_rec - m["off"], limitless_whole=lim,
             polymarket_before=before, polymarket_after=after)
    assert lim.ratio >= 0.97, lim
    assert before.ratio >= 0.95 and after.ratio >= 0.95, (before, after)
    during = H.books_between(ds.books(POLY), m.ms("on") + 500, m.ms("off"))
    assert during == [], "books while the venue answered 503 to everything"
    for v in (POLY, LIM):
        H.check_totals(ds, v)
        H.check_gaps(ds, v)
    # the outage is in the data: every Polymarket instrument resumed with a gap spanning it
    gaps = {g["instrument_id"]: g for g in ds.gaps(POLY) if g["instrument_id"]}
    assert set(gaps) == set(ids[POLY])
    for g in gaps.values():
        assert g["from_ts_ms"] <= m.ms("on") + 1500 and g["to_ts_ms"] >= m.ms("off"), g
    cooldowns = [g for g in ds.gaps(POLY) if g["instrument_id"] is None]
    assert cooldowns and all(g["reason"].startswith("cooldown:") for g in cooldowns)
    st = ds.stats(POLY)
    assert any(r["cooldown_remaining_s"] > 0 for r in st), "the venue was never cooled down"
    assert sum(r["http_5xx"] for r in st) >= 1
    # while down, the poller does not hammer the venue: cooldowns and backoff space the attempts
    attempts = sum(r["requests"] for r in st if m.ms("on") + 1000 <= r["ts_ms"] < m.ms("off"))
    assert attempts <= 0.5 * down_s * len(ids[POLY]) / 2, attempts


@pytest.mark.soak
def test_success_after_a_failure_blip_starts_no_cooldown(tmp_path, monkeypatch):
    """Regression, end to end (BUG-COOLDOWN-ON-SUCCESS, fixed in 5915c76): the poller starts into
    a 5xx blip (every request fails until 10 have failed, i.e. two rounds), then the venue is
    healthy. With failure_cooldown_min_requests = 20 the failures alone (10-15, nothing else in
    the window) can never start a cooldown; the lane used to start one on the *success* that
    brought the window to 20 outcomes with a failed share >= 0.5, costing every instrument
    failure_cooldown_s (3 s here, 15 s in production) of data. Expected: no venue cooldown at all,
    books flowing right after the blip."""
    with run_sim("--markets", "8", "--seed", "44") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **BASE_ENV, POLLER__FAILURE_COOLDOWN_MIN_REQUESTS="20")
        ids = _ids(tmp_path, (POLY,), sim)
        m = H.Marks()
        m("on")
        sim.control(venue=POLY, error_rate=1.0)  # before the first request: no success in the window
        with h.poller_thread(Poller(settings)):
            assert h.wait_for(lambda: sum(1 for e in h.sim_times(sim, venue=POLY, since=m["on"])
                                          if e["status"] and e["status"] >= 500) >= 10, 10, step=0.01)
            sim.control(reset=True)
            m("off")
            time.sleep(5.0)
            m("end")
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    fails = sum(r["requests_failed"] for r in ds.stats(POLY))
    assert 10 <= fails < 20, f"{fails} failed requests: not a blip below the failure threshold"
    after = H.cov(ds, POLY, ids[POLY], m["off"] + 2.0, m["end"])
    H.report("failure_blip", failed_requests=fails, after=after,
             cooldown_gaps=[g["reason"] for g in ds.gaps(POLY) if g["instrument_id"] is None])
    # the venue answered 200 to every request after the blip: no venue-wide pause is warranted
    assert [g for g in ds.gaps(POLY) if g["instrument_id"] is None] == []
    assert all(r["cooldown_remaining_s"] == 0 for r in ds.stats(POLY))
    assert after.ratio >= 0.95, after


def test_success_never_starts_a_failure_cooldown_unit():
    """The deterministic core of BUG-COOLDOWN-ON-SUCCESS, on collector.poller.cooldown.VenueCooldown:
    5 failures then 5 successes inside the window (10 outcomes, share 0.5)."""
    from collector.poller.cooldown import VenueCooldown

    cd = VenueCooldown(30.0, failure_fraction=0.5, failure_min_requests=10, failure_window_s=10.0,
                       failure_cooldown_s=15.0)
    for i in range(5):
        assert cd.record(100.0 + i * 0.1, False) is False
    started = [cd.record(101.0 + i * 0.1, True) for i in range(5)]
    assert started == [False] * 5 and not cd.active(101.5), f"a success started a cooldown: {started}"


def test_markets_vanish_and_appear_mid_run(tmp_path, monkeypatch):
    """Markets close on the venue mid-run (their books 404) and discovery drops them; a new market
    appears and is picked up. Closed instruments stop being polled once the snapshot drops them,
    their removal is in the market records, the others keep full coverage, no venue cooldown."""
    with run_sim("--markets", "8", "--seed", "43") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **BASE_ENV)
        ids = _ids(tmp_path, (POLY, LIM), sim)
        all_ids = {v: H.instrument_ids(tmp_path, v) for v in (POLY, LIM)}  # with those without a book
        poly_markets = [mk for mk in sim.markets(venue=POLY)[POLY] if set(mk["tokens"]) & {i.split(":", 1)[1] for i in ids[POLY]}]
        gone_market = poly_markets[0]
        gone = {f"{POLY}:{t}" for t in gone_market["tokens"]}
        lim_gone = ids[LIM][0]
        m = H.Marks()
        with h.poller_thread(Poller(settings)):
            m("start")
            time.sleep(2.0)
            sim.markets("close", venue=POLY, slug=gone_market["slug"])
            sim.markets("close", venue=LIM, slug=lim_gone.split(":", 1)[1])
            added = sim.markets("add", venue=POLY, kind="yesno", end_in_s=7200)["markets"]
            m("closed")
            time.sleep(1.5)  # the poller meets 404s until discovery runs
            reports, attempts = _discover_until_ok(settings)
            m("rediscovered")
            time.sleep(3.0)
            m("end")
    assert all(r is not None and r.ok for r in reports), (reports, attempts)
    H.report("markets_vanish_discovery", attempts=attempts)
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    new_ids = set(H.instrument_ids(tmp_path, POLY)) - set(all_ids[POLY])
    assert new_ids and {f"{POLY}:{t}" for mk in added for t in mk["tokens"]} >= new_ids
    for v, dropped in ((POLY, gone), (LIM, {lim_gone})):
        H.check_totals(ds, v)
        H.check_gaps(ds, v)
        late = [b for b in ds.books(v) if b["instrument_id"] in dropped and b["ts_ms"] >= m.ms("closed") + 500]
        assert late == [], f"{v}: books of closed instruments after the close"
        removed = {r["instrument_id"]: r for r in ds.of(v, "markets", "market") if r["event"] == "removed"}
        assert set(removed) == dropped and {r["reason"] for r in removed.values()} == {"closed_or_gone"}
        kinds = {e["error_type"] for e in ds.errors(v)}
        assert kinds <= {"not_found"}, kinds
        assert {e["instrument_id"] for e in ds.errors(v)} <= dropped | (set(all_ids[v]) - set(ids[v]))
        # 404s are the instrument's problem: no failure cooldown. (Rate-limit cooldowns can happen
        # on Limitless: discovery's pages and the poller share the venue's 300 ms spacing.)
        assert all(r["cooldown_reason"] != "failures" for r in ds.stats(v)), "404s cooled the venue down"
        assert not [g for g in ds.gaps(v) if g["reason"] == "cooldown:failures"]
        kept = [i for i in ids[v] if i not in dropped]
        c = H.cov(ds, v, kept, m["start"] + 1, m["end"])
        assert c.ratio >= 0.97, (v, c)
        H.report(f"markets_vanish_{v}", kept=c)
    # the new market is polled within a snapshot check (+ a poll) of the discovery that found it
    first = H.first_book_after(ds, POLY, new_ids, m["rediscovered"])
    assert all(d is not None and d <= 1.5 for d in first.values()), first
    st = ds.stats(POLY)
    assert st[-1]["active_instruments"] == len(all_ids[POLY]) - len(gone) + len(new_ids)


def _discover_until_ok(settings, tries: int = 6):
    """Discovery next to a running poller, retrying failed venues like the Prefect task would
    (injected faults can still fail a pass after its page retries); counts the attempts."""
    attempts: dict[str, int] = {}
    done = {}
    for _ in range(tries):
        todo = [v for v in settings.venues if v not in done]
        if not todo:
            break
        for rep in run_discovery(settings, venues=todo):
            attempts[rep.venue] = attempts.get(rep.venue, 0) + 1
            if rep.ok:
                done[rep.venue] = rep
        time.sleep(1.1)
    return [done.get(v) for v in settings.venues], attempts


def test_limitless_discovery_succeeds_next_to_a_running_poller(tmp_path, monkeypatch):
    """Regression (BUG-LIMITLESS-DISCOVERY-STARVED, fixed). Production spacing (0.35 s) and three
    Limitless markets: the poller needs 3 requests/s and the venue allows one per 300 ms, so it
    polls back to back. A discovery page used to land only in the 50 ms between two book
    requests (~14 %) and one 429 failed the whole pass: the 900 s soak saw 10 of 15 Limitless
    passes fail. Now discovery and the poller share the spacing through
    data_dir/limitless/state/request_spacing and a throttled page is tried again: every pass
    succeeds, in this process or another, and the venue sees no 429 at all."""
    extra = dict(venues=LIM, LIMITLESS__RULES='[{"name": "top3", "min_minutes_to_expiry": 30, "max_markets": 3}]',
                 LIMITLESS__MIN_SPACING_S="0.35")
    with run_sim("--markets", "8", "--seed", "45") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **extra)
        child = h.child_env(H.env_for(sim, tmp_path, **extra))
        outcomes = []
        with h.poller_thread(Poller(settings)):
            time.sleep(2.0)
            for i in range(6):
                if i % 2:  # in another process, as under Prefect
                    r = subprocess.run([sys.executable, "-m", "collector", "discover", "--once"], env=child,
                                       cwd=h.REPO, capture_output=True, text=True, timeout=120)
                    outcomes.append("ok" if r.returncode == 0 else r.stdout[-300:] + r.stderr[-300:])
                else:
                    rep = run_discovery(settings)[0]
                    outcomes.append(rep.error_type or "ok")
                time.sleep(0.7)
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    H.report("limitless_discovery_next_to_poller", outcomes=outcomes,
             poller_429=sum(r["http_429"] for r in ds.stats(LIM)))
    assert outcomes == ["ok"] * 6, outcomes
    assert sum(r["http_429"] for r in ds.stats(LIM)) == 0
