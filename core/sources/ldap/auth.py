"""Passwords of users an LDAP source brought in: checked by binding to the directory, written
back when set in Tessera (authentik's `authentik.sources.ldap.auth.LDAPBackend`).

The password stage calls `check` (through `stages.base.Directories`) when its backends include
the LDAP backend, after the attempt was counted by the login throttle; the user_write stage and
`POST /api/v3/core/users/<pk>/set_password/` call `changed` before they store a new password.

- `check` binds as the user's DN, as the source last saw it, so a password changed in the
  directory works at once. When that bind fails the entry is looked up again by its uniqueness
  value (it may have moved) and, if found elsewhere, bound there once. With
  `password_login_update_internal_password` a successful bind also sets the local password.
- `changed` writes the password to the directory when the source has `sync_users_password`
  (Password Modify, or `unicodePwd` on Active Directory); a refusal stops the change. The
  directory then alone decides (no local copy is kept) unless the source keeps one
  (`password_login_update_internal_password`): a password later reset in the directory must
  not leave the old one working here.

# SECURITY: only active users of an enabled source are bound for; an empty password is never
# sent (it would be an anonymous bind, which succeeds); the directory is asked in a thread with
# a timeout, so a slow directory delays one login, not the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ldap3
import structlog

from tessera.core import crypto, errors, store
from tessera.core.identity import users
from tessera.core.sources.ldap import client, records
from tessera.core.store import crud

log = structlog.get_logger(__name__)


def _relocate(settings: client.Settings, source: dict[str, Any], ident: str) -> str | None:
    """The DN of the entry whose uniqueness value is `ident` (None when there is none)."""
    connection = client.connect(settings)
    try:
        base = records_base(source)
        field = source["object_uniqueness_field"]
        query = f"(&{source['user_object_filter']}({field}={client.escape(ident)}))"
        connection.search(base, query, search_scope=ldap3.SUBTREE, attributes=["1.1"], size_limit=2)
        found = [r["dn"] for r in connection.response or () if r.get("type") == "searchResEntry"]
        return found[0] if len(found) == 1 else None
    finally:
        client.close(connection)


def records_base(source: dict[str, Any]) -> str:
    extra = source["additional_user_dn"]
    return f"{extra},{source['base_dn']}" if extra else str(source["base_dn"])


def _bind(
    settings: client.Settings, source: dict[str, Any], link: dict[str, Any], password: str
) -> tuple[bool, str]:
    """Whether the user binds, and the DN they bound as (blocking)."""
    if client.bind_user(settings, link["dn"], password):
        return True, link["dn"]
    moved = _relocate(settings, source, link["identifier"])
    if moved is None or client.normalize_dn(moved) == client.normalize_dn(link["dn"]):
        return False, link["dn"]
    return client.bind_user(settings, moved, password), moved


class Passwords:
    """The LDAP sources' `stages.base.Directories`."""

    def __init__(self, db: store.Store, keyring: crypto.Keyring) -> None:
        self.db = db
        self.keyring = keyring

    async def _source_of(
        self, user: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], client.Settings | None] | None:
        """The user's link, source and connection settings (None: the settings cannot be
        used); None when no enabled source holds the user."""
        async with self.db.read() as tx:
            link = await crud.find(tx, records.USERS, user_pk=user["pk"])
            if link is None:
                return None
            source = await crud.find(tx, records.TABLE, pk=link["source"])
            if source is None or not source["enabled"]:
                return None
            try:
                settings = await records.connection_settings(tx, self.keyring, source)
            except client.DirectoryError as exc:
                log.warning("ldap source unusable", source=source["slug"], reason=str(exc))
                settings = None
        return link, source, settings

    async def check(self, user: dict[str, Any], password: str) -> bool | None:
        found = await self._source_of(user)
        if found is None:
            return None
        link, source, settings = found
        if not user["is_active"] or not password or settings is None:
            return False
        try:
            ok, dn = await asyncio.to_thread(_bind, settings, source, link, password)
        except client.DirectoryError as exc:
            log.warning("ldap source login not checked", source=source["slug"], reason=str(exc))
            return False
        if ok:
            async with self.db.transaction() as tx:
                if dn != link["dn"]:
                    await crud.update(tx, records.USERS, {"pk": link["pk"]}, {"dn": dn})
                if source["password_login_update_internal_password"]:
                    await users.set_password(tx, user["pk"], password)
        return ok

    async def changed(self, user: dict[str, Any], password: str) -> bool:
        found = await self._source_of(user)
        if found is None:
            return False
        link, source, settings = found
        if not source["sync_users_password"]:
            return False
        if settings is None:
            raise errors.ValidationFailed.one(
                "password", "The directory cannot be reached to change the password."
            )
        try:
            await asyncio.to_thread(client.set_password, settings, link["dn"], password)
        except client.DirectoryError as exc:
            raise errors.ValidationFailed.one("password", str(exc)) from None
        log.info("password written back to the directory", source=source["slug"])
        return not source["password_login_update_internal_password"]
