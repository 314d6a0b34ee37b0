"""The stack of tests/test_prefect_stack.py with the Prefect server on a real PostgreSQL
(`collector up --database postgresql+asyncpg://...`): initdb into a temp directory, postgres on
127.0.0.1 (tests/postgres.py). The same fixture and the same checks, run again on the other
database: deploy and automations, the discovery schedule making runs, a CI-style
`prefect deployment run ... --watch`, the poller writing books and heartbeats, Ctrl-C ending the
poller run Cancelled (read from PostgreSQL itself). Lean on purpose: one module-scoped stack.

Skipped, with the reason, where PostgreSQL is not installed; `.ci/run` installs it.
"""

from __future__ import annotations

from datetime import datetime

import pytest

import tests.test_prefect_stack as base
from flows.stack.api import DISCOVERY, runs_of
from tests.postgres import missing, postgres

pytestmark = [pytest.mark.prefect, pytest.mark.slow,
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@pytest.fixture(scope="module")
def pg():
    with postgres() as p:
        yield p


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pg):
    yield from base.run_stack(tmp_path_factory, pg)


def test_the_server_keeps_its_state_in_postgresql(stack, pg):
    assert "database postgresql+asyncpg://postgres@127.0.0.1:" in stack.output()
    assert not (stack.home / "prefect.db").exists()  # nothing went to SQLite
    names = {n for (n,) in pg.query("select name from deployment")}
    assert {"discovery", "poller", "compact", "retention"} <= names
    (n,) = pg.query("select count(*) from automation")[0]
    assert n == 7


def test_the_discovery_schedule_makes_runs(stack):
    # the scheduler service writes the cron's future runs (the SQLAlchemy 2.1 trap made none)
    runs = base.wait_for("scheduled discovery runs",
                         lambda: [r for r in runs_of(stack.api, DISCOVERY, ["SCHEDULED"]) if "auto-scheduled" in r["tags"]],
                         120, every=2)
    starts = [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")) for r in runs]
    assert all(t.second == 0 and t.microsecond == 0 for t in starts)  # on the minute: "* * * * *"


def test_up_brought_up_everything(stack):
    base.test_up_brought_up_pool_deployments_automations_worker_and_one_poller(stack)


def test_discovery_watch_from_ci(stack):
    base.test_discovery_watch_exits_0_on_success_and_writes_snapshots(stack)


def test_poller_writes_books_and_heartbeats(stack):
    base.test_poller_run_writes_books_and_heartbeats(stack)


def test_ctrl_c_ends_the_poller_cancelled(stack):
    base.test_ctrl_c_cancels_the_poller_then_stops_worker_and_server(stack)
