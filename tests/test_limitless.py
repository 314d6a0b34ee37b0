"""LimitlessClient: discovery paging/filtering, orderbook fetch + normalize, error mapping.

Every HTTP call is mocked with ``responses``; fixtures follow the illustrative payloads of
shared/venues/limitless.md (CLOB single, AMM with percent prices, NegRisk group, CCXT-style
string-typed numbers).
"""

from __future__ import annotations

import copy
import logging
import random
from collections import Counter
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import requests
import responses
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collector.config.settings import LimitlessSettings
from collector.model import errors
from collector.model.records import BookRecord, DecText, Instrument
from collector.venues import limitless as lm
from collector.venues.base import DiscoveryResult, FetchResult
from collector.venues.limitless import CLIENT, LimitlessClient

API = "https://api.limitless.test"
ACTIVE = f"{API}/markets/active"
UA = "test-agent/9.9"

# ----------------------------------------------------------------- fixtures (doc-shaped)

CLOB_SINGLE = {
    "id": 40123,
    "slug": "btc-above-105k-on-jun-30-1750000000000",
    "title": "BTC above $105k on Jun 30?",
    "status": "FUNDED",
    "expired": False,
    "tradeType": "clob",
    "marketType": "single",
    "expirationDate": "Jun 30, 2026",
    "expirationTimestamp": 1782820800000,
    "collateralToken": {"address": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "decimals": 6, "symbol": "USDC"},
    "conditionId": "0x4f1c...e2",
    "negRiskRequestId": None,
    "tokens": {"yes": "5615...3044", "no": "3257...8217"},
    "prices": [0.41, 0.59],
    "volume": "1532000000",
    "volumeFormatted": "1532.000000",
    "venue": {"exchange": "0x05c7...3fa5", "adapter": None},
    "settings": {
        "minSize": "100000000",
        "maxSpread": "0.035",
        "dailyReward": "5",
        "rewardsEpoch": "0.0034",
        "c": "3",
        "rebateRate": "0",
    },
    "categories": ["Crypto"],
    "tags": ["Daily"],
    "winningOutcomeIndex": None,
}

AMM_ITEM = {
    "id": 7495,
    "slug": "dollardoge-above-dollar021652-on-sep-1-1200-utc-1756724413009",
    "address": "0x76d3...9B9b",
    "tradeType": "amm",
    "marketType": "single",
    "status": "FUNDED",
    "prices": [42.8, 57.2],
    "liquidity": "50000000",
    "liquidityFormatted": "50.000000",
    "expirationTimestamp": 1756728000000,
    "collateralToken": {"address": "0x8335...2913", "decimals": 6, "symbol": "USDC"},
}

GROUP = {
    "id": 912,
    "slug": "fed-decision-july-2026",
    "title": "Fed decision in July?",
    "marketType": "group",
    "tradeType": "group",
    "negRiskMarketId": "0xab12...",
    "outcomeTokens": ["Yes", "No"],
    "expirationTimestamp": 1785340800000,
    "collateralToken": {"address": "0x8335...2913", "decimals": 6, "symbol": "USDC"},
    "categories": ["Economy"],
    "markets": [
        {
            "id": 913,
            "slug": "fed-cut-25bps-july-2026",
            "title": "25 bps cut",
            "tradeType": "clob",
            "tokens": {"yes": "1111...", "no": "2222..."},
            "prices": [0.62, 0.38],
            "orderInGroup": 0,
            "status": "FUNDED",
        },
        {
            "id": 914,
            "slug": "fed-hold-july-2026",
            "title": "Hold",
            "tradeType": "clob",
            "tokens": {"yes": "3333...", "no": "4444..."},
            "prices": [0.3, 0.7],
            "orderInGroup": 1,
            "status": "LOCKED",
            "tags": ["Fed"],
        },
    ],
}

# CCXT-style sample: every number is a string.
STRINGY = {
    "id": "36814",
    "slug": "eth-above-4k-2027-1798779540000",
    "title": "ETH above $4k on Jan 1 2027?",
    "status": "FUNDED_FLAGGED",
    "expired": False,
    "tradeType": "clob",
    "marketType": "single",
    "expirationTimestamp": "1798779540000",
    "collateralToken": {"address": "0x8335...2913", "decimals": "6", "symbol": "USDC"},
    "tokens": {"yes": "777", "no": "888"},
    "priorityIndex": "3",
    "volumeFormatted": "12.5",
    "liquidityFormatted": "250.500000",
}

