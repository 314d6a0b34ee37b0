"""The Prefect REST API as the local stack uses it: one retrying client, run queries, states (httpx only)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from collector.venues.http import parse_retry_after

POOL = "local"
POLLER = "poller/poller"
DISCOVERY = "discovery/discovery"
COMPACT = "compact/compact"
RETENTION = "retention/retention"
DEPLOYMENTS = (POLLER, DISCOVERY, COMPACT, RETENTION)
ACTIVE = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


# -- REST API -------------------------------------------------------------------------------------
class ApiClient(httpx.Client):
    """httpx against the Prefect API, retrying like Prefect's own client: a busy SQLite database
    answers 503 ("database is locked") or nothing for a while under load, on a slow machine for
    well over 6 s. 429 / 503 are retried for ~24 s (Retry-After honoured, up to 10 s a wait, as
    Prefect's client does); a timeout or dropped connection only where repeating is harmless: reads,
    filters, PATCH/PUT/DELETE."""

    retries = 8  # waits 0.25, 0.5, 1, 2, 4, 8, 8 s: ~24 s, like Prefect's client

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
        again = _idempotent(method, str(url))
        for attempt in range(self.retries):
            last = attempt == self.retries - 1
            try:
                r = super().request(method, url, *args, **kwargs)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                if not again or last or isinstance(e, httpx.ConnectError):  # refused: the server is down
                    raise
            else:
                if r.status_code not in (429, 503) or last:
                    return r
                after = parse_retry_after(r.headers.get("retry-after"))
                if after is not None:
                    time.sleep(min(10.0, after))
                    continue
            time.sleep(min(8.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")


def _idempotent(method: str, url: str) -> bool:
    return method.upper() in ("GET", "HEAD", "PUT", "PATCH", "DELETE") or url.rstrip("/").endswith(("/filter", "/count"))


def local_api(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def api_client(api_url: str) -> httpx.Client:
    return ApiClient(base_url=api_url, timeout=15.0, trust_env=False)


def healthy(api: httpx.Client) -> bool:
    try:  # one probe: the callers poll
        r = httpx.Client.request(api, "GET", "/health", timeout=2.0)
        return r.status_code == 200 and r.json() is True
    except (httpx.HTTPError, ValueError):
        return False


def deployment_id(api: httpx.Client, name: str) -> str:
    r = api.get(f"/deployments/name/{name}")
    r.raise_for_status()
    return r.json()["id"]


def _runs(api: httpx.Client, deployment: str, state: dict[str, Any], sort: str, limit: int) -> list[dict[str, Any]]:
    body = {
        "deployments": {"id": {"any_": [deployment_id(api, deployment)]}},
        "flow_runs": {"state": state},
        "sort": sort,
        "limit": limit,
    }
    r = api.post("/flow_runs/filter", json=body)
    r.raise_for_status()
    return r.json()


def runs_of(api: httpx.Client, deployment: str, states: list[str]) -> list[dict[str, Any]]:
    """Flow runs of ``deployment`` ("flow/deployment") in one of ``states`` (state types), newest first."""
    return _runs(api, deployment, {"type": {"any_": states}}, "EXPECTED_START_TIME_DESC", 50)


def runs_named(api: httpx.Client, deployment: str, state_names: list[str]) -> list[dict[str, Any]]:
    """Flow runs of ``deployment`` whose state has one of these names (e.g. "Late"), oldest first."""
    return _runs(api, deployment, {"name": {"any_": state_names}}, "EXPECTED_START_TIME_ASC", 200)


def read_run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    r = api.get(f"/flow_runs/{run_id}")
    r.raise_for_status()
    return r.json()


def set_state(api: httpx.Client, run_id: str, state_type: str, message: str, force: bool = False) -> None:
    r = api.post(f"/flow_runs/{run_id}/set_state",
                 json={"state": {"type": state_type, "message": message}, "force": force})
    r.raise_for_status()


def state_of(run: dict[str, Any]) -> str:
    return (run.get("state") or {}).get("type") or "UNKNOWN"
