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


# `make test` runs two pytest-xdist workers (--dist loadgroup). Everything that starts a Prefect
# server is one group, so one worker runs those one after another while the other worker takes
# the rest: at most one Prefect server at a time, and the suite's waiting (real servers, feeds,
# clocks) overlaps. Without xdist the marker does nothing.
_PREFECT_FILES = {"test_systemd_unit.py", "test_security.py", "test_kalshi_prefect.py", "test_poller_flow.py"}


def pytest_collection_modifyitems(config, items):
    group = pytest.mark.xdist_group("prefect")
    for item in items:
        name = item.path.name
        if name.startswith("test_prefect") or name in _PREFECT_FILES or "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(group)
