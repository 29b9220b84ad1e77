"""Admin API: `/api/v3/providers/saml/` (with `metadata/` and `import_metadata/`) and
`/api/v3/propertymappings/provider/saml/` (authentik's paths and shapes)."""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from tessera.core import crypto, errors, wire
from tessera.core.api import http, net, resource, state
from tessera.core.crypto import xmldsig
from tessera.core.identity import keypairs, util
from tessera.core.policies import sandbox
from tessera.core.providers import base
from tessera.core.providers.saml import metadata, records
from tessera.core.providers.saml.xml import MAX_METADATA, MessageError
from tessera.core.store import crud

F = resource.FilterField
MAX_IMPORT_BODY = MAX_METADATA + 64 * 1024


def _saml(name: str, column: str) -> resource.FilterField:
    return base.detail(records.TABLE, name, column)


class SAMLProviders(base.ProviderResource):
    path = "providers/saml"
    kind = records.KIND
    records = records
    app_label = "authentik_providers_saml"
    model_name = "samlprovider"
    read_model = wire.saml.SAMLProvider
    request_model = wire.saml.SAMLProviderRequest
    filters = (
        F("name", "name"),
        F("name__iexact", "name", "ieq"),
        F("managed", "managed"),
        _saml("acs_url", "acs_url"),
        _saml("audience", "audience"),
        _saml("issuer_override", "issuer_override"),
        _saml("sp_binding", "sp_binding"),
    )

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await records.serialize(ctx.tx, rows, net.public_base(ctx.request))

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "metadata",
                "GET",
                self._metadata,
                detail=True,
                response=wire.saml.SAMLMetadata,
                summary="The IdP metadata an SP loads (`?download` answers the XML itself).",
                params=(
                    ("download", "bool", "Answer the metadata as an XML file"),
                    ("force_binding", "str", "Ignored: both bindings are always listed"),
                ),
            ),
            resource.Action(
                "import_metadata",
                "POST",
                self._import,
                detail=False,
                request=wire.saml.SAMLProviderImportRequest,
                content_type="multipart/form-data",
                response=wire.saml.SAMLProvider,
                status=201,
                summary="Create a provider from an SP's metadata (multipart form: name, "
                "authorization_flow, invalidation_flow, file).",
            ),
        ]

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        async with request.app[state.STORE].read() as tx:
            ctx = resource.Ctx(request, await resource.guard(request, tx), tx)
            base = await self.get_row(ctx, request.match_info["lookup"])
            row = await crud.get(tx, records.TABLE, pk=base["pk"])
            app = await crud.find(tx, "applications", provider=base["pk"])
            signer = None
            if row["signing_kp"]:
                key = await crud.find(tx, "certificate_keypairs", pk=row["signing_kp"])
                if key is not None:
                    signer = xmldsig.Signer(
                        keypairs.private_key(ctx.keyring, key), key["certificate_data"]
                    )
        slug = app["slug"] if app else "-"
        document = await crypto.work.run(
            metadata.idp_metadata, row, net.public_base(request), slug, signer
        )
        if "download" in request.query and request.query["download"] not in ("false", "0"):
            return web.Response(
                body=document,
                content_type="application/xml",
                headers={
                    "Content-Disposition": f'attachment; filename="{slug}_authentik_meta.xml"'
                },
            )
        urls = records.urls(net.public_base(request), slug)
        return http.respond(
            wire.saml.SAMLMetadata(
                metadata=document.decode(), download_url=urls["url_download_metadata"]
            )
        )

    async def _import(self, request: web.Request) -> web.StreamResponse:
        principal = await resource.guard(request)
        fields = await _import_form(request)
        try:
            sp = metadata.parse_sp_metadata(fields.pop("file").encode())
        except MessageError as exc:
            raise errors.ValidationFailed.one("file", str(exc)) from None
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            verification = None
            if sp.signing_cert is not None:
                pair = await keypairs.create(
                    tx,
                    ctx.keyring,
                    wire.crypto.CertificateKeyPairRequest(
                        name=f"{fields['name']} - SAML signing ({util.new_uuid()[:8]})"[:200],
                        certificate_data=sp.signing_cert,
                        key_data="",
                    ),
                )
                verification = pair["pk"] if sp.signs_requests else None
            try:
                body = wire.saml.SAMLProviderRequest(
                    name=fields["name"],
                    authorization_flow=fields["authorization_flow"],
                    invalidation_flow=fields["invalidation_flow"],
                    acs_url=sp.acs_url,
                    sp_binding=sp.sp_binding,
                    sls_url=sp.sls_url,
                    sls_binding=sp.sls_binding,
                    audience=sp.entity_id,
                    verification_kp=verification,
                    property_mappings=await records.default_mapping_pks(tx),
                )
            except pydantic.ValidationError as exc:
                raise http.field_errors(exc) from None
            row = await records.create(tx, body)
            await self.record(ctx, "model_created", row)
            out = (await self.serialize(ctx, [row]))[0]
        return http.respond(out, status=201)


