"""The Limitless feed handler: orderbookUpdate as whole books scaled exactly like REST (checked on
the real REST order-book payloads, whose shape the feed's ``orderbook`` carries), the first book
of a subscription from REST, and REST reconciliation."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from collector.model.records import Instrument
from collector.venues.limitless import normalize_book
from tests.real_payloads import load
from tests.stream_harness import Harness

SLUG = "dollarbtc-above-dollar8692986-on-dec-16-2300-utc-1765922495606"


def _inst(slug: str = SLUG) -> Instrument:
    return Instrument(venue="limitless", poll_key=slug, market_id="1", size_decimals=6)


def _update(book: dict, slug: str = SLUG, ts: str = "2026-12-01T10:00:00.123Z") -> dict:
    return {"marketSlug": slug, "orderbook": book, "timestamp": ts}


def _rest(h: Harness, book: dict, sent: float, slug: str = SLUG) -> None:
    rec = normalize_book(_inst(slug), book, h.ts, 3.0)
    h.lane.on_rest_book(slug, rec, book, sent, time.monotonic())


def _live(tmp_path, book):
    h = Harness(tmp_path, venue="limitless")
    h.lane.set_instruments([_inst()], time.monotonic())
    h.up()
    assert SLUG in h.rest.expedited  # the venue sends no book on subscribe: REST brings the first
    _rest(h, book, time.monotonic())
    return h


def test_update_is_a_whole_book_scaled_like_rest_on_real_payloads(tmp_path):
    real = load("limitless/orderbooks_limitlessmm_records.json")[0]["orderbook"]
    ccxt = load("limitless/orderbook_ccxt_usa_aus.json")  # sizes as strings
    h = _live(tmp_path, real)
    h.feed(_update(ccxt), event="orderbookUpdate")
    first, second = [r for r in h.records() if r["record_type"] == "book_snapshot"]
    assert first["reason"] == "subscribe" and first["source"] == "rest"
    assert first["bids"][0] == [0.972, 419.815715]
    assert second["reason"] == "update" and second["source"] == "ws"
    assert second["bids"][0] == [0.466, 2000] and second["asks"][0] == [0.486, 2000]
    assert second["ob_ts_ms"] == int(datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=timezone.utc).timestamp() * 1000)
    rec = normalize_book(_inst(), ccxt, 0, 0.0)
    assert h.lane.tracked[SLUG].book.levels() == (rec.bids, rec.asks)


def test_rest_differing_with_no_update_in_between_is_a_resync(tmp_path):
    real = load("limitless/orderbook_ccxt_usa_aus.json")
    h = _live(tmp_path, real)
    changed = dict(real, bids=real["bids"][1:])
    sent = time.monotonic()
    _rest(h, changed, sent)
    recs = h.records()
    assert recs[-2]["record_type"] == "gap" and recs[-2]["reason"] == "resync:rest_differs"
    assert recs[-1]["reason"] == "resync" and recs[-1]["bids"][0] == [0.445, 192]
    # an update that arrived while a REST request was out is not compared (order unknown)
    h.feed(_update(real), event="orderbookUpdate")
    _rest(h, changed, sent)
    assert h.lane.c.mismatches == {"rest_differs": 1}


def test_cadence_quiet_markets_every_15s_busy_ones_every_60s(tmp_path):
    real = load("limitless/orderbook_ccxt_usa_aus.json")
    h = _live(tmp_path, real)
    now = time.monotonic()
    assert h.lane.interval(SLUG, 1.5, now) == 15.0  # no update yet
    h.feed(_update(real), event="orderbookUpdate")
    assert h.lane.interval(SLUG, 1.5, time.monotonic()) == 60.0
    assert h.lane.interval(SLUG, 1.5, time.monotonic() + 16) == 15.0
    h.down()
    assert h.lane.interval(SLUG, 1.5, time.monotonic()) == 1.5


def test_bad_update_is_counted_and_the_book_kept(tmp_path):
    real = load("limitless/orderbook_ccxt_usa_aus.json")
    h = _live(tmp_path, real)
    h.feed(_update({"bids": [{"price": "0.5", "size": "1.5"}], "asks": []}), event="orderbookUpdate")
    h.feed(_update(real, slug="unknown-slug"), event="orderbookUpdate")
    assert h.lane.c.errors == {"BadPayload": 1} and h.lane.c.unknown == 1
    assert h.lane.tracked[SLUG].book.best() == ("0.466", "0.486")
