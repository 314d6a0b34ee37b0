"""A lane's counters: typed fields, so a misspelt counter is an AttributeError, not a silent 0.

One :class:`LaneCounters` counts since the last poll_stats record, another since start (the lane
adds the first into the second at each stats record). Loop thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["LaneCounters"]


@dataclass(slots=True)
class LaneCounters:
    requests: int = 0  # fetch_books calls handed to the pool
    requests_ok: int = 0
    requests_failed: int = 0
    polls_submitted: int = 0  # poll keys in those calls
    polls_ok: int = 0
    polls_failed: int = 0
    books_written: int = 0  # polls recorded, full or unchanged (the BookLog counts, copied at stats time)
    books_changed: int = 0
    books_unchanged: int = 0
    gaps: int = 0
    http_4xx: int = 0  # 429 is counted apart, in http_429
    http_5xx: int = 0
    http_429: int = 0
    timeouts: int = 0
    held_back: int = 0  # jobs a fetch thread did not send because the venue was held
    expired_dropped: int = 0
    hash_mismatch: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # VenueError kind -> failed polls

    def error(self, kind: str) -> None:
        """Count one failed poll of error kind ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def add(self, other: LaneCounters) -> None:
        """Add ``other``'s counts into these."""
        for name in _INT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        errors = self.errors
        for kind, n in other.errors.items():
            errors[kind] = errors.get(kind, 0) + n


_INT_FIELDS = tuple(f.name for f in fields(LaneCounters) if f.name != "errors")
