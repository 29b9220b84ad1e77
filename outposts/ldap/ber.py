"""BER for LDAPv3 (RFC 4511 §5.1): framing, a strict decoder of requests, encoders of responses.

The server (`protocol`) frames the byte stream into PDUs with `frame`, decodes each with
`decode_message` into typed requests (`messages`), and answers with the `encode_*` helpers.
Decoding is strict and bounded: definite lengths only (§5.1), single-byte tags, lengths within
the enclosing element, a PDU at most `MAX_PDU` bytes, filters at most `MAX_FILTER_DEPTH` deep
and `MAX_FILTER_NODES` large. Anything else raises `BERError`, which the server answers with
protocolError (2) and a closed connection.

ldaptor's decoder (`pureber`) answers the same requests, but by generic object construction
(about 20 µs a bind and 70 µs a search here, with `assert` as its validation); this one reads
only the shapes LDAP requests have.
"""

from __future__ import annotations

MAX_PDU = 256 * 1024
MAX_FILTER_DEPTH = 32
MAX_FILTER_NODES = 1024

SEQUENCE = 0x30
SET = 0x31
OCTET_STRING = 0x04
INTEGER = 0x02
ENUMERATED = 0x0A
BOOLEAN = 0x01
NULL = 0x05


class BERError(Exception):
    """A PDU that is not valid BER or not a valid LDAP message; `str()` says why."""


# Framing ------------------------------------------------------------------------------------


def frame(buf: bytes | bytearray, start: int = 0) -> int | None:
    """The end offset of the PDU starting at `start`, None while it is incomplete."""
    n = len(buf)
    if n - start < 2:
        return None
    if buf[start] != SEQUENCE:
        raise BERError("an LDAPMessage is a SEQUENCE")
    first = buf[start + 1]
    if first < 0x80:
        end = start + 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BERError("indefinite or oversized length")
        if n - start < 2 + count:
            return None
        length = int.from_bytes(buf[start + 2 : start + 2 + count], "big")
        end = start + 2 + count + length
    if end - start > MAX_PDU:
        raise BERError(f"PDU larger than {MAX_PDU} bytes")
    return end if end <= n else None


# Decoding -----------------------------------------------------------------------------------


def tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """`(tag, value start, value end)` of the element at `pos`, which must end by `end`."""
    if pos + 2 > end:
        raise BERError("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BERError("multi-byte tags are not used by LDAP")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise BERError("bad length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    stop = pos + length
    if stop > end:
        raise BERError("element longer than its container")
    return tag, pos, stop


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = tlv(buf, pos, end)
    if got != tag:
        raise BERError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def integer(buf: bytes, start: int, stop: int) -> int:
    if stop - start < 1 or stop - start > 8:
        raise BERError("bad integer")
    return int.from_bytes(buf[start:stop], "big", signed=True)


def boolean(buf: bytes, start: int, stop: int) -> bool:
    if stop - start != 1:
        raise BERError("bad boolean")
    return buf[start] != 0


def text(buf: bytes, start: int, stop: int) -> str:
    """An LDAPString (UTF-8, RFC 4511 §4.1.2)."""
    try:
        return buf[start:stop].decode()
    except UnicodeDecodeError:
        raise BERError("an LDAPString is UTF-8") from None


def children(buf: bytes, start: int, stop: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < stop:
        element = tlv(buf, pos, stop)
        out.append(element)
        pos = element[2]
    return out


# Encoding -----------------------------------------------------------------------------------


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def element(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + length(len(value)) + value


def octets(value: str | bytes, tag: int = OCTET_STRING) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return bytes((tag,)) + length(len(raw)) + raw


def encode_int(value: int, tag: int = INTEGER) -> bytes:
    if 0 <= value < 0x80:
        return bytes((tag, 1, value))
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return bytes((tag,)) + length(len(raw)) + raw


def message(message_id: int, op: bytes, controls: bytes = b"") -> bytes:
    """An LDAPMessage around an encoded protocolOp (and encoded `[0] Controls`)."""
    body = encode_int(message_id) + op + controls
    return bytes((SEQUENCE,)) + length(len(body)) + body


def result(
    tag: int, code: int, message_text: str = "", matched: str = "", extra: bytes = b""
) -> bytes:
    """An LDAPResult-shaped protocolOp (BindResponse, SearchResultDone, ...)."""
    body = encode_int(code, ENUMERATED) + octets(matched) + octets(message_text) + extra
    return element(tag, body)


def entry(dn: str, attributes: list[tuple[str, list[str]]]) -> bytes:
    """A SearchResultEntry protocolOp."""
    parts = []
    for name, values in attributes:
        inner = b"".join(octets(v) for v in values)
        parts.append(element(SEQUENCE, octets(name) + element(SET, inner)))
    return element(0x64, octets(dn) + element(SEQUENCE, b"".join(parts)))


def control(oid: str, value: bytes | None = None, critical: bool = False) -> bytes:
    body = octets(oid) + (b"\x01\x01\xff" if critical else b"")
    if value is not None:
        body += octets(value)
    return element(SEQUENCE, body)


def controls(encoded: list[bytes]) -> bytes:
    return element(0xA0, b"".join(encoded)) if encoded else b""
