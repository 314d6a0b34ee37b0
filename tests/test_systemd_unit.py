"""infra/systemd/collector-up.service: its policies, and a crash or reboot survived without a hand.

systemd is not PID 1 where these tests run, so the unit is not installed: the test reads its
[Service] section and starts its ExecStart with its Environment= lines the way systemd would
(own process group, the unit's working directory), with only the site paths moved into a temp
directory, the port made free and the venue URLs pointed at the simulator. Then every process of
the service is SIGKILLed at once (a power cut, the OOM killer taking the group, `systemctl kill
-s KILL`), and the same command is started again (what `Restart=always` does after `RestartSec`):
discovery runs again and the poller records again, with `restart` gaps for the span it missed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil
import pytest

from collector.sim.testing import run_sim
from flows.stack.api import DISCOVERY, POLLER, api_client, local_api, runs_of
from flows.stack.procs import PROJECT_DIR
from flows.stack.runs import CANCEL_TIMEOUT_S
from tests.test_infra_files import check_command, check_env
from tests.test_prefect_stack import free_port, kill_all, wait_for, wait_ready

UNIT = PROJECT_DIR / "infra" / "systemd" / "collector-up.service"
BIN = Path(sys.executable).parent


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}`` in file order (keys may repeat), comments dropped."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = out.setdefault(m.group(1), [])
            continue
        key, _, value = line.partition("=")
        assert section is not None, line
        section.append((key.strip(), value.strip()))
    return out


def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def one(section: list[tuple[str, str]], key: str) -> str:
    (value,) = [v for k, v in section if k == key]
    return value


def environment(service: list[tuple[str, str]]) -> dict[str, str]:
    return dict(a.split("=", 1) for k, v in service if k == "Environment" for a in shlex.split(v))


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_the_unit_restarts_and_stops_in_order():
    u = unit()
    svc = u["Service"]
    assert one(svc, "Restart") == "always" and seconds(one(svc, "RestartSec")) >= 1
    assert one(u["Unit"], "StartLimitIntervalSec") == "0"  # never stop restarting a crash loop
    # SIGTERM to `collector up` alone, which stops poller -> worker -> server in order
    assert one(svc, "KillMode") == "mixed" and one(svc, "KillSignal") == "SIGTERM"
    # longer than the poller's flush and `up`'s whole clean stop (cancel wait + worker 15 s + server 20 s)
    assert seconds(one(svc, "TimeoutStopSec")) > CANCEL_TIMEOUT_S + 15 + 20
    root = one(svc, "WorkingDirectory")
    argv = shlex.split(one(svc, "ExecStart"))
    assert argv[0] == f"{root}/.venv/bin/collector" and argv[1] == "up"  # the clone's own venv (make install)
    check_command(["collector", *argv[1:]])  # every flag exists
    for name in environment(svc):
        check_env(name)
    assert "multi-user.target" in one(u["Install"], "WantedBy")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # only what this machine lacks: the install path and its user
    noise = re.compile(r"is not executable|No such file|[Uu]ser|[Gg]roup|Documentation|^\s*$")
    bad = [line for line in (r.stdout + r.stderr).splitlines() if not noise.search(line)]
    assert not bad, r.stdout + r.stderr


def service_command(tmp: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """ExecStart and Environment= of the unit, its install root moved: the code is this checkout,
    the venv this interpreter's, the state (PREFECT_HOME, data) under ``tmp``; a free port."""
    svc = unit()["Service"]
    root = one(svc, "WorkingDirectory")
    argv = shlex.split(one(svc, "ExecStart"))
    argv[0] = str(BIN / Path(argv[0]).relative_to(f"{root}/.venv/bin"))
    argv[argv.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
    for k, v in environment(svc).items():
        env[k] = str(tmp / Path(v).relative_to(root)) if v.startswith(root + "/") else v
    return argv, env


def start_service(argv: list[str], env: dict[str, str], out: Path) -> subprocess.Popen:
    with open(out, "ab") as f:
        return subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, process_group=0)