BOOK = {
    "bids": [
        {"price": 0.14, "size": 12360330000, "side": "BUY"},
        {"price": 0.10, "size": 1000000, "side": "BUY"},
    ],
    "asks": [
        {"price": 0.161, "size": 222000000, "side": "SELL"},
        {"price": 0.996, "size": 5555000000, "side": "SELL"},
    ],
    "tokenId": "56154308742753982686710750162015444986563701968079760676518531584453506363044",
    "adjustedMidpoint": 0.1505,
    "midpoint": 0.1505,
    "maxSpread": 0.035,
    "minSize": 100000000,
    "lastTradePrice": 0.161,
}


def market(slug: str, **kw) -> dict:
    m = copy.deepcopy(CLOB_SINGLE)
    m["slug"] = slug
    m.update(kw)
    return m


def make_settings(**kw) -> LimitlessSettings:
    base = dict(
        api_url=API,
        user_agent=UA,
        min_spacing_s=0.0,
        discovery_rate_requests=100_000,
        discovery_rate_window_s=1.0,
        discovery_retry_max_s=0.0,  # page retries without waiting
        connect_timeout_s=1.5,
        read_timeout_s=2.5,
        discovery_timeout_s=9.0,
    )
    base.update(kw)
    return LimitlessSettings(**base)


@pytest.fixture
def client():
    c = LimitlessClient(make_settings())
    yield c
    c.close()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        yield r


def serve_pages(rsps, pages_by_type: dict[str, list], total: dict[str, int] | None = None, calls=None):
    """Serve /markets/active by (tradeType, page); unknown pages answer an empty list."""
    total = total or {}

    def cb(request):
        q = parse_qs(urlparse(request.url).query)
        tt = q["tradeType"][0]
        page = int(q["page"][0])
        if calls is not None:
            calls.append((tt, page, int(q["limit"][0])))
        pages = pages_by_type.get(tt, [])
        data = pages[page - 1] if page <= len(pages) else []
        body = {"data": data, "totalMarketsCount": total.get(tt, sum(len(p) for p in pages))}
        return 200, {"Content-Type": "application/json"}, orjson.dumps(body)

    rsps.add_callback(responses.GET, ACTIVE, callback=cb)


def inst_for(slug="btc-above-105k-on-jun-30-1750000000000", decimals=6, token_yes=None) -> Instrument:
    return Instrument(
        venue="limitless",
        poll_key=slug,
        market_id=slug,
        outcome="YES",
        slug=slug,
        tick_size="0.001",
        size_decimals=decimals,
        meta={"token_yes": token_yes},
    )


# ------------------------------------------------------------------------ module shape


def test_module_shape():
    assert CLIENT is LimitlessClient
    assert LimitlessClient.name == "limitless"
    assert LimitlessClient.batch_size == 1
    c = LimitlessClient(make_settings())
    for meth in ("discover", "fetch_books", "normalize", "close"):
        assert callable(getattr(c, meth))
    c.close()


# ---------------------------------------------------------------------------- discovery


def test_discovery_pages_until_short_page(client, rsps):
    page1 = [market(f"btc-m{i}") for i in range(25)]
    page2 = [market(f"btc-n{i}") for i in range(25)]
    page3 = [market("btc-last")]
    calls: list = []
    serve_pages(rsps, {"clob": [page1, page2, page3]}, calls=calls)
    res = client.discover()
    assert isinstance(res, DiscoveryResult)
    assert [c for c in calls if c[0] == "clob"] == [("clob", 1, 25), ("clob", 2, 25), ("clob", 3, 25)]
    assert [c for c in calls if c[0] == "group"] == [("group", 1, 25)]  # empty group pass
    assert len(res.instruments) == 51
    assert res.pages == 4
    assert res.paging_stops == {}
    assert res.instruments[0].poll_key == "btc-m0"
    assert res.instruments[-1].poll_key == "btc-last"


def test_discovery_short_page_below_total_keeps_paging(client, rsps):
    """A short page while totalMarketsCount says there are more is not the end: page on until
    the count is reached or a page comes back empty."""
    pages = [[market(f"btc-m{i}") for i in range(25)], [market("btc-last")]]
    calls: list = []
    serve_pages(rsps, {"clob": pages}, total={"clob": 10_000}, calls=calls)
    res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2, 3]  # page 3 is empty: the end
    assert len(res.instruments) == 26
    assert res.paging_stops == {}


