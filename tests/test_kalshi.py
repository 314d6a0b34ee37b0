"""KalshiClient: the orderbook_fp normalizer (real payloads + properties), the discovery mapping
and paging, the batch fetch, 429 handling, signing and the settings that shape them.

HTTP is mocked with ``responses`` here; tests/test_kalshi_sim.py runs the same client against
the simulator subprocess.
"""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import responses
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from collector.config.settings import KalshiSettings, load_settings
from collector.discovery.rules import select
from collector.model import errors
from collector.model.errors import ConfigError
from collector.model.records import Instrument
from collector.venues import make_client
from collector.venues.base import DiscoveryResult, PolledBook
from collector.venues.kalshi import KalshiClient
from collector.venues.kalshi_auth import Signer
from collector.venues.kalshi_book import book_record
from collector.venues.kalshi_markets import add_event
from tests.real_payloads import load

API = "https://kalshi.test/trade-api/v2"


def _inst(ticker: str = "KXBTCD-26DEC0117-T104249.99", **meta) -> Instrument:
    return Instrument(venue="kalshi", poll_key=ticker, market_id=ticker, outcome="YES", tick_size="0.01",
                      meta={"notional": "1", **meta})


def _client(tmp_path=None, **kw) -> KalshiClient:
    return KalshiClient(KalshiSettings(api_url=API, **kw), state_dir=tmp_path)


# ----------------------------------------------------------------- real payloads


def test_real_book_matches_the_venue_quotes():
    """ccxt's capture of one market: its book and its /markets quotes were taken together."""
    ob = load("kalshi/orderbook_fp_ccxt_elonmars.json")
    market = load("kalshi/market_ccxt_elonmars.json")["market"]
    rec = book_record(_inst("KXELONMARS-99"), ob, 1, 0.0)
    assert (market["yes_bid_dollars"], market["yes_bid_size_fp"]) == ("0.0800", "444.32")
    assert (market["yes_ask_dollars"], market["yes_ask_size_fp"]) == ("0.1200", "1967.33")
    assert rec.bids[0] == ("0.08", "444.32")
    assert rec.asks[0] == ("0.12", "1967.33")  # 1 - the best NO bid 0.88, at its size
    assert rec.asks[-1] == ("0.99", "13553")  # the NO bid at 0.01
    assert [Decimal(p) for p, _ in rec.bids] == sorted((Decimal(p) for p, _ in rec.bids), reverse=True)
    assert [Decimal(p) for p, _ in rec.asks] == sorted(Decimal(p) for p, _ in rec.asks)
    assert len(rec.bids) == len(ob["orderbook_fp"]["yes_dollars"]) and len(rec.asks) == len(ob["orderbook_fp"]["no_dollars"])
    line = orjson.loads(rec.to_json())
    assert "ob_ts_ms" not in line and line["tick_size"] == 0.01 and line["spread"] == 0.04


def test_real_event_becomes_one_instrument():
    ev = load("kalshi/events_nested_gnome_first_event.json")["events"][0]
    r = DiscoveryResult(instruments=[])
    add_event(ev, r, set(), combos=False)
    (inst,) = r.instruments
    assert inst.instrument_id == "kalshi:KXELONMARS-99" and inst.outcome == "YES"
    assert inst.series_slug == "KXELONMARS" and inst.event_slug == "KXELONMARS-99"  # series from the event
    assert inst.tick_size == "0.01" and inst.volume_24h == pytest.approx(28.16)
    assert inst.expires_at_ms == 4089243540000  # close_time 2099-08-01T04:59:00Z
    assert inst.meta["notional"] == "1" and inst.tags == ("World",)


def test_real_combos_are_left_out_unless_asked_for():
    markets = load("kalshi/markets_open_drmanhattan.json")
    ev = {"event_ticker": "X", "series_ticker": "KXMVE", "markets": markets}
    r = DiscoveryResult(instruments=[])
    add_event(ev, r, set(), combos=False)
    assert r.instruments == [] and r.skipped == {"combo": len(markets)}
    r = DiscoveryResult(instruments=[])
    add_event(ev, r, set(), combos=True)
    assert r.instruments and all(i.meta["combo"] for i in r.instruments)


def test_a_rule_naming_a_combo_series_asks_for_combos():
    assert not _client().combos and _client(combos=True).combos
    rules = [{"name": "parlays", "event_slug_prefixes": ["kxmvesports"]}]
    assert KalshiClient(load_settings(kalshi={"rules": rules}).kalshi).combos


