"""Wire models of `/api/v3/core/`: users, groups and tokens (authentik's fields); applications
are in `wire.applications`."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from tessera.core.wire.common import (
    Attributes,
    LongText,
    Request,
    Response,
    Url,
    Uuid,
)
from tessera.core.wire.emails import AddressOrEmpty

UserType = Literal["internal", "external", "service_account", "internal_service_account"]
TokenIntent = Literal["verification", "api", "recovery", "app_password"]
PolicyEngineMode = Literal["all", "any"]
UUIDStr = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    ),
]
BigInt = Annotated[int, Field(ge=1, le=2**53)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _username(value: str) -> str:
    if _CONTROL.search(value) or value != value.strip():
        raise ValueError("Username must not contain control characters or surrounding spaces.")
    return value


def _path(value: str) -> str:
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError("Path must not start or end with '/', nor contain '//'.")
    return value


def _launch_url(value: str) -> str:
    # SECURITY: only web URLs (or authentik's "blank://blank" marker) may become portal links.
    if value and not re.match(r"^(https?://[^\s]+|blank://blank)$", value, re.IGNORECASE):
        raise ValueError("Enter a valid http(s) URL.")
    return value


Username = Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_username)]
UserPath = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_path)]
LaunchUrl = Annotated[Url, AfterValidator(_launch_url)]
Email = AddressOrEmpty


# Users ---------------------------------------------------------------------------------------

Ids = Annotated[list[Uuid], Field(max_length=1000)]


class UserRequest(Request):
    username: Username
    name: Annotated[str, Field(max_length=256)] = ""
    is_active: bool = True
    last_login: dt.datetime | None = None
    groups: Ids = Field(default_factory=list)
    # authentik's roles; Tessera has none yet, so only the empty list is valid (`identity.users`).
    roles: Ids = Field(default_factory=list)
    email: Email = ""
    attributes: Attributes = Field(default_factory=dict)
    path: UserPath = "users"
    type: UserType = "internal"


class PartialGroup(Response):
    """authentik's `PartialGroup`: a group named inside a user (`groups_obj`) or a binding."""

    pk: Uuid
    num_pk: int
    name: str
    is_superuser: bool
    attributes: dict[str, object]


# The name other wire modules know a user's group by (a policy binding's `group_obj`).
UserGroup = PartialGroup


class Role(Response):
    """authentik's `Role` (Tessera has no roles yet: the lists that hold them are empty)."""

    pk: Uuid
    name: str


class User(Response):
    pk: int
    username: str
    name: str
    is_active: bool
    last_login: dt.datetime | None
    date_joined: dt.datetime
    is_superuser: bool
    groups: list[Uuid]
    groups_obj: list[PartialGroup] | None  # null when the listing is asked without groups
    roles: list[Uuid]
    roles_obj: list[Role] | None  # null when the listing is asked without roles
    email: str
    avatar: str
    attributes: dict[str, object]
    uid: str
    path: str
    type: UserType
    uuid: Uuid
    password_change_date: dt.datetime
    last_updated: dt.datetime


class PartialUser(Response):
    """authentik's `PartialUser`: a user named inside another object (a binding, an invitation)."""

    pk: int
    username: str
    name: str
    is_active: bool
    last_login: dt.datetime | None
    email: str
    attributes: dict[str, object]
    uid: str


class UserSetPassword(Request):
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserSelfGroup(Response):
    name: str
    pk: str


class UserSelfRole(Response):
    name: str
    pk: str


class UserSelf(Response):
    """authentik's `UserSelf`: what a user reads about themselves (`/core/users/me/`)."""

    pk: int
    username: str
    name: str
    is_active: bool
    is_superuser: bool
    is_current: bool
    groups: list[UserSelfGroup]
    roles: list[UserSelfRole]
    email: str
    avatar: str
    uid: str
    settings: dict[str, object]
    type: UserType
    system_permissions: list[str]


class SessionUser(Response):
    """`GET /core/users/me/`: authentik wraps the user, adds `original` when impersonating, and
    lists in `users` the accounts of the browser session."""

    user: UserSelf
    original: UserSelf | None = None
    users: list[UserSelf]


# Groups --------------------------------------------------------------------------------------


class GroupRequest(Request):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    is_superuser: bool = False
    parents: Ids = Field(default_factory=list)
    users: Annotated[list[BigInt], Field(max_length=10000)] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
    # authentik's roles; Tessera has none yet, so only the empty list is valid (`identity.groups`).
    roles: Ids = Field(default_factory=list)


class RelatedGroup(Response):
    """authentik's `RelatedGroup`: a parent or child named inside a group."""

    pk: Uuid
    name: str
    is_superuser: bool
    attributes: dict[str, object]
    group_uuid: Uuid


class Group(Response):
    pk: Uuid
    num_pk: int
    name: str
    is_superuser: bool
    parents: list[Uuid]
    parents_obj: list[RelatedGroup] | None
    users: list[int]
    users_obj: list[PartialUser] | None
    attributes: dict[str, object]
    roles: list[Uuid]
    roles_obj: list[Role]
    inherited_roles_obj: list[Role] | None
    children: list[Uuid]
    children_obj: list[RelatedGroup] | None


# Tokens --------------------------------------------------------------------------------------

TokenIdentifier = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[-a-zA-Z0-9_.]+$")]


class TokenRequest(Request):
    # authentik's marker of the tokens it makes itself; only the system sets it (`identity.tokens`).
    managed: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    identifier: TokenIdentifier
    intent: TokenIntent = "api"
    user: BigInt | None = None
    description: LongText = ""
    expires: dt.datetime | None = None
    expiring: bool = True


class Token(Response):
    pk: Uuid
    managed: str | None
    identifier: str
    intent: TokenIntent
    user: int
    user_obj: User
    description: str
    expires: dt.datetime | None
    expiring: bool


class TokenView(Response):
    key: str