def serve_capped(rsps, items_by_type: dict[str, list], cap: int, calls=None, count_bonus: int = 0):
    """/markets/active that serves at most ``cap`` items a page whatever ``limit`` asks for."""

    def cb(request):
        q = parse_qs(urlparse(request.url).query)
        tt, page = q["tradeType"][0], int(q["page"][0])
        if calls is not None:
            calls.append((tt, page, int(q["limit"][0])))
        items = items_by_type.get(tt, [])
        body = {"data": items[(page - 1) * cap: page * cap], "totalMarketsCount": len(items) + count_bonus}
        return 200, {"Content-Type": "application/json"}, orjson.dumps(body)

    rsps.add_callback(responses.GET, ACTIVE, callback=cb)


def test_discovery_capped_page_size_finds_every_market_and_group_child(client, rsps):
    """Issue 12, item 2: a server capping pages at 10 (< limit 25) used to end each pass after
    page 1. Every single and every group child must be found."""
    singles = [market(f"btc-s{i:02d}") for i in range(37)]
    groups = []
    for g in range(13):
        grp = copy.deepcopy(GROUP)
        grp["slug"] = f"grp-{g}"
        for j, child in enumerate(grp["markets"]):
            child["slug"] = f"grp-{g}-child-{j}"
        groups.append(grp)
    calls: list = []
    serve_capped(rsps, {"clob": singles, "group": groups}, cap=10, calls=calls)
    res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2, 3, 4]
    assert [c[1] for c in calls if c[0] == "group"] == [1, 2]
    assert {c[2] for c in calls} == {25}  # the limit asked for never changes
    got = {i.poll_key for i in res.instruments}
    want = {m["slug"] for m in singles} | {f"grp-{g}-child-{j}" for g in range(13) for j in range(2)}
    assert got == want
    assert res.paging_stops == {}


def test_discovery_capped_pages_stop_on_empty_page_when_count_overstates(client, rsps):
    calls: list = []
    serve_capped(rsps, {"clob": [market(f"btc-{i}") for i in range(12)]}, cap=5, calls=calls, count_bonus=40)
    res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2, 3, 4]  # 5 + 5 + 2, then empty
    assert len(res.instruments) == 12


def test_discovery_without_count_stops_on_short_page(client, rsps):
    pages = {1: [market(f"btc-{i}") for i in range(25)], 2: [market("btc-x")]}

    def cb(request):
        q = parse_qs(urlparse(request.url).query)
        page = int(q["page"][0]) if q["tradeType"][0] == "clob" else 99
        return 200, {}, orjson.dumps({"data": pages.get(page, [])})

    rsps.add_callback(responses.GET, ACTIVE, callback=cb)
    res = client.discover()
    assert res.pages == 3  # clob pages 1, 2 (short: the only end signal) + the empty group page
    assert len(res.instruments) == 26


def test_discovery_sends_trade_type_and_limit(client, rsps):
    rsps.get(
        ACTIVE,
        match=[responses.matchers.query_param_matcher({"page": "1", "limit": "25", "tradeType": "clob"})],
        json={"data": [CLOB_SINGLE], "totalMarketsCount": 1},
    )
    rsps.get(
        ACTIVE,
        match=[responses.matchers.query_param_matcher({"page": "1", "limit": "25", "tradeType": "group"})],
        json={"data": [], "totalMarketsCount": 0},
    )
    res = client.discover()
    assert [i.poll_key for i in res.instruments] == [CLOB_SINGLE["slug"]]
    assert len(rsps.calls) == 2
    for call in rsps.calls:
        assert call.request.headers["User-Agent"] == UA
        assert call.request.req_kwargs["timeout"] == 9.0
        assert "X-API-Key" not in call.request.headers


def test_discovery_stops_after_total_count_pages(client, rsps):
    pages = [[market(f"btc-p{p}-{i}") for i in range(25)] for p in range(5)]
    calls: list = []
    serve_pages(rsps, {"clob": pages}, total={"clob": 50}, calls=calls)
    res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2]
    assert len(res.instruments) == 50


def test_discovery_stops_on_empty_page(client, rsps):
    calls: list = []
    serve_pages(rsps, {"clob": [[market(f"btc-{i}") for i in range(25)]]}, total={"clob": 9999}, calls=calls)
    res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2]
    assert len(res.instruments) == 25


def test_discovery_stops_when_server_ignores_page(client, rsps, caplog):
    same = [market(f"btc-{i}") for i in range(25)]
    rsps.get(ACTIVE, json={"data": same, "totalMarketsCount": 100_000})
    with caplog.at_level(logging.WARNING, logger="collector.venues.limitless"):
        res = client.discover()
    # one repeat per pass is detected, then the pass stops
    assert len(rsps.calls) == 4
    assert len(res.instruments) == 25
    assert res.paging_stops == {"repeated_page": 2}
    assert sum("repeats page 1" in r.getMessage() for r in caplog.records) == 2
    assert res.skipped.get("duplicate") == 25  # group pass saw the same items again


