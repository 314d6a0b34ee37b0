"""Trade capture: every trade the venues publish, into each venue's ``trades`` stream.

Trades come from the venue feeds (collector.stream hands them over) and from the venues' public
trades endpoints (collector.venues.<venue>_trades): a paced poll where the feed has none, and a
backfill of every span the recorder could not see. All state and writes stay on the poller's loop
thread (collector.trades.lane); one thread per venue only runs the HTTP fetches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.config.settings import Settings
from collector.trades.lane import TradesLane

__all__ = ["TradesLane", "make_trades"]


def make_trades(name: str, settings: Settings, client: Any, writers: Any, out: Any, shard_slug: str,
                feed: bool = False) -> TradesLane | None:
    """The venue's trade capture, or None when it is switched off (``shard_slug`` names its state file)."""
    ts = settings.trades.venue(name)
    if ts is None or not ts.enabled:
        return None
    make = getattr(client, "trades_source", None)
    source = make(ts) if make is not None else None
    # A mark saved just before a crash may be ahead of what reached the disk by up to the fsync
    # interval plus one state save: read back that much more.
    safety = settings.writer.fsync_interval_s + 5.0
    return TradesLane(name, ts, source, writers, out, Path(settings.data_dir), shard_slug, safety, feed)
