"""`/api/v3/stages/prompt/prompts/`: the prompt stage's fields as objects of their own (authentik's
Prompt), the stages that ask each one (`prompt_stages_obj`), and the prompt stage asking them:
choice fields offer their placeholder or the list their placeholder expression returns."""

from __future__ import annotations

from typing import Any

from flowkit import call, make_flow

API = Any
PROMPTS = "stages/prompt/prompts/"


async def _prompt(api: API, name: str, **settings: Any) -> dict[str, Any]:
    body = {"name": name, "field_key": name, "label": name.title(), "type": "text", **settings}
    status, prompt = await api("POST", PROMPTS, json=body)
    assert status == 201, prompt
    return dict(prompt)


async def test_prompt_crud_and_the_stages_that_ask_it(api: API) -> None:
    nickname = await _prompt(api, "nickname", required=False, order=2)
    assert nickname["prompt_stages_obj"] == [] and nickname["placeholder"] == ""
    team = await _prompt(api, "team")
    status, stage = await api(
        "POST",
        "stages/prompt/stages/",
        json={"name": "profile", "fields": [nickname["pk"], team["pk"]]},
    )
    assert status == 201 and stage["fields"] == [nickname["pk"], team["pk"]]
    _, got = await api("GET", f"{PROMPTS}{nickname['pk']}/")
    assert [s["name"] for s in got["prompt_stages_obj"]] == ["profile"]
    assert got["prompt_stages_obj"][0]["fields"] == [nickname["pk"], team["pk"]]
    status, _ = await api("POST", PROMPTS, json={**got, "name": "nickname"})
    assert status == 400  # names are unique
    # Deleting a prompt takes it out of the stages that asked it.
    assert (await api("DELETE", f"{PROMPTS}{nickname['pk']}/"))[0] == 204
    _, stage = await api("GET", f"stages/prompt/stages/{stage['pk']}/")
    assert stage["fields"] == [team["pk"]]


async def test_expressions_must_compile(api: API) -> None:
    for field in ("initial_value", "placeholder"):
        body = {
            "name": f"bad-{field}",
            "field_key": "x",
            "label": "X",
            "type": "text",
            field: "return (",
            f"{field}_expression": True,
        }
        status, problem = await api("POST", PROMPTS, json=body)
        assert status == 400 and field in problem, problem
    status, problem = await api(
        "POST", PROMPTS, json={"name": "d", "field_key": "d", "label": "D", "type": "colour"}
    )
    assert status == 400 and "type" in problem  # not one of authentik's types


async def test_choice_fields_offer_the_placeholders_list(client: Any, db: Any) -> None:
    fields = [
        {
            "field_key": "team",
            "type": "dropdown",
            "placeholder": "return ['red', 'blue']",
            "placeholder_expression": True,
        },
        {"field_key": "size", "type": "radio-button-group", "placeholder": "large"},
        {"field_key": "hint", "type": "text", "placeholder": "return 'lower case'",
         "placeholder_expression": True, "required": False},
    ]  # fmt: skip
    await make_flow(db, "choose", [("prompt", {"fields": fields})], authentication="none")
    path = "/api/v3/flows/executor/choose/"
    body = await call(client, path)
    shown = {f["field_key"]: f for f in body["fields"]}
    # authentik's choices: a value and a label each.
    assert shown["team"]["choices"] == [
        {"value": "red", "label": "red"},
        {"value": "blue", "label": "blue"},
    ]
    assert shown["size"]["choices"] == [{"value": "large", "label": "large"}]
    assert shown["hint"]["choices"] is None and shown["hint"]["placeholder"] == "lower case"
    assert "placeholder_expression" not in shown["team"]  # the expression stays on the server
    body = await call(client, path, {"team": "green", "size": "large"})
    assert body["response_errors"]["team"][0]["string"] == "Select a valid choice."
    body = await call(client, path, {"team": "blue", "size": "large"})
    assert body["component"] != "ak-stage-prompt", body
