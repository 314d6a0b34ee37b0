"""The collector's Prefect automations (alerts and self-healing), kept in the repository and
applied idempotently over the REST API.

``apply_automations(api, settings)`` looks every automation up by name: a missing one is created,
one whose definition changed is updated in place (its enabled/paused toggle is kept), an unchanged
one is skipped (a ``spec:<hash>`` tag records the applied definition), extra copies with the same
name (e.g. from ``prefect automation create`` run twice) are deleted, and an automation tagged
``collector`` whose name left this file is deleted. ``collector up`` calls it on every start;
``python -m flows.stack.automations [--api-url URL] [--print]`` does the same by hand or prints the JSON.

Alerts go to the ``custom-webhook`` block ``collector-alerts`` (created or updated from
``COLLECTOR_PREFECT__WEBHOOK_URL``; the URL is stored as a block secret) through
``send-notification``. Without a webhook URL the alert automations carry a ``do-nothing`` action:
each firing is still a ``prefect.automation.triggered`` event in the UI's event feed.

| name | trigger | action |
|---|---|---|
| collector-discovery-failed | a discovery run Failed or Crashed (reactive; once per 15 min) | alert |
| collector-discovery-stale | no Completed discovery run for ``discovery_stale_s`` (proactive) | alert |
| collector-poller-heartbeat-missing[-shard-<k>of<n>] | no ``collector.poller.heartbeat`` of that shard for ``poller_heartbeat_s`` (proactive; one per shard of ``poller.shards``) | alert |
| collector-venue-degraded | ``collector.poller.venue.degraded`` (flows/venue_health.py) | alert |
| collector-poller-crashed | a run of a ``poller*`` deployment Crashed (reactive; once per 5 min per deployment) | run that deployment again + alert |
| collector-zombie-flow-runs | a flow run's heartbeats stop for ``zombie_s`` without a final state | mark it Crashed |
| collector-stuck-pending-runs | a flow run Pending for ``pending_stuck_s`` without starting (its worker is gone) | mark it Crashed |

A run marked Crashed by either rule frees its deployment's concurrency slot, and the Crashed
state reaches the alert of its deployment (collector-discovery-failed names the run and says it
was stuck; collector-poller-crashed restarts a poller).

The zombie rule needs ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (30 s for poller runs, prefect.yaml);
``zombie_s`` must be at least 3 x that. A zombie marked Crashed then triggers the restart rule.
Proactive alerts repeat every ``within`` while the condition lasts; Prefect OSS 3.8.8 never sends
"resolved" actions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from collector.config.settings import PrefectSettings, Settings
from collector.poller.shard import shard_slug, shards_of

TAG = "collector"
BLOCK_TYPE = "custom-webhook"
BLOCK_NAME = "collector-alerts"
VENUE_DEGRADED = "collector.poller.venue.degraded"  # emitted by flows/venue_health.py
POLLER_HEARTBEAT = "collector.poller.heartbeat"  # emitted by flows/poller.py
# Where a Pending run goes next when its worker is alive: it starts, or goes back to waiting.
STARTED_OR_LEFT_PENDING = ["prefect.flow-run.Running", "prefect.flow-run.Cancelling", "prefect.flow-run.Scheduled",
                           "prefect.flow-run.AwaitingRetry", "prefect.flow-run.AwaitingConcurrencySlot"]
FINAL = ["prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
         "prefect.flow-run.Crashed"]


_DEFAULTS = PrefectSettings()


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds (seconds): the ``prefect`` settings, whose defaults are declared once, in
    collector/config/settings.py (``PrefectSettings``, with the reason for each)."""

    discovery_stale_s: int = _DEFAULTS.discovery_stale_s
    poller_heartbeat_s: int = _DEFAULTS.poller_heartbeat_s
    zombie_s: int = _DEFAULTS.zombie_s
    restart_delay_s: int = _DEFAULTS.restart_delay_s
    restart_window_s: int = _DEFAULTS.restart_window_s
    discovery_failed_window_s: int = _DEFAULTS.discovery_failed_window_s
    pending_stuck_s: int = _DEFAULTS.pending_stuck_s


