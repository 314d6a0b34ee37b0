"""Kalshi end to end against the simulator subprocess (real sockets): discovery asks per series
only, the poller records well-formed YES books in batches, and ``collector run --sim`` records
all three venues with the default venue list."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from collector.config.settings import load_settings
from collector.discovery.run import run_discovery
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from tests import helpers as h

KAL = "kalshi"
RULE_6 = orjson.dumps([{"name": "btcd", "event_slug_prefixes": ["KXBTCD"], "max_markets": 6}]).decode()


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "120", "--seed", "5") as s:
        yield s


@pytest.fixture
def unlimited(sim):
    sim.control(venue=KAL, rate_limit=False)
    yield sim
    sim.control(venue=KAL, rate_limit=True)


def test_sim_shapes_and_quirks(unlimited):
    sim = unlimited
    with httpx.Client(timeout=5, trust_env=False) as c:
        page = c.get(sim.kalshi_url + "/events", params={"status": "open", "with_nested_markets": "true",
                                                        "limit": 1000}).json()
        assert page["cursor"] is None  # unscoped: the end is null; scoped below: ""
        statuses = {m["status"] for ev in page["events"] for m in ev["markets"]}
        assert "active" in statuses and "open" not in statuses  # the field vocabulary, not the filter's
        assert not any("mve_collection_ticker" in m for ev in page["events"] for m in ev["markets"])
        combos = c.get(sim.kalshi_url + "/events/multivariate", params={"status": "open",
                                                                      "with_nested_markets": "true"}).json()
        assert combos["events"] and all(m["mve_selected_legs"] for ev in combos["events"] for m in ev["markets"])
        scoped = c.get(sim.kalshi_url + "/events", params={"status": "open", "series_ticker": "KXETHD"}).json()
        assert scoped["cursor"] == "" and {e["series_ticker"] for e in scoped["events"]} == {"KXETHD"}
        assert "markets" not in scoped["events"][0]
        t = sim.live_tickers("KXBTCD")[:2]
        body = c.get(sim.kalshi_url + "/markets/orderbooks", params=[("tickers", x) for x in t]).json()
        for ob in body["orderbooks"]:
            fp = ob["orderbook_fp"]
            for side in ("yes_dollars", "no_dollars"):
                prices = [Decimal(p) for p, _ in fp[side]]
                assert prices == sorted(prices)  # ascending: best bid last
                assert all(len(p.split(".")[1]) == 4 and len(s.split(".")[1]) == 2 for p, s in fp[side])
        one = c.get(sim.kalshi_url + "/markets/orderbooks", params={"tickers": ",".join(t)}).json()
        assert len(one["orderbooks"]) == 1  # comma-joined: one book back, not two (as on the venue)
        r = c.get(sim.kalshi_url + "/markets/orderbooks", params=[("tickers", f"T{i}") for i in range(101)])
        assert r.status_code == 400 and r.json()["error"]["code"]
    sim.control(venue=KAL, rate_limit=True)
    with httpx.Client(timeout=5, trust_env=False) as c:
        got = [c.get(sim.kalshi_url + "/markets/orderbooks", params={"tickers": t[0]}) for _ in range(8)]
    limited = [r for r in got if r.status_code == 429]
    assert limited and all("retry-after" not in r.headers for r in limited)  # the venue sends none
    assert limited[0].json()["error"]["code"] == "too_many_requests"


def test_discovery_asks_only_for_the_configured_series(sim, tmp_path, monkeypatch):
    h.apply_env(monkeypatch, {**sim.env, "COLLECTOR_DATA_DIR": str(tmp_path), "COLLECTOR_VENUES": KAL})
    settings = load_settings()
    sim.reset_requests()
    (rep,) = run_discovery(settings)
    assert rep.ok and rep.instruments > 0, rep
    log = h.sim_times(sim, venue=KAL)
    assert [e["endpoint"] for e in log] == ["kalshi.events"] * len(settings.kalshi.series)
    asked = [parse_qs(urlsplit(e["path"]).query)["series_ticker"][0] for e in log]
    assert asked == settings.kalshi.series
    snap = h.records(tmp_path, KAL, "markets")
    assert snap and all(r["instrument_id"].startswith("kalshi:KX") for r in snap)
    assert {r["instrument_id"].split(":")[1].split("-")[0] for r in snap} <= {"KXBTCD", "KXETHD"}


def test_poller_records_books_in_batches(tmp_path, monkeypatch):
    # Books that never change: what was recorded must equal what the venue serves afterwards.
    with run_sim("--markets", "40", "--seed", "9", "--change-prob", "0") as sim:
        h.apply_env(monkeypatch, {**sim.env, "COLLECTOR_DATA_DIR": str(tmp_path), "COLLECTOR_VENUES": KAL,
                                  "COLLECTOR_KALSHI__RULES": RULE_6, "COLLECTOR_POLLER__STATS_INTERVAL_S": "1",
                                  "COLLECTOR_TRADES__KALSHI__ENABLED": "false"})  # only book requests counted
        settings = load_settings()
        (rep,) = run_discovery(settings)
        assert rep.ok and rep.instruments == 6, rep
        time.sleep(0.4)
        sim.reset_requests()
        with h.poller_thread(Poller(settings)):
            time.sleep(5)
        report = sim.requests(venue=KAL, endpoint="kalshi.orderbooks", limit=5000)
        served = {}
        sim.control(venue=KAL, rate_limit=False)  # the checks below are not the poller's budget
        with httpx.Client(timeout=5, trust_env=False) as c:
            for iid in {b["instrument_id"] for b in h.books(tmp_path, KAL)}:
                ticker = iid.split(":", 1)[1]
                served[iid] = orjson.loads(c.get(sim.kalshi_url + f"/markets/{ticker}/orderbook").content)["orderbook_fp"]
    books = h.books(tmp_path, KAL)
    per = h.by_instrument(books)
    assert len(per) == 6 and all(len(v) >= 3 for v in per.values()), {k: len(v) for k, v in per.items()}
    for b in books:
        fp = served[b["instrument_id"]]
        # YES bids as served, best first; YES asks = 1 - NO bids, sizes kept; exact numbers
        assert [[Decimal(str(p)), Decimal(str(q))] for p, q in b["bids"]] == \
            [[Decimal(p), Decimal(q)] for p, q in reversed(fp["yes_dollars"])]
        assert [[Decimal(str(p)), Decimal(str(q))] for p, q in b["asks"]] == \
            [[1 - Decimal(p), Decimal(q)] for p, q in reversed(fp["no_dollars"])]
        assert "ob_ts_ms" not in b and b["tick_size"] == 0.01 and b["outcome"] == "YES"
    requests = report["counts"][KAL]
    assert report["books_served"][KAL] >= 5.5 * requests  # one request carries (almost) every book
    assert requests <= 5 * 2.2  # inside the anonymous budget (2 requests/s) with slack
    assert report["status"][KAL] == {"200": requests}
    assert h.full_books(tmp_path, KAL) and len(h.full_books(tmp_path, KAL)) == 6  # unchanged: markers only
    assert h.stats(tmp_path, KAL)[-1]["venue"] == KAL


def test_collector_run_sim_records_three_venues(tmp_path):
    """``collector run --sim`` with the default venue list: Kalshi is part of it."""
    env = h.child_env({"COLLECTOR_DATA_DIR": str(tmp_path)})
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "collector", "run", "--sim"], env=env, cwd=h.REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        ok = h.wait_for(lambda: all(h.stream_files(tmp_path, v, "orderbooks") and h.books(tmp_path, v)
                                    for v in ("polymarket", "limitless", KAL)), 60, step=0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        log.close()
    out = (tmp_path / "run.log").read_text(errors="replace")
    assert ok, out[-3000:]
    assert rc == 0, out[-3000:]
    assert "discovery kalshi: ok=True" in out
    assert len({b["instrument_id"] for b in h.books(tmp_path, KAL)}) > 5


def test_sim_enables_every_venue_unless_venues_were_chosen(monkeypatch, tmp_path):
    from collector.sim.testing import all_venues_env

    monkeypatch.delenv("COLLECTOR_VENUES", raising=False)
    assert all_venues_env(load_settings()) == {"COLLECTOR_VENUES": "polymarket,limitless,kalshi"}
    monkeypatch.setenv("COLLECTOR_VENUES", "polymarket")
    assert all_venues_env(load_settings()) == {}
    monkeypatch.delenv("COLLECTOR_VENUES")
    cfg = tmp_path / "c.toml"
    cfg.write_text('venues = ["limitless"]\n')
    monkeypatch.setenv("COLLECTOR_CONFIG", str(cfg))
    assert all_venues_env(load_settings()) == {}


def test_readers_coverage_and_compaction_take_kalshi_as_it_is(tmp_path, monkeypatch):
    """No venue-specific code outside the venue's module: the generic readers, the coverage
    view and daily compaction handle what the Kalshi client recorded."""
    from collector import read
    from collector.ops.coverage import coverage
    from collector.store.compact import compact_day

    with run_sim("--markets", "40", "--seed", "11") as sim:
        h.apply_env(monkeypatch, {**sim.env, "COLLECTOR_DATA_DIR": str(tmp_path), "COLLECTOR_VENUES": KAL,
                                  "COLLECTOR_KALSHI__RULES": RULE_6, "COLLECTOR_WRITER__ROTATE_MINUTES": "1"})
        settings = load_settings()
        (rep,) = run_discovery(settings)
        assert rep.ok and rep.instruments == 6, rep
        time.sleep(0.4)
        with h.poller_thread(Poller(settings)):
            time.sleep(4)
    on_disk = h.books(tmp_path, KAL)
    books = read.load_books(tmp_path, KAL)
    assert len(books) == len(on_disk) and {b["instrument_id"] for b in books} == {b["instrument_id"] for b in on_disk}
    cat = read.market_catalog(tmp_path, KAL)
    assert len(cat) == 6 and all(e["venue"] == KAL and e["poll_key"].startswith("KXBTCD-") for e in cat.values())
    assert all(e.get("event_slug", "").startswith("KXBTCD-") and e.get("series_slug") == "KXBTCD" for e in cat.values())
    last = books[-1]
    at = read.book_at(tmp_path, KAL, last["instrument_id"], last["ts_ms"])
    assert at is not None and at["bids"] == last["bids"] and at["asks"] == last["asks"]
    day = time.strftime("%Y-%m-%d", time.gmtime(last["ts_ms"] / 1000))
    cov = coverage(tmp_path, KAL, day, 2.0, now_ms=last["ts_ms"] + 1)
    assert cov["summary"]["venue"] == KAL and cov["summary"]["instruments"] == 6
    now = last["ts_ms"] + 3 * 86_400_000  # the day is long over
    res = compact_day(tmp_path, KAL, day, now_ms=now, grace_s=0)
    assert res.ok, res
    again = read.load_books(tmp_path, KAL)  # from Parquet now
    assert [(b["instrument_id"], b["ts_ms"], b["bids"], b["asks"]) for b in again] == \
        [(b["instrument_id"], b["ts_ms"], b["bids"], b["asks"]) for b in books]


def test_combos_when_a_rule_asks_for_them(sim, tmp_path, monkeypatch):
    series = "KXMVESPORTSMULTIGAMEEXTENDED"
    rules = orjson.dumps([{"name": "parlays", "event_slug_prefixes": ["KXMVE"]}]).decode()
    h.apply_env(monkeypatch, {**sim.env, "COLLECTOR_DATA_DIR": str(tmp_path), "COLLECTOR_VENUES": KAL,
                              "COLLECTOR_KALSHI__SERIES": orjson.dumps([series]).decode(),
                              "COLLECTOR_KALSHI__RULES": rules})
    time.sleep(1.0)  # the module's simulator bucket refills
    (rep,) = run_discovery(load_settings())
    assert rep.ok and rep.instruments > 0, rep
    snap = h.records(tmp_path, KAL, "markets")
    assert all(r["instrument_id"].startswith(f"kalshi:{series}-") and r["meta"]["combo"] for r in snap)
