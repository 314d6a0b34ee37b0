"""Typed errors. Callers branch on the class, never on the message text."""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CollectorError):
    """Bad configuration. The message names the offending field(s)."""


class SnapshotError(CollectorError):
    """A snapshot file is missing, partial or not valid."""


class SchemaVersionError(CollectorError, ValueError):
    """A record written by a newer collector (a ``schema_version`` above the one this build reads):
    its fields may mean something else, so it is not read as if they did (docs/schema.md)."""


class VenueError(CollectorError):
    """A venue request failed. ``kind`` is a stable short label for telemetry."""

    kind = "venue_error"
    retryable = True

    def __init__(self, message: str = "", *, status: int | None = None, venue: str | None = None):
        super().__init__(message or self.kind)
        self.status = status
        self.venue = venue

    @property
    def message(self) -> str:
        return str(self)


class NotFound(VenueError):
    """No book / unknown instrument (e.g. Polymarket 404, a token left out of /books)."""

    kind = "not_found"


class RateLimited(VenueError):
    """HTTP 429. ``retry_after_s`` is the venue's Retry-After when it sent one."""

    kind = "rate_limited"

    def __init__(self, message: str = "", *, retry_after_s: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class ServerError(VenueError):
    """HTTP 5xx (or 425), or an HTML error page from a proxy."""

    kind = "server_error"


class ClientError(VenueError):
    """HTTP 4xx other than 404 / 429: our request was refused (bad id, AMM market, WAF block)."""

    kind = "client_error"
    retryable = False


class Timeout(VenueError):
    """No answer within the configured timeout."""

    kind = "timeout"


class TransportError(VenueError):
    """Connection refused / reset / DNS failure."""

    kind = "transport"


class BadPayload(VenueError):
    """The venue answered 200 but the body is not what the API documents."""

    kind = "bad_payload"


class WriteError(CollectorError):
    """A data file could not be written (disk full, read-only, permission denied)."""
