"""The built-in names of sandboxed code: safe Python built-ins plus authentik's helpers.

Called by the interpreter once per run (`make`). The built-ins that build or consume a
collection go through the run's `Budget`: `list`, `tuple`, `set`, `frozenset`, `dict` and `str`
are `Constructor`s (a call is checked, `isinstance(x, str)` still works), `range` is capped
in length and in the size of its bounds (as is `enumerate`'s `start`), `sorted`/`min`/`max`
weigh what they compare and check their `key`, `any`/`all`/`sum` pull their items through the
budget's checked iterator, `map`/`filter`/`zip` are lazy and tick the budget per item, and
`print` writes to the run's log. Absent on purpose:
`open`, `eval`, `exec`, `compile`, `getattr` and its kin, `type`, `object`, `super`, `vars`,
`globals`, `iter`, `next`, `format`, `hash`, `id`, `bytes`, `__import__`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tessera.core.policies.sandbox import attributes, helpers, operators
from tessera.core.policies.sandbox.budget import MAX_BOUND_BITS, Budget, Printable
from tessera.core.policies.sandbox.errors import LimitExceeded

Invoke = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
MAX_ROUND_DIGITS = 1000
EXCEPTIONS = (
    Exception, ArithmeticError, AssertionError, IndexError, KeyError, LookupError, RuntimeError,
    TypeError, ValueError, ZeroDivisionError,
)  # fmt: skip
PLAIN = (len, bool, int, float, abs, chr, ord, reversed, divmod)


class Constructor(Printable):
    """A built-in type whose calls are checked; `isinstance` sees the type itself."""

    __slots__ = ("_build", "type")

    def __init__(self, kind: type, build: Callable[..., Any]) -> None:
        self.type = kind
        self._build = build

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._build(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<class {self.type.__name__!r}>"


def make(
    budget: Budget, invoke: Invoke, hooks: helpers.Hooks, output: helpers.Output
) -> dict[str, Any]:
    names: dict[str, Any] = {f.__name__: f for f in (*PLAIN, *EXCEPTIONS)}
    names.update(_constructors(budget))
    names.update(_functions(budget, invoke, output))
    names.update(helpers.make(budget, hooks, output))
    for name, function in hooks.extra.items():
        if name.startswith("_"):
            raise ValueError(f"a built-in name must not start with '_': {name!r}")
        names[name] = function
    return names


def _constructors(budget: Budget) -> dict[str, Constructor]:
    def make_str(*args: Any, **kwargs: Any) -> str:
        if len(args) == 1 and not kwargs:
            return budget.text(args[0])
        return decoded(*args, **kwargs)

    def decoded(data: Any, encoding: Any = "utf-8", errors: Any = "strict") -> str:
        if not isinstance(data, bytes):
            raise TypeError("str() decodes bytes only")
        return attributes.decode(budget, data, encoding, errors)

    def make_set(iterable: Iterable[Any] = ()) -> set[Any]:
        items = budget.materialize(iterable)
        budget.weigh(items)
        return set(items)

    def make_frozenset(iterable: Iterable[Any] = ()) -> frozenset[Any]:
        return frozenset(make_set(iterable))

    def make_enumerate(iterable: Iterable[Any], start: int = 0) -> enumerate[Any]:
        numbered = enumerate(iterable, start)
        _bounded(start, "enumerate's start")
        return numbered

    def make_dict(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if not args:
            return dict(**kwargs)
        (source,) = args
        if hasattr(source, "keys"):
            source = [(key, source[key]) for key in budget.materialize(source.keys())]
        pairs = budget.materialize(source)
        budget.weigh(pairs)
        return dict(pairs, **kwargs)

    return {
        "str": Constructor(str, make_str),
        "list": Constructor(list, lambda iterable=(): budget.materialize(iterable)),
        "tuple": Constructor(tuple, lambda iterable=(): tuple(budget.materialize(iterable))),
        "set": Constructor(set, make_set),
        "frozenset": Constructor(frozenset, make_frozenset),
        "dict": Constructor(dict, make_dict),
        "enumerate": Constructor(enumerate, make_enumerate),
    }


def _functions(budget: Budget, invoke: Invoke, output: helpers.Output) -> dict[str, Any]:
    def sorted_(iterable: Iterable[Any], *, key: Any = None, reverse: bool = False) -> list[Any]:
        items = budget.materialize(iterable)
        items.sort(key=attributes.weighed_key(budget, key, items), reverse=reverse)
        return items

    def extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
        def choose(*args: Any, key: Any = None, **kwargs: Any) -> Any:
            items = budget.materialize(args[0]) if len(args) == 1 else list(args)
            return pick(items, key=attributes.weighed_key(budget, key, items), **kwargs)

        return choose

    def sum_(iterable: Iterable[Any], start: Any = 0) -> Any:
        total = start
        for item in budget.iterate(iterable):
            budget.check_time()
            total = operators.combine(budget, ast.Add, total, item)
            if type(total) is not int:  # a running number is not kept; a list or str is charged
                budget.produced(total)
        return total  # charged by the caller, as any built-in's result

    def map_(function: Any, *iterables: Iterable[Any]) -> Iterator[Any]:
        for args in zip(*(budget.iterate(it, loop=True) for it in iterables), strict=False):
            budget.tick(None)
            yield invoke(function, args, {})

    def filter_(function: Any, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in budget.iterate(iterable, loop=True):
            budget.tick(None)
            if item if function is None else invoke(function, (item,), {}):
                yield item

    def zip_(*iterables: Iterable[Any], strict: bool = False) -> Iterator[tuple[Any, ...]]:
        for row in zip(*(budget.iterate(it, loop=True) for it in iterables), strict=strict):
            budget.check_time()
            budget.charge(len(row))
            yield row

    def range_(*args: int) -> range:
        numbers = range(*args)
        for bound in (numbers.start, numbers.stop, numbers.step):
            _bounded(bound, "a range's bounds")
        try:
            count = len(numbers)
        except OverflowError:
            count = budget.limits.max_len + 1
        budget.size(count, "a range")
        return numbers

    def round_(number: Any, ndigits: Any = None) -> Any:
        if isinstance(ndigits, int) and abs(ndigits) > MAX_ROUND_DIGITS:
            raise LimitExceeded(f"round() takes at most {MAX_ROUND_DIGITS} digits")
        return round(number, ndigits)

    def print_(*args: Any, sep: Any = " ", end: Any = "") -> None:
        """One log line (`end` is accepted and ignored)."""
        message = budget.joined(args, budget.text(sep))
        budget.log_entry(message)
        output.log.append(helpers.LogEntry("info", message))

    return {
        "sorted": sorted_,
        "min": extreme(min),
        "max": extreme(max),
        "sum": sum_,
        "any": lambda iterable: any(budget.iterate(iterable)),
        "all": lambda iterable: all(budget.iterate(iterable)),
        "map": map_,
        "zip": zip_,
        "filter": filter_,
        "range": range_,
        "round": round_,
        "print": print_,
        "repr": lambda value: budget.text(value, repr),
        "isinstance": lambda value, kinds: isinstance(value, _classinfo(kinds)),
    }


def _bounded(number: Any, what: str) -> None:
    """Refuse a huge integer where each item made from it would be huge too (a range's bounds):
    a native loop over such items spends memory and time the item count does not show."""
    if isinstance(number, int) and number.bit_length() > MAX_BOUND_BITS:
        raise LimitExceeded(f"{what} must fit in {MAX_BOUND_BITS} bits")


def _classinfo(kinds: Any) -> Any:
    """The second argument of `isinstance`: plain classes and `Constructor`s, or tuples of them."""
    if isinstance(kinds, Constructor):
        return kinds.type
    if type(kinds) is tuple:
        return tuple(_classinfo(kind) for kind in kinds)
    if type(kinds) is type:
        return kinds
    raise TypeError("isinstance() arg 2 must be a type or a tuple of types")
