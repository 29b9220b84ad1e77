"""`/api/v3/crypto/certificatekeypairs/`: import PEM, `generate`, view certificate and key.

Admins manage every key pair. An outpost's token reads (retrieve, view the certificate and the
private key) only the key pairs its providers use, as authentik's outpost service account does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tessera.core import errors, store, wire
from tessera.core.api import auth, http, resource, state
from tessera.core.identity import keypairs, outposts
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

    async def authorize(self, request: web.Request, tx: store.Tx | None = None) -> state.Principal:
        principal = await auth.authenticate(request, tx)
        if principal.is_superuser or (principal.outpost is not None and request.method == "GET"):
            return principal
        raise errors.PermissionDenied("You do not have permission to perform this action.")

    async def get_row(self, ctx: resource.Ctx, raw: str) -> dict[str, Any]:
        row = await super().get_row(ctx, raw)
        if ctx.principal.is_superuser:
            return row
        # SECURITY: an outpost's token sees only the key pairs of its own providers; any other
        # is not found (the same answer as a key pair that does not exist).
        outpost = ctx.principal.outpost
        if outpost is None or row["pk"] not in await outposts.readable_keypairs(ctx.tx, outpost):
            raise errors.NotFound(raw)
        return row

    def query(self, ctx: resource.Ctx) -> crud.Query:
        if not ctx.principal.is_superuser:  # an outpost's token lists nothing (auth refuses it)
            raise errors.PermissionDenied("You do not have permission to perform this action.")
        return crud.Query()

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
        principal = await self.authorize(request)
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
