"""Contract cases for `sources/ldap`, `propertymappings/source/ldap` and `sources/all`."""

from __future__ import annotations

from typing import Any

from akcontract import Case, Setup


async def _ldap_source(setup: Setup) -> dict[str, Any]:
    mapping = await setup.first("propertymappings/source/ldap", managed__isnull="false")
    group = await setup.make("core/groups", {"name": f"directory-{setup.suffix}"})
    return {
        "name": f"Corp {setup.suffix}",
        "slug": f"corp-{setup.suffix}",
        "enabled": True,
        "server_uri": "ldap://ldap1.example.org, ldaps://ldap2.example.org:636",
        "bind_cn": "cn=reader,dc=example,dc=org",
        "bind_password": "reader-secret",
        "start_tls": True,
        "base_dn": "dc=example,dc=org",
        "additional_user_dn": "ou=people",
        "additional_group_dn": "ou=groups",
        "user_object_filter": "(objectClass=inetOrgPerson)",
        "group_object_filter": "(objectClass=groupOfNames)",
        "group_membership_field": "member",
        "user_membership_attribute": "distinguishedName",
        "object_uniqueness_field": "entryUUID",
        "user_path_template": "goauthentik.io/sources/%(slug)s",
        "sync_users": True,
        "sync_groups": True,
        "sync_users_password": False,
        "password_login_update_internal_password": False,
        "sync_parent_group": group["pk"],
        "user_property_mappings": [mapping["pk"]],
        "group_property_mappings": [mapping["pk"]],
    }


async def _ldap_mapping(setup: Setup) -> dict[str, Any]:
    return {
        "name": f"department-{setup.suffix}",
        "expression": 'return {"attributes": {"department": list_flatten(ldap.get("ou"))}}',
    }


async def _any_source(setup: Setup) -> str:
    created = await setup.make("sources/ldap", await _ldap_source(setup))
    return str(created["slug"])


CASES = [
    Case(
        "sources/ldap",
        _ldap_source,
        change={"start_tls": False, "sync_groups": False},
        patch={"additional_user_dn": "ou=staff"},
        lookup="slug",
        write_only=frozenset({"bind_password"}),
    ),
    Case(
        "propertymappings/source/ldap",
        _ldap_mapping,
        change={"expression": 'return {"name": list_flatten(ldap.get("cn"))}'},
        patch={"name": "renamed-mapping"},
    ),
    Case("sources/all", lookup="slug", existing=_any_source),
]
