"""Typed LDAP requests (RFC 4511 §4) and their decoding from one framed PDU.

`decode_message(pdu)` gives a `Message` whose `op` is one of `Bind`, `Unbind`, `Search`,
`Compare`, `Extended`, `Abandon`, or `Unsupported` (add, delete, modify, modify DN: answered
unwillingToPerform by the server); filters become a tree of `filters`-style nodes defined here
(`And`, `Or`, `Not`, `Equal`, `Substrings`, `GreaterOrEqual`, `LessOrEqual`, `Present`,
`Approx`, `Extensible`). Attribute descriptions are lowercased with their options dropped
(`cn;lang-en` → `cn`). Malformed input raises `ber.BERError`. Used by `protocol`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TypeAlias

from tessera.outposts.ldap import ber
from tessera.outposts.ldap.ber import BERError

# Filters ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Filter


@dataclass(frozen=True, slots=True)
class Equal:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Approx:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class GreaterOrEqual:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class LessOrEqual:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Present:
    attr: str


@dataclass(frozen=True, slots=True)
class Substrings:
    attr: str
    initial: str | None
    any: tuple[str, ...]
    final: str | None


@dataclass(frozen=True, slots=True)
class Extensible:
    rule: str | None
    attr: str | None
    value: str
    dn_attributes: bool


Filter: TypeAlias = (
    And
    | Or
    | Not
    | Equal
    | Approx
    | GreaterOrEqual
    | LessOrEqual
    | Present
    | Substrings
    | Extensible
)

# Requests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Control:
    oid: str
    critical: bool
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Bind:
    version: int
    name: str
    password: bytes | None  # None: a SASL bind
    mechanism: str = ""

    def __repr__(self) -> str:  # SECURITY: never the password in a log line or traceback
        return f"Bind(version={self.version}, name={self.name!r}, password=***)"


@dataclass(frozen=True, slots=True)
class Unbind:
    pass


@dataclass(frozen=True, slots=True)
class Search:
    base: str
    scope: int  # 0 base, 1 one level, 2 subtree
    deref: int
    size_limit: int
    time_limit: int
    types_only: bool
    filter: Filter
    attributes: tuple[str, ...]
    small: bool = False  # from a PDU small enough for its decoding and plan to be kept


@dataclass(frozen=True, slots=True)
class Compare:
    dn: str
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Extended:
    name: str
    value: bytes | None

    def __repr__(self) -> str:  # the value may hold passwords (RFC 3062)
        return f"Extended(name={self.name!r})"


@dataclass(frozen=True, slots=True)
class Abandon:
    target: int


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Add, delete, modify, modify DN: `response` is the tag of the response to send."""

    response: int


Op: TypeAlias = Bind | Unbind | Search | Compare | Extended | Abandon | Unsupported


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    op: Op
    controls: tuple[Control, ...] = field(default=())


# Decoding -----------------------------------------------------------------------------------

_UNSUPPORTED = {0x66: 0x67, 0x68: 0x69, 0x4A: 0x6B, 0x6C: 0x6D}
# SECURITY: decoded search requests are kept by their bytes; never binds or extended
# operations: those carry passwords, which must not stay in memory.
MAX_REMEMBERED = 4096
MAX_REMEMBERED_BYTES = 2048  # SECURITY: a few MiB at most, whatever clients send
_SEARCHES: dict[bytes, Search] = {}
MAX_ATTRIBUTES = 256


def attribute(buf: bytes, start: int, stop: int) -> str:
    """An AttributeDescription, lowercased, options dropped; refused unless it is a
    descriptor or numeric OID (RFC 4512 §2.5)."""
    raw = ber.text(buf, start, stop)
    name = raw.split(";", 1)[0].lower()
    if (
        not name
        or len(name) > 256
        or not all(c.isascii() and (c.isalnum() or c in "-.") for c in name)
    ):
        if raw == "*" or raw == "+" or raw == "1.1":
            return raw
        raise BERError("bad attribute description")
    return name


