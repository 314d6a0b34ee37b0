"""The on-disk contract: every stream and directory name, partition paths, file names, day bounds.

Layout::

    <data_dir>/<venue>/<stream>/date=YYYY-MM-DD/<stream>.<period>.<uniq>.jsonl[.zst]
    <data_dir>/<venue>/book_changes/date=YYYY-MM-DD/book_changes.<period>.<uniq>.jsonl[.zst]
    <data_dir>/<venue>/trades/date=YYYY-MM-DD/trades.<period>.<uniq>.jsonl[.zst]
    <data_dir>/<venue>/orderbooks_parquet/date=YYYY-MM-DD/orderbooks.parquet
    <data_dir>/<venue>/orderbooks_parquet/date=YYYY-MM-DD/_verified.json: what compaction verified
    <data_dir>/<venue>/gaps_parquet/date=YYYY-MM-DD/gaps.parquet
    <data_dir>/<venue>/trades_parquet/date=YYYY-MM-DD/trades.parquet
    <data_dir>/<venue>/state/active_instruments.snapshot.json
    <data_dir>/<venue>/state/poller.shard-<k>of<n>.json (+ .lock): a poller shard's restart state

* ``date`` is the UTC date of the file's period, ``<period>`` the UTC period start
  (``20261125T1010Z``). Periods are ``rotate_minutes`` long, aligned to the hour when
  ``rotate_minutes <= 60`` and to UTC midnight otherwise, and always end at UTC midnight
  (see :func:`period_bounds`).
* ``<uniq>`` is ``HHMMSSmmm-<pid>-<random hex>``: the UTC time the file was opened, then a
  tie-breaker, so names sort by time within a directory (period start, then opening time).
  Files of other writers (discovery's ``markets.<HHMMSS>.<pid>.jsonl``) have no period: their
  records may lie anywhere in the day (:func:`period_start_ms` is None).
* Hidden names (leading ``.``) are temp files: readers ignore them.

Everything here is pure naming (no I/O) except :func:`date_partitions`, which lists a directory.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import time
from pathlib import Path

__all__ = [
    "BOOK_CHANGES_STREAM",
    "BOOK_STREAM",
    "BOOKS_PARQUET_NAME",
    "DAY_MS",
    "GAPS_PARQUET_NAME",
    "MARKETS_STREAM",
    "PARQUET_BOOKS",
    "PARQUET_GAPS",
    "PARQUET_TRADES",
    "TRADES_PARQUET_NAME",
    "TRADES_STREAM",
    "trades_parquet_path",
    "trades_state_path",
    "POLL_ERRORS_STREAM",
    "POLL_STATS_STREAM",
    "SNAPSHOT_NAME",
    "STATE_DIR",
    "VENUE_DIRS",
    "VERIFIED_NAME",
    "base_name",
    "compress_tmp_path",
    "compressed_name",
    "compressed_path",
    "date_partitions",
    "day_bounds",
    "is_compressed",
    "is_jsonl_name",
    "parquet_path",
    "parse_partition_name",
    "partition_dir",
    "partition_name",
    "period_bounds",
    "period_start_ms",
    "poller_state_path",
    "POLLER_STATE_PREFIX",
    "rotated_name",
    "snapshot_path",
    "request_spacing_path",
    "REQUEST_SPACING_NAME",
    "state_dir",
    "stream_dir",
    "tmp_path",
    "tmp_prefix",
    "utc_day",
    "venue_dir",
    "verified_path",
]

# Streams (directories under <data_dir>/<venue>/).
BOOK_STREAM = "orderbooks"  # orderbook and gap records (poller)
BOOK_CHANGES_STREAM = "book_changes"  # book_snapshot, book_change, last_trade and gap records (stream capture)
POLL_STATS_STREAM = "poll_stats"  # poll_stats records (poller)
POLL_ERRORS_STREAM = "poll_errors"  # poll_error records (poller)
MARKETS_STREAM = "markets"  # market added/removed records (discovery)
TRADES_STREAM = "trades"  # trade and gap records (feeds and the trades poller)
PARQUET_BOOKS = "orderbooks_parquet"  # compacted days: date=D/orderbooks.parquet
PARQUET_GAPS = "gaps_parquet"  # compacted days: date=D/gaps.parquet
PARQUET_TRADES = "trades_parquet"  # compacted days: date=D/trades.parquet
STATE_DIR = "state"  # snapshot, request spacing: not records
# A directory is a venue when it holds one of these.
VENUE_DIRS = frozenset({BOOK_STREAM, BOOK_CHANGES_STREAM, MARKETS_STREAM, POLL_STATS_STREAM, POLL_ERRORS_STREAM, STATE_DIR,
                        PARQUET_BOOKS, TRADES_STREAM})

BOOKS_PARQUET_NAME = "orderbooks.parquet"  # the marker readers look for: the day is compacted
GAPS_PARQUET_NAME = "gaps.parquet"
TRADES_PARQUET_NAME = "trades.parquet"
# Compaction's record of a verified day (collector/store/verified.py); the leading "_" keeps
# pyarrow and DuckDB dataset scans of the directory from taking it for data.
VERIFIED_NAME = "_verified.json"
SNAPSHOT_NAME = "active_instruments.snapshot.json"
REQUEST_SPACING_NAME = "request_spacing"  # the venue's shared request spacing (venues/shared_spacing.py)
POLLER_STATE_PREFIX = "poller.shard-"  # per-shard restart state (poller/restart.py)

DAY_MS = 86_400_000
_PARTITION_PREFIX = "date="
_PERIOD_FORMAT = "%Y%m%dT%H%MZ"
_PERIOD_RE = re.compile(r"^[A-Za-z0-9_-]+\.(\d{8}T\d{4}Z)\.")


# --------------------------------------------------------------------------- days


def utc_day(ts_ms: int) -> str:
    """``YYYY-MM-DD``, the UTC date of an epoch timestamp in milliseconds."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ms // 1000))


