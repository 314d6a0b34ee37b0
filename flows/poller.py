"""Prefect wrapper for the long-lived poller: one flow run, no task per poll.

Cancellation and SIGTERM arrive as Prefect's TerminationSignal in the loop thread; the core
closes every file in its ``finally`` before the exception propagates, well inside the 30 s grace.
We do not install our own SIGTERM handler (it would turn a cancel into a crash).
"""

from __future__ import annotations

import functools
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.exceptions import TerminationSignal

from collector.config.settings import PollerSettings, load_settings
from collector.poller.loop import Poller
from flows.stack.automations import POLLER_HEARTBEAT, heartbeat_resource
from flows.venue_health import with_venue_alerts


def _emit_heartbeat(shard: str, summary: dict[str, Any]) -> None:
    # One resource per shard: the heartbeat-missing alert of each shard watches its own.
    venues = summary["venues"]
    emit_event(
        event=POLLER_HEARTBEAT,
        resource={"prefect.resource.id": heartbeat_resource(shard), "collector.shard": shard},
        payload={"ts_ms": summary["ts_ms"], "shard": shard, "venues": {v["venue"]: _brief(v) for v in venues}},
    )
    for v in venues:
        emit_event(
            event="collector.poller.venue.heartbeat",
            resource={"prefect.resource.id": f"collector.poller.{v['venue']}", "collector.venue": v["venue"],
                      "collector.shard": shard},
            payload={**_brief(v), "shard": shard},
        )


def _brief(v: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "active_instruments", "books_written", "failed", "http_429", "cooldown_remaining_s",
        "cooldown_reason", "book_age_p50_s", "book_age_p99_s", "stale_instruments",
        "achieved_interval_p50_s", "inflight_cap",
    )
    out = {k: v.get(k) for k in keys}
    n = v.get("active_instruments") or 0
    out["coverage"] = round(1 - (v.get("stale_instruments") or 0) / n, 4) if n else None
    return out


@flow(name="poller", log_prints=True)
def poller(venues: list[str] | None = None, shard: str = "0/1", duration_s: float | None = None) -> None:
    """Poll every active book until cancelled (or for ``duration_s`` seconds)."""
    logger = get_run_logger()
    settings = load_settings(**({"venues": venues} if venues else {}))
    settings.poller = PollerSettings.model_validate({**settings.poller.model_dump(), "shard": shard})
    p = Poller(settings, on_heartbeat=with_venue_alerts(functools.partial(_emit_heartbeat, shard), settings))
    logger.info("polling %s (shard %s) into %s", ", ".join(p.lanes), shard, settings.data_dir)
    try:
        p.run(duration_s=duration_s)
    except TerminationSignal:
        logger.info("termination requested: files flushed and closed")
        raise
