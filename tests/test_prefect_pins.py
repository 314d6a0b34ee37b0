"""The pinned dependency set must run Prefect's server and test harness (field guide §0)."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.version import Version


def test_pins_avoid_known_breakage():
    assert Version(version("fastapi")) < Version("0.151")
    assert Version(version("sqlalchemy")) < Version("2.1")
    assert Version(version("prefect")).major == 3


@pytest.mark.prefect
def test_trivial_flow_runs_under_harness(prefect_harness):
    from prefect import flow, task

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @flow
    def trivial(x: int) -> int:
        return add(x, 1)

    state = trivial(41, return_state=True)
    assert state.is_completed()
    assert state.result() == 42
