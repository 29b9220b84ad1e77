"""Contract cases for `policies/`, `propertymappings/`, `providers/` and `authenticators/`."""

from __future__ import annotations

import uuid
from typing import Any

from helpers import SECRET_KEY

from akcontract import Case, Setup
from tessera.core import identity
from tessera.core.crypto import Keyring, webauthn
from tessera.core.identity import devices


def _policy(kind: str, **settings: Any) -> Any:
    async def body(setup: Setup) -> dict[str, Any]:
        return {"name": f"{kind}-{setup.suffix}", "execution_logging": False, **settings}

    return body


async def _existing_policy(setup: Setup) -> uuid.UUID:
    policy = await setup.make("policies/dummy", {"name": f"any-{setup.suffix}", "result": True})
    return uuid.UUID(policy["pk"])


async def _binding(setup: Setup) -> dict[str, Any]:
    flow = await setup.first("flows/instances", slug="default-authentication-flow")
    policy = await setup.make("policies/dummy", {"name": f"bound-{setup.suffix}", "result": True})
    return {
        "policy": policy["pk"],
        "target": flow["pk"],
        "negate": False,
        "enabled": True,
        "order": 7,
        "timeout": 20,
        "failure_result": False,
    }


async def _scope_mapping(setup: Setup) -> dict[str, Any]:
    return {
        "name": f"department-{setup.suffix}",
        "scope_name": f"department-{setup.suffix}",
        "description": "Your department",
        "expression": 'return {"department": "engines"}',
    }


async def _oauth2_provider(setup: Setup) -> dict[str, Any]:
    authorize = await setup.first(
        "flows/instances", slug="default-provider-authorization-implicit-consent"
    )
    logout = await setup.first("flows/instances", slug="default-invalidation-flow")
    openid = await setup.first("propertymappings/provider/scope", scope_name="openid")
    return {
        "name": f"wiki-{setup.suffix}",
        "authorization_flow": authorize["pk"],
        "invalidation_flow": logout["pk"],
        "property_mappings": [openid["pk"]],
        "client_type": "confidential",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_id": f"wiki-{setup.suffix}",
        "client_secret": "a-long-enough-client-secret",
        "access_code_validity": "minutes=2",
        "access_token_validity": "hours=2",
        "refresh_token_validity": "days=7",
        "refresh_token_threshold": "seconds=0",
        "include_claims_in_id_token": True,
        "redirect_uris": [
            {
                "matching_mode": "strict",
                "url": "https://wiki.example.com/callback",
                "redirect_uri_type": "authorization",
            }
        ],
        "logout_uri": "",
        "logout_method": "backchannel",
        "sub_mode": "hashed_user_id",
        "issuer_mode": "per_provider",
    }


async def _existing_provider(setup: Setup) -> int:
    body = await _oauth2_provider(setup)
    return int((await setup.make("providers/oauth2", body))["pk"])


async def _device(setup: Setup, kind: str) -> int:
    """A confirmed device of `kind` for akadmin (the bootstrap token's user), made as its setup
    stage makes it."""
    keyring = Keyring(SECRET_KEY)
    async with setup.store.transaction() as tx:
        user = await identity.users.find_by_username(tx, "akadmin")
        assert user is not None
        if kind == "webauthn":
            credential = webauthn.Registered(
                credential_id=f"cred-{setup.suffix}",
                public_key="pQECAyYgASFYIPublicKeyMaterialForTheTest",
                sign_count=0,
                aaguid="00000000-0000-0000-0000-000000000000",
                user_verified=True,
                device_type="single_device",
                backed_up=False,
            )
            row = await devices.create_webauthn(tx, keyring, user["pk"], credential, "key")
            assert row is not None
        else:
            made = (
                devices.create_totp(tx, keyring, user["pk"], 6)
                if kind == "totp"
                else devices.create_static(tx, keyring, user["pk"])
            )
            row = await devices.confirm(tx, (await made)["pk"], f"{kind}-{setup.suffix}")
    return int(row["num_pk"])


def _existing_device(kind: str) -> Any:
    async def existing(setup: Setup) -> int:
        return await _device(setup, kind)

    return existing


CASES = [
    Case("policies/all", existing=_existing_policy),
    Case("policies/bindings", _binding, change={"order": 8}, patch={"negate": True}),
    Case(
        "policies/dummy",
        _policy("dummy", result=True, wait_min=0, wait_max=1),
        change={"result": False},
        patch={"wait_max": 2},
    ),
    Case(
        "policies/event_matcher",
        _policy(
            "event_matcher",
            action="login",
            app="authentik.core",
            model="authentik_core.user",
            client_ip="192.0.2.1",
        ),
        change={"action": "logout"},
        patch={"client_ip": "192.0.2.2"},
    ),
    Case(
        "policies/expression",
        _policy("expression", expression="return True"),
        change={"expression": "return False"},
        patch={"execution_logging": True},
    ),
    Case(
        "policies/password",
        _policy(
            "password",
            password_field="password",
            length_min=12,
            amount_uppercase=1,
            amount_lowercase=1,
            amount_digits=1,
            amount_symbols=0,
            check_static_rules=True,
            check_have_i_been_pwned=False,
            check_zxcvbn=True,
            zxcvbn_score_threshold=3,
            error_message="Choose a stronger password.",
        ),
        change={"length_min": 14},
        patch={"amount_symbols": 1},
    ),
    Case(
        "policies/password_expiry",
        _policy("password_expiry", days=30, deny_only=True),
        change={"days": 60},
        patch={"deny_only": False},
    ),
    Case(
        "policies/reputation",
        _policy("reputation", check_ip=True, check_username=False, threshold=-3),
        change={"threshold": -4},
        patch={"check_username": True},
    ),
    Case(
        "propertymappings/provider/scope",
        _scope_mapping,
        change={"description": "Your department, for the wiki"},
        patch={"expression": 'return {"department": "looms"}'},
    ),
    Case("providers/all", existing=_existing_provider),
    Case(
        "providers/oauth2",
        _oauth2_provider,
        change={"access_token_validity": "minutes=30"},
        patch={"grant_types": ["authorization_code"]},
    ),
    Case("authenticators/totp", existing=_existing_device("totp"), patch={"name": "phone"}),
    Case("authenticators/static", existing=_existing_device("static"), patch={"name": "codes"}),
    Case(
        "authenticators/webauthn", existing=_existing_device("webauthn"), patch={"name": "usb key"}
    ),
    Case("authenticators/admin/totp", existing=_existing_device("totp")),
    Case("authenticators/admin/static", existing=_existing_device("static")),
    Case("authenticators/admin/webauthn", existing=_existing_device("webauthn")),
]
