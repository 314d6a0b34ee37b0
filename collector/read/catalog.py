"""The market catalog: every instrument ever recorded, from the ``markets`` logs and the snapshot."""

from __future__ import annotations

import os
from collections.abc import Sequence

from collector.model.errors import SnapshotError
from collector.read.datafiles import list_venues
from collector.read.records import iter_records
from collector.store.layout import MARKETS_STREAM, snapshot_path
from collector.store.snapshot import read_snapshot

__all__ = ["catalog_markets", "market_catalog", "market_records"]


def market_records(data_dir: str | os.PathLike[str], venue: str) -> list[dict]:
    """Every ``market`` record of a venue (all days), ordered by ``ts_ms`` (stable)."""
    return list(iter_records(data_dir, venue, MARKETS_STREAM, record_types={"market"}))


def market_catalog(
    data_dir: str | os.PathLike[str], venue: str | Sequence[str] | None = None
) -> dict[str, dict]:
    """Every instrument ever recorded, keyed by ``instrument_id``.

    Each value holds the instrument fields of its latest ``market`` record or snapshot entry
    (``venue``, ``poll_key``, ``market_id``, ``outcome``, ``title``, ``slug``, ``expires_at_ms``,
    ``tick_size``, ..., ``details``: the typed venue metadata such as Limitless ``open_price``
    or Polymarket ``neg_risk_market_id``, keys omitted when the venue sent none; see
    docs/schema.md) plus its lifecycle:

    * ``intervals``: ``[[added_ms, removed_ms or None], ...]``, the spans it was in the active
      set (from the ``added`` / ``removed`` records; repeated records of an at-least-once write
      are ignored). An instrument of the current snapshot without an open span gets one from
      the snapshot's ``asof_ms``; an open span of an instrument missing from the snapshot is
      closed at the snapshot's ``asof_ms``.
    * ``added_ms`` (first), ``removed_ms`` (last; None while active), ``removed_reason``,
      ``active`` (in the current snapshot), ``snapshot_asof_ms``.
    """
    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    out: dict[str, dict] = {}
    for v in venues:
        cat: dict[str, dict] = {}
        for rec in market_records(data_dir, v):
            iid = rec.get("instrument_id")
            if not iid:
                continue
            info = {k: x for k, x in rec.items() if k not in ("record_type", "schema_version", "event", "reason", "ts_ms")}
            e = cat.setdefault(iid, {"intervals": [], "removed_reason": None, "active": False})
            e.update(info)
            iv = e["intervals"]
            ts = rec["ts_ms"]
            if rec.get("event") == "added":
                if not iv or iv[-1][1] is not None:
                    iv.append([ts, None])
                    e["removed_reason"] = None
            elif rec.get("event") == "removed":
                if iv and iv[-1][1] is None:
                    iv[-1][1] = ts
                    e["removed_reason"] = rec.get("reason")
                elif not iv:  # added before the logs we have
                    iv.append([None, ts])
                    e["removed_reason"] = rec.get("reason")
        snap_asof = None
        try:
            snap = read_snapshot(snapshot_path(data_dir, v), venue=v)
        except SnapshotError:
            snap = None
        if snap is not None:
            snap_asof = snap.asof_ms
            members = {i.instrument_id: i for i in snap.instruments}
            for iid, inst in members.items():
                e = cat.setdefault(iid, {"intervals": [], "removed_reason": None, "active": False})
                e.update(inst.flat())
                e["active"] = True
                iv = e["intervals"]
                if not iv or iv[-1][1] is not None:
                    iv.append([snap.asof_ms, None])
            for iid, e in cat.items():
                if iid not in members:
                    iv = e["intervals"]
                    if iv and iv[-1][1] is None:
                        iv[-1][1] = snap.asof_ms
                        e["removed_reason"] = e.get("removed_reason") or "not_in_snapshot"
        for iid, e in cat.items():
            iv = e["intervals"]
            e["added_ms"] = iv[0][0] if iv else None
            e["removed_ms"] = iv[-1][1] if iv else None
            e["snapshot_asof_ms"] = snap_asof
            e.setdefault("venue", v)
            e.setdefault("instrument_id", iid)
            out[iid] = e
    return out


def catalog_markets(catalog: dict[str, dict]) -> dict[str, dict]:
    """Group a :func:`market_catalog` by market: ``{(venue, market_id) key: {title, ..., instruments}}``.

    The key is ``"<venue>:<market_id>"``; ``instruments`` maps outcome -> instrument_id.
    """
    out: dict[str, dict] = {}
    for iid, e in catalog.items():
        key = f"{e.get('venue')}:{e.get('market_id')}"
        m = out.setdefault(
            key,
            {
                "venue": e.get("venue"),
                "market_id": e.get("market_id"),
                "title": e.get("title"),
                "slug": e.get("slug"),
                "expires_at_ms": e.get("expires_at_ms"),
                "instruments": {},
                "active": False,
            },
        )
        m["instruments"][e.get("outcome") or iid] = iid
        m["active"] = m["active"] or bool(e.get("active"))
    return out
