"""What every provider kind's admin resource shares (`/api/v3/providers/<kind>/`).

A provider is a `providers` row (name, flows, managed, `component` naming its kind) and a row of
its kind's own table keyed by the same pk. `ProviderResource` lists and shows only the rows of
its `kind`, looks them up by integer pk, protects `managed` rows as every provider's, and
deletes through the `providers` row (which cascades to the kind's row, its links to outposts
and applications). Its record calls go to the kind's `records` module (`Records`): a kind names
the module and overrides only the calls that need more than the transaction (a keyring, the
public URL). `detail` filters a listing by a column of the kind's own table.
`OutpostConfigs` is the outposts' side: `/api/v3/outposts/<kind>/` for an outpost's token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from tessera.core import errors, store
from tessera.core.api import auth, resource, state
from tessera.core.store import crud


def detail(table: str, name: str, column: str) -> resource.FilterField:
    """`?<name>=` matching `column` of the provider's row in its kind's `table`."""
    return resource.FilterField(name, "pk", related=(table, column))


class Records(Protocol):
    """A kind's `records` module as its resource calls it: `serialize(tx, bases)`,
    `create(tx, body)`, `update(tx, base, body)`, `writable(tx, base)`. Only the names and
    results are checked here (a kind's calls may take more); a kind whose call takes more
    overrides that method of `ProviderResource` and calls its module itself."""

    @property
    def serialize(self) -> Callable[..., Awaitable[list[Any]]]: ...
    @property
    def create(self) -> Callable[..., Awaitable[dict[str, Any]]]: ...
    @property
    def update(self) -> Callable[..., Awaitable[dict[str, Any]]]: ...
    @property
    def writable(self) -> Callable[..., Awaitable[dict[str, Any]]]: ...


class ProviderResource(resource.Resource):
    kind = ""  # the `component` of this resource's providers
    records: Records  # the kind's `records` module
    table = "providers"
    tag = "providers"
    lookup_kind = "int"
    guard_managed = True
    search_columns = ("name",)
    ordering_columns = ("name", "pk")
    default_ordering = ("name",)

    def extra_filters(self, params: Any) -> list[crud.Filter]:
        return [crud.Filter("component", "eq", self.kind)]

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        return bool(row["component"] == self.kind)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await self.records.serialize(ctx.tx, rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await self.records.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await self.records.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return await self.records.writable(ctx.tx, row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await crud.delete(ctx.tx, "providers", pk=row["pk"])


class OutpostConfigs(resource.Resource):
    """`/api/v3/outposts/<kind>/`: a listing for an outpost's token only (authentik's
    `IsOutpostServiceAccount`), of the calling outpost's own providers of `kind` that it serves
    (`served`: those an application uses); each subclass says how a config is built."""

    kind = ""
    table = "providers"
    tag = "outposts"
    allow_retrieve = False
    filters = (resource.FilterField("name", "name"),)
    search_columns = ("name",)
    ordering_columns = ("name",)
    default_ordering = ("name",)

    async def served(self, tx: store.Tx, outpost_pk: str) -> list[dict[str, Any]]:
        """The providers of the outpost that it serves (each kind says; none by default, so a
        kind that forgets serves nothing rather than everything)."""
        return []

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        principal = await auth.authenticate(request, tx)
        if principal.outpost is None:
            raise errors.PermissionDenied("Only an outpost's token reads its providers' settings.")
        return principal

    def query(self, ctx: resource.Ctx) -> crud.Query:
        # SECURITY: the calling outpost's own providers of this kind only.
        mine = crud.Lookup("outpost_providers", "provider", "outpost", ctx.principal.outpost)
        return crud.Query(
            filters=[crud.Filter("pk", "in", mine), crud.Filter("component", "eq", self.kind)]
        )

    async def narrowing(
        self, ctx: resource.Ctx, params: Any, detail: bool
    ) -> resource.Narrow | None:
        """Of those, the providers it serves (an application uses them; authentik serves no
        other)."""
        assert ctx.principal.outpost is not None
        served = {b["pk"] for b in await self.served(ctx.tx, ctx.principal.outpost)}

        async def keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if r["pk"] in served]

        return keep
