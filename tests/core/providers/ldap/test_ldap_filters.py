"""The core's RFC 4515 parser (`providers.ldap.filters`), checked against ldaptor's: every filter
ldaptor parses, ours parses to the same tree; what ldaptor refuses, ours refuses too (with
`FilterError`, never another exception). The bind password's code suffix rule, and DN folding."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor import ldapfilter
from ldaptor.protocols import pureldap

from tessera.core.providers.ldap import bind, filters, records

# Filters the LDAP clients of the issue send (Jellyfin, Nextcloud, Gitea, SSSD), and RFC 4515's.
CLIENT_FILTERS = [
    "(uid=alice)",
    "(&(objectClass=inetOrgPerson)(uid=alice))",
    "(&(objectclass=inetOrgPerson)(|(uid=alice)(mail=alice@example.com)))",
    "(&(objectClass=posixAccount)(uid=*))",
    "(&(|(objectclass=inetOrgPerson))(|(memberof=cn=nextcloud,ou=groups,dc=ldap,dc=goauthentik,dc=io)))",
    "(&(objectClass=groupOfNames)(member=cn=alice,ou=users,dc=ldap,dc=goauthentik,dc=io))",
    "(&(objectClass=posixGroup)(gidNumber=4001))",
    "(&(objectClass=posixAccount)(uidNumber>=2000)(!(uidNumber=2001)))",
    "(cn=Babs J*)",
    "(o=univ*of*mich*)",
    "(seeAlso=)",
    "(cn=*\\2A*)",
    "(filename=C:\\5cMyFile)",
    "(sn~=smith)",
    "(memberOf:1.2.840.113556.1.4.1941:=cn=staff,ou=groups,dc=x)",
    "(cn:caseExactMatch:=Fred Flintstone)",
    "(:dn:2.4.6.8.10:=Dino)",
]


def _ours(node: filters.Node) -> tuple[object, ...]:
    if node.op in ("and", "or"):
        return (node.op, tuple(_ours(c) for c in node.children))
    if node.op == "not":
        return ("not", _ours(node.children[0]))
    if node.op == "substrings":
        return ("substrings", node.attribute.lower(), node.parts)
    if node.op == "present":
        return ("present", node.attribute.lower())
    return (node.op, node.attribute.lower(), node.value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _theirs(f: object) -> tuple[object, ...] | None:
    """ldaptor's tree in our shape (None: a kind we take whole, not compared)."""
    if isinstance(f, pureldap.LDAPFilter_and | pureldap.LDAPFilter_or):
        op = "and" if isinstance(f, pureldap.LDAPFilter_and) else "or"
        return (op, tuple(_theirs(c) for c in f))
    if isinstance(f, pureldap.LDAPFilter_not):
        return ("not", _theirs(f.value))
    if isinstance(f, pureldap.LDAPFilter_present):
        return ("present", _text(f.value).lower())
    if isinstance(f, pureldap.LDAPFilter_substrings):
        parts: list[str] = []
        kinds = [type(s).__name__ for s in f.substrings]
        values = [_text(s.value) for s in f.substrings]
        parts.append(values.pop(0) if kinds[0].endswith("initial") else "")
        final = values.pop() if kinds[-1].endswith("final") else ""
        return ("substrings", _text(f.type).lower(), (*parts, *values, final))
    names = {
        pureldap.LDAPFilter_equalityMatch: "eq",
        pureldap.LDAPFilter_greaterOrEqual: "ge",
        pureldap.LDAPFilter_lessOrEqual: "le",
        pureldap.LDAPFilter_approxMatch: "approx",
    }
    for kind, op in names.items():
        if isinstance(f, kind):
            return (op, _text(f.attributeDesc.value).lower(), _text(f.assertionValue.value))
    return None


@pytest.mark.parametrize("text", CLIENT_FILTERS)
def test_client_filters_parse_as_ldaptor_parses_them(text: str) -> None:
    ours = filters.parse(text)
    try:
        theirs = _theirs(ldapfilter.parseFilter(text))
    except ldapfilter.InvalidLDAPFilter:
        return  # ldaptor refuses an empty value, which RFC 4515 allows: ours takes it
    if theirs is not None and "extensible" not in repr(_ours(ours)):
        assert _ours(ours) == theirs


@pytest.mark.parametrize(
    "text",
    ["", "(", ")", "(uid=a", "(uid=a))", "(&(uid=a)", "(=a)", "(uid~a)", "(uid=\\4)", "(a=\\ff)"],
)
def test_malformed_filters_are_filter_errors(text: str) -> None:
    with pytest.raises(filters.FilterError):
        filters.parse(text)


def test_depth_and_size_are_bounded() -> None:
    with pytest.raises(filters.FilterError):
        filters.parse("(!" * (filters.MAX_DEPTH + 1) + "(a=b)" + ")" * (filters.MAX_DEPTH + 1))
    with pytest.raises(filters.FilterError):
        filters.parse("(|" + "(a=b)" * (filters.MAX_NODES + 1) + ")")
    assert filters.parse("uid=bare").op == "eq"  # as ldapsearch takes it, without parentheses


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()&|!=*~<>:\\abc0123456789 \x00é", max_size=60))
def test_arbitrary_text_is_parsed_or_refused_never_crashes(text: str) -> None:
    with contextlib.suppress(filters.FilterError):
        filters.parse(text)


@pytest.mark.parametrize(
    ("given", "mfa", "expected"),
    [
        ("pw;123456", True, ("pw", "123456")),
        ("pw;a1b2c3d4", True, ("pw", "a1b2c3d4")),
        ("p;w;123456", True, ("p;w", "123456")),
        ("pw;12345", True, ("pw;12345", "")),
        ("pw;1234567", True, ("pw;1234567", "")),
        ("pw;abc-1234", True, ("pw;abc-1234", "")),
        ("pw;١٢٣٤٥٦", True, ("pw;١٢٣٤٥٦", "")),  # Arabic-Indic digits are no code
        ("pw;123456", False, ("pw;123456", "")),
        ("pw", True, ("pw", "")),
    ],
)
def test_the_code_suffix(given: str, mfa: bool, expected: tuple[str, str]) -> None:
    assert bind.split_code(given, mfa) == expected


def test_dns_fold_to_one_spelling() -> None:
    assert records.fold_dn("DC=Example , dc=COM") == "dc=example,dc=com"
    assert records.fold_dn(r"cn=a\,b,dc=x") == r"cn=a\,b,dc=x"
    assert records.fold_dn("2.5.4.3=x,dc=y") == "2.5.4.3=x,dc=y"
    for bad in ("", "dc", "dc=", "=x", "dc=a,,dc=b", "d c=a", "dc=a\\"):
        with pytest.raises(ValueError, match=r"DN|pair|control"):
            records.fold_dn(bad)
