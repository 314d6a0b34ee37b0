"""Polymarket book hashes verified at capture (issue 12, item 6).

The venue's ``hash`` is the SHA-1 of the body as served with ``hash`` = "" (compact JSON, the
venue's key order, values as sent). A mismatch flags the record (``hash_ok: false``) and is
counted in poll_stats (``hash_mismatch``); the book is never dropped.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collector.config.settings import PolymarketSettings
from collector.model.records import Instrument
from collector.poller.loop import Poller
from collector.sim.polymarket.books import poly_book_bytes
from collector.sim.testing import run_sim
from collector.venues import polyhash
from collector.venues.base import PolledBook
from collector.venues.polymarket import PolymarketClient
from tests import helpers as h
from tests.http_stub import Reply, http_stub
from tests.reliability import schema

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real-payloads" / "polymarket"
# Every captured REST /book body (SOURCES.md): three untrimmed ones reproduce; ccxt trimmed its
# book to 5 levels a side, so its hash must come out as a mismatch (flagged, never dropped).
REST_BOOKS = {
    "book_metamask_spurs.json": True,
    "book_nautilus_empty_ask.json": True,
    "book_polypy_2024_six_fields.json": True,
    "book_ccxt_jd_vance.json": False,
}
CLOB = "https://clob.test"


def _real(name: str) -> bytes:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real payloads not found at {REAL} (shared/ is expected next to the project)")
    return path.read_bytes()


def _client(**kw) -> PolymarketClient:
    return PolymarketClient(PolymarketSettings(**{"gamma_url": "https://gamma.test", "clob_url": CLOB, **kw}))


def _inst(body: dict) -> Instrument:
    return Instrument(venue="polymarket", poll_key=body["asset_id"], market_id=body["market"], outcome="Yes")


# --------------------------------------------------------------------------- real payloads


@pytest.mark.parametrize("name,ok", sorted(REST_BOOKS.items()))
def test_hash_rule_on_every_real_rest_book(name, ok):
    body = orjson.loads(_real(name))
    assert polyhash.check(body) is ok
    assert (polyhash.book_hash(body) == body["hash"]) is ok


@pytest.fixture
def stub():
    with http_stub() as s:
        yield s


@pytest.mark.parametrize("name,ok", sorted(REST_BOOKS.items()))
def test_get_book_flags_real_payload_and_keeps_it(stub, name, ok):
    raw = _real(name)
    body = orjson.loads(raw)
    stub.route("GET", "/book", Reply(200, raw, {"Content-Type": "application/json"}))
    c = _client(clob_url=stub.url)
    try:
        res = c.fetch_book(body["asset_id"])
        got = res.books[body["asset_id"]]
        assert isinstance(got, PolledBook) and got.hash_ok is ok
        rec = c.normalize(_inst(body), got, res.ts_ms, res.latency_ms)
    finally:
        c.close()
    assert rec.hash == body["hash"] and rec.hash_ok is ok
    assert len(rec.bids) == len(body["bids"]) and len(rec.asks) == len(body["asks"])  # kept whole
    line = orjson.loads(rec.to_json())
    assert line["hash_ok"] is ok and line["hash"] == body["hash"]
    assert schema.validate(line) == []
    assert c.hash_mismatches == (0 if ok else 1)


def test_post_books_checks_each_item_in_the_venue_key_order(stub):
    names = sorted(REST_BOOKS)
    raws = [_real(n) for n in names]
    # The bodies as the venue would put them in one array (pretty-printed files: values and key
    # order are what matter, the check re-serializes compactly).
    stub.route("POST", "/books", Reply(200, b"[" + b",".join(raws) + b"]"))
    bodies = [orjson.loads(r) for r in raws]
    c = _client(clob_url=stub.url)
    try:
        res = c.fetch_books([b["asset_id"] for b in bodies])
    finally:
        c.close()
    assert {b["asset_id"]: res.books[b["asset_id"]].hash_ok for b in bodies} == {
        b["asset_id"]: REST_BOOKS[n] for n, b in zip(names, bodies)
    }


def test_numbers_are_checked_with_their_original_text(stub):
    """A JSON float loses its text in parsing (0.50 -> 0.5); the check then falls back to the
    raw bytes, so a book hashed over "0.50" still verifies, inside a /books array too."""
    blank = b'{"market":"0xm","asset_id":"7","timestamp":1700000000000,"hash":"","bids":[{"price":0.50,"size":"10"}],"asks":[]}'
    digest = polyhash._sha1(blank).hexdigest()
    served = blank.replace(b'"hash":""', b'"hash":"' + digest.encode() + b'"')
    other = poly_book_bytes({"market": "0xm", "asset_id": "8", "timestamp": "1", "hash": "", "bids": [], "asks": []})
    stub.route("POST", "/books", Reply(200, b"[" + other + b"," + served + b"]"))
    assert polyhash.check(orjson.loads(served)) is False  # the fast path alone cannot tell
    c = _client(clob_url=stub.url)
    try:
        res = c.fetch_books(["7", "8"])
    finally:
        c.close()
    assert res.books["7"].hash_ok is True and res.books["8"].hash_ok is True


def test_no_hash_and_switched_off():
    body = orjson.loads(poly_book_bytes({"market": "0xm", "asset_id": "9", "timestamp": "1", "hash": "",
                                         "bids": [{"price": "0.4", "size": "1"}], "asks": []}))
    c = _client()
    rec = c.normalize(_inst(body), body, 1, 1.0)  # a bare dict is checked in normalize
    assert rec.hash_ok is True
    nohash = {**body, "hash": ""}
    rec = c.normalize(_inst(body), nohash, 1, 1.0)
    assert rec.hash is None and rec.hash_ok is None
    assert "hash" not in orjson.loads(rec.to_json()) and "hash_ok" not in orjson.loads(rec.to_json())
    off = _client(verify_book_hash=False)
    rec = off.normalize(_inst(body), body, 1_781_712_346_012, 1.0)
    line = orjson.loads(rec.to_json())
    assert line["hash"] == body["hash"] and line["hash_ok"] is None  # present, null: not checked
    assert schema.validate(line) == []
    c.close()
    off.close()


# --------------------------------------------------------------------------- property

digits = st.text(alphabet="0123456789", min_size=1, max_size=12)
price = st.integers(min_value=1, max_value=999).map(lambda n: f"0.{n:03d}".rstrip("0"))
size = st.one_of(digits, st.tuples(digits, digits).map(lambda t: f"{t[0]}.{t[1]}"))
level = st.fixed_dictionaries({"price": price, "size": size})
optional = st.fixed_dictionaries(
    {},
    optional={"min_order_size": st.sampled_from(["5", "1", "15"]), "tick_size": st.sampled_from(["0.01", "0.001"]),
              "neg_risk": st.booleans(), "last_trade_price": st.one_of(st.just(""), price)},
)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bids=st.lists(level, max_size=12), asks=st.lists(level, max_size=12), extra=optional,
       ts=digits, asset=digits, data=st.data())
def test_property_sim_body_verifies_and_any_level_change_breaks_it(bids, asks, extra, ts, asset, data):
    d = {"market": "0x" + "ab" * 32, "asset_id": asset, "timestamp": ts, "hash": "", "bids": bids, "asks": asks,
         **extra}
    body = orjson.loads(poly_book_bytes(d))  # the simulator's serializer, as served
    assert polyhash.check(body) is True
    if not bids and not asks:
        return
    side = data.draw(st.sampled_from([s for s in ("bids", "asks") if body[s]]))
    i = data.draw(st.integers(0, len(body[side]) - 1))
    how = data.draw(st.sampled_from(["size", "price", "drop"]))
    changed = orjson.loads(orjson.dumps(body))
    if how == "drop":
        del changed[side][i]
    else:
        changed[side][i][how] += "1"  # still a number, another value
    assert polyhash.check(changed) is False


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("endpoint", ["batch", "single"])
def test_poller_flags_corrupted_books_from_the_sim(tmp_path, monkeypatch, endpoint):
    """The sim's bad_hash fault edits a level after hashing: the poller keeps those books,
    flags them hash_ok=false and counts them in poll_stats.hash_mismatch; the rest verify."""
    with run_sim("--markets", "6", "--seed", "21") as sim:
        settings = h.prepare(sim, tmp_path, monkeypatch, venues="polymarket", POLYMARKET__BOOKS_ENDPOINT=endpoint)
        sim.control(venue="polymarket", bad_hash_rate=0.3)
        t0 = time.time()
        Poller(settings).run(duration_s=3.5)
        served_bad = sim.control()["polymarket"]["bad_hash_served"]
    books = h.books(tmp_path, "polymarket")
    stats = h.stats(tmp_path, "polymarket")
    assert books and time.time() - t0 < 30
    for r in books:
        assert schema.validate(r) == [], r
        assert type(r["hash_ok"]) is bool and len(r["hash"]) == 40
    flagged = [r for r in books if r["hash_ok"] is False]
    assert 0 < len(flagged) < len(books)
    assert len(flagged) <= served_bad  # a reply still in flight at shutdown is not written
    assert sum(r["hash_mismatch"] for r in stats) == len(flagged)
    assert sum(r["ok"] for r in stats) == len(books)  # nothing dropped
    assert sum(r["failed"] for r in stats) == 0
    for r in stats:
        assert schema.validate(r) == [], r
