"""The resource budget of one run: steps, wall-clock time, value sizes, memory and call depth.

The interpreter ticks the budget at every AST node it evaluates; every other module of the
sandbox asks it before an operation whose cost is not bounded by its operands' size (repeating a
sequence, joining, hashing or printing a structure that shares sub-structures), and charges it
for what an operation created.

Two allocation budgets, both counted over the whole run (what was created, not what is still
alive): `max_alloc` items and characters, and `max_memory` bytes. A value is charged its real
size (`footprint`: `sys.getsizeof`, so an integer by its bit length and a list by its slots,
never its shared contents). Iterables are consumed through this module only: `materialize`
charges a copy before the native call makes it (a range by its length times the size of its
largest number), and `iterate` is the checked iterator that charges each item an unknown
iterator makes, ticks a step per item and checks the deadline.

# SECURITY: the checks happen *before* the native operation, so that a single C call can neither
# allocate gigabytes nor run for minutes without returning to a check. A native call is only
# ever given an iterable whose items already exist (a list, a dict's view) or are small and
# few (a range, whose bounds `range` keeps within `MAX_BOUND_BITS`); anything else is pulled
# item by item through `iterate` first.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
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
_STORED = (*SIZED, *_VIEWS)  # iterating them makes no new objects (or, for str, tiny ones)
_MEASURED = (int, bool, float, *SIZED)  # sys.getsizeof is exact and O(1) for these
_SCALAR_WEIGHT = 24  # about the repr of a float
_OPAQUE_WEIGHT = 64  # an object the sandbox does not look into
_OPAQUE_BYTES = 128  # what an object the sandbox does not measure is charged
_CHAR_BYTES = 80  # the largest one-character str (a new object unless the text is ASCII)
MAX_BOUND_BITS = 64  # bounds of a range and the start of enumerate
_CHECK_EVERY = 1024  # items between deadline checks (and charges, for a range)


@dataclass(frozen=True)
class Limits:
    """Size limits of one run; the step and time budgets are arguments of `Program.run`."""

    max_len: int = 1_000_000  # elements or characters of one value, and weight of one operand
    max_alloc: int = 4_000_000  # elements and characters created in one run, in total
    max_memory: int = 64 * 2**20  # bytes of the values created in one run, in total
    max_int_bits: int = 100_000
    max_depth: int = 32  # nested lambda calls
    max_log: int = 1000  # log lines (`ak_logger`, `print`) and messages (`ak_message`)


class Printable:
    """Base of the sandbox's own objects whose `repr` and `str` are safe to show to expressions:
    no module path, no address. The default is the class name alone."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


# Values whose `str`/`repr` Python may compute natively: plain data and these types (whose text
# names no module of ours and no address). Anything else is shown by `render`.
_NATIVE_TEXT: tuple[type, ...] = (
    str, bytes, int, float, complex, bool, type(None), range,
    dt.date, dt.time, dt.timedelta, dt.tzinfo,
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network,
    ipaddress.IPv4Interface, ipaddress.IPv6Interface, Printable,
)  # fmt: skip
_PLAIN = (*_NATIVE_TEXT, *CONTAINERS)


