from __future__ import annotations

import os

import pytest

# Tests never read the developer's own config or point at a live Prefect API.
for _k in list(os.environ):
    if _k.startswith("COLLECTOR_"):
        del os.environ[_k]
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect server (temp SQLite DB) for flow tests; started once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
