"""The modules sandboxed code may import: `datetime`, `re`, `ipaddress`, `math`, `json`, `string`.

Called by the interpreter for `import x` and `from x import y`, and by the checker for the list
of names. A module is a `ModuleView` built for one run: an explicit table of members, so that
`datetime.sys` or `json.decoder` do not exist. `re` goes through `regex` (the `regex` package
under the run's deadline, output limit); `json.dumps` weighs its argument first and accepts only
`sort_keys`, `separators` (short) and `ensure_ascii`; `json.loads` takes the document only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import string
import sys
from collections.abc import Callable
from typing import Any

from tessera.core.policies.sandbox import helpers, regex
from tessera.core.policies.sandbox.attributes import Exposed
from tessera.core.policies.sandbox.budget import Budget
from tessera.core.policies.sandbox.builtins import Constructor
from tessera.core.policies.sandbox.errors import Forbidden

MAX_SEPARATOR = 8  # characters of a json.dumps separator


class ModuleView(Exposed):
    """A module as sandboxed code sees it: the members listed for it, nothing else."""

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        self._name = name
        self._members = members

    def sandbox_get(self, name: str) -> Any:
        if name not in self._members:
            raise Forbidden(f"module {self._name!r} has no attribute {name!r} for expressions")
        return self._members[name]

    def __repr__(self) -> str:
        return f"<module {self._name!r}>"


def _datetime(budget: Budget) -> dict[str, Any]:
    return {
        "datetime": dt.datetime,
        "date": dt.date,
        "time": dt.time,
        "timedelta": dt.timedelta,
        "timezone": dt.timezone,
        "UTC": dt.UTC,
        "MINYEAR": dt.MINYEAR,
        "MAXYEAR": dt.MAXYEAR,
    }


def _re(budget: Budget) -> dict[str, Any]:
    functions = regex.Functions(budget)
    return {
        **regex.FLAGS,
        "compile": regex.compile_pattern,
        "match": functions.match,
        "search": functions.search,
        "fullmatch": functions.fullmatch,
        "findall": functions.findall,
        "finditer": functions.finditer,
        "split": functions.split,
        "sub": functions.sub,
        "subn": functions.subn,
        "escape": regex.escape,
        "error": regex.error,
    }


def _ipaddress(budget: Budget) -> dict[str, Any]:
    members: dict[str, Any] = {
        name: helpers.weighed(budget, getattr(ipaddress, name))
        for name in ("ip_address", "ip_network")
    }
    for name in ("IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network"):
        kind = getattr(ipaddress, name)
        members[name] = Constructor(kind, helpers.weighed(budget, kind))
    return members


_MATH = (
    "ceil floor trunc sqrt isqrt exp log log2 log10 fabs fmod copysign isclose isfinite isinf"
    " isnan gcd pow hypot sin cos tan asin acos atan atan2 radians degrees pi e tau inf nan"
)


def _math(budget: Budget) -> dict[str, Any]:
    return {name: getattr(math, name) for name in _MATH.split()}


def _json(budget: Budget) -> dict[str, Any]:
    def dumps(obj: Any, **options: Any) -> str:
        return _dumps(budget, obj, **options)

    def loads(document: str | bytes) -> Any:
        return _loads(budget, document)

    return {"dumps": dumps, "loads": loads, "JSONDecodeError": json.JSONDecodeError}


def _dumps(
    budget: Budget,
    obj: Any,
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    ensure_ascii: bool = True,
) -> str:
    if separators is not None and sum(len(s) for s in separators) > MAX_SEPARATOR:
        raise Forbidden(f"json.dumps separators may have at most {MAX_SEPARATOR} characters")
    budget.weigh(obj)
    text = json.dumps(obj, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii)
    return budget.produced(text)  # type: ignore[no-any-return]


def _loads(budget: Budget, document: str | bytes) -> Any:
    """`json.loads` without its hooks (`cls=`, `object_hook=` would call what the code passes),
    the result charged by its real size: every list, dict, string and number it made."""
    if not isinstance(document, (str, bytes)):
        raise TypeError("json.loads takes a str or bytes document")
    budget.size(len(document), "a JSON document")
    value = json.loads(document)
    # SECURITY: a 1 MB document of empty lists makes 330,000 lists (18 MB); charged as one
    # item, sixty of them passed a 64 MiB budget at 1.4 GB.
    stack: list[Any] = [value]
    count = 0
    while stack:
        item = stack.pop()
        count += 1
        if count % 1024 == 0:
            budget.check_time()
        budget.memory(sys.getsizeof(item))
        if isinstance(item, dict):
            budget.charge(len(item))
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            budget.charge(len(item))
            stack.extend(item)
    return value


_STRING = "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits punctuation"


def _string(budget: Budget) -> dict[str, Any]:
    members = {name: getattr(string, name) for name in (_STRING + " whitespace printable").split()}
    return {**members, "capwords": string.capwords}


_BUILDERS: dict[str, Callable[[Budget], dict[str, Any]]] = {
    "datetime": _datetime,
    "re": _re,
    "ipaddress": _ipaddress,
    "math": _math,
    "json": _json,
    "string": _string,
}
NAMES = frozenset(_BUILDERS)


def load(name: str, budget: Budget) -> ModuleView:
    if name not in _BUILDERS:
        raise Forbidden(f"module {name!r} cannot be imported")
    return ModuleView(name, _BUILDERS[name](budget))
