"""What expressions see of users, groups and the request: read-only views over plain data.

Built by the expression policy kind (and by property mappings) from what the caller already
loaded: a user row, the user's groups as dicts (`name`, `pk`, `is_superuser`, `attributes`),
direct and inherited, and the request's context. The sandbox never reaches the store. Views copy
the JSON data they are given, so an expression cannot change the caller's rows.

Exposed to expressions (authentik's names):
- `UserView`: `pk uuid username name email is_active is_authenticated is_anonymous is_superuser
  type path attributes last_login date_joined`, `groups` and `ak_groups` (direct groups),
  `all_groups()` (with inherited ones), `group_attributes()`;
- `GroupSet`, a query-set look-alike: `all() filter(**lookups) exclude(**lookups) exists()
  count() first() values_list(*fields, flat=False)`, iteration, `len()`; lookups are
  `field` or `field__<exact|iexact|in|contains|icontains|startswith|istartswith|endswith>` on
  `name pk is_superuser`;
- `GroupView`: `name pk is_superuser attributes`;
- `RequestView`: `user http_request context obj`;
- `HttpRequestView`: `client_ip method path host headers META`.
`policy_variables` builds an expression policy's variables; `is_group_member` is the default
`Hooks.is_group_member`.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tessera.core.policies import sandbox
from tessera.core.policies.sandbox.budget import measure

GROUP_FIELDS = ("name", "pk", "is_superuser")
VALUE_FIELDS = (*GROUP_FIELDS, "attributes")
_NO_CLIENT = "255.255.255.255"  # authentik's `ak_client_ip` when the address is unknown
MAX_LOOKUP = 10_000  # weight of a lookup's argument (`budget.measure`)


def _lookup(op: str, value: Any, wanted: Any) -> bool:
    # SECURITY: `str()` of what the expression passed runs natively; a shared nested list
    # would unfold into gigabytes. Weighed first (views hold no budget of their own).
    measure(wanted, MAX_LOOKUP)
    text, wanted_text = str(value), sandbox.budget.render(wanted, str)
    tests: dict[str, Callable[[], bool]] = {
        "exact": lambda: value == wanted,
        "iexact": lambda: text.casefold() == wanted_text.casefold(),
        "in": lambda: value in wanted,
        "contains": lambda: wanted_text in text,
        "icontains": lambda: wanted_text.casefold() in text.casefold(),
        "startswith": lambda: text.startswith(wanted_text),
        "istartswith": lambda: text.casefold().startswith(wanted_text.casefold()),
        "endswith": lambda: text.endswith(wanted_text),
    }
    if op not in tests:
        raise ValueError(f"unsupported lookup {op!r}")
    return tests[op]()


class GroupView(sandbox.Exposed):
    exposed = frozenset({"name", "pk", "is_superuser", "attributes"})

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.name = str(row.get("name", ""))
        self.pk = row.get("pk")
        self.is_superuser = bool(row.get("is_superuser", False))
        self.attributes: dict[str, Any] = copy.deepcopy(dict(row.get("attributes") or {}))

    def matches(self, lookups: Mapping[str, Any]) -> bool:
        for key, wanted in lookups.items():
            field, _, op = key.partition("__")
            if field not in GROUP_FIELDS:
                raise ValueError(f"groups cannot be filtered by {field!r}")
            if not _lookup(op or "exact", getattr(self, field), wanted):
                return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupView) and (self.pk, self.name) == (other.pk, other.name)

    def __hash__(self) -> int:
        return hash((self.pk, self.name))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Group {self.name!r}>"


class GroupSet(sandbox.Exposed):
    """Groups as authentik's query sets offer them to expressions."""

    exposed = frozenset({"all", "filter", "exclude", "exists", "count", "first", "values_list"})

    def __init__(self, groups: Iterable[GroupView]) -> None:
        self._groups = list(groups)

    def all(self) -> GroupSet:
        return self

    def filter(self, **lookups: Any) -> GroupSet:
        return GroupSet(g for g in self._groups if g.matches(lookups))

    def exclude(self, **lookups: Any) -> GroupSet:
        return GroupSet(g for g in self._groups if not g.matches(lookups))

    def exists(self) -> bool:
        return bool(self._groups)

    def count(self) -> int:
        return len(self._groups)

    def first(self) -> GroupView | None:
        return self._groups[0] if self._groups else None

    def values_list(self, *fields: str, flat: bool = False) -> list[Any]:
        if any(field not in VALUE_FIELDS for field in fields):
            raise ValueError(f"values_list takes fields among {VALUE_FIELDS}")
        if flat:
            if len(fields) != 1:
                raise TypeError("values_list(flat=True) takes exactly one field")
            return [getattr(g, fields[0]) for g in self._groups]
        return [tuple(getattr(g, field) for field in fields) for g in self._groups]

    def __iter__(self) -> Iterator[GroupView]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __repr__(self) -> str:
        return f"<GroupSet {[g.name for g in self._groups]!r}>"


