"""The `expression` policy kind: authentik-style Python, run by our sandbox, never by `exec`.

The expression sees `request`, `context`, `user`, `ak_client_ip`, `ak_message`,
`ak_is_group_member` and the other helpers of `sandbox`; it is checked here and runs in a worker
process of the expression pool (`pool`) until the binding's timeout or the sandbox's own limit,
whichever comes first, under a step budget, size limits and the worker's rlimits. Truthy
passes; its `ak_message` lines are the verdict's messages, its `ak_logger` and `print` lines the
verdict's log. Refused code, a limit or an error in the expression raises
`PolicyError` (a `SandboxError`), which the engine turns into the binding's failure result: with
the default, access is denied.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, field_validator

from tessera.core.policies import kinds, pool, sandbox, views

if TYPE_CHECKING:
    from tessera.core.policies.engine import Request

STEPS = 200_000
TIMEOUT = 5.0
# A `Program` is immutable: one parse per distinct expression, shared by every evaluation
# (policies and the prompt stage's initial values).
_compile = functools.lru_cache(maxsize=256)(sandbox.compile)
compiled = _compile


class Config(kinds.PolicyConfig):
    expression: Annotated[str, Field(min_length=1, max_length=65536)]

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            sandbox.compile(value)
        except sandbox.SandboxError as exc:
            raise ValueError(str(exc)) from None
        return value


def time_left(request: Request) -> float:
    """The sandbox's time budget: `TIMEOUT`, or less when the binding's deadline is nearer (the
    worker would go on running after the engine stopped waiting for it)."""
    if request.deadline is None:
        return TIMEOUT
    left = request.deadline - time.monotonic()
    if left <= 0:
        raise kinds.PolicyError("Policy timed out.")
    return min(TIMEOUT, left)


class Expression(kinds.Kind):
    kind = "expression"
    Config = Config

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, Config)
        _compile(self.config.expression)  # refused code fails here, with the checker's message
        if request.user is None:
            user = views.UserView.anonymous()
        else:
            user = views.UserView(request.user, request.groups, request.all_groups)
        http_request = views.HttpRequestView(client_ip=request.client_ip)
        variables = views.policy_variables(
            user, context=dict(request.context), http_request=http_request
        )
        result = await pool.evaluate(
            self.config.expression,
            variables,
            shape="truth",
            steps=STEPS,
            seconds=time_left(request),
        )
        return kinds.Verdict(
            bool(result.value), list(result.messages), [_event(e) for e in result.log]
        )


def _event(entry: sandbox.LogEntry) -> dict[str, Any]:
    """A log line as authentik's `LogEvent` (the engine sets `logger` to the policy's name)."""
    return {
        "timestamp": entry.timestamp,
        "log_level": entry.level,
        "logger": "",
        "event": entry.message,
        "attributes": dict(entry.attributes),
    }