def test_discovery_page_hard_cap(client, rsps, monkeypatch, caplog):
    monkeypatch.setattr(lm, "MAX_PAGES", 3)
    calls: list = []
    pages = [[market(f"btc-p{p}-{i}") for i in range(25)] for p in range(10)]
    serve_pages(rsps, {"clob": pages}, total={"clob": 100_000}, calls=calls)
    with caplog.at_level(logging.WARNING, logger="collector.venues.limitless"):
        res = client.discover()
    assert [c[1] for c in calls if c[0] == "clob"] == [1, 2, 3]
    assert res.paging_stops == {"page_bound": 1}
    assert any("page bound" in r.getMessage() for r in caplog.records)


def test_discovery_filters_and_expands(client, rsps):
    resolved = market("btc-resolved", status="RESOLVED")
    expired = market("btc-expired", expired=True)
    locked = market("btc-locked", status="LOCKED")
    serve_pages(
        rsps,
        {
            "clob": [[CLOB_SINGLE, AMM_ITEM, resolved, expired, locked, STRINGY]],
            "group": [[GROUP]],
        },
    )
    res = client.discover()
    by = {i.poll_key: i for i in res.instruments}
    assert set(by) == {
        CLOB_SINGLE["slug"],
        "btc-locked",
        STRINGY["slug"],
        "fed-cut-25bps-july-2026",
        "fed-hold-july-2026",
    }
    assert AMM_ITEM["slug"] not in by and GROUP["slug"] not in by
    assert res.skipped == {"amm": 1, "resolved": 1, "expired": 1}
    assert by["btc-locked"].meta.status == "LOCKED"

    single = by[CLOB_SINGLE["slug"]]
    assert single.instrument_id == f"limitless:{CLOB_SINGLE['slug']}"
    assert single.venue == "limitless"
    assert single.market_id == single.slug == single.poll_key
    assert single.outcome == "YES"
    assert single.title == "BTC above $105k on Jun 30?"
    assert single.expires_at_ms == 1782820800000
    assert single.tick_size == "0.001"
    assert single.event_slug is None
    assert single.tags == ("Crypto", "Daily")
    assert single.volume_24h is None
    assert single.liquidity is None
    assert single.size_decimals == 6
    assert single.meta.id == 40123
    assert single.meta.condition_id == "0x4f1c...e2"
    assert single.meta.token_yes == "5615...3044"
    assert single.meta.token_no == "3257...8217"
    assert single.meta.status == "FUNDED"
    assert single.meta.group_slug is None
    assert single.meta.volume == "1532.000000"
    orjson.dumps(single.flat())  # snapshot-ready

    child = by["fed-cut-25bps-july-2026"]
    assert child.event_slug == "fed-decision-july-2026"
    assert child.meta.group_slug == "fed-decision-july-2026"
    assert child.meta.group_title == "Fed decision in July?"
    assert child.expires_at_ms == 1785340800000  # inherited from the group
    assert child.size_decimals == 6
    assert child.tags == ("Economy",)
    assert child.meta.token_yes == "1111..."
    assert child.title == "25 bps cut"
    hold = by["fed-hold-july-2026"]
    assert hold.meta.status == "LOCKED"
    assert hold.tags == ("Economy", "Fed")

    s = by[STRINGY["slug"]]
    assert s.expires_at_ms == 1798779540000
    assert s.size_decimals == 6
    assert s.liquidity == 250.5
    assert s.meta.id == "36814"
    assert s.meta.status == "FUNDED_FLAGGED"


def test_group_in_clob_pass_expanded_and_children_inherit_status(client, rsps):
    g = copy.deepcopy(GROUP)
    g["status"] = "RESOLVED"
    for c in g["markets"]:
        c.pop("status")
    g2 = copy.deepcopy(GROUP)
    g2["slug"] = "other-group"
    g2["expired"] = True
    for c in g2["markets"]:
        c["slug"] = "x-" + c["slug"]
    serve_pages(rsps, {"clob": [[g, g2]]})
    res = client.discover()
    assert res.instruments == []
    assert res.skipped == {"resolved": 2, "expired": 2}


