"""Reconnect backoff: exponential, jittered within [half, all] of the step, capped, reset."""

from __future__ import annotations

import random

import pytest

from tessera.outposts.common import backoff


def test_grows_to_the_cap_with_jitter() -> None:
    b = backoff.Backoff(base=1.0, cap=300.0, rng=random.Random(7))
    delays = [b.next() for _ in range(12)]
    for n, delay in enumerate(delays):
        step = min(300.0, 2.0**n)
        assert step / 2 <= delay <= step
    assert max(delays) <= 300.0 and delays[-1] >= 150.0
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not a fixed ladder


def test_reset_starts_over() -> None:
    b = backoff.Backoff(base=0.5, cap=10.0)
    for _ in range(10):
        b.next()
    assert b.ceiling() == 10.0
    b.reset()
    assert b.ceiling() == 0.5 and b.next() <= 0.5


def test_many_failures_do_not_overflow() -> None:
    b = backoff.Backoff()
    b.failures = 10_000
    assert b.next() <= 300.0


def test_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        backoff.Backoff(base=0)
    with pytest.raises(ValueError, match="base"):
        backoff.Backoff(base=5, cap=1)
