"""Discovery (the slow path): venue candidates -> rules -> sticky merge -> snapshot + market records.

For one venue, :func:`discover_venue`:

1. asks the venue client for its open order-book candidates (``client.discover()``);
2. applies the venue's selection rules (:mod:`collector.discovery.rules`);
3. merges with the previous snapshot, sticky until expiration: a previous member stays while
   it is still among the venue's open candidates and its ``expires_at_ms`` has not passed, even
   when no rule matches it any more. It is removed with reason ``closed_or_gone`` when the venue
   no longer lists it as open (closed, resolved, not accepting orders, no book, delisted), or
   ``expired`` when its expiry passed and no rule selects it (a rule that still matches an open
   market past its nominal end date keeps it: liveness comes from the venue's flags);
4. when membership changed (or no snapshot exists yet): appends one ``market`` record per added and
   removed instrument to ``<data_dir>/<venue>/markets/date=YYYY-MM-DD/markets.<HHMMSS>.<pid>.jsonl``,
   fsyncs it, then atomically rewrites the snapshot. Nothing is written when membership is
   unchanged, with one exception: when a member is kept past the expiry the previous snapshot
   records for it, the snapshot (only) is rewritten once, so that the poller, which drops an
   instrument past its expiry unless a snapshot written after that expiry lists it, keeps it.

A failing client, or an empty answer from a venue whose snapshot had instruments
(``discovery.empty_is_suspect``), leaves the previous snapshot untouched and yields ``ok=False``.
Nothing in here raises: every outcome is a :class:`VenueDiscoveryReport`
(:mod:`collector.discovery.report`). The market records are written by
:mod:`collector.discovery.markets_log`.

This module never imports Prefect; ``flows/discovery.py`` wires it into a flow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from collector.config.settings import ALL_VENUES, Settings
from collector.discovery import rules as rules_mod
from collector.discovery.markets_log import (
    append_market_records,
    market_record,
    market_records_path,
)
from collector.discovery.report import SuspectEmpty, VenueDiscoveryReport, is_retryable
from collector.model.clock import now_ms as _now_ms
from collector.model.errors import ConfigError, SnapshotError, WriteError
from collector.model.records import Instrument
from collector.store.layout import snapshot_path
from collector.store.snapshot import Snapshot, read_snapshot, write_snapshot
from collector.venues.base import VenueClient

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, Settings], VenueClient]




def _fail(rep: VenueDiscoveryReport, exc: BaseException, t0: float) -> VenueDiscoveryReport:
    rep.ok = False
    rep.error_type = type(exc).__name__
    rep.error = f"{rep.error_type}: {exc}"
    rep.retryable = is_retryable(exc)
    rep.duration_s = time.monotonic() - t0
    return rep


def discover_venue(
    settings: Settings,
    venue: str,
    client: VenueClient | None = None,
    now_ms: int | None = None,
    client_factory: ClientFactory | None = None,
) -> VenueDiscoveryReport:
    """Run discovery for one venue and persist membership changes. Never raises.

    ``client``: an existing client (not closed here). Otherwise one is made with
    ``client_factory(venue, settings)`` (default ``collector.venues.make_client``) and closed.
    ``now_ms``: the clock for rules and expiry (tests); default wall clock.
    """
    t0 = time.monotonic()
    rep = VenueDiscoveryReport(venue=venue, ok=False)
    try:
        return _discover_venue(settings, venue, client, now_ms, client_factory, rep, t0)
    except Exception as e:  # noqa: BLE001 - a report, never an exception
        log.warning("discovery %s failed: %s: %s", venue, type(e).__name__, e)
        return _fail(rep, e, t0)


def _load_previous(path: Path, venue: str) -> Snapshot | None:
    if not path.exists():
        return None
    try:
        return read_snapshot(path, venue=venue)
    except SnapshotError as e:
        log.warning("discovery %s: previous snapshot unusable, rebuilding it from scratch: %s", venue, e)
        return None


def _discover_venue(
    settings: Settings,
    venue: str,
    client: VenueClient | None,
    now_ms: int | None,
    client_factory: ClientFactory | None,
    rep: VenueDiscoveryReport,
    t0: float,
) -> VenueDiscoveryReport:
    if venue not in ALL_VENUES:
        raise ConfigError(f"unknown venue {venue!r} (known: {', '.join(ALL_VENUES)})")
    vs = settings.venue(venue)
    snap_file = snapshot_path(settings.data_dir, venue)
    prev = _load_previous(snap_file, venue)
    prev_members: dict[str, Instrument] = {i.instrument_id: i for i in prev.instruments} if prev else {}
    rep.instruments = len(prev_members)

    # 1. Candidates from the venue.
    own = client is None
    if own:
        if client_factory is None:
            from collector.venues import make_client

            client_factory = make_client
        client = client_factory(venue, settings)
    try:
        result = client.discover()
    finally:
        if own:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must not hide the outcome
                log.debug("discovery %s: client.close() failed", venue, exc_info=True)
    now = _now_ms() if now_ms is None else now_ms
    rep.asof_ms = now
    rep.pages = result.pages
    rep.page_retries = result.retries
    rep.skipped = dict(result.skipped)
    rep.paging_stops = dict(getattr(result, "paging_stops", {}))

    candidates: list[Instrument] = []
    by_id: dict[str, Instrument] = {}
    for inst in result.instruments:
        if inst.venue != venue:
            rep.skipped["wrong_venue"] = rep.skipped.get("wrong_venue", 0) + 1
            continue
        if inst.instrument_id in by_id:
            rep.skipped["duplicate"] = rep.skipped.get("duplicate", 0) + 1
            continue
        by_id[inst.instrument_id] = inst
        candidates.append(inst)
    rep.candidates = len(candidates)

    if not candidates and prev_members and settings.discovery.empty_is_suspect:
        raise SuspectEmpty(
            f"{venue} listed no open market while the snapshot has {len(prev_members)} instruments; "
            "snapshot kept (set discovery.empty_is_suspect=false to accept empty answers)"
        )

    # 2. Rules.
    chosen = rules_mod.select_with_reasons(vs.rules, candidates, now)
    rep.selected = len(chosen)

    # 3. Sticky merge.
    members: list[Instrument] = []
    added: list[tuple[Instrument, str]] = []
    for inst in candidates:
        iid = inst.instrument_id
        if iid in chosen:
            members.append(inst)
            if iid not in prev_members:
                added.append((inst, f"rule:{chosen[iid]}"))
        elif iid in prev_members and (inst.expires_at_ms is None or inst.expires_at_ms > now):
            members.append(inst)  # sticky: still open, not expired
    member_ids = {i.instrument_id for i in members}
    removed: list[tuple[Instrument, str]] = []
    for iid, old in prev_members.items():
        if iid in member_ids:
            continue
        if iid in by_id:
            removed.append((by_id[iid], "expired"))
        else:
            removed.append((old, "closed_or_gone"))
    rep.instruments = len(members)
    rep.markets = len({i.market_id for i in members})
    rep.added = len(added)
    rep.removed = len(removed)
    for _, reason in removed:
        rep.removed_reasons[reason] = rep.removed_reasons.get(reason, 0) + 1

    # Members the previous snapshot lists with an expiry that has now passed although discovery
    # keeps them (a rule still matches an open market past its nominal end, or the venue moved
    # the end date). The poller drops an instrument past its expiry unless a snapshot written
    # after that expiry lists it, so the snapshot must be refreshed once for them.
    if prev is not None:
        rep.kept_past_expiry = sum(
            1
            for i in members
            if (old := prev_members.get(i.instrument_id)) is not None
            and old.expires_at_ms is not None
            and prev.asof_ms <= old.expires_at_ms < now
        )

    # 4. Persist only on change (or when there is no usable snapshot yet, or see above).
    if prev is not None and not added and not removed and not rep.kept_past_expiry:
        rep.ok = True
        rep.duration_s = time.monotonic() - t0
        return rep

    records = [market_record(i, "added", r, now) for i, r in added]
    records += [market_record(i, "removed", r, now) for i, r in removed]
    if records:
        mpath = market_records_path(settings.data_dir, venue, now)
        append_market_records(mpath, records)
        rep.market_records_file = str(mpath)
    snap = Snapshot(
        venue=venue,
        asof_ms=now,
        rules=[r.model_dump(mode="json") for r in vs.rules],
        counts={
            "instruments": len(members),
            "markets": rep.markets,
            "candidates": len(candidates),
            "selected": len(chosen),
            "pages": result.pages,
        },
        instruments=members,
    )
    try:
        write_snapshot(snap_file, snap)
    except OSError as e:
        raise WriteError(f"{snap_file}: cannot write snapshot: {e}") from e
    rep.snapshot_written = True
    rep.ok = True
    rep.duration_s = time.monotonic() - t0
    log.info(rep.summary_line())
    return rep


def run_discovery(
    settings: Settings,
    clients: Mapping[str, VenueClient] | None = None,
    venues: Sequence[str] | None = None,
    now_ms: int | None = None,
    client_factory: ClientFactory | None = None,
) -> list[VenueDiscoveryReport]:
    """Discovery for every enabled venue (or ``venues``), one after the other.

    One venue's failure never stops the others. ``clients`` maps venue -> an existing client
    (not closed here); venues without one get a fresh client from ``client_factory``.
    """
    names = list(venues) if venues is not None else list(settings.venues)
    clients = clients or {}
    return [
        discover_venue(settings, v, client=clients.get(v), now_ms=now_ms, client_factory=client_factory)
        for v in names
    ]


def cli_discover(
    settings: Settings,
    once: bool,
    *,
    out=None,
    sleep: Callable[[float], None] = time.sleep,
    client_factory: ClientFactory | None = None,
) -> int:
    """``collector discover [--once]``: one pass, or a loop every ``discovery.interval_s``.

    Prints one summary line per venue and run. Exit code 0 when at least one venue succeeded in
    the last completed run, 1 when all failed. Ctrl-C stops the loop between or during runs.
    """
    import sys

    out = out or sys.stdout
    interval = settings.discovery.interval_s
    last_ok = False
    try:
        while True:
            started = time.monotonic()
            reports = run_discovery(settings, client_factory=client_factory)
            for r in reports:
                print(r.summary_line(), file=out, flush=True)
            last_ok = any(r.ok for r in reports)
            if once:
                break
            delay = interval - (time.monotonic() - started)
            if delay > 0:
                sleep(delay)
    except KeyboardInterrupt:
        print("discovery: stopped", file=out, flush=True)
    return 0 if last_ok else 1
