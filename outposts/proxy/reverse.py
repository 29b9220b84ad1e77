"""Proxy mode: the outpost is the application's reverse proxy (authentik's `mode_proxy.go`).

A request to a `proxy`-mode provider's external host is checked like a forward-auth request,
then sent to `internal_host` with the identity headers: the body streamed both ways, websockets
bridged frame by frame, `Host` rewritten to the internal host (or the `ak_proxy.host_header`
claim) and the original kept in `X-Forwarded-Host`. `app`'s middleware calls `serve`.

# SECURITY: a client's own `X-authentik-*` headers (any case, dashes or underscores) are
# removed before the request goes upstream, so only the outpost speaks for the user; so are
# the hop-by-hop headers, the Authorization header that header authentication consumed, and
# the outpost's own cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog
import yarl
from aiohttp import web
from multidict import CIMultiDict

from tessera.outposts.proxy import forwarded, handlers, identity, pages, signed
from tessera.outposts.proxy.providers import Provider
from tessera.outposts.proxy.sessions import Session

log = structlog.get_logger(__name__)
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te"}
    | {"trailer", "transfer-encoding", "upgrade", "proxy-connection", "host"}
)
WS_MAX_MESSAGE = 16 * 1024 * 1024


def _upstream_url(provider: Provider, session: Session | None, path_qs: str) -> str:
    base = provider.internal_host
    override = _ak_proxy(session).get("backend_override")
    if isinstance(override, str) and override.startswith(("http://", "https://")):
        base = override.rstrip("/")
    return base + path_qs


def _ak_proxy(session: Session | None) -> Mapping[str, Any]:
    value = session.claims.get("ak_proxy") if session is not None else None
    return value if isinstance(value, Mapping) else {}


def upstream_headers(
    request: web.Request,
    provider: Provider,
    session: Session | None,
    original: forwarded.Original,
    identity_headers: Mapping[str, str],
) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    connection_named = {
        token.strip().lower() for token in request.headers.get("Connection", "").split(",")
    }
    consumed_authorization = request.get(handlers.HEADER_AUTH, False)
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in connection_named or identity.strip([name]):
            continue
        if lower.startswith("x-forwarded-"):
            continue  # rewritten below from what the outpost believes
        if lower == "authorization" and consumed_authorization:
            continue
        if lower == "cookie":
            value = _without_session(value, provider.cookie_name)
            if not value:
                continue
        out.add(name, value)
    for name, value in identity_headers.items():
        out[name] = value
    host_header = _ak_proxy(session).get("host_header")
    internal = urllib.parse.urlsplit(_upstream_url(provider, session, "/"))
    out["Host"] = host_header if isinstance(host_header, str) and host_header else internal.netloc
    out["X-Forwarded-Host"] = original.host
    out["X-Forwarded-Proto"] = original.scheme
    peer = request.remote or ""
    prior = (
        request.headers.get("X-Forwarded-For", "")
        if forwarded.trusted(request, handlers.outpost_of(request).networks)
        else ""
    )
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    return out


def _without_session(cookie_header: str, cookie_name: str) -> str:
    """The Cookie header minus the outpost's own cookies (the sealed session and its chunks,
    the login binding): the application has the identity headers and never needs them."""
    kept = [
        part
        for part in cookie_header.split(";")
        if not part.strip().split("=", 1)[0].strip().startswith(cookie_name)
    ]
    return ";".join(kept).strip()


async def serve(
    request: web.Request, provider: Provider, original: forwarded.Original
) -> web.StreamResponse:
    """Check the request, then proxy it (or its websocket) to the provider's internal host."""
    outpost = handlers.outpost_of(request)
    if signed.marked(original.path_qs):  # callback or logout on any path
        handlers.signed_answer(request, provider, original.url)
    session = await handlers.authenticate(request, provider)
    if session is None and not provider.skipped(original.path, original.url):
        return handlers.unauthenticated(request, provider, original, answer_401=False)
    ident = (
        identity.headers(provider, session, outpost.options.outpost_name, outpost.options.version)
        if session is not None
        else {}
    )
    headers = upstream_headers(request, provider, session, original, ident)
    url = _upstream_url(provider, session, original.path_qs)
    client = outpost.upstream(provider.verify_tls)
    if _is_websocket(request):
        return await _websocket(request, client, url, headers)
    return await _http(request, client, url, headers)


def _is_websocket(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


async def _http(
    request: web.Request, client: aiohttp.ClientSession, url: str, headers: CIMultiDict[str]
) -> web.StreamResponse:
    body = request.content if request.body_exists else None
    try:
        upstream = await client.request(
            request.method,
            yarl.URL(url, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("upstream_unreachable", url=url.split("?", 1)[0], error=type(exc).__name__)
        raise pages.problem(
            request, 502, "Bad gateway", "The application behind this address is not answering."
        ) from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                response.headers.add(name, value)
        if upstream.headers.get("Content-Length") is not None:
            response.content_length = int(upstream.headers["Content-Length"])
        response.headers["X-Powered-By"] = "goauthentik.io"
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            log.info("upstream_stream_cut", error=type(exc).__name__)
            return response  # headers are gone; the client sees a short body
        await response.write_eof()
    return response


async def _websocket(
    request: web.Request, client: aiohttp.ClientSession, url: str, headers: CIMultiDict[str]
) -> web.StreamResponse:
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    for name in list(headers):
        if name.lower().startswith("sec-websocket-"):
            del headers[name]
    try:
        upstream = await client.ws_connect(
            url,
            headers=headers,
            protocols=protocols,
            max_msg_size=WS_MAX_MESSAGE,
            autoping=True,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("upstream_ws_unreachable", error=type(exc).__name__)
        raise pages.problem(
            request, 502, "Bad gateway", "The application's websocket is not answering."
        ) from None
    downstream = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (), max_msg_size=WS_MAX_MESSAGE
    )
    await downstream.prepare(request)
    pumps = [
        asyncio.create_task(_pump(downstream, upstream)),
        asyncio.create_task(_pump(upstream, downstream)),
    ]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pumps:
            task.cancel()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await upstream.close()
        await downstream.close()
    return downstream


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break
