"""Arithmetic, comparison and unary operators for sandboxed code, checked before they run.

Called by the interpreter for `a + b`, `a += b`, `a < b`, `not a` and friends. Before the native
operator runs: repeating or concatenating sequences stays within the size limit, integer
`*`, `**` and `<<` within the bit limit, `%` formatting within both, and comparisons weigh their
operands (a comparison or a `dict`/`set` membership of structures that share parts costs the
size of the structure unfolded). After it, the result is checked and charged.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterator
from typing import Any

from tessera.core.policies.sandbox.budget import (
    CONTAINERS,
    SIZED,
    Budget,
    Printable,
    render,
    survey,
)
from tessera.core.policies.sandbox.errors import Forbidden

Op = Callable[[Any, Any], Any]
BINARY: dict[type[ast.operator], Op] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.MatMult: operator.matmul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
}
IN_PLACE: dict[type[ast.operator], Op] = {
    ast.Add: operator.iadd,
    ast.Sub: operator.isub,
    ast.Mult: operator.imul,
    ast.MatMult: operator.imatmul,
    ast.Div: operator.itruediv,
    ast.FloorDiv: operator.ifloordiv,
    ast.Mod: operator.imod,
    ast.Pow: operator.ipow,
    ast.LShift: operator.ilshift,
    ast.RShift: operator.irshift,
    ast.BitOr: operator.ior,
    ast.BitXor: operator.ixor,
    ast.BitAnd: operator.iand,
}
COMPARE: dict[type[ast.cmpop], Op] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_SEQUENCES = (str, bytes, list, tuple)
_MERGEABLE = (dict, set, frozenset)
_PERCENT_FLAGS = "-+ #0"


def binary(budget: Budget, op: type[ast.operator], left: Any, right: Any) -> Any:
    return budget.produced(combine(budget, op, left, right))


def combine(budget: Budget, op: type[ast.operator], left: Any, right: Any) -> Any:
    """`left op right`, checked before it runs but not yet charged (`sum` charges only the
    running totals that are worth it)."""
    _check(budget, op, left, right)
    if op is ast.Mod and isinstance(left, str):
        right = _shown(budget, right)
    return BINARY[op](left, right)


def in_place(budget: Budget, op: type[ast.operator], target: Any, value: Any) -> Any:
    """`target op= value`; a list grows in place, and is charged for what it gained."""
    if type(target) is list and op is ast.Add and not isinstance(value, SIZED):
        value = budget.materialize(value)
    _check(budget, op, target, value)
    before = len(target) if type(target) is list else None
    result = IN_PLACE[op](target, value)
    if before is not None and result is target:
        budget.charge(len(target) - before)
        return result
    return budget.produced(result)


def compare(budget: Budget, op: type[ast.cmpop], left: Any, right: Any) -> Any:
    if op is ast.Is or op is ast.IsNot:
        return COMPARE[op](left, right)
    if op is ast.In or op is ast.NotIn:
        if isinstance(right, Iterator):
            right = budget.materialize(right)
        if isinstance(right, (dict, set, frozenset)):  # a lookup hashes the left side only
            budget.weigh(left)
            return COMPARE[op](left, right)
    if isinstance(left, CONTAINERS) or isinstance(right, CONTAINERS):
        budget.weigh(left, right)
    return COMPARE[op](left, right)


def _check(budget: Budget, op: type[ast.operator], left: Any, right: Any) -> None:
    if op is ast.Mult or op is ast.Add:
        _check_sizes(budget, op, left, right)
    elif op is ast.Pow and _ints(left, right) and right > 0 and abs(left) > 1:
        budget.int_bits(left.bit_length() * right)
    elif op is ast.LShift and _ints(left, right) and left and right > 0:
        budget.int_bits(left.bit_length() + right)
    elif op is ast.Mod and isinstance(left, (str, bytes)):
        _check_percent(budget, left, right)
    elif op is ast.BitOr and isinstance(left, _MERGEABLE) and isinstance(right, _MERGEABLE):
        budget.size(len(left) + len(right))


def _check_sizes(budget: Budget, op: type[ast.operator], left: Any, right: Any) -> None:
    if op is ast.Add:
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            budget.size(len(left) + len(right), "a concatenation")
        return
    if _ints(left, right):
        budget.int_bits(left.bit_length() + right.bit_length())
    elif isinstance(left, _SEQUENCES) and isinstance(right, int):
        budget.size(len(left) * right, "a repeated sequence")
    elif isinstance(right, _SEQUENCES) and isinstance(left, int):
        budget.size(len(right) * left, "a repeated sequence")


def _ints(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def conversions(text: str) -> Iterator[tuple[str, str]]:
    """The width and precision of each `%` conversion of `text`, parsed as Python parses them:
    `%[(key)][flags][width][.precision][length]type`, where the key may hold parentheses of its
    own (Python counts their depth)."""
    # SECURITY: a pattern that ended the key at the first `)` let `%(a(b)c)1500000000s` hide
    # its width inside the key, and one request made 1.59 GB.
    index, end = 0, len(text)
    while (index := text.find("%", index)) >= 0:
        index += 1
        if index < end and text[index] == "(":
            depth = 0
            while index < end:
                depth += {"(": 1, ")": -1}.get(text[index], 0)
                index += 1
                if depth == 0:
                    break
        while index < end and text[index] in _PERCENT_FLAGS:
            index += 1
        width, index = _number(text, index)
        precision = ""
        if index < end and text[index] == ".":
            precision, index = _number(text, index + 1)
        while index < end and text[index] in "hlL":
            index += 1
        index += 1  # the conversion type
        yield width, precision


def _number(text: str, index: int) -> tuple[str, int]:
    if index < len(text) and text[index] == "*":
        return "*", index + 1
    start = index
    while index < len(text) and text[index].isdigit():
        index += 1
    return text[start:index], index


class _Shown(Printable):
    """A value of the runtime (a function, a module) as `%s` and `%r` may show it."""

    __slots__ = ("_repr", "_str")

    def __init__(self, value: Any) -> None:
        self._str, self._repr = render(value, str), render(value)

    def __repr__(self) -> str:
        return self._repr

    def __str__(self) -> str:
        return self._str


def _shown(budget: Budget, args: Any) -> Any:
    """`%` arguments with every value that Python may not print natively (a function, or a
    list holding one) replaced by its neutral text; weighed already by `_check_percent`."""
    if isinstance(args, dict):
        return {key: _show(budget, value) for key, value in args.items()}
    if type(args) is tuple:
        return tuple(_show(budget, value) for value in args)
    return _show(budget, args)


def _show(budget: Budget, value: Any) -> Any:
    if type(value) in (str, int, float, bool) or survey((value,), budget.limits.max_len)[1]:
        return value
    return _Shown(value)


def _check_percent(budget: Budget, template: str | bytes, args: Any) -> None:
    """`template % args` stays within the size limit: widths, precisions, and each conversion
    counted as large as the largest argument."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    widths, count = 0, 0
    for width, precision in conversions(text):
        if width == "*" or precision == "*":
            raise Forbidden("'*' widths are not allowed in % formatting")
        widths += int(width or 0) + int(precision or 0)
        count += 1
    values = args.values() if isinstance(args, dict) else args if type(args) is tuple else (args,)
    largest = max((budget.weigh(value) for value in values), default=0)
    budget.size(len(text) + widths + count * largest, "a formatted string")
