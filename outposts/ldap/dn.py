"""Distinguished names (RFC 4514): escaping values into DNs, and a normal form to compare them.

`normalize("CN=Alice, OU=users,DC=ldap")` is `"cn=alice,ou=users,dc=ldap"`: attribute types
and values lowercased (every naming attribute of the DIT matches case-insensitively), spaces
around separators dropped, values re-escaped canonically, multi-valued RDNs sorted. Plain DNs
take a fast path; DNs with escapes, quotes or `+` go through ldaptor's RFC 4514 parser.
`escape` builds the DNs of entries (`dit`). Used by `dit`, `directory` and `binds`.
"""

from __future__ import annotations

import functools

from ldaptor.protocols.ldap import distinguishedname  # type: ignore[import-untyped]

_SPECIAL = frozenset(',+"\\<>;=\x00')


class DNError(ValueError):
    """Not a distinguished name."""


def escape(value: str) -> str:
    """An attribute value escaped for a DN string (RFC 4514 §2.4)."""
    out = []
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch in _SPECIAL or (ch == " " and i in (0, last)) or (ch == "#" and i == 0):
            out.append("\\" + ch if ch != "\x00" else "\\00")
        else:
            out.append(ch)
    return "".join(out)


MAX_DN = 8192  # characters; longer is no DN of this directory
CACHED_DN = 512  # only DNs up to this long are remembered


def normalize(dn: str) -> str:
    """The normal form of `dn` (`""` for the empty DN); `DNError` when it does not parse.
    Normal forms of short DNs are remembered (binds and searches repeat them)."""
    # SECURITY: bounded, and only short DNs cached: hostile DNs cannot fill memory
    if len(dn) > MAX_DN:
        raise DNError("DN too long")
    return _remembered(dn) if len(dn) <= CACHED_DN else _normalize(dn)


@functools.lru_cache(maxsize=65536)
def _remembered(dn: str) -> str:
    return _normalize(dn)


def _normalize(dn: str) -> str:
    if not any(ch in dn for ch in '\\"+#'):
        rdns = []
        for part in dn.split(","):
            atype, sep, val = part.partition("=")
            atype, val = atype.strip().lower(), val.strip().lower()
            if not sep or not atype or not val:
                if dn.strip() == "":
                    return ""
                raise DNError(f"not a DN: {dn[:80]!r}")
            rdns.append(f"{atype}={escape(val)}")
        return ",".join(rdns)
    try:
        parsed = distinguishedname.DistinguishedName(stringValue=dn)
    except (ValueError, TypeError, AssertionError, IndexError, KeyError) as exc:
        raise DNError(f"not a DN: {dn[:80]!r}") from exc
    rdns = []
    for rdn in parsed.split():
        avas = sorted(
            f"{ava.attributeType.strip().lower()}={escape(ava.value.lower())}"
            for ava in rdn.split()
        )
        rdns.append("+".join(avas))
    return ",".join(rdns)


def first_rdn(normal: str) -> tuple[str, str, str]:
    """`(type, value, parent)` of a normalized DN's first RDN, the value unescaped."""
    i = 0
    while True:
        j = normal.find(",", i)
        if j == -1 or normal[j - 1] != "\\" or _escaped_backslash(normal, j - 1):
            break
        i = j + 1
    head, parent = (normal, "") if j == -1 else (normal[:j], normal[j + 1 :])
    atype, _, val = head.partition("=")
    return atype, _unescape(val), parent


def _escaped_backslash(text: str, at: int) -> bool:
    count = 0
    while at >= 0 and text[at] == "\\":
        count += 1
        at -= 1
    return count % 2 == 0


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "0" and value[i + 1 : i + 3] == "00":
                out.append("\x00")
                i += 3
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parent(normal: str) -> str:
    return first_rdn(normal)[2]


def is_under(normal: str, base: str) -> bool:
    """True when `normal` is `base` or below it (both normalized)."""
    return normal == base or not base or normal.endswith("," + base)
