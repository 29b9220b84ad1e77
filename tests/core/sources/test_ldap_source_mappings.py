"""The system LDAP mappings: each one's native shortcut (used while its expression is the stored
default) computes exactly what its expression computes in the expression pool, over an entry
with OpenLDAP's and Active Directory's attributes; an edited copy runs in the pool."""

from __future__ import annotations

import pytest

from tessera.core.sources.ldap import client, mappings

ENTRY = client.Entry(
    "uid=alice,ou=eng,ou=people,dc=example,dc=org",
    {
        "uid": ["alice"],
        "cn": ["Alice Example"],
        "mail": ["alice@example.org"],
        "name": ["Alice"],
        "sAMAccountName": ["alice"],
        "userPrincipalName": ["alice@example.org"],
        "givenName": ["Alice"],
        "sn": ["Example"],
        "jpegPhoto": [b"\xff\xd8\xff"],
    },
)
SOURCE = {"name": "Corp", "slug": "corp"}
PATH = "goauthentik.io/sources/corp"


@pytest.mark.parametrize("short", sorted(mappings.DEFAULTS))
async def test_native_shortcuts_match_their_expressions(short: str) -> None:
    name, expression, native = mappings.DEFAULTS[short]
    in_pool = mappings.Mapper(
        [{"name": name, "expression": expression, "managed": None}], SOURCE, PATH
    )
    shortcut = mappings.Mapper(
        [{"name": name, "expression": expression, "managed": mappings.managed_name(short)}],
        SOURCE,
        PATH,
    )
    assert in_pool._native(in_pool.rows[0]) is None
    assert shortcut._native(shortcut.rows[0]) is native
    assert await in_pool.properties(ENTRY) == await shortcut.properties(ENTRY)


async def test_an_edited_system_expression_runs_in_the_pool() -> None:
    row = {
        "name": "uid, upper",
        "expression": 'return {"username": list_flatten(ldap.get("uid")).upper()}',
        "managed": mappings.managed_name("openldap-uid"),
    }
    mapper = mappings.Mapper([row], SOURCE, PATH)
    assert mapper._native(row) is None
    assert (await mapper.properties(ENTRY))["username"] == "ALICE"


async def test_binary_values_reach_expressions_as_hex() -> None:
    row = {"name": "photo", "expression": 'return {"attributes": {"p": ldap.get("jpegPhoto")}}'}
    mapper = mappings.Mapper([{**row, "managed": None}], SOURCE, PATH)
    assert (await mapper.properties(ENTRY))["attributes"]["p"] == "ffd8ff"
