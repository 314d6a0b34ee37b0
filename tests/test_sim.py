"""The venue simulator, exercised as a real subprocess over HTTP (collector.sim.testing.run_sim)."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import threading
import time
from decimal import Decimal

import httpx
import orjson
import pytest

from collector.sim.testing import ENV_KEYS, run_sim

SEED = 7
N_MARKETS = 150


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", str(N_MARKETS), "--seed", str(SEED), "--no-rate-limit") as s:
        yield s


@pytest.fixture(autouse=True)
def _reset_faults(request):
    if "sim" in request.fixturenames:
        s = request.getfixturevalue("sim")
        s.control(reset=True)
        yield
        s.control(reset=True)
    else:
        yield


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(sim):
    return sim.markets()


def _gamma_all(http, sim, **params):
    out, cursor, pages = [], None, 0
    while True:
        p = dict(params)
        if cursor:
            p["after_cursor"] = cursor
        r = http.get(sim.gamma_url + "/markets/keyset", params=p)
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["markets"]
        pages += 1
        cursor = body.get("next_cursor")
        if not cursor:
            assert "next_cursor" not in body
            return out, pages
        assert pages < 100


def _books(http, sim, tokens):
    r = http.post(sim.clob_url + "/books", json=[{"token_id": t} for t in tokens])
    assert r.status_code == 200, r.text
    return r.json()


def _live(catalog):
    return [m for m in catalog["polymarket"] if m["has_book"]]


# --------------------------------------------------------------------------- start-up


def test_env_lines_and_health(sim, http):
    assert set(sim.env) == set(ENV_KEYS)
    assert sim.env["COLLECTOR_POLYMARKET__GAMMA_URL"] == f"http://127.0.0.1:{sim.port}/gamma"
    assert sim.env["COLLECTOR_POLYMARKET__CLOB_URL"] == f"http://127.0.0.1:{sim.port}/clob"
    assert sim.env["COLLECTOR_LIMITLESS__API_URL"] == f"http://127.0.0.1:{sim.port}/limitless"
    assert sim.port > 0
    r = http.get(sim.base + "/_sim/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


# --------------------------------------------------------------------------- Gamma


def test_gamma_market_shapes_and_mix(sim, http):
    markets, _ = _gamma_all(http, sim, limit=100)
    assert len(markets) == N_MARKETS
    now = time.time()
    for m in markets:
        assert isinstance(m["id"], str) and m["id"].isdigit()
        assert m["conditionId"].startswith("0x") and len(m["conditionId"]) == 66
        for k in ("question", "slug", "endDate", "startDate", "clobTokenIds", "outcomes", "outcomePrices"):
            assert isinstance(m[k], str), k
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["endDate"])
        for k in ("active", "closed", "acceptingOrders", "enableOrderBook", "negRisk"):
            assert isinstance(m[k], bool), k
        assert isinstance(m["orderPriceMinTickSize"], float)
        outcomes = json.loads(m["outcomes"])
        assert len(outcomes) == 2 and len(json.loads(m["outcomePrices"])) == 2
        assert all(isinstance(p, str) for p in json.loads(m["outcomePrices"]))
        if m["clobTokenIds"]:
            toks = json.loads(m["clobTokenIds"])
            assert all(t.isdigit() for t in toks)
        if "volume" in m:
            assert isinstance(m["volume"], str) and isinstance(m["volumeNum"], float)
            assert isinstance(m["volume24hr"], (int, float)) and isinstance(m["liquidityNum"], float)
        ev = m["events"][0]
        assert {"id", "slug", "title", "tags"} <= set(ev)
        assert all({"slug", "label"} <= set(t) for t in ev["tags"])
    assert any(m["closed"] for m in markets)
    assert any(not m["acceptingOrders"] and not m["closed"] for m in markets)
    assert any(not m["enableOrderBook"] for m in markets)
    assert any(m["clobTokenIds"] == "" for m in markets)
    assert any(json.loads(m["outcomes"]) not in (["Yes", "No"], ["Up", "Down"]) for m in markets)  # team names
    assert any(m["negRisk"] for m in markets)
    assert len({m.get("volume24hr") for m in markets}) > 50
    crypto = [m for m in markets if m["events"][0].get("seriesSlug")]
    assert {m["events"][0]["series"][0]["recurrence"] for m in crypto} == {"15m", "hourly", "daily"}
    slugs = [m["events"][0]["slug"] for m in crypto]
    assert any(s.startswith("btc-up-or-down-15m-") for s in slugs)
    assert any(s.startswith("eth-up-or-down-hourly-") for s in slugs)
    for m in crypto:
        end = calendar.timegm(time.strptime(m["endDate"], "%Y-%m-%dT%H:%M:%SZ"))
        assert now - 120 < end <= now + 86400 + 5  # (the current 15m slot may just have ended)
        assert json.loads(m["outcomes"]) == ["Up", "Down"]


def test_gamma_keyset_paging(sim, http, catalog):
    open_ids = {m["id"] for m in catalog["polymarket"] if not m["closed"]}
    got, pages = _gamma_all(http, sim, limit=7, closed="false")
    ids = [m["id"] for m in got]
    assert len(ids) == len(set(ids)) and set(ids) == open_ids
    assert pages == -(-len(open_ids) // 7)
    assert not any(m["closed"] for m in got)
    # limit silently capped at 100
    r = http.get(sim.gamma_url + "/markets/keyset", params={"limit": 1000, "closed": "false"})
    body = r.json()
    assert r.status_code == 200 and len(body["markets"]) == 100 and body["next_cursor"]
    assert body["$schema"]
    # cursor= is not the parameter: page 1 again
    r2 = http.get(sim.gamma_url + "/markets/keyset",
                  params={"limit": 1000, "closed": "false", "cursor": body["next_cursor"]})
    assert [m["id"] for m in r2.json()["markets"]] == [m["id"] for m in body["markets"]]
    # closed=true gives only closed ones; bad cursor is a 422
    closed, _ = _gamma_all(http, sim, limit=100, closed="true")
    assert closed and all(m["closed"] for m in closed)
    r = http.get(sim.gamma_url + "/markets/keyset", params={"after_cursor": "garbage!"})
    assert r.status_code == 422 and r.json()["type"] == "validation error"


# --------------------------------------------------------------------------- CLOB


def _check_clob_book(b, token=None, cond=None):
    assert list(b) == ["market", "asset_id", "timestamp", "hash", "bids", "asks", "min_order_size",
                       "tick_size", "neg_risk", "last_trade_price"]
    if token:
        assert b["asset_id"] == token
    if cond:
        assert b["market"] == cond
    assert re.fullmatch(r"\d{13}", b["timestamp"]) and int(b["timestamp"]) <= time.time() * 1000 + 5
    assert re.fullmatch(r"[0-9a-f]{40}", b["hash"])
    tick = Decimal(b["tick_size"])
    assert tick in (Decimal("0.01"), Decimal("0.001"))
    assert isinstance(b["neg_risk"], bool) and isinstance(b["min_order_size"], str)
    assert isinstance(b["last_trade_price"], str)
    bids = [Decimal(x["price"]) for x in b["bids"]]
    asks = [Decimal(x["price"]) for x in b["asks"]]
    assert all(isinstance(x["price"], str) and isinstance(x["size"], str) for x in b["bids"] + b["asks"])
    assert bids == sorted(bids) and len(set(bids)) == len(bids)  # ascending, best bid last
    assert asks == sorted(asks, reverse=True) and len(set(asks)) == len(asks)  # descending, best ask last
    assert 5 <= len(bids) <= 30 and 5 <= len(asks) <= 30
    assert bids[-1] < asks[-1]
    for p in bids + asks:
        assert 0 < p < 1 and p % tick == 0
    assert all(Decimal(x["size"]) > 0 for x in b["bids"] + b["asks"])
    # hash = sha1 of the compact JSON with hash "" (py-clob-client's recipe)
    assert hashlib.sha1(orjson.dumps(dict(b, hash=""))).hexdigest() == b["hash"]


def test_clob_book_shape(sim, http, catalog):
    for m in _live(catalog)[:8]:
        for tok in m["tokens"]:
            r = http.get(sim.clob_url + "/book", params={"token_id": tok})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
            _check_clob_book(r.json(), tok, m["condition_id"])


def test_clob_book_errors(sim, http, catalog):
    cases = {"": 400, "abc": 400, "12x": 400, "123456789": 404}
    for tid, status in cases.items():
        r = http.get(sim.clob_url + "/book", params={"token_id": tid} if tid else None)
        assert r.status_code == status, tid
        want = "Invalid token id" if status == 400 else "No orderbook exists for the requested token id"
        assert r.json() == {"error": want}
    pm = catalog["polymarket"]
    for pred in (lambda m: m["closed"], lambda m: not m["enable_order_book"],
                 lambda m: not m["closed"] and m["enable_order_book"] and m["tokens"] and not m["has_book"]):
        m = next(m for m in pm if pred(m) and m["tokens"])
        r = http.get(sim.clob_url + "/book", params={"token_id": m["tokens"][0]})
        assert r.status_code == 404


def test_clob_books_batch(sim, http, catalog):
    live = [t for m in _live(catalog) for t in m["tokens"]][:30]
    dead = [t for m in catalog["polymarket"] if m["tokens"] and not m["has_book"] for t in m["tokens"]][:4]
    assert len(live) == 30 and dead
    req = live[:15] + ["123", "99999999999999999999"] + dead + live[15:] + ["not-a-number"]
    got = _books(http, sim, req)
    ids = [b["asset_id"] for b in got]
    assert sorted(ids) == sorted(live)  # unknown / closed / no-book tokens silently dropped
    assert ids != live  # order is not the request order ...
    assert [b["asset_id"] for b in _books(http, sim, req)] == ids  # ... but deterministic
    for b in got:
        _check_clob_book(b)
    assert len(_books(http, sim, (live * 20)[:500])) == 30  # 500 items is fine (duplicates collapse)
    r = http.post(sim.clob_url + "/books", json=[{"token_id": t} for t in (live * 20)[:501]])
    assert r.status_code == 400 and r.json() == {"error": "Payload exceeds the limit"}
    for bad in (b"[{", b'{"token_id": "1"}', b"[1, 2]", b'[{"token_id": 5}]', b""):
        r = http.post(sim.clob_url + "/books", content=bad, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json() == {"error": "Invalid payload"}, bad
    assert _books(http, sim, []) == []


def test_hash_and_timestamp_track_changes(sim, http, catalog):
    toks = [m["tokens"][0] for m in _live(catalog)[:40]]
    snap = lambda: {b["asset_id"]: b for b in _books(http, sim, toks)}  # noqa: E731
    a, b = snap(), snap()
    time.sleep(2.3)
    c = snap()
    changed = 0
    for t in toks:
        for x, y in ((a[t], b[t]), (b[t], c[t])):
            same_ts = x["timestamp"] == y["timestamp"]
            assert same_ts == (x["hash"] == y["hash"]), t
            if same_ts:
                assert x == y  # unchanged book: byte-for-byte the same
            else:
                assert int(y["timestamp"]) > int(x["timestamp"])
        changed += b[t]["hash"] != c[t]["hash"]
    assert changed >= 10  # p=0.3 per 1 s tick: about half of them move in 2.3 s
    # /book and /books agree
    r = http.get(sim.clob_url + "/book", params={"token_id": toks[0]}).json()
    d = snap()[toks[0]]
    assert (r["timestamp"] == d["timestamp"]) == (r == d)


# --------------------------------------------------------------------------- Limitless


def _lim_all(http, sim, **params):
    out, page = [], 1
    while True:
        r = http.get(sim.limitless_url + "/markets/active", params={"page": page, "limit": 25, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) <= 25
        out += body["data"]
        if len(body["data"]) < 25:
            return out, body["totalMarketsCount"]
        page += 1


def test_limitless_active_shapes(sim, http):
    items, total = _lim_all(http, sim)
    assert len(items) == total == N_MARKETS
    r = http.get(sim.limitless_url + "/markets/active", params={"page": 1, "limit": 100})
    assert len(r.json()["data"]) == 25  # max 25 per page
    assert http.get(sim.limitless_url + "/markets/active", params={"page": 99}).json()["data"] == []
    kinds = {"clob": 0, "amm": 0, "group": 0}
    for m in items:
        assert {"id", "slug", "title", "status", "expirationTimestamp", "collateralToken", "categories", "tags"} <= set(m)
        assert m["status"] in ("FUNDED", "FUNDED_FLAGGED", "LOCKED")
        assert int(m["expirationTimestamp"]) > 1e12
        assert int(m["collateralToken"]["decimals"]) == 6
        if m["marketType"] == "group":
            kinds["group"] += 1
            assert m["markets"] and all(c["tradeType"] == "clob" and c["tokens"]["yes"].isdigit() for c in m["markets"])
            assert len({c["slug"] for c in m["markets"]}) == len(m["markets"])
            continue
        kinds[m["tradeType"]] += 1
        assert re.search(r"-\d{13}$", m["slug"])
        if m["tradeType"] == "amm":
            assert "tokens" not in m and 99 <= sum(m["prices"]) <= 101  # percent
        else:
            assert m["tokens"]["yes"].isdigit() and m["tokens"]["no"].isdigit()
            assert 0 < m["prices"][0] < 1
    assert all(kinds.values())
    assert any(isinstance(m["expirationTimestamp"], str) for m in items)
    assert any(isinstance(m["expirationTimestamp"], int) for m in items)
    assert any(m["collateralToken"]["decimals"] == "6" for m in items)
    # Crypto markets in the real families (shared/real-payloads/limitless): "above" with the
    # $BTC title marker and the strike in metadata.openPrice, 5-minute "up or down" with an
    # oracle ticker and a series key; an ETH AMM among them.
    singles = [m for m in items if m.get("marketType") != "group"]
    above = [m for m in singles if re.fullmatch(
        r"dollar(btc|eth|sol)-above-dollar\d+-on-[a-z]{3}-\d{1,2}-\d{4}-utc-\d{13}", m["slug"])]
    for m in above:
        tick = m["slug"][6:9].upper()
        assert re.fullmatch(rf"(\U0001f48e )?\${tick} above \$[\d.]+ on \w{{3}} \d+, \d\d:\d\d UTC\?", m["title"])
        assert m["title"].startswith("\U0001f48e ") == (m["tradeType"] == "clob")
        assert tick not in m["tags"] and "Recurring" in m["tags"]
        assert isinstance(m["metadata"]["openPrice"], str) and f"${m['metadata']['openPrice']} " in m["title"]
    assert {m["slug"][:9] for m in above} == {"dollarbtc", "dollareth", "dollarsol"}
    assert any(m["tradeType"] == "amm" and m["slug"].startswith("dollareth-") for m in above)
    updown = [m for m in singles if re.fullmatch(r"(btc|eth|sol)-up-or-down-5-min-\d{13}", m["slug"])]
    assert updown
    for m in updown:
        tick = m["slug"][:3].upper()
        assert m["priceOracleMetadata"]["ticker"] == tick and m["stableSlug"] == f"{tick.lower()}-5min-price"
        assert m["title"] == f"{tick} Up or Down - 5 Min" and re.fullmatch(r"\d+\.\d{18}", m["metadata"]["openPrice"])
        assert m["expirationTimestamp"] and m["startAt"].endswith("Z") and m["settings"]["takerDelayMs"] == 0
    clob, clob_total = _lim_all(http, sim, tradeType="clob")
    assert clob_total == total - kinds["amm"] and not any(m.get("tradeType") == "amm" for m in clob)
    r = http.get(sim.limitless_url + "/markets/active", params={"tradeType": "bogus"})
    assert r.status_code == 400 and r.json()["statusCode"] == 400


def test_limitless_orderbook(sim, http, catalog):
    lim = catalog["limitless"]
    live = [m for m in lim if m["has_book"]]
    picks = live[:4] + [m for m in live if m["group"]][:2]
    for m in picks:
        r = http.get(f"{sim.limitless_url}/markets/{m['slug']}/orderbook")
        assert r.status_code == 200, r.text
        b = r.json()
        assert set(b) == {"bids", "asks", "tokenId", "adjustedMidpoint", "midpoint", "maxSpread", "minSize",
                          "lastTradePrice"}
        assert b["tokenId"] == m["tokens"]["yes"]
        bp = [x["price"] for x in b["bids"]]
        ap = [x["price"] for x in b["asks"]]
        assert bp == sorted(bp, reverse=True) and ap == sorted(ap)  # best first on both sides
        assert bp[0] < ap[0] and 5 <= len(bp) <= 30 and 5 <= len(ap) <= 30
        for lvl in b["bids"] + b["asks"]:
            assert lvl["side"] == ("BUY" if lvl in b["bids"] else "SELL")
            assert isinstance(lvl["price"], float) and 0 < lvl["price"] < 1 and round(lvl["price"], 3) == lvl["price"]
            assert isinstance(lvl["size"], int) and lvl["size"] >= 1_000_000 and lvl["size"] % 10_000 == 0  # 1e6 units
        assert bp[0] <= b["midpoint"] <= ap[0]
    amm = next(m for m in lim if m["kind"] == "amm")
    r = http.get(f"{sim.limitless_url}/markets/{amm['slug']}/orderbook")
    assert r.status_code == 400
    assert r.json() == {"statusCode": 400, "message": "Market does not support orderbook (AMM market)"}
    r = http.get(f"{sim.limitless_url}/markets/no-such-market-123/orderbook")
    assert r.status_code == 404
    assert r.json() == {"statusCode": 404, "message": "Market not found", "error": "Not Found"}
    group = next(m for m in lim if m["kind"] == "group")
    assert http.get(f"{sim.limitless_url}/markets/{group['slug']}/orderbook").status_code == 400
    assert http.get(f"{sim.limitless_url}/markets/{group['slug']}").json()["marketType"] == "group"


# --------------------------------------------------------------------------- faults


def test_control_endpoint(sim, http):
    cfg = sim.control()
    assert set(cfg) == {"polymarket", "limitless", "kalshi"} and cfg["polymarket"]["rate_limit"] is False
    cfg = sim.control(venue="limitless", latency_ms=5, error_rate=0.25)
    assert cfg["limitless"]["latency_ms"] == 5 and cfg["limitless"]["error_rate"] == 0.25
    assert cfg["polymarket"]["error_rate"] == 0
    cfg = sim.control(jitter_ms=3)  # venue null = both
    assert cfg["limitless"]["jitter_ms"] == cfg["polymarket"]["jitter_ms"] == 3
    r = http.post(sim.base + "/_sim/control", json={"bogus": 1})
    assert r.status_code == 400
    r = http.post(sim.base + "/_sim/control", json={"error_rate": 2})
    assert r.status_code == 400
    assert sim.control(reset=True)["limitless"]["error_rate"] == 0


def test_error_rate(sim, http, catalog):
    tok = _live(catalog)[0]["tokens"][0]
    sim.control(venue="polymarket", error_rate=0.5)
    codes = [http.get(sim.clob_url + "/book", params={"token_id": tok}).status_code for _ in range(80)]
    errors = [c for c in codes if c >= 500]
    assert 20 <= len(errors) <= 60 and set(codes) - {200} <= {500, 502, 503, 504}
    slug = next(m["slug"] for m in catalog["limitless"] if m["has_book"])
    assert all(http.get(f"{sim.limitless_url}/markets/{slug}/orderbook").status_code == 200 for _ in range(10))


def test_timeout(sim, catalog):
    tok = _live(catalog)[0]["tokens"][0]
    sim.control(venue="polymarket", timeout_rate=1.0)
    t0 = time.time()
    with httpx.Client(timeout=0.5, trust_env=False) as c, pytest.raises(httpx.ReadTimeout):
        c.get(sim.clob_url + "/book", params={"token_id": tok})
    assert time.time() - t0 < 3
    time.sleep(0.5)  # the sim notices the client went away
    rec = sim.requests(since=t0, endpoint="clob.book")["recent"]
    assert rec[-1]["fault"] == "timeout" and rec[-1]["status"] == 499


def test_malformed(sim, http, catalog):
    toks = _live(catalog)[0]["tokens"]
    sim.control(malformed_rate=1.0)
    for r in (http.post(sim.clob_url + "/books", json=[{"token_id": t} for t in toks]),
              http.get(sim.gamma_url + "/markets/keyset"),
              http.get(sim.limitless_url + "/markets/active")):
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(r.content)


def test_html_error_pages(sim, http):
    sim.control(venue="polymarket", html_rate=1.0)
    seen = set()
    for _ in range(12):
        r = http.get(sim.gamma_url + "/markets/keyset")
        assert r.status_code in (502, 403) and r.headers["content-type"].startswith("text/html")
        assert "Cloudflare" in r.text
        seen.add(r.status_code)
    assert seen == {502, 403}
    assert http.get(sim.limitless_url + "/markets/active").status_code == 200


def test_down_switch(sim, http, catalog):
    sim.control(venue="limitless", down=True)
    slug = next(m["slug"] for m in catalog["limitless"] if m["has_book"])
    assert http.get(f"{sim.limitless_url}/markets/{slug}/orderbook").status_code == 503
    assert http.get(sim.limitless_url + "/markets/active").status_code == 503
    assert http.get(sim.gamma_url + "/markets/keyset").status_code == 200
    sim.control(venue="limitless", down=False)
    assert http.get(sim.limitless_url + "/markets/active").status_code == 200


def test_latency(sim, http):
    sim.control(venue="polymarket", latency_ms=150, jitter_ms=20)
    t0 = time.perf_counter()
    assert http.get(sim.gamma_url + "/markets/keyset", params={"limit": 1}).status_code == 200
    assert 0.125 <= time.perf_counter() - t0 < 1.0


def test_rate_limit_polymarket_defaults(sim, http):
    sim.control(venue="polymarket", rate_limit=True)
    url = sim.gamma_url + "/markets/keyset"
    codes = [http.get(url, params={"limit": 1}).status_code for _ in range(300)]
    assert codes == [200] * 300  # Gamma: 300 per 10 s
    r = http.get(url, params={"limit": 1})
    assert r.status_code == 429 and r.json() == {"error": "Too Many Requests"}
    assert 1 <= int(r.headers["Retry-After"]) <= 10
    sim.control(venue="polymarket", retry_after_s=None)
    r = http.get(url, params={"limit": 1})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    # a tighter custom window on /books
    sim.control(venue="polymarket", limits={"clob.books": [3, 1.0]}, retry_after_s="auto")
    codes = [http.post(sim.clob_url + "/books", json=[]).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    time.sleep(1.05)
    assert http.post(sim.clob_url + "/books", json=[]).status_code == 200


def test_rate_limit_limitless(sim, http):
    url = sim.limitless_url + "/markets/active"
    sim.control(venue="limitless", rate_limit=True)
    assert http.get(url).status_code == 200
    r = http.get(url)  # < 300 ms later
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["statusCode"] == 429
    time.sleep(0.35)
    assert http.get(url).status_code == 200
    # at most 2 in flight
    sim.control(venue="limitless", limits={"min_spacing_s": 0}, latency_ms=800, retry_after_s=None)
    codes: list[int] = []
    heads: list[bool] = []

    def hit():
        with httpx.Client(timeout=5, trust_env=False) as c:
            rr = c.get(url, params={"limit": 1})
            codes.append(rr.status_code)
            heads.append("Retry-After" in rr.headers)

    ts = [threading.Thread(target=hit) for _ in range(4)]
    for t in ts:
        t.start()
        time.sleep(0.03)
    for t in ts:
        t.join()
    assert sorted(codes) == [200, 200, 429, 429] and not any(heads)


def test_throttle_from_control(sim, http):
    url = sim.gamma_url + "/markets/keyset"
    sim.control(venue="polymarket", throttle_rate=1.0, retry_after_s=7)
    r = http.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    sim.control(venue="polymarket", retry_after_s=None)
    r = http.get(url)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    sim.control(reset=True)
    sim.control(venue="limitless", throttle_for_s=1.0)
    r = http.get(sim.limitless_url + "/markets/active")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert http.get(url).status_code == 200
    time.sleep(1.1)
    assert http.get(sim.limitless_url + "/markets/active").status_code == 200


# --------------------------------------------------------------------------- lifecycle + log


def test_market_lifecycle_polymarket(sim, http):
    added = sim.markets("add", venue="polymarket", kind="crypto", asset="eth", recurrence="hourly")["markets"]
    assert len(added) == 1
    m = added[0]
    ids = {x["id"] for x in _gamma_all(http, sim, limit=100, closed="false")[0]}
    assert m["id"] in ids and m["slug"].startswith("eth-up-or-down-hourly-")
    assert len(_books(http, sim, m["tokens"])) == 2
    sim.markets("close", venue="polymarket", id=m["id"])
    ids = {x["id"] for x in _gamma_all(http, sim, limit=100, closed="false")[0]}
    assert m["id"] not in ids
    assert http.get(sim.clob_url + "/book", params={"token_id": m["tokens"][0]}).status_code == 404
    assert _books(http, sim, m["tokens"]) == []
    # expire: still listed, no longer accepting orders, book frozen
    e = sim.markets("add", venue="polymarket", kind="yesno")["markets"][0]
    sim.markets("expire", venue="polymarket", id=e["id"])
    listed = {x["id"]: x for x in _gamma_all(http, sim, limit=100, closed="false")[0]}
    assert listed[e["id"]]["acceptingOrders"] is False
    b1 = http.get(sim.clob_url + "/book", params={"token_id": e["tokens"][0]}).json()
    time.sleep(1.5)
    assert http.get(sim.clob_url + "/book", params={"token_id": e["tokens"][0]}).json() == b1
    # hydrating -> tokens appear
    h = sim.markets("add", venue="polymarket", hydrating=True)["markets"][0]
    g = {x["id"]: x for x in _gamma_all(http, sim, limit=100, closed="false")[0]}[h["id"]]
    assert g["clobTokenIds"] == "" and h["tokens"] == []
    h = sim.markets("update", venue="polymarket", id=h["id"], hydrating=False)["markets"][0]
    assert len(h["tokens"]) == 2 and len(_books(http, sim, h["tokens"])) == 2


def test_market_lifecycle_limitless(sim, http):
    m = sim.markets("add", venue="limitless", kind="crypto", asset="btc")["markets"][0]
    assert m["slug"].startswith("dollarbtc-above-dollar") and m["has_book"]
    u = sim.markets("add", venue="limitless", kind="crypto", asset="eth", family="up_or_down")["markets"][0]
    assert u["slug"].startswith("eth-up-or-down-5-min-") and u["has_book"]
    sim.markets("close", venue="limitless", slug=u["slug"])
    first = http.get(sim.limitless_url + "/markets/active", params={"page": 1, "limit": 25}).json()["data"]
    assert first[0]["slug"] == m["slug"]  # newest first
    assert http.get(f"{sim.limitless_url}/markets/{m['slug']}/orderbook").status_code == 200
    sim.markets("close", venue="limitless", slug=m["slug"])
    slugs = {x["slug"] for x in _lim_all(http, sim)[0]}
    assert m["slug"] not in slugs
    assert http.get(f"{sim.limitless_url}/markets/{m['slug']}/orderbook").status_code == 404
    a = sim.markets("add", venue="limitless", kind="amm")["markets"][0]
    assert http.get(f"{sim.limitless_url}/markets/{a['slug']}/orderbook").status_code == 400
    g = sim.markets("add", venue="limitless", kind="group", outcomes=3)["markets"]
    assert len(g) == 4 and sum(1 for x in g if x["has_book"]) == 3


def test_request_log(sim, http, catalog):
    tok = _live(catalog)[0]["tokens"][0]
    slug = next(m["slug"] for m in catalog["limitless"] if m["has_book"])
    sim.reset_requests()
    t0 = time.time()
    for _ in range(3):
        http.get(sim.gamma_url + "/markets/keyset", params={"limit": 5})
    _books(http, sim, [tok])
    _books(http, sim, [tok, "1"])
    http.get(sim.clob_url + "/book", params={"token_id": "1"})
    http.get(f"{sim.limitless_url}/markets/{slug}/orderbook")
    t1 = time.time()
    rep = sim.requests()
    assert rep["counts"] == {"polymarket": 6, "limitless": 1, "kalshi": 0}
    assert rep["endpoints"] == {"gamma.markets_keyset": 3, "clob.books": 2, "clob.book": 1, "limitless.orderbook": 1}
    assert rep["status"]["polymarket"] == {"200": 5, "404": 1}
    assert rep["books_served"] == {"polymarket": 2, "limitless": 1, "kalshi": 0}
    assert len(rep["recent"]) == 7 and all(t0 <= e["t"] <= t1 for e in rep["recent"])
    assert [e["venue"] for e in rep["recent"]][-1] == "limitless"
    assert len(sim.requests(since=t1)["recent"]) == 0
    assert len(sim.requests(venue="polymarket", endpoint="clob.books")["recent"]) == 2
    sim.reset_requests()
    assert sim.requests()["counts"] == {"polymarket": 0, "limitless": 0, "kalshi": 0}


# --------------------------------------------------------------------------- determinism + churn


def _world(s):
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        gamma = c.get(s.gamma_url + "/markets/keyset", params={"limit": 100}).content
        lim = c.get(s.limitless_url + "/markets/active", params={"limit": 25}).content
        toks = [t for m in s.markets(venue="polymarket")["polymarket"] if m["has_book"] for t in m["tokens"]]
        books = sorted(_books(c, s, toks), key=lambda b: b["asset_id"])
        slug = next(m["slug"] for m in s.markets(venue="limitless")["limitless"] if m["has_book"])
        lbook = c.get(f"{s.limitless_url}/markets/{slug}/orderbook").json()
    return gamma, lim, [(b["asset_id"], b["bids"], b["asks"], b["last_trade_price"]) for b in books], lbook


def test_determinism_same_seed():
    args = ("--markets", "30", "--epoch", "1790000000", "--tick-s", "3600")
    with run_sim("--seed", "11", *args) as a, run_sim("--seed", "11", *args) as b, run_sim("--seed", "12", *args) as c:
        wa, wb, wc = _world(a), _world(b), _world(c)
    assert wa == wb
    assert wa[0] != wc[0] and wa[2] != wc[2]


def test_churn():
    with run_sim("--markets", "20", "--churn-s", "0.3", "--no-rate-limit") as s:
        before = s.markets()
        time.sleep(1.5)
        after = s.markets()
    open_before = {m["id"] for m in before["polymarket"] if not m["closed"]}
    open_after = {m["id"] for m in after["polymarket"] if not m["closed"]}
    assert open_after - open_before and open_before - open_after
    lim_before = {m["slug"] for m in before["limitless"] if m["listed"]}
    lim_after = {m["slug"] for m in after["limitless"] if m["listed"]}
    assert lim_after - lim_before and lim_before - lim_after
