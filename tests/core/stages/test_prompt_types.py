"""The prompt types authentik has beyond text: date, date-time, file, radio buttons, separator,
the alerts and ak-locale, through the flow executor's JSON API (as authentik's page and client
answer) and through Tessera's own HTML page (a file sent as a multipart form). What the stage
kept is read back by a second prompt stage whose read-only fields show `prompt_context`."""

from __future__ import annotations

import base64
import re
from typing import Any

import aiohttp
import pytest
from authentik_client.models.prompt_challenge import PromptChallenge
from flowkit import call, make_flow

from tessera.core.stages import prompt

PATH = "/api/v3/flows/executor/kinds/"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really").decode()
KEPT = ("when", "meeting", "avatar", "size", "language")


def _echo(key: str) -> dict[str, Any]:
    return {
        "field_key": f"echo_{key}",
        "type": "text_read_only",
        "initial_value": f"return str(prompt_context.get('{key}'))",
        "initial_value_expression": True,
    }


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the stage's checks do not depend on the store


@pytest.fixture
async def kinds_flow(db: Any) -> None:
    asked = [
        {"field_key": "when", "type": "date"},
        {"field_key": "meeting", "type": "date-time", "required": False},
        {"field_key": "avatar", "type": "file", "required": False},
        {"field_key": "size", "type": "radio-button-group", "placeholder": "['S', 'M', 'L']"},
        {"field_key": "language", "type": "ak-locale", "required": False},
        {"field_key": "line", "type": "separator", "sub_text": "More"},
        {"field_key": "note", "type": "alert_warning", "initial_value": "Careful"},
    ]
    echoes = [_echo(key) for key in KEPT]
    stages = [("prompt", {"fields": asked}), ("prompt", {"fields": echoes})]
    await make_flow(db, "kinds", stages, authentication="none")


def _kept(body: dict[str, Any]) -> dict[str, str]:
    assert body["component"] == "ak-stage-prompt", body
    return {f["field_key"][5:]: f["initial_value"] for f in body["fields"]}


async def test_the_challenge_carries_every_type_in_authentiks_shape(
    client: Any, kinds_flow: None
) -> None:
    body = await call(client, PATH)
    parsed = PromptChallenge.from_dict(body)  # authentik's own client reads every type
    assert parsed is not None and [f.type.value for f in parsed.fields][:3] == [
        "date",
        "date-time",
        "file",
    ]
    shown = {f["field_key"]: f for f in body["fields"]}
    assert shown["size"]["choices"] == [{"value": v, "label": v} for v in ("S", "M", "L")]
    locales = shown["language"]["choices"]
    assert {"value": "de", "label": "Deutsch"} in locales and len(locales) == len(prompt.LOCALES)
    assert shown["note"]["initial_value"] == "Careful" and shown["line"]["type"] == "separator"


async def test_valid_answers_are_kept_in_their_normal_form(client: Any, kinds_flow: None) -> None:
    await call(client, PATH)
    answer = {
        "when": "2026-12-24",
        "meeting": "2026-12-24T18:30",
        "avatar": f"data:image/png;base64,{PNG}",
        "size": "M",
        "language": "pt-BR",
        "line": "ignored",
        "note": "ignored",
    }
    kept = _kept(await call(client, PATH, answer))
    assert kept == {
        "when": "2026-12-24",
        "meeting": "2026-12-24T18:30:00",
        "avatar": f"data:image/png;base64,{PNG}",
        "size": "M",
        "language": "pt-BR",
    }


INVALID = [
    ("when", "24.12.2026", "Enter a valid date."),
    ("when", "2026-02-30", "Enter a valid date."),
    ("meeting", "tomorrow evening", "Enter a valid date/time."),
    ("avatar", "https://attacker.example/x.png", "Upload a valid file."),
    ("avatar", "data:image/png;base64,not base64!", "Upload a valid file."),
    ("avatar", "data:text/html,<script>alert(1)</script>", "Upload a valid file."),
    ("size", "XL", "Select a valid choice."),
    ("language", "xx-evil", "Select a valid choice."),
]


async def test_invalid_answers_are_refused_naming_the_field(client: Any, kinds_flow: None) -> None:
    await call(client, PATH)
    for field, value, message in INVALID:
        body = await call(client, PATH, {"when": "2026-12-24", "size": "M", field: value})
        assert body["component"] == "ak-stage-prompt", (field, value)
        assert body["response_errors"] == {field: [{"string": message, "code": "invalid"}]}


async def test_an_oversized_file_is_refused(client: Any, kinds_flow: None) -> None:
    await call(client, PATH)
    huge = "data:application/octet-stream;base64," + "A" * prompt.MAX_FILE
    body = await call(client, PATH, {"when": "2026-12-24", "size": "M", "avatar": huge})
    assert "at most" in body["response_errors"]["avatar"][0]["string"]


async def test_the_html_page_renders_the_types_and_takes_a_file_upload(
    client: Any, kinds_flow: None
) -> None:
    page = await (await client.get("/if/flow/kinds/")).text()
    assert 'enctype="multipart/form-data"' in page
    assert 'type="date"' in page and 'type="datetime-local"' in page and 'type="file"' in page
    assert page.count('type="radio"') == 3 and "<hr>" in page
    assert 'class="alert alert_warning"' in page and '<option value="de">Deutsch</option>' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = aiohttp.FormData()
    for name, value in (
        ("csrf_token", token[1]),
        ("component", "ak-stage-prompt"),
        ("when", "2026-12-24"),
        ("meeting", ""),
        ("size", "L"),
        ("language", ""),
    ):
        form.add_field(name, value)
    form.add_field(
        "avatar", b"\x89PNG\r\n\x1a\n-not-really", filename="me.png", content_type="image/png"
    )
    await client.post("/if/flow/kinds/", data=form)
    kept = _kept(await call(client, PATH))
    assert kept["avatar"] == f"data:image/png;base64,{PNG}"
    assert kept["when"] == "2026-12-24" and kept["size"] == "L" and kept["meeting"] == "None"
