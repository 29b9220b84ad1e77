"""Regular expressions for sandboxed code: the `regex` package, every match under the deadline.

Called by `modules` (the sandbox's `re` module), `helpers` (`regex_match`, `regex_replace`) and
`attributes` (the methods of compiled patterns). Patterns are compiled by the `regex` package in
its `re`-compatible mode (`VERSION0`), so authentik's expressions (written for `re`) behave the
same; every match, search, findall, finditer, split and sub runs with `timeout=` set to what is
left of the run's budget, and with `concurrent=True` so that a long match releases the GIL.

# SECURITY: `re` backtracks while holding the GIL and cannot be interrupted; `regex` checks its
# timeout while it backtracks. A pattern that backtracks catastrophically (`(a|aa)+$`) therefore
# stops at the run's deadline (`Budget.deadline`, which the policy kind sets to the smaller of its
# own limit and the binding's timeout) with `LimitExceeded`, which sandboxed code cannot catch.
# `regex` counts only its own matching time against `timeout`, so a lazily consumed `finditer`
# or a `sub` calling back into sandboxed code could outlive the deadline: `finditer` is consumed
# at once, and a callable replacement is first evaluated over the matches (each call checking
# the deadline) before `sub` assembles the text under what time is left. Subjects are limited to
# `MAX_SUBJECT` characters, which bounds the number of matches and the size of their results.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import regex as engine

from tessera.core.policies.sandbox.budget import Budget
from tessera.core.policies.sandbox.errors import LimitExceeded

MAX_PATTERN = 10_000  # characters
MAX_SUBJECT = 10_000  # characters of the text a pattern runs on
# The flags sandboxed code may pass (`re.I`, `re.M`, `re.S`, `re.X`, `re.A`, `re.U` and
# `regex`'s own spelling of them); anything else (`regex.V1`, `regex.WORD`, ...) is refused.
FLAGS = {
    "I": engine.I,
    "IGNORECASE": engine.IGNORECASE,
    "M": engine.M,
    "MULTILINE": engine.MULTILINE,
    "S": engine.S,
    "DOTALL": engine.DOTALL,
    "X": engine.X,
    "VERBOSE": engine.VERBOSE,
    "A": engine.A,
    "ASCII": engine.ASCII,
    "U": engine.U,
    "UNICODE": engine.UNICODE,
}
_ALLOWED_FLAGS = 0
for _flag in FLAGS.values():
    _ALLOWED_FLAGS |= _flag

Pattern = engine.Pattern
Match = engine.Match
error = engine.error
escape = engine.escape


def remaining(budget: Budget) -> float:
    """Seconds left before the run's deadline; `LimitExceeded` when none are."""
    left = budget.deadline - time.monotonic()
    if left <= 0:
        raise LimitExceeded(f"the expression ran for more than {budget.timeout:g} seconds")
    return left


def _timed_out(budget: Budget) -> LimitExceeded:
    return LimitExceeded(
        f"a regular expression ran past the expression's limit of {budget.timeout:g} seconds"
    )


