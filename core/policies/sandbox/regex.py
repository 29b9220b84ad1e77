r"""Regular expressions for sandboxed code: `re`'s functions behind a pattern check and size limits.

Called by `modules` (the sandbox's `re` module), `helpers` (`regex_match`, `regex_replace`) and
`attributes` (the methods of compiled patterns).

# SECURITY: Python's `re` backtracks, holds the GIL and cannot be interrupted, so a pattern is
# refused before it runs when it repeats something of variable length (`(a+)+`, `(a|b*)*`,
# `(a|aa)+`) with no literal between the repetitions that the variable part cannot itself match
# (`([\w-]+\.)+` is accepted, `(\w+a)+` is not), or when two variable repetitions of
# overlapping characters follow each other (`a*a*b`, `\s+\s*`): the shapes that take exponential
# or high polynomial time. Subjects are limited to `MAX_SUBJECT` characters, which bounds the
# quadratic cost of searching with a pattern such as `\s*x` to about a second. This remains a
# heuristic: the time limit cannot stop a match once it runs.
# `sub` counts the text it produces as it goes and stops at the size limit.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from tessera.core.policies.sandbox.budget import Budget
from tessera.core.policies.sandbox.errors import Forbidden, LimitExceeded

MAX_PATTERN = 10_000  # characters
MAX_SUBJECT = 10_000  # characters of the text a pattern runs on

_parser: Any = importlib.import_module("re._parser")  # no public API parses a pattern
_constants: Any = importlib.import_module("re._constants")
_compiler: Any = importlib.import_module("re._compiler")
_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT}
# The characters tried to tell whether two single-character items overlap.
_PROBES = "".join(map(chr, range(0x180))) + "\u00a0\u0660\u0130\u2028\u3000\u4e00\U0001f600"


def compile_pattern(pattern: Any, flags: int = 0) -> re.Pattern[Any]:
    """`re.compile`, refusing patterns prone to catastrophic backtracking."""
    if isinstance(pattern, re.Pattern):
        return re.compile(pattern, flags)
    if not isinstance(pattern, (str, bytes)):
        raise TypeError("a regular expression must be a string")
    if len(pattern) > MAX_PATTERN:
        raise LimitExceeded(f"a regular expression is longer than {MAX_PATTERN} characters")
    parsed = _parser.parse(pattern, flags)
    if _nested_repeat(parsed) or _adjacent_repeats(parsed):
        raise Forbidden(
            f"the regular expression {pattern!r:.80} repeats a repetition or puts overlapping"
            " repetitions side by side, which can take exponential time; rewrite it"
        )
    return re.compile(pattern, flags)


def _variable(op: Any, arg: Any) -> bool:
    """A repetition of variable count, or an alternation of alternatives of different widths."""
    if op in _REPEATS:
        return bool(arg[0] != arg[1])
    if op == _constants.BRANCH:
        return len({alternative.getwidth() for alternative in arg[1]}) > 1
    return False


def _nested_repeat(items: Any, inside: bool = False) -> bool:
    """Whether something of variable length sits inside a repetition whose body has no literal
    that the variable parts cannot match (`(a+)+`, `(\\w+\\s?)+`, `(a|aa)+` are refused,
    `([\\w-]+\\.)+` is accepted)."""
    for op, arg in items:
        if inside and _variable(op, arg):
            return True
        if op in _REPEATS:
            _, high, sub = arg
            if _nested_repeat(sub, inside or (high > 1 and not _delimited(sub))):
                return True
        elif any(_nested_repeat(sub, inside) for sub in _subpatterns(arg)):
            return True
    return False


def _delimited(items: Any) -> bool:
    """Whether `items` hold a literal that none of their variable parts can match."""
    literals = _literals(items)
    variable = set().union(*(_chars(items, op, arg) for op, arg in _variables(items)))
    return any(chr(code) not in variable for code in literals)


def _literals(items: Any) -> list[int]:
    found = []
    for op, arg in items:
        if op == _constants.LITERAL:
            found.append(arg)
        elif op == _constants.SUBPATTERN:
            found.extend(_literals(arg[3]))
    return found


def _variables(items: Any) -> list[tuple[Any, Any]]:
    found = []
    for op, arg in items:
        if _variable(op, arg):
            found.append((op, arg))
        for sub in _subpatterns(arg):
            found.extend(_variables(sub))
    return found


def _chars(parsed: Any, op: Any, arg: Any, unknown: str = _PROBES) -> frozenset[str]:
    """The probe characters a variable part can match (`unknown` when it is not one repeated
    single-character item)."""
    if op in _REPEATS and len(arg[2]) == 1 and arg[2][0][0] in _SINGLE:
        single = _parser.SubPattern(parsed.state, [arg[2][0]])
        compiled = _compiler.compile(single, parsed.state.flags)
        return frozenset(c for c in _PROBES if compiled.fullmatch(c))
    return frozenset(unknown)


_SINGLE = {
    _constants.LITERAL, _constants.NOT_LITERAL, _constants.ANY, _constants.IN,
    _constants.CATEGORY,
}  # fmt: skip


def _adjacent_repeats(items: Any) -> bool:
    """Whether two variable repetitions of single characters that can match the same character
    follow each other (`a*a*b`, `\\w+\\d+`), in `items` or any part of them."""
    previous: frozenset[str] = frozenset()
    for op, arg in items:
        current = _chars(items, op, arg, "") if _variable(op, arg) else frozenset()
        if previous & current:
            return True
        previous = current
        if any(_adjacent_repeats(sub) for sub in _subpatterns(arg)):
            return True
    return False


def _subpatterns(arg: Any) -> list[Any]:
    if isinstance(arg, _parser.SubPattern):
        return [arg]
    if isinstance(arg, (tuple, list)):
        return [sub for item in arg for sub in _subpatterns(item)]
    return []


def subject(string: Any) -> Any:
    """`string`, refused when it is too long to run a pattern on."""
    if isinstance(string, (str, bytes)) and len(string) > MAX_SUBJECT:
        raise LimitExceeded(
            f"a regular expression can run on at most {MAX_SUBJECT} characters;"
            f" this text has {len(string)}"
        )
    return string


def match(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).match(subject(string))


def search(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).search(subject(string))


def fullmatch(pattern: Any, string: Any, flags: int = 0) -> re.Match[Any] | None:
    return compile_pattern(pattern, flags).fullmatch(subject(string))


def findall(pattern: Any, string: Any, flags: int = 0) -> list[Any]:
    return compile_pattern(pattern, flags).findall(subject(string))


def finditer(pattern: Any, string: Any, flags: int = 0) -> Any:
    return compile_pattern(pattern, flags).finditer(subject(string))


def split(pattern: Any, string: Any, maxsplit: int = 0, flags: int = 0) -> list[Any]:
    return compile_pattern(pattern, flags).split(subject(string), maxsplit)


def pattern_method(name: str) -> Any:
    """A method of a compiled pattern (`match`, `search`, ...), with the subject checked."""

    def call(budget: Budget, compiled: re.Pattern[Any], string: Any, *args: Any) -> Any:
        return getattr(compiled, name)(subject(string), *args)

    return call


def sub(
    budget: Budget, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0
) -> Any:
    """`re.sub`, counting the text each replacement adds against the size limit."""
    return subn(budget, pattern, repl, string, count, flags)[0]


def subn(
    budget: Budget, pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0
) -> tuple[Any, int]:
    compiled = compile_pattern(pattern, flags)
    subject(string)
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
