"""Stream lane states, resyncs, gaps and the REST link, with Polymarket-shaped messages whose
hashes follow the venue's rule (SHA-1 of the REST twin) and the real normalizer for REST books."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from collector.model.records import Instrument
from collector.venues.polyhash import CheckedBook, book_hash
from collector.venues.polymarket_book import book_record
from tests.stream_harness import Harness

MARKET = "0x" + "ab" * 32
A = "1111"
B = "2222"


class Venue:
    """The venue's truth for one token: its book, rendered and hashed as the CLOB does."""

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.bids = {"0.40": "100", "0.39": "50.5"}
        self.asks = {"0.42": "70", "0.45": "12"}
        self.ts = 1_790_000_000_000

    def rest(self, ts: int | None = None) -> dict:
        d = {"market": MARKET, "asset_id": self.asset, "timestamp": str(ts or self.ts), "hash": "",
             "bids": [{"price": p, "size": s} for p, s in sorted(self.bids.items(), key=lambda x: Decimal(x[0]))],
             "asks": [{"price": p, "size": s} for p, s in sorted(self.asks.items(), key=lambda x: -Decimal(x[0]))],
             "min_order_size": "5", "tick_size": "0.01", "neg_risk": False, "last_trade_price": "0.41"}
        d["hash"] = book_hash(d)
        return d

    def book_event(self) -> dict:
        r = self.rest()
        return {"market": MARKET, "asset_id": self.asset, "timestamp": r["timestamp"], "hash": r["hash"],
                "bids": r["bids"], "asks": r["asks"], "tick_size": "0.01", "event_type": "book",
                "last_trade_price": "0.41"}

    def change(self, side: str, price: str, size: str) -> dict:
        book = self.bids if side == "BUY" else self.asks
        if Decimal(size) == 0:
            book.pop(price, None)
        else:
            book[price] = size
        self.ts += 10
        r = self.rest()
        bb = max(self.bids, key=Decimal) if self.bids else "0"
        ba = min(self.asks, key=Decimal) if self.asks else "1"
        return {"market": MARKET, "price_changes": [{"asset_id": self.asset, "price": price, "size": size,
                "side": side, "hash": r["hash"], "best_bid": bb, "best_ask": ba}],
                "timestamp": str(self.ts), "event_type": "price_change"}


def _inst(key: str) -> Instrument:
    return Instrument(venue="polymarket", poll_key=key, market_id=MARKET)


def _rest(h: Harness, v: Venue, key: str, sent: float, ts: int | None = None) -> None:
    body = v.rest(ts)
    rec = book_record(_inst(key), body, True, h.ts, 5.0)
    h.lane.on_rest_book(key, rec, CheckedBook(body, True), sent, time.monotonic())


@pytest.fixture
def live(tmp_path):
    h = Harness(tmp_path)
    h.instruments([A, B], market_id=MARKET)
    h.up()
    v = Venue(A)
    h.feed([v.book_event()])
    assert h.lane.tracked[A].status == "live"
    return h, v


def test_subscribe_snapshot_then_changes_are_exact_and_verified(live):
    h, v = live
    h.feed(v.change("BUY", "0.41", "20"))
    h.feed(v.change("SELL", "0.42", "0"))
    snap, c1, c2 = [r for r in h.records() if r["instrument_id"] == f"polymarket:{A}"]
    assert snap["record_type"] == "book_snapshot" and snap["reason"] == "subscribe" and snap["hash_ok"] is True
    assert snap["bids"] == [[0.4, 100], [0.39, 50.5]] and snap["asks"] == [[0.42, 70], [0.45, 12]]
    assert c1["bids"] == [[0.41, 20]] and c1["best_bid"] == 0.41 and c1["hash_ok"] is True and c1["synced"]
    assert c2["asks"] == [[0.42, 0]] and c2["best_ask"] == 0.45 and c2["hash_ok"] is True
    assert (c1["seq"], c2["seq"]) == (2, 3) and c1["conn"] == snap["conn"]
    assert h.lane.tracked[A].book.levels() == ([("0.41", "20"), ("0.4", "100"), ("0.39", "50.5")],
                                               [("0.45", "12")])


