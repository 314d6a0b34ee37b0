"""Discovery core: rules, sticky membership, market records, snapshot persistence.

Runs against a FAKE venue client defined here; simulator end-to-end tests live elsewhere.
"""

from __future__ import annotations

import io
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collector.config.settings import Rule, load_settings
from collector.discovery import rules as R
from collector.discovery.markets_log import market_records_path
from collector.discovery.report import DiscoveryFailed, VenueDiscoveryReport
from collector.discovery.run import cli_discover, discover_venue, run_discovery
from collector.discovery.underlying import underlyings
from collector.model.details import LimitlessDetails
from collector.model.errors import (
    ClientError,
    ConfigError,
    RateLimited,
    ServerError,
    Timeout,
    TransportError,
)
from collector.model.records import Instrument
from collector.store.layout import snapshot_path
from collector.store.snapshot import Snapshot, read_snapshot, write_snapshot
from collector.venues.base import DiscoveryResult

ROOT = Path(__file__).resolve().parents[1]
NOW = int(datetime(2026, 1, 10, 12, 34, 56, tzinfo=timezone.utc).timestamp() * 1000)
MIN = 60_000


# --------------------------------------------------------------------------- fakes


def pm(market: str, outcome: str = "Up", *, expires_in_min: float | None = 60, now: int = NOW, **kw) -> Instrument:
    """A Polymarket-like instrument (one outcome token)."""
    base = dict(
        venue="polymarket",
        poll_key=f"{market}-{outcome}",
        market_id=market,
        outcome=outcome,
        title=f"{market} title",
        slug=f"btc-up-or-down-{market}",
        event_slug="btc-up-or-down-15m-1768000000",
        series_slug="btc-up-or-down-15m",
        recurrence="15m",
        tags=("Crypto", "Bitcoin"),
        volume_24h=1000.0,
        liquidity=500.0,
        expires_at_ms=None if expires_in_min is None else now + int(expires_in_min * MIN),
        tick_size="0.01",
        meta={"condition_id": f"0x{market}"},
    )
    base.update(kw)
    return Instrument(**base)


def pm_market(market: str, **kw) -> list[Instrument]:
    return [pm(market, "Up", **kw), pm(market, "Down", **kw)]


def ll(slug: str, **kw) -> Instrument:
    base = dict(venue="limitless", poll_key=slug, market_id=slug, outcome="YES", slug=slug, title=slug,
                expires_at_ms=NOW + 30 * MIN, size_decimals=6)
    base.update(kw)
    return Instrument(**base)


class FakeClient:
    """A VenueClient whose discover() replays scripted answers (instrument lists or exceptions)."""

    batch_size = 1

    def __init__(self, venue: str, answers):
        self.name = venue
        self.answers = list(answers)
        self.calls = 0
        self.closed = False

    def discover(self) -> DiscoveryResult:
        self.calls += 1
        a = self.answers[min(self.calls, len(self.answers)) - 1]
        if callable(a):  # e.g. a slow venue
            a = a()
        if isinstance(a, BaseException):
            raise a
        return DiscoveryResult(instruments=list(a), pages=max(1, math.ceil(len(a) / 2)), skipped={"closed": 3})

    def fetch_books(self, poll_keys):  # pragma: no cover - not used by discovery
        raise NotImplementedError

    def normalize(self, inst, raw, ts_ms, latency_ms):  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def make_settings(tmp_path, pm_rules=None, ll_rules=None, **kw):
    over: dict = {"data_dir": tmp_path, **kw}
    if pm_rules is not None:
        over["polymarket"] = {"rules": pm_rules}
    if ll_rules is not None:
        over["limitless"] = {"rules": ll_rules}
    return load_settings(**over)


