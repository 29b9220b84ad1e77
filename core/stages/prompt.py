"""Prompt stage (`ak-stage-prompt`): ask for fields, validate them, keep them in `prompt_data`.

The fields are Prompt objects of their own (`/stages/prompt/prompts/`, table `prompts`), which
the stage's settings list by pk, as in authentik. A pair `password` / `password_repeat` must
match. A choice field (dropdown, radio buttons) offers its placeholder, or the list its
placeholder expression returns. Every one of authentik's types is checked: `date` (ISO 8601,
kept as `YYYY-MM-DD`), `date-time` (ISO 8601, as a browser's date-time input sends it), `file`
(a `data:` URI with base64 content, as authentik's page sends the file, up to `MAX_FILE`),
`ak-locale` (one of `LOCALES`, offered as the challenge's choices); `static`, the `alert_*`
types and `separator` show text and keep no answer.

With `initial_value_expression`, a field's `initial_value` is an expression, as in authentik
(`return user.email`): it runs in the policy sandbox with the policy variables (`user`,
`request`, `context`, `prompt_context`) of the pending or logged-in user, and the challenge
carries its result; the expression itself never reaches the browser. `placeholder_expression`
does the same for the placeholder (a choice field's list). An expression that fails gives an
empty value and a log line.
"""

from __future__ import annotations

import ast
import base64
import binascii
import datetime as dt
import math
import re
from typing import Annotated, Any

import structlog
from pydantic import ConfigDict, Field

from tessera.core import wire
from tessera.core.policies import engine, expression, pool, sandbox, views
from tessera.core.stages import base
from tessera.core.store import crud

log = structlog.get_logger(__name__)
INITIAL_STEPS = 20_000
INITIAL_TIMEOUT = 1.0  # seconds, per field

MAX_VALUE = wire.flows.MAX_PROMPT_VALUE
TABLE = "prompts"
CHOICE_TYPES = {"dropdown", "radio-button-group"}
ALERT_TYPES = {"alert_info", "alert_warning", "alert_danger"}
# The value is the initial one.
SHOWN_TYPES = {"static", "text_read_only", "text_area_read_only", *ALERT_TYPES}
NO_DATA_TYPES = {"static", "separator", *ALERT_TYPES}
MAX_CHOICES = 200
MAX_FILE = 512 * 1024  # characters of a file's data URI (the request body is at most 1 MiB)
DATA_URI = re.compile(
    r"data:(?:[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,([A-Za-z0-9+/=]*)"
)
# The interface languages offered by an `ak-locale` field (value, name in that language); an
# empty answer means "the browser's".
LOCALES = (
    ("cs", "Čeština"),
    ("de", "Deutsch"),
    ("en", "English"),
    ("es", "Español"),
    ("fi", "Suomi"),
    ("fr", "Français"),
    ("it", "Italiano"),
    ("ja", "日本語"),
    ("ko", "한국어"),
    ("nl", "Nederlands"),
    ("pl", "Polski"),
    ("pt", "Português"),
    ("pt-BR", "Português (Brasil)"),
    ("ru", "Русский"),
    ("tr", "Türkçe"),
    ("zh-Hans", "简体中文"),
    ("zh-Hant", "繁體中文"),
)


class PromptField(wire.flows.PromptRequest):
    """A prompt as the stage asks it (a row of `prompts`)."""

    model_config = ConfigDict(extra="ignore")


class Config(base.StageConfig):
    # The prompts asked, by pk (objects of their own: `/stages/prompt/prompts/`).
    fields: Annotated[list[wire.flows.PromptRef], Field(max_length=50)]
    # Policies that must all pass on the answers (`request.context["prompt_data"]`), as
    # authentik's validation_policies: e.g. a password policy refusing weak passwords.
    validation_policies: Annotated[list[wire.flows.PolicyRef], Field(max_length=20)] = Field(
        default_factory=list
    )


class Response(base.ChallengeResponse):
    model_config = ConfigDict(extra="allow")