def test_discovery_dedupes_by_slug(client, rsps):
    dup_child = market("fed-cut-25bps-july-2026")  # also a child of GROUP
    serve_pages(
        rsps,
        {"clob": [[CLOB_SINGLE, copy.deepcopy(CLOB_SINGLE), dup_child]], "group": [[GROUP, GROUP]]},
    )
    res = client.discover()
    slugs = [i.poll_key for i in res.instruments]
    assert len(slugs) == len(set(slugs)) == 3
    assert res.skipped == {"duplicate": 4}


def test_discovery_bad_market_does_not_fail(client, rsps):
    bad = [
        "not-an-object",
        {"title": "no slug", "tradeType": "clob"},
        market("btc-bad-exp", expirationTimestamp="soon"),
        market("btc-bad-dec", collateralToken={"decimals": "six"}),
        market("btc-bad-tokens", tokens=["a", "b"]),
        {"slug": "group-bad", "marketType": "group", "markets": "nope"},
        {"slug": "group-ok", "marketType": "group", "markets": [None, market("btc-child-ok")]},
        market("btc-bad-status", status=7),
    ]
    serve_pages(rsps, {"clob": [bad + [market("btc-good")]]})
    res = client.discover()
    assert sorted(i.poll_key for i in res.instruments) == ["btc-child-ok", "btc-good"]
    assert res.skipped == {"bad_market": 8}
    assert next(i for i in res.instruments if i.poll_key == "btc-child-ok").event_slug == "group-ok"


def test_discovery_timestamps_and_defaults(client, rsps):
    items = [
        market("btc-secs", expirationTimestamp=1782820800),  # seconds
        market("btc-secs-str", expirationTimestamp="1782820800"),
        market("btc-none", expirationTimestamp=None, collateralToken=None),
        market("btc-tick", tickSize="0.01", liquidityFormatted="junk"),
        {"slug": "btc-no-type", "tokens": {"yes": "1", "no": "2"}},  # tradeType missing, has tokens
        {"slug": "btc-no-type-no-tokens"},
        market("btc-weird-type", tradeType="parimutuel"),
    ]
    serve_pages(rsps, {"clob": [items]})
    res = client.discover()
    by = {i.poll_key: i for i in res.instruments}
    assert by["btc-secs"].expires_at_ms == 1782820800000
    assert by["btc-secs-str"].expires_at_ms == 1782820800000
    assert by["btc-none"].expires_at_ms is None
    assert by["btc-none"].size_decimals == 6
    assert by["btc-tick"].tick_size == "0.01"
    assert by["btc-tick"].liquidity is None
    assert "btc-no-type" in by
    assert res.skipped == {"not_clob": 2}


def test_discovery_uses_pacer(rsps):
    c = LimitlessClient(make_settings(min_spacing_s=0.3))
    assert c._pacer.min_interval_s >= 0.3  # the venue's documented 300 ms spacing
    waits = []
    c._pacer.wait = lambda: waits.append(1)  # type: ignore[method-assign]
    serve_pages(rsps, {"clob": [[market(f"btc-{i}") for i in range(25)], [market("btc-z")]]})
    res = c.discover()
    assert len(waits) == res.pages == 3
    c.close()


@pytest.mark.parametrize(
    "kw,exc",
    [
        (dict(body="<html><body>Bad gateway</body></html>", status=200), errors.BadPayload),
        (dict(body="{not json", status=200), errors.BadPayload),
        (dict(json=[1, 2, 3]), errors.BadPayload),
        (dict(json={"markets": []}), errors.BadPayload),
        (dict(json={"statusCode": 500}, status=503), errors.ServerError),
        (dict(json={"statusCode": 429}, status=429), errors.RateLimited),
    ],
)
def test_discovery_page_failures_raise(client, rsps, kw, exc):
    rsps.get(ACTIVE, **kw)
    with pytest.raises(exc):
        client.discover()
    # a failed request is tried discovery_page_attempts times; a wrong envelope is not retried
    assert len(rsps.calls) == (1 if "json" in kw and kw.get("status", 200) == 200 else 4)


def test_discovery_retries_a_throttled_page(client, rsps):
    """A 429 on one page (the poller shares the venue's 300 ms spacing) is tried again, not the
    end of the pass."""
    serve = [market(f"btc-{i}") for i in range(25)]
    rsps.get(ACTIVE, json={"data": serve, "totalMarketsCount": 26})
    rsps.get(ACTIVE, json={"statusCode": 429}, status=429, headers={"Retry-After": "0"})
    rsps.get(ACTIVE, json={"data": [market("btc-z")], "totalMarketsCount": 26})
    rsps.get(ACTIVE, json={"data": [], "totalMarketsCount": 0})  # tradeType=group
    res = client.discover()
    assert res.retries == 1 and res.pages == 3
    assert len(res.instruments) == 26
    assert [c.request.params["page"] for c in rsps.calls] == ["1", "2", "2", "1"]


