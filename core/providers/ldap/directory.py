"""What an LDAP provider serves: its users and groups as `wire.ldap.Directory`, whole, changed
since a generation, or narrowed to what a search filter can match.

The directory is every user (but the outposts' own service accounts) and every group. Its
generation is the largest `seq` of `directory_changes`, the journal the store's triggers write on
every change of a user, group, membership, group parent or search grant (migration 0015); it
follows commit order. `read(tx, since)` answers only what changed after `since` while the journal
still reaches back that far (`Directory.partial`), else everything. The generation is read
before the rows, so an answer may hold changes newer than its generation (they come again next
time), never the other way round.

`search` serves direct search mode: without `search_full_directory` the searcher sees only
themselves and their groups; with it, the filter's indexed parts (`filters`) narrow the users
and groups read, and the answer carries what the outpost needs to build their entries (a user's
groups, a group's members, parents and children). Called by `calls` and `push`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tessera.core import store, wire
from tessera.core.identity import groups, journal, outposts, users
from tessera.core.providers.ldap import filters, records
from tessera.core.store import crud

JOURNAL = journal.TABLE
MAX_PARTIAL = 20_000  # journal rows a partial answer reads; more answer the whole directory
_ALL = 10_000_000  # a row limit that is no limit
_USER_CLASSES = frozenset(
    {"top", "person", "organizationalperson", "inetorgperson", "user", "posixaccount"}
    | {"goauthentik.io/ldap/user"}
)
_VIRTUAL_CLASSES = frozenset(
    {"group", "groupofuniquenames", "groupofnames", "goauthentik.io/ldap/group"}
    | {"goauthentik.io/ldap/virtual-group"}
)
_GROUP_CLASSES = frozenset(
    {"group", "groupofuniquenames", "groupofnames", "posixgroup", "goauthentik.io/ldap/group"}
)
# Attributes a user's or group's custom attributes may override in the outpost's entries (only
# objectClass, cn, member, memberOf and entryUUID are protected there).
_OVERRIDABLE = frozenset({"uid", "mail", "samaccountname"})


# The journal ----------------------------------------------------------------------------------


async def generation(tx: store.Tx) -> int:
    return int(await crud.max_value(tx, JOURNAL, "seq") or 0)


async def _oldest(tx: store.Tx) -> int | None:
    first = await crud.rows(tx, JOURNAL, [], ordering=("seq",), limit=1)
    return int(first[0]["seq"]) if first else None


async def changed_since(tx: store.Tx, since: int, until: int) -> tuple[set[int], set[str]] | None:
    """The users and groups the journal names in (since, until]; None when it no longer reaches
    back to `since` or names too many."""
    oldest = await _oldest(tx)
    if since > until or (oldest is not None and since < oldest - 1 and since < until):
        return None
    window = [crud.Filter("seq", "gt", since), crud.Filter("seq", "lte", until)]
    rows = await crud.rows(tx, JOURNAL, window, limit=MAX_PARTIAL + 1)
    if len(rows) > MAX_PARTIAL:
        return None
    user_pks = {int(r["object"]) for r in rows if r["kind"] == "user" and r["object"].isdigit()}
    group_pks = {r["object"] for r in rows if r["kind"] == "group"}
    return user_pks, group_pks


async def prune(tx: store.Tx, now: dt.datetime | None = None) -> int:
    """Drop old journal rows now (maintenance does it on its own schedule: `identity.journal`);
    outposts holding an older generation get the whole directory."""
    return await journal.remove_old(tx, None, now)


# Wire forms -----------------------------------------------------------------------------------


@dataclass
class Context:
    """What building wire objects needs, read once: the group tree and memberships."""

    tree: groups.Tree
    groups_of: dict[int, list[str]]  # user pk -> direct groups
    members_of: dict[str, list[int]]  # group pk -> direct members

    @classmethod
    async def load(cls, tx: store.Tx, user_pks: Iterable[int], group_pks: Iterable[str]) -> Context:
        tree = await groups.Tree.load(tx)
        return cls(
            tree,
            await crud.groups_of_users(tx, sorted(set(user_pks))),
            await crud.users_of_groups(tx, sorted(set(group_pks))),
        )


def user_wire(ctx: Context, row: dict[str, Any]) -> wire.ldap.DirectoryUser:
    direct = ctx.groups_of.get(row["pk"], [])
    return wire.ldap.DirectoryUser.model_construct(
        pk=row["pk"],
        uuid=row["uuid"],
        username=row["username"],
        name=row["name"],
        email=row["email"],
        is_active=row["is_active"],
        is_superuser=ctx.tree.any_superuser(direct),
        attributes=row["attributes"],
        groups=list(direct),
        date_joined=row["date_joined"],
        last_updated=row["last_updated"] or row["date_joined"],
    )


def group_wire(
    ctx: Context, row: dict[str, Any], only: set[int] | None = None
) -> wire.ldap.DirectoryGroup:
    """`only`: the members shown (a searcher without the permission sees only themselves)."""
    members = ctx.members_of.get(row["pk"], [])
    return wire.ldap.DirectoryGroup.model_construct(
        pk=row["pk"],
        num_pk=row["num_pk"],
        name=row["name"],
        is_superuser=row["is_superuser"],
        attributes=row["attributes"],
        parents=list(ctx.tree.parents.get(row["pk"], [])),
        users=[pk for pk in members if only is None or pk in only],
    )


def _served(row: dict[str, Any]) -> bool:
    """Outposts' service accounts are not in any directory."""
    return bool(row["type"] != outposts.SERVICE_ACCOUNT)


