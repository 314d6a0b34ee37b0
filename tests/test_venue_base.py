"""fetch_page (collector.venues.http): the retry policy of discovery pages."""

from __future__ import annotations

import pytest

from collector.model import errors
from collector.venues.base import DiscoveryResult
from collector.venues.http import fetch_page


def _run(outcomes, attempts=4, max_wait_s=30.0):
    it = iter(outcomes)
    sleeps: list[float] = []
    calls = []

    def fetch():
        calls.append(1)
        o = next(it)
        if isinstance(o, Exception):
            raise o
        return o

    res = DiscoveryResult(instruments=[])
    try:
        value = fetch_page(fetch, attempts=attempts, max_wait_s=max_wait_s, what="page 1", venue="v",
                           result=res, sleep=sleeps.append)
    except errors.VenueError as e:
        value = e
    return value, sleeps, len(calls), res.retries


def test_retry_after_is_honoured_then_capped():
    v, sleeps, n, retries = _run([errors.RateLimited(retry_after_s=2.5), errors.RateLimited(retry_after_s=99), "ok"],
                                 max_wait_s=10)
    assert (v, sleeps, n, retries) == ("ok", [2.5, 10], 3, 2)


def test_exponential_wait_without_retry_after():
    v, sleeps, n, _ = _run([errors.ServerError(), errors.Timeout(), errors.RateLimited(), errors.BadPayload()])
    assert isinstance(v, errors.BadPayload)  # the last error is raised after the last attempt
    assert sleeps == [1.0, 2.0, 4.0] and n == 4


@pytest.mark.parametrize("exc", [errors.NotFound(), errors.ClientError()])
def test_client_errors_are_not_retried(exc):
    v, sleeps, n, retries = _run([exc, "ok"])
    assert v is exc and sleeps == [] and n == 1 and retries == 0


def test_one_attempt_means_no_retry():
    v, sleeps, n, _ = _run([errors.TransportError(), "ok"], attempts=1)
    assert isinstance(v, errors.TransportError) and n == 1 and sleeps == []
