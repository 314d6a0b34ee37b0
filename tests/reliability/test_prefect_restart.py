"""The Prefect server dies (SIGKILL) under a running `poller` flow run and comes back.

A real ``prefect server start`` on a free loopback port; the poller flow runs in its own process
with ``PREFECT_API_URL`` pointing at it (as under a worker), heartbeats every second. The server is
SIGKILLed mid-run, stays down for PREFECT_OUTAGE_S (default 8 s), restarts on the same database.
Expected (docs/operations.md): the poller keeps collecting throughout (coverage >= 0.97 during
the outage too, nothing lost), the run reaches its final state in the API once the server is back,
and heartbeat events resume after the restart (those sent during the outage are lost).

Without Prefect the question does not arise: `collector poll` never talks to an API.
(tests/test_prefect_stack.py covers the full `collector up` stack.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from collector.sim.testing import run_sim
from flows.stack.up import (
    PROJECT_DIR,
    api_client,
    healthy,
    local_api,
    prefect_cli,
    prefect_env,
)
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema
from tests.test_prefect_stack import free_port

# ~40 s (two server starts): in `make soak`, out of the default run's time budget
pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.soak]

POLY, LIM = H.POLY, H.LIM
OUTAGE_S = float(os.environ.get("PREFECT_OUTAGE_S", "8"))

FLOW = """
import sys
from flows.poller import poller
state = poller(duration_s=float(sys.argv[1]), return_state=True)
print("FINAL", state.type.value, state.name, flush=True)
"""


def _start_server(env: dict[str, str], port: int, log) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(port)),
                                env=env, cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, process_group=0)


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_poller_flow_keeps_collecting_through_a_prefect_server_restart(tmp_path, monkeypatch):
    port = free_port()
    home = tmp_path / "prefect-home"
    data = tmp_path / "data"
    api = api_client(local_api(port))
    server = flow = None
    with run_sim("--markets", "8", "--seed", "81") as sim:
        H.prepare(sim, data, monkeypatch, POLLER__HEARTBEAT_INTERVAL_S="1")
        ids = {v: H.instrument_ids(data, v, sim) for v in (POLY, LIM)}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        base.update(H.env_for(sim, data, POLLER__HEARTBEAT_INTERVAL_S="1"))
        env = prefect_env(local_api(port), home, base)
        env["PYTHONPATH"] = str(PROJECT_DIR)
        try:
            t0 = time.monotonic()
            server = _start_server(env, port, tmp_path / "server.log")
            assert h.wait_for(lambda: healthy(api), 180, step=0.3), (tmp_path / "server.log").read_text()[-2000:]
            started_s = time.monotonic() - t0
            listening = _listening(server)
            duration = 4 + OUTAGE_S + 14  # the restart takes ~4 s: ~6 s of polling with the server back
            flow = subprocess.Popen([sys.executable, "-c", FLOW, str(duration)], env=env, cwd=PROJECT_DIR,
                                    stdout=open(tmp_path / "flow.log", "wb"), stderr=subprocess.STDOUT)
            assert h.wait_for(lambda: len(h.books(data, POLY)) > 0, 60), (tmp_path / "flow.log").read_text()[-3000:]
            m = H.Marks()
            m("flowing")
            time.sleep(4.0)
            run_id = _flow_run_id(api)
            m("kill")
            _kill_group(server)
            time.sleep(OUTAGE_S)
            m("restart")
            t1 = time.monotonic()
            server = _start_server(env, port, tmp_path / "server.log")
            assert h.wait_for(lambda: healthy(api), 180, step=0.3)
            restart_s = time.monotonic() - t1
            m("back")
            rc = flow.wait(timeout=duration + 120)
            m("end")
            out = (tmp_path / "flow.log").read_text(errors="replace")
            final = api.get(f"/flow_runs/{run_id}").json()
            # the server persists events in batches: wait for the last heartbeats to land
            beats: list[dict] = []

            def heartbeats_after_restart() -> bool:
                beats[:] = _heartbeats(api, run_id)
                return sum(1 for e in beats if _event_ms(e) > m.ms("back")) >= 3

            h.wait_for(heartbeats_after_restart, 30, step=1.0)
        finally:
            if flow is not None and flow.poll() is None:
                flow.kill()
                flow.wait()
            if server is not None and server.poll() is None:
                _kill_group(server, signal.SIGTERM)
            api.close()

    assert listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening  # loopback only
    assert rc == 0 and "FINAL COMPLETED" in out, out[-3000:]
    assert final["state_type"] == "COMPLETED", final["state"]
    ds = schema.scan(data)
    schema.assert_clean(ds)
    figures = {"server_start_s": started_s, "restart_s": restart_s, "outage_s": m["back"] - m["kill"]}
    for v in (POLY, LIM):
        H.check_totals(ds, v)
        during = H.cov(ds, v, ids[v], m["kill"], m["back"])
        whole = H.cov(ds, v, ids[v], m["flowing"], m["end"] - 1)
        figures.update({f"{v}_outage": during, f"{v}_whole": whole})
        assert during.ratio >= 0.97 and whole.ratio >= 0.97, (v, during, whole)
    times = sorted(_event_ms(e) for e in beats)
    figures["heartbeats_before"] = sum(1 for t in times if t < m.ms("kill"))
    figures["heartbeats_after"] = sum(1 for t in times if t > m.ms("back"))
    H.report("prefect_restart", **figures)
    assert figures["heartbeats_before"] >= 3
    assert figures["heartbeats_after"] >= 3, "heartbeat events did not resume after the server restart"


def _listening(server: subprocess.Popen) -> list[tuple[str, int]]:
    """(ip, port) of every listening TCP socket of the server's process tree."""
    import psutil

    procs = [psutil.Process(server.pid)]
    procs += procs[0].children(recursive=True)
    out = []
    for p in procs:
        try:
            out += [(c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    return out


def _flow_run_id(api) -> str:
    runs = api.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["poller"]}}}).json()
    assert len(runs) == 1, runs
    return runs[0]["id"]


def _heartbeats(api, run_id: str) -> list[dict]:
    r = api.post("/events/filter", json={"filter": {"event": {"name": ["collector.poller.heartbeat"]},
                                                    "related": {"id": [f"prefect.flow-run.{run_id}"]}},
                                         "limit": 50})
    r.raise_for_status()
    body = r.json()
    events = list(body["events"])
    token = body.get("next_page")
    while token:
        r = api.get("/events/filter/next", params={"page-token": token})
        r.raise_for_status()
        body = r.json()
        events += body["events"]
        token = body.get("next_page")
    return events


def _event_ms(e: dict) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(e["occurred"].replace("Z", "+00:00")).timestamp() * 1000)