# -------------------------------------------------------------------------------- books

SLUG = CLOB_SINGLE["slug"]
BOOK_URL = f"{API}/markets/{SLUG}/orderbook"


def test_fetch_books_doc_example(client, rsps):
    rsps.get(BOOK_URL, json=BOOK)
    res = client.fetch_books([SLUG])
    assert isinstance(res, FetchResult)
    assert res.books == {SLUG: BOOK}
    assert res.errors == {}
    assert res.latency_ms >= 0
    assert res.ts_ms > 1_700_000_000_000
    req = rsps.calls[0].request
    assert req.headers["User-Agent"] == UA
    assert req.req_kwargs["timeout"] == (1.5, 2.5)

    rec = client.normalize(inst_for(), res.books[SLUG], res.ts_ms, res.latency_ms)
    assert isinstance(rec, BookRecord)
    assert rec.bids == [("0.14", "12360.33"), ("0.1", "1")]
    assert rec.asks == [("0.161", "222"), ("0.996", "5555")]
    assert rec.best_bid == "0.14" and rec.best_ask == "0.161"
    assert rec.ob_ts_ms is None and rec.hash is None
    assert rec.tick_size == "0.001"
    assert rec.ts_ms == res.ts_ms
    assert rec.instrument_id == f"limitless:{SLUG}" and rec.outcome == "YES"
    assert rec.extra == {
        "size_decimals": 6,
        "last_trade_price": "0.161",
        "adjusted_midpoint": "0.1505",
        "midpoint": "0.1505",
        "token_id": BOOK["tokenId"],
    }
    assert isinstance(rec.extra["midpoint"], DecText)
    assert not isinstance(rec.extra["token_id"], DecText)

    raw = rec.to_json()
    assert b"0.161" in raw
    assert b"[[0.14,12360.33],[0.1,1]]" in raw
    out = orjson.loads(raw)
    assert out["best_bid"] == 0.14 and out["best_ask"] == 0.161
    assert b'"mid":0.1505' in raw and b'"spread":0.021' in raw
    assert out["size_decimals"] == 6
    assert out["token_id"] == BOOK["tokenId"]
    assert "ob_ts_ms" not in out and "hash" not in out
    assert out["last_trade_price"] == 0.161


def test_string_typed_book_values(client):
    raw = {
        "bids": [{"price": "0.140", "size": "12360330000", "side": "BUY"}],
        "asks": [{"price": "0.161", "size": "222000000", "side": "SELL"}],
        "tokenId": "777",
        "adjustedMidpoint": "0.1505",
        "lastTradePrice": None,
    }
    rec = client.normalize(inst_for(token_yes="777"), raw, 1, 2.0)
    assert rec.bids == [("0.14", "12360.33")]
    assert rec.asks == [("0.161", "222")]
    assert "last_trade_price" not in rec.extra and "midpoint" not in rec.extra
    assert rec.extra["adjusted_midpoint"] == "0.1505"


def test_other_decimals_and_empty_book(client):
    rec = client.normalize(inst_for(decimals=18), {"bids": [{"price": 0.5, "size": 10**18}], "asks": []}, 1, 1.0)
    assert rec.bids == [("0.5", "1")] and rec.asks == []
    assert rec.extra == {"size_decimals": 18}
    out = orjson.loads(rec.to_json())
    assert out["mid"] is None and out["best_ask"] is None
    none_dec = inst_for(decimals=None)  # type: ignore[arg-type]
    assert client.normalize(none_dec, {"bids": [], "asks": [{"price": 1, "size": 5}]}, 1, 1.0).asks == [
        ("1", "0.000005")
    ]


def test_normalize_resorts_shuffled_levels(client):
    raw = copy.deepcopy(BOOK)
    raw["bids"] += [{"price": p, "size": 1000000} for p in (0.12, 0.001, 0.139, 0.05)]
    raw["asks"] += [{"price": p, "size": 1000000} for p in (0.5, 0.162, 0.999, 0.2)]
    rnd = random.Random(7)
    rnd.shuffle(raw["bids"])
    rnd.shuffle(raw["asks"])
    rec = client.normalize(inst_for(), raw, 1, 1.0)
    assert [p for p, _ in rec.bids] == ["0.14", "0.139", "0.12", "0.1", "0.05", "0.001"]
    assert [p for p, _ in rec.asks] == ["0.161", "0.162", "0.2", "0.5", "0.996", "0.999"]
    assert rec.best_bid == "0.14" and rec.best_ask == "0.161"


