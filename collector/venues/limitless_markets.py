"""Limitless discovery mapping: one /markets/active item -> Instruments (one YES book per CLOB market).

NegRisk groups (``marketType == "group"``) carry their tradeable children in ``markets[]``; only
the children have books, and a child takes from its group the fields it lacks (``_INHERITED``).
AMM markets have no order book and are skipped, as are resolved and expired ones.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from collector.model.decimals import dec_text
from collector.model.details import LimitlessMeta, limitless_details, time_ms
from collector.model.records import Instrument
from collector.venues.base import DiscoveryResult
from collector.venues.numbers import as_int, epoch_ms, finite_float

log = logging.getLogger(__name__)

VENUE = "limitless"
DEFAULT_TICK = "0.001"
DEFAULT_DECIMALS = 6

# Fields a group child takes from its group when it lacks them.
_INHERITED = (
    "expirationTimestamp",
    "expirationDate",
    "collateralToken",
    "categories",
    "tags",
    "status",
    "expired",
)


class _BadMarket(Exception):
    """One market object in a discovery page cannot be used."""


def add_market(m: Any, result: DiscoveryResult, seen: set[str]) -> None:
    """Add the CLOB markets of one item (a single, or a group's children) to ``result``, or count
    why each is left out; one bad child never drops its siblings."""
    try:
        if not isinstance(m, dict):
            raise _BadMarket("not an object")
        children = m.get("markets")
        if m.get("marketType") == "group" or isinstance(children, list):
            if not isinstance(children, list):
                raise _BadMarket("group without a markets list")
            # Validate the group before expanding so one bad group is one bad_market.
            group_slug = m.get("slug")
            if not isinstance(group_slug, str) or not group_slug:
                raise _BadMarket("group without slug")
            group = m
        else:
            children, group = [m], None
    except _BadMarket as e:
        log.debug("limitless discovery: bad market (%s)", e)
        result.skip("bad_market")
        return
    for child in children:
        try:
            inst = _instrument(child, group, result)
        except (_BadMarket, KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
            log.debug("limitless discovery: bad market (%s: %s)", type(e).__name__, e)
            result.skip("bad_market")
            continue
        if inst is None:
            continue
        if inst.slug in seen:
            result.skip("duplicate")
            continue
        seen.add(inst.slug)
        result.instruments.append(inst)

def _instrument(m: Any, group: dict[str, Any] | None, result: DiscoveryResult) -> Instrument | None:
    """One CLOB market (a single, or a group child) -> Instrument; None when skipped."""
    if not isinstance(m, dict):
        raise _BadMarket("not an object")
    if group is not None:
        m = {**{k: group[k] for k in _INHERITED if k in group}, **{k: v for k, v in m.items() if v is not None}}
    slug = m.get("slug")
    if not isinstance(slug, str) or not slug.strip():
        raise _BadMarket("no slug")
    trade_type = m.get("tradeType")
    tokens = m.get("tokens")
    if tokens is not None and not isinstance(tokens, dict):
        raise _BadMarket("tokens is not an object")
    tokens = tokens or {}
    if trade_type == "amm":
        result.skip("amm")
        return None
    if trade_type != "clob" and not (trade_type is None and tokens.get("yes")):
        result.skip("not_clob")
        return None
    status = m.get("status")
    if status is not None and not isinstance(status, str):
        raise _BadMarket("status is not a string")
    if status == "RESOLVED":
        result.skip("resolved")
        return None
    if m.get("expired") in (True, "true"):
        result.skip("expired")
        return None
    expires_at_ms = epoch_ms(m.get("expirationTimestamp"), "expirationTimestamp")
    size_decimals = _decimals(m.get("collateralToken"))
    tick = DEFAULT_TICK
    for key in ("tickSize", "minTickSize", "tick_size"):
        if m.get(key) is not None:
            tick = dec_text(m[key])
            if Decimal(tick) <= 0:
                raise _BadMarket("tick size <= 0")
            break
    tags: list[str] = []
    for key in ("categories", "tags"):
        values = m.get(key)
        if isinstance(values, list):
            for t in values:
                if isinstance(t, str) and t and t not in tags:
                    tags.append(t)
    group_slug = group.get("slug") if group is not None else None
    title = m.get("title")
    meta = {
        "id": _scalar(m.get("id")),
        "condition_id": _scalar(m.get("conditionId")),
        "token_yes": _scalar(tokens.get("yes")),
        "token_no": _scalar(tokens.get("no")),
        "status": status,
        "group_slug": group_slug,
        "volume": _scalar(m.get("volumeFormatted")),
        "volume_raw": _scalar(m.get("volume")),
        "trade_type": trade_type,
        "market_type": _scalar(m.get("marketType")),
    }
    if group is not None:  # set only on group children: a single's record has no group keys
        meta.update(
            group_id=_scalar(group.get("id")),
            group_title=_scalar(group.get("title")),
            neg_risk_market_id=_scalar(group.get("negRiskMarketId")),
            order_in_group=_scalar(m.get("orderInGroup")),
        )
    return Instrument(
        venue=VENUE,
        poll_key=slug,
        market_id=slug,
        outcome="YES",
        title=title if isinstance(title, str) else "",
        slug=slug,
        expires_at_ms=expires_at_ms,
        tick_size=tick,
        event_slug=group_slug,
        tags=tuple(tags),
        volume_24h=None,  # the venue publishes lifetime volume only (meta.volume)
        liquidity=finite_float(m.get("liquidityFormatted")),
        starts_at_ms=time_ms(m.get("startAt")),
        size_decimals=size_decimals,
        meta=LimitlessMeta(**meta),
        details=limitless_details(m, size_decimals),
    )



def _decimals(token: Any) -> int:
    if token is None:
        return DEFAULT_DECIMALS
    if not isinstance(token, dict):
        raise _BadMarket("collateralToken is not an object")
    v = token.get("decimals")
    if v is None:
        return DEFAULT_DECIMALS
    n = as_int(v)
    if n is None or not 0 <= n <= 36:
        raise _BadMarket(f"bad collateralToken.decimals {v!r:.20}")
    return n


def _scalar(v: Any) -> Any:
    """Keep JSON scalars for meta; anything else becomes None."""
    return v if v is None or isinstance(v, (str, int, float, bool)) else None
