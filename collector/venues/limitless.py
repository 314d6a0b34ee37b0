"""Limitless Exchange client: discovery over ``/markets/active``, one YES book per CLOB slug.

Venue facts this module relies on (see shared/venues/limitless.md):

* REST base has no version prefix; public endpoints need no auth.
* ``GET /markets/active?page=N&limit<=25&tradeType=...`` -> ``{"data": [...], "totalMarketsCount": n}``
  (1-based pages). NegRisk groups (``marketType == "group"``) carry their tradeable children
  in ``markets[]``; only the children have books (mapping: collector.venues.limitless_markets).
  Public adapters page groups separately with ``tradeType=group``, so discovery makes one pass
  per entry of ``TRADE_TYPES``.
* ``GET /markets/{slug}/orderbook`` -> ``{bids, asks, tokenId, adjustedMidpoint, midpoint,
  lastTradePrice, ...}``; one YES book, prices 0..1 (tick 0.001), sizes raw integers in
  10^-decimals units (decimals = collateralToken.decimals, 6 for USDC); no timestamp.
* AMM markets answer 400 on ``/orderbook``; at most 2 concurrent requests, >= 300 ms apart.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from collector.config.settings import LimitlessSettings
from collector.config.trades import LimitlessTradesSettings
from collector.model import errors
from collector.model.clock import now_ms
from collector.model.decimals import dec_text, scaled_text
from collector.model.details import LimitlessMeta
from collector.model.records import BookRecord, DecText, Instrument
from collector.venues.base import DiscoveryResult, FetchResult
from collector.venues.http import ThreadLocal, fetch_page, parse_json, raise_for_status
from collector.venues.limitless_markets import DEFAULT_DECIMALS, VENUE, add_market
from collector.venues.limitless_trades import LimitlessTrades
from collector.venues.numbers import as_int
from collector.venues.pacing import Pacer
from collector.venues.shared_spacing import SharedSpacing, spacing_path

log = logging.getLogger(__name__)

MAX_PAGES = 2000  # hard cap per discovery pass
# Decimal's default context keeps 28 significant digits; a longer raw size could not be
# scaled exactly (and would be ~10^22 shares anyway), so it is treated as a bad payload.
_MAX_SIZE_DIGITS = 28
_ONE = Decimal(1)


class LimitlessClient:
    """VenueClient for Limitless (see collector.venues.base.VenueClient)."""

    name: ClassVar[str] = VENUE
    batch_size: int = 1  # the venue has no batch orderbook endpoint
    # Discovery passes over /markets/active (server-side tradeType filter). "group" returns
    # NegRisk groups whose children are CLOB markets; public adapters (pmxt and others)
    # show that tradeType=clob alone does not return them.
    TRADE_TYPES: ClassVar[tuple[str, ...]] = ("clob", "group")

    def __init__(self, settings: LimitlessSettings, *, state_dir: str | os.PathLike[str] | None = None):
        self.settings = settings
        # The venue's spacing is per caller, not per process: with a state_dir, discovery and
        # the poller (separate processes under Prefect) take turns through one file.
        self.shared_spacing: SharedSpacing | None = None
        if state_dir is not None and settings.share_spacing and settings.min_spacing_s > 0:
            self.shared_spacing = SharedSpacing(spacing_path(state_dir, VENUE), settings.min_spacing_s)
        self._api = settings.api_url.rstrip("/")
        self._book_timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._discovery_timeout = settings.discovery_timeout_s
        self._pacer = Pacer(
            settings.discovery_rate_requests, settings.discovery_rate_window_s, settings.min_spacing_s
        )
        self._sessions = ThreadLocal(self._new_session)

    # ------------------------------------------------------------------ HTTP

    def _new_session(self) -> requests.Session:
        s = requests.Session()
        s.headers.update({"User-Agent": self.settings.user_agent, "Accept": "application/json"})
        if self.settings.api_key is not None:
            key = self.settings.api_key.get_secret_value()
            if key:
                s.headers["X-API-Key"] = key
        return s

    def _get(self, url: str, params: dict[str, Any] | None, timeout: Any) -> tuple[Any, int, float]:
        """GET + status mapping + JSON parse -> (payload, ts_ms at arrival, latency ms)."""
        session = self._sessions.get()
        t0 = time.monotonic()
        try:
            resp = session.get(url, params=params, timeout=timeout)
        except requests.Timeout as e:  # before ConnectionError: ConnectTimeout is both
            raise errors.Timeout(f"timeout: {type(e).__name__}", venue=VENUE) from None
        except requests.RequestException as e:
            raise errors.TransportError(f"transport: {type(e).__name__}: {e}", venue=VENUE) from None
        latency_ms = (time.monotonic() - t0) * 1000.0
        ts = now_ms()
        body = resp.content
        try:
            raise_for_status(resp.status_code, resp.headers, body, VENUE)
        except errors.RateLimited as e:
            # The venue counts requests per caller: its Retry-After pauses every process here.
            if e.retry_after_s is not None and self.shared_spacing is not None:
                self.shared_spacing.hold(time.monotonic() + e.retry_after_s)
            raise
        return parse_json(body, VENUE), ts, latency_ms

    # ------------------------------------------------------------- discovery

    def discover(self) -> DiscoveryResult:
        result = DiscoveryResult(instruments=[])
        seen: set[str] = set()
        for trade_type in self.TRADE_TYPES:
            self._discover_pass(trade_type, result, seen)
        return result

    def _get_page(self, url: str, params: dict[str, Any]) -> Any:
        self._pacer.wait()
        if self.shared_spacing is not None:
            self.shared_spacing.wait()  # books ahead of the poller, which only takes free starts
        return self._get(url, params, self._discovery_timeout)[0]

    def _discover_pass(self, trade_type: str, result: DiscoveryResult, seen: set[str]) -> None:
        """Page one tradeType until ``totalMarketsCount`` items were seen.

        The server may serve fewer items than ``limit`` (a capped page size), so a short page
        does not end the pass while the count says there are more. The pass ends on an empty
        page, on a page that repeats the previous one (the server ignored ``page``) and at
        MAX_PAGES; without a usable count, a short page is the only end signal left.
        """
        limit = self.settings.page_size
        url = f"{self._api}/markets/active"
        prev_slugs: list[Any] | None = None
        items_seen = 0
        page = 1
        while True:
            if page > MAX_PAGES:
                log.warning(
                    "limitless discovery: %s pass stopped at the page bound (%d pages, %d items seen)",
                    trade_type, MAX_PAGES, items_seen,
                )  # fmt: skip
                result.paging_stop("page_bound")
                break
            params = {"page": page, "limit": limit, "tradeType": trade_type}
            payload = fetch_page(
                lambda: self._get_page(url, params),
                attempts=self.settings.discovery_page_attempts,
                max_wait_s=self.settings.discovery_retry_max_s,
                what=f"/markets/active {trade_type} page {page}",
                venue=VENUE,
                result=result,
            )
            result.pages += 1
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise errors.BadPayload(
                    f"/markets/active page {page}: expected an object with a 'data' list", venue=VENUE
                )
            items: list[Any] = payload["data"]
            total = as_int(payload.get("totalMarketsCount"))  # the latest count: the list may move
            if not items:
                if total is not None and items_seen < total:
                    log.info(
                        "limitless discovery: %s page %d is empty after %d of %d items",
                        trade_type, page, items_seen, total,
                    )  # fmt: skip
                break
            slugs = [m.get("slug") if isinstance(m, dict) else None for m in items]
            if slugs == prev_slugs:  # the server ignored `page`: stop instead of looping
                log.warning("limitless discovery: %s page %d repeats page %d; stopping", trade_type, page, page - 1)
                result.paging_stop("repeated_page")
                break
            prev_slugs = slugs
            items_seen += len(items)
            for item in items:
                add_market(item, result, seen)
            if total is not None and total >= 0:
                if items_seen >= total:
                    break
            elif len(items) < limit:
                break
            page += 1


    # ----------------------------------------------------------------- books

    def fetch_books(self, poll_keys: Sequence[str]) -> FetchResult:
        if isinstance(poll_keys, str) or len(poll_keys) != 1:
            raise ValueError("LimitlessClient.fetch_books takes exactly one poll key (batch_size=1)")
        slug = poll_keys[0]
        url = f"{self._api}/markets/{quote(slug, safe='')}/orderbook"
        payload, ts, latency_ms = self._get(url, None, self._book_timeout)
        if not isinstance(payload, dict):
            raise errors.BadPayload(
                f"orderbook for {slug!r}: expected an object, got {type(payload).__name__}", venue=VENUE
            )
        return FetchResult(books={slug: payload}, errors={}, ts_ms=ts, latency_ms=latency_ms)

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
        return normalize_book(inst, raw, ts_ms, latency_ms)

    def trades_source(self, ts: LimitlessTradesSettings) -> LimitlessTrades:
        """Per-market events, paced like discovery inside the venue's shared spacing."""
        return LimitlessTrades(self._get_page, self.settings.api_url, ts.page_limit, ts.max_pages, ts.event_types,
                               ts.size_scale)

    def close(self) -> None:
        self._sessions.close_all()
        if self.shared_spacing is not None:
            self.shared_spacing.close()