def test_real_deci_cent_market_has_its_tick():
    markets = load("kalshi/markets_tickers_ccxt.json")["markets"]
    r = DiscoveryResult(instruments=[])
    add_event({"markets": markets}, r, set(), combos=False)
    ticks = {i.poll_key: i.tick_size for i in r.instruments}
    assert ticks == {"KXELONMARS-99": "0.01", "KXCOLONIZEMARS-50": "0.001"}
    assert all(i.series_slug is None for i in r.instruments)  # not on a market; no event given


# ----------------------------------------------------------------- normalizer


def test_doc_example_and_shapes():
    ob = {"orderbook_fp": {"yes_dollars": [["0.0100", "200.00"], ["0.4100", "10.00"], ["0.4200", "13.00"]],
                           "no_dollars": [["0.0100", "100.00"], ["0.4500", "20.00"], ["0.5600", "17.00"]]}}
    rec = book_record(_inst(), ob, 5, 1.5)
    assert rec.bids == [("0.42", "13"), ("0.41", "10"), ("0.01", "200")]
    assert rec.asks == [("0.44", "17"), ("0.55", "20"), ("0.99", "100")]
    assert rec.ts_ms == 5 and rec.ob_ts_ms is None and rec.hash is None
    # missing, null and [] sides are empty; a closed market's book is empty, not an error
    for body in ({}, {"yes_dollars": None, "no_dollars": []}, {"no_dollars": [], "yes_dollars": []}):
        r = book_record(_inst(), body, 1, 0.0)
        assert r.bids == [] and r.asks == []
    assert book_record(_inst(), {"no_dollars": [["0.3", "1.5"]]}, 1, 0.0).asks == [("0.7", "1.5")]


@pytest.mark.parametrize("body", [
    {"orderbook": {"yes": [[42, 13]], "no": [[56, 17]]}},  # the removed cents shape
    {"yes_dollars": "0.42"},
    {"yes_dollars": [["0.42"]]},
    {"yes_dollars": [["abc", "1.00"]]},
    {"yes_dollars": [["0.42", "-1.00"]]},
    {"yes_dollars": [["0.42", "0.00"]]},
    {"yes_dollars": [["1.0000", "1.00"]]},
    {"yes_dollars": [["0.0000", "1.00"]]},
    {"yes_dollars": [["0.42", "1.00"], ["0.4200", "2.00"]]},  # one price twice
    {"yes_dollars": [["0.60", "1.00"]], "no_dollars": [["0.50", "1.00"]]},  # crossed: 0.60 > 0.50
    ["not", "an", "object"],
    None,
])
def test_bad_books_raise_bad_payload(body):
    with pytest.raises(errors.BadPayload):
        book_record(_inst(), body, 1, 0.0)


def test_notional_other_than_one():
    rec = book_record(_inst(notional="10"), {"yes_dollars": [["4.2", "1"]], "no_dollars": [["5.6", "2"]]}, 1, 0.0)
    assert rec.bids == [("4.2", "1")] and rec.asks == [("4.4", "2")]


_cents = st.integers(min_value=1, max_value=9999)
_sizes = st.integers(min_value=1, max_value=10**9)


@st.composite
def _book(draw):
    """A valid (uncrossed) book in venue text: ascending bids per leg, 4 dp prices, 2 dp sizes."""
    split = draw(st.integers(min_value=2, max_value=9998))  # YES bids below it, YES asks at or above
    yes = draw(st.lists(st.integers(1, split - 1), unique=True, max_size=30))
    asks = draw(st.lists(st.integers(split, 9999), unique=True, max_size=30))
    no = [10_000 - a for a in asks]

    def side(ps):
        return [[f"{p / 10_000:.4f}", f"{draw(_sizes) / 100:.2f}"] for p in sorted(ps)]

    return {"yes_dollars": side(yes), "no_dollars": side(no)}


