"""Revision 0012 on data written at 0011, on SQLite and PostgreSQL: a prompt stage's embedded
fields become rows of `prompts` (named `<stage>-<field key>`, a label defaulting to the key, a
dropdown's choices as authentik's placeholder expression) and the stage lists their pks in the
same order; other stages are untouched; going back to 0011 embeds them again."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, store
from tessera.core.store import tables

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STAGES = sa.table(
    "stages",
    *(sa.column(c) for c in ("pk", "name", "kind", "created")),
    sa.column("config", tables.JSON),
)
FIELDS = [
    {"field_key": "email", "label": "Email", "type": "email", "order": 0},
    {"field_key": "team", "type": "dropdown", "choices": ["red", "blue"], "required": False},
    {
        "field_key": "name",
        "label": "Name",
        "type": "text",
        "initial_value": "return user.name",
        "initial_value_expression": True,
        "order": 2,
    },
]
POLICY = "00000000-0000-4000-8000-00000000000a"


def _seed(connection: sa.Connection) -> None:
    connection.execute(
        STAGES.insert(),
        [
            {
                "pk": "s-signup",
                "name": "signup",
                "kind": "prompt",
                "config": {"fields": FIELDS, "validation_policies": [POLICY]},
                "created": CREATED,
            },
            {
                "pk": "s-deny",
                "name": "deny",
                "kind": "deny",
                "config": {"deny_message": "x"},
                "created": CREATED,
            },
        ],
    )


def _read(connection: sa.Connection) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    configs = dict(connection.execute(sa.select(STAGES.c.name, STAGES.c.config)).all())
    rows = connection.execute(sa.text("SELECT * FROM prompts")).mappings().all()
    return configs, {r["pk"]: dict(r) for r in rows}


def _configs(connection: sa.Connection) -> dict[str, Any]:
    return dict(connection.execute(sa.select(STAGES.c.name, STAGES.c.config)).all())


@pytest.fixture
def settings_0011(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> config.Settings:
    return migrationkit.settings_on(backend, tmp_path, request)


@pytest.fixture
async def at_0011(settings_0011: config.Settings) -> Any:
    db = store.Store(settings_0011)
    await db.open()
    await migrationkit.run(db, migrationkit.to, "0011")
    await migrationkit.run(db, _seed)
    yield db
    await db.close()


async def test_0012_makes_prompt_rows_of_embedded_fields(at_0011: store.Store) -> None:
    await migrationkit.run(at_0011, migrationkit.to, "0012")
    configs, rows = await migrationkit.run(at_0011, _read)
    signup = configs["signup"]
    assert signup["validation_policies"] == [POLICY] and len(signup["fields"]) == 3
    email, team, name = (rows[pk] for pk in signup["fields"])
    assert (email["name"], email["field_key"], email["label"]) == ("signup-email", "email", "Email")
    assert email["type"] == "email" and email["required"] and email["order"] == 0
    # No label: the key; a dropdown's choices: a placeholder expression returning them.
    assert team["label"] == "team" and not team["required"]
    assert team["placeholder_expression"] and team["placeholder"] == 'return ["red", "blue"]'
    assert name["initial_value"] == "return user.name" and name["initial_value_expression"]
    assert not name["placeholder_expression"] and name["order"] == 2
    assert configs["deny"] == {"deny_message": "x"}


async def test_0012_down_embeds_the_fields_again(at_0011: store.Store) -> None:
    await migrationkit.run(at_0011, migrationkit.to, "0012")
    await migrationkit.run(at_0011, migrationkit.back, "0011")
    fields = (await migrationkit.run(at_0011, _configs))["signup"]["fields"]
    assert [f["field_key"] for f in fields] == ["email", "team", "name"]
    assert fields[1]["choices"] == ["red", "blue"] and fields[1]["placeholder"] == ""
    assert fields[2]["initial_value_expression"] is True
    assert json.dumps(fields)  # plain JSON, as 0011's settings were
