"""The DIT of one provider, built from the core's directory records (`core.wire.ldap`).

authentik's layout: the root `<base_dn>` (`top`, `domain`); containers `ou=users`, `ou=groups`,
`ou=virtual-groups`; a user `cn=<username>,ou=users,<base>`; a group `cn=<name>,ou=groups,<base>`
(members: users and child groups); one virtual group per user
`cn=<username>,ou=virtual-groups,<base>` whose gidNumber is the user's uidNumber. uidNumber is
`uid_start_number + pk`, a group's gidNumber `gid_start_number + num_pk` (a user's or group's own
`uidNumber` / `gidNumber` attribute wins), timestamps are generalized time, the objects' custom
attributes are flattened into LDAP attributes (keys sanitised, `%s` in a value is the username).

`build(config, users, groups)` gives the entries in DIT order; `root_dse(bases)` the entry at
`""`. An `Entry` keeps its attributes under lowercased names, each with the name as shown and its
values, and the values normalised for matching (`norm`: lowercased, DN values in `dn.normalize`
form). Used by `directory` (indexing and searching) and `provider`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tessera.core.wire import ldap as wire
from tessera.outposts.ldap import dn

USER_CLASSES = (
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "user",
    "posixAccount",
    "goauthentik.io/ldap/user",
)
GROUP_CLASSES = (
    "group",
    "groupOfUniqueNames",
    "groupOfNames",
    "posixGroup",
    "goauthentik.io/ldap/group",
)
VIRTUAL_GROUP_CLASSES = (
    "group",
    "groupOfUniqueNames",
    "groupOfNames",
    "goauthentik.io/ldap/group",
    "goauthentik.io/ldap/virtual-group",
)
OPERATIONAL = frozenset(
    {"entryuuid", "createtimestamp", "modifytimestamp", "subschemasubentry", "entrydn"}
)
DN_VALUED = frozenset({"member", "memberof", "uniquemember", "namingcontexts", "entrydn"})
NUMERIC = frozenset({"uidnumber", "gidnumber"})
# Names an attribute is also known by (RFC 4519), lowercased -> the DIT's name, lowercased.
ALIASES = {
    "commonname": "cn",
    "surname": "sn",
    "userid": "uid",
    "gn": "givenname",
    "rfc822mailbox": "mail",
    "emailaddress": "mail",
}
# Attributes the DIT computes that custom attributes may not replace (the DN and memberships
# would contradict themselves).
PROTECTED = frozenset({"objectclass", "cn", "member", "memberof", "entryuuid"})
PAGED_RESULTS = "1.2.840.113556.1.4.319"
START_TLS = "1.3.6.1.4.1.1466.20037"
WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"
PASSWORD_MODIFY = "1.3.6.1.4.1.4203.1.11.1"  # noqa: S105 - an OID, not a password
_KEY = re.compile(r"[^A-Za-z0-9-]")
MAX_FLATTEN_DEPTH = 4
Values = Collection[str]
SET_FROM = 8  # values of one attribute from which membership tests use a set
# Multi-valued lists many entries share (objectClass), kept once. Bounded: values repeating
# across entries are few; unique ones are not kept once the table is full.
_SHARED: dict[tuple[str, ...], tuple[str, ...]] = {}
MAX_SHARED = 4096


@dataclass(eq=False, slots=True)
class Entry:
    dn: str
    ndn: str
    parent: str
    attrs: dict[str, tuple[str, tuple[str, ...]]]
    norm: dict[str, Values]  # values as matching compares them
    operational: frozenset[str] = OPERATIONAL
    ordinal: int = 0
    encoded: dict[tuple[str, ...], bytes] = field(default_factory=dict)

    def values(self, name: str) -> tuple[str, ...]:
        found = self.attrs.get(name)
        return found[1] if found else ()


def canonical(name: str) -> str:
    """An attribute name lowercased and un-aliased (`commonName` → `cn`)."""
    low = name.lower()
    return ALIASES.get(low, low)


def norm_value(attr: str, value: str) -> str:
    """`value` as matching compares it for attribute `attr` (lowercased canonical name)."""
    if attr in DN_VALUED:
        try:
            return dn.normalize(value)
        except dn.DNError:
            return value.lower()
    low = value.lower()
    return value if low == value else low  # the same object when already lowercase


def _share(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) < 2:
        return values
    found = _SHARED.get(values)
    if found is None and len(_SHARED) < MAX_SHARED:
        found = _SHARED[values] = values
    return found or values


def _values(normalized: tuple[str, ...]) -> Values:
    """A few values as a tuple (a frozenset costs 216 bytes at least), many as a set."""
    return frozenset(normalized) if len(normalized) > SET_FROM else _share(normalized)


def make_entry(
    entry_dn: str,
    pairs: Iterable[tuple[str, Iterable[str]]],
    operational: frozenset[str] = OPERATIONAL,
) -> Entry:
    attrs: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, values in pairs:
        vals = _share(tuple(v for v in values if v != ""))
        if vals:
            attrs[name.lower()] = (name, vals)
    norm = {
        key: _values(tuple(norm_value(key, v) for v in vals)) for key, (_n, vals) in attrs.items()
    }
    ndn = dn.normalize(entry_dn)
    return Entry(entry_dn, ndn, dn.parent(ndn) if ndn else "", attrs, norm, operational)


def generalized_time(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


def flatten(attributes: Mapping[str, Any], username: str) -> list[tuple[str, list[str]]]:
    """Custom attributes as LDAP attributes: keys sanitised (anything but letters, digits and
    `-` becomes `-`; nested mappings join their keys with `-`), scalars and lists of scalars as
    strings, booleans as TRUE/FALSE, `%s` in a string replaced by the username."""
    out: dict[str, tuple[str, list[str]]] = {}

    def add(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping):
            if depth < MAX_FLATTEN_DEPTH:
                for key, inner in value.items():
                    add(f"{prefix}-{key}" if prefix else str(key), inner, depth + 1)
            return
        items = value if isinstance(value, list) else [value]
        strings = [s for s in (_scalar(item, username) for item in items) if s is not None]
        name = _KEY.sub("-", prefix).strip("-")
        if not strings or not name:
            return
        if not name[0].isalpha():
            name = "ak-" + name
        out[name.lower()] = (name, strings)

    add("", attributes, 0)
    return list(out.values())


def _scalar(value: Any, username: str) -> str | None:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.replace("%s", username)
    return None


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _number(custom: Mapping[str, Any], key: str, default: int) -> int:
    value = custom.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class Layout:
    """Where a provider's entries live."""

    base: str
    uid_start: int
    gid_start: int

    @property
    def users(self) -> str:
        return f"ou=users,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base}"

    @property
    def virtual_groups(self) -> str:
        return f"ou=virtual-groups,{self.base}"

    def user_dn(self, username: str) -> str:
        return f"cn={dn.escape(username)},{self.users}"

    def group_dn(self, name: str) -> str:
        return f"cn={dn.escape(name)},{self.groups}"

    def virtual_group_dn(self, username: str) -> str:
        return f"cn={dn.escape(username)},{self.virtual_groups}"

    @classmethod
    def of(cls, config: wire.LDAPOutpostConfig) -> Layout:
        return cls(config.base_dn, config.uid_start_number, config.gid_start_number)