def test_dropped_change_resyncs_from_rest_and_replays_what_came_after(live):
    h, v = live
    v.change("BUY", "0.30", "20")  # the venue changed deep in the book; the message never arrived
    h.feed(v.change("SELL", "0.43", "8"))
    t = h.lane.tracked[A]
    assert t.suspect is not None and t.suspect[3] == "hash_mismatch" and t.status == "live"
    h.lane.tick(t.suspect[0] + h.s.hash_grace_s + 1)
    assert t.status == "resync" and A in h.rest.expedited
    sent = t.resync_since  # the expedited request
    rest_ts = v.ts
    rest_body_state = v.rest()
    h.feed(v.change("BUY", "0.38", "5"))  # after the REST book: kept and replayed
    body = rest_body_state
    rec = book_record(_inst(A), body, True, h.ts, 5.0)
    h.lane.on_rest_book(A, rec, CheckedBook(body, True), sent, time.monotonic())
    assert t.status == "live"
    recs = [r for r in h.records() if r["instrument_id"] == f"polymarket:{A}"]
    gap = next(r for r in recs if r["record_type"] == "gap")
    assert gap["reason"] == "resync:hash_mismatch" and gap["from_ts_ms"] <= gap["to_ts_ms"]
    unsynced = [r for r in recs if r["record_type"] == "book_change" and not r["synced"]]
    assert len(unsynced) == 1
    snap = recs[-1]
    assert snap["record_type"] == "book_snapshot" and snap["reason"] == "resync" and snap["source"] == "rest"
    assert snap["hash_ok"] is True and snap["ob_ts_ms"] == v.ts > rest_ts
    want_bids = sorted(((Decimal(p), p, s) for p, s in v.bids.items()), reverse=True)
    assert t.book.levels()[0] == [(p.rstrip("0").rstrip(".") if "." in p else p, s) for _, p, s in want_bids]
    h.feed(v.change("SELL", "0.44", "1"))
    assert [r for r in h.records()][-1]["hash_ok"] is True


def test_rest_book_sent_before_the_trouble_is_not_swapped_in(live):
    h, v = live
    sent = time.monotonic()
    v.change("BUY", "0.41", "20")
    h.feed(v.change("SELL", "0.43", "8"))
    t = h.lane.tracked[A]
    h.lane.tick(t.suspect[0] + 10)
    _rest(h, v, A, sent)
    assert t.status == "resync"
    _rest(h, v, A, t.resync_since + 0.1)
    assert t.status == "live"


def test_disconnect_is_a_gap_closed_by_the_next_subscription_snapshot(live):
    h, v = live
    h.down(reason="closed")
    t = h.lane.tracked[A]
    assert t.status == "waiting" and A in h.rest.expedited
    assert h.lane.interval(A, 1.0, time.monotonic()) == 1.0  # REST at full rate meanwhile
    h.feed(v.change("BUY", "0.41", "1"))  # a late message of the old connection: ignored
    h.up()
    h.feed([v.book_event()])
    recs = [r for r in h.records() if r["instrument_id"] == f"polymarket:{A}"]
    assert [r["record_type"] for r in recs] == ["book_snapshot", "gap", "book_snapshot"]
    assert recs[1]["reason"] == "ws_closed" and recs[2]["reason"] == "subscribe"
    assert recs[2]["conn"] != recs[0]["conn"] and recs[2]["seq"] == 1
    assert h.lane.interval(A, 1.0, time.monotonic()) == h.s.rest_interval_s