async def _user_rows(tx: store.Tx, filters_: list[crud.Filter]) -> list[dict[str, Any]]:
    return [r for r in await crud.rows(tx, users.TABLE, filters_, ("pk",), _ALL) if _served(r)]


async def build(
    tx: store.Tx, user_rows: list[dict[str, Any]], group_rows: list[dict[str, Any]], **kw: Any
) -> wire.ldap.Directory:
    ctx = await Context.load(tx, [u["pk"] for u in user_rows], [g["pk"] for g in group_rows])
    return wire.ldap.Directory.model_construct(
        users=[user_wire(ctx, u) for u in user_rows],
        groups=[group_wire(ctx, g) for g in sorted(group_rows, key=lambda g: g["num_pk"])],
        **{"partial": False, "deleted_users": [], "deleted_groups": [], **kw},
    )


# Whole and partial answers ----------------------------------------------------------------------


async def read(tx: store.Tx, since: int | None = None) -> wire.ldap.Directory:
    """The whole directory, or (`since`) what changed after that generation when the journal
    still reaches back to it."""
    now = await generation(tx)  # before the rows: see the module's docstring
    if since is not None:
        changed = await changed_since(tx, since, now)
        if changed is not None:
            return await _partial(tx, now, *changed)
    user_rows = await _user_rows(tx, [])
    group_rows = await crud.all_rows(tx, groups.TABLE)
    return await build(tx, user_rows, group_rows, generation=now)


async def _partial(
    tx: store.Tx, now: int, user_pks: set[int], group_pks: set[str]
) -> wire.ldap.Directory:
    group_rows = await crud.find_many(tx, groups.TABLE, "pk", sorted(group_pks))
    if group_rows:
        # A group's change may change its members' and its descendants' members' superuser
        # flag: they come too.
        tree = await groups.Tree.load(tx)
        below = descendants(tree, {g["pk"] for g in group_rows})
        user_pks |= {
            pk for m in (await crud.users_of_groups(tx, sorted(below))).values() for pk in m
        }
    user_rows = await crud.find_many(tx, users.TABLE, "pk", sorted(user_pks))
    found_users = {u["pk"] for u in user_rows}
    found_groups = {g["pk"] for g in group_rows}
    return await build(
        tx,
        [u for u in sorted(user_rows, key=lambda u: u["pk"]) if _served(u)],
        group_rows,
        generation=now,
        partial=True,
        deleted_users=sorted(user_pks - found_users),
        deleted_groups=sorted(group_pks - found_groups),
    )


def descendants(tree: groups.Tree, roots: set[str]) -> set[str]:
    """`roots` and every group below them."""
    children: dict[str, list[str]] = {}
    for child, parents in tree.parents.items():
        for parent in parents:
            children.setdefault(parent, []).append(child)
    seen: set[str] = set()
    queue = list(roots)
    while queue:
        pk = queue.pop()
        if pk not in seen:
            seen.add(pk)
            queue.extend(children.get(pk, ()))
    return seen


# One user's view --------------------------------------------------------------------------------


