"""The one small protocol every venue client implements, and the results it hands back.

A venue is one module ``collector/venues/<name>.py`` exposing ``CLIENT``; the poller and discovery
only ever see this protocol. Shared HTTP plumbing lives in collector.venues.http, shared number
guards in collector.venues.numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from collector.model.errors import VenueError
from collector.model.records import BookRecord, Instrument

if TYPE_CHECKING:  # typing only: pacing is the poller's concern, not the protocol's
    from collector.venues.shared_spacing import SharedSpacing


@dataclass(slots=True)
class FetchResult:
    """Outcome of one book request (one HTTP call, one or many poll keys)."""

    books: dict[str, Any]  # poll_key -> raw book payload (parsed JSON, or a PolledBook)
    errors: dict[str, VenueError]  # poll_key -> per-key failure (e.g. left out of a batch)
    ts_ms: int  # capture time: wall clock when the answer arrived
    latency_ms: float  # request round trip


class PolledBook(msgspec.Struct, gc=False):  # one per polled book: built in C, never scanned by the GC
    """A raw book plus what the fetch thread learnt of it, for venues that can (optional).

    ``content`` compares equal for two polls of one instrument only when both normalize to the
    same book (e.g. the venue's level bytes): the lane then records the poll as ``unchanged``
    without normalizing it. ``ob_ts_ms``, ``hash`` and ``hash_ok`` are the record's per-poll
    fields (``hash_ok``: the venue hash verdict, None = not checked).
    """

    body: Any  # what normalize() takes
    content: object
    ob_ts_ms: int | None
    hash: str | None
    hash_ok: bool | None


@dataclass(slots=True)
class DiscoveryResult:
    """Outcome of one discovery pass: the open candidates and how the paging went."""

    instruments: list[Instrument]
    pages: int = 0
    retries: int = 0  # page requests tried again after a 429 / 5xx / timeout / bad payload
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count of markets left out
    # Paging passes that ended on a guard instead of the list's own end ("page_bound",
    # "repeated_page", "repeated_cursor"): the universe may be incomplete, so it is counted.
    paging_stops: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def paging_stop(self, reason: str) -> None:
        self.paging_stops[reason] = self.paging_stops.get(reason, 0) + 1


class VenueClient(Protocol):
    """Discover instruments, fetch raw books, normalize a raw book into a record.

    ``fetch_books`` runs on worker threads; it raises a VenueError when the whole request
    failed and reports per-key failures in ``FetchResult.errors``. ``normalize`` runs on the
    poller's single loop thread and raises BadPayload for a book it cannot trust.

    Two attributes shape how the poller's lane drives the client (it reads both with a default,
    so a minimal test double may leave them out):

    * ``batch_size``: poll keys per ``fetch_books`` call; 1 when the venue has no batch endpoint
      (the lane then sends one key per call and does not linger to fill batches).
    * ``shared_spacing``: the venue's request spacing shared with other processes on the same
      data directory (collector.venues.pacing.SharedSpacing), or None. The venue spaces requests
      per caller, not per process, so the lane books its sends through it when it is set.
    """

    name: ClassVar[str]
    batch_size: int  # poll keys per fetch_books call (1 when the venue has no batch endpoint)
    # The venue's request spacing shared with other processes on the data directory, or None.
    # The poller's rate budget and send gate consult it, so its holds pause the poller too.
    shared_spacing: SharedSpacing | None

    def discover(self) -> DiscoveryResult: ...

    def fetch_books(self, poll_keys: Sequence[str]) -> FetchResult: ...

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord: ...

    def close(self) -> None: ...
