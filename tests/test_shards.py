"""Shards (collector/poller/shard.py): a stable partition of any active set, and the venue's REST
budget split across them; plus the shard deployments and per-shard automations the local stack
derives from ``poller.shards`` (flows/stack/shards.py, flows/stack/automations.py), as data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.config.settings import load_settings
from collector.model.errors import ConfigError
from collector.poller.loop import Poller
from collector.poller.shard import (
    in_shard,
    parse_shard,
    shard_budget,
    shard_slug,
    shards_of,
)
from flows.stack.automations import definitions, heartbeat_resource
from flows.stack.shards import poller_deployments_for


@given(st.lists(st.text(min_size=1, max_size=40), max_size=200, unique=True), st.integers(1, 9))
def test_shards_partition_any_set_exactly_once(ids, n):
    owners = {i: [s for s in shards_of(n) if in_shard(i, s)] for i in ids}
    assert all(len(o) == 1 for o in owners.values())


def test_shard_names_and_validation():
    assert shards_of(3) == ["0/3", "1/3", "2/3"]
    assert shard_slug("1/2") == "1of2" and parse_shard("0/1") == (0, 1)
    for bad in ("2/2", "-1/2", "0/0", "x"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    with pytest.raises(ConfigError):
        load_settings(poller={"shards": 0})


@pytest.mark.parametrize(("shard", "poly", "lim"), [("0/1", 500, 27), ("1/2", 250, 13), ("0/3", 166, 9),
                                                    ("5/40", 12, 1), ("63/64", 7, 1)])
def test_each_shard_gets_its_share_of_the_rest_budget(tmp_path, shard, poly, lim):
    s = load_settings(data_dir=tmp_path, poller={"shard": shard})
    assert shard_budget(s.polymarket, shard).rate_requests == poly
    assert shard_budget(s.limitless, shard).rate_requests == lim  # floor, at least 1
    split = shard_budget(s.limitless, shard)
    # only the window count is split: spacing, window, workers and discovery budgets stay
    assert (split.rate_window_s, split.min_spacing_s, split.max_workers, split.discovery_rate_requests) == \
        (s.limitless.rate_window_s, s.limitless.min_spacing_s, s.limitless.max_workers, s.limitless.discovery_rate_requests)
    p = Poller(s)
    try:
        assert p.lanes["polymarket"].budget.requests == poly
        assert p.lanes["limitless"].budget.requests == lim
        assert p.settings.polymarket.rate_requests == 500  # the settings themselves are untouched
    finally:
        p.close()


def test_stack_shard_deployments_and_heartbeat_automations():
    assert poller_deployments_for(1) == ["poller/poller"]
    assert poller_deployments_for(2) == ["poller/poller-shard-0of2", "poller/poller-shard-1of2"]
    assert heartbeat_resource("1/2") == "collector.poller.shard-1of2"
    one = {d["name"]: d for d in definitions(None)}
    two = {d["name"]: d for d in definitions(None, shards=2)}
    assert "collector-poller-heartbeat-missing" in one and len(one) == 7
    beats = sorted(n for n in two if n.startswith("collector-poller-heartbeat-missing"))
    assert beats == ["collector-poller-heartbeat-missing-shard-0of2", "collector-poller-heartbeat-missing-shard-1of2"]
    assert len(two) == 8
    trig = two["collector-poller-heartbeat-missing-shard-1of2"]["trigger"]
    assert trig["match"] == {"prefect.resource.id": "collector.poller.shard-1of2"}
    assert trig["posture"] == "Proactive" and trig["expect"] == ["collector.poller.heartbeat"]
