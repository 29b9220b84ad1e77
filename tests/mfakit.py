"""A password-then-MFA flow for the authenticator_validate stage's tests, and a user to log in."""

from __future__ import annotations

from typing import Any

from flowkit import call, make_flow

PASSWORD = "pw-mfa-user-123"


async def mfa_flow(db: Any, slug: str, **validate: Any) -> str:
    """identification → password → authenticator_validate (`validate` settings) → user_login;
    the flow's executor path."""
    await make_flow(
        db,
        slug,
        [
            ("identification", {}),
            ("password", {}),
            ("authenticator_validate", validate),
            ("user_login", {}),
        ],
    )
    return f"/api/v3/flows/executor/{slug}/"


async def user_with_password(api: Any, make_user: Any, username: str) -> dict[str, Any]:
    user = await make_user(username)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    return dict(user)


async def up_to_second_factor(client: Any, path: str, username: str) -> dict[str, Any]:
    """A fresh browser's username and password; the answer after the password."""
    client.session.cookie_jar.clear()
    await call(client, path)
    await call(client, path, {"uid_field": username})
    return await call(client, path, {"password": PASSWORD})
