"""The LDAP outpost's calls to the core (`core.wire.ldap`), under
`/api/v3/outposts/ldap/<provider pk>/`: `bind/`, `unbind/`, `directory/`, `search/`,
`password/`, with the outpost's token over the runtime's `CoreClient` session.

Answers are parsed into wire models; a refused bind is `BindRefused`, a refused password
change `PasswordRefused` (the policy's messages); the core being away is `client.CoreUnreachable`
and any other surprise `client.CoreResponseError`. Used by `outpost` and `protocol`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pydantic

from tessera.core.wire import ldap as wire
from tessera.outposts.common import client as client_

PREFIX = "/api/v3/outposts/ldap/"


class PasswordRefused(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages) or "the new password was refused")
        self.messages = messages


class FilterRefused(Exception):
    """The core could not read the filter text of a direct-mode search (HTTP 400)."""


class SessionGone(Exception):
    """The core no longer knows the bound session (ended, expired, user deactivated: 403)."""


class CoreApi:
    def __init__(self, client: client_.CoreClient, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> tuple[int, Any]:
        url = self.client.url(path)
        try:
            async with (
                asyncio.timeout(deadline or self.timeout),
                self.client.session.request(method, url, json=body, params=params) as r,
            ):
                raw = await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise client_.CoreUnreachable(
                f"cannot reach the core: {client_.describe_error(exc)}"
            ) from None
        if status >= 500:
            raise client_.CoreUnreachable(f"the core answered HTTP {status} on {path}")
        if len(raw) > client_.MAX_RESPONSE_BYTES:
            raise client_.CoreResponseError(f"{path}: answer too large")
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            raise client_.CoreResponseError(f"{path}: the answer is not JSON") from None

    async def bind(
        self, provider: int, request: wire.BindRequest
    ) -> wire.BindResult | wire.BindRefused:
        status, body = await self._call(
            "POST", f"{PREFIX}{provider}/bind/", request.model_dump(mode="json")
        )
        try:
            if status == 200:
                return wire.BindResult.model_validate(body)
            if status in (401, 403, 429):
                return wire.BindRefused.model_validate(body)
        except pydantic.ValidationError:
            raise client_.CoreResponseError(f"bind/: unexpected answer (HTTP {status})") from None
        raise client_.CoreResponseError(f"bind/: HTTP {status}")

    async def unbind(self, provider: int, session_id: str) -> None:
        body = wire.UnbindRequest(session_id=session_id).model_dump(mode="json")
        status, _ = await self._call("POST", f"{PREFIX}{provider}/unbind/", body)
        if status not in (200, 204, 404):
            raise client_.CoreResponseError(f"unbind/: HTTP {status}")

    async def directory(self, provider: int, since: int | None = None) -> wire.Directory:
        params = {"since": str(since)} if since is not None else None
        status, body = await self._call(
            "GET", f"{PREFIX}{provider}/directory/", params=params, deadline=60.0
        )
        return _directory(status, body, "directory/")

    async def search(
        self, provider: int, request: wire.SearchRequest, deadline: float | None = None
    ) -> wire.Directory:
        status, body = await self._call(
            "POST",
            f"{PREFIX}{provider}/search/",
            request.model_dump(mode="json"),
            deadline=deadline,
        )
        if status == 400:
            raise FilterRefused(str(body)[:300])
        if status == 403:
            raise SessionGone(str(body)[:300])
        return _directory(status, body, "search/")

    async def password(self, provider: int, request: wire.PasswordChangeRequest) -> None:
        status, body = await self._call(
            "POST", f"{PREFIX}{provider}/password/", request.model_dump(mode="json")
        )
        if status in (200, 204):
            return
        if status == 400:
            raise PasswordRefused(_messages(body))
        if status in (401, 403):
            raise PasswordRefused(["not allowed to change this password"])
        raise client_.CoreResponseError(f"password/: HTTP {status}")


def _directory(status: int, body: Any, what: str) -> wire.Directory:
    if status != 200:
        raise client_.CoreResponseError(f"{what}: HTTP {status}")
    try:
        return wire.Directory.model_validate(body)
    except pydantic.ValidationError:
        raise client_.CoreResponseError(f"{what}: not a directory") from None


def _messages(body: Any) -> list[str]:
    out: list[str] = []
    if isinstance(body, dict):
        for value in body.values():
            items = value if isinstance(value, list) else [value]
            out.extend(str(v)[:200] for v in items if isinstance(v, str | int))
    return out[:10]
