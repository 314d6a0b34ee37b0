"""What one venue's discovery run reports (:class:`VenueDiscoveryReport`) and the errors that carry it.

The report is the whole outcome of :func:`collector.discovery.run.discover_venue`: counts for the
summary line, the Prefect artifact row and the per-venue event, or the error that left the
previous snapshot untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from collector.config.settings import Settings
from collector.model.errors import (
    CollectorError,
    ConfigError,
    SnapshotError,
    VenueError,
)
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot


class SuspectEmpty(CollectorError):
    """The venue answered with no open market although the previous snapshot had instruments."""

    retryable = True


class DiscoveryFailed(CollectorError):
    """Raised by callers that need an exception for ``ok=False`` (the Prefect task)."""

    def __init__(self, report: "VenueDiscoveryReport"):
        super().__init__(f"discovery of {report.venue} failed: {report.error}")
        self.report = report
        self.retryable = report.retryable


class AllVenuesFailed(CollectorError):
    """Every venue of a discovery run failed (the Prefect flow raises it to end Failed)."""

    def __init__(self, reports: Sequence["VenueDiscoveryReport"]):
        detail = "; ".join(f"{r.venue}: {r.error}" for r in reports) or "no venue ran"
        super().__init__(f"discovery failed for every venue: {detail}")
        self.reports = list(reports)


@dataclass
class VenueDiscoveryReport:
    venue: str
    ok: bool
    instruments: int = 0  # members after this run (the previous count when the run failed)
    added: int = 0
    removed: int = 0
    candidates: int = 0  # open instruments the venue listed
    selected: int = 0  # candidates a rule selects (before stickiness)
    markets: int = 0  # distinct market_id among members
    pages: int = 0
    page_retries: int = 0  # page requests tried again (429 / 5xx / timeout / bad body)
    duration_s: float = 0.0
    error: str | None = None  # "<ErrorClass>: <message>"
    error_type: str | None = None  # the error class name, e.g. "Timeout", "SuspectEmpty"
    retryable: bool = False  # a retry may help (transport-type failure)
    snapshot_written: bool = False
    market_records_file: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (from the client)
    paging_stops: dict[str, int] = field(default_factory=dict)  # passes ended on a guard (page bound, repeat)
    removed_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count
    kept_past_expiry: int = 0  # members kept past the expiry the previous snapshot recorded
    asof_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_row(self) -> dict[str, Any]:
        """One row of the run summary table (Prefect artifact ``discovery-summary``)."""
        return {
            "venue": self.venue,
            "ok": self.ok,
            "instruments": self.instruments,
            "added": self.added,
            "removed": self.removed,
            "candidates": self.candidates,
            "pages": self.pages,
            "duration_s": round(self.duration_s, 3),
            "snapshot_written": self.snapshot_written,
            "error": self.error or "",
        }

    def event_payload(self) -> dict[str, Any]:
        """Counts for the per-venue ``collector.discovery.completed|failed`` event."""
        p = self.summary_row()
        p.update(
            error_type=self.error_type,
            retryable=self.retryable,
            selected=self.selected,
            markets=self.markets,
            page_retries=self.page_retries,
            skipped=dict(self.skipped),
            paging_stops=dict(self.paging_stops),
            removed_reasons=dict(self.removed_reasons),
            asof_ms=self.asof_ms,
        )
        return p

    @classmethod
    def from_exception(
        cls,
        venue: str,
        exc: BaseException,
        duration_s: float = 0.0,
        settings: Settings | None = None,
    ) -> "VenueDiscoveryReport":
        """Report for a venue whose run ended in ``exc`` (e.g. a task timeout or a crash).

        With ``settings``, ``instruments`` is the count of the (kept) previous snapshot.
        """
        if isinstance(exc, DiscoveryFailed):
            return exc.report
        rep = cls(venue=venue, ok=False, duration_s=duration_s)
        rep.error_type = type(exc).__name__
        rep.error = f"{rep.error_type}: {exc}"
        rep.retryable = is_retryable(exc)
        if settings is not None:
            try:
                rep.instruments = len(read_snapshot(snapshot_path(settings.data_dir, venue)).instruments)
            except SnapshotError:
                pass
        return rep

    def summary_line(self) -> str:
        if self.ok:
            status = "ok"
            tail = "written" if self.snapshot_written else "unchanged"
        else:
            status = "FAILED"
            tail = f"snapshot untouched; {self.error}"
        return (
            f"discovery {self.venue}: {status} instruments={self.instruments} +{self.added} -{self.removed} "
            f"candidates={self.candidates} pages={self.pages}"
            + (f" page_retries={self.page_retries}" if self.page_retries else "")
            + (f" paging_stops={self.paging_stops}" if self.paging_stops else "")
            + f" {self.duration_s:.2f}s {tail}"
        )



def is_retryable(exc: BaseException) -> bool:
    """Whether another run may succeed where ``exc`` failed (transport-type failures)."""
    if isinstance(exc, ConfigError):
        return False
    if isinstance(exc, VenueError):
        return bool(exc.retryable)
    if isinstance(exc, SuspectEmpty):
        return True
    # Raw network errors a client failed to map to a VenueError.
    return isinstance(exc, (ConnectionError, TimeoutError))