def value(buf: bytes, start: int, stop: int) -> str:
    """An assertion value; bytes that are not UTF-8 stay distinct (they match nothing)."""
    return buf[start:stop].decode("utf-8", "surrogateescape")


def decode_message(pdu: bytes) -> Message:
    """The message in `pdu` (one whole framed LDAPMessage)."""
    start, stop = ber.expect(pdu, 0, len(pdu), ber.SEQUENCE)
    if stop != len(pdu):
        raise BERError("trailing bytes after the message")
    id_start, id_stop = ber.expect(pdu, start, stop, ber.INTEGER)
    message_id = ber.integer(pdu, id_start, id_stop)
    if not 0 <= message_id <= 2**31 - 1:
        raise BERError("messageID out of range")
    tag, op_start, op_stop = ber.tlv(pdu, id_stop, stop)
    op: Op
    if tag == 0x63 and op_stop - id_stop <= MAX_REMEMBERED_BYTES:  # repeated: decode once
        key = pdu[id_stop:op_stop]
        remembered = _SEARCHES.get(key)
        if remembered is None:
            remembered = dataclasses.replace(_search(pdu, op_start, op_stop), small=True)
            if len(_SEARCHES) >= MAX_REMEMBERED:
                _SEARCHES.clear()
            _SEARCHES[key] = remembered
        op = remembered
    else:
        op = _op(pdu, tag, op_start, op_stop)
    found: tuple[Control, ...] = ()
    if op_stop < stop:
        ctag, c_start, c_stop = ber.tlv(pdu, op_stop, stop)
        if ctag != 0xA0 or c_stop != stop:
            raise BERError("bad controls")
        found = _controls(pdu, c_start, c_stop)
    return Message(message_id, op, found)


def _controls(buf: bytes, start: int, stop: int) -> tuple[Control, ...]:
    out = []
    for tag, s, e in ber.children(buf, start, stop):
        if tag != ber.SEQUENCE:
            raise BERError("a control is a SEQUENCE")
        parts = ber.children(buf, s, e)
        if not parts or parts[0][0] != ber.OCTET_STRING or len(parts) > 3:
            raise BERError("bad control")
        oid = ber.text(buf, parts[0][1], parts[0][2])
        critical, val = False, None
        for ptag, ps, pe in parts[1:]:
            if ptag == ber.BOOLEAN and val is None:
                critical = ber.boolean(buf, ps, pe)
            elif ptag == ber.OCTET_STRING and val is None:
                val = buf[ps:pe]
            else:
                raise BERError("bad control")
        out.append(Control(oid, critical, val))
    return tuple(out)


def _op(buf: bytes, tag: int, start: int, stop: int) -> Op:
    if tag == 0x60:
        return _bind(buf, start, stop)
    if tag == 0x63:
        return _search(buf, start, stop)
    if tag == 0x42:
        if stop != start:
            raise BERError("an UnbindRequest is NULL")
        return Unbind()
    if tag == 0x77:
        return _extended(buf, start, stop)
    if tag == 0x6E:
        return _compare(buf, start, stop)
    if tag == 0x50:
        return Abandon(ber.integer(buf, start, stop))
    if tag in _UNSUPPORTED:
        if tag != 0x4A:
            ber.children(buf, start, stop)  # well-formed inside
        return Unsupported(_UNSUPPORTED[tag])
    raise BERError(f"unknown protocolOp 0x{tag:02x}")


def _bind(buf: bytes, start: int, stop: int) -> Bind:
    v_start, v_stop = ber.expect(buf, start, stop, ber.INTEGER)
    version = ber.integer(buf, v_start, v_stop)
    n_start, n_stop = ber.expect(buf, v_stop, stop, ber.OCTET_STRING)
    name = ber.text(buf, n_start, n_stop)
    tag, a_start, a_stop = ber.tlv(buf, n_stop, stop)
    if a_stop != stop:
        raise BERError("trailing bytes in BindRequest")
    if tag == 0x80:
        return Bind(version, name, buf[a_start:a_stop])
    if tag == 0xA3:
        m_start, m_stop = ber.expect(buf, a_start, a_stop, ber.OCTET_STRING)
        return Bind(version, name, None, ber.text(buf, m_start, m_stop))
    raise BERError("unknown authentication choice")