def day_bounds(date: str) -> tuple[int, int]:
    """``[start, end)`` epoch ms of a UTC date ``YYYY-MM-DD`` (ValueError when it is not a date)."""
    d = _dt.date.fromisoformat(date)
    start = int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)
    return start, start + DAY_MS


# --------------------------------------------------------------------------- directories


def venue_dir(data_dir: str | os.PathLike[str], venue: str) -> Path:
    return Path(data_dir) / venue


def stream_dir(data_dir: str | os.PathLike[str], venue: str, stream: str) -> Path:
    return Path(data_dir) / venue / stream


def partition_name(date: str) -> str:
    """``date=YYYY-MM-DD``."""
    return _PARTITION_PREFIX + date


def parse_partition_name(name: str) -> str | None:
    """The date of a ``date=YYYY-MM-DD`` directory name (not validated), else None."""
    return name[len(_PARTITION_PREFIX) :] if name.startswith(_PARTITION_PREFIX) else None


def partition_dir(data_dir: str | os.PathLike[str], venue: str, stream: str, date: str) -> Path:
    """``<data_dir>/<venue>/<stream>/date=<date>``."""
    return Path(data_dir) / venue / stream / partition_name(date)


def date_partitions(stream_dir: Path) -> dict[str, Path]:
    """``{"YYYY-MM-DD": path}`` of the ``date=`` directories of one stream directory, sorted."""
    out = {}
    try:
        for p in stream_dir.iterdir():
            if p.name.startswith(_PARTITION_PREFIX) and p.is_dir():
                out[p.name[len(_PARTITION_PREFIX) :]] = p
    except OSError:
        pass
    return dict(sorted(out.items()))


def parquet_path(data_dir: str | os.PathLike[str], venue: str, date: str, *, gaps: bool = False) -> Path:
    """The compacted Parquet file of a day: ``orderbooks_parquet/date=D/orderbooks.parquet`` (or the gaps')."""
    if gaps:
        return partition_dir(data_dir, venue, PARQUET_GAPS, date) / GAPS_PARQUET_NAME
    return partition_dir(data_dir, venue, PARQUET_BOOKS, date) / BOOKS_PARQUET_NAME


def trades_parquet_path(data_dir: str | os.PathLike[str], venue: str, date: str) -> Path:
    """The compacted trades of a day: ``trades_parquet/date=D/trades.parquet``."""
    return partition_dir(data_dir, venue, PARQUET_TRADES, date) / TRADES_PARQUET_NAME


def verified_path(data_dir: str | os.PathLike[str], venue: str, date: str) -> Path:
    """``orderbooks_parquet/date=D/_verified.json``: the manifest of the day's verified Parquet."""
    return partition_dir(data_dir, venue, PARQUET_BOOKS, date) / VERIFIED_NAME


def state_dir(data_dir: str | os.PathLike[str], venue: str) -> Path:
    """``<data_dir>/<venue>/state``."""
    return Path(data_dir) / venue / STATE_DIR


def snapshot_path(data_dir: str | os.PathLike[str], venue: str) -> Path:
    """``<data_dir>/<venue>/state/active_instruments.snapshot.json``."""
    return Path(data_dir) / venue / STATE_DIR / SNAPSHOT_NAME