@hsettings(max_examples=200, deadline=None)
@given(_book(), st.randoms(use_true_random=False))
def test_property_sorted_exact_and_order_free(book, rnd):
    rec = book_record(_inst(), book, 1, 0.0)
    bids = [Decimal(p) for p, _ in rec.bids]
    asks = [Decimal(p) for p, _ in rec.asks]
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == len(bids)
    assert asks == sorted(asks) and len(set(asks)) == len(asks)
    if bids and asks:
        assert bids[0] <= asks[0]
    # every level is the venue's number exactly: YES bids as sent, asks = 1 - NO bid, sizes kept
    assert sorted(bids) == sorted(Decimal(p) for p, _ in book["yes_dollars"])
    assert sorted(asks) == sorted(1 - Decimal(p) for p, _ in book["no_dollars"])
    no_size = {1 - Decimal(p): Decimal(s) for p, s in book["no_dollars"]}
    assert all(Decimal(s) == no_size[Decimal(p)] for p, s in rec.asks)
    assert all(isinstance(p, str) and isinstance(s, str) for p, s in rec.bids + rec.asks)
    shuffled = {k: rnd.sample(v, len(v)) for k, v in book.items()}  # the order sent does not matter
    again = book_record(_inst(), shuffled, 1, 0.0)
    assert (again.bids, again.asks) == (rec.bids, rec.asks)
    # other decimal text ("0.42", "0.420000"): the general Decimal path, the same book
    other = {k: [[p.rstrip("0") if rnd.random() < 0.5 else p + "00", q] for p, q in v] for k, v in book.items()}
    general = book_record(_inst(), other, 1, 0.0)
    assert (general.bids, general.asks) == (rec.bids, rec.asks)


_junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                     max_leaves=12)


@hsettings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["yes_dollars", "no_dollars", "orderbook", "x"]), _junk, max_size=3))
def test_property_junk_is_bad_payload_or_a_sane_book(body):
    try:
        rec = book_record(_inst(), body, 1, 0.0)
    except errors.BadPayload:
        return
    for p, s in rec.bids + rec.asks:
        assert 0 < Decimal(p) < 1 and Decimal(s) > 0


# ----------------------------------------------------------------- discovery


def _event(ticker: str, series: str, markets: list[dict]) -> dict:
    return {"event_ticker": ticker, "series_ticker": series, "title": f"{series} event", "category": "Crypto",
            "markets": markets}


def _market(ticker: str, status: str = "active", close: str = "2030-01-01T00:00:00Z", **kw) -> dict:
    return {"ticker": ticker, "event_ticker": ticker.rsplit("-", 1)[0], "status": status, "market_type": "binary",
            "close_time": close, "notional_value_dollars": "1.0000", "volume_24h_fp": "12.50",
            "price_ranges": [{"start": "0.0000", "end": "0.1000", "step": "0.0010"},
                             {"start": "0.1000", "end": "0.9000", "step": "0.0100"}], **kw}


def test_liveness_from_the_market_status():
    ev = _event("KXBTCD-26DEC0117", "KXBTCD", [
        _market("KXBTCD-26DEC0117-T1"), _market("KXBTCD-26DEC0117-T2", "initialized"),
        _market("KXBTCD-26DEC0117-T3", "inactive"), _market("KXBTCD-26DEC0117-T4", "open"),  # "open" is a query word
        _market("KXBTCD-26DEC0117-T5", "finalized"), _market("KXBTCD-26DEC0117-T6", market_type="scalar"),
        _market("bad ticker!"), "junk", _market("KXBTCD-26DEC0117-T1"),
        _market("KXBTCD-26DEC0117-T7", mve_collection_ticker="KXMVE-R"),
        _market("KXBTCD-26DEC0117-T8", close="0001-01-01T00:00:00Z"),
    ])
    r = DiscoveryResult(instruments=[])
    add_event(ev, r, set(), combos=False)
    assert [i.poll_key for i in r.instruments] == ["KXBTCD-26DEC0117-T1", "KXBTCD-26DEC0117-T8"]
    assert r.skipped == {"not_active": 3, "unknown_status": 1, "not_binary": 1, "bad_market": 2, "duplicate": 1,
                         "combo": 1}
    assert r.instruments[0].tick_size == "0.001"  # the finest step of a tapered grid
    assert r.instruments[1].expires_at_ms is None  # Go's zero time is no time


def _page_callback(pages: dict[tuple[str, str], dict], calls: list):
    def cb(request):
        q = parse_qs(urlparse(request.url).query)
        calls.append({k: v[0] for k, v in q.items()})
        key = (q.get("series_ticker", [""])[0], q.get("cursor", [""])[0])
        return 200, {}, orjson.dumps(pages[key])
    return cb


@responses.activate
def test_discovery_pages_each_series_to_the_end():
    calls: list = []
    pages = {
        ("KXBTCD", ""): {"events": [_event("KXBTCD-A", "KXBTCD", [_market("KXBTCD-A-T1")])], "cursor": "c1"},
        ("KXBTCD", "c1"): {"events": [_event("KXBTCD-B", "KXBTCD", [_market("KXBTCD-B-T1")])], "cursor": ""},
        ("KXETHD", ""): {"events": [_event("KXETHD-A", "KXETHD", [_market("KXETHD-A-T1")])], "cursor": None},
    }
    responses.add_callback(responses.GET, f"{API}/events", callback=_page_callback(pages, calls))
    r = _client(series=["KXBTCD", "KXETHD", "KXBTCD"], discovery_rate_requests=1000, min_spacing_s=0).discover()
    assert [i.poll_key for i in r.instruments] == ["KXBTCD-A-T1", "KXBTCD-B-T1", "KXETHD-A-T1"]
    assert r.pages == 3 and r.paging_stops == {}
    assert all(c["status"] == "open" and c["with_nested_markets"] == "true" and c["limit"] == "200" for c in calls)
    assert [c.get("cursor") for c in calls] == [None, "c1", None]


