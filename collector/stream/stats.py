"""A stream lane's counters for one poll_stats period, and the poll_stats ``stream`` object they
become (documented in docs/schema.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StreamCounters:
    messages: int = 0  # venue messages received (an initial dump counts once)
    change_records: int = 0  # book_change records written
    changes: int = 0  # level changes in them
    snapshots: int = 0  # book_snapshot records written
    trades: int = 0  # last_trade records written
    gaps: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    resyncs: int = 0
    resync_retries: int = 0
    resubscribes: int = 0
    hash_failed: int = 0  # changes whose venue hash did not reproduce on our book
    rest_samples: int = 0  # REST books compared with the stream's book
    rest_agreed: int = 0
    stale_skipped: int = 0  # changes already contained in a swapped-in REST book
    unknown: int = 0  # messages for instruments we do not follow
    notices: dict[str, int] = field(default_factory=dict)  # venue announcements (new_market, market_resolved)
    mismatches: dict[str, int] = field(default_factory=dict)  # why a book was resynced
    errors: dict[str, int] = field(default_factory=dict)  # messages we could not use, by kind

    def mismatch(self, reason: str) -> None:
        self.mismatches[reason] = self.mismatches.get(reason, 0) + 1

    def notice(self, kind: str) -> None:
        self.notices[kind] = self.notices.get(kind, 0) + 1

    def bad(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def fields(self, period_s: float, **gauges: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict(gauges)
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = dict(v) if isinstance(v, dict) else v
        out["messages_per_s"] = round(self.messages / period_s, 3) if period_s > 0 else None
        return out
