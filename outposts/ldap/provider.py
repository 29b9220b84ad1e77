"""One LDAP provider as the outpost serves it: its config, its directory records, its views.

`Provider` holds the `LDAPOutpostConfig` and, in cached search mode, the core's directory
records (`apply` takes a whole `Directory` or a partial one and rebuilds the indexed
`directory.Directory`). `Session` is a bound user (what the core's `bind/` answered).
`view(session)` is what that user may search: the whole directory with the search permission,
else only their own entry, their groups (listing only them as member) and their virtual group.
In direct search mode `answer_view` builds the view from the core's `search/` answer. Used by
`outpost` and `protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tessera.core.wire import ldap as wire
from tessera.outposts.ldap import dit, dn
from tessera.outposts.ldap.directory import Directory


@dataclass(eq=False)
class Session:
    """A bound user: who, in which provider, and the core session behind the bind."""

    provider: int
    dn: str
    ndn: str
    result: wire.BindResult
    cached: bool = False  # answered from the bind cache
    views: dict[int, Directory] = field(default_factory=dict)  # restricted view by generation

    @property
    def session_id(self) -> str:
        return self.result.session_id

    @property
    def user_pk(self) -> int:
        return self.result.user.pk

    @property
    def can_search(self) -> bool:
        return self.result.has_search_permission

    @property
    def expired(self) -> bool:
        expires = self.result.expires
        return expires is not None and expires <= dt.datetime.now(dt.UTC)


class Provider:
    def __init__(self, config: wire.LDAPOutpostConfig) -> None:
        self.config = config
        self.layout = dit.Layout.of(config)
        self.base = dn.normalize(config.base_dn)
        self.users_base = dn.normalize(self.layout.users)
        self.generation: int | None = None
        self.users: dict[int, wire.DirectoryUser] = {}
        self.groups: dict[str, wire.DirectoryGroup] = {}
        self.directory = Directory(dit.containers(self.layout))
        self.group_names: dict[str, str] = {}  # direct mode: groups seen so far
        self.refetching = False  # a refetch of the records is under way
        self.stale = False  # and another is wanted after it

    @property
    def pk(self) -> int:
        return self.config.pk

    @property
    def cached_search(self) -> bool:
        return self.config.search_mode == "cached"

    @property
    def cached_bind(self) -> bool:
        return self.config.bind_mode == "cached"

    def same_layout(self, config: wire.LDAPOutpostConfig) -> bool:
        return dit.Layout.of(config) == self.layout

    # Cached search mode -------------------------------------------------------------------

    def apply(self, records: wire.Directory) -> None:
        """Adopt a whole directory, or a partial one on top of the records held."""
        self.merge(records)
        self.directory = self.build(list(self.users.values()), list(self.groups.values()))

    async def apply_async(self, records: wire.Directory) -> None:
        """`apply`, with the DIT built in a worker thread: the loop keeps answering meanwhile
        (a directory of 10,000 users takes a second or two to build)."""
        self.merge(records)
        users, groups = list(self.users.values()), list(self.groups.values())
        self.directory = await asyncio.to_thread(self.build, users, groups)

    def merge(self, records: wire.Directory) -> None:
        if not records.partial:
            self.users = {u.pk: u for u in records.users}
            self.groups = {_uuid(g.pk): g for g in records.groups}
        else:
            for pk in records.deleted_users:
                self.users.pop(pk, None)
            for gpk in records.deleted_groups:
                self.groups.pop(_uuid(gpk), None)
            self.users.update({u.pk: u for u in records.users})
            self.groups.update({_uuid(g.pk): g for g in records.groups})
        self.generation = records.generation

    def build(
        self, users: list[wire.DirectoryUser], groups: list[wire.DirectoryGroup]
    ) -> Directory:
        with _no_gc():
            return Directory(dit.build(self.layout, users, groups))

    def view(self, session: Session) -> Directory:
        """What `session` may search, from the records held (cached search mode)."""
        # SECURITY: without the permission, a view holding nothing else (filters cannot probe)
        if session.can_search:
            return self.directory
        generation = self.generation or 0
        found = session.views.get(generation)
        if found is None:
            user = self.users.get(session.user_pk, session.result.user)
            groups = self._groups_of(user) if self.generation is not None else None
            if groups is None:
                groups = list(session.result.groups)
            found = restricted(self.layout, user, groups)
            session.views.clear()
            session.views[generation] = found
        return found

    def _groups_of(self, user: wire.DirectoryUser) -> list[wire.DirectoryGroup]:
        """The user's groups and their ancestors, from the records."""
        out: dict[str, wire.DirectoryGroup] = {}
        todo = [_uuid(g) for g in user.groups]
        todo += [k for k, g in self.groups.items() if user.pk in g.users]
        while todo:
            key = todo.pop()
            group = self.groups.get(key)
            if group is None or key in out:
                continue
            out[key] = group
            todo.extend(_uuid(p) for p in group.parents)
        return list(out.values())

    # Direct search mode -------------------------------------------------------------------

    def answer_view(self, answer: wire.Directory, session: Session) -> Directory:
        """The view of one `search/` answer (the core has applied the permission)."""
        for g in answer.groups:
            self.group_names[_uuid(g.pk)] = g.name
        for g in session.result.groups:
            self.group_names.setdefault(_uuid(g.pk), g.name)
        if len(self.group_names) > 100_000:
            self.group_names.clear()
        users, groups = answer.users, answer.groups
        if not session.can_search:
            users = [u for u in users if u.pk == session.user_pk] or [session.result.user]
            mine = {_uuid(g.pk) for g in session.result.groups}
            groups = [g for g in groups if _uuid(g.pk) in mine]
            return restricted(self.layout, users[0], groups)
        return Directory(dit.build(self.layout, users, groups, self.group_names))


def restricted(
    layout: dit.Layout, user: wire.DirectoryUser, groups: Iterable[wire.DirectoryGroup]
) -> Directory:
    """The root, the containers, `user`, `groups` listing only `user` (and each other) as
    members, and the user's virtual group."""
    own = [g.model_copy(update={"users": [user.pk] if user.pk in g.users else []}) for g in groups]
    return Directory(dit.build(layout, [user], own))


def _uuid(value: str) -> str:
    return str(value)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cycle collector paused while a directory is built: building makes many small
    objects and no cycles, and the collector's passes over them took most of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