def thresholds_from(settings: Settings) -> Thresholds:
    from dataclasses import fields

    return Thresholds(**{f.name: getattr(settings.prefect, f.name) for f in fields(Thresholds)})


# -- definitions ----------------------------------------------------------------------------------
def _deployment_runs(deployment: str) -> dict[str, Any]:
    """Match flow-run events whose related deployment is named ``deployment`` (glob)."""
    return {
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {"prefect.resource.role": "deployment", "prefect.resource.name": deployment},
    }


def heartbeat_resource(shard: str) -> str:
    """The resource of a shard's ``collector.poller.heartbeat`` events (flows/poller.py)."""
    return f"collector.poller.shard-{shard_slug(shard)}"


def _heartbeat_missing(block_id: str | None, t: Thresholds, shard: str) -> dict[str, Any]:
    """One automation per shard, not one ``for_each`` rule. Measured on the 3.8.8 server: a
    proactive rule with ``for_each: [prefect.resource.id]`` (and no ``after``) never fired for a
    resource that beat for 20 s and then fell silent for 70 s, because each proactive pass deletes
    the buckets that met the threshold, so a silent resource has no bucket left to fire on
    (``remove_buckets_exceeding_threshold``); with ``after`` it would fire once per silence and never
    for a shard that never started. These are created and deleted with ``poller.shards``, alert
    from the moment they exist and repeat every ``within`` while the shard is silent."""
    n = int(shard.split("/")[1])
    who = "poller" if n == 1 else f"poller shard {shard}"
    return {
        "name": "collector-poller-heartbeat-missing" + ("" if n == 1 else f"-shard-{shard_slug(shard)}"),
        "description": f"No {POLLER_HEARTBEAT} event of {who} for {t.poller_heartbeat_s} s: it is not running "
                       "or it is stuck. Repeats while it lasts.",
        "trigger": {"type": "event", "posture": "Proactive",
                    "match": {"prefect.resource.id": heartbeat_resource(shard)},
                    "expect": [POLLER_HEARTBEAT], "threshold": 1, "within": t.poller_heartbeat_s},
        "actions": [_alert(block_id, f"collector: {who} heartbeat missing",
                           f"No heartbeat of {who} for {t.poller_heartbeat_s} s: "
                           + ("books are not being recorded." if n == 1 else "its slice of the books is not being recorded."))],
    }


def _alert(block_id: str | None, subject: str, body: str) -> dict[str, Any]:
    if block_id is None:
        return {"type": "do-nothing"}
    return {"type": "send-notification", "block_document_id": block_id, "subject": subject, "body": body}