async def _import_form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > MAX_IMPORT_BODY:
        raise errors.ValidationFailed.one("file", "The metadata document is too large.")
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise errors.ValidationFailed.one(
            "file", "Send the metadata as multipart/form-data (name, flows and file)."
        )
    try:
        data = await request.post()
    except ValueError:
        raise errors.ValidationFailed.one("file", "Malformed form body.") from None
    out: dict[str, str] = {}
    for name in ("name", "authorization_flow", "invalidation_flow", "file"):
        value = data.get(name)
        if value is None:
            raise errors.ValidationFailed.one(name, "This field is required.")
        if isinstance(value, bytes | bytearray):
            raise errors.ValidationFailed.one(name, "Send this field as text or a file.")
        if not isinstance(value, str):
            raw = value.file.read(MAX_METADATA + 1)
            if len(raw) > MAX_METADATA:
                raise errors.ValidationFailed.one("file", "The metadata document is too large.")
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise errors.ValidationFailed.one("file", "The metadata is not UTF-8.") from None
        out[name] = value
    return out


class SAMLPropertyMappings(resource.Resource):
    path = "propertymappings/provider/saml"
    table = records.MAPPINGS
    tag = "propertymappings"
    app_label = "authentik_providers_saml"
    model_name = "samlpropertymapping"
    read_model = wire.saml.SAMLPropertyMapping
    request_model = wire.saml.SAMLPropertyMappingRequest
    filters = (
        F("name", "name"),
        F("saml_name", "saml_name"),
        F("friendly_name", "friendly_name"),
        F("managed", "managed"),
        F("managed__isnull", "managed", "isnull", "bool"),
    )
    search_columns = ("name", "saml_name")
    ordering_columns = ("name", "saml_name")
    default_ordering = ("name",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return records.serialize_mappings(rows)

    def _check(
        self, body: wire.saml.SAMLPropertyMappingRequest, row: dict[str, Any] | None
    ) -> None:
        if body.managed is not None and (row is None or body.managed != row["managed"]):
            raise errors.ValidationFailed.one(
                "managed", "Only Tessera's system SAML mappings are managed; leave this empty."
            )
        try:
            sandbox.compile(body.expression)
        except sandbox.SandboxError as exc:
            raise errors.ValidationFailed.one("expression", str(exc)) from None

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        self._check(body, None)
        if await crud.exists(ctx.tx, self.table, name=body.name):
            raise errors.ValidationFailed.one(
                "name", "SAML Provider Property Mapping with this name already exists."
            )
        return await crud.insert(
            ctx.tx,
            self.table,
            {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()},
        )

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        if row["managed"]:
            raise errors.PermissionDenied("System SAML mappings cannot be changed; copy one.")
        self._check(body, row)
        named = await crud.find(ctx.tx, self.table, name=body.name)
        if named is not None and named["pk"] != row["pk"]:
            raise errors.ValidationFailed.one(
                "name", "SAML Provider Property Mapping with this name already exists."
            )
        return await crud.update(ctx.tx, self.table, {"pk": row["pk"]}, body.model_dump())

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in wire.saml.SAMLPropertyMappingRequest.model_fields}

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        if row["managed"]:
            raise errors.PermissionDenied("System SAML mappings cannot be deleted.")
        await super().delete(ctx, row)


RESOURCES = (SAMLProviders(), SAMLPropertyMappings())
