"""Typed per-venue market metadata recorded with each instrument (``Instrument.details``).

These are the venue fields a reader needs to interpret a recorded book (strike, series,
underlying, fees, minimum size...). They are parsed from the discovery payload by
:func:`polymarket_details` / :func:`limitless_details`; a field the venue did not send (or sent
as null / "" / junk) is None and is *omitted* from the written record (see docs/schema.md).
Decimal values are canonical decimal text (collector.model.decimals.dec_text), never floats.

The venue's ids and flags (token ids, group, status...) are typed too: :class:`PolymarketMeta` /
:class:`LimitlessMeta` (``Instrument.meta``), so discovery and the normalizer share named fields,
not string keys.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict

from collector.model.decimals import dec_text, scaled_text


class _Details(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def record(self) -> dict[str, Any]:
        """JSON-ready dict of the fields the venue sent (None fields omitted)."""
        return self.model_dump(mode="json", exclude_none=True)


class PolymarketDetails(_Details):
    """Gamma market fields (names in parentheses)."""

    neg_risk_market_id: str | None = None  # negRiskMarketID (market, else its event)
    group_item_title: str | None = None  # groupItemTitle: this market's label within its event
    order_min_size: str | None = None  # orderMinSize, shares
    fees_enabled: bool | None = None  # feesEnabled
    fee_type: str | None = None  # feeType, e.g. "crypto_fees"
    maker_base_fee: str | None = None  # makerBaseFee (bps)
    taker_base_fee: str | None = None  # takerBaseFee (bps)
    fee_rate: str | None = None  # feeSchedule.rate
    fee_exponent: str | None = None  # feeSchedule.exponent
    fee_rebate_rate: str | None = None  # feeSchedule.rebateRate
    fee_taker_only: bool | None = None  # feeSchedule.takerOnly
    accepting_orders_at_ms: int | None = None  # acceptingOrdersTimestamp
    closed_at_ms: int | None = None  # closedTime
    uma_resolution_status: str | None = None  # umaResolutionStatus


class LimitlessDetails(_Details):
    """/markets/active fields (names in parentheses)."""

    underlying: str | None = None  # priceOracleMetadata.ticker, e.g. "BTC"
    stable_slug: str | None = None  # stableSlug: the series key, e.g. "btc-5min-price"
    open_price: str | None = None  # metadata.openPrice: strike of "above" / "up or down" markets
    open_price_at_ms: int | None = None  # metadata.openPriceCapturedAt
    fee_enabled: bool | None = None  # metadata.fee
    min_size: str | None = None  # settings.minSize, converted to shares (/ 10^size_decimals)
    max_spread: str | None = None  # settings.maxSpread (reward band around the midpoint)
    daily_reward: str | None = None  # settings.dailyReward
    rebate_rate: str | None = None  # settings.rebateRate
    creator_fee_pct: str | None = None  # settings.creatorFeePct
    taker_delay_ms: int | None = None  # settings.takerDelayMs


VenueDetails = PolymarketDetails | LimitlessDetails
DETAILS_BY_VENUE: dict[str, type[_Details]] = {"polymarket": PolymarketDetails, "limitless": LimitlessDetails}


# --------------------------------------------------------------------------- meta

Scalar = str | int | float | bool | None  # a JSON scalar kept as the venue sent it


class _Meta(BaseModel):
    """Venue ids and flags of an instrument (``Instrument.meta``, written as the record's ``meta``).

    Unlike details, fields set to None are written (``"group_slug": null``), fields never set are
    not (a Limitless single has no ``group_id`` key), and keys this version does not know (older
    snapshots, other tools) are kept and written back unchanged: hence exclude_unset, extra="allow".
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    def record(self) -> dict[str, Any]:
        """JSON-ready dict of the keys discovery set (or the snapshot carried), in field order."""
        return self.model_dump(mode="json", exclude_unset=True)


class PolymarketMeta(_Meta):
    """Gamma ids of one outcome token."""

    gamma_id: Scalar = None  # id: the Gamma market id
    condition_id: str | None = None  # conditionId
    question_id: str | None = None  # questionID
    neg_risk: bool | None = None  # negRisk
    token_index: int | None = None  # this token's position in clobTokenIds / outcomes
    other_token: str | None = None  # the other token of a two-outcome market
    end_date: str | None = None  # endDate as sent (expires_at_ms is its parsed form)


class LimitlessMeta(_Meta):
    """/markets/active ids and flags of one CLOB market (JSON scalars as sent, else None)."""

    id: Scalar = None
    condition_id: Scalar = None  # conditionId
    token_yes: Scalar = None  # tokens.yes: the normalizer checks the book's tokenId against it
    token_no: Scalar = None  # tokens.no
    status: str | None = None
    group_slug: str | None = None  # the NegRisk group of a group child
    volume: Scalar = None  # volumeFormatted (lifetime, shares)
    volume_raw: Scalar = None  # volume (raw units)
    trade_type: str | None = None  # tradeType
    market_type: Scalar = None  # marketType
    # Set only on group children:
    group_id: Scalar = None
    group_title: Scalar = None
    neg_risk_market_id: Scalar = None  # the group's negRiskMarketId
    order_in_group: Scalar = None  # orderInGroup


VenueMeta = PolymarketMeta | LimitlessMeta
META_BY_VENUE: dict[str, type[_Meta]] = {"polymarket": PolymarketMeta, "limitless": LimitlessMeta}


# --------------------------------------------------------------------------- field parsers


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v.strip() else None


def _dec(v: Any) -> str | None:
    """Canonical decimal text of a str/int/float; None when absent or not a number."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        return dec_text(v.strip() if isinstance(v, str) else v)
    except ValueError:
        return None


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


def time_ms(v: Any) -> int | None:
    """ISO-8601 text as Gamma and Limitless send it ("2025-05-02T15:47:45Z",
    "2026-05-09 02:07:01+00", fractions) -> epoch ms; naive is UTC; None when unparseable."""
    if not isinstance(v, str) or not v.strip():
        return None
    text = v.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    elif len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit() and ":" not in text[-6:]:
        text += ":00"  # "+00" -> "+00:00" (older Pythons reject the short offset)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ts = dt.timestamp()
    return int(round(ts * 1000)) if math.isfinite(ts) else None


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


# --------------------------------------------------------------------------- venues


def polymarket_details(m: dict[str, Any], event: dict[str, Any] | None = None) -> PolymarketDetails:
    """Details of one Gamma market object (``event``: its first event, for negRiskMarketID)."""
    event = event or {}
    fs = _obj(m.get("feeSchedule"))
    return PolymarketDetails(
        neg_risk_market_id=_text(m.get("negRiskMarketID")) or _text(event.get("negRiskMarketID")),
        group_item_title=_text(m.get("groupItemTitle")),
        order_min_size=_dec(m.get("orderMinSize")),
        fees_enabled=_bool(m.get("feesEnabled")),
        fee_type=_text(m.get("feeType")),
        maker_base_fee=_dec(m.get("makerBaseFee")),
        taker_base_fee=_dec(m.get("takerBaseFee")),
        fee_rate=_dec(fs.get("rate")),
        fee_exponent=_dec(fs.get("exponent")),
        fee_rebate_rate=_dec(fs.get("rebateRate")),
        fee_taker_only=_bool(fs.get("takerOnly")),
        accepting_orders_at_ms=time_ms(m.get("acceptingOrdersTimestamp")),
        closed_at_ms=time_ms(m.get("closedTime")),
        uma_resolution_status=_text(m.get("umaResolutionStatus")),
    )


def limitless_details(m: dict[str, Any], size_decimals: int) -> LimitlessDetails:
    """Details of one Limitless market object (a single, or a group child merged with its group)."""
    meta = _obj(m.get("metadata"))
    settings = _obj(m.get("settings"))
    oracle = _obj(m.get("priceOracleMetadata"))
    # minSize / maxSpread sit in `settings`; recent payloads repeat them in `metadata`.
    raw_min = settings.get("minSize", meta.get("minSize"))
    min_size = _dec(raw_min)
    if min_size is not None:  # raw integer units, like book sizes: written in shares
        min_size = scaled_text(min_size, size_decimals)
    ticker = _text(oracle.get("ticker"))
    return LimitlessDetails(
        underlying=ticker.strip().upper() if ticker else None,
        stable_slug=_text(m.get("stableSlug")),
        open_price=_dec(meta.get("openPrice")),
        open_price_at_ms=time_ms(meta.get("openPriceCapturedAt")),
        fee_enabled=_bool(meta.get("fee")),
        min_size=min_size,
        max_spread=_dec(settings.get("maxSpread", meta.get("maxSpread"))),
        daily_reward=_dec(settings.get("dailyReward")),
        rebate_rate=_dec(settings.get("rebateRate")),
        creator_fee_pct=_dec(settings.get("creatorFeePct")),
        taker_delay_ms=_int(settings.get("takerDelayMs")),
    )
