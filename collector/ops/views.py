"""Operator views over the recorded data: ``collector status | tail | stats | coverage``.

Each view is a function returning plain data (``venue_status``, ``tail``, ``stats_summary``,
``coverage``) plus a formatter; the ``cli_*`` entry points (called by ``collector.cli.main``) wire
them to the settings and print aligned plain-text tables (or JSON with ``--json``). Long reads
draw a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from collector import read
from collector.read import parse_time
from collector.read.records import book_times
from collector.read.scan import expand_instruments
from collector.store.files import iter_jsonl_lines, jsonl_files
from collector.store.layout import date_partitions, day_bounds, utc_day

__all__ = [
    "cli_coverage",
    "cli_stats",
    "cli_status",
    "cli_tail",
    "coverage",
    "format_table",
    "stats_summary",
    "tail",
    "venue_status",
]

STREAMS = ("orderbooks", "markets", "poll_stats", "poll_errors")


# --------------------------------------------------------------------------- formatting


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """Plain-text table; ``align`` is one ``l``/``r`` per column (default: numbers right)."""
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    n = len(headers)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r[:n]):
            widths[i] = max(widths[i], len(c))
    if align is None:
        align = "".join(
            "r" if rows and all(_looks_numeric(r[i]) for r in rows if i < len(r) and r[i] not in ("", "-")) else "l"
            for i in range(n)
        )

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells[:n]):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths])] + [line(r) for r in rows])


_NUM_RE = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s?(%|s|ms|m|h|d|x|[kMGT]?B)?$")


def _looks_numeric(s: str) -> bool:
    return bool(_NUM_RE.match(s.strip()))


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if s < 10:
        return f"{sign}{s:.1f}s"
    if s < 120:
        return f"{sign}{s:.0f}s"
    if s < 7200:
        return f"{sign}{s / 60:.0f}m"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:.1f}h"
    return f"{sign}{s / 86400:.1f}d"


def fmt_bytes(n: int | float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def fmt_num(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def iso_ms(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000)) + "Z"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- status


def _last_record(path: Path, record_type: str | None = None, tail_bytes: int = 1 << 18) -> dict | None:
    """The last complete, valid record (of ``record_type``) of a JSONL (or .zst) file."""
    if path.name.endswith(".zst"):
        lines = []
        for line in iter_jsonl_lines(path):
            lines.append(line)
            if len(lines) > 1000:
                del lines[:500]
    else:
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - tail_bytes))
                data = f.read()
        except OSError:
            return None
        lines = data.split(b"\n")[:-1]  # drop the (possibly torn) text after the last newline
        if size > tail_bytes and lines:
            lines = lines[1:]  # the first piece may be a partial line
    for line in reversed(lines):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict) and (record_type is None or rec.get("record_type") == record_type):
            return rec
    return None


def newest_record(data_dir: str | os.PathLike[str], venue: str, stream: str, record_type: str | None = None) -> dict | None:
    """The latest record (by ``ts_ms``) at the end of the newest files of a stream."""
    parts = date_partitions(Path(data_dir) / venue / stream)
    for date in reversed(list(parts)):
        files = jsonl_files(parts[date])
        starts = {}
        for p in files:
            m = re.match(r"^[A-Za-z0-9_-]+\.(\d{8}T\d{4}Z)\.", p.name)
            starts[p] = m.group(1) if m else p.name
        if not files:
            continue
        top = max(starts.values())
        # every file of the latest period (several writers), else the last file by name
        cands = [p for p in files if starts[p] == top] or files[-1:]
        best = None
        for p in cands:
            r = _last_record(p, record_type)
            if r is not None and isinstance(r.get("ts_ms"), int) and (best is None or r["ts_ms"] > best["ts_ms"]):
                best = r
        if best is not None:
            return best
    return None


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

    now = _now_ms() if now_ms is None else now_ms
    vdir = Path(data_dir) / venue
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
    book = newest_record(data_dir, venue, "orderbooks", "orderbook")
    st["last_book_ts_ms"] = book.get("ts_ms") if book else None
    st["last_book_age_s"] = (now - book["ts_ms"]) / 1000 if book else None
    ps = newest_record(data_dir, venue, "poll_stats")
    st["stats"] = ps
    st["stats_age_s"] = (now - ps["ts_ms"]) / 1000 if ps else None
    today = utc_day(now)
    n_today = 0
    for s in STREAMS:
        part = vdir / s / f"date={today}"
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
        "ok", "failed", "fail%", "p95 ms", "stale", "files today", "disk",
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
        if ps.get("records_dropped"):
            notes.append(f"{v}: writer dropped {ps['records_dropped']} records since the poller started")
    notes += extra_notes
    now = rows[0]["now_ms"] if rows else _now_ms()
    out = [f"collector status  data_dir={data_dir}  now={iso_ms(now)}", "", format_table(head, body)]
    if notes:
        out += [""] + notes
    out.append("(ok/failed/fail%/p95/stale/errors: the latest poll_stats record, i.e. its last interval)")
    return "\n".join(out)


def cli_status(settings: Any, args: Any, extra_notes: Sequence[str] = ()) -> int:
    """``extra_notes``: what the caller knows beyond the files (the orchestrator's view)."""
    venues = _venues(settings, args)
    rows = [venue_status(settings.data_dir, v) for v in venues]
    print(format_status(rows, settings.data_dir, extra_notes))
    return 0


def _venues(settings: Any, args: Any) -> list[str]:
    return list(dict.fromkeys(getattr(args, "venue", None) or settings.venues))


# --------------------------------------------------------------------------- tail


def _short(iid: str, width: int = 24) -> str:
    if len(iid) <= width:
        return iid
    keep = width - 1
    return iid[: keep - 7] + "…" + iid[-7:]


def _lvl(levels: list | None) -> str:
    if not levels:
        return "-"
    p, s = levels[0][0], levels[0][1]
    return f"{p} x {_compact_num(s)}"


def _compact_num(x: Any) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e4:
        return f"{f / 1e3:.1f}k"
    return f"{f:.2f}".rstrip("0").rstrip(".")


TAIL_HEADER = ["time (UTC)", "venue", "poll key", "outcome", "bid x size", "ask x size", "mid", "spread", "lvls", "lat ms"]
_TAIL_W = [12, 10, 24, 8, 18, 18, 8, 7, 5, 7]


def format_tail_line(rec: dict) -> str:
    """One aligned line for a book (or a gap) record."""
    ts = rec.get("ts_ms") or 0
    t = time.strftime("%H:%M:%S", time.gmtime(ts // 1000)) + f".{ts % 1000:03d}"
    if rec.get("record_type") == "gap":
        frm, to = rec.get("from_ts_ms"), rec.get("to_ts_ms")
        dur = f"{(to - frm) / 1000:.1f}s" if isinstance(frm, int) and isinstance(to, int) else "?"
        who = _short(rec.get("instrument_id") or "(venue-wide)")
        fails = f" after {rec['failures']} failures" if rec.get("failures") else ""
        return f"{t:<12}  {rec.get('venue', ''):<10}  {who:<24}  GAP {dur} {rec.get('reason')}{fails}"
    cells = [
        t,
        str(rec.get("venue", "")),
        _short(str(rec.get("poll_key") or rec.get("instrument_id", ""))),
        str(rec.get("outcome") or "-")[:8],
        _lvl(rec.get("bids")),
        _lvl(rec.get("asks")),
        "-" if rec.get("mid") is None else str(rec["mid"]),
        "-" if rec.get("spread") is None else str(rec["spread"]),
        f"{len(rec.get('bids') or [])}/{len(rec.get('asks') or [])}",
        fmt_num(rec.get("latency_ms"), 0),
    ]
    right = {6, 7, 8, 9}
    return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, _TAIL_W))).rstrip()


