"""``collector stats``: poll_stats and gap records of a period summed up per venue, with a time
series in at most 24 buckets."""

from __future__ import annotations

import os
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from collector import read
from collector.ops import scope
from collector.ops.table import (
    fmt_age,
    fmt_num,
    fmt_pct,
    format_json,
    format_table,
    iso_ms,
)
from collector.read import parse_time
from collector.store import layout

# The poll_stats counters (each record counts its interval): summed over a period. Declared once.
COUNTERS = (
    "requests",
    "requests_ok",
    "requests_failed",
    "submitted",
    "ok",
    "failed",
    "books_written",
    "gaps",
    "http_4xx",
    "http_5xx",
    "http_429",
    "timeouts",
    "expired_dropped",
    "hash_mismatch",
)
_BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86400)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _wmean(pairs: list[tuple[float, float]]) -> float | None:
    tw = sum(w for _v, w in pairs)
    return sum(v * w for v, w in pairs) / tw if tw else None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _vals(recs: list[dict], key: str) -> list[float]:
    return [r[key] for r in recs if _is_num(r.get(key))]


def gap_seconds(gaps: list[dict]) -> float:
    """Total duration of gap records (``to_ts_ms - from_ts_ms``; gaps without a start count 0)."""
    return sum(
        (g["to_ts_ms"] - g["from_ts_ms"]) / 1000
        for g in gaps
        if isinstance(g.get("from_ts_ms"), int) and isinstance(g.get("to_ts_ms"), int)
    )


def _summarize(recs: list[dict], span_s: float | None = None) -> dict[str, Any]:
    """Aggregate poll_stats records (each holds counters of the interval before it)."""
    tot = {k: sum(int(r.get(k) or 0) for r in recs) for k in COUNTERS}
    errors: Counter[str] = Counter()
    for r in recs:
        for k, v in (r.get("errors") or {}).items():
            errors[k] += int(v or 0)
    ts = [r["ts_ms"] for r in recs]
    deltas = [(b - a) / 1000 for a, b in zip(ts, ts[1:]) if b > a]
    step = _median(deltas) or 10.0
    covered = span_s if span_s is not None else (sum(min(d, 3 * step) for d in deltas) + step if recs else 0.0)
    att = tot["ok"] + tot["failed"]
    cd_recs = [r for r in recs if r.get("cooldown_reason")]
    stale = _vals(recs, "stale_instruments")
    dropped = 0
    prev = None
    for r in recs:  # records_dropped is cumulative per poller process
        cur = r.get("records_dropped")
        if isinstance(cur, int):
            if prev is not None and cur >= prev:
                dropped += cur - prev
            elif prev is not None:  # restarted
                dropped += cur
            prev = cur
    return {
        "records": len(recs),
        "from_ms": ts[0] if ts else None,
        "to_ms": ts[-1] if ts else None,
        "covered_s": round(covered, 1),
        "stats_interval_s": step,
        **tot,
        "books_per_s": round(tot["books_written"] / covered, 3) if covered else None,
        "requests_per_s": round(tot["requests"] / covered, 3) if covered else None,
        "fail_rate": round(tot["failed"] / att, 5) if att else None,
        "errors": dict(errors.most_common()),
        "latency_p50_ms": _median(_vals(recs, "latency_p50_ms")),
        "latency_p95_ms": _median(_vals(recs, "latency_p95_ms")),
        "latency_p95_max_ms": max(_vals(recs, "latency_p95_ms"), default=None),
        "latency_p99_max_ms": max(_vals(recs, "latency_p99_ms"), default=None),
        "cooldown_intervals": len(cd_recs),
        "cooldown_s_est": round(len(cd_recs) * step, 1),
        "cooldown_reasons": dict(Counter(r["cooldown_reason"] for r in cd_recs)),
        "target_interval_s": (_vals(recs, "target_interval_s") or [None])[-1],
        "achieved_interval_mean_s": _wmean(
            [(r["achieved_interval_mean_s"], r.get("ok") or 0) for r in recs if _is_num(r.get("achieved_interval_mean_s"))]
        ),
        "achieved_interval_p50_s": _median(_vals(recs, "achieved_interval_p50_s")),
        "achieved_interval_p99_max_s": max(_vals(recs, "achieved_interval_p99_s"), default=None),
        "book_age_p50_s": _median(_vals(recs, "book_age_p50_s")),
        "book_age_p99_max_s": max(_vals(recs, "book_age_p99_s"), default=None),
        "stale_max": max(_vals(recs, "stale_instruments"), default=None),
        "stale_mean": round(statistics.fmean(stale), 2) if stale else None,
        "active_min": min(_vals(recs, "active_instruments"), default=None),
        "active_max": max(_vals(recs, "active_instruments"), default=None),
        "active_last": (_vals(recs, "active_instruments") or [None])[-1],
        "inflight_cap_min": min(_vals(recs, "inflight_cap"), default=None),
        "inflight_cap_max": max(_vals(recs, "inflight_cap"), default=None),
        "writer_errors": sum(1 for r in recs if r.get("writer_error")),
        "last_writer_error": next((r["writer_error"] for r in reversed(recs) if r.get("writer_error")), None),
        "snapshot_errors": sum(1 for r in recs if r.get("snapshot_error")),
        "last_snapshot_error": next((r["snapshot_error"] for r in reversed(recs) if r.get("snapshot_error")), None),
        "records_dropped": dropped,
    }


