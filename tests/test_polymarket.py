"""PolymarketClient: discovery paging, /books join, typed errors, normalize (incl. properties).

Fixtures follow the illustrative payloads in shared/venues/polymarket.md. Discovery (httpx) is
mocked with respx; book requests (urllib3) go to a real HTTP server on loopback; nothing here
talks to a live venue.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import respx
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collector.config.settings import PolymarketSettings
from collector.model import errors
from collector.model.records import BookRecord, Instrument
from collector.venues.polymarket import CLIENT, PolymarketClient
from collector.venues.polymarket_reply import body_of
from tests.http_stub import CUT_SHORT, HANG_UP, STALL, Reply, closed_port_url, http_stub

GAMMA = "https://gamma.test"
CLOB = "https://clob.test"
KEYSET = f"{GAMMA}/markets/keyset"
UA = "test-recorder/9.9 (+https://example.invalid)"

YES = "10431877201855129384409912345678901234567890123456789012345678901234"
NO = "88712340987612345098761234509876123450987612345098761234509876123"
GONE = "55555555555555555555555555555555555555555555555555555555555555550000"
COND = "0x3b1c7e52d0a4f1c9b8e27a6d5c4b3a2918f7e6d5c4b3a29187f6e5d4c3b2a19f"


def _settings(**kw: Any) -> PolymarketSettings:
    base = dict(
        gamma_url=GAMMA,
        clob_url=CLOB,
        user_agent=UA,
        discovery_rate_requests=100_000,
        discovery_rate_window_s=0.001,
        discovery_retry_max_s=0.0,  # page retries without waiting
        connect_timeout_s=1.5,
        read_timeout_s=2.5,
        discovery_timeout_s=7.0,
    )
    base.update(kw)
    return PolymarketSettings(**base)


@pytest.fixture
def client():
    c = PolymarketClient(_settings())
    yield c
    c.close()


# --------------------------------------------------------------------------- fixtures


def market(**over: Any) -> dict[str, Any]:
    """The doc's illustrative keyset market (JSON-string arrays, camelCase)."""
    m = {
        "id": "612345",
        "question": "Will the Fed cut rates at the July 2026 meeting?",
        "conditionId": COND,
        "questionID": "0x8a41d2c3b4a59687f1e2d3c4b5a69788f9e0d1c2b3a4958677e8f9a0b1c2d3e4",
        "slug": "will-the-fed-cut-rates-at-the-july-2026-meeting",
        "startDate": "2026-05-02T14:10:05.412Z",
        "startDateIso": "2026-05-02",
        "endDate": "2026-07-29T18:00:00Z",
        "endDateIso": "2026-07-29",
        "active": True,
        "closed": False,
        "archived": False,
        "acceptingOrders": True,
        "acceptingOrdersTimestamp": "2026-05-02T14:12:40Z",
        "enableOrderBook": True,
        "outcomes": '["Yes", "No"]',
        "outcomePrices": '["0.415", "0.585"]',
        "clobTokenIds": f'["{YES}", "{NO}"]',
        "orderPriceMinTickSize": 0.001,
        "orderMinSize": 5,
        "negRisk": False,
        "volume": "183422.551203",
        "volumeNum": 183422.551203,
        "volume24hr": 12044.2,
        "liquidity": "20511.30412",
        "liquidityNum": 20511.30412,
        "bestBid": 0.414,
        "bestAsk": 0.416,
        "spread": 0.002,
        "lastTradePrice": 0.415,
        "umaResolutionStatuses": "[]",
        "feesEnabled": True,
        "feeType": "economics_fees",
        "feeSchedule": {"exponent": 1, "rate": 0.05, "takerOnly": True, "rebateRate": 0.25},
        "events": [{"id": "40211", "slug": "fed-decision-in-july-2026", "title": "Fed decision in July?"}],
    }
    m.update(over)
    return m


def simple_market(n: int, **over: Any) -> dict[str, Any]:
    base = dict(id=str(n), conditionId=f"0xc{n:04d}", question=f"Q{n}?", slug=f"m-{n}")
    base["clobTokenIds"] = f'["{n}01", "{n}02"]'
    base.update(over)
    return market(**base)


def page(markets: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "$schema": "https://gamma-api.polymarket.com/schemas/MarketsKeysetPage.json",
        "markets": markets,
    }
    if next_cursor is not None:
        p["next_cursor"] = next_cursor
    return p


def book(asset_id: str = YES, **over: Any) -> dict[str, Any]:
    """The doc's illustrative /book reply: string numbers, bids ascending, asks descending."""
    b = {
        "market": COND,
        "asset_id": asset_id,
        "timestamp": "1781712345678",
        "hash": "9f2c4e61a0b3d5c7e9f1a2b4c6d8e0f1a3b5c7d9",
        "bids": [
            {"price": "0.395", "size": "15200.5"},
            {"price": "0.41", "size": "3100"},
            {"price": "0.414", "size": "88.12"},
        ],
        "asks": [
            {"price": "0.45", "size": "9000"},
            {"price": "0.42", "size": "450.75"},
            {"price": "0.416", "size": "120"},
        ],
        "min_order_size": "5",
        "tick_size": "0.001",
        "neg_risk": False,
        "last_trade_price": "0.415",
    }
    b.update(over)
    return b


def no_book() -> dict[str, Any]:
    return {
        "market": COND,
        "asset_id": NO,
        "timestamp": "1781712345601",
        "hash": "03ab5c7d9e1f2a3b4c5d6e7f8a9b0c1d2e3f77e1",
        "bids": [{"price": "0.58", "size": "450.75"}, {"price": "0.584", "size": "120"}],
        "asks": [{"price": "0.59", "size": "3100"}, {"price": "0.586", "size": "88.12"}],
        "min_order_size": "5",
        "tick_size": "0.001",
        "neg_risk": False,
        "last_trade_price": "0.585",
    }


def inst(poll_key: str = YES, **over: Any) -> Instrument:
    data = dict(venue="polymarket", poll_key=poll_key, market_id=COND, outcome="Yes", tick_size="0.01")
    data.update(over)
    return Instrument(**data)


