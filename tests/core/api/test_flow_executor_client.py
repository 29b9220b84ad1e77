"""Real flows driven through authentik's generated client (`FlowsApi`), on SQLite and PostgreSQL.

Each challenge is parsed by the client's own model for its `component` (`akclientkit.challenge`):
a field missing, null where the client forbids it or of the wrong type fails the test, as it would
fail a script. Answers are the client's answer models, sent by `flows_executor_solve`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import akclientkit
import authentik_client as ak
import pyotp
from flowkit import make_flow

from tessera.core.identity import avatars

LOGIN = "default-authentication-flow"
TOTP_SETUP = "default-authenticator-totp-setup"
STATIC_SETUP = "default-authenticator-static-setup"
PASSWORD = "pw-client-flows-123"


async def _user(api: Any, make_user: Any, username: str, **fields: Any) -> dict[str, Any]:
    user = await make_user(username, **fields)
    status, _ = await api(
        "POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD}
    )
    assert status == 204
    return dict(user)


def _driver(client: Any, query: str = "") -> akclientkit.FlowDriver:
    return akclientkit.FlowDriver(str(client.make_url("/")), query)


async def _to_password(flow: akclientkit.FlowDriver, username: str) -> Any:
    first = await flow.get(LOGIN)
    assert isinstance(first, ak.IdentificationChallenge), first
    return await flow.solve(LOGIN, "ak-stage-identification", uid_field=username)


async def test_password_login_through_the_client(client: Any, api: Any, make_user: Any) -> None:
    await _user(api, make_user, "client-alice", name="Alice Liddell")
    flow = _driver(client, "next=%2Fif%2Fuser%2F")
    first = await flow.get(LOGIN)
    assert isinstance(first, ak.IdentificationChallenge)
    assert first.user_fields == ["username", "email"] and first.password_fields is False
    assert first.flow_designation == ak.FlowDesignationEnum.AUTHENTICATION
    assert first.flow_info is not None and first.flow_info.cancel_url == "/flows/-/cancel/"
    assert first.recovery_url == "/if/flow/default-recovery-flow/"
    password = await flow.solve(LOGIN, "ak-stage-identification", uid_field="client-alice")
    assert isinstance(password, ak.PasswordChallenge)
    assert password.pending_user == "client-alice"
    assert password.pending_user_avatar == avatars.DEFAULT_PICTURE
    wrong = await flow.solve(LOGIN, "ak-stage-password", password="not it")
    assert isinstance(wrong, ak.PasswordChallenge)
    assert wrong.response_errors is not None
    assert [e.string for e in wrong.response_errors["password"]] == ["Invalid password"]
    done = await flow.solve(LOGIN, "ak-stage-password", password=PASSWORD)
    assert isinstance(done, ak.RedirectChallenge) and done.to == "/if/user/"
    # The session the flow started is the client's: authentik's `me` answers with this user.
    me = await _me(flow)
    assert me.user.username == "client-alice"


async def _me(flow: akclientkit.FlowDriver) -> Any:
    """authentik's `me` through the same client, on the session the flow started."""
    return await asyncio.to_thread(ak.CoreApi(flow.client).core_users_me_retrieve)


async def _enrol_totp(client: Any, username: str) -> pyotp.TOTP:
    """Log in with the password (no device yet), then set up TOTP through the client."""
    flow = _driver(client)
    await _to_password(flow, username)
    done = await flow.solve(LOGIN, "ak-stage-password", password=PASSWORD)
    assert isinstance(done, ak.RedirectChallenge)
    setup = await flow.get(TOTP_SETUP)
    assert isinstance(setup, ak.AuthenticatorTOTPChallenge)
    # The logged-in user, with their avatar (initials, authentik's default mode without Gravatar).
    assert setup.pending_user == username
    assert setup.pending_user_avatar.startswith("data:image/svg+xml;base64,")
    totp = pyotp.parse_uri(setup.config_url)
    assert isinstance(totp, pyotp.TOTP)
    wrong = await flow.solve(TOTP_SETUP, "ak-stage-authenticator-totp", code="000000")
    assert isinstance(wrong, ak.AuthenticatorTOTPChallenge) and wrong.response_errors
    confirmed = await flow.solve(TOTP_SETUP, "ak-stage-authenticator-totp", code=totp.now())
    assert isinstance(confirmed, ak.RedirectChallenge)
    return totp


