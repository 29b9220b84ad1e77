"""What every provider kind's admin resource shares (`/api/v3/providers/<kind>/`).

A provider is a `providers` row (name, flows, managed, `component` naming its kind) and a row of
its kind's own table keyed by the same pk. `ProviderResource` lists and shows only the rows of
its `kind`, looks them up by integer pk, protects `managed` rows as every provider's, and
deletes through the `providers` row (which cascades to the kind's row, its links to outposts
and applications). `detail` filters a listing by a column of the kind's own table.
"""

from __future__ import annotations

from typing import Any

from tessera.core.api import resource
from tessera.core.store import crud


def detail(table: str, name: str, column: str) -> resource.FilterField:
    """`?<name>=` matching `column` of the provider's row in its kind's `table`."""
    return resource.FilterField(name, "pk", related=(table, column))


class ProviderResource(resource.Resource):
    kind = ""  # the `component` of this resource's providers
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

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await crud.delete(ctx.tx, "providers", pk=row["pk"])
