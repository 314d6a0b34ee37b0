"""One simulated Polymarket market: its Gamma object (cached as bytes until it changes) and
the summary ``/_sim/markets`` reports."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import orjson

from collector.sim.names import date, iso


class PolyMarket:
    __slots__ = (
        "id", "question", "slug", "condition_id", "question_id", "tokens", "clob_field", "outcomes",
        "outcome_prices", "start_ts", "end_ts", "tick_n", "tick_s", "tick_f", "min_size_s", "neg_risk",
        "neg_risk_market_id", "volume", "volume24hr", "liquidity", "event", "closed", "closed_ts",
        "accepting", "enable_ob", "has_book", "kind", "group_item_title", "fresh", "book", "_bytes",
        "expired", "series", "asset",
    )

    def __init__(self) -> None:
        self.book = None  # its PolyBooks (collector.sim.polymarket.books), made on first read
        self._bytes: bytes | None = None
        self.closed = False
        self.closed_ts: float | None = None
        self.accepting = True
        self.enable_ob = True
        self.has_book = True
        self.fresh = False
        self.neg_risk = False
        self.neg_risk_market_id = ""
        self.group_item_title = ""
        self.expired = False
        self.series: dict | None = None
        self.asset = ""

    @property
    def live(self) -> bool:
        """Has a book that /book and /books serve."""
        return (not self.closed) and self.enable_ob and self.has_book and bool(self.tokens)

    def touch(self) -> None:
        self._bytes = None

    def gamma_bytes(self) -> bytes:
        b = self._bytes
        if b is None:
            b = self._bytes = orjson.dumps(self.gamma_dict())
        return b

    def gamma_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": str(self.id),
            "question": self.question,
            "conditionId": self.condition_id,
            "slug": self.slug,
            "resolutionSource": "",
            "endDate": iso(self.end_ts),
            "startDate": iso(self.start_ts, ms=True),
            "description": f"This market resolves according to the rules for: {self.question}",
            "outcomes": json.dumps(self.outcomes),
            "outcomePrices": json.dumps(self.outcome_prices),
            "active": True,
            "closed": self.closed,
            "archived": False,
            "new": self.fresh,
            "featured": False,
            "restricted": True,
            "questionID": self.question_id,
            "enableOrderBook": self.enable_ob,
            "orderPriceMinTickSize": self.tick_f,
            "orderMinSize": int(self.min_size_s),
            "endDateIso": date(self.end_ts),
            "startDateIso": date(self.start_ts),
            "createdAt": iso(self.start_ts - 600, ms=True),
            "updatedAt": iso(max(self.start_ts, (self.closed_ts or self.start_ts)), ms=True),
            "clobTokenIds": self.clob_field,
            "umaResolutionStatuses": "[]",
            "acceptingOrders": self.accepting,
            "negRisk": self.neg_risk,
            "events": [self.event],
        }
        if self.group_item_title:
            d["groupItemTitle"] = self.group_item_title
        if self.neg_risk:
            d["negRiskMarketID"] = self.neg_risk_market_id
            d["negRiskOther"] = False
        if self.accepting:
            d["acceptingOrdersTimestamp"] = iso(self.start_ts + 120)
        if self.closed and self.closed_ts is not None:
            d["closedTime"] = _dt.datetime.fromtimestamp(self.closed_ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
        if not self.fresh:  # numeric snapshot fields are absent on fresh markets
            d["volume"] = f"{self.volume:.6f}"
            d["volumeNum"] = self.volume
            d["volume24hr"] = self.volume24hr
            d["volume1wk"] = round(self.volume24hr * 5.3, 4)
            d["liquidity"] = f"{self.liquidity:.5f}"
            d["liquidityNum"] = self.liquidity
            yes = float(self.outcome_prices[0]) if self.outcome_prices else 0.5
            bb = max(0.0, round(yes - self.tick_f, 4))
            ba = min(1.0, round(yes + self.tick_f, 4))
            d["bestBid"] = bb
            d["bestAsk"] = ba
            d["spread"] = round(ba - bb, 4)
            d["lastTradePrice"] = yes
            d["feesEnabled"] = self.kind == "crypto"
            # Fee fields as on real Gamma markets (gamma_market_objects_nautilus.json).
            d["feeType"] = "crypto_fees" if self.kind == "crypto" else None
            if self.kind == "crypto":
                d["makerBaseFee"] = d["takerBaseFee"] = 1000
                d["feeSchedule"] = {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2}
        if self.closed:
            d["umaResolutionStatus"] = "resolved"
        return d

    def info(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "event_slug": self.event["slug"],
            "kind": self.kind,
            "condition_id": self.condition_id,
            "tokens": list(self.tokens),
            "outcomes": list(self.outcomes),
            "closed": self.closed,
            "expired": self.expired,
            "accepting_orders": self.accepting,
            "enable_order_book": self.enable_ob,
            "hydrating": not self.tokens,
            "has_book": self.live,
            "end_ts": self.end_ts,
            "tick_size": self.tick_s,
            "neg_risk": self.neg_risk,
            "volume24hr": self.volume24hr,
        }
