"""Venue clients behind one small protocol (collector.venues.base.VenueClient).

Each venue is one module ``collector/venues/<name>.py`` exposing ``CLIENT`` (endpoints, paging,
fetch, normalize), with companions for what would crowd it: ``<name>_markets`` maps a discovery
item to Instruments, ``polymarket_book`` is Polymarket's book normalizer (the hot path) and
``polyhash`` its book-hash check. Shared plumbing: ``http`` (sessions, status -> typed errors,
JSON, page retries) and ``numbers`` (lenient number/time guards).
"""

from __future__ import annotations

import importlib

from collector.config.settings import Settings
from collector.venues.base import DiscoveryResult, FetchResult, VenueClient

__all__ = ["DiscoveryResult", "FetchResult", "VenueClient", "make_client"]


def make_client(name: str, settings: Settings) -> VenueClient:
    """The client of venue ``name``. ``state_dir`` (the data directory) is where a client may
    keep state shared by every process on it, e.g. Limitless's request spacing."""
    module = importlib.import_module(f"collector.venues.{name}")
    return module.CLIENT(settings.venue(name), state_dir=settings.data_dir)
