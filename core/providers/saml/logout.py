"""Back-channel Single Logout: when a core session ends, each SAML provider that was given an
assertion in it, and whose `logout_method` is `backchannel` (with an HTTP-POST SLS URL), is sent a
LogoutRequest server-side, as authentik does; the session's `saml_sessions` rows go."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import structlog
from lxml import etree

from tessera.core.crypto import xmldsig
from tessera.core.providers.oauth2.service import Service
from tessera.core.providers.saml import records, views
from tessera.core.store import crud

log = structlog.get_logger("tessera.core.providers.saml")
TIMEOUT = aiohttp.ClientTimeout(total=5)


class Notifier:
    def __init__(self, service: Service, base_url: str) -> None:
        self.service = service
        self.base_url = base_url
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def session_ended(self, session_digest: str, user: dict[str, Any]) -> None:
        try:
            await self._notify(session_digest)
        except Exception:  # a listener must not break the logout that called it
            log.exception("saml_backchannel_logout_failed")

    async def _notify(self, session_digest: str) -> None:
        async with self.service.db.transaction() as tx:
            rows = await crud.rows(
                tx, records.SESSIONS, [crud.Filter("session_digest", "eq", session_digest)]
            )
            if rows:
                await crud.delete_matching(
                    tx, records.SESSIONS, [crud.Filter("session_digest", "eq", session_digest)]
                )
        sends = []
        for row in rows:
            try:
                provider = await views.load_provider(
                    self.service, self.base_url, pk=row["provider"]
                )
            except views.Refused:
                continue
            settings = provider.row
            if (
                settings["logout_method"] != "backchannel"
                or settings["sls_binding"] != "post"
                or not settings["sls_url"]
            ):
                continue
            message = views.logout_request(
                provider, row["name_id"], row["name_id_format"], row["session_index"]
            )
            if settings["sign_logout_request"] and provider.keys.signer is not None:
                xmldsig.sign(
                    message,
                    provider.keys.signer,
                    signature_algorithm=settings["signature_algorithm"],
                    digest_algorithm=settings["digest_algorithm"],
                )
            body = base64.b64encode(etree.tostring(message, encoding="UTF-8")).decode()
            sends.append(self._post(settings["sls_url"], body))
        if sends:
            await asyncio.gather(*sends)

    async def _post(self, url: str, body: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._http.post(url, data={"SAMLRequest": body}) as response:
                await response.read()
                if response.status >= 400:
                    log.warning("saml_backchannel_logout_refused", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("saml_backchannel_logout_unreachable", error=str(exc)[:200])
