"""Fault injection and per-venue rate limiting of the simulator (the canned bodies are in
``collector.sim.replies``, the request log in ``collector.sim.requestlog``).

One ``FaultEngine`` holds a config per venue ("polymarket" covers /gamma, /clob and the market
channel, "limitless" covers /limitless and its Socket.IO feed, "kalshi" covers /kalshi); the feed keys (``ws_*``) are
declared and checked in ``collector.sim.feeds.faults``. All REST fault randomness comes from one
seeded RNG (the feeds draw from their own).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import deque
from typing import Any

import orjson

from collector.sim.feeds import faults as feed_faults
from collector.sim.replies import CF_403, CF_502, HOSTS, Reply, json_reply, too_many
from collector.sim.venue import VENUES

# Documented limits. Polymarket: sliding windows (requests, seconds) per bucket.
POLY_LIMITS = {
    "gamma": [300, 10.0],
    "clob.books": [500, 10.0],
    "clob.book": [1500, 10.0],
    "clob": [9000, 10.0],
    "data.trades": [200, 10.0],
    "data": [1000, 10.0],
}
# Limitless: at most 2 requests in flight and at least 300 ms between two requests.
LIM_LIMITS = {"concurrency": 2, "min_spacing_s": 0.3}
# Kalshi: one token bucket per caller, every request costing `cost` tokens. The anonymous budget
# is undocumented (about 3 requests/s per IP); Basic keys get 200 tokens/s at 10 per request.
KAL_LIMITS = {"read_tokens_per_s": 30.0, "bucket_tokens": 30.0, "cost": 10.0}
LIMITS = {"polymarket": POLY_LIMITS, "limitless": LIM_LIMITS, "kalshi": KAL_LIMITS}

# bad_hash_rate: fraction of Polymarket books served with one level changed after hashing, so
# the body no longer matches its `hash` (what a trimmed or edited book looks like).
# Trade pages (data-api /trades, Kalshi /markets/trades, Limitless /events): trade_dup_rate per
# item (sent twice, next to itself), trade_missing_rate per item (one field left out: its size
# or its id), trade_shuffle_rate per page (items out of order).
TRADE_KEYS = ("trade_dup_rate", "trade_shuffle_rate", "trade_missing_rate")
RATE_KEYS = ("error_rate", "timeout_rate", "malformed_rate", "html_rate", "throttle_rate", "bad_hash_rate") + TRADE_KEYS
NUM_KEYS = ("latency_ms", "jitter_ms", "timeout_s")
BOOL_KEYS = ("rate_limit", "down")
# page_cap: serve at most this many items per discovery page whatever `limit` asks (0 = off);
# a real server may cap below the documented maximum, and a short page is then not the end.
INT_KEYS = ("page_cap",)
CONTROL_KEYS = (
    set(RATE_KEYS) | set(NUM_KEYS) | set(BOOL_KEYS) | set(INT_KEYS) | {"retry_after_s", "throttle_for_s", "limits"}
    | feed_faults.KEYS
)


def default_config(venue: str, args: Any = None) -> dict[str, Any]:
    g = (lambda k, d: getattr(args, k, d) if args is not None else d)  # noqa: E731
    return {
        "error_rate": float(g("error_rate", 0.0)),
        "timeout_rate": float(g("timeout_rate", 0.0)),
        "malformed_rate": float(g("malformed_rate", 0.0)),
        "html_rate": float(g("html_rate", 0.0)),
        "throttle_rate": 0.0,
        "bad_hash_rate": float(g("bad_hash_rate", 0.0)),
        **{k: float(g(k, 0.0) or 0.0) for k in TRADE_KEYS},
        "latency_ms": float(g("latency_ms", 0.0)),
        "jitter_ms": float(g("jitter_ms", 0.0)),
        "timeout_s": 60.0,
        "page_cap": int(g("page_cap", 0) or 0),
        "rate_limit": not bool(g("no_rate_limit", False)),
        "down": False,
        "retry_after_s": "auto",
        "limits": copy.deepcopy(LIMITS[venue]),
        **feed_faults.defaults(args),
    }


class ControlError(ValueError):
    pass


class FaultEngine:
    def __init__(self, seed: int, args: Any = None) -> None:
        self.rng = random.Random(f"{seed}:faults")
        self.args = args
        self.cfg: dict[str, dict[str, Any]] = {v: default_config(v, args) for v in VENUES}
        self.throttle_until: dict[str, float] = {v: 0.0 for v in VENUES}
        self.windows: dict[str, deque] = {}
        self.inflight: dict[str, int] = {v: 0 for v in VENUES}
        self.last_start: dict[str, float] = {v: 0.0 for v in VENUES}
        self.bad_hash_served: dict[str, int] = {v: 0 for v in VENUES}
        self.trade_faults: dict[str, dict[str, int]] = {v: {"duplicated": 0, "shuffled": 0, "missing": 0} for v in VENUES}
        self.buckets: dict[str, list[float]] = {}  # venue -> [tokens, at] (Kalshi's token bucket)

    # ---------------- control

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        out = {}
        for v in VENUES:
            c = copy.deepcopy(self.cfg[v])
            c["throttle_remaining_s"] = round(max(0.0, self.throttle_until[v] - now), 3)
            c["inflight"] = self.inflight[v]
            c["bad_hash_served"] = self.bad_hash_served[v]
            c["trade_faults_served"] = dict(self.trade_faults[v])
            out[v] = c
        return out

    def reset_limiter(self) -> None:
        self.windows.clear()
        self.buckets.clear()
        self.last_start = {v: 0.0 for v in VENUES}

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        venue = body.get("venue")
        if venue is not None and venue not in VENUES:
            raise ControlError(f"venue must be one of {VENUES} or null")
        unknown = set(body) - CONTROL_KEYS - {"venue", "reset"}
        if unknown:
            raise ControlError(f"unknown keys: {sorted(unknown)}")
        targets = [venue] if venue else list(VENUES)
        # validate everything first so a bad request changes nothing
        for k in RATE_KEYS:
            if k in body and not (isinstance(body[k], (int, float)) and 0 <= body[k] <= 1):
                raise ControlError(f"{k} must be a number in [0, 1]")
        for k in NUM_KEYS + ("throttle_for_s",):
            if k in body and not (isinstance(body[k], (int, float)) and body[k] >= 0):
                raise ControlError(f"{k} must be a number >= 0")
        for k in INT_KEYS:
            if k in body and not (type(body[k]) is int and body[k] >= 0):
                raise ControlError(f"{k} must be an integer >= 0")
        for k in BOOL_KEYS:
            if k in body and not isinstance(body[k], bool):
                raise ControlError(f"{k} must be true or false")
        if "retry_after_s" in body:
            ra = body["retry_after_s"]
            if not (ra is None or ra == "auto" or (isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra >= 0)):
                raise ControlError('retry_after_s must be a number >= 0, "auto" or null')
        why = feed_faults.problem(body)
        if why:
            raise ControlError(why)
        if "limits" in body and not isinstance(body["limits"], dict):
            raise ControlError("limits must be an object")
        lim = body.get("limits") or {}
        bad = set(lim) - set(POLY_LIMITS) - set(LIM_LIMITS) - set(KAL_LIMITS)
        if venue is not None:
            bad |= set(lim) - set(LIMITS[venue])
        if bad:
            raise ControlError(f"unknown limits: {sorted(bad)}")
        for k, val in lim.items():
            if k in POLY_LIMITS:
                if not (isinstance(val, list) and len(val) == 2 and all(isinstance(x, (int, float)) for x in val)
                        and val[0] >= 0 and val[1] > 0):
                    raise ControlError(f"limits.{k} must be [requests, window_s]")
            elif not (isinstance(val, (int, float)) and val >= 0):
                raise ControlError(f"limits.{k} must be a number >= 0")
        now = time.time()
        touched_limits = False
        for v in targets:
            c = self.cfg[v]
            if body.get("reset"):
                self.cfg[v] = c = default_config(v, self.args)
                self.throttle_until[v] = 0.0
                touched_limits = True
            for k in RATE_KEYS + NUM_KEYS + BOOL_KEYS + INT_KEYS + ("retry_after_s",) + feed_faults.SETTING_KEYS:
                if k in body:
                    c[k] = copy.copy(body[k])
            if "rate_limit" in body or "limits" in body:
                touched_limits = True
            for k, val in (body.get("limits") or {}).items():
                if k not in c["limits"]:
                    continue
                if v == "polymarket":
                    c["limits"][k] = [int(val[0]), float(val[1])]
                else:
                    c["limits"][k] = int(val) if k == "concurrency" else float(val)
            if "throttle_for_s" in body:
                self.throttle_until[v] = now + float(body["throttle_for_s"])
        if touched_limits:
            self.reset_limiter()
        return self.snapshot()

    # ---------------- per-request decisions

    def book_body(self, venue: str, body: bytes) -> bytes:
        """``body``, or (at bad_hash_rate) a copy with its first level's size changed and the
        venue's hash left as it was."""
        rate = self.cfg[venue]["bad_hash_rate"]
        if rate <= 0 or self.rng.random() >= rate:
            return body
        d = orjson.loads(body)
        levels = d.get("bids") or d.get("asks")
        if levels:
            size = levels[0]["size"]
            levels[0]["size"] = size + ("1" if "." in size else "0")  # still a number, another value
        else:
            d["timestamp"] = str(int(d["timestamp"]) + 1)
        self.bad_hash_served[venue] += 1
        return orjson.dumps(d)

    def trade_page(self, venue: str, items: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
        """A page of trade items after the trade faults; ``fields`` are the keys a missing-field
        fault may drop ("data.contracts": a key of the item's ``data``)."""
        cfg, rng, n = self.cfg[venue], self.rng, self.trade_faults[venue]
        dup, shuf, miss = cfg["trade_dup_rate"], cfg["trade_shuffle_rate"], cfg["trade_missing_rate"]
        if dup <= 0 and shuf <= 0 and miss <= 0:
            return items
        out = []
        for it in items:
            if miss > 0 and rng.random() < miss:
                it = copy.deepcopy(it)
                outer, _, inner = rng.choice(fields).rpartition(".")
                (it[outer] if outer else it).pop(inner, None)
                n["missing"] += 1
            out.append(it)
            if dup > 0 and rng.random() < dup:
                out.append(it)
                n["duplicated"] += 1
        if shuf > 0 and len(out) > 1 and rng.random() < shuf:
            before = list(out)
            for _ in range(8):  # a shuffle that left the page as it was is no fault
                rng.shuffle(out)
                if out != before:
                    break
            n["shuffled"] += 1
        return out

    def page_limit(self, venue: str, limit: int) -> int:
        """``limit`` after the page_cap fault (the server's own cap already applied)."""
        cap = self.cfg[venue]["page_cap"]
        return min(limit, cap) if cap > 0 else limit

    def _retry_after(self, cfg: dict[str, Any], auto_s: float) -> dict | None:
        ra = cfg["retry_after_s"]
        if ra is None:
            return None
        if ra == "auto":
            ra = auto_s
        return {"Retry-After": str(max(0, math.ceil(ra)))}

    def throttled(self, venue: str, app: str, now: float) -> Reply | None:
        cfg = self.cfg[venue]
        until = self.throttle_until[venue]
        if until > now:
            return too_many(venue, self._retry_after(cfg, until - now))
        if cfg["throttle_rate"] > 0 and self.rng.random() < cfg["throttle_rate"]:
            return too_many(venue, self._retry_after(cfg, 1))
        return None

    def limit(self, venue: str, buckets: tuple[str, ...], now: float) -> Reply | None:
        """Rate limiter; returns a 429 reply, or None when the request may proceed."""
        cfg = self.cfg[venue]
        if not cfg["rate_limit"]:
            return None
        if venue == "limitless":
            lim = cfg["limits"]
            if self.inflight[venue] >= lim["concurrency"] or now - self.last_start[venue] < lim["min_spacing_s"]:
                return too_many(venue, self._retry_after(cfg, 1))
            self.last_start[venue] = now
            return None
        if venue == "kalshi":
            lim = cfg["limits"]
            cap = lim["bucket_tokens"]
            tokens, at = self.buckets.get(venue, (cap, now))
            tokens = min(cap, tokens + (now - at) * lim["read_tokens_per_s"])
            if tokens < lim["cost"]:
                self.buckets[venue] = [tokens, now]
                return too_many(venue, None)
            self.buckets[venue] = [tokens - lim["cost"], now]
            return None
        wins = []
        for b in buckets:
            n, w = cfg["limits"][b]
            dq = self.windows.get(b)
            if dq is None:
                dq = self.windows[b] = deque()
            edge = now - w
            while dq and dq[0] <= edge:
                dq.popleft()
            if len(dq) >= n:
                wait = (dq[0] + w - now) if dq else w
                return too_many(venue, self._retry_after(cfg, wait))
            wins.append(dq)
        for dq in wins:
            dq.append(now)
        return None

    def delay_s(self, venue: str) -> float:
        cfg = self.cfg[venue]
        lat, jit = cfg["latency_ms"], cfg["jitter_ms"]
        if lat <= 0 and jit <= 0:
            return 0.0
        d = lat + (self.rng.uniform(-jit, jit) if jit > 0 else 0.0)
        return max(0.0, d) / 1000.0

    def draw(self, venue: str) -> str | None:
        """Which fault (if any) hits this request: timeout, error, html or malformed."""
        cfg = self.cfg[venue]
        t, e, h, m = cfg["timeout_rate"], cfg["error_rate"], cfg["html_rate"], cfg["malformed_rate"]
        if t <= 0 and e <= 0 and h <= 0 and m <= 0:
            return None
        u = self.rng.random()
        if u < t:
            return "timeout"
        u -= t
        if u < e:
            return "error"
        u -= e
        if u < h:
            return "html"
        u -= h
        if u < m:
            return "malformed"
        return None

    # ---------------- canned replies

    def error_reply(self, venue: str, app: str) -> Reply:
        status = self.rng.choice((500, 502, 503, 504)) if app != "gamma" else self.rng.choice((500, 500, 503))
        if app == "gamma":
            return json_reply(status, {"type": "internal error", "error": "cannot get the information"})
        if app == "kalshi":
            return json_reply(status, {"error": {"code": "internal_server_error", "message": "internal server error",
                                                 "service": "exchange"}})
        if app in ("clob", "data"):
            msg = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
            return json_reply(status, {"error": msg[status]})
        msg = {500: "Internal server error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return json_reply(status, {"statusCode": status, "message": msg[status]})

    def html_reply(self, app: str) -> Reply:
        ray = "%016x" % self.rng.getrandbits(64)
        if self.rng.random() < 0.5:
            return Reply(502, CF_502.format(host=HOSTS[app], ray=ray).encode(), "text/html; charset=UTF-8")
        return Reply(403, CF_403.format(host=HOSTS[app], ray=ray).encode(), "text/html; charset=UTF-8")

    def truncate(self, body: bytes) -> bytes:
        if len(body) <= 2:
            return body[:1]
        return body[: self.rng.randint(1, len(body) - 1)]
