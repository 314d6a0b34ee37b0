"""``collector tail``: books (and gaps) printed as they are written, raw or one aligned line each."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import orjson

from collector.ops import scope
from collector.ops.follow import Follower
from collector.ops.recent import last_records, parse_record
from collector.ops.table import compact_num, fmt_num, short_id
from collector.read.scan import expand_instruments
from collector.store.changes import BOOK, MARKER, expand

TAIL_HEADER = ["time (UTC)", "venue", "poll key", "outcome", "bid x size", "ask x size", "mid", "spread", "lvls", "lat ms"]
_TAIL_W = [12, 10, 24, 8, 18, 18, 8, 7, 5, 7]
_RIGHT = {6, 7, 8, 9}  # the numeric columns


def _lvl(levels: list | None) -> str:
    if not levels:
        return "-"
    p, s = levels[0][0], levels[0][1]
    return f"{p} x {compact_num(s)}"


def _row(cells: Sequence[str]) -> str:
    return "  ".join(c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(cells, _TAIL_W)))


def format_tail_line(rec: dict) -> str:
    """One aligned line for a book (or a gap) record."""
    ts = rec.get("ts_ms") or 0
    t = time.strftime("%H:%M:%S", time.gmtime(ts // 1000)) + f".{ts % 1000:03d}"
    if rec.get("record_type") == "unchanged":  # its book was written before this tail started
        who = short_id(rec.get("instrument_id") or "")
        return f"{t:<12}  {rec.get('venue', ''):<10}  {who:<24}  = unchanged, {fmt_num(rec.get('latency_ms'), 0)} ms"
    if rec.get("record_type") == "gap":
        frm, to = rec.get("from_ts_ms"), rec.get("to_ts_ms")
        dur = f"{(to - frm) / 1000:.1f}s" if isinstance(frm, int) and isinstance(to, int) else "?"
        who = short_id(rec.get("instrument_id") or "(venue-wide)")
        fails = f" after {rec['failures']} failures" if rec.get("failures") else ""
        return f"{t:<12}  {rec.get('venue', ''):<10}  {who:<24}  GAP {dur} {rec.get('reason')}{fails}"
    cells = [
        t,
        str(rec.get("venue", "")),
        short_id(str(rec.get("poll_key") or rec.get("instrument_id", ""))),
        str(rec.get("outcome") or "-")[:8],
        _lvl(rec.get("bids")),
        _lvl(rec.get("asks")),
        "-" if rec.get("mid") is None else str(rec["mid"]),
        "-" if rec.get("spread") is None else str(rec["spread"]),
        f"{len(rec.get('bids') or [])}/{len(rec.get('asks') or [])}",
        fmt_num(rec.get("latency_ms"), 0),
    ]
    return _row(cells).rstrip()


def format_tail_header() -> str:
    return _row(TAIL_HEADER)


def _matcher(instruments: Sequence[str] | None, venues: Sequence[str]) -> Callable[[dict], bool]:
    ids = expand_instruments(instruments, venues)
    if ids is None:
        return lambda r: True
    # venue-wide gaps (cooldowns) concern every instrument
    return lambda r: r.get("instrument_id") in ids or (r.get("record_type") == "gap" and r.get("instrument_id") is None)


def tail(
    data_dir: str | os.PathLike[str],
    venues: Sequence[str],
    *,
    instruments: Sequence[str] | None = None,
    raw: bool = False,
    lines: int = 0,
    out: TextIO | None = None,
    poll_s: float = 0.25,
    stop: Callable[[], bool] | None = None,
    max_records: int | None = None,
) -> int:
    """Print books (and gaps) as they are written until ``stop()`` or ``max_records``; returns
    how many were printed. ``raw``: the JSON lines as written; else one aligned line each."""
    out = out or sys.stdout
    match = _matcher(instruments, venues)
    follower = Follower(data_dir, venues)
    follower.start()
    printed = 0

    def emit(rec: dict | None, line: bytes | None) -> bool:
        nonlocal printed
        if raw:
            out.write((line if line is not None else orjson.dumps(rec)).decode() + "\n")
        else:
            if printed % 40 == 0:
                out.write(format_tail_header() + "\n")
            out.write(format_tail_line(rec) + "\n")  # type: ignore[arg-type]
        printed += 1
        return max_records is not None and printed >= max_records

    if lines:
        for r in last_records(data_dir, venues, lines, match):
            if emit(r, None):
                out.flush()
                return printed
        out.flush()
    bases: dict[str, dict] = {}  # each instrument's last full book: unchanged records show it again
    while not (stop and stop()):
        batch = follower.poll()
        for line in batch:
            rec = parse_record(line)
            if rec is None or not match(rec):
                continue
            rt = rec.get("record_type")
            if rt == BOOK:
                bases[rec["instrument_id"]] = rec
            elif rt == MARKER and not raw and rec.get("instrument_id") in bases:
                rec = expand(bases[rec["instrument_id"]], rec)
            if emit(rec, line):
                out.flush()
                return printed
        if batch:
            out.flush()
        else:
            time.sleep(poll_s)
    return printed


def cli_tail(settings: Any, args: Any) -> int:
    tail(
        settings.data_dir,
        scope.selected_venues(settings, args),
        instruments=getattr(args, "instrument", None),
        raw=bool(getattr(args, "raw", False)),
        lines=int(getattr(args, "lines", 0) or 0),
    )
    return 0
