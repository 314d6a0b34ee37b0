"""The `discovery` Prefect flow under the Prefect test harness, with fake venue clients."""

from __future__ import annotations

import json
import time

import pytest

from collector.model.errors import ClientError, TransportError
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from tests.test_discovery import FakeClient, ll, pm_market

pytestmark = pytest.mark.prefect


@pytest.fixture
def env(tmp_path, monkeypatch, prefect_harness):
    """Settings from the environment (as in production) pointing at tmp_path; fast retries."""
    import flows.discovery as fd

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLLECTOR_DISCOVERY__TASK_RETRIES", "2")
    monkeypatch.setenv("COLLECTOR_POLYMARKET__RULES", json.dumps([{"name": "btc", "slug_prefixes": ["btc-"]}]))
    monkeypatch.setenv("COLLECTOR_LIMITLESS__RULES", json.dumps([{"name": "btc", "slug_prefixes": ["btc-"]}]))
    monkeypatch.setenv("COLLECTOR_DISCOVERY__TASK_RETRY_DELAYS_S", "[0]")

    calls: dict[str, int] = {"polymarket": 0, "limitless": 0}
    answers = {"polymarket": [pm_market("m1")], "limitless": [[ll("btc-1")]]}

    def factory(venue, settings):
        calls[venue] += 1
        # one client per task attempt; the n-th attempt gets the n-th scripted answer
        return FakeClient(venue, answers[venue][calls[venue] - 1 :] or answers[venue][-1:])

    monkeypatch.setattr(fd, "client_factory", factory)

    events: list[tuple[str, dict, dict]] = []
    real_emit = fd.emit_event

    def spy_emit(event, resource, payload=None, **kw):
        events.append((event, resource, payload))
        return real_emit(event=event, resource=resource, payload=payload, **kw)

    monkeypatch.setattr(fd, "emit_event", spy_emit)
    return fd, tmp_path, answers, calls, events


def _artifact_rows():
    from prefect.artifacts import Artifact

    art = Artifact.get("discovery-summary")
    assert art is not None and art.type == "table"
    data = json.loads(art.data) if isinstance(art.data, str) else art.data
    return {row["venue"]: row for row in data}, art