CLIENT = LimitlessClient


# ---------------------------------------------------------------- helpers


def normalize_book(inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
    """A /orderbook body (or the feed's orderbookUpdate ``orderbook``, same shape) -> BookRecord."""
    if not isinstance(raw, dict):
        raise errors.BadPayload(f"orderbook: expected an object, got {type(raw).__name__}", venue=VENUE)
    decimals = inst.size_decimals if inst.size_decimals is not None else DEFAULT_DECIMALS
    bids = _levels(raw.get("bids"), "bids", decimals, descending=True)
    asks = _levels(raw.get("asks"), "asks", decimals, descending=False)
    extra: dict[str, Any] = {"size_decimals": decimals}
    for key, out in (
        ("lastTradePrice", "last_trade_price"),
        ("adjustedMidpoint", "adjusted_midpoint"),
        ("midpoint", "midpoint"),
    ):
        v = raw.get(key)
        if v is not None:
            try:
                extra[out] = DecText(dec_text(v))
            except ValueError:
                raise errors.BadPayload(f"orderbook: bad {key} {v!r:.40}", venue=VENUE) from None
    token = raw.get("tokenId")
    if token is not None:
        if type(token) is int:
            token = str(token)
        elif type(token) is not str:
            raise errors.BadPayload(f"orderbook: bad tokenId {token!r:.40}", venue=VENUE)
        meta = inst.meta  # a plain dict only when discovery gave none: nothing to check against
        expected = meta.token_yes if type(meta) is LimitlessMeta else None
        if isinstance(expected, str) and expected and token != expected:
            raise errors.BadPayload(
                f"orderbook: tokenId {token:.20}... is not the YES token of {inst.poll_key}", venue=VENUE
            )
        extra["token_id"] = token
    return BookRecord(
        venue=VENUE,
        instrument_id=inst.instrument_id,
        poll_key=inst.poll_key,
        market_id=inst.market_id,
        outcome=inst.outcome,
        ts_ms=ts_ms,
        bids=bids,
        asks=asks,
        latency_ms=latency_ms,
        ob_ts_ms=None,  # the venue sends no book timestamp
        hash=None,
        tick_size=inst.tick_size,
        extra=extra,
    )



def _levels(levels: Any, side: str, decimals: int, *, descending: bool) -> list[tuple[str, str]]:
    """[{price, size}, ...] -> [(price_text, shares_text)] sorted best-first; BadPayload on junk."""
    if type(levels) is not list:
        raise errors.BadPayload(f"orderbook: {side} is not a list", venue=VENUE)
    keyed: list[tuple[Decimal, str, str]] = []
    for lvl in levels:
        if type(lvl) is not dict:
            raise errors.BadPayload(f"orderbook: {side} level is not an object", venue=VENUE)
        try:
            p = dec_text(lvl["price"])
            s = dec_text(lvl["size"])
        except (KeyError, ValueError):
            raise errors.BadPayload(f"orderbook: bad {side} level {lvl!r:.80}", venue=VENUE) from None
        pd = Decimal(p)
        if pd > _ONE:
            raise errors.BadPayload(f"orderbook: {side} price {p} outside 0..1", venue=VENUE)
        if "." in s or len(s) > _MAX_SIZE_DIGITS:
            raise errors.BadPayload(f"orderbook: {side} size {s:.40} is not a raw integer", venue=VENUE)
        keyed.append((pd, p, scaled_text(s, decimals)))
    keyed.sort(key=lambda t: t[0], reverse=descending)
    return [(p, s) for _, p, s in keyed]