def market_records(tmp_path, venue="polymarket") -> list[dict]:
    out = []
    for f in sorted((tmp_path / venue / "markets").rglob("*.jsonl")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return out


def tree(tmp_path) -> dict[str, tuple[int, int]]:
    """Every file under tmp_path with its (mtime_ns, size)."""
    return {
        str(p.relative_to(tmp_path)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in tmp_path.rglob("*")
        if p.is_file()
    }


# --------------------------------------------------------------------------- rule matching


@pytest.mark.parametrize(
    "rule,inst,expected",
    [
        (Rule(), pm("a"), True),  # no criterion: everything
        (Rule(slug_prefixes=["btc-up"]), pm("a"), True),
        (Rule(slug_prefixes=["BTC-UP"]), pm("a"), True),  # case-insensitive
        (Rule(slug_prefixes=["eth-", "sol-"]), pm("a"), False),
        (Rule(slug_prefixes=["btc-"]), pm("a", slug=""), False),
        (Rule(event_slug_prefixes=["btc-up-or-down-15m-"]), pm("a"), True),  # event slug
        (Rule(event_slug_prefixes=["btc-up-or-down-15m"]), pm("a", event_slug=None), True),  # series slug
        (Rule(event_slug_prefixes=["eth-up-or-down-"]), pm("a"), False),
        (Rule(event_slug_prefixes=["btc-"]), pm("a", event_slug=None, series_slug=None), False),
        (Rule(tags=["crypto"]), pm("a"), True),  # case-insensitive
        (Rule(tags=["politics", "BITCOIN"]), pm("a"), True),  # any match
        (Rule(tags=["politics"]), pm("a"), False),
        (Rule(tags=["crypto"]), pm("a", tags=()), False),
        (Rule(recurrence=["15m", "hourly"]), pm("a"), True),
        (Rule(recurrence=["daily"]), pm("a"), False),
        (Rule(recurrence=["15M"]), pm("a"), True),
        (Rule(recurrence=["15m"]), pm("a", recurrence=None), False),
        (Rule(min_minutes_to_expiry=0), pm("a", expires_in_min=5), True),
        (Rule(min_minutes_to_expiry=0), pm("a", expires_in_min=0), True),  # inclusive
        (Rule(min_minutes_to_expiry=0), pm("a", expires_in_min=-1), False),  # already past
        (Rule(min_minutes_to_expiry=10), pm("a", expires_in_min=5), False),
        (Rule(min_minutes_to_expiry=10), pm("a", expires_in_min=None), True),  # no expiry = +inf
        (Rule(max_minutes_to_expiry=1440), pm("a", expires_in_min=1440), True),  # inclusive
        (Rule(max_minutes_to_expiry=1440), pm("a", expires_in_min=1441), False),
        (Rule(max_minutes_to_expiry=1440), pm("a", expires_in_min=None), False),  # no expiry = +inf
        (Rule(min_volume_24h=1000), pm("a", volume_24h=1000.0), True),
        (Rule(min_volume_24h=1000), pm("a", volume_24h=999.0), False),
        (Rule(min_volume_24h=0), pm("a", volume_24h=None), False),  # unknown fails
        (Rule(min_liquidity=500), pm("a", liquidity=500.0), True),
        (Rule(min_liquidity=501), pm("a", liquidity=500.0), False),
        (Rule(min_liquidity=0), pm("a", liquidity=None), False),
        (Rule(max_markets=1), pm("a"), True),  # set-level: ignored by matches()
        # AND of criteria inside one rule
        (Rule(slug_prefixes=["btc-"], tags=["crypto"], recurrence=["15m"], min_volume_24h=10), pm("a"), True),
        (Rule(slug_prefixes=["btc-"], tags=["crypto"], recurrence=["daily"]), pm("a"), False),
    ],
)
def test_rule_criteria(rule, inst, expected):
    assert R.matches(rule, inst, NOW) is expected


def test_select_is_union_of_rules_in_candidate_order():
    cands = [pm("a", slug="eth-a"), pm("b"), pm("c", tags=("Politics",)), pm("b")]  # b duplicated
    rules = [Rule(name="btc", slug_prefixes=["btc-"]), Rule(name="pol", tags=["politics"])]
    got = R.select(rules, cands, NOW)
    assert [i.market_id for i in got] == ["b", "c"]
    assert R.select_with_reasons(rules, cands, NOW) == {"polymarket:b-Up": "btc", "polymarket:c-Up": "btc"}
    assert R.select([], cands, NOW) == []


def test_max_markets_counts_markets_and_keeps_both_tokens():
    cands = []
    for m, vol in [("m1", 10.0), ("m2", 300.0), ("m3", 200.0), ("m4", None)]:
        cands += pm_market(m, volume_24h=vol)
    # a market's volume is the max over its tokens
    cands[0] = pm("m1", "Up", volume_24h=999.0)
    got = R.select([Rule(max_markets=2)], cands, NOW)
    assert sorted(i.instrument_id for i in got) == [
        "polymarket:m1-Down", "polymarket:m1-Up", "polymarket:m2-Down", "polymarket:m2-Up",
    ]
    # max_markets applies after the rule's other criteria
    got = R.select([Rule(max_markets=1, slug_prefixes=["btc-up-or-down-m3"])], cands, NOW)
    assert [i.instrument_id for i in got] == ["polymarket:m3-Up", "polymarket:m3-Down"]
    assert {i.market_id for i in R.select([Rule(max_markets=1, max_minutes_to_expiry=0)], cands, NOW)} == set()
    # unknown volume ranks last; ties broken by market_id
    assert {i.market_id for i in R.select([Rule(max_markets=4)], cands, NOW)} == {"m1", "m2", "m3", "m4"}
    tie = pm_market("z", volume_24h=5.0) + pm_market("y", volume_24h=5.0)
    assert {i.market_id for i in R.select([Rule(max_markets=1)], tie, NOW)} == {"y"}


def test_max_markets_is_per_rule():
    cands = pm_market("big", volume_24h=1e6) + pm_market("eth", slug="eth-x", volume_24h=1.0)
    rules = [Rule(name="top1", max_markets=1), Rule(name="eth", slug_prefixes=["eth-"])]
    assert {i.market_id for i in R.select(rules, cands, NOW)} == {"big", "eth"}


_inst_st = st.builds(
    lambda n, m, slug, ev, tags, rec, vol, liq, exp: Instrument(
        venue="polymarket", poll_key=f"k{n}", market_id=f"m{m}", slug=slug, event_slug=ev,
        tags=tuple(tags), recurrence=rec, volume_24h=vol, liquidity=liq,
        expires_at_ms=None if exp is None else NOW + exp * MIN,
    ),
    st.integers(0, 40),
    st.integers(0, 15),
    st.sampled_from(["", "btc-a", "eth-b", "BTC-c", "sol-d"]),
    st.sampled_from([None, "btc-up-or-down-15m-1", "eth-up-or-down-hourly-2", "election"]),
    st.lists(st.sampled_from(["Crypto", "politics", "sports"]), max_size=2),
    st.sampled_from([None, "15m", "hourly", "daily"]),
    st.one_of(st.none(), st.floats(0, 1e6)),
    st.one_of(st.none(), st.floats(0, 1e5)),
    st.one_of(st.none(), st.integers(-100, 3000)),
)
_rule_st = st.builds(
    Rule,
    name=st.sampled_from(["a", "b", "c"]),
    slug_prefixes=st.lists(st.sampled_from(["btc-", "eth-", "x"]), max_size=2),
    event_slug_prefixes=st.lists(st.sampled_from(["btc-up", "eth-up", "elec"]), max_size=2),
    tags=st.lists(st.sampled_from(["crypto", "Politics", "none"]), max_size=2),
    recurrence=st.lists(st.sampled_from(["15m", "hourly", "weekly"]), max_size=2),
    min_minutes_to_expiry=st.one_of(st.none(), st.floats(-10, 100)),
    max_minutes_to_expiry=st.one_of(st.none(), st.floats(0, 2000)),
    min_volume_24h=st.one_of(st.none(), st.floats(0, 1e6)),
    min_liquidity=st.one_of(st.none(), st.floats(0, 1e5)),
    max_markets=st.one_of(st.none(), st.integers(1, 5)),
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=st.lists(_rule_st, max_size=4), cands=st.lists(_inst_st, max_size=40))
def test_select_properties(rules, cands):
    got = R.select(rules, cands, NOW)
    ids = [i.instrument_id for i in got]
    assert len(ids) == len(set(ids))  # no duplicates
    cand_ids = {i.instrument_id for i in cands}
    assert set(ids) <= cand_ids  # subset of the candidates
    for i in got:
        assert i in cands
        assert any(R.matches(r, i, NOW) for r in rules)  # each one matches some rule
    # completeness: a candidate matching a rule without max_markets is selected
    # (a repeated instrument id is judged on its first occurrence)
    first = list({i.instrument_id: i for i in reversed(cands)}.values())
    for i in first:
        if any(r.max_markets is None and R.matches(r, i, NOW) for r in rules):
            assert i.instrument_id in set(ids)
    # max_markets: at most N markets per rule, and whole markets
    for r in rules:
        if r.max_markets is not None:
            hit = R.rule_matches(r, cands, NOW)
            assert len({i.market_id for i in hit}) <= r.max_markets
            kept = {i.market_id for i in hit}
            for i in cands:
                if i.market_id in kept and R.matches(r, i, NOW):
                    assert i in hit


def test_default_rules_reproduce_original_sets():
    s = load_settings()
    ok = pm("a", event_slug="btc-up-or-down-15m-1", recurrence="15m", expires_in_min=14)
    assert R.select(s.polymarket.rules, [ok], NOW) == [ok]
    for bad in (
        pm("b", event_slug="will-x-win", series_slug=None),  # not BTC/ETH up-or-down
        pm("c", event_slug="eth-up-or-down-weekly-1", recurrence="weekly"),  # recurrence not allowed
        pm("d", event_slug="btc-up-or-down-daily-1", recurrence="daily", expires_in_min=1441),  # too far
        pm("e", event_slug="btc-up-or-down-daily-1", recurrence="daily", expires_in_min=-1),  # past
    ):
        assert R.select(s.polymarket.rules, [bad], NOW) == []
    lims = [
        ll("dollarbtc-above-dollar8633210-on-dec-17-1000-utc-1765879202744",
           title="\U0001f48e $BTC above $86332.10 on Dec 17, 10:00 UTC?"),
        ll("eth-up-or-down-5-min-1", details=LimitlessDetails(underlying="ETH")),
        ll("dollarsol-above-dollar12911-on-dec-17-0100-utc-1", title="\U0001f48e $SOL above $129.11 on Dec 17?"),
        ll("doge-moon"),
    ]
    assert [i.slug for i in R.select(s.limitless.rules, lims, NOW)] == [lims[0].slug, lims[1].slug]


@pytest.mark.parametrize(
    "inst, want",
    [
        (ll("x", title="$BTC above $86332.10 on Dec 17?"), {"BTC"}),
        (ll("x", title="$btc above $1?"), {"BTC"}),  # case-insensitive
        (ll("x", title="$BTCX above $1?"), {"BTCX"}),  # whole tokens: not BTC
        (ll("ethena-up-or-down-5-min-1", title="ETHENA Up or Down"), {"ETHENA"}),  # not ETH
        (ll("dollareth-above-dollar296191-on-dec-17"), {"ETH"}),
        (ll("btc-up-or-down-5-min-1782064530057"), {"BTC"}),
        (ll("will-btc-up-or-down-be-news"), set()),  # the family must open the slug
        (ll("x", title="Price above $86332.10?"), set()),  # a price is not a ticker
        # The oracle ticker alone decides (a real SOL market says chainlinkPair BTC/USD).
        (ll("btc-up-or-down-1", title="$BTC", details=LimitlessDetails(underlying="SOL")), {"SOL"}),
        (pm("a", event_slug="btc-up-or-down-15m-1"), {"BTC"}),  # Polymarket: slug families
        (pm("a", slug="eth-updown-5m-1773307200", event_slug=None, series_slug=None), {"ETH"}),
    ],
)
def test_underlyings(inst, want):
    assert underlyings(inst) == want
    assert R.matches(Rule(underlyings=["btc", "Eth"]), inst, NOW) == bool(want & {"BTC", "ETH"})


def test_top200_example_config_loads(monkeypatch):
    monkeypatch.setenv("COLLECTOR_CONFIG", str(ROOT / "docs/examples/top200-polymarket.toml"))
    s = load_settings()
    assert s.venues == ["polymarket"]
    (rule,) = s.polymarket.rules
    assert rule.max_markets == 200 and rule.name == "top200-by-volume"
    cands = []
    for k in range(250):
        cands += pm_market(f"m{k:03d}", volume_24h=float(k))
    got = R.select(s.polymarket.rules, cands, NOW)
    assert len(got) == 400 and {i.market_id for i in got} == {f"m{k:03d}" for k in range(50, 250)}


# --------------------------------------------------------------------------- discovery


BTC_RULE = {"name": "btc", "slug_prefixes": ["btc-"], "min_volume_24h": 100}


def test_first_run_adds_and_writes(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    cands = pm_market("m1") + pm_market("m2", slug="eth-x") + pm_market("m3", volume_24h=5.0)
    client = FakeClient("polymarket", [cands])
    rep = discover_venue(s, "polymarket", client=client, now_ms=NOW)
    assert rep.ok and rep.error is None
    assert (rep.instruments, rep.added, rep.removed, rep.candidates, rep.markets) == (2, 2, 0, 6, 1)
    assert rep.pages == 3 and rep.skipped == {"closed": 3} and rep.snapshot_written
    assert not client.closed  # a client passed in is the caller's to close

    snap = read_snapshot(snapshot_path(tmp_path, "polymarket"), venue="polymarket")
    assert [i.instrument_id for i in snap.instruments] == ["polymarket:m1-Up", "polymarket:m1-Down"]
    assert snap.asof_ms == NOW
    assert snap.rules == [Rule(**BTC_RULE).model_dump(mode="json")]
    assert snap.counts == {"instruments": 2, "markets": 1, "candidates": 6, "selected": 2, "pages": 3}

    # market records: location and content
    files = list((tmp_path / "polymarket" / "markets").rglob("*.jsonl"))
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        f"polymarket/markets/date=2026-01-10/markets.123456.{os.getpid()}.jsonl"
    ]
    assert rep.market_records_file == str(files[0])
    recs = market_records(tmp_path)
    assert len(recs) == 2
    r = recs[0]
    assert list(r)[:5] == ["record_type", "schema_version", "event", "reason", "ts_ms"]
    assert (r["record_type"], r["schema_version"], r["event"], r["reason"], r["ts_ms"]) == (
        "market", 1, "added", "rule:btc", NOW,
    )
    flat = cands[0].flat()
    assert {k: r[k] for k in flat} == flat  # every Instrument field at top level
    assert r["instrument_id"] == "polymarket:m1-Up" and r["expires_at_ms"] == NOW + 60 * MIN


def test_market_records_path_is_utc():
    ts = int(datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone.utc).timestamp() * 1000)
    assert market_records_path("/d", "limitless", ts, pid=42) == Path(
        "/d/limitless/markets/date=2026-03-01/markets.235959.42.jsonl"
    )


def test_nothing_written_when_membership_unchanged(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    cands = pm_market("m1") + pm_market("m2", volume_24h=1.0)
    discover_venue(s, "polymarket", client=FakeClient("polymarket", [cands]), now_ms=NOW)
    before = tree(tmp_path)
    snap_bytes = snapshot_path(tmp_path, "polymarket").read_bytes()
    # Same membership, different metadata (volume, title) and later clock: no write at all.
    changed = [i.model_copy(update={"volume_24h": 5000.0, "title": "new"}) if i.market_id == "m1" else i for i in cands]
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [changed]), now_ms=NOW + 5 * MIN)
    assert rep.ok and not rep.snapshot_written and (rep.added, rep.removed, rep.instruments) == (0, 0, 2)
    assert rep.market_records_file is None
    assert tree(tmp_path) == before
    assert snapshot_path(tmp_path, "polymarket").read_bytes() == snap_bytes


