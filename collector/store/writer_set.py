"""One lazily created :class:`~collector.store.writer.StreamWriter` per ``(venue, stream)``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from collector.config.settings import WriterSettings
from collector.store.writer import DEFAULT_BUFFER_BYTES, StreamWriter, WriterStats

__all__ = ["WriterSet"]


class WriterSet:
    """One lazily created :class:`StreamWriter` per ``(venue, stream)``, sharing settings."""

    def __init__(
        self,
        data_dir: Path,
        settings: WriterSettings | None = None,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        background_sync: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.background_sync = background_sync
        self.settings = settings or WriterSettings()
        self._clock = clock
        self._mono = mono
        self._buffer_bytes = buffer_bytes
        self._writers: dict[tuple[str, str], StreamWriter] = {}
        self._closed = False

    def get(self, venue: str, stream: str) -> StreamWriter:
        """The writer of ``(venue, stream)``, created on first use (closed if the set is closed)."""
        w = self._writers.get((venue, stream))
        if w is None:
            s = self.settings
            w = StreamWriter(
                self.data_dir,
                venue,
                stream,
                rotate_minutes=s.rotate_minutes,
                fsync_interval_s=s.fsync_interval_s,
                compress_closed=s.compress_closed,
                clock=self._clock,
                mono=self._mono,
                buffer_bytes=self._buffer_bytes,
                background_sync=self.background_sync,
            )
            if self._closed:
                w.close()
            self._writers[(venue, stream)] = w
        return w

    def write(self, venue: str, stream: str, line: bytes) -> bool:
        return self.get(venue, stream).write(line)

    def tick(self) -> None:
        for w in list(self._writers.values()):
            w.tick()

    def flush(self, fsync: bool = True) -> None:
        for w in list(self._writers.values()):
            w.flush(fsync)

    def close(self) -> None:
        self._closed = True
        for w in list(self._writers.values()):
            w.close()

    def stats(self) -> dict[tuple[str, str], WriterStats]:
        """``{(venue, stream): stats}`` of every writer created so far."""
        return {k: w.stats for k, w in self._writers.items()}

    def __iter__(self) -> Iterator[StreamWriter]:
        return iter(list(self._writers.values()))

    def __len__(self) -> int:
        return len(self._writers)

    def __enter__(self) -> WriterSet:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
