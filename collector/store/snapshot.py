"""Per-venue active-set snapshot: the file discovery writes and the poller reads.

The file (:func:`collector.store.layout.snapshot_path`) holds the full metadata of every
instrument the poller must poll, when the set was computed (``asof_ms``), the rules used and a
few counts. It is written atomically (:func:`collector.store.durable.atomic_write`), so a reader
sees either the old or the new file, never a partial one, even when the writer is killed
mid-write. Temp files left by a killed writer are removed by the next write.

Readers: :func:`read_snapshot` raises :class:`~collector.model.errors.SnapshotError` for anything it
cannot trust; :class:`SnapshotWatcher` is the poller's non-fatal hot-reload helper.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.model.errors import SnapshotError
from collector.model.records import Instrument
from collector.store.durable import atomic_write

log = logging.getLogger(__name__)

SNAPSHOT_SCHEMA_VERSION = 1


class Snapshot(BaseModel):
    """The active set of one venue. Unknown top-level keys are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SNAPSHOT_SCHEMA_VERSION
    venue: str
    asof_ms: int  # when discovery computed this set (epoch ms UTC)
    rules: list[dict[str, Any]] = Field(default_factory=list)  # the venue rules, as dumped
    counts: dict[str, int] = Field(default_factory=dict)  # e.g. instruments, markets, candidates
    instruments: list[Instrument] = Field(default_factory=list)

    def instrument_ids(self) -> set[str]:
        return {i.instrument_id for i in self.instruments}

    def to_json(self) -> bytes:
        doc = {
            "schema_version": self.schema_version,
            "venue": self.venue,
            "asof_ms": self.asof_ms,
            "rules": self.rules,
            "counts": self.counts,
            "instruments": [i.flat() for i in self.instruments],
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# --------------------------------------------------------------------------- writing


def write_snapshot(path: str | os.PathLike[str], snap: Snapshot) -> None:
    """Atomically replace ``path`` with ``snap``; creates the directory when needed.

    Raises OSError on a write failure; the previous file is then left as it was.
    """
    atomic_write(Path(path), snap.to_json())


# --------------------------------------------------------------------------- reading


def _validation_summary(err: ValidationError, limit: int = 3) -> str:
    parts = []
    for e in err.errors()[:limit]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    more = err.error_count() - limit
    if more > 0:
        parts.append(f"... {more} more")
    return "; ".join(parts)


def parse_snapshot(data: bytes, *, source: str = "snapshot", venue: str | None = None) -> Snapshot:
    """Parse and validate snapshot bytes; SnapshotError for anything untrustworthy."""
    if not data.strip():
        raise SnapshotError(f"{source}: empty file")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"{source}: not valid JSON (partial or truncated write?): {e}") from None
    if not isinstance(doc, dict):
        raise SnapshotError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    ver = doc.get("schema_version")
    if ver != SNAPSHOT_SCHEMA_VERSION:
        raise SnapshotError(
            f"{source}: unsupported schema_version {ver!r} (this build reads {SNAPSHOT_SCHEMA_VERSION})"
        )
    try:
        snap = Snapshot.model_validate(doc)
    except ValidationError as e:
        raise SnapshotError(f"{source}: wrong schema: {_validation_summary(e)}") from None
    if venue is not None and snap.venue != venue:
        raise SnapshotError(f"{source}: venue mismatch: file is for {snap.venue!r}, expected {venue!r}")
    bad = [i.instrument_id for i in snap.instruments if i.venue != snap.venue]
    if bad:
        raise SnapshotError(
            f"{source}: {len(bad)} instrument(s) of another venue than {snap.venue!r}, e.g. {bad[0]!r}"
        )
    return snap


def read_snapshot(path: str | os.PathLike[str], venue: str | None = None) -> Snapshot:
    """Read and validate a snapshot file.

    Raises SnapshotError when the file is missing, unreadable, empty, not valid JSON (partial or
    truncated), of another schema version or shape, or (``venue`` given) of another venue.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no snapshot (file missing)") from None
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read: {e}") from None
    return parse_snapshot(data, source=str(path), venue=venue)


class SnapshotWatcher:
    """Hot-reload helper for the poller; ``poll()`` never raises.

    ``poll()`` returns a new :class:`Snapshot` only when the file's identity
    ``(st_mtime_ns, st_size, st_ino)`` changed since the last call AND the new file parses;
    otherwise None. A bad file (missing, partial, corrupt, wrong venue) is logged once per change,
    recorded in ``last_error``, and the last good snapshot stays in ``current``.
    """

    def __init__(self, path: str | os.PathLike[str], venue: str | None = None, logger: logging.Logger | None = None):
        self.path = Path(path)
        self.venue = venue
        self.current: Snapshot | None = None
        self.last_error: str | None = None
        self.reloads = 0  # good snapshots loaded
        self.errors = 0  # bad changes seen
        self._key: tuple[int, int, int] | None = None
        self._missing_logged = False
        self._log = logger or log

    def _bad(self, msg: str) -> None:
        self.last_error = msg
        self.errors += 1
        if self.current is not None:
            self._log.warning("snapshot %s unusable, keeping the one of asof_ms=%s: %s", self.path, self.current.asof_ms, msg)
        else:
            self._log.warning("snapshot %s unusable: %s", self.path, msg)

    def poll(self) -> Snapshot | None:
        try:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                if not self._missing_logged:
                    self._missing_logged = True
                    self._key = None
                    self._bad(f"{self.path}: no snapshot (file missing)")
                return None
            self._missing_logged = False
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if key == self._key:
                return None
            self._key = key
            try:
                snap = read_snapshot(self.path, venue=self.venue)
            except SnapshotError as e:
                self._bad(str(e))
                return None
            self.current = snap
            self.last_error = None
            self.reloads += 1
            return snap
        except Exception as e:  # the poller must never die because of a snapshot
            self._bad(f"{self.path}: unexpected {type(e).__name__}: {e}")
            return None
