"""The Polymarket feed handler over market-channel frames captured from the real venue.

Counts are the ones shared/real-payloads/SOURCES.md reports for its own reference replay: every
captured WS ``book`` hash reproduces on our book, and 42 of the 58 price_change entries of the
polymorph capture do (the 16 others are one market whose capture looks incomplete)."""

from __future__ import annotations

from collections import Counter

from tests.real_payloads import load
from tests.stream_harness import Harness


def _assets(frames):
    out = set()
    for f in frames:
        for m in f if isinstance(f, list) else [f]:
            if "asset_id" in m:
                out.add(m["asset_id"])
            out.update(e["asset_id"] for e in m.get("price_changes", []))
    return sorted(out)


def _replay(tmp_path, name):
    frames = load(f"polymarket/{name}")
    h = Harness(tmp_path)
    h.instruments(_assets(frames))
    h.up()
    for f in frames:
        h.feed(f)
    return h, h.records()


def test_polymorph_stream_books_and_changes_reproduce_the_venue_hash(tmp_path):
    h, recs = _replay(tmp_path, "ws_market_stream_polymorph.json")
    kinds = Counter((r["record_type"], r.get("hash_ok")) for r in recs)
    assert kinds[("book_snapshot", True)] == 26 and kinds[("book_snapshot", False)] == 0
    assert kinds[("book_change", True)] == 42
    assert kinds[("book_change", False)] == 16
    bad = {r["instrument_id"] for r in recs if r["record_type"] == "book_change" and r["hash_ok"] is False}
    # all misses in the one market SOURCES.md names (0x690f...)
    markets = {f["asset_id"]: f["market"] for fr in load("polymarket/ws_market_stream_polymorph.json")
               for f in (fr if isinstance(fr, list) else [fr]) if "asset_id" in f}
    assert {markets[i.split(":", 1)[1]][:6] for i in bad} == {"0x690f"}
    assert kinds[("last_trade", None)] == 10
    assert h.lane.c.resyncs == 0  # nothing resynced at once: failures only make a book suspect


def test_crossing_burst_is_not_a_resync(tmp_path):
    """A match crosses the book for a few messages and ends with one hash for the whole group."""
    h, recs = _replay(tmp_path, "ws_book_price_change_burst_nautilus.json")
    assert h.lane.c.resyncs == 0
    changes = [r for r in recs if r["record_type"] == "book_change"]
    assert len(changes) == 49
    # 46 reproduce as sent; one more once the trade price its group carries is tried
    assert sum(r["hash_ok"] is True for r in changes) == 47
    crossed = [r for r in changes if r["best_bid"] is not None and r["best_ask"] is not None
               and r["best_bid"] >= r["best_ask"]]
    assert crossed, "the capture crosses the book on the way"
    t = h.lane.tracked[changes[0]["instrument_id"].split(":", 1)[1]]
    assert t.suspect is None  # the post-trade book settled it


def test_records_keep_exact_decimal_text_best_first(tmp_path):
    h, recs = _replay(tmp_path, "ws_market_stream_polymorph.json")
    raw = {r["instrument_id"]: r for r in recs if r["record_type"] == "book_snapshot"}
    text = (tmp_path).rglob("*.jsonl")
    body = b"".join(p.read_bytes() for p in text)
    assert b'"last_trade_price":0.92' in body or b'"last_trade_price":0.' in body
    for r in raw.values():
        bids = [b[0] for b in r["bids"]]
        asks = [a[0] for a in r["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
