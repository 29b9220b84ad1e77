"""One sync of an LDAP source: users, groups and memberships from the directory into Tessera.

Called by the worker's schedule (`schedule`) and by `POST …/sync/` (`resources`). A run takes the
store lease `ldap-source-sync:<pk>` (one run per source across every process), reads the
directory in a thread with paged searches, maps each entry through the source's property
mappings, and writes in short transactions of `CHUNK` entries.

- Users and groups are keyed by the entry's `object_uniqueness_field` and linked to the source
  (`ldap_source_users`, `ldap_source_groups`). A linked object is updated when its mapped
  values changed, and left alone (not even `last_updated`) when not: a second run with nothing
  changed writes nothing.
- An entry whose name belongs to a local object the source did not create is skipped and
  reported: a directory cannot take over an account (or a group) it does not own.
- Memberships: a group's `group_membership_field` values (`member` and `uniqueMember` DNs,
  `memberUid` names) are matched against users (by DN, or by `user_membership_attribute`) and
  groups (by DN: nested groups become parent links). Only links between objects this source
  created are added or removed; a local user added to a synced group stays.
- One malformed entry (no uniqueness value, a mapping that fails, values that do not fit) is
  skipped and reported; the rest go on. Counts and the first `MAX_MESSAGES` messages are
  recorded as the run's status; a directory that cannot be read makes the run an `error`.
- Nothing is deleted unless `delete_not_found_objects` is on, and then only objects linked to
  this source whose entries a complete run did not see.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
import structlog

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import users, util
from tessera.core.sources.ldap import client, mappings, records
from tessera.core.store import crud

log = structlog.get_logger(__name__)
CHUNK = 250  # entries written per transaction
LEASE_TTL = dt.timedelta(minutes=10)
DN_ATTRIBUTES = ("distinguishedname", "dn")


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def skip(self, message: str) -> None:
        self.counts["skipped"] += 1
        self.note(message)

    def note(self, message: str) -> None:
        if len(self.messages) < records.MAX_MESSAGES:
            self.messages.append(message[:500])


@dataclass
class Linked:
    """What this run knows of the objects the source created: identifier -> pk, and the keys a
    group's members are matched by -> pk."""

    users: dict[str, int] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    user_keys: dict[str, int] = field(default_factory=dict)
    group_dns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    source: dict[str, Any]
    settings: client.Settings
    user_mapper: mappings.Mapper
    group_mapper: mappings.Mapper


def _base(source: dict[str, Any], extra: str) -> str:
    return f"{extra},{source['base_dn']}" if extra else str(source["base_dn"])


def fetch(job: Job) -> tuple[list[client.Entry], list[client.Entry]]:
    """The user and group entries (blocking: run it in a thread)."""
    source = job.source
    extra = [source["object_uniqueness_field"], "*"]
    connection = client.connect(job.settings)
    try:
        found_users: list[client.Entry] = []
        found_groups: list[client.Entry] = []
        if source["sync_users"]:
            attributes = [*extra, source["user_membership_attribute"]]
            if source["lookup_groups_from_user"]:
                attributes.append(source["group_membership_field"])
            found_users = list(
                client.search(
                    connection,
                    _base(source, source["additional_user_dn"]),
                    source["user_object_filter"],
                    attributes,
                )
            )
        if source["sync_groups"]:
            attributes = [*extra, source["group_membership_field"]]
            found_groups = list(
                client.search(
                    connection,
                    _base(source, source["additional_group_dn"]),
                    source["group_object_filter"],
                    attributes,
                )
            )
        return found_users, found_groups
    finally:
        client.close(connection)


def _ident(job: Job, entry: client.Entry, report: Report) -> str | None:
    field_name = job.source["object_uniqueness_field"]
    value = entry.first(field_name)
    if value is None:
        report.skip(f"{entry.dn}: no {field_name}, skipped")
        return None
    text = client.identifier(value)
    if not text or len(text) > 1024:
        report.skip(f"{entry.dn}: {field_name} is empty or too long, skipped")
        return None
    return text