def test_sticky_until_closed_or_expired(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    sp = snapshot_path(tmp_path, "polymarket")
    m1, m2, m3 = pm_market("m1", expires_in_min=30), pm_market("m2"), pm_market("m3", expires_in_min=None)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [m1 + m2 + m3]), now_ms=NOW)
    assert rep.instruments == 6

    # Volume drops below the rule's minimum, markets still open: they stay, nothing written.
    low = [i.model_copy(update={"volume_24h": 1.0}) for i in m1 + m2 + m3]
    mtime = sp.stat().st_mtime_ns
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [low]), now_ms=NOW + MIN)
    assert rep.ok and rep.instruments == 6 and rep.selected == 0 and not rep.snapshot_written
    assert sp.stat().st_mtime_ns == mtime

    # m2 closes (no longer among the open candidates): removed, reason closed_or_gone.
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [low[:2] + low[4:]]), now_ms=NOW + 2 * MIN)
    assert (rep.instruments, rep.added, rep.removed) == (4, 0, 2)
    assert rep.removed_reasons == {"closed_or_gone": 2}
    recs = [r for r in market_records(tmp_path) if r["event"] == "removed"]
    assert {(r["market_id"], r["reason"]) for r in recs} == {("m2", "closed_or_gone")}
    assert recs[0]["volume_24h"] == 1000.0  # gone from the venue: metadata from the snapshot

    # m1's expiry passes while the venue still lists it and no rule matches it: removed, expired.
    # m3 has no expiry: sticky forever while open.
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [low[:2] + low[4:]]), now_ms=NOW + 31 * MIN)
    assert (rep.instruments, rep.removed, rep.removed_reasons) == (2, 2, {"expired": 2})
    recs = [r for r in market_records(tmp_path) if r["event"] == "removed" and r["reason"] == "expired"]
    assert {r["market_id"] for r in recs} == {"m1"}
    assert all(r["volume_24h"] == 1.0 and r["ts_ms"] == NOW + 31 * MIN for r in recs)  # fresh metadata
    assert [i.market_id for i in read_snapshot(sp).instruments] == ["m3", "m3"]