async def test_totp_login_through_the_client(client: Any, api: Any, make_user: Any) -> None:
    await _user(api, make_user, "client-otto")
    totp = await _enrol_totp(client, "client-otto")
    flow = _driver(client)
    await _to_password(flow, "client-otto")
    mfa = await flow.solve(LOGIN, "ak-stage-password", password=PASSWORD)
    assert isinstance(mfa, ak.AuthenticatorValidationChallenge)
    assert mfa.pending_user == "client-otto" and mfa.configuration_stages == []
    (device,) = mfa.device_challenges
    assert device.device_class == ak.DeviceClassesEnum.TOTP and device.device_uid
    # Picking a device (as authentik's interface does first) shows the challenge again.
    picked = ak.DeviceChallengeRequest(
        device_class=device.device_class,
        device_uid=device.device_uid,
        challenge=device.challenge,
        last_used=device.last_used,
    )
    again = await flow.solve(LOGIN, "ak-stage-authenticator-validate", selected_challenge=picked)
    assert isinstance(again, ak.AuthenticatorValidationChallenge)
    assert not again.response_errors
    wrong = await flow.solve(LOGIN, "ak-stage-authenticator-validate", code="123456")
    assert isinstance(wrong, ak.AuthenticatorValidationChallenge)
    assert wrong.response_errors is not None and "code" in wrong.response_errors
    # The setup used this step's code; the next step's is within the accepted drift.
    code = totp.at(time.time() + 30)
    done = await flow.solve(LOGIN, "ak-stage-authenticator-validate", code=code)
    assert isinstance(done, ak.RedirectChallenge)
    assert (await _me(flow)).user.username == "client-otto"


async def test_denied_login_through_the_client(client: Any, api: Any, make_user: Any) -> None:
    """Too many wrong passwords end the flow with authentik's access-denied challenge."""
    await _user(api, make_user, "client-mallory")
    flow = _driver(client)
    await _to_password(flow, "client-mallory")
    for _ in range(4):
        retry = await flow.solve(LOGIN, "ak-stage-password", password="guess")
        assert isinstance(retry, ak.PasswordChallenge)
    denied = await flow.solve(LOGIN, "ak-stage-password", password="guess")
    assert isinstance(denied, ak.AccessDeniedChallenge)
    assert denied.error_message == "Too many failed attempts; start again."
    assert denied.pending_user == "client-mallory"
    assert denied.pending_user_avatar == avatars.DEFAULT_PICTURE
    # The flow starts again: the next challenge is identification, and nobody is logged in.
    assert isinstance(await flow.get(LOGIN), ak.IdentificationChallenge)


async def test_denied_flow_names_nobody_through_the_client(client: Any, bootstrapped: Any) -> None:
    """A flow that refuses a visitor before anyone is identified: pending_user is "" (authentik
    sends the anonymous user's empty username), never absent or null."""
    await make_flow(bootstrapped, "client-deny", [("deny", {"deny_message": "Closed."})])
    flow = _driver(client)
    denied = await flow.get("client-deny")
    assert isinstance(denied, ak.AccessDeniedChallenge)
    assert denied.error_message == "Closed." and denied.pending_user == ""
    assert denied.pending_user_avatar == avatars.DEFAULT_PICTURE


