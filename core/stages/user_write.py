"""User write stage: apply `prompt_data` to the pending user, or create one (no challenge).

Known keys: username, name, email, password (hashed) and `attributes.<key>`.

# SECURITY: changing an existing user needs a context that proved who they are (an
# authentication method, or the logged-in user being that user); otherwise a flow of
# identification then prompt would let anyone set anyone's password.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field

from tessera.core import errors, events, wire
from tessera.core.identity import groups, users
from tessera.core.stages import base, email_change
from tessera.core.store import crud

Mode = Literal["never_create", "create_when_required", "always_create"]


class Config(base.StageConfig):
    user_creation_mode: Mode = "create_when_required"
    create_users_as_inactive: bool = False
    create_users_group: wire.flows.GroupRef | None = None
    user_type: Literal["internal", "external"] = "external"
    user_path_template: Annotated[str, Field(max_length=200)] = "users"


class UserWrite(base.Stage):
    kind = "user_write"
    component = "ak-stage-user-write"
    Config = Config
    Response = None

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config)
        data = dict(run.state.context.get("prompt_data", {}))
        user = await run.pending_user() or run.session_user  # settings flows write the user
        create = self.config.user_creation_mode == "always_create" or (
            user is None and self.config.user_creation_mode == "create_when_required"
        )
        if not create and user is None:
            return base.Outcome.deny("No user to write to.")
        if not create and not _may_change(run, user):
            return base.Outcome.deny("Failed to authenticate.")
        directories = run.services.directories
        directory_holds = False
        try:
            if not create and user is not None and data.get("password") and directories:
                # A directory the user came from takes the new password first (when its source
                # writes passwords back); its refusal stops the change.
                directory_holds = await directories.changed(user, str(data["password"]))
            async with run.services.store.transaction() as tx:
                if run.state.context.get("initial_setup") and not await _setup_pending(tx, user):
                    return base.Outcome.deny(initial_setup_done())
                if create:
                    user = await self._create(tx, data)
                    await _record(tx, run, "model_created", user, {"model": _model(user)})
                assert user is not None
                await _apply(tx, run, user, data, created=create)
                if data.get("password"):
                    if directory_holds:
                        await users.set_unusable_password(tx, user["pk"])
                    await _record(tx, run, "password_set", user, {})
        except errors.ValidationFailed as exc:
            return base.Outcome(
                "retry",
                errors={
                    k: [{"string": m, "code": "invalid"} for m in v] for k, v in exc.fields.items()
                },
            )
        run.state.pending_user = user["pk"]  # first: a new pending user starts without facts
        if create:
            run.state.context["auth_method"] = "enrollment"
        return base.Outcome.next()

    async def _create(self, tx: Any, data: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        body = _user_request(
            {
                "username": str(data.get("username", "")),
                "is_active": not self.config.create_users_as_inactive,
                "type": self.config.user_type,
                "path": self.config.user_path_template,
            }
        )
        row = await users.create(tx, body, self_service=True)
        if self.config.create_users_group:
            group = await crud.find(tx, groups.TABLE, pk=self.config.create_users_group)
            if group is not None:
                await crud.add_member(tx, user_pk=row["pk"], group_pk=group["pk"])
        return row


def _model(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "app": "authentik_core",
        "model_name": "user",
        "pk": user["pk"],
        "name": user["username"],
    }


async def _record(
    tx: Any, run: base.Run, action: str, user: dict[str, Any], context: dict[str, Any]
) -> None:
    """An audit event about `user`, written in the stage's transaction (no password in it)."""
    await events.record(
        tx,
        action,
        user=run.session_user or user,
        client_ip=run.client_ip,
        context={**context, "flow": run.state.slug},
        retention=run.retention,
    )


async def _setup_pending(tx: Any, user: dict[str, Any] | None) -> bool:
    await crud.lock(tx, "bootstrap")
    current = await crud.find(tx, users.TABLE, pk=user["pk"]) if user else None
    return current is not None and not current["password"]


def initial_setup_done() -> str:
    return "Initial setup has already been completed."


def _may_change(run: base.Run, user: dict[str, Any] | None) -> bool:
    if user is None:
        return False
    if run.state.context.get("auth_method"):
        return True
    return run.session_user is not None and run.session_user["pk"] == user["pk"]


async def _apply(
    tx: Any, run: base.Run, user: dict[str, Any], data: dict[str, Any], *, created: bool
) -> None:
    """Write the answers to `user`: values the user chose for themselves (`self_service`), and a
    changed address only once proven where the flow has an email stage (`email_change`)."""
    current = await users.writable(tx, user)
    changes: dict[str, Any] = {k: data[k] for k in ("username", "name", "email") if k in data}
    attributes = dict(current["attributes"])
    for key, value in data.items():
        if key.startswith("attributes."):
            attributes[key.removeprefix("attributes.")] = value
    body = _user_request({**current, **changes, "attributes": attributes})
    if not created:
        await email_change.check(tx, run, user, body.email)
    await users.update(tx, user, body, self_service=True)
    if data.get("password"):
        await users.set_password(tx, user["pk"], str(data["password"]))


def _user_request(data: dict[str, Any]) -> wire.core.UserRequest:
    """The user as the admin API would validate it; ValidationFailed (shown on the prompt that
    collected the values) when a value does not fit, e.g. a username that is empty or too long."""
    try:
        return wire.core.UserRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False):
            fields.setdefault(str(err["loc"][0]) if err["loc"] else "non_field_errors", []).append(
                err["msg"]
            )
        raise errors.ValidationFailed(fields) from None
