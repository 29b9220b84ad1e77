"""`/api/v3/core/applications/`: applications, addressable by pk or slug.

As in authentik, any authenticated user may list and retrieve, and sees only the applications
they may open: each application's policy bindings evaluated for them by `flows.app_access`, the
same code the portal's tiles use. A superuser sees them all with `?superuser_full_list=true`, or
another user's list with `?for_user=<pk>`. Writes need a superuser. `check_access/` reports one
application's decision (`{passing, messages, log_messages}`), for another user with `for_user`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from tessera.core import errors, store, wire
from tessera.core.api import auth, http, net, resource, state
from tessera.core.api import flows as flows_api
from tessera.core.flows import app_access
from tessera.core.identity import applications, users
from tessera.core.policies import binding_admin as policy_bindings
from tessera.core.policies import engine
from tessera.core.store import crud

F = resource.FilterField


class Applications(resource.Resource):
    path = "core/applications"
    table = "applications"
    tag = "core"
    model_name = "application"
    read_model = wire.applications.Application
    request_model = wire.applications.ApplicationRequest
    alternate_lookup = "slug"
    guard_managed = True
    filters = (
        F("managed", "managed"),
        F("name", "name"),
        F("slug", "slug"),
        F("group", "group"),
        F("meta_launch_url", "meta_launch_url"),
        F("meta_publisher", "meta_publisher"),
        F("meta_description", "meta_description"),
        F("provider", "provider", kind="int"),
        F("provider__isnull", "provider", "isnull", "bool"),
        F("policy_engine_mode", "policy_engine_mode"),
        F("meta_icon", "meta_icon"),
        F("meta_hide", "meta_hide", kind="bool"),
    )
    list_params = (
        ("superuser_full_list", "bool", "Superusers: every application, not only those they open"),
        ("for_user", "int", "Superusers: the applications the user with this pk may open"),
        ("only_with_launch_url", "bool", "Only applications that have a launch URL"),
    )
    search_columns = ("name", "slug", "meta_publisher", "meta_description", "group")
    ordering_columns = ("name", "slug", "group", "meta_publisher")
    default_ordering = ("name",)

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        # SECURITY: reads are open to every authenticated user and narrowed to the applications
        # they may open (`narrowing`); every write still needs a superuser.
        if request.method == "GET":
            return await auth.authenticate(request, tx)
        return await resource.guard(request, tx)

    async def narrowing(
        self, ctx: resource.Ctx, params: Any, detail: bool
    ) -> resource.Narrow | None:
        opened = await self._opened(ctx, params, detail)
        raw = "" if detail else params.get("only_with_launch_url", "")
        if raw and resource._parse("bool", "only_with_launch_url", raw):
            # authentik's launch URL may come from the provider: decided outside SQL.
            return _with_launch_url(ctx.request, opened)
        return opened

    async def _opened(self, ctx: resource.Ctx, params: Any, detail: bool) -> resource.Narrow | None:
        principal = ctx.principal
        if detail:
            # A superuser reads any application; anyone else only one they may open (else 404).
            return None if principal.is_superuser else _opened_by(ctx.request, principal.user)
        full = params.get("superuser_full_list", "")
        if full and resource._parse("bool", "superuser_full_list", full) and principal.is_superuser:
            return None
        return _opened_by(ctx.request, await _for_user(ctx, params.get("for_user", "")))

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        named = {r["provider"] for r in rows if r["provider"] is not None}
        found = await crud.find_many(ctx.tx, "providers", "pk", sorted(named)) if named else []
        described = await ctx.request.app[state.PROVIDER_OBJECTS](ctx.tx, found)
        launch = await ctx.request.app[state.PROVIDER_LAUNCH_URLS](ctx.tx, sorted(named))
        # authentik fills the launch URL's placeholders for the caller (not `for_user`).
        return applications.serialize(
            rows, {p.pk: p for p in described}, launch, ctx.principal.user
        )

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await applications.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await applications.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await applications.writable(ctx.tx, row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await policy_bindings.unbind(ctx.tx, [row["pk"]])  # bindings name targets by uuid only
        await super().delete(ctx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "check_access",
                "GET",
                self._check_access,
                detail=True,
                response=wire.policies.PolicyTestResult,
                superuser=False,
                summary="Whether the caller (or, for superusers, `for_user`) may open it",
                params=(("for_user", "int", "Superusers: check for the user with this pk"),),
            )
        ]

    async def _check_access(self, request: web.Request) -> web.Response:
        async with request.app[state.STORE].read() as tx:
            principal = await auth.authenticate(request, tx)
            ctx = resource.Ctx(request, principal, tx)
            app = await self.get_row(ctx, request.match_info["lookup"])
            user = principal.user
            if principal.is_superuser:  # as in authentik, others' `for_user` is ignored
                user = await _for_user(ctx, request.query.get("for_user", ""))
        executor = request.app[flows_api.EXECUTOR]
        (result,) = await app_access.verdicts(
            executor.services,
            await executor.definitions.get(),
            [app],
            user,
            net.client_ip(request) or "",
            use_cache=False,
        )
        passing = app_access.opens(result)
        if not principal.is_superuser:
            # SECURITY: only the verdict; policy messages may describe the rules.
            return http.respond(
                wire.policies.PolicyTestResult(passing=passing, messages=[], log_messages=[])
            )
        return http.respond(
            wire.policies.PolicyTestResult(
                passing=passing, messages=result.messages, log_messages=_log_messages(result)
            )
        )


async def _for_user(ctx: resource.Ctx, raw: str) -> dict[str, Any]:
    """The user whose access a listing shows: the caller, or (superusers) `?for_user=<pk>`."""
    if not raw:
        return ctx.principal.user
    pk = resource._parse("int", "for_user", raw)
    if pk == ctx.principal.user["pk"]:
        return ctx.principal.user
    # SECURITY: only a superuser may look at another user's access; to anyone else every other
    # pk is "not found", so the answer tells nothing about which users exist.
    user = await crud.find(ctx.tx, users.TABLE, pk=pk) if ctx.principal.is_superuser else None
    if user is None:
        raise errors.ValidationFailed.one("for_user", "User not found")
    return user


def _opened_by(request: web.Request, user: dict[str, Any]) -> resource.Narrow:
    async def narrow(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        executor = request.app[flows_api.EXECUTOR]
        return await app_access.allowed(
            executor.services,
            await executor.definitions.get(),
            rows,
            user,
            net.client_ip(request) or "",
        )

    return narrow


def _with_launch_url(request: web.Request, inner: resource.Narrow | None) -> resource.Narrow:
    """`inner`'s rows (or all) that have a launch URL, their own or their provider's."""

    async def narrow(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = await inner(rows) if inner is not None else rows
        served = sorted({r["provider"] for r in kept if r["provider"] is not None})
        async with request.app[state.STORE].read() as tx:
            suggested = await request.app[state.PROVIDER_LAUNCH_URLS](tx, served)
        return [r for r in kept if applications.launch_url(r, suggested)]

    return narrow


def _log_messages(result: engine.Result) -> list[dict[str, Any]]:
    """authentik's log events for the bindings that failed to evaluate (superusers only)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return [
        {
            "timestamp": now,
            "log_level": "warning",
            "logger": "tessera.policies.engine",
            "event": failure["message"],
            "attributes": {"policy": failure["name"], "kind": failure["kind"]},
        }
        for failure in result.exceptions
    ]