def json_response(payload: Any, status: int = 200, **kw: Any) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(payload), headers={"content-type": "application/json"}, **kw)


def qs(request: httpx.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.url.params.multi_items():
        out.setdefault(k, []).append(v)
    return out


# --------------------------------------------------------------------------- module shape


def test_module_shape():
    c = CLIENT(_settings(books_batch_size=137))
    try:
        assert CLIENT is PolymarketClient
        assert c.name == "polymarket" == PolymarketClient.name
        assert c.batch_size == 137
    finally:
        c.close()


# --------------------------------------------------------------------------- discovery


@respx.mock
def test_discover_pages_with_after_cursor_and_resends_filters(client):
    pages = {
        None: page([simple_market(1)], "CUR_A"),
        "CUR_A": page([simple_market(2)], "CUR_B"),
        "CUR_B": page([simple_market(3)]),  # final page: next_cursor absent
    }
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(pages[request.url.params.get("after_cursor")])

    respx.get(KEYSET).mock(side_effect=answer)
    res = client.discover()

    assert res.pages == 3
    assert [q for r in seen for q in [qs(r)]] == [
        {"closed": ["false"], "limit": ["100"]},
        {"closed": ["false"], "limit": ["100"], "after_cursor": ["CUR_A"]},
        {"closed": ["false"], "limit": ["100"], "after_cursor": ["CUR_B"]},
    ]
    for r in seen:  # never the silently-ignored names
        assert "cursor" not in r.url.params and "next_cursor" not in r.url.params
        assert r.headers["user-agent"] == UA
        assert r.extensions["timeout"]["read"] == 7.0
    assert [i.poll_key for i in res.instruments] == ["101", "102", "201", "202", "301", "302"]
    assert res.skipped == {}


@respx.mock
def test_discover_page_limit_from_settings():
    c = PolymarketClient(_settings(gamma_page_limit=25))
    route = respx.get(KEYSET).mock(return_value=json_response(page([])))
    try:
        res = c.discover()
    finally:
        c.close()
    assert res.pages == 1 and res.instruments == []
    assert route.calls.last.request.url.params["limit"] == "25"


@pytest.mark.parametrize("end", [None, "", "LTE=", 0])
@respx.mock
def test_discover_stops_at_end_cursor(client, end):
    p = page([simple_market(1)])
    if end is not None:
        p["next_cursor"] = end
    route = respx.get(KEYSET).mock(return_value=json_response(p))
    res = client.discover()
    assert route.call_count == 1 and res.pages == 1
    assert len(res.instruments) == 2


@respx.mock
def test_discover_repeating_cursor_guard(client, caplog):
    # The server keeps answering with the same cursor (the classic "page 1 forever" symptom).
    route = respx.get(KEYSET).mock(side_effect=lambda r: json_response(page([simple_market(1)], "STUCK")))
    with caplog.at_level(logging.WARNING, logger="collector.venues.polymarket"):
        res = client.discover()
    assert route.call_count == 2 and res.pages == 2
    assert any("repeated" in r.getMessage() for r in caplog.records)
    assert res.paging_stops == {"repeated_cursor": 1}
    # the same market seen twice yields its instruments once
    assert [i.poll_key for i in res.instruments] == ["101", "102"]
    assert res.skipped == {"duplicate": 1}


@respx.mock
def test_discover_page_cap(client, caplog):
    counter = iter(range(1, 10_000))

    def answer(request):
        n = next(counter)
        return json_response(page([simple_market(n)], f"C{n}"))

    respx.get(KEYSET).mock(side_effect=answer)
    client.max_pages = 5
    with caplog.at_level(logging.WARNING, logger="collector.venues.polymarket"):
        res = client.discover()
    assert res.pages == 5
    assert any("page cap" in r.getMessage() for r in caplog.records)
    assert res.paging_stops == {"page_bound": 1}
    assert len(res.instruments) == 10


@respx.mock
def test_discover_follows_cursor_past_short_pages(client):
    """Gamma caps `limit` (100): a page shorter than asked for is not the end of the list."""
    pages = {None: page([simple_market(1)], "A"), "A": page([simple_market(2), simple_market(3)], "B"),
             "B": page([simple_market(4)])}
    route = respx.get(KEYSET).mock(side_effect=lambda r: json_response(pages[r.url.params.get("after_cursor")]))
    res = client.discover()
    assert route.call_count == 3 and res.pages == 3
    assert [r.request.url.params["limit"] for r in route.calls] == ["100"] * 3
    assert sorted(i.poll_key for i in res.instruments) == sorted(f"{n}0{k}" for n in (1, 2, 3, 4) for k in (1, 2))
    assert res.paging_stops == {}


@respx.mock
def test_discover_stops_on_empty_page_with_cursor(client, caplog):
    """An empty page that still carries a cursor ends the list (no walk to the page bound)."""
    counter = iter(range(10_000))
    pages = {None: page([simple_market(1)], "A")}
    route = respx.get(KEYSET).mock(
        side_effect=lambda r: json_response(pages.get(r.url.params.get("after_cursor")) or page([], f"E{next(counter)}"))
    )
    with caplog.at_level(logging.INFO, logger="collector.venues.polymarket"):
        res = client.discover()
    assert route.call_count == 2 and res.pages == 2
    assert [i.poll_key for i in res.instruments] == ["101", "102"]
    assert any("empty page 2" in r.getMessage() for r in caplog.records)


@respx.mock
def test_discover_filters_and_skip_reasons(client):
    markets = [
        simple_market(1),
        simple_market(2, closed=True),
        simple_market(3, acceptingOrders=False),
        simple_market(4, enableOrderBook=False),
        simple_market(5, clobTokenIds=""),
        simple_market(6, clobTokenIds="[]"),
        simple_market(7, clobTokenIds='["", "702"]'),
        simple_market(8, clobTokenIds=None),
        simple_market(9, outcomes='["Yes"]'),  # does not pair with 2 tokens
        simple_market(10, clobTokenIds="[not json"),
        simple_market(11, conditionId=None),
        "not a market",
        simple_market(12, clobTokenIds='[1201, 1202]'),  # numeric ids would lose precision
        simple_market(13, outcomes='{"a": 1}'),
        simple_market(14, acceptingOrders=None),  # absent/None is not "accepting"
        simple_market(15),
    ]
    respx.get(KEYSET).mock(return_value=json_response(page(markets)))
    res = client.discover()
    assert [i.poll_key for i in res.instruments] == ["101", "102", "1501", "1502"]
    assert res.skipped == {
        "closed": 1,
        "not_accepting_orders": 2,
        "no_order_book": 1,
        "tokens_pending": 4,
        "bad_market": 6,
    }


@respx.mock
def test_discover_instrument_fields_from_doc_market(client):
    respx.get(KEYSET).mock(return_value=json_response(page([market()])))
    res = client.discover()
    yes, no = res.instruments
    assert yes.poll_key == YES and no.poll_key == NO
    assert yes.instrument_id == f"polymarket:{YES}"
    assert (yes.outcome, no.outcome) == ("Yes", "No")
    assert yes.venue == "polymarket"
    assert yes.market_id == COND
    assert yes.title == "Will the Fed cut rates at the July 2026 meeting?"
    assert yes.slug == "will-the-fed-cut-rates-at-the-july-2026-meeting"
    assert yes.expires_at_ms == 1785348000000  # 2026-07-29T18:00:00Z
    assert yes.starts_at_ms == 1777731005412  # startDate 2026-05-02T14:10:05.412Z
    assert yes.tick_size == "0.001"
    assert yes.event_slug == "fed-decision-in-july-2026"
    assert yes.series_slug is None and yes.recurrence is None
    assert yes.tags == ()
    assert yes.volume_24h == 12044.2
    assert yes.liquidity == 20511.30412
    assert yes.flat()["meta"] == {  # the typed PolymarketMeta, as written
        "gamma_id": "612345",
        "condition_id": COND,
        "question_id": "0x8a41d2c3b4a59687f1e2d3c4b5a69788f9e0d1c2b3a4958677e8f9a0b1c2d3e4",
        "neg_risk": False,
        "token_index": 0,
        "other_token": NO,
        "end_date": "2026-07-29T18:00:00Z",
    }
    assert no.meta.token_index == 1 and no.meta.other_token == YES
    orjson.dumps(yes.flat())  # JSON-ready


@respx.mock
def test_discover_non_yes_no_labels_by_index_and_real_arrays(client):
    m = simple_market(
        1,
        outcomes=["Nationals", "Mets"],  # real arrays are tolerated too
        clobTokenIds=["NAT", "MET"],
    )
    m2 = simple_market(2, outcomes='["Down", "Up"]', clobTokenIds='["DOWN", "UP"]')
    respx.get(KEYSET).mock(return_value=json_response(page([m, m2])))
    res = client.discover()
    got = {i.poll_key: i.outcome for i in res.instruments}
    assert got == {"NAT": "Nationals", "MET": "Mets", "DOWN": "Down", "UP": "Up"}


@respx.mock
def test_discover_series_tags_times(client):
    m = simple_market(
        1,
        endDate="not a date",
        eventStartTime="2026-07-01 12:00:00+00",  # space separator, 2-digit offset
        liquidityNum=None,
        liquidity="123.5",
        volume24hr=None,
        orderPriceMinTickSize=None,
        tags=[{"id": "1", "slug": "crypto", "label": "Crypto"}, "btc", {"label": "Only Label"}, 7],
        events=[
            {
                "slug": "btc-up-or-down-15m-1781712000",
                "startTime": "2026-01-01T00:00:00Z",
                "series": [{"slug": "btc-up-or-down-15m", "recurrence": "15m"}],
                "tags": [{"slug": "crypto"}, {"slug": "up-or-down", "label": "Up or Down"}],
            }
        ],
    )
    m2 = simple_market(
        2,
        endDate=None,
        startDate="2026-05-02",
        events=[{"slug": "ev2", "seriesSlug": "direct-series", "series": [{"slug": "nested"}]}],
    )
    m3 = simple_market(3, events="junk", tags="junk")
    respx.get(KEYSET).mock(return_value=json_response(page([m, m2, m3])))
    res = client.discover()
    by = {i.poll_key: i for i in res.instruments}
    a = by["101"]
    assert a.expires_at_ms is None and a.meta.end_date == "not a date"
    assert a.starts_at_ms == 1782907200000  # eventStartTime wins over events[0].startTime
    assert a.liquidity == 123.5 and a.volume_24h is None and a.tick_size is None
    assert a.event_slug == "btc-up-or-down-15m-1781712000"
    assert a.series_slug == "btc-up-or-down-15m" and a.recurrence == "15m"
    assert a.tags == ("crypto", "btc", "Only Label", "up-or-down", "Up or Down")
    b = by["201"]
    assert b.expires_at_ms is None and b.meta.end_date is None
    assert b.starts_at_ms == 1777680000000  # date-only startDate, UTC midnight
    assert b.series_slug == "direct-series" and b.recurrence is None
    c = by["301"]
    assert c.event_slug is None and c.tags == ("junk",)  # a bare string is one tag


@respx.mock
def test_discover_wrong_envelope_is_bad_payload(client):
    respx.get(KEYSET).mock(return_value=json_response([market()]))  # array, not the envelope
    with pytest.raises(errors.BadPayload):
        client.discover()


@pytest.mark.parametrize(
    "response,exc",
    [
        (httpx.Response(422, json={"type": "validation error", "error": "bad"}), errors.ClientError),
        (httpx.Response(500, json={"type": "internal error", "error": "cannot get the information"}), errors.ServerError),
        (httpx.Response(403, text="<!DOCTYPE html><title>Attention Required</title>"), errors.ClientError),
        (httpx.Response(200, text="<html>cf challenge</html>"), errors.BadPayload),
        (httpx.ReadTimeout("slow"), errors.Timeout),
        (httpx.ConnectError("refused"), errors.TransportError),
    ],
)
@respx.mock
def test_discover_errors_are_typed(client, response, exc):
    _mock(respx.get(KEYSET), response)
    with pytest.raises(exc):
        client.discover()


@respx.mock
def test_discover_failing_second_page_fails_discovery(client):
    """A page that keeps failing fails the whole pass (a partial universe must not look like
    markets closing), after discovery_page_attempts tries."""
    first = json_response(page([simple_market(1)], "A"))
    route = respx.get(KEYSET).mock(side_effect=lambda r: first if "after_cursor" not in r.url.params else httpx.Response(502))
    with pytest.raises(errors.ServerError):
        client.discover()
    assert route.call_count == 1 + 4


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(502), httpx.Response(429), httpx.Response(200, text="<html>cf</html>"), httpx.ReadTimeout("slow")],
)
@respx.mock
def test_discover_retries_a_failed_page(client, failure):
    replies = iter([json_response(page([simple_market(1)], "A")), failure, json_response(page([simple_market(2)], None))])

    def reply(request):
        r = next(replies)
        if isinstance(r, Exception):
            raise r
        return r

    route = respx.get(KEYSET).mock(side_effect=reply)
    res = client.discover()
    assert route.call_count == 3
    assert (res.pages, res.retries) == (2, 1)
    assert sorted({i.market_id for i in res.instruments}) == ["0xc0001", "0xc0002"]
    assert route.calls[2].request.url.params["after_cursor"] == "A"  # the same page again


