"""Fuzzing the LDAP outpost's request decoder and server with hypothesis.

The corpus (`corpus/*.ber`: every request type, the controls and extended operations the server
knows, and malformed PDUs that once needed care) seeds mutations: bytes flipped, inserted,
deleted, lengths rewritten, PDUs truncated or doubled. The decoder must either decode or raise
`BERError`, nothing else. Over a real socket, a bound connection sent such a PDU must answer it
or close (with a Notice of Disconnection when it could not decode it), never leave an internal
error behind, and the server keeps answering new connections."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldapkit import (
    BASE,
    LDAPThread,
    bind_pdu,
    password_of,
    read_messages,
    read_until,
    result_code,
    user_dn,
)

from tessera.outposts.ldap import ber
from tessera.outposts.ldap import messages as m

CORPUS = {p.stem: p.read_bytes() for p in sorted((Path(__file__).parent / "corpus").glob("*.ber"))}
WHO_AM_I = ber.message(
    999, ber.element(0x77, ber.octets("1.3.6.1.4.1.4203.1.11.3", 0x80))
)  # the sentinel: its answer means everything before it was handled


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 20
    kinds = set()
    for name, pdu in CORPUS.items():
        if name.startswith("malformed"):
            with pytest.raises(ber.BERError):
                m.decode_message(pdu)
        else:
            kinds.add(type(m.decode_message(pdu).op).__name__)
    assert kinds == {"Bind", "Unbind", "Search", "Compare", "Extended", "Abandon", "Unsupported"}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(CORPUS[draw(st.sampled_from(sorted(CORPUS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length", "double"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "length":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0xFF]))
        else:
            data.extend(bytes(data))
    return bytes(data)


PDUS = st.one_of(mutated(), st.binary(max_size=64), st.sampled_from(sorted(CORPUS.values())))


def _decode(data: bytes) -> None:
    try:
        end = ber.frame(data)
        if end is not None:
            m.decode_message(data[:end])
        m.decode_message(data)
    except ber.BERError:
        pass


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PDUS)
def test_decoder_raises_only_ber_errors(data: bytes) -> None:
    _decode(data)


def _alive(server: LDAPThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(WHO_AM_I)
        ((message_id, _tag, pdu),) = read_messages(sock, 1)
        assert (message_id, result_code(pdu)) == (999, 0)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(PDUS)
def test_server_answers_or_closes(ldap_server: LDAPThread, data: bytes) -> None:
    server = ldap_server.server
    assert server is not None
    with socket.create_connection(("127.0.0.1", ldap_server.port), timeout=5) as sock:
        sock.sendall(bind_pdu(1, user_dn("admin", BASE), password_of("admin")))
        ((_, _, bound),) = read_messages(sock, 1)
        assert result_code(bound) == 0
        stream = data + WHO_AM_I
        sock.sendall(stream)
        if not _incomplete(stream):
            # the sentinel is answered, or the connection closed (after a notice of
            # disconnection when the PDU did not decode, or after an unbind / StartTLS)
            replies, closed = read_until(sock, 999)
            ids = [i for i, _t, _p in replies]
            assert closed or ids[-1] == 999, ids
            if closed and ids and ids[-1] == 0:
                assert result_code(replies[-1][2]) == 2
    assert server.counts.get("internal_error", 0) == 0
    _alive(ldap_server)


def _incomplete(stream: bytes) -> bool:
    """True when the server, reading `stream`, still waits for the rest of a PDU."""
    pos = 0
    try:
        while pos < len(stream):
            end = ber.frame(stream, pos)
            if end is None:
                return True
            pos = end
    except ber.BERError:
        return False
    return False


def test_corpus_over_the_wire(ldap_server: LDAPThread) -> None:
    for name, pdu in CORPUS.items():
        with socket.create_connection(("127.0.0.1", ldap_server.port), timeout=5) as sock:
            sock.sendall(bind_pdu(1, user_dn("admin", BASE), password_of("admin")) + pdu + WHO_AM_I)
            replies, closed = read_until(sock, 999)
        ids = [i for i, _t, _p in replies]
        if name.startswith("malformed"):
            assert closed and ids[-1] == 0 and result_code(replies[-1][2]) == 2, name
        elif name == "unbind":
            assert closed and ids == [1], ids
        else:
            assert ids[-1] == 999, (name, ids)
    _alive(ldap_server)
