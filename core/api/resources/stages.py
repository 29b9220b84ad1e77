"""`/api/v3/stages/<kind>/` for every registered stage kind, and `/api/v3/stages/all/`.

The per-kind resources are generated from `tessera.core.stages.KINDS`: a new kind gets its
endpoints, its request model (`name` plus the kind's `Config`) and its OpenAPI schemas for free.
`/stages/prompt/prompts/` serves the prompt stage's fields, objects of their own as in authentik.
`/stages/all/user_settings/` lists, for any authenticated caller, the stages they may configure
(password, setup stages: `flows.user_settings`, which the portal's links use too).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import pydantic
from aiohttp import web

from tessera.core import stages, wire
from tessera.core.api import auth, http, net, resource
from tessera.core.api import flows as flows_api
from tessera.core.flows import prompt_admin, stage_admin, user_settings
from tessera.core.stages import base
from tessera.core.store import crud

F = resource.FilterField


class AllStages(resource.Resource):
    """Every stage, whatever its kind (read and delete)."""

    path = "stages/all"
    table = "stages"
    tag = "stages"
    app_label = "authentik_flows"
    model_name = "stage"
    read_model = wire.flows.Stage
    filters = (F("name", "name"), F("kind", "kind"))
    search_columns = ("name",)
    ordering_columns = ("name", "kind")
    default_ordering = ("name",)

    allow_delete = True

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return await stage_admin.serialize(ctx.tx, rows)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await stage_admin.delete(ctx.tx, row)

    def actions(self) -> list[resource.Action]:
        return [
            resource.Action(
                "user_settings",
                "GET",
                self._user_settings,
                detail=False,
                response=wire.flows.UserSetting,
                many=True,
                superuser=False,
                summary="The stages the caller can configure (password, authenticators)",
            )
        ]

    async def _user_settings(self, request: web.Request) -> web.Response:
        # Any authenticated user (token or session), not only superusers: it lists their own.
        principal = await auth.authenticate(request)
        executor = request.app[flows_api.EXECUTOR]
        found = await user_settings.for_user(
            executor.services,
            await executor.definitions.get(),
            principal.user,
            net.client_ip(request) or "",
        )
        return http.respond([setting.to_wire() for setting in found])


class KindStages(resource.Resource):
    """The stages of one kind; `kind` and the models are set by `for_kind`."""

    table = "stages"
    tag = "stages"
    kind: ClassVar[str]
    filters = (F("name", "name"),)
    search_columns = ("name",)
    ordering_columns = ("name",)
    default_ordering = ("name",)

    def query(self, ctx: resource.Ctx) -> crud.Query:
        return crud.Query(filters=[crud.Filter("kind", "eq", self.kind)])

    def visible(self, ctx: resource.Ctx, row: dict[str, Any]) -> bool:
        return bool(row["kind"] == self.kind)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        assert issubclass(self.read_model, wire.flows.Stage)
        return await stage_admin.serialize(ctx.tx, rows, self.read_model)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await stage_admin.create(ctx.tx, self.kind, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await stage_admin.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        assert self.request_model is not None
        return stage_admin.writable(row, self.request_model)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await stage_admin.delete(ctx.tx, row)


@functools.cache
def models(kind: str) -> tuple[type[wire.common.Request], type[wire.common.Response]]:
    """A stage kind's request and response models (made once: the OpenAPI document names
    them)."""
    stage = stages.KINDS[kind]
    return wire.flows.stage_models(stage.kind, stage.Config, stage.read_only)


def for_kind(stage: type[base.Stage]) -> KindStages:
    request, response = models(stage.kind)
    app_label, model_name = wire.flows.stage_names(stage.kind)["meta_model_name"].split(".")

    class Resource(KindStages):
        path = wire.flows.stage_path(stage.kind)
        kind = stage.kind
        read_model = response
        request_model = request

    Resource.app_label, Resource.model_name = app_label, model_name
    Resource.__name__ = Resource.__qualname__ = f"{request.__name__.removesuffix('Request')}s"
    return Resource()


def _prompt_model() -> type[wire.flows.PromptBase]:
    stage_model = models("prompt")[1]
    return pydantic.create_model(
        "Prompt",
        __base__=wire.flows.PromptBase,
        __module__=wire.flows.__name__,
        prompt_stages_obj=(list[stage_model], ...),  # type: ignore[valid-type]
    )


class Prompts(resource.Resource):
    """The prompt stage's fields (authentik's Prompt objects)."""

    path = "stages/prompt/prompts"
    table = prompt_admin.TABLE
    tag = "stages"
    app_label = "authentik_stages_prompt"
    model_name = "prompt"
    read_model = _prompt_model()
    request_model = wire.flows.PromptRequest
    filters = (
        F("name", "name"),
        F("field_key", "field_key"),
        F("label", "label"),
        F("type", "type"),
        F("placeholder", "placeholder"),
    )
    search_columns = ("name", "field_key", "label", "type", "placeholder")
    ordering_columns = ("field_key", "name", "label", "type", "order")
    default_ordering = ("field_key",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        assert issubclass(self.read_model, wire.flows.PromptBase)
        stage_model = models("prompt")[1]
        assert issubclass(stage_model, wire.flows.Stage)
        return await prompt_admin.serialize(ctx.tx, rows, self.read_model, stage_model)

    async def create(self, ctx: resource.Ctx, body: Any) -> dict[str, Any]:
        return await prompt_admin.create(ctx.tx, body)

    async def update(self, ctx: resource.Ctx, row: dict[str, Any], body: Any) -> dict[str, Any]:
        return await prompt_admin.update(ctx.tx, row, body)

    async def writable(self, ctx: resource.Ctx, row: dict[str, Any]) -> dict[str, Any]:
        return prompt_admin.writable(row)

    async def delete(self, ctx: resource.Ctx, row: dict[str, Any]) -> None:
        await prompt_admin.delete(ctx.tx, row)


def all_resources() -> list[resource.Resource]:
    return [AllStages(), *(for_kind(kind) for kind in stages.KINDS.values()), Prompts()]
