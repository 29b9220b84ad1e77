"""`POST password/`: RFC 3062 Password Modify for a bound session, through the password policies
of the password-change flow the bind flow's password stage names (a weak password is a 400 with
the policy's message); the old password, when given, must be right; `password_set` is recorded
and the new password binds at once."""

from __future__ import annotations

from typing import Any

from ldapcorekit import PASSWORD, serve, user_with_password

STRONG = "Correct-Horse-Battery-Staple-42"


async def _require_long_passwords(api: Any) -> None:
    status, policy = await api(
        "POST",
        "policies/password/",
        json={
            "name": "long passwords",
            "length_min": 16,
            "check_static_rules": True,
            "check_have_i_been_pwned": False,
            "check_zxcvbn": False,
            "error_message": "",
        },
    )
    assert status == 201, policy
    status, stages = await api("GET", "stages/prompt/stages/?name=default-password-change-prompt")
    stage = stages["results"][0]
    status, patched = await api(
        "PATCH",
        f"stages/prompt/stages/{stage['pk']}/",
        json={"validation_policies": [policy["pk"]]},
    )
    assert status == 200, patched


async def test_a_password_change_goes_through_the_policies(api: Any) -> None:
    served = await serve(api, "mail")
    await _require_long_passwords(api)
    await user_with_password(api, "alice")
    session = (await served.bound("alice"))["session_id"]
    status, answer = await served.call(
        "POST", "password", {"session_id": session, "new_password": "short-1"}
    )
    assert status == 400 and "new_password" in answer, answer
    assert "16" in answer["new_password"][0]
    status, answer = await served.call(
        "POST",
        "password",
        {"session_id": session, "old_password": "not-it", "new_password": STRONG},
    )
    assert status == 400 and "old_password" in answer, answer
    status, answer = await served.call(
        "POST",
        "password",
        {"session_id": session, "old_password": PASSWORD, "new_password": STRONG},
    )
    assert status == 204, answer
    status, refused = await served.bind("alice")
    assert status == 401 and refused["reason"] == "invalid_credentials"
    assert (await served.bound("alice", STRONG))["user"]["username"] == "alice"
    status, events = await api("GET", "events/events/?action=password_set")
    mine = [e for e in events["results"] if e["user"]["username"] == "alice"]
    assert len(mine) == 1 and mine[0]["context"]["http_request"]["path"].endswith("/password/")
    assert STRONG not in str(events)


async def test_without_policies_any_password_is_taken(api: Any) -> None:
    served = await serve(api, "nopolicy")
    await user_with_password(api, "bob")
    session = (await served.bound("bob"))["session_id"]
    status, answer = await served.call(
        "POST", "password", {"session_id": session, "new_password": "x"}
    )
    assert status == 204, answer
    assert (await served.bound("bob", "x"))["user"]["username"] == "bob"
