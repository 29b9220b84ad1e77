"""Attribute access for sandboxed code: an explicit allow-list for every type it may look into.

Called by the interpreter for every `value.name`. Plain data (str, bytes, numbers, lists, tuples,
dicts, sets, dates and times, IP addresses and networks, regex matches and patterns) exposes the
public methods listed here, minus those that walk attributes (`str.format`) or produce unbounded
output; the methods whose cost depends on their arguments (`join`, `replace`, padding, `extend`,
hashing and sorting) are returned wrapped in a check against the run's `Budget`, and so are those
that grow a container (`append`, `insert`, `add`), which charge the run for what they added. A
method that consumes an iterable gets it as a list made by `Budget.materialize`, never the
iterable itself. Objects made for
the sandbox subclass `Exposed` and list their own names. Everything else has no attributes.

# SECURITY: names starting with `_` are refused first, and there is no fallback to `getattr`: a
# type missing from these tables (functions, generators, modules, frames, classes) exposes
# nothing, so `x.gi_frame`, `f.func_globals` or `datetime.sys` fail whatever `x` is.
"""

from __future__ import annotations

import codecs
import datetime as dt
import ipaddress
import re
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from tessera.core.policies.sandbox import regex
from tessera.core.policies.sandbox.budget import SIZED, Budget, Printable
from tessera.core.policies.sandbox.errors import Forbidden

# Text codecs whose cost is linear in the text (`codecs.lookup(name).name`), and the error
# handlers they may use; with the most bytes or characters one character or byte can become.
CODECS = {
    "utf-8": 4, "utf-16": 4, "utf-16-le": 4, "utf-16-be": 4, "utf-32": 4, "utf-32-le": 4,
    "utf-32-be": 4, "ascii": 1, "iso8859-1": 1,
}  # fmt: skip
CODEC_ERRORS = {"strict": 1, "ignore": 1, "replace": 3, "backslashreplace": 10}
_STRFTIME = re.compile(r"%[-_0^#]*(\d*)[EO]?(.)", re.S)
_STRFTIME_ITEM = 64  # the most characters a directive without a width makes (%c, %Z)


class Exposed(Printable):
    """Base of objects made for sandboxed code; `exposed` lists the attributes it may read."""

    exposed: ClassVar[frozenset[str]] = frozenset()

    def sandbox_get(self, name: str) -> Any:
        if name not in type(self).exposed:
            raise Forbidden(f"{type(self).__name__} has no attribute {name!r} for expressions")
        return getattr(self, name)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STR = _names(
    "capitalize casefold center count encode endswith find index isalnum isalpha isascii"
    " isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper join"
    " ljust lower lstrip partition removeprefix removesuffix replace rfind rindex rjust rpartition"
    " rsplit rstrip split splitlines startswith strip swapcase title upper zfill"
)
_BYTES = (
    _STR - {"casefold", "encode", "isdecimal", "isidentifier", "isnumeric", "isprintable"}
) | {
    "decode",
    "hex",
}
_INT = _names("bit_length bit_count conjugate real imag numerator denominator")
_FLOAT = _names("is_integer conjugate real imag hex")
_LIST = _names("append clear copy count extend index insert pop remove reverse sort")
_DICT = _names("clear copy get items keys pop popitem setdefault update values")
_FROZENSET = _names(
    "copy difference intersection isdisjoint issubset issuperset symmetric_difference union"
)
_SET = _FROZENSET | _names(
    "add clear discard pop remove update difference_update intersection_update"
    " symmetric_difference_update"
)
_DATE = _names("year month day weekday isoweekday isoformat isocalendar strftime replace ctime")
_TIME_OF_DAY = _names("hour minute second microsecond tzinfo fold utcoffset tzname dst")
_DATETIME = _DATE | _TIME_OF_DAY | _names("date time timetz timestamp astimezone")
_TIME = _TIME_OF_DAY | _names("isoformat strftime replace")
_IP = _names(
    "version max_prefixlen compressed exploded is_private is_global is_loopback is_link_local"
    " is_multicast is_reserved is_unspecified"
)
_ADDRESS = _IP | _names("packed reverse_pointer")
_NETWORK = _IP | _names(
    "network_address broadcast_address netmask hostmask prefixlen num_addresses with_prefixlen"
    " with_netmask with_hostmask overlaps subnet_of supernet_of"
)
_PATTERN = _names("match search fullmatch findall finditer split sub subn pattern flags groups")
_MATCH = _names("group groups groupdict start end span string re pos endpos lastindex lastgroup")

