"""Ground truth for tests: every trade on the books' tapes, per venue, as ``GET /_sim/trades``
serves it (collector.sim.control): venue, book key (Polymarket token, Limitless slug, Kalshi
ticker), id (transaction hash / trade_id / event id), price and size text exactly as the venue
renders them, ``shares`` (Limitless: raw contracts / 10^6), side as the venue says it, ts_ms."""

from __future__ import annotations

from typing import Any

from collector.sim.clock import SimError
from collector.sim.kalshi import trades as kt
from collector.sim.limitless import trades as lt
from collector.sim.polymarket import trades as pt
from collector.sim.state import SimState


def trades(state: SimState, now: int, venue: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
    """Newest first, after bringing the books concerned up to ``now``. ``key`` needs ``venue``."""
    if venue is not None and venue not in state.venues:
        raise SimError("venue must be " + " or ".join(state.venues))
    if key is not None and venue is None:
        raise SimError("key needs a venue")
    out: list[dict[str, Any]] = []
    if venue in (None, "polymarket"):
        cond = None
        if key is not None:
            ent = state.polymarket.tokens.get(key)
            if ent is None:
                return []
            cond = {ent[0].condition_id}
        rows = [pt.truth(m, m.book.tape, t) for m, t in pt.market_trades(state.polymarket, now, cond)]
        out += [r for r in rows if key is None or r["key"] == key]
    if venue in (None, "limitless"):
        out += [lt.truth(m, m.book.tape, t) for m, t in lt.market_trades(state.limitless, now, key)]
    if venue in (None, "kalshi"):
        out += [kt.truth(m, m.book.tape, t) for m, t in kt.market_trades(state.kalshi, now, key)]
    if venue is None:
        out.sort(key=lambda r: -r["ts_ms"])
    return out