def definitions(block_id: str | None, t: Thresholds = Thresholds(), shards: int = 1) -> list[dict[str, Any]]:
    """Every automation, as the body of ``POST /api/automations/`` (without tags); ``shards``:
    ``poller.shards``, one heartbeat alert per shard."""
    run_line = "{{ flow_run.state.message }} -- {{ flow_run|ui_url }}"
    return [
        {
            "name": "collector-discovery-failed",
            "description": "A discovery run ended Failed or Crashed.",
            "trigger": {"type": "event", "posture": "Reactive", **_deployment_runs("discovery"),
                        "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
                        # reactive: fires on the first failure, then ignores failures for `within`
                        "threshold": 1, "within": t.discovery_failed_window_s},
            "actions": [_alert(block_id, "collector: discovery run {{ flow_run.name }} is {{ flow_run.state.name }}",
                               run_line)],
        },
        {
            "name": "collector-discovery-stale",
            "description": f"No discovery run Completed in {t.discovery_stale_s // 60} minutes "
                           "(paused schedule, no worker, or every run failing). Repeats while it lasts.",
            "trigger": {"type": "event", "posture": "Proactive", **_deployment_runs("discovery"),
                        "expect": ["prefect.flow-run.Completed"], "threshold": 1,
                        "within": t.discovery_stale_s},
            "actions": [_alert(block_id, "collector: discovery stale",
                               f"No discovery run Completed in the last {t.discovery_stale_s // 60} minutes: "
                               "snapshots are not refreshed.")],
        },
        *(_heartbeat_missing(block_id, t, shard) for shard in shards_of(shards)),
        {
            "name": "collector-venue-degraded",
            "description": "A venue stayed in cooldown too long or its coverage fell below the threshold "
                           f"({VENUE_DEGRADED}, emitted by the poller; see flows/venue_health.py).",
            "trigger": {"type": "event", "posture": "Reactive",
                        "match": {"prefect.resource.id": "collector.poller.*"},
                        "expect": [VENUE_DEGRADED], "threshold": 1, "within": 0},
            "actions": [_alert(block_id,
                               "collector: {{ event.payload.venue }} degraded ({{ event.payload.reason }})",
                               "{{ event.payload.message }}")],
        },
        {
            "name": "collector-poller-crashed",
            "description": "A poller run Crashed (process died, OOM, or marked by the zombie rule): run the "
                           f"same deployment again after {t.restart_delay_s} s, with its default parameters; "
                           f"at most once per {t.restart_window_s // 60} minutes per deployment.",
            "trigger": {"type": "event", "posture": "Reactive", **_deployment_runs("poller*"),
                        "expect": ["prefect.flow-run.Crashed"],
                        # crash-loop guard: one restart per deployment per window; a second crash
                        # inside it stays down (and poller-heartbeat-missing alerts)
                        "for_each": ["related:deployment:prefect.resource.name"],
                        "threshold": 1, "within": t.restart_window_s},
            "actions": [
                {"type": "run-deployment", "source": "inferred", "parameters": None, "job_variables": None,
                 "schedule_after": t.restart_delay_s},
                *([_alert(block_id, "collector: poller run {{ flow_run.name }} crashed, restarting", run_line)]
                  if block_id else []),
            ],
        },
        {
            "name": "collector-zombie-flow-runs",
            "description": f"A flow run sent heartbeats, then none for {t.zombie_s} s and no final state: "
                           "its process is gone. Mark it Crashed (frees its concurrency slot; a poller "
                           "is then restarted by collector-poller-crashed).",
            "trigger": {"type": "event", "posture": "Proactive",
                        "match": {"prefect.resource.id": "prefect.flow-run.*"},
                        "after": ["prefect.flow-run.heartbeat"],
                        "expect": ["prefect.flow-run.heartbeat", *FINAL],
                        "for_each": ["prefect.resource.id"], "threshold": 1, "within": t.zombie_s},
            "actions": [{"type": "change-flow-run-state", "state": "CRASHED",
                         "message": f"Flow run marked as crashed: no heartbeat for {t.zombie_s} s."}],
        },
        {
            "name": "collector-stuck-pending-runs",
            "description": f"A flow run stayed Pending for {t.pending_stuck_s} s: the worker that claimed it "
                           "stopped before starting it. Mark it Crashed, which frees its deployment's "
                           "concurrency slot (every later discovery run would wait for it) and alerts.",
            "trigger": {"type": "event", "posture": "Proactive",
                        "match": {"prefect.resource.id": "prefect.flow-run.*"},
                        "after": ["prefect.flow-run.Pending"],
                        "expect": [*STARTED_OR_LEFT_PENDING, *FINAL],
                        "for_each": ["prefect.resource.id"], "threshold": 1, "within": t.pending_stuck_s},
            "actions": [{"type": "change-flow-run-state", "state": "CRASHED",
                         "message": f"Stuck in Pending for {t.pending_stuck_s} s (the worker that claimed it "
                                    "is gone): marked Crashed to free its concurrency slot."}],
        },
    ]


def spec_tag(definition: dict[str, Any]) -> str:
    blob = json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()
    return "spec:" + hashlib.sha256(blob).hexdigest()[:12]


