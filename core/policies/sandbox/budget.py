"""The resource budget of one run: steps, wall-clock time, value sizes, memory and call depth.

The interpreter ticks the budget at every AST node it evaluates; every other module of the
sandbox asks it before an operation whose cost is not bounded by its operands' size (repeating a
sequence, joining, hashing or printing a structure that shares sub-structures), and charges it
for what an operation created.

# SECURITY: the checks happen *before* the native operation, so that a single C call can neither
# allocate gigabytes nor run for minutes without returning to a check.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tessera.core.policies.sandbox.errors import LimitExceeded

DEFAULT_STEPS = 100_000
DEFAULT_TIMEOUT = 5.0  # seconds

SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
CONTAINERS = (list, tuple, dict, set, frozenset, *_VIEWS)
_LISTABLE = (*SIZED, range, *_VIEWS)
_SCALAR_WEIGHT = 24  # about the repr of a float
_OPAQUE_WEIGHT = 64  # an object the sandbox does not look into


@dataclass(frozen=True)
class Limits:
    """Size limits of one run; the step and time budgets are arguments of `Program.run`."""

    max_len: int = 1_000_000  # elements or characters of one value, and weight of one operand
    max_alloc: int = 4_000_000  # elements and characters created in one run, in total
    max_int_bits: int = 100_000
    max_depth: int = 32  # nested lambda calls


class Budget:
    """What one run may still spend; not shared between runs or threads."""

    def __init__(self, limits: Limits, steps: int, timeout: float) -> None:
        self.limits = limits
        self.steps = steps
        self.timeout = timeout
        self.left = steps
        self.deadline = time.monotonic() + timeout
        self.allocated = 0
        self.depth = 0
        self.line: int | None = None

    def tick(self, node: object) -> None:
        """One evaluation step at `node`: the step budget, then the deadline."""
        self.line = getattr(node, "lineno", self.line)
        self.left -= 1
        if self.left < 0:
            raise LimitExceeded(f"the expression took more than {self.steps} steps")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the expression ran for more than {self.timeout:g} seconds")

    def size(self, length: int, what: str = "a value") -> None:
        if length > self.limits.max_len:
            raise LimitExceeded(
                f"{what} would hold {length} items or characters;"
                f" the limit is {self.limits.max_len}"
            )

    def charge(self, count: int) -> None:
        self.allocated += max(count, 0)
        if self.allocated > self.limits.max_alloc:
            raise LimitExceeded(
                f"the expression created more than {self.limits.max_alloc} items or characters"
            )

    def int_bits(self, bits: int) -> None:
        if bits > self.limits.max_int_bits:
            raise LimitExceeded(
                f"an integer would need {bits} bits; the limit is {self.limits.max_int_bits}"
            )

    def produced(self, value: Any) -> Any:
        """Check and charge a value that an operation just created; return it."""
        kind = type(value)
        if kind is int:
            self.int_bits(value.bit_length())
        elif kind in SIZED:
            self.size(len(value))
            self.charge(len(value))
        return value

    def weigh(self, *values: Any) -> int:
        """The cost of hashing, comparing or printing `values`, counting shared parts each time
        they occur; refuse when it goes over `max_len`. Costs at most `max_len` steps itself."""
        limit, total = self.limits.max_len, 0
        stack = list(values)
        while stack:
            total += _weight(stack.pop(), stack)
            if total > limit:
                raise LimitExceeded(
                    f"a value is too large to compare, hash or print (over {limit})"
                )
        return total

    def materialize(self, iterable: Iterable[Any]) -> list[Any]:
        """`list(iterable)` within `max_len` items, checking the deadline while it iterates."""
        if isinstance(iterable, _LISTABLE):
            sized: Any = iterable
            self.size(len(sized))
            return list(sized)
        out: list[Any] = []
        for item in _checked(self, iter(iterable)):
            out.append(item)
            if type(item) in SIZED:  # what an iterator makes (zip's tuples) takes memory too
                self.charge(len(item))
            if len(out) > self.limits.max_len:
                self.size(len(out))
        return out

    def text(self, value: Any, convert: Any = str) -> str:
        """`str(value)` (or `convert(value)`), refused when the text would be too long."""
        if type(value) is str and convert is str:
            return value
        self.weigh(value)
        result: str = convert(value)
        return self.produced(result)  # type: ignore[no-any-return]

    def joined(self, parts: Iterable[Any], separator: str = " ") -> str:
        """The texts of `parts` joined by `separator`, refused when too long."""
        texts = [self.text(part) for part in parts]
        self.size(sum(map(len, texts)) + len(separator) * max(len(texts) - 1, 0), "a message")
        return self.produced(separator.join(texts))  # type: ignore[no-any-return]


def _checked(budget: Budget, iterator: Iterator[Any]) -> Iterator[Any]:
    for count, item in enumerate(iterator):
        if count & 1023 == 1023:
            budget.check_time()
        yield item


def _weight(value: Any, stack: list[Any]) -> int:
    """The weight of `value` itself; pushes the values it contains onto `stack`."""
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind is bytes:
        return 4 * len(value) + 3
    if kind is int:
        return int(value.bit_length()) // 3 + 2
    if isinstance(value, dict):
        stack.extend(value.keys())
        stack.extend(value.values())
        return 2 + 4 * len(value)
    if isinstance(value, CONTAINERS):
        items: Any = value
        stack.extend(items)
        return 2 + 2 * len(items)
    if isinstance(value, BaseException):
        stack.extend(value.args)
        return _OPAQUE_WEIGHT
    if kind in (float, bool, type(None)):
        return _SCALAR_WEIGHT
    return _OPAQUE_WEIGHT