class UserView(sandbox.Exposed):
    """A user as authentik's `User` model looks to expressions."""

    exposed = frozenset(
        {
            *("pk", "uuid", "username", "name", "email", "type", "path", "attributes"),
            *("is_active", "is_authenticated", "is_anonymous", "is_superuser"),
            *("last_login", "date_joined", "groups", "ak_groups", "all_groups", "group_attributes"),
        }
    )

    def __init__(
        self,
        row: Mapping[str, Any],
        groups: Iterable[Mapping[str, Any]] = (),
        all_groups: Iterable[Mapping[str, Any]] | None = None,
        *,
        authenticated: bool = True,
    ) -> None:
        self.pk = row.get("pk")
        self.uuid = row.get("uuid", self.pk)
        self.username = str(row.get("username", ""))
        self.name = str(row.get("name", ""))
        self.email = str(row.get("email", ""))
        self.is_active = bool(row.get("is_active", True))
        self.type = str(row.get("type", "internal"))
        self.path = str(row.get("path", "users"))
        self.last_login = row.get("last_login")
        self.date_joined = row.get("date_joined")
        self.attributes: dict[str, Any] = copy.deepcopy(dict(row.get("attributes") or {}))
        self.is_authenticated = authenticated
        self.is_anonymous = not authenticated
        self.groups = self.ak_groups = GroupSet(GroupView(g) for g in groups)
        inherited = self.groups if all_groups is None else (GroupView(g) for g in all_groups)
        self._all = GroupSet(inherited)

    @classmethod
    def anonymous(cls) -> UserView:
        return cls({"username": "AnonymousUser", "is_active": False}, authenticated=False)

    @property
    def is_superuser(self) -> bool:
        return self._all.filter(is_superuser=True).exists()

    def all_groups(self) -> GroupSet:
        return self._all

    def group_attributes(self) -> dict[str, Any]:
        """The attributes of all the user's groups (by name), then the user's own, merged."""
        merged: dict[str, Any] = {}
        for group in sorted(self._all, key=lambda g: g.name):
            merged.update(group.attributes)
        merged.update(self.attributes)
        return merged

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserView) and (self.pk, self.username) == (
            other.pk,
            other.username,
        )

    def __hash__(self) -> int:
        return hash((self.pk, self.username))

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"<User {self.username!r}>"


class HttpRequestView(sandbox.Exposed):
    """The HTTP request behind a policy check; `META` holds Django's `HTTP_*` and `REMOTE_ADDR`."""

    exposed = frozenset({"client_ip", "method", "path", "host", "headers", "META"})

    def __init__(
        self,
        client_ip: str = "",
        *,
        method: str = "GET",
        path: str = "/",
        host: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.client_ip, self.method, self.path, self.host = client_ip, method, path, host
        self.headers = dict(headers or {})
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in self.headers.items()}
        self.META = {**meta, "REMOTE_ADDR": client_ip}

    def __repr__(self) -> str:
        return f"<HttpRequest {self.method} {self.path}>"


class RequestView(sandbox.Exposed):
    """authentik's `PolicyRequest`: `request.user`, `.http_request`, `.context`, `.obj`."""

    exposed = frozenset({"user", "http_request", "context", "obj"})

    def __init__(
        self,
        user: UserView,
        http_request: HttpRequestView | None = None,
        context: dict[str, Any] | None = None,
        obj: Any = None,
    ) -> None:
        self.user, self.http_request, self.obj = user, http_request, obj
        self.context = {} if context is None else context

    def __repr__(self) -> str:
        return f"<PolicyRequest user={self.user.username!r}>"


def is_group_member(user: Any, filters: dict[str, Any]) -> bool:
    """`ak_is_group_member(user, **filters)`: a group of the user's, inherited ones included."""
    if not isinstance(user, UserView):
        return False
    return user.all_groups().filter(**filters).exists()


def policy_variables(
    user: UserView,
    *,
    context: dict[str, Any] | None = None,
    http_request: HttpRequestView | None = None,
    obj: Any = None,
) -> dict[str, Any]:
    """An expression policy's variables, as authentik's `PolicyEvaluator` sets them."""
    context = {} if context is None else context
    variables: dict[str, Any] = {
        "request": RequestView(user, http_request, context, obj),
        "context": context,
        "user": user,
        "ak_is_sso_flow": bool(context.get("is_sso", False)),
        "ak_client_ip": _client_ip(http_request.client_ip if http_request else ""),
    }
    if http_request is not None:
        variables["http_request"] = http_request
    return variables


def _client_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return ipaddress.ip_address(_NO_CLIENT)