def test_flow_run_completes_publishes_artifact_and_events(env):
    fd, tmp_path, answers, calls, events = env
    state = fd.discovery(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert [r["venue"] for r in result] == ["polymarket", "limitless"] and all(r["ok"] for r in result)
    assert len(read_snapshot(snapshot_path(tmp_path, "polymarket")).instruments) == 2
    assert len(read_snapshot(snapshot_path(tmp_path, "limitless")).instruments) == 1

    rows, art = _artifact_rows()
    assert rows["polymarket"]["instruments"] == 2 and rows["polymarket"]["added"] == 2
    assert rows["limitless"]["instruments"] == 1 and rows["limitless"]["ok"] is True
    assert {"removed", "pages", "duration_s", "error"} <= set(rows["polymarket"])
    assert art.flow_run_id is not None

    assert sorted((e, r["prefect.resource.id"], r["collector.venue"]) for e, r, _ in events) == [
        ("collector.discovery.completed", "collector.discovery.limitless", "limitless"),
        ("collector.discovery.completed", "collector.discovery.polymarket", "polymarket"),
    ]
    payload = {r["collector.venue"]: p for _, r, p in events}
    assert payload["polymarket"]["instruments"] == 2 and payload["polymarket"]["added"] == 2
    assert calls == {"polymarket": 1, "limitless": 1}


def test_venue_subset_parameter(env):
    fd, tmp_path, answers, calls, events = env
    state = fd.discovery(venues=["limitless"], return_state=True)
    assert state.is_completed()
    assert calls == {"polymarket": 0, "limitless": 1}
    assert not snapshot_path(tmp_path, "polymarket").exists()
    # Prefect validates the parameter against the venue names
    bad = fd.discovery(venues=["kraken"], return_state=True)
    assert bad.is_failed()


def test_transport_failure_retries_then_succeeds(env):
    fd, tmp_path, answers, calls, events = env
    answers["polymarket"] = [TransportError("refused"), TransportError("refused"), pm_market("m1")]
    state = fd.discovery(return_state=True)
    assert state.is_completed()
    assert calls == {"polymarket": 3, "limitless": 1}
    rows, _ = _artifact_rows()
    assert rows["polymarket"]["ok"] is True and rows["polymarket"]["instruments"] == 2


def test_partial_failure_completes_and_all_failed_fails(env):
    fd, tmp_path, answers, calls, events = env
    fd.discovery(return_state=True)  # first snapshots
    sp = snapshot_path(tmp_path, "polymarket")
    before = sp.read_bytes()
    calls.update(polymarket=0, limitless=0)
    events.clear()

    # One of two venues fails (after its retries): the flow completes, with a warning.
    answers["polymarket"] = [TransportError("refused")]
    state = fd.discovery(return_state=True)
    assert state.is_completed()
    assert calls["polymarket"] == 3  # 1 + 2 retries
    assert sp.read_bytes() == before
    rows, _ = _artifact_rows()
    assert rows["polymarket"]["ok"] is False and "TransportError: refused" in rows["polymarket"]["error"]
    assert rows["polymarket"]["instruments"] == 2  # the kept snapshot
    assert rows["limitless"]["ok"] is True
    assert {(e, r["collector.venue"]) for e, r, _ in events} == {
        ("collector.discovery.failed", "polymarket"), ("collector.discovery.completed", "limitless"),
    }

    # A refused request (ClientError) is not retried; all venues failed: the flow fails.
    calls.update(polymarket=0, limitless=0)
    answers["polymarket"] = [ClientError("HTTP 403")]
    answers["limitless"] = [TransportError("down")]
    state = fd.discovery(return_state=True)
    assert state.is_failed()
    assert "every venue" in (state.message or "") or "AllVenuesFailed" in (state.message or "")
    assert calls == {"polymarket": 1, "limitless": 3}
    rows, _ = _artifact_rows()  # the artifact is still published
    assert rows["polymarket"]["ok"] is False and rows["limitless"]["ok"] is False
    assert sp.read_bytes() == before


def test_task_timeout_fails_that_venue_only(env, monkeypatch):
    fd, tmp_path, answers, calls, events = env
    monkeypatch.setenv("COLLECTOR_DISCOVERY__TASK_TIMEOUT_S", "1")

    def hang():
        for _ in range(200):  # 10 s of short blocking calls
            time.sleep(0.05)
        return pm_market("m1")

    answers["polymarket"] = [hang]
    t0 = time.monotonic()
    state = fd.discovery(return_state=True)
    assert time.monotonic() - t0 < 8
    assert state.is_completed()
    assert calls["polymarket"] == 1  # a task timeout is not retried
    rows, _ = _artifact_rows()
    assert rows["polymarket"]["ok"] is False and "TaskRunTimeoutError" in rows["polymarket"]["error"]
    assert rows["limitless"]["ok"] is True
    assert not snapshot_path(tmp_path, "polymarket").exists()


def test_retry_condition_and_delays():
    from prefect.states import Completed, Failed

    import flows.discovery as fd
    from collector.config.settings import load_settings
    from collector.discovery.report import DiscoveryFailed, VenueDiscoveryReport
    from collector.model.errors import ConfigError

    def failed(exc):
        return Failed(data=exc)

    rep = VenueDiscoveryReport.from_exception("polymarket", TransportError("x"))
    assert fd.retry_on_transport(None, None, failed(DiscoveryFailed(rep))) is True
    rep = VenueDiscoveryReport.from_exception("polymarket", ConfigError("bad"))
    assert fd.retry_on_transport(None, None, failed(DiscoveryFailed(rep))) is False
    assert fd.retry_on_transport(None, None, failed(ConfigError("bad"))) is False
    assert fd.retry_on_transport(None, None, Completed(data=1)) is False

    s = load_settings(discovery={"task_retries": 5})
    assert fd.retry_delays(s) == [2.0, 10.0, 30.0, 30.0, 30.0]
    assert fd.retry_delays(load_settings(discovery={"task_retries": 0})) == []


def test_collector_never_imports_prefect():
    import subprocess
    import sys

    code = (
        "import sys, collector.discovery.run, collector.discovery.rules, collector.store.snapshot, collector.cli.main;"
        "bad=[m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
