"""The stages a user may configure themselves (authentik's `UserSetting`).

A password stage or a setup stage (TOTP, WebAuthn, recovery codes) whose `configure_flow` names a
flow that exists and that this user may start (the flow's authentication requirement and its own
policies, as the planner checks them) is listed; a stage without one is not, as in authentik. Its
`configure_url` is authentik's `/flows/-/configure/<stage pk>/`, which `target` resolves (with
the same check) to the flow's page. Called by `GET /api/v3/stages/all/user_settings/`, by the
portal's settings links and by the configure route of `web`; reads the in-process definitions
snapshot and calls the planner's admission check.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from tessera.core import wire
from tessera.core.flows import definitions, planner
from tessera.core.stages import base

# Stage kind -> the element of authentik's user settings page, in the portal's order.
COMPONENTS = {
    "password": "ak-user-settings-password",
    "authenticator_totp": "ak-user-settings-authenticator-totp",
    "authenticator_webauthn": "ak-user-settings-authenticator-webauthn",
    "authenticator_static": "ak-user-settings-authenticator-static",
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A stage the user may configure, and the flow that configures it."""

    stage_pk: str
    component: str
    title: str
    flow_slug: str

    @property
    def configure_url(self) -> str:
        return configure_url(self.stage_pk)

    def to_wire(self) -> wire.flows.UserSetting:
        return wire.flows.UserSetting(
            object_uid=self.stage_pk,
            component=self.component,
            title=self.title,
            configure_url=self.configure_url,
        )


def configure_url(stage_pk: str) -> str:
    """authentik's URL that starts a stage's configure flow (`target` resolves it)."""
    return f"/flows/-/configure/{urllib.parse.quote(stage_pk, safe='')}/"


def flow_url(slug: str) -> str:
    return f"/if/flow/{urllib.parse.quote(slug, safe='')}/"


def _configure_flow(snapshot: definitions.Snapshot, row: dict[str, Any]) -> dict[str, Any] | None:
    ref = row["config"].get("configure_flow") if row["kind"] in COMPONENTS else None
    return snapshot.flow_named(ref)


def _title(row: dict[str, Any]) -> str:
    friendly = row["config"].get("friendly_name")
    return friendly if isinstance(friendly, str) and friendly else str(row["name"])


async def for_user(
    services: base.Services,
    snapshot: definitions.Snapshot,
    user: dict[str, Any],
    client_ip: str,
) -> list[Setting]:
    """The caller's settings, by kind (in `COMPONENTS` order) then stage name."""
    order = list(COMPONENTS)
    candidates = sorted(
        (row for row in snapshot.stage_rows.values() if row["kind"] in COMPONENTS),
        key=lambda row: (order.index(row["kind"]), row["name"]),
    )
    admitted: dict[str, bool] = {}  # by flow slug: several stages may share one flow
    out = []
    for row in candidates:
        flow = _configure_flow(snapshot, row)
        if flow is None:
            continue
        if flow["slug"] not in admitted:
            refusal = await planner.admits(services, snapshot, flow, user, client_ip)
            admitted[flow["slug"]] = not refusal
        if admitted[flow["slug"]]:
            out.append(
                Setting(str(row["pk"]), COMPONENTS[row["kind"]], _title(row), str(flow["slug"]))
            )
    return out


async def target(
    services: base.Services,
    snapshot: definitions.Snapshot,
    stage_pk: str,
    user: dict[str, Any],
    client_ip: str,
) -> str | None:
    """The page of the configure flow of the stage `stage_pk` names, when `for_user` would list
    that stage for this user; else None (no such stage, no configure flow, or not admitted).

    # SECURITY: the result is always one of our own `/if/flow/<slug>/` paths, built from a flow
    # that exists; of the request, only the stage pk takes part, as a lookup key.
    """
    # Looked up as given: only the canonical form of a stage's uuid finds it, as in authentik's
    # route (no upper case, braces, URN or missing hyphens).
    row = snapshot.stage_rows.get(stage_pk)
    flow = _configure_flow(snapshot, row) if row is not None else None
    if flow is None or await planner.admits(services, snapshot, flow, user, client_ip):
        return None
    return flow_url(str(flow["slug"]))