def _search(buf: bytes, start: int, stop: int) -> Search:
    s, e = ber.expect(buf, start, stop, ber.OCTET_STRING)
    base = ber.text(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.ENUMERATED)
    scope = ber.integer(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.ENUMERATED)
    deref = ber.integer(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.INTEGER)
    size_limit = ber.integer(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.INTEGER)
    time_limit = ber.integer(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.BOOLEAN)
    types_only = ber.boolean(buf, s, e)
    if scope not in (0, 1, 2, 3) or not 0 <= deref <= 3 or size_limit < 0 or time_limit < 0:
        raise BERError("bad search parameters")
    tag, fs, fe = ber.tlv(buf, e, stop)
    budget = [ber.MAX_FILTER_NODES]
    flt = _filter(buf, tag, fs, fe, 0, budget)
    s, e = ber.expect(buf, fe, stop, ber.SEQUENCE)
    if e != stop:
        raise BERError("trailing bytes in SearchRequest")
    names: list[str] = []
    for atag, a_s, a_e in ber.children(buf, s, e):
        if atag != ber.OCTET_STRING:
            raise BERError("an attribute selector is an OCTET STRING")
        if len(names) >= MAX_ATTRIBUTES:
            raise BERError("too many attribute selectors")
        names.append(_selector(buf, a_s, a_e))
    return Search(base, scope, deref, size_limit, time_limit, types_only, flt, tuple(names))


def _selector(buf: bytes, start: int, stop: int) -> str:
    """An attribute selector: a description, `*`, `+`, `1.1`; anything else is kept lowercased
    (RFC 4511 §4.5.1.8: unrecognised selectors are ignored, not errors)."""
    return ber.text(buf, start, stop).split(";", 1)[0].lower()


def _filter(buf: bytes, tag: int, start: int, stop: int, depth: int, budget: list[int]) -> Filter:
    budget[0] -= 1
    if depth > ber.MAX_FILTER_DEPTH or budget[0] < 0:
        raise BERError("filter too deep or too large")
    if tag in (0xA0, 0xA1):
        items = tuple(
            _filter(buf, t, s, e, depth + 1, budget) for t, s, e in ber.children(buf, start, stop)
        )
        if not items:  # RFC 4526 absolute true / false
            return And(()) if tag == 0xA0 else Or(())
        return And(items) if tag == 0xA0 else Or(items)
    if tag == 0xA2:
        t, s, e = ber.tlv(buf, start, stop)
        if e != stop:
            raise BERError("a NOT filter holds one filter")
        return Not(_filter(buf, t, s, e, depth + 1, budget))
    if tag in (0xA3, 0xA5, 0xA6, 0xA8):
        s, e = ber.expect(buf, start, stop, ber.OCTET_STRING)
        attr = attribute(buf, s, e)
        vs, ve = ber.expect(buf, e, stop, ber.OCTET_STRING)
        if ve != stop:
            raise BERError("trailing bytes in an assertion")
        val = value(buf, vs, ve)
        if tag == 0xA3:
            return Equal(attr, val)
        if tag == 0xA5:
            return GreaterOrEqual(attr, val)
        if tag == 0xA6:
            return LessOrEqual(attr, val)
        return Approx(attr, val)
    if tag == 0x87:
        return Present(attribute(buf, start, stop))
    if tag == 0xA4:
        return _substrings(buf, start, stop)
    if tag == 0xA9:
        return _extensible(buf, start, stop)
    raise BERError(f"unknown filter 0x{tag:02x}")


