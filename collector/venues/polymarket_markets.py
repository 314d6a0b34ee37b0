"""Polymarket discovery mapping: one Gamma market object -> one Instrument per outcome token.

Venue facts (see shared/venues/polymarket.md): ``clobTokenIds`` / ``outcomes`` are JSON-encoded
*strings*; token ``i`` pairs with ``outcomes[i]`` (labels are often not Yes/No). A market whose
tokens are not there yet is still hydrating on the CLOB ("tokens_pending"), not a bad market.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from collector.model.details import PolymarketMeta, polymarket_details
from collector.model.records import Instrument
from collector.venues.base import DiscoveryResult
from collector.venues.numbers import finite_float, lenient_time_ms
from collector.venues.polymarket_book import VENUE, opt_dec

log = logging.getLogger(__name__)


class _BadMarket(Exception):
    """A Gamma market object we cannot turn into instruments (counted as "bad_market")."""


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _json_list(value: Any, field: str) -> list[Any] | None:
    """A Gamma JSON-string array (or a real array). None when absent/empty text."""
    if value is None:
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _BadMarket(f"{field} is not JSON") from None
        if isinstance(parsed, list):
            return parsed
    raise _BadMarket(f"{field} is not an array")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def _tags(*sources: Any) -> tuple[str, ...]:
    """Tags from market and event ``tags``: a dict gives its slug and its label (rules match
    either, case-insensitively), a string is itself. First spelling kept, case-insensitive dedupe."""
    out: dict[str, str] = {}
    for src in sources:
        if isinstance(src, str):
            try:
                src = orjson.loads(src)
            except orjson.JSONDecodeError:
                src = [src]
        if not isinstance(src, list):
            continue
        for t in src:
            names = (t.get("slug"), t.get("label")) if isinstance(t, dict) else (t,)
            for name in names:
                if isinstance(name, str) and name.strip():
                    name = name.strip()
                    out.setdefault(name.lower(), name)
    return tuple(out.values())



def add_market(market: Any, result: DiscoveryResult, seen_keys: set[str]) -> None:
    """Add the fresh instruments of one Gamma market to ``result``, or count why it is left out."""
    try:
        reason, instruments = _market_instruments(market)
    except _BadMarket as e:
        log.debug("polymarket discovery: bad market %s: %s", _market_id(market), e)
        result.skip("bad_market")
        return
    except Exception as e:  # one malformed market (e.g. Instrument validation) never fails the page
        log.debug("polymarket discovery: bad market %s: %r", _market_id(market), e)
        result.skip("bad_market")
        return
    if reason is not None:
        result.skip(reason)
        return
    fresh = [i for i in instruments if i.poll_key not in seen_keys]
    if not fresh:
        result.skip("duplicate")
        return
    for inst in fresh:
        seen_keys.add(inst.poll_key)
        result.instruments.append(inst)

def _market_instruments(m: Any) -> tuple[str | None, list[Instrument]]:
    """(skip reason, []) or (None, one Instrument per outcome token)."""
    if not isinstance(m, dict):
        raise _BadMarket("market is not an object")
    if _flag(m.get("closed")):
        return "closed", []
    if not _flag(m.get("acceptingOrders")):
        return "not_accepting_orders", []
    if not _flag(m.get("enableOrderBook")):
        return "no_order_book", []

    tokens = _json_list(m.get("clobTokenIds"), "clobTokenIds")
    if not tokens:  # absent, "", "[]": the market is still hydrating on the CLOB
        return "tokens_pending", []
    if not all(isinstance(t, str) for t in tokens):
        raise _BadMarket("clobTokenIds holds a non-string id")
    tokens = [t.strip() for t in tokens]
    if not all(tokens):
        return "tokens_pending", []
    if len(set(tokens)) != len(tokens):
        raise _BadMarket("duplicate token ids")
    outcomes = _json_list(m.get("outcomes"), "outcomes")
    if outcomes is None or len(outcomes) != len(tokens):
        raise _BadMarket("outcomes do not pair with clobTokenIds")
    if not all(isinstance(o, str) for o in outcomes):
        raise _BadMarket("outcome label is not a string")
    condition_id = m.get("conditionId")
    if not isinstance(condition_id, str) or not condition_id:
        raise _BadMarket("no conditionId")

    event = _first_dict(m.get("events"))
    series = _first_dict(event.get("series"))
    end_date = m.get("endDate")
    tick = opt_dec(m.get("orderPriceMinTickSize"))
    liquidity = finite_float(m.get("liquidityNum"))
    if liquidity is None:
        liquidity = finite_float(m.get("liquidity"))
    starts = None
    for candidate in (m.get("eventStartTime"), event.get("startTime"), m.get("startDate")):
        starts = lenient_time_ms(candidate)
        if starts is not None:
            break
    neg_risk = m.get("negRisk")
    common = {
        "venue": VENUE,
        "market_id": condition_id,
        "title": m.get("question") if isinstance(m.get("question"), str) else "",
        "slug": m.get("slug") if isinstance(m.get("slug"), str) else "",
        "expires_at_ms": lenient_time_ms(end_date),
        "tick_size": tick,
        "event_slug": _str_or_none(event.get("slug")),
        "series_slug": _str_or_none(event.get("seriesSlug")) or _str_or_none(series.get("slug")),
        "recurrence": _str_or_none(series.get("recurrence")),
        "tags": _tags(m.get("tags"), event.get("tags")),
        "volume_24h": finite_float(m.get("volume24hr")),
        "liquidity": liquidity,
        "starts_at_ms": starts,
        "details": polymarket_details(m, event),
    }
    question_id = m.get("questionID", m.get("questionId"))
    out = []
    for i, token in enumerate(tokens):
        meta = PolymarketMeta(
            gamma_id=m.get("id") if isinstance(m.get("id"), (str, int)) else None,
            condition_id=condition_id,
            question_id=question_id if isinstance(question_id, str) else None,
            neg_risk=neg_risk if isinstance(neg_risk, bool) else None,
            token_index=i,
            other_token=tokens[1 - i] if len(tokens) == 2 else None,
            end_date=end_date if isinstance(end_date, str) else None,
        )
        out.append(Instrument(poll_key=token, outcome=outcomes[i], meta=meta, **common))
    return None, out


def _market_id(m: Any) -> Any:
    return m.get("id") if isinstance(m, dict) else None