@respx.mock
def test_discover_does_not_retry_a_client_error(client):
    route = respx.get(KEYSET).mock(return_value=httpx.Response(404))
    with pytest.raises(errors.NotFound):
        client.discover()
    assert route.call_count == 1


def test_discover_paced():
    c = PolymarketClient(_settings(discovery_rate_requests=10, discovery_rate_window_s=0.5))  # 50 ms apart
    cursors = iter([(1, "A"), (2, "B"), (3, None)])
    try:
        with respx.mock:
            def answer(request):
                n, c = next(cursors)
                return json_response(page([simple_market(n)], c))

            respx.get(KEYSET).mock(side_effect=answer)
            t0 = time.monotonic()
            res = c.discover()
            elapsed = time.monotonic() - t0
    finally:
        c.close()
    assert res.pages == 3
    assert elapsed >= 0.09


def _mock(route, response):
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)


# --------------------------------------------------------------------------- /books
# Book requests go through urllib3 (collector.venues.pooled): these talk to a real HTTP server
# on loopback (tests/http_stub.py), not to a mock of the library.


@pytest.fixture
def stub():
    with http_stub() as s:
        yield s


@pytest.fixture
def bclient(stub):
    c = PolymarketClient(_settings(clob_url=stub.url, read_timeout_s=0.5))
    yield c
    c.close()


