"""The fetch-thread path of Polymarket books (collector.venues.polymarket_reply): split without
decoding levels, hash checked on the bytes as served, sides reused when unchanged. It must give
exactly what the general path (orjson body -> book_record) gives, on real and generated books."""

from __future__ import annotations

import hashlib
import threading

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.model import errors
from collector.model.records import Instrument
from collector.venues import polyhash
from collector.venues import polymarket_reply as reply
from collector.venues.polyhash import ExactReply
from collector.venues.polymarket_book import book_record
from tests.test_book_hash import REST_BOOKS, _real

TOKEN = "1234567890"


def _inst(key: str = TOKEN) -> Instrument:
    return Instrument(venue="polymarket", poll_key=key, market_id="0xm", outcome="Yes")


def _same(a, b) -> None:
    assert (a.bids, a.asks, a.tick_size, a.extra, a.ob_ts_ms, a.hash, a.hash_ok) == \
           (b.bids, b.asks, b.tick_size, b.extra, b.ob_ts_ms, b.hash, b.hash_ok)
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("name,ok", sorted(REST_BOOKS.items()))
def test_real_books_same_record_and_verdict_pretty_and_compact(name, ok):
    pretty = _real(name)
    body = orjson.loads(pretty)
    for raw in (pretty, orjson.dumps(body)):  # as captured (indented), and as the venue serves it
        array = b"[" + raw + b"]"
        items = reply.items(array, "/books")
        hd = reply.head(items[0])
        book = reply.polled(items[0], hd, True, ExactReply(array), 0)
        assert book.hash_ok is ok is polyhash.check(body)
        assert book.hash == body["hash"]
        inst = _inst(body["asset_id"])
        _same(reply.record(inst, book, 5, 1.0, {}), book_record(inst, body, ok, 5, 1.0))


_lvl = st.fixed_dictionaries({"price": st.sampled_from(["0.01", "0.5", "0.50", "0.999", "1", "0"]),
                              "size": st.sampled_from(["1", "10.5", "0", "250000", "3.1400"])})
_side = st.lists(_lvl, max_size=6)


def _body(bids, asks, ts: int, **kw) -> dict:
    b = {"market": "0xm", "asset_id": TOKEN, "timestamp": str(ts), "hash": "", "bids": bids, "asks": asks,
         "min_order_size": "5", "tick_size": "0.01", "neg_risk": False, "last_trade_price": "0.5", **kw}
    b["hash"] = hashlib.sha1(orjson.dumps(b)).hexdigest()  # the venue's rule: SHA-1 with "hash":""
    return b


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_side, _side, st.booleans()), min_size=1, max_size=8))
def test_sides_reused_across_polls_give_the_general_record(polls):
    sides: dict = {}
    prev = None
    for k, (bids, asks, keep) in enumerate(polls):
        if keep and prev is not None:  # the same book polled again (new timestamp and hash)
            bids, asks = prev
        prev = (bids, asks)
        body = _body(bids, asks, 1_790_000_000_000 + k)
        raw = orjson.dumps(body)
        book = reply.polled(raw, reply.head(raw), True, None, None)
        assert book.hash_ok is True
        _same(reply.record(_inst(), book, k, 2.0, sides), book_record(_inst(), body, True, k, 2.0))
    assert list(sides) == [TOKEN]


def test_content_key_equal_exactly_for_the_same_book():
    a = orjson.dumps(_body([{"price": "0.4", "size": "1"}], [], 1))
    b = orjson.dumps(_body([{"price": "0.4", "size": "1"}], [], 2))  # later poll, same book
    c = orjson.dumps(_body([{"price": "0.4", "size": "2"}], [], 3))
    d = orjson.dumps(_body([{"price": "0.4", "size": "1"}], [], 4, tick_size="0.001"))
    key = [reply.polled(x, reply.head(x), True, None, None).content for x in (a, b, c, d)]
    assert key[0] == key[1] and key[0] != key[2] and key[0] != key[3]


def test_tampered_book_fails_its_hash_and_bad_shapes_are_typed_errors():
    body = _body([{"price": "0.4", "size": "1"}], [], 1)
    raw = orjson.dumps(body).replace(b'"size":"1"', b'"size":"9"')
    book = reply.polled(raw, reply.head(raw), True, None, None)
    assert book.hash_ok is False
    assert reply.polled(raw, reply.head(raw), False, None, None).hash_ok is None  # check off
    with pytest.raises(errors.BadPayload, match="expected an array"):
        reply.items(b'{"error": "x"}', "/books")
    with pytest.raises(errors.BadPayload, match="HTML"):
        reply.items(b"<html>busy</html>", "/books")
    assert reply.head(b"3") is None
    bad = orjson.dumps({**body, "bids": [{"price": "x", "size": "1"}]})
    with pytest.raises(errors.BadPayload):
        reply.record(_inst(), reply.polled(bad, reply.head(bad), True, None, None), 1, 1.0, {})
    bad = orjson.dumps({**body, "bids": {"price": "0.4"}})
    with pytest.raises(errors.BadPayload, match="bids"):
        reply.record(_inst(), reply.polled(bad, reply.head(bad), True, None, None), 1, 1.0, {})


