"""Jittered exponential backoff, for reconnecting the control channel.

The n-th consecutive failure waits a random time between half and all of
`min(cap, base * 2**n)` ("equal jitter"): the delay grows quickly to the cap (5 minutes by
default, as authentik's outposts), and many outposts cut off by one core restart do not
come back in one burst. `reset()` after a connection that worked.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrecy)

    def ceiling(self) -> float:
        """The longest the next delay can be."""
        return float(min(self.cap, self.base * 2.0 ** min(self.failures, 64)))

    def next(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
