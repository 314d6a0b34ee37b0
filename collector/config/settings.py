"""All configuration, in one pydantic-settings model.

Sources, highest priority first: environment variables ``COLLECTOR_*`` (``__`` separates
nested fields, e.g. ``COLLECTOR_POLYMARKET__CLOB_URL``), then the TOML file named by
``COLLECTOR_CONFIG``, then the defaults below. Every tunable is listed with its default in
docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from collector.config.retention import CompactSettings, RetentionSettings
from collector.config.streams import StreamsSettings
from collector.config.trades import TradesSettings
from collector.model.errors import ConfigError

VenueName = Literal["polymarket", "limitless", "kalshi"]
ALL_VENUES: tuple[str, ...] = ("polymarket", "limitless", "kalshi")
# Kalshi is opt-in on the live venues (its anonymous budget is unconfirmed); --sim enables all.
DEFAULT_VENUES: tuple[str, ...] = ("polymarket", "limitless")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Rule(_Strict):
    """One selection rule; an instrument is selected when any rule of its venue matches.

    Every criterion is optional; a rule with none matches every open order-book market.
    """

    name: str = Field(default="all", description="shown in market records as reason \"rule:<name>\"")
    slug_prefixes: list[str] = Field(default=[], description="market slug starts with any of these")
    underlyings: list[str] = Field(default=[], description="asset tickers, e.g. [\"BTC\", \"ETH\"]: oracle ticker, $BTC title marker, slug family")
    event_slug_prefixes: list[str] = Field(default=[], description="Polymarket event or series slug; Limitless group slug; Kalshi event or series ticker")
    title_contains: list[str] = Field(default=[], description="title contains any of these (case-insensitive)")
    tags: list[str] = Field(default=[], description="Polymarket event tags / Limitless categories and tags (any match)")
    recurrence: list[str] = Field(default=[], description="Polymarket series recurrence: 5m, 15m, hourly, daily, weekly...")
    min_minutes_to_expiry: float | None = Field(default=None, description="at least this long to expiry (no expiry passes)")
    max_minutes_to_expiry: float | None = Field(default=None, description="at most this long to expiry (no expiry fails)")
    min_volume_24h: float | None = Field(default=None, description="24 h volume (Polymarket volume24hr in USD, Kalshi volume_24h_fp in contracts); unknown fails")
    min_liquidity: float | None = Field(default=None, description="venue liquidity figure; unknown fails")
    max_markets: int | None = Field(default=None, ge=1, description="keep the top N by 24 h volume")


def _polymarket_default_rules() -> list[Rule]:
    # The original collector's crypto intraday set.
    return [
        Rule(
            name="btc-eth-up-or-down",
            event_slug_prefixes=["btc-up-or-down-", "eth-up-or-down-"],
            recurrence=["15m", "hourly", "daily"],
            min_minutes_to_expiry=0,
            max_minutes_to_expiry=1440,
        )
    ]


def _limitless_default_rules() -> list[Rule]:
    # By underlying, as the original collector did: real slugs ("dollarbtc-above-...") do not
    # start with the asset, so slug prefixes missed every "above" market.
    return [Rule(name="btc-eth", underlyings=["BTC", "ETH"])]


class VenueSettings(_Strict):
    """Tunables every venue has. Defaults follow the venue docs and the original collector."""

    connect_timeout_s: float = Field(default=2.0, gt=0, description="TCP/TLS connect timeout for book requests")
    read_timeout_s: float = Field(default=2.0, gt=0, description="read timeout for book requests (original: 2.0)")
    discovery_timeout_s: float = Field(default=10.0, gt=0, description="per discovery page request")
    user_agent: str = Field(default="pm-orderbook-collector/0.1", description="explicit UA (default library UAs get blocked)")
    interval_s: float = Field(default=1.0, gt=0, description="target poll interval per instrument")
    max_workers: int = Field(default=16, ge=1, le=256, description="fetch threads")
    inflight_start: int = Field(default=4, ge=1, description="AIMD starting in-flight cap")
    inflight_ceiling: int = Field(default=16, ge=1, description="AIMD hard ceiling (<= max_workers)")
    rate_requests: int = Field(default=500, ge=1, description="at most this many book requests ... (poller shard k/n: rate_requests // n, at least 1)")
    rate_window_s: float = Field(default=10.0, gt=0, description="... per this sliding window")
    min_spacing_s: float = Field(default=0.0, ge=0, description="minimum gap between two requests")
    discovery_rate_requests: int = Field(default=300, ge=1, description="discovery pages per window (Gamma /markets: 300/10 s)")
    discovery_rate_window_s: float = Field(default=10.0, gt=0, description="window of discovery_rate_requests")
    discovery_page_attempts: int = Field(default=4, ge=1, le=20, description="tries per discovery page on 429 / 5xx / timeout / bad body")
    discovery_retry_max_s: float = Field(default=30.0, ge=0, description="longest wait between those tries (Retry-After up to this)")
    cooldown_429_s: float = Field(default=30.0, ge=0, description="used when no Retry-After is sent")
    batch_linger_s: float = Field(default=0.1, ge=0, description="wait this long to fill a batch request")
    rules: list[Rule] = Field(default=[], description="selection rules, see below")


class PolymarketSettings(VenueSettings):
    gamma_url: str = Field(default="https://gamma-api.polymarket.com", description="Gamma API (discovery)")
    clob_url: str = Field(default="https://clob.polymarket.com", description="CLOB API (books)")
    books_batch_size: int = Field(default=500, ge=1, le=500, description="POST /books items per request (the venue's maximum): 5,000 tokens at 1 Hz take 10 of the 50 requests/s allowed; each request has a fixed CPU cost (500 vs 200: ~12 µs less CPU per book)")
    # "batch": POST /books with books_batch_size tokens per request. "single": one GET /book per
    # token (the per-instrument baseline the benchmark compares against; /book is 1500 per 10 s).
    books_endpoint: Literal["batch", "single"] = Field(default="batch", description="\"single\" = GET /book per token (baseline)")
    gamma_page_limit: int = Field(default=100, ge=1, le=100, description="keyset page size (venue caps at 100)")
    verify_book_hash: bool = Field(default=True, description="recompute each book's hash at capture; a mismatch flags (hash_ok false)")
    max_workers: int = Field(default=16, ge=1, le=256, description="fetch threads")
    inflight_start: int = Field(default=4, ge=1, description="AIMD starting in-flight cap")
    inflight_ceiling: int = Field(default=16, ge=1, description="AIMD hard ceiling (<= max_workers)")
    rate_requests: int = Field(default=500, ge=1, description="/books: 500 per 10 s (shard k/n: 500 // n)")
    rules: list[Rule] = Field(default_factory=_polymarket_default_rules, description="BTC/ETH up-or-down")

    @field_validator("gamma_url", "clob_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)


class LimitlessSettings(VenueSettings):
    api_url: str = Field(default="https://api.limitless.exchange", description="REST base (no version prefix)")
    read_timeout_s: float = Field(default=2.5, gt=0, description="read timeout for book requests (original: 2.5)")
    page_size: int = Field(default=25, ge=1, le=25, description="/markets/active page size (venue max 25)")
    max_workers: int = Field(default=2, ge=1, le=64, description="fetch threads")
    inflight_start: int = Field(default=1, ge=1, description="AIMD starting in-flight cap")
    inflight_ceiling: int = Field(default=2, ge=1, description="docs: at most 2 concurrent requests")
    rate_requests: int = Field(default=27, ge=1, description="~10% below the venue limit, left for discovery (shard k/n: 27 // n)")
    rate_window_s: float = Field(default=10.0, gt=0, description="window of rate_requests")
    min_spacing_s: float = Field(default=0.35, ge=0, description="docs: >= 300 ms between calls; margin for jitter")
    discovery_rate_requests: int = Field(default=15, ge=1, description="discovery pages per window: every other slot, the rest for the poller")
    share_spacing: bool = Field(default=True, description="processes on one data_dir share min_spacing_s (file data_dir/limitless/state/request_spacing)")
    api_key: SecretStr | None = Field(default=None, description="optional; public endpoints need none")
    rules: list[Rule] = Field(default_factory=_limitless_default_rules, description="BTC and ETH markets (by underlying)")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)


def _kalshi_default_rules() -> list[Rule]:
    # BTC/ETH above/below (hourly events, the daily close among them), next 90 min; dozens of
    # strikes per event, so capped to what the anonymous budget polls at 1 Hz.
    return [Rule(name="btc-eth-hourly", event_slug_prefixes=["KXBTCD", "KXETHD"], min_minutes_to_expiry=0,
                 max_minutes_to_expiry=90, max_markets=150)]


class KalshiSettings(VenueSettings):
    """Budgets: the per-IP anonymous one (UNCONFIRMED, ~3 requests/s), or signed_* with a key."""

    api_url: str = Field(default="https://external-api.kalshi.com/trade-api/v2", description="REST base, version prefix included")
    series: list[str] = Field(default=["KXBTCD", "KXETHD"], description="discovery asks only for these series (GET /events?series_ticker=); [] = every open event (100,000+ markets: hundreds of pages)")
    combos: bool = Field(default=False, description="also discover multivariate combo markets (GET /events/multivariate), as does a rule naming a KXMVE... ticker; off: every mve_* market is left out")
    page_limit: int = Field(default=200, ge=1, le=200, description="/events page size (venue max 200)")
    max_pages: int = Field(default=1000, ge=1, description="page bound per discovery pass")
    books_batch_size: int = Field(default=100, ge=1, le=100, description="tickers per GET /markets/orderbooks (venue max 100)")
    max_workers: int = Field(default=4, ge=1, le=64, description="fetch threads")
    inflight_start: int = Field(default=1, ge=1, description="AIMD starting in-flight cap")
    inflight_ceiling: int = Field(default=2, ge=1, description="AIMD hard ceiling (<= max_workers)")
    rate_requests: int = Field(default=20, ge=1, description="book requests per window, anonymous: 2/s of the ~3/s per IP (x100 tickers)")
    min_spacing_s: float = Field(default=0.35, ge=0, description="gap between two requests of any process on data_dir (discovery included)")
    discovery_rate_requests: int = Field(default=5, ge=1, description="discovery pages per window, taken from the shared spacing first")
    cooldown_429_s: float = Field(default=10.0, ge=0, description="pause after a 429 (the venue sends no Retry-After)")
    share_spacing: bool = Field(default=True, description="processes on one data_dir share min_spacing_s and 429 pauses (file data_dir/kalshi/state/request_spacing)")
    api_key_id: SecretStr | None = Field(default=None, description="optional API key id (KALSHI-ACCESS-KEY): signed requests use the key's larger budget")
    private_key: SecretStr | None = Field(default=None, description="its RSA private key, PEM text (or private_key_file)")
    private_key_file: Path | None = Field(default=None, description="file holding the PEM private key")
    signed_rate_requests: int = Field(default=150, ge=1, description="rate_requests with a key (Basic: 200 read tokens/s, 10 per request), unless rate_requests is set")
    signed_min_spacing_s: float = Field(default=0.05, ge=0, description="min_spacing_s with a key, unless min_spacing_s is set")
    rules: list[Rule] = Field(default_factory=_kalshi_default_rules, description="BTC/ETH hourly above/below, next 90 min, top 150")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @model_validator(mode="after")
    def _signed(self) -> "KalshiSettings":
        if self.api_key_id is not None and self.private_key is None and self.private_key_file is None:
            raise ValueError("api_key_id needs private_key or private_key_file")
        if self.api_key_id is not None:  # a key raises the budget unless one was set explicitly
            for name in ("rate_requests", "min_spacing_s"):
                if name not in self.model_fields_set:
                    setattr(self, name, getattr(self, "signed_" + name))
        return self


def _check_url(v: str) -> str:
    if not (v.startswith("http://") or v.startswith("https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v.rstrip("/")


class PollerSettings(_Strict):
    snapshot_check_s: float = Field(default=1.0, gt=0, description="how often snapshot mtimes are checked")
    stats_interval_s: float = Field(default=10.0, gt=0, description="poll_stats record cadence")
    heartbeat_interval_s: float = Field(default=30.0, gt=0, description="Prefect heartbeat event cadence")
    error_sample_every: int = Field(default=10, ge=1, description="log every Nth consecutive failure")
    backoff_base_s: float = Field(default=1.0, gt=0, description="first retry delay after a failed poll")
    backoff_factor: float = Field(default=2.0, ge=1, description="delay multiplier per consecutive failure")
    backoff_cap_s: float = Field(default=60.0, gt=0, description="longest retry delay")
    backoff_jitter: float = Field(default=0.0, ge=0, le=1, description="seeded by instrument id")
    failure_cooldown_fraction: float = Field(default=0.5, gt=0, le=1, description="venue cools down above this failed share")
    failure_cooldown_min_requests: int = Field(default=10, ge=1, description="... once the window has this many requests")
    failure_cooldown_window_s: float = Field(default=10.0, gt=0, description="sliding window of that failure share")
    failure_cooldown_s: float = Field(default=15.0, ge=0, description="length of a failure cooldown")
    aimd_p95_latency_ms: float = Field(default=1500.0, gt=0, description="\"high\" latency")
    aimd_failure_rate: float = Field(default=0.2, gt=0, le=1, description="\"high\" failure rate")
    aimd_stable_window_s: float = Field(default=900.0, gt=0, description="+1 after this long stable")
    shard: str = Field(default="0/1", description="k/n: poll only instruments whose id hashes to shard k of n; each venue's REST budget (rate_requests per rate_window_s) is then split: rate_requests // n, at least 1 (discovery budgets are not split)")
    shards: int = Field(default=1, ge=1, le=64, description="`collector up` runs this many poller shards (deployments poller-shard-<k>of<n>, one run each; 1 = the `poller` deployment)")
    gc_threshold: int = Field(default=2_000, ge=0, description="allocations between young garbage collections, start-up objects frozen (0 = Python's defaults)")
    malloc_arenas: int = Field(default=2, ge=0, le=64, description="glibc malloc arenas for the poller process (each fetch thread otherwise gets its own, which keeps freed reply buffers: ~20 MB RSS at 5,000 books/s); 0 = glibc's default, ignored off glibc")

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str) -> str:
        try:
            k, n = (int(x) for x in v.split("/"))
        except ValueError:
            raise ValueError("must look like k/n, e.g. 0/2") from None
        if not (n >= 1 and 0 <= k < n):
            raise ValueError("needs 0 <= k < n")
        return v


class WriterSettings(_Strict):
    rotate_minutes: int = Field(default=10, ge=1, le=1440, description="new file every N minutes and at UTC midnight")
    fsync_interval_s: float = Field(default=1.0, gt=0, description="at most this much data is lost on a crash")
    compress_closed: bool = Field(default=False, description="zstd-compress files once rotated out")
    record: Literal["changes", "every_poll"] = Field(
        default="changes",
        description="\"changes\": a full orderbook record only when the book differs from the instrument's last one in the file, "
                    "else a small unchanged record (readers expand it); \"every_poll\": every book in full",
    )


class DiscoverySettings(_Strict):
    interval_s: float = Field(default=60.0, gt=0, description="cadence of `collector run` without Prefect")
    empty_is_suspect: bool = Field(default=True, description="an empty answer from a venue that had instruments is an error")
    task_retries: int = Field(default=3, ge=0, description="Prefect retries of a venue task on transport errors")
    task_retry_delays_s: list[float] = Field(default=[2.0, 10.0, 30.0], description="backoff between task retries")
    task_timeout_s: float = Field(default=600.0, gt=0, description="Prefect task timeout per venue")


class PrefectSettings(_Strict):
    """Alerting thresholds for the automations in flows/stack/automations.py (seconds unless noted)."""

    webhook_url: SecretStr | None = Field(default=None, description="alerts go here when set")
    discovery_stale_s: int = Field(default=600, ge=60, description="alert: no Completed discovery run this long")
    poller_heartbeat_s: int = Field(default=120, ge=10, description="alert: no poller heartbeat event this long")
    zombie_s: int = Field(default=90, ge=90, description="mark a run Crashed after this long without flow heartbeats (>= 3 x 30 s)")
    pending_stuck_s: int = Field(default=120, ge=30, description="mark a run Crashed that stays Pending this long (its worker is gone)")
    shard_work_queue: str = Field(default="", description="work queue of each shard deployment: \"\" = the poller deployment's; \"shard-{k}\" = one per shard (pin shards to machines)")
    restart_delay_s: int = Field(default=10, ge=0, description="a crashed poller is restarted this long after the crash")
    restart_window_s: int = Field(default=300, ge=10, description="at most one automatic poller restart per window")
    discovery_failed_window_s: int = Field(default=900, ge=0, description="a failing discovery alerts once per window")
    venue_cooldown_alert_s: float = Field(default=300.0, gt=0, description="alert: a venue in cooldown this long")
    venue_min_coverage: float = Field(default=0.9, ge=0, le=1, description="alert: fresh-book share of a venue below this")
    venue_coverage_grace_s: float = Field(default=120.0, ge=0, description="... for at least this long")
    venue_repeat_s: float = Field(default=900.0, gt=0, description="repeat a venue alert at most this often")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    config: Path | None = Field(default=None, description="path of the TOML file (COLLECTOR_CONFIG); informational")
    data_dir: Path = Field(default=Path("./data"), description="root of everything written")
    venues: Annotated[list[VenueName], NoDecode] = Field(default_factory=lambda: list(DEFAULT_VENUES), description="enabled venues (kalshi is opt-in; --sim enables all unless set)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="console log level")
    polymarket: PolymarketSettings = Field(default_factory=PolymarketSettings)
    limitless: LimitlessSettings = Field(default_factory=LimitlessSettings)
    kalshi: KalshiSettings = Field(default_factory=KalshiSettings)
    poller: PollerSettings = Field(default_factory=PollerSettings)
    writer: WriterSettings = Field(default_factory=WriterSettings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    compact: CompactSettings = Field(default_factory=CompactSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    trades: TradesSettings = Field(default_factory=TradesSettings)

    @field_validator("venues", mode="before")
    @classmethod
    def _split_venues(cls, v: Any) -> Any:
        if isinstance(v, str):  # COLLECTOR_VENUES=polymarket,limitless
            v = v.strip()
            if v.startswith("["):
                return v
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    def venue(self, name: str) -> VenueSettings:
        return getattr(self, name)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by COLLECTOR_CONFIG (if any)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("COLLECTOR_CONFIG")
        if not path:
            return {}
        try:
            with open(path, "rb") as f:
                return tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config: file {path!r} (COLLECTOR_CONFIG) does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config: {path!r} is not valid TOML: {e}") from None


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  {loc}: {e['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def _huge_ints(v: Any, path: str) -> list[str]:
    """Paths of integers no 64-bit consumer (orjson, Prefect, the OS) can take."""
    if isinstance(v, int) and not isinstance(v, bool):
        return [path] if not -(2**63) <= v < 2**63 else []
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _huge_ints(x, f"{path}.{k}" if path else k)]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _huge_ints(x, f"{path}.{i}")]
    return []


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise ConfigError naming every bad field."""
    unknown = sorted(
        k
        for k in os.environ
        if k.startswith("COLLECTOR_")
        and k[len("COLLECTOR_") :].split("__")[0].lower() not in Settings.model_fields
    )
    if unknown:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {k}: unknown setting" for k in unknown))
    try:
        s = Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from None
    except SettingsError as e:  # e.g. a nested env value that is not valid JSON
        raise ConfigError(f"invalid configuration:\n  {e}") from None
    huge = _huge_ints(s.model_dump(mode="json"), "")
    if huge:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {k}: number out of range" for k in huge))
    for name in ALL_VENUES:
        v = s.venue(name)
        if v.inflight_start > v.inflight_ceiling:
            raise ConfigError(
                f"invalid configuration:\n  {name}.inflight_start: must be <= inflight_ceiling"
            )
        if v.inflight_ceiling > v.max_workers:
            # More requests in flight than fetch threads would queue jobs that are sent later,
            # after a 429 or a cooldown the loop thread has not seen yet.
            raise ConfigError(
                f"invalid configuration:\n  {name}.inflight_ceiling: {v.inflight_ceiling} exceeds "
                f"{name}.max_workers ({v.max_workers}); raise max_workers or lower the ceiling"
            )
    if not s.venues:
        raise ConfigError("invalid configuration:\n  venues: enable at least one venue")
    return s
