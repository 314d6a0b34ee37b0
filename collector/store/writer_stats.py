"""The counters of one StreamWriter (collector.store.writer), cumulative since it was created."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class WriterStats:
    records_written: int = 0  # records handed to the OS (in a file; fsync'ed at the next sync)
    bytes_written: int = 0  # bytes handed to the OS, newlines included
    records_dropped: int = 0  # refused by write() or lost from the buffer by an I/O error
    files_opened: int = 0
    rotations: int = 0  # files closed because their period ended
    fsyncs: int = 0
    fsync_seconds_total: float = 0.0
    last_error: str | None = None  # e.g. "OSError ENOSPC: No space left on device (write /...)"
    error_count: int = 0
    failing: bool = False  # the last I/O attempt failed; cleared by the next successful write

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