def test_sides_cache_is_bounded_least_recent_first(monkeypatch):
    monkeypatch.setattr(reply, "SIDES_MAX", 3)
    sides: dict = {}
    for k in range(5):
        key = f"{k}"
        raw = orjson.dumps({**_body([], [], 1), "asset_id": key})
        reply.record(_inst(key), reply.polled(raw, reply.head(raw), True, None, None), 1, 1.0, sides)
    assert list(sides) == ["2", "3", "4"]


def test_text_caches_keep_their_newest_entries_when_full(monkeypatch):
    from collector.venues import polymarket_book as pm

    monkeypatch.setattr(pm, "_TEXT_CACHE_MAX", 40)
    monkeypatch.setattr(pm, "_TEXT_CACHE", {})
    monkeypatch.setattr(pm, "_PRICE_CACHE", {})
    for k in range(30):  # 30 books of distinct sizes: the cache passes its bound several times
        body = _body([{"price": "0.4", "size": f"{k}.{j}5"} for j in range(3)], [], k)
        book_record(_inst(), body, True, k, 1.0)
        assert len(pm._TEXT_CACHE) <= 40
    assert "29.25" in pm._TEXT_CACHE and "0.05" not in pm._TEXT_CACHE  # newest kept, oldest gone
    assert pm._PRICE_CACHE == {"0.4": "0.4"}


# -- Repeats: an item byte for byte the same as its token's last one is that book -------------


def _served(body: dict) -> bytes:
    return orjson.dumps(body)


def _decoded(raw: bytes, verify: bool = True):
    return reply.polled(raw, reply.head(raw), verify, None, None)


@given(_side, _side, st.integers(0, 2**40), st.booleans())
@settings(max_examples=50, deadline=None)
def test_a_repeat_is_the_book_decoded_in_full(bids, asks, ts, verify):
    raw = _served(_body(bids, asks, ts))
    rep = reply.Repeats(threading.Lock())
    assert rep.get(raw) is None  # nothing remembered yet
    first = _decoded(raw, verify)
    rep.put(TOKEN, first)
    aid, again = rep.get(bytes(raw))  # a new reply: equal bytes, another object
    full = _decoded(bytes(raw), verify)
    assert aid == TOKEN
    assert (again.content, again.ob_ts_ms, again.hash, again.hash_ok) == \
           (full.content, full.ob_ts_ms, full.hash, full.hash_ok)
    assert again.body == raw and again is not first  # a fresh book: the lane may set its body


def test_any_changed_byte_is_decoded_and_checked_again():
    body = _body([{"price": "0.4", "size": "10"}], [{"price": "0.6", "size": "5"}], 1_781_712_345_678)
    raw = _served(body)
    rep = reply.Repeats(threading.Lock())
    rep.put(TOKEN, _decoded(raw))
    # Same token, same hash and timestamp, one size altered in transit: not a repeat, and the
    # full check then flags it.
    tampered = raw.replace(b'"size":"10"', b'"size":"11"')
    assert tampered != raw and rep.get(tampered) is None
    assert _decoded(tampered).hash_ok is False
    # Another token's identical-looking book is not this one's.
    other = _served({**body, "asset_id": "999"})
    assert rep.get(other) is None


def test_a_failed_hash_is_not_remembered_and_the_cache_is_bounded():
    body = _body([], [], 5)
    bad = _served({**body, "hash": "0" * 40})
    rep = reply.Repeats(threading.Lock(), limit=8)
    book = _decoded(bad)
    assert book.hash_ok is False
    rep.put(TOKEN, book)
    assert rep.get(bad) is None  # checked (and counted) again on every poll
    for k in range(20):
        rep.put(str(k), _decoded(_served(_body([], [], 5, asset_id=str(k)))))
    assert len(rep._last) <= 8
    assert rep.get(_served(_body([], [], 5, asset_id="19"))) is not None  # the newest stay


def test_malloc_arenas_cap_applies_on_glibc_and_0_leaves_the_default():
    import platform

    from collector.poller.loop import cap_malloc_arenas

    assert cap_malloc_arenas(0) is False
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_ARENA_MAX) is glibc's")
    assert cap_malloc_arenas(8) is True  # (the default of 2 is already applied by other tests' pollers)
