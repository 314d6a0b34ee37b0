"""The record of a verified day: ``orderbooks_parquet/date=D/_verified.json``.

Compaction writes it after the day's Parquet was verified record for record against the JSONL
and published: which JSONL files (base name, kind, size) it compared, the counts, and the size
and SHA-256 of each Parquet file. A failed compaction replaces it with ``status: "failed"``.

Anything that deletes JSONL later (retention, collector/ops/retention.py) trusts a day only
through :func:`check`: the manifest says verified, the Parquet files on disk are the ones that
were verified (size and hash), and the JSONL left is a subset of what was compared (no file
appeared or grew after the check; a ``.jsonl`` compressed to ``.jsonl.zst`` since is the same file).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from collector.store import layout
from collector.store.durable import atomic_write
from collector.store.verify import listing

__all__ = [
    "MANIFEST_VERSION", "check", "check_trades", "clear", "clear_trades", "file_digest", "read", "read_trades",
    "trades_manifest_path", "write_failed", "write_trades_failed", "write_trades_verified", "write_verified",
]

MANIFEST_VERSION = 1


def file_digest(path: Path) -> dict[str, Any]:
    """``{"name", "size", "sha256"}`` of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"name": path.name, "size": size, "sha256": h.hexdigest()}


def _write(data_dir: Path, venue: str, date: str, body: dict[str, Any], path: Path | None = None) -> None:
    doc = {"manifest_version": MANIFEST_VERSION, "venue": venue, "date": date, "written_ms": int(time.time() * 1000), **body}
    dst = layout.verified_path(data_dir, venue, date) if path is None else path
    atomic_write(dst, json.dumps(doc, indent=1, sort_keys=True).encode())


def write_verified(
    data_dir: Path, venue: str, date: str, jsonl: dict[str, tuple[str, int]], books: int, gaps: int,
    parquet: Path, gaps_parquet: Path | None,
) -> None:
    _write(data_dir, venue, date, {
        "status": "verified",
        "books": books,
        "gaps": gaps,
        "jsonl": {k: list(v) for k, v in sorted(jsonl.items())},
        "parquet": file_digest(parquet),
        "gaps_parquet": file_digest(gaps_parquet) if gaps_parquet is not None else None,
    })


def write_failed(data_dir: Path, venue: str, date: str, error: str) -> None:
    _write(data_dir, venue, date, {"status": "failed", "error": error})


def clear(data_dir: Path, venue: str, date: str) -> None:
    """Forget a day's verification (a new compaction of it is starting)."""
    layout.verified_path(data_dir, venue, date).unlink(missing_ok=True)


def read(data_dir: Path, venue: str, date: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(layout.verified_path(data_dir, venue, date).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def check(data_dir: Path, venue: str, date: str) -> str | None:
    """None when the day's remaining JSONL is covered by its verified Parquet, else why not."""
    doc = read(data_dir, venue, date)
    if doc is None:
        return "no verified Parquet (no _verified.json: compact the day first)"
    if doc.get("manifest_version") != MANIFEST_VERSION:
        return f"_verified.json has manifest_version {doc.get('manifest_version')!r}, this code knows {MANIFEST_VERSION}"
    if doc.get("status") != "verified":
        return f"the last compaction of the day failed: {doc.get('error') or doc.get('status')}"
    books = layout.parquet_path(data_dir, venue, date)
    gaps = layout.parquet_path(data_dir, venue, date, gaps=True)
    for path, want in ((books, doc.get("parquet")), (gaps, doc.get("gaps_parquet"))):
        if want is None:
            if path.exists():
                return f"{path.name} is not the one that was verified (not in _verified.json)"
            continue
        try:
            got = file_digest(path)
        except OSError as e:
            return f"{path.name} cannot be read: {e}"
        if got != want:
            return f"{path.name} changed since it was verified"
    verified = {k: tuple(v) for k, v in (doc.get("jsonl") or {}).items()}
    now = listing(layout.partition_dir(data_dir, venue, layout.BOOK_STREAM, date))
    for base, (kind, size) in now.items():
        if base not in verified:
            return f"{base} appeared after the day was verified"
        vkind, vsize = verified[base]
        if kind == vkind and size != vsize:
            return f"{base} changed size after the day was verified"
        if kind == "jsonl" and vkind == "zst":
            return f"{base} is back as plain JSONL after it was verified compressed"
        if kind == "gone":
            return f"{base} cannot be read"
    return None


# Trades (collector/store/compact_trades.py) have a manifest of their own next to their Parquet,
# ``trades_parquet/date=D/_verified.json``: a day's trades and books are compacted (and may fail)
# independently, and the book manifest is what retention trusts before it removes book JSONL.


def trades_manifest_path(data_dir: Path, venue: str, date: str) -> Path:
    return layout.trades_parquet_path(data_dir, venue, date).parent / layout.VERIFIED_NAME


def write_trades_verified(
    data_dir: Path, venue: str, date: str, jsonl: dict[str, tuple[str, int]], trades: int, duplicates: int, parquet: Path
) -> None:
    _write(data_dir, venue, date, {
        "status": "verified",
        "trades": trades,
        "duplicates": duplicates,
        "jsonl": {k: list(v) for k, v in sorted(jsonl.items())},
        "parquet": file_digest(parquet),
    }, trades_manifest_path(data_dir, venue, date))


def write_trades_failed(data_dir: Path, venue: str, date: str, error: str) -> None:
    _write(data_dir, venue, date, {"status": "failed", "error": error}, trades_manifest_path(data_dir, venue, date))


def clear_trades(data_dir: Path, venue: str, date: str) -> None:
    trades_manifest_path(data_dir, venue, date).unlink(missing_ok=True)


def read_trades(data_dir: Path, venue: str, date: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(trades_manifest_path(data_dir, venue, date).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def check_trades(data_dir: Path, venue: str, date: str) -> str | None:
    """None when the day's ``trades.parquet`` is the one that was verified, else why not."""
    doc = read_trades(data_dir, venue, date)
    if doc is None:
        return "no verified trades Parquet (no trades_parquet/date=D/_verified.json)"
    if doc.get("manifest_version") != MANIFEST_VERSION or doc.get("status") != "verified":
        return f"the last trades compaction of the day failed: {doc.get('error') or doc.get('status')}"
    path = layout.trades_parquet_path(data_dir, venue, date)
    try:
        got = file_digest(path)
    except OSError as e:
        return f"{path.name} cannot be read: {e}"
    return None if got == doc.get("parquet") else f"{path.name} changed since it was verified"
