"""The OAuth2 provider against identity confusion (issue 22, items 8 and 10): a token's user is
checked the same way by every endpoint, and a subject derived from an email address names one
user only."""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import log_in_as
from oauth2kit import authorize, basic, code_tokens, key_pair, make_provider, token

from tessera.core.identity import util
from tessera.core.store import crud

INTROSPECT = "/application/o/introspect/"
USERINFO = "/application/o/userinfo/"


@pytest.fixture
async def provider(api: Any, client: Any) -> dict[str, Any]:
    return await make_provider(api, "wiki", signing_key=await key_pair(api, "wiki"))


async def _introspect(client: Any, provider: dict[str, Any], raw: str) -> bool:
    answer = await client.post(
        INTROSPECT,
        data={"token": raw},
        headers=basic(provider["client_id"], provider["client_secret"]),
    )
    assert answer.status == 200, await answer.text()
    return bool((await answer.json())["active"])


async def _userinfo(client: Any, access: str) -> bool:
    answer = await client.get(USERINFO, headers={"Authorization": f"Bearer {access}"})
    assert answer.status in (200, 401), await answer.text()
    return bool(answer.status == 200)


async def _refresh_works(client: Any, provider: dict[str, Any], refresh: str) -> bool:
    answer = await token(client, provider, grant_type="refresh_token", refresh_token=refresh)
    return bool(answer.status == 200)


async def _tokens_of(
    client: Any, bootstrapped: Any, make_user: Any, provider: dict[str, Any], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await make_user(name, email=f"{name}@example.com")
    await log_in_as(client, bootstrapped, name)
    issued = await code_tokens(client, provider)
    assert "refresh_token" in issued
    assert await _introspect(client, provider, issued["access_token"])
    assert await _introspect(client, provider, issued["refresh_token"])
    return user, issued


async def test_introspection_reports_tokens_of_a_deactivated_user_as_inactive(
    api: Any, client: Any, bootstrapped: Any, make_user: Any, provider: dict[str, Any]
) -> None:
    user, issued = await _tokens_of(client, bootstrapped, make_user, provider, "dora")
    status, body = await api("PATCH", f"core/users/{user['pk']}/", json={"is_active": False})
    assert status == 200, body
    assert not await _userinfo(client, issued["access_token"])
    assert not await _introspect(client, provider, issued["access_token"])
    assert not await _introspect(client, provider, issued["refresh_token"])
    assert not await _refresh_works(client, provider, issued["refresh_token"])


async def test_introspection_reports_tokens_of_a_deleted_user_as_inactive(
    api: Any, client: Any, bootstrapped: Any, make_user: Any, provider: dict[str, Any]
) -> None:
    user, issued = await _tokens_of(client, bootstrapped, make_user, provider, "dan")
    status, _ = await api("DELETE", f"core/users/{user['pk']}/")
    assert status == 204
    assert not await _userinfo(client, issued["access_token"])
    assert not await _introspect(client, provider, issued["access_token"])
    assert not await _introspect(client, provider, issued["refresh_token"])


async def test_introspection_answers_as_userinfo_and_refresh_after_a_password_change(
    api: Any, client: Any, bootstrapped: Any, make_user: Any, provider: dict[str, Any]
) -> None:
    """A password change ends no token at userinfo or the token endpoint (as in authentik), so
    introspection must not report them otherwise: every endpoint gives the same answer."""
    user, issued = await _tokens_of(client, bootstrapped, make_user, provider, "pat")
    status, _ = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": "a-new-Passw0rd!"}
    )
    assert status == 204
    answers = {
        "userinfo": await _userinfo(client, issued["access_token"]),
        "introspect access": await _introspect(client, provider, issued["access_token"]),
        "introspect refresh": await _introspect(client, provider, issued["refresh_token"]),
        "refresh grant": await _refresh_works(client, provider, issued["refresh_token"]),
    }
    assert set(answers.values()) == {True}, answers


# sub_mode user_email: the subject is the address, so it must name one user ------------------


async def test_a_shared_address_gives_no_user_email_subject(
    api: Any, client: Any, bootstrapped: Any, make_user: Any
) -> None:
    """Even when an administrator gives two users one address (which users cannot do to
    themselves), neither gets a token whose `sub` would also be the other's."""
    provider = await make_provider(
        api, "mail-app", signing_key=await key_pair(api, "mail-app"), sub_mode="user_email"
    )
    victim = await make_user("victim", email="victim@example.com")
    mallory = await make_user("mallory", email="mallory@example.com")
    await log_in_as(client, bootstrapped, "mallory")
    issued = await code_tokens(client, provider)
    assert issued["access_token"]
    status, _ = await api(
        "PATCH", f"core/users/{mallory['pk']}/", json={"email": "VICTIM@example.com"}
    )
    assert status == 200
    redirect = await authorize(client, provider)
    assert redirect["error"] == "access_denied" and "address" in redirect["error_description"]
    answer = await token(
        client, provider, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert answer.status == 400 and (await answer.json())["error"] == "invalid_grant"
    await log_in_as(client, bootstrapped, "victim")
    assert (await authorize(client, provider))["error"] == "access_denied"
    # Once the address is hers alone again, the victim's subject is her address.
    await api("PATCH", f"core/users/{mallory['pk']}/", json={"email": "mallory@example.com"})
    issued = await code_tokens(client, provider)
    assert (await _claims(client, issued["access_token"]))["sub"] == "victim@example.com"
    assert victim["pk"]


async def test_a_user_without_an_address_gets_no_user_email_subject(
    api: Any, client: Any, bootstrapped: Any, make_user: Any
) -> None:
    provider = await make_provider(
        api, "mail-app", signing_key=await key_pair(api, "mail-app"), sub_mode="user_email"
    )
    await make_user("nomail")
    await log_in_as(client, bootstrapped, "nomail")
    assert (await authorize(client, provider))["error"] == "access_denied"


async def _claims(client: Any, access: str) -> dict[str, Any]:
    answer = await client.get(USERINFO, headers={"Authorization": f"Bearer {access}"})
    assert answer.status == 200, await answer.text()
    return dict(await answer.json())


async def test_a_user_holding_the_client_credentials_account_name_is_not_the_clients_identity(
    client: Any, bootstrapped: Any, provider: dict[str, Any]
) -> None:
    """A row named as the provider's service account but of another type (a user who took the
    name before it was reserved) gets no token for the client."""
    async with bootstrapped.transaction() as tx:
        await crud.insert(
            tx,
            "users",
            {
                "username": "ak-wiki-client_credentials",
                "username_folded": "ak-wiki-client_credentials",
                "uuid": util.new_uuid(),
                "name": "squatter",
                "email": "squatter@example.com",
                "password": "",
                "is_active": True,
                "type": "internal",
                "path": "users",
                "attributes": {},
                "date_joined": util.now(),
            },
        )
    answer = await token(client, provider, grant_type="client_credentials")
    assert answer.status == 400, await answer.text()
    assert (await answer.json())["error"] == "invalid_grant"


async def test_client_credentials_makes_and_uses_its_own_service_account(
    client: Any, api: Any, provider: dict[str, Any]
) -> None:
    answer = await token(client, provider, grant_type="client_credentials")
    assert answer.status == 200, await answer.text()
    _, page = await api("GET", "core/users/?username=ak-wiki-client_credentials")
    assert [u["type"] for u in page["results"]] == ["service_account"]
