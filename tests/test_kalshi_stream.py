"""Kalshi's orderbook_delta feed (collector.stream.kalshi): the real demo frames, seq gaps,
resyncs and the REST link through a StreamLane driven by hand (tests/stream_harness.py), and the
connection's commands against a local WebSocket server."""

from __future__ import annotations

import queue
import threading
import time

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.sync.server import serve

from collector.config.settings import load_settings
from collector.config.streams import KalshiStreamSettings
from collector.model.records import Instrument
from collector.store.writer_set import WriterSet
from collector.stream import make_stream
from collector.stream.events import FeedDown, FeedMessage, FeedUp
from collector.stream.kalshi import KalshiFeed
from collector.stream.lane import LIVE, RESYNC, WAITING, StreamLane
from collector.stream.ws_kalshi import KalshiConnection
from tests.real_payloads import load
from tests.stream_harness import FakeRest, NoSocket

T = "KXGOLDH-26AUG2711-T4615.99"


class Sock(NoSocket):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.reconnects_asked: list[str] = []

    def reconnect(self, reason: str) -> None:
        self.reconnects_asked.append(reason)


class H:
    def __init__(self, tmp_path, **kw) -> None:
        self.s = KalshiStreamSettings(enabled=True, **kw)
        self.feed = KalshiFeed(self.s)
        self.feed.connection_cls = Sock
        self.rest = FakeRest()
        self.writers = WriterSet(tmp_path)
        self.dir = tmp_path
        self.lane = StreamLane("kalshi", self.s, self.feed, self.rest, self.writers, None)
        self.ts = 1_787_838_983_000
        self.n = 0
        self.gen = 0

    def track(self, *tickers: str) -> None:
        insts = [Instrument(venue="kalshi", poll_key=t, market_id=t, outcome="YES", tick_size="0.01",
                            meta={"notional": "1"}) for t in tickers]
        self.lane.set_instruments(insts, time.monotonic())

    def up(self) -> None:
        self.gen += 1
        self.lane.conns[0].connected = True
        self.lane.on_event(FeedUp(self.lane, 0, f"c-{self.gen}", self.ts), time.monotonic())

    def down(self) -> None:
        self.lane.conns[0].connected = False
        self.lane.on_event(FeedDown(self.lane, 0, self.lane.conn_ids[0], self.ts, "seq_gap"), time.monotonic())

    def feed_(self, data) -> None:
        self.n += 1
        self.ts += 5
        ev = FeedMessage(self.lane, 0, self.lane.conn_ids[0], self.n, self.ts, time.monotonic(), data)
        self.lane.on_event(ev, ev.mono)

    def records(self, rt: str | None = None) -> list[dict]:
        self.writers.flush(fsync=False)
        out = [orjson.loads(x) for p in sorted(self.dir.rglob("*.jsonl")) for x in p.read_bytes().splitlines() if x]
        return [r for r in out if rt is None or r["record_type"] == rt]


def _frames() -> dict:
    return load("kalshi/ws_frames_demo_haripratiik.json")


def _snap(seq: int, ticker: str = T, yes=(("0.4000", "10.00"),), no=(("0.5000", "7.50"),), sid: int = 1) -> dict:
    return {"type": "orderbook_snapshot", "sid": sid, "seq": seq,
            "msg": {"market_ticker": ticker, "yes_dollars_fp": [list(x) for x in yes], "no_dollars_fp": [list(x) for x in no]}}


def _delta(seq: int, price: str, delta: str, side: str, ticker: str = T, sid: int = 1) -> dict:
    return {"type": "orderbook_delta", "sid": sid, "seq": seq,
            "msg": {"market_ticker": ticker, "price_dollars": price, "delta_fp": delta, "side": side, "ts_ms": 1787838990000 + seq}}


