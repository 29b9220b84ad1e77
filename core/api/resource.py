"""A model resource: list, create, retrieve, update, partial update and delete under `/api/v3/`.

Each concrete resource (in `resources/`) names its table, wire models, lookup, filters, search
and ordering fields, and delegates the rules to the identity layer. Every write records an audit
event in the same transaction. `routes()` registers the handlers; `openapi.py` reads the same
declarations to describe them.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pydantic
from aiohttp import web

from tessera.core import errors, events, store, wire
from tessera.core.api import auth, http, net, pagination, state
from tessera.core.store import crud

Kind = Literal["str", "int", "bool", "datetime", "uuid"]
MAX_INT = 2**63 - 1
# Objects that mirror a Kubernetes resource carry its identity in `managed`; only a request that
# names that identity in this header (the operator) may change or delete them.
MANAGED_HEADER = "X-Tessera-Managed-By"
# Keeps the rows a caller may see, of those given (see `Resource.narrowing`).
Narrow = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
MAX_NARROWED = 10_000  # rows a narrowed listing reads before filtering and paging them


def check_managed(request: web.Request, managed: str | None) -> None:
    """Refuse a write to an object managed by the operator unless the request speaks for it."""
    if managed and request.headers.get(MANAGED_HEADER) != managed:
        raise errors.ConflictError(
            f"This object is managed by the Kubernetes resource {managed}; "
            "change that resource instead (the operator would undo this change)."
        )


@dataclass(frozen=True)
class FilterField:
    """A query parameter that filters the listing: `?name=value`."""

    name: str
    column: str
    op: crud.Op = "eq"
    kind: Kind = "str"
    description: str = ""
    # (table, column): match `column` of another table; `self.column` holds that row's pk
    # (`?created_by__username=` on invitations).
    related: tuple[str, str] | None = None

    def condition(self, raw: str) -> crud.Filter:
        value = _parse(self.kind, self.name, raw)
        if self.related is None:
            return crud.Filter(self.column, self.op, value)
        table, column = self.related
        return crud.Filter(self.column, "in", crud.Lookup(table, "pk", column, value))


@dataclass(frozen=True)
class Action:
    """An extra endpoint: `/<path>/<lookup>/<name>/` (detail) or `/<path>/<name>/` (list)."""

    name: str
    method: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    detail: bool
    request: type[pydantic.BaseModel] | None = None
    # How `request` arrives: JSON, or a form (`multipart/form-data`) the handler reads itself.
    content_type: str = "application/json"
    response: type[pydantic.BaseModel] | None = None
    status: int = 200
    superuser: bool = True
    summary: str = ""
    many: bool = False  # the response is a plain list of `response` (no pagination)
    params: tuple[tuple[str, Kind, str], ...] = ()  # query parameters (name, kind, description)


@dataclass
class Ctx:
    """What a handler knows about the request."""

    request: web.Request
    principal: state.Principal
    tx: store.Tx

    @property
    def keyring(self) -> Any:
        return self.request.app[state.KEYRING]


def _parse(kind: Kind, name: str, raw: str) -> Any:
    if "\x00" in raw or len(raw) > 1000:
        raise errors.ValidationFailed.one(name, "Enter a valid value.")
    try:
        match kind:
            case "int":
                value = int(raw)
                if not -MAX_INT <= value <= MAX_INT:
                    raise ValueError
                return value
            case "bool":
                if raw.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError
                return raw.lower() in {"true", "1"}
            case "datetime":
                parsed = dt.datetime.fromisoformat(raw)
                # Stored in UTC: a time that cannot be expressed there is invalid input.
                return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(
                    dt.UTC
                )
            case "uuid":
                return str(uuid.UUID(raw))
            case _:
                return raw
    except (ValueError, OverflowError):
        raise errors.ValidationFailed.one(name, f"Enter a valid {kind}.") from None


def read_only_fields(
    response: type[pydantic.BaseModel], request: type[pydantic.BaseModel]
) -> frozenset[str]:
    """The fields `response` declares and `request` does not accept: a resource's read-only fields.

    A client that GETs an object and sends it back (PUT, PATCH or POST, as authentik's Terraform
    provider and blueprint tools do) sends these too; like Django REST Framework, the API drops
    them unread. Every other unknown field stays "Unexpected field." (a misspelt writable field
    must not be silently ignored).
    """
    accepted = set(request.model_fields)
    accepted |= {f.alias for f in request.model_fields.values() if f.alias}
    return frozenset(set(response.model_fields) - accepted)


class Resource(abc.ABC):
    path: ClassVar[str]
    table: ClassVar[str]
    tag: ClassVar[str]
    app_label: ClassVar[str] = "authentik_core"
    model_name: ClassVar[str]
    read_model: ClassVar[type[wire.common.Response]]
    request_model: ClassVar[type[wire.common.Request] | None] = None
    lookup: ClassVar[str] = "pk"
    lookup_kind: ClassVar[Kind] = "uuid"
    alternate_lookup: ClassVar[str | None] = None
    filters: ClassVar[Sequence[FilterField]] = ()
    # Query parameters of the listing that are not column filters (name, kind, description).
    list_params: ClassVar[Sequence[tuple[str, Kind, str]]] = ()
    search_columns: ClassVar[tuple[str, ...]] = ()
    ordering_columns: ClassVar[tuple[str, ...]] = ()
    default_ordering: ClassVar[tuple[str, ...]] = ()
    allow_put: ClassVar[bool] = True
    # GET on `<path>/<lookup>/`; off for listings only (authentik's `/outposts/proxy/`).
    allow_retrieve: ClassVar[bool] = True
    # POST on the listing; off for objects only made elsewhere (devices come from their stages).
    allow_create: ClassVar[bool] = True
    # DELETE on a read-only resource (e.g. `/stages/all/<pk>/`, whatever the object's kind).
    allow_delete: ClassVar[bool] = False
    # Writes to rows whose `managed` is set need MANAGED_HEADER (objects the operator owns).
    guard_managed: ClassVar[bool] = False

    # Hooks over the identity layer ----------------------------------------------------------

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        """Who may call this resource: by default the admin API's rule (`guard`). Resources of
        the user's own objects accept any authenticated user and restrict `query`/`visible`."""
        return await guard(request, tx)

    @abc.abstractmethod
    async def serialize(self, ctx: Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        """The wire form of `rows`."""

    async def create(self, ctx: Ctx, body: Any) -> dict[str, Any]:
        raise errors.MethodNotAllowed('Method "POST" not allowed.')

    async def update(self, ctx: Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        raise errors.MethodNotAllowed('Method "PUT" not allowed.')

    async def writable(self, ctx: Ctx, row: dict[str, Any]) -> dict[str, Any]:
        """The request-shaped current values (PATCH base and change detection); no secrets."""
        return {}

    async def delete(self, ctx: Ctx, row: dict[str, Any]) -> None:
        await crud.delete(ctx.tx, self.table, **{self.lookup: row[self.lookup]})

    def describe(self, row: dict[str, Any]) -> str:
        return str(row.get("name") or row.get("username") or row.get("identifier") or row["pk"])

    def actions(self) -> list[Action]:
        return []

    def query(self, ctx: Ctx) -> crud.Query:
        """Listing restrictions beyond the query string (e.g. a user's own objects)."""
        return crud.Query()

    def member_filters(self, params: Any) -> list[crud.Member]:
        return []

    def extra_filters(self, params: Any) -> list[crud.Filter]:
        return []

    # Plumbing -------------------------------------------------------------------------------

    def parse_lookup(self, raw: str) -> dict[str, Any]:
        try:
            return {self.lookup: _parse(self.lookup_kind, self.lookup, raw)}
        except errors.ValidationFailed:
            if self.alternate_lookup is None:
                raise errors.NotFound(raw) from None
            return {self.alternate_lookup: _parse("str", self.alternate_lookup, raw)}

    async def get_row(self, ctx: Ctx, raw: str) -> dict[str, Any]:
        where = self.parse_lookup(raw)
        row = await crud.find(ctx.tx, self.table, **where)
        if row is None and self.alternate_lookup and self.alternate_lookup not in where:
            row = await crud.find(ctx.tx, self.table, **{self.alternate_lookup: raw})
        if row is None or not self.visible(ctx, row):
            raise errors.NotFound(raw)
        return row

    def visible(self, ctx: Ctx, row: dict[str, Any]) -> bool:
        return True

    async def narrowing(self, ctx: Ctx, params: Any, detail: bool) -> Narrow | None:
        """For objects each caller sees by a rule SQL cannot decide (an application's policy
        bindings): a function keeping the rows this caller may see, run outside the transaction.
        A listing then reads every matching row (up to MAX_NARROWED), and counts and pages what
        is kept; a retrieve of a row not kept is 404. None (the default): SQL alone decides."""
        return None

    def list_query(self, ctx: Ctx, params: Any) -> tuple[crud.Query, int, int]:
        page, size = pagination.window(params)
        q = self.query(ctx)
        q.offset, q.limit = (page - 1) * size, size
        for f in self.filters:
            raw = params.get(f.name)
            if raw is not None and raw != "":
                q.filters.append(f.condition(raw))
        q.members.extend(self.member_filters(params))
        q.filters.extend(self.extra_filters(params))
        search = params.get("search", "")
        if search:
            q.search = str(_parse("str", "search", search))
            q.search_columns = self.search_columns
        ordering = []
        for item in params.get("ordering", "").split(","):
            item = item.strip()
            if item.lstrip("-") in self.ordering_columns:
                ordering.append(item)
        q.ordering = tuple(ordering) or self.default_ordering
        return q, page, size

    def model_ref(self, row: dict[str, Any]) -> dict[str, Any]:
        """How audit events name `row` (authentik's app label and model name)."""
        return {
            "app": self.app_label,
            "model_name": self.model_name,
            "pk": row[self.lookup] if self.lookup in row else row["pk"],
            "name": self.describe(row),
        }

    async def record(self, ctx: Ctx, action: str, row: dict[str, Any], **extra: Any) -> None:
        model = self.model_ref(row)
        http_request = {
            "args": dict(ctx.request.query),
            "path": ctx.request.path,
            "method": ctx.request.method,
            "user_agent": ctx.request.headers.get("User-Agent", "")[:512],
        }
        await events.record(
            ctx.tx,
            action,
            user=ctx.principal.user,
            client_ip=net.client_ip(ctx.request),
            context={"model": model, "http_request": http_request, **extra},
            retention=state.retention(ctx.request),
        )


def _base(resource: Resource) -> str:
    return f"/api/v3/{resource.path}/"


async def guard(request: web.Request, tx: store.Tx | None = None) -> state.Principal:
    """The admin API's rule: a superuser, by token or by session with the CSRF header."""
    return await auth.require_superuser(request, tx)


def routes(resource: Resource) -> list[web.RouteDef]:
    """The aiohttp routes of a resource, actions before the detail route."""
    base = _base(resource)
    detail = base + "{lookup}/"
    store_of = state.STORE
    ignored = (
        read_only_fields(resource.read_model, resource.request_model)
        if resource.request_model is not None
        else frozenset()
    )

    async def list_(request: web.Request) -> web.Response:
        async with request.app[store_of].read() as tx:
            ctx = Ctx(request, await resource.authorize(request, tx), tx)
            q, page, size = resource.list_query(ctx, request.query)
            narrow = await resource.narrowing(ctx, request.query, detail=False)
            if narrow is None:
                rows, count = await crud.page(tx, resource.table, q)
                results = await resource.serialize(ctx, rows)
            else:
                q.offset, q.limit = 0, MAX_NARROWED
                candidates, _ = await crud.page(tx, resource.table, q)
        if narrow is not None:
            kept = await narrow(candidates)
            count, rows = len(kept), kept[(page - 1) * size : page * size]
            async with request.app[store_of].read() as tx:
                results = await resource.serialize(Ctx(request, ctx.principal, tx), rows)
        if not rows and page > 1:
            raise errors.ObjectNotFound("Invalid page.")
        envelope = pagination.envelope(page, size, count, len(rows))
        return http.respond(
            wire.common.Paginated.model_construct(pagination=envelope, results=results)
        )

    async def retrieve(request: web.Request) -> web.Response:
        async with request.app[store_of].read() as tx:
            ctx = Ctx(request, await resource.authorize(request, tx), tx)
            row = await resource.get_row(ctx, request.match_info["lookup"])
            narrow = await resource.narrowing(ctx, request.query, detail=True)
            if narrow is None:
                return http.respond((await resource.serialize(ctx, [row]))[0])
        if not await narrow([row]):
            raise errors.NotFound(request.match_info["lookup"])
        async with request.app[store_of].read() as tx:
            ctx = Ctx(request, ctx.principal, tx)
            return http.respond((await resource.serialize(ctx, [row]))[0])

    async def create(request: web.Request) -> web.Response:
        principal = await resource.authorize(request)
        assert resource.request_model is not None
        body = await http.read_body(request, resource.request_model, ignore=ignored)
        async with request.app[store_of].transaction() as tx:
            ctx = Ctx(request, principal, tx)
            row = await resource.create(ctx, body)
            await resource.record(ctx, "model_created", row)
            out = (await resource.serialize(ctx, [row]))[0]
        return http.respond(out, status=201)

    async def change(request: web.Request, partial: bool) -> web.Response:
        principal = await resource.authorize(request)
        assert resource.request_model is not None
        data = await http.read_json(request)  # read before the transaction: clients can be slow
        async with request.app[store_of].transaction() as tx:
            ctx = Ctx(request, principal, tx)
            row = await resource.get_row(ctx, request.match_info["lookup"])
            if resource.guard_managed:
                check_managed(request, row.get("managed"))
            before = await resource.writable(ctx, row)
            merge_onto = before if partial else None
            body = http.validate(resource.request_model, data, base=merge_onto, ignore=ignored)
            row = await resource.update(ctx, row, body)
            after = await resource.writable(ctx, row)
            await resource.record(ctx, "model_updated", row, diff=events.diff(before, after))
            out = (await resource.serialize(ctx, [row]))[0]
        return http.respond(out)

    async def put(request: web.Request) -> web.Response:
        return await change(request, partial=False)

    async def patch(request: web.Request) -> web.Response:
        return await change(request, partial=True)

    async def destroy(request: web.Request) -> web.Response:
        principal = await resource.authorize(request)
        async with request.app[store_of].transaction() as tx:
            ctx = Ctx(request, principal, tx)
            row = await resource.get_row(ctx, request.match_info["lookup"])
            if resource.guard_managed:
                check_managed(request, row.get("managed"))
            await resource.delete(ctx, row)
            await resource.record(ctx, "model_deleted", row)
        return web.Response(status=204)

    defs = [web.get(base, list_, allow_head=False)]
    for action in resource.actions():
        path = (detail if action.detail else base) + f"{action.name}/"
        defs.append(web.route(action.method, path, action.handler))
    if resource.allow_retrieve:
        defs.append(web.get(detail, retrieve, allow_head=False))
    if resource.request_model is not None:
        if resource.allow_create:
            defs.append(web.post(base, create))
        defs.append(web.patch(detail, patch))
        defs.append(web.delete(detail, destroy))
        if resource.allow_put:
            defs.append(web.put(detail, put))
    elif resource.allow_delete:
        defs.append(web.delete(detail, destroy))
    return defs


@dataclass
class Registry:
    resources: list[Resource] = field(default_factory=list)

    def add(self, resource: Resource) -> None:
        self.resources.append(resource)
