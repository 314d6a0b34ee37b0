"""A validator for everything the collector writes (docs/schema.md), and the data checks every
reliability case runs: schema, duplicates within a file, level order, torn lines, coverage.

``validate(rec)`` returns a list of problems (empty = valid). It is strict on purpose: every field
of every record type is checked for presence and type, and a field the schema does not list is a
problem too (the schema doc is the contract; a new field must be documented first).

``scan(data_dir)`` reads every data file, validates every line and returns a :class:`Dataset`
with the records and the problems; ``assert_clean(ds)`` fails with the first problems listed.
``coverage(...)`` is the issue's figure: instrument-seconds with a fresh book over
instrument-seconds active.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from collector.store.changes import Expander

VENUES = ("polymarket", "limitless", "kalshi")
STREAM_TYPES = {
    "orderbooks": {"orderbook", "unchanged", "gap"},
    "book_changes": {"book_snapshot", "book_change", "last_trade", "gap"},
    "poll_stats": {"poll_stats"},
    "poll_errors": {"poll_error"},
    "markets": {"market"},
    "trades": {"trade", "gap"},
}
ERROR_KINDS = {
    "not_found", "rate_limited", "server_error", "client_error", "timeout", "transport", "bad_payload",
    "internal", "venue_error",
}
# epoch ms between 2000-01-01 and 2100-01-01: anything else is a unit or clock bug
TS_MIN, TS_MAX = 946_684_800_000, 4_102_444_800_000

# The writer's names: <stream>.<YYYYmmddTHHMMZ>.<HHMMSSmmm>-<pid>-<hex>.jsonl ; discovery's market
# change logs: markets.<HHMMSS>.<pid>.jsonl
WRITER_NAME = re.compile(r"^(?P<stream>[a-z_]+)\.(?P<period>\d{8}T\d{4}Z)\.\d{9}-\d+-[0-9a-f]{6}\.jsonl$")
MARKETS_NAME = re.compile(r"^markets\.\d{6}\.\d+\.jsonl$")


# --------------------------------------------------------------------------- field checks


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_num(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and math.isfinite(v)


def _is_str(v: Any) -> bool:
    return type(v) is str


def _opt(check):
    return lambda v: v is None or check(v)


def _ts(v: Any) -> bool:
    return _is_int(v) and TS_MIN <= v <= TS_MAX


def _nonneg_num(v: Any) -> bool:
    return _is_num(v) and v >= 0


def _nonneg_int(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _str_list(v: Any) -> bool:
    return type(v) is list and all(_is_str(x) for x in v)


def _levels_ok(v: Any) -> bool:
    return type(v) is list and all(
        type(lv) is list and len(lv) == 2 and _nonneg_num(lv[0]) and _nonneg_num(lv[1]) for lv in v
    )


def _int_dict(v: Any) -> bool:
    return type(v) is dict and all(_is_str(k) and _nonneg_int(x) for k, x in v.items())


ENVELOPE = {"record_type": _is_str, "schema_version": lambda v: v == 1}

ORDERBOOK_REQUIRED = {
    **ENVELOPE,
    "venue": lambda v: v in VENUES,
    "instrument_id": _is_str,
    "poll_key": lambda v: _is_str(v) and v != "",
    "market_id": _is_str,
    "outcome": _opt(_is_str),
    "ts_ms": _ts,
    "bids": _levels_ok,
    "asks": _levels_ok,
    "best_bid": _opt(_nonneg_num),
    "best_ask": _opt(_nonneg_num),
    "mid": _opt(_nonneg_num),
    "spread": _opt(_is_num),  # a crossed book has a negative spread
    "latency_ms": _nonneg_num,
    "source": lambda v: v == "rest",
}
ORDERBOOK_OPTIONAL = {
    "ob_ts_ms": _nonneg_int,
    "hash": _is_str,
    "hash_ok": _opt(lambda v: type(v) is bool),  # written exactly when "hash" is (null: not checked)
    "tick_size": _nonneg_num,
}
ORDERBOOK_EXTRAS = {
    "polymarket": {"last_trade_price": _nonneg_num, "min_order_size": _nonneg_num, "neg_risk": lambda v: type(v) is bool},
    "limitless": {
        "size_decimals": _nonneg_int,
        "token_id": _is_str,
        "last_trade_price": _nonneg_num,
        "adjusted_midpoint": _nonneg_num,
        "midpoint": _nonneg_num,
    },
}

UNCHANGED_REQUIRED = {
    **ENVELOPE,
    "venue": lambda v: v in VENUES,
    "instrument_id": _is_str,
    "ts_ms": _ts,
    "latency_ms": _nonneg_num,
}
UNCHANGED_OPTIONAL = {
    "ob_ts_ms": _nonneg_int,
    "hash": _is_str,
    "hash_ok": _opt(lambda v: type(v) is bool),
}

GAP_REQUIRED = {
    **ENVELOPE,
    "venue": lambda v: v in VENUES,
    "instrument_id": _opt(_is_str),
    "ts_ms": _ts,
    "from_ts_ms": _opt(_ts),
    "to_ts_ms": _ts,
    "reason": lambda v: _is_str(v) and v != "",
}
# 0 only in a restart gap (nothing was polled: the process was not running; checked below)
GAP_OPTIONAL = {"failures": lambda v: _is_int(v) and v >= 0}

# stream capture (book_changes/): every record of one venue message shares conn + seq
STREAM_ENVELOPE = {
    **ENVELOPE,
    "venue": lambda v: v in VENUES,
    "instrument_id": lambda v: _is_str(v) and v != "",
    "ts_ms": _ts,
    "ob_ts_ms": _opt(_nonneg_int),
    "conn": lambda v: _is_str(v) and v != "",
    "seq": lambda v: _is_int(v) and v >= 0,  # 0 only in a rest snapshot (checked below)
}
BOOK_SNAPSHOT_REQUIRED = {
    **STREAM_ENVELOPE,
    "reason": lambda v: v in ("subscribe", "venue_book", "resync", "update"),
    "bids": _levels_ok,
    "asks": _levels_ok,
    "best_bid": _opt(_nonneg_num),
    "best_ask": _opt(_nonneg_num),
    "hash": _opt(_is_str),
    "hash_ok": _opt(lambda v: type(v) is bool),
    "tick_size": _opt(_nonneg_num),
    "last_trade_price": _opt(_nonneg_num),
    "source": lambda v: v in ("ws", "rest"),
}
BOOK_CHANGE_REQUIRED = {
    **STREAM_ENVELOPE,
    "bids": _levels_ok,  # only the changed levels; size 0 removes one
    "asks": _levels_ok,
    "best_bid": _opt(_nonneg_num),
    "best_ask": _opt(_nonneg_num),
    "hash": _opt(_is_str),
    "hash_ok": _opt(lambda v: type(v) is bool),
    "synced": lambda v: type(v) is bool,
}
BOOK_CHANGE_OPTIONAL = {"tick_size": _nonneg_num}
LAST_TRADE_REQUIRED = {
    **STREAM_ENVELOPE,
    "price": _nonneg_num,
    "size": _opt(_nonneg_num),
    "side": _opt(_is_str),
    "fee_rate_bps": _opt(_nonneg_num),
}

TRADE_REQUIRED = {
    **ENVELOPE,
    "venue": lambda v: v in VENUES,
    "instrument_id": _is_str,
    "ts_ms": _ts,
    "ob_ts_ms": _opt(_ts),
    "key": lambda v: _is_str(v) and v != "",
    "price": lambda v: _nonneg_num(v) and v <= 1,
    "size": lambda v: _nonneg_num(v) and v > 0,
    "side": lambda v: v in (None, "buy", "sell"),
    "trade_id": _opt(_is_str),
    "tx_hash": _opt(_is_str),
    "fee_rate_bps": _opt(_nonneg_num),
    "fee": _opt(_nonneg_num),
    "source": lambda v: v in ("ws", "rest"),
}

POLL_STATS_REQUIRED = {
    **ENVELOPE,
    "ts_ms": _ts,
    "venue": lambda v: v in VENUES,
    "active_instruments": _nonneg_int,
    "requests": _nonneg_int,
    "requests_ok": _nonneg_int,
    "requests_failed": _nonneg_int,
    "submitted": _nonneg_int,
    "ok": _nonneg_int,
    "failed": _nonneg_int,
    "books_written": _nonneg_int,
    "books_changed": _nonneg_int,
    "books_unchanged": _nonneg_int,
    "gaps": _nonneg_int,
    "http_4xx": _nonneg_int,
    "http_5xx": _nonneg_int,
    "http_429": _nonneg_int,
    "timeouts": _nonneg_int,
    "held_back": _nonneg_int,
    "errors": _int_dict,
    "latency_p50_ms": _opt(_nonneg_num),
    "latency_p95_ms": _opt(_nonneg_num),
    "latency_p99_ms": _opt(_nonneg_num),
    "cooldown_remaining_s": _nonneg_num,
    "cooldown_reason": _opt(_is_str),
    "workers": lambda v: _is_int(v) and v >= 1,
    "inflight_cap": lambda v: _is_int(v) and v >= 1,
    "inflight": _nonneg_int,
    "target_interval_s": lambda v: _is_num(v) and v > 0,
    "achieved_interval_mean_s": _opt(_nonneg_num),
    "achieved_interval_p50_s": _opt(_nonneg_num),
    "achieved_interval_p99_s": _opt(_nonneg_num),
    "book_age_p50_s": _opt(_nonneg_num),
    "book_age_p99_s": _opt(_nonneg_num),
    "stale_instruments": _nonneg_int,
    "expired_dropped": _nonneg_int,
    "hash_mismatch": _nonneg_int,
    "snapshot_error": _opt(_is_str),
    "writer_error": _opt(_is_str),
    "records_dropped": _nonneg_int,
    "stream": _opt(lambda v: isinstance(v, dict)),
    "trades": _opt(lambda v: isinstance(v, dict)),
}

POLL_ERROR_REQUIRED = {
    **ENVELOPE,
    "ts_ms": _ts,
    "venue": lambda v: v in VENUES,
    "market_id": _is_str,
    "slug": _is_str,
    "instrument_id": lambda v: _is_str(v) and v != "",
    "http_status": _opt(lambda v: _is_int(v) and 100 <= v <= 599),
    "latency_ms": _nonneg_num,
    "error_type": lambda v: v in ERROR_KINDS,
    "consecutive_failures": lambda v: _is_int(v) and v >= 1,
    "message": lambda v: _is_str(v) and len(v) <= 300,
}

def _dec_str(v: Any) -> bool:
    """Canonical decimal text: no exponent, no sign, no trailing zeros after the point."""
    return _is_str(v) and re.fullmatch(r"(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?", v) is not None


def _is_bool(v: Any) -> bool:
    return type(v) is bool


# market `details` keys per venue (docs/schema.md); a key the venue did not send is omitted.
MARKET_DETAILS = {
    "polymarket": {
        "neg_risk_market_id": _is_str, "group_item_title": _is_str, "order_min_size": _dec_str,
        "fees_enabled": _is_bool, "fee_type": _is_str, "maker_base_fee": _dec_str, "taker_base_fee": _dec_str,
        "fee_rate": _dec_str, "fee_exponent": _dec_str, "fee_rebate_rate": _dec_str, "fee_taker_only": _is_bool,
        "accepting_orders_at_ms": _is_int, "closed_at_ms": _is_int, "uma_resolution_status": _is_str,
    },
    "limitless": {
        "underlying": _is_str, "stable_slug": _is_str, "open_price": _dec_str, "open_price_at_ms": _is_int,
        "fee_enabled": _is_bool, "min_size": _dec_str, "max_spread": _dec_str, "daily_reward": _dec_str,
        "rebate_rate": _dec_str, "creator_fee_pct": _dec_str, "taker_delay_ms": _nonneg_int,
    },
}


def _details_problems(venue: str, d: Any) -> list[str]:
    if d is None:
        return []  # instruments from snapshots written before `details` existed
    if type(d) is not dict:
        return [f"details is not an object: {d!r:.80}"]
    checks = MARKET_DETAILS.get(venue, {})
    out = []
    for k, v in d.items():
        check = checks.get(k)
        if check is None:
            out.append(f"unknown details field {k}")
        elif not check(v):  # null is never written: absent fields are omitted
            out.append(f"bad details.{k}={v!r:.80}")
    return out


MARKET_REQUIRED = {
    **ENVELOPE,
    "event": lambda v: v in ("added", "removed"),
    "reason": lambda v: _is_str(v) and (v.startswith("rule:") or v in ("closed_or_gone", "expired")),
    "ts_ms": _ts,
    "venue": lambda v: v in VENUES,
    "poll_key": lambda v: _is_str(v) and v != "",
    "instrument_id": _is_str,
    "market_id": _is_str,
    "outcome": _opt(_is_str),
    "title": _is_str,
    "slug": _is_str,
    "expires_at_ms": _opt(_is_int),
    "tick_size": _opt(_is_str),
    "event_slug": _opt(_is_str),
    "series_slug": _opt(_is_str),
    "recurrence": _opt(_is_str),
    "tags": _str_list,
    "volume_24h": _opt(_is_num),
    "liquidity": _opt(_is_num),
    "starts_at_ms": _opt(_is_int),
    "size_decimals": _opt(_nonneg_int),
    "meta": lambda v: type(v) is dict,
    "details": lambda v: v is None or type(v) is dict,
}


def _fields(rec: Mapping[str, Any], required: dict, optional: dict, out: list[str]) -> None:
    for k, check in required.items():
        if k not in rec:
            out.append(f"missing {k}")
        elif not check(rec[k]):
            out.append(f"bad {k}={rec[k]!r:.80}")
    for k, v in rec.items():
        if k in required:
            continue
        check = optional.get(k)
        if check is None:
            out.append(f"unknown field {k}")
        elif not check(v):
            out.append(f"bad {k}={v!r:.80}")


def _level_order(rec: Mapping[str, Any], out: list[str]) -> None:
    bp, ap = [p for p, _ in rec["bids"]], [p for p, _ in rec["asks"]]
    if any(a < b for a, b in zip(bp, bp[1:])):
        out.append(f"bids not descending: {bp[:8]}")
    if any(a > b for a, b in zip(ap, ap[1:])):
        out.append(f"asks not ascending: {ap[:8]}")


def validate(rec: Any, *, check_gap_order: bool = True, stream: str | None = None) -> list[str]:
    """Problems of one record against docs/schema.md (empty list: valid). ``stream``: the
    directory it was read from (a gap in ``book_changes`` has other rules)."""
    if type(rec) is not dict:
        return [f"not an object: {type(rec).__name__}"]
    rt = rec.get("record_type")
    out: list[str] = []
    if rt == "orderbook":
        venue = rec.get("venue")
        _fields(rec, ORDERBOOK_REQUIRED, {**ORDERBOOK_OPTIONAL, **ORDERBOOK_EXTRAS.get(venue, {})}, out)
        if out:
            return out
        if rec["instrument_id"] != f"{venue}:{rec['poll_key']}":
            out.append(f"instrument_id {rec['instrument_id']!r} != venue:poll_key")
        if ("hash" in rec) != ("hash_ok" in rec):
            out.append("hash_ok must be written exactly when hash is")
        bids, asks = rec["bids"], rec["asks"]
        bp, ap = [p for p, _ in bids], [p for p, _ in asks]
        if any(a < b for a, b in zip(bp, bp[1:])):
            out.append(f"bids not descending: {bp[:8]}")
        if any(a > b for a, b in zip(ap, ap[1:])):
            out.append(f"asks not ascending: {ap[:8]}")
        bb, ba = rec["best_bid"], rec["best_ask"]
        if bb != (bp[0] if bp else None):
            out.append(f"best_bid {bb} != first bid {bp[:1]}")
        if ba != (ap[0] if ap else None):
            out.append(f"best_ask {ba} != first ask {ap[:1]}")
        if bp and ap:
            if rec["mid"] is None or not math.isclose(rec["mid"], (bb + ba) / 2, rel_tol=1e-9, abs_tol=1e-12):
                out.append(f"mid {rec['mid']} != ({bb} + {ba}) / 2")
            if rec["spread"] is None or not math.isclose(rec["spread"], ba - bb, rel_tol=1e-9, abs_tol=1e-12):
                out.append(f"spread {rec['spread']} != {ba} - {bb}")
        elif rec["mid"] is not None or rec["spread"] is not None:
            out.append("mid/spread set although a side is empty")
    elif rt == "unchanged":
        _fields(rec, UNCHANGED_REQUIRED, UNCHANGED_OPTIONAL, out)
        if out:
            return out
        if not rec["instrument_id"].startswith(rec["venue"] + ":"):
            out.append(f"instrument_id {rec['instrument_id']!r} of another venue")
        if ("hash" in rec) != ("hash_ok" in rec):
            out.append("hash_ok must be written exactly when hash is")
        if rec.get("hash_ok") is False:
            out.append("a book whose hash failed is written in full, never as unchanged")
    elif rt == "gap" and stream == "trades":
        _fields(rec, GAP_REQUIRED, {"backfilled": lambda v: type(v) is bool}, out)
        if not out and "backfilled" not in rec:
            out.append("a trades gap says whether it was backfilled")
        if not out and rec["from_ts_ms"] is not None and rec["from_ts_ms"] > rec["to_ts_ms"]:
            out.append(f"gap from_ts_ms {rec['from_ts_ms']} > to_ts_ms {rec['to_ts_ms']}")
    elif rt == "trade":
        _fields(rec, TRADE_REQUIRED, {}, out)
        if not out and not rec["instrument_id"].startswith(rec["venue"] + ":"):
            out.append(f"instrument_id {rec['instrument_id']!r} of another venue")
    elif rt == "gap":
        _fields(rec, GAP_REQUIRED, GAP_OPTIONAL, out)
        if out:
            return out
        iid = rec["instrument_id"]
        if iid is not None and not iid.startswith(rec["venue"] + ":"):
            out.append(f"gap instrument_id {iid!r} of another venue")
        if rec["ts_ms"] != rec["to_ts_ms"]:
            out.append("gap ts_ms != to_ts_ms")
        if stream == "book_changes":  # stream gaps: always an instrument, never failures
            if iid is None or "failures" in rec:
                out.append("a book_changes gap needs instrument_id and has no failures")
        elif (iid is None) == ("failures" in rec):
            out.append("failures must be present exactly for instrument gaps")
        elif rec.get("failures") == 0 and rec["reason"] != "restart":
            out.append("failures 0 outside a restart gap")
        if iid is None and not rec["reason"].startswith("cooldown:"):
            out.append(f"venue gap reason {rec['reason']!r} is not cooldown:<reason>")
        if check_gap_order and rec["from_ts_ms"] is not None and rec["from_ts_ms"] > rec["to_ts_ms"]:
            out.append(f"gap from_ts_ms {rec['from_ts_ms']} > to_ts_ms {rec['to_ts_ms']}")
    elif rt in ("book_snapshot", "book_change", "last_trade"):
        req, opt = {"book_snapshot": (BOOK_SNAPSHOT_REQUIRED, {}), "book_change": (BOOK_CHANGE_REQUIRED, BOOK_CHANGE_OPTIONAL),
                    "last_trade": (LAST_TRADE_REQUIRED, {})}[rt]
        _fields(rec, req, opt, out)
        if out:
            return out
        if not rec["instrument_id"].startswith(rec["venue"] + ":"):
            out.append(f"instrument_id {rec['instrument_id']!r} of another venue")
        if rec["seq"] == 0 and not (rt == "book_snapshot" and rec["source"] == "rest"):
            out.append(f"{rt} with seq 0: only a REST snapshot can come before a connection's first message")
        if rt != "last_trade":
            _level_order(rec, out)
        if rt == "book_snapshot":
            bp, ap = rec["bids"], rec["asks"]
            if rec["best_bid"] != (bp[0][0] if bp else None) or rec["best_ask"] != (ap[0][0] if ap else None):
                out.append("best_bid/best_ask != first levels")
    elif rt == "poll_stats":
        _fields(rec, POLL_STATS_REQUIRED, {}, out)
        if not out:
            if rec["requests_ok"] + rec["requests_failed"] > rec["requests"] + 10_000:
                out.append("requests_ok + requests_failed way above requests")
    elif rt == "poll_error":
        _fields(rec, POLL_ERROR_REQUIRED, {}, out)
        if not out and not rec["instrument_id"].startswith(rec["venue"] + ":"):
            out.append("poll_error instrument_id of another venue")
    elif rt == "market":
        _fields(rec, MARKET_REQUIRED, {}, out)
        if not out and rec["instrument_id"] != f"{rec['venue']}:{rec['poll_key']}":
            out.append("market instrument_id != venue:poll_key")
        if not out:
            out += _details_problems(rec["venue"], rec["details"])
    else:
        out.append(f"unknown record_type {rt!r}")
    return out


# --------------------------------------------------------------------------- files


@dataclass
class FileInfo:
    path: Path
    venue: str
    stream: str
    lines: int = 0
    torn: bytes = b""  # the bytes after the last newline (a torn last line), if any


@dataclass
class Dataset:
    root: Path
    files: list[FileInfo] = field(default_factory=list)
    records: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # (venue, stream) -> records
    problems: list[str] = field(default_factory=list)

    def of(self, venue: str, stream: str, record_type: str | None = None) -> list[dict]:
        recs = self.records.get((venue, stream), [])
        return recs if record_type is None else [r for r in recs if r.get("record_type") == record_type]

    def books(self, venue: str) -> list[dict]:
        return self.of(venue, "orderbooks", "orderbook")

    def gaps(self, venue: str) -> list[dict]:
        return self.of(venue, "orderbooks", "gap")

    def stats(self, venue: str) -> list[dict]:
        return sorted(self.of(venue, "poll_stats"), key=lambda r: r["ts_ms"])

    def errors(self, venue: str) -> list[dict]:
        return self.of(venue, "poll_errors")

    def torn_files(self) -> list[FileInfo]:
        return [f for f in self.files if f.torn]

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "torn": len(self.torn_files()),
            **{f"{v}/{s}": len(r) for (v, s), r in sorted(self.records.items())},
        }


def data_files(root: Path) -> list[Path]:
    """Every JSONL data file under ``root`` (not the snapshots in state/)."""
    return sorted(p for p in Path(root).rglob("*.jsonl") if p.parent.parent.name != "state" and p.parent.name != "state")


def scan(
    root: Path,
    *,
    allow_torn: bool = False,
    check_gap_order: bool = True,
    since_files: Iterable[Path] = (),
) -> Dataset:
    """Read and validate every data file under ``root``.

    ``allow_torn``: a last line without newline is allowed (a crash); otherwise it is a problem.
    Whatever the flag, a torn tail must not parse as a complete record and every complete line
    must. ``since_files``: files to leave out (e.g. the files of an earlier run).
    """
    root = Path(root)
    skip = {Path(p) for p in since_files}
    ds = Dataset(root)
    for path in data_files(root):
        if path in skip:
            continue
        rel = path.relative_to(root).parts
        if len(rel) != 4 or rel[0] not in VENUES or rel[1] not in STREAM_TYPES or not rel[2].startswith("date="):
            ds.problems.append(f"{path}: unexpected location")
            continue
        venue, stream, part, name = rel
        info = FileInfo(path, venue, stream)
        ds.files.append(info)
        m = (MARKETS_NAME if stream == "markets" else WRITER_NAME).match(name)
        if m is None:
            ds.problems.append(f"{path}: unexpected file name")
        elif stream != "markets":
            if m["stream"] != stream:
                ds.problems.append(f"{path}: name says stream {m['stream']}")
            p = m["period"]
            if part != f"date={p[:4]}-{p[4:6]}-{p[6:8]}":
                ds.problems.append(f"{path}: period {p} in partition {part}")
        raw = path.read_bytes()
        cut = raw.rfind(b"\n") + 1
        info.torn = raw[cut:]
        if info.torn:
            if not allow_torn:
                ds.problems.append(f"{path}: last line not terminated: {info.torn[:60]!r}")
            else:
                try:
                    orjson.loads(info.torn)
                    ds.problems.append(f"{path}: the unterminated tail is a complete record (lost newline?)")
                except orjson.JSONDecodeError:
                    pass
        recs = ds.records.setdefault((venue, stream), [])
        seen: set[tuple[Any, Any]] = set()
        exp = Expander()  # unchanged records stand for their instrument's last book in this file
        for n, line in enumerate(raw[:cut].split(b"\n")[:-1], 1):
            info.lines += 1
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                ds.problems.append(f"{path}:{n}: not JSON ({e}): {line[:60]!r}")
                continue
            errs = validate(rec, check_gap_order=check_gap_order, stream=stream)
            if errs:
                ds.problems.append(f"{path}:{n}: {'; '.join(errs[:4])}")
                continue
            if rec["record_type"] not in STREAM_TYPES[stream]:
                ds.problems.append(f"{path}:{n}: {rec['record_type']} record in {stream}/")
            if rec.get("venue") != venue:
                ds.problems.append(f"{path}:{n}: venue {rec.get('venue')} in {venue}/")
            if rec["record_type"] == "unchanged":
                full = exp.expand(rec)
                if full is None:
                    ds.problems.append(f"{path}:{n}: unchanged {rec['instrument_id']} before any book of it in the file")
                    continue
                rec = full
            elif rec["record_type"] == "orderbook":
                exp.remember(rec)
            if rec["record_type"] == "orderbook":
                key = (rec["instrument_id"], rec["ts_ms"])
                if key in seen:
                    ds.problems.append(f"{path}:{n}: duplicate (instrument_id, ts_ms) {key}")
                seen.add(key)
            recs.append(rec)
    return ds


def assert_clean(ds: Dataset, limit: int = 15) -> None:
    assert not ds.problems, f"{len(ds.problems)} data problem(s):\n" + "\n".join(ds.problems[:limit])


# --------------------------------------------------------------------------- coverage


def _merge(iv: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _overlap(xs: list[tuple[int, int]], lo: int, hi: int) -> int:
    return sum(max(0, min(b, hi) - max(a, lo)) for a, b in xs)


@dataclass
class Coverage:
    active_s: float
    fresh_s: float
    per_instrument: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.fresh_s / self.active_s if self.active_s else 1.0

    def worst(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.per_instrument.items(), key=lambda kv: kv[1])[:n]

    def __repr__(self) -> str:
        return f"Coverage({self.ratio:.4f} = {self.fresh_s:.1f}/{self.active_s:.1f} s, worst {self.worst(3)})"


def coverage(
    books: Iterable[Mapping[str, Any]],
    active: Mapping[str, list[tuple[int, int]]],
    fresh_ms: int = 2000,
) -> Coverage:
    """Instrument-seconds with a fresh book over instrument-seconds active.

    ``active``: instrument_id -> its active intervals ``[(lo_ms, hi_ms)]``. A book is fresh during
    ``[ts_ms, ts_ms + fresh_ms)``. Books of instruments not in ``active`` are ignored.
    """
    times: dict[str, list[int]] = {}
    for b in books:
        if b["instrument_id"] in active:
            times.setdefault(b["instrument_id"], []).append(b["ts_ms"])
    act_total = fresh_total = 0
    per: dict[str, float] = {}
    for iid, ivs in active.items():
        fresh = _merge([(t, t + fresh_ms) for t in times.get(iid, [])])
        a = sum(max(0, hi - lo) for lo, hi in ivs)
        f = sum(_overlap(fresh, lo, hi) for lo, hi in ivs)
        act_total += a
        fresh_total += f
        if a:
            per[iid] = f / a
    return Coverage(act_total / 1000, fresh_total / 1000, per)


def window(ids: Iterable[str], lo_ms: float, hi_ms: float) -> dict[str, list[tuple[int, int]]]:
    """Every instrument of ``ids`` active over one window."""
    return {i: [(int(lo_ms), int(hi_ms))] for i in ids}
