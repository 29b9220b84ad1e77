"""Helpers for the tests of outposts and proxy providers through the admin API: a proxy provider
with its application, an outpost, and the outpost's API token read back as an admin would."""

from __future__ import annotations

from typing import Any

from oauth2kit import IMPLICIT, flow_pk

Api = Any


async def proxy_body(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "authorization_flow": await flow_pk(api, IMPLICIT),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "external_host": f"https://{name}.example.com",
        "internal_host": "http://127.0.0.1:8080",
        **fields,
    }


async def make_proxy_provider(
    api: Api, name: str, *, application: bool = True, **fields: Any
) -> dict[str, Any]:
    """A proxy provider (and, by default, an application `name` using it)."""
    status, provider = await api(
        "POST", "providers/proxy/", json=await proxy_body(api, name, **fields)
    )
    assert status == 201, provider
    if application:
        status, app = await api(
            "POST",
            "core/applications/",
            json={"name": name, "slug": name, "provider": provider["pk"]},
        )
        assert status == 201, app
    return dict(provider)


async def make_outpost(
    api: Api, name: str, providers: list[int], type: str = "proxy", **config: Any
) -> dict[str, Any]:
    body = {"name": name, "type": type, "providers": providers, "config": config}
    status, outpost = await api("POST", "outposts/instances/", json=body)
    assert status == 201, outpost
    return dict(outpost)


async def outpost_token(api: Api, outpost: dict[str, Any]) -> str:
    """The outpost's API token key, through `view_key` as an admin."""
    status, body = await api("GET", f"core/tokens/{outpost['token_identifier']}/view_key/")
    assert status == 200, body
    return str(body["key"])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
