"""IdP-initiated front-channel Single Logout from a logout flow (authentik 2025.10's
`logout_method` `frontchannel_iframe` and `frontchannel_native`).

When a flow is about to log a user out (`Executor.before_logout`, the user_logout stage), the
SAML sessions of that core session whose provider logs out by the front channel and has an SLS
URL each get a LogoutRequest (that session's NameID and SessionIndex, signed as the provider's
`sign_logout_request` says), encoded for the provider's SLS binding. They go into the flow's
context, and the provided stages that hand them to the browser are inserted after the logout:
`ak-provider-iframe-logout` for the iframe SPs (first), `ak-provider-saml-native-logout` for the
native ones. The session then ends as before; the `saml_sessions` rows go with it and
back-channel SPs are told server-side (`logout.Notifier`).

Each request's ID is remembered (`views.sent_key`) with the flow it belongs to, so that the SP's
LogoutResponse at `slo/` is accepted once: in native mode it sends the browser back to the flow
(the next SP, or the flow's end), in a frame it ends on a short page. The RelayState sent is the
flow's page, as authentik sends it; it is never read back.
"""

from __future__ import annotations

from typing import Any

from tessera.core.flows import executor
from tessera.core.identity import sessions
from tessera.core.providers.oauth2.service import Service
from tessera.core.providers.saml import records, views
from tessera.core.stages import base, provider_logout
from tessera.core.store import crud

MAX_SESSIONS = 100  # SAML sessions looked at per logout
METHODS = {"frontchannel_iframe": "iframe", "frontchannel_native": "native"}


class FrontChannel:
    def __init__(self, service: Service, base_url: str) -> None:
        self.service = service
        self.base_url = base_url  # when the request's own is unknown

    async def prepare(self, run: base.Run, browser: executor.Browser) -> None:
        """Build the front-channel LogoutRequests of this browser's session and insert the
        steps that deliver them after the logout."""
        base_url = browser.base_url or self.base_url
        rows = await self._sessions(sessions.digest(browser.key))
        if not rows:
            return
        flow_url = f"{base_url}/if/flow/{run.state.slug}/"
        iframe: list[dict[str, Any]] = []
        native: list[dict[str, Any]] = []
        for row in rows:
            try:
                provider = await views.load_provider(self.service, base_url, pk=row["provider"])
            except views.Refused:
                continue
            mode = METHODS.get(provider.row["logout_method"])
            if mode is None or not provider.row["sls_url"]:  # changed meanwhile
                continue
            message = views.logout_request(
                provider, row["name_id"], row["name_id_format"], row["session_index"]
            )
            out = views.encode(
                provider,
                message,
                "SAMLRequest",
                flow_url,
                bool(provider.row["sign_logout_request"]),
            )
            await self.service.cache.set(
                views.sent_key(message.get("ID")),
                {"provider": provider.pk, "flow": run.state.slug, "mode": mode},
                views.PENDING_TTL,
            )
            name = str(provider.app["name"])
            if mode == "iframe":
                iframe.append(_frame(out, name))
            else:
                native.append(_step(out, name))
        context = run.state.context
        if native:
            context[provider_logout.NATIVE_STEPS] = native
            run.state.insert_provided(provider_logout.NativeLogout.kind)
        if iframe:  # inserted last: it runs first
            context[provider_logout.IFRAME_URLS] = iframe
            run.state.insert_provided(provider_logout.IframeLogout.kind)

    async def _sessions(self, digest: str) -> list[dict[str, Any]]:
        """The session's SAML sessions with front-channel SPs that have an SLS URL, the latest
        one per SP (an SP keeps one session per browser)."""
        async with self.service.db.read() as tx:
            found = await crud.rows(
                tx,
                records.SESSIONS,
                [crud.Filter("session_digest", "eq", digest)],
                limit=MAX_SESSIONS,
            )
            if not found:
                return []
            providers = await crud.find_many(
                tx, records.TABLE, "pk", sorted({r["provider"] for r in found})
            )
        wanted = {p["pk"] for p in providers if p["logout_method"] in METHODS and p["sls_url"]}
        latest: dict[int, dict[str, Any]] = {}
        for row in found:
            if row["provider"] not in wanted:
                continue
            known = latest.get(row["provider"])
            if known is None or row["expires"] >= known["expires"]:
                latest[row["provider"]] = row
        return [latest[pk] for pk in sorted(latest)]


def _frame(out: views.Outgoing, name: str) -> dict[str, Any]:
    """A `LogoutURL` of the iframe challenge."""
    if out.binding == "post":
        return {
            "url": out.url,
            "provider_name": name,
            "binding": "post",
            "saml_request": out.fields["SAMLRequest"],
            "saml_relay_state": out.fields.get("RelayState"),
        }
    return {"url": out.url, "provider_name": name, "binding": "redirect"}


def _step(out: views.Outgoing, name: str) -> dict[str, Any]:
    """The fields of a native logout challenge."""
    if out.binding == "post":
        return {
            "provider_name": name,
            "saml_binding": "post",
            "post_url": out.url,
            "saml_request": out.fields["SAMLRequest"],
            "saml_relay_state": out.fields.get("RelayState", ""),
        }
    return {"provider_name": name, "saml_binding": "redirect", "redirect_url": out.url}
