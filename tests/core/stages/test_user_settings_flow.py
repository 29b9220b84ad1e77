"""default-user-settings-flow: the user's own username, name and email, filled in, then saved."""

from __future__ import annotations

from typing import Any

from flowkit import call, log_in_as

SETTINGS = "/api/v3/flows/executor/default-user-settings-flow/"


async def test_the_form_shows_the_users_own_values_and_saves_changes(
    client: Any, bootstrapped: Any, make_user: Any, api: Any
) -> None:
    await make_user("erin", name="Erin E", email="erin@example.com")
    await log_in_as(client, bootstrapped, "erin")
    body = await call(client, SETTINGS)
    assert body["component"] == "ak-stage-prompt"
    shown = {f["field_key"]: f["initial_value"] for f in body["fields"]}
    assert shown == {"username": "erin", "name": "Erin E", "email": "erin@example.com"}
    assert all("return" not in f["initial_value"] for f in body["fields"])  # never the code
    assert all("initial_value_expression" not in f for f in body["fields"])
    form = {"username": "erin", "name": "Erin Changed", "email": "erin2@example.com"}
    assert (await call(client, SETTINGS, form))["component"] == "xak-flow-redirect"
    _, found = await api("GET", "core/users/?username=erin")
    assert found["results"][0]["name"] == "Erin Changed"
    assert found["results"][0]["email"] == "erin2@example.com"
    body = await call(client, SETTINGS)
    assert {f["field_key"]: f["initial_value"] for f in body["fields"]}["name"] == "Erin Changed"


async def test_taking_another_users_name_is_a_field_error(
    client: Any, bootstrapped: Any, make_user: Any, api: Any
) -> None:
    await make_user("frank", email="frank@example.com")
    await log_in_as(client, bootstrapped, "frank")
    await call(client, SETTINGS)
    form = {"username": "AKADMIN", "name": "F", "email": "frank@example.com"}
    body = await call(client, SETTINGS, form)
    assert body["component"] == "ak-stage-prompt" and "username" in body["response_errors"]
    _, found = await api("GET", "core/users/?username=frank")
    assert found["pagination"]["count"] == 1


async def test_an_initial_value_expression_must_compile(api: Any) -> None:
    _, page = await api("GET", "stages/prompt/stages/?search=default-user-settings-prompt")
    (stage,) = page["results"]
    first = stage["fields"][0]
    status, body = await api(
        "PATCH",
        f"stages/prompt/prompts/{first}/",
        json={"initial_value": "return ().__class__"},
    )
    assert status == 400 and "initial_value" in body, body


async def test_a_failing_initial_value_expression_gives_an_empty_value(
    client: Any, bootstrapped: Any, make_user: Any, api: Any
) -> None:
    _, page = await api("GET", "stages/prompt/stages/?search=default-user-settings-prompt")
    (stage,) = page["results"]
    second = stage["fields"][1]
    status, body = await api(
        "PATCH",
        f"stages/prompt/prompts/{second}/",
        json={"initial_value": "return user.attributes['missing']"},
    )
    assert status == 200, body
    await make_user("gina", name="Gina")
    await log_in_as(client, bootstrapped, "gina")
    body = await call(client, SETTINGS)
    shown = {f["field_key"]: f["initial_value"] for f in body["fields"]}
    assert shown["name"] == "" and shown["username"] == "gina"