INSTANCE_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: _STR,
    bytes: _BYTES,
    int: _INT,
    bool: _INT,
    float: _FLOAT,
    list: _LIST,
    tuple: _names("count index"),
    dict: _DICT,
    set: _SET,
    frozenset: _FROZENSET,
    dt.date: _DATE,
    dt.datetime: _DATETIME,
    dt.time: _TIME,
    dt.timedelta: _names("days seconds microseconds total_seconds"),
    dt.timezone: _names("utcoffset tzname dst"),
    ipaddress.IPv4Address: _ADDRESS,
    ipaddress.IPv6Address: _ADDRESS | _names("ipv4_mapped scope_id sixtofour teredo"),
    ipaddress.IPv4Network: _NETWORK,
    ipaddress.IPv6Network: _NETWORK,
    regex.Pattern: _PATTERN,
    regex.Match: _MATCH,
}
CLASS_ATTRIBUTES: dict[type, frozenset[str]] = {
    dt.datetime: _names("now utcnow today fromisoformat fromtimestamp strptime combine min max"),
    dt.date: _names("today fromisoformat fromtimestamp min max"),
    dt.timedelta: _names("min max resolution"),
    dt.timezone: _names("utc"),
}

Guard = Callable[..., Any]


def get(budget: Budget, obj: Any, name: str) -> Any:
    """`obj.name` for sandboxed code, or `Forbidden`."""
    if name.startswith("_"):
        raise Forbidden(f"attribute {name!r}: names starting with '_' are not allowed")
    kind = type(obj)
    if issubclass(kind, Exposed):
        return obj.sandbox_get(name)
    if kind is type and obj in CLASS_ATTRIBUTES:
        allowed = CLASS_ATTRIBUTES[obj]
    elif issubclass(kind, BaseException):
        allowed = frozenset({"args"})
    else:  # a subclass of plain data (a named tuple) gets its base's names, no more
        kind = next((base for base in kind.__mro__ if base in INSTANCE_ATTRIBUTES), kind)
        allowed = INSTANCE_ATTRIBUTES.get(kind, frozenset())
    if name not in allowed:
        raise Forbidden(f"{_describe(obj)} has no attribute {name!r} for expressions")
    guard = GUARDS.get((kind, name))
    if guard is not None:
        return Method(name, guard, budget, obj)
    return getattr(obj, name)


