"""One simulated Limitless market (single CLOB, AMM, or a group of CLOB children): the
object ``/markets/active`` and ``/markets/{slug}`` serve, and the ``/_sim/markets`` summary."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from collector.sim.names import hex32, iso, token_id

USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


class LimMarket:
    __slots__ = (
        "id", "id_str", "slug", "title", "kind", "children", "parent", "tokens", "status", "expired",
        "exp_ms", "exp_str", "dec_str", "prices", "volume", "created_ms", "condition_id", "categories",
        "tags", "active", "book", "max_spread", "min_size", "address", "order_in_group", "liquidity",
        "neg_risk_market_id", "recurring", "asset", "family", "extra", "settings",
    )

    def __init__(self) -> None:
        self.children: list[LimMarket] = []
        self.parent: LimMarket | None = None
        self.tokens: dict[str, str] | None = None
        self.status = "FUNDED"
        self.expired = False
        self.active = True
        self.book = None  # its LimBook (collector.sim.limitless.books), made on first read
        self.id_str = False
        self.exp_str = False
        self.dec_str = False
        self.address = None
        self.order_in_group = 0
        self.liquidity = 0
        self.neg_risk_market_id = None
        self.recurring = False
        self.asset = ""
        self.family = ""  # crypto: "above" or "up_or_down" (collector.sim.limitless.shapes)
        self.extra: dict[str, Any] = {}  # real-shaped venue keys (metadata, stableSlug, oracle...)
        self.settings: dict[str, Any] | None = None  # reward settings; None: the generic ones

    @property
    def listed(self) -> bool:
        if not self.active:
            return False
        if self.kind == "group":
            return any(c.active for c in self.children)
        return True

    @property
    def live(self) -> bool:
        if self.kind != "clob" or not self.active:
            return False
        return self.parent is None or self.parent.active

    def _common(self) -> dict[str, Any]:
        dt = _dt.datetime.fromtimestamp(self.exp_ms / 1000, _dt.UTC)
        return {
            "id": str(self.id) if self.id_str else self.id,
            "slug": self.slug,
            "title": self.title,
            "proxyTitle": None,
            "description": f"<p>{self.title}</p>",
            "status": self.status,
            "expired": self.expired,
            "expirationDate": dt.strftime("%b %-d, %Y"),
            "expirationTimestamp": str(self.exp_ms) if self.exp_str else self.exp_ms,
            "createdAt": iso(self.created_ms / 1000, ms=True),
            "collateralToken": {"address": USDC, "decimals": "6" if self.dec_str else 6, "symbol": "USDC"},
            "categories": list(self.categories),
            "tags": list(self.tags),
        }

    def to_dict(self) -> dict[str, Any]:
        d = self._common()
        if self.kind == "group":
            d["marketType"] = "group"
            d["negRiskMarketId"] = self.neg_risk_market_id
            d["outcomeTokens"] = ["Yes", "No"]
            d["dailyReward"] = "5"
            d["markets"] = [c.to_dict() for c in self.children if c.active]
            return d
        d["tradeType"] = self.kind
        d["marketType"] = "single"
        d["prices"] = list(self.prices)
        d["volume"] = str(self.volume)
        d["volumeFormatted"] = f"{self.volume / 1e6:.6f}"
        d["winningOutcomeIndex"] = (0 if self.status == "RESOLVED" else None)
        if self.kind == "amm":
            d["address"] = self.address
            d["liquidity"] = str(self.liquidity)
            d["liquidityFormatted"] = f"{self.liquidity / 1e6:.6f}"
            d["positionIds"] = [token_id(0, self.slug + ":y"), token_id(0, self.slug + ":n")]
            d.update(self.extra)
            return d
        d["address"] = None
        d["conditionId"] = self.condition_id
        d["negRiskRequestId"] = hex32(0, "nrr:" + self.slug) if self.parent else None
        d["tokens"] = dict(self.tokens or {})
        d["positionIds"] = [self.tokens["yes"], self.tokens["no"]] if self.tokens else []
        yes = self.prices[0]
        d["tradePrices"] = {
            "buy": {"market": [round(min(yes + 0.01, 0.999), 3), round(min(1 - yes + 0.01, 0.999), 3)],
                    "limit": [round(yes, 3), round(1 - yes, 3)]},
            "sell": {"market": [round(max(yes - 0.01, 0.001), 3), round(max(1 - yes - 0.01, 0.001), 3)],
                     "limit": [round(yes, 3), round(1 - yes, 3)]},
        }
        d["venue"] = {"exchange": "0x05c748E2f4DcDe0ec9Fa8DDc40DE6b867f923fa5", "adapter": None}
        d["settings"] = dict(self.settings) if self.settings is not None else {
            "minSize": str(self.min_size), "maxSpread": str(self.max_spread), "dailyReward": "5",
            "rewardsEpoch": "0.0034", "c": "3", "rebateRate": "0"}
        d["metadata"] = {"fee": True}
        d.update(self.extra)
        if self.parent is not None:
            d["orderInGroup"] = self.order_in_group
        return d

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "kind": self.kind,
            "group": self.parent.slug if self.parent else None,
            "children": [c.slug for c in self.children],
            "tokens": dict(self.tokens) if self.tokens else None,
            "status": self.status,
            "expired": self.expired,
            "active": self.active,
            "listed": self.listed if self.parent is None else (self.active and self.parent.listed),
            "has_book": self.live,
            "exp_ms": self.exp_ms,
        }
