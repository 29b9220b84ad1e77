"""Wire models of sources (authentik's shapes): the LDAP source and its property mappings.

- `/api/v3/sources/ldap/`: `LDAPSource`, `LDAPSourceRequest`; `…/<slug>/sync/status/` answers
  `SyncStatus` (authentik's three fields, plus `last_sync`: the counts and messages of the last
  run, Tessera's); `…/<slug>/sync/` (POST, Tessera's) starts a run and answers `SyncStatus`;
- `/api/v3/propertymappings/source/ldap/`: `LDAPSourcePropertyMapping`,
  `LDAPSourcePropertyMappingRequest`;
- `/api/v3/sources/all/`: `Source`, the fields every kind of source shares.

`bind_password` is write-only: it is sealed at rest and never answered.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from tessera.core.wire.applications import ThemedUrls
from tessera.core.wire.common import Name, Request, Response, Slug, Uuid

PolicyEngineMode = Literal["all", "any"]
UserMatchingMode = Literal[
    "identifier", "email_link", "email_deny", "username_link", "username_deny"
]
SyncOutgoingTriggerMode = Literal["none", "immediate", "deferred_end"]
TaskStatus = Literal[
    "waiting_for_dependencies",
    "queued",
    "consumed",
    "preprocess",
    "running",
    "postprocess",
    "rejected",
    "done",
    "info",
    "warning",
    "error",
]
Dn = Annotated[str, Field(max_length=1024)]
Filter = Annotated[str, Field(min_length=1, max_length=4096)]
Attribute = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z][-A-Za-z0-9;.]*$")
]


class LDAPSourceRequest(Request):
    name: Name
    slug: Slug
    enabled: bool = True
    promoted: bool = False
    authentication_flow: Uuid | None = None
    enrollment_flow: Uuid | None = None
    user_property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(
        default_factory=list
    )
    group_property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(
        default_factory=list
    )
    policy_engine_mode: PolicyEngineMode = "any"
    user_matching_mode: UserMatchingMode = "identifier"
    user_path_template: Annotated[str, Field(min_length=1, max_length=200)] = (
        "goauthentik.io/sources/%(slug)s"
    )
    icon: Annotated[str, Field(max_length=2000)] | None = None
    # Several URIs, comma-separated, tried in order (ldap:// or ldaps://).
    server_uri: Annotated[str, Field(min_length=1, max_length=2000)]
    peer_certificate: Uuid | None = None
    client_certificate: Uuid | None = None
    bind_cn: Dn = ""
    # Write-only; left out of a PATCH or PUT, the stored one stays.
    bind_password: Annotated[str, Field(max_length=1024)] | None = None
    start_tls: bool = False
    sni: bool = False
    base_dn: Annotated[str, Field(min_length=1, max_length=1024)]
    additional_user_dn: Dn = ""
    additional_group_dn: Dn = ""
    user_object_filter: Filter = "(objectClass=person)"
    group_object_filter: Filter = "(objectClass=group)"
    group_membership_field: Attribute = "member"
    user_membership_attribute: Attribute = "distinguishedName"
    object_uniqueness_field: Attribute = "objectSid"
    password_login_update_internal_password: bool = False
    sync_users: bool = True
    sync_users_password: bool = True
    sync_groups: bool = True
    sync_parent_group: Uuid | None = None
    lookup_groups_from_user: bool = False
    delete_not_found_objects: bool = False
    sync_outgoing_trigger_mode: SyncOutgoingTriggerMode = "deferred_end"
    sync_group_hierarchy: bool = False


class LDAPSource(Response):
    pk: Uuid
    name: str
    slug: str
    enabled: bool
    promoted: bool
    authentication_flow: Uuid | None
    enrollment_flow: Uuid | None
    user_property_mappings: list[Uuid]
    group_property_mappings: list[Uuid]
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str
    policy_engine_mode: PolicyEngineMode
    user_matching_mode: UserMatchingMode
    managed: str | None
    user_path_template: str
    icon: str | None
    icon_url: str
    icon_themed_urls: ThemedUrls | None
    server_uri: str
    peer_certificate: Uuid | None
    client_certificate: Uuid | None
    bind_cn: str
    start_tls: bool
    sni: bool
    base_dn: str
    additional_user_dn: str
    additional_group_dn: str
    user_object_filter: str
    group_object_filter: str
    group_membership_field: str
    user_membership_attribute: str
    object_uniqueness_field: str
    password_login_update_internal_password: bool
    sync_users: bool
    sync_users_password: bool
    sync_groups: bool
    sync_parent_group: Uuid | None
    # authentik's cached connectivity check per server: {"<uri>": {"status": "ok", ...}}.
    connectivity: dict[str, dict[str, str]] | None
    lookup_groups_from_user: bool
    delete_not_found_objects: bool
    sync_outgoing_trigger_mode: SyncOutgoingTriggerMode
    sync_group_hierarchy: bool


class Source(Response):
    """`/api/v3/sources/all/`: what every kind of source shares."""

    pk: Uuid
    name: str
    slug: str
    enabled: bool
    promoted: bool
    authentication_flow: Uuid | None
    enrollment_flow: Uuid | None
    user_property_mappings: list[Uuid]
    group_property_mappings: list[Uuid]
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str
    policy_engine_mode: PolicyEngineMode
    user_matching_mode: UserMatchingMode
    managed: str | None
    user_path_template: str
    icon: str | None
    icon_url: str | None
    icon_themed_urls: ThemedUrls | None


class LDAPSourcePropertyMappingRequest(Request):
    managed: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    name: Name
    expression: Annotated[str, Field(min_length=1, max_length=65536)]


class LDAPSourcePropertyMapping(Response):
    pk: Uuid
    managed: str | None
    name: str
    expression: str
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str


class SyncCounts(Response):
    """What one run did (Tessera's)."""

    users_created: int = 0
    users_updated: int = 0
    users_unchanged: int = 0
    groups_created: int = 0
    groups_updated: int = 0
    groups_unchanged: int = 0
    memberships_added: int = 0
    memberships_removed: int = 0
    deleted: int = 0
    skipped: int = 0


class LastSync(Response):
    """The last run of a source's sync (Tessera's): when, how it ended, its counts and the
    messages of the entries it skipped (at most `MAX_MESSAGES`)."""

    started: dt.datetime
    finished: dt.datetime | None
    status: TaskStatus
    counts: SyncCounts
    messages: list[str]


class SyncStatus(Response):
    is_running: bool
    last_successful_sync: dt.datetime | None = None
    last_sync_status: TaskStatus | None = None
    last_sync: LastSync | None = None
