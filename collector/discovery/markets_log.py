"""The discovery markets log: one ``market`` record per instrument added to or removed from a
venue's membership, appended (and fsynced) before the snapshot that reflects the change.

Files: ``<data_dir>/<venue>/markets/date=YYYY-MM-DD/markets.<HHMMSS>.<pid>.jsonl``; the record
layout is documented in docs/schema.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from collector.model.errors import WriteError
from collector.model.records import SCHEMA_VERSION, Instrument, MarketRecord
from collector.store import layout
from collector.store.durable import fsync_dir

MARKET_RECORD_SCHEMA_VERSION = SCHEMA_VERSION


def market_records_path(data_dir: str | os.PathLike[str], venue: str, ts_ms: int, pid: int | None = None) -> Path:
    """``<data_dir>/<venue>/markets/date=YYYY-MM-DD/markets.<HHMMSS>.<pid>.jsonl`` (UTC of ts_ms)."""
    t = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    pid = os.getpid() if pid is None else pid
    part = layout.partition_dir(data_dir, venue, layout.MARKETS_STREAM, layout.utc_day(ts_ms))
    return part / f"markets.{t:%H%M%S}.{pid}.jsonl"


def market_record(inst: Instrument, event: str, reason: str, ts_ms: int) -> dict[str, Any]:
    """One flat ``market`` record (collector.model.records.MarketRecord) as a dict."""
    return MarketRecord(event=event, reason=reason, ts_ms=ts_ms, instrument=inst).to_dict()


def append_market_records(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append JSONL records and fsync the file (and the directory when the file is new)."""
    if not records:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_dir(path.parent)
    except OSError as e:
        raise WriteError(f"{path}: cannot write market records: {e}") from e