class Prompt(base.Stage):
    kind = "prompt"
    component = "ak-stage-prompt"
    Config = Config
    Response = Response

    async def _fields(self, run: base.Run) -> list[PromptField]:
        """The stage's prompts by `order`, then as the settings list them (a deleted one is
        left out)."""
        assert isinstance(self.config, Config)
        async with run.services.store.read() as tx:
            rows = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", self.config.fields)}
        found = [PromptField.model_validate(rows[pk]) for pk in self.config.fields if pk in rows]
        return sorted(found, key=lambda f: f.order)

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        specs = await self._fields(run)
        initial = await self._evaluated(run, specs, "initial_value")
        placeholders = await self._evaluated(run, specs, "placeholder")
        fields = []
        for spec in specs:
            shown: dict[str, Any] = spec.model_dump(
                include={"field_key", "label", "type", "required", "order", "sub_text"}
            )
            shown["initial_value"] = initial.get(spec.field_key, spec.initial_value)
            placeholder = placeholders.get(spec.field_key, spec.placeholder)
            shown["choices"] = _offered(spec, placeholder)
            shown["placeholder"] = "" if spec.type in CHOICE_TYPES else placeholder
            fields.append(shown)
        return {"fields": fields}

    async def _evaluated(
        self, run: base.Run, specs: list[PromptField], attribute: str
    ) -> dict[str, str]:
        """The results of the fields' `initial_value` or `placeholder` expressions (those
        marked `<attribute>_expression`), by field key."""
        wanted = [f for f in specs if getattr(f, f"{attribute}_expression")]
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
                source = getattr(spec, attribute)
                expression.compiled(source)
                # The value's text is made in the worker process, weighed first: never here,
                # on the event loop (a shared nested structure unfolds natively).
                result = await pool.evaluate(
                    source,
                    variables,
                    shape="text",
                    steps=INITIAL_STEPS,
                    seconds=INITIAL_TIMEOUT,
                )
            except sandbox.SandboxError as exc:
                log.warning(
                    "prompt_expression_failed", field=spec.field_key, of=attribute, error=str(exc)
                )
                values[spec.field_key] = ""
                continue
            values[spec.field_key] = "" if result.value is None else str(result.value)[:MAX_VALUE]
        return values

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        submitted = response.model_extra or {}
        data: dict[str, Any] = {}
        errors: dict[str, list[dict[str, str]]] = {}
        specs = await self._fields(run)
        initial = await self._evaluated(run, specs, "initial_value")
        placeholders = await self._evaluated(run, specs, "placeholder")
        for spec in specs:
            if spec.field_key in initial:  # what read-only fields show is the computed value
                spec = spec.model_copy(update={"initial_value": initial[spec.field_key]})
            placeholder = placeholders.get(spec.field_key, spec.placeholder)
            choices = _choices(placeholder) if spec.type in CHOICE_TYPES else []
            value, problem = _clean(spec, submitted.get(spec.field_key), choices)
            if problem:
                errors[spec.field_key] = [{"string": problem, "code": "invalid"}]
            elif spec.type not in NO_DATA_TYPES:
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


def _offered(spec: PromptField, placeholder: str) -> list[dict[str, str]] | None:
    """authentik's choices of a field: a value and a label each (the same text for a choice
    field), or None."""
    if spec.type == "ak-locale":
        return [{"value": code, "label": name} for code, name in LOCALES]
    if spec.type not in CHOICE_TYPES:
        return None
    return [{"value": c, "label": c} for c in _choices(placeholder)]


def _choices(placeholder: str) -> list[str]:
    """A choice field's choices: its placeholder, or the list its placeholder expression gave
    (authentik's form; the expression's value comes back as its text)."""
    try:
        value = ast.literal_eval(placeholder) if placeholder.startswith(("[", "(")) else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int | float)][:MAX_CHOICES]
    return [placeholder] if placeholder else []


def _clean(spec: PromptField, raw: Any, choices: list[str]) -> tuple[Any, str]:
    """The field's value, or an error message."""
    if spec.type in SHOWN_TYPES:
        return spec.initial_value, ""
    if spec.type == "separator":
        return None, ""
    if spec.type == "checkbox":
        return raw in (True, "true", "on", "1", 1), ""
    if raw is None or raw == "":
        return ("", "This field is required.") if spec.required else (None, "")
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return None, "Enter a valid value."
    text = str(raw)
    most = MAX_FILE if spec.type == "file" else MAX_VALUE
    if len(text) > most:
        return None, f"Ensure this value has at most {most} characters."
    if spec.type in CHOICE_TYPES and text not in choices:
        return None, "Select a valid choice."
    check = CHECKS.get(spec.type)
    return check(text) if check else (text, "")


def _email(text: str) -> tuple[Any, str]:
    return (text, "") if wire.emails.valid(text) else (None, wire.emails.MESSAGE)


def _date(text: str) -> tuple[Any, str]:
    """An ISO 8601 date, kept as `YYYY-MM-DD`."""
    try:
        return dt.date.fromisoformat(text).isoformat(), ""
    except ValueError:
        return None, "Enter a valid date."


def _date_time(text: str) -> tuple[Any, str]:
    """An ISO 8601 date and time (a browser's `datetime-local` input sends `YYYY-MM-DDTHH:MM`),
    kept in ISO 8601, with its offset when it had one."""
    try:
        return dt.datetime.fromisoformat(text).isoformat(), ""
    except ValueError:
        return None, "Enter a valid date/time."


def _file(text: str) -> tuple[Any, str]:
    """A file as authentik's page sends it: a `data:` URI whose content is valid base64."""
    found = DATA_URI.fullmatch(text)
    if found is None:
        return None, "Upload a valid file."
    try:
        base64.b64decode(found[1], validate=True)
    except binascii.Error:
        return None, "Upload a valid file."
    return text, ""


def _locale(text: str) -> tuple[Any, str]:
    return (text, "") if text in dict(LOCALES) else (None, "Select a valid choice.")


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


CHECKS = {
    "email": _email,
    "number": _number,
    "date": _date,
    "date-time": _date_time,
    "file": _file,
    "ak-locale": _locale,
}