async def own_view(
    tx: store.Tx,
    user: dict[str, Any],
    tree: groups.Tree | None = None,
    direct: list[str] | None = None,
) -> tuple[wire.ldap.DirectoryUser, list[wire.ldap.DirectoryGroup]]:
    """The user, and their groups with those groups' ancestors, each showing only this user as
    a member (what a bind answers, and all that a searcher without the permission sees).
    `tree` and `direct` (the user's own groups): when the caller has read them."""
    tree = tree or await groups.Tree.load(tx)
    if direct is None:
        direct = (await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]]
    ancestors = list(dict.fromkeys(a for g in direct for a in tree.ancestors(g)))
    ctx = Context(tree, {user["pk"]: direct}, {g: [user["pk"]] for g in direct})
    shown = [group_wire(ctx, tree.rows[g], only={user["pk"]}) for g in ancestors]
    return user_wire(ctx, user), sorted(shown, key=lambda g: g.num_pk)


# Direct-mode search -------------------------------------------------------------------------


@dataclass
class Narrowed:
    """Candidate users and groups of a filter: pks, or None for "any"."""

    users: set[int] | None
    groups: set[str] | None


class Searcher:
    """Turns a parsed filter into candidate sets, one indexed query per leaf."""

    def __init__(self, tx: store.Tx, tree: groups.Tree, base_dn: str) -> None:
        self.tx = tx
        self.tree = tree
        self.base = base_dn  # folded
        self._with_attributes: tuple[set[int], set[str]] | None = None

    async def narrow(self, node: filters.Node) -> Narrowed:
        if node.op == "and":
            parts = [await self.narrow(c) for c in node.children]
            return Narrowed(_meet(p.users for p in parts), _meet(p.groups for p in parts))
        if node.op == "or":
            parts = [await self.narrow(c) for c in node.children]
            return Narrowed(_join(p.users for p in parts), _join(p.groups for p in parts))
        if node.op in ("eq", "approx"):
            return await self._equal(node.attribute.lower(), node.value)
        return Narrowed(None, None)  # not, present, substrings, ordering, extensible

    async def _equal(self, attribute: str, value: str) -> Narrowed:
        if attribute == "objectclass":
            v = value.lower()
            return Narrowed(
                None if v in _USER_CLASSES | _VIRTUAL_CLASSES else set(),
                None if v in _GROUP_CLASSES else set(),
            )
        if attribute in ("cn", "uid", "samaccountname"):
            found = await self._users([crud.Filter("username_folded", "eq", users.fold(value))])
            named = self._groups_named(value) if attribute != "uid" else self._group_pk(value)
            return await self._custom(attribute, found, named)
        if attribute == "mail":
            found = await self._users([crud.Filter("email", "ieq", value)])
            return await self._custom(attribute, found, set())
        if attribute == "entryuuid":
            return Narrowed(await self._by_uuid(value), self._group_pk(value))
        if attribute in ("memberof", "member"):
            return await self._membership(attribute, value)
        return Narrowed(None, None)

    async def _custom(self, attribute: str, users_: set[int], groups_: set[str]) -> Narrowed:
        """Add the users and groups whose custom attributes may override `attribute`."""
        if attribute in _OVERRIDABLE:
            if self._with_attributes is None:
                some = [crud.Filter("attributes", "ne", {})]
                found = {r["pk"] for r in await crud.rows(self.tx, users.TABLE, some, (), _ALL)}
                custom = {pk for pk, g in self.tree.rows.items() if g["attributes"]}
                self._with_attributes = (found, custom)
            users_ = users_ | self._with_attributes[0]
            groups_ = groups_ | self._with_attributes[1]
        return Narrowed(users_, groups_)

    async def _users(self, where: list[crud.Filter]) -> set[int]:
        return {r["pk"] for r in await crud.rows(self.tx, users.TABLE, where, (), _ALL)}

    async def _by_uuid(self, value: str) -> set[int]:
        try:
            wanted = str(uuid.UUID(value))
        except ValueError:
            return set()
        return await self._users([crud.Filter("uuid", "eq", wanted)])

    def _groups_named(self, value: str) -> set[str]:
        folded = value.casefold()
        return {pk for pk, g in self.tree.rows.items() if g["name"].casefold() == folded}

    def _group_pk(self, value: str) -> set[str]:
        try:
            wanted = str(uuid.UUID(value))
        except ValueError:
            return set()
        return {wanted} if wanted in self.tree.rows else set()

    async def _membership(self, attribute: str, value: str) -> Narrowed:
        """memberOf=<group DN> (users of the group or a group below it; groups below it) and
        member=<user or group DN> (groups holding it; the user, for their virtual group)."""
        parsed = _entry_of(value, self.base)
        if parsed is None:
            return Narrowed(None, None)
        container, name = parsed
        if container == "groups":
            named = self._groups_named(name)
            if attribute == "memberof":
                below = descendants(self.tree, named)
                found = await crud.users_of_groups(self.tx, sorted(below))
                return Narrowed({pk for m in found.values() for pk in m}, below - named)
            return Narrowed(set(), {p for g in named for p in self.tree.parents.get(g, [])})
        user = await self._users([crud.Filter("username_folded", "eq", users.fold(name))])
        if container == "users" and attribute == "member":
            direct = await crud.groups_of_users(self.tx, sorted(user))
            return Narrowed(user, {g for found in direct.values() for g in found})
        return Narrowed(user, set())  # a virtual group's DN: its user


