"""RFC 4511 §4.5.1.7 filter evaluation over `dit.Entry`, and RFC 4515 text of a filter.

`compile_filter(f, resolve)` turns a decoded filter into a function `entry -> True | False |
None` (None: Undefined, which a search treats as not matching and NOT leaves Undefined).
Matching is case-insensitive (every attribute of the DIT is a directory string, DN or
integer); DN-valued attributes compare in `dn.normalize` form; uidNumber and gidNumber order as
integers; approximate match is equality. Extensible matches: no rule or an equality rule
(caseIgnoreMatch, caseExactMatch, distinguishedNameMatch, integerMatch, ...) is equality, with
`:dn` also over the entry's RDN values; Active Directory's bit rules (…803 AND, …804 OR) on
integers; …1941 (LDAP_MATCHING_RULE_IN_CHAIN) follows memberOf/member transitively through
`resolve` (DN → entry); any other rule is Undefined.

`to_text(f)` gives RFC 4515 text (the direct search mode sends it to the core).
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.outposts.ldap import dit, dn
from tessera.outposts.ldap import messages as m

Matcher = Callable[[dit.Entry], bool | None]
Resolve = Callable[[str], "dit.Entry | None"]

EQUALITY_RULES = frozenset(
    {
        "2.5.13.0",
        "2.5.13.1",
        "2.5.13.2",
        "2.5.13.5",
        "2.5.13.14",
        "objectidentifiermatch",
        "distinguishednamematch",
        "caseignorematch",
        "caseexactmatch",
        "integermatch",
        "caseignoreia5match",
        "caseexactia5match",
        "octetstringmatch",
        "2.5.13.17",
        "1.3.6.1.4.1.1466.109.114.1",
        "1.3.6.1.4.1.1466.109.114.2",
    }
)
BIT_AND = "1.2.840.113556.1.4.803"
BIT_OR = "1.2.840.113556.1.4.804"
IN_CHAIN = "1.2.840.113556.1.4.1941"
MAX_CHAIN = 64
_EMPTY: tuple[str, ...] = ()


def compile_filter(f: m.Filter, resolve: Resolve) -> Matcher:
    if isinstance(f, m.And):
        parts = [compile_filter(i, resolve) for i in f.items]
        return lambda e: _and(parts, e)
    if isinstance(f, m.Or):
        parts = [compile_filter(i, resolve) for i in f.items]
        return lambda e: _or(parts, e)
    if isinstance(f, m.Not):
        inner = compile_filter(f.item, resolve)

        def negate(e: dit.Entry) -> bool | None:
            r = inner(e)
            return None if r is None else not r

        return negate
    if isinstance(f, m.Equal | m.Approx):
        attr = dit.canonical(f.attr)
        want = dit.norm_value(attr, f.value)
        return lambda e: want in e.norm.get(attr, _EMPTY)
    if isinstance(f, m.Present):
        attr = dit.canonical(f.attr)
        if attr == "objectclass":
            return lambda e: True
        return lambda e: attr in e.attrs
    if isinstance(f, m.Substrings):
        return _substrings(f)
    if isinstance(f, m.GreaterOrEqual | m.LessOrEqual):
        return _ordering(f)
    return _extensible(f, resolve)


def _and(parts: list[Matcher], e: dit.Entry) -> bool | None:
    result: bool | None = True
    for p in parts:
        r = p(e)
        if r is False:
            return False
        if r is None:
            result = None
    return result


def _or(parts: list[Matcher], e: dit.Entry) -> bool | None:
    result: bool | None = False
    for p in parts:
        r = p(e)
        if r is True:
            return True
        if r is None:
            result = None
    return result


def _substrings(f: m.Substrings) -> Matcher:
    attr = dit.canonical(f.attr)
    initial = f.initial.lower() if f.initial is not None else ""
    final = f.final.lower() if f.final is not None else ""
    middle = [a.lower() for a in f.any]

    def one(value: str) -> bool:
        if not value.startswith(initial):
            return False
        pos = len(initial)
        for part in middle:
            found = value.find(part, pos)
            if found < 0:
                return False
            pos = found + len(part)
        return len(value) - pos >= len(final) and value.endswith(final)

    return lambda e: any(one(v) for v in e.norm.get(attr, _EMPTY))


def _ordering(f: m.GreaterOrEqual | m.LessOrEqual) -> Matcher:
    attr = dit.canonical(f.attr)
    ge = isinstance(f, m.GreaterOrEqual)
    if attr in dit.NUMERIC:
        try:
            bound = int(f.value)
        except ValueError:
            return lambda e: None
        return lambda e: any(
            (n >= bound if ge else n <= bound) for n in _ints(e.norm.get(attr, _EMPTY))
        )
    want = f.value.lower()
    return lambda e: any((v >= want if ge else v <= want) for v in e.norm.get(attr, _EMPTY))


def _ints(values: dit.Values) -> list[int]:
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            continue
    return out


def _extensible(f: m.Extensible, resolve: Resolve) -> Matcher:
    rule = (f.rule or "").lower()
    attr = dit.canonical(f.attr) if f.attr else None
    if rule in (BIT_AND, BIT_OR):
        return _bits(attr, f.value, rule == BIT_AND)
    if rule == IN_CHAIN:
        return _in_chain(attr, f.value, resolve)
    if rule and rule not in EQUALITY_RULES:
        return lambda e: None
    if attr is None:
        return lambda e: _any_attribute(e, f.value, f.dn_attributes)
    want = dit.norm_value(attr, f.value)

    def match(e: dit.Entry) -> bool:
        if want in e.norm.get(attr, _EMPTY):
            return True
        return f.dn_attributes and _in_rdns(e, attr, f.value.lower())

    return match


def _any_attribute(e: dit.Entry, value: str, dn_attributes: bool) -> bool:
    for attr, values in e.norm.items():
        if dit.norm_value(attr, value) in values:
            return True
    return dn_attributes and _in_rdns(e, None, value.lower())


def _in_rdns(e: dit.Entry, attr: str | None, value: str) -> bool:
    rest = e.ndn
    while rest:
        atype, val, rest = dn.first_rdn(rest)
        if val == value and (attr is None or atype == attr):
            return True
    return False


def _bits(attr: str | None, value: str, all_bits: bool) -> Matcher:
    try:
        mask = int(value)
    except ValueError:
        return lambda e: None
    if attr is None:
        return lambda e: None

    def match(e: dit.Entry) -> bool:
        for n in _ints(e.norm.get(attr, _EMPTY)):
            if (n & mask == mask) if all_bits else (n & mask != 0):
                return True
        return False

    return match


def _in_chain(attr: str | None, value: str, resolve: Resolve) -> Matcher:
    """memberOf / member through nested groups (AD's LDAP_MATCHING_RULE_IN_CHAIN)."""
    if attr not in ("memberof", "member"):
        return lambda e: None
    target = dit.norm_value("memberof", value)

    def match(e: dit.Entry) -> bool:
        seen: set[str] = set()
        todo = list(e.norm.get(attr, _EMPTY))
        while todo and len(seen) < MAX_CHAIN * 16:
            current = todo.pop()
            if current == target:
                return True
            if current in seen:
                continue
            seen.add(current)
            found = resolve(current)
            if found is not None:
                todo.extend(found.norm.get(attr, ()))
        return False

    return match


# Text (RFC 4515) ----------------------------------------------------------------------------


def escape_value(value: str) -> str:
    """RFC 4515 §3 escapes; bytes that were not UTF-8 (kept as surrogates) as `\\XX` too."""
    out = []
    for ch in value:
        if ch in "*()\\\x00":
            out.append(f"\\{ord(ch):02x}")
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def to_text(f: m.Filter) -> str:
    if isinstance(f, m.And):
        return "(&" + "".join(to_text(i) for i in f.items) + ")"
    if isinstance(f, m.Or):
        return "(|" + "".join(to_text(i) for i in f.items) + ")"
    if isinstance(f, m.Not):
        return "(!" + to_text(f.item) + ")"
    if isinstance(f, m.Equal):
        return f"({f.attr}={escape_value(f.value)})"
    if isinstance(f, m.Approx):
        return f"({f.attr}~={escape_value(f.value)})"
    if isinstance(f, m.GreaterOrEqual):
        return f"({f.attr}>={escape_value(f.value)})"
    if isinstance(f, m.LessOrEqual):
        return f"({f.attr}<={escape_value(f.value)})"
    if isinstance(f, m.Present):
        return f"({f.attr}=*)"
    if isinstance(f, m.Substrings):
        parts = [escape_value(f.initial or "")]
        parts += [escape_value(a) for a in f.any]
        parts.append(escape_value(f.final or ""))
        return f"({f.attr}=" + "*".join(parts) + ")"
    head = f.attr or ""
    if f.dn_attributes:
        head += ":dn"
    if f.rule:
        head += ":" + f.rule
    return f"({head}:={escape_value(f.value)})"