def test_fetch_books_joins_by_asset_id(stub, bclient):
    extra = book("999", bids=[], asks=[])  # a book nobody asked for
    reply = [no_book(), extra, book(YES)]  # shuffled, GONE silently left out
    stub.route("POST", "/books", Reply.json(reply))
    before = bclient.unrequested_books
    t0 = int(time.time() * 1000)
    res = bclient.fetch_books([YES, NO, GONE, YES])

    req = stub.called("POST", "/books")[-1]
    assert orjson.loads(req.body) == [{"token_id": YES}, {"token_id": NO}, {"token_id": GONE}]
    assert req.headers["user-agent"] == UA
    assert req.headers["content-type"] == "application/json"
    assert "gzip" in req.headers["accept-encoding"]
    assert set(res.books) == {YES, NO}
    yes = body_of(res.books[YES])
    assert yes["asset_id"] == YES and yes["hash"].startswith("9f2c") and res.books[YES].hash == yes["hash"]
    assert res.books[YES].hash_ok is False  # the doc example's hash is illustrative
    assert body_of(res.books[NO])["asset_id"] == NO
    assert set(res.errors) == {GONE}
    assert isinstance(res.errors[GONE], errors.NotFound)
    assert res.ts_ms >= t0 and res.latency_ms >= 0
    assert bclient.unrequested_books == before + 1


def test_fetch_books_gzip_reply_is_decoded(stub, bclient):
    import gzip

    stub.route("POST", "/books", Reply(200, gzip.compress(orjson.dumps([book(YES)])),
                                       {"Content-Type": "application/json", "Content-Encoding": "gzip"}))
    res = bclient.fetch_books([YES])
    assert set(res.books) == {YES} and body_of(res.books[YES])["asset_id"] == YES


def test_fetch_books_repeat_poll_gives_the_same_books(stub, bclient):
    """The second poll of unchanged books takes the repeat shortcut: same result as decoding."""
    stub.route("POST", "/books", Reply.json([book(YES), book(NO)]))
    first = bclient.fetch_books([YES, NO])
    again = bclient.fetch_books([YES, NO])
    for k in (YES, NO):
        a, b = first.books[k], again.books[k]
        assert (a.content, a.ob_ts_ms, a.hash, a.hash_ok) == (b.content, b.ob_ts_ms, b.hash, b.hash_ok)
        assert bclient.normalize(inst(k), b, 1, 1.0).to_json() == bclient.normalize(inst(k), a, 1, 1.0).to_json()


def test_fetch_books_skips_unusable_elements(stub, bclient):
    reply = ["junk", None, {"no": "asset"}, {"asset_id": ""}, book(YES)]
    stub.route("POST", "/books", Reply.json(reply))
    res = bclient.fetch_books([YES, NO])
    assert set(res.books) == {YES}
    assert isinstance(res.errors[NO], errors.NotFound)
    assert bclient.unusable_books == 4


def test_fetch_books_all_unusable_is_bad_payload(stub, bclient):
    stub.route("POST", "/books", Reply.json([1, "x", {"bids": []}]))
    with pytest.raises(errors.BadPayload):
        bclient.fetch_books([YES])


def test_fetch_books_empty_reply_means_all_missing(stub, bclient):
    stub.route("POST", "/books", Reply.json([]))
    res = bclient.fetch_books([YES, NO])
    assert res.books == {} and set(res.errors) == {YES, NO}
    assert all(isinstance(e, errors.NotFound) for e in res.errors.values())


def test_fetch_books_object_instead_of_array(stub, bclient):
    stub.route("POST", "/books", Reply.json({"error": "oops"}))
    with pytest.raises(errors.BadPayload):
        bclient.fetch_books([YES])