def test_real_frames_snapshot_and_delta(tmp_path):
    f = _frames()
    h = H(tmp_path)
    h.track(T)
    h.up()
    h.feed_(f["REAL_SUBSCRIBED"])
    h.feed_(f["REAL_SNAPSHOT"])
    (snap,) = h.records("book_snapshot")
    # the venue's own ticker frame of that moment: yes bid 0.01 x 1410, yes ask 0.98 x 2500
    tick = f["REAL_TICKER"]["msg"]
    assert snap["bids"] == [[0.01, 1410]] and snap["asks"] == [[0.98, 2500], [0.99, 100]]
    assert (snap["bids"][0][0], snap["asks"][0][0]) == (float(tick["yes_bid_dollars"]), float(tick["yes_ask_dollars"]))
    assert snap["asks"][0][1] == float(tick["yes_ask_size_fp"]) and snap["reason"] == "subscribe"
    h.feed_(f["REAL_DELTA"])  # seq 2 after 1: +10 at the YES 0.01 bid
    (chg,) = h.records("book_change")
    assert chg["bids"] == [[0.01, 1420]] and chg["asks"] == [] and chg["synced"] is True
    assert chg["ob_ts_ms"] == f["REAL_DELTA"]["msg"]["ts_ms"]
    assert h.lane.tracked[T].status == LIVE


def test_real_empty_snapshot_is_an_empty_book(tmp_path):
    f = _frames()
    h = H(tmp_path)
    h.track("KXBTCD-25AUG2617-T112999.99")
    h.up()
    h.feed_(f["REAL_EMPTY_SNAPSHOT"])
    (snap,) = h.records("book_snapshot")
    assert snap["bids"] == [] and snap["asks"] == []


def test_signed_deltas_and_the_no_side(tmp_path):
    h = H(tmp_path)
    h.track(T)
    h.up()
    h.feed_(_snap(1))
    h.feed_(_delta(2, "0.5000", "2.25", "no"))  # NO bid 0.50 -> YES ask 0.50: 7.5 + 2.25
    h.feed_(_delta(3, "0.4000", "-10.00", "yes"))  # the whole bid goes
    h.feed_(_delta(4, "0.4500", "0.01", "no"))  # a new NO bid -> YES ask 0.55, fractional
    chg = h.records("book_change")
    assert [(c["bids"], c["asks"]) for c in chg] == [([], [[0.5, 9.75]]), ([[0.4, 0]], []), ([], [[0.55, 0.01]])]
    assert h.lane.tracked[T].book.levels() == ([], [("0.5", "9.75"), ("0.55", "0.01")])


def test_use_yes_price_takes_no_levels_as_they_are(tmp_path):
    h = H(tmp_path, use_yes_price=True)
    h.track(T)
    h.up()
    h.feed_(_snap(1, no=(("0.6000", "3.00"),)))
    assert h.records("book_snapshot")[0]["asks"] == [[0.6, 3]]


def test_seq_gap_resyncs_every_market_of_the_connection_and_reconnects(tmp_path):
    h = H(tmp_path)
    h.track(T, "KXB")
    h.up()
    h.feed_(_snap(1))
    h.feed_(_snap(2, ticker="KXB"))
    h.feed_(_delta(3, "0.4000", "1.00", "yes"))
    h.feed_(_delta(5, "0.4000", "1.00", "yes"))  # seq 4 never came
    assert h.lane.conns[0].reconnects_asked == ["seq_gap"]
    assert {t.status for t in h.lane.tracked.values()} == {RESYNC}
    assert set(h.rest.expedited) >= {T, "KXB"}  # REST at the full rate until the books are back
    h.feed_(_delta(6, "0.4000", "1.00", "yes"))  # the broken connection's later messages are not used
    assert len(h.records("book_change")) == 1
    h.down()
    assert {t.status for t in h.lane.tracked.values()} == {WAITING}
    h.up()
    h.feed_(_snap(1))  # the new connection's seq starts again
    h.feed_(_snap(2, ticker="KXB"))
    gaps = h.records("gap")
    assert sorted(g["instrument_id"] for g in gaps) == ["kalshi:KXB", f"kalshi:{T}"]
    assert all(g["reason"].startswith("resync:seq_gap") for g in gaps)
    assert {t.status for t in h.lane.tracked.values()} == {LIVE}


