"""The poller end to end, against the real simulator subprocess.

Every test starts its own simulator (``run_sim``), runs discovery once to write real snapshots,
then runs the poller (in-process, or ``python -m collector poll`` for the signal tests) and
asserts on what is on disk and on the simulator's request log. Bounds are generous on purpose:
the assertions are about data and request patterns, not wall-clock precision.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.store.changes import Expander
from collector.store.files import iter_jsonl_lines
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot, write_snapshot
from collector.venues import make_client
from tests import helpers as h

POLY, LIM = "polymarket", "limitless"
MARKER_KEYS = {"record_type", "schema_version", "venue", "instrument_id", "ts_ms", "latency_ms"}


def _dec_line(line: bytes) -> dict:
    """A record with every JSON number as an exact Decimal (orjson would give floats)."""
    return json.loads(line, parse_float=Decimal, parse_int=Decimal)


def _poll_keys(tmp_path: Path, venue: str) -> list[str]:
    return [i.poll_key for i in read_snapshot(snapshot_path(tmp_path, venue)).instruments]


def _window(recs, lo_ms: float, hi_ms: float) -> list[dict]:
    return [r for r in recs if lo_ms <= r["ts_ms"] < hi_ms]


# =========================================================================== 1 + 7: happy path


@pytest.fixture(scope="module")
def happy(tmp_path_factory):
    """One 6 s run over both venues; tests 1 and 7 read its output."""
    data = tmp_path_factory.mktemp("happy")
    with run_sim("--markets", "8", "--seed", "11") as sim, pytest.MonkeyPatch.context() as mp:
        settings = h.prepare(sim, data, mp)
        slugs = _poll_keys(data, LIM)
        frozen = slugs[0]
        # Freeze one Limitless book so the raw payload can be compared with what was recorded.
        sim.markets("expire", venue=LIM, slug=frozen)
        t0 = time.time()
        Poller(settings).run(duration_s=6)
        t1 = time.time()
        raw = httpx.get(f"{sim.limitless_url}/markets/{frozen}/orderbook", timeout=5).json()
        log = sim.requests(limit=5000)
        yield {"data": data, "t0": t0, "t1": t1, "raw": raw, "frozen": frozen, "log": log}


def test_happy_path_records_valid_and_rates(happy):
    data = happy["data"]
    duration = happy["t1"] - happy["t0"]
    unchanged: Counter[str] = Counter()
    for venue in (POLY, LIM):
        files = h.stream_files(data, venue, "orderbooks")
        assert files, venue
        keys = set(_poll_keys(data, venue))
        counts: Counter[str] = Counter()
        for f in files:
            seen: set[tuple[str, int]] = set()
            exp = Expander(_dec_line)  # writer.record = "changes" (the default)
            for line in iter_jsonl_lines(f):
                orjson.loads(line)  # every line parses with the fast parser too
                r = _dec_line(line)
                if r["record_type"] == "gap":
                    continue
                if r["record_type"] == "unchanged":  # only the per-poll fields, after a full book
                    assert set(r) - {"ob_ts_ms", "hash", "hash_ok"} == MARKER_KEYS, r
                    assert ("ob_ts_ms" in r) == (venue == POLY) and ("hash" in r) == (venue == POLY)
                    full = exp.expand(r)
                    assert full is not None, f"unchanged {r['instrument_id']} before any book of it in {f.name}"
                    unchanged[venue] += 1
                    r = full
                else:
                    exp.remember(r)
                assert r["record_type"] == "orderbook"
                assert r["schema_version"] == 1
                assert r["venue"] == venue
                assert r["instrument_id"] == f"{venue}:{r['poll_key']}"
                assert r["poll_key"] in keys
                assert isinstance(r["ts_ms"], Decimal) and r["ts_ms"] == int(r["ts_ms"])
                assert happy["t0"] * 1000 - 1000 <= r["ts_ms"] <= happy["t1"] * 1000 + 1000
                k = (r["instrument_id"], int(r["ts_ms"]))
                assert k not in seen, f"duplicate {k} in {f.name}"
                seen.add(k)
                bids = [p for p, _ in r["bids"]]
                asks = [p for p, _ in r["asks"]]
                assert all(a > b for a, b in zip(bids, bids[1:])), f"bids not strictly descending: {bids}"
                assert all(a < b for a, b in zip(asks, asks[1:])), f"asks not strictly ascending: {asks}"
                assert bids and asks, "the sim always has both sides"
                assert r["best_bid"] == bids[0] and r["best_ask"] == asks[0]
                assert r["mid"] == (bids[0] + asks[0]) / 2
                assert r["spread"] == asks[0] - bids[0]
                if venue == POLY:
                    assert isinstance(r["ob_ts_ms"], Decimal) and r["ob_ts_ms"] > 0
                    assert isinstance(r["hash"], str) and len(r["hash"]) == 40
                else:
                    assert all(s < 10**6 for _, s in r["bids"] + r["asks"])
                counts[r["instrument_id"]] += 1
        # every active instrument about once per second (generous bounds)
        assert set(counts) == {f"{venue}:{k}" for k in keys}
        for iid, n in counts.items():
            assert duration - 3 <= n <= duration + 2, (iid, n, duration)

    # the frozen book (and many quiet ones) were recorded as changes: one book, then markers
    assert unchanged[LIM] >= 4 and unchanged[POLY] >= 1, unchanged

    # Limitless sizes are the raw integers / 10**6 (the frozen book never changed).
    raw = happy["raw"]
    frozen = [r for r in map(_dec_line, _lines(data, LIM)) if r.get("poll_key") == happy["frozen"]]
    assert frozen
    want_bids = sorted(((Decimal(str(x["price"])), Decimal(x["size"]) / 10**6) for x in raw["bids"]), reverse=True)
    want_asks = sorted((Decimal(str(x["price"])), Decimal(x["size"]) / 10**6) for x in raw["asks"])
    for r in frozen:
        assert [tuple(lv) for lv in r["bids"]] == want_bids
        assert [tuple(lv) for lv in r["asks"]] == want_asks

    # Polymarket is polled through POST /books batches, never GET /book.
    ep = happy["log"]["endpoints"]
    assert ep.get("clob.books", 0) >= 3 and ep.get("clob.book", 0) == 0
    n_books = happy["log"]["books_served"][POLY]
    assert n_books / ep["clob.books"] >= 5, "books per /books request"
    assert ep["clob.books"] <= 2 * duration + 2
    statuses = happy["log"]["status"]
    assert set(statuses[POLY]) == {"200"} and set(statuses[LIM]) == {"200"}, statuses


def _lines(data: Path, venue: str):
    for f in h.stream_files(data, venue, "orderbooks"):
        yield from iter_jsonl_lines(f)


STATS_FIELDS = (
    "active_instruments", "submitted", "ok", "failed", "http_4xx", "http_5xx", "http_429", "timeouts",
    "latency_p50_ms", "latency_p95_ms", "cooldown_remaining_s", "workers", "inflight_cap",
    "achieved_interval_p50_s", "achieved_interval_mean_s", "book_age_p99_s", "books_written",
    "snapshot_error", "ts_ms", "venue",
)


def test_poll_stats_fields_and_totals(happy):
    data = happy["data"]
    for venue in (POLY, LIM):
        st = h.stats(data, venue)
        assert len(st) >= 5, "stats every second over 6 s, plus the final one"
        for r in st:
            assert r["record_type"] == "poll_stats" and r["schema_version"] == 1 and r["venue"] == venue
            missing = [k for k in STATS_FIELDS if k not in r]
            assert not missing, missing
            assert r["active_instruments"] == len(_poll_keys(data, venue))
            assert r["ok"] + r["failed"] <= r["submitted"] + 100  # completions of earlier submits
            assert r["cooldown_remaining_s"] == 0
            assert r["workers"] >= 1 and r["inflight_cap"] >= 1
            assert r["snapshot_error"] is None
        # totals add up: the final record is written at close
        # every poll is one record: a full book when it changed (or opens a file), else unchanged
        assert sum(r["books_written"] for r in st) == len(h.books(data, venue))
        assert sum(r["books_unchanged"] for r in st) == len(h.records(data, venue, "orderbooks", "unchanged"))
        full = sum(r["books_written"] - r["books_unchanged"] for r in st)
        assert full == len(h.full_books(data, venue))
        assert sum(r["ok"] for r in st) == len(h.books(data, venue))
        changed = sum(r["books_changed"] for r in st)
        assert 0 < changed <= full
        assert sum(r["failed"] + r["http_429"] + r["http_5xx"] + r["timeouts"] for r in st) == 0
        busy = [r for r in st if r["ok"]]
        assert busy and all(r["latency_p50_ms"] is not None and r["latency_p95_ms"] >= r["latency_p50_ms"] for r in busy)
        ivs = [r["achieved_interval_p50_s"] for r in st if r["achieved_interval_p50_s"] is not None]
        assert ivs and all(0.7 <= v <= 1.5 for v in ivs), ivs
        late = st[len(st) // 2 :]
        assert all(r["book_age_p99_s"] is not None and r["book_age_p99_s"] < 2.5 for r in late), late


# =========================================================================== 2: backoff


def test_backoff_on_failing_instruments(tmp_path, monkeypatch):
    """Closed markets back off per instrument; they are not a venue problem (no venue cooldown,
    no AIMD cut), so every other instrument keeps its rate."""
    top3 = orjson.dumps([{"name": "top3", "min_minutes_to_expiry": 30, "max_markets": 3}]).decode()
    with run_sim("--markets", "10", "--seed", "12") as sim:
        settings = h.prepare(
            sim, tmp_path, monkeypatch, LIMITLESS__RULES=top3,
            POLYMARKET__INTERVAL_S="0.5", POLLER__BACKOFF_BASE_S="0.5", POLLER__BACKOFF_CAP_S="2",
            POLLER__FAILURE_COOLDOWN_MIN_REQUESTS="5",
        )
        keys = _poll_keys(tmp_path, POLY)
        bad = keys[0]  # its market (both outcome tokens) loses its book
        bad_market = sim.markets("update", venue=POLY, token_id=bad, has_book=True)["markets"][0]
        bad_keys = set(bad_market["tokens"]) & set(keys)
        good_keys = set(keys) - bad_keys
        assert bad_keys and good_keys
        slugs = _poll_keys(tmp_path, LIM)
        assert len(slugs) == 3
        lim_good, lim_bad = slugs[0], slugs[1:]
        poller = Poller(settings)
        with h.poller_thread(poller):
            time.sleep(1.0)
            t_fail = time.time()
            sim.markets("update", venue=POLY, token_id=bad, has_book=False)
            for slug in lim_bad:  # resolved: their order books answer 404 from now on
                sim.markets("close", venue=LIM, slug=slug)
            time.sleep(4.3)  # Polymarket failures at ~0, 0.5, 1.5, 3.5 s (delays 0.5, 1, 2, cap 2)
            t_back = time.time()
            sim.markets("update", venue=POLY, token_id=bad, has_book=True)
            time.sleep(2.4)  # next retry (~5.5 s) succeeds, then back on the 0.5 s grid
        t_end = time.time()
        log = h.sim_times(sim, venue=LIM, endpoint="limitless.orderbook")

    errs = h.by_instrument(h.errors(tmp_path, POLY))
    assert set(errs) == {f"{POLY}:{k}" for k in bad_keys}, "only the closed market's tokens fail"
    for iid, es in errs.items():
        assert all(e["record_type"] == "poll_error" and e["error_type"] == "not_found" for e in es)
        assert all(e["market_id"] == bad_market["condition_id"] and e["slug"] == bad_market["slug"] for e in es)
        seq = [e["consecutive_failures"] for e in es]
        assert seq == list(range(1, len(seq) + 1)), seq  # sampled every failure (ERROR_SAMPLE_EVERY=1)
        assert 3 <= len(seq) <= 5, seq
        ts = [e["ts_ms"] / 1000 for e in es]
        assert ts[0] >= t_fail - 0.1 and ts[-1] <= t_back + 0.6
        spacing = [b - a for a, b in zip(ts, ts[1:])]
        # the retry spacing follows the backoff: >= 0.5, 1, 2 s (minus a little scheduling slack)
        for k, d in enumerate(spacing, start=1):
            want = min(2.0, 0.5 * 2 ** (k - 1))
            assert want - 0.15 <= d <= want + 1.0, (k, spacing)
        assert spacing[1] > spacing[0] + 0.3, spacing  # it really grows

    recs = h.by_instrument(h.books(tmp_path, POLY))
    fail_ms, back_ms = t_fail * 1000, t_back * 1000
    for k in good_keys:  # the others keep their 0.5 s rate throughout
        n = len(_window(recs[f"{POLY}:{k}"], fail_ms, back_ms))
        assert n >= (back_ms - fail_ms) / 500 - 2, (k, n)
    for k in bad_keys:
        iid = f"{POLY}:{k}"
        during = _window(recs[iid], fail_ms + 600, back_ms)
        assert during == [], "no book while the market has none"
        after = _window(recs[iid], back_ms, t_end * 1000 + 1)
        assert len(after) >= 2, "resumes after recovery, backoff reset to the normal interval"
        if len(after) >= 3:
            steps = [(b["ts_ms"] - a["ts_ms"]) / 1000 for a, b in zip(after, after[1:])]
            assert max(steps) < 1.2, steps
        gap = [g for g in h.gaps(tmp_path, POLY) if g["instrument_id"] == iid]
        assert len(gap) == 1, gap
        g = gap[0]
        assert g["reason"] == "not_found" and g["failures"] == len(errs[iid])
        before = [r for r in recs[iid] if r["ts_ms"] < fail_ms + 600]
        assert g["from_ts_ms"] == before[-1]["ts_ms"] and g["to_ts_ms"] == after[0]["ts_ms"]
    st = h.stats(tmp_path, POLY)
    assert sum(r["failed"] for r in st) == sum(len(v) for v in errs.values())
    assert sum(r["gaps"] for r in st) == len(bad_keys)
    # a few closed markets are no reason to throttle the venue: the in-flight cap stays put
    assert {r["inflight_cap"] for r in st} == {settings.polymarket.inflight_start}, [r["inflight_cap"] for r in st]

    # Limitless: the request log shows each closed slug retried with growing spacing
    for slug in lim_bad:
        ts = [e["t"] for e in log if f"/markets/{slug}/" in e["path"] and e["t"] >= t_fail]
        assert all(e["status"] == 404 for e in log if f"/markets/{slug}/" in e["path"] and e["t"] >= t_fail)
        assert 4 <= len(ts) <= 7, (slug, ts)
        spacing = [b - a for a, b in zip(ts, ts[1:])]
        # backoff delays max(1 s interval, 0.5 * 2**(k-1)) capped at 2: 1, 1, 2, 2, ...
        assert all(d >= 0.85 for d in spacing), spacing
        assert all(d >= 1.8 for d in spacing[2:]), spacing
    good = [e for e in log if f"/markets/{lim_good}/" in e["path"] and t_fail <= e["t"] < t_back]
    assert len(good) >= (t_back - t_fail) - 1.5 and all(e["status"] == 200 for e in good), len(good)
    lim_st = h.stats(tmp_path, LIM)
    assert all(r["cooldown_remaining_s"] == 0 for r in lim_st), "404s must not cool the venue down"
    assert not [g for g in h.gaps(tmp_path, LIM) if g["instrument_id"] is None]
    lim_errs = h.errors(tmp_path, LIM)
    assert lim_errs and {e["error_type"] for e in lim_errs} == {"not_found"}
    assert {e["http_status"] for e in lim_errs} == {404}


# =========================================================================== 3: cooldown


def test_cooldown_honours_retry_after(tmp_path, monkeypatch):
    with run_sim("--markets", "10", "--seed", "13") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch)
        poller = Poller(settings)
        with h.poller_thread(poller):
            time.sleep(1.0)
            sim.control(venue=POLY, throttle_for_s=1.0, retry_after_s=3)
            time.sleep(4.6)
        log = h.sim_times(sim)

    poly = [e for e in log if e["venue"] == POLY]
    first = next(e for e in poly if e["status"] == 429)
    t429 = first["t"]
    # Nothing reached Polymarket during Retry-After (requests already in flight excepted).
    quiet = [e for e in poly if t429 + 0.25 <= e["t"] < t429 + 3.0]
    assert quiet == [], quiet
    resumed = [e for e in poly if e["t"] >= t429 + 3.0]
    assert resumed and resumed[0]["t"] < t429 + 4.5 and resumed[0]["status"] == 200
    assert sum(1 for e in poly if e["status"] == 429) <= 2  # the in-flight cap is 4; usually one
    # Limitless kept its rate (2 books at 1 Hz) meanwhile.
    lim = [e for e in log if e["venue"] == LIM and t429 <= e["t"] < t429 + 3.0]
    assert len(lim) >= 4 and all(e["status"] == 200 for e in lim), lim

    gaps = h.gaps(tmp_path, POLY)
    cd = [g for g in gaps if g["reason"] == "cooldown:rate_limited"]
    assert len(cd) == 1, gaps
    g = cd[0]
    assert g["instrument_id"] is None and g["venue"] == POLY
    assert abs(g["from_ts_ms"] / 1000 - t429) < 0.5
    assert 2.9 <= (g["to_ts_ms"] - g["from_ts_ms"]) / 1000 <= 4.5
    st = h.stats(tmp_path, POLY)
    assert sum(r["http_429"] for r in st) >= 1
    cooling = [r for r in st if r["cooldown_remaining_s"] > 0]
    assert cooling and all(r["cooldown_reason"] == "rate_limited" for r in cooling)
    assert max(r["cooldown_remaining_s"] for r in cooling) <= 3.0
    assert not h.gaps(tmp_path, LIM) and sum(r["http_429"] for r in h.stats(tmp_path, LIM)) == 0


def test_no_request_leaves_inside_a_retry_after_window_across_processes(tmp_path, monkeypatch):
    """Regression (issue 12 item 3). After a 429 with Retry-After: 5 a Limitless request still
    reached the venue inside those 5 s: the venue counts requests per caller, yet only the process
    that drew the 429 paused (discovery paged on while the poller cooled, or the poller polled on
    while discovery waited). Now the hold travels through the shared spacing file: whoever draws
    the 429, nothing of the host reaches the venue before Retry-After is over."""
    extra = dict(venues=LIM, LIMITLESS__RULES='[{"name": "top3", "min_minutes_to_expiry": 30, "max_markets": 3}]',
                 LIMITLESS__MIN_SPACING_S="0.35")
    with run_sim("--markets", "8", "--seed", "45") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch, **extra)
        child = h.child_env(h.sim_env(sim, tmp_path, **extra))
        with h.poller_thread(Poller(settings)):
            time.sleep(1.5)
            for _ in range(2):  # one 429 for whichever process asks next, then a long Retry-After
                sim.control(venue=LIM, throttle_for_s=0.4, retry_after_s=5)
                # Discovery in another process, as under Prefect, throughout the window.
                subprocess.run([sys.executable, "-m", "collector", "discover", "--once"], env=child,
                               cwd=h.REPO, capture_output=True, text=True, timeout=120)
                time.sleep(5.5)
        log = h.sim_times(sim, venue=LIM)
    first429 = [e for e in log if e["status"] == 429]
    assert first429, "the simulator never throttled"
    windows = []
    for e in first429:
        if not windows or e["t"] >= windows[-1] + 5.0:
            windows.append(e["t"])
    assert len(windows) == 2, windows
    for t429 in windows:
        # Requests sent before the 429 came back may still arrive (0.3 s); nothing after.
        inside = [(round(x["t"] - t429, 3), x["endpoint"], x["status"]) for x in log if t429 + 0.3 <= x["t"] < t429 + 4.95]
        assert inside == [], [(round(x["t"] - t429, 3), x["endpoint"], x["status"]) for x in log if t429 - 1 <= x["t"] < t429 + 6]
        after = [x for x in log if t429 + 4.95 <= x["t"] < t429 + 6.5]
        assert after, "nothing resumed after the hold"
    assert sum(r["ok"] for r in h.stats(tmp_path, LIM)) > 0


def test_a_job_handed_over_before_a_429_is_held_at_send_time(tmp_path, monkeypatch):
    """The send-time check: a fetch thread that takes a job after another thread drew a 429 does
    not send it; the instruments keep their turn and nothing counts as a failure."""
    from collector.config.settings import load_settings
    from collector.model.errors import RateLimited
    from collector.model.records import Instrument

    sent: list[str] = []

    class Fake:
        batch_size = 1
        shared_spacing = None

        def fetch_books(self, keys):
            sent.append(keys[0])
            raise RateLimited("429", retry_after_s=5.0, status=429, venue=LIM)

        def normalize(self, *a):  # pragma: no cover - nothing succeeds here
            raise AssertionError

        def close(self):
            pass

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLLECTOR_VENUES", LIM)
    poller = Poller(load_settings(), clients={LIM: Fake()})
    lane = poller.lanes[LIM]
    insts = [Instrument(venue=LIM, instrument_id=f"{LIM}:{k}", market_id=k, slug=k, poll_key=k) for k in ("a", "b")]
    now = time.monotonic()
    lane.set_instruments(insts, 0, now)
    for k in ("a", "b"):  # both handed to fetch threads while the venue looked healthy
        lane.state[k].inflight = True
    lane.inflight = 2
    poller._fetch(lane, ["a"])
    poller._fetch(lane, ["b"])
    assert sent == ["a"]  # "b" never left
    done_a, done_b = poller._done.get_nowait(), poller._done.get_nowait()
    assert not done_a.held and isinstance(done_a.error, RateLimited)
    assert done_b.held and done_b.error is None and done_b.result is None
    lane.complete(done_a, time.monotonic())
    lane.complete(done_b, time.monotonic())
    assert lane.inflight == 0 and not lane.state["b"].inflight and lane.state["b"].failures == 0
    assert lane.c.held_back == 1 and lane.c.polls_failed == 0
    assert lane.cooldown.remaining(time.monotonic()) > 4.5
    poller.close()


# =========================================================================== 4: venue down


def test_one_venue_down_other_keeps_rate(tmp_path, monkeypatch):
    with run_sim("--markets", "10", "--seed", "14") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch)
        keys = _poll_keys(tmp_path, POLY)
        poller = Poller(settings)
        with h.poller_thread(poller):
            time.sleep(1.0)
            t_down = time.time()
            sim.control(venue=POLY, down=True)
            time.sleep(3.0)
            t_up = time.time()
            sim.control(venue=POLY, down=False)
            time.sleep(2.5)
        t_end = time.time()
        log = h.sim_times(sim)

    lim = [e for e in log if e["venue"] == LIM and t_down <= e["t"] < t_up]
    assert len(lim) >= 4 and all(e["status"] == 200 for e in lim), "Limitless kept its rate"
    poly_down = [e for e in log if e["venue"] == POLY and t_down + 0.05 <= e["t"] < t_up - 0.05]
    assert poly_down and all(e["status"] == 503 for e in poly_down)

    lim_books = h.by_instrument(h.books(tmp_path, LIM))
    for iid, recs in lim_books.items():
        assert len(_window(recs, t_down * 1000, t_up * 1000)) >= 2, iid

    recs = h.by_instrument(h.books(tmp_path, POLY))
    gaps = {g["instrument_id"]: g for g in h.gaps(tmp_path, POLY)}
    assert set(gaps) == {f"{POLY}:{k}" for k in keys}, "one gap per instrument"
    for k in keys:
        iid = f"{POLY}:{k}"
        g = gaps[iid]
        assert g["reason"] == "server_error" and g["failures"] >= 2
        before = [r for r in recs[iid] if r["ts_ms"] <= g["from_ts_ms"]]
        after = _window(recs[iid], t_up * 1000, t_end * 1000 + 1)
        assert before and before[-1]["ts_ms"] == g["from_ts_ms"]
        assert after and after[0]["ts_ms"] == g["to_ts_ms"] and g["ts_ms"] == g["to_ts_ms"]
        assert g["from_ts_ms"] <= t_down * 1000 + 100 and g["to_ts_ms"] >= t_up * 1000
        assert len(after) >= 1
    st = h.stats(tmp_path, POLY)
    assert sum(r["http_5xx"] for r in st) >= 2
    assert sum(r["books_written"] for r in st) == len(h.books(tmp_path, POLY))


# =========================================================================== 5: snapshot reload


def test_snapshot_reload_shrink_corrupt_restore(tmp_path, monkeypatch):
    with run_sim("--markets", "10", "--seed", "15") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch, venues=POLY)
        path = snapshot_path(tmp_path, POLY)
        full = read_snapshot(path)
        assert len(full.instruments) >= 6
        kept = full.instruments[:3]
        small = full.model_copy(update={"instruments": kept, "asof_ms": full.asof_ms + 1})
        poller = Poller(settings)
        with h.poller_thread(poller):
            time.sleep(1.5)
            t_small = time.time()
            write_snapshot(path, small)
            time.sleep(1.8)
            t_bad = time.time()
            path.write_bytes(b'{"schema_version": 1, "venue": "polymarket", "instr')  # torn
            time.sleep(1.5)
            t_good = time.time()
            write_snapshot(path, full.model_copy(update={"asof_ms": full.asof_ms + 2}))
            time.sleep(1.5)
        t_end = time.time()

    recs = h.by_instrument(h.books(tmp_path, POLY))
    kept_ids = {i.instrument_id for i in kept}
    dropped_ids = {i.instrument_id for i in full.instruments} - kept_ids
    for iid in dropped_ids:
        assert recs[iid], iid
        assert _window(recs[iid], t_small * 1000 + 700, t_good * 1000) == [], "dropped: not polled"
        assert _window(recs[iid], t_good * 1000, t_end * 1000 + 1), "picked up again"
    for iid in kept_ids:  # the last good set keeps being polled through the corrupt file
        assert len(_window(recs[iid], t_bad * 1000, t_good * 1000)) >= 1, iid
        assert len(_window(recs[iid], t_small * 1000, t_end * 1000 + 1)) >= 4, iid
    st = h.stats(tmp_path, POLY)
    bad = _window(st, t_bad * 1000 + 600, t_good * 1000)
    assert bad and all(r["snapshot_error"] and r["active_instruments"] == len(kept) for r in bad), bad
    assert any(r["active_instruments"] == len(kept) and r["snapshot_error"] is None
               for r in _window(st, t_small * 1000 + 300, t_bad * 1000))
    assert st[-1]["snapshot_error"] is None and st[-1]["active_instruments"] == len(full.instruments)


# =========================================================================== 6: expiry


def test_expiry_pruning(tmp_path, monkeypatch):
    with run_sim("--markets", "10", "--seed", "16") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch, venues=POLY)
        path = snapshot_path(tmp_path, POLY)
        full = read_snapshot(path)
        now = int(time.time() * 1000)
        a, c, *rest = full.instruments
        soon = a.model_copy(update={"expires_at_ms": now + 1500})  # expires during the run
        past = c.model_copy(update={"expires_at_ms": now - 30_000})  # already expired
        # asof before both expiries: neither is vouched for past its end -> pruned
        write_snapshot(path, full.model_copy(update={"asof_ms": now - 60_000, "instruments": [soon, past, *rest]}))
        poller = Poller(settings)
        with h.poller_thread(poller):
            time.sleep(3.0)
            t_re = time.time()
            # asof after both expiries: discovery saw them still open after their end -> kept
            later = full.model_copy(update={"asof_ms": int(t_re * 1000), "instruments": [soon, past, *rest]})
            write_snapshot(path, later)
            time.sleep(2.0)
        t_end = time.time()

    recs = h.by_instrument(h.books(tmp_path, POLY))
    soon_recs = recs[soon.instrument_id]
    exp_ms = soon.expires_at_ms
    assert _window(soon_recs, 0, exp_ms), "polled while not yet expired"
    # pruned within a snapshot check (0.25 s) of its expiry; a poll already in flight is discarded
    assert _window(soon_recs, exp_ms + 600, t_re * 1000) == [], "dropped after expiry, without discovery"
    assert _window(recs.get(past.instrument_id, []), 0, t_re * 1000) == [], "expired at load: never polled"
    for inst in (soon, past):  # a snapshot written after the expiry keeps them
        assert len(_window(recs[inst.instrument_id], t_re * 1000, t_end * 1000 + 1)) >= 1, inst.instrument_id
    for inst in rest:
        assert len(recs[inst.instrument_id]) >= 4
    st = h.stats(tmp_path, POLY)
    assert sum(r["expired_dropped"] for r in st) == 2
    assert st[-1]["active_instruments"] == len(full.instruments)


# =========================================================================== 8 + 9: signals


def _check_files_complete(data: Path) -> None:
    files = h.all_data_files(data)
    assert files
    for f in files:
        b = f.read_bytes()
        assert b.endswith(b"\n"), f"{f} does not end with a newline"
        for line in b.split(b"\n")[:-1]:
            orjson.loads(line)


def _totals_match(data: Path, venue: str) -> int:
    st = h.stats(data, venue)
    n = len(h.books(data, venue))
    assert n > 0 and sum(r["books_written"] for r in st) == n, (venue, n)
    assert sum(r["books_written"] - r["books_unchanged"] for r in st) == len(h.full_books(data, venue))
    return n


def test_sigterm_flushes_everything(tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "18") as sim:
        h.prepare(sim, tmp_path, monkeypatch)
        env = h.sim_env(sim, tmp_path)
        with h.poll_process(env, tmp_path / "poll.log") as proc:
            assert h.wait_for(lambda: len(h.stream_files(tmp_path, POLY, "orderbooks")) > 0, 15)
            time.sleep(2.5)
            rc, took = h.sigterm(proc, timeout=15)
    assert rc == 0, (tmp_path / "poll.log").read_text()[-2000:]
    assert took < 10, took
    _check_files_complete(tmp_path)
    for venue in (POLY, LIM):
        _totals_match(tmp_path, venue)


def test_kill9_tears_at_most_one_line_and_restart_uses_new_files(tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "19") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch)
        env = h.sim_env(sim, tmp_path)
        proc = h.start_poll_process(env, tmp_path / "poll.log")
        try:
            assert h.wait_for(lambda: len(h.stream_files(tmp_path, POLY, "orderbooks")) > 0, 15)
            time.sleep(2.0)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        old = {f: f.read_bytes() for f in h.all_data_files(tmp_path)}
        assert any("orderbooks" in str(f) for f in old)
        n_old = 0
        for f, b in old.items():
            complete = b.count(b"\n")
            torn = b[b.rfind(b"\n") + 1 :]  # at most the last line can be torn
            lines = list(iter_jsonl_lines(f))
            assert len(lines) == complete, f"{f}: the reader skips exactly the torn tail {torn[:60]!r}"
            for line in lines:
                orjson.loads(line)
            if torn:
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(torn)
            if "orderbooks" in str(f):
                n_old += len(lines)
        assert n_old > 0
        # the reader really skips a torn last line
        probe = tmp_path / "probe.jsonl"
        sample = next(b for f, b in old.items() if "orderbooks" in str(f) and b.count(b"\n") >= 2)
        probe.write_bytes(sample + b'{"record_type":"orderbook","venue":"poly')
        assert len(list(iter_jsonl_lines(probe))) == sample.count(b"\n")
        probe.unlink()

        # restart with the same data dir: new files only, the old ones untouched
        Poller(settings).run(duration_s=2.0)
    new = [f for f in h.all_data_files(tmp_path) if f not in old]
    for venue in (POLY, LIM):
        assert any(f"/{venue}/orderbooks/" in str(f) for f in new), venue
    assert not {f.name for f in new} & {f.name for f in old}, "a file name was reused"
    for f, b in old.items():
        assert f.read_bytes() == b, f"{f} was modified by the restarted poller"
    for f in new:
        assert f.read_bytes().endswith(b"\n")


# =========================================================================== 10 + 11: faults


def test_malformed_html_5xx_faults(tmp_path, monkeypatch):
    with run_sim("--markets", "12", "--seed", "20") as sim:
        # one book per request, twice a second: ~20 requests/s, so every fault kind shows up
        settings = h.prepare(sim, tmp_path, monkeypatch, POLYMARKET__BOOKS_BATCH_SIZE="1",
                            POLYMARKET__INTERVAL_S="0.5")
        poison, *keys = _poll_keys(tmp_path, POLY)
        # A stand-in for a serializer bug: one instrument's records cannot be written as JSON.
        client = make_client(POLY, settings)
        real_normalize = client.normalize

        def normalize(inst, raw, ts_ms, latency_ms):
            rec = real_normalize(inst, raw, ts_ms, latency_ms)
            if inst.poll_key == poison:
                rec.extra["poison"] = object()
            return rec

        client.normalize = normalize
        poller = Poller(settings, clients={POLY: client})
        with h.poller_thread(poller):
            time.sleep(1.0)
            t_on = time.time()
            sim.control(error_rate=0.06, html_rate=0.06, malformed_rate=0.08)  # 20 %, both venues
            time.sleep(5.0)
            t_off = time.time()
            sim.control(reset=True)
            time.sleep(0.5)
        log = h.sim_times(sim)

    faults = Counter(e["fault"] for e in log if t_on <= e["t"] < t_off)
    assert faults["error"] and faults["malformed"] and faults["html"], faults
    errs = h.errors(tmp_path, POLY) + h.errors(tmp_path, LIM)
    poisoned = [e for e in errs if e["instrument_id"] == f"{POLY}:{poison}"]
    assert poisoned and any("TypeError" in e["message"] for e in poisoned), "a bad record costs one book"
    errs = [e for e in errs if e not in poisoned]
    kinds = Counter(e["error_type"] for e in errs)
    assert kinds["bad_payload"] >= 1 and kinds["server_error"] >= 1, kinds
    assert set(kinds) <= {"bad_payload", "server_error", "client_error"}, kinds
    for e in errs:
        assert len(e["message"]) <= 300 and e["instrument_id"] and e["consecutive_failures"] >= 1
        if e["error_type"] == "server_error":
            assert e["http_status"] >= 500
    recs = h.by_instrument(h.books(tmp_path, POLY))
    assert f"{POLY}:{poison}" not in recs
    for k in keys:  # books kept flowing for every instrument during the faults
        assert len(_window(recs[f"{POLY}:{k}"], t_on * 1000, t_off * 1000)) >= 1, k
    assert sum(len(_window(r, t_on * 1000, t_off * 1000)) for r in recs.values()) >= 0.5 * 10 * len(keys)
    st = h.stats(tmp_path, POLY)
    assert sum(r["http_5xx"] for r in st) >= 1 and sum(r["failed"] for r in st) >= 1
    assert st[-1]["ts_ms"] >= t_off * 1000  # the loop lived to the end and wrote its final stats
    for venue in (POLY, LIM):
        _totals_match(tmp_path, venue)


def test_timeouts_counted_and_shutdown_does_not_wait_for_blocked_fetches(tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "21") as sim:
        h.prepare(sim, tmp_path, monkeypatch, POLYMARKET__BOOKS_BATCH_SIZE="2",
                 POLYMARKET__READ_TIMEOUT_S="0.5", LIMITLESS__READ_TIMEOUT_S="30")
        env = h.sim_env(sim, tmp_path, POLYMARKET__BOOKS_BATCH_SIZE="2",
                        POLYMARKET__READ_TIMEOUT_S="0.5", LIMITLESS__READ_TIMEOUT_S="30")
        sim.control(venue=POLY, timeout_rate=0.3)
        sim.control(venue=LIM, timeout_rate=1.0)  # every Limitless fetch hangs for 30 s
        with h.poll_process(env, tmp_path / "poll.log") as proc:
            assert h.wait_for(lambda: len(h.stream_files(tmp_path, POLY, "orderbooks")) > 0, 15)
            time.sleep(3.5)
            rc, took = h.sigterm(proc, timeout=40)
    assert rc == 0, (tmp_path / "poll.log").read_text()[-2000:]
    assert took < 5, f"exit took {took:.1f}s: shutdown waited for a blocked fetch"
    _check_files_complete(tmp_path)
    st = h.stats(tmp_path, POLY)
    assert sum(r["timeouts"] for r in st) >= 2
    assert any(e["error_type"] == "timeout" for e in h.errors(tmp_path, POLY))
    assert _totals_match(tmp_path, POLY) >= 10  # books kept flowing
    assert h.books(tmp_path, LIM) == []


# =========================================================================== 12: rotation


def test_rotation_at_forced_clock_boundaries(tmp_path, monkeypatch):
    import calendar

    midnight = calendar.timegm((2031, 3, 1, 0, 0, 0))  # 2031-02-28 -> 2031-03-01 UTC
    start_fake = midnight - 10 * 60 - 30  # 23:49:30: crosses 23:50 then midnight
    speed = 300.0
    real0 = time.time()

    def clock() -> float:
        return start_fake + (time.time() - real0) * speed

    with run_sim("--markets", "8", "--seed", "22") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch)
        real0 = time.time()
        Poller(settings, clock=clock).run(duration_s=2.6)  # fake 23:49:30 -> 00:02:30
    for venue in (POLY, LIM):
        files = h.stream_files(tmp_path, venue, "orderbooks")
        dirs = {f.parent.name for f in files}
        assert dirs == {"date=2031-02-28", "date=2031-03-01"}, dirs
        periods = {f.name.split(".")[1] for f in files}
        assert {"20310228T2350Z", "20310301T0000Z"} <= periods, periods
        for f in files:
            assert f.read_bytes().endswith(b"\n")
            day = f.name.split(".")[1][:8]
            assert f.parent.name == f"date={day[:4]}-{day[4:6]}-{day[6:]}"
        _totals_match(tmp_path, venue)
        st_files = h.stream_files(tmp_path, venue, "poll_stats")
        assert {f.parent.name for f in st_files} == {"date=2031-02-28", "date=2031-03-01"}
