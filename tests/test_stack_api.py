"""The stack's Prefect API client retries a busy server where repeating is harmless, and only there."""

from __future__ import annotations

import time

import httpx
import pytest

from flows.stack.api import ApiClient, healthy
from tests.http_stub import STALL, Reply, closed_port_url, http_stub


def _flaky(first: list, then: Reply):
    def answer(req):
        return first.pop(0) if first else then
    return answer


def client(url: str) -> ApiClient:
    c = ApiClient(base_url=url, timeout=1.0, trust_env=False)
    c.retries = 3
    return c


def test_a_stalled_patch_and_filter_are_retried_until_answered():
    with http_stub() as stub, client(stub.url) as api:
        stub.route("PATCH", "/deployments/d/schedules/s", _flaky([STALL], Reply(204)))
        stub.route("POST", "/flow_runs/filter", _flaky([Reply(503), STALL], Reply.json([{"id": "r"}])))
        assert api.patch("/deployments/d/schedules/s", json={"active": False}).status_code == 204
        assert api.post("/flow_runs/filter", json={}).json() == [{"id": "r"}]
        assert len(stub.called("PATCH", "/deployments/d/schedules/s")) == 2
        assert len(stub.called("POST", "/flow_runs/filter")) == 3


def test_a_stalled_post_that_creates_is_not_sent_twice():
    with http_stub() as stub, client(stub.url) as api:
        stub.route("POST", "/deployments/d/create_flow_run", STALL)
        with pytest.raises(httpx.ReadTimeout):
            api.post("/deployments/d/create_flow_run", json={})
        assert len(stub.called("POST", "/deployments/d/create_flow_run")) == 1


def test_503_gives_up_with_the_last_answer_and_a_down_server_fails_at_once():
    with http_stub() as stub, client(stub.url) as api:
        stub.route("GET", "/health", Reply(503))
        assert api.get("/health").status_code == 503
        assert len(stub.called("GET", "/health")) == 3
        assert healthy(api) is False and len(stub.called("GET", "/health")) == 4  # one probe
    with client(closed_port_url()) as api:
        with pytest.raises(httpx.ConnectError):
            api.get("/health")


def test_a_busy_server_is_waited_out_as_long_as_its_retry_after_says():
    """A 503 / 429 with Retry-After waits that long (capped), also for a POST that creates: the
    server did not take it."""
    with http_stub() as stub, client(stub.url) as api:
        busy = Reply(503, b"database is locked", {"Retry-After": "0.6"})
        stub.route("POST", "/deployments/d/create_flow_run", _flaky([busy, Reply(429, b"", {"Retry-After": "0"})],
                                                                    Reply.json({"id": "r"}, 201)))
        t0 = time.monotonic()
        assert api.post("/deployments/d/create_flow_run", json={}).json() == {"id": "r"}
        assert len(stub.called("POST", "/deployments/d/create_flow_run")) == 3
        assert 0.6 <= time.monotonic() - t0 < 5.0