def _entry_of(value: str, base: str) -> tuple[str, str] | None:
    """("users" | "groups" | "virtual-groups", cn) of a DN under this provider's tree."""
    try:
        folded = records.fold_dn(value)
    except ValueError:
        return None
    for container in ("users", "groups", "virtual-groups"):
        suffix = f",ou={container},{base}"
        if folded.endswith(suffix) and folded.startswith("cn="):
            name = folded[3 : -len(suffix)]
            if "," not in name.replace("\\,", ""):
                return container, _dn_value(value.split(",", 1)[0].partition("=")[2])
    return None


def _dn_value(raw: str) -> str:
    """An RDN value with its RFC 4514 escapes (`\\,`, `\\XX`) resolved."""
    out, i = [], 0
    raw = raw.strip()
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            pair = raw[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(chr(int(pair, 16)))
                i += 3
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return "".join(out)


def _meet(sets: Iterable[set[Any] | None]) -> set[Any] | None:
    out: set[Any] | None = None
    for s in sets:
        if s is not None:
            out = set(s) if out is None else out & s
    return out


def _join(sets: Iterable[set[Any] | None]) -> set[Any] | None:
    out: set[Any] = set()
    for s in sets:
        if s is None:
            return None
        out |= s
    return out


async def search(
    tx: store.Tx,
    provider: dict[str, Any],
    user: dict[str, Any],
    may_search: bool,
    request: wire.ldap.SearchRequest,
) -> wire.ldap.Directory:
    """The users and groups `request.filter` can match for this searcher (a superset)."""
    node = filters.parse(request.filter)  # malformed text is refused whoever searches
    now = await generation(tx)
    if not may_search:
        me, mine = await own_view(tx, user)
        return wire.ldap.Directory.model_construct(
            generation=now,
            partial=False,
            users=[me] if request.want_users else [],
            groups=mine if request.want_groups else [],
            deleted_users=[],
            deleted_groups=[],
        )
    tree = await groups.Tree.load(tx)
    narrowed = await Searcher(tx, tree, provider["base_dn_folded"]).narrow(node)
    user_pks = narrowed.users if request.want_users or request.want_groups else set()
    group_pks = narrowed.groups if request.want_groups else set()
    return await _closure(tx, tree, user_pks, group_pks, now)


async def _closure(
    tx: store.Tx,
    tree: groups.Tree,
    user_pks: set[int] | None,
    group_pks: set[str] | None,
    now: int,
) -> wire.ldap.Directory:
    """The candidates, with what their entries name: a user's groups (and their ancestors), a
    group's members, parents and children. Any group a candidate: everything (every group's
    members are named by its entry)."""
    if group_pks is None:
        return await build(tx, await _user_rows(tx, []), list(tree.rows.values()), generation=now)
    related_groups = set(group_pks)
    for g in group_pks:
        related_groups |= set(tree.parents.get(g, []))
        related_groups |= {c for c, ps in tree.parents.items() if g in ps}
    if user_pks is None:
        rows = await _user_rows(tx, [])
    else:
        members = await crud.users_of_groups(tx, sorted(group_pks))
        wanted = user_pks | {pk for m in members.values() for pk in m}
        found = await crud.find_many(tx, users.TABLE, "pk", sorted(wanted))
        rows = sorted((r for r in found if _served(r)), key=lambda r: r["pk"])
    of_users = await crud.groups_of_users(tx, [r["pk"] for r in rows])
    for direct in of_users.values():
        related_groups |= {a for g in direct for a in tree.ancestors(g)}
    group_list = [tree.rows[g] for g in sorted(related_groups) if g in tree.rows]
    return await build(tx, rows, group_list, generation=now)