class Budget:
    """What one run may still spend; not shared between runs or threads."""

    def __init__(self, limits: Limits, steps: int, timeout: float) -> None:
        self.limits = limits
        self.steps = steps
        self.timeout = timeout
        self.left = steps
        self.deadline = time.monotonic() + timeout
        self.allocated = 0
        self.memory_used = 0
        self.depth = 0
        self.logged = 0
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

    def memory(self, nbytes: int) -> None:
        """Charge `nbytes` bytes of new values to the run."""
        self.memory_used += max(nbytes, 0)
        if self.memory_used > self.limits.max_memory:
            raise LimitExceeded(
                f"the expression created more than {self.limits.max_memory // 2**20} MiB of values"
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
            self.memory_used += sys.getsizeof(value)
            if self.memory_used > self.limits.max_memory:
                self.memory(0)
        elif kind in SIZED:
            self.size(len(value))
            self.charge(len(value))
            self.memory(sys.getsizeof(value))
        return value

    def weigh(self, *values: Any) -> int:
        """The cost of hashing, comparing or printing `values`, counting shared parts each time
        they occur; refuse when it goes over `max_len`. Costs at most `max_len` steps itself."""
        return survey(values, self.limits.max_len)[0]

    def log_entry(self, *texts: str) -> None:
        """Charge one log line or message made of `texts` (each one is kept, and written out
        later, however many times the same text was logged), and count it against `max_log`."""
        # SECURITY: without this, one shared string logged in a native loop (`sorted(key=
        # ak_logger.info)`) made entries without limit, and writing them froze the event loop.
        self.logged += 1
        if self.logged > self.limits.max_log:
            raise LimitExceeded(
                f"the expression wrote more than {self.limits.max_log} log lines or messages"
            )
        self.charge(sum(len(text) for text in texts))
        self.memory(sum(sys.getsizeof(text) for text in texts))

    def materialize(self, iterable: Iterable[Any]) -> list[Any]:
        """`list(iterable)` within `max_len` items. The items a copy makes are charged before
        the native call makes them; an iterator is pulled item by item through `iterate`. (The
        list itself is charged when it is returned to the code, by `produced`.)"""
        kind = type(iterable)
        if isinstance(iterable, _STORED):
            sized: Any = iterable
            count = len(sized)
            self.size(count)
            if kind is str and not sized.isascii():
                self.memory(count * _CHAR_BYTES)  # each character becomes a str of its own
            elif kind is _VIEWS[2]:
                self.memory(count * sys.getsizeof((None, None)))  # a pair per entry
            return list(sized)
        if kind is range:
            numbers: range = iterable  # type: ignore[assignment]
            count = _range_length(numbers)
            self.size(count, "a range")
            largest = max(abs(numbers.start), abs(numbers.stop))
            self.memory(count * sys.getsizeof(largest))
            return list(numbers)
        out: list[Any] = []
        for item in self.iterate(iterable):
            out.append(item)
            if type(item) in SIZED:  # what an iterator makes (zip's tuples) takes memory too
                self.charge(len(item))
            if len(out) > self.limits.max_len:
                self.size(len(out))
        return out

    def iterate(self, iterable: Iterable[Any], *, loop: bool = False) -> Iterator[Any]:
        """The checked iterator, for a native consumer that folds the items (`any`, `sum`) or,
        with `loop`, for a `for` loop or comprehension (which ticks a step per turn itself).

        A stored container's items exist already: plain `iter`. A range's items are small
        (`MAX_BOUND_BITS`) and at most `max_len`: a fold gets them natively, a loop (which may
        keep them) is charged their size. Any other iterator's items are charged their
        `footprint` and, for a fold, a step each. An iterable that knows its length is refused
        before the first item when it is too long."""
        if isinstance(iterable, _STORED):
            return iter(iterable)
        known = _known_length(iterable)
        if known is not None:
            self.size(*known)
        if isinstance(iterable, range):
            return self._numbers(iterable) if loop else iter(iterable)
        return self._checked(iter(iterable), ticks=not loop)

    def _numbers(self, numbers: range) -> Iterator[int]:
        chunk = _CHECK_EVERY * sys.getsizeof(max(abs(numbers.start), abs(numbers.stop)))
        for count, item in enumerate(numbers):
            if count % _CHECK_EVERY == 0:
                self.memory(chunk)
                self.check_time()
            yield item

    def _checked(self, iterator: Iterator[Any], *, ticks: bool) -> Iterator[Any]:
        count = 0
        for item in iterator:
            self.memory(footprint(item))
            if ticks:
                self.tick(None)
            else:
                count += 1
                if count % _CHECK_EVERY == 0:
                    self.check_time()
            yield item

    def text(self, value: Any, convert: Any = str) -> str:
        """`str(value)` (or `repr`, `ascii`), refused when the text would be too long. Plain
        data is converted natively; a value holding a function, module or other object of the
        runtime is shown by `render` (no module path, no address)."""
        if type(value) is str and convert is str:
            return value
        # SECURITY: weighed before the native conversion, which cannot be interrupted.
        _, native = survey((value,), self.limits.max_len)
        result = convert(value) if native else render(value, convert)
        return self.produced(result)  # type: ignore[no-any-return]

    def joined(self, parts: Iterable[Any], separator: str = " ") -> str:
        """The texts of `parts` joined by `separator`, refused when too long."""
        texts = [self.text(part) for part in parts]
        self.size(sum(map(len, texts)) + len(separator) * max(len(texts) - 1, 0), "a message")
        return self.produced(separator.join(texts))  # type: ignore[no-any-return]


def footprint(value: Any) -> int:
    """The bytes `value` takes itself, not counting what it refers to; O(1)."""
    if type(value) in _MEASURED:
        return sys.getsizeof(value)
    return _OPAQUE_BYTES


def _range_length(numbers: range) -> int:
    try:
        return len(numbers)
    except OverflowError:  # longer than sys.maxsize
        return sys.maxsize


def _known_length(iterable: Any) -> tuple[int, str] | None:
    """How many items iterating `iterable` will make, when that is known without iterating."""
    if isinstance(iterable, range):
        return _range_length(iterable), "a range"
    if isinstance(iterable, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return int(iterable.num_addresses), "a network's list of addresses"
    return None


def survey(values: tuple[Any, ...], limit: int) -> tuple[int, bool]:
    """The weight of `values` (shared parts counted each time they occur) and whether Python
    may print them natively; `LimitExceeded` as soon as the weight goes over `limit`. Used by
    the budget and, with a limit of their own, by code that holds no budget (`measure`)."""
    total, native = 0, True
    stack = list(values)
    while stack:
        value = stack.pop()
        total += _weight(value, stack)
        if native and not isinstance(value, _PLAIN):
            native = False
        if total > limit:
            raise LimitExceeded(f"a value is too large to compare, hash or print (over {limit})")
    return total, native


def measure(value: Any, limit: int) -> int:
    """`value`'s weight, refused over `limit`: for the sandbox's objects that stringify what
    expressions pass them (`views`), which hold no budget of their own."""
    return survey((value,), limit)[0]


def render(value: Any, convert: Any = repr) -> str:
    """The text of `value` as Python would print it, except that functions, modules, iterators
    and other objects of the runtime are shown by a neutral name. Weigh `value` first."""
    # SECURITY: the native `repr` of a function or a bound method shows our module paths and
    # heap addresses (`<function make.<locals>.ak_message at 0x7f...>`).
    text = _render(value, top=convert is not repr and convert is not ascii)
    if convert is ascii:
        return text.encode("ascii", "backslashreplace").decode("ascii")
    return text


def _render(value: Any, *, top: bool = False) -> str:
    kind = type(value)
    if isinstance(value, _NATIVE_TEXT):
        return str(value) if top else repr(value)
    if kind is list:
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if kind is tuple:
        inner = ", ".join(_render(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_render(k)}: {_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        inner = ", ".join(_render(item) for item in value)
        if kind is frozenset:
            return f"frozenset({{{inner}}})" if value else "frozenset()"
        return f"{{{inner}}}" if value else "set()"
    if isinstance(value, _VIEWS):
        view: Any = value
        return f"{kind.__name__}([{', '.join(_render(item) for item in view)}])"
    if isinstance(value, BaseException):
        args = value.args
        if top:
            if len(args) <= 1:  # a KeyError shows its key as `repr`, as Python's does
                return _render(args[0], top=kind is not KeyError) if args else ""
            return _render(args)
        return f"{kind.__name__}({', '.join(_render(arg) for arg in args)})"
    if isinstance(value, type):
        return f"<class {value.__name__!r}>"
    if callable(value):
        name = getattr(value, "__name__", None)
        shown = name.strip("_") if isinstance(name, str) else ""
        return f"<function {shown}>" if shown and shown != "<lambda>" else "<function>"
    return f"<{kind.__name__} object>"


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
