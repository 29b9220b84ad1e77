"""The LDAP outpost's server over real sockets, driven by the `ldap3` client and by hand-built
PDUs: binds (cached and direct), searches, paging, limits, TLS, extended operations, refusals,
and the attacks the issue names. The core's outpost calls are answered by `ldapkit.FakeCore`;
`test_end_to_end` runs the same clients against the real core."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import ldap3
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from ldap3.core.results import RESULT_SIZE_LIMIT_EXCEEDED
from ldapkit import (
    BASE,
    DIRECT_BASE,
    LDAPThread,
    bind_pdu,
    config,
    password_of,
    read_messages,
    result_code,
    user_dn,
)

from tessera.outposts.ldap import ber, dit, tls

NO_VERIFY = ldap3.Tls(validate=ssl.CERT_NONE)


def connect(
    srv: LDAPThread,
    username: str | None = None,
    base: str = BASE,
    password: str | None = None,
    **kwargs: object,
) -> ldap3.Connection:
    server = ldap3.Server("127.0.0.1", port=srv.port, get_info=ldap3.NONE, tls=NO_VERIFY)
    if username is None:
        return ldap3.Connection(server, auto_bind=True, raise_exceptions=False)
    conn = ldap3.Connection(
        server,
        user=user_dn(username, base),
        password=password if password is not None else password_of(username),
        raise_exceptions=False,
        **kwargs,  # type: ignore[arg-type]
    )
    conn.bind()
    return conn


def raw(srv: LDAPThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def search_pdu(
    message_id: int, base: str, filter_bytes: bytes, controls: bytes = b"", size_limit: int = 0
) -> bytes:
    op = ber.element(
        0x63,
        ber.octets(base)
        + ber.encode_int(2, ber.ENUMERATED)
        + ber.encode_int(0, ber.ENUMERATED)
        + ber.encode_int(size_limit)
        + ber.encode_int(0)
        + b"\x01\x01\x00"
        + filter_bytes
        + ber.element(ber.SEQUENCE, b""),
    )
    return ber.message(message_id, op, controls)


PRESENT_OBJECTCLASS = ber.octets("objectClass", 0x87)


# Root DSE and anonymous access ---------------------------------------------------------------


def test_root_dse_to_anyone(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server)
    wanted = ["namingContexts", "supportedLDAPVersion", "supportedExtension", "supportedControl"]
    assert conn.search("", "(objectClass=*)", ldap3.BASE, attributes=wanted)
    attributes = conn.entries[0].entry_attributes_as_dict
    assert set(attributes["namingContexts"]) == {BASE, DIRECT_BASE}
    assert [str(v) for v in attributes["supportedLDAPVersion"]] == ["3"]
    assert dit.START_TLS in attributes["supportedExtension"]
    assert dit.WHO_AM_I in attributes["supportedExtension"]
    assert dit.PAGED_RESULTS in attributes["supportedControl"]
    conn.unbind()


def test_attack_anonymous_search_is_refused(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server)
    assert not conn.search(BASE, "(objectClass=*)")
    assert conn.result["result"] == 50
    assert conn.entries == []


def test_unauthenticated_bind_is_refused(ldap_server: LDAPThread) -> None:
    with raw(ldap_server) as sock:
        sock.sendall(bind_pdu(1, user_dn("alice"), ""))
        ((_, tag, pdu),) = read_messages(sock, 1)
    assert (tag, result_code(pdu)) == (0x61, 53)


# Binds ---------------------------------------------------------------------------------------


def test_cached_bind_asks_the_core_once(ldap_server: LDAPThread) -> None:
    before = ldap_server.core.calls.get("bind", 0)
    for _ in range(3):
        conn = connect(ldap_server, "user7")
        assert conn.bound, conn.result
        assert conn.extend.standard.who_am_i() == f"dn:{user_dn('user7')}"
        conn.unbind()
    assert ldap_server.core.calls["bind"] == before + 1
    wrong = connect(ldap_server, "user7", password="nope")
    assert wrong.result["result"] == 49 and not wrong.bound
    assert ldap_server.core.calls["bind"] == before + 2


def test_bind_refusals_map_to_result_codes(ldap_server: LDAPThread) -> None:
    assert connect(ldap_server, "alice", password="wrong").result["result"] == 49
    assert connect(ldap_server, "nobody").result["result"] == 49
    assert connect(ldap_server, "blocked").result["result"] == 50
    assert connect(ldap_server, "mfa").result["result"] == 49
    assert connect(ldap_server, "mfa", password=password_of("mfa") + ";123456").bound
    # outside every base, or not a user DN: invalid credentials without asking the core
    before = ldap_server.core.calls.get("bind", 0)
    for name in ("cn=alice,dc=elsewhere", f"cn=alice,ou=groups,{BASE}", "not a dn"):
        conn = ldap3.Connection(
            ldap3.Server("127.0.0.1", port=ldap_server.port), user=name, password="x"
        )
        conn.bind()
        assert conn.result["result"] == 49, name
    assert ldap_server.core.calls.get("bind", 0) == before


def test_uid_bind_dn(ldap_server: LDAPThread) -> None:
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=ldap_server.port),
        user=f"uid=user9,ou=users,{BASE}",
        password=password_of("user9"),
    )
    assert conn.bind()
    assert conn.extend.standard.who_am_i() == f"dn:uid=user9,ou=users,{BASE}"


def test_direct_bind_asks_the_core_every_time_and_unbind_ends_the_session(
    ldap_server: LDAPThread,
) -> None:
    before = dict(ldap_server.core.calls)
    for _ in range(2):
        conn = connect(ldap_server, "user8", DIRECT_BASE)
        assert conn.bound
        conn.unbind()
    assert ldap_server.core.calls["bind"] == before.get("bind", 0) + 2
    ldap_server.call(_settle)
    assert ldap_server.core.calls["unbind"] >= before.get("unbind", 0) + 2


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(0.2)


def test_sasl_bind_is_not_supported(ldap_server: LDAPThread) -> None:
    conn = ldap3.Connection(
        ldap3.Server("127.0.0.1", port=ldap_server.port),
        authentication=ldap3.SASL,
        sasl_mechanism=ldap3.EXTERNAL,
    )
    conn.open()
    conn.bind()
    assert conn.result["result"] == 7


# Searches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [BASE, DIRECT_BASE], ids=["cached", "direct"])
def test_search_by_uid(ldap_server: LDAPThread, base: str) -> None:
    conn = connect(ldap_server, "admin", base)
    assert conn.search(
        base,
        "(&(objectClass=user)(uid=user42))",
        attributes=["cn", "mail", "memberOf", "uidNumber"],
    )
    assert len(conn.entries) == 1
    entry = conn.entries[0]
    assert entry.entry_dn == user_dn("user42", base)
    assert entry.mail.value == "user42@example.com"
    assert entry.memberOf.value == f"cn=everyone,ou=groups,{base}"
    assert str(entry.uidNumber.value) == "2046"


@pytest.mark.parametrize("base", [BASE, DIRECT_BASE], ids=["cached", "direct"])
def test_attack_without_the_permission_a_user_reads_only_herself(
    ldap_server: LDAPThread, base: str
) -> None:
    conn = connect(ldap_server, "alice", base)
    assert conn.search(base, "(objectClass=user)", attributes=["cn"])
    assert [e.entry_dn for e in conn.entries] == [user_dn("alice", base)]
    conn.search(base, "(uid=admin)")
    assert conn.entries == []
    assert conn.search(base, "(objectClass=groupOfNames)", attributes=["member"])
    groups = {e.entry_dn: e.member.values for e in conn.entries}
    assert groups[f"cn=staff,ou=groups,{base}"] == [user_dn("alice", base)]


def test_another_providers_tree_is_refused(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    assert not conn.search(DIRECT_BASE, "(objectClass=*)")
    assert conn.result["result"] == 50
    assert not conn.search("dc=nowhere", "(objectClass=*)")
    assert conn.result["result"] == 32
    assert not conn.search(f"ou=missing,{BASE}", "(objectClass=*)")
    assert conn.result["result"] == 32
    assert conn.result["dn"] == BASE


@pytest.mark.parametrize("base", [BASE, DIRECT_BASE], ids=["cached", "direct"])
def test_paged_search_over_two_thousand_users(ldap_server: LDAPThread, base: str) -> None:
    conn = connect(ldap_server, "admin", base)
    entries = conn.extend.standard.paged_search(
        f"ou=users,{base}",
        "(objectClass=user)",
        ldap3.LEVEL,
        attributes=["uid"],
        paged_size=500,
        generator=False,
    )
    uids = [e["attributes"]["uid"][0] for e in entries if e["type"] == "searchResEntry"]
    assert len(uids) == len(ldap_server.core.directory.users) > 2000
    assert len(set(uids)) == len(uids)


def test_attack_paged_cookie_of_another_connection_is_refused(ldap_server: LDAPThread) -> None:
    first = connect(ldap_server, "admin")
    first.search(BASE, "(objectClass=user)", paged_size=10)
    cookie = first.result["controls"][dit.PAGED_RESULTS]["value"]["cookie"]
    assert cookie
    second = connect(ldap_server, "admin")
    assert not second.search(BASE, "(objectClass=user)", paged_size=10, paged_cookie=cookie)
    assert second.result["result"] == 53
    # the first connection's cookie still works there, once
    assert first.search(BASE, "(objectClass=user)", paged_size=10, paged_cookie=cookie)
    assert len(first.entries) == 10
    assert not first.search(BASE, "(objectClass=user)", paged_size=10, paged_cookie=cookie)


def test_size_limit(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.search(BASE, "(objectClass=user)", size_limit=5)
    assert conn.result["result"] == RESULT_SIZE_LIMIT_EXCEEDED
    assert len(conn.entries) == 5
    conn.search(BASE, "(uid=user1)", size_limit=5)
    assert conn.result["result"] == 0


def test_size_limit_across_pages(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.search(BASE, "(objectClass=user)", size_limit=15, paged_size=10)
    assert conn.result["result"] == 0 and len(conn.entries) == 10
    cookie = conn.result["controls"][dit.PAGED_RESULTS]["value"]["cookie"]
    conn.search(BASE, "(objectClass=user)", size_limit=15, paged_size=10, paged_cookie=cookie)
    assert conn.result["result"] == RESULT_SIZE_LIMIT_EXCEEDED
    assert len(conn.entries) == 5


def test_types_only_and_attribute_selection(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.search(BASE, "(uid=alice)", attributes=["mail", "cn"], types_only=True)
    assert {e["type"] for e in conn.response} == {"searchResEntry"}
    entry = next(e for e in conn.response if e["dn"] == user_dn("alice"))
    assert set(entry["raw_attributes"]) == {"cn", "mail"}
    assert not any(entry["raw_attributes"].values())
    conn.search(BASE, "(uid=alice)", attributes=["+"])
    entry = next(e for e in conn.response if e["dn"] == user_dn("alice"))
    assert set(entry["raw_attributes"]) == {"entryUUID", "createTimestamp", "modifyTimestamp"}
    conn.search(BASE, "(uid=alice)", attributes=["1.1"])
    entry = next(e for e in conn.response if e["dn"] == user_dn("alice"))
    assert entry["raw_attributes"] == {}


def test_compare(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    assert conn.compare(user_dn("alice"), "mail", "ALICE@example.com") is True
    assert conn.compare(user_dn("alice"), "mail", "bob@example.com") is False
    conn.compare(user_dn("ghost"), "mail", "x")
    assert conn.result["result"] == 32


def test_writes_are_unwilling_to_perform(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.add(f"cn=new,ou=users,{BASE}", "inetOrgPerson", {"sn": "x"})
    assert conn.result["result"] == 53
    conn.delete(user_dn("alice"))
    assert conn.result["result"] == 53
    conn.modify(user_dn("alice"), {"mail": [(ldap3.MODIFY_REPLACE, ["x@example.com"])]})
    assert conn.result["result"] == 53
    conn.modify_dn(user_dn("alice"), "cn=alicia")
    assert conn.result["result"] == 53
    assert conn.search(BASE, "(uid=alice)")  # the connection still serves


def test_unknown_extended_operation_and_critical_control(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.extended("1.2.3.4.5.6")
    assert conn.result["result"] == 2
    conn.search(BASE, "(uid=alice)", controls=[("1.2.3.999", True, None)])
    assert conn.result["result"] == 12
    conn.search(BASE, "(uid=alice)", controls=[("1.2.3.999", False, None)])
    assert conn.result["result"] == 0


# TLS -----------------------------------------------------------------------------------------


def test_start_tls(ldap_server: LDAPThread) -> None:
    server = ldap3.Server("127.0.0.1", port=ldap_server.port, tls=NO_VERIFY)
    conn = ldap3.Connection(server, user=user_dn("admin"), password=password_of("admin"))
    conn.open()
    assert conn.start_tls()
    assert conn.bind()
    assert conn.search(BASE, "(uid=user5)", attributes=["uid"])
    assert conn.entries[0].uid.value == "user5"
    assert not conn.start_tls() or conn.result["result"] != 0


def test_ldaps(ldap_server: LDAPThread) -> None:
    server = ldap3.Server("127.0.0.1", port=ldap_server.tls_port, use_ssl=True, tls=NO_VERIFY)
    conn = ldap3.Connection(server, user=user_dn("admin"), password=password_of("admin"))
    assert conn.bind()
    assert conn.extend.standard.who_am_i() == f"dn:{user_dn('admin')}"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", ldap_server.tls_port)) as sock,
        context.wrap_socket(sock) as tls_sock,
    ):
        assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")


# Password modify -----------------------------------------------------------------------------


def test_password_modify_through_the_core(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "user11", DIRECT_BASE)
    assert conn.bound
    assert not conn.extend.standard.modify_password(new_password="short")
    assert conn.result["result"] == 19
    assert "at least 8" in conn.result["message"]
    other = conn.extend.standard.modify_password(
        user=user_dn("admin", DIRECT_BASE), new_password="x" * 12
    )
    assert not other and conn.result["result"] == 50
    assert conn.extend.standard.modify_password(
        old_password=password_of("user11"), new_password="N3w-Passw0rd!"
    )
    assert connect(ldap_server, "user11", DIRECT_BASE, password="N3w-Passw0rd!").bound
    assert connect(ldap_server, "user11", DIRECT_BASE).result["result"] == 49
    anonymous = connect(ldap_server)
    assert not anonymous.extend.standard.modify_password(new_password="whatever-123")
    assert anonymous.result["result"] == 50


def test_password_change_drops_cached_binds(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "user13")
    assert conn.bound
    assert conn.extend.standard.modify_password(new_password="Another-Passw0rd")
    before = ldap_server.core.calls["bind"]
    assert connect(ldap_server, "user13").result["result"] == 49  # the old one: asked again
    assert ldap_server.core.calls["bind"] == before + 1
    assert connect(ldap_server, "user13", password="Another-Passw0rd").bound


# Control channel: SESSION_END and DirectoryChanged -------------------------------------------


def test_session_end_closes_connections_and_drops_cached_binds(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "user15")
    assert conn.bound
    session_id = next(s for s, u in ldap_server.core.sessions.items() if u == "user15")
    outpost = ldap_server.outpost
    assert outpost is not None

    async def end() -> None:
        outpost.session_ended(session_id)

    ldap_server.call(end)
    with pytest.raises(ldap3.core.exceptions.LDAPException):
        conn.search(BASE, "(uid=user15)")
        if conn.result["result"] == 0:
            raise ldap3.core.exceptions.LDAPException("still bound")
    before = ldap_server.core.calls["bind"]
    assert connect(ldap_server, "user15").bound
    assert ldap_server.core.calls["bind"] == before + 1


def test_directory_changed_push_refetches(ldap_server: LDAPThread) -> None:
    core = ldap_server.core
    outpost = ldap_server.outpost
    assert outpost is not None
    original = core.directory
    newbie = original.users[-1].model_copy(update={"pk": 99999, "username": "newbie", "groups": []})
    core.directory = original.model_copy(
        update={"generation": 2, "users": [*original.users, newbie]}
    )

    async def push(generation: int) -> None:
        await outpost.directory_changed(
            {
                "type": "ldap.directory.changed",
                "providers": [1],
                "generation": generation,
                "users": [],
            }
        )
        await outpost.settled()

    try:
        ldap_server.call(lambda: push(2))
        conn = connect(ldap_server, "admin")
        assert conn.search(BASE, "(uid=newbie)", attributes=["uidNumber"])
        assert str(conn.entries[0].uidNumber.value) == str(2000 + 99999)
    finally:
        core.directory = original.model_copy(update={"generation": 3})
        ldap_server.call(lambda: push(3))
    assert not connect(ldap_server, "admin").search(BASE, "(uid=newbie)")


# Attacks -------------------------------------------------------------------------------------


def test_attack_malformed_ber_gets_a_notice_of_disconnection(ldap_server: LDAPThread) -> None:
    with raw(ldap_server) as sock:
        sock.sendall(b"\x30\x05\x02\x01\x01\x99\x00")  # an unknown protocolOp
        ((message_id, tag, pdu),) = read_messages(sock, 2)
        assert (message_id, tag, result_code(pdu)) == (0, 0x78, 2)
        assert dit.START_TLS.encode() not in pdu and b"1.3.6.1.4.1.1466.20036" in pdu
        assert sock.recv(10) == b""


def test_attack_oversized_pdu_is_refused_before_it_arrives(ldap_server: LDAPThread) -> None:
    with raw(ldap_server) as sock:
        sock.sendall(b"\x30\x84\x7f\xff\xff\xff")
        ((message_id, tag, pdu),) = read_messages(sock, 2)
        assert (message_id, result_code(pdu)) == (0, 2)


def test_attack_deeply_nested_filter(ldap_server: LDAPThread) -> None:
    inner = PRESENT_OBJECTCLASS
    for _ in range(200):
        inner = ber.element(0xA2, inner)  # NOT NOT NOT ...
    with raw(ldap_server) as sock:
        sock.sendall(
            bind_pdu(1, user_dn("admin"), password_of("admin")) + search_pdu(2, BASE, inner)
        )
        replies = read_messages(sock, 3)
        assert result_code(replies[0][2]) == 0
        assert replies[1][0] == 0 and result_code(replies[1][2]) == 2


def test_pipelined_requests_are_answered_in_order(ldap_server: LDAPThread) -> None:
    equality = ber.element(0xA3, ber.octets("uid") + ber.octets("user3"))
    with raw(ldap_server) as sock:
        sock.sendall(
            bind_pdu(1, user_dn("admin"), password_of("admin"))
            + search_pdu(2, BASE, equality)
            + search_pdu(3, BASE, equality)
            + search_pdu(4, BASE, PRESENT_OBJECTCLASS, size_limit=1)
        )
        replies = read_messages(sock, 1 + 3 + 3 + 2)
    assert [(i, t) for i, t, _ in replies] == [
        (1, 0x61),
        (2, 0x64),
        (2, 0x64),
        (2, 0x65),
        (3, 0x64),
        (3, 0x64),
        (3, 0x65),
        (4, 0x64),
        (4, 0x65),
    ]
    assert result_code(replies[-1][2]) == 4


def test_attack_bind_as_another_provider_user_cannot_read_other_tree(
    ldap_server: LDAPThread,
) -> None:
    conn = connect(ldap_server, "admin", DIRECT_BASE)
    assert conn.bound
    assert not conn.search(BASE, "(uid=alice)")
    assert conn.result["result"] == 50


def _peer_name(port: int, server_name: str | None) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls_sock,
    ):
        der = tls_sock.getpeercert(binary_form=True)
    assert der is not None
    certificate = x509.load_der_x509_certificate(der)
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_the_certificate_is_chosen_by_sni(ldap_server: LDAPThread) -> None:
    server = ldap_server.server
    assert server is not None
    keypair = "8d0e2b4a-5c1f-4f0e-9a55-3e5d7c9b1a20"
    pem, key = tls.self_signed("ldap.example.org")
    named = config(1, BASE, "cached", certificate=keypair, tls_server_name="ldap.example.org")

    async def use(configs: list[Any], material: dict[str, Any]) -> None:
        server.certificates.update(configs, material)

    ldap_server.call(lambda: use([named], {keypair: {"certificate": pem, "key": key}}))
    try:
        assert _peer_name(ldap_server.tls_port, "ldap.example.org") == "ldap.example.org"
        assert _peer_name(ldap_server.tls_port, "LDAP.example.org") == "ldap.example.org"
        assert (
            _peer_name(ldap_server.tls_port, "other.example.org") == "authentik default certificate"
        )
        assert _peer_name(ldap_server.tls_port, None) == "authentik default certificate"
        # a provider without a server name: its certificate is the default
        unnamed = config(1, BASE, "cached", certificate=keypair)
        ldap_server.call(lambda: use([unnamed], {keypair: {"certificate": pem, "key": key}}))
        assert _peer_name(ldap_server.tls_port, None) == "ldap.example.org"
        # a broken key pair is refused, the others stay
        ldap_server.call(lambda: use([named], {keypair: {"certificate": pem, "key": "nope"}}))
        assert (
            _peer_name(ldap_server.tls_port, "ldap.example.org") == "authentik default certificate"
        )
    finally:
        ldap_server.call(lambda: use([], {}))


def test_a_direct_search_after_the_core_ended_the_session_is_refused(
    ldap_server: LDAPThread,
) -> None:
    conn = connect(ldap_server, "user17", DIRECT_BASE)
    assert conn.bound
    for session_id, username in list(ldap_server.core.sessions.items()):
        if username == "user17":
            del ldap_server.core.sessions[session_id]  # ended at the core, no SESSION_END heard
    assert not conn.search(DIRECT_BASE, "(uid=user17)")
    assert conn.result["result"] == 50
    assert conn.compare(user_dn("user17", DIRECT_BASE), "uid", "user17") is False
    assert conn.result["result"] == 50  # and no longer bound
    assert ldap_server.server is not None
    assert ldap_server.server.counts.get("internal_error", 0) == 0


def test_a_filter_the_core_cannot_read_is_applied_here(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin", DIRECT_BASE)
    chain = f"(memberOf:1.2.840.113556.1.4.1941:=cn=everyone,ou=groups,{DIRECT_BASE})"
    assert conn.search(DIRECT_BASE, f"(&(objectClass=user){chain}(cn=user1*))", attributes=["cn"])
    assert ldap_server.core.filters[-2:] == [
        f"(&(objectclass=user){chain.replace('memberOf', 'memberof')}(cn=user1*))",
        "(objectClass=*)",
    ]
    # staff (odd users) is a child of everyone (even users): everyone of them, transitively
    found = sorted(int(e.cn.value[4:]) for e in conn.entries)
    assert found[:4] == [1, 10, 11, 12] and len(found) == 1 + 10 + 100 + 1000


def test_time_limit_in_direct_mode(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin", DIRECT_BASE)
    ldap_server.core.slow = 1.5
    try:
        started = time.monotonic()
        conn.search(DIRECT_BASE, "(uid=user3)", time_limit=1)
        assert conn.result["result"] == 3
        assert time.monotonic() - started < 1.4
    finally:
        ldap_server.core.slow = 0.0
    assert conn.search(DIRECT_BASE, "(uid=user3)", time_limit=5)


def test_a_paged_search_abandoned_with_size_zero(ldap_server: LDAPThread) -> None:
    conn = connect(ldap_server, "admin")
    conn.search(BASE, "(objectClass=user)", paged_size=10)
    cookie = conn.result["controls"][dit.PAGED_RESULTS]["value"]["cookie"]
    assert conn.search(BASE, "(objectClass=user)", paged_size=0, paged_cookie=cookie) is False
    assert conn.result["result"] == 0 and conn.entries == []
    assert conn.result["controls"][dit.PAGED_RESULTS]["value"]["cookie"] == b""
    conn.search(BASE, "(objectClass=user)", paged_size=10, paged_cookie=cookie)
    assert conn.result["result"] == 53  # gone