@responses.activate
def test_discovery_stops_on_a_repeated_cursor_and_the_page_bound():
    pages = {("KXBTCD", ""): {"events": [_event("E", "KXBTCD", [_market("E-1")])], "cursor": "same"},
             ("KXBTCD", "same"): {"events": [_event("E", "KXBTCD", [_market("E-2")])], "cursor": "same"}}
    responses.add_callback(responses.GET, f"{API}/events", callback=_page_callback(pages, []))
    r = _client(series=["KXBTCD"], discovery_rate_requests=1000, min_spacing_s=0).discover()
    assert r.paging_stops == {"repeated_cursor": 1} and r.pages == 2
    r = _client(series=["KXBTCD"], discovery_rate_requests=1000, min_spacing_s=0, max_pages=1).discover()
    assert r.paging_stops == {"page_bound": 1} and r.pages == 1


@responses.activate
def test_discovery_bad_page_fails_the_pass():
    responses.add(responses.GET, f"{API}/events", json={"markets": []})
    with pytest.raises(errors.BadPayload):
        _client(series=["KXBTCD"], discovery_rate_requests=1000, min_spacing_s=0, discovery_page_attempts=1).discover()


def test_default_rules_select_btc_eth_hourly_only():
    now = 1_800_000_000_000
    iso = "2027-01-15T08:{:02d}:00Z"  # 1800000000 s = 2027-01-15T08:00:00Z

    def inst(ticker, series, minutes):
        ev = _event(ticker.rsplit("-", 1)[0], series, [_market(ticker, close=iso.format(minutes) if minutes < 60
                                                               else "2027-01-15T10:00:00Z")])
        r = DiscoveryResult(instruments=[])
        add_event(ev, r, set(), combos=False)
        return r.instruments[0]

    cands = [inst("KXBTCD-27JAN1503-T1", "KXBTCD", 30), inst("KXETHD-27JAN1503-T1", "KXETHD", 45),
             inst("KXBTCD-27JAN1505-T1", "KXBTCD", 120), inst("KXFED-27JAN-H0", "KXFED", 30)]
    got = [i.poll_key for i in select(KalshiSettings().rules, cands, now)]
    assert got == ["KXBTCD-27JAN1503-T1", "KXETHD-27JAN1503-T1"]
    title_rule = load_settings(kalshi={"rules": [{"name": "t", "title_contains": ["kxfed EVENT"]}]}).kalshi.rules
    assert [i.poll_key for i in select(title_rule, cands, now)] == ["KXFED-27JAN-H0"]


# ----------------------------------------------------------------- books


@responses.activate
def test_fetch_books_repeats_tickers_and_joins_on_ticker():
    seen = {}

    def cb(request):
        seen["q"] = parse_qs(urlparse(request.url).query)
        body = {"orderbooks": [
            {"ticker": "B", "orderbook_fp": {"yes_dollars": [["0.10", "1.00"]], "no_dollars": []}},
            {"ticker": "A", "orderbook_fp": {"yes_dollars": [], "no_dollars": [["0.20", "2.50"]]}},
            {"ticker": "A", "orderbook_fp": {"yes_dollars": [["0.5", "1"]]}},  # repeated: first wins
            {"ticker": "Z", "orderbook_fp": {}},  # not asked for
            {"ticker": "L", "orderbook": {"yes": [[10, 1]]}},  # the removed shape
        ]}
        return 200, {}, orjson.dumps(body)

    responses.add_callback(responses.GET, f"{API}/markets/orderbooks", callback=cb)
    c = _client()
    res = c.fetch_books(["A", "B", "C", "L", "A"])
    assert seen["q"]["tickers"] == ["A", "B", "C", "L"]  # repeated params, never comma-joined
    assert set(res.books) == {"A", "B", "L"} and set(res.errors) == {"C"}
    assert isinstance(res.errors["C"], errors.NotFound) and c.unrequested_books == 1
    a = res.books["A"]
    assert type(a) is PolledBook and a.ob_ts_ms is None and a.hash is None
    assert c.normalize(_inst("A"), a, res.ts_ms, res.latency_ms).asks == [("0.8", "2.5")]
    with pytest.raises(errors.BadPayload):
        c.normalize(_inst("L"), res.books["L"], res.ts_ms, res.latency_ms)
    with pytest.raises(ValueError):
        c.fetch_books([str(i) for i in range(101)])


