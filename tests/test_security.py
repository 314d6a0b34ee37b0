"""Security basics: secrets stay secret, venue strings never become paths, everything binds loopback.

* Secrets (``COLLECTOR_LIMITLESS__API_KEY``, ``COLLECTOR_PREFECT__WEBHOOK_URL``) are ``SecretStr``
  and never appear in logs (a whole discovery + poller run captured at DEBUG, in-process and as a
  `collector poll` child), in data files, in `collector config`, in configuration errors, or in
  what the discovery flow leaves in Prefect (artifacts, runs, task runs, logs, events).
* Venue-provided strings (slugs, token ids, market ids, outcomes such as ``../../etc/x``) never
  become file paths: discovery, the writer's names and the poller only create the documented
  layout under ``data_dir``. (Bad *venue/stream* names are refused by the writer:
  tests/test_writer.py::test_bad_names_and_settings_rejected.)
* The simulator listens on 127.0.0.1 only; `collector up` starts its Prefect server with
  ``--host 127.0.0.1`` and compose publishes the UI on loopback only.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from collector.config.settings import Settings, load_settings
from collector.discovery.run import run_discovery
from collector.model.clock import now_ms
from collector.model.errors import ConfigError
from collector.model.records import BookRecord, Instrument
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.venues.base import DiscoveryResult, FetchResult
from tests import helpers as h
from tests.reliability import schema

API_KEY = "lk_SECRET_api_key_7f3a9c"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/SECRET_hook_5e1d"
SECRETS = (API_KEY, WEBHOOK, "SECRET_hook_5e1d", "SECRET_api_key")
REPO = Path(__file__).resolve().parents[1]


def _leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [s for s in SECRETS if s in text]


def _secret_env() -> dict[str, str]:
    return {"COLLECTOR_LIMITLESS__API_KEY": API_KEY, "COLLECTOR_PREFECT__WEBHOOK_URL": WEBHOOK}


def _tree_leaks(root: Path) -> dict[str, list[str]]:
    out = {}
    for p in Path(root).rglob("*"):
        if p.is_file():
            found = _leaks(p.read_bytes())
            if found:
                out[str(p)] = found
    return out


# --------------------------------------------------------------------------- secrets


def test_secrets_are_secretstr_and_masked(monkeypatch):
    for k, v in _secret_env().items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert isinstance(s.limitless.api_key, SecretStr) and isinstance(s.prefect.webhook_url, SecretStr)
    assert s.limitless.api_key.get_secret_value() == API_KEY
    for text in (repr(s), str(s), repr(s.limitless), json.dumps(s.model_dump(mode="json")), s.model_dump_json()):
        assert _leaks(text) == [], text[:200]
    # the field types themselves, so a refactor cannot quietly turn them into str
    assert "SecretStr" in str(Settings.model_fields["limitless"].annotation.model_fields["api_key"].annotation)
    assert "SecretStr" in str(Settings.model_fields["prefect"].annotation.model_fields["webhook_url"].annotation)


def test_collector_config_output_masks_secrets(tmp_path):
    r = subprocess.run([sys.executable, "-m", "collector", "config"], env=h.child_env(_secret_env()), cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert _leaks(r.stdout + r.stderr) == []
    cfg = json.loads(r.stdout)
    assert cfg["limitless"]["api_key"] == "**********" and cfg["prefect"]["webhook_url"] == "**********"


def test_configuration_errors_do_not_echo_secret_values(tmp_path, monkeypatch):
    """A wrong type for a secret field (TOML) and a bad sibling field: the ConfigError names the
    fields, never the values."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[limitless]\napi_key = ["{API_KEY}"]\nmax_workers = "{API_KEY}"\n'
                   f'[prefect]\nwebhook_url = {{ url = "{WEBHOOK}" }}\n')
    monkeypatch.setenv("COLLECTOR_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "limitless.api_key" in str(e.value) and "prefect.webhook_url" in str(e.value)
    assert _leaks(str(e.value)) == [], str(e.value)
    monkeypatch.delenv("COLLECTOR_CONFIG")
    monkeypatch.setenv("COLLECTOR_PREFECT__WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("COLLECTOR_LIMITLESS__MAX_WORKERS", API_KEY)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert _leaks(str(e.value)) == [], str(e.value)


def test_secrets_never_logged_or_written_by_a_run(tmp_path, monkeypatch, caplog):
    """Discovery + poller in-process with every logger at DEBUG (httpx, urllib3 included) and
    faults on both venues (error paths log too), then a `collector poll` child at DEBUG: no
    secret in any log line, data file or snapshot."""
    caplog.set_level(logging.DEBUG)
    # Earlier tests may have raised library loggers to WARNING (the CLI quiets httpx) or disabled
    # loggers (Prefect's logging config): open them all up for this test only.
    for name in ("collector", "httpx", "httpcore", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name.split(".")[0] in ("collector", "httpx", "httpcore", "urllib3"):
            monkeypatch.setattr(lg, "disabled", False)
            monkeypatch.setattr(lg, "propagate", True)
    with run_sim("--markets", "6", "--seed", "91") as sim:
        env = h.sim_env(sim, tmp_path, **{k[len("COLLECTOR_"):]: v for k, v in _secret_env().items()},
                        LOG_LEVEL="DEBUG")
        h.apply_env(monkeypatch, env)
        settings = load_settings()
        assert all(r.ok for r in run_discovery(settings))
        sim.control(error_rate=0.1, html_rate=0.1, malformed_rate=0.1)
        Poller(settings).run(duration_s=3)
        proc = h.start_poll_process(env, tmp_path / "child.log", "--duration", "3")
        assert proc.wait(timeout=60) == 0
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert len(caplog.records) > 20 and "DEBUG" in {r.levelname for r in caplog.records}
    assert _leaks(logged) == [], [r.getMessage() for r in caplog.records if _leaks(r.getMessage())][:3]
    child = (tmp_path / "child.log").read_text()
    assert "polling" in child and _leaks(child) == []
    assert _tree_leaks(tmp_path) == {}
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    assert ds.books("limitless") and ds.errors("polymarket") + ds.errors("limitless")


@pytest.mark.prefect
def test_discovery_flow_leaves_no_secret_in_prefect(tmp_path, monkeypatch, prefect_harness):
    """The discovery flow gets the settings (secrets included) as a task parameter: nothing of
    them may reach the API (artifacts, flow/task runs, logs, events)."""
    from prefect.client.orchestration import get_client

    import flows.discovery as fd

    with run_sim("--markets", "6", "--seed", "92") as sim:
        env = h.sim_env(sim, tmp_path, **{k[len("COLLECTOR_"):]: v for k, v in _secret_env().items()})
        h.apply_env(monkeypatch, env)
        monkeypatch.setenv("COLLECTOR_DISCOVERY__TASK_RETRIES", "0")
        state = fd.discovery(return_state=True)
        assert state.is_completed(), state.message
        # a failing run too: errors end up in the artifact table and the events
        sim.control(venue="limitless", down=True)
        fd.discovery(return_state=True)
    run_ids = set()
    dumps: list[str] = []
    kinds: dict[str, int] = {}

    async def collect():
        async with get_client() as c:
            sources = {"artifacts": await c.read_artifacts(), "flow_runs": await c.read_flow_runs(),
                       "task_runs": await c.read_task_runs(), "logs": await c.read_logs()}
            for kind, items in sources.items():
                kinds[kind] = len(items)
                dumps.extend(x.model_dump_json() for x in items)
            run_ids.update(a.flow_run_id for a in sources["artifacts"] if a.flow_run_id)
            r = await c._client.post("/events/filter", json={"filter": {"event": {"prefix": ["collector."]}},
                                                             "limit": 50})
            kinds["events"] = len(r.json().get("events", []))
            dumps.append(r.text)

    import asyncio

    asyncio.run(collect())
    text = "\n".join(dumps)
    assert run_ids and "discovery-summary" in text
    assert kinds["task_runs"] >= 4 and kinds["logs"] >= 4 and kinds["flow_runs"] >= 2, kinds
    assert _leaks(text) == [], [d[:300] for d in dumps if _leaks(d)][:2]
    assert _tree_leaks(tmp_path) == {}


# --------------------------------------------------------------------------- paths

NASTY = ["../../../../etc/x", "/etc/passwd", "a/b", "..", ".", "~root", "C:\\Windows\\x", "x\x00y", "$(rm -rf ~)",
         "%2e%2e%2fx", "date=2026-01-01", ".hidden", "state/../../x"]


class NastyClient:
    """A venue whose every string is hostile: poll keys, market ids, outcomes, titles, slugs."""

    batch_size = 1
    shared_spacing = None

    def __init__(self, name: str):
        self.name = name

    def discover(self) -> DiscoveryResult:
        insts = [Instrument(venue=self.name, poll_key=s, market_id=s, outcome=s, title=s, slug=s, event_slug=s,
                            series_slug=s, tags=(s,), meta={"path": s}, tick_size="0.01") for s in NASTY]
        return DiscoveryResult(instruments=insts, pages=1)

    def fetch_books(self, keys):
        return FetchResult(books={k: {"ok": True} for k in keys}, errors={}, ts_ms=now_ms(), latency_ms=1.0)

    def normalize(self, inst, raw, ts_ms, latency_ms):
        return BookRecord(venue=self.name, instrument_id=inst.instrument_id, poll_key=inst.poll_key,
                          market_id=inst.market_id, outcome=inst.outcome, ts_ms=ts_ms, bids=[("0.4", "1")],
                          asks=[("0.5", "2")], latency_ms=latency_ms)

    def close(self):
        pass


ALLOWED = [
    re.compile(r"^(polymarket|limitless)/(orderbooks|poll_stats|poll_errors)/date=\d{4}-\d{2}-\d{2}/"
               r"[a-z_]+\.\d{8}T\d{4}Z\.\d{9}-\d+-[0-9a-f]{6}\.jsonl$"),
    re.compile(r"^(polymarket|limitless)/markets/date=\d{4}-\d{2}-\d{2}/markets\.\d{6}\.\d+\.jsonl$"),
    re.compile(r"^(polymarket|limitless)/state/active_instruments\.snapshot\.json$"),
    re.compile(r"^limitless/state/request_spacing$"),
    re.compile(r"^(polymarket|limitless)/state/poller\.shard-\d+of\d+\.json(\.lock)?$"),  # restart state
    re.compile(r"^(polymarket|limitless)/state/trades\.shard-\d+of\d+\.json$"),  # how far each trade tape is recorded
    re.compile(r"^(polymarket|limitless)/trades/date=\d{4}-\d{2}-\d{2}/trades\.\d{8}T\d{4}Z\.\d{9}-\d+-[0-9a-f]{6}\.jsonl$"),
]


def _layout_problems(sandbox: Path, data: Path) -> list[str]:
    out = []
    for p in sandbox.rglob("*"):
        rel = p.relative_to(sandbox)
        if p.is_dir():
            continue
        if not p.is_relative_to(data):
            out.append(f"outside data_dir: {rel}")
            continue
        r = p.relative_to(data).as_posix()
        if not any(a.match(r) for a in ALLOWED):
            out.append(f"unexpected path: {r}")
    return out


def test_hostile_venue_strings_never_become_paths(tmp_path, monkeypatch):
    """Discovery and the poller with a venue whose poll keys, market ids, outcomes and slugs are
    path tricks: every file created is in the documented layout under data_dir (which sits 6
    levels deep in a sandbox, so a ``../`` escape would land inside the sandbox and be seen)."""
    sandbox = tmp_path / "sandbox"
    data = sandbox / "a" / "b" / "c" / "d" / "e" / "data"
    monkeypatch.chdir(sandbox.mkdir(parents=True) or sandbox)
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(data))
    monkeypatch.setenv("COLLECTOR_VENUES", "polymarket,limitless")
    monkeypatch.setenv("COLLECTOR_POLYMARKET__RULES", "[{\"name\": \"all\"}]")
    monkeypatch.setenv("COLLECTOR_LIMITLESS__RULES", "[{\"name\": \"all\"}]")
    monkeypatch.setenv("COLLECTOR_POLLER__STATS_INTERVAL_S", "0.5")
    monkeypatch.setenv("COLLECTOR_LIMITLESS__MIN_SPACING_S", "0")  # a fake venue: no pacing needed
    monkeypatch.setenv("COLLECTOR_LIMITLESS__RATE_REQUESTS", "1000")
    settings = load_settings()
    clients = {"polymarket": NastyClient("polymarket"), "limitless": NastyClient("limitless")}
    reports = run_discovery(settings, clients=clients)
    assert all(r.ok and r.instruments == len(NASTY) for r in reports), reports
    Poller(settings, clients=clients).run(duration_s=2.5)
    assert _layout_problems(sandbox, data) == []
    ds = schema.scan(data)
    schema.assert_clean(ds)
    for v in ("polymarket", "limitless"):
        polled = {b["poll_key"] for b in ds.books(v)}
        assert polled == set(NASTY), set(NASTY) - polled  # recorded faithfully, as data
        assert {r["poll_key"] for r in ds.of(v, "markets", "market")} == set(NASTY)
    assert not Path("/etc/x").exists()


def test_hostile_slugs_from_the_simulator_never_become_paths(tmp_path, monkeypatch):
    """The same through the real clients and the simulator: markets whose slugs are
    ``../../etc/x``-like are discovered, polled (the Limitless slug goes URL-encoded into the
    request path) and recorded, and only the documented layout exists under data_dir."""
    sandbox = tmp_path / "sandbox"
    data = sandbox / "a" / "b" / "c" / "d" / "data"
    sandbox.mkdir()
    with run_sim("--markets", "4", "--seed", "93") as sim:
        sim.markets("add", venue="polymarket", kind="yesno", slug="../../../../etc/x", end_in_s=7200)
        sim.markets("add", venue="limitless", kind="clob", slug="../../../../x", end_in_s=7200)
        sim.markets("add", venue="limitless", kind="clob", slug="a/b", end_in_s=7200)
        env = h.sim_env(sim, data, LIMITLESS__RULES=json.dumps([{"name": "nasty", "slug_prefixes": ["..", "a/"]}]))
        h.apply_env(monkeypatch, env)
        monkeypatch.chdir(sandbox)
        settings = load_settings()
        assert all(r.ok for r in run_discovery(settings))
        Poller(settings).run(duration_s=2.5)
        paths = [e["path"] for e in h.sim_times(sim, venue="limitless", endpoint="limitless.orderbook")]
    assert _layout_problems(sandbox, data) == []
    ds = schema.scan(data)
    schema.assert_clean(ds)
    lim = {r["poll_key"] for r in ds.of("limitless", "markets", "market")}
    assert {"../../../../x", "a/b"} <= lim
    assert any(r["slug"] == "../../../../etc/x" for r in ds.of("polymarket", "markets", "market"))
    # the slug never travels raw: ``/`` is percent-encoded, so it cannot climb the venue's URL
    # either (the venue answers 404 for such a market; that is the venue's business)
    assert not any("/markets/../" in p or "/markets/a/b/" in p for p in paths), paths[:5]


# --------------------------------------------------------------------------- loopback only


def test_simulator_listens_on_loopback_only():
    with run_sim("--markets", "2") as sim:
        proc = psutil.Process(sim.pid)
        listening = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "the simulator has no listening socket?"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    assert sim.base.startswith("http://127.0.0.1:")


def test_collector_up_starts_its_server_on_loopback(tmp_path, monkeypatch):
    """The command line `collector up` builds for the Prefect server, checked without starting
    it; the API and UI URLs it hands out are loopback."""
    import flows.stack.up as up

    spawned: list[list[str]] = []
    monkeypatch.setattr(up, "spawn", lambda cmd, env, log, cwd=up.PROJECT_DIR: spawned.append(cmd) or object())
    monkeypatch.setattr(up, "healthy", lambda api: False)
    monkeypatch.setattr(up, "wait_healthy", lambda *a, **k: None)
    stack = up.Stack(home=tmp_path, port=4321, env=up.prefect_env(up.local_api(4321), tmp_path))
    up.start_server(stack)
    (cmd,) = spawned
    assert cmd[-5:] == ["start", "--host", "127.0.0.1", "--port", "4321"], cmd
    assert "0.0.0.0" not in " ".join(cmd)
    assert up.local_api(4321) == "http://127.0.0.1:4321/api" and stack.ui == "http://127.0.0.1:4321"
    assert stack.env["PREFECT_API_URL"].startswith("http://127.0.0.1:")
    assert stack.env.get("PREFECT_SERVER_API_HOST", "127.0.0.1") == "127.0.0.1"
    # compose: the server binds 0.0.0.0 inside its container, the port is published on loopback only
    compose = (REPO / "infra" / "docker-compose.yml").read_text()
    published = re.findall(r'^\s*-\s*"([^"]*:\d+:\d+)"', compose, re.M)
    assert published and all(p.startswith("127.0.0.1:") for p in published), published