class Method(Printable):
    """A checked method bound to its object and the run's budget; shown as `<method name>`."""

    __slots__ = ("_budget", "_guard", "_obj", "name")

    def __init__(self, name: str, guard: Guard, budget: Budget, obj: Any) -> None:
        self.name, self._guard, self._budget, self._obj = name, guard, budget, obj

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._guard(self._budget, self._obj, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<method {self.name}>"


def codec(encoding: Any, errors: Any, length: int, budget: Budget, *, encode: bool) -> str:
    """The canonical name of `encoding`, refused unless it is a text codec of linear cost and
    `errors` a known handler; checks that the result of `length` items stays within bounds."""
    # SECURITY: `punycode` and `idna` (which uses it) are quadratic: 18,000 characters took
    # 14.5 s in one native call. Codecs are named by expressions, so only an allow-list runs.
    try:
        name = codecs.lookup(encoding).name if isinstance(encoding, str) else None
    except LookupError:
        name = None
    if name not in CODECS:
        raise Forbidden(
            f"the encoding {encoding!r} is not available; use one of utf-8, utf-16, utf-32,"
            " ascii, latin-1"
        )
    if errors not in CODEC_ERRORS:
        raise Forbidden(f"the error handler {errors!r} is not available for an encoding")
    budget.size(length * (CODECS[name] if encode else 1) * CODEC_ERRORS[errors], "a conversion")
    return name


def _encode(budget: Budget, text: str, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    return text.encode(codec(encoding, errors, len(text), budget, encode=True), errors)


def decode(budget: Budget, data: bytes, encoding: Any = "utf-8", errors: Any = "strict") -> str:
    return data.decode(codec(encoding, errors, len(data), budget, encode=False), errors)


def strftime_size(budget: Budget, template: Any) -> None:
    """Refuse a `strftime` format whose output would be too long: each directive counted as
    its width (`%01500Y` pads to 1500 characters), or a generous `_STRFTIME_ITEM` without."""
    # SECURITY: the platform's strftime pads natively to any width: `"%01500Y" * 140000`
    # made 1.5 GB in one call.
    if not isinstance(template, str):
        return
    total = len(template)
    for found in _STRFTIME.finditer(template):
        total += int(found.group(1) or 0) + _STRFTIME_ITEM
        if total > budget.limits.max_len:
            break
    budget.size(total, "a formatted date")


def _strftime(budget: Budget, moment: Any, template: Any) -> str:
    strftime_size(budget, template)
    return moment.strftime(template)  # type: ignore[no-any-return]


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"class {obj.__name__}"
    return f"{type(obj).__name__} object"


def _join(budget: Budget, sep: Any, iterable: Any) -> Any:
    items = budget.materialize(iterable)
    total = len(sep) * max(len(items) - 1, 0)
    total += sum(len(item) for item in items if isinstance(item, (str, bytes)))
    budget.size(total, "a joined string")
    return sep.join(items)


def _replace(budget: Budget, text: Any, old: Any, new: Any, count: int = -1) -> Any:
    found = text.count(old) if old else len(text) + 1
    if count >= 0:
        found = min(found, count)
    budget.size(len(text) + found * (len(new) - len(old)), "a replaced string")
    return text.replace(old, new, count)


def _pad(method: str) -> Guard:
    def pad(budget: Budget, text: Any, width: int, *args: Any) -> Any:
        budget.size(width, "a padded string")
        return getattr(text, method)(width, *args)

    return pad


def _hashing(
    method: str, *, grows: bool = False, compares: bool = False, iterables: bool = False
) -> Guard:
    """A container method that hashes or compares its arguments (and maybe adds them);
    with `iterables`, its arguments are iterables, materialized (and charged) first."""

    def call(budget: Budget, container: Any, /, *args: Any, **kwargs: Any) -> Any:
        if grows or iterables:
            args = tuple(a if isinstance(a, SIZED) else budget.materialize(a) for a in args)
        if grows:
            budget.size(len(container) + sum(len(arg) for arg in args) + len(kwargs))
        budget.weigh(*args, *kwargs.values(), *((container,) if compares else ()))
        return _growing(budget, container, method, *args, **kwargs)

    return call


def _growing(budget: Budget, container: Any, method: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call `container.method(...)` and charge the run for the items and bytes it gained."""
    before, size_before = len(container), sys.getsizeof(container)
    result = getattr(container, method)(*args, **kwargs)
    budget.charge(len(container) - before)
    budget.memory(sys.getsizeof(container) - size_before)
    return result


def _grow(method: str) -> Guard:
    """A list method that adds one item it is given (shared, so charged no more than a slot)."""

    def call(budget: Budget, container: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget.size(len(container) + 1)
        return _growing(budget, container, method, *args, **kwargs)

    return call


def _sort(budget: Budget, items: list[Any], *, key: Any = None, reverse: bool = False) -> None:
    items.sort(key=weighed_key(budget, key, items), reverse=reverse)


def weighed_key(budget: Budget, key: Any, items: list[Any]) -> Any:
    """`key` checked like the interpreter checks a call, or (no key) `items` weighed now."""
    if key is None:
        budget.weigh(items)
        return None

    def checked(item: Any) -> Any:
        # SECURITY: the sort calls this natively, once per item: each call is a step.
        budget.tick(None)
        value = key(item)
        budget.weigh(value)
        return budget.produced(value)

    return checked


_SET_GROWING = _names("update union symmetric_difference symmetric_difference_update")
_SET_ELEMENT = _names("add remove discard")  # take an element; the others take iterables
_SET_HASHING: dict[tuple[type, str], Guard] = {
    (kind, name): _hashing(name, grows=name in _SET_GROWING, iterables=name not in _SET_ELEMENT)
    for kind in (set, frozenset)
    for name in INSTANCE_ATTRIBUTES[kind] - {"copy", "clear", "pop"}
}

GUARDS: dict[tuple[type, str], Guard] = {
    **{(kind, "join"): _join for kind in (str, bytes)},
    **{(kind, "replace"): _replace for kind in (str, bytes)},
    (str, "encode"): _encode,
    (bytes, "decode"): decode,
    **{(kind, "strftime"): _strftime for kind in (dt.date, dt.datetime, dt.time)},
    **{(kind, m): _pad(m) for kind in (str, bytes) for m in ("center", "ljust", "rjust", "zfill")},
    (list, "extend"): _hashing("extend", grows=True),
    (list, "append"): _grow("append"),
    (list, "insert"): _grow("insert"),
    (list, "sort"): _sort,
    **{(kind, m): _hashing(m, compares=True) for kind in (list, tuple) for m in ("index", "count")},
    (list, "remove"): _hashing("remove", compares=True),
    **{(dict, m): _hashing(m) for m in ("get", "pop", "setdefault")},
    (dict, "update"): _hashing("update", grows=True),
    **_SET_HASHING,
    (regex.Pattern, "sub"): regex.pattern_sub,
    (regex.Pattern, "subn"): regex.pattern_subn,
    (regex.Pattern, "match"): regex.pattern_match,
    (regex.Pattern, "search"): regex.pattern_search,
    (regex.Pattern, "fullmatch"): regex.pattern_fullmatch,
    (regex.Pattern, "findall"): regex.pattern_findall,
    (regex.Pattern, "finditer"): regex.pattern_finditer,
    (regex.Pattern, "split"): regex.pattern_split,
}
