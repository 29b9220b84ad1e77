"""authentik's helper functions for expressions, the caller's hooks behind them, and their output.

Called by `builtins.make` once per run. `ak_message` and `ak_logger` (and `print`) write into
the run's `Output`, which `Program.run` returns. `ak_is_group_member`, `ak_user_by` and
`ak_call_policy` need the store or the policy engine, which the sandbox never touches: they call
the `Hooks` the caller passes, and say so when the caller passed none. `regex_match`,
`regex_replace`, `ip_address`, `ip_network`, `list_flatten` and `slugify` behave as authentik's
(`authentik/lib/expression/evaluator.py`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tessera.core.policies.sandbox import regex
from tessera.core.policies.sandbox.attributes import Exposed
from tessera.core.policies.sandbox.budget import Budget
from tessera.core.policies.sandbox.errors import Forbidden

_NFKD_GROWTH = 18  # the most characters NFKD makes of one


@dataclass(frozen=True)
class Hooks:
    """What the caller lets expressions reach beyond their variables; each one optional.

    `is_group_member(user, filters)` answers `ak_is_group_member(user, **filters)`;
    `user_by(filters)` answers `ak_user_by(**filters)` (a user view or None);
    `call_policy(name, variables)` answers `ak_call_policy(name, **variables)`;
    `extra` adds built-ins by name (names must not start with `_`).
    """

    is_group_member: Callable[[Any, dict[str, Any]], bool] | None = None
    user_by: Callable[[dict[str, Any]], Any] | None = None
    call_policy: Callable[[str, dict[str, Any]], Any] | None = None
    extra: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class LogEntry:
    level: str
    message: str
    attributes: dict[str, str] = field(default_factory=dict)
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class Output:
    """What a run said: messages for the user (`ak_message`) and log lines (`ak_logger`)."""

    messages: list[str] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)


class Logger(Exposed):
    """`ak_logger`: structlog's calling convention, `ak_logger.info("event", key=value)`."""

    exposed = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical"})

    def __init__(self, budget: Budget, output: Output) -> None:
        self._budget = budget
        self._output = output

    def add(self, level: str, event: Any, *args: Any, **kwargs: Any) -> None:
        message = self._budget.joined([event, *args])
        attributes = {key: self._budget.text(value) for key, value in kwargs.items()}
        self._budget.log_entry(message, *attributes, *attributes.values())
        self._output.log.append(LogEntry(level, message, attributes))

    def debug(self, event: Any, *args: Any, **kwargs: Any) -> None:
        self.add("debug", event, *args, **kwargs)

    def info(self, event: Any, *args: Any, **kwargs: Any) -> None:
        self.add("info", event, *args, **kwargs)

    def warning(self, event: Any, *args: Any, **kwargs: Any) -> None:
        self.add("warning", event, *args, **kwargs)

    warn = warning

    def error(self, event: Any, *args: Any, **kwargs: Any) -> None:
        self.add("error", event, *args, **kwargs)

    exception = error

    def critical(self, event: Any, *args: Any, **kwargs: Any) -> None:
        self.add("critical", event, *args, **kwargs)

    def __repr__(self) -> str:
        return "<ak_logger>"


def make(budget: Budget, hooks: Hooks, output: Output) -> dict[str, Any]:
    """The helpers of one run, by name."""

    def ak_message(message: Any) -> None:
        text = budget.text(message)
        budget.log_entry(text)
        output.messages.append(text)

    def regex_match(value: Any, pattern: Any) -> bool:
        return regex.Functions(budget).search(pattern, value) is not None

    def regex_replace(value: Any, pattern: Any, replacement: Any) -> Any:
        return regex.Functions(budget).sub(pattern, replacement, value)

    def ak_is_group_member(user: Any, **filters: Any) -> bool:
        return bool(_hook(hooks.is_group_member, "ak_is_group_member")(user, filters))

    def ak_user_by(**filters: Any) -> Any:
        return _hook(hooks.user_by, "ak_user_by")(filters)

    def ak_call_policy(name: str, **variables: Any) -> Any:
        return _hook(hooks.call_policy, "ak_call_policy")(name, variables)

    def slugify(value: Any) -> str:
        text = budget.text(value)
        budget.size(len(text) * _NFKD_GROWTH, "a slug's source")
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text.lower())).strip("-_")

    return {
        "ak_message": ak_message,
        "ak_logger": Logger(budget, output),
        "regex_match": regex_match,
        "regex_replace": regex_replace,
        "ip_address": weighed(budget, ipaddress.ip_address),
        "ip_network": weighed(budget, ipaddress.ip_network),
        "ak_is_group_member": ak_is_group_member,
        "ak_user_by": ak_user_by,
        "ak_call_policy": ak_call_policy,
        "list_flatten": list_flatten,
        "slugify": slugify,
    }


def weighed(budget: Budget, parse: Callable[..., Any]) -> Callable[..., Any]:
    """`parse` (an `ipaddress` function or class) with its arguments weighed first."""

    # SECURITY: `ipaddress` calls `str()` on what it cannot parse and puts its `repr` in the
    # error: a shared nested list took 8.6 s and 567 MB natively.
    def call(*args: Any, **kwargs: Any) -> Any:
        budget.weigh(*args, *kwargs.values())
        return parse(*args, **kwargs)

    call.__name__ = parse.__name__
    return call


def _hook(hook: Callable[..., Any] | None, name: str) -> Callable[..., Any]:
    if hook is None:
        raise Forbidden(f"{name} is not available here")
    return hook


def list_flatten(value: Any) -> Any:
    """authentik's `list_flatten`: the first item of a list (None when empty), else the value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value
