"""Wire models of LDAP providers and of what the LDAP outpost and the core say to each other.

authentik's shapes:
- `/api/v3/providers/ldap/`: `LDAPProviderRequest`, `LDAPProvider`;
- `/api/v3/outposts/ldap/`: `LDAPOutpostConfig`, one per provider of the outpost;
- `/api/v3/outposts/ldap/<pk>/check_access/?app_slug=`: `LDAPCheckAccess`.

Tessera's own outpost calls (authentik's LDAP outpost replays a whole login flow over several
HTTP calls for each bind; Tessera's asks once), all with the outpost's token, under
`/api/v3/outposts/ldap/<provider pk>/`:
- `POST bind/` (`BindRequest` -> `BindResult`): the provider's bind flow (identification,
  password, MFA code, user login) and the application's policies run in the core; the answer
  is the user, the groups they see and whether they may search the whole directory, and the core
  session it opened (`session_id`, the sha256 hex digest the control channel's SESSION_END names).
  A refused bind is `BindRefused` with HTTP 401 (credentials), 403 (policy, inactive user) or
  429 (throttled); the outpost maps them to LDAP result codes.
- `POST unbind/` (`UnbindRequest`): ends that session (the provider's invalidation flow).
- `GET directory/` -> `Directory`: every user and group the provider serves, for cached search
  mode and cached bind mode; `generation` changes whenever any of it does. The core pushes
  `PROVIDER_SPECIFIC` frames with `DirectoryChanged` args when users or groups change, and
  SESSION_END when a session ends; the outpost refetches (`?since=<generation>` may answer only
  the changed objects: `Directory.partial`).
- `POST search/` (`SearchRequest` -> `Directory`): direct search mode; the core answers the
  users and groups a filter can match (a superset: the outpost applies the filter exactly),
  using indexed queries where the filter allows.
- `POST password/` (`PasswordChangeRequest`): RFC 3062 Password Modify for a bound session,
  through the core's password policies; 400 with the policy's messages when refused.

The outpost builds the DIT (entries, DNs, uidNumber = uid_start_number + user pk, gidNumber =
gid_start_number + group num_pk, virtual groups, memberOf) from these records; the core does not
speak LDAP.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from tessera.core.wire.common import Name, Request, Response, Uuid
from tessera.core.wire.oauth2 import ProviderBase
from tessera.core.wire.policies import LogEvent

DEFAULT_BASE_DN = "dc=ldap,dc=goauthentik,dc=io"
SEARCH_FULL_DIRECTORY = "authentik_providers_ldap.search_full_directory"
LDAPAPIAccessMode = Literal["direct", "cached"]
MAX_PASSWORD = 4096
MAX_FILTER = 16 * 1024
BaseDN = Annotated[str, Field(min_length=1, max_length=1024)]


# Providers ------------------------------------------------------------------------------------


class LDAPProviderRequest(Request):
    name: Name
    authentication_flow: Uuid | None = None
    authorization_flow: Uuid  # the bind flow
    invalidation_flow: Uuid  # the unbind flow
    property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(default_factory=list)
    base_dn: BaseDN = DEFAULT_BASE_DN
    certificate: Uuid | None = None
    tls_server_name: Annotated[str, Field(max_length=253)] = ""
    uid_start_number: Annotated[int, Field(ge=0, le=2**31 - 1)] = 2000
    gid_start_number: Annotated[int, Field(ge=0, le=2**31 - 1)] = 4000
    search_mode: LDAPAPIAccessMode = "direct"
    bind_mode: LDAPAPIAccessMode = "direct"
    mfa_support: bool = True
    # Set by the operator: the Kubernetes resource this provider mirrors (as the other kinds').
    managed: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class LDAPProvider(ProviderBase):
    authorization_flow: Uuid
    invalidation_flow: Uuid
    base_dn: str
    certificate: Uuid | None
    tls_server_name: str
    uid_start_number: int
    gid_start_number: int
    outpost_set: list[str]
    search_mode: LDAPAPIAccessMode
    bind_mode: LDAPAPIAccessMode
    mfa_support: bool


class LDAPOutpostConfig(Response):
    """One provider of `/api/v3/outposts/ldap/` (authentik's fields)."""

    pk: int
    name: str
    base_dn: str
    bind_flow_slug: str
    unbind_flow_slug: str | None
    application_slug: str
    certificate: Uuid | None
    tls_server_name: str
    uid_start_number: int
    gid_start_number: int
    search_mode: LDAPAPIAccessMode
    bind_mode: LDAPAPIAccessMode
    mfa_support: bool


class PolicyResult(Response):
    passing: bool
    messages: list[str]
    # authentik's PolicyTestResult carries the policies' log lines too (its client requires it).
    log_messages: list[LogEvent]


class LDAPCheckAccess(Response):
    has_search_permission: bool
    access: PolicyResult


# The directory --------------------------------------------------------------------------------


class DirectoryUser(Response):
    pk: int
    uuid: Uuid  # entryUUID
    username: str
    name: str
    email: str
    is_active: bool
    is_superuser: bool
    attributes: dict[str, Any]  # flattened into LDAP attributes by the outpost
    groups: list[Uuid]  # direct memberships
    date_joined: dt.datetime  # createTimestamp
    last_updated: dt.datetime  # modifyTimestamp


class DirectoryGroup(Response):
    pk: Uuid
    num_pk: int
    name: str
    is_superuser: bool
    attributes: dict[str, Any]
    parents: list[Uuid]
    users: list[int]  # direct members' pks


class Directory(Response):
    """The users and groups of one provider's directory.

    `partial`: only the objects changed since the generation asked for, plus the pks of the
    ones deleted (`deleted_users`, `deleted_groups`); otherwise the whole directory."""

    generation: int
    partial: bool = False
    users: list[DirectoryUser]
    groups: list[DirectoryGroup]
    deleted_users: list[int] = Field(default_factory=list)
    deleted_groups: list[Uuid] = Field(default_factory=list)


class DirectoryChanged(Response):
    """Args of a PROVIDER_SPECIFIC frame: the directory of these providers changed (a user or
    group was written, a password changed, a user deactivated); `users` whose cached binds must
    be dropped."""

    type: Literal["ldap.directory.changed"] = "ldap.directory.changed"
    providers: list[int]
    generation: int
    users: list[int] = Field(default_factory=list)


# Binds, searches, passwords -------------------------------------------------------------------


class BindRequest(Request):
    """A simple bind as this user (the outpost has already parsed the DN: `cn=` or `uid=` under
    `ou=users,<base_dn>`). `password` is the whole bind password; with mfa_support on, the core
    splits a trailing `;<code>` (6 digits TOTP or 8 characters static) itself."""

    username: Annotated[str, Field(min_length=1, max_length=150)]
    password: Annotated[str, Field(max_length=MAX_PASSWORD)]
    remote_ip: Annotated[str, Field(max_length=64)] = ""


class BindResult(Response):
    user: DirectoryUser
    groups: list[DirectoryGroup]  # the user's groups, ancestors included
    has_search_permission: bool
    session_id: str  # sha256 hex digest of the core session's key
    expires: dt.datetime | None


BindReason = Literal[
    "invalid_credentials",  # no such user, wrong password or code (LDAP 49)
    "access_denied",  # the application's policies, an inactive user (LDAP 50)
    "flow_error",  # the bind flow cannot run to the end (LDAP 49, logged)
    "mfa_required",  # the user has a device and gave no code (LDAP 49)
    "throttled",  # too many failures from this user or address (LDAP 49, or 51 busy)
]


class BindRefused(Response):
    reason: BindReason
    detail: str


class UnbindRequest(Request):
    session_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


SearchScope = Literal["base", "one", "sub"]


class SearchRequest(Request):
    """Direct search mode: which users and groups a search may match. `filter` is the RFC 4515
    text of the client's filter; the core may answer a superset of the matches. `session_id`
    says who searches: without the search permission the answer holds only that user and their
    groups."""

    session_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    filter: Annotated[str, Field(max_length=MAX_FILTER)] = "(objectClass=*)"
    want_users: bool = True
    want_groups: bool = True
    size_limit: Annotated[int, Field(ge=0, le=1_000_000)] = 0  # 0: no limit


class PasswordChangeRequest(Request):
    session_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    old_password: Annotated[str, Field(max_length=MAX_PASSWORD)] | None = None
    new_password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]


# The "search full directory" permission -------------------------------------------------------


class LDAPSearchAccessRequest(Request):
    """`PUT /api/v3/providers/ldap/<pk>/search_access/`: who holds authentik's permission
    `search_full_directory` on this provider, as a whole (the users and groups given replace the
    ones before). A group's grant reaches its members and the members of its descendants."""

    users: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=10_000)] = Field(
        default_factory=list
    )
    groups: Annotated[list[Uuid], Field(max_length=10_000)] = Field(default_factory=list)


class LDAPSearchAccess(Response):
    users: list[int]
    groups: list[Uuid]
