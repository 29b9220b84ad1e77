"""Prompt stage (`ak-stage-prompt`): ask for fields, validate them, keep them in `prompt_data`.

Fields are defined on the stage (authentik keeps them as separate Prompt objects; here they are
part of the stage's settings). A pair `password` / `password_repeat` must match.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from tessera.core.policies import engine
from tessera.core.stages import base

FieldType = Literal[
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
]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_VALUE = 4096


class PromptField(base.StageConfig):
    field_key: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-zA-Z0-9_.]+$")]
    label: Annotated[str, Field(max_length=200)] = ""
    type: FieldType = "text"
    required: bool = True
    placeholder: Annotated[str, Field(max_length=500)] = ""
    initial_value: Annotated[str, Field(max_length=MAX_VALUE)] = ""
    sub_text: Annotated[str, Field(max_length=1000)] = ""
    choices: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list)
    order: int = 0


class Config(base.StageConfig):
    fields: Annotated[list[PromptField], Field(max_length=50)] = Field(default_factory=list)
    # Policies that must all pass on the answers (`request.context["prompt_data"]`), as
    # authentik's validation_policies: e.g. a password policy refusing weak passwords.
    validation_policies: Annotated[list[uuid.UUID], Field(max_length=20)] = Field(
        default_factory=list
    )


class Response(base.ChallengeResponse):
    model_config = ConfigDict(extra="allow")


class Prompt(base.Stage):
    kind = "prompt"
    component = "ak-stage-prompt"
    Config = Config
    Response = Response

    def _fields(self) -> list[PromptField]:
        assert isinstance(self.config, Config)
        return sorted(self.config.fields, key=lambda f: f.order)

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        return {"fields": [f.model_dump() for f in self._fields()]}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        submitted = response.model_extra or {}
        data: dict[str, Any] = {}
        errors: dict[str, list[dict[str, str]]] = {}
        for spec in self._fields():
            value, problem = _clean(spec, submitted.get(spec.field_key))
            if problem:
                errors[spec.field_key] = [{"string": problem, "code": "invalid"}]
            elif spec.type != "static":
                data[spec.field_key] = value
        if "password" in data and "password_repeat" in data:
            if data["password"] != data["password_repeat"]:
                errors["password_repeat"] = [
                    {"string": "Passwords don't match.", "code": "invalid"}
                ]
            data.pop("password_repeat", None)
        if errors:
            return base.Outcome("retry", errors=errors)
        merged = {**run.state.context.get("prompt_data", {}), **data}
        refusal = await self._validate(run, merged)
        if refusal:
            return base.Outcome(
                "retry",
                errors={"non_field_errors": [{"string": m, "code": "invalid"} for m in refusal]},
            )
        run.state.context["prompt_data"] = merged
        return base.Outcome.next()

    async def _validate(self, run: base.Run, prompt_data: dict[str, Any]) -> list[str]:
        """Messages of the validation policies that refuse the answers (none when all pass)."""
        assert isinstance(self.config, Config)
        wanted = [str(pk) for pk in self.config.validation_policies]
        if not wanted:
            return []
        rows = [
            {
                "pk": f"prompt-validation-{n}",
                "policy": pk,
                "group": None,
                "user": None,
                "negate": False,
                "timeout": 30,
                "failure_result": False,
                "order": n,
            }
            for n, pk in enumerate(wanted)
        ]
        user = await run.pending_user() or run.session_user
        # The user's groups too, so that `ak_is_group_member` and `user.ak_groups` answer as in
        # the engine's own bindings.
        async with run.services.store.read() as tx:
            loaded = await engine.load_rows(tx, rows, user)
        if len(loaded.policies) != len(set(wanted)):
            # SECURITY: a missing validation policy refuses rather than letting answers through.
            return ["This form is misconfigured; ask an administrator."]
        context = {**run.state.context, "prompt_data": prompt_data}
        request = engine.Request(
            user=user,
            context=context,
            client_ip=run.client_ip,
            cache=run.services.cache,
            result_ttl=run.services.settings.cache.timeout_policies,
        )
        result = await engine.decide(loaded, "all", request, run.services.store, run.retention)
        if result.passing and not result.error:
            return []
        return result.messages or ["The answers were refused."]


def _clean(spec: PromptField, raw: Any) -> tuple[Any, str]:
    """The field's value, or an error message."""
    if spec.type in {"static", "text_read_only"}:
        return spec.initial_value, ""
    if spec.type == "checkbox":
        return raw in (True, "true", "on", "1", 1), ""
    if raw is None or raw == "":
        return ("", "This field is required.") if spec.required else (None, "")
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return None, "Enter a valid value."
    text = str(raw)
    if len(text) > MAX_VALUE:
        return None, f"Ensure this value has at most {MAX_VALUE} characters."
    if spec.type == "email" and not _EMAIL.match(text):
        return None, "Enter a valid email address."
    if spec.type == "number":
        return _number(text)
    if spec.type == "dropdown" and text not in spec.choices:
        return None, "Select a valid choice."
    return text, ""


def _number(text: str) -> tuple[Any, str]:
    """An integer, or a finite decimal number ("1.5", "2e3"); infinities and NaN are refused
    (JSON cannot hold them)."""
    try:
        return int(text), ""
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None, "Enter a number."
    return (value, "") if math.isfinite(value) else (None, "Enter a number.")