def test_open_market_past_end_date_stays_while_a_rule_matches(tmp_path):
    s = make_settings(tmp_path, pm_rules=[{"name": "all-btc", "slug_prefixes": ["btc-"]}])
    sp = snapshot_path(tmp_path, "polymarket")
    late = pm_market("m1", expires_in_min=-10)  # past its nominal end, venue still lists it open
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [late]), now_ms=NOW)
    assert rep.ok and rep.instruments == 2 and rep.added == 2

    # A member crossing its recorded expiry while kept: the snapshot (only) is rewritten once,
    # so the poller (which drops instruments past expiry unless a later snapshot lists them)
    # keeps polling it. No market records: membership did not change.
    soon = pm_market("m2", expires_in_min=5)
    discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon]), now_ms=NOW)
    n_records = len(market_records(tmp_path))
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon]), now_ms=NOW + 4 * MIN)
    assert rep.ok and not rep.snapshot_written and rep.kept_past_expiry == 0
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon]), now_ms=NOW + 6 * MIN)
    assert rep.ok and rep.snapshot_written and rep.kept_past_expiry == 2 and (rep.added, rep.removed) == (0, 0)
    assert read_snapshot(sp).asof_ms == NOW + 6 * MIN and rep.instruments == 4
    assert len(market_records(tmp_path)) == n_records
    before = tree(tmp_path)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon]), now_ms=NOW + 60 * MIN)
    assert rep.ok and not rep.snapshot_written and tree(tmp_path) == before

    # The venue moved the end date of a kept market later: refreshed past the recorded expiry.
    soon3 = pm_market("m3", expires_in_min=70)
    discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon + soon3]), now_ms=NOW + 61 * MIN)
    moved = pm_market("m3", expires_in_min=200)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [late + soon + moved]), now_ms=NOW + 75 * MIN)
    assert rep.snapshot_written and rep.kept_past_expiry == 2
    assert {i.expires_at_ms for i in read_snapshot(sp).instruments if i.market_id == "m3"} == {NOW + 200 * MIN}