@responses.activate
def test_429_without_retry_after_holds_every_process(tmp_path):
    responses.add(responses.GET, f"{API}/markets/orderbooks", status=429,
                  json={"error": {"code": "too_many_requests", "message": "too many requests"}})
    c = _client(tmp_path, cooldown_429_s=7.0)
    with pytest.raises(errors.RateLimited) as ei:
        c.fetch_books(["A"])
    assert ei.value.retry_after_s is None
    other = _client(tmp_path)  # another process on the same data directory sees the hold
    assert other.shared_spacing.next_allowed(time.monotonic()) >= time.monotonic() + 6.0
    c.close()
    other.close()


@responses.activate
def test_bad_batch_bodies():
    responses.add(responses.GET, f"{API}/markets/orderbooks", body=b"<html>oops</html>")
    with pytest.raises(errors.BadPayload):
        _client().fetch_books(["A"])
    responses.replace(responses.GET, f"{API}/markets/orderbooks", json={"orderbooks": {}})
    with pytest.raises(errors.BadPayload):
        _client().fetch_books(["A"])


# ----------------------------------------------------------------- signing and settings


def _pem() -> tuple[str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key


def test_signer_signs_timestamp_method_path_with_rsa_pss():
    pem, key = _pem()
    s = Signer(SecretStr("key-id-123"), SecretStr(pem), None)
    h = s.headers("get", "/trade-api/v2/markets/orderbooks?tickers=A", ts_ms=1700000000123)
    assert h["KALSHI-ACCESS-KEY"] == "key-id-123" and h["KALSHI-ACCESS-TIMESTAMP"] == "1700000000123"
    key.public_key().verify(  # raises if wrong: query string excluded, method upper-case
        base64.b64decode(h["KALSHI-ACCESS-SIGNATURE"]), b"1700000000123GET/trade-api/v2/markets/orderbooks",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())
    assert "key-id" not in repr(s) and "PRIVATE" not in repr(s)


@responses.activate
def test_signed_requests_carry_the_headers(tmp_path):
    pem, _ = _pem()
    keyfile = tmp_path / "k.pem"
    keyfile.write_text(pem)
    got = {}

    def cb(request):
        got.update(request.headers)
        return 200, {}, b'{"orderbooks": []}'

    responses.add_callback(responses.GET, f"{API}/markets/orderbooks", callback=cb)
    settings = load_settings(kalshi={"api_url": API, "api_key_id": "kid", "private_key_file": str(keyfile)})
    assert settings.kalshi.rate_requests == settings.kalshi.signed_rate_requests  # a key raises the budget
    make_client("kalshi", settings).fetch_books(["A"])
    assert got["KALSHI-ACCESS-KEY"] == "kid" and got["KALSHI-ACCESS-SIGNATURE"]


def test_secrets_never_shown():
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----"
    s = load_settings(kalshi={"api_key_id": "my-key-id", "private_key": secret})
    text = repr(s) + str(s.model_dump()) + s.model_dump_json()
    assert "TOPSECRET" not in text and "my-key-id" not in text
    with pytest.raises(ConfigError) as ei:
        KalshiClient(s.kalshi)
    assert "TOPSECRET" not in str(ei.value)
    with pytest.raises(ConfigError):
        load_settings(kalshi={"api_key_id": "my-key-id"})  # a key id without its key


def test_budgets_explicit_values_win_over_the_signed_defaults():
    pem, _ = _pem()
    s = load_settings(kalshi={"api_key_id": "k", "private_key": pem, "rate_requests": 33, "min_spacing_s": 0.2})
    assert (s.kalshi.rate_requests, s.kalshi.min_spacing_s) == (33, 0.2)
    anon = load_settings().kalshi
    assert anon.rate_requests / anon.rate_window_s + anon.discovery_rate_requests / anon.discovery_rate_window_s <= 3
    assert 1 / anon.min_spacing_s <= 3  # every process together stays under ~3 requests/s per IP


def test_registry_and_defaults():
    s = load_settings()
    assert "kalshi" not in s.venues and s.kalshi.series == ["KXBTCD", "KXETHD"] and not s.kalshi.combos
    c = make_client("kalshi", s)
    assert c.batch_size == 100 and c.name == "kalshi"
    c.close()
