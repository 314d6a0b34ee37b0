"""Hypothesis fuzzing of every parser, end to end through the public entry points.

* Venue payloads **on the wire**: arbitrary status / headers / body bytes through each client's
  real HTTP path (``fetch_books``, ``discover``) -> a result or a typed ``VenueError``, never
  anything else; every book that survives goes through ``normalize`` -> a record or
  ``BadPayload``, and every record written is valid against docs/schema.md
  (tests/reliability/schema.py); every discovered instrument survives a snapshot round trip and
  makes a valid ``market`` record. (Normalize alone on Python values is fuzzed in
  tests/test_polymarket.py and tests/test_limitless.py.)
* Snapshots: arbitrary bytes and mutated documents -> ``Snapshot`` or ``SnapshotError``; an
  accepted snapshot is usable by the poller (a lane takes it) and can be written again.
* Config: TOML text and ``COLLECTOR_*`` values -> ``Settings`` or ``ConfigError``; accepted
  settings print (``collector config``).
* Reader input: arbitrary bytes as data files -> ``collector.read`` and
  ``writer.iter_jsonl_lines`` never raise.

Crashes these fuzzers found (all fixed in 5915c76) are pinned by small regression tests below:
a Limitless expiry beyond int64, a config integer beyond int64, and four reader crashes (invalid
UTF-8 in an instrument id, a > 4300-digit ts_ms, deep nesting with ``exact=True``, a corrupt
``.zst``). A new finding: pin it with an ``xfail(strict=True)`` test and add its signature to
``KNOWN_BUGS`` so the generic fuzzers keep exploring past it until it is fixed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson
import requests
import zstandard
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from collector import read
from collector.config.settings import (
    LimitlessSettings,
    PolymarketSettings,
    Settings,
    load_settings,
)
from collector.discovery.markets_log import market_record
from collector.model import errors
from collector.model.errors import ConfigError, SnapshotError, VenueError
from collector.model.records import Instrument
from collector.read.catalog import market_records
from collector.read.records import book_times
from collector.store.files import iter_jsonl_lines
from collector.store.snapshot import (
    Snapshot,
    parse_snapshot,
    read_snapshot,
    write_snapshot,
)
from collector.venues.http import ThreadLocal
from collector.venues.limitless import LimitlessClient
from collector.venues.pacing import Pacer
from collector.venues.polymarket import PolymarketClient
from tests.reliability import schema

FUZZ = hsettings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.filter_too_much])

# Bugs found by these fuzzers, each pinned by its own xfail(strict=True) test below. The generic
# fuzzers step over exactly these signatures so that they keep exploring everything else; when a
# bug is fixed, remove its entry here and flip its xfail test.
KNOWN_BUGS: set[str] = set()  # all fixed; the tests below pin them


def known(bug: str, exc: BaseException) -> bool:
    """True when ``exc`` is the signature of a known, still open bug."""
    if bug not in KNOWN_BUGS:
        return False
    sig = {
        "LIMITLESS-EXPIRY-RANGE": (TypeError, "64-bit"),
        "CONFIG-BIGINT": (TypeError, "64-bit"),
        "READER-UTF8": (UnicodeDecodeError, ""),
        "READER-BIGINT": (ValueError, "integer string conversion"),
        "READER-DEPTH": (RecursionError, ""),
        "READER-ZSTD": (zstandard.ZstdError, ""),
    }[bug]
    return isinstance(exc, sig[0]) and sig[1] in str(exc)


# --------------------------------------------------------------------------- strategies

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_value = st.recursive(json_scalar, lambda c: st.one_of(st.lists(c, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), c, max_size=4)),
                          max_leaves=12)
number_text = st.one_of(
    st.decimals(min_value=0, max_value=2, places=4, allow_nan=False).map(str),
    st.integers(0, 10**12).map(str),
    st.sampled_from(["0", "1", "0.5", "0.50", "1e3", "1E-3", "1e999", "-1", "-0", "NaN", "Infinity", "",
                     " 0.4 ", "0x10", "1_000", "\u0663", "0." + "0" * 60 + "1", "9" * 80, "1e-999999"]),
)
number = st.one_of(number_text, st.integers(-5, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                   json_scalar)
good_price = st.one_of(st.decimals(min_value=0, max_value=1, places=3).map(str),
                       st.decimals(min_value=0, max_value=1, places=3).map(float),
                       st.sampled_from(["0.5", "0.50", "1", "0", "0.001", "1.0", "0.999"]))
good_size = st.one_of(st.decimals(min_value=0, max_value=10**7, places=2).map(str), st.integers(0, 10**12),
                      st.integers(0, 10**12).map(str))
good_level = st.fixed_dictionaries({"price": good_price, "size": good_size})
level = st.one_of(good_level, good_level, good_level, st.fixed_dictionaries({"price": number, "size": number}),
                  json_value)
# mostly plausible sides (so records get written), sometimes junk
side = st.one_of(st.lists(good_level, max_size=6), st.lists(good_level, max_size=6), st.lists(level, max_size=6),
                 json_value)


def http_reply(body: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[int, dict[str, str], bytes]]:
    status = st.sampled_from([200] * 24 + [204, 301, 400, 403, 404, 418, 425, 429, 500, 502, 503, 504])
    headers = st.fixed_dictionaries({}, optional={
        "retry-after": st.one_of(st.integers(-5, 10**6).map(str),
                                 st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n\x00"), max_size=30),
                                 st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "nan", "inf", "1e400"])),
        "content-type": st.sampled_from(["application/json", "text/html", "text/plain; charset=latin-1"]),
    })
    return st.tuples(status, headers, body)


def _json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # ints beyond 64 bits: fall back to the stdlib encoder
        import json

        return json.dumps(value).encode()


def poly_books_body(keys: list[str]) -> st.SearchStrategy[bytes]:
    book = st.fixed_dictionaries(
        {"asset_id": st.one_of(st.sampled_from(keys), st.sampled_from(keys), json_scalar), "bids": side, "asks": side},
        optional={"timestamp": st.one_of(number, st.integers(-(2**70), 2**70).map(str)), "hash": json_scalar,
                  "tick_size": number, "last_trade_price": number, "min_order_size": number, "neg_risk": json_scalar,
                  "market": json_value},
    )
    good_book = st.fixed_dictionaries(
        {"asset_id": st.sampled_from(keys), "bids": st.lists(good_level, max_size=6),
         "asks": st.lists(good_level, max_size=6)},
        optional={"timestamp": st.one_of(st.integers(0, 2**63).map(str), number), "hash": json_scalar,
                  "tick_size": st.one_of(good_price, number), "last_trade_price": st.one_of(good_price, number),
                  "min_order_size": st.one_of(good_size, number), "neg_risk": json_scalar, "market": json_value},
    )
    return st.one_of(
        st.lists(good_book, min_size=1, max_size=4).map(_json_bytes),
        st.lists(good_book, min_size=1, max_size=4).map(_json_bytes),
        st.lists(st.one_of(good_book, book), max_size=5).map(_json_bytes),
        json_value.map(_json_bytes),
        st.binary(max_size=200),
        st.lists(book, max_size=3).map(lambda x: _json_bytes(x)[: max(1, len(_json_bytes(x)) // 2)]),
        st.just(b"<html><body>502 Bad Gateway</body></html>"),
    )


# --------------------------------------------------------------------------- fake transports


def poly_client(replies: list[tuple[int, dict[str, str], bytes]]) -> PolymarketClient:
    """A PolymarketClient whose HTTP answers come from ``replies`` (cycled), through httpx."""
    c = PolymarketClient(PolymarketSettings(gamma_url="http://fuzz.invalid/gamma", clob_url="http://fuzz.invalid/clob",
                                            discovery_retry_max_s=0))  # page retries without waiting
    it = iter(range(10**9))

    def handler(request: httpx.Request) -> httpx.Response:
        status, headers, body = replies[next(it) % len(replies)]
        return httpx.Response(status, headers={k: v.encode("latin-1") for k, v in headers.items()}, content=body)

    c._clients = ThreadLocal(lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    c._pacer = Pacer(10**9, 1.0)
    c.max_pages = 6
    return c


class _Adapter(requests.adapters.BaseAdapter):
    def __init__(self, replies):
        super().__init__()
        self.replies = replies
        self.n = 0

    def send(self, request, **kw):
        status, headers, body = self.replies[self.n % len(self.replies)]
        self.n += 1
        r = requests.Response()
        r.status_code, r._content, r.url, r.request = status, body, request.url, request
        r.headers = CaseInsensitiveDict(headers)
        return r

    def close(self):
        pass


def lim_client(replies: list[tuple[int, dict[str, str], bytes]]) -> LimitlessClient:
    c = LimitlessClient(LimitlessSettings(api_url="http://fuzz.invalid/limitless", discovery_retry_max_s=0))
    session = requests.Session()
    session.mount("http://", _Adapter(replies))
    c._sessions = ThreadLocal(lambda: session)
    c._pacer = Pacer(10**9, 1.0)
    return c


POLY_KEYS = ["111", "222", "333"]
POLY_INST = {k: Instrument(venue="polymarket", poll_key=k, market_id="0xm", outcome="Yes", tick_size="0.01") for k in POLY_KEYS}


def _check_record(rec) -> None:
    event("a record was written")
    line = rec.to_json()
    problems = schema.validate(orjson.loads(line))
    assert problems == [], (problems, line[:300])


# --------------------------------------------------------------------------- venue payloads


@FUZZ
@given(reply=http_reply(poly_books_body(POLY_KEYS)), keys=st.lists(st.sampled_from(POLY_KEYS), min_size=1, max_size=3))
def test_polymarket_books_on_the_wire(reply, keys):
    c = poly_client([reply])
    try:
        res = c.fetch_books(keys)
    except VenueError:
        return
    assert set(res.books) | set(res.errors) == set(keys)
    assert all(isinstance(e, VenueError) for e in res.errors.values())
    for k, raw in res.books.items():
        try:
            rec = c.normalize(POLY_INST[k], raw, res.ts_ms, res.latency_ms)
        except errors.BadPayload:
            continue
        _check_record(rec)


lim_level = st.fixed_dictionaries({"price": good_price, "size": st.one_of(st.integers(0, 10**15),
                                                                        st.integers(0, 10**15).map(str))})
lim_side = st.one_of(st.lists(lim_level, max_size=6), st.lists(lim_level, max_size=6), side)
lim_book_body = st.one_of(
    st.fixed_dictionaries({"bids": lim_side, "asks": lim_side}, optional={
        "tokenId": st.one_of(json_scalar, st.just("y1")), "midpoint": number, "adjustedMidpoint": number,
        "lastTradePrice": number}).map(_json_bytes),
    st.fixed_dictionaries({"bids": lim_side, "asks": lim_side}, optional={
        "tokenId": st.just("y1"), "midpoint": good_price, "adjustedMidpoint": good_price,
        "lastTradePrice": good_price}).map(_json_bytes),
    json_value.map(_json_bytes),
    st.binary(max_size=200),
)


@FUZZ
@given(reply=http_reply(lim_book_body), decimals=st.one_of(st.none(), st.integers(0, 36)))
def test_limitless_book_on_the_wire(reply, decimals):
    c = lim_client([reply])
    inst = Instrument(venue="limitless", poll_key="btc-x", market_id="btc-x", outcome="YES", tick_size="0.001",
                      size_decimals=decimals, meta={"token_yes": "y1"})
    try:
        res = c.fetch_books(["btc-x"])
    except VenueError:
        return
    try:
        rec = c.normalize(inst, res.books["btc-x"], res.ts_ms, res.latency_ms)
    except errors.BadPayload:
        return
    _check_record(rec)


gamma_market = st.fixed_dictionaries(
    {},
    optional={
        "id": json_scalar, "conditionId": st.one_of(st.text(max_size=10), json_scalar),
        "question": json_scalar, "slug": st.one_of(st.text(max_size=20), st.just("../../etc/x")),
        "closed": st.one_of(st.booleans(), st.sampled_from(["true", "false"]), json_scalar),
        "acceptingOrders": st.one_of(st.just(True), json_scalar),
        "enableOrderBook": st.one_of(st.just(True), json_scalar),
        "clobTokenIds": st.one_of(st.lists(st.text(max_size=6), max_size=3).map(lambda x: orjson.dumps(x).decode()),
                                  json_value),
        "outcomes": st.one_of(st.lists(st.text(max_size=6), max_size=3).map(lambda x: orjson.dumps(x).decode()),
                              json_value),
        "endDate": st.one_of(st.text(max_size=25), st.sampled_from(["2026-01-10T12:00:00Z", "9999-12-31", "0001-01-01"]),
                             number),
        "eventStartTime": json_scalar, "startDate": json_scalar,
        "orderPriceMinTickSize": number, "volume24hr": number, "liquidityNum": number, "liquidity": number,
        "negRisk": json_scalar, "questionID": json_scalar, "tags": json_value,
        "events": st.lists(st.fixed_dictionaries({}, optional={"slug": json_scalar, "seriesSlug": json_scalar,
                                                               "tags": json_value, "startTime": json_scalar,
                                                               "series": json_value}), max_size=2),
    },
)
tokens = st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8),
                  min_size=1, max_size=3, unique=True)


@st.composite
def plausible_gamma_market(draw) -> dict:
    """A market the client accepts, with every optional field fuzzed."""
    m = draw(gamma_market)
    toks = draw(tokens)
    m.update(closed=False, acceptingOrders=True, enableOrderBook=True, clobTokenIds=orjson.dumps(toks).decode(),
             outcomes=orjson.dumps(draw(st.lists(st.text(max_size=6), min_size=len(toks), max_size=len(toks)))).decode(),
             conditionId=draw(st.text(min_size=1, max_size=10)))
    return m


gamma_page = st.one_of(
    st.fixed_dictionaries({"markets": st.lists(st.one_of(plausible_gamma_market(), plausible_gamma_market(),
                                                         gamma_market), max_size=4)},
                          optional={"next_cursor": st.one_of(st.sampled_from(["", "LTE=", "c1", "c2"]), json_scalar)}),
    json_value,
)


def _check_instruments(insts: list[Instrument], venue: str) -> None:
    """Discovered instruments must survive the snapshot round trip and make valid market records."""
    event(f"instruments discovered: {min(len(insts), 3)}")
    snap = Snapshot(venue=venue, asof_ms=1_768_000_000_000, instruments=insts)
    back = parse_snapshot(snap.to_json(), venue=venue)
    assert [i.instrument_id for i in back.instruments] == [i.instrument_id for i in insts]
    for inst in insts:
        problems = schema.validate(orjson.loads(orjson.dumps(market_record(inst, "added", "rule:all", 1_768_000_000_000))))
        assert problems == [], problems


@FUZZ
@given(pages=st.lists(http_reply(gamma_page.map(_json_bytes)), min_size=1, max_size=4))
def test_polymarket_discovery_pages_on_the_wire(pages):
    c = poly_client(pages)
    try:
        res = c.discover()
    except VenueError:
        return
    assert res.pages <= c.max_pages
    _check_instruments(res.instruments, "polymarket")


lim_market = st.fixed_dictionaries(
    {"slug": st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["../../etc/x", "a/b", "btc-1"]), json_scalar)},
    optional={
        "tradeType": st.one_of(st.sampled_from(["clob", "amm", "group"]), json_scalar),
        "marketType": st.one_of(st.sampled_from(["single", "group"]), json_scalar),
        "tokens": st.one_of(st.fixed_dictionaries({"yes": json_scalar, "no": json_scalar}), json_value),
        "status": json_scalar, "expired": json_scalar, "title": json_scalar,
        "expirationTimestamp": st.one_of(number, st.integers(0, 10**40)),
        "collateralToken": st.one_of(st.fixed_dictionaries({"decimals": json_scalar}), json_value),
        "tickSize": number, "categories": json_value, "tags": json_value, "liquidityFormatted": number,
        "markets": st.lists(json_value, max_size=2),
    },
)
@st.composite
def plausible_lim_market(draw) -> dict:
    m = draw(lim_market)
    m.update(slug=draw(st.one_of(st.text(min_size=1, max_size=12).filter(str.strip),
                                 st.sampled_from(["../../etc/x", "a/b", "btc-1"]))), tradeType="clob")
    m.pop("marketType", None)
    m.pop("markets", None)
    for k in ("status", "expired"):
        if draw(st.booleans()):
            m.pop(k, None)
    return m


lim_page = st.one_of(
    st.fixed_dictionaries({"data": st.lists(st.one_of(plausible_lim_market(), plausible_lim_market(), lim_market),
                                            max_size=4)},
                          optional={"totalMarketsCount": st.one_of(st.integers(-3, 100), json_scalar)}),
    json_value,
)

# BUG-LIMITLESS-EXPIRY-RANGE (fixed): an expirationTimestamp beyond 64 bits became an int the
# snapshot could not serialize (orjson: "Integer exceeds 64-bit range"): discovery of the venue failed.
HUGE_EXPIRY_PAGE = (200, {}, orjson.dumps({"data": [{"slug": "btc-x", "tradeType": "clob", "expirationTimestamp": "1" + "0" * 25}]}))


@FUZZ
@given(pages=st.lists(http_reply(lim_page.map(_json_bytes)), min_size=1, max_size=4))
def test_limitless_discovery_pages_on_the_wire(pages):
    c = lim_client(pages)
    try:
        res = c.discover()
    except VenueError:
        return
    try:
        _check_instruments(res.instruments, "limitless")
    except TypeError as e:
        if not known("LIMITLESS-EXPIRY-RANGE", e):
            raise


def test_limitless_huge_expiry_is_a_bad_market_not_a_broken_discovery(tmp_path):
    """Regression (BUG-LIMITLESS-EXPIRY-RANGE): an expirationTimestamp beyond int64 used to be
    accepted, and the snapshot could then not be written (discovery of the venue failed every run)."""
    c = lim_client([HUGE_EXPIRY_PAGE])
    res = c.discover()
    assert res.instruments == [] and res.skipped.get("bad_market", 0) >= 1
    from collector.discovery.run import discover_venue

    s = Settings(data_dir=tmp_path, venues=["limitless"])
    rep = discover_venue(s, "limitless", client=lim_client([HUGE_EXPIRY_PAGE]))
    assert rep.ok, rep.error


# --------------------------------------------------------------------------- snapshots

inst_doc = st.fixed_dictionaries(
    {"venue": st.one_of(st.just("polymarket"), st.just("polymarket"), st.just("polymarket"), json_scalar),
     "poll_key": st.one_of(st.text(max_size=8), st.text(max_size=8), json_scalar),
     "market_id": st.one_of(st.text(max_size=8), st.text(max_size=8), json_scalar)},
    optional={"instrument_id": json_scalar, "outcome": json_scalar, "expires_at_ms": st.one_of(
        st.integers(-(2**62), 2**62), json_scalar), "tags": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_value),
        "meta": st.one_of(st.dictionaries(st.text(max_size=5), json_scalar, max_size=3), json_value),
        "size_decimals": json_scalar, "volume_24h": json_scalar, "tick_size": json_scalar, "title": json_scalar},
)
snapshot_doc = st.fixed_dictionaries(
    {"schema_version": st.one_of(st.just(1), st.just(1), json_scalar),
     "venue": st.one_of(st.just("polymarket"), st.just("polymarket"), json_scalar),
     "asof_ms": st.one_of(st.integers(0, 2**62), st.integers(0, 2**62), json_scalar),
     "instruments": st.one_of(st.lists(inst_doc, max_size=4), st.lists(inst_doc, max_size=4), json_value)},
    optional={"rules": json_value, "counts": json_value, "extra": json_value},
)


good_snapshot_doc = st.fixed_dictionaries(
    {"schema_version": st.just(1), "venue": st.just("polymarket"), "asof_ms": st.integers(0, 2**62),
     "instruments": st.lists(st.fixed_dictionaries(
         {"venue": st.just("polymarket"), "poll_key": st.text(max_size=8), "market_id": st.text(max_size=8)},
         optional={"outcome": st.one_of(st.none(), st.text(max_size=5)), "expires_at_ms": st.integers(-(2**62), 2**62),
                   "tags": st.lists(st.text(max_size=5), max_size=3), "title": st.text(max_size=10),
                   "meta": st.dictionaries(st.text(max_size=5), json_scalar, max_size=3),
                   "size_decimals": st.one_of(st.none(), st.integers(0, 36)),
                   "volume_24h": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                   "tick_size": st.one_of(st.none(), good_price.map(str)), "extra_field": json_value}),
         max_size=4, unique_by=lambda d: d["poll_key"])},
    optional={"rules": json_value, "counts": st.dictionaries(st.text(max_size=5), st.integers(0, 10)), "x": json_value},
)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), snapshot_doc.map(_json_bytes), good_snapshot_doc.map(_json_bytes),
                      good_snapshot_doc.map(_json_bytes),
                      snapshot_doc.map(lambda d: _json_bytes(d)[: len(_json_bytes(d)) * 2 // 3])))
def test_snapshot_parsing(data):
    try:
        snap = parse_snapshot(data, venue="polymarket")
    except SnapshotError:
        return
    event(f"snapshot accepted with {min(len(snap.instruments), 2)} instruments")
    assert snap.venue == "polymarket" and all(i.venue == "polymarket" for i in snap.instruments)
    # an accepted snapshot is usable: the poller's lane takes it, expiry pruning runs, and it
    # can be written again (discovery rewrites from it)
    from collector.poller.lane import Lane
    from collector.store.writer_set import WriterSet

    with tempfile.TemporaryDirectory() as d:
        ws = WriterSet(Path(d))
        lane = Lane("polymarket", PolymarketClient(PolymarketSettings()), Settings().polymarket, Settings().poller,
                    pool=None, writers=ws)
        lane.set_instruments(snap.instruments, snap.asof_ms, 0.0)
        lane.prune_expired(1_768_000_000_000)
        write_snapshot(Path(d) / "s.json", snap)
        assert read_snapshot(Path(d) / "s.json").instrument_ids() == snap.instrument_ids()
        ws.close()


# --------------------------------------------------------------------------- config

def _field_paths() -> list[tuple[str, Any]]:
    """(COLLECTOR_ env name, annotation) of every setting, nested ones with ``__``."""
    out = []
    for name, f in Settings.model_fields.items():
        ann = f.annotation
        sub = getattr(ann, "model_fields", None)
        if sub:
            for n2, f2 in sub.items():
                out.append((f"COLLECTOR_{name.upper()}__{n2.upper()}", f2.annotation))
        else:
            out.append((f"COLLECTOR_{name.upper()}", ann))
    return out


ENV_NAMES = [n for n, _ in _field_paths() if n != "COLLECTOR_CONFIG"]
env_value = st.one_of(
    st.text(max_size=20).filter(lambda s: "\x00" not in s),
    st.sampled_from(["1", "0", "-1", "nan", "inf", "-inf", "1e308", "1e999", "true", "no", "[]", "{}", "null",
                     '[{"name": "x"}]', '[{"nope": 1}]', "0/1", "3/2", "polymarket", "polymarket,limitless,x",
                     "http://127.0.0.1:1", "ftp://x", "99999999999999999999999999"]),
)


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: v for k, v in os.environ.items() if k.startswith("COLLECTOR_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(values)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("COLLECTOR_")]:
            del os.environ[k]
        os.environ.update(saved)


def _load() -> Settings | None:
    try:
        s = load_settings()
    except ConfigError as e:
        assert str(e).startswith(("invalid configuration", "config:")), str(e)[:200]
        event("ConfigError")
        return None
    event("settings accepted")
    # accepted settings can be printed by `collector config`
    try:
        orjson.dumps(s.model_dump(mode="json"))
    except TypeError as e:
        if not known("CONFIG-BIGINT", e):
            raise
    return s


@FUZZ
@given(env=st.dictionaries(st.one_of(st.sampled_from(ENV_NAMES), st.sampled_from(["COLLECTOR_NOPE", "COLLECTOR_POLLER__NOPE",
                                                                                  "COLLECTOR_", "COLLECTOR___X"])),
                           env_value, max_size=4))
def test_config_env_values(env):
    with _environ(env):
        _load()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or v == v else "nan"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return orjson.dumps(str(v)).decode()


toml_scalar = st.one_of(st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=10),
                        st.lists(st.one_of(st.integers(0, 5), st.text(max_size=5)), max_size=3))
SECTIONS = ["poller", "writer", "polymarket", "limitless", "discovery", "compact", "prefect", "nope"]


@st.composite
def toml_doc(draw) -> str:
    lines = []
    for k, v in draw(st.dictionaries(st.sampled_from(["data_dir", "venues", "log_level", "nope"]), toml_scalar, max_size=3)).items():
        lines.append(f"{k} = {_toml_value(v)}")
    for sec in draw(st.lists(st.sampled_from(SECTIONS), max_size=3, unique=True)):
        model = getattr(Settings.model_fields.get(sec), "annotation", None)
        keys = list(getattr(model, "model_fields", {}) or {}) + ["nope"]
        lines.append(f"[{sec}]")
        for k, v in draw(st.dictionaries(st.sampled_from(keys), toml_scalar, max_size=3)).items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=st.one_of(toml_doc(), st.text(max_size=200)))
def test_config_toml_text(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else p.write_bytes(
            text.encode("utf-8", "replace"))
        with _environ({"COLLECTOR_CONFIG": str(p)}):
            _load()


def test_config_huge_integer_is_a_config_error(capsys):
    """Regression (BUG-CONFIG-BIGINT): an integer setting beyond int64 used to be accepted and
    `collector config` then died with an uncaught TypeError."""
    from collector.cli.main import main

    with _environ({"COLLECTOR_POLLER__ERROR_SAMPLE_EVERY": "1" + "0" * 25}):
        rc = main(["config"])
    assert rc == 2 and "poller.error_sample_every" in capsys.readouterr().err


# --------------------------------------------------------------------------- reader input

line_fragment = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b'{"record_type":"orderbook","schema_version":1,"venue":"polymarket","instrument_id":"polymarket:1",'
                     b'"poll_key":"1","ts_ms":1768003200000,"bids":[[0.4,1]],"asks":[[0.5,2]]}',
                     b'{"record_type":"gap","venue":"polymarket","instrument_id":null,"ts_ms":1768003200000}',
                     b'{"record_type":"market","event":"added","instrument_id":"polymarket:1","ts_ms":1768003200000}',
                     b'{"record_type":"poll_stats","venue":"polymarket","ts_ms":1768003200000}',
                     b'"ts_ms":', b'"instrument_id":"', b"\xff\xfe", b"9" * 30, b"[" * 50, b"{", b"}", b"\n", b"\r\n",
                     b"\x00", b"null", b"1768003200000"]),
)
file_bytes = st.lists(line_fragment, max_size=12).map(b"".join)

# The crashers found by test_reader_never_crashes_on_arbitrary_bytes (pinned by regression tests).
BAD_UTF8_IID = b'{"record_type":"orderbook","instrument_id":"\xff","ts_ms":1768003200000}\n'
HUGE_TS = b'{"record_type":"orderbook","instrument_id":"polymarket:1","ts_ms":' + b"9" * 5000 + b"}\n"
DEEP = b'{"record_type":"orderbook","instrument_id":"polymarket:1","ts_ms":1768003200000,"x":' + b"[" * 100_000 + b"\n"
ZST_GARBAGE = b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 2


# Every public reader over one data directory; results are not checked, only that they return:
# arbitrary bytes must never crash a reader.
READER_CALLS = [
    lambda root: list(read.iter_books(root, "polymarket", gaps=True)),
    lambda root: list(read.iter_books(root, "polymarket", instruments=["polymarket:1", "1"])),
    lambda root: list(read.iter_books(root, "polymarket", start="2026-01-10T00:30Z", end="2026-01-10T01:30Z")),
    lambda root: list(read.iter_books(root, "polymarket", exact=True)),
    lambda root: list(read.iter_records(root, "polymarket", "poll_stats", exact=True)),
    lambda root: book_times(root, "polymarket"),
    lambda root: read.books_at(root, "polymarket", ["polymarket:1"], "2026-01-10T01:00Z"),
    lambda root: read.market_catalog(root),
    lambda root: market_records(root, "polymarket"),
    lambda root: [list(iter_jsonl_lines(f)) for f in sorted(root.rglob("*.jsonl*"))],
]


def _layout(root: Path, blob: bytes, zst: bool, frame: bool) -> None:
    for stream in ("orderbooks", "poll_stats", "markets"):
        d = root / "polymarket" / stream / "date=2026-01-10"
        d.mkdir(parents=True, exist_ok=True)
        name = f"{stream}.20260110T0000Z.000000000-1-abcdef.jsonl" if stream != "markets" else "markets.000000.1.jsonl"
        (d / name).write_bytes(blob)
        if zst:  # a compressed sibling period: either a real frame of the blob or raw bytes
            data = zstandard.ZstdCompressor().compress(blob) if frame else blob
            (d / f"{stream}.20260110T0100Z.000000000-1-abcdef.jsonl.zst").write_bytes(data)


@FUZZ
@given(blob=file_bytes, zst=st.booleans(), frame=st.booleans())
@example(blob=BAD_UTF8_IID + HUGE_TS + DEEP, zst=True, frame=True)
@example(blob=ZST_GARBAGE, zst=True, frame=False)
def test_reader_never_crashes_on_arbitrary_bytes(blob, zst, frame):
    with tempfile.TemporaryDirectory() as d:
        _layout(Path(d), blob, zst, frame)
        for call in READER_CALLS:
            try:
                call(Path(d))
            except Exception as e:
                if not any(known(b, e) for b in ("READER-UTF8", "READER-BIGINT", "READER-DEPTH", "READER-ZSTD")):
                    raise


def _one_file(tmp_path: Path, blob: bytes, name: str = "orderbooks.20260110T0000Z.000000000-1-abcdef.jsonl") -> Path:
    d = tmp_path / "polymarket" / "orderbooks" / "date=2026-01-10"
    d.mkdir(parents=True)
    (d / name).write_bytes(blob)
    return d / name


# Regressions (BUG-READER-*): each of these lines used to crash a reader.


def test_reader_survives_invalid_utf8_in_an_instrument_id(tmp_path):
    _one_file(tmp_path, BAD_UTF8_IID)
    book_times(tmp_path, "polymarket")
    assert list(read.iter_books(tmp_path, "polymarket", instruments=["polymarket:1"])) == []
    read.books_at(tmp_path, "polymarket", ["polymarket:1"], "2026-01-10T01:00Z")


def test_reader_survives_a_huge_ts_ms(tmp_path):
    _one_file(tmp_path, HUGE_TS)
    assert list(read.iter_books(tmp_path, "polymarket", start="2026-01-10T00:30Z", end="2026-01-10T01:30Z")) == []
    book_times(tmp_path, "polymarket")


def test_reader_survives_deep_nesting_with_exact_numbers(tmp_path):
    _one_file(tmp_path, DEEP)
    assert list(read.iter_books(tmp_path, "polymarket", exact=True)) == []


def test_reader_survives_a_corrupt_zst(tmp_path):
    f = _one_file(tmp_path, ZST_GARBAGE, "orderbooks.20260110T0000Z.000000000-1-abcdef.jsonl.zst")
    assert list(iter_jsonl_lines(f)) == []
    assert list(read.iter_books(tmp_path, "polymarket")) == []
