"""The setup stages a user may configure (authentik's `UserSetting`).

A setup stage (TOTP, WebAuthn, recovery codes) whose `configure_flow` names a flow that exists
and that this user may start (the flow's authentication requirement and its own policies, as the
planner checks them) is listed with the URL of that flow. A stage without one is not listed, as
in authentik. Called by `GET /api/v3/stages/all/user_settings/` and by the portal's "add" links;
reads the in-process definitions snapshot and calls the planner's admission check.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from tessera.core import wire
from tessera.core.flows import definitions, planner
from tessera.core.stages import base

# Setup stage kind -> the element of authentik's user settings page, in the portal's order.
COMPONENTS = {
    "authenticator_totp": "ak-user-settings-authenticator-totp",
    "authenticator_webauthn": "ak-user-settings-authenticator-webauthn",
    "authenticator_static": "ak-user-settings-authenticator-static",
}


def _configure_flow(row: dict[str, Any]) -> str:
    slug = row["config"].get("configure_flow")
    return slug if isinstance(slug, str) else ""


async def for_user(
    services: base.Services,
    snapshot: definitions.Snapshot,
    user: dict[str, Any],
    client_ip: str,
) -> list[wire.flows.UserSetting]:
    """The caller's settings, by kind (in `COMPONENTS` order) then stage name."""
    order = list(COMPONENTS)
    candidates = sorted(
        (row for row in snapshot.stage_rows.values() if row["kind"] in COMPONENTS),
        key=lambda row: (order.index(row["kind"]), row["name"]),
    )
    admitted: dict[str, bool] = {}  # by flow slug: several stages may share one flow
    out = []
    for row in candidates:
        flow = snapshot.flows.get(_configure_flow(row))
        if flow is None:
            continue
        if flow["slug"] not in admitted:
            refusal = await planner.admits(services, snapshot, flow, user, client_ip)
            admitted[flow["slug"]] = not refusal
        if not admitted[flow["slug"]]:
            continue
        friendly = row["config"].get("friendly_name")
        out.append(
            wire.flows.UserSetting(
                object_uid=str(row["pk"]),
                component=COMPONENTS[row["kind"]],
                title=friendly if isinstance(friendly, str) and friendly else row["name"],
                configure_url=f"/if/flow/{urllib.parse.quote(flow['slug'])}/",
            )
        )
    return out