def format_tail_header() -> str:
    right = {6, 7, 8, 9}
    return "  ".join(h.rjust(w) if i in right else h.ljust(w) for i, (h, w) in enumerate(zip(TAIL_HEADER, _TAIL_W)))


@dataclass
class _Followed:
    offset: int = 0  # bytes of (decompressed) content consumed: always at a line start
    done: bool = False


class Follower:
    """Follows the ``orderbooks`` files of some venues as they are written.

    Watches the two latest ``date=`` partitions of each venue; a new file is read from its
    start, a file present at the start from its end. A followed ``X.jsonl`` that is compressed
    away (rotation with ``compress_closed``) is finished from ``X.jsonl.zst``. Only complete
    lines are returned.
    """

    def __init__(self, data_dir: str | os.PathLike[str], venues: Sequence[str], stream: str = "orderbooks") -> None:
        self.data_dir = Path(data_dir)
        self.venues = list(venues)
        self.stream = stream
        self.files: dict[Path, _Followed] = {}  # keyed by the .jsonl path
        self._started = False

    def _current(self) -> list[Path]:
        out = []
        for v in self.venues:
            parts = date_partitions(self.data_dir / v / self.stream)
            for d in list(parts)[-2:]:
                try:
                    names = os.listdir(parts[d])
                except OSError:
                    continue
                out += [parts[d] / n for n in names if not n.startswith(".") and n.endswith((".jsonl", ".jsonl.zst"))]
        return out

    def start(self) -> None:
        """Take the current files as already read (to their last complete line)."""
        for p in self._current():
            key = p.with_name(p.name[:-4]) if p.name.endswith(".zst") else p
            if key in self.files:
                continue
            if p.name.endswith(".zst"):
                self.files[key] = _Followed(0, True)
            else:
                self.files[key] = _Followed(_complete_size(p))
        self._started = True

    def poll(self) -> list[bytes]:
        """New complete lines since the last call (in file order, files by name)."""
        if not self._started:
            self.start()
        out: list[bytes] = []
        seen = set()
        for p in sorted(self._current(), key=lambda x: x.name):
            key = p.with_name(p.name[:-4]) if p.name.endswith(".zst") else p
            seen.add(key)
            f = self.files.get(key)
            if f is None:
                f = self.files[key] = _Followed()
            if f.done:
                continue
            if p.name.endswith(".zst"):
                if key.exists():
                    continue  # crash during compression: keep following X.jsonl
                out += _lines_after(p, f.offset)
                f.done = True
            else:
                lines, f.offset = _read_new(p, f.offset)
                out += lines
        for key in [k for k in self.files if k not in seen]:
            del self.files[key]  # compacted away or an old partition
        return out


