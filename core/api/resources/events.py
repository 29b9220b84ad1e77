"""`/api/v3/events/events/`: the audit log, read-only."""

from __future__ import annotations

from typing import Any

from tessera.core import wire
from tessera.core.api import resource

F = resource.FilterField


class Events(resource.Resource):
    path = "events/events"
    table = "events"
    tag = "events"
    app_label = "authentik_events"
    model_name = "event"
    read_model = wire.events.Event
    filters = (
        F("action", "action"),
        F("client_ip", "client_ip"),
        F("app", "app"),
        F("created__gt", "created", "gt", "datetime"),
        F("created__lt", "created", "lt", "datetime"),
    )
    search_columns = ("action", "client_ip", "app")
    ordering_columns = ("created", "action", "client_ip", "app")
    default_ordering = ("-created",)

    async def serialize(self, ctx: resource.Ctx, rows: list[dict[str, Any]]) -> list[Any]:
        return [
            wire.events.Event(
                pk=r["pk"],
                user=r["user"],
                action=wire.events.action(r["action"]),
                app=r["app"],
                context=r["context"],
                client_ip=r["client_ip"],
                created=r["created"],
                expires=r["expires"],
                brand={},
            )
            for r in rows
        ]