# --------------------------------------------------------------------------- rotated files


def request_spacing_path(data_dir: str | os.PathLike[str], venue: str) -> Path:
    """``<data_dir>/<venue>/state/request_spacing``, next to the venue's snapshot."""
    return state_dir(data_dir, venue) / REQUEST_SPACING_NAME


def poller_state_path(data_dir: str | os.PathLike[str], venue: str, shard_slug: str) -> Path:
    """``<data_dir>/<venue>/state/poller.shard-<k>of<n>.json``: what one poller shard knew when it
    last marked itself alive (collector/poller/restart.py); its lock is the same name + ``.lock``."""
    return state_dir(data_dir, venue) / f"{POLLER_STATE_PREFIX}{shard_slug}.json"


def trades_state_path(data_dir: str | os.PathLike[str], venue: str, shard_slug: str) -> Path:
    """``<data_dir>/<venue>/state/trades.shard-<k>of<n>.json``: how far each trade tape of one
    poller shard is known complete, and when it was last alive (collector/trades/tape.py)."""
    return state_dir(data_dir, venue) / f"trades.shard-{shard_slug}.json"


def period_bounds(ts: float, rotate_minutes: int) -> tuple[int, int]:
    """The rotation period ``[start, end)`` (epoch seconds, UTC) that contains ``ts``.

    Periods are ``rotate_minutes`` long, counted from the start of the hour when
    ``rotate_minutes <= 60`` and from UTC midnight otherwise; the last period of an hour
    (resp. day) is cut short at the hour (resp. midnight) when the length does not divide it.
    Every UTC midnight is therefore a boundary.
    """
    if not 1 <= rotate_minutes <= 1440:
        raise ValueError("rotate_minutes must be within 1..1440")
    sec = math.floor(ts)
    span = 3600 if rotate_minutes <= 60 else 86400
    base = sec - sec % span
    step = rotate_minutes * 60
    start = base + (sec - base) // step * step
    return start, min(start + step, base + span)


def rotated_name(stream: str, start: int, now: float, pid: int, token: str) -> str:
    """``<stream>.<start>.<HHMMSSmmm>-<pid>-<token>.jsonl``; ``now`` lies within the period."""
    sec, ms = divmod(math.floor(now * 1000), 1000)
    opened = time.strftime("%H%M%S", time.gmtime(sec))
    begin = time.strftime(_PERIOD_FORMAT, time.gmtime(start))
    return f"{stream}.{begin}.{opened}{ms:03d}-{pid}-{token}.jsonl"


def period_start_ms(name: str) -> int | None:
    """The period start (epoch ms) of a rotated file name, None for a name without a period."""
    m = _PERIOD_RE.match(name)
    if not m:
        return None
    try:
        t = _dt.datetime.strptime(m.group(1), _PERIOD_FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp() * 1000)


def is_jsonl_name(name: str) -> bool:
    """A visible ``.jsonl`` or ``.jsonl.zst`` file name (hidden names are temp files)."""
    return not name.startswith(".") and name.endswith((".jsonl", ".jsonl.zst"))


def is_compressed(name: str) -> bool:
    return name.endswith(".zst")


def base_name(name: str) -> str:
    """The ``X.jsonl`` name of ``X.jsonl`` or ``X.jsonl.zst``."""
    return name[:-4] if name.endswith(".zst") else name


def compressed_name(name: str) -> str:
    """``X.jsonl`` -> ``X.jsonl.zst`` (what compression of a closed file produces)."""
    return name + ".zst"


def compressed_path(path: Path) -> Path:
    """``X.jsonl`` -> ``X.jsonl.zst`` next to it."""
    return path.with_name(compressed_name(path.name))


def compress_tmp_path(path: Path, pid: int, token: str) -> Path:
    """The hidden temp file compression of ``X.jsonl`` writes before its rename to ``X.jsonl.zst``."""
    return path.with_name(f".{path.name}.zst.{pid}-{token}.tmp")


# --------------------------------------------------------------------------- temp files


def tmp_prefix(final: Path) -> str:
    """``.<name>.tmp.``: the prefix of the temp files of an atomic replace of ``final``."""
    return f".{final.name}.tmp."


def tmp_path(final: Path, pid: int, token: str) -> Path:
    """``.<name>.tmp.<pid>.<token>`` next to ``final`` (the pid lets a cleaner spot dead writers)."""
    return final.parent / f"{tmp_prefix(final)}{pid}.{token}"
