"""``collector coverage``: per instrument and UTC day, the seconds in the active set against the
seconds with a fresh book."""

from __future__ import annotations

import os
import statistics
import sys
from collections import Counter
from typing import Any

from collector import read
from collector.ops import scope
from collector.ops.stats import gap_seconds
from collector.ops.table import (
    fmt_age,
    fmt_num,
    fmt_pct,
    format_json,
    format_table,
    short_id,
)
from collector.read.records import book_times
from collector.store.layout import day_bounds


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _overlap(xs: list[tuple[int, int]], ys: list[tuple[int, int]]) -> int:
    """Total length of the intersection of two sorted lists of disjoint intervals."""
    i = j = total = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            total += b - a
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def _fresh_intervals(times: list[int], fresh_ms: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for t in times:  # sorted
        if out and t <= out[-1][1]:
            if t + fresh_ms > out[-1][1]:
                out[-1] = (out[-1][0], t + fresh_ms)
        else:
            out.append((t, t + fresh_ms))
    return out


def active_intervals(entry: dict[str, Any], lo: int, hi: int) -> list[tuple[int, int]]:
    """An instrument's active spans (from :func:`collector.read.books.market_catalog`) clipped to
    ``[lo, hi)`` and to its expiry (the poller stops at ``expires_at_ms`` unless a snapshot
    written after it still lists the instrument)."""
    exp = entry.get("expires_at_ms")
    kept_past = entry.get("active") and exp is not None and (entry.get("snapshot_asof_ms") or 0) > exp
    out = []
    for a, b in entry.get("intervals") or []:
        a = lo if a is None else max(a, lo)
        b = hi if b is None else min(b, hi)
        if isinstance(exp, int) and not kept_past:
            b = min(b, exp)
        if b > a:
            out.append((a, b))
    return _merge(out)


def coverage(
    data_dir: str | os.PathLike[str],
    venue: str,
    date: str,
    fresh_s: float,
    *,
    now_ms: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Coverage of one venue on one UTC day.

    Per instrument: ``active_s`` (seconds in the active set, from the market logs and the
    snapshot, clipped to the day and to now), ``fresh_s`` (seconds of that time with a book at
    most ``fresh_s`` old: a book is fresh during ``[ts_ms, ts_ms + fresh_s)``), ``coverage``
    (fresh / active), ``books`` and ``gaps`` (gap records of the instrument that day). Then a
    ``summary`` of the venue, venue-wide (cooldown) gaps included.
    """
    now = scope.now_ms() if now_ms is None else now_ms
    d0, d1 = day_bounds(date)
    hi = min(d1, now)
    fresh_ms = int(fresh_s * 1000)
    cat = read.market_catalog(data_dir, venue)
    times, gaps = book_times(data_dir, venue, d0 - fresh_ms, d1, progress=progress)
    gap_n: Counter[str] = Counter(g["instrument_id"] for g in gaps if g.get("instrument_id") and g["ts_ms"] >= d0)
    venue_gaps = [g for g in gaps if g.get("instrument_id") is None and g["ts_ms"] >= d0]
    rows = []
    for iid in sorted(set(cat) | set(times)):
        e = cat.get(iid, {})
        act = active_intervals(e, d0, hi) if e else []
        ts = times.get(iid, [])
        books = sum(1 for t in ts if t >= d0)
        if not act and not books:
            continue
        fresh = _fresh_intervals(ts, fresh_ms)
        active_ms = sum(b - a for a, b in act)
        fresh_in = _overlap(fresh, act)
        rows.append(
            {
                "instrument_id": iid,
                "market_id": e.get("market_id"),
                "outcome": e.get("outcome"),
                "title": e.get("title"),
                "active_s": round(active_ms / 1000, 3),
                "fresh_s": round(fresh_in / 1000, 3),
                "coverage": round(fresh_in / active_ms, 5) if active_ms else None,
                "books": books,
                "gaps": gap_n.get(iid, 0),
                "fresh_outside_active_s": round((_overlap(fresh, [(d0, hi)]) - fresh_in) / 1000, 3),
            }
        )
    act_total = sum(r["active_s"] for r in rows)
    fresh_total = sum(r["fresh_s"] for r in rows)
    covs = [r["coverage"] for r in rows if r["coverage"] is not None]
    summary = {
        "venue": venue,
        "date": date,
        "fresh_window_s": fresh_s,
        "instruments": len(rows),
        "active_s": round(act_total, 3),
        "fresh_s": round(fresh_total, 3),
        "coverage": round(fresh_total / act_total, 5) if act_total else None,
        "coverage_median": round(statistics.median(covs), 5) if covs else None,
        "below_90pct": sum(1 for c in covs if c < 0.9),
        "books": sum(r["books"] for r in rows),
        "gaps": sum(r["gaps"] for r in rows),
        "venue_gaps": len(venue_gaps),
        "venue_gap_s": round(gap_seconds(venue_gaps), 1),
        "books_without_active_span": sum(1 for r in rows if r["active_s"] == 0),
    }
    rows.sort(key=lambda r: (r["coverage"] if r["coverage"] is not None else 2.0, r["instrument_id"]))
    return {"rows": rows, "summary": summary}


def format_coverage(results: list[dict[str, Any]]) -> str:
    out = []
    for res in results:
        s = res["summary"]
        out.append(f"{s['venue']} {s['date']} (a book is fresh {s['fresh_window_s']:g}s; worst first)")
        head = ["instrument", "outcome", "title", "active", "fresh", "coverage", "books", "gaps"]
        rows = [
            [
                short_id(r["instrument_id"], 30),
                (r["outcome"] or "-")[:8],
                (r["title"] or "")[:40],
                fmt_num(r["active_s"], 0) + "s",
                fmt_num(r["fresh_s"], 0) + "s",
                fmt_pct(r["coverage"]),
                fmt_num(r["books"]),
                fmt_num(r["gaps"]),
            ]
            for r in res["rows"]
        ]
        out.append(format_table(head, rows, align="lllrrrrr"))
        out.append("")
    for res in results:
        s = res["summary"]
        out.append(
            f"{s['venue']} {s['date']}: {s['instruments']} instruments, active {fmt_num(s['active_s'], 0)}s, "
            f"fresh {fmt_num(s['fresh_s'], 0)}s, coverage {fmt_pct(s['coverage'])} (median {fmt_pct(s['coverage_median'])}, "
            f"{s['below_90pct']} below 90%), {fmt_num(s['books'])} books, {s['gaps']} gaps, "
            f"{s['venue_gaps']} venue-wide gaps ({fmt_age(s['venue_gap_s'])})"
        )
    return "\n".join(out)


def cli_coverage(settings: Any, args: Any) -> int:
    try:
        day_bounds(args.date)
    except ValueError:
        print(f"collector coverage: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    results = []
    for v in scope.selected_venues(settings, args):
        fresh = args.fresh_s if getattr(args, "fresh_s", None) else 2 * settings.venue(v).interval_s
        results.append(coverage(settings.data_dir, v, args.date, fresh, progress=True))
    if getattr(args, "json", False):
        sys.stdout.write(format_json(results))
    else:
        print(format_coverage(results))
    return 0
