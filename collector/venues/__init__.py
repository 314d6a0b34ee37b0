"""Venue clients. Each venue is one module ``collector/venues/<name>.py`` exposing ``CLIENT``."""

from __future__ import annotations

import importlib

from collector.settings import Settings
from collector.venues.base import DiscoveryResult, FetchResult, VenueClient

__all__ = ["DiscoveryResult", "FetchResult", "VenueClient", "make_client"]


def make_client(name: str, settings: Settings) -> VenueClient:
    module = importlib.import_module(f"collector.venues.{name}")
    return module.CLIENT(settings.venue(name))