@pytest.mark.parametrize(
    "raw",
    [
        [],
        None,
        "book",
        {"asks": []},
        {"bids": []},
        {"bids": None, "asks": []},
        {"bids": {}, "asks": []},
        {"bids": [[0.1, 100]], "asks": []},
        {"bids": [{"price": 0.1}], "asks": []},
        {"bids": [{"size": 1}], "asks": []},
        {"bids": [{"price": "abc", "size": 1}], "asks": []},
        {"bids": [{"price": -0.1, "size": 1}], "asks": []},
        {"bids": [{"price": 1.5, "size": 1}], "asks": []},
        {"bids": [{"price": 42.8, "size": 1}], "asks": []},  # percent price
        {"bids": [{"price": 0.1, "size": 1.5}], "asks": []},  # not a raw integer
        {"bids": [{"price": 0.1, "size": True}], "asks": []},
        {"bids": [{"price": 0.1, "size": "1e999999999"}], "asks": []},
        {"bids": [{"price": 0.1, "size": 10**40}], "asks": []},
        {"bids": [], "asks": [], "midpoint": "x"},
        {"bids": [], "asks": [], "lastTradePrice": [1]},
        {"bids": [], "asks": [], "tokenId": 1.5},
        {"bids": [], "asks": [], "tokenId": "999"},  # not the YES token of the instrument
    ],
)
def test_normalize_bad_payload(client, raw):
    with pytest.raises(errors.BadPayload):
        client.normalize(inst_for(token_yes="777"), raw, 1, 1.0)


def test_fetch_books_needs_exactly_one_key(client):
    with pytest.raises(ValueError):
        client.fetch_books([])
    with pytest.raises(ValueError):
        client.fetch_books(["a", "b"])
    with pytest.raises(ValueError):
        client.fetch_books("a")


def test_fetch_books_quotes_slug(client, rsps):
    rsps.get(f"{API}/markets/we%20ird%2Fslug%3F/orderbook", json={"bids": [], "asks": []})
    res = client.fetch_books(["we ird/slug?"])
    assert res.books == {"we ird/slug?": {"bids": [], "asks": []}}


def test_api_key_header(rsps):
    c = LimitlessClient(make_settings(api_key="lmts_secret"))
    rsps.get(BOOK_URL, json=BOOK)
    c.fetch_books([SLUG])
    assert rsps.calls[0].request.headers["X-API-Key"] == "lmts_secret"
    assert "lmts_secret" not in repr(c.settings)
    c.close()


@pytest.mark.parametrize(
    "kw,exc",
    [
        (dict(status=400, json={"statusCode": 400, "message": "Market does not support orderbook (AMM market)"}),
         errors.ClientError),
        (dict(status=404, json={"statusCode": 404, "message": "Market not found", "error": "Not Found"}),
         errors.NotFound),
        (dict(status=500, json={"statusCode": 500}), errors.ServerError),
        (dict(status=502, body="<html>bad gateway</html>"), errors.ServerError),
        (dict(status=200, body="<!DOCTYPE html><html>cf</html>"), errors.BadPayload),
        (dict(status=200, body='{"bids": ['), errors.BadPayload),
        (dict(status=200, json=[{"price": 1}]), errors.BadPayload),
        (dict(status=200, json="ok"), errors.BadPayload),
        (dict(body=requests.exceptions.ReadTimeout("slow")), errors.Timeout),
        (dict(body=requests.exceptions.ConnectTimeout("slow")), errors.Timeout),
        (dict(body=requests.exceptions.ConnectionError("refused")), errors.TransportError),
        (dict(body=requests.exceptions.ChunkedEncodingError("cut")), errors.TransportError),
    ],
)
def test_fetch_books_errors(client, rsps, kw, exc):
    rsps.get(BOOK_URL, **kw)
    with pytest.raises(exc) as ei:
        client.fetch_books([SLUG])
    assert ei.value.venue == "limitless"


def test_fetch_books_client_error_not_retryable(client, rsps):
    rsps.get(BOOK_URL, status=400, json={"message": "Market does not support orderbook (AMM market)"})
    with pytest.raises(errors.ClientError) as ei:
        client.fetch_books([SLUG])
    assert ei.value.status == 400 and ei.value.retryable is False


def test_fetch_books_rate_limited_retry_after(client, rsps):
    rsps.get(BOOK_URL, status=429, json={"statusCode": 429}, headers={"Retry-After": "7"})
    with pytest.raises(errors.RateLimited) as ei:
        client.fetch_books([SLUG])
    assert ei.value.retry_after_s == 7.0
    assert ei.value.status == 429