def _complete_size(p: Path) -> int:
    """Size of the file up to (and including) its last newline."""
    try:
        with open(p, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            pos = size
            while pos > 0:
                step = min(1 << 16, pos)
                f.seek(pos - step)
                chunk = f.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    return pos - step + i + 1
                pos -= step
            return 0
    except OSError:
        return 0


def _read_new(p: Path, offset: int) -> tuple[list[bytes], int]:
    try:
        with open(p, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        z = p.with_name(p.name + ".zst")
        if z.exists():
            return _lines_after(z, offset), offset
        return [], offset
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end <= 0:
        return [], offset
    return [x for x in data[:end].split(b"\n") if x], offset + end


def _lines_after(z: Path, offset: int) -> list[bytes]:
    """Complete lines of a .zst file after ``offset`` bytes of content."""
    out, pos = [], 0
    for line in iter_jsonl_lines(z):
        if pos >= offset:
            out.append(line)
        pos += len(line) + 1
    return out


def _matcher(instruments: Sequence[str] | None, venues: Sequence[str]) -> Callable[[dict], bool]:
    ids = expand_instruments(instruments, venues)
    if ids is None:
        return lambda r: True
    return lambda r: r.get("instrument_id") in ids or (r.get("record_type") == "gap" and r.get("instrument_id") is None)


def last_records(
    data_dir: str | os.PathLike[str], venues: Sequence[str], n: int, match: Callable[[dict], bool]
) -> list[dict]:
    """The last ``n`` matching orderbook-stream records of the newest files, ordered by ts_ms."""
    found: list[dict] = []
    for v in venues:
        parts = date_partitions(Path(data_dir) / v / "orderbooks")
        got: list[dict] = []
        for d in reversed(list(parts)):
            for p in reversed(jsonl_files(parts[d])):
                recs = []
                for line in iter_jsonl_lines(p):
                    try:
                        r = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(r, dict) and match(r):
                        recs.append(r)
                got = recs + got
                if len(got) >= n:
                    break
            if len(got) >= n:
                break
        found += got
    found.sort(key=lambda r: r.get("ts_ms") or 0)
    return found[-n:] if n else []


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
    while not (stop and stop()):
        batch = follower.poll()
        for line in batch:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or not match(rec):
                continue
            if emit(rec, line):
                out.flush()
                return printed
        if batch:
            out.flush()
        else:
            time.sleep(poll_s)
    return printed


def cli_tail(settings: Any, args: Any) -> int:
    venues = _venues(settings, args)
    tail(
        settings.data_dir,
        venues,
        instruments=getattr(args, "instrument", None),
        raw=bool(getattr(args, "raw", False)),
        lines=int(getattr(args, "lines", 0) or 0),
    )
    return 0


# --------------------------------------------------------------------------- stats

_COUNTERS = (
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


def _gap_seconds(gaps: list[dict]) -> float:
    """Total duration of gap records (``to_ts_ms - from_ts_ms``; gaps without a start count 0)."""
    return sum(
        (g["to_ts_ms"] - g["from_ts_ms"]) / 1000
        for g in gaps
        if isinstance(g.get("from_ts_ms"), int) and isinstance(g.get("to_ts_ms"), int)
    )


def _summarize(recs: list[dict], span_s: float | None = None) -> dict[str, Any]:
    """Aggregate poll_stats records (each holds counters of the interval before it)."""
    tot = {k: sum(int(r.get(k) or 0) for r in recs) for k in _COUNTERS}
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
        recs = list(read.iter_records(data_dir, v, "poll_stats", since_ms, until_ms, record_types={"poll_stats"}))
        s = _summarize(recs)
        gaps = list(
            read.iter_records(data_dir, v, "orderbooks", since_ms, until_ms, record_types={"gap"}, progress=progress)
        )
        vg = [g for g in gaps if g.get("instrument_id") is None]
        s["instrument_gaps"] = len(gaps) - len(vg)
        s["cooldown_episodes"] = len(vg)
        s["cooldown_s"] = round(
            _gap_seconds(vg),
            1,
        )
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
    now = _now_ms()
    since = parse_time(getattr(args, "since", None) or "1h", now_ms=now)
    until = parse_time(args.until, now_ms=now) if getattr(args, "until", None) else now
    venues = _venues(settings, args)
    summary = stats_summary(settings.data_dir, venues, since, until, progress=True)
    if getattr(args, "json", False):
        doc = {"since_ms": since, "until_ms": until, "venues": summary}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_stats(summary, since, until))
    return 0


# --------------------------------------------------------------------------- coverage


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
    now = _now_ms() if now_ms is None else now_ms
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
        "venue_gap_s": round(
            _gap_seconds(venue_gaps),
            1,
        ),
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
                _short(r["instrument_id"], 30),
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
    for v in _venues(settings, args):
        fresh = args.fresh_s if getattr(args, "fresh_s", None) else 2 * settings.venue(v).interval_s
        results.append(coverage(settings.data_dir, v, args.date, fresh, progress=True))
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_coverage(results))
    return 0