def test_fetch_books_limits(stub, bclient):
    with pytest.raises(ValueError):
        bclient.fetch_books([str(i) for i in range(501)])
    res = bclient.fetch_books([])  # no request for nothing
    assert res.books == {} and res.errors == {} and stub.calls == []


def test_fetch_books_500_keys_is_one_request(stub, bclient):
    keys = [str(i) for i in range(500)]
    stub.route("POST", "/books", Reply.json([]))
    res = bclient.fetch_books(keys + keys[:10])
    assert len(stub.calls) == 1
    assert len(orjson.loads(stub.calls[-1].body)) == 500
    assert len(res.errors) == 500


ERROR_CASES = [
    (Reply.json({"error": "No orderbook exists for the requested token id"}, 404), errors.NotFound),
    (Reply.json({"error": "Invalid token id"}, 400), errors.ClientError),
    (Reply.json({"error": "Payload exceeds the limit"}, 400), errors.ClientError),
    (Reply.json({"error": "internal"}, 500), errors.ServerError),
    (Reply.text("upstream down", 503), errors.ServerError),
    (Reply.json({"error": "service not ready"}, 425), errors.ServerError),
    (Reply.text("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title>", 403), errors.ClientError),
    (Reply.text("error code: 1010", 403), errors.ClientError),
    (Reply.text("Too Many Requests", 429), errors.RateLimited),
    (Reply.text("", 302, Location="https://elsewhere.test/books"), errors.ClientError),  # not followed
    (Reply.text('[{"asset_id": "1", "bids": ['), errors.BadPayload),
    (Reply.text("<html><body>Just a moment...</body></html>"), errors.BadPayload),
    (Reply.text(""), errors.BadPayload),
    (Reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}), errors.BadPayload),
    (STALL, errors.Timeout),  # read timeout 0.5 s
    (HANG_UP, errors.TransportError),
    (CUT_SHORT, errors.TransportError),
]
ERROR_IDS = [a if isinstance(a, str) else f"{a.status}-{a.body[:12]!r}" for a, _ in ERROR_CASES]


@pytest.mark.parametrize("answer,exc", ERROR_CASES, ids=ERROR_IDS)
def test_fetch_books_errors_are_typed(stub, bclient, answer, exc):
    stub.route("POST", "/books", answer)
    with pytest.raises(exc) as ei:
        bclient.fetch_books([YES])
    assert ei.value.venue == "polymarket"
    if isinstance(answer, Reply) and answer.status != 200:
        assert ei.value.status == answer.status


@pytest.mark.parametrize("answer,exc", ERROR_CASES, ids=ERROR_IDS)
def test_fetch_book_errors_are_typed(stub, bclient, answer, exc):
    stub.route("GET", "/book", answer)
    with pytest.raises(exc):
        bclient.fetch_book(YES)


def test_connection_refused_is_a_transport_error():
    c = PolymarketClient(_settings(clob_url=closed_port_url()))
    try:
        with pytest.raises(errors.TransportError) as ei:
            c.fetch_books([YES])
        assert ei.value.venue == "polymarket"
    finally:
        c.close()


def test_book_requests_use_the_environment_proxy(stub, monkeypatch):
    """Like httpx (trust_env): HTTP_PROXY is used, and NO_PROXY exempts a host."""
    stub.route("POST", "/books", Reply.json([book(YES)]))
    monkeypatch.setenv("HTTP_PROXY", stub.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    c = PolymarketClient(_settings(clob_url="http://clob.invalid"))
    try:
        assert set(c.fetch_books([YES]).books) == {YES}
        assert stub.calls[-1].path == "http://clob.invalid/books" or stub.calls[-1].path == "/books"
        assert stub.calls[-1].headers["host"] == "clob.invalid"  # asked of the proxy, for that host
    finally:
        c.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    d = PolymarketClient(_settings(clob_url=stub.url))
    try:
        n = len(stub.calls)
        assert set(d.fetch_books([YES]).books) == {YES} and stub.calls[n].headers["host"].startswith("127.0.0.1")
    finally:
        d.close()


@pytest.mark.parametrize("header,expected", [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None)])
def test_rate_limited_retry_after(stub, bclient, header, expected):
    headers = {"Retry-After": header} if header is not None else {}
    stub.route("POST", "/books", Reply.text("Too Many Requests", 429, **headers))
    with pytest.raises(errors.RateLimited) as ei:
        bclient.fetch_books([YES])
    assert ei.value.retry_after_s == expected


def test_fetch_book_single(stub, bclient):
    stub.route("GET", "/book", Reply.json(book(YES)))
    res = bclient.fetch_book(YES)
    req = stub.called("GET", "/book")[-1]
    assert req.query["token_id"] == YES
    assert req.headers["user-agent"] == UA
    assert set(res.books) == {YES} and res.errors == {}
    rec = bclient.normalize(inst(), res.books[YES], res.ts_ms, res.latency_ms)
    assert rec.best_bid == "0.414"


def test_books_endpoint_single_uses_get_book(stub):
    """books_endpoint="single": batch size 1, GET /book per token, a 404 is a per-key NotFound."""
    c = PolymarketClient(_settings(clob_url=stub.url, books_endpoint="single", books_batch_size=100))
    assert c.batch_size == 1
    assert PolymarketClient(_settings()).batch_size == 500  # the default stays POST /books (the venue maximum)

    def answer(req):
        tid = req.query["token_id"]
        if tid == GONE:
            return Reply.json({"error": "No orderbook exists for the requested token id"}, 404)
        return Reply.json(book(tid))

    stub.route("GET", "/book", answer)
    try:
        t0 = int(time.time() * 1000)
        res = c.fetch_books([YES])
        gets = stub.called("GET", "/book")
        assert len(gets) == 1 and not stub.called("POST", "/books")
        assert gets[-1].query["token_id"] == YES and gets[-1].headers["user-agent"] == UA
        assert set(res.books) == {YES} and res.errors == {}
        assert res.ts_ms >= t0 and res.latency_ms >= 0
        assert c.normalize(inst(), res.books[YES], res.ts_ms, res.latency_ms).best_bid == "0.414"

        res = c.fetch_books([GONE])  # 404: a per-instrument failure, not a raised error
        assert res.books == {} and set(res.errors) == {GONE}
        assert isinstance(res.errors[GONE], errors.NotFound) and res.errors[GONE].status == 404

        res = c.fetch_books([YES, GONE, YES])  # several keys (not sent by the lane): one GET each
        assert set(res.books) == {YES} and set(res.errors) == {GONE}
        assert len(stub.called("GET", "/book")) == 4

        stub.route("GET", "/book", Reply.text("upstream down", 503))  # anything else raises
        with pytest.raises(errors.ServerError):
            c.fetch_books([YES])
        stub.route("GET", "/book", Reply.text("Too Many Requests", 429, **{"Retry-After": "3"}))
        with pytest.raises(errors.RateLimited) as ei:
            c.fetch_books([YES])
        assert ei.value.retry_after_s == 3.0
    finally:
        c.close()


