"""Policy kinds, registered by `kind` (the API path `/api/v3/policies/<kind>/`).

A kind has a `Config` model (its settings, stored as JSON) and `async evaluate(request)`
returning a `Verdict`; a kind that cannot decide raises `PolicyError`, which the engine turns into
the binding's failure result.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import pydantic
from pydantic import Field

from tessera.core import config as config_
from tessera.core import errors, wire

if TYPE_CHECKING:
    from tessera.core.policies.engine import Request


class PolicyError(errors.TesseraError):
    """A policy failed to evaluate (bad expression, exception, resource limit)."""


@dataclass
class Verdict:
    passing: bool
    messages: list[str] = field(default_factory=list)
    # Log lines in the shape of authentik's `LogEvent` (timestamp, log_level, logger, event,
    # attributes); the engine names the logger after the policy.
    log: list[dict[str, Any]] = field(default_factory=list)


class PolicyConfig(wire.common.Request):
    """Settings of a policy kind."""


class Kind:
    kind: ClassVar[str]
    Config: ClassVar[type[PolicyConfig]] = PolicyConfig
    # Whether a result may be reused for the same user and address for a few seconds
    # (engine.Request.result_ttl); kinds that read changing state (reputation, dummy) say no.
    cacheable: ClassVar[bool] = True

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config

    async def evaluate(self, request: Request) -> Verdict:
        raise PolicyError(f"policy kind {self.kind} cannot evaluate")

    @classmethod
    def for_server(
        cls, values: dict[str, Any], given: AbstractSet[str], settings: config_.Settings
    ) -> dict[str, Any]:
        """The settings `values` (of which `given` were asked for) as this server can honour
        them: what it cannot do is refused when asked for (`errors.ValidationFailed` naming the
        field, a 400), and turned off when only defaulted."""
        return values


class DummyConfig(PolicyConfig):
    result: bool = False
    wait_min: Annotated[int, Field(ge=0, le=60)] = 0
    wait_max: Annotated[int, Field(ge=0, le=60)] = 0


class Dummy(Kind):
    """Returns its configured result after a random wait (for tests, as authentik's)."""

    kind = "dummy"
    Config = DummyConfig
    cacheable = False  # tests use it to observe each evaluation

    async def evaluate(self, request: Request) -> Verdict:
        assert isinstance(self.config, DummyConfig)
        high = max(self.config.wait_min, self.config.wait_max)
        if high:
            await asyncio.sleep(random.uniform(self.config.wait_min, high))  # noqa: S311
        return Verdict(self.config.result, [] if self.config.result else ["Dummy policy failed."])


KINDS: dict[str, type[Kind]] = {Dummy.kind: Dummy}


def build(kind: str, config: dict[str, Any]) -> Kind:
    if kind not in KINDS:
        raise PolicyError(f"unknown policy kind {kind!r}")
    cls = KINDS[kind]
    try:
        return cls(cls.Config.model_validate(config))
    except pydantic.ValidationError as exc:
        raise PolicyError(f"policy settings are invalid: {exc.errors()[0]['msg']}") from None
