"""Wire models of `/api/v3/core/`: users, groups and tokens (authentik's fields); applications
are in `wire.applications`."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, EmailStr, Field

from tessera.core.wire.common import (
    Attributes,
    LongText,
    Request,
    Response,
    Url,
)

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
Email = EmailStr | Literal[""]


# Users ---------------------------------------------------------------------------------------


class UserRequest(Request):
    username: Username
    name: Annotated[str, Field(max_length=256)] = ""
    is_active: bool = True
    email: Email = ""
    attributes: Attributes = Field(default_factory=dict)
    path: UserPath = "users"
    type: UserType = "internal"
    groups: Annotated[list[UUIDStr], Field(max_length=1000)] = Field(default_factory=list)


class UserGroup(Response):
    pk: str
    num_pk: int
    name: str
    is_superuser: bool
    parent: str | None
    attributes: dict[str, object]


class User(Response):
    pk: int
    username: str
    name: str
    is_active: bool
    last_login: dt.datetime | None
    date_joined: dt.datetime
    is_superuser: bool
    groups: list[str]
    groups_obj: list[UserGroup]
    email: str
    attributes: dict[str, object]
    uid: str
    path: str
    type: UserType
    uuid: str
    password_change_date: dt.datetime | None


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


class SessionUser(Response):
    """`GET /core/users/me/`: authentik wraps the user, and adds `original` when impersonating."""

    user: User
    original: User | None = None


# Groups --------------------------------------------------------------------------------------


class GroupRequest(Request):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    is_superuser: bool = False
    parent: UUIDStr | None = None
    users: Annotated[list[BigInt], Field(max_length=10000)] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)


class Group(Response):
    pk: str
    num_pk: int
    name: str
    is_superuser: bool
    parent: str | None
    parent_name: str | None
    users: list[int]
    attributes: dict[str, object]


# Tokens --------------------------------------------------------------------------------------

TokenIdentifier = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[-a-zA-Z0-9_.]+$")]


class TokenRequest(Request):
    identifier: TokenIdentifier
    intent: TokenIntent = "api"
    user: BigInt | None = None
    description: LongText = ""
    expires: dt.datetime | None = None
    expiring: bool = True


class TokenUser(Response):
    pk: int
    username: str
    name: str


class Token(Response):
    pk: str
    managed: str | None
    identifier: str
    intent: TokenIntent
    user: int
    user_obj: TokenUser
    description: str
    expires: dt.datetime | None
    expiring: bool


class TokenView(Response):
    key: str
