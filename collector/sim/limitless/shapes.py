"""Real-shaped Limitless crypto markets (titles, slugs, tags, metadata) for the simulator.

Modelled on the captures in shared/real-payloads/limitless/ (see SOURCES.md there):

* "above" markets (Dec 2025 capture): slug ``dollarbtc-above-dollar8864073-on-dec-17-0100-utc-<ms>``,
  title ``"💎 $BTC above $88640.73 on Dec 17, 01:00 UTC?"`` (no emoji on AMM ones), tags without
  the asset, ``metadata.openPrice`` = the strike, reward ``settings``; no oracle metadata.
* "up or down" 5-minute markets (Jun 2026 capture): slug ``btc-up-or-down-5-min-<ms>``, title
  ``"BTC Up or Down - 5 Min"``, ``stableSlug`` ``btc-5min-price``, ``startAt``,
  ``priceOracleMetadata.ticker``, ``metadata.openPrice`` with 18 decimals.

The slug's trailing ``-<ms>`` is added by the caller (the market's creation time).
"""

from __future__ import annotations

import datetime as _dt
import random
from dataclasses import dataclass, field
from typing import Any

MON_ABBR = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
UP_OR_DOWN_S = 300  # the captured series are 5-minute ones


@dataclass(frozen=True)
class CryptoShape:
    slug_base: str
    title: str
    exp_ms: int
    categories: list[str]
    tags: list[str]
    # Venue keys the market object carries on top of the simulator's common ones.
    extra: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] | None = None  # None: no `settings` object (AMM markets)


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _strike(rng: random.Random, px: float) -> str:
    """A strike near ``px`` as the venue writes it: 2 decimals, 4 below $10 ("1.9294")."""
    s = px * rng.uniform(0.97, 1.03)
    return f"{s:.2f}" if s >= 10 else f"{s:.4f}"


def _reward_settings(rng: random.Random, min_size: int, max_spread: float, daily: bool) -> dict[str, Any]:
    return {"c": "3", "minSize": str(min_size), "maxSpread": max_spread,
            "dailyReward": "100" if daily else "1000",
            "rewardsEpoch": "0.06944444444444445" if daily else "0.6944444444444444"}


def above(rng: random.Random, ticker: str, px: float, exp_s: float, *, amm: bool, daily: bool,
          min_size: int, max_spread: float) -> CryptoShape:
    strike = _strike(rng, px)
    d = _dt.datetime.fromtimestamp(exp_s, _dt.UTC)
    sym = ticker.lower()
    slug = f"dollar{sym}-above-dollar{strike.replace('.', '')}-on-{MON_ABBR[d.month - 1]}-{d.day}-{d:%H%M}-utc"
    title = f"${ticker} above ${strike} on {d:%b} {d.day}, {d:%H:%M} UTC?"
    if not amm:
        title = "\U0001f48e " + title  # the captured CLOB titles carry the gem, AMM ones do not
    rec = "Daily" if daily else "Hourly"
    tags = ["Prophet", "Simple Mode", "Recurring", "Lumy", rec] if daily else ["Pricechart", rec, "Recurring", "Lumy"]
    meta = {"fee": True, "openPrice": strike, "isBannered": False, "isPolyArbitrage": False,
            "shouldMarketMake": rng.random() < 0.3}
    return CryptoShape(slug, title, int(exp_s * 1000), [rec], tags, {"metadata": meta},
                       None if amm else _reward_settings(rng, min_size, max_spread, daily))


def up_or_down(rng: random.Random, ticker: str, name: str, px: float, start_s: float, *,
               min_size: int, max_spread: float) -> CryptoShape:
    sym = ticker.lower()
    open_price = f"{px * rng.uniform(0.99, 1.01):.6f}" + "0" * 12  # 18 decimals, as captured
    oracle = {
        "assetType": "CRYPTO", "chainlinkFeedAddress": None, "chainlinkPair": f"{ticker}/USD",
        "chartSource": "chainlink", "name": name, "symbol": f"Crypto.{ticker}/USD", "ticker": ticker,
    }
    meta = {
        "c": 3, "fee": True, "frequencySubType": "minutes_5", "hidden": False, "isBannered": False,
        "isPolyArbitrage": False, "makerRebateMult": 1, "marketVariant": "clob", "maxSpread": max_spread,
        "minSize": min_size, "minutesDeadline": 5, "openPrice": open_price,
        "openPriceCapturedAt": _iso(start_s), "oracleVersion": 2, "shouldMarketMake": True,
    }
    settings = {"c": "3", "creatorFeePct": 0, "dailyReward": "500", "maxSpread": max_spread,
                "minSize": str(min_size), "rebateRate": "1", "rewardsEpoch": "0.3472222222222222",
                "takerDelayMs": 0}
    extra = {"automationType": "lumy", "stableSlug": f"{sym}-5min-price", "startAt": _iso(start_s),
             "priceOracleMetadata": oracle, "metadata": meta, "isRewardable": True}
    return CryptoShape(f"{sym}-up-or-down-5-min", f"{ticker} Up or Down - 5 Min",
                       int((start_s + UP_OR_DOWN_S) * 1000), ["Minutely", "5 min"],
                       ["Lumy", "Recurring", "Minutely", "Minutes 5"], extra, settings)