def test_negative_size_is_a_broken_book(tmp_path):
    h = H(tmp_path)
    h.track(T)
    h.up()
    h.feed_(_snap(1))
    h.feed_(_delta(2, "0.4000", "-11.00", "yes"))
    assert h.lane.conns[0].reconnects_asked == ["negative_size"]


def test_a_book_crossed_past_the_grace_is_asked_for_again(tmp_path):
    h = H(tmp_path, cross_grace_s=0.05)
    h.track(T)
    h.up()
    h.feed_(_snap(1))
    h.feed_(_delta(2, "0.5500", "1.00", "yes"))  # YES bid 0.55 above the YES ask 0.50: for a moment
    h.feed_(_delta(3, "0.5000", "-7.50", "no"))  # the ask goes: uncrossed, nothing asked
    assert h.lane.tracked[T].status == LIVE and h.lane.conns[0].asked == []
    h.feed_(_delta(4, "0.4000", "1.00", "no"))  # YES ask 0.60 ... then a bid above it stays
    h.feed_(_delta(5, "0.6500", "1.00", "yes"))
    time.sleep(0.1)
    h.feed_(_delta(6, "0.6500", "1.00", "yes"))
    assert h.lane.tracked[T].status == RESYNC and h.lane.conns[0].asked[-2:] == [("unsub", (T,)), ("sub", (T,))]
    assert h.lane.conns[0].reconnects_asked == []  # one market, not the connection
    assert len(h.records("book_change")) == 5  # every venue message is recorded


def test_crossed_or_junk_snapshots_are_not_recorded(tmp_path):
    h = H(tmp_path)
    h.track(T)
    h.up()
    h.feed_(_snap(1, yes=(("0.6000", "1.00"),)))  # crossed: the NO convention flipped?
    h.feed_(_snap(2, yes=(("1.5000", "1.00"),)))
    h.feed_({"type": "orderbook_snapshot", "sid": 1, "seq": 3, "msg": {"market_ticker": T, "yes_dollars_fp": "x"}})
    assert not h.records("book_snapshot") and h.lane.tracked[T].status == WAITING
    assert h.lane.c.errors.get("bad_snapshot") == 2 and h.lane.c.errors.get("BadPayload") == 1


class _Rec:
    def __init__(self, bids, asks) -> None:
        self.bids, self.asks = bids, asks


