"""The password stage's `backends`, in authentik's names: InbuiltBackend checks the user's own
password, TokenBackend one of the user's app passwords; a stage without a backend refuses what
only that backend would accept. Other users' app passwords never pass."""

from __future__ import annotations

from typing import Any

LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
INBUILT = "authentik.core.auth.InbuiltBackend"
TOKEN = "authentik.core.auth.TokenBackend"


async def _login(client: Any, username: str, password: str) -> str:
    """The component shown after the password: user_login's redirect when it was accepted."""
    client.session.cookie_jar.clear()
    await client.get(LOGIN)
    await client.post(LOGIN, json={"uid_field": username})
    response = await client.post(LOGIN, json={"password": password})
    return str((await response.json())["component"])


async def _user(api: Any, make_user: Any, username: str, password: str) -> dict[str, Any]:
    user = await make_user(username)
    path = f"core/users/{user['pk']}/set_password/"
    assert (await api("POST", path, json={"password": password}))[0] == 204
    return user


async def _app_password(api: Any, identifier: str, user: dict[str, Any]) -> str:
    body = {"identifier": identifier, "intent": "app_password", "user": user["pk"]}
    status, created = await api("POST", "core/tokens/", json=body)
    assert status == 201, created
    status, key = await api("GET", f"core/tokens/{identifier}/view_key/")
    assert status == 200
    return str(key["key"])


async def _backends(api: Any, backends: list[str]) -> None:
    _, page = await api("GET", "stages/password/?name=default-authentication-password")
    (stage,) = page["results"]
    status, patched = await api(
        "PATCH", f"stages/password/{stage['pk']}/", json={"backends": backends}
    )
    assert status == 200 and patched["backends"] == backends, patched


async def test_app_passwords_log_in_only_with_the_token_backend(
    client: Any, api: Any, make_user: Any
) -> None:
    ada = await _user(api, make_user, "ada", "ada-own-password-1")
    grace = await _user(api, make_user, "grace", "grace-own-password-1")
    key = await _app_password(api, "ada-mail", ada)
    other = await _app_password(api, "grace-mail", grace)
    redirect = "xak-flow-redirect"
    # The default: the user's own password only.
    assert await _login(client, "ada", "ada-own-password-1") == redirect
    assert await _login(client, "ada", key) == "ak-stage-password"
    await _backends(api, [INBUILT, TOKEN])
    assert await _login(client, "ada", key) == redirect
    assert await _login(client, "ada", "ada-own-password-1") == redirect
    assert await _login(client, "ada", other) == "ak-stage-password"  # grace's, not ada's
    # Without InbuiltBackend the user's own password is refused.
    await _backends(api, [TOKEN])
    assert await _login(client, "ada", "ada-own-password-1") == "ak-stage-password"
    assert await _login(client, "ada", key) == redirect
