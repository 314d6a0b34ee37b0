"""Limitless Exchange client: discovery over ``/markets/active``, one YES book per CLOB slug.

Venue facts this module relies on (see shared/venues/limitless.md):

* REST base has no version prefix; public endpoints need no auth.
* ``GET /markets/active?page=N&limit<=25&tradeType=...`` -> ``{"data": [...], "totalMarketsCount": n}``
  (1-based pages). NegRisk groups (``marketType == "group"``) carry their tradeable children
  in ``markets[]``; only the children have books. Public adapters page groups separately with
  ``tradeType=group``, so discovery makes one pass per entry of ``TRADE_TYPES``.
* ``GET /markets/{slug}/orderbook`` -> ``{bids, asks, tokenId, adjustedMidpoint, midpoint,
  lastTradePrice, ...}``; one YES book, prices 0..1 (tick 0.001), sizes raw integers in
  10^-decimals units (decimals = collateralToken.decimals, 6 for USDC); no timestamp.
* AMM markets answer 400 on ``/orderbook``; at most 2 concurrent requests, >= 300 ms apart.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from collector.config.settings import LimitlessSettings
from collector.model import errors
from collector.model.clock import now_ms
from collector.model.decimals import dec_text, scaled_text
from collector.model.details import limitless_details, time_ms
from collector.model.records import BookRecord, DecText, Instrument
from collector.venues.base import (
    DiscoveryResult,
    FetchResult,
    ThreadLocal,
    fetch_page,
    parse_json,
    raise_for_status,
)
from collector.venues.pacing import Pacer
from collector.venues.shared_spacing import SharedSpacing, spacing_path

log = logging.getLogger(__name__)

VENUE = "limitless"
DEFAULT_TICK = "0.001"
DEFAULT_DECIMALS = 6
MAX_PAGES = 2000  # hard cap per discovery pass
# Decimal's default context keeps 28 significant digits; a longer raw size could not be
# scaled exactly (and would be ~10^22 shares anyway), so it is treated as a bad payload.
_MAX_SIZE_DIGITS = 28
_ONE = Decimal(1)
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


class LimitlessClient:
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
            total = _as_int(payload.get("totalMarketsCount"))  # the latest count: the list may move
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
                self._add_market(item, result, seen)
            if total is not None and total >= 0:
                if items_seen >= total:
                    break
            elif len(items) < limit:
                break
            page += 1

    def _add_market(self, m: Any, result: DiscoveryResult, seen: set[str]) -> None:
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
                inst = self._instrument(child, group, result)
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

    def _instrument(self, m: Any, group: dict[str, Any] | None, result: DiscoveryResult) -> Instrument | None:
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
        expires_at_ms = _expiry_ms(m.get("expirationTimestamp"))
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
        meta: dict[str, Any] = {
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
        if group is not None:
            meta["group_id"] = _scalar(group.get("id"))
            meta["group_title"] = _scalar(group.get("title"))
            meta["neg_risk_market_id"] = _scalar(group.get("negRiskMarketId"))
            meta["order_in_group"] = _scalar(m.get("orderInGroup"))
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
            volume_24h=None,  # the venue publishes lifetime volume only (meta["volume"])
            liquidity=_as_float(m.get("liquidityFormatted")),
            starts_at_ms=time_ms(m.get("startAt")),
            size_decimals=size_decimals,
            meta=meta,
            details=limitless_details(m, size_decimals),
        )

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
                    extra[out] = DecText(_dec(v))
                except ValueError:
                    raise errors.BadPayload(f"orderbook: bad {key} {v!r:.40}", venue=VENUE) from None
        token = raw.get("tokenId")
        if token is not None:
            if type(token) is int:
                token = str(token)
            elif type(token) is not str:
                raise errors.BadPayload(f"orderbook: bad tokenId {token!r:.40}", venue=VENUE)
            expected = inst.meta.get("token_yes")
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

    def close(self) -> None:
        self._sessions.close_all()
        if self.shared_spacing is not None:
            self.shared_spacing.close()


CLIENT = LimitlessClient


# ---------------------------------------------------------------- helpers


def _levels(levels: Any, side: str, decimals: int, *, descending: bool) -> list[tuple[str, str]]:
    """[{price, size}, ...] -> [(price_text, shares_text)] sorted best-first; BadPayload on junk."""
    if type(levels) is not list:
        raise errors.BadPayload(f"orderbook: {side} is not a list", venue=VENUE)
    keyed: list[tuple[Decimal, str, str]] = []
    for lvl in levels:
        if type(lvl) is not dict:
            raise errors.BadPayload(f"orderbook: {side} level is not an object", venue=VENUE)
        try:
            p = _dec(lvl["price"])
            s = _dec(lvl["size"])
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


def _dec(v: Any) -> str:
    """dec_text, refusing exponent notation that would expand to absurdly long text."""
    if type(v) is str and ("e" in v or "E" in v):
        try:
            d = Decimal(v.strip())
        except ArithmeticError:
            raise ValueError("not a number") from None
        if d.is_finite() and d and not -40 <= d.adjusted() <= 40:
            raise ValueError("exponent out of range")
    return dec_text(v)


def _as_int(v: Any) -> int | None:
    """int or integral numeric string -> int; None for anything else."""
    if type(v) is int:
        return v
    if type(v) is str:
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def _as_float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _expiry_ms(v: Any) -> int | None:
    """expirationTimestamp (ms epoch; int, float or numeric string) -> ms; seconds are * 1000."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise _BadMarket("expirationTimestamp is a bool")
    if isinstance(v, (int, float)):
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    elif isinstance(v, str):
        d = Decimal(dec_text(v))  # ValueError on junk / negative
    else:
        raise _BadMarket("expirationTimestamp has a bad type")
    if not d.is_finite() or d < 0:
        raise _BadMarket("expirationTimestamp is not a finite non-negative number")
    if d < Decimal(10) ** 12:
        d *= 1000
    if d >= Decimal(10) ** 15:  # past year 33,000: junk, and too big for int64 consumers
        raise _BadMarket("expirationTimestamp out of range")
    return int(d)


def _decimals(token: Any) -> int:
    if token is None:
        return DEFAULT_DECIMALS
    if not isinstance(token, dict):
        raise _BadMarket("collateralToken is not an object")
    v = token.get("decimals")
    if v is None:
        return DEFAULT_DECIMALS
    n = _as_int(v)
    if n is None or not 0 <= n <= 36:
        raise _BadMarket(f"bad collateralToken.decimals {v!r:.20}")
    return n


def _scalar(v: Any) -> Any:
    """Keep JSON scalars for meta; anything else becomes None."""
    return v if v is None or isinstance(v, (str, int, float, bool)) else None
