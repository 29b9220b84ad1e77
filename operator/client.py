"""The operator's client of the core admin API (`/api/v3/...`), over aiohttp.

The handlers (`tessera.operator.handlers`) call it; it calls nothing but the core over HTTP. Every
answer is turned into a typed outcome: a JSON body, or one of the errors below, so that a handler
decides between retrying (`CoreUnavailable`), reporting a bad spec (`Invalid`, `NotFound`) and
reporting a conflict (`Conflict`). The API token travels only in the Authorization header and
never appears in an error message or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

MANAGED_HEADER = "X-Tessera-Managed-By"
PAGE_SIZE = 100
MAX_PAGES = 1000  # a listing of more than 100 000 objects is a bug, not data
# Listings that show each caller only part of the objects unless asked for all: the application
# list keeps to those the caller's user may open (authentik's rule), and the operator must see
# every application it manages, whatever their policies, or it would create duplicates.
FULL_LIST = {"core/applications/": {"superuser_full_list": "true"}}


class CoreError(Exception):
    """Root of the core client's errors; `str()` is safe to show in a status or an event."""


class CoreUnavailable(CoreError):
    """Connection refused or reset, timeout, 5xx, or a refused token: try again later."""


class Invalid(CoreError):
    """400: the core rejected a field. `fields` maps field names to the core's messages."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self.fields = dict(fields)
        super().__init__(
            "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.fields.items())
            or "rejected by the core"
        )


class NotFound(CoreError):
    """404: the object is not there."""


class Conflict(CoreError):
    """409: the object is managed by someone else (or the write clashes with another object)."""


class CoreClient:
    """One HTTP session to the core. Use as `async with CoreClient(url, token) as core:`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CoreClient:
        # SECURITY: the token travels only in this header; errors and repr never include it.
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
            timeout=self._timeout,
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:  # never the token
        return f"CoreClient({self.base_url!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        managed: str | None = None,
    ) -> Any:
        """Send one request to `/api/v3/<path>`; the decoded JSON answer, or None for 204."""
        if self._session is None:
            raise RuntimeError("CoreClient used outside `async with`")
        url = f"{self.base_url}/api/v3/{path.lstrip('/')}"
        headers = {MANAGED_HEADER: managed} if managed else {}
        try:
            async with self._session.request(
                method, url, json=body, params=params, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CoreUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        return _outcome(method, path, status, raw)

    async def list(self, path: str, **filters: str) -> list[dict[str, Any]]:
        """Every object of a listing with these filters, across pages."""
        results: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {**filters, **FULL_LIST.get(path, {})}
            params.update(page=str(page), page_size=str(PAGE_SIZE))
            answer = await self.request("GET", path, params=params)
            results.extend(answer.get("results", []))
            if not answer.get("pagination", {}).get("next"):
                return results
        raise CoreUnavailable(f"GET {path}: more than {MAX_PAGES} pages")

    async def first(
        self, path: str, *, via: Mapping[str, str] | None = None, **filters: str
    ) -> dict[str, Any] | None:
        """The object whose fields equal the filters, or None.

        `via` names the query parameter that narrows a field where the listing has no filter of
        the field's own name (`{"managed": "managed__iexact"}` for outposts). The filters are
        checked again on the answer: a core that ignored an unknown filter would otherwise hand
        back some other object, and the operator would take it for its own.
        """
        params = {(via or {}).get(k, k): v for k, v in filters.items()}
        for found in await self.list(path, **params):
            if all(str(found.get(k)) == v for k, v in filters.items()):
                return found
        return None


def _outcome(method: str, path: str, status: int, raw: bytes) -> Any:
    data = _decode(raw)
    if 200 <= status < 300:
        return data
    where = f"{method} {path}"
    if status == 400:
        raise Invalid(_fields(data))
    if status == 404:
        raise NotFound(f"{where}: not found")
    if status == 409:
        raise Conflict(_detail(data) or f"{where}: conflict")
    if status in (401, 403):
        raise CoreUnavailable(f"{where}: the core refused the operator's token ({status})")
    if status >= 500 or status == 429:
        raise CoreUnavailable(f"{where}: the core answered {status}")
    raise Invalid({"non_field_errors": [f"{where}: unexpected answer {status}"]})


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _detail(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])[:500]
    return ""


def _fields(data: Any) -> dict[str, list[str]]:
    if not isinstance(data, dict):
        return {"non_field_errors": ["rejected by the core"]}
    if isinstance(data.get("detail"), str):
        return {"non_field_errors": [_detail(data)]}
    out: dict[str, list[str]] = {}
    for name, messages in list(data.items())[:20]:
        items = messages if isinstance(messages, list) else [messages]
        out[str(name)[:100]] = [
            json.dumps(m)[:300] if not isinstance(m, str) else m[:300] for m in items
        ]
    return out
