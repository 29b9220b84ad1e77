"""Fixtures for the LDAP source's tests: one real slapd per test process, loaded with a small
company (users, nested groups, a posixGroup, and a few entries a sync must skip), and factories
for sources pointed at it.

The directory is shared by the tests of a process: a test that changes entries works under an
organizational unit of its own (`scratch_ou`). Tests run on SQLite unless they ask for the
other backend (the store code they use is the one the conformance suite covers on both).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import slapdkit
from ldapsourcekit import GROUPS, LONG_UID, PASSWORDS, PEOPLE, root_connection
from slapdkit import SUFFIX

OPENLDAP_USER_MAPPINGS = ("openldap-uid", "openldap-cn", "default-mail", "default-dn-path")


def _entries() -> str:
    out = [slapdkit.organizational_units("people", "groups", "posix")]
    for uid, password in PASSWORDS.items():
        out.append(slapdkit.person(uid, password=password, given=uid.title(), sn="Example"))
    out.append(slapdkit.person(None, cn="No Uid", password="x-pw-1"))  # no username: skipped
    out.append(slapdkit.person(LONG_UID, password="x-pw-1", posix=False))  # too long: skipped
    out.append(slapdkit.person("akadmin", password="takeover-1"))  # a local account's name
    out.append(slapdkit.group("engineers", [f"uid=alice,{PEOPLE}", f"cn=backend,{GROUPS}"]))
    out.append(slapdkit.group("backend", [f"uid=bob,{PEOPLE}"]))
    out.append(slapdkit.group("admins", [f"uid=carol,{PEOPLE}", f"uid=nobody,{PEOPLE}"]))
    out.append(slapdkit.group("authentik Admins", [f"uid=dave,{PEOPLE}"]))  # a local group's
    out.append(
        f"dn: cn=devs,ou=posix,{SUFFIX}\nobjectClass: posixGroup\ncn: devs\ngidNumber: 5000\n"
        "memberUid: dave\nmemberUid: alice\n\n"
    )
    return "".join(out)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slapdkit.Slapd]:
    with slapdkit.running(tmp_path_factory.mktemp("slapd"), _entries()) as server:
        yield server


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scratch_ou(slapd: slapdkit.Slapd, request: pytest.FixtureRequest) -> Iterator[str]:
    """An organizational unit of this test's own (removed with its entries afterwards)."""
    name = f"t-{zlib.crc32(request.node.nodeid.encode())}"
    dn = f"ou={name},{SUFFIX}"
    connection = root_connection(slapd)
    assert connection.add(dn, ["organizationalUnit"], {"ou": name}), connection.result
    try:
        yield name
    finally:
        connection.search(dn, "(objectClass=*)", attributes=["1.1"])
        for item in sorted(connection.response or [], key=lambda r: -len(r["dn"])):
            connection.delete(item["dn"])
        connection.unbind()


@pytest.fixture
def make_source(
    api: Callable[..., Awaitable[tuple[int, Any]]], slapd: slapdkit.Slapd
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """An LDAP source pointed at the test slapd as its root DN, with the OpenLDAP mappings."""

    async def make(slug: str = "corp", **fields: Any) -> dict[str, Any]:
        status, page = await api("GET", "propertymappings/source/ldap/?page_size=100")
        assert status == 200, page
        by_managed = {m["managed"]: m["pk"] for m in page["results"] if m["managed"]}
        prefix = "goauthentik.io/sources/ldap/"
        body = {
            "name": slug.title(),
            "slug": slug,
            "server_uri": slapd.url,
            "bind_cn": slapd.root_dn,
            "bind_password": slapd.root_password,
            "base_dn": SUFFIX,
            "additional_user_dn": "ou=people",
            "additional_group_dn": "ou=groups",
            "user_object_filter": "(objectClass=inetOrgPerson)",
            "group_object_filter": "(objectClass=groupOfNames)",
            "group_membership_field": "member",
            "object_uniqueness_field": "entryUUID",
            "sync_users_password": False,
            "user_property_mappings": [by_managed[prefix + m] for m in OPENLDAP_USER_MAPPINGS],
            "group_property_mappings": [by_managed[prefix + "openldap-cn"]],
            **fields,
        }
        status, created = await api("POST", "sources/ldap/", json=body)
        assert status == 201, created
        return dict(created)

    return make


@pytest.fixture
def ca_keypair(
    api: Callable[..., Awaitable[tuple[int, Any]]], slapd: slapdkit.Slapd
) -> Callable[[], Awaitable[str]]:
    async def make() -> str:
        body = {"name": "directory CA", "certificate_data": slapd.ca_pem, "key_data": ""}
        status, created = await api("POST", "crypto/certificatekeypairs/", json=body)
        assert status == 201, created
        return str(created["pk"])

    return make
