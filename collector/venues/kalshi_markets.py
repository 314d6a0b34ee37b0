"""Kalshi discovery mapping: one ``/events`` item (with nested markets) -> Instruments.

One instrument per market: its YES book (NO is the same book seen from the other leg), poll key
the market ticker. The series ticker is not on a market: it comes from the event. Liveness is
the market's own ``status``: the filter says ``open`` but the field says ``active``, and only
``active`` is polled (an event is "open" when any of its markets is). Multivariate combos
(``mve_*``, provisional markets) are left out unless asked for.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any

from collector.model.decimals import dec_text, fmt
from collector.model.records import Instrument
from collector.venues.base import DiscoveryResult
from collector.venues.numbers import finite_float, lenient_time_ms

log = logging.getLogger(__name__)

VENUE = "kalshi"
_TICKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# The field vocabulary (docs: initialized, inactive, active, closed, determined, disputed,
# amended, finalized); anything else is "unknown" and never polled.
_KNOWN_STATUS = frozenset({"initialized", "inactive", "active", "closed", "determined", "disputed", "amended", "finalized"})


class _BadMarket(Exception):
    """One market object cannot be used."""


def add_event(ev: Any, result: DiscoveryResult, seen: set[str], combos: bool) -> None:
    """Add the tradable markets of one event to ``result``, or count why each is left out;
    one bad market never drops its siblings."""
    if type(ev) is not dict or type(ev.get("markets", [])) is not list:
        result.skip("bad_event")
        return
    for m in ev.get("markets") or []:
        try:
            inst = instrument(m, ev, result, combos)
        except (_BadMarket, KeyError, TypeError, ValueError, ArithmeticError) as e:
            log.debug("kalshi discovery: bad market (%s: %s)", type(e).__name__, e)
            result.skip("bad_market")
            continue
        if inst is None:
            continue
        if inst.poll_key in seen:
            result.skip("duplicate")
            continue
        seen.add(inst.poll_key)
        result.instruments.append(inst)


def _text(v: Any) -> str | None:
    return v if type(v) is str and v else None


def _time(v: Any) -> int | None:
    ms = lenient_time_ms(v)
    return ms if ms is not None and ms > 0 else None  # Go's zero time 0001-01-01 means "none"


def is_combo(m: dict[str, Any]) -> bool:
    return bool(m.get("mve_collection_ticker") or m.get("mve_selected_legs") or m.get("is_provisional") is True)


def tick_of(m: dict[str, Any]) -> str | None:
    """The finest ``price_ranges[].step`` (a tapered grid has several); None when absent."""
    ranges = m.get("price_ranges")
    if ranges is None:
        return None
    if type(ranges) is not list:
        raise _BadMarket("price_ranges is not a list")
    steps = [Decimal(dec_text(r["step"])) for r in ranges if type(r) is dict and r.get("step") is not None]
    steps = [s for s in steps if s > 0]
    return fmt(min(steps)) if steps else None


def instrument(m: Any, ev: dict[str, Any], result: DiscoveryResult, combos: bool) -> Instrument | None:
    """One nested market -> Instrument, or None (counted in ``result.skipped``)."""
    if type(m) is not dict:
        raise _BadMarket("not an object")
    ticker = m.get("ticker")
    if type(ticker) is not str or not _TICKER.fullmatch(ticker):
        raise _BadMarket(f"bad ticker {ticker!r:.40}")
    if not combos and is_combo(m):
        result.skip("combo")
        return None
    status = m.get("status")
    if status != "active":
        result.skip("not_active" if status in _KNOWN_STATUS else "unknown_status")
        return None
    if m.get("market_type", "binary") != "binary":
        result.skip("not_binary")
        return None
    notional = m.get("notional_value_dollars")
    notional = dec_text(notional) if notional not in (None, "") else "1"
    if Decimal(notional) <= 0:
        raise _BadMarket("notional_value_dollars <= 0")
    event_ticker = _text(m.get("event_ticker")) or _text(ev.get("event_ticker"))
    series = _text(ev.get("series_ticker")) or _text(m.get("series_ticker"))
    ev_title = _text(ev.get("title")) or ""
    yes_label = _text(m.get("yes_sub_title"))
    title = _text(m.get("title")) or (f"{ev_title}: {yes_label}" if yes_label else ev_title)
    vol = finite_float(m.get("volume_24h_fp"))
    category = _text(ev.get("category"))
    meta = {
        "event_ticker": event_ticker,
        "series_ticker": series,
        "event_title": ev_title or None,
        "status": status,
        "yes_sub_title": yes_label,
        "no_sub_title": _text(m.get("no_sub_title")),
        "notional": notional,
        "price_level_structure": _text(m.get("price_level_structure")),
        "price_ranges": m.get("price_ranges") if type(m.get("price_ranges")) is list else None,
        "expected_expiration_ms": _time(m.get("expected_expiration_time")),
        "latest_expiration_ms": _time(m.get("latest_expiration_time")),
        "can_close_early": m.get("can_close_early") if type(m.get("can_close_early")) is bool else None,
        "mutually_exclusive": ev.get("mutually_exclusive") if type(ev.get("mutually_exclusive")) is bool else None,
        "volume_fp": _text(m.get("volume_fp")),
        "open_interest_fp": _text(m.get("open_interest_fp")),
        "combo": is_combo(m),
    }
    return Instrument(
        venue=VENUE,
        poll_key=ticker,
        market_id=ticker,
        outcome="YES",
        title=title,
        slug=ticker,
        # Trading ends at close_time (it moves earlier once the outcome is known).
        expires_at_ms=_time(m.get("close_time")),
        tick_size=tick_of(m),
        event_slug=event_ticker,
        series_slug=series,
        tags=(category,) if category else (),
        volume_24h=vol,
        starts_at_ms=_time(m.get("open_time")),
        meta={k: v for k, v in meta.items() if v is not None},
    )
