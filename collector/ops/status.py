"""``collector status``: per venue, the active set, book and stats age, cooldown, files and disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.ops import scope
from collector.ops.recent import newest_record
from collector.ops.table import (
    fmt_age,
    fmt_bytes,
    fmt_num,
    fmt_pct,
    format_table,
    iso_ms,
)
from collector.store import layout
from collector.store.layout import utc_day

STREAMS = (layout.BOOK_STREAM, layout.BOOK_CHANGES_STREAM, layout.MARKETS_STREAM, layout.POLL_STATS_STREAM,
           layout.POLL_ERRORS_STREAM)


def _dir_usage(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``."""
    total = n = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
                n += 1
            except OSError:
                pass
    return total, n


def venue_status(data_dir: str | os.PathLike[str], venue: str, now_ms: int | None = None) -> dict[str, Any]:
    """Status of one venue as a dict (see :func:`format_status`)."""
    from collector.model.errors import SnapshotError
    from collector.store.layout import snapshot_path
    from collector.store.snapshot import read_snapshot

    now = scope.now_ms() if now_ms is None else now_ms
    vdir = layout.venue_dir(data_dir, venue)
    st: dict[str, Any] = {"venue": venue, "now_ms": now}
    try:
        snap = read_snapshot(snapshot_path(data_dir, venue), venue=venue)
        st["active_instruments"] = len(snap.instruments)
        st["active_markets"] = len({i.market_id for i in snap.instruments})
        st["snapshot_age_s"] = (now - snap.asof_ms) / 1000
        st["snapshot_error"] = None
    except SnapshotError as e:
        st["active_instruments"] = None
        st["active_markets"] = None
        st["snapshot_age_s"] = None
        st["snapshot_error"] = str(e)
    book = newest_record(data_dir, venue, layout.BOOK_STREAM, ("orderbook", "unchanged"))  # a poll either way
    st["last_book_ts_ms"] = book.get("ts_ms") if book else None
    st["last_book_age_s"] = (now - book["ts_ms"]) / 1000 if book else None
    ps = newest_record(data_dir, venue, layout.POLL_STATS_STREAM)
    st["stats"] = ps
    st["stats_age_s"] = (now - ps["ts_ms"]) / 1000 if ps else None
    today = utc_day(now)
    n_today = 0
    for s in STREAMS:
        part = layout.partition_dir(data_dir, venue, s, today)
        try:
            n_today += sum(1 for n in os.listdir(part) if not n.startswith("."))
        except OSError:
            pass
    st["files_today"] = n_today
    st["disk_bytes"], st["files_total"] = _dir_usage(vdir)
    return st


def format_status(rows: list[dict[str, Any]], data_dir: Any = None, extra_notes: Sequence[str] = ()) -> str:
    head = [
        "venue", "active", "markets", "snapshot", "last book", "stats", "cooldown",
        "ok", "failed", "fail%", "p95 ms", "stale", "stream live", "files today", "disk",
    ]
    body = []
    notes = []
    for st in rows:
        ps = st.get("stats") or {}
        ok, failed = ps.get("ok"), ps.get("failed")
        att = (ok or 0) + (failed or 0)
        cd = "-"
        if ps.get("cooldown_reason"):
            cd = f"{ps['cooldown_reason']} {fmt_age(ps.get('cooldown_remaining_s'))}"
        body.append(
            [
                st["venue"],
                fmt_num(st.get("active_instruments")),
                fmt_num(st.get("active_markets")),
                fmt_age(st.get("snapshot_age_s")) + (" ago" if st.get("snapshot_age_s") is not None else ""),
                fmt_age(st.get("last_book_age_s")),
                fmt_age(st.get("stats_age_s")),
                cd,
                fmt_num(ok),
                fmt_num(failed),
                fmt_pct(failed / att) if att else "-",
                fmt_num(ps.get("latency_p95_ms"), 0),
                fmt_num(ps.get("stale_instruments")),
                _stream_cell(ps.get("stream")),
                fmt_num(st.get("files_today")),
                fmt_bytes(st.get("disk_bytes") or 0),
            ]
        )
        v = st["venue"]
        if st.get("snapshot_error"):
            notes.append(f"{v}: snapshot: {st['snapshot_error']}")
        if st.get("last_book_ts_ms") is None:
            notes.append(f"{v}: no order book recorded yet")
        errs = ps.get("errors") or {}
        if errs:
            by_count = sorted(errs.items(), key=lambda x: -x[1])
            notes.append(f"{v}: errors in the last stats interval: " + ", ".join(f"{k}={n}" for k, n in by_count))
        for k in ("writer_error", "snapshot_error"):
            if ps.get(k):
                notes.append(f"{v}: poller {k}: {ps[k]}")
        sm = ps.get("stream")
        if sm:
            notes.append(
                f"{v}: stream: {sm.get('connections')} connections, {fmt_num(sm.get('messages_per_s'), 1)} msg/s, "
                f"resyncs {sm.get('resyncs')}, disconnects {sm.get('disconnects')}, gaps {sm.get('gaps')}, "
                f"last message {fmt_age(sm.get('last_message_age_s'))} ago"
                + ("; resynced for " + ", ".join(f"{k}={n}" for k, n in sm["mismatches"].items()) if sm.get("mismatches") else "")
            )
        if ps.get("records_dropped"):
            notes.append(f"{v}: writer dropped {ps['records_dropped']} records since the poller started")
    notes += extra_notes
    now = rows[0]["now_ms"] if rows else scope.now_ms()
    out = [f"collector status  data_dir={data_dir}  now={iso_ms(now)}", "", format_table(head, body)]
    if notes:
        out += [""] + notes
    out.append("(ok/failed/fail%/p95/stale/errors: the latest poll_stats record, i.e. its last interval)")
    return "\n".join(out)


def _stream_cell(sm: dict[str, Any] | None) -> str:
    if not sm:
        return "off"
    return f"{sm.get('live', 0)}/{sm.get('subscribed', 0)}"


def cli_status(settings: Any, args: Any, extra_notes: Sequence[str] = ()) -> int:
    """``extra_notes``: what the caller knows beyond the files (the orchestrator's view)."""
    venues = scope.selected_venues(settings, args)
    rows = [venue_status(settings.data_dir, v) for v in venues]
    print(format_status(rows, settings.data_dir, extra_notes))
    return 0
