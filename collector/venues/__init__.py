"""Venue clients. Each venue is one module ``collector/venues/<name>.py`` exposing ``CLIENT``."""

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
