"""Stream capture settings (``streams.<venue>``): the venues' WebSocket feeds and the REST cadence
that reconciles them. Part of the one Settings model (collector.config.settings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class StreamSettings(_Strict):
    """Tunables every venue feed has."""

    enabled: bool = Field(default=True, description="capture the venue's feed next to REST polling")
    url: str = Field(default="", description="feed URL")
    max_per_connection: int = Field(default=200, ge=1, le=5000, description="instruments per connection (a pool of connections beyond)")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="WebSocket open + handshake timeout")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay (jittered, doubling)")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="longest reconnect delay")
    silence_s: float = Field(default=30.0, gt=0, description="reconnect a connection that received nothing this long")
    rest_interval_s: float = Field(default=30.0, gt=0, description="REST poll cadence of an instrument whose stream is healthy")
    resync_timeout_s: float = Field(default=10.0, gt=0, description="a resync without a REST book this long is retried")
    max_backlog: int = Field(default=2_000, ge=100, description="messages per connection received but not yet recorded; beyond, the connection stops reading")
    resync_buffer: int = Field(default=10_000, ge=10, description="changes kept per instrument while it waits for its REST book")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("ws://") or v.startswith("wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return v.rstrip("/")


class PolymarketStreamSettings(StreamSettings):
    url: str = Field(default="wss://ws-subscriptions-clob.polymarket.com/ws/market", description="public market channel")
    max_per_connection: int = Field(default=200, ge=1, le=5000, description="tokens per connection (NautilusTrader: 200; more have been seen to stall)")
    ping_interval_s: float = Field(default=10.0, gt=0, description="text PING cadence the venue expects")
    custom_feature_enabled: bool = Field(default=True, description="ask for best_bid_ask / new_market / market_resolved")
    subscribe_wait_s: float = Field(default=5.0, gt=0, description="a token the initial dump left out this long starts from a REST book")
    hash_grace_s: float = Field(default=2.0, gt=0, description="resync a book whose hash / best bid-ask / crossing check fails this long")
    token_stall_s: float = Field(default=5.0, gt=0, description="resync + resubscribe a token whose REST book is newer than the feed's by this long")
    rest_interval_s: float = Field(default=30.0, gt=0, description="REST poll cadence of a token whose stream is healthy")


class LimitlessStreamSettings(StreamSettings):
    url: str = Field(default="wss://ws.limitless.exchange", description="Socket.IO host (namespace below)")
    namespace: str = Field(default="/markets", description="Socket.IO namespace")
    max_per_connection: int = Field(default=250, ge=1, le=5000, description="slugs per connection (venue cap UNCONFIRMED)")
    silence_s: float = Field(default=90.0, gt=0, description="quiet markets send nothing: the Engine.IO ping is the liveness check")
    quiet_reconcile_s: float = Field(default=15.0, gt=0, description="REST-check a market whose feed sent nothing this long (venue academy: 15 s)")
    rest_interval_s: float = Field(default=60.0, gt=0, description="and REST-check every market this often regardless (academy: 60 s)")


class KalshiStreamSettings(StreamSettings):
    enabled: bool = Field(default=False, description="the channel needs an API key even for market data (kalshi.api_key_id): off unless you have one")
    url: str = Field(default="wss://external-api-ws.kalshi.com/trade-api/ws/v2", description="orderbook_delta channel (signed upgrade)")
    max_per_connection: int = Field(default=200, ge=1, le=5000, description="tickers per connection (the venue's cap, error 26, is unpublished)")
    use_yes_price: bool = Field(default=False, description="sent explicitly: false = NO levels in NO-leg prices, as on REST (YES ask = 1 - price); the venue's default is to flip")
    ping_interval_s: float = Field(default=10.0, gt=0, description="WebSocket ping cadence (the venue pings every 10 s too)")
    cross_grace_s: float = Field(default=2.0, gt=0, description="a book crossed this long is asked for again (between the level messages of one change it may cross for a moment)")
    rest_grace_s: float = Field(default=3.0, gt=0, description="a book that differs from a REST book is asked for again unless it reaches that book within this long (REST can be ahead of changes still on their way)")


class StreamsSettings(_Strict):
    polymarket: PolymarketStreamSettings = Field(default_factory=PolymarketStreamSettings)
    limitless: LimitlessStreamSettings = Field(default_factory=LimitlessStreamSettings)
    kalshi: KalshiStreamSettings = Field(default_factory=KalshiStreamSettings)

    def venue(self, name: str) -> StreamSettings | None:
        return getattr(self, name, None)