def test_rate_limited_without_retry_after(client, rsps):
    rsps.get(BOOK_URL, status=429, body="")
    with pytest.raises(errors.RateLimited) as ei:
        client.fetch_books([SLUG])
    assert ei.value.retry_after_s is None


def test_sessions_are_per_thread_and_closed():
    import threading

    c = LimitlessClient(make_settings())
    s_main = c._sessions.get()
    other = []
    t = threading.Thread(target=lambda: other.append(c._sessions.get()))
    t.start()
    t.join()
    assert other[0] is not s_main
    assert c._sessions.get() is s_main
    assert s_main.headers["User-Agent"] == UA
    c.close()
    assert c._sessions._all == []


# ------------------------------------------------------------------- property tests

_CLIENT = LimitlessClient(make_settings())
_INST = inst_for()

_junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["0.5", "1", "0", "1e3", "1E-2", "-0.1", "NaN", "inf", " 0.2 ", "0.1234567", "1e999999999"]),
)
_junk = st.recursive(
    _junk_scalar,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=4)),
    max_leaves=12,
)
_good_level = st.fixed_dictionaries(
    {
        "price": st.one_of(st.floats(0, 1), st.decimals(0, 1, places=3).map(str)),
        "size": st.one_of(st.integers(0, 10**15), st.integers(0, 10**15).map(str)),
    },
    optional={"side": st.sampled_from(["BUY", "SELL"])},
)
_level = st.one_of(st.fixed_dictionaries({"price": _junk_scalar, "size": _junk_scalar}), _good_level, _junk)
_side = st.one_of(st.lists(_good_level, max_size=6), st.lists(_level, max_size=6), _junk)
_book = st.one_of(
    st.fixed_dictionaries(
        {"bids": _side, "asks": _side},
        optional={
            "tokenId": _junk_scalar,
            "midpoint": _junk_scalar,
            "adjustedMidpoint": _junk_scalar,
            "lastTradePrice": _junk_scalar,
        },
    ),
    _junk,
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_book)
def test_property_junk_is_record_or_bad_payload(raw):
    try:
        rec = _CLIENT.normalize(_INST, raw, 1, 1.0)
    except errors.BadPayload:
        return
    assert isinstance(rec, BookRecord)
    bp = [Decimal(p) for p, _ in rec.bids]
    ap = [Decimal(p) for p, _ in rec.asks]
    assert bp == sorted(bp, reverse=True)
    assert ap == sorted(ap)
    for p, s in rec.bids + rec.asks:
        assert Decimal(0) <= Decimal(p) <= Decimal(1)
        assert Decimal(s) >= 0
    orjson.loads(rec.to_json())


_price3 = st.integers(0, 1000).map(lambda n: Decimal(n).scaleb(-3))
_valid_level = st.tuples(_price3, st.integers(0, 10**18), st.sampled_from(["num", "str"]))


@hsettings(max_examples=300, deadline=None)
@given(
    bids=st.lists(_valid_level, max_size=20),
    asks=st.lists(_valid_level, max_size=20),
    decimals=st.integers(0, 18),
)
def test_property_valid_books_exact(bids, asks, decimals):
    def enc(levels):
        out = []
        for price, size, kind in levels:
            if kind == "num":
                out.append({"price": float(price), "size": size})
            else:
                out.append({"price": str(price), "size": str(size)})
        return out

    raw = orjson.loads(orjson.dumps({"bids": enc(bids), "asks": enc(asks)}))  # as if off the wire
    rec = _CLIENT.normalize(inst_for(decimals=decimals), raw, 1, 1.0)
    scale = Decimal(10) ** decimals

    def expected(levels):
        return Counter((price, Decimal(size) / scale) for price, size, _ in levels)

    def got(levels):
        return Counter((Decimal(p), Decimal(s)) for p, s in levels)

    assert got(rec.bids) == expected(bids)
    assert got(rec.asks) == expected(asks)
    for p, s in rec.bids + rec.asks:  # exact size: raw == scaled * 10**decimals
        assert (Decimal(s) * scale) == (Decimal(s) * scale).to_integral_value()
        assert "e" not in s.lower() and "e" not in p.lower()
    bp = [Decimal(p) for p, _ in rec.bids]
    ap = [Decimal(p) for p, _ in rec.asks]
    assert bp == sorted(bp, reverse=True)
    assert ap == sorted(ap)
    assert rec.extra["size_decimals"] == decimals
