"""Kalshi's ``orderbook_delta`` channel: a snapshot per market, then signed size changes, with a
``seq`` per subscription (sid) that numbers every message, acks included.

What a message means (shared/venues/kalshi.md, the real demo frames in shared/real-payloads):

* ``orderbook_snapshot``: ``yes_dollars_fp`` / ``no_dollars_fp`` bids (a side's key is absent
  when it is empty), no time. The YES book: bids from ``yes``, asks = 1 - NO bid with
  ``use_yes_price`` false (as on REST), the NO level's own price with it true.
* ``orderbook_delta``: ``price_dollars``, ``delta_fp`` (a signed change of the level's size, not
  its new size), ``side``, optional ``ts_ms`` (the venue's time: the change's ``ob_ts_ms``).

Sequencing: a ``seq`` that is not the previous one + 1 on the same connection and sid means
messages were lost. The book of every market on that connection is then unknown: each is
resynced (its gap opens at its last trusted message, REST polls it at the full rate) and the
connection is made again, which brings a fresh snapshot per market. A size going below zero is
treated the same way. One venue change arrives as one message per level, so a book may cross
for a moment between them: only a book crossed for ``cross_grace_s``, or a REST book that
disagrees with a live one, asks the venue for that market again (delete + add), whose snapshot
ends the resync.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from collector.model.decimals import fmt
from collector.model.errors import BadPayload
from collector.model.stream_records import SNAPSHOT_RESYNC, SNAPSHOT_SUBSCRIBE
from collector.stream.book import LocalBook, canon
from collector.stream.lane import LIVE, RESYNC, WAITING, StreamLane, Tracked
from collector.stream.ws_kalshi import KalshiConnection

log = logging.getLogger(__name__)

_ONE = Decimal(1)
_SIGNED = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_WS_PATH = "/trade-api/ws/v2"


class KalshiFeed:
    venue = "kalshi"
    connection_cls = KalshiConnection

    def __init__(self, settings: Any) -> None:
        self.s = settings
        self.signer: Any = None
        self._path = urlsplit(settings.url).path or _WS_PATH
        self._seq: dict[tuple[str, Any], int] = {}  # (connection id, sid) -> last seq
        self._lost: set[str] = set()  # connections whose sequence broke (until they are replaced)
        self._venue_book: dict[str, tuple[list, list]] = {}  # ticker -> the REST levels a suspect book must reach

    def configure(self, settings: Any) -> None:
        """The REST key signs the upgrade (collector.venues.kalshi_auth)."""
        k = settings.kalshi
        if k.api_key_id is not None:
            from collector.venues.kalshi_auth import Signer

            self.signer = Signer(k.api_key_id, k.private_key, k.private_key_file)

    def auth_headers(self) -> dict[str, str]:
        return self.signer.headers("GET", self._path) if self.signer is not None else {}

    def key_of(self, inst: Any) -> str:
        return inst.poll_key

    def tick_text(self, b: LocalBook) -> str | None:
        return b.tick_size

    def ltp_text(self, b: LocalBook) -> str | None:
        return None

    def on_up(self, lane: StreamLane, index: int, now: float) -> None:
        # Every subscribed market's snapshot follows the subscription; forget replaced connections.
        current = set(lane.conn_ids)
        self._lost &= current
        self._seq = {k: v for k, v in self._seq.items() if k[0] in current}

    def rest_interval(self, lane: StreamLane, t: Tracked, now: float) -> float:
        return self.s.rest_interval_s

    # -- messages ------------------------------------------------------------------------------
    def on_message(self, lane: StreamLane, msg: Any) -> None:
        d = msg.data
        if type(d) is not dict:
            raise BadPayload("message is not an object")
        if msg.conn in self._lost:
            return  # its books are being rebuilt; the replacement connection brings them
        sid, seq = d.get("sid"), d.get("seq")
        if type(seq) is int:
            key = (msg.conn, sid)
            last = self._seq.get(key)
            self._seq[key] = seq
            if last is not None and seq != last + 1:
                self._broken(lane, msg, f"seq_gap:{last}->{seq}")
                return
        typ = d.get("type")
        if typ == "orderbook_snapshot":
            self._snapshot(lane, msg, d.get("msg"))
        elif typ == "orderbook_delta":
            self._delta(lane, msg, d.get("msg"))
        elif typ == "error":
            m = d.get("msg") if type(d.get("msg")) is dict else {}
            lane.c.bad(f"error:{m.get('code')}")
            log.warning("kalshi stream: venue error %s %s", m.get("code"), str(m.get("msg"))[:80])
        elif typ not in ("subscribed", "ok", "unsubscribed"):
            lane.c.bad(f"type:{typ}")

    def _broken(self, lane: StreamLane, msg: Any, why: str) -> None:
        """Messages were lost (or one made no sense): every book of the connection is unknown."""
        self._lost.add(msg.conn)
        reason = why.split(":", 1)[0]
        log.warning("kalshi stream %s: %s; resyncing its markets", msg.conn, why)
        now = msg.mono
        for t in lane.tracked.values():
            if t.index == msg.index:
                lane.resync(t, reason, now)
        lane.conns[msg.index].reconnect(reason)

    def _ask(self, price: Any) -> str:
        """A NO bid's price as a YES ask."""
        p = canon(price)
        if p is None:
            raise BadPayload(f"bad price {price!r:.20}")
        return p if self.s.use_yes_price else fmt(_ONE - Decimal(p))

    def _snapshot(self, lane: StreamLane, msg: Any, m: Any) -> None:
        if type(m) is not dict:
            raise BadPayload("orderbook_snapshot without msg")
        t = lane.tracked.get(m.get("market_ticker"))
        if t is None:
            lane.c.unknown += 1
            return
        yes, no = m.get("yes_dollars_fp") or [], m.get("no_dollars_fp") or []
        if type(yes) is not list or type(no) is not list or not all(type(lv) is list and len(lv) == 2 for lv in yes + no):
            raise BadPayload("orderbook_snapshot: bad levels")
        book = LocalBook()
        book.replace([(p, q) for p, q in yes], [(self._ask(p), q) for p, q in no])
        if not _in_range(book) or book.crossed():
            lane.c.bad("bad_snapshot")  # not recorded: REST keeps this market until a good one
            return
        book.tick_size = t.inst.tick_size
        t.book = book
        t.params = None
        lane.snapshot(t, msg, SNAPSHOT_RESYNC if t.status == RESYNC else SNAPSHOT_SUBSCRIBE)

    def _delta(self, lane: StreamLane, msg: Any, m: Any) -> None:
        if type(m) is not dict:
            raise BadPayload("orderbook_delta without msg")
        t = lane.tracked.get(m.get("market_ticker"))
        if t is None:
            lane.c.unknown += 1
            return
        if t.status == WAITING:
            lane.c.bad("delta_before_snapshot")
            return
        side, delta = m.get("side"), m.get("delta_fp")
        if side not in ("yes", "no") or type(delta) is not str or not _SIGNED.fullmatch(delta):
            raise BadPayload(f"orderbook_delta: bad side/delta {side!r:.10} {delta!r:.20}")
        is_bid = side == "yes"
        price = canon(m.get("price_dollars")) if is_bid else self._ask(m.get("price_dollars"))
        if price is None:
            raise BadPayload("orderbook_delta: bad price")
        levels = t.book.bids if is_bid else t.book.asks
        old = levels[price][2] if price in levels else "0"
        new = Decimal(old) + Decimal(delta)
        if new < 0:
            self._broken(lane, msg, f"negative_size:{price}")
            return
        if not 0 < Decimal(price) < _ONE:
            raise BadPayload(f"orderbook_delta: price {price} outside (0, 1)")
        p, s = t.book.set_level(is_bid, price, fmt(new))
        ts = m.get("ts_ms")
        t.book.ob_ts_ms = ts if type(ts) is int else None
        lane.change(t, msg, [(p, s)] if is_bid else [], [] if is_bid else [(p, s)], None, None)
        if t.suspect is not None and self._venue_book.get(t.key) == t.book.levels():
            t.suspect = None  # the REST book it differed from was one this change was on its way to
            del self._venue_book[t.key]
            lane.c.rest_agreed += 1
        if not t.book.crossed():
            t.params = None
        elif t.params is None:
            t.params = msg.mono  # crossed since
        elif msg.mono - t.params > self.s.cross_grace_s and t.status == LIVE:
            self._ask_again(lane, t, "crossed", msg.mono)

    # -- REST ----------------------------------------------------------------------------------
    def on_rest(self, lane: StreamLane, t: Tracked, rec: Any, raw: Any, sent: float, now: float) -> None:
        if t.status != LIVE:
            return  # waiting or resyncing: the venue's next snapshot rebuilds it, REST carries it meanwhile
        if t.last_msg_mono is not None and t.last_msg_mono > sent:
            return  # a change arrived while the request was out: the two cannot be ordered
        if (rec.bids, rec.asks) == t.book.levels():
            lane.c.rest_agreed += 1
            t.suspect = None
            self._venue_book.pop(t.key, None)
            return
        if t.suspect is None:
            # The REST book can be ahead of changes still on their way (it carries no seq): ours
            # is wrong only if it does not reach it within rest_grace_s (the lane's tick decides).
            t.suspect = (now, "", None, "rest_differs", t.last_good_ts_ms)
            self._venue_book[t.key] = (rec.bids, rec.asks)

    def suspect_expired(self, lane: StreamLane, t: Tracked, now: float) -> None:
        """The lane's tick: a suspect book (``t.suspect`` set) that never reached the REST one."""
        self._venue_book.pop(t.key, None)
        self._ask_again(lane, t, t.suspect[3], now)

    @staticmethod
    def _ask_again(lane: StreamLane, t: Tracked, reason: str, now: float) -> None:
        """Resync one market and ask the venue for it again (delete + add: a fresh snapshot)."""
        lane.resync(t, reason, now)
        t.params = None
        conn = lane.conns[t.index]
        lane.c.resubscribes += 1
        conn.unsubscribe([t.key])
        conn.subscribe([t.key])


def _in_range(book: LocalBook) -> bool:
    return all(0 < Decimal(p) < _ONE for side in (book.bids, book.asks) for p in side)
