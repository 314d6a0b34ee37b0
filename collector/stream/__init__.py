"""Stream capture: the venues' WebSocket feeds, recorded into ``book_changes`` and reconciled
against the REST poller. Connection threads only receive; books, records and writes stay on the
poller's loop thread (collector.stream.lane). One feed module per venue (``polymarket``,
``limitless``, ``kalshi``) says what its messages mean."""

from __future__ import annotations

import importlib
from typing import Any

from collector.config.settings import Settings
from collector.stream.lane import StreamLane

__all__ = ["StreamLane", "make_stream"]

_FEEDS = {"polymarket": "PolymarketFeed", "limitless": "LimitlessFeed", "kalshi": "KalshiFeed"}


def make_stream(name: str, settings: Settings, rest: Any, writers: Any, out: Any) -> StreamLane | None:
    """The venue's stream lane, or None when it has no feed or its feed is switched off."""
    ss = settings.streams.venue(name)
    if ss is None or not ss.enabled or name not in _FEEDS:
        return None
    feed = getattr(importlib.import_module(f"collector.stream.{name}"), _FEEDS[name])(ss)
    if hasattr(feed, "configure"):  # a feed that needs more than its stream settings (Kalshi's key)
        feed.configure(settings)
    return StreamLane(name, ss, feed, rest, writers, out)
