"""The rotating writer: append-only JSONL of one ``(venue, stream)``, periodic fsync, no I/O exceptions.

Files and names follow :mod:`collector.store.layout` (one file per rotation period, named by
``rotated_name``), created with ``O_EXCL``: a name is never reused by a restarted or second process.

Durability: records are appended to an in-memory buffer (no per-record flush) that is
written to the OS when it is full, on every :meth:`StreamWriter.tick`, on rotation and on
close; the file is fsync'ed every ``fsync_interval_s`` (monotonic), on rotation and on
close. Only whole lines are ever handed to the OS, so a crash can tear at most the last
line of a file; :func:`collector.store.files.iter_jsonl_lines` skips such a torn line.

Errors: an ``OSError`` (ENOSPC, EROFS, EACCES, EIO...) never propagates out of a writer: it
is recorded in :class:`WriterStats`, the records it cost in ``records_dropped``, the broken file
is closed (cut back to its last complete line, or removed when empty), a warning is logged at
most once a minute. While failing, :meth:`StreamWriter.write` drops records at once
and returns ``False``; at most every :data:`RETRY_INTERVAL_S` the next ``write()`` tries
again with a *new* file (never appending to a file that may end with a partial line).

Not thread-safe: a writer belongs to the poller's single loop thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from collector.model.errors import WriteError
from collector.store import layout
from collector.store.compress import compress_file
from collector.store.durable import describe_os_error, fsync_dir_best_effort
from collector.store.syncer import SyncSlot
from collector.store.writer_stats import WriterStats

__all__ = ["DEFAULT_BUFFER_BYTES", "RETRY_INTERVAL_S", "StreamWriter", "WriterStats"]

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 1.0  # least time between two attempts to open a new file after an error
LOG_INTERVAL_S = 60.0  # least time between two warnings of one failing writer
DEFAULT_BUFFER_BYTES = 1 << 17  # the buffer is handed to the OS when it reaches this size

_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_NAME_TRIES = 20


def _token() -> str:
    return secrets.token_hex(3)


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{what} must match [A-Za-z0-9_-]+, got {value!r}")


class StreamWriter:
    """Appends JSONL records of one ``(venue, stream)`` to rotating files.

    ``clock`` (epoch seconds) decides periods and names; ``mono`` (monotonic seconds) paces
    fsyncs and error retries. Both are injectable for tests.
    """

    def __init__(
        self,
        data_dir: Path,
        venue: str,
        stream: str,
        *,
        rotate_minutes: int = 10,
        fsync_interval_s: float = 1.0,
        compress_closed: bool = False,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        background_sync: bool = False,
    ) -> None:
        _check_name("venue", venue)
        _check_name("stream", stream)
        if not 1 <= rotate_minutes <= 1440:
            raise ValueError("rotate_minutes must be within 1..1440")
        if not fsync_interval_s > 0:
            raise ValueError("fsync_interval_s must be > 0")
        self.data_dir = Path(data_dir)
        self.venue = venue
        self.stream = stream
        self.rotate_minutes = rotate_minutes
        self.fsync_interval_s = fsync_interval_s
        self.compress_closed = compress_closed
        self.stats = WriterStats()
        self._clock = clock
        self._mono = mono
        self._buf_limit = max(1, buffer_bytes)
        self._buf = bytearray()
        self._pending = 0  # records in _buf
        self._fd: int | None = None
        self._path: Path | None = None
        self._pstart = 0  # period of the open file: [_pstart, _pend)
        self._pend = 0
        self._size = 0  # bytes in the open file (all complete lines)
        self._unsynced = False
        self._last_sync = 0.0
        # Periodic fsyncs on a background thread (collector.store.syncer); closes stay synchronous.
        self._bg = SyncSlot(self.stats) if background_sync else None
        self._retry_at: float | None = None  # set while failing: earliest next attempt
        self._probe = False  # after an error: hand the first record to the OS at once
        self._closed = False
        self._warned_closed = False
        self._last_log = -math.inf
        self._episode_dropped = 0  # records_dropped when the current failure began

    # ---------------------------------------------------------------- public API

    @property
    def path(self) -> Path | None:
        """The file currently open, or ``None`` (nothing written yet in this period, or failing)."""
        return self._path

    def write(self, line: bytes) -> bool:
        """Append ``line + b"\\n"`` (``line`` is one serialized record without newline).

        Returns ``False`` (and counts a dropped record) when the record could not be
        accepted: the file system refused, the writer is waiting to retry after an error,
        or it is closed. ``True`` means buffered; a later I/O error can still drop it (it is
        then counted in ``records_dropped``). Never raises ``OSError``.
        """
        now = self._clock()
        if self._fd is None or not (self._pstart <= now < self._pend):
            if not self._prepare(now):
                self.stats.records_dropped += 1
                return False
        return self._append(line)

    @property
    def serial(self) -> int:
        """Number of the open file (files opened so far), -1 when none is open."""
        return self.stats.files_opened if self._fd is not None else -1

    def write_in(self, line: bytes, serial: int) -> bool | None:
        """:meth:`write` ``line`` only into the file numbered ``serial``; ``None`` (nothing written)
        when a write would go elsewhere now (rotated, failed, closed). For records that refer to
        an earlier one of the same file (``unchanged`` stands for the file's last full book)."""
        if self._fd is None or self.stats.files_opened != serial or not (self._pstart <= self._clock() < self._pend):
            return None
        return self._append(line)

    def _append(self, line: bytes) -> bool:
        buf = self._buf
        buf += line
        buf += b"\n"
        self._pending += 1
        if len(buf) >= self._buf_limit or self._probe:
            return self._drain()
        return True

    def tick(self) -> None:
        """Housekeeping, to call at least once a second.

        Closes (flush + fsync, then compress when enabled) the file whose period has ended,
        even when no data arrives; fsyncs when ``fsync_interval_s`` has passed since the last
        sync; otherwise hands buffered records to the OS. After an error the next
        ``write()`` (at most every :data:`RETRY_INTERVAL_S`) opens a new file.
        """
        if self._fd is None:
            return
        if self._bg is not None and (err := self._bg.take_error()) is not None:
            self._fail("fsync", err, self._path)
            return
        now = self._clock()
        if not (self._pstart <= now < self._pend):
            self._rotate()
        elif self._mono() - self._last_sync >= self.fsync_interval_s:
            self.flush(fsync=self._bg is None)
            if self._bg is not None and self._fd is not None and self._unsynced:
                try:
                    started = self._bg.start(self._fd)
                except OSError:  # could not hand it over (no descriptor left): sync here
                    started = self._sync()
                if started:
                    self._unsynced = False
                    self._last_sync = self._mono()
        elif self._buf:
            self._drain()

    def flush(self, fsync: bool = True) -> None:
        """Hand buffered records to the OS, then fsync if ``fsync`` and anything is unsynced."""
        if self._fd is None:
            return
        if self._drain() and fsync and self._unsynced:
            self._sync()

    def close(self) -> None:
        """Flush, fsync and close the open file. Idempotent; later writes return ``False``.

        The last file is not compressed (a later job or process can do it).
        """
        if self._closed:
            return
        if self._fd is not None:
            self._close_file()
        self._closed = True

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StreamWriter({self.venue}/{self.stream}, path={self._path})"

    # ---------------------------------------------------------------- internals

    def _prepare(self, now: float) -> bool:
        """Slow path of write(): rotate and/or open a file. False: drop the record."""
        if self._closed:
            if not self._warned_closed:
                self._warned_closed = True
                log.warning("writer %s/%s: write after close; records are dropped", self.venue, self.stream)
            return False
        if self._fd is not None:  # the period has changed
            self._rotate()
        if self._retry_at is not None and self._mono() < self._retry_at:
            return False
        return self._open(now)

    def _open(self, now: float) -> bool:
        start, end = layout.period_bounds(now, self.rotate_minutes)
        d = layout.partition_dir(self.data_dir, self.venue, self.stream, layout.utc_day(start * 1000))
        try:
            new_dir = not d.is_dir()
            if new_dir:
                os.makedirs(d, exist_ok=True)
            for _ in range(_NAME_TRIES):
                p = d / layout.rotated_name(self.stream, start, now, os.getpid(), _token())
                try:
                    fd = os.open(p, _OPEN_FLAGS, 0o644)
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(errno.EEXIST, "no unused file name found", str(d))
        except OSError as e:
            self._fail("open", e, d)
            return False
        self._fd, self._path = fd, p
        self._pstart, self._pend = start, end
        self._size = 0
        self._unsynced = False
        self._last_sync = self._mono()
        self._retry_at = None
        self.stats.files_opened += 1
        fsync_dir_best_effort(d)
        if new_dir:
            fsync_dir_best_effort(d.parent)
        return True

    def _drain(self) -> bool:
        """Write the whole buffer to the open file. False on error (buffer dropped, file closed)."""
        buf = self._buf
        n = len(buf)
        if not n:
            return True
        st = self.stats
        off = 0
        try:
            off = os.write(self._fd, buf)  # type: ignore[arg-type]
            while off < n:  # partial write (rare): copy the rest, never export the buffer
                w = os.write(self._fd, buf[off:])  # type: ignore[arg-type]
                if w <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                off += w
        except OSError as e:
            good = buf.rfind(b"\n", 0, off) + 1  # bytes of the complete records that made it
            ok = buf.count(b"\n", 0, good)
            self._size += good
            st.records_written += ok
            st.bytes_written += good
            self._fail("write", e, self._path, lost=self._pending - ok, cut=off != good)
            return False
        self._size += n
        st.records_written += self._pending
        st.bytes_written += n
        self._pending = 0
        buf.clear()
        self._unsynced = True
        if self._probe:
            self._probe = False
            if st.failing:
                st.failing = False
                log.warning(
                    "writer %s/%s: recovered, writing to %s (%d records dropped during the failure)",
                    self.venue,
                    self.stream,
                    self._path,
                    st.records_dropped - self._episode_dropped,
                )
        return True

    def _sync(self) -> bool:
        t0 = time.perf_counter()
        try:
            os.fsync(self._fd)  # type: ignore[arg-type]
        except OSError as e:
            self._fail("fsync", e, self._path)
            return False
        st = self.stats
        st.fsyncs += 1
        st.fsync_seconds_total += time.perf_counter() - t0
        self._unsynced = False
        self._last_sync = self._mono()
        return True

    def _close_file(self) -> bool:
        """Flush, fsync and close the open file. False on error (already handled)."""
        if not self._drain():
            return False
        if self._unsynced and not self._sync():
            return False
        fd, path = self._fd, self._path
        self._fd = self._path = None
        try:
            os.close(fd)  # type: ignore[arg-type]
        except OSError as e:  # e.g. EIO on a network file system; the fd is released anyway
            self._fail("close", e, path)
            return False
        return True

    def _rotate(self) -> None:
        old = self._path
        if not self._close_file():
            return
        self.stats.rotations += 1
        if self.compress_closed and old is not None:
            try:
                compress_file(old)
            except WriteError as e:
                self.stats.last_error = str(e)
                self.stats.error_count += 1
                log.warning("writer %s/%s: %s; the file is kept uncompressed", self.venue, self.stream, e)

    def _fail(self, op: str, exc: OSError, where: object, *, lost: int = 0, cut: bool = False) -> None:
        """Record an I/O error, drop the buffer, abandon the file and schedule a retry."""
        st = self.stats
        msg = describe_os_error(exc, op, where)
        entering = not st.failing
        if entering:
            self._episode_dropped = st.records_dropped
        st.last_error = msg
        st.error_count += 1
        st.records_dropped += lost
        st.failing = True
        if self._fd is not None:
            self._abandon(cut)
        self._buf.clear()
        self._pending = 0
        now = self._mono()
        self._retry_at = now + RETRY_INTERVAL_S
        self._probe = True
        if entering or now - self._last_log >= LOG_INTERVAL_S:
            self._last_log = now
            log.warning(
                "writer %s/%s: %s; %d records dropped so far in this failure, %d errors in total; "
                "retrying with a new file at most every %.0f s",
                self.venue,
                self.stream,
                msg,
                st.records_dropped - self._episode_dropped,
                st.error_count,
                RETRY_INTERVAL_S,
            )

    def _abandon(self, cut: bool) -> None:
        """Close a broken file, best effort, keeping only its complete lines."""
        fd, path = self._fd, self._path
        self._fd = self._path = None
        assert fd is not None and path is not None
        if cut:  # a partial record reached the file: cut it off so the file ends with b"\n"
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
        with contextlib.suppress(OSError):
            os.close(fd)
        if self._size == 0:  # nothing valid in it: do not leave an empty file behind
            with contextlib.suppress(OSError):
                os.unlink(path)