def kill_service(proc: subprocess.Popen) -> list[psutil.Process]:
    """SIGKILL the service's every process at once, children first (no PR_SET_PDEATHSIG SIGTERM
    gives them a clean way out): what a power cut leaves."""
    procs = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
    for p in procs:
        p.send_signal(signal.SIGKILL)
    gone, alive = psutil.wait_procs(procs, timeout=20)
    assert not alive, alive
    proc.wait(timeout=10)
    return procs


def books_after(data: Path, t_ms: int) -> list[dict]:
    out = []
    for f in data.glob("*/orderbooks/date=*/*.jsonl"):
        out += [r for r in map(orjson.loads, f.read_bytes().splitlines()) if r.get("ts_ms", 0) > t_ms]
    return out


@pytest.mark.prefect
@pytest.mark.slow
def test_sigkill_of_the_whole_service_then_a_restart_recovers_by_itself(tmp_path):
    port = free_port()
    argv, env = service_command(tmp_path, port)
    data = Path(env["COLLECTOR_DATA_DIR"])
    assert data.is_relative_to(tmp_path) and Path(env["PREFECT_HOME"]).is_relative_to(tmp_path)
    procs: list[psutil.Process] = []
    proc = None
    with run_sim("--markets", "8", "--seed", "5", "--no-rate-limit") as sim:
        env.update(sim.env, COLLECTOR_POLLER__STATS_INTERVAL_S="1",  # restart state marked every second
                   COLLECTOR_POLYMARKET__RULES='[{"name": "top", "max_markets": 4}]',
                   COLLECTOR_LIMITLESS__RULES='[{"name": "top", "max_markets": 2}]')
        api = api_client(local_api(port))
        try:
            out = tmp_path / "service.out"
            proc = start_service(argv, env, out)
            wait_ready(proc, out)
            (first,) = wait_for("the poller Running", lambda: runs_of(api, POLLER, ["RUNNING"]), 90)
            wait_for("books on disk", lambda: books_after(data, 0), 120)  # discovery ran: the poller had snapshots
            time.sleep(2)  # at least one restart-state mark with books in it

            procs = kill_service(proc)
            killed_ms = int(time.time() * 1000)
            assert not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            time.sleep(2)  # the machine is down

            out2 = tmp_path / "service.restart.out"
            proc = start_service(argv, env, out2)  # Restart=always: the same ExecStart, the same Environment
            wait_ready(proc, out2)
            text = out2.read_text()
            assert f"poller/poller run {first['name']} had no process left: marked Cancelled" in text, text
            (second,) = wait_for("a new poller Running", lambda: [
                r for r in runs_of(api, POLLER, ["RUNNING"]) if r["id"] != first["id"]], 90)
            assert api.get(f"/flow_runs/{first['id']}").json()["state_type"] == "CANCELLED"
            def venues_recording() -> set[str]:
                found = {r["venue"] for r in books_after(data, killed_ms) if r["record_type"] == "orderbook"}
                return found if found == {"polymarket", "limitless"} else set()
            wait_for("books of both venues recorded after the restart", venues_recording, 90)
            gaps = wait_for("restart gaps", lambda: [r for r in books_after(data, killed_ms)
                                                     if r["record_type"] == "gap" and r["reason"] == "restart"], 60)
            assert all(g["from_ts_ms"] < killed_ms < g["to_ts_ms"] for g in gaps)

            def discovery_after_restart():
                return [r for r in runs_of(api, DISCOVERY, ["COMPLETED"])
                        if r["start_time"] and r["start_time"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(killed_ms / 1000))]
            wait_for("discovery Completed after the restart", discovery_after_restart, 150, every=2)

            # systemctl stop: SIGTERM to the main process (KillMode=mixed); a clean stop within TimeoutStopSec
            procs = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=seconds(one(unit()["Service"], "TimeoutStopSec"))) == 0
            assert f"poller run {second['id']}: CANCELLED" in out2.read_text()
        finally:
            if proc is not None and proc.poll() is None:
                procs = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
            kill_all(procs)
            api.close()
