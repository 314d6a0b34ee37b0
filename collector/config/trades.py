"""Trade capture settings (``trades.<venue>``): where each venue's trades come from and how its
public trades endpoint is paced. Part of the one Settings model (collector.config.settings).

A venue's trades come from its feed when the feed carries them (Polymarket's market channel,
Kalshi's ``trade`` channel with an API key) and from a paced poll of its public trades endpoint
otherwise (``rest_poll``). Either way, a span the recorder could not see (a dropped feed, a
restart) is fetched again from the endpoint (``backfill``) and de-duplicated by trade key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class VenueTradesSettings(_Strict):
    enabled: bool = Field(default=True, description="record the venue's trades (the trades stream)")
    rest_poll: bool = Field(default=False, description="poll the public trades endpoint (the venue's source when its feed has no trades)")
    backfill: bool = Field(default=True, description="after a feed outage or a restart, fetch the span from the trades endpoint")
    poll_interval_s: float = Field(default=5.0, gt=0, description="trades endpoint cadence (per market where the endpoint is per market)")
    page_limit: int = Field(default=100, ge=1, le=1000, description="trades per page asked for")
    max_pages: int = Field(default=20, ge=1, le=1000, description="pages per fetch; the rest waits for the next one (a gap when it never comes)")
    max_backfill_s: float = Field(default=3600.0, ge=0, description="look back at most this far (a longer outage leaves a gap record for the rest)")
    first_lookback_s: float = Field(default=0.0, ge=0, description="on the first start (no trades on disk) also fetch this far back")
    overlap_s: float = Field(default=5.0, ge=0, description="re-read this much before the watermark (late or clock-skewed trades; duplicates are dropped)")


class PolymarketTradesSettings(VenueTradesSettings):
    data_url: str = Field(default="https://data-api.polymarket.com", description="data API (GET /trades?market=<condition id>): backfill only, the feed's last_trade_price events are the trades")
    page_limit: int = Field(default=500, ge=1, le=1000, description="trades per page (data API cap UNCONFIRMED)")
    poll_interval_s: float = Field(default=30.0, gt=0, description="per market, when rest_poll is set (e.g. with streams.polymarket.enabled = false, whose feed brings the trades otherwise)")

    @field_validator("data_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")


class LimitlessTradesSettings(VenueTradesSettings):
    rest_poll: bool = Field(default=True, description="GET /markets/{slug}/events: the feed carries no trades")
    poll_interval_s: float = Field(default=60.0, gt=0, description="per market, inside the venue's ~3 requests/s shared with books")
    page_limit: int = Field(default=25, ge=1, le=100, description="events per page")
    event_types: list[str] = Field(default=["trade", "NEW_TRADE", "matched", "ORDER_MATCHED"], description="event `type`s that are trades (the shape is UNCONFIRMED; others are counted and skipped)")
    size_scale: int = Field(default=6, ge=0, le=18, description="contracts come in raw units of 10^-size_scale (as book sizes; UNCONFIRMED for events)")


class KalshiTradesSettings(VenueTradesSettings):
    rest_poll: bool = Field(default=True, description="GET /markets/trades (the whole tape, filtered to tracked tickers): the trade channel needs an API key")
    poll_interval_s: float = Field(default=5.0, gt=0, description="one request per poll while fewer than page_limit trades arrived")
    page_limit: int = Field(default=1000, ge=1, le=1000, description="trades per page (venue max 1000)")


class TradesSettings(_Strict):
    polymarket: PolymarketTradesSettings = Field(default_factory=PolymarketTradesSettings)
    limitless: LimitlessTradesSettings = Field(default_factory=LimitlessTradesSettings)
    kalshi: KalshiTradesSettings = Field(default_factory=KalshiTradesSettings)

    def venue(self, name: str) -> VenueTradesSettings | None:
        return getattr(self, name, None)
