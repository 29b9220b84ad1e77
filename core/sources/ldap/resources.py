"""Admin API: `/api/v3/sources/ldap/` (with `sync/status/` and `sync/`),
`/api/v3/propertymappings/source/ldap/` and `/api/v3/sources/all/` (authentik's paths and
shapes; `sync/` is Tessera's: authentik starts a sync through its tasks API)."""

from __future__ import annotations

import os
import socket
from typing import Any

from aiohttp import web

from tessera.core import errors, wire
from tessera.core.api import http, resource, state
from tessera.core.identity import util
from tessera.core.policies import sandbox
from tessera.core.sources.ldap import mappings, records, runner
from tessera.core.store import crud

F = resource.FilterField


class LDAPSources(resource.Resource):
    path = "sources/ldap"
    table = records.TABLE
    tag = "sources"
    app_label = "authentik_sources_ldap"
    model_name = "ldapsource"
    read_model = wire.sources.LDAPSource
    request_model = wire.sources.LDAPSourceRequest
    lookup = "slug"
    lookup_kind = "str"
    filters = (
        F("name", "name"),
        F("slug", "slug"),
        F("enabled", "enabled", kind="bool"),
        F("server_uri", "server_uri"),
        F("bind_cn", "bind_cn"),
        F("base_dn", "base_dn"),
        F("sync_users", "sync_users", kind="bool"),
        F("sync_groups", "sync_groups", kind="bool"),
        F("sync_users_password", "sync_users_password", kind="bool"),
        F(
            "password_login_update_internal_password",
            "password_login_update_internal_password",
            kind="bool",
        ),
        F("object_uniqueness_field", "object_uniqueness_field"),
        F("user_object_filter", "user_object_filter"),
        F("group_object_filter", "group_object_filter"),
    )
    search_columns = ("name", "slug")
    ordering_columns = ("name", "slug")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return records.serialize(rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await records.create(ctx.tx, ctx.keyring, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await records.update(ctx.tx, ctx.keyring, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return records.writable(row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "sync/status",
                "GET",
                self._status,
                detail=True,
                response=wire.sources.SyncStatus,
                summary="Whether a sync runs now, and how the last one went.",
            ),
            resource.Action(
                "sync",
                "POST",
                self._sync,
                detail=True,
                response=wire.sources.SyncStatus,
                summary="Sync the source now (Tessera's); answers when the run has ended, or "
                "409 when another process is running it.",
            ),
        ]

    async def _status(self, request: web.Request) -> web.StreamResponse:
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, await resource.guard(request, tx), tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            found = await records.read_status(tx, row["pk"], util.now())
        return http.respond(found)

    async def _sync(self, request: web.Request) -> web.StreamResponse:
        db = request.app[state.STORE]
        async with db.read() as tx:
            ctx = resource.Ctx(request, await resource.guard(request, tx), tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
        holder = f"api:{socket.gethostname()}:{os.getpid()}:{util.new_uuid()[:8]}"
        found = await runner.run(db, request.app[state.KEYRING], row["pk"], holder)
        if found is None:
            raise errors.ConflictError("A sync of this source is running already.")
        return http.respond(found)


class LDAPSourcePropertyMappings(resource.Resource):
    path = "propertymappings/source/ldap"
    table = mappings.TABLE
    tag = "propertymappings"
    app_label = "authentik_sources_ldap"
    model_name = "ldapsourcepropertymapping"
    read_model = wire.sources.LDAPSourcePropertyMapping
    request_model = wire.sources.LDAPSourcePropertyMappingRequest
    filters = (
        F("name", "name"),
        F("managed", "managed"),
        F("managed__isnull", "managed", "isnull", "bool"),
    )
    search_columns = ("name",)
    ordering_columns = ("name",)
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return records.serialize_mappings(rows)

    def _check(
        self, body: wire.sources.LDAPSourcePropertyMappingRequest, row: dict[str, Any] | None
    ) -> None:
        if body.managed is not None and (row is None or body.managed != row["managed"]):
            raise errors.ValidationFailed.one(
                "managed", "Only Tessera's system LDAP mappings are managed; leave this empty."
            )
        try:
            sandbox.compile(body.expression)
        except sandbox.SandboxError as exc:
            raise errors.ValidationFailed.one("expression", str(exc)) from None

    async def _unique(self, ctx: resource.Ctx, name: str, pk: str | None) -> None:
        named = await crud.find(ctx.tx, self.table, name=name)
        if named is not None and named["pk"] != pk:
            raise errors.ValidationFailed.one(
                "name", "LDAP Source Property Mapping with this name already exists."
            )

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        self._check(body, None)
        await self._unique(ctx, body.name, None)
        return await crud.insert(
            ctx.tx, self.table, {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()}
        )

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        if row["managed"]:
            raise errors.PermissionDenied("System LDAP mappings cannot be changed; copy one.")
        self._check(body, row)
        await self._unique(ctx, body.name, row["pk"])
        return await crud.update(ctx.tx, self.table, {"pk": row["pk"]}, body.model_dump())

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in wire.sources.LDAPSourcePropertyMappingRequest.model_fields}

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        if row["managed"]:
            raise errors.PermissionDenied("System LDAP mappings cannot be deleted.")
        await super().delete(ctx, row)


class AllSources(resource.Resource):
    """`/api/v3/sources/all/`: every source, whatever its kind (Tessera has LDAP sources)."""

    path = "sources/all"
    table = records.TABLE
    tag = "sources"
    app_label = "authentik_core"
    model_name = "source"
    read_model = wire.sources.Source
    lookup = "slug"
    lookup_kind = "str"
    allow_delete = True
    filters = (F("name", "name"), F("slug", "slug"), F("managed", "managed"))
    search_columns = ("name", "slug")
    ordering_columns = ("name", "slug")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return records.serialize_any(rows)


RESOURCES = (LDAPSources(), LDAPSourcePropertyMappings(), AllSources())
