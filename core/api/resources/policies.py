"""`/api/v3/policies/<kind>/` for every registered policy kind, and `/api/v3/policies/all/` with
`test` (evaluate one policy for one user, as authentik's policy test).

The per-kind resources are generated from `tessera.core.policies.kinds.KINDS`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from aiohttp import web

from tessera.core import errors, wire
from tessera.core.api import auth, http, net, resource, state
from tessera.core.policies import admin, engine, kinds
from tessera.core.store import crud

F = resource.FilterField


class AllPolicies(resource.Resource):
    """Every policy, whatever its kind (read and delete), with `test`."""

    path = "policies/all"
    table = "policies"
    tag = "policies"
    app_label = "authentik_policies"
    model_name = "policy"
    read_model = wire.policies.Policy
    filters = (F("name", "name"), F("kind", "kind"))
    search_columns = ("name",)
    ordering_columns = ("name", "kind")
    default_ordering = ("name",)

    allow_delete = True

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await admin.serialize(ctx.tx, rows)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "test",
                "POST",
                self._test,
                detail=True,
                request=wire.policies.PolicyTestRequest,
                response=wire.policies.PolicyTestResult,
                summary="Evaluate the policy for a user",
            )
        ]

    async def _test(self, request: web.Request) -> web.Response:
        principal = await auth.require_superuser(request)
        body = await http.read_body(request, wire.policies.PolicyTestRequest)
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, principal, tx)
            policy = await self.get_row(ctx, request.match_info["lookup"])
            user = await crud.find(tx, "users", pk=body.user)
            if user is None:
                raise errors.ValidationFailed.one(
                    "user", f'Invalid pk "{body.user}" - object does not exist.'
                )
            # The user's groups and their ancestors, as for a binding in a flow.
            loaded = await engine.load_rows(tx, [admin.test_binding(policy)], user)
        # Evaluated outside the transaction: a policy may take seconds.
        p_request = engine.Request(
            user=user,
            context=body.context,
            client_ip=net.client_ip(request) or "",
            cache=request.app[state.CACHE],
        )
        settings = request.app[state.SETTINGS]
        retention = dt.timedelta(days=settings.events.retention_days)
        db = request.app[state.STORE]
        return http.respond(await admin.test(db, loaded, p_request, retention))


class KindPolicies(resource.Resource):
    """The policies of one kind; `kind` and the models are set by `for_kind`."""

    table = "policies"
    tag = "policies"
    kind: ClassVar[str]
    filters = (F("name", "name"),)
    search_columns = ("name",)
    ordering_columns = ("name",)
    default_ordering = ("name",)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        return crud.Query(filters=[crud.Filter("kind", "eq", self.kind)])

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        return bool(row["kind"] == self.kind)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        assert issubclass(self.read_model, wire.policies.Policy)
        return await admin.serialize(ctx.tx, rows, self.read_model)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await admin.create(ctx.tx, self.kind, self._for_server(ctx, body))

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await admin.update(ctx.tx, row, self._for_server(ctx, body))

    def _for_server(self, ctx: resource.Ctx, body: Any) -> Any:
        """The body as this server can honour it: e.g. a breached-password check with outbound
        calls off is a 400 naming the field (`kinds.Kind.for_server`)."""
        settings = ctx.request.app[state.SETTINGS]
        values = body.model_dump()
        fitted = kinds.KINDS[self.kind].for_server(values, body.model_fields_set, settings)
        return body if fitted is values else type(body).model_validate(fitted)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        assert self.request_model is not None
        return admin.writable(row, self.request_model)


def for_kind(kind: type[kinds.Kind]) -> KindPolicies:
    request, response = wire.policies.policy_models(kind.kind, kind.Config)
    app_label, model_name = wire.policies.policy_names(kind.kind)["meta_model_name"].split(".")

    class Resource(KindPolicies):
        path = f"policies/{kind.kind}"
        read_model = response
        request_model = request

    Resource.kind, Resource.app_label, Resource.model_name = kind.kind, app_label, model_name
    Resource.__name__ = Resource.__qualname__ = f"{request.__name__.removesuffix('Request')}s"
    return Resource()


def all_resources() -> list[resource.Resource]:
    return [AllPolicies(), *(for_kind(kind) for kind in kinds.KINDS.values())]