def test_fetch_book_wrong_type(stub, bclient):
    stub.route("GET", "/book", Reply.json([book(YES)]))
    with pytest.raises(errors.BadPayload):
        bclient.fetch_book(YES)


def test_thread_local_clients_and_close(stub):
    c = PolymarketClient(_settings(clob_url=stub.url))
    mine = c._clients.get()  # discovery's httpx client
    assert c._clients.get() is mine
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(c._clients.get()))
    t.start()
    t.join()
    assert other[0] is not mine
    assert mine.headers["user-agent"] == UA
    # one TLS context (CA bundle loaded once) shared by every thread's client, books' pools included
    assert mine._transport._pool._ssl_context is other[0]._transport._pool._ssl_context
    assert c._books._managers.get().direct.connection_pool_kw["ssl_context"] is c._ssl_context()
    stub.route("GET", "/book", Reply.json(book(YES)))
    assert set(c.fetch_book(YES).books) == {YES}
    c.close()
    assert mine.is_closed and other[0].is_closed
    assert set(c.fetch_book(YES).books) == {YES}  # still usable after close(): fresh pools are opened
    assert c._clients.get() is not mine
    c.close()


# --------------------------------------------------------------------------- normalize


def test_normalize_doc_example(client):
    rec = client.normalize(inst(), book(YES), ts_ms=1781712345999, latency_ms=12.3456)
    assert isinstance(rec, BookRecord)
    assert rec.bids == [("0.414", "88.12"), ("0.41", "3100"), ("0.395", "15200.5")]
    assert rec.asks == [("0.416", "120"), ("0.42", "450.75"), ("0.45", "9000")]
    assert rec.best_bid == "0.414" and rec.best_ask == "0.416"
    assert rec.ob_ts_ms == 1781712345678
    assert rec.hash == "9f2c4e61a0b3d5c7e9f1a2b4c6d8e0f1a3b5c7d9"
    assert rec.tick_size == "0.001"  # from the book, not the instrument's 0.01
    assert rec.market_id == COND and rec.outcome == "Yes"
    assert rec.instrument_id == f"polymarket:{YES}" and rec.poll_key == YES
    assert rec.extra == {"last_trade_price": "0.415", "min_order_size": "5", "neg_risk": False}

    raw = rec.to_json()
    assert b"0.414" in raw and b'"best_bid":0.414' in raw and b'"mid":0.415' in raw
    assert b'"spread":0.002' in raw
    out = orjson.loads(raw)
    assert out["best_bid"] == 0.414 and out["best_ask"] == 0.416
    assert out["mid"] == 0.415 and out["spread"] == 0.002
    assert out["bids"][0] == [0.414, 88.12]
    assert out["ob_ts_ms"] == 1781712345678 and out["ts_ms"] == 1781712345999
    assert out["hash"] == "9f2c4e61a0b3d5c7e9f1a2b4c6d8e0f1a3b5c7d9"
    assert out["last_trade_price"] == 0.415 and out["min_order_size"] == 5 and out["neg_risk"] is False
    assert out["tick_size"] == 0.001


def test_normalize_canonical_text_and_optional_fields(client):
    raw = book(
        YES,
        bids=[{"price": "0.430", "size": "10.0"}],
        asks=[],
        last_trade_price="",
        tick_size=None,
        timestamp="not-a-number",
    )
    del raw["hash"], raw["min_order_size"], raw["neg_risk"]
    rec = client.normalize(inst(), raw, 1, 0.0)
    assert rec.bids == [("0.43", "10")] and rec.asks == []
    assert rec.best_ask is None
    assert rec.ob_ts_ms is None and rec.hash is None
    assert rec.tick_size == "0.01"  # falls back to the instrument
    assert rec.extra == {}
    out = orjson.loads(rec.to_json())
    assert out["mid"] is None and out["spread"] is None and "last_trade_price" not in out


def test_normalize_no_book_mirrored(client):
    rec = client.normalize(inst(NO, outcome="No"), no_book(), 1, 1.0)
    assert rec.best_bid == "0.584" and rec.best_ask == "0.586"
    out = orjson.loads(rec.to_json())
    assert out["mid"] == 0.585 and out["spread"] == 0.002


def test_normalize_keeps_zero_sizes_and_duplicate_prices(client):
    raw = book(YES, bids=[{"price": "0.1", "size": "0"}, {"price": "0.2", "size": "1"}, {"price": "0.1", "size": "2"}])
    rec = client.normalize(inst(), raw, 1, 1.0)
    assert rec.bids[0] == ("0.2", "1")
    assert sorted(rec.bids[1:]) == [("0.1", "0"), ("0.1", "2")]


def test_normalize_sorts_regardless_of_input_order(client):
    raw = book(
        YES,
        bids=[{"price": "0.3", "size": "1"}, {"price": "0.5", "size": "1"}, {"price": "0.05", "size": "1"}],
        asks=[{"price": "0.7", "size": "1"}, {"price": "0.6", "size": "1"}, {"price": "0.65", "size": "1"}],
    )
    rec = client.normalize(inst(), raw, 1, 1.0)
    assert [p for p, _ in rec.bids] == ["0.5", "0.3", "0.05"]
    assert [p for p, _ in rec.asks] == ["0.6", "0.65", "0.7"]


