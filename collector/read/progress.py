"""What a read reports: a progress bar on stderr and :class:`ReadStats` counters."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Progress", "ReadStats"]


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (or ``force``)."""

    def __init__(self, total: int, label: str = "reading", *, force: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = max(1, total)
        self.done = 0
        self.label = label
        self._last = 0.0
        self._t0 = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._last >= 0.1:
            self._draw()

    def _draw(self) -> None:
        self._last = time.monotonic()
        frac = min(1.0, self.done / self.total)
        bar = "#" * int(frac * 30)
        el = self._last - self._t0
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB {el:5.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class ReadStats:
    """What a read did (pass one to the iterators to have it filled)."""

    files: int = 0
    bytes: int = 0  # on-disk bytes of the files finished
    lines: int = 0  # complete lines seen (JSONL)
    records: int = 0  # records yielded
    bad_lines: int = 0  # complete lines that are not a JSON object (skipped)
    parquet_rows: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # files per kind