def test_readded_after_removal_and_both_events_in_one_run(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("a")]), now_ms=NOW)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("b")]), now_ms=NOW + 1000)
    assert (rep.added, rep.removed, rep.instruments) == (2, 2, 2)
    recs = market_records(tmp_path)
    assert [(r["event"], r["market_id"], r["reason"]) for r in recs[2:]] == [
        ("added", "b", "rule:btc"), ("added", "b", "rule:btc"),
        ("removed", "a", "closed_or_gone"), ("removed", "a", "closed_or_gone"),
    ]


@pytest.mark.parametrize(
    "exc,retryable",
    [
        (TransportError("connection refused", venue="polymarket"), True),
        (Timeout("read timeout", venue="polymarket"), True),
        (ServerError("HTTP 502", status=502), True),
        (RateLimited("HTTP 429", status=429, retry_after_s=5), True),
        (ClientError("HTTP 403", status=403), False),
        (ConnectionResetError("reset"), True),
        (KeyError("bug"), False),
    ],
)
def test_failing_venue_keeps_snapshot_and_other_venue_proceeds(tmp_path, exc, retryable):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE], ll_rules=[{"name": "btc", "slug_prefixes": ["btc-"]}])
    clients = {"polymarket": FakeClient("polymarket", [pm_market("m1")]), "limitless": FakeClient("limitless", [[ll("btc-1")]])}
    run_discovery(s, clients=clients, now_ms=NOW)
    sp = snapshot_path(tmp_path, "polymarket")
    before, mtime = sp.read_bytes(), sp.stat().st_mtime_ns
    pm_tree = {k: v for k, v in tree(tmp_path).items() if k.startswith("polymarket")}

    clients = {
        "polymarket": FakeClient("polymarket", [exc]),
        "limitless": FakeClient("limitless", [[ll("btc-1"), ll("btc-2")]]),
    }
    reps = run_discovery(s, clients=clients, now_ms=NOW + MIN)
    p, l = reps
    assert not p.ok and p.error_type == type(exc).__name__ and p.error.startswith(type(exc).__name__ + ": ")
    assert p.retryable is retryable and not p.snapshot_written
    assert p.instruments == 2  # the previous snapshot's count
    assert sp.read_bytes() == before and sp.stat().st_mtime_ns == mtime
    assert {k: v for k, v in tree(tmp_path).items() if k.startswith("polymarket")} == pm_tree
    assert l.ok and l.added == 1 and l.snapshot_written
    assert [i.poll_key for i in read_snapshot(snapshot_path(tmp_path, "limitless")).instruments] == ["btc-1", "btc-2"]
    with pytest.raises(DiscoveryFailed) as ei:
        raise DiscoveryFailed(p)
    assert ei.value.retryable is retryable and ei.value.report is p