def test_normalize_long_prices_sorted_exactly(client):
    # 0.1000000000000000001 and 0.1 are the same double: ordering must use exact decimals
    raw = book(
        YES,
        bids=[{"price": "0.1000000000000000001", "size": "1"}, {"price": "0.1", "size": "2"}],
        asks=[{"price": "0.1000000000000000001", "size": "1"}, {"price": "0.1", "size": "2"}],
    )
    rec = client.normalize(inst(), raw, 1, 1.0)
    assert rec.bids[0][0] == "0.1000000000000000001"
    assert rec.asks[0][0] == "0.1"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("bids"),
        lambda b: b.pop("asks"),
        lambda b: b.update(bids=None),
        lambda b: b.update(asks={"price": "0.4", "size": "1"}),
        lambda b: b.update(bids=[{"price": "0.4"}]),
        lambda b: b.update(bids=[{"size": "1"}]),
        lambda b: b.update(asks=[["0.4", "1"]]),
        lambda b: b.update(asks=["0.4"]),
        lambda b: b.update(bids=[{"price": "abc", "size": "1"}]),
        lambda b: b.update(bids=[{"price": "-0.4", "size": "1"}]),
        lambda b: b.update(bids=[{"price": "NaN", "size": "1"}]),
        lambda b: b.update(bids=[{"price": "0.4", "size": None}]),
        lambda b: b.update(bids=[{"price": True, "size": "1"}]),
        lambda b: b.update(bids=[{"price": "1e999999999", "size": "1"}]),
        lambda b: b.update(bids=[{"price": "0." + "1" * 100, "size": "1"}]),
        lambda b: b.update(asset_id=NO),
        lambda b: b.pop("asset_id"),
    ],
)
def test_normalize_garbage_is_bad_payload(client, mutate):
    raw = book(YES)
    mutate(raw)
    t0 = time.monotonic()
    with pytest.raises(errors.BadPayload):
        client.normalize(inst(), raw, 1, 1.0)
    assert time.monotonic() - t0 < 0.5  # no exponent bombs


@pytest.mark.parametrize("raw", [None, [], "book", 3, [book(YES)]])
def test_normalize_non_object_is_bad_payload(client, raw):
    with pytest.raises(errors.BadPayload):
        client.normalize(inst(), raw, 1, 1.0)


def test_normalize_lenient_numbers(client):
    raw = book(YES, bids=[{"price": 0.41, "size": 3100}, {"price": " 0.4 ", "size": "1E+2"}], asks=[])
    rec = client.normalize(inst(), raw, 1, 1.0)
    assert rec.bids == [("0.41", "3100"), ("0.4", "100")]


@pytest.mark.parametrize(
    "ts,expected",
    [("1781712345678", 1781712345678), (1781712345678, 1781712345678), ("", None), (None, None),
     ("-5", None), (True, None), ("9" * 30, None), ([], None)],
)
def test_normalize_ob_ts(client, ts, expected):
    rec = client.normalize(inst(), book(YES, timestamp=ts), 1, 1.0)
    assert rec.ob_ts_ms == expected
    rec.to_json()


def test_normalize_text_cache_never_aliases_non_strings(client):
    client.normalize(inst(), book(YES, bids=[{"price": "1", "size": "1"}], asks=[]), 1, 1.0)  # caches "1"
    for junk in (True, 1.0000000000000002e300, [1]):
        with pytest.raises(errors.BadPayload):
            client.normalize(inst(), book(YES, bids=[{"price": "0.5", "size": junk}], asks=[]), 1, 1.0)
    rec = client.normalize(inst(), book(YES, bids=[{"price": 1, "size": 1.0}], asks=[]), 1, 1.0)
    assert rec.bids == [("1", "1")]


# --------------------------------------------------------------------------- properties

PROP = hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=30,
)

number_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.decimals(min_value=0, max_value=1, places=4).map(str),
    st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,5})?([eE][-+]?[0-9]{1,12})?", fullmatch=True),
    st.sampled_from(["", " ", "NaN", "Infinity", "-0", "0.0", "1e999999999", "0x10", "1_0", "٣", "0.430"]),
    st.text(max_size=8),
    json_scalars,
)
junk_level = st.one_of(
    st.fixed_dictionaries({"price": number_text, "size": number_text}),
    json_values,
)
junk_book = st.fixed_dictionaries(
    {"asset_id": st.just(YES)},
    optional={
        "bids": st.one_of(st.lists(junk_level, max_size=8), json_values),
        "asks": st.one_of(st.lists(junk_level, max_size=8), json_values),
        "timestamp": st.one_of(json_scalars, st.integers().map(str)),
        "hash": json_scalars,
        "tick_size": number_text,
        "last_trade_price": number_text,
        "min_order_size": number_text,
        "neg_risk": json_scalars,
        "market": json_values,
    },
)


def _check_record_or_bad_payload(client: PolymarketClient, raw: Any) -> None:
    try:
        rec = client.normalize(inst(), raw, 1781712345999, 3.5)
    except errors.BadPayload:
        return
    bids = [Decimal(p) for p, _ in rec.bids]
    asks = [Decimal(p) for p, _ in rec.asks]
    for _, s in rec.bids + rec.asks:
        assert Decimal(s) >= 0
    assert all(a >= b for a, b in zip(bids, bids[1:]))
    assert all(a <= b for a, b in zip(asks, asks[1:]))
    out = orjson.loads(rec.to_json())  # the record must always be writable
    assert out["poll_key"] == YES
    assert len(out["bids"]) == len(rec.bids) and len(out["asks"]) == len(rec.asks)


@PROP
@given(raw=json_values)
def test_property_normalize_arbitrary_json(raw):
    c = PolymarketClient(_settings())
    _check_record_or_bad_payload(c, raw)
    if isinstance(raw, dict):
        _check_record_or_bad_payload(c, {**raw, "asset_id": YES})


@PROP
@given(raw=junk_book)
def test_property_normalize_junk_books(raw):
    _check_record_or_bad_payload(PolymarketClient(_settings()), raw)


