"""Group memberships and nesting from the directory, between the objects a source created.

Called by `runner` after `sync` wrote users and groups. A group entry's
`group_membership_field` values name its members: a DN (`member`, `uniqueMember`, whose
optional `#<uid>` suffix is dropped) that is one of the synced groups makes that group a child
(a parent link), else a DN or value matching a synced user's DN or `user_membership_attribute`
(`memberUid`: a uid) makes the user a member. Values naming nothing synced are ignored. With
`lookup_groups_from_user` the field is read on the members instead (`memberOf`: the DNs of the
user's or group's groups).

Only links between objects this source created change: memberships of local users and parent
links to local groups stay. Synced groups that no synced group contains get the source's
`sync_parent_group` as parent. A parent link that would close a cycle is skipped and reported.
"""

from __future__ import annotations

from typing import Any

from tessera.core import store
from tessera.core.sources.ldap import client
from tessera.core.sources.ldap.sync import CHUNK, Job, Linked, Report
from tessera.core.store import crud


def _key(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return None
    dn = value.split("#", 1)[0] if "#" in value else value
    return client.normalize_dn(dn), value.lower()


def wanted(
    group_entries: list[tuple[client.Entry, str]], field: str, linked: Linked
) -> tuple[set[tuple[str, int]], dict[str, list[str]]]:
    """The (group, user) memberships and the child -> parents links the directory asks for."""
    members: set[tuple[str, int]] = set()
    parents: dict[str, list[str]] = {}
    for entry, group_pk in group_entries:
        for value in entry.values(field):
            key = _key(value)
            if key is None:
                continue
            dn, raw = key
            child = linked.group_dns.get(dn)
            if child is not None:
                if child != group_pk:
                    parents.setdefault(child, []).append(group_pk)
                continue
            user = linked.user_keys.get(dn) or linked.user_keys.get(raw)
            if user is not None:
                members.add((group_pk, user))
    return members, parents


def wanted_from_users(
    user_entries: list[client.Entry],
    group_entries: list[tuple[client.Entry, str]],
    field: str,
    linked: Linked,
) -> tuple[set[tuple[str, int]], dict[str, list[str]]]:
    """With `lookup_groups_from_user`: the memberships and parent links named on the members
    instead, each user's (and group's) `field` (`memberOf`) listing the DNs of its groups."""
    members: set[tuple[str, int]] = set()
    parents: dict[str, list[str]] = {}
    for entry in user_entries:
        user = linked.user_keys.get(client.normalize_dn(entry.dn))
        if user is None:
            continue
        for value in entry.values(field):
            key = _key(value)
            group = linked.group_dns.get(key[0]) if key else None
            if group is not None:
                members.add((group, user))
    for entry, child in group_entries:
        for value in entry.values(field):
            key = _key(value)
            parent = linked.group_dns.get(key[0]) if key else None
            if parent is not None and parent != child:
                parents.setdefault(child, []).append(parent)
    return members, parents


async def apply_members(
    db: store.Store, wanted_members: set[tuple[str, int]], linked: Linked, report: Report
) -> None:
    """Give each synced group the synced members the directory names, keeping its other
    members; a group whose synced members are already those is not written."""
    source_users = set(linked.users.values())
    group_pks = sorted(set(linked.groups.values()))
    async with db.read() as tx:
        current = await crud.users_of_groups(tx, group_pks) if group_pks else {}
    wanted: dict[str, set[int]] = {g: set() for g in group_pks}
    for group_pk, user_pk in wanted_members:
        wanted[group_pk].add(user_pk)
    changed = []
    for group_pk in group_pks:
        members = current.get(group_pk, [])
        synced = {u for u in members if u in source_users}
        if synced == wanted[group_pk]:
            continue
        report.counts["memberships_added"] += len(wanted[group_pk] - synced)
        report.counts["memberships_removed"] += len(synced - wanted[group_pk])
        kept = [u for u in members if u not in source_users]
        changed.append((group_pk, kept + sorted(wanted[group_pk])))
    for start in range(0, len(changed), CHUNK // 10 or 1):
        async with db.transaction() as tx:
            for group_pk, members in changed[start : start + CHUNK // 10 or 1]:
                await crud.set_members(tx, group_pk=group_pk, others=members)


def _ancestors(parents: dict[str, list[str]], pk: str) -> set[str]:
    seen: set[str] = set()
    stack = [pk]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(parents.get(current, ()))
    return seen


async def apply_parents(
    db: store.Store, job: Job, wanted_parents: dict[str, list[str]], linked: Linked, report: Report
) -> None:
    source_groups = set(linked.groups.values())
    top = job.source["sync_parent_group"]
    managed = source_groups | ({top} if top else set())
    async with db.transaction() as tx:
        await crud.lock(tx, "groups.parents")
        graph = await crud.group_links(tx, "group_pk")
        for child in sorted(source_groups):
            current = graph.get(child, [])
            kept = [p for p in current if p not in managed]
            desired = list(dict.fromkeys(wanted_parents.get(child, [])))
            if not desired and top:
                desired = [top]
            new = list(kept)
            graph[child] = list(kept)
            for parent in desired:
                if child in _ancestors(graph, parent):
                    report.note(
                        f"group {parent} cannot contain {child}: it would be its own ancestor"
                    )
                    continue
                new.append(parent)
                graph[child] = list(new)
            if new != current:
                await crud.set_parents(tx, child, new)
            graph[child] = new