def test_suspect_empty_answer(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("m1")]), now_ms=NOW)
    sp = snapshot_path(tmp_path, "polymarket")
    before = tree(tmp_path)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [[]]), now_ms=NOW + MIN)
    assert not rep.ok and rep.error_type == "SuspectEmpty" and rep.retryable
    assert "SuspectEmpty" in rep.error and rep.instruments == 2
    assert tree(tmp_path) == before

    # Configurable: when empty answers are trusted, everything is removed.
    s2 = make_settings(tmp_path, pm_rules=[BTC_RULE], discovery={"empty_is_suspect": False})
    rep = discover_venue(s2, "polymarket", client=FakeClient("polymarket", [[]]), now_ms=NOW + MIN)
    assert rep.ok and rep.removed == 2 and rep.instruments == 0 and rep.snapshot_written
    assert read_snapshot(sp).instruments == []


def test_empty_first_run_writes_empty_snapshot_once(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [[]]), now_ms=NOW)
    assert rep.ok and rep.snapshot_written and rep.instruments == 0
    assert market_records(tmp_path) == []
    before = tree(tmp_path)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("m1", volume_24h=1.0)]), now_ms=NOW)
    assert rep.ok and not rep.snapshot_written
    assert tree(tmp_path) == before


def test_corrupt_previous_snapshot_is_rebuilt(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    sp = snapshot_path(tmp_path, "polymarket")
    sp.parent.mkdir(parents=True)
    sp.write_bytes(b'{"schema_version": 1, "ven')
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("m1")]), now_ms=NOW)
    assert rep.ok and rep.added == 2 and rep.snapshot_written
    assert len(read_snapshot(sp).instruments) == 2


