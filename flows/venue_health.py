"""Venue degradation events for the poller flow: ``collector.poller.venue.degraded``.

Prefect OSS triggers match event names and resource labels, not payload values, so "a venue in
cooldown for more than N minutes" or "coverage below X" cannot be expressed on the per-venue
heartbeat events alone. The poller flow therefore watches its own heartbeat summaries and emits a
dedicated event when a condition has held long enough; the reactive automation
``collector-venue-degraded`` (flows/stack/automations.py) alerts on it.

Conditions, checked at every heartbeat (``poller.heartbeat_interval_s``, 30 s by default):

- ``cooldown``: ``cooldown_remaining_s > 0`` at every heartbeat for at least ``cooldown_alert_s``;
- ``coverage``: ``1 - stale_instruments / active_instruments`` below ``min_coverage`` at every
  heartbeat for at least ``coverage_grace_s`` (a fresh start has no book yet, hence the grace).

While a condition lasts, the event repeats every ``repeat_s``; when it clears,
``collector.poller.venue.recovered`` is emitted once. Resource: ``collector.poller.<venue>``; a
shard other than ``0/1`` (the summary's ``shard``) is named in the payload and the message, since
each shard judges only its own slice of the venue.

Hook (flows/poller.py)::

    p = Poller(settings, on_heartbeat=with_venue_alerts(functools.partial(_emit_heartbeat, shard), settings))

Thresholds are the ``prefect.venue_*`` settings (defaults declared once, in collector/config/settings.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.config.settings import PrefectSettings

DEGRADED = "collector.poller.venue.degraded"
RECOVERED = "collector.poller.venue.recovered"

log = logging.getLogger(__name__)


def _prefect_emit(**kw: Any) -> Any:
    from prefect.events import emit_event

    return emit_event(**kw)


def coverage(v: dict[str, Any]) -> float | None:
    n = v.get("active_instruments") or 0
    return 1 - (v.get("stale_instruments") or 0) / n if n else None


_DEFAULTS = PrefectSettings()  # thresholds are declared once, in collector/config/settings.py


@dataclass
class VenueHealth:
    cooldown_alert_s: float = _DEFAULTS.venue_cooldown_alert_s
    min_coverage: float = _DEFAULTS.venue_min_coverage
    coverage_grace_s: float = _DEFAULTS.venue_coverage_grace_s
    repeat_s: float = _DEFAULTS.venue_repeat_s
    emit: Callable[..., Any] = _prefect_emit
    clock: Callable[[], float] = time.monotonic
    _since: dict[tuple[str, str], float] = field(default_factory=dict)
    _last: dict[tuple[str, str], float] = field(default_factory=dict)

    def observe(self, summary: dict[str, Any]) -> None:
        """One heartbeat summary (``{"venues": [stats...], "ts_ms": ...}``); never raises."""
        now = self.clock()
        shard = summary.get("shard") or "0/1"
        for v in summary.get("venues", []):
            try:
                self._check(v, now, shard)
            except Exception as e:  # alerts must never stop collection
                log.warning("venue health check for %s failed: %s", v.get("venue"), e)

    def _check(self, v: dict[str, Any], now: float, shard: str = "0/1") -> None:
        cov = coverage(v)
        cooldown_s = v.get("cooldown_remaining_s") or 0
        conditions = {
            "cooldown": (cooldown_s > 0, self.cooldown_alert_s,
                         f"in cooldown ({v.get('cooldown_reason') or 'unknown reason'})"),
            "coverage": (cov is not None and cov < self.min_coverage, self.coverage_grace_s,
                         f"coverage {cov if cov is None else round(cov, 3)} below {self.min_coverage}"),
        }
        for reason, (bad, after_s, what) in conditions.items():
            key = (v["venue"], reason)
            who = v["venue"] if shard == "0/1" else f"{v['venue']} (shard {shard})"
            if not bad:
                self._since.pop(key, None)
                if self._last.pop(key, None) is not None:
                    self._send(RECOVERED, v, reason, 0.0, cov, f"{who}: {reason} recovered", shard)
                continue
            since = self._since.setdefault(key, now)
            held = now - since
            last = self._last.get(key)
            if held >= after_s and (last is None or now - last >= self.repeat_s):
                self._last[key] = now
                self._send(DEGRADED, v, reason, held, cov, f"{who}: {what} for {held:.0f} s", shard)

    def _send(self, event: str, v: dict[str, Any], reason: str, held: float, cov: float | None, msg: str,
              shard: str = "0/1") -> None:
        venue = v["venue"]
        self.emit(
            event=event,
            resource={"prefect.resource.id": f"collector.poller.{venue}", "collector.venue": venue,
                      "collector.shard": shard},
            payload={
                "venue": venue, "shard": shard, "reason": reason, "for_s": round(held, 1), "message": msg,
                "cooldown_remaining_s": v.get("cooldown_remaining_s"), "cooldown_reason": v.get("cooldown_reason"),
                "coverage": None if cov is None else round(cov, 4), "min_coverage": self.min_coverage,
                "active_instruments": v.get("active_instruments"), "stale_instruments": v.get("stale_instruments"),
            },
        )


def from_settings(settings: Any) -> VenueHealth:
    p = getattr(settings, "prefect", None) or _DEFAULTS
    return VenueHealth(cooldown_alert_s=p.venue_cooldown_alert_s, min_coverage=p.venue_min_coverage,
                       coverage_grace_s=p.venue_coverage_grace_s, repeat_s=p.venue_repeat_s)


def with_venue_alerts(on_heartbeat: Callable[[dict[str, Any]], None], settings: Any = None,
                      health: VenueHealth | None = None) -> Callable[[dict[str, Any]], None]:
    """Wrap the poller's heartbeat callback so every summary is also checked for degradation."""
    h = health or from_settings(settings)

    def callback(summary: dict[str, Any]) -> None:
        try:
            on_heartbeat(summary)
        finally:
            h.observe(summary)

    callback.health = h  # type: ignore[attr-defined]
    return callback
