"""E-mail addresses checked as authentik (Django's `EmailValidator`) checks them: homelab names
(`.lan`, `.local`, `.internal`, `.test`, `.home.arpa`) and `localhost` are valid; bad syntax is a
400 naming the field, in the users API, prompts, invitations and the bootstrap setting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from flowkit import make_flow

from tessera.core import config, wire
from tessera.core.stages import prompt

API = Callable[..., Awaitable[tuple[int, Any]]]

HOMELAB = [
    "admin@home.arpa",
    "admin@nas.lan",
    "me@box.local",
    "ops@corp.internal",
    "a@b.test",
    "root@localhost",
    "first.last+tag@example.com",
    "o'brien@example.org",
    '"quoted local"@example.com'.replace(" ", "\\ "),
    "user@[192.0.2.1]",
    "user@[::1]",
    "user@bücher.example",
    "x@" + "a" * 63 + ".example",
]
BAD = [
    "",
    "plain",
    "@example.com",
    "user@",
    "user@lan",  # one label, not localhost
    "user@-host.lan",
    "user@host-.lan",
    "user@host.lan-",
    "user@host..lan",
    "user@host.c",  # last label of one character
    "user.@example.com",
    ".user@example.com",
    "us..er@example.com",
    "us er@example.com",
    "user@exa mple.com",
    "user@[300.1.1.1]",
    "user@[not-an-ip]",
    "user@" + "a" * 64 + ".example",
    "a" * 310 + "@example.com",
    "user@example.com\n",
    '"unclosed@example.com',
]


@pytest.mark.parametrize("address", HOMELAB)
def test_valid_syntax(address: str) -> None:
    assert wire.emails.valid(address)
    assert wire.core.UserRequest(username="u", email=address).email == address


@pytest.mark.parametrize("address", BAD)
def test_bad_syntax(address: str) -> None:
    assert not wire.emails.valid(address)
    if address:  # "" means no address on a user
        with pytest.raises(ValueError, match="Enter a valid email address"):
            wire.core.UserRequest(username="u", email=address)


@pytest.mark.parametrize("address", ["admin@home.arpa", "root@nas.lan", "a@b.internal"])
def test_bootstrap_email_accepts_homelab_names(address: str, tmp_path: Path) -> None:
    settings = config.load(data_dir=tmp_path, bootstrap_email=address)
    assert settings.bootstrap_email == address


def test_bad_bootstrap_email_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.load(data_dir=tmp_path, bootstrap_email="root@@home.arpa")
    assert str(raised.value).startswith("AUTHENTIK_BOOTSTRAP_EMAIL:")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("raw", "ok"), [("me@nas.lan", True), ("me@nas", False)])
def test_prompt_email_fields(raw: str, ok: bool) -> None:
    spec = prompt.PromptField.model_validate(
        {"name": "email", "field_key": "email", "label": "Email", "type": "email", "required": True}
    )
    value, error = prompt._clean(spec, raw, [])
    assert (value, error) == ((raw, "") if ok else (None, wire.emails.MESSAGE))


async def test_users_api_takes_homelab_addresses_and_names_the_bad_field(api: API) -> None:
    status, user = await api(
        "POST", "core/users/", json={"username": "nas-admin", "email": "admin@home.arpa"}
    )
    assert status == 201 and user["email"] == "admin@home.arpa", user
    status, patched = await api(
        "PATCH", f"core/users/{user['pk']}/", json={"email": "admin@nas.local"}
    )
    assert status == 200 and patched["email"] == "admin@nas.local"
    for bad in ("admin@nas", "admin@@nas.lan", "admin@nas.lan "):
        status, errors = await api("PATCH", f"core/users/{user['pk']}/", json={"email": bad})
        assert status == 400 and list(errors) == ["email"], (bad, errors)


async def test_invitation_fixed_address_on_a_homelab_name(
    client: Any, bootstrapped: Any, api: API
) -> None:
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "password", "type": "password", "order": 1},
    ]
    await make_flow(
        bootstrapped,
        "invite-lan",
        [
            ("invitation", {}),
            ("prompt", {"fields": fields}),
            ("user_write", {"user_creation_mode": "always_create"}),
            ("user_login", {}),
        ],
        designation="enrollment",
    )
    status, invitation = await api(
        "POST",
        "stages/invitation/invitations/",
        json={"name": "lan", "fixed_data": {"email": "guest@printer.lan"}},
    )
    assert status == 201, invitation
    path = "/api/v3/flows/executor/invite-lan/"
    await client.get(path + f"?query=itoken%3D{invitation['pk']}")
    answer = {"username": "lan-guest", "password": "a-long-password"}
    body = await (await client.post(path, json=answer)).json()
    assert body["component"] == "xak-flow-redirect", body
    _, users = await api("GET", "core/users/?username=lan-guest")
    assert users["results"][0]["email"] == "guest@printer.lan"
