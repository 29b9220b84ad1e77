"""The `LDAPProvider` custom resource: an LDAP provider in the core, served by an ldap `Outpost`.

The operator turns a spec into `/api/v3/providers/ldap/` fields and writes what an application
needs to talk to the directory (base DN, the bind DN pattern of its users, the users' and groups'
subtrees) into the Secret named by `connectionSecret`. An `Outpost` of type ldap names the
resource in `providerRefs` to serve it, and an `Application` names it in `providerRef` (the
outpost serves only providers an application uses). The CRD schema is generated from these
models (`tessera.operator.crds`); the CEL rules are checked again here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from tessera.core.wire import common as wire
from tessera.operator.resources import common
from tessera.operator.resources.samlprovider import KeyRef

AccessMode = Literal["direct", "cached"]

# A distinguished name of attribute=value pairs (RFC 4514, without escapes or multi-valued RDNs,
# which the outpost's DIT never uses), e.g. dc=ldap,dc=example,dc=com.
_RDN = r"[A-Za-z][A-Za-z0-9-]*=[^,=+\"\\<>;#\s][^,=+\"\\<>;]*"
DN_PATTERN = rf"^{_RDN}(,\s*{_RDN})*$"
DEFAULT_BASE_DN = "dc=ldap,dc=goauthentik,dc=io"
# A TLS server name: a DNS name, perhaps with a leading wildcard label.
SERVER_NAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"


def _dn(value: str) -> str:
    if not re.fullmatch(DN_PATTERN, value):
        raise ValueError("baseDN must be a DN of attribute=value pairs, e.g. dc=example,dc=com")
    return value


BaseDN = Annotated[
    str, Field(min_length=3, max_length=1024, pattern=DN_PATTERN), AfterValidator(_dn)
]
StartNumber = Annotated[int, Field(ge=0, le=2**31 - 1)]
PrincipalName = Annotated[str, Field(min_length=1, max_length=200)]


class LDAPProviderSpec(common.Model):
    """The desired LDAP provider."""

    base_dn: Annotated[BaseDN, Field(alias="baseDN")] = DEFAULT_BASE_DN
    """Root of the directory the outpost serves (users under ou=users, groups under ou=groups);
    unique among the core's LDAP providers."""
    certificate: KeyRef | None = None
    """Certificate of LDAPS and StartTLS; absent: the outpost's self-signed one."""
    tls_server_name: Annotated[str, Field(max_length=253, pattern=SERVER_NAME)] | None = None
    """The TLS server name (SNI) for which the certificate is served."""
    uid_start_number: StartNumber = 2000
    """uidNumber of a user is this plus the user's primary key."""
    gid_start_number: StartNumber = 4000
    """gidNumber of a group is this plus the group's number."""
    bind_mode: AccessMode = "direct"
    """direct: every bind asks the core; cached: repeated binds are answered by the outpost."""
    search_mode: AccessMode = "direct"
    """direct: every search asks the core; cached: the outpost holds the directory in memory."""
    mfa_support: bool = True
    """Accept `password;123456` (a TOTP or static code after the password) for users with MFA."""
    search_groups: Annotated[
        list[PrincipalName], Field(max_length=64), common.SET, common.UNIQUE
    ] = []
    """Names of core groups whose members (and their descendants' members) may search the whole
    directory; everyone else sees only themselves and their groups."""
    search_users: Annotated[
        list[PrincipalName], Field(max_length=64), common.SET, common.UNIQUE
    ] = []
    """Usernames of core users (e.g. an application's bind account) who may search the whole
    directory."""
    authorization_flow: Annotated[
        wire.Slug,
        Field(description="Slug of the core flow a bind runs (password, MFA, login)."),
    ] = "default-authentication-flow"
    invalidation_flow: Annotated[
        wire.Slug, Field(description="Slug of the core flow run when an LDAP session ends.")
    ] = "default-invalidation-flow"
    connection_secret: common.SecretRef
    """Secret the operator writes: base_dn, bind_dn_pattern (with `{username}`), users_dn,
    groups_dn, user_filter and group_filter; ldap_url and ldaps_url once an ldap Outpost serves
    the provider."""
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core provider with the resource; Orphan: keep it, unmanaged."""


class LDAPProviderStatus(common.Status):
    """The core provider this resource manages."""

    provider_pk: Annotated[int, Field(ge=1, json_schema_extra={"format": "int64"})] | None = None
    """Primary key of the core LDAP provider."""
    base_dn: Annotated[str | None, Field(alias="baseDN", max_length=1024)] = None
    """The base DN the core provider has."""


KIND = common.Kind(
    kind="LDAPProvider",
    plural="ldapproviders",
    short_names=("tsldap",),
    spec=LDAPProviderSpec,
    status=LDAPProviderStatus,
    description="An LDAP provider in Tessera's core, served by an ldap Outpost, with its "
    "connection Secret.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("Base DN", "string", ".status.baseDN", "Root of the directory"),
        common.Column(
            "Provider", "integer", ".status.providerPk", "Core provider primary key", priority=1
        ),
        common.AGE_COLUMN,
    ),
)