def stats_summary(
    data_dir: str | os.PathLike[str],
    venues: Sequence[str],
    since_ms: int,
    until_ms: int,
    *,
    buckets: bool = True,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per venue: :func:`_summarize` of its poll_stats in ``[since, until)``, cooldown episodes
    from the venue-wide gap records, and a time series in at most 24 buckets."""
    out: dict[str, dict[str, Any]] = {}
    for v in venues:
        recs = list(read.iter_records(data_dir, v, layout.POLL_STATS_STREAM, since_ms, until_ms, record_types={"poll_stats"}))
        s = _summarize(recs)
        gaps = list(
            read.iter_records(data_dir, v, layout.BOOK_STREAM, since_ms, until_ms, record_types={"gap"}, progress=progress)
        )
        vg = [g for g in gaps if g.get("instrument_id") is None]
        s["instrument_gaps"] = len(gaps) - len(vg)
        s["cooldown_episodes"] = len(vg)
        s["cooldown_s"] = round(gap_seconds(vg), 1)
        s["gap_reasons"] = dict(Counter(str(g.get("reason")) for g in gaps).most_common())
        if buckets and recs:
            span = (until_ms - since_ms) / 1000
            size = next((b for b in _BUCKETS_S if span / b <= 24), _BUCKETS_S[-1])
            groups: dict[int, list[dict]] = {}
            for r in recs:
                groups.setdefault(r["ts_ms"] // (size * 1000) * size * 1000, []).append(r)
            s["bucket_s"] = size
            s["buckets"] = [{"start_ms": k, **_bucket_view(_summarize(g))} for k, g in sorted(groups.items())]
        out[v] = s
    return out


def _bucket_view(s: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "records", "books_written", "books_per_s", "failed", "fail_rate", "latency_p95_ms", "cooldown_s_est",
        "achieved_interval_p50_s", "book_age_p99_max_s", "stale_max", "active_last",
    )
    return {k: s.get(k) for k in keys}


def format_stats(summary: dict[str, dict[str, Any]], since_ms: int, until_ms: int) -> str:
    out = [f"poll_stats {iso_ms(since_ms)} .. {iso_ms(until_ms)}", ""]
    head = [
        "venue", "records", "covered", "books", "books/s", "req/s", "ok", "failed", "fail%", "p50 ms", "p95 ms",
        "p99max", "cooldown", "gaps", "interval", "achieved p50", "age p99", "stale max", "active",
    ]
    rows = []
    for v, s in summary.items():
        if not s["records"]:
            rows.append([v, "0"] + ["-"] * (len(head) - 2))
            continue
        rows.append(
            [
                v,
                fmt_num(s["records"]),
                fmt_age(s["covered_s"]),
                fmt_num(s["books_written"]),
                fmt_num(s["books_per_s"], 1),
                fmt_num(s["requests_per_s"], 2),
                fmt_num(s["ok"]),
                fmt_num(s["failed"]),
                fmt_pct(s["fail_rate"]),
                fmt_num(s["latency_p50_ms"], 0),
                fmt_num(s["latency_p95_ms"], 0),
                fmt_num(s["latency_p99_max_ms"], 0),
                f"{fmt_age(s['cooldown_s'])} ({s['cooldown_episodes']}x)" if s["cooldown_episodes"] else "-",
                fmt_num(s["instrument_gaps"]),
                fmt_age(s["target_interval_s"]),
                fmt_age(s["achieved_interval_p50_s"]),
                fmt_age(s["book_age_p99_max_s"]),
                fmt_num(s["stale_max"]),
                f"{fmt_num(s['active_min'])}-{fmt_num(s['active_max'])}",
            ]
        )
    out.append(format_table(head, rows))
    for v, s in summary.items():
        if not s["records"]:
            out.append(f"\n{v}: no poll_stats in the period")
            continue
        out.append("")
        http = f"http 4xx={s['http_4xx']} 5xx={s['http_5xx']} 429={s['http_429']} timeouts={s['timeouts']}"
        out.append(f"{v}: requests {fmt_num(s['requests'])} (failed {fmt_num(s['requests_failed'])}); {http}")
        if s["errors"]:
            total = sum(s["errors"].values()) or 1
            errs = ", ".join(f"{k} {n} ({n / total * 100:.0f}%)" for k, n in s["errors"].items())
            out.append(f"{v}: errors by kind: {errs}")
        if s["cooldown_reasons"]:
            out.append(f"{v}: in cooldown at {s['cooldown_intervals']} stats ticks: {s['cooldown_reasons']}")
        if s["gap_reasons"]:
            out.append(f"{v}: gap reasons: {s['gap_reasons']}")
        for k in ("last_writer_error", "last_snapshot_error"):
            if s[k]:
                out.append(f"{v}: {k.replace('_', ' ')}: {s[k]}")
        if s["records_dropped"]:
            out.append(f"{v}: writer dropped {s['records_dropped']} records")
        if s.get("buckets"):
            out.append(f"{v}: per {fmt_age(s['bucket_s'])}")
            bh = [
                "start (UTC)", "books", "books/s", "failed", "fail%", "p95 ms", "cooldown",
                "achieved p50", "age p99", "stale", "active",
            ]
            br = [
                [
                    iso_ms(b["start_ms"])[5:16].replace("T", " "),
                    fmt_num(b["books_written"]),
                    fmt_num(b["books_per_s"], 1),
                    fmt_num(b["failed"]),
                    fmt_pct(b["fail_rate"]),
                    fmt_num(b["latency_p95_ms"], 0),
                    fmt_age(b["cooldown_s_est"]) if b["cooldown_s_est"] else "-",
                    fmt_age(b["achieved_interval_p50_s"]),
                    fmt_age(b["book_age_p99_max_s"]),
                    fmt_num(b["stale_max"]),
                    fmt_num(b["active_last"]),
                ]
                for b in s["buckets"]
            ]
            out.append(format_table(bh, br))
    return "\n".join(out)


def cli_stats(settings: Any, args: Any) -> int:
    now = scope.now_ms()
    since = parse_time(getattr(args, "since", None) or "1h", now_ms=now)
    until = parse_time(args.until, now_ms=now) if getattr(args, "until", None) else now
    venues = scope.selected_venues(settings, args)
    summary = stats_summary(settings.data_dir, venues, since, until, progress=True)
    if getattr(args, "json", False):
        doc = {"since_ms": since, "until_ms": until, "venues": summary}
        sys.stdout.write(format_json(doc))
    else:
        print(format_stats(summary, since, until))
    return 0
