"""`/api/v3/crypto/certificatekeypairs/`: import PEM, `generate`, view certificate and key."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import keypairs
from tessera.core.store import crud

F = resource.FilterField


class CertificateKeyPairs(resource.Resource):
    path = "crypto/certificatekeypairs"
    table = "certificate_keypairs"
    tag = "crypto"
    app_label = "authentik_crypto"
    model_name = "certificatekeypair"
    read_model = wire.crypto.CertificateKeyPair
    request_model = wire.crypto.CertificateKeyPairRequest
    filters = (
        F("name", "name"),
        F("managed", "managed"),
        F("key_type", "key_type"),
    )
    search_columns = ("name",)
    ordering_columns = ("name", "cert_expiry", "created")
    default_ordering = ("name",)

    def extra_filters(self, params: Any) -> list[crud.Filter]:
        raw = params.get("has_key")
        if raw is None or raw == "":
            return []
        has_key = resource._parse("bool", "has_key", raw)
        return [crud.Filter("key_sealed", "ne" if has_key else "eq", "")]

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return keypairs.serialize(rows)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await keypairs.create(ctx.tx, ctx.keyring, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await keypairs.update(ctx.tx, ctx.keyring, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return {"name": row["name"], "certificate_data": row["certificate_data"], "key_data": ""}

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "generate",
                "POST",
                self._generate,
                detail=False,
                request=wire.crypto.CertificateGeneration,
                response=wire.crypto.CertificateKeyPair,
                summary="Generate a new, self-signed certificate-key pair",
            ),
            resource.Action(
                "view_certificate",
                "GET",
                self._view_certificate,
                detail=True,
                response=wire.crypto.CertificateData,
                summary="Return the certificate PEM",
            ),
            resource.Action(
                "view_private_key",
                "GET",
                self._view_private_key,
                detail=True,
                response=wire.crypto.CertificateData,
                summary="Return the private key PEM",
            ),
        ]

    async def _generate(self, request: web.Request) -> web.Response:
        principal = await auth.require_superuser(request)
        body = await http.read_body(request, wire.crypto.CertificateGeneration)
        generated = await keypairs.generate(body)  # seconds of CPU for RSA: outside the lock
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await keypairs.create(tx, request.app[state.KEYRING], generated)
            await self.record(ctx, "model_created", row)
        return http.respond(keypairs.serialize([row])[0])

    async def _view(self, request: web.Request, private: bool) -> web.Response:
        principal = await auth.require_superuser(request)
        async with request.app[state.STORE].transaction() as tx:
            ctx = resource.Ctx(request, principal, tx)
            row = await self.get_row(ctx, request.match_info["lookup"])
            if private:
                data = keypairs.private_key(request.app[state.KEYRING], row)
                await self.record(ctx, "secret_view", row)
            else:
                data = row["certificate_data"]
        if "download" in request.query:
            suffix = "private.pem" if private else "certificate.pem"
            return web.Response(
                text=data,
                content_type="application/x-pem-file",
                headers={"Content-Disposition": f'attachment; filename="{row["pk"]}_{suffix}"'},
            )
        return http.respond(wire.crypto.CertificateData(data=data))

    async def _view_certificate(self, request: web.Request) -> web.Response:
        return await self._view(request, private=False)

    async def _view_private_key(self, request: web.Request) -> web.Response:
        return await self._view(request, private=True)
