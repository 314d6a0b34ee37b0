"""LocalBook against a reference model: any sequence of snapshots and level changes gives the
reference's book, best-first, in exact canonical text; the Polymarket hash follows the venue's
rule over the text as sent."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.stream.book import LocalBook

prices = st.integers(1, 999).map(lambda n: f"{n / 1000:.3f}")  # "0.410": trailing zeros as a venue may send
sizes = st.one_of(st.just("0"), st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2).map(str))
ops = st.lists(st.tuples(st.booleans(), prices, sizes), max_size=60)


def _canon(text: str) -> str:
    d = Decimal(text)
    if d == 0:
        return "0"
    out = format(d.normalize(), "f")
    return out


@settings(max_examples=200, deadline=None)
@given(ops, ops)
def test_any_change_sequence_matches_the_reference(snapshot, changes):
    b = LocalBook()
    ref = {True: {}, False: {}}
    for is_bid, p, s in snapshot:
        if Decimal(s) != 0:
            ref[is_bid][Decimal(p)] = s
    b.replace([(p, s) for is_bid, p, s in snapshot if is_bid], [(p, s) for is_bid, p, s in snapshot if not is_bid])
    # replace() takes the last of repeated prices like the reference's dict does
    for is_bid, p, s in changes:
        b.set_level(is_bid, p, s)
        if Decimal(s) == 0:
            ref[is_bid].pop(Decimal(p), None)
        else:
            ref[is_bid][Decimal(p)] = s
    bids, asks = b.levels()
    assert bids == [(_canon(str(p)), _canon(s)) for p, s in sorted(ref[True].items(), reverse=True)]
    assert asks == [(_canon(str(p)), _canon(s)) for p, s in sorted(ref[False].items())]
    bb, ba = b.best()
    assert bb == (bids[0][0] if bids else None) and ba == (asks[0][0] if asks else None)
    assert b.crossed() == (bool(bids) and bool(asks) and Decimal(bids[0][0]) >= Decimal(asks[0][0]))


def test_venue_hash_is_sha1_of_the_rest_twin_in_venue_order_and_text():
    b = LocalBook()
    b.replace([("0.40", "100"), ("0.39", "50.50")], [("0.45", "12"), ("0.42", "70")])
    b.tick_size, b.last_trade_price = "0.01", "0.410"
    body = {"market": "0xm", "asset_id": "7", "timestamp": "123", "hash": "",
            "bids": [{"price": "0.39", "size": "50.50"}, {"price": "0.40", "size": "100"}],
            "asks": [{"price": "0.45", "size": "12"}, {"price": "0.42", "size": "70"}],
            "min_order_size": "5", "tick_size": "0.01", "neg_risk": True, "last_trade_price": "0.410"}
    want = hashlib.sha1(json.dumps(body, separators=(",", ":")).encode()).hexdigest()
    assert b.venue_hash("0xm", "7", "123", "5", True) == want
    assert b.levels() == ([("0.4", "100"), ("0.39", "50.5")], [("0.42", "70"), ("0.45", "12")])
