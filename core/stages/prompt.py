"""Prompt stage (`ak-stage-prompt`): ask for fields, validate them, keep them in `prompt_data`.

Fields are defined on the stage (authentik keeps them as separate Prompt objects; here they are
part of the stage's settings). A pair `password` / `password_repeat` must match.

With `initial_value_expression`, a field's `initial_value` is an expression, as in authentik
(`return user.email`): it runs in the policy sandbox with the policy variables (`user`,
`request`, `context`, `prompt_context`) of the pending or logged-in user, and the challenge
carries its result; the expression itself never reaches the browser. An expression that fails
gives an empty value and a log line.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any, Literal

import structlog
from pydantic import ConfigDict, Field, model_validator

from tessera.core.policies import engine, expression, pool, sandbox, views
from tessera.core.stages import base

log = structlog.get_logger(__name__)
INITIAL_STEPS = 20_000
INITIAL_TIMEOUT = 1.0  # seconds, per field

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
    initial_value_expression: bool = False
    sub_text: Annotated[str, Field(max_length=1000)] = ""
    choices: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list)
    order: int = 0

    @model_validator(mode="after")
    def _expression_compiles(self) -> PromptField:
        if self.initial_value_expression:
            try:
                sandbox.compile(self.initial_value)
            except sandbox.SandboxError as exc:
                raise ValueError(f"initial_value: {exc}") from None
        return self


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
        initial = await self._initial_values(run)
        fields = []
        for spec in self._fields():
            shown = spec.model_dump(exclude={"initial_value_expression"})
            shown["initial_value"] = initial.get(spec.field_key, spec.initial_value)
            fields.append(shown)
        return {"fields": fields}

    async def _initial_values(self, run: base.Run) -> dict[str, str]:
        """The results of the fields' initial-value expressions, by field key."""
        wanted = [f for f in self._fields() if f.initial_value_expression]
        if not wanted:
            return {}
        user = await run.pending_user() or run.session_user
        async with run.services.store.read() as tx:
            loaded = await engine.load_rows(tx, [], user)
        if user is None:
            who = views.UserView.anonymous()
        else:
            who = views.UserView(user, loaded.groups, loaded.all_groups)
        context = {**run.state.context, "prompt_context": run.state.context.get("prompt_data", {})}
        variables = views.policy_variables(
            who,
            context=context,
            http_request=views.HttpRequestView(client_ip=run.client_ip),
        )
        variables["prompt_context"] = context["prompt_context"]
        values = {}
        for spec in wanted:
            try:
                expression.compiled(spec.initial_value)
                # The value's text is made in the worker process, weighed first: never here,
                # on the event loop (a shared nested structure unfolds natively).
                result = await pool.evaluate(
                    spec.initial_value,
                    variables,
                    shape="text",
                    steps=INITIAL_STEPS,
                    seconds=INITIAL_TIMEOUT,
                )
            except sandbox.SandboxError as exc:
                log.warning("prompt_initial_value_failed", field=spec.field_key, error=str(exc))
                values[spec.field_key] = ""
                continue
            values[spec.field_key] = "" if result.value is None else str(result.value)[:MAX_VALUE]
        return values

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        submitted = response.model_extra or {}
        data: dict[str, Any] = {}
        errors: dict[str, list[dict[str, str]]] = {}
        initial = await self._initial_values(run)
        for spec in self._fields():
            if spec.field_key in initial:  # what read-only fields show is the computed value
                spec = spec.model_copy(update={"initial_value": initial[spec.field_key]})
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