def test_rest_sample_agreeing_or_differing_at_the_same_venue_time(live):
    h, v = live
    _rest(h, v, A, time.monotonic())
    assert h.lane.c.rest_agreed == 1
    body = v.rest()
    body["bids"][0]["size"] = "999"  # the venue's book differs from ours at the same timestamp
    body["hash"] = ""
    body["hash"] = book_hash(body)
    rec = book_record(_inst(A), body, True, h.ts, 5.0)
    h.lane.on_rest_book(A, rec, CheckedBook(body, True), time.monotonic(), time.monotonic())
    t = h.lane.tracked[A]
    assert t.status == "live" and h.lane.c.mismatches == {"rest_differs": 1}
    recs = h.records()
    assert recs[-2]["record_type"] == "gap" and recs[-2]["reason"] == "resync:rest_differs"
    assert recs[-1]["reason"] == "resync" and [0.39, 999] in recs[-1]["bids"]


def test_stalled_token_is_resynced_and_resubscribed(live):
    h, v = live
    v.change("BUY", "0.41", "20")  # the feed never sends it; REST sees it a minute later
    body = v.rest()
    rec = book_record(_inst(A), body, True, v.ts + 60_000, 5.0)
    later = time.monotonic() + h.s.token_stall_s + 1  # the feed has been silent on it this long
    h.lane.on_rest_book(A, rec, CheckedBook(body, True), later, later)
    t = h.lane.tracked[A]
    assert t.suspect is not None and t.suspect[3] == "stalled" and t.status == "live"
    h.lane.tick(later + h.s.hash_grace_s + 1)
    assert t.status == "resync"
    h.lane.on_rest_book(A, rec, CheckedBook(body, True), t.resync_since, t.resync_since)
    conn = h.lane.conns[0]
    assert ("unsub", (A,)) in conn.asked and ("sub", (A,)) in conn.asked
    assert h.lane.c.mismatches == {"stalled": 1} and h.lane.tracked[A].status == "live"


def test_close_and_removal_end_every_live_stream_with_a_gap(live):
    h, v = live
    h.instruments([A], market_id=MARKET)  # B leaves (it never had a book: no gap)
    h.lane.close()
    gaps = [r for r in h.records() if r["record_type"] == "gap"]
    assert [(g["instrument_id"], g["reason"]) for g in gaps] == [(f"polymarket:{A}", "stream_stopped")]


def test_unknown_and_malformed_messages_are_counted_not_fatal(live):
    h, v = live
    h.feed({"event_type": "price_change", "market": MARKET, "timestamp": "x", "price_changes": []})
    h.feed({"event_type": "book", "asset_id": "999"})
    h.feed({"event_type": "mystery"})
    h.feed([1, 2])
    assert h.lane.c.errors["ValueError"] == 1 and h.lane.c.unknown == 1
    assert h.lane.c.errors["event:mystery"] == 1 and h.lane.c.errors["not_an_object"] == 2
    h.feed(v.change("BUY", "0.41", "20"))
    assert h.records()[-1]["hash_ok"] is True


def test_token_left_out_of_the_dump_starts_from_a_rest_book_and_replays_later_changes(tmp_path):
    h = Harness(tmp_path, subscribe_wait_s=0.01)
    h.instruments([B], market_id=MARKET)
    h.up()
    v = Venue(B)
    t = h.lane.tracked[B]
    rest_body = v.rest()
    sent = time.monotonic()
    h.feed(v.change("SELL", "0.44", "3"))  # after the REST book was taken: must be replayed
    time.sleep(0.02)
    rec = book_record(_inst(B), rest_body, True, h.ts, 5.0)
    h.lane.on_rest_book(B, rec, CheckedBook(rest_body, True), sent, time.monotonic())
    assert t.status == "live"
    snap = h.records()[-1]
    assert snap["reason"] == "subscribe" and snap["source"] == "rest" and snap["hash_ok"] is True
    assert [0.44, 3] in snap["asks"] and snap["ob_ts_ms"] == v.ts
    h.feed(v.change("BUY", "0.41", "2"))
    assert h.records()[-1]["hash_ok"] is True
