"""Builds flows in the store for stage tests (the admin API for flows is tested elsewhere)."""

from __future__ import annotations

from typing import Any

from helpers import SECRET_KEY

from tessera.core import identity, wire
from tessera.core.crypto import Keyring
from tessera.core.identity import util
from tessera.core.store import crud


async def make_flow(
    db: Any, slug: str, stages: list[tuple[str, dict[str, Any]]], **flow: Any
) -> str:
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "flows",
            {
                "pk": util.new_uuid(),
                "name": slug,
                "slug": slug,
                "title": slug,
                "designation": flow.pop("designation", "authentication"),
                "created": util.now(),
                **flow,
            },
        )
        for order, (kind, config) in enumerate(stages):
            if kind == "prompt":
                config = {**config, "fields": await make_prompts(tx, slug, config["fields"])}
            stage = await crud.insert(
                tx,
                "stages",
                {
                    "pk": util.new_uuid(),
                    "name": f"{slug}-{order}-{kind}",
                    "kind": kind,
                    "config": config,
                    "created": util.now(),
                },
            )
            await crud.insert(
                tx,
                "flow_stage_bindings",
                {"pk": util.new_uuid(), "target": row["pk"], "stage": stage["pk"], "order": order},
            )
    return str(row["pk"])


async def make_prompts(tx: Any, prefix: str, fields: list[Any]) -> list[str]:
    """The pks of prompt rows for a prompt stage's fields: a dict is a prompt's settings (its
    label defaults to the field key), made under the name `<prefix>-<n>-<field key>`; a string
    is the pk of an existing prompt."""
    pks = []
    for n, spec in enumerate(fields):
        if isinstance(spec, str):
            pks.append(spec)
            continue
        settings = {"label": spec["field_key"], "type": "text", **spec}
        body = wire.flows.PromptRequest.model_validate(
            {"name": f"{prefix}-{n}-{spec['field_key']}", **settings}
        )
        row = {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()}
        pks.append(str((await crud.insert(tx, "prompts", row))["pk"]))
    return pks


def csrf_headers(client: Any) -> dict[str, str]:
    """The CSRF header a session-authenticated client must send (none before the cookie is set)."""
    found = [c.value for c in client.session.cookie_jar if c.key == "authentik_csrf"]
    return {"X-authentik-CSRF": found[0]} if found else {}


async def call(client: Any, path: str, body: Any = None) -> dict[str, Any]:
    """GET the executor's challenge (no body) or POST an answer; the answer is always a 200."""
    if body is None:
        response = await client.get(path, headers=csrf_headers(client))
    else:
        response = await client.post(path, json=body, headers=csrf_headers(client))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def log_in_as(client: Any, db: Any, username: str) -> None:
    """Give `client` a browser session of `username`, through a recovery link (as
    `tessera admin create-recovery-key` makes one)."""
    async with db.transaction() as tx:
        key = await identity.bootstrap.recovery_key(tx, Keyring(SECRET_KEY), username, 5)
    response = await client.get(f"/recovery/use-token/{key}/", allow_redirects=False)
    assert response.status == 302