def run(budget: Budget, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args, timeout=..., concurrent=True)` with what is left of the budget."""
    try:
        return call(*args, timeout=remaining(budget), concurrent=True)
    except TimeoutError:
        raise _timed_out(budget) from None


def compile_pattern(pattern: Any, flags: int = 0) -> Any:
    """`re.compile`, with `regex` in its `re`-compatible mode."""
    if not isinstance(flags, int) or flags & ~_ALLOWED_FLAGS:
        raise ValueError("unsupported regular expression flags")
    if isinstance(pattern, engine.Pattern):
        if flags:
            raise ValueError("cannot process flags argument with a compiled pattern")
        return pattern
    if not isinstance(pattern, (str, bytes)):
        raise TypeError("a regular expression must be a string")
    if len(pattern) > MAX_PATTERN:
        raise LimitExceeded(f"a regular expression is longer than {MAX_PATTERN} characters")
    return engine.compile(pattern, flags | engine.VERSION0)


def subject(string: Any) -> Any:
    """`string`, refused when it is too long to run a pattern on."""
    if isinstance(string, (str, bytes)) and len(string) > MAX_SUBJECT:
        raise LimitExceeded(
            f"a regular expression can run on at most {MAX_SUBJECT} characters;"
            f" this text has {len(string)}"
        )
    return string


class Functions:
    """The functions of the sandbox's `re` module for one run (they need its budget)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def match(self, pattern: Any, string: Any, flags: int = 0) -> Any:
        return pattern_match(self.budget, compile_pattern(pattern, flags), string)

    def search(self, pattern: Any, string: Any, flags: int = 0) -> Any:
        return pattern_search(self.budget, compile_pattern(pattern, flags), string)

    def fullmatch(self, pattern: Any, string: Any, flags: int = 0) -> Any:
        return pattern_fullmatch(self.budget, compile_pattern(pattern, flags), string)

    def findall(self, pattern: Any, string: Any, flags: int = 0) -> list[Any]:
        return pattern_findall(self.budget, compile_pattern(pattern, flags), string)

    def finditer(self, pattern: Any, string: Any, flags: int = 0) -> Iterator[Any]:
        return pattern_finditer(self.budget, compile_pattern(pattern, flags), string)

    def split(self, pattern: Any, string: Any, maxsplit: int = 0, flags: int = 0) -> list[Any]:
        return pattern_split(self.budget, compile_pattern(pattern, flags), string, maxsplit)

    def sub(self, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0) -> Any:
        return subn(self.budget, compile_pattern(pattern, flags), repl, string, count)[0]

    def subn(
        self, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0
    ) -> tuple[Any, int]:
        return subn(self.budget, compile_pattern(pattern, flags), repl, string, count)


# The methods of compiled patterns, with `re`'s signatures (`regex` takes more arguments,
# `overlapped` and `partial` among them, which sandboxed code is not offered).
_END = 2**63 - 1


def pattern_match(budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END) -> Any:
    return run(budget, p.match, subject(string), pos, endpos)


def pattern_search(budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END) -> Any:
    return run(budget, p.search, subject(string), pos, endpos)


def pattern_fullmatch(budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END) -> Any:
    return run(budget, p.fullmatch, subject(string), pos, endpos)


def pattern_findall(
    budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END
) -> list[Any]:
    found: list[Any] = run(budget, p.findall, subject(string), pos, endpos)
    return found


def pattern_finditer(
    budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END
) -> Iterator[Any]:
    """Every match found now, under the deadline (see the module's SECURITY note)."""
    return iter(_matches(budget, p, subject(string), pos, endpos))


def pattern_split(budget: Budget, p: Any, string: Any, maxsplit: int = 0) -> list[Any]:
    parts: list[Any] = run(budget, p.split, subject(string), maxsplit)
    return parts


def _matches(
    budget: Budget, p: Any, string: Any, pos: int = 0, endpos: int = _END, count: int = 0
) -> list[Any]:
    found: list[Any] = []
    try:
        for match in p.finditer(string, pos, endpos, timeout=remaining(budget), concurrent=True):
            found.append(match)
            if len(found) == count:
                break
    except TimeoutError:
        raise _timed_out(budget) from None
    return found


def pattern_sub(budget: Budget, p: Any, repl: Any, string: Any, count: int = 0) -> Any:
    return subn(budget, p, repl, string, count)[0]


def pattern_subn(budget: Budget, p: Any, repl: Any, string: Any, count: int = 0) -> tuple[Any, int]:
    return subn(budget, p, repl, string, count)


def subn(budget: Budget, p: Any, repl: Any, string: Any, count: int = 0) -> tuple[Any, int]:
    """`re.subn`, refusing a result over the size limit before it is built."""
    produced = len(string) if isinstance(subject(string), (str, bytes)) else 0
    matches = _matches(budget, p, string, count=count)
    make = repl
    if isinstance(repl, (str, bytes)):
        escapes = repl.count("\\") if isinstance(repl, str) else repl.count(b"\\")
        if not escapes:  # a literal replacement: its size is known, `regex` builds it
            budget.size(produced + len(matches) * len(repl), "the replaced text")
            literal: tuple[Any, int] = run(budget, p.subn, repl, string, count)
            return literal
        budget.size(len(repl) + escapes * produced, "a replacement")
        make = functools.partial(_expand, repl)
    texts = []
    for match in matches:  # each replacement made under the deadline, before `subn` runs
        budget.check_time()
        text = make(match)
        produced += len(text) if isinstance(text, (str, bytes)) else 0
        budget.size(produced, "the replaced text")
        texts.append(text)
    made = iter(texts)
    result: tuple[Any, int] = run(budget, p.subn, lambda _: next(made), string, count)
    return result


def _expand(template: Any, match: Any) -> Any:
    return match.expand(template)
