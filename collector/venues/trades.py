"""What a venue's public trades endpoint hands the trade recorder (collector.trades), venue-neutral.

A venue with a trades endpoint exposes ``trades_source(settings)`` on its client, returning a
:class:`TradesSource`. Its ``fetch`` runs on the recorder's trades thread, pages the endpoint
newest first back to ``since_ms`` and says how far back the answer is complete, so the recorder
knows whether a span it missed was filled (``covered_from_ms <= since_ms``) or stays a gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.model.decimals import dec_text
from collector.model.errors import VenueError
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord


@dataclass(slots=True)
class TradeFetch:
    trades: list[TradeRecord]
    # Every trade at or after this venue time was on the pages read (None: nothing is known,
    # e.g. the first page failed). <= since_ms when the fetch reached what it was asked for.
    covered_from_ms: int | None
    pages: int = 0
    bad: dict[str, int] = field(default_factory=dict)  # why -> items skipped (missing fields, junk)
    error: VenueError | None = None  # the request that ended the fetch early

    def skip(self, why: str) -> None:
        self.bad[why] = self.bad.get(why, 0) + 1


class TradesSource(Protocol):
    """``per_market``: one tape per market (``scope_of`` = its market id) or one venue-wide tape
    (scope ""). ``fetch`` gets the scope's tracked instruments keyed by poll key."""

    per_market: bool

    def scope_of(self, inst: Instrument) -> str: ...

    def fetch(self, scope: str, insts: Mapping[str, Instrument], since_ms: int) -> TradeFetch: ...


def page_back(fetch: TradeFetch, page: list[Any], parse: Any, since_ms: int) -> bool:
    """Add one newest-first page's trades (``parse(item) -> TradeRecord | str | None``: a record,
    a skip reason, or None for an item that is not ours) and say whether paging may go on (nothing
    older than ``since_ms`` seen yet). Keeps ``covered_from_ms`` at the oldest time read."""
    fetch.pages += 1
    oldest = fetch.covered_from_ms
    more = True
    for item in page:
        got = parse(item)
        if isinstance(got, str):
            fetch.skip(got)
            continue
        if got is None:
            continue
        t = got.ob_ts_ms
        if t is not None:
            oldest = t if oldest is None else min(oldest, t)
            if t < since_ms:
                more = False
                continue  # older than asked: already recorded (or outside the window)
        fetch.trades.append(got)
    fetch.covered_from_ms = oldest
    return more


def dec(value: Any) -> str | None:
    """Canonical decimal text of a venue number (str, int or float), None when absent or junk:
    the same trade reaches us as ``"0.585"`` on a feed and ``0.585`` on a REST tape."""
    if value is None or value == "" or type(value) is bool:
        return None
    try:
        return dec_text(value)
    except ValueError:
        return None
