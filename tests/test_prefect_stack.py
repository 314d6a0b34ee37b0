"""The real Prefect stack, end to end: `python -m flows.stack.up` (= `collector up` with its own
PREFECT_HOME) starts a Prefect server on a free loopback port, the `local` process pool, the
prefect.yaml deployments, the automations, one worker and a poller run, against the simulator.

One stack serves the whole module; the tests run in file order and the last one stops it with
Ctrl-C (SIGINT) and checks that the poller run ended Cancelled with complete files. Every child
process is killed at teardown, even on failure. Also here: two poller shards cover the active set
exactly once.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from collector.config.settings import load_settings
from collector.discovery.run import run_discovery
from collector.sim.testing import run_sim
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from flows.stack.api import DISCOVERY, POLLER, api_client, local_api, runs_of
from flows.stack.automations import apply_automations, definitions, read_automations
from flows.stack.procs import PROJECT_DIR, prefect_cli, prefect_env
from tests.helpers import ALL_RULE, TOP2_RULE

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

DEAD_URL = "http://127.0.0.1:9"  # discard port: connection refused
UP_READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Receiver(http.server.ThreadingHTTPServer):
    """A loopback webhook receiver that records the JSON bodies it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.arrived: list[float] = []  # epoch s, one per body
        received, arrived = self.bodies, self.arrived

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                received.append(json.loads(self.rfile.read(n) or b"{}"))
                arrived.append(time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def texts(self) -> list[str]:
        return [b.get("text", "") for b in self.bodies]

    def timed_texts(self) -> list[tuple[float, str]]:
        return list(zip(self.arrived, self.texts()))


@dataclass
class Up:
    """A running `python -m flows.stack.up` and what the tests need to talk to it."""

    proc: subprocess.Popen
    out: Path
    home: Path
    data: Path
    port: int
    env: dict[str, str]  # the Prefect CLI environment
    api: httpx.Client
    receiver: Receiver
    children: dict[int, psutil.Process] = field(default_factory=dict)  # psutil guards against pid reuse
    pg: Any = None  # the tests.postgres.Postgres the server keeps its state in; None: SQLite in home

    def poller_states(self) -> dict[str, str]:
        """flow run id -> state type of every poller run, read from the server's database itself."""
        sql = ("select f.id, f.state_type from flow_run f join deployment d on d.id = f.deployment_id "
               "where d.name = 'poller'")
        if self.pg is not None:
            return {str(i): str(t).rsplit(".", 1)[-1] for i, t in self.pg.query(sql)}
        db = sqlite3.connect(self.home / "prefect.db")
        try:
            return dict(db.execute(sql).fetchall())
        finally:
            db.close()

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def remember_children(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.children.update({c.pid: c for c in psutil.Process(self.proc.pid).children(recursive=True)})

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(prefect_cli(*args), env=self.env, cwd=PROJECT_DIR, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)


def start_up(out: Path, home: Path, port: int, env: dict[str, str], *args: str) -> subprocess.Popen:
    with open(out, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "flows.stack.up", "--port", str(port), "--home", str(home), *args],
                                cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                process_group=0)


def wait_ready(proc: subprocess.Popen, out: Path, marker: str = "UI at ") -> None:
    def ready() -> bool:
        text = out.read_text(errors="replace") if out.exists() else ""
        if proc.poll() is not None:
            raise AssertionError(f"flows.stack.up exited with {proc.returncode}:\n{text}")
        return marker in text

    wait_for("`up` to be ready", ready, UP_READY_TIMEOUT_S)


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL what is still running (psutil checks the create time, so a reused pid is left alone)."""
    killed = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
            killed.append(p)
    psutil.wait_procs(killed, timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from run_stack(tmp_path_factory)


def run_stack(tmp_path_factory, pg: Any = None):
    """The module's stack (a generator for a module-scoped fixture); ``pg``: a tests.postgres.Postgres
    for the server's database instead of SQLite."""
    tmp = tmp_path_factory.mktemp("stack")
    receiver = Receiver()
    with run_sim("--markets", "8", "--seed", "7", "--no-rate-limit") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        env.update(sim.env)
        env.update(
            COLLECTOR_DATA_DIR=str(tmp / "data"),
            COLLECTOR_POLLER__STATS_INTERVAL_S="1",
            COLLECTOR_POLLER__HEARTBEAT_INTERVAL_S="1",
            COLLECTOR_DISCOVERY__TASK_RETRIES="0",  # a failing discovery fails now, not after 42 s of retries
            # Rules that always select something: the default intraday rule depends on the clock.
            COLLECTOR_POLYMARKET__RULES='[{"name": "top", "max_markets": 5}]',
            COLLECTOR_LIMITLESS__RULES='[{"name": "top", "max_markets": 3}]',
            COLLECTOR_PREFECT__WEBHOOK_URL=receiver.url,
        )
        port, home = free_port(), tmp / ".prefect"
        t0 = time.monotonic()
        proc = start_up(tmp / "up.out", home, port, env, *(["--database", pg.url] if pg is not None else []))
        up = Up(proc, tmp / "up.out", home, tmp / "data", port, prefect_env(local_api(port), home, env),
                api_client(local_api(port)), receiver, pg=pg)
        try:
            wait_ready(proc, up.out)
            print(f"\n[stack] up ready in {time.monotonic() - t0:.1f} s\n{up.output()}")
            up.remember_children()
            yield up
        finally:
            tear_down(up)
            print(f"[stack] output of up:\n{up.output()}")


def tear_down(up: Up) -> None:
    """Ctrl-C the stack (waits for its clean stop), then SIGKILL whatever of it is left."""
    up.remember_children()
    if up.proc.poll() is None:
        up.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            up.proc.wait(timeout=90)
    kill_all(list(up.children.values()))
    if up.proc.poll() is None:
        up.proc.kill()
        up.proc.wait(timeout=10)
    up.api.close()
    up.receiver.shutdown()


def discovery_schedule(api: httpx.Client) -> tuple[str, dict]:
    d = api.get(f"/deployments/name/{DISCOVERY}").json()
    (sched,) = d["schedules"]
    return d["id"], sched


def books(data: Path) -> list[dict]:
    out = []
    for f in data.glob("*/orderbooks/date=*/*.jsonl"):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return out


# -- the stack, in order ---------------------------------------------------------------------------
def test_up_brought_up_pool_deployments_automations_worker_and_one_poller(stack):
    api = stack.api
    assert api.get("/work_pools/local").json()["type"] == "process"
    dep_id, sched = discovery_schedule(api)
    assert sched["slug"] == "discovery-every-minute" and sched["active"] is True
    assert sched["schedule"]["cron"] == "* * * * *" and sched["schedule"]["timezone"] == "UTC"
    disc = api.get(f"/deployments/{dep_id}").json()
    assert disc["global_concurrency_limit"]["limit"] == 1
    assert disc["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    poller = api.get(f"/deployments/name/{POLLER}").json()
    assert poller["schedules"] == [] and poller["global_concurrency_limit"]["limit"] == 1
    assert poller["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert poller["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(PROJECT_DIR)

    names = sorted(a["name"] for a in read_automations(api))
    assert names == sorted(d["name"] for d in definitions(None))
    block = api.get("/block_types/slug/custom-webhook/block_documents/name/collector-alerts").json()
    for a in read_automations(api):  # every alert notifies through the block made from the setting
        notify = [x for x in a["actions"] if x["type"] == "send-notification"]
        state_only = ("collector-zombie-flow-runs", "collector-stuck-pending-runs")  # their Crashed state alerts
        assert a["name"] in state_only or [x["block_document_id"] for x in notify] == [block["id"]], a
    assert len(runs_of(api, POLLER, ["SCHEDULED", "PENDING", "RUNNING"])) == 1
    workers = wait_for("the worker", lambda: api.post("/work_pools/local/workers/filter", json={}).json(), 30)
    assert [w["status"] for w in workers] == ["ONLINE"]

    # Pause discovery the way docs/operations.md says (the schedule, not the deployment), so the
    # manual runs below never meet a scheduled one; the second `up` checks it survives a redeploy.
    api.patch(f"/deployments/{dep_id}/schedules/{sched['id']}", json={"active": False}).raise_for_status()
    busy = ["SCHEDULED", "PENDING", "RUNNING"]
    wait_for("no scheduled/active discovery run", lambda: not runs_of(api, DISCOVERY, busy), 60)


def test_discovery_watch_exits_0_on_success_and_writes_snapshots(stack):
    t0 = time.monotonic()
    r = stack.cli("deployment", "run", DISCOVERY, "--watch", "--watch-interval", "1", "--watch-timeout", "150")
    print(f"[timing] discovery --watch ok: {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Completed" in r.stdout
    for venue in ("polymarket", "limitless"):
        assert read_snapshot(snapshot_path(stack.data, venue)).instruments


def test_discovery_watch_exits_nonzero_on_failure_and_alerts_the_webhook(stack):
    dead = json.dumps({"COLLECTOR_POLYMARKET__GAMMA_URL": DEAD_URL, "COLLECTOR_LIMITLESS__API_URL": DEAD_URL})
    t0 = time.monotonic()
    r = stack.cli("deployment", "run", DISCOVERY, "--job-variable", f"env={dead}",
                  "--watch", "--watch-interval", "1", "--watch-timeout", "150")
    print(f"[timing] discovery --watch failing: {time.monotonic() - t0:.1f} s")
    assert r.returncode != 0, r.stdout
    assert "Failed" in r.stdout + r.stderr
    text = wait_for("the discovery-failed webhook",
                    lambda: [t for t in stack.receiver.texts() if "discovery run" in t], 30)
    assert "is Failed" in text[0] and "flow-run" in text[0]  # subject, then the UI link of the run


def test_venue_degraded_event_reaches_the_webhook(stack):
    event = {
        "id": str(uuid.uuid4()), "occurred": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "event": "collector.poller.venue.degraded",
        "resource": {"prefect.resource.id": "collector.poller.limitless", "collector.venue": "limitless"},
        "payload": {"venue": "limitless", "reason": "cooldown",
                    "message": "limitless: in cooldown (http_429) for 300 s"},
    }
    stack.api.post("/events", json=[event]).raise_for_status()
    text = wait_for("the venue-degraded webhook", lambda: [t for t in stack.receiver.texts() if "degraded" in t], 30)
    assert "limitless degraded (cooldown)" in text[0] and "for 300 s" in text[0]


def test_poller_run_writes_books_and_heartbeats(stack):
    run = wait_for("a Running poller", lambda: runs_of(stack.api, POLLER, ["RUNNING"]), 60)[0]
    assert wait_for("books on disk", lambda: len(books(stack.data)) >= 10, 60)
    beats = stack.api.post("/events/filter", json={"filter": {"event": {"name": ["collector.poller.heartbeat"]},
                                                             "related": {"id": [f"prefect.flow-run.{run['id']}"]}}})
    assert beats.json()["events"], "no collector.poller.heartbeat event from the poller run"


def test_crashed_poller_is_restarted_by_its_automation(stack):
    api = stack.api
    (run,) = runs_of(api, POLLER, ["RUNNING"])
    pid = int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    wait_for("the killed run to be Crashed",
             lambda: api.get(f"/flow_runs/{run['id']}").json()["state_type"] == "CRASHED", 30)
    new = wait_for("a restarted poller run",
                   lambda: [r for r in runs_of(api, POLLER, ["SCHEDULED", "PENDING", "RUNNING"]) if r["id"] != run["id"]],
                   30)
    assert len(new) == 1
    wait_for("the restarted run to be Running", lambda: runs_of(api, POLLER, ["RUNNING"]), 60)
    print(f"[timing] SIGKILL -> new poller Running: {time.monotonic() - t0:.1f} s")
    assert wait_for("the crash webhook", lambda: [t for t in stack.receiver.texts() if "crashed, restarting" in t], 30)
    stack.remember_children()


def test_second_up_and_reapplying_automations_change_nothing(stack):
    api = stack.api
    before = sorted((a["id"], a["name"]) for a in read_automations(api))
    settings = load_settings(prefect={"webhook_url": stack.receiver.url})
    for _ in range(2):
        done = apply_automations(api, settings)
        assert done["created"] == done["updated"] == done["deleted"] == []
    # a duplicate made by hand (`prefect automation create` twice) is removed on the next apply
    dup = {**definitions(None)[0], "tags": ["collector"]}
    api.post("/automations/", json=dup).raise_for_status()
    assert apply_automations(api, settings)["deleted"] == [dup["name"]]

    out = stack.out.with_name("up2.out")
    t0 = time.monotonic()
    second = start_up(out, stack.home, stack.port, stack.env)
    try:
        wait_ready(second, out)
        text = out.read_text()
        print(f"[timing] second up (attached) ready in {time.monotonic() - t0:.1f} s\n{text}")
        assert "already answers" in text and "not starting another" in text and "already running" in text
        assert "automations: unchanged 7" in text
    finally:
        second.send_signal(signal.SIGTERM)  # systemd/docker stop: same clean path as Ctrl-C
        assert second.wait(timeout=60) == 0
    assert sorted((a["id"], a["name"]) for a in read_automations(api)) == before
    assert len(runs_of(api, POLLER, ["SCHEDULED", "PENDING", "RUNNING"])) == 1  # no second poller, not cancelled
    assert len(api.post("/work_pools/local/workers/filter", json={}).json()) == 1
    assert discovery_schedule(api)[1]["active"] is False  # the pause survived the redeploy (slug)


def flows_up(stack: Up, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.stack.up", *args, "--api-url", local_api(stack.port)],
                          cwd=PROJECT_DIR, env=stack.env, capture_output=True, text=True, timeout=120)


def test_cancel_pollers_then_setup_only_starts_one_again(stack):
    """The ExecStop=/upgrade path: --cancel-pollers waits for Cancelled; --setup-only (compose)
    redeploys and starts exactly one poller run, which the worker picks up."""
    api = stack.api
    (old,) = runs_of(api, POLLER, ["RUNNING"])
    r = flows_up(stack, "--cancel-pollers")
    assert r.returncode == 0 and f"({old['id']}): CANCELLED" in r.stdout, r.stdout + r.stderr
    assert not runs_of(api, POLLER, ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING"])
    r = flows_up(stack, "--setup-only")
    assert r.returncode == 0 and "automations: unchanged 7" in r.stdout and ": started" in r.stdout, r.stdout + r.stderr
    (new,) = wait_for("the new poller Running", lambda: runs_of(api, POLLER, ["RUNNING"]), 60)
    assert new["id"] != old["id"]
    assert len(runs_of(api, POLLER, ["SCHEDULED", "PENDING", "RUNNING"])) == 1
    stack.remember_children()


def test_sharded_pollers_cover_the_active_set_exactly_once(tmp_path, monkeypatch):
    """Two `collector poll` processes, shards 0/2 and 1/2, one data directory: each instrument is
    polled by exactly one shard, together they poll all of them, and no file is shared."""
    with run_sim("--markets", "30", "--seed", "9", "--no-rate-limit") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        # Every market with 30 min or more left: the 5-minute ones would expire (and be dropped)
        # while the shards poll, and at some minutes of the hour they are most of the default set.
        env.update(sim.env, COLLECTOR_DATA_DIR=str(tmp_path), COLLECTOR_POLYMARKET__RULES=ALL_RULE,
                   COLLECTOR_LIMITLESS__RULES=TOP2_RULE)
        for k, v in env.items():
            if k.startswith("COLLECTOR_"):
                monkeypatch.setenv(k, v)
        soon = int(time.time() * 1000) + 120_000
        active = {i.instrument_id for r in run_discovery(load_settings()) for i in
                  read_snapshot(snapshot_path(tmp_path, r.venue)).instruments
                  if i.expires_at_ms is None or i.expires_at_ms > soon}
        assert len(active) >= 10
        collector = Path(sys.executable).with_name("collector")
        procs = {shard: subprocess.Popen([str(collector), "poll", "--duration", "5"], cwd=PROJECT_DIR,
                                         env={**env, "COLLECTOR_POLLER__SHARD": shard}, stdin=subprocess.DEVNULL)
                 for shard in ("0/2", "1/2")}
        try:
            assert all(p.wait(timeout=60) == 0 for p in procs.values())
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
    pid_of = {str(p.pid): shard for shard, p in procs.items()}
    polled: dict[str, set[str]] = {"0/2": set(), "1/2": set()}
    files = sorted(tmp_path.glob("*/orderbooks/date=*/*.jsonl"))
    for f in files:  # <stream>.<period>.<HHMMSSmmm>-<pid>-<random>.jsonl
        shard = pid_of[re.search(r"-(\d+)-[0-9a-f]+\.jsonl$", f.name).group(1)]
        polled[shard] |= {orjson.loads(line)["instrument_id"] for line in f.read_bytes().splitlines()}
    assert len({f.name for f in files}) == len(files)
    assert polled["0/2"] and polled["1/2"]
    assert polled["0/2"].isdisjoint(polled["1/2"])
    assert active <= polled["0/2"] | polled["1/2"]  # every lasting instrument, by exactly one shard


def test_ctrl_c_cancels_the_poller_then_stops_worker_and_server(stack):
    api = stack.api
    (run,) = runs_of(api, POLLER, ["RUNNING"])
    stack.remember_children()
    t0 = time.monotonic()
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=90) == 0, stack.output()
    print(f"[timing] Ctrl-C -> up exited: {time.monotonic() - t0:.1f} s")
    text = stack.output()
    assert f"poller run {run['id']}: CANCELLED" in text and "worker stopped" in text and "server stopped" in text
    alive = [p for p in stack.children.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive

    states = stack.poller_states()
    assert states[run["id"]] == "CANCELLED"
    assert "RUNNING" not in states.values() and "PENDING" not in states.values()

    files = list(stack.data.glob("*/*/date=*/*.jsonl"))
    assert files
    for f in files:
        raw = f.read_bytes()
        assert raw.endswith(b"\n"), f"{f} is torn"
        for line in raw.splitlines():
            orjson.loads(line)
