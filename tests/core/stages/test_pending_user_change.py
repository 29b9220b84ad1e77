"""Authentication facts belong to one pending user (issue 22, item 12): a passkey login followed
by a `restart_with_context` must not let the next username typed skip its password and MFA."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flowkit import call, make_flow
from helpers import SECRET_KEY
from webauthnkit import SoftAuthenticator, b64url

from tessera.core import config, crypto, store
from tessera.core.crypto import webauthn
from tessera.core.identity import devices, users
from tessera.core.stages import base
from tessera.core.store import crud

ORIGIN = "https://sso.example.com"
FLOW = "/api/v3/flows/executor/passkey-terms/"


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings(web={"public_url": ORIGIN})


async def _passkey_user(
    make_user: Any, db: store.Store, username: str
) -> tuple[dict[str, Any], SoftAuthenticator]:
    """A user with a discoverable credential on a software authenticator."""
    user = await make_user(username)
    key = SoftAuthenticator(ORIGIN)
    keyring = crypto.Keyring(SECRET_KEY)
    key.user_handle = b64url(users.uid(keyring, user["pk"]).encode())
    registered = webauthn.Registered(
        credential_id=key.id,
        public_key=b64url(key.cose_key()),
        sign_count=0,
        aaguid="00000000-0000-0000-0000-000000000000",
        user_verified=True,
        device_type="multi_device",
        backed_up=False,
    )
    async with db.transaction() as tx:
        assert await devices.create_webauthn(tx, keyring, user["pk"], registered, "passkey")
    return dict(user), key


async def _flow(db: store.Store) -> None:
    """identification (passkey autofill) -> password -> MFA -> a terms prompt whose binding
    restarts with context on a bad answer -> login."""
    terms = {"fields": [{"field_key": "terms", "label": "I agree", "type": "text"}]}
    flow_pk = await make_flow(
        db,
        "passkey-terms",
        [
            ("identification", {"user_fields": ["username"]}),
            ("password", {}),
            ("authenticator_validate", {"not_configured_action": "deny"}),
            ("prompt", terms),
            ("user_login", {}),
        ],
    )
    async with db.transaction() as tx:
        targets = [crud.Filter("target", "eq", flow_pk)]
        bindings = await crud.rows(tx, "flow_stage_bindings", targets)
        stages = {
            row["kind"]: row
            for row in await crud.find_many(tx, "stages", "pk", [b["stage"] for b in bindings])
        }
        ident = stages["identification"]
        config = {**ident["config"], "webauthn_stage": stages["authenticator_validate"]["pk"]}
        await crud.update(tx, "stages", {"pk": ident["pk"]}, {"config": config})
        (prompt,) = [b for b in bindings if b["stage"] == stages["prompt"]["pk"]]
        await crud.update(
            tx,
            "flow_stage_bindings",
            {"pk": prompt["pk"]},
            {"invalid_response_action": "restart_with_context"},
        )


async def _whoami(client: Any) -> str | None:
    response = await client.get("/api/v3/core/users/me/")
    return str((await response.json())["user"]["username"]) if response.status == 200 else None


async def test_passkey_login_then_restart_with_context_cannot_log_in_as_another_user(
    client: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_user("victor")  # the victim: a password and an MFA device he never gives away
    _, key = await _passkey_user(make_user, bootstrapped, "mallory")
    await _flow(bootstrapped)
    challenge = await call(client, FLOW)
    assert challenge["component"] == "ak-stage-identification"
    # Mallory logs in with her own passkey (a real assertion, verified by py_webauthn): the
    # password and MFA stages pass her, and the terms prompt asks.
    body = await call(client, FLOW, {"passkey": key.get(challenge["passkey_challenge"])})
    assert body["component"] == "ak-stage-prompt", body
    # A bad answer restarts the flow with its context: identification again.
    body = await call(client, FLOW, {"terms": ""})
    assert body["component"] == "ak-stage-identification", body
    # She types the victim's name. His password must be asked for: the passkey was Mallory's.
    body = await call(client, FLOW, {"uid_field": "victor"})
    assert body["component"] == "ak-stage-password", body
    assert await _whoami(client) is None


async def test_the_same_pending_user_keeps_the_facts_it_earned(
    client: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    _, key = await _passkey_user(make_user, bootstrapped, "nina")
    await _flow(bootstrapped)
    challenge = await call(client, FLOW)
    body = await call(client, FLOW, {"passkey": key.get(challenge["passkey_challenge"])})
    assert body["component"] == "ak-stage-prompt", body
    assert (await call(client, FLOW, {"terms": ""}))["component"] == "ak-stage-identification"
    body = await call(client, FLOW, {"uid_field": "NINA"})  # herself again, in another case
    assert body["component"] == "ak-stage-prompt", body
    assert (await call(client, FLOW, {"terms": "yes"}))["component"] == "xak-flow-redirect"
    assert await _whoami(client) == "nina"


def test_every_change_of_pending_user_drops_the_authentication_facts() -> None:
    state = base.FlowState("f", "slug", "authentication", [], pending_user=1)
    state.context.update(
        auth_method=base.PASSKEY_METHOD, auth_method_args={"x": 1}, email_verified=True, keep=1
    )

    def saved() -> base.FlowState:  # as the cache keeps it: a JSON round trip
        return base.FlowState.load(json.loads(json.dumps(state.dump())))

    loaded = saved()  # loading a saved state keeps them
    assert loaded.context["auth_method"] == base.PASSKEY_METHOD
    loaded.pending_user = 1
    assert loaded.context["auth_method"] == base.PASSKEY_METHOD
    for other in (2, None):
        again = saved()
        again.pending_user = other
        assert again.context == {"keep": 1}
