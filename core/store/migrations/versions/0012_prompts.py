"""prompts: the prompt stage's fields as objects of their own (authentik's Prompt)

Before, a prompt stage's settings held its fields; now each field is a row of `prompts` and the
stage's `fields` lists their pks, in the fields' order. A field's `choices` (Tessera's own, for
a dropdown) become authentik's form: a placeholder expression returning the list.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

COLUMNS = (
    "field_key",
    "label",
    "type",
    "required",
    "placeholder",
    "initial_value",
    "order",
    "sub_text",
    "placeholder_expression",
    "initial_value_expression",
)
CHOICE_TYPES = {"dropdown", "radio-button-group"}


def _stages() -> sa.TableClause:
    return sa.table(
        "stages",
        sa.column("pk"),
        sa.column("name"),
        sa.column("kind"),
        sa.column("config", tessera.core.store.tables.JSON),
    )


def _prompts() -> sa.TableClause:
    return sa.table(
        "prompts",
        sa.column("pk"),
        sa.column("name"),
        sa.column("created"),
        *(sa.column(c) for c in COLUMNS),
    )


def prompt_row(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The `prompts` row of a field as a prompt stage's settings held it."""
    key = str(spec.get("field_key", ""))
    placeholder, expression = str(spec.get("placeholder", "")), False
    choices = spec.get("choices") or []
    if spec.get("type") in CHOICE_TYPES and choices:
        placeholder, expression = f"return {json.dumps([str(c) for c in choices])}", True
    return {
        "pk": str(uuid.uuid4()),
        "name": name,
        "field_key": key,
        "label": str(spec.get("label") or key),
        "type": str(spec.get("type", "text")),
        "required": bool(spec.get("required", True)),
        "placeholder": placeholder,
        "initial_value": str(spec.get("initial_value", "")),
        "order": int(spec.get("order", 0)),
        "sub_text": str(spec.get("sub_text", "")),
        "placeholder_expression": expression,
        "initial_value_expression": bool(spec.get("initial_value_expression", False)),
        "created": dt.datetime.now(dt.UTC),
    }


def _unique(name: str, taken: set[str]) -> str:
    found, n = name[:190], 2
    while found in taken:
        found, n = f"{name[:190]}-{n}", n + 1
    taken.add(found)
    return found


def to_rows(bind: sa.Connection) -> None:
    """Each prompt stage's embedded fields become rows named `<stage>-<field key>`; the stage
    keeps their pks. Stages already listing pks are left as they are."""
    stages, prompts = _stages(), _prompts()
    taken = {name for (name,) in bind.execute(sa.select(prompts.c.name)).all()}
    found = bind.execute(
        sa.select(stages.c.pk, stages.c.name, stages.c.config).where(stages.c.kind == "prompt")
    )
    for pk, name, config in found.all():
        fields = config.get("fields") if isinstance(config, dict) else None
        if not isinstance(fields, list) or not any(isinstance(f, dict) for f in fields):
            continue
        pks = []
        for spec in fields:
            if not isinstance(spec, dict):
                pks.append(spec)
                continue
            row = prompt_row(spec, _unique(f"{name}-{spec.get('field_key', '')}", taken))
            bind.execute(prompts.insert().values(**row))
            pks.append(row["pk"])
        changed = {**config, "fields": pks}
        bind.execute(stages.update().where(stages.c.pk == pk).values(config=changed))


def to_embedded(bind: sa.Connection) -> None:
    """The reverse: each prompt stage holds its fields again (rows no stage names are lost)."""
    stages, prompts = _stages(), _prompts()
    rows = {r["pk"]: dict(r) for r in bind.execute(sa.select(prompts)).mappings().all()}
    found = bind.execute(sa.select(stages.c.pk, stages.c.config).where(stages.c.kind == "prompt"))
    for pk, config in found.all():
        fields = config.get("fields") if isinstance(config, dict) else None
        if not isinstance(fields, list):
            continue
        embedded = [_embedded(rows[f]) for f in fields if isinstance(f, str) and f in rows]
        bind.execute(
            stages.update().where(stages.c.pk == pk).values(config={**config, "fields": embedded})
        )


def _embedded(row: dict[str, Any]) -> dict[str, Any]:
    spec = {c: row[c] for c in COLUMNS if c != "placeholder_expression"}
    spec["required"] = bool(spec["required"])  # SQLite gives 0 and 1
    spec["initial_value_expression"] = bool(spec["initial_value_expression"])
    if row["placeholder_expression"]:
        spec["placeholder"] = ""
        try:
            choices = json.loads(row["placeholder"].removeprefix("return "))
        except ValueError:
            choices = None
        if isinstance(choices, list):
            spec["choices"] = [str(c) for c in choices]
    if spec["type"] not in {
        "text",
        "text_area",
        "text_read_only",
        "username",
        "email",
        "password",
        "number",
        "checkbox",
        "dropdown",
        "hidden",
        "static",
    }:
        spec["type"] = "text"
    return spec


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("field_key", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("placeholder", sa.Text(), nullable=False),
        sa.Column("initial_value", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("sub_text", sa.Text(), nullable=False),
        sa.Column("placeholder_expression", sa.Boolean(), nullable=False),
        sa.Column("initial_value_expression", sa.Boolean(), nullable=False),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_prompts")),
        sa.UniqueConstraint("name", name=op.f("uq_prompts_name")),
    )
    to_rows(op.get_bind())


def downgrade() -> None:
    to_embedded(op.get_bind())
    op.drop_table("prompts")
