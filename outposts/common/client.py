"""The outpost's client of the core's REST API (aiohttp, `Authorization: Bearer <token>`).

`CoreClient` owns one `aiohttp.ClientSession` with the token, a `User-Agent` naming the outpost,
and TLS verification unless `AUTHENTIK_INSECURE`. `whoami` finds the outpost the token belongs to
(`/api/v3/outposts/instances/` shows an outpost token its own outpost only); `paginate` reads
every page of a list. Failures are sorted for the caller: `CoreRefused` (401/403: the token is
wrong, revoked, or not an outpost's), `CoreUnreachable` (no connection, timeout, 5xx),
`CoreResponseError` (any other answer the outpost cannot use). Called by `runtime` and by the
outposts' own code (the proxy's token exchange shares `session`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from tessera.outposts.common import settings as settings_

MAX_PAGES = 1000
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class CoreError(Exception):
    """The core could not be used; `str()` is a sentence for the operator of the outpost."""


class CoreUnreachable(CoreError):
    """No answer from the core: connection refused, DNS, TLS, timeout, or a 5xx."""


class CoreRefused(CoreError):
    """The core refused the token (HTTP 401 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CoreResponseError(CoreError):
    """An answer the outpost cannot use: another 4xx, or a body that is not the expected JSON."""


class OutpostInfo(BaseModel):
    """The fields of `/api/v3/outposts/instances/` an outpost acts on (others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pk: str
    name: str
    type: str
    providers: tuple[int, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)
    refresh_interval_s: int | None = None
    managed: str | None = None


class CoreClient:
    """REST calls to the core with the outpost's token."""

    def __init__(
        self, settings: settings_.OutpostSettings, *, user_agent: str, timeout: float = 10.0
    ) -> None:
        self.settings = settings
        self.user_agent = user_agent
        # No total: the control channel's websocket shares the session and lives for hours;
        # each REST call is bounded by `get`'s own deadline instead.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=min(timeout, 5.0), sock_read=timeout
        )
        self.deadline = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (opened on first use); its requests carry the token."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=32),
                trust_env=False,
            )
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        token = self.settings.token.get_secret_value()
        return {"Authorization": f"Bearer {token}", "User-Agent": self.user_agent}

    @property
    def ssl(self) -> bool:
        """False skips certificate verification (`AUTHENTIK_INSECURE`); True verifies."""
        return not self.settings.insecure

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CoreClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str) -> str:
        """The absolute URL of `path` (starting with `/`) on the core."""
        return self.settings.host + path

    def ws_url(self, path: str) -> str:
        """The websocket URL of `path` on the core (`http` → `ws`, `https` → `wss`)."""
        parts = urlsplit(self.url(path))
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The JSON body of `GET path`; `CoreError` subclasses on failure."""
        try:
            async with (
                asyncio.timeout(self.deadline),
                self.session.get(self.url(path), params=params) as response,
            ):
                body = await _read_bounded(response)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CoreUnreachable(
                f"cannot reach the core at {self.settings.host}: {describe_error(exc)}"
            ) from None
        return _decode(self.settings.host, path, status, body)

    async def paginate(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        """Every result of a paginated list (`?page=` until `pagination.next` is 0)."""
        results: list[Any] = []
        page = 1
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "page": str(page), "page_size": "100"}
            body = await self.get(path, query)
            try:
                results.extend(body["results"])
                page = int(body["pagination"]["next"])
            except (TypeError, KeyError, ValueError):
                raise CoreResponseError(f"{path}: not a paginated list") from None
            if page <= 0:
                return results
        raise CoreResponseError(f"{path}: more than {MAX_PAGES} pages")

    async def whoami(self) -> OutpostInfo:
        """The outpost this token belongs to: the one `/api/v3/outposts/instances/` shows.

        `CoreRefused` when the token is refused or sees no outpost or several (an admin's token
        is not an outpost's: picking the first would serve another outpost's providers).
        """
        outposts = await self.paginate("/api/v3/outposts/instances/")
        if len(outposts) != 1:
            what = "no outpost" if not outposts else f"{len(outposts)} outposts"
            raise CoreRefused(
                f"the token sees {what} at {self.settings.host}: AUTHENTIK_TOKEN must be the "
                "API token of exactly one outpost (ak-outpost-<pk>-api)",
                403,
            )
        try:
            return OutpostInfo.model_validate(outposts[0])
        except ValueError:
            raise CoreResponseError("/api/v3/outposts/instances/: not an outpost") from None


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The body, or up to one byte past `MAX_RESPONSE_BYTES` (which `_decode` refuses)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _decode(host: str, path: str, status: int, body: bytes) -> Any:
    if status in (401, 403):
        raise CoreRefused(
            f"the core at {host} refused the token (HTTP {status} on {path}): check "
            "AUTHENTIK_TOKEN",
            status,
        )
    if status >= 500:
        raise CoreUnreachable(f"the core at {host} answered HTTP {status} on {path}")
    if len(body) > MAX_RESPONSE_BYTES:
        raise CoreResponseError(f"{path}: answer larger than {MAX_RESPONSE_BYTES} bytes")
    if status != 200:
        raise CoreResponseError(f"the core at {host} answered HTTP {status} on {path}")
    try:
        return json.loads(body)
    except ValueError:
        raise CoreResponseError(f"{path}: the answer is not JSON") from None