def _problems(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


async def _user_values(
    job: Job, entry: client.Entry, ident: str, report: Report
) -> dict[str, Any] | None:
    try:
        props = await job.user_mapper.properties(entry)
    except mappings.MappingFailed as exc:
        report.skip(f"{entry.dn}: {exc}")
        return None
    attributes = {**props.get("attributes", {}), "distinguishedName": entry.dn, "ldap_uniq": ident}
    try:
        body = wire.core.UserRequest.model_validate(
            {
                "username": props.get("username"),
                "name": str(props.get("name") or ""),
                "email": str(props.get("email") or ""),
                "path": str(props.get("path") or records.user_path(job.source)),
                "is_active": bool(props.get("is_active", True)),
                "attributes": attributes,
            }
        )
    except pydantic.ValidationError as exc:
        report.skip(f"{entry.dn}: {_problems(exc)}, skipped")
        return None
    values = body.model_dump(
        include={"username", "name", "email", "path", "is_active", "attributes"}
    )
    values["username_folded"] = users.fold(body.username)
    return values


@dataclass
class Known:
    """What the store holds for one chunk of entries, read in three queries rather than three
    per entry: the links by identifier, the linked rows by pk, and the rows by name."""

    links: dict[str, dict[str, Any]]
    rows: dict[Any, dict[str, Any]]
    names: dict[str, dict[str, Any]]


async def _known(
    tx: store.Tx, job: Job, table: str, links: str, key: str, prepared: list[Any], name: str
) -> Known:
    idents = [ident for _, ident, _ in prepared]
    found = await crud.find_many(tx, links, "identifier", idents) if idents else []
    mine = {r["identifier"]: r for r in found if r["source"] == job.source["pk"]}
    pks = [r[key] for r in mine.values()]
    rows = {r["pk"]: r for r in await crud.find_many(tx, table, "pk", pks)} if pks else {}
    wanted = [values[name] for _, _, values in prepared]
    named = await crud.find_many(tx, table, name, wanted) if wanted else []
    return Known(mine, rows, {r[name]: r for r in named})


async def _write_user(
    tx: store.Tx,
    job: Job,
    known: Known,
    entry: client.Entry,
    ident: str,
    values: dict[str, Any],
    report: Report,
    recoverable: bool,
) -> int | None:
    source_pk = job.source["pk"]
    link = known.links.get(ident)
    now = util.now()
    named = known.names.get(values["username_folded"])
    if link is not None:
        row = known.rows.get(link["user_pk"]) or await crud.get(tx, users.TABLE, pk=link["user_pk"])
        if any(row.get(k) != v for k, v in values.items()):
            if named is not None and named["pk"] != row["pk"]:
                report.skip(f"{entry.dn}: username {values['username']!r} is taken, skipped")
                return int(row["pk"])
            await crud.update(
                tx,
                users.TABLE,
                {"pk": row["pk"]},
                {**values, "last_updated": now},
                recoverable=recoverable,
            )
            report.counts["users_updated"] += 1
        else:
            report.counts["users_unchanged"] += 1
        if link["dn"] != entry.dn:
            await crud.update(
                tx, records.USERS, {"pk": link["pk"]}, {"dn": entry.dn, "last_updated": now}
            )
        return int(row["pk"])
    if named is not None:
        report.skip(
            f"{entry.dn}: username {values['username']!r} belongs to a user this source did "
            "not create, skipped"
        )
        return None
    row = await crud.insert(
        tx,
        users.TABLE,
        {
            **values,
            "uuid": util.new_uuid(),
            "date_joined": now,
            "password_change_date": now,
            "last_updated": now,
            "password": crypto.passwords.UNUSABLE,
        },
        recoverable=recoverable,
    )
    known.names[values["username_folded"]] = row
    await _link(
        tx, records.USERS, "user_pk", row["pk"], source_pk, ident, entry.dn, now, recoverable
    )
    report.counts["users_created"] += 1
    return int(row["pk"])


async def _link(
    tx: store.Tx,
    table: str,
    key: str,
    pk: Any,
    source_pk: Any,
    ident: str,
    dn: str,
    now: dt.datetime,
    recoverable: bool,
) -> None:
    """Record that the object `pk` (a user's or a group's, by `key`) came from this entry."""
    row = {"source": source_pk, key: pk, "identifier": ident, "dn": dn}
    await crud.insert(
        tx, table, {**row, "created": now, "last_updated": now}, recoverable=recoverable
    )


def _user_keys(job: Job, entry: client.Entry, pk: int, linked: Linked) -> None:
    linked.user_keys[client.normalize_dn(entry.dn)] = pk
    attribute = job.source["user_membership_attribute"]
    if attribute.lower() not in DN_ATTRIBUTES:
        for value in entry.values(attribute):
            if isinstance(value, str):
                linked.user_keys[value.lower()] = pk


class _Retry(Exception):
    """A chunk written without savepoints hit an error: write it again with them."""


Prepared = tuple[client.Entry, str, dict[str, Any]]
Load = Callable[[store.Tx], Awaitable[Known]]
Write = Callable[..., Awaitable[Any]]


async def _write_chunk(
    db: store.Store, job: Job, prepared: list[Prepared], load: Load, write: Write, report: Report
) -> list[tuple[client.Entry, str, Any]]:
    """Write one chunk in one transaction; (entry, identifier, pk) of each written.

    First without a savepoint per entry (a savepoint costs more than the write); the names
    were checked beforehand, so an entry fails only in a race (a name taken meanwhile, an object
    deleted). Then that attempt is rolled back and the chunk written again with a savepoint per
    entry, skipping and reporting those that fail."""
    for recoverable in (False, True):
        attempt = Report()
        written = []
        try:
            async with db.transaction() as tx:
                known = await load(tx)
                for entry, ident, values in prepared:
                    try:
                        pk = await write(tx, job, known, entry, ident, values, attempt, recoverable)
                    except errors.TesseraError as exc:
                        if not recoverable:
                            raise _Retry from None
                        attempt.skip(f"{entry.dn}: {exc}, skipped")
                        continue
                    if pk is not None:
                        written.append((entry, ident, pk))
        except _Retry:
            continue
        report.counts.update(attempt.counts)
        for message in attempt.messages:
            report.note(message)
        return written
    return []


async def sync_users(
    db: store.Store, job: Job, entries: list[client.Entry], report: Report, linked: Linked
) -> None:
    for start in range(0, len(entries), CHUNK):
        prepared = []
        for entry in entries[start : start + CHUNK]:
            ident = _ident(job, entry, report)
            if ident is None or ident in linked.users:
                if ident is not None:
                    report.skip(f"{entry.dn}: {ident!r} is not unique in the directory, skipped")
                continue
            values = await _user_values(job, entry, ident, report)
            if values is not None:
                prepared.append((entry, ident, values))

        def load(tx: store.Tx, prepared: list[Prepared] = prepared) -> Awaitable[Known]:
            return _known(
                tx, job, users.TABLE, records.USERS, "user_pk", prepared, "username_folded"
            )

        for entry, ident, pk in await _write_chunk(db, job, prepared, load, _write_user, report):
            linked.users[ident] = pk
            _user_keys(job, entry, pk, linked)
        await asyncio.sleep(0)


async def _group_values(
    job: Job, entry: client.Entry, ident: str, report: Report
) -> dict[str, Any] | None:
    try:
        props = await job.group_mapper.properties(entry)
    except mappings.MappingFailed as exc:
        report.skip(f"{entry.dn}: {exc}")
        return None
    attributes = {**props.get("attributes", {}), "distinguishedName": entry.dn, "ldap_uniq": ident}
    try:  # as the groups API validates a group (storable text, sizes)
        body = wire.core.GroupRequest.model_validate(
            {
                "name": props.get("name"),
                "is_superuser": bool(props.get("is_superuser", False)),
                "attributes": attributes,
            }
        )
    except pydantic.ValidationError as exc:
        report.skip(f"{entry.dn}: {_problems(exc)}, skipped")
        return None
    return body.model_dump(include={"name", "is_superuser", "attributes"})


async def _write_group(
    tx: store.Tx,
    job: Job,
    known: Known,
    entry: client.Entry,
    ident: str,
    values: dict[str, Any],
    report: Report,
    recoverable: bool,
) -> str | None:
    source_pk = job.source["pk"]
    link = known.links.get(ident)
    now = util.now()
    named = known.names.get(values["name"])
    if link is not None:
        row = known.rows.get(link["group_pk"]) or await crud.get(tx, "groups", pk=link["group_pk"])
        if named is not None and named["pk"] != row["pk"]:
            report.skip(f"{entry.dn}: group name {values['name']!r} is taken, skipped")
            return str(row["pk"])
        if any(row.get(k) != v for k, v in values.items()):
            await crud.update(tx, "groups", {"pk": row["pk"]}, values, recoverable=recoverable)
            report.counts["groups_updated"] += 1
        else:
            report.counts["groups_unchanged"] += 1
        if link["dn"] != entry.dn:
            await crud.update(
                tx, records.GROUPS, {"pk": link["pk"]}, {"dn": entry.dn, "last_updated": now}
            )
        return str(row["pk"])
    if named is not None:
        report.skip(
            f"{entry.dn}: group name {values['name']!r} belongs to a group this source did not "
            "create, skipped"
        )
        return None
    await crud.lock(tx, "groups.num_pk")
    num_pk = int(await crud.max_value(tx, "groups", "num_pk") or 0) + 1
    row = await crud.insert(
        tx,
        "groups",
        {**values, "pk": util.new_uuid(), "num_pk": num_pk},
        recoverable=recoverable,
    )
    known.names[values["name"]] = row
    await _link(
        tx, records.GROUPS, "group_pk", row["pk"], source_pk, ident, entry.dn, now, recoverable
    )
    report.counts["groups_created"] += 1
    return str(row["pk"])


async def sync_groups(
    db: store.Store, job: Job, entries: list[client.Entry], report: Report, linked: Linked
) -> list[tuple[client.Entry, str]]:
    """Write the groups; the entries written, with their group's pk."""
    written = []
    for start in range(0, len(entries), CHUNK):
        prepared = []
        for entry in entries[start : start + CHUNK]:
            ident = _ident(job, entry, report)
            if ident is None or ident in linked.groups:
                if ident is not None:
                    report.skip(f"{entry.dn}: {ident!r} is not unique in the directory, skipped")
                continue
            values = await _group_values(job, entry, ident, report)
            if values is not None:
                prepared.append((entry, ident, values))

        def load(tx: store.Tx, prepared: list[Prepared] = prepared) -> Awaitable[Known]:
            return _known(tx, job, "groups", records.GROUPS, "group_pk", prepared, "name")

        for entry, ident, pk in await _write_chunk(db, job, prepared, load, _write_group, report):
            linked.groups[ident] = pk
            linked.group_dns[client.normalize_dn(entry.dn)] = pk
            written.append((entry, pk))
        await asyncio.sleep(0)
    return written