def test_foreign_and_duplicate_candidates_are_skipped(tmp_path):
    s = make_settings(tmp_path, pm_rules=[{"name": "all"}])
    cands = pm_market("m1") + [pm("m1", "Up"), ll("btc-1")]
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [cands]), now_ms=NOW)
    assert rep.ok and rep.instruments == 2 and rep.candidates == 2
    assert rep.skipped == {"closed": 3, "duplicate": 1, "wrong_venue": 1}


def test_client_factory_clients_are_closed_and_factory_errors_reported(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])
    made: list[FakeClient] = []

    def factory(venue, settings):
        c = FakeClient(venue, [pm_market("m1")] if venue == "polymarket" else [RuntimeError("x")])
        made.append(c)
        return c

    rep = discover_venue(s, "polymarket", client_factory=factory, now_ms=NOW)
    assert rep.ok and made[0].closed

    def bad_factory(venue, settings):
        raise ConfigError("polymarket.gamma_url: bad")

    rep = discover_venue(s, "polymarket", client_factory=bad_factory, now_ms=NOW)
    assert not rep.ok and rep.error_type == "ConfigError" and not rep.retryable

    rep = discover_venue(s, "kraken", client_factory=factory, now_ms=NOW)  # not a venue we know
    assert not rep.ok and rep.error_type == "ConfigError"


