"""Helpers of the LDAP provider's core-side tests: a provider with its application and an LDAP
outpost holding it (through the admin API), and the outpost's calls with its token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oauth2kit import flow_pk
from proxyadminkit import bearer, make_outpost, outpost_token

Api = Any
BIND_FLOW = "default-authentication-flow"
PASSWORD = "ldap-Pa55word-for-tests"


async def ldap_body(api: Api, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "authorization_flow": await flow_pk(api, fields.pop("bind_flow", BIND_FLOW)),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "base_dn": f"dc={name},dc=example,dc=com",
        **fields,
    }


async def make_ldap_provider(
    api: Api, name: str, *, application: bool = True, **fields: Any
) -> dict[str, Any]:
    """An LDAP provider (and, by default, an application `name` using it)."""
    status, provider = await api(
        "POST", "providers/ldap/", json=await ldap_body(api, name, **fields)
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


@dataclass
class Served:
    """A provider held by an LDAP outpost, and the outpost's calls."""

    api: Api
    provider: dict[str, Any]
    outpost: dict[str, Any]
    key: str

    @property
    def pk(self) -> int:
        return int(self.provider["pk"])

    async def call(
        self, method: str, what: str, body: Any = None, key: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = bearer(key if key is not None else self.key)
        if body is not None:
            kw["json"] = body
        return await self.api(method, f"outposts/ldap/{self.pk}/{what}/", headers=headers, **kw)

    async def bind(self, username: str, password: str = PASSWORD, **extra: Any) -> tuple[int, Any]:
        return await self.call(
            "POST", "bind", {"username": username, "password": password, **extra}
        )

    async def bound(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        status, body = await self.bind(username, password)
        assert status == 200, body
        return dict(body)


async def serve(api: Api, name: str = "ldap", **fields: Any) -> Served:
    provider = await make_ldap_provider(api, name, **fields)
    outpost = await make_outpost(api, f"{name}-outpost", [provider["pk"]], type="ldap")
    return Served(api, provider, outpost, await outpost_token(api, outpost))


async def user_with_password(api: Api, username: str, **fields: Any) -> dict[str, Any]:
    status, user = await api("POST", "core/users/", json={"username": username, **fields})
    assert status == 201, user
    status, body = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD}
    )
    assert status in (200, 204), body
    return dict(user)