def user_entry(
    layout: Layout, user: wire.DirectoryUser, group_dns: Iterable[str]
) -> tuple[Entry, int]:
    """The user's entry and its uidNumber."""
    custom = flatten(user.attributes, user.username)
    uid_number = _number(user.attributes, "uidNumber", layout.uid_start + user.pk)
    gid_number = _number(user.attributes, "gidNumber", uid_number)
    name = user.name or user.username
    pairs: dict[str, tuple[str, list[str]]] = {}
    for key, values in (
        ("objectClass", list(USER_CLASSES)),
        ("cn", [user.username]),
        ("uid", [user.username]),
        ("sAMAccountName", [user.username]),
        ("name", [name]),
        ("displayName", [name]),
        ("sn", [name]),
        ("givenName", [name]),
        ("mail", [user.email]),
        ("memberOf", list(group_dns)),
        ("uidNumber", [str(uid_number)]),
        ("gidNumber", [str(gid_number)]),
        ("homeDirectory", [f"/home/{user.username}"]),
        ("loginShell", ["/bin/bash"]),
        ("ak-active", [_bool(user.is_active)]),
        ("ak-superuser", [_bool(user.is_superuser)]),
        ("entryUUID", [str(user.uuid)]),
        ("createTimestamp", [generalized_time(user.date_joined)]),
        ("modifyTimestamp", [generalized_time(user.last_updated)]),
    ):
        pairs[key.lower()] = (key, values)
    for key, values in custom:
        if key.lower() not in PROTECTED:
            pairs[key.lower()] = (key, values)
    return make_entry(layout.user_dn(user.username), pairs.values()), uid_number