async def test_avatar_of_an_unknown_account_is_that_of_a_real_one(
    client: Any, api: Any, make_user: Any
) -> None:
    """With pretend_user_exists the password page must look the same whether or not the account
    exists: the avatar too (a real account's would show its initials)."""
    await _user(api, make_user, "client-real", name="Real Person")
    real = await _to_password(_driver(client), "client-real")
    made_up = await _to_password(_driver(client), "client-nobody")
    assert isinstance(real, ak.PasswordChallenge)
    assert isinstance(made_up, ak.PasswordChallenge)
    assert real.pending_user_avatar == made_up.pending_user_avatar == avatars.DEFAULT_PICTURE


async def test_enrollment_challenges_through_the_client(client: Any, bootstrapped: Any) -> None:
    """Dummy, prompt (with a choice), user_login asking to remember: each as the client's model."""
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "password", "type": "password", "order": 1},
        {
            "field_key": "team",
            "type": "dropdown",
            "placeholder": "['red', 'blue']",
            "required": True,
            "order": 2,
        },
    ]
    await make_flow(
        bootstrapped,
        "client-enrol",
        [
            ("dummy", {}),
            ("prompt", {"fields": fields}),
            ("user_write", {}),
            ("user_login", {"remember_me_offset": "days=1"}),
        ],
        designation="enrollment",
    )
    flow = _driver(client)
    dummy = await flow.get("client-enrol")
    assert isinstance(dummy, ak.DummyChallenge) and dummy.name == "client-enrol-0-dummy"
    prompt = await flow.solve("client-enrol", "ak-stage-dummy")
    assert isinstance(prompt, ak.PromptChallenge)
    team = next(f for f in prompt.fields if f.field_key == "team")
    assert team.type == ak.PromptTypeEnum.DROPDOWN
    assert [(c.value, c.label) for c in team.choices or []] == [("red", "red"), ("blue", "blue")]
    username = next(f for f in prompt.fields if f.field_key == "username")
    assert username.choices is None
    refused = await flow.solve(
        "client-enrol",
        "ak-stage-prompt",
        additional_properties={"username": "newbie", "password": PASSWORD, "team": "green"},
    )
    assert isinstance(refused, ak.PromptChallenge)
    assert refused.response_errors is not None and "team" in refused.response_errors
    login = await flow.solve(
        "client-enrol",
        "ak-stage-prompt",
        additional_properties={"username": "newbie", "password": PASSWORD, "team": "blue"},
    )
    assert isinstance(login, ak.UserLoginChallenge)
    assert login.pending_user == "newbie"
    assert login.pending_user_avatar.startswith("data:image/svg+xml;base64,")
    done = await flow.solve("client-enrol", "ak-stage-user-login", remember_me=True)
    assert isinstance(done, ak.RedirectChallenge)
    assert (await _me(flow)).user.username == "newbie"


async def test_static_codes_and_email_through_the_client(
    client: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "client-sam", email="sam@example.com")
    flow = _driver(client)
    await _to_password(flow, "client-sam")
    logged_in = await flow.solve(LOGIN, "ak-stage-password", password=PASSWORD)
    assert isinstance(logged_in, ak.RedirectChallenge)
    codes = await flow.get(STATIC_SETUP)
    assert isinstance(codes, ak.AuthenticatorStaticChallenge)
    assert len(codes.codes) == 6 and codes.pending_user == "client-sam"
    done = await flow.solve(STATIC_SETUP, "ak-stage-authenticator-static")
    assert isinstance(done, ak.RedirectChallenge)
    recovery = _driver(client)
    first = await recovery.get("default-recovery-flow")
    assert isinstance(first, ak.IdentificationChallenge)
    assert first.flow_designation == ak.FlowDesignationEnum.RECOVERY
    mail = await recovery.solve(
        "default-recovery-flow", "ak-stage-identification", uid_field="client-sam"
    )
    assert isinstance(mail, ak.EmailChallenge)
    again = await recovery.solve("default-recovery-flow", "ak-stage-email")
    assert isinstance(again, ak.EmailChallenge) and again.response_errors