def _substrings(buf: bytes, start: int, stop: int) -> Substrings:
    s, e = ber.expect(buf, start, stop, ber.OCTET_STRING)
    attr = attribute(buf, s, e)
    ss, se = ber.expect(buf, e, stop, ber.SEQUENCE)
    if se != stop:
        raise BERError("trailing bytes in substrings")
    initial: str | None = None
    final: str | None = None
    middle: list[str] = []
    parts = ber.children(buf, ss, se)
    if not parts:
        raise BERError("substrings need at least one part")
    for i, (t, ps, pe) in enumerate(parts):
        text = value(buf, ps, pe)
        if t == 0x80 and i == 0:
            initial = text
        elif t == 0x81:
            middle.append(text)
        elif t == 0x82 and i == len(parts) - 1:
            final = text
        else:
            raise BERError("substrings out of order")
    return Substrings(attr, initial, tuple(middle), final)


def _extensible(buf: bytes, start: int, stop: int) -> Extensible:
    rule = attr = val = None
    dn_attributes = False
    last = 0
    for t, s, e in ber.children(buf, start, stop):
        order = {0x81: 1, 0x82: 2, 0x83: 3, 0x84: 4}.get(t)
        if order is None or order <= last:
            raise BERError("bad extensible match")
        last = order
        if t == 0x81:
            rule = ber.text(buf, s, e)
        elif t == 0x82:
            attr = attribute(buf, s, e)
        elif t == 0x83:
            val = value(buf, s, e)
        else:
            dn_attributes = ber.boolean(buf, s, e)
    if val is None or (rule is None and attr is None):
        raise BERError("an extensible match needs a value and a rule or type")
    return Extensible(rule, attr, val, dn_attributes)


def _compare(buf: bytes, start: int, stop: int) -> Compare:
    s, e = ber.expect(buf, start, stop, ber.OCTET_STRING)
    dn = ber.text(buf, s, e)
    a_s, a_e = ber.expect(buf, e, stop, ber.SEQUENCE)
    if a_e != stop:
        raise BERError("trailing bytes in CompareRequest")
    s, e = ber.expect(buf, a_s, a_e, ber.OCTET_STRING)
    attr = attribute(buf, s, e)
    vs, ve = ber.expect(buf, e, a_e, ber.OCTET_STRING)
    if ve != a_e:
        raise BERError("trailing bytes in an assertion")
    return Compare(dn, attr, value(buf, vs, ve))


def _extended(buf: bytes, start: int, stop: int) -> Extended:
    s, e = ber.expect(buf, start, stop, 0x80)
    name = ber.text(buf, s, e)
    val = None
    if e < stop:
        vs, ve = ber.expect(buf, e, stop, 0x81)
        if ve != stop:
            raise BERError("trailing bytes in ExtendedRequest")
        val = buf[vs:ve]
    return Extended(name, val)


def paged_control(raw: bytes | None) -> tuple[int, bytes]:
    """`(size, cookie)` of a Simple Paged Results control value (RFC 2696)."""
    if raw is None:
        raise BERError("the paged results control needs a value")
    s, e = ber.expect(raw, 0, len(raw), ber.SEQUENCE)
    if e != len(raw):
        raise BERError("trailing bytes in the paged results control")
    ss, se = ber.expect(raw, s, e, ber.INTEGER)
    size = ber.integer(raw, ss, se)
    cs, ce = ber.expect(raw, se, e, ber.OCTET_STRING)
    if ce != e or size < 0:
        raise BERError("bad paged results control")
    return size, raw[cs:ce]


def password_modify(raw: bytes | None) -> tuple[str | None, bytes | None, bytes | None]:
    """`(userIdentity, oldPasswd, newPasswd)` of an RFC 3062 request value."""
    if raw is None:
        return None, None, None
    s, e = ber.expect(raw, 0, len(raw), ber.SEQUENCE)
    if e != len(raw):
        raise BERError("trailing bytes in the password modify request")
    found: dict[int, bytes] = {}
    last = -1
    for t, ps, pe in ber.children(raw, s, e):
        if t not in (0x80, 0x81, 0x82) or t <= last:
            raise BERError("bad password modify request")
        last = t
        found[t] = raw[ps:pe]
    user = found.get(0x80)
    return (
        user.decode("utf-8", "surrogateescape") if user is not None else None,
        found.get(0x81),
        found.get(0x82),
    )