def test_rest_agreement_and_disagreement(tmp_path):
    h = H(tmp_path, rest_grace_s=0.5)
    h.track(T)
    h.up()
    h.feed_(_snap(1))
    t = h.lane.tracked[T]
    sent = time.monotonic() + 1  # sent after the last message
    h.lane.on_rest_book(T, _Rec([("0.4", "10")], [("0.5", "7.5")]), None, sent, sent)
    assert h.lane.c.rest_agreed == 1 and t.status == LIVE
    # REST ahead of changes still on their way: the book stays live and the changes catch up
    h.lane.on_rest_book(T, _Rec([("0.41", "10")], [("0.5", "7.5")]), None, sent, sent)
    assert t.status == LIVE and t.suspect is not None
    h.feed_(_delta(2, "0.4100", "10.00", "yes"))
    h.feed_(_delta(3, "0.4000", "-10.00", "yes"))
    assert t.status == LIVE and t.suspect is None and h.lane.c.rest_agreed == 2
    good = h.records("book_change")[-1]["ts_ms"]
    # a book that never reaches the REST one within rest_grace_s is asked for again
    sent = time.monotonic() + 1
    h.lane.on_rest_book(T, _Rec([("0.42", "10")], [("0.5", "7.5")]), None, sent, sent)
    h.feed_(_delta(4, "0.3900", "5.00", "yes"))
    h.lane.tick(sent + 0.4)
    assert t.status == LIVE
    h.lane.tick(sent + 0.7)  # (the tick runs every 0.25 s)
    assert t.status == RESYNC and h.lane.conns[0].asked[-2:] == [("unsub", (T,)), ("sub", (T,))]
    assert h.lane.c.mismatches == {"rest_differs": 1}
    h.feed_(_snap(5, yes=(("0.4200", "10.00"),)))  # the venue's fresh snapshot ends the resync
    assert t.status == LIVE and h.records("book_snapshot")[-1]["reason"] == "resync"
    (gap,) = h.records("gap")
    assert gap["reason"] == "resync:rest_differs" and gap["from_ts_ms"] == good  # from before the disagreement


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_make_stream_off_without_opt_in_and_signed_with_a_key(tmp_path):
    assert make_stream("kalshi", load_settings(venues=["kalshi"]), None, WriterSet(tmp_path), None) is None
    s = load_settings(venues=["kalshi"], kalshi={"api_key_id": "kid", "private_key": _pem()},
                      streams={"kalshi": {"enabled": True}})
    lane = make_stream("kalshi", s, None, WriterSet(tmp_path), None)
    hdr = lane.feed.auth_headers()
    assert hdr["KALSHI-ACCESS-KEY"] == "kid" and hdr["KALSHI-ACCESS-SIGNATURE"] and hdr["KALSHI-ACCESS-TIMESTAMP"]


def test_connection_subscribes_and_updates_with_one_sid(tmp_path):
    """Against a local WebSocket server: the signed headers on the upgrade, one subscribe with the
    explicit use_yes_price, then update_subscription with the sid the venue named."""
    got: queue.Queue = queue.Queue()

    def handler(ws):
        got.put(("headers", ws.request.headers))  # case-insensitive
        for raw in ws:
            cmd = orjson.loads(raw)
            got.put(("cmd", cmd))
            if cmd["cmd"] == "subscribe":
                ws.send(orjson.dumps({"id": cmd["id"], "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 7}}))
                ws.send(orjson.dumps(_snap(1, sid=7)))

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        ss = KalshiStreamSettings(enabled=True, url=f"ws://127.0.0.1:{port}/trade-api/ws/v2")
        feed = KalshiFeed(ss)
        feed.configure(load_settings(kalshi={"api_key_id": "kid", "private_key": _pem()}))

        class Target:
            pass

        target = Target()
        target.feed = feed
        out: queue.Queue = queue.Queue()
        conn = KalshiConnection(target, 0, out, ss, keys=[T])
        conn.start()
        try:
            kind, headers = got.get(timeout=5)
            assert kind == "headers" and headers["KALSHI-ACCESS-KEY"] == "kid" and "KALSHI-ACCESS-SIGNATURE" in headers
            _, sub = got.get(timeout=5)
            assert sub["cmd"] == "subscribe" and sub["params"] == {
                "channels": ["orderbook_delta"], "market_tickers": [T], "use_yes_price": False}
            msgs = []
            deadline = time.monotonic() + 5
            while len([m for m in msgs if type(m) is FeedMessage]) < 2 and time.monotonic() < deadline:
                msgs.append(out.get(timeout=5))
            assert [m.data["type"] for m in msgs if type(m) is FeedMessage] == ["subscribed", "orderbook_snapshot"]
            conn.subscribe(["KXB"])
            _, upd = got.get(timeout=5)
            assert upd["cmd"] == "update_subscription" and upd["params"] == {
                "sids": [7], "market_tickers": ["KXB"], "action": "add_markets"}
            assert upd["id"] > sub["id"]
        finally:
            conn.stop()
            conn.join(5)
            server.shutdown()

