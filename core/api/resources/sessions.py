"""`/api/v3/core/authenticated_sessions/`: login sessions, listed, shown and ended.

Superusers see every session; any other user sees only their own (the listing is filtered to
them, another user's session is 404 and so cannot be ended). Deleting a session ends it through
`identity.sessions.end_digest`, so every outpost is told (SESSION_END) and drops it; the user's
other sessions go on.

A session is addressed by a UUID made of the first 128 bits of its key digest (the stored primary
key). # SECURITY: the digest is a one-way hash of a 256-bit random cookie value; showing half of
it to the session's owner or an admin hands out nothing that logs anyone in.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tessera.core import errors, store
from tessera.core.api import auth, resource, state
from tessera.core.identity import sessions, user_agents
from tessera.core.store import crud
from tessera.core.wire import sessions as session_wire

F = resource.FilterField


def session_uuid(key_digest: str) -> str:
    return str(uuid.UUID(hex=key_digest[:32]))


class AuthenticatedSessions(resource.Resource):
    path = "core/authenticated_sessions"
    table = sessions.TABLE
    tag = "core"
    model_name = "authenticatedsession"
    read_model = session_wire.AuthenticatedSession
    lookup = "uuid"
    lookup_kind = "uuid"
    allow_create = False
    allow_delete = True
    filters = (
        F("session__last_ip", "last_ip"),
        F("session__last_user_agent", "last_user_agent"),
        F("user__username", "user_pk", related=("users", "username")),
    )
    search_columns = ("last_ip", "last_user_agent")
    ordering_columns = ("last_ip", "last_user_agent", "expires", "created")
    default_ordering = ("-created",)

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        """Any user; a non-superuser is held to their own sessions (`query`, `visible`)."""
        return await auth.authenticate(request, tx)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        if ctx.principal.is_superuser:
            return crud.Query()
        # SECURITY: a user lists only their own sessions.
        return crud.Query(filters=[crud.Filter("user_pk", "eq", ctx.principal.user["pk"])])

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        # SECURITY: another user's session is not found, so it can be neither read nor ended.
        return ctx.principal.is_superuser or row["user_pk"] == ctx.principal.user["pk"]

    async def get_row(self, ctx: resource.Ctx, raw: str) -> dict[str, Any]:
        wanted = self.parse_lookup(raw)["uuid"]
        prefix = uuid.UUID(wanted).hex
        rows = await crud.rows(
            ctx.tx, self.table, [crud.Filter("key_digest", "startswith", prefix)]
        )
        if len(rows) != 1 or not self.visible(ctx, rows[0]):
            raise errors.NotFound(raw)
        return rows[0]

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        current = _current_digest(ctx)
        return [
            session_wire.AuthenticatedSession.model_validate(
                {
                    "uuid": session_uuid(row["key_digest"]),
                    "current": row["key_digest"] == current,
                    "user_agent": user_agents.parse(row["last_user_agent"]),
                    "geo_ip": None,
                    "asn": None,
                    "user": row["user_pk"],
                    "last_ip": row["last_ip"],
                    "last_user_agent": row["last_user_agent"],
                    "last_used": row["created"],
                    "expires": row["expires"],
                }
            )
            for row in rows
        ]

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await sessions.end_digest(ctx.tx, row["key_digest"])

    def describe(self, row: dict[str, Any]) -> str:
        return session_uuid(row["key_digest"])

    def model_ref(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "app": self.app_label,
            "model_name": self.model_name,
            "pk": session_uuid(row["key_digest"]),
            "name": self.describe(row),
        }


def _current_digest(ctx: resource.Ctx) -> str | None:
    """The digest of the session the request came with, when it is authenticated by one."""
    key = ctx.request.cookies.get(sessions.COOKIE)
    if ctx.principal.via != "session" or not key:
        return None
    return sessions.digest(key)
