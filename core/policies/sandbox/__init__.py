"""The expression sandbox: runs authentik-style Python expressions without `exec`.

Expression policies, scope mappings and prompt initial values call `compile(source)` (the check,
with its clear message) and evaluate through `policies.pool`, whose worker processes call
`program.run(variables, hooks=..., steps=..., timeout=...)`. `run` is synchronous and pure CPU;
nothing in the server calls it on the event loop or in a shared thread. The source is the body of a
function, as in authentik: statements, `return`, and no `def`. It is parsed with `ast.parse`,
checked (`checker`), and evaluated by our own interpreter (`statements`, `interpreter`); nothing
is ever compiled to Python bytecode. `RunResult.value` is whatever the code returned; a
generator or lambda it returns stays bound to the run's (spent) budget.

What sandboxed code can see:
- its variables (the caller's; for policies `request`, `context`, `user`, see `policies.views`);
- safe built-ins (`builtins`): `len str int float bool list dict set frozenset tuple sorted min
  max sum any all abs round range enumerate zip reversed map filter divmod chr ord isinstance
  repr print`, and the exceptions `Exception ValueError KeyError IndexError LookupError
  TypeError ArithmeticError ZeroDivisionError AssertionError RuntimeError` for `try`/`except`;
- authentik's helpers (`helpers`): `ak_message ak_logger regex_match regex_replace ip_address
  ip_network ak_is_group_member ak_user_by ak_call_policy list_flatten slugify` (the store-backed
  ones through the caller's `Hooks`), and `Hooks.extra`;
- the modules `datetime re ipaddress math json string`, as explicit member tables (`modules`);
- attributes: the allow-listed public methods and fields of plain data, dates, IP addresses and
  regex objects, and the names that `Exposed` objects list (`attributes`). Nothing else.

# SECURITY: threats and mitigations (the "expression sandbox" surface of THREAT_MODEL.md):
# - escaping to the host (`().__class__.__mro__`, `__import__`, frames of generators, format
#   string attribute walks): no name or attribute starting with `_` (a bare `_` is a throwaway
#   local and allowed), no `getattr`/`type`/`eval`
#   and kin, no `str.format`, attribute allow-lists per type, imports from an allow-list of
#   module *views*. Checked statically by `checker` and again at run time.
# - CPU: a step budget (one step per node evaluated) and a wall-clock deadline checked at every
#   step; operations whose native cost is not bounded by their operands refused beforehand.
# - memory: limits on each value's length, on integers' bits, and on everything created in a
#   run, counted in items and in bytes (each value charged its real size, `budget.footprint`).
#   Iterables are consumed only through `Budget.materialize`/`Budget.iterate`, so a native call
#   never makes many large items (a range over huge integers) before a check.
# - recursion: a lambda call depth limit; Python's `RecursionError` becomes `LimitExceeded`.
# - regular expressions: run by the `regex` package with `timeout=` set to what is left of the
#   run's deadline, so catastrophic backtracking ends in `LimitExceeded` (`regex`).
# - native calls: every value is weighed before a native call turns it into text
#   (`Budget.text`, `budget.survey`), the `ipaddress` helpers included; `%` keys are parsed as
#   Python parses them, `strftime` widths counted, parsed JSON charged by its real size, only
#   linear text codecs offered, native key calls spend steps, log lines are counted and charged,
#   and functions and modules print without module paths or addresses (`budget.render`).
# - what a single native call can still do past these checks is bounded by the worker process
#   it runs in (`policies.pool`): address space and CPU rlimits, and a wall-clock kill.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tessera.core.policies.sandbox import checker, statements
from tessera.core.policies.sandbox.attributes import Exposed
from tessera.core.policies.sandbox.budget import (
    DEFAULT_STEPS,
    DEFAULT_TIMEOUT,
    Budget,
    Limits,
    render,
    survey,
)
from tessera.core.policies.sandbox.errors import (
    ExpressionError,
    Forbidden,
    LimitExceeded,
    SandboxError,
)
from tessera.core.policies.sandbox.helpers import Hooks, LogEntry, Output

__all__ = [
    "DEFAULT_STEPS",
    "DEFAULT_TIMEOUT",
    "Exposed",
    "ExpressionError",
    "Forbidden",
    "Hooks",
    "LimitExceeded",
    "Limits",
    "LogEntry",
    "Program",
    "RunResult",
    "SandboxError",
    "compile",
]

MAX_MESSAGE = 500  # characters of an error's text
MAX_SHOWN = 10_000  # weight of the values an error's text shows (`budget.survey`)


@dataclass
class RunResult:
    """What a run returned (`None` without `return`), its messages and log, and steps used."""

    value: Any
    messages: list[str] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)
    steps: int = 0


@dataclass(frozen=True, eq=False)
class Program:
    """A checked expression; immutable, so one program may run in several threads at once."""

    source: str
    tree: ast.Module

    def run(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        hooks: Hooks | None = None,
        steps: int = DEFAULT_STEPS,
        timeout: float = DEFAULT_TIMEOUT,
        limits: Limits = Limits(),  # noqa: B008 - frozen
    ) -> RunResult:
        """Evaluate with `variables`; raise `SandboxError` (with the line) when the code is
        refused, goes over a limit, or fails (`ExpressionError`)."""
        names = dict(variables or {})
        if any(not isinstance(name, str) or name.startswith("_") for name in names):
            raise ValueError("variable names must be strings not starting with '_'")
        budget = Budget(limits, steps, timeout)
        output = Output()
        try:
            executor = statements.Executor(budget, names, hooks or Hooks(), output)
            value = executor.run(self.tree)
        except SandboxError as exc:
            raise exc.at(budget.line) from None
        except RecursionError:
            raise LimitExceeded("the expression nested too deeply", budget.line) from None
        except MemoryError:
            raise LimitExceeded("the expression ran out of memory", budget.line) from None
        except Exception as exc:  # the edge of untrusted code: its every failure is reported
            raise ExpressionError(describe(exc), budget.line) from None
        return RunResult(value, output.messages, output.log, steps - budget.left)


def compile(source: str) -> Program:
    """Parse and check `source`, the body of a function; raise `SandboxError`."""
    return Program(source, checker.check(source))


def describe(exc: BaseException) -> str:
    """`Type: detail` of an error raised by sandboxed code, short and safe to render."""
    args = exc.args
    if len(args) == 1 and isinstance(args[0], str) and not isinstance(exc, KeyError):
        detail = args[0][:MAX_MESSAGE]
    elif args:
        shown = args[0] if len(args) == 1 else args
        # SECURITY: weighed before it is printed (a shared nested structure unfolds natively),
        # and printed without the runtime's module paths and addresses.
        try:
            survey((shown,), MAX_SHOWN)
        except LimitExceeded:
            detail = "(a value too large to show)"
        else:
            detail = render(shown)[:MAX_MESSAGE]
    else:
        detail = ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
