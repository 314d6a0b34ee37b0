"""Disk retention: remove (or archive) the order-book JSONL of old days whose Parquet is verified.

``apply_retention(data_dir, venue, days=N)`` looks at every ``<venue>/orderbooks/date=D/``
partition whose UTC day ended at least ``N`` days ago (N=7 on 2026-01-18: days up to 2026-01-10)
and removes its JSONL only when :func:`collector.store.verified.check` says the day's Parquet was
verified against exactly these files. Otherwise the day is kept and the report says why: not
compacted, compacted by a version that wrote no manifest, its last compaction failed, the
Parquet changed since, or a JSONL file appeared or grew after the check. Today and the last
``N`` days are never touched, whatever the manifest says.

``action="archive"`` moves the files to ``<archive_dir>/<venue>/orderbooks/date=D/`` (copy +
fsync + rename when ``archive_dir`` is on another filesystem) instead of deleting them.

Idempotent: a second pass finds nothing left to do. Only the ``orderbooks`` stream has Parquet;
``book_changes``, ``markets``, ``poll_stats`` and ``poll_errors`` are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collector.store import layout, verified
from collector.store.durable import fsync_dir, fsync_file, new_tmp_path
from collector.store.files import jsonl_files

__all__ = ["DayRetention", "apply_retention", "cli_retention", "eligible"]


@dataclass
class DayRetention:
    venue: str
    date: str
    status: str  # deleted | archived | kept | would-delete | would-archive
    files: int = 0
    bytes: int = 0
    reason: str | None = None  # why a day was kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        head = f"retention {self.venue} {self.date}: {self.status}"
        if self.status == "kept":
            return f"{head} ({self.reason})"
        return f"{head} {self.files} JSONL files, {self.bytes / 1e6:.1f} MB"


def eligible(date: str, days: int, now_ms: int) -> bool:
    """The UTC day ``date`` ended at least ``days`` days before ``now_ms``."""
    try:
        _, end = layout.day_bounds(date)
    except ValueError:
        return False
    return end + days * layout.DAY_MS <= now_ms


def _archive(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        src.unlink()  # an earlier pass copied it and stopped before the unlink
        return
    try:
        os.link(src, dst)  # same filesystem: no copy
    except FileExistsError:
        dst.unlink()
        os.link(src, dst)
    except OSError:
        tmp = new_tmp_path(dst)
        try:
            shutil.copyfile(src, tmp)
            fsync_file(tmp)
            os.replace(tmp, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    fsync_dir(dst.parent)
    src.unlink()


def _retain_day(
    data_dir: Path, venue: str, date: str, part: Path, action: str, archive_dir: Path | None, dry_run: bool
) -> DayRetention:
    # every visible JSONL name, both twins of a compression a crash interrupted (X.jsonl, X.jsonl.zst)
    files = sorted(p for p in part.iterdir() if layout.is_jsonl_name(p.name))
    rep = DayRetention(venue, date, "kept", len(files), sum(_size(p) for p in files))
    why = verified.check(data_dir, venue, date)
    if why is not None:
        rep.reason = why
        return rep
    if dry_run:
        rep.status = f"would-{action}"
        return rep
    for p in files:
        if action == "archive":
            assert archive_dir is not None
            _archive(p, layout.partition_dir(archive_dir, venue, layout.BOOK_STREAM, date) / p.name)
        else:
            p.unlink(missing_ok=True)
    fsync_dir(part)
    with contextlib.suppress(OSError):
        part.rmdir()  # only when empty (a writer's hidden temp file keeps it)
        fsync_dir(part.parent)
    rep.status = "archived" if action == "archive" else "deleted"
    return rep


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def apply_retention(
    data_dir: str | os.PathLike[str],
    venue: str,
    days: int,
    *,
    action: str = "delete",
    archive_dir: str | os.PathLike[str] | None = None,
    now_ms: int | None = None,
    dry_run: bool = False,
) -> list[DayRetention]:
    """One report per old-enough day that still has JSONL (see the module doc)."""
    if days < 1:
        raise ValueError("days must be >= 1")
    if action not in ("delete", "archive"):
        raise ValueError(f"action must be delete or archive, got {action!r}")
    if action == "archive" and archive_dir is None:
        raise ValueError("action archive needs archive_dir")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    root = Path(data_dir)
    adir = Path(archive_dir) if archive_dir is not None else None
    out = []
    for date, part in layout.date_partitions(layout.stream_dir(root, venue, layout.BOOK_STREAM)).items():
        if not eligible(date, days, now) or not jsonl_files(part):
            continue
        out.append(_retain_day(root, venue, date, part, action, adir, dry_run))
    return out


def cli_retention(settings: Any, args: Any) -> int:
    """``collector retention [--days N] [--venue V] [--dry-run]``: one line per old day with JSONL.

    Exit status 0 when it ran (days kept for a reason are not errors: their line says why), 1 on
    an I/O error, 2 when retention is off (no ``retention.jsonl_days`` and no ``--days``).
    """
    r = settings.retention
    days = args.days if getattr(args, "days", None) is not None else r.jsonl_days
    if days is None:
        print("collector: retention is off: set retention.jsonl_days (COLLECTOR_RETENTION__JSONL_DAYS) or pass --days N")
        return 2
    if days < 1:
        print(f"collector: retention --days must be >= 1, got {days}")
        return 2
    venues = list(dict.fromkeys(getattr(args, "venue", None) or settings.venues))
    rc = 0
    for v in venues:
        try:
            reps = apply_retention(settings.data_dir, v, days, action=r.action, archive_dir=r.archive_dir,
                                   dry_run=bool(getattr(args, "dry_run", False)))
        except OSError as e:
            print(f"retention {v}: error: {e}", flush=True)
            rc = 1
            continue
        for rep in reps:
            print(rep.summary_line(), flush=True)
        if not reps:
            print(f"retention {v}: nothing older than {days} days with JSONL left", flush=True)
    return rc