def group_entry(
    layout: Layout, group: wire.DirectoryGroup, members: list[str], parents: list[str]
) -> Entry:
    gid_number = _number(group.attributes, "gidNumber", layout.gid_start + group.num_pk)
    pairs: dict[str, tuple[str, list[str]]] = {}
    for key, values in (
        ("objectClass", list(GROUP_CLASSES)),
        ("cn", [group.name]),
        ("uid", [str(group.pk)]),
        ("sAMAccountName", [group.name]),
        ("gidNumber", [str(gid_number)]),
        ("member", members),
        ("memberOf", parents),
        ("ak-superuser", [_bool(group.is_superuser)]),
        ("entryUUID", [str(group.pk)]),
    ):
        pairs[key.lower()] = (key, values)
    for key, values in flatten(group.attributes, group.name):
        if key.lower() not in PROTECTED:
            pairs[key.lower()] = (key, values)
    return make_entry(layout.group_dn(group.name), pairs.values())


def virtual_group_entry(layout: Layout, username: str, uid_number: int) -> Entry:
    return make_entry(
        layout.virtual_group_dn(username),
        [
            ("objectClass", VIRTUAL_GROUP_CLASSES),
            ("cn", [username]),
            ("uid", [username]),
            ("sAMAccountName", [username]),
            ("gidNumber", [str(uid_number)]),
            ("member", [layout.user_dn(username)]),
        ],
    )


def containers(layout: Layout) -> list[Entry]:
    first, value, _parent = dn.first_rdn(dn.normalize(layout.base))
    root_pairs: list[tuple[str, list[str]]] = [("objectClass", ["top", "domain"])]
    if first == "dc":
        root_pairs.append(("dc", [value]))
    return [
        make_entry(layout.base, root_pairs),
        make_entry(layout.users, [("objectClass", ["top", "nsContainer"]), ("ou", ["users"])]),
        make_entry(layout.groups, [("objectClass", ["top", "nsContainer"]), ("ou", ["groups"])]),
        make_entry(
            layout.virtual_groups,
            [("objectClass", ["top", "nsContainer"]), ("ou", ["virtual-groups"])],
        ),
    ]


def build(
    layout: Layout,
    users: Iterable[wire.DirectoryUser],
    groups: Iterable[wire.DirectoryGroup],
    group_names: Mapping[str, str] | None = None,
) -> list[Entry]:
    """Every entry of the provider's DIT, in DIT order (containers, users, groups, virtual
    groups). Memberships naming objects not in `users`/`groups` are left out, except that a
    user's memberOf also names groups known only by `group_names` (pk -> name)."""
    users = sorted(users, key=lambda u: u.pk)
    groups = sorted(groups, key=lambda g: g.num_pk)
    group_dn = {g.pk: layout.group_dn(g.name) for g in groups}
    named = {pk: layout.group_dn(name) for pk, name in (group_names or {}).items()}
    user_dn = {u.pk: layout.user_dn(u.username) for u in users}
    children: dict[Any, list[str]] = {}
    for g in groups:
        for parent in g.parents:
            children.setdefault(parent, []).append(group_dn[g.pk])
    member_of: dict[int, list[str]] = {}
    for g in groups:
        for pk in g.users:
            member_of.setdefault(pk, []).append(group_dn[g.pk])
    entries = containers(layout)
    virtual: list[Entry] = []
    for u in users:
        # the user's own list of groups and the groups' lists of users should agree; take both
        mine = [group_dn.get(k) or named[k] for k in u.groups if k in group_dn or k in named]
        mine += [d for d in member_of.get(u.pk, []) if d not in mine]
        entry, uid_number = user_entry(layout, u, mine)
        entries.append(entry)
        virtual.append(virtual_group_entry(layout, u.username, uid_number))
    users_of: dict[Any, list[str]] = {g.pk: [] for g in groups}
    for u in users:
        for key in u.groups:
            if key in users_of:
                users_of[key].append(user_dn[u.pk])
    for g in groups:
        members = users_of[g.pk]
        seen = set(members)
        members += [user_dn[pk] for pk in g.users if pk in user_dn and user_dn[pk] not in seen]
        members += children.get(g.pk, [])
        parents = [group_dn[p] for p in g.parents if p in group_dn]
        entries.append(group_entry(layout, g, members, parents))
    entries.extend(virtual)
    return entries


def root_dse(bases: Iterable[str]) -> Entry:
    """The entry at `""` (RFC 4512 §5.1): its attributes other than objectClass are
    operational, returned when asked for by name or with `+`."""
    pairs: list[tuple[str, list[str]]] = [
        ("objectClass", ["top"]),
        ("namingContexts", list(bases)),
        ("supportedLDAPVersion", ["3"]),
        ("supportedControl", [PAGED_RESULTS]),
        ("supportedExtension", [START_TLS, WHO_AM_I, PASSWORD_MODIFY]),
        ("supportedSASLMechanisms", []),
        ("vendorName", ["Tessera"]),
        ("subschemaSubentry", ["cn=subschema"]),
    ]
    names = frozenset(name.lower() for name, _ in pairs if name != "objectClass")
    return make_entry("", pairs, operational=names)
