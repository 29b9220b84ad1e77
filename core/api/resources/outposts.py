"""`/api/v3/outposts/instances/`: outposts, their providers and `config` (authentik's shapes).

Admins create, change and delete outposts; creating one makes its service account and API token
(`identity.outposts`), deleting it removes both. An outpost's own token reads only its own
outpost: that is how an outpost finds itself (it lists this collection and takes the one result).
The managed embedded outpost (`goauthentik.io/outposts/embedded`) takes providers like any other
but keeps its name, type and managed value, and cannot be deleted. Other managed outposts are the
operator's (`resource.check_managed`). `default_settings/` returns authentik's default `config`.

The control channel's health of each outpost (`<pk>/health/`) is served by `outpost_hub`.
"""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from tessera.core import errors, store, wire
from tessera.core.api import auth, http, net, resource, state
from tessera.core.identity import outposts
from tessera.core.store import crud

F = resource.FilterField
# The provider kinds each outpost type serves (the `providers` table's `component`).
SERVED = {"proxy": "proxy", "ldap": "ldap"}


class Outposts(resource.Resource):
    path = "outposts/instances"
    table = outposts.TABLE
    tag = "outposts"
    app_label = "authentik_outposts"
    model_name = "outpost"
    read_model = wire.outposts.Outpost
    request_model = wire.outposts.OutpostRequest
    filters = (
        F("name__iexact", "name", "ieq"),
        F("name__icontains", "name", "icontains"),
        F("managed__iexact", "managed", "ieq"),
        F("managed__icontains", "managed", "icontains"),
        F("type", "type"),
    )
    list_params = (("providers_by_pk", "int", "Outposts serving the provider with this pk"),)
    search_columns = ("name",)
    ordering_columns = ("name", "type")
    default_ordering = ("name",)

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        # SECURITY: an outpost's token reads its own outpost (`query`, `visible`); writes and
        # everyone else's reads need a superuser.
        principal = await auth.authenticate(request, tx)
        if principal.is_superuser or (principal.outpost is not None and request.method == "GET"):
            return principal
        raise errors.PermissionDenied("You do not have permission to perform this action.")

    def query(self, ctx: resource.Ctx) -> crud.Query:
        if ctx.principal.is_superuser:
            return crud.Query()
        return crud.Query(filters=[crud.Filter("pk", "eq", ctx.principal.outpost)])

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        return ctx.principal.is_superuser or row["pk"] == ctx.principal.outpost

    def extra_filters(self, params: Any) -> list[crud.Filter]:
        out = []
        raw = params.get("providers_by_pk", "")
        if raw:
            pk = resource._parse("int", "providers_by_pk", raw)
            out.append(
                crud.Filter("pk", "in", crud.Lookup(outposts.LINKS, "outpost", "provider", pk))
            )
        return out

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await describe(ctx.tx, rows, ctx.request.app[state.PROVIDER_OBJECTS])

    async def _checked(
        self, ctx: resource.Ctx, body: wire.outposts.OutpostRequest
    ) -> dict[str, Any]:
        """The values of a valid request: providers exist and are of the outpost's type, the
        config completed with authentik's defaults."""
        if body.providers:
            found = {
                p["pk"]: p for p in await crud.find_many(ctx.tx, "providers", "pk", body.providers)
            }
            for pk in body.providers:
                if pk not in found:
                    raise errors.ValidationFailed.one(
                        "providers", f'Invalid pk "{pk}" - object does not exist.'
                    )
                if found[pk]["component"] != SERVED[body.type]:
                    raise errors.ValidationFailed.one(
                        "providers",
                        f"Provider {found[pk]['name']!r} is not a {body.type} provider; "
                        f"a {body.type} outpost serves only those.",
                    )
        try:
            config = outposts.full_config(body.config)
        except pydantic.ValidationError as exc:
            raise errors.ValidationFailed({"config": _config_errors(exc)}) from None
        return {
            "name": body.name,
            "type": body.type,
            "config": config,
            "providers": body.providers,
        }

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        if body.managed == outposts.EMBEDDED_MANAGED:
            raise errors.ValidationFailed.one(
                "managed", "Only the system's embedded outpost is managed by this value."
            )
        values = await self._checked(ctx, body)
        return await outposts.create(ctx.tx, ctx.keyring, **values, managed=body.managed)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        managed = body.managed
        if row["managed"] == outposts.EMBEDDED_MANAGED:
            _check_embedded(row, body)
            managed = row["managed"]
        else:
            resource.check_managed(ctx.request, row["managed"])
            if managed == outposts.EMBEDDED_MANAGED:
                raise errors.ValidationFailed.one(
                    "managed", "Only the system's embedded outpost is managed by this value."
                )
        values = await self._checked(ctx, body)
        return await outposts.update(ctx.tx, ctx.keyring, row, **values, managed=managed)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": row["name"],
            "type": row["type"],
            "providers": (await outposts.providers_of(ctx.tx, [row["pk"]]))[row["pk"]],
            "service_connection": None,
            "config": row["config"],
            "managed": row["managed"],
        }

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        if row["managed"] == outposts.EMBEDDED_MANAGED:
            raise errors.PermissionDenied(
                "The embedded outpost cannot be deleted; remove its providers instead."
            )
        resource.check_managed(ctx.request, row["managed"])
        await outposts.delete(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "default_settings",
                "GET",
                self._default_settings,
                detail=False,
                response=wire.outposts.OutpostDefaultConfig,
                summary="Global default outpost config",
            )
        ]

    async def _default_settings(self, request: web.Request) -> web.Response:
        await auth.require_superuser(request)
        host = net.public_base(request)
        return http.respond(
            wire.outposts.OutpostDefaultConfig(config=outposts.default_config(host))
        )


async def describe(
    tx: store.Tx, rows: list[dict[str, Any]], provider_objects: state.ProviderObjects
) -> list[wire.outposts.Outpost]:
    """The `Outpost` objects of these rows, as this resource shows them (also what the outpost
    hub compares to tell an outpost that what it fetches changed)."""
    linked = await outposts.providers_of(tx, [r["pk"] for r in rows])
    pks = sorted({pk for found in linked.values() for pk in found})
    bases = await crud.find_many(tx, "providers", "pk", pks) if pks else []
    by_pk = {p.pk: p for p in await provider_objects(tx, bases)}
    return [
        wire.outposts.Outpost.model_construct(
            pk=r["pk"],
            name=r["name"],
            type=r["type"],
            providers=linked[r["pk"]],
            providers_obj=[by_pk[pk] for pk in linked[r["pk"]] if pk in by_pk],
            service_connection=None,
            service_connection_obj=None,
            refresh_interval_s=outposts.refresh_interval_s(r["config"]),
            token_identifier=outposts.token_identifier(r["pk"]),
            config=r["config"],
            managed=r["managed"],
        )
        for r in rows
    ]


def _check_embedded(row: dict[str, Any], body: wire.outposts.OutpostRequest) -> None:
    found: dict[str, list[str]] = {}
    if body.name != row["name"]:
        found["name"] = ["The embedded outpost's name cannot be changed."]
    if body.type != row["type"]:
        found["type"] = ["The embedded outpost is a proxy outpost."]
    if body.managed not in (None, row["managed"]):
        found["managed"] = ["The embedded outpost's managed value cannot be changed."]
    if found:
        raise errors.ValidationFailed(found)


def _config_errors(exc: pydantic.ValidationError) -> list[str]:
    out = []
    for error in exc.errors()[:10]:
        where = ".".join(str(part) for part in error["loc"])
        out.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return out
