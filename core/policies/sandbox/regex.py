"""Regular expressions for sandboxed code: `re`'s functions behind a pattern check and size limits.

Called by `modules` (the sandbox's `re` module), `helpers` (`regex_match`, `regex_replace`) and
`attributes` (the methods of compiled patterns).

# SECURITY: Python's `re` backtracks and cannot be interrupted, so a pattern is refused before it
# runs when it repeats something that itself repeats a variable number of times (`(a+)+`,
# `(a|b*)*`) with no fixed literal between the repetitions: the shapes that take exponential time.
# This is a heuristic: `(a|aa)+` or polynomial patterns such as `a*a*a*b` on long subjects are
# not caught, and the time limit cannot stop a match once it runs.
# `sub` counts the text it produces as it goes and stops at the size limit.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from tessera.core.policies.sandbox.budget import Budget
from tessera.core.policies.sandbox.errors import Forbidden, LimitExceeded

MAX_PATTERN = 10_000  # characters

_parser: Any = importlib.import_module("re._parser")  # no public API parses a pattern
_constants: Any = importlib.import_module("re._constants")
_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT}


def compile_pattern(pattern: Any, flags: int = 0) -> re.Pattern[Any]:
    """`re.compile`, refusing patterns prone to catastrophic backtracking."""
    if isinstance(pattern, re.Pattern):
        return re.compile(pattern, flags)
    if not isinstance(pattern, (str, bytes)):
        raise TypeError("a regular expression must be a string")
    if len(pattern) > MAX_PATTERN:
        raise LimitExceeded(f"a regular expression is longer than {MAX_PATTERN} characters")
    if _nested_repeat(_parser.parse(pattern, flags)):
        raise Forbidden(
            f"the regular expression {pattern!r:.80} repeats a repetition, which can take"
            " exponential time; rewrite it without nested quantifiers"
        )
    return re.compile(pattern, flags)


def _nested_repeat(items: Any, inside: bool = False) -> bool:
    """Whether a variable repetition sits inside a repetition with no fixed literal in its body
    (`(a+)+` and `(\\w+\\s?)+` are refused, `([\\w-]+\\.)+` is accepted)."""
    for op, arg in items:
        if op in _REPEATS:
            low, high, sub = arg
            if inside and high != low:
                return True
            if _nested_repeat(sub, inside or (high > 1 and not _delimited(sub))):
                return True
        elif any(_nested_repeat(sub, inside) for sub in _subpatterns(arg)):
            return True
    return False


def _delimited(items: Any) -> bool:
    for op, arg in items:
        if op == _constants.LITERAL:
            return True
        if op == _constants.SUBPATTERN and _delimited(arg[3]):
            return True
    return False


def _subpatterns(arg: Any) -> list[Any]:
    if isinstance(arg, _parser.SubPattern):
        return [arg]
    if isinstance(arg, (tuple, list)):
        return [sub for item in arg for sub in _subpatterns(item)]
    return []


def match(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).match(string)


def search(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).search(string)


def fullmatch(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).fullmatch(string)


def findall(pattern: Any, string: Any, flags: int = 0) -> list[Any]:
    return compile_pattern(pattern, flags).findall(string)


def finditer(pattern: Any, string: Any, flags: int = 0) -> Any:
    return compile_pattern(pattern, flags).finditer(string)


def split(pattern: Any, string: Any, maxsplit: int = 0, flags: int = 0) -> list[Any]:
    return compile_pattern(pattern, flags).split(string, maxsplit)


def sub(
    budget: Budget, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0
) -> Any:
    """`re.sub`, counting the text each replacement adds against the size limit."""
    return subn(budget, pattern, repl, string, count, flags)[0]


def subn(
    budget: Budget, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0
) -> tuple[Any, int]:
    compiled = compile_pattern(pattern, flags)
    produced = [len(string) if isinstance(string, (str, bytes)) else 0]
    if isinstance(repl, str | bytes):
        escapes = repl.count("\\") if isinstance(repl, str) else repl.count(b"\\")
        if not escapes:  # a literal replacement: count the matches, then let `re` work
            found = _count(budget, compiled, string, count)
            budget.size(produced[0] + found * len(repl), "the replaced text")
            literal: tuple[Any, int] = compiled.subn(repl, string, count)
            return literal
        budget.size(len(repl) + escapes * produced[0], "a replacement")

    def replace(found: re.Match[Any]) -> Any:
        budget.check_time()
        text = found.expand(repl) if isinstance(repl, (str, bytes)) else repl(found)
        produced[0] += len(text) if isinstance(text, (str, bytes)) else 0
        budget.size(produced[0], "the replaced text")
        return text

    result: tuple[Any, int] = compiled.subn(replace, string, count)
    return result


def _count(budget: Budget, compiled: re.Pattern[Any], string: Any, count: int) -> int:
    found = 0
    for found, _ in enumerate(compiled.finditer(string), start=1):
        if found & 1023 == 0:
            budget.check_time()
        if found == count:
            break
    return found


def pattern_sub(
    budget: Budget, compiled: re.Pattern[Any], repl: Any, string: Any, count: int = 0
) -> Any:
    return sub(budget, compiled, repl, string, count)


def pattern_subn(
    budget: Budget, compiled: re.Pattern[Any], repl: Any, string: Any, count: int = 0
) -> tuple[Any, int]:
    return subn(budget, compiled, repl, string, count)
