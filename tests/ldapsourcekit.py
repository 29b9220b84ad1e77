"""Helpers for the LDAP source's tests (`tests/core/sources`): the test slapd's root connection,
entries added while a test runs, and a sync started over the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import ldap3
import slapdkit
from slapdkit import SUFFIX

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
PASSWORDS = {
    "alice": "alice-pw-1",
    "bob": "bob-pw-1",
    "carol": "carol-pw-1",
    "dave": "dave-pw-1",
}
LONG_UID = "x" * 151  # longer than a username may be


def root_connection(slapd: slapdkit.Slapd) -> Any:
    server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
    return ldap3.Connection(server, slapd.root_dn, slapd.root_password, auto_bind=True)


def add_person(slapd: slapdkit.Slapd, ou: str, uid: str, password: str, **attrs: Any) -> str:
    dn = f"uid={uid},ou={ou},{SUFFIX}"
    connection = root_connection(slapd)
    values = {
        "uid": uid,
        "cn": attrs.pop("cn", uid.title()),
        "sn": "Example",
        "mail": attrs.pop("mail", f"{uid}@example.org"),
        "userPassword": slapdkit.ssha(password),
        **attrs,
    }
    assert connection.add(dn, ["inetOrgPerson"], values), connection.result
    connection.unbind()
    return dn


async def run_sync(api: Callable[..., Awaitable[tuple[int, Any]]], slug: str) -> dict[str, Any]:
    status, body = await api("POST", f"sources/ldap/{slug}/sync/")
    assert status == 200, body
    return dict(body)
