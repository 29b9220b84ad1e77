"""`/api/v3/authenticators/`: a user's own MFA devices, and every user's for superusers.

`all/` lists the caller's confirmed devices of every kind (authentik's Device serializer, a plain
list). `totp/`, `static/` and `webauthn/` list, show, rename (PATCH `name`) and delete the
caller's own confirmed devices of one kind; `admin/<kind>/` lets a superuser list (`?user=`),
show and delete anyone's. Devices are created only by their setup stages. Deleting one goes
through `identity.devices` and records `model_deleted` as the portal does.

# SECURITY: any authenticated user reaches the own-device resources; their listing and lookups
# are restricted to `user_pk` = the caller, so another user's device is 404 (not 403: its
# existence is not disclosed). No response model has a field for a device's secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web

from tessera.core import errors, store, wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import devices, users
from tessera.core.store import crud

F = resource.FilterField
ALL_PATH = "/api/v3/authenticators/all/"


class _Devices(resource.Resource):
    """The devices of one kind (`kind`), as authentik's per-kind device viewsets."""

    kind: ClassVar[str]
    table = devices.TABLE
    tag = "authenticators"
    lookup_kind = "int"  # the path's `pk` is authentik's integer device id (`num_pk`)
    filters: ClassVar[Sequence[resource.FilterField]] = (F("name", "name"),)
    search_columns = ("name",)
    ordering_columns = ("name", "num_pk", "created", "last_updated", "last_used")
    default_ordering = ("name",)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        return crud.Query(filters=[crud.Filter("kind", "eq", self.kind)])

    def parse_lookup(self, raw: str) -> dict[str, Any]:
        number = super().parse_lookup(raw)["pk"]
        # `num_pk` is a 32-bit column: a larger id names no device (and must not reach the
        # database, which would refuse the value with an error).
        if not -(2**31) <= number < 2**31:
            raise errors.NotFound(raw)
        return {"num_pk": number}

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        return bool(row["kind"] == self.kind)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        owners = {row["user_pk"] for row in rows}
        found = await crud.find_many(ctx.tx, "users", "pk", owners)
        people = {u["pk"]: users.partial(ctx.keyring, u) for u in found}
        return [self.one(row, people[row["user_pk"]]) for row in rows]

    def one(self, row: dict[str, Any], user: wire.core.PartialUser) -> Any:
        fields = {"pk": row["num_pk"], "name": row["name"], "user": user}
        if self.kind == "webauthn":
            return wire.authenticators.WebAuthnDevice.model_construct(
                **fields,
                created_on=row["created"],
                device_type=None,  # no FIDO metadata service here
                aaguid=str(row["data"].get("aaguid", "")),
            )
        if self.kind == "static":
            return wire.authenticators.StaticDevice.model_construct(**fields, token_set=[])
        return self.read_model.model_construct(**fields)

    def model_ref(self, row: dict[str, Any]) -> dict[str, Any]:
        return devices.model_ref(row)  # the portal's removal names devices the same way

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        if await devices.remove(ctx.tx, row["pk"], row["user_pk"]) is None:
            raise errors.NotFound(str(row["num_pk"]))


class _Own(_Devices):
    """The caller's own confirmed devices of one kind: list, retrieve, rename, delete."""

    request_model = wire.authenticators.DeviceRequest
    allow_create = False
    allow_put = False

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        return await auth.authenticate(request, tx)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        q = super().query(ctx)
        q.filters += [
            crud.Filter("user_pk", "eq", ctx.principal.user["pk"]),
            crud.Filter("confirmed", "eq", True),
        ]
        return q

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        # SECURITY: another user's device (or an unconfirmed one) is not found.
        return (
            super().visible(ctx, row)
            and row["user_pk"] == ctx.principal.user["pk"]
            and bool(row["confirmed"])
        )

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await devices.rename(ctx.tx, row, body.name)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {"name": row["name"]}


class _Admin(_Devices):
    """Every user's devices of one kind, for superusers: list (`?user=`), retrieve, delete."""

    allow_delete = True
    filters = (F("name", "name"), F("user", "user_pk", kind="int"))


class OwnTOTPDevices(_Own):
    kind = "totp"
    path = "authenticators/totp"
    model_name = "totpdevice"
    read_model = wire.authenticators.TOTPDevice


class OwnStaticDevices(_Own):
    kind = "static"
    path = "authenticators/static"
    model_name = "staticdevice"
    read_model = wire.authenticators.StaticDevice


class OwnWebAuthnDevices(_Own):
    kind = "webauthn"
    path = "authenticators/webauthn"
    model_name = "webauthndevice"
    read_model = wire.authenticators.WebAuthnDevice
    request_model = wire.authenticators.WebAuthnDeviceRequest


class AdminTOTPDevices(_Admin):
    kind = "totp"
    path = "authenticators/admin/totp"
    model_name = "totpdevice"
    read_model = wire.authenticators.TOTPDevice


class AdminStaticDevices(_Admin):
    kind = "static"
    path = "authenticators/admin/static"
    model_name = "staticdevice"
    read_model = wire.authenticators.StaticDevice


class AdminWebAuthnDevices(_Admin):
    kind = "webauthn"
    path = "authenticators/admin/webauthn"
    model_name = "webauthndevice"
    read_model = wire.authenticators.WebAuthnDevice


def all_resources() -> list[resource.Resource]:
    return [
        OwnTOTPDevices(),
        OwnStaticDevices(),
        OwnWebAuthnDevices(),
        AdminTOTPDevices(),
        AdminStaticDevices(),
        AdminWebAuthnDevices(),
    ]


def device(row: dict[str, Any]) -> wire.authenticators.Device:
    meta = devices.MODELS[row["kind"]]
    return wire.authenticators.Device(
        name=row["name"],
        pk=str(row["num_pk"]),
        type=f"{meta.app}.{meta.label}",
        confirmed=row["confirmed"],
        created=row["created"],
        last_updated=devices.last_updated(row),
        last_used=row["last_used"],
        meta_model_name=f"{meta.app}.{meta.model_name}",
        verbose_name=meta.verbose_name,
        verbose_name_plural=meta.verbose_name + "s",
        extra_description=None,
        external_id=None,
    )


async def all_devices(request: web.Request) -> web.Response:
    """`GET /api/v3/authenticators/all/`: the caller's confirmed devices, oldest first."""
    async with request.app[state.STORE].read() as tx:
        principal = await auth.authenticate(request, tx)
        rows = await devices.confirmed(tx, principal.user["pk"], tuple(devices.MODELS))
    return http.respond([device(row) for row in rows])


def routes() -> list[web.RouteDef]:
    return [web.get(ALL_PATH, all_devices, allow_head=False)]


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of `all/` (the resources describe themselves)."""
    items = {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}
    content = {"content": {"application/json": {"schema": items}}}
    return {
        "/authenticators/all/": {
            "get": {
                "operationId": "authenticators_all_list",
                "tags": ["authenticators"],
                "summary": "The caller's own confirmed authenticator devices",
                "responses": {"200": {"description": "Devices", **content}},
            }
        }
    }
