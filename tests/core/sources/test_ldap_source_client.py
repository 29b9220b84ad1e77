"""The LDAP source's client against the real slapd: paged searches return every entry across
pages, an empty password is never sent as a bind (it would be an anonymous one, which slapd
accepts), wrong credentials are a refusal and an unreachable server an error; and the
conversions of uniqueness values (objectGUID, objectSid) and DNs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import slapdkit
from cryptography import x509
from helpers import free_port
from ldapsourcekit import PASSWORDS, PEOPLE

from tessera.core import crypto
from tessera.core.sources.ldap import client


def _settings(slapd: slapdkit.Slapd, **extra: Any) -> client.Settings:
    return client.Settings(
        uris=(slapd.url,),
        bind_dn=slapd.root_dn,
        bind_password=crypto.Secret(slapd.root_password),
        **extra,
    )


def test_paged_search_returns_every_entry(slapd: slapdkit.Slapd) -> None:
    connection = client.connect(_settings(slapd))
    try:
        whole = list(client.search(connection, PEOPLE, "(objectClass=inetOrgPerson)", ["uid"]))
        paged = list(
            client.search(connection, PEOPLE, "(objectClass=inetOrgPerson)", ["uid"], page_size=2)
        )
    finally:
        client.close(connection)
    assert len(whole) >= 6
    assert sorted(e.dn for e in paged) == sorted(e.dn for e in whole)


def test_an_empty_password_is_never_a_bind(slapd: slapdkit.Slapd) -> None:
    dn = f"uid=alice,{PEOPLE}"
    assert client.bind_user(_settings(slapd), dn, PASSWORDS["alice"])
    assert not client.bind_user(_settings(slapd), dn, "")
    assert not client.bind_user(_settings(slapd), dn, "wrong")


def test_an_unreachable_directory_is_an_error(slapd: slapdkit.Slapd) -> None:
    settings = client.Settings(
        uris=(f"ldap://127.0.0.1:{free_port()}",),
        bind_dn=slapd.root_dn,
        bind_password=crypto.Secret(slapd.root_password),
        timeout=2,
    )
    with pytest.raises(client.DirectoryError, match="no LDAP server could be used"):
        client.connect(settings)


def test_uniqueness_values_as_text() -> None:
    guid = uuid.uuid4()
    assert client.identifier(guid.bytes_le) == str(guid)
    sid = bytes([1, 5, 0, 0, 0, 0, 0, 5]) + b"".join(
        n.to_bytes(4, "little") for n in (21, 1004336348, 1177238915, 682003330, 1000)
    )
    assert client.identifier(sid) == "S-1-5-21-1004336348-1177238915-682003330-1000"
    assert client.identifier("a-uuid") == "a-uuid"
    assert client.identifier(b"\xff\x00") == "ff00"


def test_dns_compare_without_case_or_blanks() -> None:
    assert client.normalize_dn("UID=Alice, OU=People,dc=Example,dc=org") == client.normalize_dn(
        "uid=alice,ou=people,dc=example,dc=org"
    )
    assert client.escape("a*)(uid=*") == "a\\2a\\29\\28uid=\\2a"


@pytest.mark.parametrize(
    "uri",
    ["ldap://h", "ldaps://h:636", "ldap://[::1]:389"],
)
def test_good_uris(uri: str) -> None:
    assert client.check_uri(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://h",
        "ldap://",
        "ldap://h:0",
        "ldap://h:x",
        "ldap://h/dc=x",
        "ldapi:///run/sock",
        "ldap://hé.example",
        "ldap://-h",
        "ldap://a_b",
    ],
)
def test_bad_uris(uri: str) -> None:
    assert client.check_uri(uri) is not None


def test_starttls_refuses_a_certificate_for_another_host(tmp_path: Path) -> None:
    """The directory's own CA signed it, but for ldap.example.org: a man in the middle with any
    certificate of that CA must not pass for 127.0.0.1."""
    names: list[x509.GeneralName] = [x509.DNSName("ldap.example.org")]
    entries = slapdkit.organizational_units("people")
    with slapdkit.running(tmp_path / "other", entries, tls_names=names) as other:
        settings = client.Settings(
            uris=(other.url,),
            bind_dn=other.root_dn,
            bind_password=crypto.Secret(other.root_password),
            start_tls=True,
            ca_pem=other.ca_pem,
        )
        with pytest.raises(client.DirectoryError, match=r"(?i)certificate"):
            client.connect(settings)
        plain = client.Settings(
            uris=(other.url,),
            bind_dn=other.root_dn,
            bind_password=crypto.Secret(other.root_password),
            ca_pem=other.ca_pem,
        )
        client.close(client.connect(plain))  # the same server answers without TLS