def test_write_failure_is_reported_not_raised(tmp_path, monkeypatch):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE])

    def boom(path, snap):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("collector.discovery.run.write_snapshot", boom)
    rep = discover_venue(s, "polymarket", client=FakeClient("polymarket", [pm_market("m1")]), now_ms=NOW)
    assert not rep.ok and rep.error_type == "WriteError" and not rep.retryable
    assert not snapshot_path(tmp_path, "polymarket").exists()


def test_report_helpers(tmp_path):
    s = make_settings(tmp_path)
    write_snapshot(snapshot_path(tmp_path, "limitless"), Snapshot(venue="limitless", asof_ms=1, instruments=[ll("btc-1")]))
    r = VenueDiscoveryReport.from_exception("limitless", ConfigError("x"), settings=s)
    assert r.instruments == 1 and not r.retryable  # the kept snapshot's count
    r = VenueDiscoveryReport.from_exception("limitless", TimeoutError("slow"), 1.5)
    assert (r.ok, r.error_type, r.error, r.retryable, r.duration_s) == (False, "TimeoutError", "TimeoutError: slow", True, 1.5)
    row = r.summary_row()
    assert set(row) == {"venue", "ok", "instruments", "added", "removed", "candidates", "pages",
                        "duration_s", "snapshot_written", "error"}
    assert r.event_payload()["error_type"] == "TimeoutError"
    assert "FAILED" in r.summary_line() and "snapshot untouched" in r.summary_line()


# --------------------------------------------------------------------------- CLI


def test_cli_discover_once_exit_codes(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE], ll_rules=[{"name": "btc", "slug_prefixes": ["btc-"]}])
    answers = {"polymarket": [pm_market("m1")], "limitless": [Timeout("slow")]}

    def factory(venue, settings):
        return FakeClient(venue, answers[venue])

    out = io.StringIO()
    assert cli_discover(s, once=True, out=out, client_factory=factory) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.match(r"discovery polymarket: ok instruments=2 \+2 -0 candidates=2 pages=1 .* written", lines[0])
    assert lines[1].startswith("discovery limitless: FAILED") and "Timeout: slow" in lines[1]

    answers["polymarket"] = [TransportError("down")]
    out = io.StringIO()
    assert cli_discover(s, once=True, out=out, client_factory=factory) == 1


def test_cli_discover_loops_until_ctrl_c(tmp_path):
    s = make_settings(tmp_path, pm_rules=[BTC_RULE], venues=["polymarket"], discovery={"interval_s": 30})
    sleeps: list[float] = []

    def fake_sleep(d):
        sleeps.append(d)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    out = io.StringIO()
    rc = cli_discover(s, once=False, out=out, sleep=fake_sleep,
                      client_factory=lambda v, st_: FakeClient(v, [pm_market("m1")]))
    assert rc == 0
    lines = out.getvalue().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["discovery polymarket"] * 2 + ["discovery"]
    assert "written" in lines[0] and "unchanged" in lines[1]
    assert len(sleeps) == 2 and all(0 < d <= 30 for d in sleeps)