valid_level = st.fixed_dictionaries(
    {
        "price": st.one_of(
            st.decimals(min_value=0, max_value=1, places=3),
            st.decimals(min_value=0, max_value=1, places=6),
            st.decimals(min_value=Decimal("0.1"), max_value=Decimal("0.1000000000000000009"), places=19),
        ).map(str),
        "size": st.one_of(
            st.decimals(min_value=0, max_value=10**9, places=2),
            st.integers(min_value=0, max_value=10**9),
        ).map(str),
    }
)


@PROP
@given(bids=st.lists(valid_level, max_size=30), asks=st.lists(valid_level, max_size=30), data=st.data())
def test_property_valid_books_keep_every_level(bids, asks, data):
    # add trailing zeros to some texts: canonical output must still be decimal-equal
    def pad(levels):
        return [{k: v + "0" if "." in v and data.draw(st.booleans()) else v for k, v in lv.items()} for lv in levels]

    raw = book(YES, bids=pad(bids), asks=pad(asks))
    rec = PolymarketClient(_settings()).normalize(inst(), copy.deepcopy(raw), 1, 1.0)

    def as_dec(levels):
        return sorted((Decimal(p), Decimal(s)) for p, s in levels)

    assert as_dec(rec.bids) == as_dec((lv["price"], lv["size"]) for lv in raw["bids"])
    assert as_dec(rec.asks) == as_dec((lv["price"], lv["size"]) for lv in raw["asks"])
    bp = [Decimal(p) for p, _ in rec.bids]
    ap = [Decimal(p) for p, _ in rec.asks]
    assert bp == sorted(bp, reverse=True)
    assert ap == sorted(ap)
    for p, s in rec.bids + rec.asks:  # canonical text: no exponent, no trailing zeros
        for t in (p, s):
            assert "e" not in t.lower() and not (("." in t) and t.endswith("0"))
    out = orjson.loads(rec.to_json())
    if rec.bids:
        assert Decimal(str(out["best_bid"])) == Decimal(str(float(rec.bids[0][0])))


price_or_size = st.one_of(
    st.sampled_from(["0", "1", "0.5", "0.50", "0.05", "0.500", "1.0", "0.1", "0.10", "0.09", "0.9", "0.99"]),
    st.decimals(min_value=0, max_value=1, places=3).map(str),
    st.decimals(min_value=0, max_value=3, places=2).map(str),  # some above 1: the general path
    st.decimals(min_value=Decimal("0.1"), max_value=Decimal("0.1000000000000000009"), places=19).map(str),
    st.sampled_from([0.41, 1, 0, 2.5]),  # JSON numbers
)


@PROP
@given(
    bids=st.lists(st.fixed_dictionaries({"price": price_or_size, "size": price_or_size}), max_size=12),
    asks=st.lists(st.fixed_dictionaries({"price": price_or_size, "size": price_or_size}), max_size=12),
)
def test_property_levels_equal_stable_decimal_sort(bids, asks):
    """The cached / string-keyed sort gives exactly the stable Decimal sort of the canonical
    levels (same order, ties in arrival order) whether or not a price lies above 1, and the
    text caches never change an answer (same book twice, then with a fresh cache)."""
    from collector.model.decimals import dec_text
    from collector.venues import polymarket_book as pm

    def want(levels, desc):
        canon = [(dec_text(lv["price"]), dec_text(lv["size"])) for lv in levels]
        return sorted(canon, key=lambda lv: Decimal(lv[0]), reverse=desc)

    c = PolymarketClient(_settings())
    for clear in (False, False, True):
        if clear:
            pm._TEXT_CACHE.clear()
            pm._PRICE_CACHE.clear()
        rec = c.normalize(inst(), book(YES, bids=copy.deepcopy(bids), asks=copy.deepcopy(asks)), 1, 1.0)
        assert rec.bids == want(bids, True)
        assert rec.asks == want(asks, False)


def _reference_to_json(rec: BookRecord) -> bytes:
    """BookRecord.to_json as first written (no caches, per-level formatting): the bytes to match."""
    from collector.model.decimals import mid_text, spread_text
    from collector.model.records import DecText

    def levels(lv):
        return orjson.Fragment(("[" + ",".join(f"[{p},{s}]" for p, s in lv) + "]").encode())

    def num(t):
        return None if t is None else orjson.Fragment(t.encode())

    bb, ba = rec.best_bid, rec.best_ask
    both = bb is not None and ba is not None
    d: dict[str, Any] = {
        "record_type": "orderbook", "schema_version": 1, "venue": rec.venue, "instrument_id": rec.instrument_id,
        "poll_key": rec.poll_key, "market_id": rec.market_id, "outcome": rec.outcome, "ts_ms": rec.ts_ms,
    }
    if rec.ob_ts_ms is not None:
        d["ob_ts_ms"] = rec.ob_ts_ms
    d["bids"], d["asks"] = levels(rec.bids), levels(rec.asks)
    d["best_bid"], d["best_ask"] = num(bb), num(ba)
    d["mid"] = num(mid_text(bb, ba)) if both else None
    d["spread"] = num(spread_text(bb, ba)) if both else None
    if rec.hash is not None:
        d["hash"] = rec.hash
        d["hash_ok"] = rec.hash_ok  # added with the capture-time hash check (issue 12)
    if rec.tick_size is not None:
        d["tick_size"] = num(rec.tick_size)
    d["latency_ms"] = round(rec.latency_ms, 3)
    d["source"] = "rest"
    for k, v in rec.extra.items():
        d[k] = num(v) if isinstance(v, DecText) else v
    return orjson.dumps(d)


@PROP
@given(
    bids=st.lists(valid_level, max_size=8),
    asks=st.lists(valid_level, max_size=8),
    latency=st.floats(min_value=0, max_value=1e6),
    extra=st.dictionaries(st.sampled_from(["last_trade_price", "min_order_size", "neg_risk", "tick_size"]),
                          st.one_of(st.booleans(), st.sampled_from(["0.5", "5", "0.001"])), max_size=3),
)
def test_property_to_json_bytes_unchanged(bids, asks, latency, extra):
    raw = book(YES, bids=bids, asks=asks, **extra)
    c = PolymarketClient(_settings())
    for _ in range(2):  # second time through the mid/spread and text caches
        rec = c.normalize(inst(), copy.deepcopy(raw), 1781712345999, latency)
        assert rec.to_json() == _reference_to_json(rec)