# -- webhook block --------------------------------------------------------------------------------
def ensure_webhook_block(api: httpx.Client, url: str) -> str:
    """Create or update the ``custom-webhook`` block ``collector-alerts``; return its document id.

    The URL is a block secret (masked in the UI). The JSON body suits Slack-style ``text``
    receivers and generic ones (``subject``/``body``)."""
    r = api.get(f"/block_types/slug/{BLOCK_TYPE}")
    r.raise_for_status()
    type_id = r.json()["id"]
    r = api.post("/block_schemas/filter", json={"block_schemas": {"block_type_id": {"any_": [type_id]}}, "limit": 1})
    r.raise_for_status()
    schema_id = r.json()[0]["id"]
    data = {
        "name": BLOCK_NAME,
        "url": "{{webhookUrl}}",
        "method": "POST",
        "json_data": {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"},
        "secrets": {"webhookUrl": url},
        "allow_private_urls": True,  # a loopback or LAN receiver is a legitimate target here
        "timeout": 10,
    }
    r = api.get(f"/block_types/slug/{BLOCK_TYPE}/block_documents/name/{BLOCK_NAME}")
    if r.status_code == 200:
        doc_id = r.json()["id"]
        api.patch(f"/block_documents/{doc_id}", json={"data": data, "merge_existing_data": False}).raise_for_status()
        return doc_id
    r = api.post("/block_documents/", json={"name": BLOCK_NAME, "block_type_id": type_id,
                                            "block_schema_id": schema_id, "data": data})
    r.raise_for_status()
    return r.json()["id"]


# -- apply ----------------------------------------------------------------------------------------
def read_automations(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.post("/automations/filter", json={"sort": "CREATED_DESC", "limit": 200})
    r.raise_for_status()
    return list(reversed(r.json()))  # oldest first


def apply_automations(api: httpx.Client, settings: Settings, t: Thresholds | None = None) -> dict[str, list[str]]:
    """Bring the server's automations in line with :func:`definitions`; return what was done."""
    t = t or thresholds_from(settings)
    url = settings.prefect.webhook_url
    block_id = ensure_webhook_block(api, url.get_secret_value()) if url else None
    wanted = {d["name"]: d for d in definitions(block_id, t, settings.poller.shards)}
    done: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
    seen: set[str] = set()
    for auto in read_automations(api):
        name = auto["name"]
        if name in seen or (name not in wanted and TAG in auto.get("tags", [])):
            api.delete(f"/automations/{auto['id']}").raise_for_status()
            done["deleted"].append(name)
            continue
        if name not in wanted:
            continue  # somebody else's automation
        seen.add(name)
        tag = spec_tag(wanted[name])
        if tag in auto.get("tags", []):
            done["unchanged"].append(name)
            continue
        body = {**wanted[name], "tags": [TAG, tag], "enabled": auto.get("enabled", True)}
        api.put(f"/automations/{auto['id']}", json=body).raise_for_status()
        done["updated"].append(name)
    for name, d in wanted.items():
        if name not in seen:
            r = api.post("/automations/", json={**d, "tags": [TAG, spec_tag(d)], "enabled": True})
            if r.status_code >= 300:
                raise RuntimeError(f"automation {name}: {r.status_code} {r.text}")
            done["created"].append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    import os

    from collector.config.settings import load_settings

    p = argparse.ArgumentParser(prog="python -m flows.stack.automations", description="apply the collector's automations")
    p.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api"))
    p.add_argument("--print", action="store_true", help="print the definitions as JSON instead (no block id)")
    a = p.parse_args(argv)
    if a.print:
        print(json.dumps({"automations": definitions(None)}, indent=2))
        return 0
    from flows.stack.api import ApiClient

    with ApiClient(base_url=a.api_url, timeout=15.0, trust_env=False) as api:
        done = apply_automations(api, load_settings())
    print(json.dumps(done, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
